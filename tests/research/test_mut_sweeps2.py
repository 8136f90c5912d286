"""The sweep's loky path (`_loky_rows`: this process replays passes from the end of the list, one
loky worker takes them from the front) with stand-in passes: every pass's rows once, the window
handed over as one file, the stop file and a Ctrl-C's partial rows, a failing pass, a worker that
does not answer the stop; and a sweep of a risk limit that is also a figure of the replay's
summary (`max_inventory_usd`), written to `sweep_results`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from pmm_widgets.config import load_settings
from pmm_widgets.research import sweeps as sw
from pmm_widgets.research.recordings import Window, parse_time
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")


def _window() -> Window:
    return Window(t0=1.0, t1=2.0, ts=np.arange(2, dtype=np.float64), channel=np.zeros(2, np.int8), kind=["x"] * 2,
                  conn=np.zeros(2, np.int32), payload=["p0", "p1"], session=["s"] * 2)


def _passes(n: int) -> list[sw.Pass]:
    return [[(k, {"alpha": k + 1})] for k in range(n)]


class Parent:
    """This process's passes (`sweeps.run_pass` as `_Stop.run` calls it): each recorded; `act(k,
    stop)` (optional) runs first and may say the pass's status."""

    def __init__(self, act: Any = None) -> None:
        self.act = act
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sd, a, b, items, fixed, sel, seed, window, report, stop):  # noqa: ANN001, ANN204
        k = items[0][0]
        self.calls.append({"k": k, "window": window, "report": report, "in_pass": stop.in_pass, "stop": stop,
                           "args": (sd, a, b, fixed, sel, seed)})
        status = (self.act(k, stop) if self.act else None) or "done"
        return [{"point": i, "who": "parent", "status": status} for i, _ in items]


def _began(stop: sw._Stop, name: str, seconds: float = 20.0) -> None:
    """Wait until the worker's marker `name` (beside the stop file) exists."""
    assert stop.path is not None
    deadline = time.monotonic() + seconds
    while not (stop.path.parent / name).exists():
        assert time.monotonic() < deadline, "the worker's pass never began"
        time.sleep(0.01)


def _run(monkeypatch: Any, passes: list[sw.Pass], parent: Parent, worker: Any, *, shared: bool = True,
         progress: bool = False) -> tuple[list[dict[str, Any]], sw._Stop, list[Any], BaseException | None]:
    """`_loky_rows` with 2 jobs (this process and one loky worker): (rows, stop, windows loaded, raised)."""
    loaded: list[Any] = []

    def load_window(root: Any, a: float, b: float) -> Window:
        loaded.append((root, a, b))
        return _window()

    monkeypatch.setattr(sw, "load_window", load_window)
    monkeypatch.setattr(sw, "run_pass", parent)
    monkeypatch.setattr(sw, "run_pass_in_worker", worker)
    s = load_settings(record_dir="/nowhere/recordings", db_url="sqlite:///:memory:")
    got: list[dict[str, Any]] = []
    stop = sw._Stop()
    raised: BaseException | None = None
    try:
        sw._loky_rows(s, {"sd": 1}, 10.0, 20.0, passes, len(passes), {"f": 2}, "sel", 7, 2, shared, progress, stop, got)
    except BaseException as exc:  # noqa: BLE001 - said to the test
        raised = exc
    return got, stop, loaded, raised


def test_loky_rows_the_worker_takes_passes_from_the_front_this_process_from_the_end(monkeypatch, capsys):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202 - (pickled by value)
        import os

        from pmm_widgets.research import points

        w = points.window_from_file(arg)
        open(os.path.join(os.path.dirname(flag), f"began-{items[0][0]}"), "w").close()
        return [{"point": i, "who": "worker", "pid": os.getpid(), "payload": list(w.payload), "flag": flag,
                 "arg": arg, "args": [sd, a, b, fixed, sel, seed], "status": "done"} for i, _ in items]

    def first_waits(k: int, stop: sw._Stop) -> None:
        if k == 5:
            _began(stop, "began-0")  # (the worker's first pass began: it takes one at least)

    parent = Parent(first_waits)
    got, stop, loaded, raised = _run(monkeypatch, _passes(6), parent, worker, progress=True)
    assert raised is None and not stop()
    assert sorted(r["point"] for r in got) == list(range(6))  # every pass's rows, once
    mine = [c["k"] for c in parent.calls]
    theirs = [r["point"] for r in got if r["who"] == "worker"]
    assert mine and theirs and mine[0] == 5 and theirs[0] == 0  # this process from the end, the worker the front
    assert mine == sorted(mine, reverse=True) and theirs == sorted(theirs)
    assert set(mine) | set(theirs) == set(range(6)) and not set(mine) & set(theirs)
    assert loaded == [("/nowhere/recordings", 10.0, 20.0)]  # the window read once, here
    c = parent.calls[0]
    assert isinstance(c["window"], Window) and c["report"] is None and c["in_pass"] and c["stop"] is stop
    assert c["args"] == ({"sd": 1}, 10.0, 20.0, {"f": 2}, "sel", 7)
    w = next(r for r in got if r["who"] == "worker")
    assert w["payload"] == ["p0", "p1"] and w["args"] == [{"sd": 1}, 10.0, 20.0, {"f": 2}, "sel", 7]
    assert w["flag"] == str(stop.path) and w["pid"] != __import__("os").getpid()
    assert not stop.path.parent.exists() and not Path(w["arg"]).parent.exists()  # both directories removed
    err = capsys.readouterr().err
    assert sorted(err.splitlines()) == [f"sweep: point {k + 1} of 6 done" for k in range(6)]


def test_loky_rows_each_pass_reads_its_own_window_when_not_shared(monkeypatch, capsys):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        import os

        open(os.path.join(os.path.dirname(flag), f"began-{items[0][0]}"), "w").close()
        return [{"point": i, "who": "worker", "arg": arg, "status": "done"} for i, _ in items]

    def first_waits(k: int, stop: sw._Stop) -> None:
        if k == 2:
            _began(stop, "began-0")

    parent = Parent(first_waits)
    got, stop, loaded, raised = _run(monkeypatch, _passes(3), parent, worker, shared=False)
    assert raised is None and loaded == [] and sorted(r["point"] for r in got) == [0, 1, 2]
    assert all(c["window"] is None for c in parent.calls)
    assert all(r["arg"] is None for r in got if r["who"] == "worker") and any(r["who"] == "worker" for r in got)
    assert capsys.readouterr().err == ""  # no progress lines unless asked


def test_loky_rows_ctrl_c_keeps_the_running_passes_partial_rows_and_starts_no_other(monkeypatch, capsys):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        import os
        import time as t

        open(os.path.join(os.path.dirname(flag), f"began-{items[0][0]}"), "w").close()
        for _ in range(2000):
            if os.path.exists(flag):  # the sweep's stop: this pass ends with its partial rows
                return [{"point": i, "who": "worker", "status": "interrupted"} for i, _ in items]
            t.sleep(0.01)
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    def ctrl_c(k: int, stop: sw._Stop) -> str:
        _began(stop, "began-0")
        stop.set()  # as the Ctrl-C handler does while this process replays a pass
        return "interrupted"

    parent = Parent(ctrl_c)
    got, stop, _, raised = _run(monkeypatch, _passes(5), parent, worker, progress=True)
    assert isinstance(raised, KeyboardInterrupt) and stop()
    assert sorted((r["point"], r["who"], r["status"]) for r in got) == [(0, "worker", "interrupted"),
                                                                         (4, "parent", "interrupted")]
    assert [c["k"] for c in parent.calls] == [4]
    assert not stop.path.parent.exists()
    assert sorted(capsys.readouterr().err.splitlines()) == ["sweep: point 1 of 5 interrupted",
                                                             "sweep: point 5 of 5 interrupted"]


def test_loky_rows_a_workers_pass_stopped_by_itself_stops_the_sweep(monkeypatch):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        return [{"point": i, "who": "worker", "status": "interrupted"} for i, _ in items]

    def wait_for_it(k: int, stop: sw._Stop) -> None:
        deadline = time.monotonic() + 20
        while not stop() and time.monotonic() < deadline:  # the worker's interrupted pass sets the stop
            time.sleep(0.01)
        assert stop()

    parent = Parent(wait_for_it)
    got, stop, _, raised = _run(monkeypatch, _passes(4), parent, worker)
    assert isinstance(raised, KeyboardInterrupt) and stop()
    assert sorted((r["point"], r["who"]) for r in got) == [(0, "worker"), (3, "parent")]  # nothing after


def test_loky_rows_a_failing_worker_pass_fails_the_sweep_and_stops_this_process(monkeypatch):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        raise ValueError(f"point {items[0][0]} refused")

    def until_stopped(k: int, stop: sw._Stop) -> str:
        deadline = time.monotonic() + 60  # (a loaded host can take seconds to start the loky worker)
        while not stop() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "interrupted" if stop() else "ran to its end"

    parent = Parent(until_stopped)
    got, stop, _, raised = _run(monkeypatch, _passes(5), parent, worker)
    assert isinstance(raised, ValueError) and str(raised) == "point 0 refused" and stop()
    assert [c["k"] for c in parent.calls] == [4]  # its pass stopped, no other taken
    # this process's pass stopped at the worker's failure, not at its own end
    assert [(r["point"], r["status"]) for r in got] == [(4, "interrupted")]
    assert not stop.path.parent.exists()


def test_loky_rows_a_failing_pass_here_stops_the_workers_pass(monkeypatch):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        import os
        import time as t

        open(os.path.join(os.path.dirname(flag), f"began-{items[0][0]}"), "w").close()
        for _ in range(2000):
            if os.path.exists(flag):
                return [{"point": i, "who": "worker", "status": "interrupted"} for i, _ in items]
            t.sleep(0.01)
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    def boom(k: int, stop: sw._Stop) -> None:
        _began(stop, "began-0")
        raise RuntimeError("this process's pass failed")

    parent = Parent(boom)
    t = time.monotonic()
    got, stop, _, raised = _run(monkeypatch, _passes(4), parent, worker)
    assert isinstance(raised, RuntimeError) and str(raised) == "this process's pass failed"
    assert stop() and time.monotonic() - t < 15  # the worker's pass told to stop, and waited for
    assert [(r["point"], r["status"]) for r in got] == [(0, "interrupted")]  # (its rows came back meanwhile)
    assert [c["k"] for c in parent.calls] == [3]
    assert not stop.path.parent.exists()


def test_loky_rows_a_worker_deaf_to_the_stop_is_ended_after_the_wait(monkeypatch):
    monkeypatch.setattr(sw, "STOP_WAIT_SEC", 0.5)

    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        import os
        import time as t

        open(os.path.join(os.path.dirname(flag), f"began-{items[0][0]}"), "w").close()
        t.sleep(60)  # never looks at the stop file
        return []

    def ctrl_c(k: int, stop: sw._Stop) -> str:
        _began(stop, "began-0")
        stop.set()
        return "interrupted"

    parent = Parent(ctrl_c)
    t = time.monotonic()
    got, stop, _, raised = _run(monkeypatch, _passes(3), parent, worker)
    assert isinstance(raised, KeyboardInterrupt) and time.monotonic() - t < 12  # not the worker's 60 s
    assert [(r["point"], r["who"]) for r in got] == [(2, "parent")]  # the deaf worker's pass lost, the rest kept


def test_loky_rows_asks_for_jobs_minus_one_workers_and_warms_each_up(monkeypatch, tmp_path):
    """Two jobs: this process and one loky worker (not more processes than asked), started (its
    `warm_up`) while this process reads the window."""
    import joblib.externals.loky as loky

    real = loky.get_reusable_executor
    asked: list[int] = []

    def get_reusable_executor(max_workers: int) -> Any:
        asked.append(max_workers)
        return real(max_workers=max_workers)

    monkeypatch.setattr(loky, "get_reusable_executor", get_reusable_executor)
    marks = str(tmp_path)

    def warm_up() -> int:  # (pickled by value: it leaves a file per call)
        import os
        import uuid

        open(os.path.join(marks, f"warm-{uuid.uuid4().hex}"), "w").close()
        return os.getpid()

    monkeypatch.setattr(sw, "warm_up", warm_up)

    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    got, _, _, raised = _run(monkeypatch, _passes(2), Parent(), worker)
    assert raised is None and sorted(r["point"] for r in got) == [0, 1]
    assert asked == [1] and len(list(tmp_path.glob("warm-*"))) == 1


def test_loky_rows_a_window_that_cannot_be_read_fails_with_its_error(monkeypatch):
    def unreadable(root: Any, a: float, b: float) -> Window:
        raise ValueError("no readable recordings")

    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    monkeypatch.setattr(sw, "STOP_WAIT_SEC", 0.5)  # (the feeder may still wait for the worker's start)
    parent = Parent()
    monkeypatch.setattr(sw, "load_window", unreadable)
    monkeypatch.setattr(sw, "run_pass", parent)
    monkeypatch.setattr(sw, "run_pass_in_worker", worker)
    s = load_settings(record_dir="/nowhere/recordings", db_url="sqlite:///:memory:")
    stop = sw._Stop()
    with pytest.raises(ValueError, match="^no readable recordings$"):
        sw._loky_rows(s, {}, 10.0, 20.0, _passes(2), 2, {}, None, None, 2, True, False, stop, [])
    assert stop() and not stop.path.parent.exists() and parent.calls == []  # (no pass ran)


def test_loky_rows_a_worker_that_cannot_start_fails_the_sweep_with_its_reason(monkeypatch):
    def warm_up() -> int:
        raise RuntimeError("this worker cannot start")

    monkeypatch.setattr(sw, "warm_up", warm_up)

    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    got, stop, _, raised = _run(monkeypatch, _passes(3), Parent(), worker)
    assert isinstance(raised, RuntimeError) and str(raised) == "this worker cannot start" and stop()
    assert all(r["who"] == "parent" for r in got)  # no pass went to it


def test_loky_rows_passes_all_taken_here_before_the_worker_started(monkeypatch):
    def warm_up() -> int:  # a slow start: this process replays every pass meanwhile
        import os
        import time as t

        t.sleep(0.5)
        return os.getpid()

    monkeypatch.setattr(sw, "warm_up", warm_up)

    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    got, stop, _, raised = _run(monkeypatch, _passes(2), Parent(), worker)
    assert raised is None and not stop()
    assert sorted((r["point"], r["who"]) for r in got) == [(0, "parent"), (1, "parent")]


def test_loky_rows_a_worker_pass_stopped_while_this_process_waits_stops_the_sweep(monkeypatch):
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        import os
        import time as t

        here = os.path.dirname(flag)
        open(os.path.join(here, f"began-{items[0][0]}"), "w").close()
        for _ in range(2000):  # until this process's pass ended (it then waits for this one)
            if os.path.exists(os.path.join(here, "parent-done")):
                break
            t.sleep(0.01)
        t.sleep(0.3)
        return [{"point": i, "who": "worker", "status": "interrupted"} for i, _ in items]

    def after_the_workers_began(k: int, stop: sw._Stop) -> None:
        _began(stop, "began-0")
        assert stop.path is not None
        (stop.path.parent / "parent-done").touch()

    got, stop, _, raised = _run(monkeypatch, _passes(2), Parent(after_the_workers_began), worker)
    assert isinstance(raised, KeyboardInterrupt) and stop()
    assert sorted((r["point"], r["who"], r["status"]) for r in got) == [(0, "worker", "interrupted"),
                                                                         (1, "parent", "done")]


def test_loky_rows_a_keyboard_interrupt_in_this_process_stops_the_workers_pass(monkeypatch):
    """A KeyboardInterrupt not through the sweep's handler (no handler of ours: a test's, a
    thread's): the workers' passes are told to stop all the same, and their partial rows kept."""
    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        import os
        import time as t

        open(os.path.join(os.path.dirname(flag), f"began-{items[0][0]}"), "w").close()
        for _ in range(2000):
            if os.path.exists(flag):
                return [{"point": i, "who": "worker", "status": "interrupted"} for i, _ in items]
            t.sleep(0.01)
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    def interrupted_here(k: int, stop: sw._Stop) -> None:
        _began(stop, "began-0")
        raise KeyboardInterrupt

    t = time.monotonic()
    got, stop, _, raised = _run(monkeypatch, _passes(3), Parent(interrupted_here), worker)
    assert isinstance(raised, KeyboardInterrupt) and stop() and time.monotonic() - t < 8
    assert [(r["point"], r["status"]) for r in got] == [(0, "interrupted")]


def test_loky_rows_the_feeder_is_a_daemon_thread(monkeypatch, capsys):
    """(A feeder left waiting on a worker must not keep the interpreter from exiting.) And no
    progress lines unless asked."""
    seen: list[bool] = []

    def warm_up() -> int:  # (the feeder alive while this process's pass looks)
        import os
        import time as t

        t.sleep(0.3)
        return os.getpid()

    monkeypatch.setattr(sw, "warm_up", warm_up)

    def look(k: int, stop: sw._Stop) -> None:
        seen.extend(t.daemon for t in threading.enumerate() if t.name == "sweep-feeder")

    def worker(flag, sd, a, b, items, fixed, sel, seed, arg):  # noqa: ANN001, ANN202
        return [{"point": i, "who": "worker", "status": "done"} for i, _ in items]

    got, _, _, raised = _run(monkeypatch, _passes(1), Parent(look), worker)
    assert raised is None and [r["point"] for r in got] == [0] and seen == [True]
    assert capsys.readouterr().err == ""



FORKED = r"""
import json, multiprocessing, os, signal, sys, time
from pmm_widgets.research import sweeps as sw

sw.STOP_WAIT_SEC = 0.5

def run_pass(sd, a, b, items, fixed, sel, seed, key, report, stop):
    i, what = items[0][0], sd["what"]
    if what == "fail" and i == 0:
        raise ValueError("point 0 refused")
    if what in ("stop", "deaf") and i == 0:
        os.kill(os.getppid(), signal.SIGINT)  # as a terminal's Ctrl-C reaches the sweep
        if what == "deaf":
            time.sleep(30)  # never looks at the stop file
        for _ in range(1000):
            if os.path.exists(stop):
                return [{"point": i, "status": "interrupted"}]
            time.sleep(0.01)
    return [{"point": i, "status": "done"}]

sw.run_pass = run_pass
out = {}
for what in ("stop", "deaf", "fail"):
    got, stop, t = [], sw._Stop(), time.monotonic()
    try:
        sw._forked_rows({"what": what}, 1.0, 2.0, [[(k, {})] for k in range(6)], {}, None, None, 1, None, None,
                        stop, got)
        res = "ok"
    except KeyboardInterrupt:
        res = "ctrl-c"
    except Exception as exc:
        res = f"{type(exc).__name__}: {exc}"
    out[what] = {"res": res, "points": [r["point"] for r in got], "sec": time.monotonic() - t,
                 "children": len(multiprocessing.active_children())}
print("RESULT " + json.dumps(out))
"""


def test_forked_rows_one_worker_stops_at_the_stop_file_and_is_ended_when_deaf_to_it(tmp_path):
    """`_forked_rows` with one worker (in a fresh interpreter: forking is safe there): after a
    Ctrl-C its pass ends with its partial rows and it takes no other pass; a worker deaf to the
    stop is ended after `STOP_WAIT_SEC` (its pass lost, no process left); a worker whose pass
    failed takes no other pass (the sweep fails with the error and no rows after it)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "forked2.py"
    script.write_text(FORKED)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(next(x for x in p.stdout.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))
    assert (out["stop"]["res"], out["stop"]["points"], out["stop"]["children"]) == ("ctrl-c", [0], 0)
    deaf = out["deaf"]
    assert (deaf["res"], deaf["points"], deaf["children"]) == ("ctrl-c", [], 0) and deaf["sec"] < 10
    assert (out["fail"]["res"], out["fail"]["points"], out["fail"]["children"]) == (
        "ValueError: point 0 refused", [], 0)


# ------------------------------------------------------------------------- a swept risk limit


@pytest.fixture(scope="module")
def rec(tmp_path_factory: Any) -> Any:
    root = tmp_path_factory.mktemp("sweeps2") / "recordings"
    synth_recording(root, T0, 60, markets=2, seed=11)
    return root


def test_a_sweep_of_max_inventory_stores_each_points_limit_and_its_figure(rec, tmp_path):
    """A sweep of `max_inventory_usd`: each row's column of that name is the point's limit (and
    `sweep_results.grid_json` stores it), the largest inventory held is `max_inventory_usd_seen`
    (and the `max_inventory_usd` column of `sweep_results`, a figure). Both used to be the figure:
    the rows did not say which limit they replayed."""
    s = load_settings(record_dir=str(rec), quote_refresh_sec=1.0, paper_fill_intensity=20,
                      db_url=f"sqlite:///{tmp_path / 's.db'}")
    df = sw.sweep(T0, T0 + 60, {"max_inventory_usd": [5, 250]}, settings=s, n_jobs=1, parquet=tmp_path / "p.parquet")
    assert list(df["max_inventory_usd"]) == [5.0, 250.0]
    seen = list(df["max_inventory_usd_seen"])
    assert 0 < seen[0] < 10 and seen[0] != seen[1]
    eng = sa.create_engine(s.db_url)
    try:
        with eng.connect() as c:
            got = c.execute(sa.text("SELECT point, grid_json, max_inventory_usd, summary_json FROM sweep_results "
                                    "ORDER BY point")).all()
    finally:
        eng.dispose()
    assert [(p, json.loads(g), m) for p, g, m, _ in got] == [
        (0, {"max_inventory_usd": 5.0}, seen[0]), (1, {"max_inventory_usd": 250.0}, seen[1])]
    assert [json.loads(j)["max_inventory_usd_seen"] for *_, j in got] == seen
    plain = sw.sweep(T0, T0 + 60, {"alpha": [2]}, settings=s, n_jobs=1, write=False)
    assert "max_inventory_usd_seen" not in plain.columns and plain["max_inventory_usd"].item() > 0


def test_store_takes_the_figure_of_a_swept_name_from_its_seen_column(tmp_path):
    import pandas as pd

    db = f"sqlite:///{tmp_path / 'st.db'}"
    df = pd.DataFrame([{"point": 0, "max_inventory_usd": 50.0, "max_inventory_usd_seen": 12.5, "fills": 3,
                        "pnl_total": 1.5}])
    sw._store(db, "swX", 1.0, 2.0, ["max_inventory_usd"], df)
    sw._store(db, "swY", 1.0, 2.0, ["alpha"], df.drop(columns=["max_inventory_usd_seen"]).assign(alpha=2.0))
    eng = sa.create_engine(db)
    try:
        with eng.connect() as c:
            rows = c.execute(sa.text("SELECT sweep_id, grid_json, max_inventory_usd, fills, pnl_total "
                                     "FROM sweep_results ORDER BY sweep_id")).all()
    finally:
        eng.dispose()
    assert [(r[0], json.loads(r[1]), r[2], r[3], r[4]) for r in rows] == [
        ("swX", {"max_inventory_usd": 50.0}, 12.5, 3, 1.5), ("swY", {"alpha": 2.0}, 50.0, 3, 1.5)]
