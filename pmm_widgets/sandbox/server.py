"""The sandbox venue: Gamma and CLOB (REST + market websocket) on loopback over the simulator.

Why aiohttp.web: HTTP and websockets in one mature package, started and stopped in-process with
`AppRunner`/`TCPSite` (no server subprocess in tests, notebooks or the demo), one site per port.
Two ports so that every path is exactly the real one: Gamma's `/markets` and the CLOB's
`/markets/{condition_id}` would otherwise collide.

The simulator runs on the event loop in a clock task: the wall clock only decides how many fixed
simulated steps to run (the speed factor), so the simulated market stays deterministic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..errors import ExitCode
from .clob_rest import ClobPublicRoutes, error
from .faults import Faults
from .gamma import GammaRoutes
from .market_ws import MarketHub
from .simulator import STEP_SEC, Simulator

log = logging.getLogger(__name__)

CLOCK_TICK_SEC = 0.05  # wall seconds between clock ticks (one ws frame per connection per tick)
MAX_STEPS_PER_TICK = 400  # beyond this the simulation falls behind instead of starving the loop

Extension = Callable[[web.Application, Simulator, "Sandbox"], Any]


@dataclass
class SandboxConfig:
    markets: int = 80
    seed: int = 7
    speed: float = 1.0
    host: str = "127.0.0.1"
    gamma_port: int = 0
    clob_port: int = 0
    start_ts: float | None = None  # simulated epoch at start (None: wall time now)
    resolve_every: float | None = None  # simulated seconds between market resolutions (None: off)
    auth_skew_sec: float = 300.0  # accepted |POLY_TIMESTAMP - wall clock| of an L1 or L2 request (trading.AUTH_SKEW_SEC)


def _default_extensions() -> list[Extension]:
    """The trading half (`sandbox/trading.py`) when it exists; only its absence is tolerated."""
    try:
        from .trading import install as install_trading
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.trading":
            raise
        return []
    return [install_trading]


class Sandbox:
    """In-process sandbox venue; use as `async with Sandbox(cfg) as sb:`.

    Public surface: `gamma_url`, `clob_url`, `ws_url` (after start), `sim` (ground truth and
    account hooks), `faults`, `app` (CLOB aiohttp app; extensions add routes before start),
    `paused` (freeze the simulated market), `drop_websockets()`, and for extensions
    `add_tick_hook(fn)` and `ws_closers`.
    """

    def __init__(self, cfg: SandboxConfig | None = None, extensions: Sequence[Extension] | None = None):
        self.cfg = cfg or SandboxConfig()
        self.sim = Simulator(self.cfg.markets, self.cfg.seed, self.cfg.speed, start_ts=self.cfg.start_ts)
        self.sim.resolve_every = self.cfg.resolve_every
        self.faults = Faults()
        self.hub = MarketHub(self.sim, self.faults)
        self.gamma_app = web.Application(middlewares=[self._fault_middleware])
        GammaRoutes(self.sim, self.faults).install(self.gamma_app)
        self.app = web.Application(middlewares=[self._fault_middleware])
        ClobPublicRoutes(self.sim).install(self.app)
        self.app.router.add_get("/ws/market", self.hub.handle)
        self.app.router.add_get("/_sandbox/state", self._admin_state)
        self.app.router.add_get("/_sandbox/book", self._admin_book)
        self.app.router.add_get("/_sandbox/trades", self._admin_trades)
        self.app.router.add_post("/_sandbox/faults", self._admin_faults)
        self.app.router.add_get("/_sandbox/faults", self._admin_faults)
        self.app.router.add_get("/_sandbox/economics", self._admin_economics)
        self.app.router.add_post("/_sandbox/resolve", self._admin_resolve)
        self.extensions = list(_default_extensions() if extensions is None else extensions)
        self._tick_hooks: list[Callable[[], Any]] = []
        self.ws_closers: list[Callable[[], Any]] = []  # extensions' "drop all my websockets" callbacks
        self._runners: list[web.AppRunner] = []
        self._clock: asyncio.Task[None] | None = None
        self.paused = False  # True: the simulated market stands still (account actions still apply)
        self.gamma_url = ""
        self.clob_url = ""
        self.ws_url = ""

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        for ext in self.extensions:
            r = ext(self.app, self.sim, self)
            if isinstance(r, Awaitable):
                await r
        host = self.cfg.host
        try:
            gport = await self._serve(self.gamma_app, host, self.cfg.gamma_port)
            cport = await self._serve(self.app, host, self.cfg.clob_port)
        except OSError:  # e.g. a fixed port already taken: release what did start
            await self.stop()
            raise
        self.gamma_url = f"http://{host}:{gport}"
        self.clob_url = f"http://{host}:{cport}"
        self.ws_url = f"ws://{host}:{cport}/ws"
        self._clock = asyncio.create_task(self._run_clock(), name="sandbox-clock")

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self._runners.append(runner)
        bound: int = runner.addresses[0][1]
        return bound

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            try:
                await self._clock
            except asyncio.CancelledError:
                pass
            self._clock = None
        await self.hub.close_all()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    def add_tick_hook(self, fn: Callable[[], Any]) -> None:
        """Called after every clock tick (after the market events went out); for extensions
        that push their own events (the user channel)."""
        self._tick_hooks.append(fn)

    async def drop_websockets(self) -> None:
        """Close every websocket connection now (market channel, and any extension's that
        appended a closer to `ws_closers`)."""
        await self.hub.drop_all()
        for closer in list(self.ws_closers):
            r = closer()
            if isinstance(r, Awaitable):
                await r

    # ------------------------------------------------------------------ clock
    async def _run_clock(self) -> None:
        sim, hub = self.sim, self.hub
        speed = self.cfg.speed
        w0, s0 = time.monotonic(), sim.now()
        last = w0
        while True:
            await asyncio.sleep(CLOCK_TICK_SEC)
            now = time.monotonic()
            try:
                if self.paused:
                    w0, s0 = now, sim.now()
                    events = []
                else:
                    target = s0 + (now - w0) * speed
                    events = sim.run_until(target, max_steps=MAX_STEPS_PER_TICK)
                    if target - sim.now() > STEP_SEC * MAX_STEPS_PER_TICK:
                        w0, s0 = now, sim.now()  # too slow for this speed: fall behind, do not pile up debt
                events.extend(sim.flush_account_events())
                hub.broadcast(events)
                hub.apply_drops(now - last)
                for fn in self._tick_hooks:
                    fn()
            except Exception:  # a venue that stops ticking would look like a dead feed: log, keep going
                log.exception("sandbox clock tick failed")
            last = now

    # ------------------------------------------------------------------ faults + admin
    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        f = self.faults
        delay = f.http_delay(request.method)
        if delay > 0:
            if request.can_read_body and not request.path.startswith("/ws/"):
                await request.read()  # the venue has the whole request: it acts even if the client gives up
            await asyncio.sleep(delay)
        if not request.path.startswith("/ws/"):
            err = f.http_error(request.method)
            if err is not None:
                status, body, headers = err
                return web.json_response(body, status=status, headers=headers)
        resp = await handler(request)
        if (not request.path.startswith("/ws/") and isinstance(resp, web.Response) and resp.body is not None
                and f.garble(request.method, resp.status)):
            raw = bytes(resp.body)  # type: ignore[arg-type]
            return web.Response(status=resp.status, body=raw[: len(raw) // 2], content_type="application/json")
        return resp

    async def _admin_state(self, request: web.Request) -> web.Response:
        st = self.sim.state()
        st["faults"] = self.faults.as_dict()
        st["ws_connections"] = len(self.hub.conns)
        st["ws_events_sent"] = self.hub.events_sent
        st["ws_frames_sent"] = self.hub.frames_sent
        return web.json_response(st)

    async def _admin_book(self, request: web.Request) -> web.Response:
        tok = request.query.get("token_id", "")
        snap = self.sim.book_snapshot(tok)
        if snap is None:
            return error(404, "No orderbook exists for the requested token id")
        snap = dict(snap)
        snap["fair"] = self.sim.fair(tok)
        return web.json_response(snap)

    async def _admin_trades(self, request: web.Request) -> web.Response:
        try:
            since = float(request.query.get("since", 0))
        except ValueError:
            return error(400, "invalid since")
        return web.json_response(self.sim.public_trades(since))

    async def _admin_economics(self, request: web.Request) -> web.Response:
        """Ground truth of one account (`?owner=<api key>`): fees, rebates and rewards accrued
        and paid per market, settlements."""
        from .economics import jsonable

        return web.json_response(jsonable(self.sim.econ.account(request.query.get("owner", ""))))

    async def _admin_resolve(self, request: web.Request) -> web.Response:
        """Resolve a market now: body `{"condition_id": "0x…", "winner": "YES"|"NO"}` (winner
        optional; neg-risk markets follow their event)."""
        try:
            body = json.loads(await request.text() or "{}")
            cid = str(body["condition_id"])
            w = body.get("winner")
            winner = None if w is None else str(w).upper() == "YES"
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"invalid resolve request: {exc}")
        m = self.sim.resolve_market(cid, winner)
        if m is None:
            return error(404, "market not found or already resolved")
        return web.json_response({"condition_id": cid, "winner": "YES" if m.winner_yes else "NO"})

    async def _admin_faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = json.loads(await request.text() or "{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                self.faults.update(**changes)
            except ValueError as exc:
                return error(400, str(exc))
        return web.json_response(self.faults.as_dict())


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A child of the engine: stop when our stdin (a pipe from the parent) reaches end of file,
    which happens when the parent exits by any path, SIGKILL included (no orphan venue)."""

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nothing left to stop
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, name="sandbox-parent-watch", daemon=True).start()


