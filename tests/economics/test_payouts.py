"""Issue 13: what the venue paid. Parsing its rows (bad rows pay nothing), which venue day to ask
for, and the report's decomposition: rewards and rebates paid where the venue said, estimated for
the days it has not (yet) paid."""

from __future__ import annotations

from decimal import Decimal as D

from sqlalchemy import create_engine, insert

from pmm_widgets.analytics.report import economics
from pmm_widgets.economics.payouts import PayoutSchedule, parse_paid, venue_date
from pmm_widgets.economics.tracker import EconomicsTracker
from pmm_widgets.store import schema
from pmm_widgets.store.sink import MemorySink

DAY1 = 1_796_083_200.0  # 2026-12-01 00:00 UTC


def test_parse_paid_adds_up_rows_and_pays_nothing_on_bad_ones() -> None:
    rows = [{"condition_id": "0xa", "earnings": 0.237519}, {"condition_id": "0xa", "earnings": 1},
            {"condition_id": "0xb", "earnings": "-1"}, {"condition_id": "0xc", "earnings": "NaN"},
            {"earnings": 3}, {"condition_id": "0xd", "earnings": None}, "junk", {"condition_id": "0xe", "earnings": True}]
    paid, problems = parse_paid(rows, "earnings")
    assert paid == {"0xa": D("1.237519")}
    assert len(problems) == 6
    assert parse_paid({"data": []}, "earnings") == ({}, ["payouts: answer is dict, not a list"])
    assert parse_paid([{"condition_id": "0xa", "rebated_fees_usdc": "2.500000"}], "rebated_fees_usdc") == ({"0xa": D("2.5")}, [])


def test_the_day_asked_for_follows_the_venue_clock() -> None:
    s = PayoutSchedule(retry_sec=300)
    assert venue_date(DAY1) == "2026-12-01"
    assert s.due(DAY1 + 3600) == "2026-11-30"  # at start: the day paid last
    s.answered("2026-11-30")
    assert s.due(DAY1 + 86_400 + 60) is None  # just after midnight: the venue pays first
    assert s.due(DAY1 + 86_400 + 600) == "2026-12-01"
    s.failed(DAY1 + 86_400 + 600)
    assert s.due(DAY1 + 86_400 + 700) is None and s.due(DAY1 + 86_400 + 900) == "2026-12-01"


def test_the_report_uses_paid_amounts_for_the_days_the_venue_paid(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    eng = create_engine(url)
    schema.metadata.create_all(eng)
    sink = MemorySink()
    tr = EconomicsTracker(sink, "live")
    tr.rewards_by_day[("0xa", "2026-12-01")] = D("0.8")
    delta = tr.record_payouts(DAY1 + 90_000, "2026-12-01", [{"condition_id": "0xa", "earnings": 1.25}],
                              [{"condition_id": "0xa", "rebated_fees_usdc": "1.5"}, {"condition_id": "0xz"}])
    assert delta == {"rewards": {"0xa": D("0.45")}, "rebates": {"0xa": D("1.5")}} and tr.bad_venue_data == 1
    with eng.begin() as c:
        for row in sink.rows["venue_payouts"]:
            c.execute(insert(schema.venue_payouts).values(**row))
        # estimates: day 1 (paid: replaced by 1.25) and day 2 (not paid yet: kept)
        for day, usd in [("2026-12-01", "0.5"), ("2026-12-01", "0.3"), ("2026-12-02", "0.2")]:
            c.execute(insert(schema.reward_estimates).values(ts=1.0, market="0xa", mode="live", usd=D(usd), venue_date=day))
        # rebates accrued on fills of day 1 (paid: replaced by 1.5) and day 2 (kept)
        for i, (ts, reb) in enumerate([(DAY1 + 10, "0.9"), (DAY1 + 86_400 + 10, "0.25")]):
            c.execute(insert(schema.trades).values(trade_id=f"t{i}", market="0xa", token_id="y", side="BUY",
                                                   price=D("0.5"), size=D(10), fill_type="FILLED", mode="live",
                                                   ts=ts, fee=D(0), rebate=D(reb)))
    doc = economics(eng, "live")
    (m,) = doc["markets"]
    assert m["rewards"] == D("1.25") + D("0.2")
    assert m["rebates"] == D("1.5") + D("0.25")
    assert doc["totals"]["total"] == m["total"] == m["rewards"] + m["rebates"]


def test_a_restarted_engine_continues_with_the_paid_amounts() -> None:
    """`engine/restore.py`: the days the venue paid count with its amounts (not the estimates or
    accruals of before the restart), and those days are not read (added) again."""
    from pmm_widgets.config import Params
    from pmm_widgets.domain import Mode
    from pmm_widgets.engine import restore
    from pmm_widgets.engine.cycle import QuoteCycle

    raw = {"trades": [{"market": "0xa", "token_id": "y", "side": "BUY", "price": "0.5", "size": "10", "ts": DAY1 + 10,
                       "status": "CONFIRMED", "fee": "0", "rebate": "0.9", "raw_json": {}},
                      {"market": "0xa", "token_id": "y", "side": "SELL", "price": "0.51", "size": "10",
                       "ts": DAY1 + 86_400 + 10, "status": "CONFIRMED", "fee": "0", "rebate": "0.25", "raw_json": {}}],
           "tokens": [{"condition_id": "0xa", "yes_token_id": "y", "no_token_id": "n"}],
           "rewards": [{"market": "0xa", "venue_date": "2026-12-01", "usd": "0.8"},
                       {"market": "0xa", "venue_date": "2026-12-02", "usd": "0.2"}],
           "settlements": [],
           "payouts": [{"kind": "rewards", "market": "0xa", "date": "2026-12-01", "amount": "1.25"},
                       {"kind": "rewards", "market": "TOTAL", "date": "2026-12-01", "amount": "1.25"},
                       {"kind": "rebates", "market": "0xa", "date": "2026-12-01", "amount": "1.5"},
                       {"kind": "rebates", "market": "TOTAL", "date": "2026-12-01", "amount": "1.5"}]}
    rows = restore.parse_rows(raw)
    got = restore.rebuild(rows, DAY1 + 90_000, 300.0)
    lg = got.ledgers["0xa"]
    assert lg.rewards == D("1.25") + D("0.2") and lg.rebates == D("1.5") + D("0.25")
    qc = QuoteCycle(Params(), MemorySink(), Mode.LIVE)
    restore.install(got, qc, None, DAY1 + 90_000, rows.tokens)
    assert got.rebates_by_day == {("0xa", "2026-12-01"): D("0.9"), ("0xa", "2026-12-02"): D("0.25")}
