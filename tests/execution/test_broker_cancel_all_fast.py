"""The broker's cancel-all and open-order reads on the fast path (venue/broker.py,
venue/order_entry.py) against the sandbox's trading half: DELETE /cancel-all and the
GET /data/orders pages go through the async order entry, built and signed as the SDK 1.2.1 builds
them (the sandbox checks the L2 signature), retried like every idempotent call, and never behind
a call in flight on the SDK worker thread; `fast=False` keeps the SDK for them, and a dry run
sends neither."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from eth_account import Account
from live_helpers import active_markets, make_settings, touch_bids
from pydantic import SecretStr
from venue_arrivals import note_requests, still_sandbox

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.sandbox.trading import TradingVenue
from pmm_widgets.venue.broker import Broker, BrokerError, Creds

pytestmark = pytest.mark.integration

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def creds_of(key: str) -> Creds:
    c = derive_creds(Account.from_key(key).address, 0)
    return Creds(SecretStr(c.api_key), SecretStr(c.secret), SecretStr(c.passphrase))


Seen = list[tuple[str, str, str, bytes, dict[str, str]]]


@pytest.fixture
def seen() -> Seen:
    """(method, path, query, body, headers) of every request as it reaches the sandbox."""
    return []


@pytest.fixture
async def sb(seen: Seen) -> AsyncIterator[Sandbox]:
    """The broker tests' sandbox (`still_sandbox`), noting every request."""
    s = still_sandbox()
    note_requests(s, seen, lambda r, body: (r.method, r.path, r.query_string, body, dict(r.headers)))
    async with s:
        yield s


@pytest.fixture
async def brokers(sb: Sandbox, wallet_key: str) -> AsyncIterator[Callable[..., Broker]]:
    made: list[Broker] = []

    def build(**kw: Any) -> Broker:
        opts: dict[str, Any] = dict(creds=creds_of(wallet_key), backoff_base=0.01, backoff_cap=0.02)
        opts.update(kw)
        b = Broker(sb.clob_url, 137, wallet_key, **opts)
        made.append(b)
        return b

    yield build
    for b in made:
        await b.aclose()


async def place(sb: Sandbox, b: Broker, n_markets: int) -> list[str]:
    markets = active_markets(sb, n_markets)
    by_token = {t: m for m in markets for t in m.token_ids}
    res = await b.post_orders([(q, by_token[q.token_id].tick_size, by_token[q.token_id].neg_risk)
                               for q in touch_bids(sb, markets)])
    assert res and all(r.ok for r in res), res
    return [str(r.order_id) for r in res]


async def test_fast_cancel_all_and_open_orders_are_the_sdks_requests_sent_by_the_order_entry(sb, venue: TradingVenue,
                                                                                          brokers, seen):
    fast, sdk = brokers(), brokers(fast=False)
    assert fast.fast and not sdk.fast
    ids = await place(sb, fast, 3)
    venue.page_limit = 2  # several pages: every one is followed
    for b in (sdk, fast):  # the SDK's requests first, then the order entry's
        assert sorted(o.id for o in await b.open_orders()) == sorted(ids)
        mine = await b.open_orders(asset_id=(await b.open_orders())[0].asset_id)
        assert len(mine) == 1
    reads = [r for r in seen if r[1] == "/data/orders"]
    half = len(reads) // 2  # the same pages with the same queries (market, asset_id, next_cursor), no body
    assert [(m, q) for m, _, q, _, _ in reads[:half]] == [(m, q) for m, _, q, _, _ in reads[half:]]
    assert half > 3 and all(body == b"" for *_, body, _ in reads)
    r = await fast.cancel_all()
    assert sorted(r.canceled) == sorted(ids) and r.not_canceled == {}
    assert await fast.open_orders() == [] and await sdk.open_orders() == []
    ids2 = await place(sb, fast, 1)
    assert sorted((await sdk.cancel_all()).canceled) == sorted(ids2)
    alls = [r for r in seen if r[1] == "/cancel-all"]
    assert [(m, q, body) for m, _, q, body, _ in alls] == [("DELETE", "", b"")] * 2  # no body, no query: the SDK's
    for _, _, _, _, h in alls:  # L2 headers, as the SDK sends them
        assert {"POLY_ADDRESS", "POLY_SIGNATURE", "POLY_TIMESTAMP", "POLY_API_KEY", "POLY_PASSPHRASE"} <= set(h)
    assert venue.auth_failures == 0
    kinds = {x.kind for x in fast.order_entry.rtts}
    assert {"cancel_all", "open_orders"} <= kinds and fast.order_entry.rtt_summary().keys() <= {"post", "cancel"}


