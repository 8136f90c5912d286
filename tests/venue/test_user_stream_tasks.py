"""The user stream owns its reconcile tasks: `close()` ends one still running (never left behind),
or, when one ignores its cancel, waits for it at most `close_wait_sec`, says so and keeps owning it."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from pmm_widgets.tasks import spawn
from pmm_widgets.venue.user_stream import UserStream


async def test_close_cancels_a_reconcile_still_running() -> None:
    us = UserStream("ws://127.0.0.1:9/ws", auth=lambda: {}, on_event=lambda ev: None)
    started = asyncio.Event()

    async def reconcile() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = spawn(reconcile(), "user-stream-reconcile", us._side_tasks)
    await started.wait()
    await asyncio.wait_for(us.close(), 5)
    assert task.cancelled() and not us._side_tasks


async def test_close_waits_its_bound_for_a_reconcile_that_ignores_its_cancel_then_keeps_owning_it(caplog) -> None:
    """A reconcile that swallows every cancel: `close()` returns after `close_wait_sec` (5 s by
    default, which no test could wait for) with the stream closed and says so; the straggler
    stays in the stream's task set until it ends, and its failure is then logged by that owner:
    never an unowned task, never asyncio's "Task exception was never retrieved"."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
    try:
        us = UserStream("ws://127.0.0.1:9/ws", auth=lambda: {}, on_event=lambda ev: None, close_wait_sec=0.2)
        await us.start(wait=0)  # its connection task keeps trying the closed port meanwhile
        started, release = asyncio.Event(), asyncio.Event()
        cancels = 0

        async def stubborn() -> None:
            nonlocal cancels
            started.set()
            while not release.is_set():
                try:
                    await release.wait()
                except asyncio.CancelledError:
                    cancels += 1  # ignored
            raise RuntimeError("venue gone")

        task = spawn(stubborn(), "user-stream-reconcile", us._side_tasks)
        await started.wait()
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pmm_widgets.venue.user_stream"):
            await asyncio.wait_for(us.close(), 3)
        took = time.monotonic() - t0
        assert 0.2 <= took < 1.0, took
        assert not us.connected and us._task is None and us._ws is None  # the stream is closed
        assert cancels == 1 and not task.done() and task in us._side_tasks  # still running, still owned
        assert [r.getMessage() for r in caplog.records if r.name == "pmm_widgets.venue.user_stream"] == [
            "user stream closed with 1 on_connect task(s) still running 0.2s after their cancel "
            "(user-stream-reconcile): left to end on their own, a failure is logged"]
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="pmm_widgets.tasks"):
            release.set()
            await asyncio.wait({task})
        assert not us._side_tasks
        assert [r.getMessage() for r in caplog.records if r.name == "pmm_widgets.tasks"] == [
            "background task user-stream-reconcile failed: RuntimeError: venue gone"]
        del task
        gc.collect()
        await asyncio.sleep(0)
        assert unhandled == []
    finally:
        loop.set_exception_handler(None)


def test_close_waits_five_seconds_by_default() -> None:
    assert UserStream("ws://127.0.0.1:9/ws", auth=lambda: {}, on_event=lambda ev: None).close_wait_sec == 5.0
