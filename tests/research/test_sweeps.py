"""Sweeps: the grid's points replayed in parallel; results land in `sweep_results` and a Parquet
file. The Ray tests (the same rows as joblib's, ...) are in test_sweep_ray.py, on one Ray instance."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from sweep_helpers import GRID, T0, T1, recording
from sweep_helpers import comparable as _comparable
from sweep_helpers import settings as _settings

from pmm_widgets.cli import main
from pmm_widgets.config import ConfigError, load_settings
from pmm_widgets.research.sweeps import parse_grid, sweep


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    return recording(tmp_path_factory, "sweeprec")


def test_cli_sweep_json_and_bad_grid(rec_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    monkeypatch.setenv("PMM_PAPER_FILL_INTENSITY", "20")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", "--grid", "alpha=1,3",
                 "--set", "quote_refresh_sec=1", "--jobs", "1", "--db-url", url, "--json",
                 "--out", str(tmp_path / "o.parquet")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["alpha"] for r in out["rows"]] == [1.0, 3.0]
    assert (tmp_path / "o.parquet").exists()
    import sqlalchemy as sa

    with sa.create_engine(url).connect() as c:  # each PnL component has its column (it was only in summary_json)
        row = c.execute(sa.text("SELECT fees, rebates, rewards, settlement, pnl_total, run_id FROM sweep_results "
                                "ORDER BY point")).first()
    assert row is not None and row.rebates == out["rows"][0]["rebates"] and row.settlement == 0.0
    df = pd.read_parquet(tmp_path / "o.parquet")  # `problems` a count, as in the summary; the text beside it
    assert df["problems"].tolist() == [r["problems"] for r in out["rows"]] and df["problem_text"].map(type).eq(str).all()
    # a sweep point's run id: its rows are not written; the report says how to get them
    assert main(["report", "--run-id", row.run_id, "--db-url", url]) == 2
    err = capsys.readouterr().err
    assert f"no such replay run in this DB (newest: none); it is a point of sweep {out['sweep_id']}" in err, err
    assert main(["report", "--mode", "replay", "--db-url", url]) == 0
    assert "no orders or fills recorded yet: run `pmm replay` first" in capsys.readouterr().out
    assert main(["replay", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z",
                 "--fill-model", "bogus", "--db-url", url]) == 2
    assert "pmm: --fill-model bogus: Input should be 'intensity', 'queue' or 'prob_queue'" in capsys.readouterr().err
    assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z",
                 "--grid", "nonsense=1", "--db-url", url]) == 2
    assert "nonsense" in capsys.readouterr().err
    # a bad value, a value or a name given twice: one line naming it, exit 2, before any replay
    for grid, said in ((["alpha=1,-1"], "grid alpha=-1: Input should be greater than 0"),
                       (["alpha=1,x"], "grid alpha=x: Input should be a valid number"),
                       (["quote_refresh_sec=0"], "grid quote_refresh_sec=0: Input should be greater than 0"),
                       (["alpha=1,2,1"], "--grid alpha: value 1 given twice"),
                       (["alpha=1.0,1"], "--grid alpha: value 1 given twice (1.0 and 1 are one value)"),
                       (["alpha=1", "alpha=2"], "--grid alpha: given twice")):
        args = [a for g in grid for a in ("--grid", g)]
        assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", *args,
                     "--db-url", url]) == 2, grid
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    # where the rows go is checked before any point runs (it used to fail after all of them, keeping nothing)
    for where, said in ((["--out", str(tmp_path)], f"pmm sweep: {tmp_path}: a directory"),
                        (["--db-url", f"sqlite:///{tmp_path / 'a_file' / 'x.db'}"], "a_file")):
        (tmp_path / "a_file").write_text("")
        assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", "--grid", "alpha=1,3",
                     "--jobs", "1", "--db-url", url, *where]) == 1, where
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1 and "point" not in err, err  # no point ran (each says so)
    assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", "--grid", "alpha=1,3",
                 "--markets", "no-such-market", "--db-url", url]) == 1  # not a sweep of zero markets
    assert "pmm sweep: markets no-such-market: not in the universe recorded" in capsys.readouterr().err
    with pytest.raises(ValueError):
        parse_grid(["alpha"])


def test_an_address_where_no_ray_cluster_answers_fails_at_once(rec_dir, tmp_path, monkeypatch, capsys):
    """`--ray HOST:PORT` with nothing there used to sit in `ray.init`'s retries for minutes (its own
    log lines on the terminal); now one line naming the address, in seconds. `--jobs 0` (joblib
    has no meaning for it) is a usage error."""
    import socket

    from pmm_widgets.research.sweeps import SweepError, _reachable

    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens on it now
    for addr in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(SweepError, match=rf"--ray {addr}: no Ray cluster answers there"):
            _reachable(addr)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        _reachable(f"127.0.0.1:{srv.getsockname()[1]}")  # something answers: ray.init's turn
    _reachable("auto")  # not a host and port: left to ray.init
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    base = ["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--grid", "alpha=1,3",
            "--db-url", f"sqlite:///{tmp_path / 'r.db'}"]
    assert main([*base, "--jobs", "0"]) == 2
    assert "--jobs: expected a number of processes" in capsys.readouterr().err
    pytest.importorskip("ray")
    assert main([*base, "--ray", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"pmm sweep: --ray 127.0.0.1:{port}: no Ray cluster answers there"), err


def test_no_ray_import_unless_ray_is_running():
    """Finding out that Ray is not running must not import it (≈ 1.5 CPU-s before every sweep)."""
    import subprocess
    import sys

    code = ("import sys; from pmm_widgets.research import sweeps; "
            "assert sweeps._ray_active(None) is None; assert 'ray' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("order", ["bad_first", "bad_last"])
def test_a_failing_point_fails_the_sweep(rec_dir, tmp_path, order):
    """A point that fails in the worker (taken from the front) or in this process (from the end)
    fails the whole sweep with its own error, and nothing is left running."""
    from pmm_widgets.research.recordings import RecordingError

    dirs = [str(tmp_path / "nothing-here"), str(rec_dir)]
    if order == "bad_last":
        dirs.reverse()
    with pytest.raises(RecordingError):
        sweep(T0, T1, {"record_dir": dirs}, settings=_settings(rec_dir, tmp_path), n_jobs=2, write=False)


def test_a_failing_point_keeps_the_points_done_before_it(rec_dir, tmp_path, monkeypatch, capsys):
    """The sweep still fails with the point's error (exit 1, one line), but the points replayed
    before it are written (sweep_results and the Parquet file) and the log says where: they used to
    be lost with the failing point."""
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    bad = tmp_path / "nothing-here"
    code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", "--db-url", url,
                 "--grid", f"record_dir={rec_dir},{bad}", "--grid", "alpha=1,2", "--jobs", "1", "--per-pass", "1"])
    err = capsys.readouterr().err
    assert code == 1 and f"pmm sweep: no readable recordings for 2026-11-30T10:00:00.000Z .. 2026-11-30T10:02:00.000Z under {bad}" in err
    assert "sweep: 2 of 4 points done before the failure below: their rows -> sweep_results (sweep_id sw" in err
    with sa.create_engine(url).connect() as c:
        rows = c.execute(sa.text("select sweep_id, point, grid_json from sweep_results order by point")).all()
    assert [r.point for r in rows] == [0, 1] and len({r.sweep_id for r in rows}) == 1
    assert [json.loads(r.grid_json)["record_dir"] for r in rows] == [str(rec_dir)] * 2
    parquet = rec_dir.parent / "sweeps" / f"{rows[0].sweep_id}.parquet"
    assert str(parquet) in err and list(pd.read_parquet(parquet)["point"]) == [0, 1]


def test_a_grid_of_db_urls_is_refused(rec_dir, tmp_path, capsys):
    """`--grid db_url=...` changed no replay (the rows go to the sweep's own DB) and printed every
    URL, password included, in the table, the Parquet file and each row's grid_json."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    secret = "postgresql+psycopg://u:pw-hidden@127.0.0.1:1/db"
    assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--db-url", url,
                 "--grid", f"db_url={secret},{url}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pmm: --grid db_url: where the sweep's rows go") and "pw-hidden" not in err
    with pytest.raises(ValueError, match="grid: db_url: where the sweep's rows go"):
        sweep(T0, T1, {"db_url": [secret, url]}, settings=_settings(rec_dir, tmp_path), n_jobs=1)


