"""Where the venue is: the real Polymarket hosts, or an embedded sandbox.

Why a context manager: with `PMM_VENUE=sandbox` the venue is started in-process on loopback for
the lifetime of the caller (a CLI command, the engine, a notebook) and must be stopped with it;
everything downstream only ever sees three URLs, so no code path differs between the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import Settings, Venue

if TYPE_CHECKING:
    from ..sandbox.server import Sandbox


@dataclass(frozen=True)
class Endpoints:
    gamma_url: str
    clob_url: str
    ws_url: str  # base of the websocket channels: `ws_url + "/market"`, `ws_url + "/user"`
    sandbox: Sandbox | None = None


@contextlib.asynccontextmanager
async def open_endpoints(settings: Settings) -> AsyncIterator[Endpoints]:
    """Yield the venue's URLs; for `Venue.SANDBOX` run an embedded sandbox meanwhile."""
    if settings.venue is Venue.SANDBOX:
        from ..sandbox.server import Sandbox, SandboxConfig

        cfg = SandboxConfig(markets=settings.sandbox_markets, seed=settings.sandbox_seed,
                            speed=settings.sandbox_speed,
                            resolve_every=settings.sandbox_resolve_every_sec or None)
        async with Sandbox(cfg) as sb:
            yield Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb)
        return
    yield Endpoints(settings.gamma_url, settings.clob_url, settings.clob_ws_url, None)
