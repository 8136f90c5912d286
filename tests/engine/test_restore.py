"""Issue 11: a new engine on the same DB continues the last one's positions, PnL and fill counts."""

from __future__ import annotations

import copy
import random
from decimal import Decimal

import pytest
from engine_helpers import until

from pmm_widgets.analytics.pnl import MarketLedger
from pmm_widgets.domain import Fill, FillType, Market, Mode, Side
from pmm_widgets.engine import Engine
from pmm_widgets.engine.restore import (
    SessionRows,
    TradeRow,
    parse_rows,
    position_mismatches,
    positions,
    rebuild,
)

LEDGER_FIELDS = ("yes", "no", "cash", "net", "avg", "realized_closed", "spread", "fills", "volume", "fees", "rebates")


def _snap(lg: MarketLedger) -> dict[str, object]:
    return {f: getattr(lg, f) for f in LEDGER_FIELDS}


def test_rebuild_replays_the_cycles_accounting_exactly():
    """Random fills on two markets through the cycle's ledger, then rebuilt from rows alone."""
    rng = random.Random(7)
    mk = [Market(f"c{i}", "q", f"y{i}", f"n{i}", Decimal("0.01"), Decimal(5)) for i in range(2)]
    live: dict[str, MarketLedger] = {m.condition_id: MarketLedger() for m in mk}
    rows: list[TradeRow] = []
    for i in range(400):
        m = rng.choice(mk)
        tok = rng.choice(m.token_ids)
        side = rng.choice((Side.BUY, Side.SELL))
        price = Decimal(rng.randint(1, 99)) / 100
        size = Decimal(rng.randint(1, 2000)) / 100
        mid = Decimal(rng.randint(1, 99)) / 100 if rng.random() < 0.8 else None
        fee = Decimal(rng.randint(0, 50)) / 10000
        ymid = None if mid is None else (mid if tok == m.yes_token_id else 1 - mid)
        lg = live[m.condition_id]
        lg.apply(Fill(str(i), "o", m.condition_id, tok, side, price, size, FillType.FILLED, Mode.PAPER, float(i)),
                 m, ymid)
        lg.fees += fee
        rows.append(TradeRow(m.condition_id, tok, side, price, size, float(i), fee, Decimal(0), mid))
    got = rebuild(SessionRows(tuple(rows), {m.condition_id: m.token_ids for m in mk}, {}, {}), now=400.0,
                  window_sec=100.0)
    assert got.fills == 400 and got.skipped == 0
    for cid, lg in live.items():
        assert _snap(got.ledgers[cid]) == _snap(lg)
        assert got.ledgers[cid].parts(None).realized == lg.parts(None).realized
    assert sum(len(v) for v in got.fill_ts.values()) == 99  # ts in (300, 400]
    assert got.first_ts == 301.0


