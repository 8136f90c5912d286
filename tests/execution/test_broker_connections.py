"""Every connection a broker opens closes through its close (venue/broker.py `SdkHttp`, `_release`),
against the sandbox's trading half: the SDK's requests used to go through py-clob-client-v2's one
module-global `httpx.Client`, which nobody closed, so their keep-alive connections stayed open
until the process ended, and `python -X dev` ended with `ResourceWarning: unclosed <socket ...>`
(tests/ui/test_kernel_stop_prompt.py did: the socket of the engine's POST /auth/api-key). A close
still never waits for an SDK call a slow venue holds: that call's connection closes when it ends."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from eth_account import Account
from live_helpers import active_markets, touch_bids

from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.venue.broker import Broker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def open_to(sb: Sandbox) -> list[str]:
    """This process's TCP connections to the sandbox's CLOB (any state but closed)."""
    port = int(sb.clob_url.rsplit(":", 1)[1].split("/")[0])
    return [f"{c.laddr} -> {c.raddr} {c.status}" for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port]


async def none_open(sb: Sandbox, timeout: float = 1.0) -> list[str]:
    end = time.monotonic() + timeout
    while (left := open_to(sb)) and time.monotonic() < end:
        await asyncio.sleep(0.01)
    return left


async def use(sb: Sandbox, b: Broker) -> None:
    """The calls of a live start and a stop: credentials, a post, a beat, reads, the cancel-all."""
    await b.derive_creds()  # POST /auth/api-key on the SDK worker thread
    markets = active_markets(sb, 1)
    by_token = {t: m for m in markets for t in m.token_ids}
    res = await b.post_orders([(q, by_token[q.token_id].tick_size, by_token[q.token_id].neg_risk)
                               for q in touch_bids(sb, markets)])
    assert res and all(r.ok for r in res), res
    await b.heartbeat()
    assert len(await b.open_orders()) == len(res)
    await b.trades()
    assert len((await b.cancel_all()).canceled) == len(res)


@pytest.mark.parametrize("fast", [True, False])
async def test_a_closed_broker_leaves_no_connection_to_the_venue_open(sb: Sandbox, wallet_key: str, fast: bool):
    b = Broker(sb.clob_url, 137, wallet_key, fast=fast)
    try:
        await use(sb, b)
        assert open_to(sb)  # keep-alive connections while it lives
    finally:
        await b.aclose()
    assert await none_open(sb) == []


async def test_a_call_held_at_the_close_closes_its_connection_when_it_ends(sb: Sandbox, wallet_key: str):
    """aclose returns at once; the held call's answer still comes back to it, then its connection
    (and every other of the broker's) is closed."""
    b = Broker(sb.clob_url, 137, wallet_key, fast=False)
    try:
        await b.derive_creds()
        sb.faults.update(latency_ms=800, latency_methods="POST")
        held = asyncio.ensure_future(b.orders_scoring(["0x01"]))  # POST /orders-scoring, held 0.8 s
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        await b.aclose()
        closing = time.monotonic() - t0
        assert open_to(sb) and not held.done()  # the held call's connection, still in use
        assert isinstance(await held, dict)  # its answer came back
    finally:
        sb.faults.update(latency_ms=0)
        await b.aclose()
    assert closing < 0.2, closing
    assert await none_open(sb) == []


async def test_closing_one_broker_leaves_another_brokers_sdk_calls_alone(sb: Sandbox, wallet_key: str):
    """Each broker's SDK threads send through its own client: a close never closes another's
    connections (closing the SDK's one process-wide client would fail every other broker's calls)."""
    from py_clob_client_v2.http_helpers import helpers

    a, b = (Broker(sb.clob_url, 137, wallet_key, fast=False) for _ in range(2))
    try:
        await a.derive_creds()
        await b.derive_creds()
        assert a._http is not None and b._http is not None and a._http is not b._http
        assert helpers._http_client.default is not a._http and helpers._http_client.default is not b._http
        await a.aclose()
        assert a._http is None and not b._http.is_closed
        assert await b.heartbeat() and await b.open_orders() == []
    finally:
        await a.aclose()
        await b.aclose()
    assert await none_open(sb) == []


SCENARIO = """
import asyncio
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.broker import Broker

async def main():
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as sb:
        for fast in (True, False):
            b = Broker(sb.clob_url, 137, {key!r}, fast=fast)
            try:
                await b.derive_creds()
                await b.heartbeat()
                await b.open_orders()
                await b.trades()
                await b.cancel_all()
            finally:
                await b.aclose()

asyncio.run(main())
print("scenario done")
"""


def test_python_dev_mode_reports_no_unclosed_socket_at_exit(tmp_path: Path):
    """The symptom itself: a broker's life in `python -X dev` (every ResourceWarning shown)."""
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(SCENARIO.format(key=Account.create().key.hex())))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-X", "dev", str(script)], capture_output=True, text=True, timeout=120,
                         env=env, cwd=tmp_path)
    assert out.returncode == 0 and "scenario done" in out.stdout, out.stderr[-2000:]
    assert "ResourceWarning" not in out.stderr, out.stderr[-2000:]
