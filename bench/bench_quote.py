"""Tick-to-quote decision latency for 50 markets (100 tokens), and one full quote cycle.

What is timed, per market, from a new pair of BookViews to the wanted quotes after risk:
effective mid, volatility lookup, `make_quotes` and `RiskManager.filter_quotes` (the work the
quote loop does per market when a book changes). Reported as p50/p99 per market and per token
(half a market's decision: one market decides both tokens' quotes at once). The full cycle is
`QuoteCycle.run_once` over all 50 markets with a PaperExchange and a NullSink (books observed,
fills polled and booked, quotes planned, risk-limited and sent).

Baseline, measured in the same run: a naive float decision (plain mid ± fixed half-spread,
rounded with round(), no complement book, no skew, no risk), i.e. the floor cost of any quoting
decision in Python; the ratio says what the exact Decimal/tick-grid logic costs on top.
Goal: p99 < 1 ms per token decision. Figures are the median over --runs runs.

Usage: python bench/bench_quote.py [--runs 5] [--iters 40]   (a few seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from decimal import Decimal

import numpy as np

from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Market, Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.events import EventBus
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import NullSink
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.quoting import grid_tick, make_quotes, yes_mid
from pmm_widgets.strategy.risk import RiskManager
from pmm_widgets.strategy.volatility import VolEstimator

MARKETS = 50
D = Decimal


class Synth:
    """50 markets whose YES touch random-walks by whole ticks; NO books are the mirror images."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.markets: list[Market] = []
        self.bid: dict[str, int] = {}
        for i in range(MARKETS):
            tick = D("0.01") if i % 5 else D("0.001")
            n = int(1 / tick)
            m = Market(f"0xm{i}", f"Q{i}", f"y{i}", f"n{i}", tick, D(5))
            self.markets.append(m)
            self.bid[m.condition_id] = int(rng.integers(n // 4, 3 * n // 4))

    def step(self, ts: float) -> dict[str, BookView]:
        rng, views = self.rng, {}
        for m in self.markets:
            tick = m.tick_size
            b = self.bid[m.condition_id] = self.bid[m.condition_id] + int(rng.integers(-1, 2))
            a = b + int(rng.integers(1, 4))
            lv = lambda p: Level(tick * p, D(int(rng.integers(5, 2000))))  # noqa: B023 -- used in this iteration only
            ybids = tuple(lv(b - k) for k in range(5))
            yasks = tuple(lv(a + k) for k in range(5))
            views[m.yes_token_id] = BookView(m.yes_token_id, m.condition_id, ybids, yasks, tick, ts=ts)
            views[m.no_token_id] = BookView(m.no_token_id, m.condition_id,
                                            tuple(Level(1 - x.price, x.size) for x in yasks),
                                            tuple(Level(1 - x.price, x.size) for x in ybids), tick, ts=ts)
        return views


def naive(mid: float, tick: float, h: float) -> tuple[float, float]:
    return round((mid - h) / tick) * tick, round((mid + h) / tick) * tick


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def one_run(seed: int, iters: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    params = Params()
    risk = RiskManager(params, EventBus())
    vol = VolEstimator()
    ours: list[float] = []
    base: list[float] = []
    books = Synth(rng)
    markets = books.markets
    for it in range(iters):
        views = books.step(3.0 * it)
        risk.begin_cycle()
        for m in markets:
            yv, nv = views[m.yes_token_id], views[m.no_token_id]
            inv = Inventory(D(int(rng.integers(0, 300))), D(int(rng.integers(0, 300))))
            t0 = time.perf_counter_ns()
            mid = yes_mid(yv, nv, grid_tick(m, yv, nv))
            v = {t: vol.sigma(t, 30.0) for t in m.token_ids}
            qs = make_quotes(m, yv, nv, params, inv, 1.0, v)
            qs = risk.filter_quotes(3.0 * it, m, qs, inv, mid, D(0))
            t1 = time.perf_counter_ns()
            fmid = (float(yv.bids[0].price) + float(yv.asks[0].price)) / 2
            naive(fmid, float(m.tick_size), 0.015)
            t2 = time.perf_counter_ns()
            ours.append((t1 - t0) / 1e3)
            base.append((t2 - t1) / 1e3)
            vol.update(m.yes_token_id, float(mid), 3.0 * it, 60.0)
        risk.end_cycle()
    return {"p50": pct(ours, 50), "p99": pct(ours, 99), "base_p50": pct(base, 50), "base_p99": pct(base, 99)}


async def cycle_run(seed: int, iters: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    params = Params(paper_fill_intensity=5.0)
    sink = NullSink()
    ex = PaperExchange(params, sink, seed=seed)
    qc = QuoteCycle(params, sink, Mode.PAPER)
    times, quoted = [], []
    books = Synth(rng)
    for it in range(iters):
        views = books.step(1000.0 + 3 * it)
        t0 = time.perf_counter_ns()
        rep = await qc.run_once(1000.0 + 3 * it, books.markets, views.get, ex)
        times.append((time.perf_counter_ns() - t0) / 1e6)
        quoted.append(rep.quoted_markets)
    return {"p50": pct(times[3:], 50), "p99": pct(times[3:], 99), "quoted": statistics.median(quoted)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iters", type=int, default=40)
    a = ap.parse_args()
    runs = [one_run(s, a.iters) for s in range(a.runs)]
    cyc = [asyncio.run(cycle_run(s, a.iters)) for s in range(a.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    cmed = {k: statistics.median(r[k] for r in cyc) for k in cyc[0]}
    n = a.iters * MARKETS
    print(f"decision latency over {MARKETS} markets / {2 * MARKETS} tokens, {n} decisions per run, median of {a.runs} runs")
    print(f"  per market : p50 {med['p50']:8.1f} us   p99 {med['p99']:8.1f} us")
    print(f"  per token  : p50 {med['p50'] / 2:8.1f} us   p99 {med['p99'] / 2:8.1f} us   "
          f"(goal p99 < 1000 us: {'OK' if med['p99'] / 2 < 1000 else 'MISSED'})")
    print(f"  baseline (naive float mid ± h, per market): p50 {med['base_p50']:6.2f} us   p99 {med['base_p99']:6.2f} us")
    print(f"  ratio ours/baseline: p50 {med['p50'] / med['base_p50']:6.1f}x   p99 {med['p99'] / med['base_p99']:6.1f}x")
    print(f"full QuoteCycle.run_once (50 markets, PaperExchange, NullSink): p50 {cmed['p50']:.2f} ms   p99 {cmed['p99']:.2f} ms"
          f"   ({cmed['p50'] * 1000 / (2 * MARKETS):.1f} us per token at p50; {cmed['quoted']:.0f} markets quoted per cycle)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
