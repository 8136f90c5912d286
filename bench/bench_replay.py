"""Research-loop benchmarks (issue 15): replay speed, sweep parallel speed-up, recording cost.

1. Replay: a synthetic recording of 50 markets (the sandbox simulator's wire events, written by
   `research.synth`, cached under --data) replayed through the engine's code: market events/s
   and simulated seconds per wall second, against a baseline measured in the same run: the same
   frames through the stream and books only (no listeners, no cycles).
2. Sweep: 4 grid points (--sweep-points 8: the issue's example grid) over a window of that
   recording, joblib with 1 process vs 2 (workers forked from the bench's process, and loky workers
   started cold).
3. Recording overhead: `pmm run paper` (50 markets) against a `pmm sandbox` subprocess, engine
   process CPU with PMM_RECORD=on vs off (alternating runs), and the recording's bytes per hour
   per market.

4. --compare DIR (before/after in the same run): the full replay of this tree and of another source
   tree DIR (e.g. `git archive <commit> | tar -x -C DIR`), each run in a fresh subprocess,
   alternating, median of --runs each; prints the ratio and whether the orders and trades of both
   are identical (sha256 over every row). --compare-python PYTHON (alone or with --compare): the
   "before" side runs with the interpreter PYTHON (another venv's python), the same way: two builds
   of CPython on the same code.

5. --instructions (with --window W, optionally --compare DIR): instructions per market event of
   one replay, counted by valgrind's callgrind (the replay process minus the same process stopped
   before the replay), with the string hash seed fixed (PYTHONHASHSEED=0; a random one moves the
   count ±1 %; fixed, two checkouts of one code read within 0.2 %): a change of ≈ 0.3 % or more is
   measurable on a host whose CPU time drifts ±15 %. It ranks code; it does not predict seconds.

6. --phases (with --window W): where one replay's CPU goes (the cycles, the book and trade
   listeners, the rest), the ceiling the cycles alone set, the cycle time 200k events/CPU-s allows.

7. --warmup MINUTE (with --window W, default 5): a window starting inside the hour, replayed with
   the full warm-up from the hour's start vs from the last checkpoint before it.

Usage: python bench/bench_replay.py [--minutes 60] [--runs 3] [--engine-seconds 40] [--skip-engine] [--rotate-sec 60]
       [--compare DIR] [--compare-python PYTHON]
Figures go to bench/README.md by hand (median of runs, date, command).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("PMM_BENCH_TREE") or str(ROOT))  # --compare: a worker runs another tree's code

from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import load_window
from pmm_widgets.research.replayer import CH_MARKET, Replayer, ReplayStream
from pmm_widgets.research.synth import synth_recording

T0 = 1_796_032_800.0  # 2026-11-30T10:00:00Z
MARKETS = 50


def recording(data: Path, minutes: float, checkpoint_sec: float | None = None) -> Path:
    """The bench's recording (cached under `data`); `checkpoint_sec`: with the engine's checkpoints."""
    root = data / (f"synth-{MARKETS}m-{int(minutes)}min" + (f"-ck{int(checkpoint_sec)}" if checkpoint_sec else ""))
    MINUTES_OF[root] = minutes
    if not (root / ".done").exists():
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        synth_recording(root, T0, minutes * 60, markets=MARKETS, seed=7, checkpoint_sec=checkpoint_sec)
        (root / ".done").write_text("ok")
        print(f"generated {minutes:g} simulated minutes of {MARKETS} markets in {time.perf_counter() - t:.0f} s")
    return root


def books_only(root: Path, minutes: float) -> tuple[float, int]:
    """Baseline: every frame through the stream's parser and the books, nothing else."""
    w = load_window(root, T0, T0 + minutes * 60)
    from pmm_widgets.book import OrderBook
    from pmm_widgets.store.recording import markets_from_json
    from pmm_widgets.venue.market_data import new_book

    books: dict[str, OrderBook] = {}
    clock = [0.0]
    st = ReplayStream("ws://x", None, books, clock=lambda: clock[0])  # type: ignore[arg-type]
    t = time.process_time()
    for i in range(len(w)):
        clock[0] = float(w.ts[i])
        if w.channel[i] == CH_MARKET and w.kind[i] == "frame":
            st.handle_frame(w.payload[i], st.conn(int(w.conn[i])))
        elif w.kind[i] == "universe":
            for m in markets_from_json(__import__("json").loads(w.payload[i])):
                for tok in m.token_ids:
                    books[tok] = new_book(tok, m)
    return time.process_time() - t, st.stats.events


def full_replay(root: Path, minutes: float) -> dict:
    """One replay; rates per CPU second of this process (the shared machine's load does not count)."""
    s = load_settings(record_dir=str(root), quote_refresh_sec=3.0)
    w = load_window(root, T0, T0 + minutes * 60)
    r = Replayer(s, T0, T0 + minutes * 60, window=w)
    c0 = time.process_time()
    res = asyncio.run(r.run())
    cpu = time.process_time() - c0
    out = dict(res.summary)
    out["cpu_seconds"] = cpu
    out["events_per_cpu_sec"] = out["events"] / cpu
    out["sim_per_cpu_sec"] = out["sim_seconds"] / cpu
    out["orders_hash"], out["trades_hash"] = rows_hash(res.orders, res.run_id), rows_hash(res.trades, res.run_id)
    return out


