"""Paper fill models, measured in the closed loop the engine runs (QuoteCycle + PaperExchange).

Synthetic books: 20 markets whose YES touch random-walks by whole ticks every 3 s refresh (NO
books mirror them), 100 shares per level. Simulated time, so minutes of trading take seconds.

1. fills/min per market at three values of PMM_PAPER_FILL_INTENSITY and of PMM_PAPER_SPREAD_K,
   with the calibrator pinned (calib_min_mult = calib_max_mult = 1) so that only the knob moves;
   the seed promises fills/min rising with intensity and falling with spread_k.
2. The calibrator in the loop: with PMM_TARGET_FILLS_PER_MIN = T it should bring each market's
   fill rate to T; reported as the error % of the mean rate over the last third of the run, and
   the median per-market absolute error %. The baseline, measured in the same run, is the same
   setting with the calibrator pinned at 1 (how far off T the raw α would be).

Each figure is the median over --runs seeds. Usage: python bench/bench_fill_models.py [--runs 3]
(about 35 s on one core; --runs 1 --minutes 10 --calib-minutes 30 for a 6 s look)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from decimal import Decimal

import numpy as np

from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Market, Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import NullSink

D = Decimal
MARKETS = 20
REFRESH = 3.0


class Walk:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.markets = [Market(f"0xm{i}", f"Q{i}", f"y{i}", f"n{i}", D("0.01"), D(5)) for i in range(MARKETS)]
        self.bid = {m.condition_id: int(self.rng.integers(25, 70)) for m in self.markets}
        self.views: dict[str, BookView] = {}

    def step(self, ts: float) -> None:
        for m in self.markets:
            b = min(max(self.bid[m.condition_id] + int(self.rng.choice([-1, 0, 0, 0, 0, 1])), 5), 90)
            self.bid[m.condition_id] = b
            a = b + 2
            t = m.tick_size
            yb = tuple(Level(t * (b - k), D(100)) for k in range(3))
            ya = tuple(Level(t * (a + k), D(100)) for k in range(3))
            self.views[m.yes_token_id] = BookView(m.yes_token_id, m.condition_id, yb, ya, t, ts=ts)
            self.views[m.no_token_id] = BookView(m.no_token_id, m.condition_id,
                                                 tuple(Level(1 - x.price, x.size) for x in ya),
                                                 tuple(Level(1 - x.price, x.size) for x in yb), t, ts=ts)


async def loop(params: Params, minutes: float, seed: int, measure_from: float = 0.0) -> tuple[float, list[float], float]:
    """(mean fills/min per market, per-market fills/min, mean multiplier) over the measured part."""
    walk = Walk(seed)
    ex = PaperExchange(params, NullSink(), seed=seed)
    qc = QuoteCycle(params, NullSink(), Mode.PAPER)
    per: dict[str, int] = {m.condition_id: 0 for m in walk.markets}
    cycles = int(minutes * 60 / REFRESH)
    start = int(measure_from * 60 / REFRESH)
    for k in range(cycles):
        now = 10_000.0 + REFRESH * k
        walk.step(now)
        rep_fills_before = {cid: st.fills for cid, st in qc.snapshot().markets.items()}
        await qc.run_once(now, walk.markets, walk.views.get, ex)
        if k >= start:
            for cid, st in qc.snapshot().markets.items():
                per[cid] += st.fills - rep_fills_before.get(cid, 0)
    span = (cycles - start) * REFRESH / 60.0
    rates = [n / span for n in per.values()]
    mults = [qc.calibrator.mult(m.condition_id) for m in walk.markets]
    return statistics.mean(rates), rates, statistics.mean(mults)


def pinned(**kw) -> Params:
    return Params(calib_min_mult=1.0, calib_max_mult=1.0, **kw)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--calib-minutes", type=float, default=60.0)
    a = ap.parse_args()
    seeds = range(1, a.runs + 1)

    def med(params: Params, minutes: float, measure_from: float = 0.0):
        res = [asyncio.run(loop(params, minutes, s, measure_from)) for s in seeds]
        return statistics.median(r[0] for r in res), res

    print(f"{MARKETS} markets, refresh {REFRESH:g}s, {a.minutes:g} simulated min, median of {a.runs} seeds; calibrator pinned at 1")
    print("PMM_PAPER_FILL_INTENSITY (spread_k 100):")
    prev = None
    mono = True
    for x in (0.5, 2.0, 8.0):
        f, _ = med(pinned(paper_fill_intensity=x), a.minutes)
        mono &= prev is None or f > prev
        prev = f
        print(f"  {x:5g} fills/min/quote at touch -> {f:6.3f} fills/min per market")
    print(f"  monotone increasing: {mono}")
    print("PMM_PAPER_SPREAD_K (intensity 4):")
    prev, mono = None, True
    for k in (30.0, 100.0, 300.0):
        f, _ = med(pinned(paper_fill_intensity=4.0, paper_spread_k=k), a.minutes)
        mono &= prev is None or f < prev
        prev = f
        print(f"  {k:5g} per price unit -> {f:6.3f} fills/min per market")
    print(f"  monotone decreasing: {mono}")

    third = a.calib_minutes * 2 / 3
    print(f"calibrator, {a.calib_minutes:g} simulated min, measured over the last {a.calib_minutes - third:g} min (intensity 4):")
    for target in (0.5, 1.0, 2.0):
        base, _ = med(pinned(paper_fill_intensity=4.0, target_fills_per_min=target), a.calib_minutes, third)
        res = [asyncio.run(loop(Params(paper_fill_intensity=4.0, target_fills_per_min=target), a.calib_minutes, s, third))
               for s in seeds]
        mean_rate = statistics.median(r[0] for r in res)
        per_err = statistics.median(statistics.median(abs(x - target) / target * 100 for x in r[1]) for r in res)
        mult = statistics.median(r[2] for r in res)
        print(f"  target {target:4g}: calibrated {mean_rate:6.3f} fills/min (error {abs(mean_rate - target) / target * 100:5.1f}%, "
              f"median per-market |error| {per_err:5.1f}%, mean mult {mult:4.2f}); "
              f"pinned baseline {base:6.3f} (error {abs(base - target) / target * 100:5.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
