"""Markouts, PnL and calibrator on hand-computed examples."""

from __future__ import annotations

import json
import math
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market

from pmm_widgets.analytics.markouts import Markout, MarkoutTracker
from pmm_widgets.analytics.pnl import MarketLedger, PnlBook
from pmm_widgets.config import Params
from pmm_widgets.domain import Fill, FillType, Mode, Side
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.calibrator import Calibrator

D = Decimal


def fill(token, side, price, size, ts=0.0, tid="t1", raw=None):
    return Fill(tid, "o1", "0xc0", token, side, D(price), D(size), FillType.FILLED, Mode.PAPER, ts, raw=raw or {"model": "x"})


def test_markouts_and_realized_spread_hand_example():
    sink = MemorySink()
    sink.insert("trades", {"trade_id": "t1", "raw_json": {"model": "x"}})
    tr = MarkoutTracker(sink)
    rs = tr.on_fill(fill("y0", Side.BUY, "0.40", "10", ts=100.0), D("0.42"))
    assert math.isclose(rs, 0.02)
    mids = {"y0": D("0.43")}
    assert tr.advance(104.0, mids.get) == []
    mids["y0"] = D("0.44")
    [m5] = tr.advance(105.0, mids.get)
    assert m5.horizon == 5.0 and math.isclose(m5.px, 0.04) and math.isclose(m5.usd, 0.4)
    mids["y0"] = D("0.38")
    [m30] = tr.advance(131.0, mids.get)
    assert math.isclose(m30.px, -0.02) and math.isclose(m30.usd, -0.2)
    [m120] = tr.advance(300.0, lambda t: None)  # book gone: the last mid seen is used
    assert math.isclose(m120.px, -0.02)
    assert tr.pending == 0
    assert sink.rows["trades"][0]["raw_json"] == {"model": "x"} and sink.updates == []  # the payload is left alone
    rows = sink.rows["markouts"]  # realized spread at the fill (horizon 0), then one row per horizon
    assert [r["horizon_sec"] for r in rows] == [0.0, 5.0, 30.0, 120.0]
    assert all(r["trade_id"] == "t1" and r["side"] == "BUY" and r["mode"] == "paper" and r["fill_ts"] == 100.0
               for r in rows)
    assert [r["mid"] for r in rows] == [D("0.42"), D("0.44"), D("0.38"), D("0.38")]
    assert [r["ts"] for r in rows] == [100.0, 105.0, 131.0, 300.0]
    assert math.isclose(rows[0]["markout"], 0.02) and math.isclose(rows[0]["markout_usd"], 0.2)
    assert math.isclose(rows[1]["markout"], 0.04) and math.isclose(rows[2]["markout_usd"], -0.2)
    json.dumps(rows, default=str)  # JSON-safe


def test_markouts_are_negated_for_sells():
    tr = MarkoutTracker(MemorySink())
    rs = tr.on_fill(fill("n0", Side.SELL, "0.60", "5", ts=0.0), D("0.58"))
    assert math.isclose(rs, 0.02)
    [m] = tr.advance(5.0, {"n0": D("0.65")}.get)
    assert math.isclose(m.px, -0.05) and math.isclose(m.usd, -0.25)


def test_pnl_hand_example_pairs_are_riskless():
    m = make_market(0)
    lg = MarketLedger()
    lg.apply(fill("y0", Side.BUY, "0.40", "10"), m, D("0.42"))
    lg.apply(fill("n0", Side.BUY, "0.55", "10"), m, D("0.42"))
    for mark in (D("0.10"), D("0.42"), D("0.90")):  # a YES+NO pair is worth 1 whatever the mid
        p = lg.parts(mark)
        assert (p.total, p.realized, p.unrealized, p.spread, p.inventory) == (D("0.5"), D("0.5"), 0, D("0.5"), 0)
    lg.apply(fill("y0", Side.SELL, "0.50", "5"), m, D("0.48"))
    p = lg.parts(D("0.46"))
    assert (lg.yes, lg.no, lg.cash) == (D(5), D(10), D("-7.0"))
    assert p.total == D("0.7") and p.unrealized == D("0.2") and p.realized == D("0.5")
    assert p.spread == D("0.6") and p.inventory == D("0.1")
    assert p.inventory_usd == D("5") * (1 - D("0.46"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["y0", "n0"]), st.sampled_from([Side.BUY, Side.SELL]),
                          st.integers(1, 99), st.integers(1, 50), st.integers(1, 99)), min_size=1, max_size=15),
       st.integers(1, 99))
