"""`Calibrator`'s fill rates (`fills_per_min`, `total_fills_per_min`: the cycle's totals, every
market every cycle) skip adding up the quoted minutes when no fill counts, and its window and
update step write `min` / `max` as conditionals. Driven through any sequence of steps (quoted or
not), fills, restores and rate reads, it answers exactly as its earlier code (the builtins, the
minutes always added up: `_Builtins` below), writes the same `market_calibration` rows, and
leaves the same state (the pruned fills and quoted stretches, which later answers read)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.config import Params
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.calibrator import Calibrator, CalibState


class _Builtins(Calibrator):
    """The calibrator's rates, window and step as they were (the reference)."""

    def fills_per_min(self, market, now):
        st = self.state(market)
        if st.started_at is None:
            return 0.0
        n, minutes = self._window(st, now)
        return n / minutes if minutes > 0 else 0.0

    def total_fills_per_min(self, markets, now):
        rates = []
        for cid in markets:
            st = self.states.get(cid)
            if st is None:
                st = self.states[cid] = CalibState()
            if st.started_at is None:
                rates.append(0.0)
                continue
            n, minutes = self._window(st, now)
            rates.append(n / minutes if minutes > 0 else 0.0)
        return sum(rates)

    def _window(self, st, now):
        if st.started_at is None:
            return 0, 0.0
        cutoff = now - self.window_sec
        fts = st.fill_ts
        if fts:
            fts = st.fill_ts = [t for t in fts if t > cutoff]
        keep = min(cutoff, st.updated_at)
        quoted = st.quoted
        if len(quoted) == 1:
            if not quoted[0][1] > keep:
                quoted = st.quoted = []
        elif quoted:
            quoted = st.quoted = [q for q in quoted if q[1] > keep]
        start = max(cutoff, st.started_at)
        if len(quoted) == 1:
            s, e = quoted[0]
            sec = max(0.0, min(e, now) - max(s, start))
        else:
            sec = sum(max(0.0, min(e, now) - max(s, start)) for s, e in quoted)
        n = len(fts) if start <= cutoff else sum(1 for t in fts if t > start)
        return n, sec / 60.0

    def step(self, market, now, tick, quoted=True):
        st = self.states.get(market)
        if st is None:
            st = self.state(market)
        self._accrue(st, now, quoted)
        q, upd = st.quoted, st.updated_at
        if len(q) == 1:
            s, e = q[0]
            due = 0.0 + (e - max(s, upd)) if e > upd else 0.0
        else:
            due = sum(e - max(s, upd) for s, e in q if e > upd)
        if due < self.update_sec:
            return False
        p = self.params
        n, minutes = self._window(st, now)
        st.fills_per_min = n / minutes if minutes > 0 else 0.0
        drive = 0.0
        target = p.target_fills_per_min
        if target > 0:
            f = (n + target * self.prior_min) / (minutes + self.prior_min)
            drive += max(-1.0, min(2.0, (f - target) / target))
        if st.adverse_ewm is not None and tick > 0 and st.markouts.count.get(self._adverse_key, 0) >= self.adverse_min_count:
            drive += max(0.0, min(1.0, -st.adverse_ewm / tick - 0.5))
        st.mult = min(max(st.mult * math.exp(self.gain * drive), p.calib_min_mult), p.calib_max_mult)
        st.updated_at = now
        self._write(market, st, now)
        return True


MARKETS = ["a", "b", "c"]
OPS = st.lists(st.tuples(st.sampled_from(["step", "step_idle", "fill", "fill_late", "rate", "total", "restore", "wait"]),
                         st.sampled_from(MARKETS), st.floats(0.0, 40.0)), min_size=1, max_size=80)


def _state(cal):
    return {cid: (list(s.fill_ts), [list(q) for q in s.quoted], s.started_at, s.last_step, s.updated_at, repr(s.mult),
                  s.fills, repr(s.fills_per_min)) for cid, s in sorted(cal.states.items())}


@settings(max_examples=300, deadline=None)
@given(OPS, st.sampled_from([60.0, 300.0]), st.sampled_from([10.0, 30.0]), st.sampled_from([0.0, 2.0]))
def test_rates_window_and_step_answer_as_the_builtins(ops, window, update, target):
    p = Params(target_fills_per_min=target, calib_min_mult=0.25, calib_max_mult=4.0)
    fast_sink, ref_sink = MemorySink(), MemorySink()
    fast = Calibrator(p, fast_sink, update_sec=update, window_sec=window)
    ref = _Builtins(p, ref_sink, update_sec=update, window_sec=window)
    now = 1000.0
    for op, cid, x in ops:
        now += x
        for cal in (fast, ref):
            if op == "restore":  # a restarted engine's state: its window starts at the restore
                cal.states[cid] = CalibState(mult=1.5, updated_at=now - x)
                cal.states[cid].started_at = now - 2 * x
        if op in ("step", "step_idle"):
            assert fast.step(cid, now, 0.01, op == "step") == ref.step(cid, now, 0.01, op == "step")
        elif op in ("fill", "fill_late"):
            ts = now if op == "fill" else now - 3 * x  # (a fill reported late: before the window's start too)
            fast.on_fill(cid, ts, 0.001)
            ref.on_fill(cid, ts, 0.001)
        elif op == "rate":
            assert repr(fast.fills_per_min(cid, now)) == repr(ref.fills_per_min(cid, now))
        elif op == "total":
            assert repr(fast.total_fills_per_min(MARKETS, now)) == repr(ref.total_fills_per_min(MARKETS, now))
        assert _state(fast) == _state(ref)
    assert fast_sink.rows == ref_sink.rows


TIMES = st.floats(0.0, 100.0)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(TIMES, TIMES), max_size=3), TIMES, TIMES)
def test_quoted_seconds_equal_the_builtins_for_any_stretches(stretches, start, now):
    """`_quoted_sec` on its own, stretches anywhere (also ending before the window's start: a
    stretch kept for the next update, which the sequences above seldom reach)."""
    quoted = [[s, e] for s, e in stretches]
    want = sum(max(0.0, min(e, now) - max(s, start)) for s, e in quoted)
    if len(quoted) == 1:
        s, e = quoted[0]
        want = max(0.0, min(e, now) - max(s, start))
    assert repr(Calibrator._quoted_sec(quoted, start, now)) == repr(want)