def rows_hash(rows: list[dict], run_id: str) -> str:
    """sha256 of the rows with the run id blanked: the id hashes the parameters, so a tree that
    adds a parameter (same value) gets another id and other order/trade ids for the same trading."""
    h = hashlib.sha256()
    for r in rows:
        h.update(json.dumps(r, sort_keys=True, default=str).replace(run_id, "RUN").encode())
    return h.hexdigest()[:16]


def worker(root: Path, minutes: float) -> None:
    """--worker: one full replay in this process (the tree of PMM_BENCH_TREE), a JSON line out."""
    from pmm_widgets.research import replayer

    s = full_replay(root, minutes)
    out = {k: s[k] for k in ("events", "frames", "cycles", "placed", "fills", "sim_seconds", "wall_seconds",
                             "cpu_seconds", "events_per_cpu_sec", "orders_hash", "trades_hash")}
    out["tree"] = str(Path(replayer.__file__).parents[2])
    out["python"] = _python()
    print("WORKER " + json.dumps(out), flush=True)


def compare(root: Path, minutes: float, runs: int, other: Path | None, other_python: str | None = None) -> None:
    """This tree against `other` (None: this tree) run by `other_python` (None: this interpreter),
    alternating fresh processes; medians and identical results."""
    got: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(runs):
        for label, tree, py in (("before", other or ROOT, other_python or sys.executable), ("after", ROOT, sys.executable)):
            got[label].append(_fresh(root, minutes, tree, "WORKER ", ["--worker"], python=py))
    med = {k: statistics.median(r["events_per_cpu_sec"] for r in v) for k, v in got.items()}
    cpu = {k: statistics.median(r["cpu_seconds"] for r in v) for k, v in got.items()}
    wall = {k: statistics.median(r["wall_seconds"] for r in v) for k, v in got.items()}
    b, a = got["before"][0], got["after"][0]
    same = all((r["orders_hash"], r["trades_hash"]) == (b["orders_hash"], b["trades_hash"])
               for r in got["before"] + got["after"])
    print(f"compare {MARKETS} markets x {minutes:g} min ({a['events']:,} events, {a['cycles']} cycles, {a['placed']} orders, "
          f"{a['fills']} fills), alternating fresh processes, median of {runs}:")
    print(f"  before ({b['tree']}, {b['python']}): {med['before']:,.0f} events per CPU-s ({cpu['before']:.2f} CPU-s, {wall['before']:.2f} s wall)"
          f"  runs {[round(r['events_per_cpu_sec']) for r in got['before']]}")
    print(f"  after  ({a['tree']}, {a['python']}): {med['after']:,.0f} events per CPU-s ({cpu['after']:.2f} CPU-s, {wall['after']:.2f} s wall)"
          f"  runs {[round(r['events_per_cpu_sec']) for r in got['after']]}")
    print(f"  after/before = {med['after'] / med['before']:.2f}x; orders and trades identical in every run: {same} "
          f"(orders {a['orders_hash']}, trades {a['trades_hash']})")


MINUTES_OF: dict[Path, float] = {}


def bench_replay(root: Path, minutes: float, runs: int) -> None:
    base, full = [], []
    for _ in range(runs):
        cpu, events = books_only(root, minutes)
        base.append(events / cpu)
        s = full_replay(root, minutes)
        full.append(s)
    ev = statistics.median(s["events_per_cpu_sec"] for s in full)
    sim = statistics.median(s["sim_per_cpu_sec"] for s in full)
    wall = statistics.median(s["wall_seconds"] for s in full)
    cpu = statistics.median(s["cpu_seconds"] for s in full)
    b = statistics.median(base)
    s0 = full[0]
    print(f"replay {MARKETS} markets x {minutes:g} min: {s0['events']:,} market events in {s0['frames']:,} frames, "
          f"{s0['cycles']} cycles, {s0['placed']} orders, {s0['fills']} fills")
    print(f"  full replay (books + listeners + cycle): {ev:,.0f} events per CPU-s, {sim:,.1f} sim-s per CPU-s "
          f"({cpu:.1f} CPU-s, {wall:.1f} s wall; median of {runs})")
    ew = statistics.median(s["events"] / s["wall_seconds"] for s in full)
    sw = statistics.median(s["sim_seconds"] / s["wall_seconds"] for s in full)
    print(f"  wall clock: {ew:,.0f} events per s, {sw:,.1f} simulated seconds per wall second (the replay's own "
          f"wall time, medians)")
    print(f"  baseline books only (parse + apply):     {b:,.0f} events per CPU-s   full/baseline = {ev / b:.2f}")
    rest = 1 / ev - 1 / b  # CPU-s per event beyond parse + apply: the listeners and the cycle
    bound = f"{1 / rest:,.0f} events per CPU-s" if rest > 0 else "unbounded (the full replay was faster)"
    print(f"  with parse + apply free (the listeners and the cycle alone, 1/(1/full - 1/books)): {bound}")