def test_pnl_identities(fills, mark):
    m = make_market(0)
    lg = MarketLedger()
    for tok, side, px, sz, mid in fills:
        lg.apply(fill(tok, side, str(D(px) / 100), str(sz)), m, D(mid) / 100)
    mk = D(mark) / 100
    p = lg.parts(mk)
    assert p.total == lg.cash + lg.yes * mk + lg.no * (1 - mk)
    assert abs(p.realized - lg.realized_closed) < D("1e-18")  # the average entry is a division
    assert p.total == p.spread + p.inventory
    assert lg.net == lg.yes - lg.no


def test_pnl_rows_have_schema_columns_and_total():
    from pmm_widgets.store.schema import pnl
    m = make_market(0)
    book = PnlBook()
    book.apply(fill("y0", Side.BUY, "0.40", "10"), m, D("0.42"))
    rows = book.rows(10.0, "paper", {m.condition_id: D("0.45")})
    assert [r["market"] for r in rows] == [m.condition_id, "TOTAL"]
    cols = {c.name for c in pnl.columns} - {"id", "run_id"}  # run_id: set by replays only
    assert set(rows[0]) == cols and set(rows[1]) == cols
    assert rows[1]["total"] == rows[0]["total"] == D("0.5")


def drive(cal: Calibrator, market: str, fills_per_min: float, minutes: float, t0: float = 0.0) -> float:
    gap = 60.0 / fills_per_min if fills_per_min > 0 else None
    t, next_fill = t0, t0
    while t < t0 + minutes * 60:
        if gap is not None:
            while next_fill <= t:
                cal.on_fill(market, next_fill, None)
                next_fill += gap
        cal.step(market, t, 0.01)
        t += 5.0
    return cal.mult(market)


def test_calibrator_narrows_when_quiet_and_widens_when_busy_within_bounds():
    p = Params(target_fills_per_min=2.0, calib_min_mult=0.5, calib_max_mult=4.0)
    quiet = Calibrator(p, MemorySink())
    assert drive(quiet, "a", 0.2, 10) < 1.0
    assert drive(quiet, "a", 0.0, 120) == 0.5  # stays at the floor
    busy = Calibrator(p, MemorySink())
    assert drive(busy, "b", 20.0, 10) > 1.0
    assert drive(busy, "b", 20.0, 120) == 4.0
    on = Calibrator(p, MemorySink())
    assert 0.8 < drive(on, "c", 2.0, 20) < 1.25


def test_calibrator_widens_on_adverse_markouts_and_persists():
    p = Params(target_fills_per_min=0.0)
    sink = MemorySink()
    cal = Calibrator(p, sink)
    cal.step("a", 0.0, 0.01)
    for i in range(30):
        cal.on_fill("a", float(i), 0.005)
        cal.on_markout(Markout(f"t{i}", "a", 30.0, -0.02, -0.2))
    cal.step("a", 31.0, 0.01)
    assert cal.mult("a") > 1.0
    [row] = sink.rows["market_calibration"]
    st = row["state_json"]
    json.dumps(st)
    assert st["fills"] == 30 and st["markouts"]["count"]["30s"] == 30
    assert math.isclose(st["markouts"]["mean"]["30s"], -0.02) and math.isclose(st["markouts"]["realized_spread_mean"], 0.005)
    again = Calibrator(p, MemorySink(), {"a": json.loads(json.dumps(st))})
    assert again.mult("a") == cal.mult("a")
    assert again.state("a").markouts.mean(30.0) == cal.state("a").markouts.mean(30.0)
