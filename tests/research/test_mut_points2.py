"""The rows `run_pass` builds after a real (small) replay pass: each point's row is its own
replay's summary under its own index, with the point's values as validated numbers (a grid value
never overwritten by a summary figure of the same name), its problems' text, its progress line;
a pass stopped part-way keeps its points' partial rows, one stopped before its first event has
none. Also the window's hand-over (`dump_window`, `window_from_file`) and the polled stops' pace."""

from __future__ import annotations

import asyncio
import shutil
import time
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from pmm_widgets.config import Settings, load_settings
from pmm_widgets.research import points
from pmm_widgets.research.recordings import LazyPayloads, Window, load_window, parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.research.sweeps import TIMING_COLUMNS, _settings_dict
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
SPAN = 60.0
T1 = T0 + SPAN


@pytest.fixture(scope="module")
def rec(tmp_path_factory: Any) -> Any:
    root = tmp_path_factory.mktemp("points2") / "recordings"
    synth_recording(root, T0, SPAN, markets=2, seed=11)
    return root


@pytest.fixture(scope="module")
def window(rec: Any) -> Window:
    return load_window(rec, T0, T1)


def _sd(rec: Any) -> dict[str, Any]:
    return _settings_dict(load_settings(record_dir=str(rec), quote_refresh_sec=1.0, paper_fill_intensity=20,
                                        db_url="sqlite:///:memory:"))


def _alone(sd: dict[str, Any], window: Window, settings: dict[str, Any], params: dict[str, Any],
           seed: int | None) -> Any:
    """The replay of one point by itself (its settings and parameters)."""
    s = Settings(**{**sd, **settings})
    return asyncio.run(Replayer(s, T0, T1, window=window, params=params, seed=seed).run())


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in TIMING_COLUMNS}


def test_each_row_is_its_own_points_replay_with_its_values_as_numbers(rec, window, capsys):
    sd = _sd(rec)
    fixed = {"paper_spread_k": 60}
    items = [(4, {"alpha": 3, "quote_size": "7", "paper_queue_func": "log", "quote_refresh_sec": "2"}),
             (1, {"alpha": 1, "quote_size": "12", "paper_queue_func": "power", "quote_refresh_sec": "2"})]
    rows = points.run_pass(sd, T0, T1, items, fixed, None, 3, window, report=9)
    assert [r["point"] for r in rows] == [4, 1]  # each row under its own index, in the pass's order
    first, second = rows
    assert (first["alpha"], first["quote_size"], first["paper_queue_func"], first["quote_refresh_sec"]) == (
        3.0, 7.0, "log", 2.0)
    assert (second["alpha"], second["quote_size"], second["paper_queue_func"]) == (1.0, 12.0, "power")
    # a number, not a Decimal nor its text (a Decimal equals its float: the type is what is said)
    assert type(first["quote_size"]) is float and type(first["alpha"]) is float
    assert type(first["quote_refresh_sec"]) is float  # (a setting: its validated value)
    assert "paper_spread_k" not in first  # a fixed value is no column of the grid's
    assert first["fills"] != second["fills"] and min(first["fills"], second["fills"]) > 0  # they trade, differently
    for (_, pt), row in zip(items, rows):
        params = {**fixed, **{k: v for k, v in pt.items() if k != "quote_refresh_sec"}}
        alone = _alone(sd, window, {"quote_refresh_sec": 2.0}, params, 3)
        got = {k: row[k] for k in alone.summary if k not in TIMING_COLUMNS}
        assert got == _figures(alone.summary)  # every figure of the point's own replay, none of the other's
        assert row["problem_text"] == "; ".join(alone.problems)
        assert set(row) == {"point", *pt, *alone.summary, "problem_text"}
    assert capsys.readouterr().err == "sweep: point 5 of 9 done\nsweep: point 2 of 9 done\n"