def bench_pass(root: Path, minutes: float, runs: int, sizes: tuple[int, ...] = (1, 2, 4, 8)) -> None:
    """Points in one replay pass (`Replayer(points=...)`, what a sweep runs): CPU of a pass of K
    points (alternating K, median of `runs`), and what each point beyond the first costs: the
    throughput a sweep gets per extra point, in events of the window per CPU-s."""
    s = load_settings(record_dir=str(root), quote_refresh_sec=3.0)
    w = load_window(root, T0, T0 + minutes * 60)
    alphas = [1.0, 1.5, 2.0, 3.0, 1.25, 1.75, 2.5, 4.0]
    cpu: dict[int, list[float]] = {k: [] for k in sizes}
    events = 0
    for _ in range(runs):
        for k in sizes:
            r = Replayer(s, T0, T0 + minutes * 60, window=w, points=[{"alpha": a} for a in alphas[:k]])
            c0 = time.process_time()
            res = asyncio.run(r.run_all())
            cpu[k].append(time.process_time() - c0)
            events = res[0].summary["events"]
    med = {k: statistics.median(v) for k, v in cpu.items()}
    one = med[sizes[0]]
    print(f"points in one replay pass, {MARKETS} markets x {minutes:g} min ({events:,} events), median of {runs}:")
    for k in sizes:
        extra = (med[k] - one) / (k - 1) if k > 1 else 0.0
        tail = f"; each point beyond the first {extra:.2f} CPU-s = {events / extra:,.0f} events per CPU-s" if k > 1 else ""
        print(f"  {k} point(s): {med[k]:.2f} CPU-s, {med[k] / k:.2f} per point = {one * k / med[k]:.2f}x less CPU than "
              f"{k} replays{tail}  runs {[round(x, 2) for x in cpu[k]]}")


def window_memory(root: Path, minutes: float, replay: bool = False) -> None:
    """--window-memory: in this fresh process, read the window (and with `replay`, replay it);
    print a JSON line with the load CPU, the RSS after the read, the peak RSS, the payload bytes,
    whether the payloads stayed in the files (`LazyPayloads`). PMM_BENCH_EAGER=1: read them all."""
    import resource

    from pmm_widgets.research import recordings

    if os.environ.get("PMM_BENCH_EAGER") == "1" and hasattr(recordings, "EAGER_PAYLOAD_BYTES"):
        recordings.EAGER_PAYLOAD_BYTES = 1 << 62

    def rss_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("VmRSS")) / 1024

    r0, c0 = rss_mb(), time.process_time()
    w = load_window(root, T0, T0 + minutes * 60)
    out: dict[str, Any] = {"rows": len(w), "cpu_seconds": time.process_time() - c0, "rss_before_mb": r0,
                           "rss_after_mb": rss_mb(), "lazy": not isinstance(w.payload, list),
                           "tree": str(Path(recordings.__file__).parents[2])}
    if replay:
        s = load_settings(record_dir=str(root), quote_refresh_sec=3.0)
        c1 = time.process_time()
        res = asyncio.run(Replayer(s, T0, T0 + minutes * 60, window=w).run())
        out.update(replay_cpu_seconds=time.process_time() - c1, fills=res.summary["fills"],
                   events=res.summary["events"])
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("MEMORY " + json.dumps(out), flush=True)


def _python() -> str:
    """This interpreter: its version and its executable's real path (a venv's `python` is a link)."""
    return f"Python {platform.python_version()} {os.path.realpath(sys.executable)}"


