"""`store.recorder.DbRecorder` row by row (mutation-testing round): each method writes exactly the
row the table contract names, with its defaults (no owner, no reason cut, a fill's own status, a
trade's payload only when given, no spread on a one-sided book, `raw_json` NULL for an empty
payload), and every row reaches the database through the real writer with the values given."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from pmm_widgets.domain import Fill, FillType, Market, Mode, Order, OrderStatus, Side
from pmm_widgets.store import schema
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.recorder import DbRecorder, MarkoutRow, as_recorder
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.store.writer import BatchWriter


def market(raw: dict[str, object] | None = None) -> Market:
    return Market(condition_id="0xc0", question="Q?", yes_token_id="y0", no_token_id="n0", tick_size=D("0.01"),
                  min_order_size=D(5), neg_risk=True, liquidity_num=1234.5, volume_24h=99.0, slug="q",
                  best_bid=0.4, best_ask=0.42, raw=raw or {})


def order(reason: str = "why") -> Order:
    return Order("c1", "0xc0", "y0", Side.SELL, D("0.40"), D(10), Mode.PAPER, OrderStatus.LIVE, created_ts=1.0,
                 updated_ts=2.0, reason=reason, venue_order_id="v1", filled=D(3))


def fill(status: str = "MINED") -> Fill:
    return Fill("t1", "c1", "0xc0", "y0", Side.BUY, D("0.40"), D(10), FillType.PARTIAL, Mode.PAPER, 3.0,
                venue_order_id="v1", status=status, raw={"model": "intensity"})


def test_an_order_row_has_every_column_and_the_owner_and_cut_only_when_asked():
    sink = MemorySink()
    DbRecorder(sink).order(order("x" * 20))
    [row] = sink.rows["orders"]
    assert row == {"client_id": "c1", "venue_order_id": "v1", "mode": "paper", "market": "0xc0", "token_id": "y0",
                   "side": "SELL", "price": D("0.40"), "size": D(10), "filled": D(3), "status": "LIVE",
                   "reason": "x" * 20, "created_ts": 1.0, "updated_ts": 2.0}  # no owner key at all
    DbRecorder(sink, owner="me").order(order("y" * 20), reason_max=5)
    [row] = sink.rows["orders"]  # the same client id: updated in place
    assert (row["owner"], row["reason"]) == ("me", "yyyyy")


def test_a_fill_is_inserted_or_upserted_with_its_own_status_unless_one_is_given():
    sink = MemorySink()
    rec = DbRecorder(sink)
    rec.fill(fill())
    rec.fill(fill())  # inserted twice: two rows
    assert len(sink.rows["trades"]) == 2 and sink.updates == []
    row = sink.rows["trades"][0]
    assert row == {"trade_id": "t1", "order_id": "c1", "venue_order_id": "v1", "market": "0xc0", "token_id": "y0",
                   "side": "BUY", "price": D("0.40"), "size": D(10), "fill_type": "PARTIAL", "mode": "paper",
                   "status": "MINED", "ts": 3.0, "raw_json": {"model": "intensity"}}
    assert row["raw_json"] is not fill().raw  # a copy
    other = MemorySink()
    DbRecorder(other).fill(fill(), status="CONFIRMED", upsert=True)
    DbRecorder(other).fill(fill(), status="FAILED", upsert=True)  # by trade id: one row
    assert [r["status"] for r in other.rows["trades"]] == ["FAILED"]
    DbRecorder(other).fill(fill("RETRYING"), status="", upsert=True)  # an empty status given is the status
    assert [r["status"] for r in other.rows["trades"]] == [""]


def test_a_trade_status_carries_its_payload_only_when_given_and_economics_their_three_columns():
    sink = MemorySink()
    rec = DbRecorder(sink)
    rec.trade_status("t1", "CONFIRMED")
    rec.trade_status("t1", "MINED", {})
    rec.trade_status("t1", "FAILED", {"why": "reverted"})
    rec.fill_economics("t1", D("0.01"), D(0), "TAKER")
    assert sink.updates == [("trades", {"trade_id": "t1"}, {"status": "CONFIRMED"}),
                            ("trades", {"trade_id": "t1"}, {"status": "MINED", "raw_json": {}}),
                            ("trades", {"trade_id": "t1"}, {"status": "FAILED", "raw_json": {"why": "reverted"}}),
                            ("trades", {"trade_id": "t1"}, {"fee": D("0.01"), "rebate": D(0), "liquidity": "TAKER"})]


def test_pnl_rewards_settlements_payouts_calibration_and_overrides():
    sink = MemorySink()
    rec = DbRecorder(sink)
    rec.pnl([{"market": "0xc0", "total": D(1)}, {"market": "TOTAL", "total": D(1)}])
    assert [r["market"] for r in sink.rows["pnl"]] == ["0xc0", "TOTAL"]
    rec.reward_estimate({"market": "0xc0", "usd": D("0.1")})
    assert sink.rows["reward_estimates"] == [{"market": "0xc0", "usd": D("0.1")}]
    m = market()
    rec.settlement(10.0, m, "paper", "n0", D(1), D(4), D(4), D("-0.5"), "closed")
    rec.settlement(11.0, m, "paper", "y0", D(2), D(4), D(2), D("0.5"), "market_resolved")  # cumulative: one row
    assert sink.rows["settlements"] == [{"ts": 11.0, "market": "0xc0", "mode": "paper", "winner_token": "y0",
                                         "winning_outcome": "YES", "yes_shares": D(2), "no_shares": D(4),
                                         "payout": D(2), "pnl": D("0.5"), "source": "market_resolved", "run_id": ""}]
    rec.settlement(12.0, m, "live", "n0", D(0), D(1), D(1), D(0), "closed")
    assert sink.rows["settlements"][1]["winning_outcome"] == "NO"
    rec.venue_payout(13.0, "live", "2026-12-01", "rewards", "0xc0", D("1.5"))
    rec.venue_payout(14.0, "live", "2026-12-01", "rewards", "0xc0", D("2.5"))  # the day's figure replaced
    rec.venue_payout(14.0, "live", "2026-12-01", "rebates", "0xc0", D("0.5"))
    assert [(r["ts"], r["kind"], r["amount"]) for r in sink.rows["venue_payouts"]] == [
        (14.0, "rewards", D("2.5")), (14.0, "rebates", D("0.5"))]
    assert set(sink.rows["venue_payouts"][0]) == {"ts", "mode", "date", "kind", "market", "amount"}
    state = {"mult": 1.2}
    rec.calibration("0xc0", state, 15.0)
    rec.calibration("0xc0", {"mult": 1.3}, 16.0)
    assert sink.rows["market_calibration"] == [{"market": "0xc0", "state_json": {"mult": 1.3}, "updated_at": 16.0}]
    rec.market_override("0xc0", "spread", {"alpha": "2"}, 17.0)
    assert sink.rows["market_overrides"] == [{"market": "0xc0", "strategy": "spread", "params_json": {"alpha": "2"},
                                              "updated_at": 17.0}]
    rec.market_override("0xc0", None, {}, 18.0)  # no params: NULL, not an empty object
    assert sink.rows["market_overrides"] == [{"market": "0xc0", "strategy": None, "params_json": None,
                                              "updated_at": 18.0}]


def test_markets_are_ranked_in_order_with_raw_json_null_when_empty():
    sink = MemorySink()
    a, b = market(), market({"id": "7"})
    DbRecorder(sink).markets([a, b], 5.0)
    r1, r2 = sink.rows["markets"]
    assert (r1["rank"], r2["rank"], r1["raw_json"], r2["raw_json"]) == (1, 2, None, {"id": "7"})
    assert r1 == {"snapshot_ts": 5.0, "rank": 1, "condition_id": "0xc0", "question": "Q?", "slug": "q",
                  "yes_token_id": "y0", "no_token_id": "n0", "liquidity_num": 1234.5, "volume_24h": 99.0,
                  "tick_size": D("0.01"), "min_order_size": D(5), "neg_risk": True, "best_bid": 0.4,
                  "best_ask": 0.42, "raw_json": None}


def test_public_trades_and_book_snapshots_with_a_spread_only_when_both_sides_exist():
    sink = MemorySink()
    rec = DbRecorder(sink)
    rec.public_trade("y0", None, 14.0, D("0.41"), D(3), "SELL")
    assert sink.rows["public_trades"] == [{"token_id": "y0", "market": None, "ts": 14.0, "price": D("0.41"),
                                           "size": D(3), "side": "SELL"}]
    common = {"mid": None, "bid_depth": D(1), "ask_depth": D(0), "depth_ticks": 5, "bid_levels": 1,
              "ask_levels": 0, "stale": True, "crossed": False}
    rec.book_snapshot("y0", "0xc0", 1.0, best_bid=D("0.40"), best_ask=None, **common)
    rec.book_snapshot("y0", "0xc0", 2.0, best_bid=None, best_ask=D("0.40"), **common)
    rec.book_snapshot("y0", "0xc0", 3.0, best_bid=D("0.40"), best_ask=D("0.43"), **common)
    assert [r["spread"] for r in sink.rows["book_snapshots"]] == [None, None, D("0.03")]
    assert sink.rows["book_snapshots"][0] == {"token_id": "y0", "market": "0xc0", "ts": 1.0, "best_bid": D("0.40"),
                                              "best_ask": None, "spread": None, **common}


def test_replay_runs_start_running_and_finish_by_run_id():
    sink = MemorySink()
    rec = DbRecorder(sink)
    rec.replay_started("r1", "replay", 1.0, 2.0, 3.0, 7, {"alpha": 1.5})
    assert sink.rows["replay_runs"] == [{"run_id": "r1", "mode": "replay", "t0": 1.0, "t1": 2.0, "started_ts": 3.0,
                                         "status": "running", "markets": None, "seed": 7,
                                         "params_json": {"alpha": 1.5}, "summary_json": None,
                                         "problems_json": None}]
    rec.replay_finished("r1", 9.0, "done", 1, {"fills": 1}, [])
    assert sink.updates == [("replay_runs", {"run_id": "r1"}, {"finished_ts": 9.0, "status": "done",
                                                               "markets": 1, "summary_json": {"fills": 1},
                                                               "problems_json": []})]


def test_a_recorder_is_passed_through_and_a_sink_wrapped_and_rows_are_immutable_values():
    sink = MemorySink()
    rec = DbRecorder(sink, owner="me")
    assert as_recorder(rec) is rec
    wrapped = as_recorder(sink)
    assert isinstance(wrapped, DbRecorder) and wrapped.sink is sink and wrapped.owner is None
    assert rec.with_owner("you").owner == "you" and rec.with_owner("you").sink is sink and rec.owner == "me"
    with pytest.raises(AttributeError):
        rec.extra = 1  # type: ignore[attr-defined]  # slots: no stray attributes
    m = MarkoutRow("t1", "0xc0", "y0", "BUY", "paper", 5.0, 3.0, D("0.40"), D(10), D("0.42"), 0.02, 0.2, 8.0)
    with pytest.raises(FrozenInstanceError):
        m.mid = D(1)  # type: ignore[misc]
    assert not hasattr(m, "__dict__")  # slots: one per markout row written


def test_every_method_reaches_the_database_with_the_values_given(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    w = BatchWriter(url, flush_sec=0.05)
    w.start()
    rec = DbRecorder(w, owner="me")
    m = market({"id": "7"})
    rec.order(order())
    rec.fill(fill())
    rec.fill_economics("t1", D("0.01"), D(0), "TAKER")
    rec.markout(MarkoutRow("t1", "0xc0", "y0", "BUY", "paper", 5.0, 3.0, D("0.40"), D(10), D("0.42"), 0.02, 0.2, 8.0))
    rec.pnl([{"ts": 9.0, "market": "TOTAL", "mode": "paper", "total": D(1)}])
    rec.reward_estimate({"ts": 9.0, "market": "0xc0", "mode": "paper", "usd": D("0.1")})
    rec.settlement(10.0, m, "paper", "n0", D(1), D(4), D(4), D("-0.5"), "closed")
    rec.venue_payout(13.0, "live", "2026-12-01", "rewards", "0xc0", D("1.5"))
    rec.calibration("0xc0", {"mult": 1.2}, 15.0)
    rec.markets([m], 5.0)
    rec.market_override("0xc0", "spread", {"alpha": "2"}, 17.0)
    rec.public_trade("y0", "0xc0", 14.0, D("0.41"), D(3), "SELL")
    rec.book_snapshot("y0", "0xc0", 3.0, best_bid=D("0.40"), best_ask=D("0.43"), mid=D("0.415"), bid_depth=D(1),
                      ask_depth=D(2), depth_ticks=5, bid_levels=1, ask_levels=1, stale=False, crossed=False)
    rec.replay_started("r1", "replay", 1.0, 2.0, 3.0, 7, {"alpha": 1.5})
    rec.replay_finished("r1", 9.0, "done", 1, {"fills": 1}, [])
    w.close()
    assert w.stats().quarantined == 0
    eng = make_engine(url)
    try:
        with eng.connect() as c:
            def one(table: str, *cols: str) -> tuple[object, ...]:
                t = schema.metadata.tables[table]
                rows = c.execute(select(*(t.c[k] for k in cols))).all()
                assert len(rows) == 1, (table, rows)
                return tuple(rows[0])

            assert one("orders", "owner", "side", "filled", "status") == ("me", "SELL", D(3), "LIVE")
            assert one("trades", "status", "fee", "liquidity", "raw_json") == ("MINED", D("0.01"), "TAKER",
                                                                              {"model": "intensity"})
            assert one("markouts", "horizon_sec", "mid") == (5.0, D("0.42"))
            assert one("pnl", "market", "total") == ("TOTAL", D(1))
            assert one("reward_estimates", "usd") == (D("0.1"),)
            assert one("settlements", "winning_outcome", "payout", "pnl") == ("NO", D(4), D("-0.5"))
            assert one("venue_payouts", "kind", "amount") == ("rewards", D("1.5"))
            assert one("market_calibration", "market", "state_json") == ("0xc0", {"mult": 1.2})
            assert one("markets", "rank", "raw_json") == (1, {"id": "7"})
            assert one("market_overrides", "strategy", "params_json") == ("spread", {"alpha": "2"})
            assert one("public_trades", "side", "size") == ("SELL", D(3))
            assert one("book_snapshots", "spread", "mid") == (D("0.03"), D("0.415"))
            assert one("replay_runs", "status", "markets", "summary_json", "seed") == ("done", 1, {"fills": 1}, 7)
    finally:
        eng.dispose()