def test_a_row_keeps_its_grid_value_beside_the_summary_figure_of_the_same_name(rec, window):
    """`max_inventory_usd` (and `max_inventory_shares`) are risk limits a grid sweeps, and also the
    replay's figures (the largest inventory held). The row's column of that name is the point's
    limit (what `sweep_results.grid_json` stores); the figure is `<name>_seen`. It used to be the
    other way: the figure replaced the point's value, and the rows of a sweep of the limit said
    neither which limit they replayed nor stored it."""
    sd = _sd(rec)
    items = [(0, {"max_inventory_usd": 5, "max_inventory_shares": "40"}),
             (1, {"max_inventory_usd": "250", "max_inventory_shares": 500})]
    rows = points.run_pass(sd, T0, T1, items, {}, None, None, window)
    assert [(r["max_inventory_usd"], r["max_inventory_shares"]) for r in rows] == [(5.0, 40.0), (250.0, 500.0)]
    for (_, pt), row in zip(items, rows):
        alone = _alone(sd, window, {}, pt, None)
        assert row["max_inventory_usd_seen"] == alone.summary["max_inventory_usd"]
        assert row["max_inventory_shares_seen"] == alone.summary["max_inventory_shares"]
        assert row["fills"] == alone.summary["fills"]
    assert rows[0]["max_inventory_usd_seen"] != rows[1]["max_inventory_usd_seen"]
    assert 0 < rows[0]["max_inventory_usd_seen"] < 2 * 5  # the limit held it (about) at 5 USD
    other = points.run_pass(sd, T0, T1, [(0, {"alpha": 2})], {}, None, None, window)
    assert "max_inventory_usd_seen" not in other[0] and other[0]["max_inventory_usd"] > 0  # not swept: the figure


class _Calls:
    """A stop that says stop from its `after`+1-th call on."""

    def __init__(self, after: int) -> None:
        self.after, self.n = after, 0

    def __call__(self) -> bool:
        self.n += 1
        return self.n > self.after


def test_a_pass_stopped_part_way_keeps_its_points_partial_rows(rec, window, capsys):
    sd = _sd(rec)
    items = [(2, {"alpha": 2}), (0, {"alpha": 1})]
    stop = _Calls(20)
    rows = points.run_pass(sd, T0, T1, items, {}, None, None, window, report=3, stop=stop)
    assert [r["point"] for r in rows] == [2, 0] and [r["status"] for r in rows] == ["interrupted"] * 2
    assert all(r["rows_read"] > 0 for r in rows)
    assert capsys.readouterr().err == "sweep: point 3 of 3 interrupted\nsweep: point 1 of 3 interrupted\n"
    # told to stop after the pass began, before its first event: these points never started
    assert points.run_pass(sd, T0, T1, items, {}, None, None, window, report=3, stop=_Calls(1)) == []
    assert capsys.readouterr().err == ""


class _Result:
    def __init__(self, status: str, rows_read: int) -> None:
        self.status, self.summary, self.problems = status, {"status": status, "rows_read": rows_read}, ["p1", "p2"]


def test_only_points_stopped_before_their_first_event_have_no_rows(monkeypatch, capsys):
    """A pass that read nothing but was not stopped (an empty window) still has its rows; so has
    one stopped after it read events."""
    answers: list[list[_Result]] = []

    class Rep:
        def __init__(self, settings: Any, t0: float, t1: float, points: list[dict[str, Any]], **kw: Any) -> None:
            from pmm_widgets.config import Params

            self.points = [type("P", (), {"params": Params(**p)})() for p in points]

        async def run_all(self) -> list[_Result]:
            return answers.pop(0)

        def drop_window(self) -> None:
            pass

    monkeypatch.setattr(points, "Replayer", Rep)
    items = [(0, {"alpha": 2}), (1, {"alpha": 3})]
    answers.append([_Result("done", 0), _Result("done", 0)])
    rows = points.run_pass({}, 0.0, 1.0, items, {}, None, None, report=None)
    assert [(r["point"], r["alpha"], r["status"], r["problem_text"]) for r in rows] == [
        (0, 2.0, "done", "p1; p2"), (1, 3.0, "done", "p1; p2")]
    answers.append([_Result("interrupted", 7), _Result("interrupted", 7)])
    assert [r["status"] for r in points.run_pass({}, 0.0, 1.0, items, {}, None, None)] == ["interrupted"] * 2
    answers.append([_Result("interrupted", 0), _Result("interrupted", 0)])
    assert points.run_pass({}, 0.0, 1.0, items, {}, None, None, report=2) == []
    assert capsys.readouterr().err == ""  # no rows, no progress lines


# ------------------------------------------------------------------------- the window's hand-over


def _small(payloads: list[Any]) -> Window:
    n = len(payloads)
    return Window(t0=1.0, t1=2.0, ts=np.arange(n, dtype=np.float64), channel=np.zeros(n, np.int8), kind=["x"] * n,
                  conn=np.zeros(n, np.int32), payload=payloads, session=["s"] * n)


