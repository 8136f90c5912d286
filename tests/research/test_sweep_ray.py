"""Sweeps on Ray: the same rows as the local paths, a Ctrl-C keeps the passes that ended and the
running ones, a failing point fails the sweep with its own error.

Why one module: the tests share one local 2-CPU Ray instance (`ray_instance`: its start-up is
5-40 s on a loaded 2-core machine, paid once here instead of once per test), shut down when the
module's last test ends, so Ray's driver threads never run during another module's tests (the fork
path refuses to fork beside other threads: `sweeps.fork_is_safe`). Each test starts on an idle
instance (`ray`: no task of an earlier test still holds a CPU)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sweep_helpers import GRID, T0, T1, recording
from sweep_helpers import comparable as _comparable
from sweep_helpers import settings as _settings
from sweep_helpers import stored as _stored

from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import RecordingError
from pmm_widgets.research.sweeps import sweep

CPUS = 2


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    return recording(tmp_path_factory, "sweepray")


@pytest.fixture(scope="module")
def local_sweep(rec_dir, tmp_path_factory):
    """The joblib sweep the Ray sweep is compared with, run before this module's Ray instance starts
    (`ray_instance` asks for it): once Ray is initialized `sweep()` runs on Ray, and Ray's driver
    threads would send the local path to loky workers instead of forked ones."""
    pytest.importorskip("ray")
    s = _settings(rec_dir, tmp_path_factory.mktemp("sweepraydb"))
    return s, sweep(T0, T1, GRID, settings=s, n_jobs=2)


@pytest.fixture(scope="module")
def ray_instance(local_sweep):
    """One local 2-CPU Ray instance for this module's tests, shut down after the last. Its
    start-up's GCS deadline is sometimes missed on a loaded 2-core machine: one retry."""
    ray = pytest.importorskip("ray")
    kw = {"num_cpus": CPUS, "include_dashboard": False, "log_to_driver": False}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        try:
            ray.init(**kw)
        except Exception:  # noqa: BLE001 - ray raises bare Exception for a GCS start-up timeout
            ray.shutdown()
            ray.init(**kw)
        try:
            yield ray
        finally:
            ray.shutdown()


def _idle(ray: Any, timeout: float) -> bool:
    """Whether every CPU of the instance is free within `timeout` s (no task holds one). Ray's
    resource view, polled: a probe task needing every CPU would wait for a worker process to start
    as well (the sweeps' actors take and end some), 5-15 s on a loaded 2-core machine."""
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < CPUS:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def ray(ray_instance):
    """The module's Ray instance, idle: an earlier test's cancelled tasks ended."""
    assert _idle(ray_instance, 30), "a task of an earlier test still holds a CPU"
    return ray_instance


def _alive_actors(name: str, timeout: float) -> dict[str, str]:
    """The actors of class `name` that Ray's actor table does not say are dead within `timeout` s,
    with their states (the sweep kills its actor, maybe before it started: no process of its own to
    watch; `ray.kill` returns before the table says so). The table is Ray's debugging API
    (`ray.util.state` needs the dashboard, not started here)."""
    from ray._private import state

    deadline = time.monotonic() + timeout
    while True:
        seen = {k: a["State"] for k, a in state.actors().items() if a["ActorClassName"].endswith(name)}
        alive = {k: st for k, st in seen.items() if st != "DEAD"}
        if seen and not alive:
            return {}
        if time.monotonic() > deadline:
            return alive or {"-": f"no actor of class {name}"}
        time.sleep(0.1)


