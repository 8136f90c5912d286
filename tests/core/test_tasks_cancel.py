"""`within` / `wait_set` (pmm_widgets/tasks.py): a cancel always ends the waiting task.

Python 3.11's `asyncio.wait_for` drops a cancel that reaches the caller in the loop step in
which its inner task finished: the task goes on (CI: an engine on a full disk outlived its
teardown by 33 minutes). These tests cancel at every step of the first few and check the task
ends cancelled, with the lock it took released; the first one fails with `wait_for` in place of
`within` (shown in `test_wait_for_on_this_python_drops_the_cancel`, which documents why the
helper exists while the interpreter still has the flaw)."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from pmm_widgets.tasks import to_thread_undone_on_cancel, wait_set, within


async def _holder(lock: asyncio.Lock, take) -> None:
    await take(lock.acquire())
    try:
        await asyncio.sleep(30)
    finally:
        lock.release()


async def _cancel_after(steps: int, coro) -> asyncio.Task:
    task = asyncio.ensure_future(coro)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task}, timeout=2.0)
    return task


@pytest.mark.parametrize("steps", range(5))
async def test_a_cancel_at_any_step_of_a_lock_taken_within_a_deadline_ends_the_task(steps):
    lock = asyncio.Lock()
    task = await _cancel_after(steps, _holder(lock, lambda aw: within(aw, 1.0)))
    assert task.done() and task.cancelled()
    assert not lock.locked()


@pytest.mark.parametrize("steps", range(4))
async def test_a_cancel_at_any_step_of_wait_set_ends_the_task(steps):
    ev = asyncio.Event()

    async def waiter() -> None:
        while True:
            await wait_set(ev, 0.001)

    async def set_soon() -> None:
        ev.set()

    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(set_soon()))
    task = await _cancel_after(steps, waiter())
    assert task.done() and task.cancelled()


async def test_within_raises_timeout_and_cancels_what_it_awaited():
    started = asyncio.Event()
    cancelled = []

    async def slow() -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 1

    with pytest.raises(TimeoutError):
        await within(slow(), 0.05)
    assert started.is_set() and cancelled == [True]
    assert await within(asyncio.sleep(0, result=7), 1.0) == 7


async def test_wait_set_returns_whether_the_event_is_set():
    ev = asyncio.Event()
    assert await wait_set(ev, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, ev.set)
    assert await wait_set(ev, 5.0) is True
    assert await wait_set(ev, 0.0) is True  # already set: no wait


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 rebuilt wait_for on asyncio.timeout")
async def test_wait_for_on_this_python_drops_the_cancel():
    """Why `within` exists: the same cancel, with `asyncio.wait_for`, is lost and the task runs on."""
    lock = asyncio.Lock()
    task = await _cancel_after(1, _holder(lock, lambda aw: asyncio.wait_for(aw, 1.0)))
    try:
        assert not task.done(), "wait_for kept the cancel on this interpreter: the workaround may go"
        assert lock.locked()
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)


async def _stubborn(started: asyncio.Event, ended: list[str]) -> None:
    """A task that swallows its first cancel and takes a while to end (a socket's close handshake)."""
    started.set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        try:
            await asyncio.sleep(0.5)
        finally:
            ended.append("ended")


async def test_cancel_and_wait_ends_the_tasks_and_keeps_their_failures_to_themselves():
    from pmm_widgets.tasks import cancel_and_wait

    async def fails() -> None:
        raise ValueError("theirs")

    async def sleeps() -> None:
        await asyncio.sleep(30)

    failed, sleeping = asyncio.ensure_future(fails()), asyncio.ensure_future(sleeps())
    await asyncio.sleep(0)  # the first has failed already
    await cancel_and_wait(failed, None, sleeping)
    assert failed.done() and not failed.cancelled() and sleeping.cancelled()
    await cancel_and_wait()  # nothing to do


async def test_cancel_and_wait_never_swallows_a_cancel_of_its_caller():
    """The caller cancelled while the tasks still end: the cancel raises in the caller (a timeout
    around a close fires), where `try: await task / except CancelledError: pass` returned normally."""
    from pmm_widgets.tasks import cancel_and_wait

    started, ended = asyncio.Event(), []
    slow = asyncio.ensure_future(_stubborn(started, ended))
    await started.wait()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_and_wait(slow)
    assert loop.time() - t0 < 0.4 and ended == []  # the caller did not wait the task out
    await asyncio.wait([slow])
    assert ended == ["ended"]


async def _gated(gate: threading.Event, entered: threading.Event, result: object):
    def work() -> object:
        entered.set()
        gate.wait(10)
        return result
    return work


@pytest.mark.parametrize("extra_cancels", [0, 2])
async def test_a_thread_that_finishes_after_its_caller_was_cancelled_is_undone_before_the_cancel(extra_cancels):
    gate, entered = threading.Event(), threading.Event()
    undone: list[object] = []
    task = asyncio.ensure_future(to_thread_undone_on_cancel(await _gated(gate, entered, "lease"), undone.append))
    assert await asyncio.to_thread(entered.wait, 5)
    for _ in range(1 + extra_cancels):  # a stop's cancel, then its backstop's (they wait for the thread)
        task.cancel()
        await asyncio.sleep(0.01)
    assert not task.done() and undone == []  # the thread is still running: nothing to undo yet
    gate.set()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()  # the cancel is raised, after the undo
    assert undone == ["lease"]


async def test_a_thread_that_fails_or_is_not_cancelled_is_never_undone():
    undone: list[object] = []
    assert await to_thread_undone_on_cancel(lambda: 7, undone.append) == 7  # no cancel: the result, no undo

    def boom() -> int:
        entered.set()
        gate.wait(10)
        raise OSError("database is locked")

    gate, entered = threading.Event(), threading.Event()
    task = asyncio.ensure_future(to_thread_undone_on_cancel(boom, undone.append))
    assert await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled() and undone == []  # it took nothing: nothing to undo, the cancel still raised
    with pytest.raises(OSError):
        await to_thread_undone_on_cancel(lambda: (_ for _ in ()).throw(OSError("x")), undone.append)
    assert undone == []


async def test_an_undo_that_fails_is_logged_and_the_cancel_still_raised(caplog):
    gate, entered = threading.Event(), threading.Event()

    def undo(_: object) -> None:
        raise RuntimeError("db gone")

    task = asyncio.ensure_future(to_thread_undone_on_cancel(await _gated(gate, entered, True), undo))
    assert await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()
    assert "undoing work after a cancel failed: RuntimeError: db gone" in caplog.text
