"""The sweep workers' side (`research.points`) without a replay: the window handed over by file or
inherited, the polled stops (a file, a Ray actor stand-in), the progress lines, and what
`run_pass` does before it replays."""

from __future__ import annotations

import os
import pickle
import signal
import threading
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from pmm_widgets.research import points
from pmm_widgets.research.points import SweepError
from pmm_widgets.research.recordings import Window


def _window(payloads: list[str | None]) -> Window:
    n = len(payloads)
    return Window(t0=1.0, t1=2.0, ts=np.arange(n, dtype=np.float64), channel=np.zeros(n, np.int8), kind=["x"] * n,
                  conn=np.zeros(n, np.int32), payload=payloads, session=["s"] * n)


def test_a_window_by_file_read_once_per_worker_or_inherited(tmp_path, monkeypatch):
    w = _window(["ab", None, "cde"])
    path = points.dump_window(w)
    try:
        assert path.name == "window.pickle" and path.parent.name.startswith("pmm-sweep-")
        got = points.window_from_file(str(path))
        assert list(got.payload) == ["ab", None, "cde"] and got.t1 == 2.0
        assert points.window_from_file(str(path)) is got  # kept: not read again
        key = points.inherit(w)
        assert key.startswith(f"inherited:{os.getpid()}:") and points._WINDOWS == {key: w}  # another sweep's gone
        assert points.window_from_file(key) is w
        points.forget(key)
        points.forget(key)  # (twice: nothing left to forget)
        with pytest.raises(RuntimeError, match="did not inherit the window"):
            points.window_from_file(key)
        assert points.window_from_file(str(path)) is not got and points._WINDOWS.keys() == {str(path)}
    finally:
        points._WINDOWS.clear()
        import shutil

        shutil.rmtree(path.parent)


def test_dump_window_uses_dev_shm_only_with_room(tmp_path, monkeypatch):
    w = _window(["x" * 1000] * 10)
    made: list[Any] = []
    real = points.tempfile.mkdtemp

    def mkdtemp(prefix: str, dir: str | None = None) -> str:  # noqa: A002
        made.append(dir)
        return real(prefix=prefix, dir=str(tmp_path))

    monkeypatch.setattr(points.tempfile, "mkdtemp", mkdtemp)
    free = {"n": 10**9}
    monkeypatch.setattr(points.shutil, "disk_usage", lambda p: type("U", (), {"free": free["n"]})())
    shm = points.Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        pytest.skip("no writable /dev/shm here")
    points.dump_window(w)
    size = 64 * 10 + 10_000
    free["n"] = 2 * size + 1
    points.dump_window(w)
    free["n"] = 2 * size  # not more than twice the window: the default temporary directory
    points.dump_window(w)

    def broken(p: Any) -> Any:
        raise OSError("gone")

    monkeypatch.setattr(points.shutil, "disk_usage", broken)
    points.dump_window(w)
    assert made == ["/dev/shm", "/dev/shm", None, None]


