"""Background tasks with an owner: no fire-and-forget.

Why: the event loop keeps only weak references to tasks, and an exception in a task nobody
awaits is reported (if ever) at garbage collection. That is how the lease task once died
silently (issue 17 C1). `spawn` keeps a strong reference in the owner's set and calls
`on_error(task, exc)` as soon as the task fails, so every failure is seen when it happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

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
