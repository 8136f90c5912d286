"""The sweep's small pieces, each on its own and fast (no replay): the grid's parsing and checks,
how points are split into replay passes, which workers run them, the stop flag and its Ctrl-C
handler, the forked workers' files, the waits, where the rows go and how they are stored, and the
Ray helpers with a stand-in `ray` module."""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import threading
import time
import types
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from pmm_widgets.config import ConfigError
from pmm_widgets.research import sweeps as sw
from pmm_widgets.research.sweeps import (
    SweepError,
    check_fixed,
    parse_grid,
    passes_of,
    points_of,
)

# ------------------------------------------------------------------------- the grid


def test_parse_grid_reads_names_and_values_and_refuses_what_is_not_a_grid():
    assert parse_grid(["alpha=1,1.5", " PMM_Paper_Spread_K = 50 , , 100 "]) == {
        "alpha": ["1", "1.5"], "paper_spread_k": ["50", "100"]}
    assert parse_grid([]) == {}
    for item in ("alpha", "=1", "alpha=", "alpha= , ,"):
        with pytest.raises(ValueError, match="expected NAME=V1,V2"):
            parse_grid([item])
    with pytest.raises(ValueError, match="^nonsense: not a parameter or setting$"):
        parse_grid(["nonsense=1"])
    with pytest.raises(ValueError, match="^private_key: secrets cannot be swept$"):
        parse_grid(["private_key=1"])
    with pytest.raises(ValueError, match="^db_url: where the sweep's rows go"):
        parse_grid(["db_url=sqlite:///a.db"])
    with pytest.raises(ValueError, match=r"^alpha: given twice \(its values go in one"):
        parse_grid(["alpha=1", "PMM_ALPHA=2"])
    with pytest.raises(ValueError, match=r"^alpha: value 1e0 given twice \(1 and 1e0 are one value\)$"):
        parse_grid(["alpha=1,2,1e0"])


def test_unsweepable_names_secrets_and_the_db_url_only():
    assert sw._unsweepable("api_secret") == "secrets cannot be swept"
    assert sw._unsweepable("db_url") == sw.UNSWEPT["db_url"]
    assert sw._unsweepable("alpha") is None


def test_check_fixed_refuses_a_swept_name_with_a_fixed_value():
    check_fixed({"alpha": [1, 2]}, {"paper_spread_k": 5})  # no name in both: nothing to say
    check_fixed({}, {"alpha": 1})
    with pytest.raises(ValueError, match="^alpha, paper_spread_k: given a fixed value too"):
        check_fixed({"paper_spread_k": [1], "alpha": [1, 2], "gamma": [1]}, {" PMM_ALPHA": 5, "paper_spread_k": 1})


def test_values_one_value_or_the_items():
    assert sw._values("12") == ["12"]
    assert sw._values(b"ab") == [b"ab"]
    assert sw._values(2.0) == [2.0]
    assert sw._values(None) == [None]
    assert sw._values([1, 2]) == [1, 2]
    assert sw._values((3, 4)) == [3, 4]
    assert sw._values(x for x in (5, 6)) == [5, 6]


def test_value_key_numbers_by_value_and_the_rest_as_given():
    assert sw._value_key("1.0") == sw._value_key(1) == sw._value_key(" 1e0 ") == Decimal(1)
    assert str(sw._value_key("1.50")) == "1.5"  # normalized
    assert sw._value_key("abc") == "abc"
    assert sw._value_key("nan") == "nan" and sw._value_key(float("inf")) == "inf"
    assert sw._value_key(True) is True


def test_no_repeat_names_the_value_given_twice():
    sw._no_repeat("alpha", ["1", "2", "x", "nan", "inf"])
    with pytest.raises(ValueError, match=r"^alpha: value 2 given twice$"):
        sw._no_repeat("alpha", [2, 1, 2])
    with pytest.raises(ValueError, match=r"^k: value 1 given twice \(1.0 and 1 are one value\)$"):
        sw._no_repeat("k", ["1.0", "3", "1"])
    with pytest.raises(ValueError, match=r"^k: value x given twice$"):
        sw._no_repeat("k", ["x", "y", "x"])


def test_points_of_is_the_product_in_order():
    assert points_of({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]
    assert points_of({}) == [{}]
    assert points_of({"a": [1], "b": []}) == []


# ------------------------------------------------------------------------- passes


def _idx(passes):
    return [[i for i, _ in p] for p in passes]


def test_passes_of_parameters_only_split_by_workers_and_per_pass():
    pts = points_of({"alpha": list(range(1, 11))})  # 10 points, parameters only: one group
    assert _idx(passes_of(pts, {}, 2, None)) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert _idx(passes_of(pts, {}, 4, None)) == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]
    assert _idx(passes_of(pts, {}, 1, None)) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # at most AUTO_PASS_MAX (8)
    assert _idx(passes_of(pts, {}, 100, None)) == [[i] for i in range(10)]  # never an empty pass
    assert _idx(passes_of(pts, {}, 100, 3)) == [[0, 1], [2, 3, 4], [5, 6], [7, 8, 9]]  # per_pass: workers ignored
    assert _idx(passes_of(pts, {}, 1, 1)) == [[i] for i in range(10)]
    assert _idx(passes_of(pts, {}, 1, 10)) == [list(range(10))]
    twenty = points_of({"alpha": list(range(1, 21))})
    assert [len(p) for p in passes_of(twenty, {}, 1, None)] == [6, 7, 7]
    assert [len(p) for p in passes_of(points_of({"alpha": list(range(1, 10))}), {}, 1, None)] == [4, 5]  # 9 > 8
    assert passes_of(pts, {}, 2, None)[1][0] == (5, {"alpha": 6})  # (index, values)