def test_rebuild_settles_resolved_markets_adds_rewards_and_skips_failed_and_unknown():
    raw = {
        "trades": [
            {"market": "c0", "token_id": "y0", "side": "BUY", "price": Decimal("0.40"), "size": Decimal(10), "ts": 1.0,
             "status": "MATCHED", "fee": None, "rebate": Decimal("0.01"), "raw_json": {"book_mid": "0.41"}},
            {"market": "c0", "token_id": "n0", "side": "BUY", "price": Decimal("0.50"), "size": Decimal(4), "ts": 2.0,
             "status": "FAILED", "fee": None, "rebate": None, "raw_json": {}},
            {"market": "zz", "token_id": "zz-yes", "side": "BUY", "price": Decimal("0.5"), "size": Decimal(1),
             "ts": 3.0, "status": "MATCHED", "fee": None, "rebate": None, "raw_json": None},
            {"market": "c1", "token_id": "n1", "side": "BUY", "price": Decimal("0.30"), "size": Decimal(5), "ts": 4.0,
             "status": "CONFIRMED", "fee": Decimal("0.02"), "rebate": None, "raw_json": {}},
        ],
        "tokens": [{"condition_id": "c0", "yes_token_id": "y0", "no_token_id": "n0"},
                   {"condition_id": "c1", "yes_token_id": "y1", "no_token_id": "n1"}],
        "rewards": [{"market": "c0", "usd": Decimal("0.25")}],
        "settlements": [{"market": "c1", "winner_token": "n1", "payout": Decimal(5), "pnl": Decimal("1.5"),
                         "yes_shares": Decimal(0), "no_shares": Decimal(5)}],
    }
    rows = parse_rows(raw)
    assert rows.failed == 1 and len(rows.trades) == 3
    got = rebuild(rows, now=10.0, window_sec=300.0)
    assert got.skipped == 1 and got.fills == 2 and got.failed == 1
    c0, c1 = got.ledgers["c0"], got.ledgers["c1"]
    assert (c0.yes, c0.no, c0.cash, c0.rewards, c0.rebates) == (10, 0, Decimal("-4.00"), Decimal("0.25"), Decimal("0.01"))
    assert c0.spread == Decimal("0.10")  # 10 × (0.41 − 0.40)
    assert c1.settled and (c1.yes, c1.no) == (0, 0) and c1.cash == Decimal("-1.50") + 5 and c1.settlement == Decimal("1.5")
    assert set(got.resolved) == {"c1"}
    assert positions(got, rows.tokens) == {"y0": Decimal(10)}
    assert position_mismatches({"y0": Decimal(10)}, {"y0": Decimal(10), "n0": Decimal(0)}) == []
    assert position_mismatches({"y0": Decimal(10)}, {"y0": Decimal(7)}) == ["y0…: DB 10, venue 7"]


pytestmark = pytest.mark.integration


async def test_a_new_engine_continues_positions_pnl_and_fills(fast_settings, db):
    """Paper over the sandbox: fills, stop; a new engine on the same DB starts with the same
    positions and realized PnL (Decimal equality) and fill count, and its totals continue."""
    first = Engine(fast_settings)
    first.start()
    assert await first.wait_role() == "owner"
    assert await until(lambda: first.state.totals.fills >= 8 and any(
        m.inv_yes or m.inv_no for m in first.state.markets), timeout=60)
    cycle, exchange = first.runtime.cycle, first.runtime.exchange
    await first.stop()
    # fills the paper exchange learned after the last cycle polled it (a book update during the
    # shutdown) are in `trades` but never reached the old ledger: the DB is the truth, so the
    # expectation is the old ledger plus those, applied the way the cycle applies a fill
    ledgers = copy.deepcopy(cycle.pnl.ledgers)
    for f in exchange._pending:
        m = cycle._known[f.market]
        ymid = None if f.mid is None else (f.mid if f.token_id == m.yes_token_id else 1 - f.mid)
        ledgers.setdefault(f.market, MarketLedger()).apply(f, m, ymid)
    # a ledger the old engine opened but never moved (no fill, no reward: all zero, seen under
    # load) carries nothing to restore; rows rebuild only ledgers that moved
    empty = _snap(MarketLedger())
    old = {cid: s for cid, lg in ledgers.items() if (s := _snap(lg)) != empty}
    old_realized = sum((lg.parts(None).realized for lg in ledgers.values()), Decimal(0))
    old_fills = sum(lg.fills for lg in ledgers.values())
    assert old_fills >= 8

    second = Engine(fast_settings)
    second.set_params(quoting_paused=True)
    at_restore: dict[str, dict[str, object]] = {}
    second.events.subscribe(lambda ev: at_restore.update(
        {cid: s for cid, lg in second.runtime.cycle.pnl.ledgers.items() if (s := _snap(lg)) != empty})
        if ev.kind == "restore" else None)
    second.start()
    try:
        assert await second.wait_role() == "owner"
        assert at_restore == old  # positions, cash, average entry, realized part, fills: exact
        assert await until(lambda: second.state.tick >= 2)
        t = second.state.totals
        assert t.fills == old_fills  # paused: no new fill, the count continues
        assert t.fills_per_min > 0  # the window holds the last engine's fills
        assert second.runtime.cycle.pnl.totals({}).realized == old_realized
        assert t.realized == pytest.approx(float(old_realized), abs=1e-9)
        ms = second.runtime.cycle.snapshot().markets
        for cid, snap in old.items():
            if cid in ms:
                assert (ms[cid].inventory_yes, ms[cid].inventory_no, ms[cid].fills) == \
                       (snap["yes"], snap["no"], snap["fills"])
        assert any(e.kind == "restore" and f"{old_fills} fills" in e.message for e in second.events.recent(50))
    finally:
        await second.stop()


