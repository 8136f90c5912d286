"""`strategy.calibrator` on hand-computed cases (mutation-testing round): the update rule of its
docstring (rate error with the prior, its clip, the adverse term and its gates, the multiplier's
bounds), when an update is due, the half-open fill window, the quoted-time accounting, the
persisted state and its reload."""

from __future__ import annotations

import json
import math

from pmm_widgets.analytics.markouts import Markout
from pmm_widgets.config import Params
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.calibrator import STATE_VERSION, Calibrator, CalibState


def cal_(target: float = 2.0, lo: float = 0.25, hi: float = 4.0, **kw: float) -> tuple[Calibrator, MemorySink]:
    sink = MemorySink()
    return Calibrator(Params(target_fills_per_min=target, calib_min_mult=lo, calib_max_mult=hi), sink, **kw), sink


def rate_drive(n: int, minutes: float, target: float, prior: float = 1.0) -> float:
    f = (n + target * prior) / (minutes + prior)
    return max(-1.0, min(2.0, (f - target) / target))


def test_one_update_moves_the_multiplier_by_the_rate_error_with_its_prior():
    cal, sink = cal_(target=2.0)
    assert cal.step("a", 0.0, 0.01) is False  # the first step starts the window
    cal.on_fill("a", 10.0, None)
    cal.on_fill("a", 20.0, 0.01)
    assert cal.step("a", 29.0, 0.01) is False  # 29 s quoted: not due
    assert cal.step("a", 30.0, 0.01) is True  # exactly `update_sec`: due
    st = cal.state("a")
    assert st.fills_per_min == 4.0  # 2 fills in half a minute
    assert st.mult == math.exp(0.15 * rate_drive(2, 0.5, 2.0)) and st.mult > 1.0  # (2 + 2) / 1.5 vs 2: +1/3
    assert st.updated_at == 30.0 and st.fills == 2
    [row] = sink.rows["market_calibration"]
    assert row["market"] == "a" and row["updated_at"] == 30.0
    assert row["state_json"] == {"version": STATE_VERSION, "mult": st.mult, "fills": 2, "fills_per_min": 4.0,
                                 "markouts": st.markouts.to_json(), "adverse_ewm": None, "updated_at": 30.0}
    assert st.markouts.rs_count == 1 and st.markouts.rs_total == 0.01  # only the fill with a realized spread
    assert cal.step("a", 59.0, 0.01) is False and cal.step("a", 60.0, 0.01) is True  # 30 s after the update


def test_the_rate_error_is_clipped_to_minus_one_and_two():
    busy, _ = cal_(target=0.5, lo=0.01, hi=100.0)
    busy.step("a", 0.0, 0.01)
    for k in range(30):
        busy.on_fill("a", 1.0 + k, None)
    busy.step("a", 30.0, 0.01)  # 30 fills in half a minute: error far above 2
    assert busy.mult("a") == math.exp(0.15 * 2.0)
    quiet, _ = cal_(target=5.0, lo=0.01, hi=100.0, prior_min=0.0)
    quiet.step("a", 0.0, 0.01)
    quiet.step("a", 30.0, 0.01)  # no fill, no prior: f = 0, error −1 exactly
    assert quiet.mult("a") == math.exp(-0.15)
    off, _ = cal_(target=0.0)
    off.step("a", 0.0, 0.01)
    off.on_fill("a", 5.0, None)
    off.step("a", 30.0, 0.01)  # a target of 0: the rate term is off
    assert off.mult("a") == 1.0 and off.state("a").fills_per_min == 2.0


def test_the_multiplier_is_kept_within_its_bounds_and_read_clipped():
    cal, _ = cal_(target=2.0, lo=0.5, hi=1.05)
    cal.step("a", 0.0, 0.01)
    for k in range(30):
        cal.on_fill("a", 1.0 + k, None)
    cal.step("a", 30.0, 0.01)
    assert cal.state("a").mult == 1.05 and cal.mult("a") == 1.05
    cal.states["b"] = CalibState(mult=0.1)  # a state from wider bounds: read within these
    cal.states["c"] = CalibState(mult=9.0)
    assert (cal.mult("b"), cal.mult("c"), cal.mult("zzz")) == (0.5, 1.05, 1.0)
    assert "zzz" not in cal.states
    narrow, _ = cal_(target=2.0, lo=0.98, hi=4.0)
    narrow.step("a", 0.0, 0.01)
    narrow.step("a", 30.0, 0.01)  # no fills: narrows, to the floor
    assert narrow.mult("a") == 0.98 == narrow.state("a").mult
    cal2, _ = cal_(target=2.0, lo=0.5, hi=4.0)
    cal2.states["a"] = CalibState(mult=0.5)
    assert cal2.mult("a") == 0.5  # at the floor exactly


