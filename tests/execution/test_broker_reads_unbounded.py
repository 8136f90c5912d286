"""The fast path's open-order read (venue/order_entry.py `open_orders_page`), the stop's verifying
count among others, against the sandbox: like the cancel-all and the heartbeat it never waits for a
`max_inflight` slot or a pooled connection that requests a slow venue holds. It used to: with the
bound full of held posts, GET /data/orders left only when a post came back (1.5 s here; up to the
HTTP timeout, 10 s, on a slow venue: `cancel_and_verify`'s count after its settle wait, past a page
kernel's 9 s stop bound)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from eth_account import Account
from live_helpers import active_markets, touch_bids
from pydantic import SecretStr
from venue_arrivals import note_arrivals, still_sandbox

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.venue.broker import Broker, Creds

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HELD_SEC = 1.5


@pytest.fixture
def venue() -> tuple[Sandbox, list[tuple[float, str]]]:
    """The sandbox (not started yet, its market held still) and the requests as they arrive."""
    s = still_sandbox()
    return s, note_arrivals(s)


@pytest.fixture
def seen(venue: tuple[Sandbox, list[tuple[float, str]]]) -> list[tuple[float, str]]:
    return venue[1]


@pytest.fixture
async def sb(venue: tuple[Sandbox, list[tuple[float, str]]]) -> AsyncIterator[Sandbox]:
    async with venue[0]:
        yield venue[0]


async def test_a_read_never_waits_for_the_slot_and_the_connections_that_held_requests_keep(sb, seen, wallet_key):
    """max_inflight 1: a post holds the slot, and a heartbeat and a cancel-all are held too (on
    plain http each keeps a pooled connection): the read still reaches the venue at once."""
    c = derive_creds(Account.from_key(wallet_key).address, 0)
    b = Broker(sb.clob_url, 137, wallet_key, creds=Creds(SecretStr(c.api_key), SecretStr(c.secret),
                                                         SecretStr(c.passphrase)), max_inflight=1)
    markets = active_markets(sb, 1)
    by_token = {t: m for m in markets for t in m.token_ids}
    items = [(q, by_token[q.token_id].tick_size, by_token[q.token_id].neg_risk) for q in touch_bids(sb, markets)]
    sb.faults.update(latency_ms=HELD_SEC * 1000, latency_methods="POST,DELETE")
    held = [asyncio.ensure_future(x) for x in (b.post_orders(items), b.heartbeat(), b.cancel_all())]
    try:
        end = time.monotonic() + 2.0
        want = {"POST /orders", "POST /v1/heartbeats", "DELETE /cancel-all"}
        while not want <= {r for _, r in seen} and time.monotonic() < end:
            await asyncio.sleep(0.005)
        assert want <= {r for _, r in seen} and not any(h.done() for h in held)
        sb.faults.update(latency_methods="PUT")  # (the held requests keep their delay)
        t0 = time.monotonic()
        rows = await asyncio.wait_for(b.open_orders(), 1.0)
        read_at = min(t - t0 for t, r in seen if r == "GET /data/orders" and t > t0)
        assert not any(h.done() for h in held)
    finally:
        sb.faults.update(latency_ms=0)
        await asyncio.gather(*held, return_exceptions=True)
        await b.aclose()
    print(f"GET /data/orders reached the venue after {read_at:.3f} s")
    assert read_at < 0.3 and isinstance(rows, list)