async def test_fast_cancel_all_and_reads_never_wait_for_the_sdk_worker_thread(sb, brokers):
    fast, sdk = brokers(), brokers(fast=False)
    ids = await place(sb, fast, 2)
    loop = asyncio.get_running_loop()
    for b in (fast, sdk):
        gate = threading.Event()
        busy = loop.run_in_executor(b._pool, gate.wait, 10.0)  # a heartbeat held at a slow venue
        try:
            read = asyncio.ensure_future(b.open_orders())
            done, _ = await asyncio.wait({read}, timeout=1.0)
            assert done, b.fast  # the SDK path's read goes on an urgent thread (test_broker_urgent_sdk.py)
            gate.set()
            assert sorted(o.id for o in await read) == sorted(ids)
        finally:
            gate.set()
            await busy
    gate = threading.Event()
    busy = loop.run_in_executor(fast._pool, gate.wait, 10.0)
    try:
        r = await asyncio.wait_for(fast.cancel_all(), 1.0)
    finally:
        gate.set()
        await busy
    assert sorted(r.canceled) == sorted(ids)


async def test_fast_cancel_all_and_reads_retry_a_transient_refusal_and_fail_at_once_on_another(sb, brokers, wallet_key):
    b = brokers()
    ids = await place(sb, b, 1)
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="GET", http_error_count=1)
    assert sorted(o.id for o in await b.open_orders()) == sorted(ids) and b.retried == 1
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="GET", http_error_count=1)
    with pytest.raises(BrokerError) as ei:
        await b.open_orders(retry=False)  # (a post's look at the venue: one attempt)
    assert (ei.value.op, ei.value.status, ei.value.transient, b.retried, b.failures) == ("open_orders", 503, True, 1, 1)
    sb.faults.update(http_error_rate=1.0, http_error_status=502, http_error_methods="DELETE", http_error_count=2)
    r = await b.cancel_all()
    assert sorted(r.canceled) == sorted(ids) and b.retried == 3
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="DELETE", http_error_count=-1)
    with pytest.raises(BrokerError) as ei:
        await b.cancel_all()
    assert (ei.value.op, ei.value.status, ei.value.message, ei.value.transient) == (
        "cancel_all", 503, "Service Unavailable", True)
    assert b.retried == 6 and b.failures == 2  # 1 + 3 retries (PMM_VENUE_RETRIES), then it fails
    sb.faults.update(http_error_rate=0.0, garbled_answer_rate=1.0, garbled_answer_methods="GET")
    for x in (b, brokers(fast=False)):  # a page that is not the venue's shape: the read fails, as the SDK's does
        with pytest.raises(BrokerError) as ei:
            await x.open_orders()
        assert (ei.value.op, ei.value.transient) == ("open_orders", False)
    assert b.retried == 6 and b.failures == 3
    sb.faults.update(garbled_answer_rate=0.0)
    wrong = Creds(SecretStr(creds_of(wallet_key).api_key.get_secret_value()), SecretStr("bm90LXRoZS1zZWNyZXQ="),
                  creds_of(wallet_key).api_passphrase)
    bad = brokers(creds=wrong)
    for call, op in ((bad.cancel_all, "cancel_all"), (bad.open_orders, "open_orders")):
        with pytest.raises(BrokerError) as ei:
            await call()
        assert (ei.value.op, ei.value.status, ei.value.transient) == (op, 401, False)
        assert "bm90LXRoZS1zZWNyZXQ=" not in str(ei.value)
    assert bad.retried == 0


