"""Scale: the engine (paper mode) at 50 / 150 / 500 markets, sandbox in its own process; the
incremental quote cycle against the full cycle (every market re-decided every cycle) in the same run.

For each size and cycle mode the engine starts the embedded sandbox as its child process
(`PMM_SANDBOX_PROCESS=on`: `python -m pmm_widgets.sandbox`, speed 1, `size + 20` markets) and
quotes `size` markets for `--seconds` after `--warmup` (refresh `--refresh`). Measured in the
engine process only (the sandbox's CPU is its own process's):
- engine CPU: process CPU seconds / wall seconds (1.0 = one core busy);
- cycle p50/p99: `QuoteCycle.run_once` wall time; re-decided: the share of quoted-market
  decisions the strategy actually ran (the rest kept their previous decision);
- event-loop stall p99/max: a monitor task sleeps 5 ms and records how late it wakes; "own" is
  the part of each lateness the engine process could have caused: min(lateness, the process's
  CPU time meanwhile). On a shared machine (load above the core count) the rest is the
  scheduler running other processes (the sandbox child included);
- feed lag p99: the time a price_change event is applied to its book minus its venue `timestamp`
  (ms), above the smallest such lag of the run (the sandbox's simulated clock can sit a constant
  offset from the wall clock, since it steps in 0.1 s increments from its start-up time): the
  queueing delay of the feed path, including the wait of a frame received during a quote cycle
  that holds the books still (`MarketStream.hold`); "recv" is the same at receipt;
- GC: pauses of the garbage collector (gc callbacks), the longest in the measured window and over
  the whole run (set-up and shutdown included), and the number of full (gen-2) collections;
- yields: turns the quote cycles gave the event loop (`PMM_CYCLE_YIELD_MS`).
Each (size, mode) is run `--runs` times, modes interleaved; the table shows medians.
`--compare DIR`: the same runs, interleaved, each in its own process, of this tree and of the
source tree at DIR (e.g. `git archive` of main before a change): the baseline of the same run. The
per-market cost law is the least-squares line through (markets, cycle p50) and (markets, CPU):
the slope is the cost of one more market. The load average is printed with the figures (the
machine is shared).

Usage: python bench/bench_scale.py [--sizes 50,150,500] [--seconds 40] [--warmup 20] [--refresh 1]
       [--runs 1] [--modes incremental,full] [--compare DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from bench_live_cycle import pct

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.core import Engine
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.venue.market_stream import MarketStream

TS = re.compile(rb'"timestamp"\s*:\s*"?(\d{10,16})')


async def one_size(n: int, incremental: bool, a: argparse.Namespace) -> dict[str, float]:
    cycles: list[float] = []
    stalls: list[float] = []
    lags: list[float] = []
    applied: list[float] = []
    own: list[float] = []
    gcs: list[tuple[int, float, bool, float]] = []  # (generation, seconds, inside the measured window, thread CPU s)
    window = [False]
    stopped_by_cancel = [False]
    gc_t0 = [0.0, 0.0]
    decided = [0, 0]
    orig_cycle, orig_frame = QuoteCycle.run_once, MarketStream.handle_frame
    orig_pc = MarketStream._on_price_change

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_t0[0], gc_t0[1] = time.perf_counter(), time.thread_time()
        else:
            gcs.append((info["generation"], time.perf_counter() - gc_t0[0], window[0], time.thread_time() - gc_t0[1]))

    def price_change(self, ev, now, touched):  # type: ignore[no-untyped-def]
        try:
            applied.append(time.time() - int(ev.timestamp) / 1000.0)
        except (TypeError, ValueError):
            pass
        return orig_pc(self, ev, now, touched)

    async def timed(self, *args, **kw):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        rep = await orig_cycle(self, *args, **kw)
        cycles.append(time.perf_counter() - t0)
        decided[0] += rep.decided
        decided[1] += rep.decided + rep.reused
        return rep

    def frame(self, data, *args, **kw):  # type: ignore[no-untyped-def]
        now = time.time()
        b = data if isinstance(data, bytes) else data.encode()
        if b'"price_change"' in b:
            m = TS.search(b)
            if m:
                lags.append(now - int(m.group(1)) / 1000.0)
        return orig_frame(self, data, *args, **kw)

    async def monitor(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t, c = loop.time(), time.process_time()
            await asyncio.sleep(0.005)
            late = loop.time() - t - 0.005
            stalls.append(late)
            own.append(min(late, time.process_time() - c))

    QuoteCycle.run_once = timed  # type: ignore[method-assign]
    MarketStream.handle_frame = frame  # type: ignore[method-assign]
    MarketStream._on_price_change = price_change  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    proc = psutil.Process(os.getpid())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s = Settings(_env_file=None, venue="sandbox", sandbox_process="on", sandbox_markets=n + 20,
                         sandbox_seed=a.seed, sandbox_speed=1.0, cycle_incremental=incremental,
                         db_url=f"sqlite:///{Path(tmp) / 'scale.db'}", universe_size=n, quote_refresh_sec=a.refresh,
                         max_open_orders=5_000, max_actions_per_min=6_000, record="off")
            engine = Engine(s, Mode.PAPER)
            stop = asyncio.Event()
            mon = asyncio.create_task(monitor(stop))
            run = engine.start()
            t_start = time.monotonic()
            while not cycles and not run.done():  # set-up (sandbox, universe, books): not measured
                await asyncio.sleep(0.2)
            setup = time.monotonic() - t_start
            await asyncio.sleep(a.warmup)
            cycles.clear(), stalls.clear(), lags.clear(), applied.clear(), own.clear()
            decided[:] = [0, 0]
            y0 = getattr(engine.runtime.cycle, "yields", 0)
            window[0] = True
            c0, w0 = proc.cpu_times(), time.monotonic()
            await asyncio.sleep(a.seconds)
            c1, w1 = proc.cpu_times(), time.monotonic()
            window[0] = False
            yields = getattr(engine.runtime.cycle, "yields", 0) - y0
            await engine.stop()
            try:
                await run
            except asyncio.CancelledError:  # the stop's grace ran out mid-cycle: the engine's clean shutdown ran anyway
                stopped_by_cancel[0] = True
            stop.set()
            await mon
    finally:
        QuoteCycle.run_once, MarketStream.handle_frame = orig_cycle, orig_frame  # type: ignore[method-assign]
        MarketStream._on_price_change = orig_pc  # type: ignore[method-assign]
        gc.callbacks.remove(on_gc)
    cpu = ((c1.user + c1.system) - (c0.user + c0.system)) / (w1 - w0)
    in_window = [d for _, d, w, _c in gcs if w]
    return {"markets": n, "cpu": cpu, "cycle_p50": pct(cycles, 0.5) * 1e3, "cycle_p99": pct(cycles, 0.99) * 1e3,
            "stall_p99": pct(stalls, 0.99) * 1e3, "stall_max": (max(stalls) if stalls else float("nan")) * 1e3,
            "recv_lag_p99": (pct(lags, 0.99) - min(lags)) * 1e3 if lags else float("nan"),
            "lag_p99": (pct(applied, 0.99) - min(applied)) * 1e3 if applied else float("nan"),
            "own_p99": pct(own, 0.99) * 1e3 if own else float("nan"),
            "gc_max": max(in_window, default=0.0) * 1e3, "gc_max_run": max((d for _, d, _w, _c in gcs), default=0.0) * 1e3,
            "gc_cpu_max": max((c for _, _d, w, c in gcs if w), default=0.0) * 1e3,
            "gc2": float(sum(1 for g, _, _w, _c in gcs if g == 2)), "yields": float(yields),
            "cycles": len(cycles), "frames": len(lags), "setup": setup, "stop_cancelled": float(stopped_by_cancel[0]),
            "redecided": decided[0] / decided[1] if decided[1] else float("nan")}


def slope(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else float("nan")
    return b, my - b * mx


def synthetic_cycle_cpu(n: int, incremental: bool, frac: float, iters: int, seed: int) -> dict[str, float]:
    """CPU time of `QuoteCycle.run_once` alone (thread CPU: insensitive to other processes' load)
    over `n` synthetic markets (bench_quote's random-walk books) where each cycle a share `frac`
    of the markets' books moves, 1 s apart, paper exchange with fills."""
    import bench_quote
    import numpy as np
    from bench_quote import Synth

    from pmm_widgets.config import Params
    from pmm_widgets.execution.paper import PaperExchange
    from pmm_widgets.store.sink import NullSink

    bench_quote.MARKETS = n
    rng = np.random.default_rng(seed)
    books = Synth(rng)
    allm = books.markets
    views = books.step(1000.0)
    params = Params(paper_fill_intensity=2.0)
    sink = NullSink()
    now = 1000.0
    ex = PaperExchange(params, sink, seed=seed, clock=lambda: now)
    qc = QuoteCycle(params, sink, Mode.PAPER, incremental=incremental)
    cpu: list[float] = []
    share = [0, 0]
    loop = asyncio.new_event_loop()
    for it in range(iters):
        now = 1000.0 + it
        books.markets = [m for m in allm if rng.random() < frac]
        views.update(books.step(now))
        books.markets = allm
        t0 = time.thread_time()
        rep = loop.run_until_complete(qc.run_once(now, allm, views.get, ex))
        cpu.append(time.thread_time() - t0)
        if it >= 3:
            share[0] += rep.decided
            share[1] += rep.decided + rep.reused
    loop.close()
    xs = cpu[3:]
    return {"p50": pct(xs, 0.5) * 1e3, "p99": pct(xs, 0.99) * 1e3,
            "redecided": share[0] / share[1] if share[1] else float("nan")}


def synthetic(a: argparse.Namespace) -> None:
    sizes = [int(x) for x in a.sizes.split(",")]
    fracs = [float(x) for x in a.synthetic.split(",")]
    print(f"synthetic cycle CPU (thread time), {a.iters} cycles, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| markets | books moving per cycle | full p50 (p99) | incremental p50 (p99) | re-decided | ratio |")
    print("|---|---|---|---|---|---|")
    law: dict[tuple[str, float], list[float]] = {}
    for n in sizes:
        for f in fracs:
            full = median_row([synthetic_cycle_cpu(n, False, f, a.iters, s) for s in range(a.runs)])
            inc = median_row([synthetic_cycle_cpu(n, True, f, a.iters, s) for s in range(a.runs)])
            law.setdefault(("full", f), []).append(full["p50"])
            law.setdefault(("incremental", f), []).append(inc["p50"])
            print(f"| {n} | {f * 100:.0f}% | {full['p50']:.1f} ms ({full['p99']:.1f}) | {inc['p50']:.1f} ms "
                  f"({inc['p99']:.1f}) | {inc['redecided'] * 100:.0f}% | {full['p50'] / inc['p50']:.2f} |", flush=True)
    if len(sizes) >= 2:
        for (mode, f), ys in law.items():
            b, c = slope([float(n) for n in sizes], ys)
            print(f"cost law ({mode}, {f * 100:.0f}% of books moving): cycle CPU ≈ {c:.2f} ms + {b * 1000:.1f} µs/market")


def median_row(rs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rs) for k in rs[0]}


def run_in_process(tree: Path, n: int, mode: str, a: argparse.Namespace) -> dict[str, float]:
    """One (size, mode) run of the source tree `tree` in a fresh process (--compare)."""
    cmd = [sys.executable, __file__, "--one", str(n), "--modes", mode, "--seconds", str(a.seconds),
           "--warmup", str(a.warmup), "--refresh", str(a.refresh), "--seed", str(a.seed), "--log-level", a.log_level]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree, timeout=a.seconds + a.warmup + 300)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"run of {tree} ({n} markets, {mode}) failed (exit {out.returncode}): "
                       f"{(out.stderr.strip().splitlines() or ['?'])[-1]}")


