"""A sweep stopped by Ctrl-C keeps the partial results of the points that were running.

The passes that had ended give their rows as usual; each pass running at the Ctrl-C (in this
process or in a worker) ends at its next check and gives its points' rows with their partial
summaries (status "interrupted", as a replay stopped by Ctrl-C); points never started give none.
The rows reach `sweep_results` and the Parquet file like a whole sweep's, on every local path
(on Ray: test_sweep_ray.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from sweep_helpers import GRID, T0, T1, recording
from sweep_helpers import stored as _stored

from pmm_widgets.config import load_settings
from pmm_widgets.research.synth import synth_recording

CYCLES = 181  # a whole pass's grid cycles over [T0, T1] (quote_refresh_sec 1)


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    return recording(tmp_path_factory, "sweepint")


def test_inline_ctrl_c_keeps_the_points_of_the_running_pass(rec_dir, tmp_path, monkeypatch, capsys):
    """One process, two passes of two points: a real SIGINT a sixth of the way through the first
    pass stops it at its next check; both its points are rows, interrupted, with what they
    replayed; the second pass never starts (no rows), and nothing goes on after the Ctrl-C."""
    from pmm_widgets.research.replayer import Replayer
    from pmm_widgets.research.sweeps import sweep

    real = Replayer._cycle
    first: list[object] = []
    calls = [0]

    async def cycle(self, *a, **kw):
        if not first:
            first.append(self)
        if self is first[0]:
            calls[0] += 1
            if calls[0] == 30:
                os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C reaches this process
        return await real(self, *a, **kw)

    monkeypatch.setattr(Replayer, "_cycle", cycle)
    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20,
                      db_url=f"sqlite:///{tmp_path / 's.db'}")
    try:
        df = sweep(T0, T1, GRID, settings=s, n_jobs=1, per_pass=2, progress=True, parquet=tmp_path / "p.parquet")
    except KeyboardInterrupt:  # (not left to end the test session)
        pytest.fail("the Ctrl-C left the sweep: nothing was kept")
    assert df.attrs["status"] == "interrupted" and df.attrs["total"] == 4 and df.attrs["workers"] == "inline"
    assert list(df["point"]) == [0, 1], df[["point", "status"]]
    assert list(df["status"]) == ["interrupted", "interrupted"]
    assert (df["cycles"] >= 30).all() and (df["cycles"] < CYCLES // 2).all(), list(df["cycles"])
    assert (df["events"] > 0).all() and (df["rows_read"] > 0).all()
    assert _stored(s.db_url, df.attrs["sweep_id"]) == [(int(p), st, int(f)) for p, st, f in
                                                       zip(df["point"], df["status"], df["fills"])]
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert back["point"].tolist() == [0, 1] and back["status"].tolist() == ["interrupted"] * 2
    err = capsys.readouterr().err
    assert "sweep: point 1 of 4 interrupted" in err and "sweep: point 2 of 4 interrupted" in err, err
    assert "point 3 of 4" not in err, err


WORKERS_SCRIPT = r'''
import json, multiprocessing, os, signal, sys, time
from pathlib import Path
import pandas as pd
import sqlalchemy as sa
from pmm_widgets.config import load_settings
from pmm_widgets.research import sweeps
from pmm_widgets.research.replayer import Replayer

rec, t0, t1, work, mode = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
PARENT = os.getpid()
sweeps.STOP_WAIT_SEC = 10.0

def slowed(real):
    """Replays slowed to 10 ms a cycle; at a pass's 40th cycle, a marker file of this process.
    fork: the second worker part-way sends SIGINT to the sweep process alone (once). loky: the sweep
    process's own pass, part-way, waits for the worker's to be part-way too, then SIGINT to itself."""
    count = {}

    async def cycle(self, *a, **kw):
        n = count[id(self)] = count.get(id(self), 0) + 1
        time.sleep(0.01)
        if n == 40:
            me = os.getpid()
            (work / f"m-{me}").touch()
            if mode == "fork" and len(list(work.glob("m-*"))) == 2:
                try:
                    os.close(os.open(work / "sent", os.O_CREAT | os.O_EXCL))
                    os.kill(PARENT, signal.SIGINT)
                except FileExistsError:
                    pass
            elif mode == "loky" and me == PARENT:
                deadline = time.monotonic() + 20
                while not [m for m in work.glob("m-*") if m.name != f"m-{me}"] and time.monotonic() < deadline:
                    time.sleep(0.02)
                os.kill(PARENT, signal.SIGINT)
        return await real(self, *a, **kw)

    cycle.slowed = True
    return cycle

Replayer._cycle = slowed(Replayer._cycle)

def slow_worker(stop, *args):  # (a loky worker: this function arrives by value, slows its replays)
    from pmm_widgets.research import points
    from pmm_widgets.research.replayer import Replayer
    if not getattr(Replayer._cycle, "slowed", False):
        Replayer._cycle = slowed(Replayer._cycle)
    return points.run_pass_in_worker(stop, *args)

sweeps.run_pass_in_worker = slow_worker
url = f"sqlite:///{work / 's.db'}"
s = load_settings(record_dir=rec, quote_refresh_sec=1.0, paper_fill_intensity=20, db_url=url)
grid = {"alpha": [1, 2], "paper_spread_k": [50, 100]}
started = time.monotonic()
try:
    if mode == "fork":
        df = sweeps.sweep(t0, t1, grid, settings=s, n_jobs=2, per_pass=1, start="fork", progress=True,
                          parquet=work / "p.parquet")
    else:
        df = sweeps.sweep(t0, t1, grid, settings=s, n_jobs=2, per_pass=2, start="loky", progress=True,
                          parquet=work / "p.parquet")
except KeyboardInterrupt:
    print("RESULT " + json.dumps({"escaped": True}))
    sys.exit(0)
out = {"escaped": False, "seconds": time.monotonic() - started, "attrs": {k: df.attrs.get(k) for k in
       ("status", "total", "workers")},
       "rows": df[["point", "status", "cycles", "events", "rows_read", "fills"]].to_dict(orient="records")}
eng = sa.create_engine(url)
with eng.connect() as c:
    got = c.execute(sa.text("SELECT point, summary_json, fills FROM sweep_results WHERE sweep_id = :i ORDER BY point"),
                    {"i": df.attrs["sweep_id"]}).all()
eng.dispose()
out["db"] = [[p, (sj if isinstance(sj, dict) else json.loads(sj))["status"], f] for p, sj, f in got]
back = pd.read_parquet(work / "p.parquet")
out["parquet"] = [[int(p), st, int(f)] for p, st, f in zip(back["point"], back["status"], back["fills"])]
out["forked_left"] = [c.name for c in multiprocessing.active_children() if "Fork" in c.name]
print("RESULT " + json.dumps(out, default=str))
'''


def _run_workers(rec_dir, tmp_path, mode: str) -> tuple[dict, str]:
    script = tmp_path / "workers_interrupt.py"
    script.write_text(WORKERS_SCRIPT)
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update(PMM_RECORD="off", TMPDIR=str(tmp))  # (the sweep's private directories: none left)
    p = subprocess.run([sys.executable, str(script), str(rec_dir), str(T0), str(T1), str(work), mode],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(next(x for x in p.stdout.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))
    assert not out["escaped"], "the Ctrl-C left the sweep: nothing was kept"
    assert not list(tmp.glob("pmm-sweep-*")), list(tmp.iterdir())
    return out, p.stderr


def _check_kept(out: dict) -> None:
    assert out["attrs"]["status"] == "interrupted" and out["attrs"]["total"] == 4
    for r in out["rows"]:  # each stopped part-way, with what it replayed
        assert r["status"] == "interrupted" and 40 <= r["cycles"] < CYCLES * 3 // 4 and r["events"] > 0, r
    assert out["db"] == [[r["point"], r["status"], r["fills"]] for r in out["rows"]]
    assert out["parquet"] == out["db"]
    assert out["seconds"] < 20


def test_forked_workers_hand_back_the_passes_they_were_running(rec_dir, tmp_path):
    """Two forked workers, one point a pass: a SIGINT to the sweep process alone when both are
    part-way through their first pass (a worker sends it); the workers see the stop file, hand back
    their points' partial rows and end; the two points never started are not rows."""
    out, err = _run_workers(rec_dir, tmp_path, "fork")
    assert out["attrs"]["workers"] == "fork"
    assert [r["point"] for r in out["rows"]] == [0, 1], out["rows"]
    _check_kept(out)
    assert sorted(x for x in err.splitlines() if x.startswith("sweep: point")) == [
        "sweep: point 1 of 4 interrupted", "sweep: point 2 of 4 interrupted"], err[-2000:]
    assert out["forked_left"] == []