def markout(h: float, px: float, market: str = "a") -> Markout:
    return Markout("t", market, h, px, px)


def test_adverse_markouts_widen_once_there_are_enough_of_them():
    cal, _ = cal_(target=0.0, adverse_halflife=1, adverse_min_count=3)  # weight ½ per markout
    cal.on_markout(markout(5.0, -0.5))  # another horizon: counted, not in the EWMA
    assert cal.state("a").adverse_ewm is None and cal.state("a").markouts.count == {"5s": 1}
    cal.on_markout(markout(30.0, -0.01))
    assert cal.state("a").adverse_ewm == 0.5 * -0.01  # from the prior 0
    cal.on_markout(markout(30.0, -0.01))
    assert cal.state("a").adverse_ewm == 0.5 * (0.5 * -0.01) + 0.5 * -0.01
    cal.step("a", 0.0, 0.01)
    cal.step("a", 30.0, 0.01)  # 2 markouts at the horizon: below the minimum count
    assert cal.mult("a") == 1.0
    cal.on_markout(markout(30.0, -0.01))
    ewm = cal.state("a").adverse_ewm
    assert ewm == 0.5 * (0.5 * (0.5 * -0.01) + 0.5 * -0.01) + 0.5 * -0.01
    cal.step("a", 60.0, 0.01)  # 3 now: −ewm / tick − ½, clipped to [0, 1]
    assert 0.0 < -ewm / 0.01 - 0.5 < 1.0
    assert cal.mult("a") == math.exp(0.15 * (-ewm / 0.01 - 0.5))
    m = cal.mult("a")
    cal.step("a", 90.0, 0.0)  # no tick: no adverse term
    assert cal.mult("a") == m
    cal.step("a", 120.0, 0.1)  # a wide tick: under half a tick lost, no widening (never a narrowing)
    assert cal.mult("a") == m


def test_adverse_term_is_capped_at_one():
    cal, _ = cal_(target=0.0, hi=10.0, adverse_halflife=1, adverse_min_count=1)
    cal.on_markout(markout(30.0, -0.5))
    cal.step("a", 0.0, 0.01)
    cal.step("a", 30.0, 0.01)
    assert cal.mult("a") == math.exp(0.15)


def test_the_window_is_half_open_and_starts_at_the_first_step():
    cal, _ = cal_(window_sec=60.0)
    cal.on_fill("a", 0.0, None)  # at the start: not inside (start, now]
    cal.step("a", 0.0, 0.01)
    for t in (10.0, 30.0):
        cal.on_fill("a", t, None)
    cal.step("a", 30.0, 0.01)
    assert cal._window(cal.state("a"), 30.0) == (2, 0.5)
    assert cal.fills_per_min("a", 30.0) == 4.0
    cal.step("a", 70.0, 0.01)
    assert cal._window(cal.state("a"), 70.0) == (1, 1.0)  # the window is (10, 70]: the fill at 10 is out
    assert cal.state("a").fill_ts == [30.0]
    assert cal.fills_per_min("a", 70.0) == 1.0
    assert cal.fills_per_min("b", 70.0) == 0.0  # never stepped
    assert cal._window(cal.state("b"), 70.0) == (0, 0.0)
    assert cal.total_fills_per_min(["a", "c"], 70.0) == 1.0 and "c" in cal.states
    assert cal.fills_per_min("a", 91.0) == 0.0  # no fill in (31, 91]