def _run_fresh(root: Path, minutes: float, tree: Path, flags: list[str], prefix: tuple[str, ...] = (),
               python: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """This script in a fresh process (after `prefix`, e.g. valgrind) running the code of `tree`
    with `python` (None: this interpreter; `flags`: what it does), over the window of `minutes`."""
    return subprocess.run([*prefix, python or sys.executable, str(Path(__file__).resolve()), *flags, "--data", str(root.parent),
                           "--minutes", str(MINUTES_OF[root]), "--window", str(minutes)],
                          env=dict(os.environ, PMM_BENCH_TREE=str(tree), PYTHONPATH=str(tree), **env),
                          capture_output=True, text=True, check=True)


def _tagged(stdout: str, tag: str) -> dict[str, Any]:
    """The JSON of a fresh process's output line starting with `tag`."""
    return dict(json.loads(next(x for x in stdout.splitlines() if x.startswith(tag)).removeprefix(tag)))


def _fresh(root: Path, minutes: float, tree: Path, tag: str, flags: list[str], python: str | None = None,
           **env: str) -> dict[str, Any]:
    return _tagged(_run_fresh(root, minutes, tree, flags, python=python, **env).stdout, tag)


def _memory_run(root: Path, minutes: float, tree: Path, replay: bool = False, eager: bool = False) -> dict[str, Any]:
    return _fresh(root, minutes, tree, "MEMORY ", ["--window-memory"] + (["--memory-replay"] if replay else []),
                  PMM_BENCH_EAGER="1" if eager else "0")


def bench_window_memory(root: Path, minutes: float, runs: int, other: Path | None) -> None:
    """The window's footprint: RSS of a fresh process after `load_window`, and its peak (this tree,
    and --compare's tree before it, alternating; median of `runs`)."""
    trees = ([("before", other)] if other else []) + [("after", ROOT)]
    got: dict[str, list[dict[str, Any]]] = {k: [] for k, _ in trees}
    for _ in range(runs):
        for label, tree in trees:
            got[label].append(_memory_run(root, minutes, tree))
    for label, rows in got.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("cpu_seconds", "rss_before_mb", "rss_after_mb", "peak_mb")}
        print(f"window of {minutes:g} min ({rows[0]['rows']:,} rows), {label} ({rows[0]['tree']}): RSS "
              f"{med['rss_before_mb']:.0f} -> {med['rss_after_mb']:.0f} MB after the read, peak {med['peak_mb']:.0f} MB, "
              f"{med['cpu_seconds']:.1f} CPU-s (median of {runs})")


def bench_long_window(root: Path, minutes: float) -> None:
    """A window of several hours read and replayed in a fresh process: its payloads all in memory
    (forced) against kept in the files (`LazyPayloads`, the default beyond 1 GiB): RSS after the
    read, peak RSS over the whole replay, CPU, and the same fills."""
    for label, eager in (("all payloads in memory", True), ("payloads in the files", False)):
        r = _memory_run(root, minutes, ROOT, replay=True, eager=eager)
        print(f"long window {minutes:g} min, {label} (lazy={r['lazy']}): {r['rows']:,} rows, read {r['cpu_seconds']:.1f} "
              f"CPU-s, RSS {r['rss_after_mb']:.0f} MB after the read, peak {r['peak_mb']:.0f} MB over the replay; "
              f"replay {r['replay_cpu_seconds']:.1f} CPU-s, {r['events'] / r['replay_cpu_seconds']:,.0f} events per "
              f"CPU-s, {r['fills']} fills")


def ir_worker(root: Path, minutes: float, run: bool) -> None:
    """--ir-worker (under valgrind): what `worker` does, and with `run` False everything but the
    replay itself (imports, settings, a 10-second warm-up replay, the window, the Replayer), so that
    the difference of the two processes' instruction counts is the replay's."""
    s = load_settings(record_dir=str(root), quote_refresh_sec=3.0)
    asyncio.run(Replayer(s, T0, T0 + 10, window=load_window(root, T0, T0 + 10)).run())  # both: what a replay
    # imports on first use (strategies, economics) is compiled here, not counted as the replay's
    w = load_window(root, T0, T0 + minutes * 60)
    r = Replayer(s, T0, T0 + minutes * 60, window=w)
    out: dict[str, Any] = {}
    if run:
        res = asyncio.run(r.run())
        out = {"events": res.summary["events"], "fills": res.summary["fills"],
               "orders_hash": rows_hash(res.orders, res.run_id), "trades_hash": rows_hash(res.trades, res.run_id)}
    print("IR " + json.dumps(out), flush=True)