def test_polled_stops_ask_at_most_every_interval_and_stay_stopped(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(points.time, "monotonic", lambda: clock[0])
    f = tmp_path / "stop"
    stop = points.StopFile(str(f))
    asks: list[float] = []
    real_ask = stop.ask

    def ask() -> bool:
        asks.append(clock[0])
        return real_ask()

    stop.ask = ask  # type: ignore[method-assign]
    assert stop() is False and asks == [100.0]
    f.touch()
    clock[0] += points.STOP_POLL_SEC / 2
    assert stop() is False and len(asks) == 1  # the cached answer
    clock[0] = 100.0 + points.STOP_POLL_SEC
    assert stop() is True and len(asks) == 2
    f.unlink()
    clock[0] += 10
    assert stop() is True and len(asks) == 2  # once it said stop: always
    with pytest.raises(NotImplementedError):
        points.PolledStop().ask()


def test_stop_flag():
    flag = points.StopFlag()
    assert flag.poll(0) is False
    flag.set()
    assert flag.poll(3) is True


class _Remote:
    def __init__(self, answers: list[Any]) -> None:
        self.answers, self.sent = answers, []

    def remote(self, k: int) -> Any:
        self.sent.append(k)
        fut: Future[Any] = Future()
        a = self.answers.pop(0) if self.answers else None
        if isinstance(a, BaseException):
            fut.set_exception(a)
        elif a is not None:
            fut.set_result(a[0])
        return type("Ref", (), {"future": lambda self_: fut})()


def _flag(answers: list[Any]) -> Any:
    return type("Flag", (), {"poll": _Remote(answers)})()


def test_ray_stop_waits_for_the_first_answer_then_never_blocks(monkeypatch):
    monkeypatch.setattr(points.RayStop, "every", 0.0)
    flag = _flag([(False,), None, (True,)])  # first: go; second: no answer yet; third: stop
    s = points.RayStop(flag, 4)
    assert s.ask() is False and s.begun and flag.poll.sent == [4] and s.asked is None
    assert s.ask() is False and flag.poll.sent == [4, 4]  # sent, not waited for
    assert s.ask() is False and flag.poll.sent == [4, 4]  # its answer not there yet: not sent again
    s.asked.set_result(False)  # type: ignore[union-attr]
    assert s.ask() is False and flag.poll.sent == [4, 4, 4]
    assert s.ask() is True  # the third answer (sent resolved): stop
    gone = points.RayStop(_flag([(False,), RuntimeError("actor died")]), 1)
    assert gone.ask() is False and gone.ask() is False
    assert gone.ask() is True  # the actor gone: stop
    first_stop = points.RayStop(_flag([(True,)]), 2)
    assert first_stop() is True and first_stop.seen


def test_ray_stop_first_answer_failures_are_sweep_errors(monkeypatch):
    with pytest.raises(SweepError, match=r"^the sweep's stop flag \(a Ray actor\) failed before pass 5 began "
                                         r"\(ValueError: dead\)$"):
        points.RayStop(_flag([ValueError("dead\nmore")]), 5).first()
    with pytest.raises(SweepError, match=r"failed before pass 5 began \(ValueError: -\)$"):
        points.RayStop(_flag([ValueError("")]), 5).first()
    monkeypatch.setattr(points, "RAY_FLAG_WAIT_SEC", 0.25)
    with pytest.raises(SweepError, match=r"^the sweep's stop flag \(a Ray actor\) did not answer pass 6 within "
                                         r"0.25 s: it did not start$"):
        points.RayStop(_flag([None]), 6).first()
    late = _flag([None])
    s = points.RayStop(late, 7)
    fut: list[Any] = []
    real = late.poll.remote

    def remote(k: int) -> Any:
        ref = real(k)
        fut.append(ref.future())
        threading.Timer(0.15, lambda: fut[0].set_result(False)).start()
        return ref

    late.poll.remote = remote
    assert s.first() is False and s.begun  # waited for


def test_interrupted_and_progress_lines(capsys):
    assert not points.interrupted([]) and not points.interrupted([{"status": "done"}, {}])
    assert points.interrupted([{"status": "done"}, {"status": "interrupted"}])
    points.report_rows([{"point": 0, "status": "interrupted"}, {"point": 4}, {"point": 2, "status": None}], 5)
    assert capsys.readouterr().err == ("sweep: point 1 of 5 interrupted\nsweep: point 5 of 5 done\n"
                                       "sweep: point 3 of 5 done\n")
    assert points.warm_up() == os.getpid()


def test_workers_run_the_pass_with_sigint_ignored_and_ray_tasks_with_their_flag(monkeypatch):
    seen: list[Any] = []

    def run_pass(*args: Any, **kw: Any) -> list[dict[str, Any]]:
        seen.append((args, kw, signal.getsignal(signal.SIGINT)))
        return [{"point": 1}]

    monkeypatch.setattr(points, "run_pass", run_pass)
    before = signal.getsignal(signal.SIGINT)
    assert points.run_pass_in_worker("/x/stop", {"a": 1}, 1.0, 2.0, [(1, {})], {"f": 2}, "m", 3, "w") == [{"point": 1}]
    assert seen[-1] == (({"a": 1}, 1.0, 2.0, [(1, {})], {"f": 2}, "m", 3, "w"), {"stop": "/x/stop"}, signal.SIG_IGN)
    assert signal.getsignal(signal.SIGINT) is before
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(points.run_pass_in_worker("s", {}, 0.0, 1.0, [], {}, None, None,
                                                                            None)))
    t.start()
    t.join()
    assert got == [[{"point": 1}]] and seen[-1][2] is before  # not the main thread: SIGINT left as it is
    flag = object()
    assert points.run_pass_on_ray(flag, 3, {"a": 1}, 1.0, 2.0, [(0, {})], {}, None, 5, None) == [{"point": 1}]
    args, kw, _ = seen[-1]
    assert args == ({"a": 1}, 1.0, 2.0, [(0, {})], {}, None, 5, None) and isinstance(kw["stop"], points.RayStop)
    assert kw["stop"].flag is flag and kw["stop"].k == 3


def test_run_pass_before_it_replays(tmp_path, monkeypatch):
    assert points.run_pass({}, 0.0, 1.0, [(0, {"alpha": 1})], {}, None, None, stop=lambda: True) == []
    (tmp_path / "stop").touch()
    assert points.run_pass({}, 0.0, 1.0, [(0, {"alpha": 1})], {}, None, None, stop=str(tmp_path / "stop")) == []
    with pytest.raises(ValueError, match="must change the same settings"):
        points.run_pass({}, 0.0, 1.0, [(0, {"quote_refresh_sec": 1}), (1, {"quote_refresh_sec": 2})], {}, None, None)
    w = _window([])
    path = points.dump_window(w)
    made: list[Any] = []

    class Rep:
        def __init__(self, settings: Any, t0: float, t1: float, **kw: Any) -> None:
            made.append((settings, t0, t1, kw))
            self.points: list[Any] = []

        async def run_all(self) -> list[Any]:
            return [type("R", (), {"status": "interrupted", "summary": {"rows_read": 0}, "problems": []})()]

        def drop_window(self) -> None:
            pass

    monkeypatch.setattr(points, "Replayer", Rep)
    try:
        rows = points.run_pass({"record_dir": str(tmp_path)}, 0.0, 1.0, [(0, {"alpha": 2})], {"quote_refresh_sec": 3},
                               5, 9, str(path), stop=str(tmp_path / "nothing"))
    finally:
        points._WINDOWS.clear()
        import shutil

        shutil.rmtree(path.parent)
    assert rows == []  # stopped before its first event: never started
    (settings, t0, t1, kw) = made[0]
    assert settings.quote_refresh_sec == 3 and (t0, t1) == (0.0, 1.0) and kw["markets"] == 5 and kw["seed"] == 9
    assert kw["points"] == [{"alpha": 2}] and list(kw["window"].payload) == []
    assert isinstance(kw["stop"], points.StopFile) and kw["stop"].path == str(tmp_path / "nothing")
    assert pickle.loads(pickle.dumps(points.SweepError("x"))).args == ("x",)
