"""The SDK path's urgent calls (PMM_FAST_ORDERS=false: venue/broker.py `_call(urgent=True)`)
against the sandbox's trading half: DELETE /cancel-all, the GET /data/orders reads (a stop's
verifying count) and the order heartbeat still go through py-clob-client-v2, but on the broker's
urgent threads, never queued behind the call in flight on its one SDK worker thread. They used to
wait there: with a POST /orders-scoring read held 1.5 s at the venue, the heartbeat, the stop's
cancel-all and its count reached the venue only when that read came back (up to the HTTP timeout,
10 s, on a slow venue: the venue's ~10 s dead-man switch then cancelled every order)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from live_helpers import active_markets, start_quoting, touch_bids
from pydantic import SecretStr
from venue_arrivals import note_requests, still_sandbox

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.venue.broker import Broker, Creds

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HELD_SEC = 1.5  # how long the venue holds the worker thread's call
PROMPT_SEC = 0.5  # an urgent call reaches the venue and is answered within this


def creds_of(key: str) -> Creds:
    c = derive_creds(Account.from_key(key).address, 0)
    return Creds(SecretStr(c.api_key), SecretStr(c.secret), SecretStr(c.passphrase))


Seen = list[tuple[float, str, bytes]]


@pytest.fixture
def seen() -> Seen:
    """(monotonic time, "METHOD path", body) of every request as it reaches the sandbox."""
    return []


@pytest.fixture
async def sb(seen: Seen) -> AsyncIterator[Sandbox]:
    """The broker tests' sandbox (`still_sandbox`), noting every request before any fault delays it."""
    s = still_sandbox()
    note_requests(s, seen, lambda r, body: (time.monotonic(), f"{r.method} {r.path}", body))
    async with s:
        yield s


@pytest.fixture
async def sdk_broker(sb: Sandbox, wallet_key: str) -> AsyncIterator[Broker]:
    b = Broker(sb.clob_url, 137, wallet_key, creds=creds_of(wallet_key), fast=False, backoff_base=0.01,
               backoff_cap=0.02)
    assert not b.fast
    yield b
    await b.aclose()


async def hold_the_worker(sb: Sandbox, seen: Seen, call: Awaitable[Any]) -> asyncio.Future[Any]:
    """`call` (an SDK call of the worker thread, a POST) held at the venue for HELD_SEC: returns once
    it reached the venue; from then on nothing else is delayed (the held POST keeps its delay)."""
    n0 = len(seen)
    sb.faults.update(latency_ms=HELD_SEC * 1000, latency_methods="POST")
    held = asyncio.ensure_future(call)
    end = time.monotonic() + 2.0
    while not [r for _, r, _ in seen[n0:] if r == "POST /orders-scoring"] and time.monotonic() < end:
        await asyncio.sleep(0.005)
    sb.faults.update(latency_methods="PUT")  # (no request of ours is a PUT)
    assert not held.done(), "the worker thread's call was not held at the venue"
    return held


def arrival(seen: Seen, request: str, t0: float) -> float | None:
    return min((t - t0 for t, r, _ in seen if r == request and t > t0), default=None)


async def place(sb: Sandbox, b: Broker, n_markets: int) -> list[str]:
    markets = active_markets(sb, n_markets)
    by_token = {t: m for m in markets for t in m.token_ids}
    res = await b.post_orders([(q, by_token[q.token_id].tick_size, by_token[q.token_id].neg_risk)
                               for q in touch_bids(sb, markets)])
    assert res and all(r.ok for r in res), res
    return [str(r.order_id) for r in res]


async def test_sdk_heartbeats_cancel_all_and_counts_never_wait_for_the_worker_threads_call(sb, seen, sdk_broker):
    b = sdk_broker
    ids = await place(sb, b, 2)
    first = await b.heartbeat()
    held = await hold_the_worker(sb, seen, b.orders_scoring(ids))  # a reward sample's read, slow venue
    try:
        t0 = time.monotonic()
        second = await asyncio.wait_for(b.heartbeat(within=5.0), PROMPT_SEC)
        beat_at = arrival(seen, "POST /v1/heartbeats", t0)
        t1 = time.monotonic()
        rows = await asyncio.wait_for(b.open_orders(), PROMPT_SEC)
        read_at = arrival(seen, "GET /data/orders", t1)
        t2 = time.monotonic()
        r = await asyncio.wait_for(b.cancel_all(), PROMPT_SEC)
        cancel_at = arrival(seen, "DELETE /cancel-all", t2)
        left = await asyncio.wait_for(b.open_orders(), PROMPT_SEC)
        assert not held.done()  # all of it while the worker thread's call was still held
    finally:
        sb.faults.update(latency_ms=0)
        await held
    print(f"held worker: heartbeat at {beat_at}, open orders at {read_at}, cancel-all at {cancel_at} s")
    assert beat_at is not None and read_at is not None and cancel_at is not None
    assert max(beat_at, read_at, cancel_at) < PROMPT_SEC
    assert sorted(o.id for o in rows) == sorted(ids) and sorted(r.canceled) == sorted(ids) and left == []
    # the chain is intact: the beat on the urgent thread carried the id the one before it got
    bodies = [body for _, req, body in seen if req == "POST /v1/heartbeats"]
    assert bodies == [b'{"heartbeat_id":""}', f'{{"heartbeat_id":"{first}"}}'.encode()]
    assert first and second and second != first and b._hb_id == second


async def test_a_stop_with_fast_orders_off_cancels_and_verifies_while_the_worker_thread_is_held(
        sb, seen, wallet_key, closers):
    """`cancel_and_verify` (the engine's stop) on a LiveExchange with PMM_FAST_ORDERS=false: its
    DELETE /cancel-all and its GET /data/orders count go at once, not after the held read."""
    from pmm_widgets.engine.runtime import cancel_and_verify

    ex, _, markets = await start_quoting(sb, wallet_key, closers, 2, fast_orders=False)
    assert ex.broker is not None and not ex.broker.fast
    resting = len(ex.open_orders())
    assert resting > 0
    held = await hold_the_worker(sb, seen, ex.broker.orders_scoring([o.venue_order_id for o in ex.open_orders()
                                                                     if o.venue_order_id]))
    try:
        t0 = time.monotonic()
        got = await asyncio.wait_for(cancel_and_verify(ex), 2 * PROMPT_SEC)
        stopped = time.monotonic() - t0
        assert not held.done()
    finally:
        sb.faults.update(latency_ms=0)
        await held
    cancel_at, count_at = arrival(seen, "DELETE /cancel-all", t0), arrival(seen, "GET /data/orders", t0)
    print(f"stop -> DELETE /cancel-all {cancel_at} s, -> GET /data/orders {count_at} s, done after {stopped:.3f} s")
    assert got == (resting, 0, None)
    assert cancel_at is not None and cancel_at < PROMPT_SEC and count_at is not None and count_at < PROMPT_SEC