def _instructions(root: Path, minutes: float, tree: Path, run: bool) -> dict[str, Any]:
    """One `ir_worker` process of `tree` under callgrind: its JSON line and the instructions it ran
    (callgrind's "Collected" total). The string hash seed is fixed (PYTHONHASHSEED=0): with a random
    one, runs of one tree moved ±1 % (dict and set layouts differ run to run), more than a change of
    a few tenths of a percent; fixed, one tree repeated within 0.05 %, and two checkouts of the same
    code at different paths read 0.2 % apart (their path strings hash differently): below ≈ 0.3 % a
    change is not measured. One seed is one layout: a change that only moves collisions could read
    differently under another."""
    with tempfile.TemporaryDirectory() as pyc:  # every tree compiles its modules alike (no .pyc of earlier runs)
        p = _run_fresh(root, minutes, tree, ["--ir-worker"] + ([] if run else ["--ir-load-only"]),
                       ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
                       PYTHONPYCACHEPREFIX=pyc, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
    m = re.search(r"Collected : (\d+)", p.stderr)
    if m is None:
        raise RuntimeError(f"valgrind printed no instruction count: {p.stderr[-300:]}")
    out = _tagged(p.stdout, "IR ")
    out["instructions"] = int(m.group(1))
    return out


def bench_instructions(root: Path, minutes: float, other: Path | None) -> None:
    """Instructions per market event of one replay (this tree, and --compare's), counted by
    valgrind's callgrind: the replay process minus the same process stopped before the replay.
    Why: on this shared 2-vCPU host CPU time drifts ±15 % within minutes, so a 5 % change cannot be
    told from noise by timing; an instruction count varies by ≈ 0.5 % at most (it does not see
    cache misses or the CPU's speed, so it ranks code, it does not predict seconds)."""
    if shutil.which("valgrind") is None:
        print("instructions: valgrind is not installed (Debian: apt-get install valgrind); skipped")
        return
    trees = ([("before", other)] if other else []) + [("after", ROOT)]
    per: dict[str, float] = {}
    for label, tree in trees:
        done = _instructions(root, minutes, tree, True)
        base = _instructions(root, minutes, tree, False)
        replay = done["instructions"] - base["instructions"]
        per[label] = replay / done["events"]
        print(f"instructions {label} ({tree}): {minutes:g} min, {done['events']:,} events: replay "
              f"{replay / 1e9:.3f} G instructions = {per[label]:,.0f} per event (process {done['instructions'] / 1e9:.3f} G, "
              f"without the replay {base['instructions'] / 1e9:.3f} G); fills {done['fills']}, orders {done['orders_hash']}, "
              f"trades {done['trades_hash']}")
    if other:
        print(f"  instructions per event after/before = {per['after'] / per['before']:.3f}")


def bench_phases(root: Path, minutes: float, runs: int) -> None:
    """Where one replay's CPU goes (median of `runs`, in this process): the quote cycles
    (`ReplayPoint.run_cycle`: the cycle, the paper exchange's poll and orders), the book listeners
    (`MarketData._on_books`: a note of each touched book per frame for the paper exchange), the
    trade listeners (`MarketData._on_trade`), and the rest (the window's loop, frame decoding, the
    stream's parser and the books). It prints the ceiling the cycles alone set (the events per CPU-s
    if everything else cost nothing) and the cycle time the 200,000-events-per-CPU-s goal leaves."""
    from pmm_widgets.research.replayer import ReplayPoint
    from pmm_widgets.venue.market_data import MarketData

    pt = time.process_time
    acc: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str, is_async: bool = False) -> Any:
        fn = getattr(owner, name)
        if is_async:
            async def a(*args: Any, **kw: Any) -> Any:
                t = pt()
                try:
                    return await fn(*args, **kw)
                finally:
                    acc[label] = acc.get(label, 0.0) + pt() - t
            setattr(owner, name, a)
        else:
            def f(*args: Any, **kw: Any) -> Any:
                t = pt()
                try:
                    return fn(*args, **kw)
                finally:
                    acc[label] = acc.get(label, 0.0) + pt() - t
            setattr(owner, name, f)
        return fn

    saved = [(ReplayPoint, "run_cycle", timed(ReplayPoint, "run_cycle", "quote cycles", True)),
             (MarketData, "_on_books", timed(MarketData, "_on_books", "book listeners")),
             (MarketData, "_on_trade", timed(MarketData, "_on_trade", "trade listeners"))]
    got: list[dict[str, float]] = []
    try:
        for _ in range(runs):
            acc.clear()
            s = full_replay(root, minutes)
            got.append({**acc, "cpu": s["cpu_seconds"], "events": s["events"], "cycles": s["cycles"]})
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
    med = {k: statistics.median(g.get(k, 0.0) for g in got) for k in got[0]}
    cpu, ev, cy = med["cpu"], med["events"], med["cycles"]
    rest = cpu - sum(v for k, v in med.items() if k not in ("cpu", "events", "cycles"))
    print(f"phases of one replay, {MARKETS} markets x {minutes:g} min ({ev:,.0f} events, {cy:.0f} cycles), "
          f"median of {runs}: {cpu:.2f} CPU-s = {ev / cpu:,.0f} events per CPU-s")
    for k in ("quote cycles", "book listeners", "trade listeners"):
        extra = f" = {1000 * med[k] / cy:.1f} ms per cycle" if k == "quote cycles" else ""
        print(f"  {k}: {med[k]:.2f} CPU-s ({med[k] / cpu:.1%}){extra}")
    print(f"  the rest (window loop, frame decoding, parser, books): {rest:.2f} CPU-s ({rest / cpu:.1%})")
    print(f"  ceiling set by the cycles alone: {ev / med['quote cycles']:,.0f} events per CPU-s; 200,000 events per CPU-s "
          f"leaves {1000 * ev / 200_000 / cy:.2f} ms per cycle for everything")


def _cpu_self_children() -> tuple[float, float]:
    import resource

    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, c.ru_utime + c.ru_stime


SWEEP_GRIDS = {  # --sweep-points: 4, the bench's grid since the first pass; 8, the example
    4: {"alpha": [1.0, 2.0], "paper_spread_k": [50.0, 100.0]},  # (`--grid alpha=1,1.5,2,3 --grid paper_spread_k=50,100`)
    8: {"alpha": [1.0, 1.5, 2.0, 3.0], "paper_spread_k": [50.0, 100.0]},
}


