"""Parameter sweeps: deterministic replays of one window for every grid point, in parallel.

Why points share replay passes: what a point's parameters change (quotes, fills, PnL) sits on top
of books the parameters cannot change, and rebuilding them (decode, validate, apply every frame)
was most of a replay's time. So points that change the same settings run together in one pass
over the window (`Replayer(points=...)`, `research.points.run_pass`): the books once, then each
point's own paper exchange and cycle; a point's rows are those of a replay of it alone. By default
there are as many passes as worker processes, of at most 8 points each (`passes_of`; `per_pass=1` is
one replay per point).

Why each pass is a plain function of picklable inputs (settings as a dict, the window, the
points' values): the same `run_pass` runs in a joblib worker process (default, nothing beyond the
base install), in a Ray task on a cluster (`ray_address`, or `ray.init()` already called; the
recordings must be on a path every worker sees), or inline. The replay is deterministic, so the
backend cannot change a row: joblib and Ray give the same numbers. The window is read once: Ray
gets one object-store copy; the local workers are forked from this process after it read the
window (they inherit it, and every module and cache, at no cost) when that is safe, else they are
joblib's reusable loky workers and get one pickle file each reads once (see `_joblib_rows`,
`_forked_rows` and `_loky_rows` for what keeps the parallel path cheap).

Why a Ctrl-C is a stop flag and not an exception in every process: a pass a worker is running
holds rows worth keeping (its points' partial results, as a replay stopped by Ctrl-C keeps its
own), and a pool that kills its workers on KeyboardInterrupt loses them. So on the local paths the
sweep process takes the Ctrl-C (`_ctrl_c`; the workers ignore it), tells every running pass to stop
(`_Stop`: a flag its own replays poll, a file the workers' replays poll), and collects what each
pass replayed, within a bounded wait, before the workers are ended. A Ray sweep does the same with
a tiny Ray actor as the flag (its tasks may run on other machines: `_ray_rows`).

Results: a pandas DataFrame (one row per point: the point's values, fills, fills/min, every PnL
component the cycle reports, markouts, max inventory, a reward estimate when the PnL has one),
also written to the `sweep_results` table and a Parquet file.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import math
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import wait as futures_wait
from decimal import Decimal, InvalidOperation
from multiprocessing.connection import wait as mp_wait
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from ..config import ConfigError, Params, Settings, format_validation_error
from ..logsetup import SECRET_FIELDS
from .points import (
    StopFlag,
    dump_window,
    figure_column,
    forget,
    inherit,
    interrupted,
    report_rows,
    run_pass,
    run_pass_in_worker,
    run_pass_on_ray,
    warm_up,
)
from .points import (
    SweepError as SweepError,  # (its home is points: a Ray task raises it too)
)
from .recordings import Window, load_window, parse_time
from .replayer import check_db_url, check_seed, selection, split_overrides

log = logging.getLogger(__name__)

# figures that depend on the machine, not on the inputs (left out when comparing backends)
TIMING_COLUMNS = ("wall_seconds", "events_per_sec", "sim_seconds_per_wall_second")
_FIXED = ("fills", "fills_per_min", "pnl_total", "realized", "unrealized", "spread_pnl", "inventory_pnl",
          "fees", "rebates", "rewards", "settlement",
          "markout_5s_usd", "markout_30s_usd", "markout_120s_usd", "max_inventory_usd", "reward_estimate")


# settings a grid cannot vary: where the rows go is the sweep's own (`db_url`); a grid of it changed no
# replay, and its values (a password in the URL) were printed and stored in every row's grid columns
UNSWEPT = {"db_url": "where the sweep's rows go, not a parameter of its replays (give --db-url / db_url=)"}


def _unsweepable(name: str) -> str | None:
    """Why a setting cannot be a grid's (a secret, or one of `UNSWEPT`), or None."""
    return "secrets cannot be swept" if name in SECRET_FIELDS else UNSWEPT.get(name)


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """`["alpha=1,1.5", "paper_spread_k=50,100"]` → `{"alpha": ["1", "1.5"], ...}`; names are
    strategy parameters or settings (validated when the points are built)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().lower().removeprefix("pmm_")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not name or not vals:
            raise ValueError(f"{item!r}: expected NAME=V1,V2,...")
        if name not in Settings.model_fields:  # the live parameters are settings too
            raise ValueError(f"{name}: not a parameter or setting")
        why = _unsweepable(name)
        if why is not None:
            raise ValueError(f"{name}: {why}")
        if name in grid:  # a second --grid of the same name used to replace the first silently
            raise ValueError(f"{name}: given twice (its values go in one: {name}=V1,V2,...)")
        _no_repeat(name, vals)
        grid[name] = vals
    return grid


def check_fixed(grid: Mapping[str, Any], fixed: Mapping[str, Any]) -> None:
    """ValueError when a name of the grid also has a fixed value (`--set alpha=5 --grid alpha=1,2`,
    `params=`): the grid's values replaced it silently."""
    both = sorted(set(grid) & {k.strip().lower().removeprefix("pmm_") for k in fixed})
    if both:
        raise ValueError(f"{', '.join(both)}: given a fixed value too (--set / params=); the grid's values are "
                         "the ones swept: give it there only")