def test_quoted_time_accounting_merges_continuous_stretches_and_skips_unquoted_ones():
    cal, _ = cal_()
    cal.step("a", 100.0, 0.01)
    st = cal.state("a")
    assert (st.started_at, st.last_step, st.quoted) == (100.0, 100.0, [])
    cal.step("a", 110.0, 0.01)
    cal.step("a", 120.0, 0.01)
    assert st.quoted == [[100.0, 120.0]]
    cal.step("a", 150.0, 0.01, quoted=False)
    cal.step("a", 150.0, 0.01)  # no time passed
    assert st.quoted == [[100.0, 120.0]] and st.last_step == 150.0
    assert cal.step("a", 155.0, 0.01) is False  # 25 quoted seconds: not due
    assert st.quoted == [[100.0, 120.0], [150.0, 155.0]]
    assert cal._window(st, 155.0)[1] == 25 / 60
    assert cal.step("a", 160.0, 0.01) is True  # merged into one stretch: 30 quoted seconds
    assert st.quoted == [[100.0, 120.0], [150.0, 160.0]] and st.updated_at == 160.0


def test_a_restored_state_counts_its_window_as_quoted_and_keeps_its_multiplier():
    cal, sink = cal_(target=2.0)
    cal.step("a", 0.0, 0.01)
    cal.on_fill("a", 5.0, 0.002)
    cal.on_markout(markout(30.0, -0.01))
    cal.step("a", 30.0, 0.01)
    cal.persist(40.0)
    [row] = sink.rows["market_calibration"]
    assert row["updated_at"] == 40.0
    saved = json.loads(json.dumps(row))
    again = Calibrator(cal.params, MemorySink(), {"a": saved, "b": saved["state_json"], "c": None})
    a, b, c = again.state("a"), again.state("b"), again.state("c")
    orig = cal.state("a")
    for s in (a, b):
        assert (s.mult, s.fills, s.fills_per_min, s.adverse_ewm, s.updated_at) == \
            (orig.mult, 1, orig.fills_per_min, orig.adverse_ewm, 30.0)
        assert s.markouts.to_json() == orig.markouts.to_json()
        assert (s.fill_ts, s.quoted, s.started_at) == ([], [], None)  # the window restarts with the process
    assert (c.mult, c.fills, c.fills_per_min, c.adverse_ewm, c.updated_at) == (1.0, 0, 0.0, None, 0.0)
    assert CalibState.from_json({}) == CalibState()
    restored = CalibState(started_at=10.0, updated_at=10.0)
    again.states["r"] = restored
    again.step("r", 25.0, 0.01)  # the first step of this process: (10, 25] counts as quoted
    assert restored.quoted == [[10.0, 25.0]] and restored.started_at == 10.0
    again.step("r", 40.0, 0.01)
    assert restored.quoted == [[10.0, 40.0]] and restored.updated_at == 40.0  # 30 s quoted: due
    fresh = CalibState(started_at=50.0)
    again.states["f"] = fresh
    again.step("f", 50.0, 0.01)  # restored at this very time: nothing to count yet
    assert fresh.quoted == []


def test_the_default_adverse_ewma_halves_in_twenty_markouts_and_acts_from_the_tenth():
    cal, _ = cal_(target=0.0, hi=10.0)
    for _ in range(20):  # from the prior 0, twenty equal markouts reach half of their value
        cal.on_markout(markout(30.0, -0.02))
    assert math.isclose(cal.state("a").adverse_ewm or 0.0, -0.01, rel_tol=1e-12)
    gate, _ = cal_(target=0.0, hi=10.0, adverse_halflife=1)
    for _ in range(9):
        gate.on_markout(markout(30.0, -0.02))
    gate.step("a", 0.0, 0.01)
    gate.step("a", 30.0, 0.01)
    assert gate.mult("a") == 1.0  # nine markouts at the horizon: not yet
    gate.on_markout(markout(30.0, -0.02))
    gate.step("a", 60.0, 0.01)
    assert gate.mult("a") == math.exp(0.15)  # the tenth: −(−0.02 / 0.01) − ½ > 1, capped


def test_the_persisted_state_is_version_one():
    cal, sink = cal_()
    cal.step("a", 0.0, 0.01)
    cal.persist(1.0)
    assert sink.rows["market_calibration"][0]["state_json"]["version"] == STATE_VERSION == 1


def test_no_quoted_time_since_the_last_update_is_never_due_even_with_a_short_period():
    cal, _ = cal_(update_sec=0.5)
    cal.step("a", 0.0, 0.01)
    assert cal.step("a", 1.0, 0.01) is True  # one quoted second ≥ ½
    assert cal.step("a", 2.0, 0.01, quoted=False) is False  # nothing quoted since: not due
    assert cal.state("a").updated_at == 1.0