def test_passes_of_groups_points_that_change_the_same_settings():
    pts = points_of({"alpha": [1, 2], "quote_refresh_sec": [1, 2]})
    assert _idx(passes_of(pts, {}, 2, None)) == [[0, 2], [1, 3]]
    assert _idx(passes_of(pts, {}, 4, None)) == [[0], [2], [1], [3]]
    assert _idx(passes_of(pts, {}, 4, 8)) == [[0, 2], [1, 3]]
    # a fixed setting is in every point's settings: one group
    alphas = points_of({"alpha": [1, 2, 3]})
    assert _idx(passes_of(alphas, {"quote_refresh_sec": 2}, 1, None)) == [[0, 1, 2]]
    # groups of unequal size share the workers by their size
    uneven = [{"quote_refresh_sec": 1, "alpha": a} for a in range(1, 7)] + [{"quote_refresh_sec": 2, "alpha": 1}]
    assert _idx(passes_of(uneven, {}, 4, None)) == [[0], [1, 2], [3], [4, 5], [6]]


def test_local_workers(monkeypatch):
    monkeypatch.setattr(sw, "fork_is_safe", lambda: True)
    assert sw._local_workers(1, 5, "fork", True) == "inline"
    assert sw._local_workers(2, 1, "fork", True) == "inline"
    assert sw._local_workers(2, 2, "fork", False) == "fork"
    assert sw._local_workers(2, 2, "loky", True) == "loky"
    assert sw._local_workers(2, 2, "auto", True) == "fork"
    assert sw._local_workers(2, 2, "auto", False) == "loky"
    monkeypatch.setattr(sw, "fork_is_safe", lambda: False)
    assert sw._local_workers(2, 2, "auto", True) == "loky"
    assert sw._local_workers(2, 2, "fork", True) == "fork"


def test_fork_is_safe_only_on_linux_with_one_thread_outside_a_daemon(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(sys, "platform", "linux")
    assert sw.fork_is_safe() is True
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    assert sw.fork_is_safe() is False
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert sw.fork_is_safe() is False
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert sw.fork_is_safe() is False
    monkeypatch.undo()
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    daemon = types.SimpleNamespace(daemon=True)
    monkeypatch.setattr(multiprocessing, "current_process", lambda: daemon)
    assert sw.fork_is_safe() is False


# ------------------------------------------------------------------------- the stop and Ctrl-C


def test_stop_flag_sets_once_and_touches_its_file(tmp_path, monkeypatch):
    stop = sw._Stop()
    assert stop() is False and not stop.is_set and not stop.in_pass and stop.path is None
    stop.set()  # no file: only the flag
    assert stop() is True
    other = sw._Stop()
    other.path = tmp_path / "stop"
    other.set()
    assert other() and other.path.exists()
    other.path.unlink()
    other.set()  # set already: the file is not made again
    assert not other.path.exists()
    gone = sw._Stop()
    gone.path = tmp_path / "no-such-dir" / "stop"
    gone.set()  # (a directory gone: the flag still set)
    assert gone()
    seen: list[Any] = []

    def run_pass(sd, a, b, items, fixed, sel, seed, window, report, halt):
        seen.append((halt is probe, probe.in_pass, sd, a, b, items, fixed, sel, seed, window, report))
        if items == "fail":
            raise RuntimeError("boom")
        return [{"point": 0}]

    monkeypatch.setattr(sw, "run_pass", run_pass)
    probe = sw._Stop()
    assert probe.run({"x": 1}, 1.0, 2.0, [], {"f": 1}, "sel", 7, "w", 4) == [{"point": 0}]
    assert seen == [(True, True, {"x": 1}, 1.0, 2.0, [], {"f": 1}, "sel", 7, "w", 4)] and probe.in_pass is False
    with pytest.raises(RuntimeError, match="boom"):
        probe.run({}, 0.0, 1.0, "fail", {}, None, None, None, None)  # type: ignore[arg-type]
    assert probe.in_pass is False


def test_ctrl_c_sets_the_stop_and_raises_unless_a_pass_runs_here():
    assert threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stop = sw._Stop()
        with sw._ctrl_c(stop):
            handler = signal.getsignal(signal.SIGINT)
            assert handler is not signal.default_int_handler
            with pytest.raises(KeyboardInterrupt):
                handler(signal.SIGINT, None)  # not in a pass: raised at once
            assert stop()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        stop = sw._Stop()
        stop.in_pass = True
        with sw._ctrl_c(stop):
            handler = signal.getsignal(signal.SIGINT)
            handler(signal.SIGINT, None)  # the first, in a pass: the pass stops at its next check
            assert stop()
            with pytest.raises(KeyboardInterrupt):
                handler(signal.SIGINT, None)  # the second: raised
        # a handler of someone else's: left alone
        mine = lambda s, f: None  # noqa: E731
        signal.signal(signal.SIGINT, mine)
        with sw._ctrl_c(sw._Stop()):
            assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGINT) is mine
        signal.signal(signal.SIGINT, signal.default_int_handler)
        got: list[Any] = []

        def in_thread() -> None:
            with sw._ctrl_c(sw._Stop()):
                got.append(signal.getsignal(signal.SIGINT))

        t = threading.Thread(target=in_thread)
        t.start()
        t.join()
        assert got == [signal.default_int_handler]
    finally:
        signal.signal(signal.SIGINT, old)


def test_sigint_blocked_while_inside_and_restored_after():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with sw._sigint_blocked():
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


class _Event:
    """An event whose wait raises KeyboardInterrupt (a second Ctrl-C) once it was waited for `n` times."""

    def __init__(self, n: int, is_set: bool) -> None:
        self.n, self.set_ = n, is_set
        self.waits: list[float] = []

    def wait(self, t: float) -> bool:
        self.waits.append(t)
        if len(self.waits) > self.n:
            raise KeyboardInterrupt
        return False

    def is_set(self) -> bool:
        return self.set_


