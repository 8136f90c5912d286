"""Scale: the engine (paper mode) at 50 / 150 / 500 markets, sandbox in its own process.

For each size the sandbox runs as a child process (`python -m pmm_widgets.sandbox`, speed 1)
and the real engine quotes that many markets for `--seconds` (refresh `--refresh`). Measured in
the engine process only:
- engine CPU: process CPU seconds / wall seconds (1.0 = one core busy);
- cycle p50/p99: `QuoteCycle.run_once` wall time;
- event-loop stall p99/max: a monitor task sleeps 5 ms and records how late it wakes;
- feed lag p99: receipt time minus the frame's venue `timestamp` (ms) of price_change frames,
  above the smallest such lag of the run (the sandbox's simulated clock can sit a constant
  offset from the wall clock, since it steps in 0.1 s increments from its start-up time): the
  queueing delay of the feed path.
The per-market cost law is the least-squares line through (markets, cycle p50) and (markets,
CPU): the slope is the cost of one more market.

Usage: python bench/bench_scale.py [--sizes 50,150,500] [--seconds 40] [--refresh 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from bench_live_cycle import SandboxProcess, pct

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.core import Engine
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.venue.market_stream import MarketStream

TS = re.compile(r'"timestamp"\s*:\s*"?(\d{10,16})')


async def one_size(n: int, a: argparse.Namespace) -> dict[str, float]:
    cycles: list[float] = []
    stalls: list[float] = []
    lags: list[float] = []
    orig_cycle, orig_frame = QuoteCycle.run_once, MarketStream.handle_frame

    async def timed(self, *args, **kw):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        rep = await orig_cycle(self, *args, **kw)
        cycles.append(time.perf_counter() - t0)
        return rep

    def frame(self, text, *args, **kw):  # type: ignore[no-untyped-def]
        now = time.time()
        s = text if isinstance(text, str) else text.decode(errors="replace")
        if '"price_change"' in s:
            m = TS.search(s)
            if m:
                lags.append(now - int(m.group(1)) / 1000.0)
        return orig_frame(self, text, *args, **kw)

    async def monitor(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.005)
            stalls.append(loop.time() - t - 0.005)

    QuoteCycle.run_once = timed  # type: ignore[method-assign]
    MarketStream.handle_frame = frame  # type: ignore[method-assign]
    proc = psutil.Process(os.getpid())
    try:
        with SandboxProcess(max(int(n * 1.5), n + 30), a.seed, 1.0) as sb, tempfile.TemporaryDirectory() as tmp:
            s = Settings(_env_file=None, venue="polymarket", db_url=f"sqlite:///{Path(tmp) / 'scale.db'}",
                         universe_size=n, quote_refresh_sec=a.refresh, max_open_orders=5_000,
                         max_actions_per_min=6_000)
            engine = Engine(s, Mode.PAPER, endpoints=sb.endpoints())
            stop = asyncio.Event()
            mon = asyncio.create_task(monitor(stop))
            run = asyncio.create_task(engine.run(max_seconds=a.warmup + a.seconds))
            await asyncio.sleep(a.warmup)  # universe, books, first cycles: not measured
            cycles.clear(), stalls.clear(), lags.clear()
            c0, w0 = proc.cpu_times(), time.monotonic()
            await run
            c1, w1 = proc.cpu_times(), time.monotonic()
            stop.set()
            await mon
    finally:
        QuoteCycle.run_once, MarketStream.handle_frame = orig_cycle, orig_frame  # type: ignore[method-assign]
    cpu = ((c1.user + c1.system) - (c0.user + c0.system)) / (w1 - w0)
    return {"markets": n, "cpu": cpu, "cycle_p50": pct(cycles, 0.5) * 1e3, "cycle_p99": pct(cycles, 0.99) * 1e3,
            "stall_p99": pct(stalls, 0.99) * 1e3, "stall_max": (max(stalls) if stalls else float("nan")) * 1e3,
            "lag_p99": (pct(lags, 0.99) - min(lags)) * 1e3 if lags else float("nan"),
            "cycles": len(cycles), "frames": len(lags)}


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")
    return b, my - b * mx


async def main(a: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        r = await one_size(n, a)
        rows.append(r)
        print(f"{n:>4} markets: engine CPU {r['cpu'] * 100:5.1f}% of a core | cycle p50 {r['cycle_p50']:6.1f} ms "
              f"p99 {r['cycle_p99']:6.1f} ms | loop stall p99 {r['stall_p99']:5.1f} ms max {r['stall_max']:6.1f} ms | "
              f"feed lag p99 {r['lag_p99']:6.1f} ms | {r['cycles']} cycles, {r['frames']} price_change frames", flush=True)
    if len(rows) >= 2:
        xs = [float(r["markets"]) for r in rows]
        bc, ac = slope(xs, [r["cycle_p50"] for r in rows])
        bu, au = slope(xs, [r["cpu"] * 100 for r in rows])
        print(f"cost law: cycle p50 ≈ {ac:.1f} ms + {bc:.3f} ms/market; engine CPU ≈ {au:.1f}% + {bu:.3f}%/market "
              f"(refresh {a.refresh:g}s, sandbox in its own process)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,150,500")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument("--refresh", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    asyncio.run(main(ap.parse_args()))
