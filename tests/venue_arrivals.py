"""When each request reaches the sandbox venue: a middleware put outside the sandbox's fault
middleware, so the arrival is noted before any delay or refusal the faults add (imported by
module name, like `loop_turns`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from pmm_widgets.sandbox.server import Sandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def note_arrivals(sb: Sandbox) -> list[tuple[float, str]]:
    """(monotonic time, "METHOD path") of every CLOB request as it reaches `sb`, in order of
    arrival. Call before the sandbox starts (aiohttp freezes the middlewares then)."""
    arrived: list[tuple[float, str]] = []

    @web.middleware
    async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived.append((time.monotonic(), f"{request.method} {request.path}"))
        return await handler(request)

    sb.app.middlewares.insert(0, note)
    return arrived


def first_after(arrived: list[tuple[float, str]], request: str, t0: float) -> float | None:
    """Seconds from `t0` to the first `request` ("METHOD path") that arrived after it (None: none)."""
    return min((t - t0 for t, r in arrived if r == request and t > t0), default=None)


async def until(pred: Callable[[], bool], timeout: float) -> bool:
    """Poll `pred` every 10 ms for up to `timeout` seconds; its last value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


def venue_open_counter(sb: Sandbox) -> Callable[[], int]:
    """A count of the orders resting at `sb` for every account that has placed one (the engine's
    account key is made at its start, so the owners are learnt from the account events)."""
    owners: set[str] = set()
    sb.sim.add_account_listener(lambda ev: owners.add(ev[1].owner))
    return lambda: sum(len(sb.sim.open_orders(o)) for o in owners)
