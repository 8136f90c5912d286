"""Each fault knob, observed over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal, InvalidOperation

import httpx
import pytest
import websockets
from sandbox_helpers import book_tokens

from pmm_widgets.sandbox.faults import Faults
from pmm_widgets.sandbox.server import Sandbox

pytestmark = pytest.mark.integration


async def test_latency_is_added(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.clob_url) as c:
        await c.get("/ok")
        sandbox.faults.latency_ms = 300
        t0 = time.monotonic()
        r = await c.get("/ok")
        slow = time.monotonic() - t0
        g0 = time.monotonic()
        async with httpx.AsyncClient(base_url=sandbox.gamma_url) as g:
            await g.get("/markets")
        gslow = time.monotonic() - g0
    assert r.status_code == 200
    assert slow >= 0.3 and gslow >= 0.3  # a lower bound: the knob's effect, not a speed goal


async def test_ws_frames_are_delayed_by_latency(sandbox: Sandbox) -> None:
    sandbox.faults.latency_ms = 400
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        t0 = time.monotonic()
        await ws.send("PING")
        assert await ws.recv() == "PONG"
        assert time.monotonic() - t0 >= 0.4


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_http_errors_at_rate_one(sandbox: Sandbox, status: int) -> None:
    sandbox.faults.update(http_error_rate=1.0, http_error_status=status)
    tok = book_tokens(sandbox)[0]
    async with httpx.AsyncClient() as c:
        r = await c.get(sandbox.clob_url + "/book", params={"token_id": tok})
        g = await c.get(sandbox.gamma_url + "/markets")
        admin = await c.get(sandbox.clob_url + "/_sandbox/state")  # admin is never faulted
    assert r.status_code == status and g.status_code == status and "error" in r.json()
    assert (r.headers.get("Retry-After") == "1") == (status == 429)
    assert admin.status_code == 200


async def test_http_error_rate_is_a_fraction(sandbox: Sandbox) -> None:
    sandbox.faults.update(http_error_rate=0.5, http_error_status=500)
    async with httpx.AsyncClient(base_url=sandbox.clob_url) as c:
        codes = [(await c.get("/ok")).status_code for _ in range(120)]
    fails = codes.count(500)
    assert 25 <= fails <= 95 and codes.count(200) == 120 - fails


async def test_admin_faults_endpoint(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.clob_url) as c:
        r = await c.post("/_sandbox/faults", json={"latency_ms": 5, "legacy_markets_enabled": False})
        bad = await c.post("/_sandbox/faults", json={"http_error_status": 404})
        unknown = await c.post("/_sandbox/faults", json={"nope": 1})
        cur = (await c.get("/_sandbox/faults")).json()
    assert r.status_code == 200 and r.json()["latency_ms"] == 5 and r.json()["legacy_markets_enabled"] is False
    assert bad.status_code == 400 and unknown.status_code == 400 and "error" in bad.json()
    assert cur["http_error_status"] == 503 and sandbox.faults.latency_ms == 5
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as g:
        assert (await g.get("/markets")).status_code == 410


async def test_garbled_answers_are_cut_after_the_request_was_applied(sandbox: Sandbox) -> None:
    tok = book_tokens(sandbox)[0]
    sandbox.faults.update(garbled_answer_rate=1.0, garbled_answer_methods="GET")
    async with httpx.AsyncClient(base_url=sandbox.clob_url) as c:
        whole = (await c.post("/_sandbox/faults", json={})).content  # admin: never cut
        r = await c.get("/book", params={"token_id": tok})
        missing = await c.get("/book", params={"token_id": "123"})  # an error answer: never cut
        sandbox.faults.update(garbled_answer_methods="POST")
        untouched = await c.get("/book", params={"token_id": tok})
    assert json.loads(whole)["garbled_answer_rate"] == 1.0
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        r.json()
    assert r.content[:1] == b"{" and 0 < len(r.content) < len(untouched.content)  # the first half of a body
    assert untouched.json()["asset_id"] == tok
    assert missing.status_code == 404 and missing.json()["error"]


def test_garbled_answer_knob_is_validated() -> None:
    f = Faults()
    with pytest.raises(ValueError):
        f.update(garbled_answer_rate=1.5)
    assert not f.garble("POST", 200)  # off: no draw either
    f.update(garbled_answer_rate=1.0, garbled_answer_methods="post, delete")
    assert f.garble("POST", 201) and f.garble("delete", 200) and not f.garble("GET", 200)
    assert not f.garble("POST", 400) and not f.garble("POST", 503)


async def test_latency_can_hold_back_some_methods_only(sandbox: Sandbox) -> None:
    """`latency_methods`: a POST that waits while a GET (or a DELETE) behind it does not: the
    venue acts on the later request first."""
    import time

    tok = book_tokens(sandbox)[0]
    f = Faults()
    assert f.http_delay("GET") == 0.0  # off
    f.update(latency_ms=250, latency_methods="post")
    assert f.http_delay("POST") == 0.25 and f.http_delay("GET") == 0.0 and f.http_delay("DELETE") == 0.0
    sandbox.faults.update(latency_ms=250, latency_methods="POST")
    try:
        async with httpx.AsyncClient(base_url=sandbox.clob_url) as c:
            t0 = time.monotonic()
            assert (await c.get("/book", params={"token_id": tok})).status_code == 200
            quick = time.monotonic() - t0
            sandbox.faults.update(latency_methods="")
            t0 = time.monotonic()
            assert (await c.get("/book", params={"token_id": tok})).status_code == 200
            slow = time.monotonic() - t0
    finally:
        sandbox.faults.update(latency_ms=0.0, latency_methods="")
    assert quick < 0.2 and slow >= 0.25


def test_faults_update_is_all_or_nothing() -> None:
    f = Faults()
    with pytest.raises(ValueError):
        f.update(latency_ms=10, http_error_rate=2.0)
    assert f.latency_ms == 0


async def test_drop_websockets_now(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(json.dumps({"assets_ids": book_tokens(sandbox)[:2], "type": "market"}))
        await ws.recv()
        await sandbox.drop_websockets()
        with pytest.raises(websockets.ConnectionClosedError):
            for _ in range(10_000):
                await asyncio.wait_for(ws.recv(), 5)


async def test_ws_drop_rate(sandbox: Sandbox) -> None:
    sandbox.faults.ws_drop_rate = 20.0  # per second: dropped within a tick or two
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(json.dumps({"assets_ids": book_tokens(sandbox), "type": "market"}))
        with pytest.raises(websockets.ConnectionClosedError):
            for _ in range(10_000):
                await asyncio.wait_for(ws.recv(), 5)
    sandbox.faults.ws_drop_rate = 0.0
    async with websockets.connect(sandbox.ws_url + "/market") as ws:  # reconnecting works
        await ws.send("PING")
        assert await ws.recv() == "PONG"


def _well_formed(frame: str) -> bool:
    try:
        data = json.loads(frame)
    except ValueError:
        return False
    for ev in data if isinstance(data, list) else [data]:
        if not isinstance(ev, dict) or ev.get("event_type") not in (
                "book", "price_change", "last_trade_price", "tick_size_change", "best_bid_ask"):
            return False
        try:
            prices = [Decimal(x["price"]) for x in ev.get("price_changes", []) + ev.get("bids", []) + ev.get("asks", [])]
            sizes = [Decimal(x["size"]) for x in ev.get("price_changes", []) + ev.get("bids", []) + ev.get("asks", [])]
        except (InvalidOperation, KeyError, TypeError):
            return False
        if any(not 0 < p < 1 for p in prices) or any(s < 0 for s in sizes):
            return False
    return True


async def test_malformed_rate(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(json.dumps({"assets_ids": book_tokens(sandbox), "type": "market"}))
        good = [await ws.recv() for _ in range(5)]
        sandbox.faults.malformed_rate = 1.0
        await asyncio.sleep(0.2)
        bad = [await ws.recv() for _ in range(15)]
    assert all(_well_formed(f) for f in good)
    assert sum(not _well_formed(f) for f in bad) >= 10  # a few good frames were already in flight
