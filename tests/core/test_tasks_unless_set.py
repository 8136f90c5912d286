"""`tasks.unless_set`: await something unless an event is set first (a stop during a start-up's
venue call): then it is cancelled, waited for, and EventSetFirst raised."""

from __future__ import annotations

import asyncio

import pytest

from pmm_widgets.tasks import EventSetFirst, unless_set


def _long(ended: list[str]):
    """A call that takes a minute and says when it ended (cancelled or not)."""

    async def work():
        try:
            await asyncio.sleep(60)
        finally:
            ended.append("cleaned up")

    return work


async def test_the_result_when_the_awaited_ends_first():
    ev = asyncio.Event()

    async def work():
        await asyncio.sleep(0)
        return 7

    assert await unless_set(work(), ev) == 7
    assert not ev.is_set()


async def test_its_failure_is_raised_as_it_is():
    async def work():
        raise ValueError("venue down")

    with pytest.raises(ValueError, match="venue down"):
        await unless_set(work(), asyncio.Event())


async def test_the_event_first_cancels_and_waits_for_the_awaited():
    ev = asyncio.Event()
    ended: list[str] = []
    work = _long(ended)

    asyncio.get_running_loop().call_later(0.01, ev.set)
    with pytest.raises(EventSetFirst):
        await unless_set(work(), ev)
    assert ended == ["cleaned up"]  # ended before unless_set returned


async def test_an_event_already_set_starts_nothing():
    ev = asyncio.Event()
    ev.set()
    started: list[int] = []

    async def work():
        started.append(1)

    with pytest.raises(EventSetFirst):
        await unless_set(work(), ev)
    assert started == []


async def test_a_cancel_of_the_caller_cancels_the_awaited_too():
    ended: list[str] = []
    work = _long(ended)

    task = asyncio.ensure_future(unless_set(work(), asyncio.Event()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended == ["cleaned up"]