def test_waited():
    e = threading.Event()
    e.set()
    assert sw._waited(e, 5.0) is True
    t = time.monotonic()
    assert sw._waited(threading.Event(), 0.3) is False
    assert 0.25 <= time.monotonic() - t < 1.0
    late = threading.Event()
    threading.Timer(0.25, late.set).start()
    assert sw._waited(late, 3.0) is True
    ev = _Event(2, is_set=True)
    assert sw._waited(ev, 10.0) is True  # a second Ctrl-C: whether it was set
    assert all(0 < w <= 0.2 for w in ev.waits)
    assert sw._waited(_Event(0, is_set=False), 10.0) is False
    short = _Event(10**6, is_set=False)
    assert sw._waited(short, 0.05) is False
    assert 0 < short.waits[0] <= 0.05  # never past its deadline


class _Proc:
    """A process stand-in: alive for its first `alive` looks, its sentinel a pipe nothing writes to."""

    def __init__(self, alive: int, exitcode: int | None = None, rfd: int | None = None) -> None:
        self.alive, self.exitcode, self.calls = alive, exitcode, []
        self.sentinel = rfd

    def is_alive(self) -> bool:
        self.calls.append("is_alive")
        if self.alive > 0:
            self.alive -= 1
            return True
        return False

    def terminate(self) -> None:
        self.calls.append("terminate")

    def kill(self) -> None:
        self.calls.append("kill")

    def join(self, t: float) -> None:
        self.calls.append(f"join {t}")


def test_end_terminates_then_kills_what_stays():
    gone, stays = _Proc(0), _Proc(10)
    done = _Proc(1)  # alive at the first look, ended by the terminate
    sw._end([gone, done, stays])
    assert gone.calls == ["is_alive", "join 2.0", "is_alive"]
    assert done.calls == ["is_alive", "terminate", "join 2.0", "is_alive"]
    assert stays.calls == ["is_alive", "terminate", "join 2.0", "is_alive", "kill", "join 2.0"]


def test_ended_waits_for_the_processes_at_most_seconds():
    assert sw._ended([], 0.0) is True
    assert sw._ended([_Proc(0)], 0.0) is True
    r, w = os.pipe()
    try:
        t = time.monotonic()
        stays = _Proc(10**6, rfd=r)
        assert sw._ended([stays], 0.3) is False
        assert len(stays.calls) <= 4  # it waits on the sentinels between its looks, no busy loop
        assert 0.25 <= time.monotonic() - t < 1.5
        assert sw._ended([_Proc(2, rfd=r)], 5.0) is True  # ends after two looks

        class Interrupted(_Proc):
            def is_alive(self) -> bool:
                if not self.calls:
                    self.calls.append("ctrl-c")
                    raise KeyboardInterrupt
                return super().is_alive()

        assert sw._ended([Interrupted(0, rfd=r)], 5.0) is True  # a second Ctrl-C: whether they ended
        assert sw._ended([Interrupted(5, rfd=r)], 5.0) is False
    finally:
        os.close(r)
        os.close(w)


# ------------------------------------------------------------------------- the forked workers' files


def test_kept_rows_pass_by_pass_in_number_order(tmp_path):
    for k in (10, 2, 1):
        sw._keep(tmp_path, f"{k}.pickle", pickle.dumps([{"point": k}, {"point": k + 100}]))
    assert not list(tmp_path.glob(".*"))  # the temporary file renamed into place
    assert [r["point"] for r in sw._kept_rows(tmp_path)] == [1, 101, 2, 102, 10, 110]
    assert sw._kept_rows(tmp_path / "x") == []


def test_raise_failed_raises_the_first_pass_error_or_names_an_abnormal_end(tmp_path):
    stop = sw._Stop()
    sw._raise_failed(tmp_path, [_Proc(0, exitcode=None), _Proc(0, exitcode=0)], stop)  # nothing wrong
    assert not stop()
    for k, msg in ((10, "ten"), (2, "two")):
        sw._keep(tmp_path, f"{k}.error", pickle.dumps((ValueError(msg), f"Traceback {msg}\n")))
    p = _Proc(1)
    with pytest.raises(ValueError) as info:
        sw._raise_failed(tmp_path, [p], stop)
    assert str(info.value) == "two" and stop() and "terminate" in p.calls
    assert info.value.__notes__ == ["(in a sweep worker process)\nTraceback two"]
    for code, how in ((-9, "signal 9"), (3, "exit code 3")):
        stop = sw._Stop()
        procs = [_Proc(0, exitcode=0), _Proc(1, exitcode=code)]
        with pytest.raises(SweepError, match=rf"^a sweep worker process ended abnormally \({how}\) before"):
            sw._raise_failed(tmp_path / "none", procs, stop)
        assert stop() and "terminate" in procs[1].calls


# ------------------------------------------------------------------------- where the rows go


def test_check_outputs_names_the_place_before_any_point(tmp_path):
    url = f"sqlite:///{tmp_path / 'ok.db'}"
    with pytest.raises(SweepError, match=rf"^{tmp_path}: a directory \(the Parquet file's name goes there"):
        sw._check_outputs(tmp_path, tmp_path / "d", url)
    with pytest.raises(ConfigError, match="in memory"):
        sw._check_outputs(None, tmp_path / "d", "sqlite://")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SweepError, match=r"a_file/sub: cannot write the sweep's Parquet file there"):
        sw._check_outputs(tmp_path / "a_file" / "sub" / "x.parquet", tmp_path / "d", url)
    with pytest.raises(SweepError, match=r"a_file: cannot write the sweep's Parquet file there"):
        sw._check_outputs(None, tmp_path / "a_file", url)
    assert not (tmp_path / "ok.db").exists()
    sw._check_outputs(tmp_path / "out" / "x.parquet", tmp_path / "d", url)
    assert (tmp_path / "out").is_dir() and not (tmp_path / "d").exists() and (tmp_path / "ok.db").exists()
    sw._check_outputs(None, tmp_path / "d", url)
    assert (tmp_path / "d").is_dir()
    with pytest.raises(SweepError, match="cannot write the sweep's rows there"):
        sw._check_outputs(None, tmp_path / "d", f"sqlite:///file:{tmp_path / 'ok.db'}?mode=ro&uri=true")
    with sa.create_engine(url).connect() as c:  # the probe row was rolled back
        assert c.execute(sa.text("SELECT COUNT(*) FROM sweep_results")).scalar() == 0