def test_loky_workers_hand_back_the_passes_they_were_running(rec_dir, tmp_path):
    """This process and one loky worker, two points a pass: a SIGINT to this process (alone) while
    its own pass and the worker's are both part-way: both passes stop, all four points are rows,
    each interrupted with its partial summary."""
    out, err = _run_workers(rec_dir, tmp_path, "loky")
    assert out["attrs"]["workers"] == "loky"
    assert [r["point"] for r in out["rows"]] == [0, 1, 2, 3], out["rows"]
    _check_kept(out)
    assert sorted(x for x in err.splitlines() if x.startswith("sweep: point")) == [
        f"sweep: point {i} of 4 interrupted" for i in range(1, 5)], err[-2000:]


CLI = "import sys; from pmm_widgets.cli import main; sys.exit(main(sys.argv[1:]))"


def test_ctrl_c_at_the_terminal_stops_a_cli_sweep_with_its_running_points_kept(tmp_path_factory, tmp_path):
    """`pmm sweep --jobs 2` (forked workers) in its own process group, SIGINT to the whole group
    (a terminal's Ctrl-C) once a pass has ended and the next ones are under way: exit 130, the
    partial result's table printed (its status column), one line saying what was kept; the rows in
    the table, `sweep_results` and the Parquet file are the same; some stopped part-way, with what
    they replayed; no process of the group is left."""
    root = tmp_path_factory.mktemp("sweepcli") / "recordings"
    synth_recording(root, T0, 1200, markets=3, seed=5)  # (20 minutes: a pass lasts ≈ 0.5 s on an idle host)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update(PMM_RECORD="off", PMM_RECORD_DIR=str(root), PMM_PAPER_FILL_INTENSITY="20", PMM_QUOTE_REFRESH_SEC="1")
    p = subprocess.Popen([sys.executable, "-c", CLI, "sweep", "--from", "2026-11-30T10:00:00Z", "--to",
                          "2026-11-30T10:20:00Z", "--grid", "alpha=1,2", "--grid", "paper_spread_k=50,100",
                          "--per-pass", "1", "--jobs", "2", "--db-url", url, "--out", str(tmp_path / "c.parquet")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(x.startswith("sweep: point") for x in lines) and p.poll() is None:
            assert time.monotonic() < deadline, "no pass ended within 60 s"
            time.sleep(0.02)
        time.sleep(0.15)  # the next pass under way (it starts as the first ends)
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=60)
        stdout = p.stdout.read()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    reader.join(5)
    err = "".join(lines)
    assert p.returncode == 130, err[-3000:]
    said = [x for x in err.splitlines() if x.startswith("pmm sweep: interrupted")]
    assert len(said) == 1, err[-3000:]
    df = pd.read_parquet(tmp_path / "c.parquet")
    cut = df[df["status"] == "interrupted"]
    assert len(cut) >= 1 and (cut["events"] > 0).all() and (cut["cycles"] > 0).all(), df[["point", "status"]]
    assert set(df["status"]) <= {"done", "interrupted"}
    n_done = int((df["status"] == "done").sum())
    assert said[0].startswith(f"pmm sweep: interrupted: {n_done} of 4 points done, {len(cut)} stopped part-way "
                              "(status interrupted); their rows -> sweep_results (sweep_id "), said[0]
    sweep_id = said[0].split("(sweep_id ")[1].split(")")[0]
    assert _stored(url, sweep_id) == [(int(p_), st, int(f)) for p_, st, f in zip(df["point"], df["status"], df["fills"])]
    table = stdout.splitlines()
    assert "status" in table[0].split() and len(table) == 1 + len(df), stdout
    assert sum("interrupted" in x for x in table[1:]) == len(cut), stdout
    with pytest.raises(ProcessLookupError):  # every process of its group ended
        os.killpg(p.pid, 0)
