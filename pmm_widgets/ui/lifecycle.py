"""The page kernel's end: whatever stops a Voilà/Jupyter kernel runs the engine's clean stop.

Why here and how: Voilà shuts a page's kernel down when the tab closes or reloads (its unload
beacon), when the culler finds it idle, and for every kernel when Voilà itself gets SIGTERM or
SIGINT. Each of those goes through jupyter_client's `shutdown_kernel(now=False)`: a
`shutdown_request` on the control channel, then SIGTERM after half of
`KernelManager.shutdown_wait_time` (`VOILA_SHUTDOWN_WAIT_SEC`: 12 s in `voila.json`), then
SIGKILL at all of it. ipykernel awaits `kernel.do_shutdown()` before it replies and stops its
loops, so wrapping that method is the one place that sees every graceful end. It runs on the
control thread's loop; the engine lives on the shell's loop (the one cells run on), so the stop
is handed over with `run_coroutine_threadsafe` and awaited with a bound. A SIGTERM that reaches
the kernel directly (the manager's second step, or an operator's `kill`) gets the same stop
before the process ends. Only SIGKILL escapes; then the lease expires and the venue's heartbeat
cancels the orders.

The bound (`kernel_stop_timeout`, 9 s): the shutdown request waits for the stop at most its
bound plus the hop to the engine's loop (`HANDOFF_SEC`), which ends `KILL_MARGIN_SEC` before the
SIGKILL, so the kernel still logs what was left undone and replies. (It was `2 x
quote_refresh_sec + 5 s`: past the SIGKILL from a refresh of 3.5 s on.) The stop's cancel-all
starts within the engine's stop grace (2 s whatever the refresh: `Engine.stop`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from ..tasks import within

log = logging.getLogger(__name__)

StopFn = Callable[[], Awaitable[None]]

# jupyter_client's `KernelManager.shutdown_wait_time` as `voila.json` sets it (a test keeps the two
# equal): SIGTERM at half of it after the shutdown request, SIGKILL at all of it
VOILA_SHUTDOWN_WAIT_SEC = 12.0
KILL_MARGIN_SEC = 2.0  # the shutdown request stops waiting this long before the SIGKILL
HANDOFF_SEC = 1.0  # what the shutdown request waits beyond the stop's bound (the hop between loops)


def kernel_stop_timeout(shutdown_wait_sec: float = VOILA_SHUTDOWN_WAIT_SEC) -> float:
    """The clean stop's bound at a kernel's end: the shutdown request's whole wait (this plus
    `HANDOFF_SEC`) ends `KILL_MARGIN_SEC` before the manager's SIGKILL (9 s with voila.json's 12 s)."""
    return shutdown_wait_sec - HANDOFF_SEC - KILL_MARGIN_SEC


class KernelStopHook:
    """Runs `stop()` once, on the loop it was installed from, at kernel shutdown or SIGTERM."""

    handoff_sec = HANDOFF_SEC

    def __init__(self, stop: StopFn, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        self.stop = stop
        self.timeout = timeout
        self.loop = loop
        self.ran: asyncio.Future[None] | None = None
        self.reason = ""

    def _run_once(self, reason: str) -> asyncio.Future[None]:
        """Schedule the stop on the engine's loop (thread-safe); later calls share the first run."""
        if self.ran is None:
            self.reason = reason
            self.ran = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._bounded(), self.loop),
                                           loop=self.loop)
        return self.ran

    async def _bounded(self) -> None:
        try:
            await within(self.stop(), self.timeout)
        except Exception as exc:  # the kernel goes down anyway; say why the stop was incomplete
            log.error("pmm: clean stop at kernel shutdown failed: %s: %s", type(exc).__name__, exc)

    async def on_shutdown_request(self) -> None:
        """Awaited from the control thread's loop inside ipykernel's shutdown_request."""
        fut = asyncio.run_coroutine_threadsafe(self._await_on_engine_loop("shutdown_request"), self.loop)
        await within(asyncio.wrap_future(fut), self.timeout + self.handoff_sec)

    async def _await_on_engine_loop(self, reason: str) -> None:
        await self._run_once(reason)

    def on_sigterm(self) -> None:
        """SIGTERM handler on the engine's loop: stop cleanly, then end as SIGTERM would."""
        fut = self._run_once("SIGTERM")

        def _exit(_: Any) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        fut.add_done_callback(_exit)


def install_kernel_stop_hook(stop: StopFn, timeout: float | None = None) -> KernelStopHook | None:
    """Call from a notebook cell (on the kernel's running loop). None outside an IPython kernel.
    `timeout`: the stop's bound (default `kernel_stop_timeout()`: done before Voilà's SIGKILL)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    kernel = getattr(ip, "kernel", None) if ip is not None else None
    if kernel is None:
        return None
    loop = asyncio.get_running_loop()
    hook = KernelStopHook(stop, kernel_stop_timeout() if timeout is None else timeout, loop)
    original = kernel.do_shutdown

    async def do_shutdown(restart: bool) -> Any:
        try:
            await hook.on_shutdown_request()
        except Exception as exc:
            log.error("pmm: clean stop at kernel shutdown: %s: %s", type(exc).__name__, exc)
        result = original(restart)
        return await result if inspect.isawaitable(result) else result

    kernel.do_shutdown = do_shutdown  # instance attribute: shutdown_request calls self.do_shutdown
    try:
        loop.add_signal_handler(signal.SIGTERM, hook.on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / no signals here
        pass
    return hook