def test_check_writable_refuses_a_read_only_db(tmp_path):
    from pmm_widgets.store.migrate import upgrade

    db = tmp_path / "ro.db"
    upgrade(f"sqlite:///{db}")
    sw._check_writable(f"sqlite:///{db}")
    with pytest.raises(SweepError, match=r"ro\.db\?mode=ro&uri=true: cannot write the sweep's rows there \("):
        sw._check_writable(f"sqlite:///file:{db}?mode=ro&uri=true")


def test_store_writes_a_row_per_point(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    df = pd.DataFrame([
        {"point": 0, "alpha": 1.0, "run_id": "r0", "fills": 3.0, "pnl_total": 1.5, "fees": float("nan"),
         "status": "done", "when": Decimal("2.5")},
        {"point": 1, "alpha": 2.0, "run_id": "r1", "fills": 4.0, "pnl_total": -0.25, "fees": 0.5,
         "status": "interrupted", "when": Decimal("3")},
    ])
    t = time.time()
    sw._store(url, "swX", 10.0, 20.0, ["alpha"], df)
    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT sweep_id, point, run_id, created_ts, t0, t1, grid_json, fills, pnl_total, "
                                 "fees, rebates, summary_json FROM sweep_results ORDER BY point")).all()
    eng.dispose()
    assert [(r.sweep_id, r.point, r.run_id, r.t0, r.t1) for r in rows] == [("swX", 0, "r0", 10.0, 20.0),
                                                                         ("swX", 1, "r1", 10.0, 20.0)]
    assert all(t - 1 <= r.created_ts <= time.time() + 1 for r in rows)
    assert [json.loads(r.grid_json) for r in rows] == [{"alpha": 1.0}, {"alpha": 2.0}]
    assert [(r.fills, r.pnl_total, r.fees, r.rebates) for r in rows] == [(3, 1.5, None, None), (4, -0.25, 0.5, None)]
    assert isinstance(rows[0].fills, int)
    s0 = json.loads(rows[0].summary_json)
    assert s0["fees"] is None and s0["status"] == "done" and s0["when"] == "2.5" and s0["point"] == 0


def test_nan():
    assert sw._nan(float("nan")) and not sw._nan(1.0) and not sw._nan("nan") and not sw._nan(None)
    assert not sw._nan(Decimal("NaN"))


# ------------------------------------------------------------------------- Ray, with a stand-in module


def _fake_ray(initialized: bool) -> types.SimpleNamespace:
    calls: list[Any] = []

    class RayError(Exception):
        pass

    class RayTaskError(RayError):
        def __init__(self, text: str, cause: BaseException | None) -> None:
            super().__init__(text)
            self.cause = cause

    return types.SimpleNamespace(
        calls=calls, is_initialized=lambda: initialized,
        init=lambda **kw: calls.append(kw),
        exceptions=types.SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError))


def test_ray_active_uses_a_running_ray_and_connects_to_an_address(monkeypatch):
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert sw._ray_active(None) is None
    off, on = _fake_ray(False), _fake_ray(True)
    monkeypatch.setitem(sys.modules, "ray", off)
    assert sw._ray_active(None) is None  # imported, not initialized
    monkeypatch.setitem(sys.modules, "ray", on)
    assert sw._ray_active(None) is on
    assert sw._ray_active("auto") is on and on.calls == []  # initialized already: used as it is
    monkeypatch.setitem(sys.modules, "ray", off)
    assert sw._ray_active("auto") is off and off.calls == [{"address": "auto", "log_to_driver": False}]
    import socket

    def refused(addr, timeout):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    with pytest.raises(SweepError, match=r"^--ray 10.0.0.5:1: no Ray cluster answers there \(Connection refused\)"):
        sw._ray_active("10.0.0.5:1")  # checked before ray.init (which retried for minutes)
    assert len(off.calls) == 1
    monkeypatch.setitem(sys.modules, "ray", None)  # not installed
    with pytest.raises(SweepError, match="--ray needs the optional Ray extra"):
        sw._ray_active("auto")


def test_reachable_checks_only_a_host_and_port(monkeypatch):
    tried: list[Any] = []

    def connect(addr, timeout):
        tried.append((addr, timeout))
        return types.SimpleNamespace(close=lambda: None)

    import socket

    monkeypatch.setattr(socket, "create_connection", connect)
    for addr in ("auto", ":6379", "host:", "host:port", "host"):
        sw._reachable(addr)
    assert tried == []
    sw._reachable("ray://[::1]:10001")
    sw._reachable("10.0.0.5:6379")
    sw._reachable("Xhead:1")  # (only brackets are stripped)
    assert tried == [(("::1", 10001), 5.0), (("10.0.0.5", 6379), 5.0), (("Xhead", 1), 5.0)]  # RAY_CONNECT_SEC: 5 s, not minutes


def test_ray_failure_is_the_pass_error_or_a_sweep_error_naming_its_points():
    ray = _fake_ray(True)
    cause = ValueError("point 2 refused")
    got = sw._ray_failure(ray, ray.exceptions.RayTaskError("\x1b[31mTraceback\x1b[0m ...\n  ValueError  \n", cause),
                          [1], 4)
    assert got is cause and cause.__notes__ == ["(in a Ray task of the sweep)\nTraceback ...\n  ValueError"]
    bare = sw._ray_failure(ray, ray.exceptions.RayTaskError("x", None), [0, 2], 5)
    assert isinstance(bare, SweepError) and str(bare) == "the Ray task of points 1, 3 of 5 failed (RayTaskError: x)"
    one = sw._ray_failure(ray, ray.exceptions.RayError(" worker died\nmore "), [3], 4)
    assert str(one) == "the Ray task of point 4 of 4 failed (RayError: worker died)"
    assert one.__notes__ == ["worker died\nmore"]
    assert str(sw._ray_failure(ray, ray.exceptions.RayError(""), [0], 1)) == "the Ray task of point 1 of 1 failed (RayError: -)"


