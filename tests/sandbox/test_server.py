"""Sandbox lifecycle: extensions, the default trading-half discovery, and the `serve_main` process."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys

import httpx
import pytest
from aiohttp import web

from pmm_widgets.sandbox import server as server_mod
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig

pytestmark = pytest.mark.integration


async def test_extensions_register_routes_before_start() -> None:
    seen: list[tuple] = []

    def ext(app: web.Application, sim, sb) -> None:
        seen.append((app, sim, sb))

        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"markets": len(sim.markets)})

        app.router.add_get("/hello", hello)

    async def async_ext(app: web.Application, sim, sb) -> None:
        seen.append(("async",))

    async with Sandbox(SandboxConfig(markets=5, speed=5), extensions=[ext, async_ext]) as sb:
        assert seen[0] == (sb.app, sb.sim, sb) and seen[1] == ("async",)
        async with httpx.AsyncClient(base_url=sb.clob_url) as c:
            assert (await c.get("/hello")).json() == {"markets": 5}
        assert sb.ws_url.startswith("ws://127.0.0.1:") and sb.ws_url.endswith("/ws")
        assert sb.gamma_url != sb.clob_url


async def test_port_in_use_fails_cleanly() -> None:
    async with Sandbox(SandboxConfig(markets=5), extensions=[]) as sb:
        taken = int(sb.clob_url.rsplit(":", 1)[1])
        other = Sandbox(SandboxConfig(markets=5, clob_port=taken), extensions=[])
        with pytest.raises(OSError):
            await other.start()
        assert other._runners == []


def test_default_extensions_follow_the_trading_module(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("pmm_widgets.sandbox.trading") is None:
        assert server_mod._default_extensions() == []
    else:
        from pmm_widgets.sandbox.trading import install

        assert server_mod._default_extensions() == [install]
    monkeypatch.setitem(sys.modules, "pmm_widgets.sandbox.trading", None)  # an absent module is skipped
    assert server_mod._default_extensions() == []


async def test_pause_freezes_the_market() -> None:
    async with Sandbox(SandboxConfig(markets=5, speed=50), extensions=[]) as sb:
        sb.paused = True
        await asyncio.sleep(0.1)
        t = sb.sim.now()
        await asyncio.sleep(0.3)
        assert sb.sim.now() == t
        sb.paused = False
        await asyncio.sleep(0.3)
        assert sb.sim.now() > t


def test_module_entry_prints_exports_and_stops_on_sigint() -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "5", "--seed", "3", "--speed", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = [p.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("export PMM_GAMMA_URL=http://127.0.0.1:")
        assert lines[1].startswith("export PMM_CLOB_URL=http://127.0.0.1:")
        assert lines[2].startswith("export PMM_CLOB_WS_URL=ws://127.0.0.1:") and lines[2].endswith("/ws")
        clob = lines[1].split("=", 1)[1]
        assert httpx.get(clob + "/version").json() == {"version": 2}
        gamma = lines[0].split("=", 1)[1]
        assert len(httpx.get(gamma + "/markets", params={"closed": "false"}).json()) == 5
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


def test_start_ts_sets_the_simulated_clock_at_start():
    """`--start-ts`: a sped-up sandbox can start behind the wall clock (the fidelity runs do, so a
    client's first frames are not in its future)."""
    from pmm_widgets.sandbox.server import parse_args
    from pmm_widgets.sandbox.simulator import Simulator

    cfg = parse_args(["--speed", "10", "--start-ts", "1796000000.5", "--markets", "2"])
    assert cfg.start_ts == 1796000000.5 and parse_args([]).start_ts is None
    assert Simulator(cfg.markets, cfg.seed, cfg.speed, start_ts=cfg.start_ts).now() == 1796000000.5