async def _serve_forever(cfg: SandboxConfig, watch_stdin: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if watch_stdin:
        _stop_on_stdin_eof(loop, stop)
    async with Sandbox(cfg) as sb:
        print(f"export PMM_GAMMA_URL={sb.gamma_url}")
        print(f"export PMM_CLOB_URL={sb.clob_url}")
        print(f"export PMM_CLOB_WS_URL={sb.ws_url}")
        print(f"# sandbox: {cfg.markets} markets, seed {cfg.seed}, speed {cfg.speed}x; Ctrl-C to stop", file=sys.stderr)
        sys.stdout.flush()
        await stop.wait()


def serve_main(cfg: SandboxConfig, watch_stdin: bool = False) -> int:
    """`pmm sandbox`: print the three URLs to export, serve until SIGINT/SIGTERM (`watch_stdin`:
    or until stdin closes, the engine's child sandbox)."""
    try:
        asyncio.run(_serve_forever(cfg, watch_stdin))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sandbox: cannot listen: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    return ExitCode.OK


def parse_args(argv: Sequence[str] | None = None) -> SandboxConfig:
    return parse_cli(argv)[0]


def parse_cli(argv: Sequence[str] | None = None) -> tuple[SandboxConfig, bool]:
    """`python -m pmm_widgets.sandbox` arguments: the venue's config and `--exit-on-stdin-eof`."""
    p = argparse.ArgumentParser(prog="python -m pmm_widgets.sandbox", description="Polymarket-compatible sandbox venue")
    p.add_argument("--markets", type=int, default=80)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--resolve-every", type=float, default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--gamma-port", type=int, default=0)
    p.add_argument("--clob-port", type=int, default=0)
    p.add_argument("--start-ts", type=float, default=None, metavar="EPOCH",
                   help="simulated epoch seconds at start (default: now); an earlier start lets a sped-up venue "
                        "reach the wall clock only after a client connected")
    p.add_argument("--auth-skew-sec", type=float, default=300.0, metavar="SEC",
                   help="refuse an L1 or L2 request whose POLY_TIMESTAMP is more than SEC seconds from the wall "
                        "clock (default 300)")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="stop when stdin closes (the engine's child sandbox: it dies with its parent)")
    a = p.parse_args(argv)
    return SandboxConfig(markets=a.markets, seed=a.seed, speed=a.speed, host=a.host, resolve_every=a.resolve_every,
                         gamma_port=a.gamma_port, clob_port=a.clob_port, start_ts=a.start_ts,
                         auth_skew_sec=a.auth_skew_sec), a.exit_on_stdin_eof
