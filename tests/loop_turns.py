"""How many turns the event loop gave another task while some work ran: the proof that a sliced
piece of work (the market stream's applier, the quote cycle) yields between its slices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def loop_turns(started: bool = False) -> AsyncIterator[list[int]]:
    """`async with loop_turns() as turns:` ... `turns[0]`: the bystander task's turns so far.
    `started`: the bystander has run once (it is in its loop) when the block begins, so each
    turn of the loop after that counts one."""
    turns = [0]

    async def bystander() -> None:
        while True:
            await asyncio.sleep(0)
            turns[0] += 1

    task = asyncio.create_task(bystander())
    if started:
        await asyncio.sleep(0)
    try:
        yield turns
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