def bench_sweep(root: Path, minutes: float, runs: int = 1, points: int = 4) -> None:
    """1 process vs 2 (alternating, median of `runs`): wall clock, and CPU seconds (this process and
    the joblib workers, reaped after each sweep) for a figure the machine's load does not decide:
    1-process CPU / (2-process CPU / 2), the speed-up two idle cores would give if the work split
    evenly. First with one replay per point (`per_pass=1`: the issue's 2-vs-1 figure, the parallel
    path alone), two ways to run 2 processes: workers forked from this process (what a CLI or script
    gets: `sweeps._forked_rows`) and joblib's loky workers started cold (what a notebook kernel gets
    at its first sweep: this process replays too, beside one worker). Then the default, points
    sharing replay passes (the books rebuilt once per pass): 1 process (one pass of 4 points) and
    2 forked (a pass of 2 each), against the 1-process sweep of one replay per point."""
    import inspect

    from joblib.externals.loky import get_reusable_executor

    from pmm_widgets.research.sweeps import sweep

    s = load_settings(record_dir=str(root), quote_refresh_sec=3.0, db_url=f"sqlite:///{root / 'sweep.db'}")
    grid = SWEEP_GRIDS[points]
    params = inspect.signature(sweep).parameters
    base = "1 process, a replay per point"
    ways: list[tuple[str, int, str, int | None]] = [
        (base, 1, "auto", 1), ("2 forked, a replay per point", 2, "fork", 1), ("2 loky, a replay per point", 2, "loky", 1),
        ("1 process, shared passes", 1, "auto", None), ("2 forked, shared passes", 2, "fork", None)]
    if "per_pass" not in params:  # a --compare tree of before the shared passes: one replay per point
        ways = [(n, j, st, None) for n, j, st, pp in ways if pp == 1]
    if "start" not in params:  # ... and of before the fork path: its 2-process sweep is its default
        ways = [(base, 1, "", None), ("2 processes, a replay per point", 2, "", None)]
    got: dict[str, list[tuple[float, float, float, float]]] = {w[0]: [] for w in ways}  # wall, parent CPU, workers' CPU, load
    for _ in range(runs):
        for name, jobs, start, per_pass in ways:
            load = os.getloadavg()[0]
            c0, k0 = _cpu_self_children()
            t = time.perf_counter()
            kw: dict[str, Any] = {"start": start} if start else {}
            if per_pass is not None:
                kw["per_pass"] = per_pass
            df = sweep(T0, T0 + minutes * 60, grid, settings=s, n_jobs=jobs, parquet=root / f"sweep{jobs}.parquet", **kw)
            wall = time.perf_counter() - t
            get_reusable_executor().shutdown(wait=True)  # reap the workers: their CPU counts as children's
            c1, k1 = _cpu_self_children()
            got[name].append((wall, c1 - c0, k1 - k0, load))
            assert len(df) == points
    med = {j: [statistics.median(r[k] for r in got[j]) for k in range(4)] for j in got}
    w1, p1, k1, l1 = med[base]
    print(f"sweep {points} points x {minutes:g} min, median of {runs}: {base} {w1:.1f} s wall, CPU {p1 + k1:.1f} s "
          f"(os.cpu_count()={os.cpu_count()}, load {l1:.1f} at its starts)  runs {[round(r[0], 1) for r in got[base]]}")
    for name, jobs, _, _ in ways[1:]:
        w2, p2, k2, l2 = med[name]
        cpu_based = jobs * (p1 + k1) / (p2 + k2)
        print(f"  {name}: {w2:.1f} s wall -> speed-up {w1 / w2:.2f}x; CPU parent {p2:.1f} s + workers {k2:.1f} s = "
              f"{p2 + k2:.1f} s ({(p2 + k2) / (p1 + k1) - 1:+.1%}) -> CPU-based speed-up {cpu_based:.2f}x "
              f"(load {l2:.1f})  runs {[round(r[0], 1) for r in got[name]]}")
    if "2 forked, shared passes" in med:
        one, two = med["1 process, shared passes"][0], med["2 forked, shared passes"][0]
        print(f"  shared passes, 2 forked vs 1 process: {one / two:.2f}x (each process rebuilds the books once); "
              f"vs 2 forked with a replay per point: {med['2 forked, a replay per point'][0] / two:.2f}x")


