"""Where the venue is: the real Polymarket hosts, or an embedded sandbox.

Why a context manager: with `PMM_VENUE=sandbox` the venue is started on loopback for the lifetime
of the caller (a CLI command, the engine, a notebook) and must be stopped with it; everything
downstream only ever sees three URLs, so no code path differs between the two.

In-process or a child process (`PMM_SANDBOX_PROCESS`): the simulated venue costs about as much
CPU as the engine, and on one event loop each stalls the other (at 300 markets the loop stalled
p99 135 ms with the sandbox inside, 26 ms with it outside). `auto` runs it in its own process
(`python -m pmm_widgets.sandbox --exit-on-stdin-eof`) from `SANDBOX_PROCESS_MARKETS` markets
(universe or sandbox size) up, in-process below (a sub-second start for the demo and tests). The
child is stopped on every exit path: its stdin is a pipe from us, so it also stops when this
process dies without cleaning up (SIGKILL); a child that does not stop in time is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import Settings, Venue
from ..errors import PmmError
from ..tasks import within

log = logging.getLogger(__name__)

SANDBOX_PROCESS_MARKETS = 150  # `PMM_SANDBOX_PROCESS=auto`: a child process from this many markets up
START_TIMEOUT_SEC = 60.0
STOP_TIMEOUT_SEC = 5.0

if TYPE_CHECKING:
    from ..sandbox.server import Sandbox


@dataclass(frozen=True)
class Endpoints:
    gamma_url: str
    clob_url: str
    ws_url: str  # base of the websocket channels: `ws_url + "/market"`, `ws_url + "/user"`
    sandbox: Sandbox | None = None  # the in-process sandbox (None: real hosts or a child process)
    sandbox_pid: int | None = None  # the child process serving the sandbox

    @property
    def embedded(self) -> bool:
        return self.sandbox is not None or self.sandbox_pid is not None


class SandboxStartError(PmmError):
    """The sandbox child process did not start (it exited, or printed no URLs in time)."""


def sandbox_in_child(settings: Settings) -> bool:
    """Whether `PMM_VENUE=sandbox` runs the venue in its own process (`PMM_SANDBOX_PROCESS`)."""
    if settings.sandbox_process == "auto":
        return max(settings.universe_size, settings.sandbox_markets) >= SANDBOX_PROCESS_MARKETS
    return settings.sandbox_process == "on"


@contextlib.asynccontextmanager
async def sandbox_child(settings: Settings, start_ts: float | None = None) -> AsyncIterator[Endpoints]:
    """`python -m pmm_widgets.sandbox` as our child for the duration of the block (`start_ts`: its
    simulated clock's start, `--start-ts`)."""
    args = [sys.executable, "-m", "pmm_widgets.sandbox", "--markets", str(settings.sandbox_markets),
            "--seed", str(settings.sandbox_seed), "--speed", str(settings.sandbox_speed), "--exit-on-stdin-eof"]
    if settings.sandbox_resolve_every_sec:
        args += ["--resolve-every", str(settings.sandbox_resolve_every_sec)]
    if start_ts is not None:
        args += ["--start-ts", f"{start_ts:.3f}"]
    with tempfile.TemporaryFile() as err:
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=err)
        try:
            urls = await within(_read_urls(proc), START_TIMEOUT_SEC)
            if urls is None:
                await proc.wait()
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
                raise SandboxStartError(f"the sandbox process exited with code {proc.returncode} before serving"
                                        + (f": {tail[0]}" if tail else ""))
            log.info("sandbox child process %d: %s", proc.pid, urls["PMM_CLOB_URL"])
            yield Endpoints(urls["PMM_GAMMA_URL"], urls["PMM_CLOB_URL"], urls["PMM_CLOB_WS_URL"], None, proc.pid)
        except TimeoutError:
            raise SandboxStartError(f"the sandbox process printed no URLs within {START_TIMEOUT_SEC:g} s") from None
        finally:
            await _stop_child(proc)


async def _read_urls(proc: asyncio.subprocess.Process) -> dict[str, str] | None:
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < 3:
        line = (await proc.stdout.readline()).decode(errors="replace")
        if not line:
            return None
        if line.startswith("export PMM_"):
            k, v = line.removeprefix("export ").strip().split("=", 1)
            urls[k] = v
    return urls


async def _stop_child(proc: asyncio.subprocess.Process) -> None:
    """Close its stdin (it stops itself), then SIGTERM, then SIGKILL; never leaves it running,
    also when this coroutine is cancelled."""
    try:
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()
        for step in (None, proc.terminate):
            if proc.returncode is not None:
                break
            if step is not None:
                with contextlib.suppress(ProcessLookupError):
                    step()
            with contextlib.suppress(TimeoutError):
                await within(proc.wait(), STOP_TIMEOUT_SEC)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(BaseException):
                await asyncio.shield(proc.wait())


@contextlib.asynccontextmanager
async def open_endpoints(settings: Settings) -> AsyncIterator[Endpoints]:
    """Yield the venue's URLs; for `Venue.SANDBOX` run an embedded sandbox meanwhile (in this
    process, or in a child process: `sandbox_in_child`)."""
    if settings.venue is Venue.SANDBOX and sandbox_in_child(settings):
        async with sandbox_child(settings) as ep:
            yield ep
        return
    if settings.venue is Venue.SANDBOX:
        from ..sandbox.server import Sandbox, SandboxConfig

        cfg = SandboxConfig(markets=settings.sandbox_markets, seed=settings.sandbox_seed,
                            speed=settings.sandbox_speed,
                            resolve_every=settings.sandbox_resolve_every_sec or None)
        async with Sandbox(cfg) as sb:
            yield Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb)
        return
    yield Endpoints(settings.gamma_url, settings.clob_url, settings.clob_ws_url, None)