def _values(v: Any) -> list[Any]:
    """A grid entry's values: a string or a number is one value (not its characters), anything
    else iterable is its items."""
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        return [v]
    return list(v)


def _value_key(v: Any) -> Any:
    """A grid value as the point it makes: numbers by value (1, 1.0 and 1e0 are one point)."""
    if isinstance(v, bool):
        return v
    try:
        d = Decimal(str(v).strip())
    except (InvalidOperation, ValueError):
        return v
    return d.normalize() if d.is_finite() else str(v)


def _no_repeat(name: str, vals: Sequence[Any]) -> None:
    """The same point twice is a typo, not a wish for two identical replays (they would share a run id)."""
    seen: dict[Any, Any] = {}
    for v in vals:
        key = _value_key(v)
        if key not in seen:
            seen[key] = v
            continue
        first = seen[key]
        same = "" if str(first) == str(v) else f" ({first} and {v} are one value)"
        raise ValueError(f"{name}: value {v} given twice{same}")


def points_of(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(list(grid[n]) for n in names))]


def _settings_dict(settings: Settings) -> dict[str, Any]:
    d = settings.model_dump(mode="json", exclude=set(SECRET_FIELDS) & set(Settings.model_fields))
    return {k: v for k, v in d.items() if v is not None}


def _ray_active(address: str | None) -> Any:
    if address is None:
        # `ray.init()` already called means Ray is imported: no `import ray` (≈ 1.5 CPU-s, every
        # sweep, before any point starts) just to find out that it was not
        mod = sys.modules.get("ray")
        return mod if mod is not None and mod.is_initialized() else None
    try:
        import ray
    except ImportError:
        raise SweepError("--ray needs the optional Ray extra: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        _reachable(address)
        ray.init(address=address, log_to_driver=False)
    return ray


RAY_CONNECT_SEC = 5.0


def _reachable(address: str) -> None:
    """A Ray address that names a host and port (`HOST:PORT`, `ray://HOST:PORT`) must accept a TCP
    connection within `RAY_CONNECT_SEC`: `ray.init` would otherwise retry for minutes, printing its
    own log lines, before failing. SweepError naming the address; other forms ("auto") pass."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_SEC).close()
    except OSError as exc:
        raise SweepError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                           "give the head's address, e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001") from None


def sweep(t0: float | str, t1: float | str, grid: Mapping[str, Sequence[Any]], *, settings: Settings | None = None,
          markets: int | Sequence[str] | None = None, params: Mapping[str, Any] | None = None,
          seed: int | None = None, n_jobs: int = -1, ray_address: str | None = None,
          parquet: str | Path | None = None, db_url: str | None = None, write: bool = True,
          progress: bool = False, start: str = "auto", per_pass: int | None = None) -> pd.DataFrame:
    """Replay [t0, t1] for every point of `grid` (the product of its value lists).

    Points that change the same settings (any parameters may differ) share replay passes: one pass
    rebuilds the window's books once for several points (`Replayer(points=...)`; each point's rows
    are those of a replay of it alone). `per_pass`: the most points one pass runs; None: as many
    passes as worker processes (each runs one, of at most `AUTO_PASS_MAX` points), so a process
    pays for the books once; 1: one replay per point (the books rebuilt for every point).

    `start` (the local path's worker processes): "auto" forks them from this process when that is
    safe (`fork_is_safe`: Linux, no other thread running here, the points share one window), else
    uses joblib's loky workers; "fork" / "loky" ask for one (fork only where the platform has it).
    The DataFrame's `attrs`: sweep_id, backend ("joblib" | "ray"), workers ("inline" | "fork" |
    "loky" | "ray"), passes (the points of each replay pass), grid, parquet, status ("done", or
    "interrupted": a Ctrl-C stopped the sweep, and the rows are those of the points of the passes
    that had ended, and of the passes that were running, each with its partial summary and status
    "interrupted" in its `status` column, as a replay's partial result; points never started have no
    row; written like a whole sweep's, on the local paths and on Ray alike), total (the grid's number
    of points). `progress`: a line on stderr per point as its pass ends (the local workers print
    their own; on Ray this process prints them as the tasks end)."""
    from ..config import load_settings

    if start not in STARTS:
        raise ValueError(f"start: {start!r} is not one of {', '.join(STARTS)}")
    if start == "fork" and "fork" not in multiprocessing.get_all_start_methods():
        raise ValueError("start: this platform cannot fork worker processes")
    if n_jobs == 0:
        raise ValueError("n_jobs: 0 (a number of processes, or -1 for one per core, as joblib reads it)")
    if per_pass is not None and per_pass < 1:
        raise ValueError(f"per_pass: {per_pass} (at least 1 point per replay pass)")

    settings = settings or load_settings()
    a, b = parse_time(t0), parse_time(t1)
    grid = {k.strip().lower().removeprefix("pmm_"): _values(v) for k, v in grid.items()}
    for k in grid:
        if k not in Settings.model_fields:
            raise ValueError(f"grid: {k} is not a parameter or setting")
        why = _unsweepable(k)
        if why is not None:
            raise ValueError(f"grid: {k}: {why}")
        _no_repeat(f"grid: {k}", grid[k])
    pts = points_of(grid)
    if not pts:
        raise ValueError("grid: no points")
    fixed = dict(params or {})
    check_fixed(grid, fixed)
    base_params, base_settings = settings.params().model_dump(), _settings_dict(settings)
    checked: set[str] = set()  # each distinct set of parameters, and of settings, validated once: a
    # Settings is ≈ 8 ms (it reads the environment and .env), and a grid of 100 x 100 parameter values
    # spent 80 s building 10,000 identical ones before anything else (a missing recording) was said
    for pt in pts:  # a bad value fails here, in the caller, before any worker starts: one line naming it
        p_over, s_over = split_overrides({**fixed, **pt})
        kp, ks = (json.dumps(["p", p_over], sort_keys=True, default=str),
                  json.dumps(["s", s_over], sort_keys=True, default=str))
        try:
            if kp not in checked:
                Params.model_validate({**base_params, **p_over})
                checked.add(kp)
            if ks not in checked:
                Settings(**{**base_settings, **s_over})
                checked.add(ks)
        except ValidationError as exc:
            raise ConfigError(f"grid {format_validation_error(exc)}") from None
    sd = _settings_dict(settings)
    sel = selection(markets)  # as a replay reads it (a string is --markets text; [] refused), before any worker
    check_seed(seed)
    if write:  # where the rows go, checked before any point runs (not after all of them)
        _check_outputs(Path(parquet) if parquet else None, Path(settings.record_dir).parent / "sweeps",
                       db_url or settings.db_url)
    started = time.time()
    # every point replays the same events: read them once here (unless a point changes where they are)
    shared = "record_dir" not in grid and "record_dir" not in fixed
    ray = _ray_active(ray_address)
    finished: list[dict[str, Any]] = []  # the rows of the passes ended or stopped, as they end: kept on Ctrl-C
    passes: list[Pass] = []
    backend, workers = ("ray", "ray") if ray is not None else ("joblib", "")

    def results(rows: list[dict[str, Any]]) -> pd.DataFrame:
        df = pd.DataFrame(rows).sort_values("point").reset_index(drop=True) if rows else pd.DataFrame({"point": []})
        sweep_id = "sw" + time.strftime("%Y%m%dT%H%M%S", time.gmtime(started)) + uuid.uuid4().hex[:6]
        df.attrs.update(sweep_id=sweep_id, backend=backend, workers=workers,
                        passes=[[i for i, _ in p] for p in passes], grid={k: list(map(str, v)) for k, v in grid.items()})
        if write and rows:
            out = Path(parquet) if parquet else Path(settings.record_dir).parent / "sweeps" / f"{sweep_id}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            df.assign(sweep_id=sweep_id).to_parquet(out, index=False, compression="zstd")
            df.attrs["parquet"] = str(out)
            _store(db_url or settings.db_url, sweep_id, a, b, list(grid), df)
        return df

    try:
        if ray is not None:
            passes = passes_of(pts, fixed, int(ray.cluster_resources().get("CPU", 1)), per_pass)
            window = load_window(settings.record_dir, a, b) if shared else None
            _ray_rows(ray, sd, a, b, passes, len(pts), fixed, sel, seed, window, progress, finished)
            rows = finished
        else:
            from joblib import effective_n_jobs

            passes = passes_of(pts, fixed, min(effective_n_jobs(n_jobs), len(pts)), per_pass)
            workers = _local_workers(n_jobs, len(passes), start, shared)  # (said by an interrupted sweep too)
            _joblib_rows(settings, sd, a, b, passes, len(pts), fixed, sel, seed, n_jobs, shared, progress, workers,
                         finished)
            rows = finished
    except KeyboardInterrupt:
        # Ctrl-C, as a replay takes it: the points replayed, whole or part-way (their rows' status
        # "interrupted"), are the result (written like a whole sweep's), marked interrupted: every
        # path (local workers, Ray tasks) fills `finished` pass by pass and with the stopped passes' rows
        df = results(list(finished))
        df.attrs.update(status="interrupted", total=len(pts))
        return df
    except Exception:
        # a failing point fails the sweep with its error, but the points replayed before it are kept
        # (written like a whole sweep's): they used to be lost with it, hours of work for one bad point
        if write and finished:
            try:
                kept = results(list(finished))
            except Exception as exc:  # noqa: BLE001 - the point's error is the one to raise
                log.error("sweep: the %d point(s) done before the failure below could not be written: %s",
                          len(finished), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            else:
                log.warning("sweep: %d of %d points done before the failure below: their rows -> sweep_results "
                            "(sweep_id %s), %s", len(kept), len(pts), kept.attrs.get("sweep_id"),
                            kept.attrs.get("parquet"))
        raise
    df = results(rows)
    df.attrs.update(status="done", total=len(pts))
    return df


STARTS = ("auto", "fork", "loky")
Pass = list[tuple[int, dict[str, Any]]]  # the (index, values) of the points one replay pass runs


AUTO_PASS_MAX = 8  # points in one pass unless asked: each holds its orders and trades in memory (≈ 30 MB per
# point-hour at 50 markets), and the gain flattens (bench_pass: 1.9x less CPU at 4, 2.3x at 8)


def passes_of(pts: list[dict[str, Any]], fixed: Mapping[str, Any], workers: int, per_pass: int | None) -> list[Pass]:
    """The grid's points in replay passes: points that change the same settings (one stream, one
    cycle grid per pass) in passes of at most `per_pass` points, near-equal in size; `per_pass`
    None: each group of such points in as many passes as its share of `workers` (at least one),
    and of at most `AUTO_PASS_MAX` points: with one group of a few points, one pass per worker."""
    groups: dict[str, Pass] = {}
    for i, pt in enumerate(pts):
        _, s_over = split_overrides({**fixed, **pt})
        groups.setdefault(json.dumps(s_over, sort_keys=True, default=str), []).append((i, pt))
    out: list[Pass] = []
    for g in groups.values():
        n = math.ceil(len(g) / (per_pass or AUTO_PASS_MAX))
        if not per_pass:
            n = min(len(g), max(n, math.ceil(workers * len(g) / len(pts))))
        out.extend(g[k * len(g) // n:(k + 1) * len(g) // n] for k in range(n))
    return out


def fork_is_safe() -> bool:
    """Whether worker processes may be forked from this one: on Linux, with no other Python thread
    alive (a thread holding a lock at the fork would leave it held for ever in the child; a notebook
    kernel runs several, a CLI or script none) and not inside a daemon process (a pool's worker).
    Native pools do run threads here (numpy's OpenBLAS, and Arrow's after `load_window`): both
    re-create them after a fork (their at-fork handlers) and the forked workers use neither (they
    replay the inherited window: no Parquet read, no BLAS). Python 3.12+ warns about any fork of a
    process with native threads (DeprecationWarning); this project runs on 3.11."""
    return (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1 and not multiprocessing.current_process().daemon)


STOP_WAIT_SEC = 10.0  # after a Ctrl-C: how long the workers get to hand back the passes they were running
# (each sees the stop within `points.STOP_POLL_SEC` and one cycle; a second Ctrl-C ends the wait), then ended


class _Stop:
    """A sweep's Ctrl-C on the local paths. Set by `_ctrl_c`'s handler (or by the sweep when it
    learns of the interrupt otherwise); this process's own replays poll it as their `stop`, the
    workers poll its file (`path`, created when it is set: `points.StopFile`). `in_pass`: this
    process is replaying a pass, which the first Ctrl-C stops at its next check (the pass keeps its
    partial rows) instead of raising KeyboardInterrupt wherever the replay was."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.is_set = False
        self.in_pass = False

    def __call__(self) -> bool:
        return self.is_set

    def set(self) -> None:
        if not self.is_set:
            self.is_set = True
            if self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.touch()

    def run(self, sd: dict[str, Any], a: float, b: float, items: Pass, fixed: dict[str, Any], sel: Any,
            seed: int | None, window: Window | None, report: int | None) -> list[dict[str, Any]]:
        """`run_pass` in this process, stopped by this stop."""
        self.in_pass = True
        try:
            return run_pass(sd, a, b, items, fixed, sel, seed, window, report, self)
        finally:
            self.in_pass = False


@contextlib.contextmanager
def _ctrl_c(stop: _Stop) -> Iterator[None]:
    """SIGINT sets `stop` while the sweep runs here (in the main thread, when the handler is
    Python's default): a pass this process replays ends at its next check with its partial rows;
    anywhere else (waiting for workers, between passes), and at a second Ctrl-C, KeyboardInterrupt
    as usual. (A replay under `asyncio.run` would take the Ctrl-C as a cancel, seen only every
    1024 events, and lost near its end.)"""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        first = not stop.is_set
        stop.set()
        if not (first and stop.in_pass):
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _local_workers(n_jobs: int, n_passes: int, start: str, shared: bool) -> str:
    """How the local path runs `n_passes` passes: "inline" (one job, or one pass), "fork", "loky"."""
    from joblib import effective_n_jobs

    if min(effective_n_jobs(n_jobs), n_passes) <= 1:
        return "inline"
    return "fork" if start == "fork" or (start == "auto" and shared and fork_is_safe()) else "loky"


def _joblib_rows(settings: Settings, sd: dict[str, Any], a: float, b: float, passes: list[Pass], total: int,
                 fixed: dict[str, Any], sel: Any, seed: int | None, n_jobs: int, shared: bool,
                 progress: bool, how: str, got: list[dict[str, Any]]) -> None:
    """The replay passes on `n_jobs` processes (as joblib reads it), run as `how` says
    (`_local_workers`): "inline", in this process alone (one job asked, or one pass); "fork",
    forked workers (`_forked_rows`); "loky", this process and `n_jobs - 1` of joblib's reusable
    loky workers (`_loky_rows`). Each pass's rows go to `got` as it ends, in that order.

    Ctrl-C (`_ctrl_c`): KeyboardInterrupt, after `got` received the rows of the passes that ended
    and the partial rows (status "interrupted") of those that were running, here or in a worker:
    each running pass is told to stop (`_Stop`), and the workers get `STOP_WAIT_SEC` to hand back
    what they replayed; passes never started give no rows. The workers are ended either way."""
    from joblib import effective_n_jobs

    report = total if progress else None
    jobs = min(effective_n_jobs(n_jobs), len(passes))
    stop = _Stop()
    with _ctrl_c(stop):
        if how == "loky":
            _loky_rows(settings, sd, a, b, passes, total, fixed, sel, seed, jobs, shared, progress, stop, got)
            return
        # the window before anything runs (a forked worker inherits it)
        window = load_window(settings.record_dir, a, b) if shared else None
        if how == "fork":
            _forked_rows(sd, a, b, passes, fixed, sel, seed, jobs, window, report, stop, got)
            return
        for items in passes:
            rows = stop.run(sd, a, b, items, fixed, sel, seed, window, report)
            got.extend(rows)
            if stop() or interrupted(rows):  # (a KeyboardInterrupt the replay took: a test's, no handler of ours)
                raise KeyboardInterrupt


def _loky_rows(settings: Settings, sd: dict[str, Any], a: float, b: float, passes: list[Pass], total: int,
               fixed: dict[str, Any], sel: Any, seed: int | None, jobs: int, shared: bool, progress: bool,
               stop: _Stop, got: list[dict[str, Any]]) -> None:
    """This process and `jobs - 1` of joblib's reusable loky workers. Cheap per pass by design (a
    sweep's passes are seconds each, its fixed costs decide the speed-up): this process does not
    wait idle but replays passes itself from the end of the list, with the window it already
    holds, while the workers take them from the front one at a time (so they end together); the
    workers start (and import the replay's code) while this process reads the window, which
    reaches them as one pickle file each worker reads once and keeps for its next passes; they stay
    up for the next sweep (loky's idle timeout ends them). On Ctrl-C the workers' running passes
    are stopped through the stop file and their partial rows collected (`STOP_WAIT_SEC` at most,
    then the workers are killed)."""
    from joblib.externals.loky import get_reusable_executor

    ex = get_reusable_executor(max_workers=jobs - 1)
    warm = [ex.submit(warm_up) for _ in range(jobs - 1)]
    work = Path(tempfile.mkdtemp(prefix="pmm-sweep-"))
    stop.path = work / "stop"
    flag = str(stop.path)
    path: Path | None = None
    todo = deque(range(len(passes)))
    lock = threading.Lock()
    errors: list[BaseException] = []
    inflight: dict[Any, int] = {}
    fed = threading.Event()

    def take(front: bool) -> int | None:
        with lock:
            if errors or not todo or stop():
                return None
            return todo.popleft() if front else todo.pop()

    def done(k: int, rows: list[dict[str, Any]]) -> None:
        with lock:
            got.extend(rows)
        if interrupted(rows):  # (a worker's pass stopped: the sweep stops)
            stop.set()
        if progress:
            report_rows(rows, total)

    try:
        window = load_window(settings.record_dir, a, b) if shared else None
        path = dump_window(window) if window is not None else None
        arg = None if path is None else str(path)

        def feed() -> None:
            """The workers' side: one pass in flight per worker, the next from the front."""
            try:
                for f in warm:
                    f.result()
                for _ in range(jobs - 1):
                    k = take(True)
                    if k is not None:
                        inflight[ex.submit(run_pass_in_worker, flag, sd, a, b, passes[k], fixed, sel, seed, arg)] = k
                while inflight:
                    finished, _ = futures_wait(list(inflight), return_when=FIRST_COMPLETED)
                    for f in finished:
                        k = inflight.pop(f)
                        done(k, f.result())
                        nxt = take(True)
                        if nxt is not None:
                            inflight[ex.submit(run_pass_in_worker, flag, sd, a, b, passes[nxt], fixed, sel, seed,
                                               arg)] = nxt
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
                with lock:
                    errors.append(exc)
                for f in inflight:
                    f.cancel()
                stop.set()  # (this process's pass too: the sweep fails)
            finally:
                fed.set()

        threading.Thread(target=feed, name="sweep-feeder", daemon=True).start()
        while (k := take(False)) is not None:  # this process: from the end, with its own window
            done(k, stop.run(sd, a, b, passes[k], fixed, sel, seed, window, None))
        if stop() and not errors:  # a Ctrl-C (the first, taken in this process's pass): the workers' passes
            raise KeyboardInterrupt  # are waited for `STOP_WAIT_SEC` at most, below (they were waited for here, for ever)
        # waits on an Event, never `Thread.join` (a KeyboardInterrupt inside a join marks a running
        # thread as ended, CPython 3.11)
        while not fed.wait(0.2):
            pass
        if errors:
            raise errors[0]
        if stop():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        stop.set()
        with lock:
            todo.clear()
        if not _waited(fed, STOP_WAIT_SEC):  # a worker that does not answer: ended, its pass lost
            ex.shutdown(wait=False, kill_workers=True)
            _waited(fed, 5.0)
        raise
    except BaseException as exc:
        with lock:
            errors.append(exc)
            todo.clear()
        stop.set()  # the workers' passes end at once (their rows are not needed)
        _waited(fed, STOP_WAIT_SEC)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if path is not None:
            shutil.rmtree(path.parent, ignore_errors=True)


RAY_PASS_RETRIES = 3  # a Ray pass whose worker process died (a node lost, the OOM killer, a kill) is run again
# from its start this many times (Ray's own default, said here), then the sweep fails (`_ray_failure`: SweepError)


def _ray_rows(ray: Any, sd: dict[str, Any], a: float, b: float, passes: list[Pass], total: int,
              fixed: dict[str, Any], sel: Any, seed: int | None, window: Window | None, progress: bool,
              got: list[dict[str, Any]]) -> None:
    """The passes as Ray tasks (`points.run_pass_on_ray`), the window one object-store copy they
    share; each pass's rows go to `got` as its task ends (`ray.wait`), with a progress line per
    point when `progress`. A failing pass fails the sweep with its error (`_ray_failure`; the others
    cancelled, the stop actor killed; the passes that ended keep their rows: `sweep` writes them); a
    pass whose worker died is run again, `RAY_PASS_RETRIES` times, then fails the sweep so.

    Ctrl-C: Ray by itself does nothing for it (seen on Ray 2.60, a local instance): a
    KeyboardInterrupt in the driver's `ray.get` / `ray.wait` leaves the running tasks running and
    the queued ones queued, and a terminal's Ctrl-C does not reach the workers (each is a process
    group of its own); they would replay on, their rows lost. So the stop is ours: a
    `points.StopFlag` actor (made here, one per sweep: Ray is an optional import) that the tasks
    poll (`points.RayStop`, at most every `RAY_STOP_POLL_SEC`; a pass replays nothing before the flag
    answered its first ask, so a pass is begun exactly when the flag says so, also when the Ctrl-C came
    while the actor was still starting). On KeyboardInterrupt: the flag is
    set; the passes get `STOP_WAIT_SEC` at most to end at their next check and hand back their
    points' partial rows (status "interrupted") to `got` (a pass not begun begins, sees the flag and
    ends with no rows); those still running after that are cancelled (`ray.cancel`: KeyboardInterrupt
    in the task), but never one whose result came in (Ray 2.60 aborted the driver on that race). A
    second Ctrl-C ends the wait. The actor is killed either way; KeyboardInterrupt again, for the caller. The actor is one more
    worker process for the sweep (it holds no CPU; on a local instance it takes one of the workers
    Ray started beforehand, so a task may wait for a new one; a task waits for the answer to its first
    poll only, before its pass begins)."""
    flag = ray.remote(num_cpus=0)(StopFlag).remote()
    task = ray.remote(max_retries=RAY_PASS_RETRIES)(run_pass_on_ray)
    pending: dict[Any, int] = {}  # each running or queued pass's ObjectRef → its index

    def take(ref: Any) -> list[dict[str, Any]]:
        """The rows of a pass that ended, to `got` (once: a Ctrl-C may come between two lines here,
        and the pass is then taken again from `pending` by the stop's wait)."""
        rows: list[dict[str, Any]] = ray.get(ref)
        have = {r["point"] for r in got}
        rows = [r for r in rows if r["point"] not in have]
        got.extend(rows)
        pending.pop(ref, None)
        if progress:
            report_rows(rows, total)
        return rows

    try:
        wref = ray.put(window)  # one copy in the object store, not one per task
        for k, items in enumerate(passes):
            pending[task.remote(flag, k, sd, a, b, items, fixed, sel, seed, wref)] = k
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                try:
                    rows = take(ref)
                except ray.exceptions.RayError as exc:
                    raise _ray_failure(ray, exc, [i for i, _ in passes[pending[ref]]], total) from None
                if interrupted(rows):  # (a task's pass stopped without our Ctrl-C: the sweep stops)
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        deadline = time.monotonic() + STOP_WAIT_SEC
        try:
            # set; a pass not begun is not cancelled: it begins, sees the flag set and ends with no
            # rows at once (cancelling a queued task raced its dispatch: see `finally`)
            with contextlib.suppress(ray.exceptions.RayError):  # (the flag does not answer: all are waited for)
                ray.get(flag.set.remote(), timeout=STOP_WAIT_SEC)
            while pending and (left := deadline - time.monotonic()) > 0:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=min(left, 0.5))
                for ref in ready:
                    try:
                        take(ref)
                    except ray.exceptions.RayError as exc:  # its rows lost, the others' kept
                        del pending[ref]
                        log.warning("sweep: a pass stopped by Ctrl-C failed: %s", str(exc).splitlines()[0])
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            pass
        raise
    finally:
        # a pass that did not answer the stop in time, or the sweep failed: cancelled, but for those
        # that ended meanwhile (cancelling a task as its result comes in can abort the driver, seen on
        # Ray 2.60: `task_manager.cc Check failed: it != submissible_tasks_.end()`, pytest's process gone)
        if pending:
            with contextlib.suppress(Exception):
                ended, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                for ref in ended:
                    pending.pop(ref, None)
        for ref in pending:
            ray.cancel(ref)
        with contextlib.suppress(Exception):
            ray.kill(flag)