def test_joblib_and_ray_give_the_same_rows(local_sweep, ray):
    s, jl = local_sweep
    assert jl.attrs["backend"] == "joblib" and len(jl) == 4
    assert list(jl["alpha"]) == [1.0, 1.0, 2.0, 2.0] and list(jl["paper_spread_k"]) == [50.0, 100.0, 50.0, 100.0]
    assert jl["fills"].nunique() > 1  # the parameters matter
    for col in ("fills_per_min", "pnl_total", "spread_pnl", "inventory_pnl", "max_inventory_usd", "markout_5s_usd"):
        assert col in jl.columns
    rr = sweep(T0, T1, GRID, settings=s)  # ray.init() already called: Ray tasks
    assert rr.attrs["backend"] == "ray"
    assert _comparable(rr) == _comparable(jl)
    # both went to the table and to Parquet
    db = sa.create_engine(s.db_url)
    with db.connect() as c:
        rows = c.execute(sa.text("SELECT sweep_id, point, fills, grid_json FROM sweep_results ORDER BY sweep_id, point")).all()
    db.dispose()
    assert len(rows) == 8 and {r[0] for r in rows} == {jl.attrs["sweep_id"], rr.attrs["sweep_id"]}
    back = pd.read_parquet(jl.attrs["parquet"])
    assert list(back["fills"]) == list(jl["fills"]) and jl.attrs["parquet"].startswith(str(Path(s.record_dir).parent / "sweeps"))


def test_a_failing_point_fails_the_ray_sweep_with_its_own_error(ray, rec_dir, tmp_path, monkeypatch, capsys):
    """As on the local paths (test_sweeps' test_a_failing_point_fails_the_sweep): a point whose
    recordings are not there fails in its Ray task; the sweep raises that point's own error, and
    `pmm sweep --ray` says it in one line naming the point's directory (Ray's wrapper of it, which
    the sweep used to raise, has the task's whole traceback as its text: the CLI printed that as
    its "one line"). The other pass (a cycle every 2 ms: minutes of replay) is cancelled: both
    CPUs are free again within seconds; the stop actors are dead."""
    from pmm_widgets.cli import main
    from pmm_widgets.research import sweeps
    from pmm_widgets.research.points import StopFlag

    class FailingSweepFlag(StopFlag):
        """The sweep's stop flag, under a name of its own (in Ray's actor table)."""

    monkeypatch.setattr(sweeps, "StopFlag", FailingSweepFlag)
    bad = tmp_path / "nothing-here"
    said = f"no readable recordings for 2026-11-30T10:00:00.000Z .. 2026-11-30T10:03:00.000Z under {bad}"
    code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:03:00Z", "--ray", "auto",
                 "--grid", f"record_dir={rec_dir},{bad}", "--grid", "quote_refresh_sec=0.002",
                 "--db-url", f"sqlite:///{tmp_path / 'c.db'}", "--out", str(tmp_path / "c.parquet")])
    assert (code, capsys.readouterr().err) == (1, f"pmm sweep: {said}\n")
    started = time.monotonic()
    with pytest.raises(RecordingError) as info:
        sweep(T0, T1, {"record_dir": [str(rec_dir), str(bad)], "quote_refresh_sec": [0.002]},
              settings=_settings(rec_dir, tmp_path), write=False)
    took = time.monotonic() - started
    err = info.value
    assert type(err) is RecordingError, type(err).__mro__  # the task's exception, not Ray's wrapper of it
    assert str(err) == said
    assert any("in a Ray task of the sweep" in n for n in getattr(err, "__notes__", [])), err  # (its traceback)
    assert took < 30, took  # (not after the other pass's minutes)
    assert _idle(ray, 20), "the other pass was not cancelled: it still holds its CPU"
    assert not (alive := _alive_actors("FailingSweepFlag", 10)), alive


def _watched_flag(work: Path, deaf: int | None = None) -> type:
    """The sweep's stop flag leaving a file `polled-K` in `work` at pass K's second poll (and never
    telling pass `deaf` to stop). Made in a function: Ray pickles the class by value (a class of a
    test module would have to be importable in Ray's workers)."""
    from pmm_widgets.research.points import StopFlag

    class Watched(StopFlag):
        def __init__(self) -> None:
            super().__init__()
            self.polls: dict[int, int] = {}

        def poll(self, k: int) -> bool:
            n = self.polls[k] = self.polls.get(k, 0) + 1
            if n == 2:
                (Path(work) / f"polled-{k}").touch()
            return super().poll(k) and k != deaf

    return Watched