def _raw_db(seed: int, n: int, t_from: int) -> dict[str, list[dict]]:
    """`load_session_rows`-shaped rows: fills (one FAILED), rewards per market and venue day, a
    settlement, a venue payout day."""
    rng = random.Random(seed)
    trades = []
    for i in range(n):
        c = rng.randrange(3)
        trades.append({"market": f"c{c}", "token_id": rng.choice((f"y{c}", f"n{c}")), "side": rng.choice(("BUY", "SELL")),
                       "price": f"0.{rng.randint(10, 99)}", "size": f"{rng.randint(1, 500) / 10}", "ts": float(t_from + i),
                       "status": "FAILED" if i == 3 else "MATCHED", "fee": f"{rng.randint(0, 9) / 1000}",
                       "rebate": "0.0001" if i % 5 == 0 else None,
                       "raw_json": {"book_mid": f"0.{rng.randint(10, 99)}"} if i % 4 else {}})
    return {"trades": trades,
            "tokens": [{"condition_id": f"c{c}", "yes_token_id": f"y{c}", "no_token_id": f"n{c}"} for c in range(5)],
            "rewards": [{"market": "c1", "venue_date": "2026-12-01", "usd": "0.125"},
                        {"market": "c2", "venue_date": None, "usd": "0.5"}],
            "settlements": [{"market": "c0", "winner_token": "y0", "payout": "3", "pnl": "1.25", "yes_shares": "3",
                             "no_shares": "0"}] if seed == 1 else [],
            "payouts": [{"kind": "rewards", "market": "c1", "date": "2026-12-01", "amount": "0.2"},
                        {"kind": "rewards", "market": "TOTAL", "date": "2026-12-01", "amount": "0.2"}] if seed == 1 else []}


def test_restored_rows_recorded_in_a_start_record_read_back_exactly():
    """The rows an engine restored from go into its recording's `start` record (JSON) and come back
    equal, decimals and times exact; token pairs only of the markets the rows name."""
    import json

    from pmm_widgets.engine.restore import rows_from_json, rows_to_json

    rows = parse_rows(_raw_db(1, 60, 1_000))
    d = json.loads(json.dumps(rows_to_json(rows)))
    back = rows_from_json(d)
    assert back.failed == 1
    assert back == SessionRows(rows.trades, {k: v for k, v in rows.tokens.items() if k in {"c0", "c1", "c2"}},
                               rows.rewards, rows.settlements, rows.failed, rows.rewards_by_day, rows.paid, rows.paid_days)
    assert rebuild(back, 1_100.0, 50.0).summary() == rebuild(rows, 1_100.0, 50.0).summary()
    assert rows_to_json(parse_rows({})) is None


def test_merged_rows_are_what_one_db_holding_both_sessions_reads():
    """A replay's later session continues from the rows its first session restored from plus its
    own: `merge_rows` equals the rows of one DB holding both (fills in order, rewards summed per
    market and venue day), and rebuilds to the same ledgers."""
    from pmm_widgets.engine.restore import merge_rows

    a, b = _raw_db(1, 40, 1_000), _raw_db(2, 30, 2_000)
    both = parse_rows({"trades": a["trades"] + b["trades"], "tokens": a["tokens"],
                       "rewards": [{"market": "c1", "venue_date": "2026-12-01", "usd": "0.25"},
                                   {"market": "c2", "venue_date": None, "usd": "0.5"},
                                   {"market": "c2", "venue_date": None, "usd": "0.5"}],
                       "settlements": a["settlements"], "payouts": a["payouts"]})
    merged = merge_rows(parse_rows(a), parse_rows(b))
    assert merged == both
    got, want = rebuild(merged, 2_100.0, 500.0), rebuild(both, 2_100.0, 500.0)
    assert {k: _snap(v) for k, v in got.ledgers.items()} == {k: _snap(v) for k, v in want.ledgers.items()}