async def test_a_dry_run_sends_no_cancel_all_and_reads_nothing_even_with_credentials(sb, venue, wallet_key, closers):
    from pmm_widgets.engine.runtime import cancel_and_verify
    from pmm_widgets.execution.live import LiveExchange
    from pmm_widgets.store.sink import MemorySink

    c = creds_of(wallet_key)
    s = make_settings(sb, wallet_key, api_key=c.api_key, api_secret=c.api_secret, api_passphrase=c.api_passphrase)
    ex = LiveExchange(s, MemorySink(), sb.clob_url, sb.ws_url, dry_run=True)
    closers.append(ex)
    await ex.start()
    assert ex.broker is not None and ex.broker.fast and ex.broker.has_creds  # the fast path could send them
    markets = active_markets(sb, 2)
    ex.set_markets(markets)
    await ex.place(touch_bids(sb, markets))
    resting = len(ex.open_orders())
    assert resting > 0 and await cancel_and_verify(ex) == (resting, 0, None)
    assert await ex.probe() == 0
    await ex.close()
    assert venue.order_requests == 0 and ex.broker.order_entry is not None and len(ex.broker.order_entry.rtts) == 0
    assert not any(path.startswith(("/order", "/cancel", "/data", "/auth", "/v1/heartbeats")) for _, path in venue.requests)


async def test_closing_the_broker_never_waits_for_a_call_held_on_its_worker_thread(sb, wallet_key):
    """A stop closes the broker after its cancel-all: a heartbeat the venue still held kept the
    close (and the stop's DB flush and lease release after it) waiting for its answer."""
    b = Broker(sb.clob_url, 137, wallet_key, creds=creds_of(wallet_key))
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    held = loop.run_in_executor(b._pool, gate.wait, 10.0)
    queued = loop.run_in_executor(b._pool, gate.wait, 10.0)
    try:
        await asyncio.wait_for(b.aclose(), 1.0)
        with pytest.raises(asyncio.CancelledError):
            await queued  # a call queued behind it is dropped (its caller was cancelled anyway)
        assert not held.done()  # the call in flight runs on
    finally:
        gate.set()
    assert await held is True


# ---------------------------------------------------------------------------------------- heartbeats
HB = "/v1/heartbeats"


def beats(seen: Seen) -> list[tuple[str, str, bytes, dict[str, str]]]:
    return [(m, q, body, h) for m, path, q, body, h in seen if path == HB]


async def test_fast_heartbeats_are_the_sdks_requests_and_re_chain_like_it(sb, venue: TradingVenue, brokers, seen,
                                                                         wallet_key):
    """Two brokers of one API key beat in turn: each beat after the other's carries a stale id, so
    every beat is an "Invalid Heartbeat ID" refusal and a re-chain, on both paths alike."""
    from py_clob_client_v2.signing.hmac import build_hmac_signature

    fast, sdk = brokers(), brokers(fast=False)
    ids = [await sdk.heartbeat(), await fast.heartbeat(), await sdk.heartbeat(), await fast.heartbeat()]
    assert len(set(ids)) == 4 and all(ids) and fast._hb_id == ids[-1] and sdk._hb_id == ids[-2]
    assert venue.heartbeat_armed(creds_of(wallet_key).api_key.get_secret_value())
    sent = beats(seen)
    assert [b for _, _, b, _ in sent] == [b'{"heartbeat_id":""}',  # the SDK's first beat: none armed yet
                                          b'{"heartbeat_id":""}', f'{{"heartbeat_id":"{ids[0]}"}}'.encode(),
                                          f'{{"heartbeat_id":"{ids[0]}"}}'.encode(),
                                          f'{{"heartbeat_id":"{ids[1]}"}}'.encode(),
                                          f'{{"heartbeat_id":"{ids[1]}"}}'.encode(),
                                          f'{{"heartbeat_id":"{ids[2]}"}}'.encode()]
    by_sdk, by_fast = [sent[i] for i in (0, 3, 4)], [sent[i] for i in (1, 2, 5, 6)]
    assert {(m, q) for m, q, _, _ in sent} == {("POST", "")}
    same = ("POLY_ADDRESS", "POLY_API_KEY", "POLY_PASSPHRASE", "Content-Type", "User-Agent", "Accept")
    ref = {k: by_sdk[0][3].get(k) for k in same}
    assert all({k: h.get(k) for k in same} == ref for *_, h in by_sdk + by_fast)
    assert all(set(h) == set(by_sdk[0][3]) and int(h["Content-Length"]) == len(body) for _, _, body, h in sent)
    secret = creds_of(wallet_key).api_secret.get_secret_value()
    for _, _, body, h in sent:  # the SDK's own HMAC over (timestamp, method, path, body), on both paths
        assert h["POLY_SIGNATURE"] == build_hmac_signature(secret, int(h["POLY_TIMESTAMP"]), "POST", HB, body.decode())
    assert venue.auth_failures == 0
    assert [x.kind for x in fast.order_entry.rtts] == ["heartbeat"] * 4  # the fast broker's beats, all of them


