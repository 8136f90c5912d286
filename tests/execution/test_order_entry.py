"""venue/order_entry.py against the sandbox's POST /orders and DELETE /orders (L2 auth checked
by the sandbox): what each request sends, what each failure raises, the in-flight bound, the
round trips kept and their summary, and the client's life. `test_requote.py` drives it through
the live exchange; here it is driven alone, call by call."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import socket

import pytest
from eth_account import Account
from live_helpers import active_markets, touch_bids

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.venue.order_entry import RTT_RING, EntryError, OrderEntry, Rtt
from pmm_widgets.venue.signer import OrderSigner

pytestmark = pytest.mark.integration


@pytest.fixture
def wallet(wallet_key):
    """The signer of `wallet_key` and its sandbox L2 credentials (deterministic per wallet)."""
    creds = derive_creds(Account.from_key(wallet_key).address, 0)
    return OrderSigner(wallet_key, 137), (creds.api_key, creds.secret, creds.passphrase)


def _bodies(sb: Sandbox, signer: OrderSigner, n: int) -> list[dict]:
    markets = active_markets(sb, n)
    by_token = {t: m for m in markets for t in m.token_ids}
    quotes = touch_bids(sb, markets)[:n]
    return [signer.sign(q.token_id, q.side, q.price, q.size, by_token[q.token_id].tick_size,
                        by_token[q.token_id].neg_risk).body for q in quotes]


async def test_a_post_and_a_cancel_round_trip_with_their_bodies_and_times(sb, wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url + "/", signer.address, lambda: creds)
    assert entry.host == sb.clob_url and entry.max_inflight == 8 and entry.rtts.maxlen == RTT_RING == 4096
    assert entry._timeout == 10.0 and (entry.inflight, entry.peak_inflight) == (0, 0)
    assert OrderEntry("http://hostX/", "0x0", lambda: None).host == "http://hostX"  # only slashes are cut
    seen: list[tuple[str, list]] = []
    real = entry._http

    def spy():
        client = real()
        if not getattr(client, "_spied", False):
            async def hook(request):
                seen.append((request.method, json.loads(request.content)))
            client.event_hooks["request"].append(hook)
            client._spied = True  # type: ignore[attr-defined]
        return client

    entry._http = spy  # type: ignore[method-assign]
    try:
        bodies = _bodies(sb, signer, 2)
        answers = await entry.post(bodies, creds[0])
        assert [a["success"] for a in answers] == [True, True] and len({a["orderID"] for a in answers}) == 2
        assert seen[0][0] == "POST" and seen[0][1] == [
            {"order": b, "owner": creds[0], "orderType": "GTC", "deferExec": False, "postOnly": True} for b in bodies]
        await entry.post(_bodies(sb, signer, 1), creds[0], post_only=False)
        assert seen[1][1][0]["postOnly"] is False
        gone = await entry.cancel([answers[0]["orderID"], "0xdead"])
        assert gone == {"canceled": [answers[0]["orderID"]], "not_canceled": {"0xdead": "order not found"}}
        assert seen[2] == ("DELETE", [answers[0]["orderID"], "0xdead"])
    finally:
        await entry.aclose()
    assert entry._client is None
    kinds = [(r.kind, r.n, r.status) for r in entry.rtts]
    assert kinds == [("post", 2, 200), ("post", 1, 200), ("cancel", 2, 200)]
    assert all(0 < r.rtt < 10 for r in entry.rtts) and entry.inflight == 0 and entry.peak_inflight == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.rtts[0].kind = "x"  # type: ignore[misc]
    assert not hasattr(entry.rtts[0], "__dict__")  # slots: 4096 of them are kept


async def test_a_refusal_without_json_shows_the_start_of_the_body(sb, wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url + "/no-such-prefix", signer.address, lambda: creds)
    try:
        with pytest.raises(EntryError) as ei:
            await entry.cancel(["0xdead"])
    finally:
        await entry.aclose()
    assert ei.value.status == 404 and ei.value.message == "404: Not Found"


async def test_refusals_and_failures_raise_one_error_naming_what_failed(sb, wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url, signer.address, lambda: (creds[0], "bm90LXRoZS1zZWNyZXQ=", creds[2]))
    try:
        with pytest.raises(EntryError) as ei:  # a wrong secret: the venue's own words, and its status
            await entry.post(_bodies(sb, signer, 1), creds[0])
        assert ei.value.status == 401 and ei.value.op == "post" and str(ei.value) == f"post: HTTP 401: {ei.value.message}"
        assert ei.value.message and ei.value.message[0] != "{"  # the "error" text, not the JSON
        entry._creds = lambda: creds
        sb.faults.update(http_error_rate=1.0, http_error_status=503)
        with pytest.raises(EntryError) as ei:
            await entry.cancel(["0xdead"])
        assert (ei.value.op, ei.value.status, ei.value.message) == ("cancel", 503, "Service Unavailable")
        sb.faults.update(http_error_rate=0.0)
        entry._creds = lambda: None
        with pytest.raises(EntryError) as ei:
            await entry.cancel(["0xdead"])
        assert str(ei.value) == "delete: API credentials are needed" and ei.value.status is None
    finally:
        await entry.aclose()
    assert [(r.kind, r.status) for r in entry.rtts] == [("post", 401), ("cancel", 503)]  # no request without creds


async def test_a_venue_nobody_answers_is_a_transport_error_with_its_round_trip_kept(wallet):
    signer, creds = wallet
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = OrderEntry(f"http://127.0.0.1:{port}", signer.address, lambda: creds, max_inflight=0)
    assert entry.max_inflight == 1  # never below one
    try:
        with pytest.raises(EntryError) as ei:
            await entry.post([{"x": 1}], creds[0])
    finally:
        await entry.aclose()
    assert ei.value.status is None and ei.value.message.startswith("ConnectError: ") and len(ei.value.message) <= 300
    assert str(ei.value).startswith("post: ConnectError: ")
    assert [(r.kind, r.status) for r in entry.rtts] == [("post", None)] and entry.inflight == 0


async def test_answers_of_the_wrong_shape_are_empty_and_other_errors_are_shown_whole(sb, wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url, signer.address, lambda: creds)
    sb.faults.update(garbled_answer_rate=1.0)  # the venue acts, the answer is cut: not JSON
    try:
        assert await entry.post(_bodies(sb, signer, 1), creds[0]) == []
        assert await entry.cancel(["0xdead"]) == {}
    finally:
        sb.faults.update(garbled_answer_rate=0.0)
        await entry.aclose()


def test_errors_name_the_operation_and_the_status():
    e = EntryError("post", "not enough balance", 400)
    assert (e.op, e.status, e.message, str(e)) == ("post", 400, "not enough balance", "post: HTTP 400: not enough balance")
    assert str(EntryError("cancel", "ReadTimeout: ")) == "cancel: ReadTimeout: "


async def test_requests_in_flight_are_bounded(sb, wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url, signer.address, lambda: creds, max_inflight=2)
    sb.faults.update(latency_ms=50)
    try:
        await asyncio.gather(*(entry.cancel([f"0x{i:02x}"]) for i in range(6)))
    finally:
        sb.faults.update(latency_ms=0)
        await entry.aclose()
    assert entry.peak_inflight == 2 and entry.inflight == 0 and len(entry.rtts) == 6


def test_the_client_is_made_once_http2_only_for_https():
    plain = OrderEntry("http://127.0.0.1:1", "0x0", lambda: None, max_inflight=3)
    c = plain._http()
    pool = c._transport._pool  # type: ignore[attr-defined]
    # max_inflight plus room for a cancel-all, a heartbeat and an open-order read, which the bound never holds back
    assert plain._http() is c and (pool._max_connections, pool._max_keepalive_connections, pool._http2) == (6, 6, False)
    tls = OrderEntry("https://clob.example", "0x0", lambda: None, max_inflight=3)
    h2 = tls._http()
    pool = h2._transport._pool  # type: ignore[attr-defined]
    assert (pool._max_connections, pool._max_keepalive_connections, pool._http2) == (1, 1, True)  # one multiplexed
    asyncio.run(plain.aclose())
    asyncio.run(tls.aclose())
    assert c.is_closed and h2.is_closed and plain._client is None
    asyncio.run(OrderEntry("http://x", "0x0", lambda: None).aclose())  # never opened: nothing to close


def test_rtt_summary_per_kind_since_an_instant():
    e = OrderEntry("http://x", "0x0", lambda: None)
    assert e.rtt_summary() == {}
    for i in range(200):  # posts of 1..200 ms at t = 100 + i
        e.rtts.append(Rtt(100.0 + i, "post", 1, (i + 1) / 1000, 200))
    e.rtts.append(Rtt(0.5, "cancel", 3, 0.004, 200))  # counted by default: since the epoch
    s = e.rtt_summary()
    assert s["post"] == {"n": 200, "p50_ms": 101.0, "p99_ms": 199.0, "max_ms": 200.0}
    assert s["cancel"] == {"n": 1, "p50_ms": 4.0, "p99_ms": 4.0, "max_ms": 4.0}
    late = e.rtt_summary(since=290.0)  # the last ten posts (t = 290 .. 299), no cancel
    assert late == {"post": {"n": 10, "p50_ms": 196.0, "p99_ms": 200.0, "max_ms": 200.0}}
    assert e.rtt_summary(since=299.0)["post"]["n"] == 1  # the bound is inclusive
    e.rtts.append(Rtt(400.0, "post", 1, 0.0012345, 200))
    assert e.rtt_summary(since=400.0)["post"] == {"n": 1, "p50_ms": 1.23, "p99_ms": 1.23, "max_ms": 1.23}
