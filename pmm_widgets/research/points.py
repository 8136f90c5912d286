"""Sweep points, as a worker process runs them (one replay pass for several points: `run_pass`).

Why a module of its own: a joblib (loky) worker imports the module of the function it runs. This
one imports only what a replay needs (not pandas, which `sweeps` needs for its DataFrame), so each
worker's start-up is cheaper. The window a sweep's points share reaches a worker as the path of a
pickle the parent wrote once (`dump_window`); the worker reads it at its first point and keeps it
for the next ones (`window_from_file`), instead of unpickling the whole window once per point. A
worker forked from the parent (`inherit`) finds the window under its key already: nothing is read.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Container
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import PmmError
from .recordings import LazyPayloads, PackedPayloads, Window
from .replayer import Replayer, run_sync, split_overrides


class SweepError(PmmError, RuntimeError):
    """A sweep that cannot run where it was asked to (Ray missing or not answering, a Ray worker
    that died, a stop flag that never started). Here, where a Ray task may raise it; `sweeps` has it too."""


_WINDOWS: dict[str, Window] = {}  # this worker's window: path (or `inherit` key) → events (one sweep's at a time)


def warm_up() -> int:
    """A no-op task: submitted before the parent reads the window, so the workers start and import
    this module (and the replay's code) meanwhile."""
    return os.getpid()


def dump_window(window: Window) -> Path:
    """The window as one pickle in a fresh temporary directory (in /dev/shm when it has room, like
    joblib's memory maps); the caller removes the directory when the sweep ends."""
    pays = window.payload  # (a lazy one pickles as its file list: reading it would load it all)
    size = 64 * len(window) + (0 if isinstance(pays, LazyPayloads) else pays.nbytes
                               if isinstance(pays, PackedPayloads) else sum(len(p) for p in pays if p))
    base: str | None = None
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        try:
            if shutil.disk_usage(shm).free > 2 * size:
                base = str(shm)
        except OSError:
            base = None
    d = Path(tempfile.mkdtemp(prefix="pmm-sweep-", dir=base))
    path = d / "window.pickle"
    with open(path, "wb") as f:
        pickle.dump(window, f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def inherit(window: Window) -> str:
    """Keep `window` in this process under a fresh key (`forget` removes it): a worker forked after
    this call has it in memory already (copy-on-write), and `run_pass(..., key)` finds it there."""
    key = f"inherited:{os.getpid()}:{id(window)}:{time.monotonic_ns()}"
    _WINDOWS.clear()
    _WINDOWS[key] = window
    return key


def forget(key: str) -> None:
    _WINDOWS.pop(key, None)


def window_from_file(path: str) -> Window:
    """The window of `path` (a `dump_window` file, read once per worker) or of an `inherit` key."""
    w = _WINDOWS.get(path)
    if w is None and path.startswith("inherited:"):
        raise RuntimeError("sweep: this worker did not inherit the window (it was not forked by the sweep)")
    if w is None:
        _WINDOWS.clear()  # another sweep's window: not needed any more
        with open(path, "rb") as f:
            w = pickle.load(f)
        _WINDOWS[path] = w
    return w


STOP_POLL_SEC = 0.05  # how often a worker's replay looks for the sweep's stop file (at most)


class PolledStop:
    """A replay's `stop` polled from elsewhere: `ask()` at most every `every` seconds (the replay
    asks every 64 events and before every cycle; between two asks the cached answer, a clock
    read); once it said stop, always true."""

    every = STOP_POLL_SEC

    def __init__(self) -> None:
        self.seen = False
        self.next = 0.0

    def ask(self) -> bool:
        raise NotImplementedError

    def __call__(self) -> bool:
        if not self.seen:
            now = time.monotonic()
            if now >= self.next:
                self.next = now + self.every
                self.seen = self.ask()
        return self.seen


class StopFile(PolledStop):
    """A replay's `stop` in a worker process: whether the file at `path` exists (the parent creates
    it on Ctrl-C), looked at most every `STOP_POLL_SEC`."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def ask(self) -> bool:
        return os.path.exists(self.path)


def run_pass_in_worker(stop: str, settings_d: dict[str, Any], t0: float, t1: float,
                       items: list[tuple[int, dict[str, Any]]], fixed: dict[str, Any], markets: Any,
                       seed: int | None, window: Window | str | None) -> list[dict[str, Any]]:
    """`run_pass(..., stop=stop)` in a worker process, with SIGINT ignored while it runs (its handler
    back after): a terminal's Ctrl-C reaches the workers too, and the parent, which gets it as well,
    stops their passes through the stop file, each with its partial rows."""
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return run_pass(settings_d, t0, t1, items, fixed, markets, seed, window, stop=stop)
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


RAY_FLAG_WAIT_SEC = 120.0  # a Ray task's first ask waits this long at most for the stop flag's answer (the
# actor starting: a worker process of its own, seconds on a loaded machine), then the pass fails (SweepError)
RAY_STOP_POLL_SEC = 0.5  # how often a Ray task's replay asks the sweep's stop flag, at most (an ask sends one
# actor call and reads the last one's answer if it came, waiting for nothing: a stop is seen 0.5-1 s after it;
# a poll ≈ 3 µs of the task's time (its answer's future checked, the next ask sent; ≈ 1.4 ms with ray.wait);
# the cached answer ≈ 0.4-0.6 µs)


class StopFlag:
    """A Ray sweep's Ctrl-C, kept by a tiny Ray actor the sweep makes (`ray.remote(num_cpus=0)(StopFlag)`,
    there: Ray is an optional import, so this is a plain class): its tasks may run on other machines,
    where no stop file of the sweep's is seen. Each task asks it (`poll`, through `RayStop`) whether
    to stop; `set` is the sweep's Ctrl-C. An actor runs its calls one at a time, and a pass replays
    nothing before the answer to its first ask (`RayStop`): a pass either began before `set` (it
    hands back its partial rows at its next ask) or its first answer says stop (it returns no rows,
    at once: the sweep waits for it rather than cancel a task that may be being dispatched)."""

    def __init__(self) -> None:
        self.stopped = False

    def poll(self, k: int) -> bool:
        """Whether pass `k` is to stop."""
        return self.stopped

    def set(self) -> None:
        """Stop: every pass's next poll says so."""
        self.stopped = True


class RayStop(PolledStop):
    """A replay's `stop` in a Ray task: the sweep's `StopFlag` actor asked at most every
    `RAY_STOP_POLL_SEC`, without blocking: each ask reads the answer to the last one when it is
    there (its `ObjectRef.future()`, which Ray completes from its own thread) and sends the next. A
    task in `ray.get` or `ray.wait` on an answer not yet there lends its CPU back to Ray, even for
    `ray.wait(timeout=0)`: Ray then starts another queued pass beside it (seen on Ray 2.60: three
    passes running on 2 CPUs, a slow actor's answers late); a poll must not do that. An actor
    that does not answer (killed: the sweep ended) says stop.

    The first ask (before the pass replays anything) is the exception: its answer is waited for
    (`first`), so that the pass begins only once the flag has recorded it. It used to be sent like
    the others: while the actor was still starting, the passes replayed with their asks queued at
    it, and a Ctrl-C then was answered by a flag that had recorded no pass as begun, or by none in
    time: the running passes were cancelled, their rows lost."""

    every = RAY_STOP_POLL_SEC

    def __init__(self, flag: Any, k: int) -> None:
        super().__init__()
        self.flag = flag
        self.k = k
        self.asked: Future[bool] | None = None  # the last ask's answer, not yet read
        self.begun = False  # the first answer came

    def first(self) -> bool:
        """The first ask, its answer waited for (`RAY_FLAG_WAIT_SEC` at most; on the future, in
        short waits: no `ray.get`, which would lend the task's CPU to another pass, and a
        `ray.cancel`'s KeyboardInterrupt gets through). SweepError when no answer comes."""
        answer = self.flag.poll.remote(self.k).future()
        deadline = time.monotonic() + RAY_FLAG_WAIT_SEC
        while True:
            try:
                stop = bool(answer.result(timeout=0.1))
            except TimeoutError:  # (concurrent.futures' is the builtin one)
                if time.monotonic() < deadline:
                    continue
                raise SweepError(f"the sweep's stop flag (a Ray actor) did not answer pass {self.k} within "
                                 f"{RAY_FLAG_WAIT_SEC:g} s: it did not start") from None
            except Exception as exc:  # noqa: BLE001 - the actor gone before the pass began: said, not a silent "stop"
                said = str(exc).strip().splitlines()
                raise SweepError(f"the sweep's stop flag (a Ray actor) failed before pass {self.k} began "
                                 f"({type(exc).__name__}: {said[0] if said else '-'})") from None
            self.begun = True
            return stop

    def ask(self) -> bool:
        if not self.begun:
            return self.first()
        if self.asked is not None:
            if not self.asked.done():
                return False
            try:
                if self.asked.result():
                    return True
            except Exception:  # noqa: BLE001 - the actor gone (the sweep ended or failed): stop
                return True
        self.asked = self.flag.poll.remote(self.k).future()
        return False


def run_pass_on_ray(flag: Any, k: int, settings_d: dict[str, Any], t0: float, t1: float,
                    items: list[tuple[int, dict[str, Any]]], fixed: dict[str, Any], markets: Any,
                    seed: int | None, window: Window | None) -> list[dict[str, Any]]:
    """Pass `k` of a Ray sweep (a Ray task): `run_pass` stopped by the sweep's `StopFlag` actor
    `flag` (`RayStop`). SIGINT is left as Ray has it: a Ray worker is a process group of its own
    (a terminal's Ctrl-C does not reach it, seen on Ray 2.60), and `ray.cancel` of a running task
    raises KeyboardInterrupt in it (the sweep cancels only passes that did not answer the flag)."""
    return run_pass(settings_d, t0, t1, items, fixed, markets, seed, window, stop=RayStop(flag, k))


def interrupted(rows: list[dict[str, Any]]) -> bool:
    """Whether a pass's rows are those of a pass stopped part-way (a Ctrl-C)."""
    return any(r.get("status") == "interrupted" for r in rows)


SEEN = "_seen"  # a row's summary figure whose name is also the point's (`max_inventory_usd`: the limit swept,
# and the largest inventory held) goes under this suffix: it used to replace the point's value in its row


def figure_column(name: str, swept: Container[str]) -> str:
    """The column of the summary figure `name` in a sweep's rows: `<name>_seen` when a point's value
    has that name (`swept`: the point's or the grid's names), else `name`."""
    return name + SEEN if name in swept else name


def run_pass(settings_d: dict[str, Any], t0: float, t1: float, items: list[tuple[int, dict[str, Any]]],
             fixed: dict[str, Any], markets: Any, seed: int | None, window: Window | str | None = None,
             report: int | None = None, stop: str | Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Grid points → result rows (plain dicts), in ONE replay pass (`Replayer(points=...)`): the
    window's books are rebuilt once for all of them, each point with its own exchange and cycle,
    its rows those of a replay of it alone. `items`: (index, values) pairs whose values change the
    same settings (a pass has one stream and one cycle grid); parameters may differ. Runs in any
    worker. `window`: the events, read once by the caller for every pass (a `Window`, or the path
    `dump_window` wrote, or an `inherit` key), else read here. `report`: the sweep's number of
    points, to print each point's progress line when the pass ends (a forked worker's stderr is
    the terminal's). `stop`: the sweep's Ctrl-C, a callable or the path of a file (`StopFile`) the
    replay polls; once it says stop, the pass ends with its points' partial rows (status
    "interrupted", as a replay's partial result); a pass stopped before it replayed anything (or
    told to before it began) has no rows."""
    halt = StopFile(stop) if isinstance(stop, str) else stop
    if halt is not None and halt():
        return []
    if isinstance(window, str):
        window = window_from_file(window)
    overrides = [split_overrides({**fixed, **pt}) for _, pt in items]
    s_over = overrides[0][1]
    if any(o[1] != s_over for o in overrides):
        raise ValueError("sweep: the points of one replay pass must change the same settings")
    settings = Settings(**{**settings_d, **s_over})
    rep = Replayer(settings, t0, t1, markets=markets, points=[o[0] for o in overrides], seed=seed, window=window,
                   stop=halt)
    try:
        results = run_sync(rep.run_all)
    finally:
        rep.drop_window()  # (the rows below read the points and results, not the window)
    if all(r.status == "interrupted" and not r.summary.get("rows_read") for r in results):
        return []  # stopped before its first event: these points never started
    rows: list[dict[str, Any]] = []
    for (index, point), rp, res in zip(items, rep.points, results):
        values = rp.params.model_dump()
        row: dict[str, Any] = {"point": index}
        for k, v in point.items():  # the point's values as validated (1 → 1.0 for a float parameter)
            got = values.get(k, getattr(settings, k, v))
            row[k] = float(got) if isinstance(got, Decimal) else got  # a number, not its text (sorts, plots)
        for k, v in res.summary.items():  # a figure named as a swept value: `<name>_seen` (the value keeps its name)
            row[figure_column(k, point)] = v
        row["problem_text"] = "; ".join(res.problems)  # (`problems` stays the summary's count, as in summary_json)
        rows.append(row)
    if report is not None:
        report_rows(rows, report)
    return rows


def report_rows(rows: list[dict[str, Any]], total: int) -> None:
    """The progress line of each point of a pass's rows (`report_done`), with its status."""
    for row in rows:
        report_done(row["point"], total, row.get("status") or "done")


def report_done(index: int, total: int, status: str = "done") -> None:
    """The progress line of one finished point ("done", or "interrupted": stopped part-way by a
    Ctrl-C), to stderr (the local paths' processes; a Ray sweep's driver as each task ends). One `write` of the whole line, newline included: forked
    workers share the stream, and `print` writes the text and its end separately, so two workers'
    lines could interleave ("…1 of 4 donesweep: point 2…")."""
    sys.stderr.write(f"sweep: point {index + 1} of {total} {status}\n")
    sys.stderr.flush()
