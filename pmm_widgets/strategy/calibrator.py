"""Per-market adaptive spread multiplier, learned from fill rate and markouts.

Why per market: one α cannot suit a sleepy long-dated market and a busy news market at once.
Every `update_sec` each market's multiplier moves in log space:

    mult ← clip(mult × exp(gain × (rate_error + adverse)), calib_min_mult, calib_max_mult)

- rate_error = clip((f − target) / target, −1, 2), f the fills/min over the last `window_sec`
  (both tokens together), shrunk toward the target by a prior worth `prior_min` minutes of
  fills at the target rate (so two fills in the first 30 s of a window are not read as 4
  fills/min). Filling below `target_fills_per_min` narrows the quotes (more fills); filling
  above it widens them, the half that makes the loop settle on the target instead of drifting
  to the floor. The error is linear, not a log ratio: fill counts are Poisson-noisy, and a log
  error averages to zero only where the mean rate is *above* the target (Jensen), which
  measured as a 10–20% overshoot at targets ≤ 1/min. With a target of 0 the rate term is off.
- adverse = clip(−(markout EWMA in ticks) − ½, 0, 1) at the `adverse_horizon`: a market whose
  fills are reliably worth less than half a tick h seconds later is picking us off, so it widens
  regardless of the fill rate. The EWMA (half-life `adverse_halflife` fills) starts from a prior
  of 0 and acts only after `adverse_min_count` markouts, so a few unlucky fills on a noisy
  market do not blow the spread out.

Reaching a wanted fills/min (per market, both tokens): set `target_fills_per_min` and let the
multiplier settle (minutes: ±15% per update at most). It can only move the half-spread within
α × [calib_min_mult, calib_max_mult] × base; if it sits at a bound, move α (all markets), or
in paper the fill knobs: more `paper_fill_intensity` (rate at the touch) or less
`paper_spread_k` (decay with distance) raise fills at a given spread. `skew` and the inventory
limits also change fills: a market at its limit quotes one side only.

The state (multiplier, fill count, last fill rate, markout statistics) is plain JSON, stored in
`market_calibration.state_json` at every update and reloaded at start-up, so a restart resumes
with the multiplier and statistics the last run left. The fill-rate window restarts with the
process: time the engine was down must not count as minutes without fills.

For the same reason only time the market was quoted counts: `step(..., quoted=False)` (the cycle
passes whether the market had resting orders since its previous cycle) lets the time pass without
accruing it, in the window (`window_sec` of wall time, of which only the quoted stretches are
minutes) and toward the next update (every `update_sec` of quoted time). A market with no book, a
stale book or no quotes (a replay window opened before its data, a stale feed, a halt) neither
tightens nor widens, and a replay started before its data gives the replay started at it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..analytics.markouts import Markout, MarkoutStats, horizon_key
from ..config import Params
from ..store.recorder import DbRecorder, as_recorder
from ..store.sink import Sink

STATE_VERSION = 1


@dataclass(slots=True)
class CalibState:
    mult: float = 1.0
    fills: int = 0
    fill_ts: list[float] = field(default_factory=list)  # this process's recent fills (not persisted)
    markouts: MarkoutStats = field(default_factory=MarkoutStats)
    adverse_ewm: float | None = None  # price units, at the adverse horizon
    started_at: float | None = None  # first step of this process: the fill-rate window starts here
    updated_at: float = 0.0
    last_step: float | None = None  # this process's previous step (the end of the time accounted for)
    quoted: list[list[float]] = field(default_factory=list)  # [start, end] stretches quoted (merged, not persisted)
    fills_per_min: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "mult": self.mult,
            "fills": self.fills,
            "fills_per_min": self.fills_per_min,
            "markouts": self.markouts.to_json(),
            "adverse_ewm": self.adverse_ewm,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CalibState:
        return cls(
            mult=float(d.get("mult", 1.0)),
            fills=int(d.get("fills", 0)),
            markouts=MarkoutStats.from_json(d.get("markouts")),
            adverse_ewm=None if d.get("adverse_ewm") is None else float(d["adverse_ewm"]),
            updated_at=float(d.get("updated_at", 0.0)),
            fills_per_min=float(d.get("fills_per_min", 0.0)),
        )


class Calibrator:
    def __init__(
        self,
        params: Params,
        sink: Sink | DbRecorder,
        states: dict[str, dict[str, Any]] | None = None,
        update_sec: float = 30.0,
        window_sec: float = 300.0,
        gain: float = 0.15,
        adverse_horizon: float = 30.0,
        adverse_halflife: int = 20,
        adverse_min_count: int = 10,
        prior_min: float = 1.0,
    ) -> None:
        self.params = params
        self.rec = as_recorder(sink)
        self.update_sec = update_sec
        self.window_sec = window_sec
        self.gain = gain
        self.adverse_horizon = adverse_horizon
        self.adverse_min_count = adverse_min_count
        self.prior_min = prior_min
        self._adverse_key = horizon_key(adverse_horizon)
        self._ewm_w = 1.0 - 0.5 ** (1.0 / adverse_halflife)
        # accept {market: state_json} or {market: row with a "state_json" key}
        self.states: dict[str, CalibState] = {
            cid: CalibState.from_json(s.get("state_json", s) if isinstance(s, dict) else {})
            for cid, s in (states or {}).items()
        }

    def state(self, market: str) -> CalibState:
        st = self.states.get(market)
        if st is None:
            st = self.states[market] = CalibState()
        return st

    def mult(self, market: str) -> float:
        st = self.states.get(market)
        m = st.mult if st is not None else 1.0
        p = self.params  # `min(max(m, lo), hi)` as the builtins evaluate it (`quoting.ticks_at`): per market per cycle
        lo = p.calib_min_mult
        if lo > m:
            m = lo
        hi = p.calib_max_mult
        return hi if hi < m else m

    def on_fill(self, market: str, ts: float, realized_spread: float | None) -> None:
        st = self.state(market)
        st.fills += 1
        st.fill_ts.append(ts)
        if realized_spread is not None:
            st.markouts.add_realized_spread(realized_spread)

    def on_markout(self, mk: Markout) -> None:
        st = self.state(mk.market)
        st.markouts.add_markout(mk.horizon, mk.px)
        if mk.horizon == self.adverse_horizon:
            prev = st.adverse_ewm or 0.0  # a prior of "no adverse selection" damps the first few fills
            st.adverse_ewm = (1 - self._ewm_w) * prev + self._ewm_w * mk.px

    def fills_per_min(self, market: str, now: float) -> float:
        return self._rate(self.state(market), now)

    def total_fills_per_min(self, markets: Iterable[str], now: float) -> float:
        """`sum(self.fills_per_min(m, now) for m in markets)` (the same terms, added in the same
        order), in one call: the cycle's totals ask it for every market every cycle."""
        states = self.states
        rate = self._rate
        rates: list[float] = []
        for cid in markets:
            st = states.get(cid)
            if st is None:
                st = states[cid] = CalibState()  # as `state` does
            rates.append(rate(st, now))
        return sum(rates)

    def _rate(self, st: CalibState, now: float) -> float:
        """Fills per quoted minute in the window: `n / minutes if minutes > 0 else 0.0` of
        `_window(st, now)`, its pruning included, without adding up the quoted minutes when no fill
        counts (0 fills are a rate of 0.0 whatever the minutes: most markets, every cycle).
        tests/strategy/test_calibrator_rate.py compares it with `_window`."""
        if st.started_at is None:
            return 0.0
        n, start, quoted = self._count(st, now)
        if n == 0:
            return 0.0
        minutes = self._quoted_sec(quoted, start, now) / 60.0
        return n / minutes if minutes > 0 else 0.0

    def _window(self, st: CalibState, now: float) -> tuple[int, float]:
        """(fills, quoted minutes) in the half-open interval (max(now − window, start), now]."""
        if st.started_at is None:
            return 0, 0.0
        n, start, quoted = self._count(st, now)
        return n, self._quoted_sec(quoted, start, now) / 60.0

    def _count(self, st: CalibState, now: float) -> tuple[int, float, list[list[float]]]:
        """`_window`'s pruning (fills before the cutoff, stretches no longer counted) and its
        fill count: (fills, the window's start, the stretches kept). `min`/`max` written as the
        conditionals the builtins evaluate (the first smallest / largest: `quoting.ticks_at`)."""
        started = st.started_at
        assert started is not None
        cutoff = now - self.window_sec
        fts = st.fill_ts
        if fts:  # (the cycle asks every market every cycle: the empty and one-stretch cases without a scan)
            fts = st.fill_ts = [t for t in fts if t > cutoff]
        upd = st.updated_at
        keep = upd if upd < cutoff else cutoff  # `min(cutoff, updated_at)`: a stretch still counts toward
        quoted = st.quoted  # the window or the next update
        if len(quoted) == 1:  # one stretch (quoted continuously): kept as it is, or dropped
            if not quoted[0][1] > keep:
                quoted = st.quoted = []
        elif quoted:
            quoted = st.quoted = [q for q in quoted if q[1] > keep]
        start = started if started > cutoff else cutoff  # `max(cutoff, started_at)`
        # every kept fill is after the cutoff: after the start too when the start is the cutoff
        n = len(fts) if start <= cutoff else sum(1 for t in fts if t > start)
        return n, start, quoted

    @staticmethod
    def _quoted_sec(quoted: list[list[float]], start: float, now: float) -> float:
        """The quoted seconds of the kept stretches inside (start, now]."""
        if len(quoted) == 1:  # `sum` of the one term (never -0.0: `max(0.0, x)`), its min/max as conditionals
            s, e = quoted[0]
            d = (now if now < e else e) - (start if start > s else s)
            return d if d > 0.0 else 0.0
        return sum(max(0.0, min(e, now) - max(s, start)) for s, e in quoted)

    def _accrue(self, st: CalibState, now: float, quoted: bool) -> None:
        """Account the time since the previous step: a quoted stretch, or time that passes uncounted."""
        last = st.last_step
        st.last_step = now
        if last is None:
            if st.started_at is None:  # the first step: the window starts here
                st.started_at = now
            elif st.started_at < now:  # restored (engine/restore.py): the last run's window counts as quoted
                st.quoted.append([st.started_at, now])
            return
        if not quoted or now <= last:
            return
        if st.quoted and st.quoted[-1][1] == last:
            st.quoted[-1][1] = now  # continuously quoted: one stretch (its length is exact)
        else:
            st.quoted.append([last, now])

    def step(self, market: str, now: float, tick: float, quoted: bool = True) -> bool:
        """Update one market if `update_sec` of quoted time has passed since its last update;
        persists and returns True when it did. `quoted`: the market had resting quotes since the
        previous step (False: the time passes but is neither window minutes nor update time)."""
        st = self.states.get(market)  # (per market per cycle: `state` called only to create it)
        if st is None:
            st = self.state(market)
        self._accrue(st, now, quoted)
        q, upd = st.quoted, st.updated_at
        if len(q) == 1:  # `sum` of the one term (0.0 + x: as `sum` adds it; `max(s, upd)` as its conditional)
            s, e = q[0]
            due = 0.0 + (e - (upd if upd > s else s)) if e > upd else 0.0
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

    def persist(self, now: float) -> None:
        """Write every market's state (at shutdown): a restart then resumes from the last fill,
        not from the last periodic update, which can be `update_sec` old."""
        for market, st in self.states.items():
            self._write(market, st, now)

    def _write(self, market: str, st: CalibState, now: float) -> None:
        self.rec.calibration(market, st.to_json(), now)
