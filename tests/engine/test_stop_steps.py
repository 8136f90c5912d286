"""`StopSteps`: the shutdown's steps after its verification share the stop's deadline. A step
still running at it (less what it keeps for the steps after it) is cut and said once, and the
next step runs; a worker thread's step is left to end (a cancel cannot stop a thread) and how it
ended is logged; a failure is logged, or said when it matters to the user (the lease's release)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from pmm_widgets.engine.owner import StopSteps
from pmm_widgets.events import EventKind


def _steps(budget: float) -> tuple[StopSteps, list[tuple[EventKind, str]], set[asyncio.Future[Any]]]:
    said: list[tuple[EventKind, str]] = []
    left: set[asyncio.Future[Any]] = set()
    now = asyncio.get_running_loop().time()
    return StopSteps(now, now + budget, lambda k, m: said.append((k, m)), left), said, left


async def test_a_step_that_hangs_is_cut_keeping_the_time_asked_for_and_the_next_step_runs():
    steps, said, left = _steps(0.4)
    loop = asyncio.get_running_loop()
    cancelled = asyncio.Event()

    async def hung() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "closed"

    t0 = loop.time()
    assert await steps.run("closing the venue side", hung(), "cut", keep=0.25, then="left to end on its own") == "cut"
    took = loop.time() - t0
    assert 0.1 <= took < 0.25, took  # 0.4 s less the 0.25 s kept
    assert said == [(EventKind.ENGINE_STOP, "closing the venue side not finished within the stop's 0.4 s: "
                                            "left to end on its own")]
    await asyncio.wait_for(cancelled.wait(), 1)  # a coroutine's step is cancelled
    assert await steps.run("the release", asyncio.sleep(0.05, "released"), None) == "released"  # in the time kept
    assert len(said) == 1 and not left


async def test_a_threads_step_cut_is_left_to_end_and_its_end_is_logged(caplog):
    steps, said, left = _steps(0.1)
    go = threading.Event()

    def release() -> str:
        go.wait(5)
        return "released"

    with caplog.at_level(logging.INFO, logger="pmm_widgets.engine.owner"):
        assert await steps.run("the lease's release", asyncio.to_thread(release), None, kind=EventKind.LEASE,
                               thread=True, then="the next engine waits") is None
        assert said == [(EventKind.LEASE, "the lease's release not finished within the stop's 0.1 s: "
                                          "the next engine waits")]
        (job,) = left
        assert not job.cancelled()
        go.set()  # the DB answers
        assert await job == "released"
        await asyncio.sleep(0)
    assert not left and "the lease's release, left running, ended" in caplog.text


async def test_a_failed_step_is_logged_or_said_when_it_matters(caplog):
    steps, said, _left = _steps(1.0)

    async def fails() -> None:
        raise OSError("database is locked")

    with caplog.at_level(logging.WARNING, logger="pmm_widgets.engine.owner"):
        assert await steps.run("saving the order round trips", fails(), "") == ""
    assert said == [] and "saving the order round trips failed: OSError: database is locked" in caplog.text
    assert await steps.run("the lease's release", fails(), None, kind=EventKind.LEASE,
                           say_failure="the next engine waits for its expiry") is None
    assert said == [(EventKind.LEASE, "the lease's release failed (OSError: database is locked): "
                                      "the next engine waits for its expiry")]