def fmt_row(n: int, label: str, r: dict[str, float]) -> str:
    return (f"| {n} | {label} | {r['cpu'] * 100:.1f}% | {r['cycle_p50']:.1f} ms | {r['cycle_p99']:.1f} ms | "
            f"{r['redecided'] * 100:.0f}% | {r['stall_p99']:.1f} ms ({r['stall_max']:.0f} ms) | {r['own_p99']:.1f} ms | "
            f"{r['lag_p99']:.0f} ms ({r['recv_lag_p99']:.0f}) | {r['gc_max']:.0f} ms ({r['gc_cpu_max']:.0f} ms CPU; "
            f"{r['gc_max_run']:.0f} ms, {r['gc2']:.0f} full) | {r['yields'] / max(r['cycles'], 1):.1f} | {r['load']:.1f} |")


async def main(a: argparse.Namespace) -> None:
    logging.basicConfig(level=getattr(logging, a.log_level))
    modes = a.modes.split(",")
    sizes = [int(x) for x in a.sizes.split(",")]
    here = Path(__file__).resolve().parents[1]
    trees: dict[str, Path | None] = {"this": None}
    if a.compare:
        base = Path(a.compare).resolve()
        if not (base / "pmm_widgets" / "__init__.py").exists():
            raise SystemExit(f"--compare {a.compare}: not a source tree (no pmm_widgets/ there)")
        trees = {"baseline": base, "this": here}
    labels = [f"{t} {m}" if len(trees) > 1 else m for t in trees for m in modes]
    rows: dict[str, list[dict[str, float]]] = {lab: [] for lab in labels}
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)"
          + (f"; baseline tree {trees['baseline']}" if a.compare else ""), flush=True)
    for n in sizes:
        runs: dict[str, list[dict[str, float]]] = {lab: [] for lab in labels}
        for _ in range(a.runs):
            for tname, tree in trees.items():  # interleaved: every variant sees the same load drift
                for mode in modes:
                    lab = f"{tname} {mode}" if len(trees) > 1 else mode
                    r = (run_in_process(tree, n, mode, a) if tree is not None
                         else await one_size(n, mode == "incremental", a))
                    r["load"] = os.getloadavg()[0]
                    runs[lab].append(r)
                    print(f"  run: {n} markets {lab}: cpu {r['cpu'] * 100:.1f}% cycle p50 {r['cycle_p50']:.1f} ms "
                          f"stall p99 {r['stall_p99']:.1f} ms (own {r['own_p99']:.1f}) max {r['stall_max']:.0f} ms feed lag p99 "
                          f"{r['lag_p99']:.0f} ms gc max {r['gc_max']:.0f} ms ({r['gc_max_run']:.0f} ms in the run) "
                          f"(load {r['load']:.1f})", flush=True)
        for lab in labels:
            r = median_row(runs[lab])
            rows[lab].append(r)
            print(f"{n:>4} markets {lab:>11}: engine CPU {r['cpu'] * 100:5.1f}% of a core | cycle p50 "
                  f"{r['cycle_p50']:6.1f} ms p99 {r['cycle_p99']:6.1f} ms | re-decided {r['redecided'] * 100:5.1f}% | "
                  f"loop stall p99 {r['stall_p99']:5.1f} ms max {r['stall_max']:6.1f} ms | feed lag p99 "
                  f"{r['lag_p99']:6.1f} ms | GC max {r['gc_max']:.0f} ms ({r['gc_max_run']:.0f} in the run) | "
                  f"{r['cycles']:.0f} cycles, {r['frames']:.0f} price_change frames | "
                  f"set-up {r['setup']:.1f} s | load {r['load']:.1f}", flush=True)
    print(f"median of {a.runs} run(s) per cell; load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| markets | variant | engine CPU | cycle p50 | cycle p99 | re-decided | loop stall p99 (max) | "
          "stall p99 own | feed lag p99 applied (recv) | GC max pause in window (its CPU; whole run, full "
          "collections) | yields/cycle | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, n in enumerate(sizes):
        for lab in labels:
            print(fmt_row(n, lab, rows[lab][i]))
    if len(sizes) >= 2:
        xs = [float(n) for n in sizes]
        for lab in labels:
            bc, ac = slope(xs, [r["cycle_p50"] for r in rows[lab]])
            bu, au = slope(xs, [r["cpu"] * 100 for r in rows[lab]])
            print(f"cost law ({lab}): cycle p50 ≈ {ac:.1f} ms + {bc:.3f} ms/market; engine CPU ≈ {au:.1f}% + "
                  f"{bu:.3f}%/market of a core (refresh {a.refresh:g}s, sandbox in its own process)")
    if "incremental" in rows and "full" in rows:
        for i, n in enumerate(sizes):
            f, c = rows["full"][i], rows["incremental"][i]
            print(f"scale: markets={n} cycle_p50 full={f['cycle_p50']:.1f}ms incremental={c['cycle_p50']:.1f}ms "
                  f"ratio={f['cycle_p50'] / c['cycle_p50']:.2f} stall_p99={c['stall_p99']:.1f}ms "
                  f"cpu={c['cpu'] * 100:.1f}%")
    if a.compare:
        for mode in modes:
            for i, n in enumerate(sizes):
                b, t = rows[f"baseline {mode}"][i], rows[f"this {mode}"][i]
                print(f"compare: markets={n} mode={mode} stall_p99 baseline={b['stall_p99']:.1f}ms "
                      f"this={t['stall_p99']:.1f}ms ratio={b['stall_p99'] / max(t['stall_p99'], 1e-9):.1f} "
                      f"own {b['own_p99']:.1f}->{t['own_p99']:.1f}ms "
                      f"feed_lag_p99 {b['lag_p99']:.0f}->{t['lag_p99']:.0f}ms gc_max_run "
                      f"{b['gc_max_run']:.0f}->{t['gc_max_run']:.0f}ms cpu {b['cpu'] * 100:.1f}->{t['cpu'] * 100:.1f}%")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,150,500")
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--warmup", type=float, default=20.0)
    ap.add_argument("--refresh", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--log-level", default="ERROR")
    ap.add_argument("--synthetic", default="", help="e.g. 0.05,0.2,1: only the cycle's CPU on synthetic books, "
                    "with this share of books moving per cycle (no sandbox, no engine)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--modes", default="incremental,full")
    ap.add_argument("--compare", default="", help="a source tree (e.g. git archive of main) run interleaved with "
                    "this one, each run in its own process: the baseline of the same run")
    ap.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)  # one run, a JSON line (--compare)
    args = ap.parse_args()
    if args.one:
        logging.basicConfig(level=getattr(logging, args.log_level))
        res = asyncio.run(one_size(args.one, args.modes == "incremental", args))
        print("RESULT " + json.dumps(res), flush=True)
    elif args.synthetic:
        synthetic(args)
    else:
        if args.compare and args.modes == "incremental,full":
            args.modes = "incremental"
        asyncio.run(main(args))