# ------------------------------------------------------------------------- sweep's checks, before any replay


def test_sweep_refuses_bad_arguments_before_reading_anything(tmp_path, monkeypatch):
    import multiprocessing

    from pmm_widgets.config import load_settings
    from pmm_widgets.research.recordings import RecordingError

    s = load_settings(record_dir=str(tmp_path / "none"), db_url=f"sqlite:///{tmp_path / 'v.db'}")
    t0, t1 = 1_796_032_800.0, 1_796_032_860.0
    with pytest.raises(ValueError, match="^start: 'thread' is not one of auto, fork, loky$"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, start="thread")
    with pytest.raises(ValueError, match="^n_jobs: 0"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, n_jobs=0)
    with pytest.raises(ValueError, match=r"^per_pass: 0 \(at least 1"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, per_pass=0)
    with pytest.raises(ValueError, match="^grid: nonsense is not a parameter or setting$"):
        sw.sweep(t0, t1, {"nonsense": [1]}, settings=s)
    with pytest.raises(ValueError, match="^grid: api_key: secrets cannot be swept$"):
        sw.sweep(t0, t1, {"PMM_API_KEY": ["x"]}, settings=s)
    with pytest.raises(ValueError, match=r"^grid: alpha: value 1.0 given twice \(1 and 1.0 are one value\)$"):
        sw.sweep(t0, t1, {" PMM_ALPHA": [1, 1.0]}, settings=s)
    with pytest.raises(ValueError, match="^grid: no points$"):
        sw.sweep(t0, t1, {"alpha": []}, settings=s)
    with pytest.raises(ValueError, match="^alpha: given a fixed value too"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, params={"alpha": 2})
    with pytest.raises(ConfigError, match="^grid alpha=0: "):
        sw.sweep(t0, t1, {"alpha": [1, 0]}, settings=s)
    with pytest.raises(ConfigError, match="^grid quote_refresh_sec=0: "):
        sw.sweep(t0, t1, {"alpha": [1], "quote_refresh_sec": [1, 0]}, settings=s)
    with pytest.raises(ValueError, match="^seed: -1"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, seed=-1, write=False)
    with pytest.raises(ValueError, match="^markets: an empty selection"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, markets=[], write=False)
    with pytest.raises(SweepError, match="a directory"):  # write: the outputs are checked first
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, parquet=tmp_path)
    assert not (tmp_path / "v.db").exists()
    with pytest.raises(RecordingError, match="no readable recordings"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, write=False, n_jobs=1, per_pass=1, start="fork")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(ValueError, match="^start: this platform cannot fork worker processes$"):
        sw.sweep(t0, t1, {"alpha": [1]}, settings=s, start="fork")


# ------------------------------------------------------------------------- the sweep around its passes (no replay)

T0 = 1_796_032_800.0  # 2026-11-30T10:00:00Z


class FakePasses:
    """`run_pass` and `load_window` stand-ins: each point's row is (point, alpha, fills = 10 * point),
    status as `status` says for the point; every call recorded."""

    def __init__(self, status: dict[int, str] | None = None, fail: int | None = None,
                 ctrl_c: int | None = None) -> None:
        self.status, self.fail, self.ctrl_c = status or {}, fail, ctrl_c
        self.calls: list[dict[str, Any]] = []
        self.windows: list[tuple[Any, ...]] = []

    def load_window(self, root, a, b):
        self.windows.append((root, a, b))
        return "WINDOW"

    def run_pass(self, sd, a, b, items, fixed, sel, seed, window, report, stop):
        self.calls.append({"sd": sd, "a": a, "b": b, "points": [i for i, _ in items], "fixed": fixed, "sel": sel,
                           "seed": seed, "window": window, "report": report, "stop": stop})
        if any(i == self.ctrl_c for i, _ in items):
            raise KeyboardInterrupt
        if any(i == self.fail for i, _ in items):
            raise ValueError(f"point {self.fail} refused")
        return [{"point": i, **pt, "run_id": f"r{i}", "fills": 10 * i, "status": self.status.get(i, "done")}
                for i, pt in items]


@pytest.fixture
def fake(monkeypatch):
    f = FakePasses()
    monkeypatch.setattr(sw, "run_pass", f.run_pass)
    monkeypatch.setattr(sw, "load_window", f.load_window)
    return f


def _s(tmp_path, **kw):
    from pmm_widgets.config import load_settings

    return load_settings(record_dir=str(tmp_path / "rec" / "recordings"), db_url=f"sqlite:///{tmp_path / 's.db'}",
                         **kw)


def test_an_inline_sweep_runs_its_passes_and_returns_their_rows_by_point(tmp_path, fake):
    s = _s(tmp_path)
    df = sw.sweep("2026-11-30T10:00:00Z", T0 + 60, {"PMM_ALPHA": [3, 1, 2]}, settings=s, n_jobs=1, write=False,
                  seed=7, markets="2", params={"paper_spread_k": 70})
    assert list(df["point"]) == [0, 1, 2] and list(df["alpha"]) == [3, 1, 2] and list(df["fills"]) == [0, 10, 20]
    assert list(df.columns) == ["point", "alpha", "run_id", "fills", "status"] and list(df.index) == [0, 1, 2]
    assert df.attrs["backend"] == "joblib" and df.attrs["workers"] == "inline" and df.attrs["status"] == "done"
    assert df.attrs["passes"] == [[0, 1, 2]] and df.attrs["total"] == 3 and df.attrs["grid"] == {"alpha": ["3", "1", "2"]}
    assert "parquet" not in df.attrs
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "rec").exists()  # not written: nowhere checked
    assert df.attrs["sweep_id"].startswith("sw" + time.strftime("%Y%m%dT", time.gmtime())) and len(df.attrs["sweep_id"]) == 23
    (c,) = fake.calls
    assert fake.windows == [(s.record_dir, T0, T0 + 60)] and c["window"] == "WINDOW"
    assert (c["a"], c["b"], c["seed"], c["sel"], c["fixed"], c["report"]) == (T0, T0 + 60, 7, 2, {"paper_spread_k": 70}, None)
    assert isinstance(c["stop"], sw._Stop) and not c["stop"]()
    assert "private_key" not in c["sd"] and None not in c["sd"].values() and c["sd"]["record_dir"] == s.record_dir
    again = sw.sweep(T0, T0 + 60, {"alpha": [3, 1, 2]}, settings=s, n_jobs=1, write=False, per_pass=1, progress=True)
    assert again.attrs["passes"] == [[0], [1], [2]] and [c["report"] for c in fake.calls[1:]] == [3, 3, 3]
    assert again.attrs["sweep_id"] != df.attrs["sweep_id"]