def test_a_name_both_fixed_and_swept_and_a_secret_in_params_are_refused(rec_dir, tmp_path, capsys):
    """`--set alpha=5 --grid alpha=1,2`: the grid's values replaced the fixed one silently (the
    table said alpha 1 and 2, the user asked for 5 too); `params={"private_key": ...}` was taken by
    the Python API where `--set` and `--grid` refuse secrets. Both refused before any replay."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--db-url", url,
                 "--set", "alpha=5", "--grid", "alpha=1,2"]) == 2
    assert capsys.readouterr().err.startswith("pmm: --grid alpha: given a fixed value too")
    s = _settings(rec_dir, tmp_path)
    with pytest.raises(ValueError, match="paper_spread_k: given a fixed value too"):
        sweep(T0, T1, {"paper_spread_k": [50, 100]}, settings=s, params={"PMM_PAPER_SPREAD_K": 70}, n_jobs=1)
    with pytest.raises(ValueError, match="private_key: secrets are read from the environment"):
        sweep(T0, T1, {"alpha": [1, 2]}, settings=s, params={"private_key": "0x" + "11" * 32}, n_jobs=1)
    assert not (tmp_path / "f.db").exists()


def test_a_large_grid_of_parameters_is_validated_once_per_distinct_setting(rec_dir, tmp_path, monkeypatch):
    """Every point used to build a whole `Settings` (≈ 8 ms: environment and .env read again):
    a 100 x 100 grid of parameters spent 80 s of CPU before the sweep said anything (here: that the
    window has no recording). Parameters are checked per point, settings once per distinct set."""
    import pmm_widgets.research.sweeps as sw
    from pmm_widgets.research.recordings import RecordingError

    built = []

    class Counting(sw.Settings):
        def __init__(self, **kw):
            built.append(1)
            super().__init__(**kw)

    monkeypatch.setattr(sw, "Settings", Counting)
    s = load_settings(record_dir=str(tmp_path / "none"), db_url=f"sqlite:///{tmp_path / 'v.db'}")
    grid = {"alpha": [1 + i / 10 for i in range(30)], "paper_spread_k": list(range(10, 40))}
    with pytest.raises(RecordingError, match="no readable recordings"):
        sweep(T0, T1, grid, settings=s, n_jobs=1)
    assert len(built) == 1
    built.clear()
    with pytest.raises(RecordingError, match="no readable recordings"):  # one per distinct set of settings
        sweep(T0, T1, {**grid, "quote_refresh_sec": [1, 2]}, settings=s, n_jobs=1)
    assert len(built) == 2
    with pytest.raises(ConfigError, match=r"grid alpha=-1: "):  # a bad value is still found before anything runs
        sweep(T0, T1, {**grid, "alpha": [1, -1]}, settings=s, n_jobs=1)


FORK_SCRIPT = r'''
import json, sys, threading
import pmm_widgets.research.sweeps as sw
from pmm_widgets.config import load_settings
from pmm_widgets.research.sweeps import TIMING_COLUMNS, sweep

T0, T1 = float(sys.argv[2]), float(sys.argv[3])
GRID = {"alpha": [1, 2], "paper_spread_k": [50, 100]}
s = load_settings(record_dir=sys.argv[1], quote_refresh_sec=1.0, paper_fill_intensity=20)
out = {"threads_at_start": threading.active_count()}

def rows(df):
    return df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns]).to_dict(orient="records")

inline = sweep(T0, T1, GRID, settings=s, n_jobs=1, write=False)
forked = sweep(T0, T1, GRID, settings=s, n_jobs=2, write=False, progress=True)
out["workers"] = [inline.attrs["workers"], forked.attrs["workers"]]
out["same_rows"] = rows(inline) == rows(forked)
out["fills"] = list(forked["fills"])

stop = threading.Event()   # another thread alive: forking is not safe, loky workers instead
t = threading.Thread(target=stop.wait)
t.start()
try:
    out["safe_with_a_thread"] = sw.fork_is_safe()
    loky = sweep(T0, T1, GRID, settings=s, n_jobs=2, write=False)
finally:
    stop.set()
    t.join()
out["loky_workers"] = loky.attrs["workers"]
out["loky_same_rows"] = rows(loky) == rows(inline)

real = sw.run_pass

def fails_at_2(*args):
    if any(i == 2 for i, _ in args[3]):
        raise ValueError("point 2 refused")
    return real(*args)

sw.run_pass = fails_at_2   # a forked worker runs this process's code: it fails there
try:
    sweep(T0, T1, GRID, settings=s, n_jobs=2, write=False, start="fork")
    out["failure"] = None
except ValueError as exc:
    out["failure"] = str(exc)
import multiprocessing
out["children_left"] = [c.name for c in multiprocessing.active_children()]
print("RESULT " + json.dumps(out))
'''


def test_forked_workers_inherit_the_window_and_give_the_same_rows(rec_dir, tmp_path):
    """In a process with no other thread (a CLI, a script) the workers are forked once the window is
    read: the same rows as one process; their progress lines reach stderr; with another thread alive
    the loky workers are used instead (same rows); a point failing in a forked worker fails the
    sweep with its own error and leaves no process behind. In a fresh interpreter: this test
    process may run other threads (Ray's), where forking is not safe."""
    import subprocess
    import sys

    script = tmp_path / "fork_sweep.py"
    script.write_text(FORK_SCRIPT)
    p = subprocess.run([sys.executable, str(script), str(rec_dir), str(T0), str(T1)], capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(next(x for x in p.stdout.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))
    assert out["threads_at_start"] == 1
    assert out["workers"] == ["inline", "fork"] and out["same_rows"], out
    assert len(set(out["fills"])) > 1  # the parameters matter: rows that differ, not one row four times
    assert sorted(x for x in p.stderr.splitlines() if x.startswith("sweep: point")) == [
        f"sweep: point {i} of 4 done" for i in range(1, 5)]
    assert out["safe_with_a_thread"] is False and out["loky_workers"] == "loky" and out["loky_same_rows"]
    assert out["failure"] is not None and "point 2 refused" in out["failure"]
    assert not [n for n in out["children_left"] if "Fork" in n], out["children_left"]  # (the loky worker stays, reusable)


def test_sweep_refuses_an_unknown_start(rec_dir, tmp_path):
    with pytest.raises(ValueError, match="start"):
        sweep(T0, T1, GRID, settings=_settings(rec_dir, tmp_path), n_jobs=2, write=False, start="thread")


def test_ctrl_c_keeps_the_points_already_replayed(rec_dir, tmp_path, monkeypatch):
    """A Ctrl-C during the third point of a one-process sweep (as a replay takes it): the result is
    the two points replayed before it, marked interrupted, the same rows as in the whole sweep,
    written to `sweep_results` and the Parquet file like a whole sweep's."""
    from pmm_widgets.research import sweeps

    real = sweeps.run_pass
    calls: list[int] = []

    def third_interrupted(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    s = _settings(rec_dir, tmp_path)
    monkeypatch.setattr(sweeps, "run_pass", third_interrupted)
    try:
        got = sweep(T0, T1, GRID, settings=s, n_jobs=1, per_pass=1, parquet=tmp_path / "part.parquet")
    except KeyboardInterrupt:  # (not left to end the test session)
        pytest.fail("the Ctrl-C left the sweep: the points already replayed were not kept")
    assert got.attrs["status"] == "interrupted" and got.attrs["total"] == 4
    assert list(got["point"]) == [0, 1]
    monkeypatch.setattr(sweeps, "run_pass", real)
    whole = sweep(T0, T1, GRID, settings=s, n_jobs=1, per_pass=1, write=False)
    assert whole.attrs["status"] == "done" and len(whole) == 4
    assert _comparable(got) == _comparable(whole.iloc[:2])
    assert pd.read_parquet(tmp_path / "part.parquet")["point"].tolist() == [0, 1]
    eng = sa.create_engine(s.db_url)
    with eng.connect() as c:
        stored = c.execute(sa.text("SELECT point FROM sweep_results WHERE sweep_id = :i ORDER BY point"),
                           {"i": got.attrs["sweep_id"]}).scalars().all()
    eng.dispose()
    assert stored == [0, 1]


INTERRUPT_SCRIPT = """
import os, signal, sys, time
from pmm_widgets.research import sweeps
sweeps.STOP_WAIT_SEC = 2.0  # (the worker below never answers the stop: ended after this)
real = sweeps.run_pass
def run_pass(sd, a, b, items, *rest):
    if items[0][0] >= 2:  # the third point's worker: Ctrl-C to the sweep, then stay busy
        os.kill(os.getppid(), signal.SIGINT)
        time.sleep(60)
    return real(sd, a, b, items, *rest)
sweeps.run_pass = run_pass
from pmm_widgets.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_of_a_forked_cli_sweep_keeps_the_finished_points(rec_dir, tmp_path):
    """`pmm sweep --jobs 2` (workers forked from the CLI's process): a SIGINT when the third point
    starts ends the sweep with exit 130 and one line, even though that worker never answers the
    stop (it is ended after `STOP_WAIT_SEC`); the first two points (both run at once: one done, the
    other done or stopped part-way) are in `sweep_results` and the Parquet file, the third (never
    started) is not, no worker stays."""
    import os
    import re
    import subprocess
    import sys
    import time

    script = tmp_path / "interrupt.py"
    script.write_text(INTERRUPT_SCRIPT)
    url = f"sqlite:///{tmp_path / 'i.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update(PMM_RECORD_DIR=str(rec_dir), PMM_PAPER_FILL_INTENSITY="20", PMM_QUOTE_REFRESH_SEC="1")
    t = time.monotonic()
    p = subprocess.run([sys.executable, str(script), "sweep", "--from", "2026-11-30T10:00:00Z", "--to",
                        "2026-11-30T10:03:00Z", "--grid", "alpha=1,2", "--grid", "paper_spread_k=50,100",
                        "--per-pass", "1", "--jobs", "2", "--db-url", url, "--out", str(tmp_path / "i.parquet")],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 130, p.stderr[-3000:]
    assert time.monotonic() - t < 40  # not after the interrupted worker's 60 s
    said = [x for x in p.stderr.splitlines() if x.startswith("pmm sweep: interrupted")]
    assert len(said) == 1, p.stderr[-3000:]
    m = re.match(r"pmm sweep: interrupted: (\d) of 4 points done, (\d) stopped part-way \(status interrupted\); "
                 r"their rows -> sweep_results \(sweep_id (\w+)\)", said[0])
    assert m, said[0]
    n, sweep_id = int(m[1]) + int(m[2]), m[3]
    kept = pd.read_parquet(tmp_path / "i.parquet")
    assert len(kept) == n and {0, 1} <= set(kept["point"]) and 2 not in set(kept["point"]), kept[["point", "status"]]
    assert (kept["status"] == "done").sum() == int(m[1]) >= 1  # (the pass that ended first, whose worker took the third)
    eng = sa.create_engine(url)
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM sweep_results WHERE sweep_id = :i"), {"i": sweep_id}).scalar() == n
    eng.dispose()
    left = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True).stdout.split()
    assert not left, left


def test_the_python_api_reads_values_as_the_cli_does_and_checks_its_db_first(rec_dir, tmp_path):
    """`sweep()` from a notebook: a string or a number is one value (a string used to be split into
    its characters: "12" swept alpha 1 and 2), secrets are refused before any point (they used to
    run every point, then fail writing Parquet), a string is --markets text, an empty selection is
    refused, and a read-only DB fails before the first point (it used to fail after the last)."""
    from pmm_widgets.research.sweeps import SweepError
    from pmm_widgets.store.migrate import upgrade

    s = _settings(rec_dir, tmp_path)
    a, b = T0, T0 + 60
    one = sweep(a, b, {"alpha": "12"}, settings=s, n_jobs=1, write=False)
    assert list(one["alpha"]) == [12.0]
    assert list(sweep(a, b, {"alpha": 2.0}, settings=s, n_jobs=1, write=False)["alpha"]) == [2.0]
    sized = sweep(a, b, {"quote_size": [5, 10]}, settings=s, n_jobs=1, write=False)
    assert list(sized["quote_size"]) == [5.0, 10.0]  # numbers, not their text (a Decimal parameter)
    with pytest.raises(ValueError, match="grid: private_key: secrets cannot be swept"):
        sweep(a, b, {"private_key": ["0x" + "11" * 32]}, settings=s, n_jobs=1, write=False)
    with pytest.raises(ValueError, match="markets: an empty selection"):
        sweep(a, b, {"alpha": [1]}, settings=s, n_jobs=1, write=False, markets=[])
    assert sweep(a, b, {"alpha": [1]}, settings=s, n_jobs=1, write=False, markets="2")["markets"].item() == 2
    db = tmp_path / "ro.db"
    upgrade(f"sqlite:///{db}")
    with pytest.raises(SweepError, match="cannot write the sweep's rows there"):
        sweep(a, b, {"alpha": [1, 2]}, settings=s, n_jobs=1, progress=True,
              db_url=f"sqlite:///file:{db}?mode=ro&uri=true", parquet=tmp_path / "ro.parquet")
    assert not (tmp_path / "ro.parquet").exists()


def test_a_db_at_the_head_is_not_upgraded_again_and_an_older_one_is(rec_dir, tmp_path, monkeypatch):
    """Where the rows go is made or upgraded before the points (`_check_outputs`) and looked at again
    with the rows (`_store`): Alembic's upgrade runs only for a DB not at the head revision (it
    loads every revision script to find out, ≈ 0.06 s twice a sweep in series with its points); a
    DB left behind meanwhile (here: downgraded between two sweeps) is upgraded as before, and the
    rows are stored either way. (`migrate.upgrade` skips a DB at the head: the engine's start and
    `pmm db init` too.)"""
    from alembic import command

    from pmm_widgets.store import migrate

    calls: list[str] = []  # Alembic's upgrade runs (`migrate._upgrade`)
    real = migrate._upgrade

    def counting(db_url, revision):
        calls.append(db_url)
        real(db_url, revision)

    monkeypatch.setattr(migrate, "_upgrade", counting)
    s = _settings(rec_dir, tmp_path)
    first = sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=s, n_jobs=1, parquet=tmp_path / "a.parquet")
    assert calls == [s.db_url]  # a new DB: made once, before the points; the rows' write found it at the head
    again = sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=s, n_jobs=1, parquet=tmp_path / "b.parquet")
    assert calls == [s.db_url]
    command.downgrade(migrate.alembic_config(s.db_url), "-1")
    assert migrate.current_revision(s.db_url) != migrate.head_revision()
    third = sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=s, n_jobs=1, parquet=tmp_path / "c.parquet")
    assert calls == [s.db_url] * 2 and migrate.current_revision(s.db_url) == migrate.head_revision()
    assert _comparable(first) == _comparable(again) == _comparable(third)
    with sa.create_engine(s.db_url).connect() as c:
        ids = c.execute(sa.text("SELECT DISTINCT sweep_id FROM sweep_results")).scalars().all()
    assert {first.attrs["sweep_id"], again.attrs["sweep_id"], third.attrs["sweep_id"]} <= set(ids)


def test_the_cli_table_of_a_sweep_of_a_limit_shows_the_limit_and_the_figure_once_each(rec_dir, tmp_path, monkeypatch,
                                                                                       capsys):
    """`max_inventory_usd` is both a limit one may sweep and a figure of each replay (the largest
    inventory held, `max_inventory_usd_seen` when swept): the table shows each once."""
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    monkeypatch.setenv("PMM_PAPER_FILL_INTENSITY", "20")
    assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z",
                 "--grid", "max_inventory_usd=5,250", "--set", "quote_refresh_sec=1", "--jobs", "1",
                 "--db-url", f"sqlite:///{tmp_path / 'c.db'}", "--out", str(tmp_path / "o.parquet")]) == 0
    header, first, second = capsys.readouterr().out.splitlines()[:3]
    cols = header.split()
    assert cols.count("max_inventory_usd") == 1 and cols[-1] == "max_inventory_usd_seen", cols
    assert [first.split()[cols.index("max_inventory_usd")], second.split()[cols.index("max_inventory_usd")]] == [
        "5.0", "250.0"]