def bench_warmup(data: Path, at: float, minutes: float, runs: int) -> None:
    """A window of `minutes` starting `at` minutes into the hour, on a recording with the engine's
    checkpoints (every 300 s): the full warm-up from the hour's start vs the replay starting from
    the last checkpoint before the window (`Replayer(resume=...)`), alternating, median of `runs`
    CPU-s; the orders and trades of both must be identical."""
    root = recording(data, 60, checkpoint_sec=300)
    s = load_settings(record_dir=str(root), quote_refresh_sec=3.0)
    a, b = T0 + at * 60, T0 + (at + minutes) * 60
    got: dict[bool, list[tuple[float, Any]]] = {False: [], True: []}
    for _ in range(runs):
        for resume in (False, True):
            w = load_window(root, a, b)
            c0 = time.process_time()
            res = asyncio.run(Replayer(s, a, b, window=w, resume=resume).run())
            got[resume].append((time.process_time() - c0, res))
    cpu = {k: statistics.median(c for c, _ in v) for k, v in got.items()}
    full, fast = got[False][0][1], got[True][0][1]
    same = all((r.orders, r.trades) == (full.orders, full.trades) for v in got.values() for _, r in v)
    print(f"warm-up: {minutes:g} min of {MARKETS} markets from minute {at:g} of the hour, median of {runs}:")
    print(f"  full warm-up from the hour's start: {cpu[False]:.2f} CPU-s ({full.summary['events']:,} events)")
    print(f"  from the checkpoint of {fast.summary['resumed_from']}: {cpu[True]:.2f} CPU-s "
          f"({fast.summary['events']:,} events) -> {cpu[False] / cpu[True]:.1f}x less CPU; "
          f"orders and trades identical in every run: {same} ({len(full.orders)} orders, {len(full.trades)} fills)")