def test_points_that_change_where_the_events_are_read_their_own(tmp_path, fake):
    s = _s(tmp_path)
    sw.sweep(T0, T0 + 60, {"record_dir": [str(tmp_path / "a"), str(tmp_path / "b")]}, settings=s, n_jobs=1, write=False)
    sw.sweep(T0, T0 + 60, {"alpha": [1]}, settings=s, n_jobs=1, write=False, params={"record_dir": str(tmp_path)})
    assert fake.windows == [] and [c["window"] for c in fake.calls] == [None, None, None]  # (two settings: two passes)


def test_a_written_sweep_goes_to_the_db_and_parquet(tmp_path, fake):
    import sqlalchemy as sa

    s = _s(tmp_path)
    df = sw.sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=s, n_jobs=1)
    out = tmp_path / "rec" / "sweeps" / f"{df.attrs['sweep_id']}.parquet"
    assert df.attrs["parquet"] == str(out)
    back = pd.read_parquet(out)
    assert list(back["point"]) == [0, 1] and set(back["sweep_id"]) == {df.attrs["sweep_id"]}
    with sa.create_engine(s.db_url).connect() as c:
        rows = c.execute(sa.text("SELECT sweep_id, point, fills, grid_json, t0, t1 FROM sweep_results ORDER BY point")).all()
    assert [(r.sweep_id, r.point, r.fills, json.loads(r.grid_json), r.t0, r.t1) for r in rows] == [
        (df.attrs["sweep_id"], 0, 0, {"alpha": 1}, T0, T0 + 60), (df.attrs["sweep_id"], 1, 10, {"alpha": 2}, T0, T0 + 60)]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    df2 = sw.sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=s, n_jobs=1, parquet=tmp_path / "x" / "p.parquet",
                   db_url=other)
    assert df2.attrs["parquet"] == str(tmp_path / "x" / "p.parquet") and (tmp_path / "x" / "p.parquet").exists()
    with sa.create_engine(other).connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM sweep_results")).scalar() == 2


def test_a_stopped_pass_ends_the_sweep_with_the_rows_so_far(tmp_path, fake):
    s = _s(tmp_path)
    fake.status = {1: "interrupted"}
    df = sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, n_jobs=1, per_pass=1, parquet=tmp_path / "p.parquet")
    assert df.attrs["status"] == "interrupted" and df.attrs["total"] == 3 and list(df["point"]) == [0, 1]
    assert list(df["status"]) == ["done", "interrupted"] and len(fake.calls) == 2
    assert list(pd.read_parquet(tmp_path / "p.parquet")["point"]) == [0, 1]  # written like a whole sweep's
    fake.status, fake.ctrl_c = {}, 0
    df = sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, n_jobs=1, per_pass=1, write=False)
    assert df.attrs["status"] == "interrupted" and len(df) == 0 and list(df.columns) == ["point"]
    assert df.attrs["passes"] == [[0], [1], [2]]


def test_a_failing_pass_fails_the_sweep_and_keeps_the_rows_before_it(tmp_path, fake, monkeypatch, caplog):
    s = _s(tmp_path)
    fake.fail = 2
    with caplog.at_level("WARNING", logger=sw.log.name), pytest.raises(ValueError, match="^point 2 refused$"):
        sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, n_jobs=1, per_pass=1, parquet=tmp_path / "p.parquet")
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("sweep: 2 of 3 points done before the failure below: their rows -> sweep_results (sweep_id sw")
    assert msg.endswith(str(tmp_path / "p.parquet"))
    assert list(pd.read_parquet(tmp_path / "p.parquet")["point"]) == [0, 1]
    caplog.clear()
    fake.fail = 0
    with caplog.at_level("WARNING", logger=sw.log.name), pytest.raises(ValueError, match="^point 0 refused$"):
        sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, n_jobs=1, per_pass=1, parquet=tmp_path / "q.parquet")
    assert caplog.records == [] and not (tmp_path / "q.parquet").exists()  # nothing done: nothing to keep
    fake.fail = 1
    with caplog.at_level("WARNING", logger=sw.log.name), pytest.raises(ValueError, match="^point 1 refused$"):
        sw.sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=s, n_jobs=1, per_pass=1, write=False)
    assert caplog.records == []  # not written: nothing said

    def no_db(*a, **kw):
        raise RuntimeError("the DB went away\nmore")

    monkeypatch.setattr(sw, "_store", no_db)
    fake.fail = 2
    with caplog.at_level("WARNING", logger=sw.log.name), pytest.raises(ValueError, match="^point 2 refused$"):
        sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, n_jobs=1, per_pass=1, parquet=tmp_path / "r.parquet")
    (rec,) = caplog.records
    assert rec.levelname == "ERROR" and rec.getMessage() == (
        "sweep: the 2 point(s) done before the failure below could not be written: the DB went away")
    caplog.clear()
    monkeypatch.setattr(sw, "_store", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError()))
    with caplog.at_level("WARNING", logger=sw.log.name), pytest.raises(ValueError, match="^point 2 refused$"):
        sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, n_jobs=1, per_pass=1, parquet=tmp_path / "t.parquet")
    assert caplog.records[0].getMessage().endswith("could not be written: RuntimeError")