def test_a_worker_keeps_only_the_window_it_read_last():
    a, b = points.dump_window(_small(["a"])), points.dump_window(_small(["b", "c"]))
    try:
        assert list(points.window_from_file(str(a)).payload) == ["a"]
        assert list(points.window_from_file(str(b)).payload) == ["b", "c"]
        assert set(points._WINDOWS) == {str(b)}  # another sweep's window: let go
    finally:
        points._WINDOWS.clear()
        shutil.rmtree(a.parent)
        shutil.rmtree(b.parent)


class _Lazy(LazyPayloads):
    """Payloads never to be read whole (a window too large to hold): their size is not counted."""

    def __init__(self, n: int) -> None:  # (no files)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        raise AssertionError("a lazy window's payloads were read to size it")

    def __iter__(self) -> Any:
        raise AssertionError("a lazy window's payloads were read to size it")


class _Made(Exception):
    pass


def _where(monkeypatch: Any, window: Window, free: int, writable: bool = True) -> Any:
    """The directory `dump_window` asks `mkdtemp` for, with `free` bytes free in /dev/shm."""
    asked: list[Any] = []

    def mkdtemp(prefix: str, dir: str | None = None) -> str:  # noqa: A002
        asked.append(dir)
        raise _Made

    monkeypatch.setattr(points.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(points.shutil, "disk_usage", lambda p: type("U", (), {"free": free})())
    monkeypatch.setattr(points.os, "access", lambda p, mode: writable)
    with pytest.raises(_Made):
        points.dump_window(window)
    return asked[0]


def test_dump_window_sizes_a_lazy_window_by_its_rows_and_needs_a_writable_dev_shm(monkeypatch):
    if not points.Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm here")
    lazy = _small([None] * 10)
    lazy.payload = _Lazy(10)
    size = 64 * 10  # its payloads are not in memory: only its rows count
    assert _where(monkeypatch, lazy, 2 * size + 1) == "/dev/shm"
    assert _where(monkeypatch, lazy, 2 * size) is None
    eager = _small(["x" * 100] * 10)
    assert _where(monkeypatch, eager, 2 * (640 + 1000) + 1) == "/dev/shm"
    assert _where(monkeypatch, eager, 2 * (640 + 1000) + 1, writable=False) is None  # not ours to write


# ------------------------------------------------------------------------- the stops' pace


def test_a_stop_file_is_seen_within_a_tenth_of_a_second(tmp_path):
    f = tmp_path / "stop"
    stop = points.StopFile(str(f))
    assert stop() is False
    f.touch()
    deadline = time.monotonic() + 0.15
    while not stop() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert stop() is True  # (STOP_POLL_SEC: a worker's pass sees the sweep's Ctrl-C at once)


def test_a_ray_task_asks_its_flag_every_half_second_at_most(monkeypatch):
    clock = [50.0]
    monkeypatch.setattr(points.time, "monotonic", lambda: clock[0])
    sent: list[Future[bool]] = []

    class Remote:
        def remote(self, k: int) -> Any:
            fut: Future[bool] = Future()
            fut.set_result(len(sent) >= 2)  # the flag set as the third ask is sent
            sent.append(fut)
            return type("Ref", (), {"future": lambda self_: fut})()

    stop = points.RayStop(type("Flag", (), {"poll": Remote()})(), 0)
    assert stop() is False and len(sent) == 1  # the first ask, waited for
    clock[0] += 0.2
    assert stop() is False and len(sent) == 1  # the cached answer: not asked
    clock[0] += 0.3
    assert stop() is False and len(sent) == 2  # half a second: asked again (its answer read at the next ask)
    clock[0] += 0.5
    assert stop() is False and len(sent) == 3  # the second answer (go) read; the third asked (stop)
    clock[0] += 0.5
    assert stop() is True and len(sent) == 3  # the stop seen half a second after it was answered (0.5-1 s)


def test_a_first_ask_not_answered_fails_soon_after_its_wait(monkeypatch):
    monkeypatch.setattr(points, "RAY_FLAG_WAIT_SEC", 0.2)

    class Remote:
        def remote(self, k: int) -> Any:
            fut: Future[bool] = Future()  # never answered
            return type("Ref", (), {"future": lambda self_: fut})()

    t = time.monotonic()
    with pytest.raises(points.SweepError, match="did not answer pass 1 within 0.2 s"):
        points.RayStop(type("Flag", (), {"poll": Remote()})(), 1).first()
    assert time.monotonic() - t < 0.9  # its waits are short (a Ctrl-C gets through between them)

