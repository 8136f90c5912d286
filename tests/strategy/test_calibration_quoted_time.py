"""The fill-rate calibrator counts only the time a market was quoted: minutes without a book, with
a stale book or without our quotes are not minutes without fills. It used to accrue them (every
market stepped every cycle): a replay window opened a few minutes before its data tightened the
quotes before the first book and changed the whole run (QA: 30 fills +10.36 from the data's
start, 40 fills +3.62 from a minute before, 48 fills -33.69 from ten minutes before)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from strategy_helpers import WalkingBooks, make_market

from pmm_widgets.config import Params, load_settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.calibrator import Calibrator

D = Decimal
T0 = parse_time("2026-11-30T10:00:00Z")


def _quiet(cal: Calibrator, market: str, t0: float, seconds: float, quoted: bool, dt: float = 3.0) -> None:
    t = t0
    while t <= t0 + seconds:
        cal.step(market, t, 0.01, quoted)
        t += dt


def test_unquoted_time_neither_moves_the_multiplier_nor_counts_as_minutes():
    p = Params(target_fills_per_min=2.0, calib_min_mult=0.25, calib_max_mult=4.0)
    es, ls = MemorySink(), MemorySink()
    early, late = Calibrator(p, es), Calibrator(p, ls)
    _quiet(early, "a", 1000.0, 600.0, quoted=False)  # ten minutes with no book or no quotes
    st = early.state("a")
    assert st.mult == 1.0 and st.fills_per_min == 0.0 and early.fills_per_min("a", 1600.0) == 0.0
    assert "market_calibration" not in es.rows  # no update: nothing to persist
    # then quoted without fills: the same steps as a calibrator that starts there
    _quiet(early, "a", 1603.0, 300.0, quoted=True)
    _quiet(late, "a", 1600.0, 303.0, quoted=True)
    assert early.mult("a") == late.mult("a") < 1.0  # narrowed, as much as from the quoted start only
    assert early.state("a").updated_at == late.state("a").updated_at
    a, b = es.rows["market_calibration"], ls.rows["market_calibration"]
    assert a == b  # the persisted state too


def test_a_stretch_without_quotes_pauses_the_window_and_the_update_clock():
    p = Params(target_fills_per_min=1.0, calib_min_mult=0.25, calib_max_mult=4.0)
    cal = Calibrator(p, MemorySink())
    cal.step("a", 0.0, 0.01)
    for k in range(1, 11):  # 20 s quoted, one fill a second: busy
        cal.on_fill("a", float(k), None)
        cal.step("a", float(2 * k), 0.01)
    assert cal.state("a").updated_at == 0.0  # 20 s of quoted time: no update yet
    cal.step("a", 500.0, 0.01, quoted=False)  # 8 minutes unquoted (a stale feed): not counted
    assert cal.state("a").updated_at == 0.0 and cal.fills_per_min("a", 500.0) == 0.0  # the window moved past it
    cal.step("a", 520.0, 0.01)  # 20 s quoted again: 40 s quoted since the last update
    assert cal.state("a").updated_at == 520.0
    assert cal.state("a").fills_per_min == 0.0  # its window (220, 520] holds 20 quoted seconds, no fill
    # the window's minutes are the quoted ones only: one fill in 40 quoted seconds is 1.5 fills/min
    # (over the wall-clock window, 5 minutes, it read 0.2)
    cal.on_fill("a", 530.0, None)
    cal.step("a", 540.0, 0.01)
    assert cal.fills_per_min("a", 540.0) == pytest.approx(1 / (40 / 60))


async def _cycles(params: Params, start: float, book_from: float, end: float, stale: tuple[float, float] | None = None):
    """Cycles every 3 s from `start`; books exist from `book_from` (a seeded walk that starts
    there whatever `start` is), stale within `stale`."""
    sink = MemorySink()
    ms = [make_market(i) for i in range(2)]
    books = WalkingBooks(ms, seed=4)
    ex = PaperExchange(params, sink, seed=9)
    qc = QuoteCycle(params, sink, Mode.PAPER)
    mults: dict[float, dict[str, float]] = {}
    now = start
    while now <= end:
        if now >= book_from:
            books.stale = {m.condition_id for m in ms} if stale and stale[0] <= now < stale[1] else set()
            books.step(now)
        await qc.run_once(now, ms, books.view, ex)
        mults[now] = {m.condition_id: qc.calibrator.mult(m.condition_id) for m in ms}
        now += 3.0
    trades = [(t["token_id"], t["side"], t["price"], t["size"], t["ts"]) for t in sink.rows.get("trades", [])]
    return qc, trades, mults


async def test_cycles_before_the_first_book_change_nothing():
    p = Params(target_fills_per_min=30.0, calib_min_mult=0.25, calib_max_mult=4.0, paper_fill_intensity=2.0)
    t0 = 10_000.0
    late_qc, late, late_m = await _cycles(p, t0, t0, t0 + 600)
    early_qc, early, early_m = await _cycles(p, t0 - 600, t0, t0 + 600)
    assert all(m == {k: 1.0 for k in m} for t, m in early_m.items() if t < t0)  # no book: no move
    assert late and early == late  # the same fills, at the same prices and times
    assert {t: m for t, m in early_m.items() if t >= t0} == late_m
    assert any(v != 1.0 for v in late_m[t0 + 600].values())  # the calibration did move


async def test_a_stale_stretch_does_not_tighten():
    p = Params(target_fills_per_min=30.0, calib_min_mult=0.01, calib_max_mult=4.0, paper_fill_intensity=0.5)
    t0 = 10_000.0
    stale = (t0 + 300, t0 + 900)
    qc, _, mults = await _cycles(p, t0, t0, t0 + 960, stale)
    # the first stale cycle accounts the quoted time before it (and cancels); then nothing moves
    during = [m for t, m in mults.items() if stale[0] <= t < stale[1]]
    assert during[0] == during[-1]
    for m in qc.snapshot().markets.values():
        assert m.status != "stale"  # quoting again after the stretch


@pytest.fixture(scope="module")
def rec_dir(synth_rec):
    return synth_rec


def test_a_replay_opened_before_its_data_gives_the_replay_opened_at_it(rec_dir):
    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20)
    params = {"target_fills_per_min": 5.0, "calib_min_mult": 0.25, "calib_max_mult": 4.0}

    def run(t0: float):
        rp = Replayer(s, t0, T0 + 240, params=params)
        res = asyncio.run(rp.run())
        cyc = rp.points[0].cycle
        assert cyc is not None
        fills = [(t["token_id"], t["side"], t["price"], t["size"], t["ts"]) for t in res.trades]
        return res, fills, {cid: st.mult for cid, st in cyc.calibrator.states.items()}

    at, at_fills, at_mult = run(T0)
    for before in (T0 - 60, T0 - 600):
        res, fills, mult = run(before)
        assert fills == at_fills and mult == at_mult
        assert res.summary["pnl_total"] == at.summary["pnl_total"]
    assert at_fills and any(m != 1.0 for m in at_mult.values())  # calibration on, and it moved
