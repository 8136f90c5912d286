"""When each request reaches the sandbox venue: a middleware put outside the sandbox's fault
middleware, so the arrival is noted before any delay or refusal the faults add (imported by
module name, like `loop_turns`). And the live engine on the sandbox that the stop tests (the
engine's, the kernel's) all start the same way (`live_engine`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from pmm_widgets.config import Settings
from pmm_widgets.engine.core import Engine
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


def note_requests(sb: Sandbox, into: list[T], record: Callable[[web.Request, bytes], T]) -> list[T]:
    """`record(request, body)` of every CLOB request as it reaches `sb`, appended to `into` in order
    of arrival (returned). Call before the sandbox starts (aiohttp freezes the middlewares then)."""

    @web.middleware
    async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
        into.append(record(request, await request.read()))
        return await handler(request)

    sb.app.middlewares.insert(0, note)
    return into


def note_arrivals(sb: Sandbox) -> list[tuple[float, str]]:
    """(monotonic time, "METHOD path") of every CLOB request as it reaches `sb` (`note_requests`)."""
    return note_requests(sb, [], lambda r, _body: (time.monotonic(), f"{r.method} {r.path}"))


def still_sandbox() -> Sandbox:
    """The broker tests' sandbox (12 markets, not started yet), its market held still: the orders
    placed there rest until they are cancelled."""
    s = Sandbox(SandboxConfig(markets=12, seed=5, speed=20.0))
    s.paused = True
    return s


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


def note_answers(sb: Sandbox) -> list[tuple[float, str, int]]:
    """(monotonic time, "METHOD path", HTTP status) of every CLOB request as `sb` answers it (the
    faults' refusals included), in order of answer. Call before the sandbox starts."""
    answered: list[tuple[float, str, int]] = []

    @web.middleware
    async def note(request: web.Request, handler: Handler) -> web.StreamResponse:
        resp = await handler(request)
        answered.append((time.monotonic(), f"{request.method} {request.path}", resp.status))
        return resp

    sb.app.middlewares.insert(0, note)
    return answered


@dataclass
class LiveRun:
    """A live engine owning the sandbox venue (`live_engine`), and what the sandbox noted."""

    engine: Engine
    sb: Sandbox
    arrived: list[tuple[float, str]]  # `note_arrivals`
    answered: list[tuple[float, str, int]]  # `note_answers`
    venue_open: Callable[[], int]  # `venue_open_counter`

    def arrived_after(self, request: str, t0: float) -> float | None:
        return first_after(self.arrived, request, t0)

    async def quoting_still(self, timeout: float = 10.0) -> int:
        """Wait until orders rest at the venue and no cycle is under way, then hold the market
        still (no fill, no requote); the orders resting."""
        assert await until(lambda: self.venue_open() > 0 and not self.engine.owner._ctl.trade_lock.locked(), timeout), \
            "the engine placed nothing"
        self.sb.paused = True
        return self.venue_open()

    async def probing(self, *, recover: bool) -> None:
        """The circuit open (failing cycles), and a probe under way, held by a venue slow on its
        reads (it holds the trade lock). `recover`: the cycles work again meanwhile (the circuit
        closes at the first probe that gets through); else they keep failing."""
        engine = self.engine
        owner = engine.owner
        await self.quoting_still()

        async def boom(*a: object, **k: object) -> None:
            raise ValueError("the venue fails")

        engine.runtime.cycle.run_once = boom  # type: ignore[method-assign]  # failing cycles open the circuit
        assert await until(lambda: owner._circuit.is_open, timeout=5)
        if recover:
            del engine.runtime.cycle.run_once  # (the class's again: what runs once the circuit closes)
        self.sb.faults.update(latency_ms=1200, latency_methods="GET")  # a venue slow on its reads
        n0 = len(self.arrived)
        # the probe's count (GET /data/orders, held 1.2 s) reached the venue: the probe holds the trade lock
        assert await until(lambda: any(r == "GET /data/orders" for _, r in self.arrived[n0:]), timeout=3)
        assert owner._ctl.trade_lock.locked() and owner.probing


@contextlib.asynccontextmanager
async def live_engine(settings: Settings, *, stop_grace_sec: float | None = None, markets: int = 10, seed: int = 7,
                      speed: float = 15, **update: Any) -> AsyncIterator[LiveRun]:
    """A live engine with a throwaway wallet key (the fast order path, the default) on a loopback
    sandbox (`markets`, `seed`, `speed`) that notes when each request arrives and is answered:
    started and owning (`wait_role`) when yielded; the sandbox's faults cleared and the engine
    stopped at the end. `update`: settings over `settings` (`quote_refresh_sec`, `universe_size`,
    ...); `stop_grace_sec`: the engine's grace for a cycle under way at a stop (the default, 2 s,
    makes a test slow)."""
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.domain import Mode
    from pmm_widgets.venue.endpoints import Endpoints

    settings = settings.model_copy(update={"private_key": SecretStr(Account.create().key.hex()), **update})
    sb = Sandbox(SandboxConfig(markets=markets, seed=seed, speed=speed))
    arrived = note_arrivals(sb)
    answered = note_answers(sb)
    venue_open = venue_open_counter(sb)
    async with sb:
        engine = Engine(settings, Mode.LIVE, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        if stop_grace_sec is not None:
            engine.stop_grace_sec = stop_grace_sec
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
            yield LiveRun(engine, sb, arrived, answered, venue_open)
        finally:
            sb.faults.update(latency_ms=0, http_error_rate=0.0)
            await engine.stop()
