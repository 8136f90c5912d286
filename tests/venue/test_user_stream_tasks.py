"""The user stream owns its reconcile tasks: `close()` ends one still running (never left behind)."""

from __future__ import annotations

import asyncio

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