def test_ray_ctrl_c_keeps_the_passes_that_ended_and_the_running_ones(ray, rec_dir, tmp_path, monkeypatch, capsys):
    """A Ray sweep (the module's local 2-CPU instance, `ray.init()` already called) of four one-point passes
    of different lengths (each changes `quote_refresh_sec`: a pass of 1 s cycles takes a fraction
    of one of 0.02 s): a real SIGINT to this process once a pass has ended and two long ones are
    part-way (the stop actor, watched here, was polled twice by each: ≥ 0.5 s into its replay).
    Ray does not start the tasks in the order they were submitted: which passes ended and which
    ran is read as it happens. The ended passes' rows are done; the two running passes stop at
    their next poll and hand back their rows, interrupted, with part of the window replayed; a
    pass not begun (queued) begins after the stop and ends with no row. The rows are in `sweep_results` and the Parquet
    file, and the sweep returns within seconds of the Ctrl-C. (After 40 s the SIGINT comes anyway if
    the sweep still runs: a sweep that keeps nothing fails here, not by waiting.)"""
    from pmm_widgets.research import points, sweeps

    monkeypatch.setattr(sweeps, "StopFlag", _watched_flag(tmp_path))
    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20,
                      db_url=f"sqlite:///{tmp_path / 'r.db'}")
    ended: set[int] = set()  # the points (one a pass: the pass's index) whose pass ended, as reported
    at_ctrl_c: dict[str, set[int]] = {"ended": set(), "running": set()}
    sent: list[float] = []
    over = threading.Event()
    real = points.report_done

    def report(index: int, total: int, status: str = "done") -> None:
        ended.add(index)
        real(index, total, status)

    def ctrl_c() -> None:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not over.is_set():
            done = set(ended)
            # part-way: polled twice and not ended; the short pass (0) is never waited for as running
            running = {int(f.name.removeprefix("polled-")) for f in tmp_path.glob("polled-*")} - done - {0}
            if done and len(running) == 2:  # (2 CPUs: no other pass runs)
                at_ctrl_c.update(ended=done, running=running)
                break
            time.sleep(0.05)
        if over.is_set():  # (the sweep ended by itself: no SIGINT to the test session)
            return
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C reaches the sweep's process

    monkeypatch.setattr(points, "report_done", report)  # (as `report_rows` calls it)
    timer = threading.Thread(target=ctrl_c, daemon=True)
    timer.start()
    try:
        df = sweeps.sweep(T0, T1, {"quote_refresh_sec": [1, 0.01, 0.011, 0.012]}, settings=s, progress=True,
                          parquet=tmp_path / "r.parquet")
    except KeyboardInterrupt:  # (not left to end the test session)
        pytest.fail("the Ctrl-C left the sweep: nothing was kept")
    finally:
        over.set()
    returned = time.monotonic()
    timer.join(10)
    assert sent, f"the sweep ran to its end ({df.attrs['status']}): no pass ended while two polled a stop flag"
    assert df.attrs["status"] == "interrupted" and df.attrs["total"] == 4 and df.attrs["backend"] == "ray"
    assert len(df) >= 3, df  # (the old code kept nothing)
    done, cut = at_ctrl_c["ended"], at_ctrl_c["running"]
    assert done and len(cut) == 2, (done, cut)  # (the trigger's condition: met before the 40 s)
    assert returned - sent[0] < 5, returned - sent[0]
    assert df.attrs["passes"] == [[0], [1], [2], [3]]
    assert list(df["point"]) == sorted(done | cut), df[["point", "status", "events"]]
    status = dict(zip(df["point"], df["status"]))
    # a running pass may end in the moment the stop flag takes to reach it: then it is done, whole
    late = {p for p in cut if status[p] == "done"}
    assert cut - late, status  # (at least one running pass was cut)
    assert {p for p, st in status.items() if st == "done"} == done | late, status
    assert {p for p, st in status.items() if st == "interrupted"} == cut - late, status
    whole = int(df["events"].max())  # (a whole pass's events: the window's)
    for p, e in zip(df["point"], df["events"]):
        assert (e == whole) if p in done | late else (0 < e < whole), (p, list(df["events"]))
    assert (df["cycles"] > 0).all(), list(df["cycles"])
    assert _stored(s.db_url, df.attrs["sweep_id"]) == [(int(p), st, int(f)) for p, st, f in
                                                       zip(df["point"], df["status"], df["fills"])]
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert back["point"].tolist() == list(df["point"]) and back["status"].tolist() == list(df["status"])
    assert back["events"].tolist() == df["events"].tolist()
    err = capsys.readouterr().err
    lines = sorted(x for x in err.splitlines() if x.startswith("sweep: point"))
    assert lines == sorted(f"sweep: point {p + 1} of 4 {status[p]}" for p in status), err