def _ray_failure(ray: Any, exc: Exception, points: list[int], total: int) -> Exception:
    """A pass's failed Ray task as the local paths raise a worker's failure (`_raise_failed`): the
    exception the pass raised, itself, its traceback in a note. Ray's `RayTaskError` stands for it
    as an instance of its class too, but its text is the task's whole traceback (in colour), which
    the CLI printed as its one line. A task that failed otherwise (its worker died, after
    `RAY_PASS_RETRIES` runs): SweepError naming the pass's `points` (indexes, said from 1 of `total`,
    as the progress lines say them) and Ray's first line."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, Exception):
        said = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).rstrip()  # (the task's traceback; no colours)
        cause.add_note(f"(in a Ray task of the sweep)\n{said}")
        return cause
    said = str(exc).strip()
    which = ", ".join(str(i + 1) for i in points)
    err = SweepError(f"the Ray task of point{'s' if len(points) > 1 else ''} {which} of {total} failed "
                     f"({type(exc).__name__}: {said.splitlines()[0] if said else '-'})")
    err.add_note(said)
    return err


def _waited(event: threading.Event, seconds: float) -> bool:
    """Whether `event` was set within `seconds` (a second Ctrl-C ends the wait: False)."""
    deadline = time.monotonic() + seconds
    try:
        while not event.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
    except KeyboardInterrupt:
        return event.is_set()
    return True


def _forked_rows(sd: dict[str, Any], a: float, b: float, passes: list[Pass], fixed: dict[str, Any],
                 sel: Any, seed: int | None, jobs: int, window: Window | None,
                 report: int | None, stop: _Stop, got: list[dict[str, Any]]) -> None:
    """The passes on `jobs` worker processes forked from this one (`_fork_worker`; whichever
    worker is free takes the next pass) after this process read `window`: each worker starts in
    milliseconds with the window, the imported modules and the warm caches of this process
    (copy-on-write; ≈ 0.01 CPU-s for two), where a cold loky worker spends ≈ 0.7-0.8 CPU-s on the
    spawn, imports and the window's pickle before its first pass (bench_replay.py prints both).
    The workers end with the sweep (a new one forks again, as cheaply). Only when `fork_is_safe`
    (or asked for); a failing point fails the sweep with its error (the other workers ended at
    once). `window` None: each pass reads its own. `report`: the sweep's number of points
    (progress lines from the workers), or None.

    Each worker leaves each pass's rows in a file of a private directory (renamed into place
    whole), read into `got` when the workers have ended. The workers are forked with SIGINT
    blocked: a terminal's Ctrl-C reaches this process only in effect, which creates the stop file
    (`_Stop`); each running pass then ends with its partial rows, no worker starts another, and
    this process collects the files (waiting `STOP_WAIT_SEC` at most, then ending the workers)."""
    key = inherit(window) if window is not None else None
    kept = Path(tempfile.mkdtemp(prefix="pmm-sweep-"))
    stop.path = kept / "stop"
    ctx = multiprocessing.get_context("fork")
    nxt = ctx.Value("i", 0)
    procs: list[Any] = []
    args = (sd, a, b, fixed, sel, seed, key, report)
    collected = False
    try:
        with _sigint_blocked(), _frozen_for_fork():  # (a signal meanwhile reaches this process when it is unblocked)
            for _ in range(jobs):
                p = ctx.Process(target=_fork_worker, args=(str(kept), nxt, passes, args), daemon=True)
                p.start()
                procs.append(p)
        while alive := [p for p in procs if p.is_alive()]:
            mp_wait([p.sentinel for p in alive], timeout=0.5)
            _raise_failed(kept, procs, stop)
        _raise_failed(kept, procs, stop)
        got.extend(_kept_rows(kept))
        collected = True
        if stop():  # (a worker's pass stopped without this process's Ctrl-C)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        stop.set()
        _ended(procs, STOP_WAIT_SEC)
        if not collected:
            got.extend(_kept_rows(kept))
        raise
    except Exception:  # a point failed: the passes that ended before it keep their rows (`sweep` writes them)
        if not collected:
            with contextlib.suppress(Exception):
                got.extend(_kept_rows(kept))
        raise
    finally:
        _end(procs)
        shutil.rmtree(kept, ignore_errors=True)
        if key is not None:
            forget(key)


@contextlib.contextmanager
def _frozen_for_fork() -> Iterator[None]:
    """This process's objects in the collector's permanent generation while workers are forked
    (`gc.freeze`), back after: a worker's collections then never walk (and so write to) the
    objects it inherited, the window's among them, each page of which it would copy (measured:
    a 2-forked sweep's workers 42 k page faults without, 24 k with; on this project's VMs a new
    page costs 20-85 µs of system time). Not when something in this process froze objects
    already (a live engine's `gc.freeze`): unfreezing would undo that."""
    mine = gc.get_freeze_count() == 0
    if mine:
        gc.freeze()
    try:
        yield
    finally:
        if mine:
            gc.unfreeze()


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread (and so in the processes it forks, which keep it blocked);
    one that arrives meanwhile is delivered here when it ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fork_worker(kept: str, nxt: Any, passes: list[Pass], args: tuple[Any, ...]) -> None:
    """A forked worker: the next pass not taken (`nxt`, shared) until none is left or the stop file
    exists; each pass's rows to `kept`/k.pickle, written whole; an error to `kept`/k.error (the
    exception and its traceback), and the worker ends."""
    sd, a, b, fixed, sel, seed, key, report = args
    stop = str(Path(kept) / "stop")
    while not os.path.exists(stop):
        with nxt.get_lock():
            k = nxt.value
            nxt.value += 1
        if k >= len(passes):
            return
        try:
            rows = run_pass(sd, a, b, passes[k], fixed, sel, seed, key, report, stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
            tb = traceback.format_exc()
            try:
                blob = pickle.dumps((exc, tb))
            except Exception:  # noqa: BLE001 - an exception that does not pickle: its text
                blob = pickle.dumps((SweepError(f"{type(exc).__name__}: {exc}"), tb))
            _keep(Path(kept), f"{k}.error", blob)
            return
        _keep(Path(kept), f"{k}.pickle", pickle.dumps(rows))


def _keep(kept: Path, name: str, blob: bytes) -> None:
    tmp = kept / f".{name}.tmp"
    tmp.write_bytes(blob)
    tmp.replace(kept / name)


def _kept_rows(kept: Path) -> list[dict[str, Any]]:
    """The rows the forked workers left, pass by pass."""
    files = sorted(kept.glob("*.pickle"), key=lambda f: int(f.stem))
    return [row for f in files for row in pickle.loads(f.read_bytes())]


def _raise_failed(kept: Path, procs: list[Any], stop: _Stop) -> None:
    """A point's error (the other workers ended at once), or a worker that ended abnormally."""
    errs = sorted(kept.glob("*.error"), key=lambda f: int(f.stem))
    if errs:
        stop.set()
        _end(procs)
        exc, tb = pickle.loads(errs[0].read_bytes())
        exc.add_note(f"(in a sweep worker process)\n{tb.rstrip()}")
        raise exc
    for p in procs:
        if p.exitcode not in (None, 0):
            stop.set()
            _end(procs)
            how = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit code {p.exitcode}"
            raise SweepError(f"a sweep worker process ended abnormally ({how}) before its pass's rows were written")


def _ended(procs: list[Any], seconds: float) -> bool:
    """Whether every process in `procs` ended within `seconds` (a second Ctrl-C ends the wait)."""
    deadline = time.monotonic() + seconds
    try:
        while alive := [p for p in procs if p.is_alive()]:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            mp_wait([p.sentinel for p in alive], timeout=min(left, 0.2))
    except KeyboardInterrupt:
        return not any(p.is_alive() for p in procs)
    return True


def _end(procs: list[Any]) -> None:
    """Every process of `procs` ended (SIGTERM, then SIGKILL) and reaped."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join(2.0)


def _check_outputs(parquet: Path | None, default_dir: Path, db_url: str) -> None:
    """SweepError naming the place when the Parquet file cannot be written there; the DB's
    connection error (its schema made or upgraded, as `_store` will) when it cannot be reached."""
    from ..store.migrate import upgrade
    from ..store.recording import writable_dir

    if parquet is not None and parquet.is_dir():
        raise SweepError(f"{parquet}: a directory (the Parquet file's name goes there, e.g. {parquet / 'sweep.parquet'})")
    check_db_url(db_url)
    folder = parquet.parent if parquet is not None else default_dir
    try:
        writable_dir(folder)
    except OSError as exc:
        raise SweepError(f"{folder}: cannot write the sweep's Parquet file there ({exc.strerror or exc})") from None
    upgrade(db_url)
    _check_writable(db_url)


def _check_writable(db_url: str) -> None:
    """A row of `sweep_results` written and rolled back: a read-only DB fails here, not after
    every point ran (`upgrade` writes nothing to a DB already at the newest schema)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..store.db import first_line, make_engine, safe_url
    from ..store.schema import sweep_results

    eng = make_engine(db_url)
    try:
        with eng.connect() as c:
            tx = c.begin()
            try:
                c.execute(sweep_results.insert().values(sweep_id="probe", point=0, created_ts=0.0, t0=0.0, t1=0.0,
                                                        grid_json={}))
            finally:
                tx.rollback()
    except SQLAlchemyError as exc:
        raise SweepError(f"{safe_url(db_url)}: cannot write the sweep's rows there ({first_line(exc)})") from None
    finally:
        eng.dispose()


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _store(db_url: str, sweep_id: str, t0: float, t1: float, names: list[str], df: pd.DataFrame) -> None:
    from ..store.db import make_engine
    from ..store.migrate import upgrade
    from ..store.schema import sweep_results

    upgrade(db_url)
    now = time.time()
    rows = []
    for rec in df.to_dict(orient="records"):
        summary = {k: (None if _nan(v) else v) for k, v in rec.items()}
        row: dict[str, Any] = {"sweep_id": sweep_id, "point": int(rec["point"]), "run_id": rec.get("run_id"),
                               "created_ts": now, "t0": t0, "t1": t1,
                               "grid_json": {k: rec.get(k) for k in names},
                               "summary_json": json.loads(json.dumps(summary, default=str))}
        for k in _FIXED:  # the figures (a swept name's figure is `<name>_seen`: the column of the name is the point's)
            v = rec.get(figure_column(k, names))
            row[k] = None if v is None or _nan(v) else (int(v) if k == "fills" else float(v))
        rows.append(row)
    eng = make_engine(db_url)
    try:
        with eng.begin() as c:
            c.execute(sweep_results.insert(), rows)
    finally:
        eng.dispose()