def test_joblib_rows_inline_stops_at_a_stop_set_between_passes(tmp_path, fake, monkeypatch):
    s = _s(tmp_path)
    got: list[dict[str, Any]] = []
    passes = passes_of(points_of({"alpha": [1, 2, 3]}), {}, 1, 1)
    seen_stops: list[Any] = []

    def run_pass(sd, a, b, items, fixed, sel, seed, window, report, stop):
        seen_stops.append(stop)
        if items[0][0] == 1:
            stop.set()  # as the Ctrl-C handler does during a pass
        return [{"point": items[0][0], "status": "done"}]

    monkeypatch.setattr(sw, "run_pass", run_pass)
    with pytest.raises(KeyboardInterrupt):
        sw._joblib_rows(s, {}, T0, T0 + 1, passes, 3, {}, None, None, 1, True, True, "inline", got)
    assert [r["point"] for r in got] == [0, 1] and len(seen_stops) == 2
    got.clear()
    sw._joblib_rows(s, {}, T0, T0 + 1, passes[:1], 3, {}, None, None, 1, False, False, "inline", got)
    assert got == [{"point": 0, "status": "done"}]


FORKED = r'''
import json, os, signal, sys, time
from pmm_widgets.research import sweeps as sw

out = {}
def run_pass(sd, a, b, items, fixed, sel, seed, key, report, stop):
    i = items[0][0]
    what = sd["what"].get(str(i), sd["what"].get("all"))
    if what == "fail":
        raise ValueError(f"point {i} refused")
    if what == "unpicklable":
        e = ValueError("cannot pickle me")
        e.fn = lambda: None
        raise e
    if what == "exit":
        os._exit(3)
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "ctrl-c":  # a terminal's Ctrl-C reaches the sweep; this pass ends at the stop file
        os.kill(os.getppid(), signal.SIGINT)
        for _ in range(500):
            if os.path.exists(stop):
                return [{"point": i, "status": "interrupted", "pid": os.getpid()}]
            time.sleep(0.01)
        raise RuntimeError("no stop file")
    if what == "both":  # each pass waits until both workers took one
        here = os.path.dirname(stop)
        open(os.path.join(here, f"pid{os.getpid()}"), "w").close()
        for _ in range(500):
            if len([f for f in os.listdir(here) if f.startswith("pid")]) >= 2:
                break
            time.sleep(0.01)
    return [{"point": j, "status": "done", "pid": os.getpid(), "key": key, "report": report, "a": a, "b": b,
             "fixed": fixed, "sel": sel, "seed": seed, "stop": stop} for j, _ in items]
sw.run_pass = run_pass
passes = [[(k, {"alpha": k})] for k in range(5)]

def run(what, jobs=2, window="W", preset=False):
    got = []
    stop = sw._Stop()
    if preset:  # told to stop, not by an exception here: every pass runs (no stop file yet), then it stops
        stop.set()
    try:
        sw._forked_rows({"what": what}, 1.0, 2.0, passes, {"f": 1}, "sel", 9, jobs, window, 5, stop, got)
        res = "ok"
    except KeyboardInterrupt:
        res = "ctrl-c"
    except Exception as exc:
        res = f"{type(exc).__name__}: {exc}"
        out.setdefault("notes", {})[str(what)] = getattr(exc, "__notes__", [])
    return {"res": res, "points": [r["point"] for r in got], "stop": stop(), "rows": got,
            "stopfile": str(stop.path), "kept_left": stop.path.parent.exists()}

out["ok"] = run({"all": "both"})
out["one_job"] = run({}, jobs=1, window=None)
out["fail"] = run({"3": "fail"})
out["unpicklable"] = run({"1": "unpicklable"})
out["exit"] = run({"2": "exit"})
out["kill"] = run({"2": "kill"})
out["stopped"] = run({"1": "ctrl-c"})
out["preset"] = run({}, preset=True)
import multiprocessing
out["children"] = [c.name for c in multiprocessing.active_children()]
from pmm_widgets.research import points
out["windows_left"] = len(points._WINDOWS)
print("RESULT " + json.dumps(out, default=str))
'''


def test_forked_workers_take_the_passes_in_turn_and_hand_back_rows_or_errors(tmp_path):
    """`_forked_rows` in a fresh interpreter (no other thread: forking is safe), with a stand-in
    `run_pass` the forked workers inherit: the rows of every pass in pass order, an error of a pass
    raised here with the worker's traceback (or its text when it does not pickle), a worker that
    died named, a stopped pass ends the sweep (KeyboardInterrupt) with the rows so far; no worker
    nor temporary directory left."""
    import subprocess

    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(next(x for x in p.stdout.splitlines() if x.startswith("RESULT ")).removeprefix("RESULT "))
    ok = out["ok"]
    assert ok["res"] == "ok" and ok["points"] == [0, 1, 2, 3, 4] and not ok["stop"] and not ok["kept_left"]
    assert len({r["pid"] for r in ok["rows"]}) == 2  # two workers took them in turn
    r0 = ok["rows"][0]
    assert r0["key"].startswith("inherited:") and r0["report"] == 5 and (r0["a"], r0["b"]) == (1.0, 2.0)
    assert (r0["fixed"], r0["sel"], r0["seed"]) == ({"f": 1}, "sel", 9) and r0["stop"] == ok["stopfile"]
    assert ok["stopfile"].endswith("/stop")
    one = out["one_job"]
    assert one["points"] == [0, 1, 2, 3, 4] and len({r["pid"] for r in one["rows"]}) == 1 and one["rows"][0]["key"] is None
    fail = out["fail"]
    assert fail["res"] == "ValueError: point 3 refused" and fail["stop"] and set(fail["points"]) <= {0, 1, 2, 4}
    assert fail["points"]  # the passes that ended before it keep their rows (the failing worker ran one before)
    assert out["notes"]["{'3': 'fail'}"][0].startswith("(in a sweep worker process)\nTraceback (most recent call last)")
    assert "point 3 refused" in out["notes"]["{'3': 'fail'}"][0]
    assert out["unpicklable"]["res"] == "SweepError: ValueError: cannot pickle me"
    assert out["exit"]["res"] == ("SweepError: a sweep worker process ended abnormally (exit code 3) before its "
                                  "pass's rows were written")
    assert out["kill"]["res"].startswith("SweepError: a sweep worker process ended abnormally (signal 9)")
    assert 2 not in out["exit"]["points"] and out["exit"]["stop"]
    stopped = out["stopped"]
    assert stopped["res"] == "ctrl-c" and stopped["stop"] and 0 in stopped["points"]
    assert [r["status"] for r in stopped["rows"] if r["point"] == 1] == ["interrupted"]
    assert out["preset"]["res"] == "ctrl-c" and out["preset"]["points"] == [0, 1, 2, 3, 4]  # each row once
    assert not any(run["kept_left"] for run in (out[k] for k in ("fail", "unpicklable", "exit", "kill", "stopped")))
    assert not [c for c in out["children"] if "Fork" in c] and out["windows_left"] == 0


