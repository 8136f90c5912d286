"""The embedded sandbox in its own process (`PMM_SANDBOX_PROCESS`): when it is used, that it
serves, and that it never outlives its parent (clean exit, failed start, parent SIGKILLed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest
from sandbox_helpers import gone

from pmm_widgets.config import Settings
from pmm_widgets.venue import endpoints as ep_mod
from pmm_widgets.venue.endpoints import SandboxStartError, open_endpoints, sandbox_in_child


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, venue="sandbox", **{"sandbox_markets": 6, "universe_size": 4, **kw})  # type: ignore[arg-type]


def test_auto_runs_the_sandbox_in_a_child_from_150_markets():
    assert not sandbox_in_child(_settings())
    assert not sandbox_in_child(_settings(universe_size=100, sandbox_markets=120))
    assert sandbox_in_child(_settings(universe_size=150, sandbox_markets=200))
    assert sandbox_in_child(_settings(sandbox_markets=500))
    assert not sandbox_in_child(_settings(universe_size=500, sandbox_markets=600, sandbox_process="off"))
    assert sandbox_in_child(_settings(sandbox_process="on"))


async def test_child_sandbox_serves_and_stops_with_the_block():
    async with open_endpoints(_settings(sandbox_process="on")) as ep:
        assert ep.sandbox is None and ep.sandbox_pid is not None and ep.embedded
        pid = ep.sandbox_pid
        assert ep.clob_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(ep.gamma_url + "/markets", params={"limit": 50})
            assert r.status_code == 200 and len(r.json()) == 6
            assert (await c.get(ep.clob_url + "/time")).status_code == 200
    assert gone(pid, 0.5)


async def test_child_sandbox_is_stopped_when_the_block_is_cancelled():
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def user() -> None:
        async with open_endpoints(_settings(sandbox_process="on")) as ep:
            assert ep.sandbox_pid is not None
            started.set_result(ep.sandbox_pid)
            await asyncio.sleep(3600)

    task = asyncio.create_task(user())
    pid = await asyncio.wait_for(started, 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(pid, 0.5)


async def test_a_sandbox_child_that_cannot_start_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(ep_mod.sys, "executable", "/bin/false")
    with pytest.raises(SandboxStartError, match="exited with code 1 before serving"):
        async with open_endpoints(_settings(sandbox_process="on")):
            pass


PARENT = """
import asyncio, sys
from pmm_widgets.config import Settings
from pmm_widgets.venue.endpoints import open_endpoints
async def main():
    s = Settings(_env_file=None, venue="sandbox", sandbox_markets=4, universe_size=2, sandbox_process="on")
    async with open_endpoints(s) as ep:
        print(ep.sandbox_pid, flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


def test_child_sandbox_dies_with_a_sigkilled_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert psutil.pid_exists(pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert gone(pid, 10), "the sandbox child outlived its SIGKILLed parent"
    finally:
        parent.kill()