async def test_a_fast_heartbeat_never_waits_for_the_sdk_worker_thread(sb, brokers, seen):
    """A long paged read holding the worker thread held the beat behind it (past the venue's 10 s
    dead-man deadline on a slow venue: every order cancelled)."""
    loop = asyncio.get_running_loop()
    for b in (brokers(fast=False), brokers()):
        gate = threading.Event()
        busy = loop.run_in_executor(b._pool, gate.wait, 10.0)  # a long read at a slow venue
        before = len(beats(seen))
        try:
            t0 = loop.time()
            beat = asyncio.ensure_future(b.heartbeat(within=5.0))
            done, _ = await asyncio.wait({beat}, timeout=0.5)
            assert done and len(beats(seen)) > before, b.fast  # the SDK's on an urgent thread, not behind it
            gate.set()
            assert await beat and loop.time() - t0 < 0.5
        finally:
            gate.set()
            await busy


async def test_fast_heartbeats_retry_a_transient_refusal_within_their_bound_and_fail_at_once_on_another(
        sb, brokers, wallet_key):
    b = brokers()
    first = await b.heartbeat()
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="POST", http_error_count=1)
    second = await b.heartbeat()  # the same id again after the refusal: the chain holds
    assert second and second != first and b.retried == 1 and b.failures == 0
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="POST", http_error_count=-1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BrokerError) as ei:
        await b.heartbeat(within=0.1)
    assert (ei.value.op, ei.value.status, ei.value.transient) == ("heartbeat", 503, True)
    assert loop.time() - t0 < 0.5 and b.failures == 1 and b._hb_id == second
    sb.faults.update(http_error_rate=0.0)
    assert await b.heartbeat() not in ("", second)
    wrong = Creds(SecretStr(creds_of(wallet_key).api_key.get_secret_value()), SecretStr("bm90LXRoZS1zZWNyZXQ="),
                  creds_of(wallet_key).api_passphrase)
    bad = brokers(creds=wrong)
    with pytest.raises(BrokerError) as ei:
        await bad.heartbeat()
    assert (ei.value.op, ei.value.status, ei.value.transient, bad.retried) == ("heartbeat", 401, False, 0)
    assert "bm90LXRoZS1zZWNyZXQ=" not in str(ei.value)


async def test_a_cancel_all_and_a_heartbeat_never_wait_for_posts_that_fill_the_inflight_bound(sb, brokers, seen):
    """Posts a slow venue holds keep every `max_inflight` slot (and, on plain http, the pool's
    connections): the stop's cancel-all and the heartbeat still reach the venue at once."""
    b = brokers(max_inflight=1)
    markets = active_markets(sb, 1)
    by_token = {t: m for m in markets for t in m.token_ids}
    sb.faults.update(latency_ms=1500, latency_methods="POST")
    posts = asyncio.ensure_future(b.post_orders([(q, by_token[q.token_id].tick_size, by_token[q.token_id].neg_risk)
                                                 for q in touch_bids(sb, markets)]))
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.0
        while not [r for r in seen if r[:2] == ("POST", "/orders")] and loop.time() < end:
            await asyncio.sleep(0.01)
        assert not posts.done()  # the post holds the one slot
        sb.faults.update(latency_methods="GET")  # (the POST already held keeps its delay)
        t0 = loop.time()
        await asyncio.wait_for(b.cancel_all(), 1.0)
        await asyncio.wait_for(b.heartbeat(), 1.0)
        assert loop.time() - t0 < 1.0 and not posts.done()
    finally:
        sb.faults.update(latency_ms=0)
        await posts