def test_the_defaults_one_job_per_core_and_the_worker_choice(tmp_path, fake, monkeypatch):
    asked: list[tuple[Any, ...]] = []

    def local_workers(n_jobs, n_passes, start, shared):
        asked.append((n_jobs, n_passes, start, shared))
        return "inline"

    monkeypatch.setattr(sw, "_local_workers", local_workers)
    df = sw.sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=_s(tmp_path), write=False)
    assert asked == [(-1, len(df.attrs["passes"]), "auto", True)] and df.attrs["workers"] == "inline"
    sw.sweep(T0, T0 + 60, {"record_dir": [str(tmp_path)]}, settings=_s(tmp_path), write=False, start="loky", n_jobs=3)
    assert asked[-1] == (3, 1, "loky", False)


def test_a_sweep_on_ray_hands_its_passes_to_the_ray_path(tmp_path, fake, monkeypatch):
    cluster = types.SimpleNamespace(cluster_resources=lambda: {"CPU": 3.0})
    monkeypatch.setattr(sw, "_ray_active", lambda address: cluster if address == "head:1" else None)
    handed: list[Any] = []

    def ray_rows(ray, sd, a, b, passes, total, fixed, sel, seed, window, progress, got):
        handed.append((ray, [[i for i, _ in p] for p in passes], total, fixed, sel, seed, window, progress))
        got.extend({"point": i, "fills": i, "status": "done"} for p in passes for i, _ in p)

    monkeypatch.setattr(sw, "_ray_rows", ray_rows)
    s = _s(tmp_path)
    df = sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3, 4, 5, 6]}, settings=s, ray_address="head:1", write=False, seed=4,
                  progress=True, params={"paper_spread_k": 9})
    assert handed == [(cluster, [[0, 1], [2, 3], [4, 5]], 6, {"paper_spread_k": 9}, None, 4, "WINDOW", True)]
    assert fake.windows == [(s.record_dir, T0, T0 + 60)] and fake.calls == []
    assert df.attrs["backend"] == "ray" and df.attrs["workers"] == "ray" and df.attrs["status"] == "done"
    assert df.attrs["passes"] == [[0, 1], [2, 3], [4, 5]] and list(df["point"]) == list(range(6))
    sw.sweep(T0, T0 + 60, {"record_dir": [str(tmp_path)]}, settings=s, ray_address="head:1", write=False)
    assert handed[-1][6] is None and len(fake.windows) == 1  # each pass reads its own
    cluster.cluster_resources = lambda: {}  # no CPU said: one
    df = sw.sweep(T0, T0 + 60, {"alpha": [1, 2, 3]}, settings=s, ray_address="head:1", write=False)
    assert df.attrs["passes"] == [[0, 1, 2]]


def test_a_sweep_without_settings_reads_them_from_the_environment(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("PMM_RECORD_DIR", str(tmp_path / "env-rec"))
    monkeypatch.setenv("PMM_DB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    df = sw.sweep(T0, T0 + 60, {"alpha": [1]}, n_jobs=1, write=False)
    assert len(df) == 1 and fake.windows == [(str(tmp_path / "env-rec"), T0, T0 + 60)]


def test_joblib_rows_hands_fork_and_loky_to_their_paths(tmp_path, fake, monkeypatch):
    from joblib import effective_n_jobs

    s = _s(tmp_path)
    passes = passes_of(points_of({"alpha": [1, 2, 3]}), {}, 1, 1)
    seen: list[Any] = []
    monkeypatch.setattr(sw, "_loky_rows", lambda *a: seen.append(("loky", a)))
    monkeypatch.setattr(sw, "_forked_rows", lambda *a: seen.append(("fork", a)))
    got: list[dict[str, Any]] = []
    sw._joblib_rows(s, {"x": 1}, T0, T0 + 1, passes, 3, {"f": 1}, "sel", 5, 2, True, True, "loky", got)
    (how, a), = seen
    assert how == "loky" and fake.windows == [] and fake.calls == []  # the loky path reads the window itself
    jobs = min(effective_n_jobs(2), 3)
    assert a[:13] == (s, {"x": 1}, T0, T0 + 1, passes, 3, {"f": 1}, "sel", 5, jobs, True, True, a[12])
    assert isinstance(a[12], sw._Stop) and a[13] is got
    seen.clear()
    sw._joblib_rows(s, {"x": 1}, T0, T0 + 1, passes, 3, {"f": 1}, "sel", 5, 2, True, True, "fork", got)
    (how, a), = seen
    assert how == "fork" and fake.windows == [(s.record_dir, T0, T0 + 1)] and fake.calls == []
    assert a[:10] == ({"x": 1}, T0, T0 + 1, passes, {"f": 1}, "sel", 5, jobs, "WINDOW", 3)
    assert isinstance(a[10], sw._Stop) and a[11] is got
    seen.clear()
    sw._joblib_rows(s, {}, T0, T0 + 1, passes, 3, {}, None, None, 2, False, False, "fork", got)
    assert seen[0][1][8] is None and seen[0][1][9] is None  # each pass reads its own window; no progress lines
