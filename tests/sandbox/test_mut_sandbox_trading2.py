"""The sandbox venue's doors and its account reads (sandbox/trading.py), called directly.

Auth (polymarket-api.md §4, checked against the official SDK's own header builders,
py_clob_client_v2 `create_level_1_headers` / `create_level_2_headers`): L1 is the wallet's
EIP-712 ClobAuth signature over (address, timestamp, nonce) on chain 137, and gives the key of
(address, nonce), the same on create and derive (derive: once created, test_auth_derive.py); L2 is the key, its passphrase and the HMAC of
`timestamp + METHOD + path + body` (path without the query string) with the key's secret,
within the clock tolerance, by the address the key belongs to. Anything else is a 401 with the
venue's text, counted in `auth_failures`: tests elsewhere rely on the sandbox refusing a bad
signature or a wrong key.

Reads: `/data/orders` (the key's open orders, oldest first, filtered by id, market, asset),
`/data/order/{id}` (only the key's own), `/data/trades` (the key's fills, filtered by id,
market, asset on either side of a complement match, maker address in any case, and an
inclusive after/before window)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal as D
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st
from py_clob_client_v2.clob_types import ApiCreds, RequestArgs
from py_clob_client_v2.headers.headers import create_level_1_headers, create_level_2_headers
from py_clob_client_v2.signer import Signer
from test_mut_sandbox_trading import ADDR, KEY, OTHER_ADDR, OTHER_KEY, _json, _place, _req, _signed, _venue

from pmm_widgets.sandbox.auth_crypto import SandboxCreds, derive_creds
from pmm_widgets.sandbox.simulator import SimTrade
from pmm_widgets.sandbox.trading import TradingVenue

L1_REFUSED = {"error": "Invalid L1 Request headers"}
L2_REFUSED = {"error": "Unauthorized/Invalid api key"}


def _request(method: str, path: str, headers: dict[str, str], body: str = "", query: str = "") -> web.Request:
    payload = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    if body:
        payload.feed_data(body.encode())
    payload.feed_eof()
    return make_mocked_request(method, path + (f"?{query}" if query else ""), headers=headers, payload=payload)


def _l1(key: str = KEY, nonce: int = 0, chain_id: int = 137, ts: int | None = None) -> dict[str, str]:
    return dict(create_level_1_headers(Signer(key, chain_id), nonce, ts))


def _l2(c: SandboxCreds, method: str, path: str, body: str = "", *, key: str = KEY, ts: float | None = None,
        secret: str | None = None, passphrase: str | None = None) -> dict[str, str]:
    creds = ApiCreds(c.api_key, secret or c.secret, passphrase or c.passphrase)
    args = RequestArgs(method, path, serialized_body=body or None)
    return dict(create_level_2_headers(Signer(key, 137), creds, args, int(ts if ts is not None else time.time())))


# ---------------------------------------------------------------------- L1


@pytest.mark.parametrize("nonce", [0, 3])
async def test_l1_creates_and_derives_the_key_of_the_address_and_nonce(nonce: int) -> None:
    _, v, _, _ = _venue()
    v.keys.clear()
    want = derive_creds(ADDR, nonce)
    for handler, method, path in ((v.create_api_key, "POST", "/auth/api-key"),
                                  (v.derive_api_key, "GET", "/auth/derive-api-key")):
        resp = await handler(_request(method, path, _l1(nonce=nonce)))
        assert resp.status == 200, path
        assert _json(resp) == {"apiKey": want.api_key, "secret": want.secret, "passphrase": want.passphrase}
    assert list(v.keys) == [want.api_key] and v.auth_failures == 0
    # the key works at once (L2), and the header's address case does not matter
    h = _l2(want, "GET", "/auth/api-keys")
    h["POLY_ADDRESS"] = ADDR.lower()
    assert _json(await v.api_keys(_request("GET", "/auth/api-keys", h))) == {"apiKeys": [want.api_key]}
    h = _l1(nonce=nonce)
    h["POLY_ADDRESS"] = ADDR.lower()
    assert _json(await v.derive_api_key(_request("GET", "/auth/derive-api-key", h)))["apiKey"] == want.api_key


def _tampered(what: str) -> dict[str, str]:
    h = _l1(nonce=2)
    if what == "another wallet's signature":
        h["POLY_SIGNATURE"] = _l1(OTHER_KEY, nonce=2, ts=int(h["POLY_TIMESTAMP"]))["POLY_SIGNATURE"]
    elif what == "another address":
        h["POLY_ADDRESS"] = OTHER_ADDR
    elif what == "another timestamp":
        h["POLY_TIMESTAMP"] = str(int(h["POLY_TIMESTAMP"]) + 1)
    elif what == "another nonce":
        h["POLY_NONCE"] = "0"
    elif what == "another chain":
        h = _l1(nonce=2, chain_id=80002)
    elif what == "a malformed signature":
        h["POLY_SIGNATURE"] = "0x1234"
    elif what == "a nonce that is not a number":
        h["POLY_NONCE"] = "two"
    elif what == "a malformed address":
        h["POLY_ADDRESS"] = "0xnot-an-address"
    else:
        del h[what]
    return h


@pytest.mark.parametrize("what", ["another wallet's signature", "another address", "another timestamp",
                                  "another nonce", "another chain", "a malformed signature",
                                  "a nonce that is not a number", "a malformed address",
                                  "POLY_ADDRESS", "POLY_SIGNATURE", "POLY_TIMESTAMP"])
async def test_l1_refuses_what_the_wallet_did_not_sign(what: str) -> None:
    _, v, _, _ = _venue()
    before = dict(v.keys)
    for n, (handler, method, path) in enumerate(((v.create_api_key, "POST", "/auth/api-key"),
                                                 (v.derive_api_key, "GET", "/auth/derive-api-key")), 1):
        resp = await handler(_request(method, path, _tampered(what)))
        assert (resp.status, _json(resp)) == (401, L1_REFUSED), path
        assert v.auth_failures == n
    assert v.keys == before  # no key given out


async def test_l1_without_a_nonce_header_is_nonce_0() -> None:
    _, v, _, _ = _venue()
    h = _l1(nonce=0)
    del h["POLY_NONCE"]
    assert _json(await v.derive_api_key(_request("GET", "/auth/derive-api-key", h)))["apiKey"] == \
        derive_creds(ADDR, 0).api_key


async def test_a_key_created_or_derived_here_works_at_once_whatever_its_nonce() -> None:
    _, v, _, _ = _venue()
    v.keys.clear()  # created first: derive answers only a created key (test_auth_derive.py)
    for handler, method, path in ((TradingVenue.create_api_key, "POST", "/auth/api-key"),
                                  (TradingVenue.derive_api_key, "GET", "/auth/derive-api-key")):
        got = _json(await handler(v, _request(method, path, _l1(nonce=7))))
        c7 = derive_creds(ADDR, 7)
        assert got["apiKey"] == c7.api_key
        resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c7, "GET", "/auth/api-keys")))
        assert (resp.status, _json(resp)) == (200, {"apiKeys": [c7.api_key]}), path


async def test_every_auth_call_is_counted_accepted_or_refused() -> None:
    """What a dry-run test reads to prove the engine asked the venue for nothing (not even a key)."""
    _, v, c, _ = _venue()
    refused = _l1()
    refused["POLY_SIGNATURE"] = _l1(OTHER_KEY, ts=int(refused["POLY_TIMESTAMP"]))["POLY_SIGNATURE"]
    for headers in (_l1(), refused):
        await v.create_api_key(_request("POST", "/auth/api-key", headers))
        await v.derive_api_key(_request("GET", "/auth/derive-api-key", headers))
    await v.api_keys(_request("GET", "/auth/api-keys", _l2(c, "GET", "/auth/api-keys")))
    await v.api_keys(_request("GET", "/auth/api-keys", _l2(c, "GET", "/auth/api-keys", passphrase="x")))
    assert dict(v.requests) == {("POST", "/auth/api-key"): 2, ("GET", "/auth/derive-api-key"): 2,
                                ("GET", "/auth/api-keys"): 2}
    assert v.order_requests == 0 and v.auth_failures == 3


# ---------------------------------------------------------------------- L2

def _two_accounts() -> tuple[TradingVenue, SandboxCreds, SandboxCreds, SandboxCreds]:
    _, v, c, _ = _venue()
    c3 = derive_creds(ADDR, 3)
    other = derive_creds(OTHER_ADDR, 0)
    v.keys[c3.api_key] = c3
    v.keys[other.api_key] = other
    return v, c, c3, other


async def test_l2_with_the_sdks_headers_lists_the_addresss_keys_only() -> None:
    v, c, c3, other = _two_accounts()
    resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c, "GET", "/auth/api-keys")))
    assert resp.status == 200 and sorted(_json(resp)["apiKeys"]) == sorted([c.api_key, c3.api_key])
    resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(other, "GET", "/auth/api-keys", key=OTHER_KEY)))
    assert _json(resp) == {"apiKeys": [other.api_key]}
    assert v.auth_failures == 0


def _bad_l2(what: str, c: SandboxCreds, other: SandboxCreds) -> dict[str, str]:
    path = "/auth/api-keys"
    if what == "wrong passphrase":
        return _l2(c, "GET", path, passphrase="0" * 64)
    if what == "wrong secret":
        return _l2(c, "GET", path, secret=other.secret)
    if what == "another address's key":  # the other key, its own secret and passphrase, sent from our address
        return _l2(other, "GET", path)
    if what == "our key from another address":
        return _l2(c, "GET", path, key=OTHER_KEY)
    if what == "301 s old":
        return _l2(c, "GET", path, ts=time.time() - 301)
    if what == "301 s ahead":
        return _l2(c, "GET", path, ts=time.time() + 301)
    if what == "signed for another path":
        return _l2(c, "GET", "/auth/api-key")
    if what == "signed for another method":
        return _l2(c, "POST", path)
    if what == "signed with a body not sent":
        return _l2(c, "GET", path, body="{}")
    if what == "a timestamp that is not a number":
        h = _l2(c, "GET", path)
        h["POLY_TIMESTAMP"] = "soon"
        return h
    if what == "an unknown key":
        h = _l2(c, "GET", path)
        h["POLY_API_KEY"] = "00000000-0000-4000-8000-00000000abcd"
        return h
    h = _l2(c, "GET", path)
    del h[what]
    return h


@pytest.mark.parametrize("what", ["wrong passphrase", "wrong secret", "another address's key",
                                  "our key from another address", "301 s old", "301 s ahead",
                                  "signed for another path", "signed for another method",
                                  "signed with a body not sent", "a timestamp that is not a number", "an unknown key",
                                  "POLY_ADDRESS", "POLY_API_KEY", "POLY_PASSPHRASE", "POLY_TIMESTAMP",
                                  "POLY_SIGNATURE"])
async def test_l2_refuses_a_wrong_key_or_signature(what: str) -> None:
    v, c, _, other = _two_accounts()
    resp = await v.api_keys(_request("GET", "/auth/api-keys", _bad_l2(what, c, other)))
    assert (resp.status, _json(resp)) == (401, L2_REFUSED)
    assert v.auth_failures == 1


async def test_l2_accepts_a_clock_a_little_off_and_signs_the_path_without_the_query() -> None:
    v, c, _, _ = _two_accounts()
    for ts in (time.time() - 290, time.time() + 290):
        resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c, "GET", "/auth/api-keys", ts=ts)))
        assert resp.status == 200
    h = _l2(c, "GET", "/data/orders")  # the SDK signs the path; the query goes on the URL after
    resp = await v.open_orders(_request("GET", "/data/orders", h, query="market=0xabc&next_cursor=MA=="))
    assert resp.status == 200 and _json(resp)["data"] == []


async def test_l2_signs_the_body_sent() -> None:
    v, c, _, _ = _two_accounts()
    sent = json.dumps(["0x" + "ab" * 32])
    resp = await v.cancel_orders(_request("DELETE", "/orders", _l2(c, "DELETE", "/orders", "[]"), body=sent))
    assert (resp.status, _json(resp)) == (401, L2_REFUSED)
    resp = await v.cancel_orders(_request("DELETE", "/orders", _l2(c, "DELETE", "/orders", sent), body=sent))
    assert resp.status == 200


async def test_a_body_that_is_not_utf8_is_refused_not_a_server_error() -> None:
    """No SDK signs such a body (it signs JSON text): the venue's answer is its 401, counted,
    as for any other signature that does not match, not a 500 from the handler."""
    v, c, _, _ = _two_accounts()
    raw = b'{"orderID": "0x\xff"}'
    h = _l2(c, "DELETE", "/order", raw.decode("latin-1"))
    payload = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(raw)
    payload.feed_eof()
    resp = await v.cancel_order(make_mocked_request("DELETE", "/order", headers=h, payload=payload))
    assert (resp.status, _json(resp)) == (401, L2_REFUSED)
    assert v.auth_failures == 1 and v.order_requests == 1


async def test_a_key_derived_against_an_earlier_sandbox_is_known_again_for_nonce_0_only() -> None:
    _, v, _, _ = _venue()
    v.keys.clear()  # a fresh sandbox process: nobody created a key here
    c0, c1 = derive_creds(ADDR, 0), derive_creds(ADDR, 1)
    resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c0, "GET", "/auth/api-keys")))
    assert _json(resp) == {"apiKeys": [c0.api_key]} and list(v.keys) == [c0.api_key]
    resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c1, "GET", "/auth/api-keys")))
    assert (resp.status, _json(resp)) == (401, L2_REFUSED)  # another nonce: it must be created (L1) here
    h = _l2(c1, "GET", "/auth/api-keys")
    h["POLY_ADDRESS"] = "0xnot-an-address"
    resp = await v.api_keys(_request("GET", "/auth/api-keys", h))
    assert (resp.status, _json(resp)) == (401, L2_REFUSED)
    assert list(v.keys) == [c0.api_key] and v.auth_failures == 2


# ---------------------------------------------------------------------- reads

Handler = Callable[[web.Request], Awaitable[web.Response]]


async def _get(v: TradingVenue, handler: Handler, c: SandboxCreds, path: str, query: str = "") -> Any:
    resp = await handler(_req(c, "GET", path, query=query))
    assert resp.status == 200, _json(resp)
    return _json(resp)


async def test_open_orders_are_the_keys_own_oldest_first_and_filtered() -> None:
    sim, v, c, m = _venue()
    other = [x for x in sim.markets if x.has_book and x is not m and not x.neg_risk and x.tick_mil == 10][0]
    other.min_order_size = D(5)
    c2 = derive_creds(OTHER_ADDR, 0)
    v.keys[c2.api_key] = c2
    ids = []
    for n, (tok, px) in enumerate(((m.yes_token_id, "0.45"), (m.no_token_id, "0.45"), (m.yes_token_id, "0.44"),
                                   (other.yes_token_id, "0.01"))):
        ids.append(_place(v, c, _signed(c, tok, "BUY", px, "10", salt=n + 1))["orderID"])
    theirs = _place(v, c2, _signed(c2, m.yes_token_id, "BUY", "0.45", "10", key=OTHER_KEY, signer=OTHER_ADDR))
    a, b, cc, d = ids

    async def listed(query: str = "") -> list[str]:
        return [o["id"] for o in (await _get(v, v.open_orders, c, "/data/orders", query))["data"]]

    assert await listed() == [a, b, cc, d]
    assert await listed(f"market={m.condition_id}") == [a, b, cc]
    assert await listed(f"asset_id={m.yes_token_id}") == [a, cc]
    assert await listed(f"market={m.condition_id}&asset_id={m.no_token_id}") == [b]
    assert await listed(f"id={cc}") == [cc]
    assert await listed(f"id={cc}&market={other.condition_id}") == []
    assert await listed(f"id={theirs['orderID']}") == []  # another key's order is not listed
    assert await listed(f"asset_id={other.no_token_id}") == []
    await v.cancel_order(_req(c, "DELETE", "/order", json.dumps({"orderID": b})))
    assert await listed() == [a, cc, d]  # open ones only


async def test_an_order_is_shown_to_its_own_key_only() -> None:
    sim, v, c, m = _venue()
    c2 = derive_creds(OTHER_ADDR, 0)
    v.keys[c2.api_key] = c2
    mine = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.45", "10"))["orderID"]
    resp = await v.get_order(_order_req(c, mine))
    got = _json(resp)
    assert resp.status == 200 and (got["id"], got["asset_id"], got["side"]) == (mine, m.yes_token_id, "BUY")
    for key, oid in ((c2, mine), (c, "0x" + "cd" * 32)):
        resp = await v.get_order(_order_req(key, oid))
        assert (resp.status, _json(resp)) == (404, {"error": "order not found"})


def _order_req(c: SandboxCreds, oid: str) -> web.Request:
    path = f"/data/order/{oid}"
    return make_mocked_request("GET", path, headers=_req(c, "GET", path).headers, match_info={"order_id": oid})


def _fill(sim: Any, v: TradingVenue, c: SandboxCreds, oid: str, n: int, ts: float) -> dict[str, Any]:
    so = sim.get_order(oid)
    t = SimTrade(f"fill-{n}", oid, c.api_key, so.token_id, so.condition_id, so.side, so.price, D(5), ts,
                 so.side.opposite, "MAKER", None)
    v._on_trade(t)
    return v._trades[v._trades_by_owner[c.api_key][-1]].payload


async def test_trades_are_the_keys_own_and_filtered() -> None:
    sim, v, c, m = _venue()
    c2 = derive_creds(OTHER_ADDR, 0)
    v.keys[c2.api_key] = c2
    other = [x for x in sim.markets if x.has_book and x is not m and not x.neg_risk and x.tick_mil == 10][0]
    other.min_order_size = D(5)
    yes = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.45", "10", salt=1))["orderID"]
    no = _place(v, c, _signed(c, m.no_token_id, "BUY", "0.45", "10", salt=2))["orderID"]
    far = _place(v, c, _signed(c, other.yes_token_id, "BUY", "0.01", "10", salt=3))["orderID"]
    t0 = sim.now()
    fills = [_fill(sim, v, c, oid, n, t0 + 10 * n) for n, oid in enumerate((yes, no, yes, far, no, yes))]
    ids = [p["id"] for p in fills]
    theirs = _place(v, c2, _signed(c2, m.yes_token_id, "BUY", "0.45", "10", key=OTHER_KEY, signer=OTHER_ADDR))
    _fill(sim, v, c2, theirs["orderID"], 99, t0)

    async def listed(query: str = "") -> list[str]:
        page = await _get(v, v.trades, c, "/data/trades", query)
        assert all("match_time" in r and "matchtime" not in r for r in page["data"])
        return [r["id"] for r in page["data"]]

    assert await listed() == ids  # the other key's fill is not there
    assert await listed(f"id={ids[2]}") == [ids[2]]
    assert await listed(f"market={other.condition_id}") == [ids[3]]
    for n, p in enumerate(fills):  # the fill's own token, or the token the venue shows it on (a complement match)
        sim_tok = sim.get_order((yes, no, yes, far, no, yes)[n]).token_id
        assert ids[n] in await listed(f"asset_id={sim_tok}")
        assert ids[n] in await listed(f"asset_id={p['asset_id']}")
    assert await listed(f"asset_id={other.no_token_id}&market={m.condition_id}") == []
    assert await listed(f"maker_address={ADDR.lower()}") == ids  # our orders named us: any case
    assert await listed(f"maker_address={OTHER_ADDR}") == []
    # the window is inclusive at both ends
    assert await listed(f"after={t0 + 10}&before={t0 + 30}") == ids[1:4]
    assert await listed(f"after={t0 + 10.5}&before={t0 + 29.5}") == ids[2:3]
    assert await listed(f"after={t0 + 50}") == ids[5:]
    assert await listed(f"before={t0}") == ids[:1]
    for bad in ("after=yesterday", "before=1e3x"):
        resp = await v.trades(_req(c, "GET", "/data/trades", query=bad))
        assert (resp.status, _json(resp)) == (400, {"error": "invalid after/before"})


async def test_reads_need_l2() -> None:
    sim, v, c, m = _venue()
    _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.45", "10"))
    bad = SandboxCreds(c.address, c.nonce, c.api_key, derive_creds(OTHER_ADDR, 0).secret, c.passphrase)
    for handler, path in ((v.open_orders, "/data/orders"), (v.trades, "/data/trades"),
                          (v.api_keys, "/auth/api-keys")):
        resp = await handler(_req(bad, "GET", path))
        assert (resp.status, _json(resp)) == (401, L2_REFUSED), path
    resp = await v.get_order(_order_req(bad, "x"))
    assert (resp.status, _json(resp)) == (401, L2_REFUSED)
    assert v.auth_failures == 4


def test_following_the_cursors_reads_every_row_once() -> None:
    _, v, _, _ = _venue()

    @settings(max_examples=40)
    @given(n=st.integers(min_value=0, max_value=320), limit=st.integers(min_value=7, max_value=130))
    def check(n: int, limit: int) -> None:
        v.page_limit = limit
        rows = [{"n": i} for i in range(n)]
        seen: list[dict[str, Any]] = []
        cursor, pages = "MA==", 0
        while cursor != "LTE=":
            page = _json(v._page(make_mocked_request("GET", f"/data/trades?next_cursor={cursor}"), rows))
            assert page["limit"] == limit and page["count"] == len(page["data"]) <= limit
            seen += page["data"]
            cursor = page["next_cursor"]
            pages += 1
        assert seen == rows and pages == max(1, -(-n // limit))

    check()