def bench_worker_start(root: Path, minutes: float, runs: int) -> None:
    """The fixed cost a sweep pays before a second process replays: a cold loky worker (spawn,
    imports, the window's pickle) against two workers forked from this process (which holds the
    window), until each holds the window; worker CPU from RUSAGE_CHILDREN after the reap."""
    from joblib.externals.loky import get_reusable_executor

    from pmm_widgets.research import points

    w = load_window(root, T0, T0 + minutes * 60)

    def kids() -> float:
        return _cpu_self_children()[1]

    def loky_once() -> tuple[float, float]:
        k0, t = kids(), time.perf_counter()
        ex = get_reusable_executor(max_workers=1)
        ex.submit(points.warm_up).result()
        path = points.dump_window(w)
        ex.submit(_holds, str(path)).result()  # (its length back, not the window)
        wall = time.perf_counter() - t
        ex.shutdown(wait=True)
        shutil.rmtree(path.parent, ignore_errors=True)
        return wall, kids() - k0

    def fork_once() -> tuple[float, float]:
        k0, t = kids(), time.perf_counter()
        key = points.inherit(w)
        try:  # as the sweep forks its workers (`sweeps._forked_rows`)
            ctx = multiprocessing.get_context("fork")
            procs = [ctx.Process(target=_holds, args=(key,)) for _ in range(2)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        finally:
            points.forget(key)
        return time.perf_counter() - t, kids() - k0

    for name, fn in (("1 loky worker (cold)", loky_once), ("2 forked workers", fork_once)):
        r = [fn() for _ in range(runs)]
        print(f"worker start, {name}: {statistics.median(x[0] for x in r):.3f} s wall until it holds the "
              f"{minutes:g}-min window, {statistics.median(x[1] for x in r):.3f} CPU-s (median of {runs})")


def _holds(key: str) -> int:
    """In a worker: the window of `key` (a `dump_window` path, or an `inherit` key), held."""
    from pmm_widgets.research import points

    return len(points.window_from_file(key))


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ROTATE_SEC = "60"  # PMM_RECORD_ROTATE_SEC of the recording runs (--rotate-sec)


def engine_cpu(urls: dict[str, str], record: str, seconds: float, rec_dir: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update(urls)
    env.update({"PMM_UNIVERSE_SIZE": str(MARKETS), "PMM_RECORD": record, "PMM_RECORD_DIR": str(rec_dir),
                "PMM_DB_URL": f"sqlite:///{rec_dir.parent / ('e-' + record + '.db')}", "PMM_QUOTE_REFRESH_SEC": "1",
                "PMM_RECORD_ROTATE_SEC": ROTATE_SEC, "PYTHONUNBUFFERED": "1"})
    p = subprocess.Popen([sys.executable, "-m", "pmm_widgets.cli", "run", "paper", "--max-seconds", str(seconds + 20)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout is not None
        for line in p.stdout:  # wait for quoting to start, then 5 s of warm-up
            if "tick " in line:
                break
        time.sleep(5)
        c0, t0 = _cpu(p.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu(p.pid), time.monotonic()
        return (c1 - c0) / (t1 - t0), t1 - t0
    finally:
        p.terminate()
        p.wait(60)


def bench_recording(seconds: float, runs: int, tmp: Path) -> None:
    sb = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "60", "--seed", "7"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert sb.stdout is not None
        urls = dict(line.strip().removeprefix("export ").split("=", 1) for line in (sb.stdout.readline() for _ in range(3)))
        on, off, sizes = [], [], []
        for i in range(runs):
            d = tmp / f"rec{i}"
            c_off, _ = engine_cpu(urls, "off", seconds, tmp / f"off{i}")
            c_on, _ = engine_cpu(urls, "on", seconds, d)
            off.append(c_off)
            on.append(c_on)
            total = sum(f.stat().st_size for f in d.rglob("*.parquet"))
            sizes.append(total)
        m_on, m_off = statistics.median(on), statistics.median(off)
        # bytes: the whole on-run (start-up snapshots included) scaled to an hour
        run_sec = seconds + 25
        per_hour_market = statistics.median(sizes) / run_sec * 3600 / MARKETS
        print(f"recording overhead, pmm run paper, {MARKETS} markets, sandbox speed 1, {seconds:g} s windows, "
              f"PMM_RECORD_ROTATE_SEC={ROTATE_SEC}, "
              f"median of {runs}: CPU {m_off:.3f} s/s off, {m_on:.3f} s/s on, +{(m_on / m_off - 1) * 100:.1f} %")
        print(f"  runs off {[round(x, 3) for x in off]} on {[round(x, 3) for x in on]}")
        print(f"  recording size ~{per_hour_market / 1e6:.2f} MB per hour per market (sandbox flow; "
              f"{statistics.median(sizes) / 1e6:.1f} MB in ~{run_sec:.0f} s)")
    finally:
        sb.terminate()
        sb.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0, help="simulated minutes of the replay recording")
    ap.add_argument("--window", type=float, default=None, help="replay only the first WINDOW minutes (default: all)")
    ap.add_argument("--sweep-minutes", type=float, default=5.0)
    ap.add_argument("--sweep-points", type=int, default=4, choices=sorted(SWEEP_GRIDS),
                    help="the sweep's grid: 4 points (alpha 1,2 x paper_spread_k 50,100) or 8 (the issue's example: "
                         "alpha 1,1.5,2,3 x paper_spread_k 50,100)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--engine-seconds", type=float, default=40.0)
    ap.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "pmm-bench-replay"))
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--only-engine", action="store_true")
    ap.add_argument("--rotate-sec", default="60", help="PMM_RECORD_ROTATE_SEC of the recording-overhead runs")
    ap.add_argument("--compare", default=None, metavar="DIR",
                    help="also replay with the source tree DIR (before/after in the same run, alternating processes)")
    ap.add_argument("--compare-python", default=None, metavar="PYTHON",
                    help="also replay this tree (or --compare's) with the interpreter PYTHON (e.g. another venv's python), "
                         "alternating processes with this one")
    ap.add_argument("--skip-replay", action="store_true", help="no full-replay/books-only runs of this tree alone")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--window-memory", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--memory-replay", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--instructions", action="store_true",
                    help="only: instructions per event of one replay under valgrind's callgrind (and --compare's tree)")
    ap.add_argument("--ir-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ir-load-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--phases", action="store_true",
                    help="only: where one replay's CPU goes (cycles, book/trade listeners, the rest), median of --runs")
    ap.add_argument("--long-window", type=float, default=None, metavar="MINUTES",
                    help="only: read and replay a recording of MINUTES (generated once), payloads in memory vs in the files")
    ap.add_argument("--warmup", type=float, default=None, metavar="MINUTE",
                    help="only: a --window (default 5) minute replay starting at MINUTE of the hour, full warm-up vs "
                         "from the last checkpoint (a recording with the engine's checkpoints, generated once)")
    a = ap.parse_args()
    global ROTATE_SEC
    ROTATE_SEC = a.rotate_sec
    data = Path(a.data)
    data.mkdir(parents=True, exist_ok=True)
    if a.worker:
        worker(recording(data, a.minutes), a.window or a.minutes)
        return
    if a.window_memory:
        window_memory(recording(data, a.minutes), a.window or a.minutes, a.memory_replay)
        return
    if a.ir_worker:
        ir_worker(recording(data, a.minutes), a.window or a.minutes, not a.ir_load_only)
        return
    if a.instructions:
        bench_instructions(recording(data, a.minutes), a.window or a.minutes,
                           Path(a.compare).resolve() if a.compare else None)
        return
    if a.phases:
        bench_phases(recording(data, a.minutes), a.window or a.minutes, a.runs)
        return
    if a.long_window:
        bench_long_window(recording(data, a.long_window), a.long_window)
        return
    if a.warmup is not None:
        bench_warmup(data, a.warmup, a.window or 5.0, a.runs)
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {_python()}")
    if not a.only_engine:
        root = recording(data, a.minutes)
        if a.compare or a.compare_python:
            compare(root, a.window or a.minutes, a.runs, Path(a.compare).resolve() if a.compare else None, a.compare_python)
        if not a.skip_replay:
            bench_window_memory(root, a.window or a.minutes, a.runs, Path(a.compare).resolve() if a.compare else None)
            bench_replay(root, a.window or a.minutes, a.runs)
            bench_pass(root, a.window or a.minutes, a.runs)
        if not a.skip_sweep:
            bench_sweep(root, a.sweep_minutes, a.runs, a.sweep_points)
            bench_worker_start(root, a.sweep_minutes, max(a.runs, 3))
    if not a.skip_engine:
        with tempfile.TemporaryDirectory() as tmp:
            bench_recording(a.engine_seconds, a.runs, Path(tmp))


if __name__ == "__main__":
    main()
