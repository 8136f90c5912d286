"""One sweep point, as a worker process runs it.

Why a module of its own: a joblib (loky) worker imports the module of the function it runs. This
one imports only what a replay needs (not pandas, which `sweeps` needs for its DataFrame), so each
worker's start-up is cheaper. The window a sweep's points share reaches a worker as the path of a
pickle the parent wrote once (`dump_window`); the worker reads it at its first point and keeps it
for the next ones (`window_from_file`), instead of unpickling the whole window once per point.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..config import Settings
from .recordings import Window
from .replayer import Replayer, run_sync, split_overrides

_WINDOWS: dict[str, Window] = {}  # this worker's window: path → events (one sweep's at a time)


def warm_up() -> int:
    """A no-op task: submitted before the parent reads the window, so the workers start and import
    this module (and the replay's code) meanwhile."""
    return os.getpid()


def dump_window(window: Window) -> Path:
    """The window as one pickle in a fresh temporary directory (in /dev/shm when it has room, like
    joblib's memory maps); the caller removes the directory when the sweep ends."""
    size = sum(len(p) for p in window.payload if p) + 64 * len(window)
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


def window_from_file(path: str) -> Window:
    w = _WINDOWS.get(path)
    if w is None:
        _WINDOWS.clear()  # another sweep's window: not needed any more
        with open(path, "rb") as f:
            w = pickle.load(f)
        _WINDOWS[path] = w
    return w


def run_point(settings_d: dict[str, Any], t0: float, t1: float, point: dict[str, Any], fixed: dict[str, Any],
              markets: Any, seed: int | None, index: int, window: Window | str | None = None) -> dict[str, Any]:
    """One grid point → one result row (a plain dict). Runs in any worker. `window`: the events,
    read once by the caller for every point (a `Window`, or the path `dump_window` wrote), else
    read here."""
    if isinstance(window, str):
        window = window_from_file(window)
    p_over, s_over = split_overrides({**fixed, **point})
    settings = Settings(**{**settings_d, **s_over})
    rep = Replayer(settings, t0, t1, markets=markets, params=p_over, seed=seed, window=window)
    res = run_sync(rep.run)
    values = rep.params.model_dump(mode="json")
    row: dict[str, Any] = {"point": index}
    for k, v in point.items():  # the point's values as validated (1 → 1.0 for a float parameter)
        row[k] = values.get(k, getattr(settings, k, v))
    row.update(res.summary)
    row["problems"] = "; ".join(res.problems)
    return row
