"""How many turns the event loop gave another task while some work ran: the proof that a sliced
piece of work (the market stream's applier) yields between its slices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def loop_turns() -> AsyncIterator[list[int]]:
    """`async with loop_turns() as turns:` ... `turns[0]`: the bystander task's turns so far."""
    turns = [0]

    async def bystander() -> None:
        while True:
            await asyncio.sleep(0)
            turns[0] += 1

    task = asyncio.create_task(bystander())
    try:
        yield turns
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
