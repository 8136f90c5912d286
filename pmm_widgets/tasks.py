"""Background tasks with an owner: no fire-and-forget; and waits with a deadline that never
swallow a cancel.

Why `spawn`: the event loop keeps only weak references to tasks, and an exception in a task
nobody awaits is reported (if ever) at garbage collection. That is how the lease task once died
silently (issue 17 C1). `spawn` keeps a strong reference in the owner's set and calls
`on_error(task, exc)` as soon as the task fails, so every failure is seen when it happens.

Why `within` and `wait_set` instead of `asyncio.wait_for`: on Python 3.11, `wait_for` runs the
awaited in a task of its own, and when a cancel reaches the caller in the loop step in which
that inner task finished, it returns the result and drops the cancel. The task lives on. Found
by CI: an engine halted on a full disk was cancelled at a test's teardown just as its halt
took the trade lock; it went on quoting and the teardown waited for it for 33 minutes. A kernel
shutdown or a `Ctrl-C` would have met the same engine. `asyncio.timeout` (3.11) awaits in the
caller's own task and counts cancels (`Task.uncancel`), so a cancel always ends the wait.
`asyncio.wait_for` is banned in this package (ruff, `pyproject.toml`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .errors import PmmError

T = TypeVar("T")

log = logging.getLogger(__name__)


def spawn(coro: Coroutine[Any, Any, Any], name: str, owner: set[asyncio.Task[Any]],
          on_error: Callable[[asyncio.Task[Any], BaseException], object] | None = None) -> asyncio.Task[Any]:
    """Start `coro` as a task held in `owner`; its exception goes to `on_error` (else the log)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    owner.add(task)

    def done(t: asyncio.Task[Any]) -> None:
        owner.discard(t)
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            return
        if on_error is not None:
            try:
                on_error(t, exc)
                return
            except Exception:  # the reporter failed: still never silent
                log.exception("error handler of task %s failed", t.get_name())
        log.error("background task %s failed: %s: %s", t.get_name(), type(exc).__name__, exc)

    task.add_done_callback(done)
    return task


async def together(*aws: Awaitable[Any]) -> list[Any]:
    """Await these concurrently; the first failure cancels the others (and waits for them) and
    is raised as it is (no ExceptionGroup: callers report one line)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def within(aw: Awaitable[T], timeout: float) -> T:
    """`await aw`, or TimeoutError after `timeout` seconds (`aw` is cancelled then). Unlike
    3.11's `asyncio.wait_for`, a cancel of the caller is never lost (see the module's doc)."""
    async with asyncio.timeout(timeout):
        return await aw


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set, at most `timeout` seconds; True when it is set. Always yields to
    the loop at least once (a loop around it never spins), and a cancel of the caller always
    propagates (never `asyncio.wait_for`: see the module's doc)."""
    if event.is_set():
        await asyncio.sleep(0)
    else:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await event.wait()
    return event.is_set()


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel these tasks (None skipped) and wait until each has ended. What they ended with is
    theirs: a failure is logged at debug level, never raised here. A cancel of the caller is
    not theirs: it raises here as usual (the tasks are cancelled all the same), where
    `try: await task except CancelledError: pass` would swallow it."""
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    if not live:
        return
    await asyncio.wait(live)
    for t in live:
        if not t.cancelled() and (exc := t.exception()) is not None:
            log.debug("task %s ended with %s: %s", t.get_name(), type(exc).__name__, exc)


class EventSetFirst(PmmError):
    """`unless_set`: the event was set before the awaited ended (the awaited was cancelled)."""


async def unless_set(aw: Awaitable[T], event: asyncio.Event) -> T:
    """`await aw`, unless `event` is set first: then `aw` is cancelled and waited for, and
    EventSetFirst is raised (a stop that must not wait for a call that can take a while, a
    start-up's venue call with its retries). A cancel of the caller ends both, as usual."""
    if event.is_set():
        if asyncio.iscoroutine(aw):
            aw.close()  # never started: no "never awaited" warning
        raise EventSetFirst()
    job = asyncio.ensure_future(aw)
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(waiter, None if job.done() else job)
    if job.cancelled():  # ended by the event (its cancel above), not on its own
        raise EventSetFirst()
    return job.result()


async def to_thread_undone_on_cancel(fn: Callable[[], T], undo: Callable[[T], object]) -> T:
    """`await asyncio.to_thread(fn)`, where a cancel of the caller cannot stop the thread: the
    caller then waits for the thread to end, runs `undo(its result)` in a thread when it
    succeeded, and only then raises the cancel. What the thread did after its caller was
    cancelled (a lease taken, say) is never left behind with nobody to own it. Threads end on
    their own (DB and HTTP calls are bounded by their timeouts): further cancels meanwhile are
    held back until the undo ran, then raised as one."""
    job = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await _until_done(job)
        if not job.cancelled() and job.exception() is None:
            undone = asyncio.ensure_future(asyncio.to_thread(undo, job.result()))
            await _until_done(undone)
            if (exc := undone.exception()) is not None:
                log.error("undoing %s after a cancel failed: %s: %s", getattr(fn, "__name__", fn),
                          type(exc).__name__, exc)
        raise


async def _until_done(job: asyncio.Future[Any]) -> None:
    """Wait until `job` ended, holding back the caller's cancels meanwhile (the caller re-raises)."""
    while not job.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({job})


async def in_daemon_thread(fn: Callable[..., T], *args: Any, name: str = "pmm-db") -> T:
    """`await asyncio.to_thread(fn, *args)`, in a daemon thread of its own rather than the loop's
    executor: for the DB calls a stop may leave running past its deadline (the lease's renewals
    and release, a kill command's result). An executor's threads are joined when the loop
    closes and again when the interpreter exits, so one blocked on a DB that does not answer
    (SQLite's 10 s busy timeout) held `pmm run` up to 10 s after its stop had ended; a daemon
    thread is not waited for (what it would have written is said by the stop, and the spill
    file keeps the writer's rows). The result or error reaches the caller if its loop still
    runs; a cancel of the caller leaves the thread to end on its own, as `to_thread` does."""
    import contextvars
    import threading

    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()
    ctx = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if fut.done():  # the caller was cancelled meanwhile
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def run() -> None:
        try:
            res: Any = ctx.run(fn, *args)
            ok = True
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            res, ok = exc, False
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
            loop.call_soon_threadsafe(settle, ok, res)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await fut