def test_a_second_ray_ctrl_c_ends_the_stop_wait(ray, rec_dir, tmp_path, monkeypatch):
    """Ctrl-C twice: the first stops the sweep's two running passes (as above); one of them never
    hears the stop (its flag answers "go on" to it alone), so the sweep would wait
    `STOP_WAIT_SEC` (60 s here) for it; a second Ctrl-C once the other's rows came back ends that
    wait: the sweep returns within seconds with the rows it has (the stopped pass's, interrupted),
    the deaf pass cancelled (its CPU free again), the stop actor dead."""
    from pmm_widgets.research import points, sweeps

    monkeypatch.setattr(sweeps, "StopFlag", _watched_flag(tmp_path, deaf=1))  # pass 1 is never told to stop
    monkeypatch.setattr(sweeps, "STOP_WAIT_SEC", 60.0)
    ended: dict[int, str] = {}
    sent: list[float] = []
    over = threading.Event()
    real = points.report_done

    def report(index: int, total: int, status: str = "done") -> None:
        ended[index] = status
        real(index, total, status)

    def until(cond, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not cond():
            if over.is_set() or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def ctrl_c_twice() -> None:
        for cond in (lambda: not ended and {f.name for f in tmp_path.glob("polled-*")} == {"polled-0", "polled-1"},
                     lambda: 0 in ended):
            if not until(cond, 40) or over.is_set():  # (the sweep ended by itself: no SIGINT to the test session)
                return
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(points, "report_done", report)
    timer = threading.Thread(target=ctrl_c_twice, daemon=True)
    timer.start()
    try:
        df = sweep(T0, T1, {"quote_refresh_sec": [0.02, 0.005]}, settings=_settings(rec_dir, tmp_path),
                   progress=True, write=False)
    except KeyboardInterrupt:  # (not left to end the test session)
        pytest.fail("the second Ctrl-C left the sweep: the rows collected were lost")
    finally:
        over.set()
    returned = time.monotonic()
    timer.join(10)
    assert len(sent) == 2, (sent, ended, df.attrs.get("status"))
    assert returned - sent[1] < 5, returned - sent[1]  # (not after the 60 s wait for the deaf pass)
    assert df.attrs["status"] == "interrupted" and df.attrs["passes"] == [[0], [1]]
    assert list(df["point"]) == [0] and list(df["status"]) == ["interrupted"] and ended == {0: "interrupted"}
    assert _idle(ray, 20), "the deaf pass was not cancelled: it still holds its CPU"
    assert not (alive := _alive_actors("Watched", 10)), alive


def _late_flag(work: Path) -> type:
    """The sweep's stop flag, slow to start: its actor's construction waits until a file `go` is in
    `work` (30 s at most), as an actor does that waits for a worker process on a loaded machine."""
    from pmm_widgets.research.points import StopFlag

    class Late(StopFlag):
        def __init__(self) -> None:
            deadline = time.monotonic() + 30
            while not (Path(work) / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            super().__init__()

    return Late


def _marked_pass(work: Path) -> Any:
    """The sweep's Ray task (`points.run_pass_on_ray`: `run_pass` stopped by `RayStop`), leaving in
    `work` a file `entered-K` holding its worker's pid when pass K's task starts, and `replaying-K`
    once its stop told it to go on (the pass replays)."""
    from pmm_widgets.research import points

    def run(flag: Any, k: int, *args: Any) -> list[dict[str, Any]]:
        (Path(work) / f"entered-{k}").write_text(str(os.getpid()))
        stop = points.RayStop(flag, k)
        seen: list[bool] = []

        def halt() -> bool:
            if stop():
                return True
            if not seen:
                seen.append(True)
                (Path(work) / f"replaying-{k}").touch()
            return False

        return points.run_pass(*args, stop=halt)

    return run


def _until(cond: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_ray_ctrl_c_while_the_stop_flag_starts_loses_no_replayed_rows(ray, rec_dir, tmp_path, monkeypatch):
    """A Ctrl-C while the sweep's stop actor is still starting (its construction held here, longer
    than the sweep's stop wait, `STOP_WAIT_SEC` 3 s): the two long passes' tasks had started. A
    pass that replayed anything keeps its rows (it used to replay while the actor started, its asks
    queued there; the flag then answered no one in time and both were cancelled, their seconds of
    replay lost): a pass now begins only once the flag answered its first ask, so none began, and
    none is lost. The sweep returns within seconds of the stop wait, its tasks cancelled (both
    CPUs free again), the actor dead."""
    from pmm_widgets.research import sweeps

    monkeypatch.setattr(sweeps, "StopFlag", _late_flag(tmp_path))
    monkeypatch.setattr(sweeps, "run_pass_on_ray", _marked_pass(tmp_path))
    monkeypatch.setattr(sweeps, "STOP_WAIT_SEC", 3.0)
    sent: list[float] = []
    over = threading.Event()

    def ctrl_c() -> None:
        if not _until(lambda: over.is_set() or len(list(tmp_path.glob("entered-*"))) == 2, 40) or over.is_set():
            return
        time.sleep(1.0)  # (the old code's passes replay meanwhile)
        if not over.is_set():
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=ctrl_c, daemon=True)
    timer.start()
    try:
        df = sweep(T0, T1, {"quote_refresh_sec": [0.005, 0.006]}, settings=_settings(rec_dir, tmp_path), write=False)
    except KeyboardInterrupt:  # (not left to end the test session)
        pytest.fail("the Ctrl-C left the sweep")
    finally:
        over.set()
        (tmp_path / "go").touch()  # (the actor, if still there, ends its construction)
    returned = time.monotonic()
    timer.join(10)
    assert sent, f"the sweep ended ({df.attrs['status']}) before both passes' tasks started"
    assert df.attrs["status"] == "interrupted" and df.attrs["total"] == 2
    replayed = {int(f.name.removeprefix("replaying-")) for f in tmp_path.glob("replaying-*")}
    kept = set(df["point"]) if len(df) else set()
    assert replayed <= kept, f"passes {sorted(replayed - kept)} replayed and their rows were lost"
    assert returned - sent[0] < 3.0 + 5, returned - sent[0]
    assert _idle(ray, 20), "a pass was not cancelled: it still holds its CPU"
    assert not (alive := _alive_actors("Late", 10)), alive


def _killer(work: Path, k: int, kills: int, first_done: Any, over: threading.Event) -> tuple[threading.Thread, list[int]]:
    """A thread that, once `first_done()`, kills the worker process of pass `k` (SIGKILL, its pid
    from the task's `entered-K` file, `_marked_pass`) while it replays, `kills` times (each run of
    the pass: Ray runs it again after a death). The pids it killed."""
    killed: list[int] = []

    def run() -> None:
        entered, replaying = Path(work) / f"entered-{k}", Path(work) / f"replaying-{k}"
        for _ in range(kills):
            if not _until(lambda: over.is_set() or (first_done() and replaying.exists()), 60) or over.is_set():
                return
            pid = int(entered.read_text())
            entered.unlink()
            replaying.unlink()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, killed


def test_a_ray_worker_that_dies_fails_the_sweep_in_one_line_and_keeps_the_rows_done(ray, rec_dir, tmp_path,
                                                                                     monkeypatch, capsys):
    """The worker process of a running pass is killed (SIGKILL) once the other pass has ended: Ray
    runs the pass again (`RAY_PASS_RETRIES`, 1 here: a second kill); then the sweep fails with a
    one-line SweepError naming the point, through the API and `pmm sweep --ray` (exit code 1, its
    last stderr line), and the pass that ended keeps its rows (`sweep_results`, written as the
    failure's warning says); both CPUs are free again, the stop actors dead."""
    from pmm_widgets.cli import main
    from pmm_widgets.research import points, sweeps

    monkeypatch.setattr(sweeps, "run_pass_on_ray", _marked_pass(tmp_path))
    ended: set[int] = set()
    real = points.report_done

    def report(index: int, total: int, status: str = "done") -> None:
        ended.add(index)
        real(index, total, status)

    monkeypatch.setattr(points, "report_done", report)
    grid = {"quote_refresh_sec": [1, 0.005]}  # pass 0 ends in a second; pass 1 replays for a minute
    db = f"sqlite:///{tmp_path / 'k.db'}"

    # the API: a death, the pass run again, a second death
    monkeypatch.setattr(sweeps, "RAY_PASS_RETRIES", 1)
    over = threading.Event()
    t, killed = _killer(tmp_path, 1, 2, lambda: 0 in ended, over)
    try:
        with pytest.raises(sweeps.SweepError) as info:
            sweep(T0, T1, grid, settings=_settings(rec_dir, tmp_path), db_url=db, progress=True,
                  parquet=tmp_path / "k.parquet")
    finally:
        over.set()
    t.join(10)
    assert len(killed) == 2 and killed[0] != killed[1], killed  # (the second kill: the pass's second run)
    said = str(info.value)
    assert "\n" not in said and said.startswith("the Ray task of point 2 of 2 failed (WorkerCrashedError: "), said
    rows = _stored(db, pd.read_parquet(tmp_path / "k.parquet")["sweep_id"].iloc[0])
    assert [(p, st) for p, st, _f in rows] == [(0, "done")], rows

    # the CLI: one death (no run again), exit code 1, the error as the last line
    monkeypatch.setattr(sweeps, "RAY_PASS_RETRIES", 0)
    ended.clear()
    capsys.readouterr()
    over = threading.Event()
    t, killed = _killer(tmp_path, 1, 1, lambda: 0 in ended, over)
    try:
        code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:03:00Z", "--ray", "auto",
                     "--grid", "quote_refresh_sec=1,0.005", "--set", f"record_dir={rec_dir}",
                     "--set", "paper_fill_intensity=20", "--db-url", f"sqlite:///{tmp_path / 'c.db'}",
                     "--out", str(tmp_path / "c.parquet")])
    finally:
        over.set()
    t.join(10)
    err = capsys.readouterr().err
    assert len(killed) == 1, (killed, err)
    assert code == 1, err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("pmm sweep: the Ray task of point 2 of 2 failed (WorkerCrashedError: "), err
    back = pd.read_parquet(tmp_path / "c.parquet")
    assert back["point"].tolist() == [0] and back["status"].tolist() == ["done"]
    assert _idle(ray, 20), "a pass still holds its CPU"
    assert not (alive := _alive_actors("StopFlag", 10)), alive
