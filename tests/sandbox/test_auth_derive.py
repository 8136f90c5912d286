"""`GET /auth/derive-api-key` answers only a key `POST /auth/api-key` created (sandbox/trading.py
`derive_api_key`), and the venue's 400 `{"error": "Could not derive api key!"}` otherwise.

BUG (fixed): deriving registered the key of (address, nonce) whether or not it was ever created,
so a client that only derived (skipping the create the venue needs) worked here and failed at the
venue, and the SDK's `create_or_derive_api_key` fallback was never really exercised. Source: the
SDK (py-clob-client-v2 1.2.1 `create_or_derive_api_key` creates first, then derives) and the
venue's answer in its issues (#41; rs-clob-client-v2 #37); polymarket-api.md §4 only says the key
is "deterministic per (address, nonce)", which the sandbox keeps (auth_crypto.derive_creds)."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.exceptions import PolyApiException
from test_mut_sandbox_trading import ADDR, OTHER_KEY, _json, _venue
from test_mut_sandbox_trading2 import L2_REFUSED, _l1, _l2, _request

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import TradingVenue, trading_of
from pmm_widgets.venue.broker import Broker, BrokerError

DERIVE_REFUSED = {"error": "Could not derive api key!"}


async def _derive(v: TradingVenue, key: str | None = None, nonce: int = 0) -> tuple[int, dict]:
    resp = await v.derive_api_key(_request("GET", "/auth/derive-api-key", _l1(**({"key": key} if key else {}),
                                                                              nonce=nonce)))
    return resp.status, _json(resp)


async def _create(v: TradingVenue, nonce: int = 0) -> tuple[int, dict]:
    resp = await v.create_api_key(_request("POST", "/auth/api-key", _l1(nonce=nonce)))
    return resp.status, _json(resp)


@pytest.mark.parametrize("nonce", [0, 1, 7])
async def test_deriving_a_key_never_created_is_refused_and_registers_nothing(nonce: int) -> None:
    _, v, _, _ = _venue()
    v.keys.clear()  # nobody created a key here
    assert await _derive(v, nonce=nonce) == (400, DERIVE_REFUSED)
    assert v.keys == {} and v.auth_failures == 0  # the wallet's signature was good: no auth failure
    if nonce:  # the key that derive would have given out is not usable either
        c = derive_creds(ADDR, nonce)
        resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c, "GET", "/auth/api-keys")))
        assert (resp.status, _json(resp)) == (401, L2_REFUSED)


async def test_deriving_answers_the_created_key_of_that_address_and_nonce_only() -> None:
    _, v, _, _ = _venue()
    v.keys.clear()
    st, created = await _create(v, nonce=3)
    c3 = derive_creds(ADDR, 3)
    assert st == 200 and created == {"apiKey": c3.api_key, "secret": c3.secret, "passphrase": c3.passphrase}
    assert await _derive(v, nonce=3) == (200, created)
    assert await _derive(v, nonce=3) == (200, created)  # as often as asked
    assert await _derive(v, nonce=0) == (400, DERIVE_REFUSED)  # another nonce of the same wallet
    assert await _derive(v, key=OTHER_KEY, nonce=3) == (400, DERIVE_REFUSED)  # another wallet
    assert list(v.keys) == [c3.api_key]


async def test_a_derive_that_fails_auth_is_still_the_401() -> None:
    _, v, _, _ = _venue()
    h = _l1(ts=int(time.time()) - 3600)
    resp = await v.derive_api_key(_request("GET", "/auth/derive-api-key", h))
    assert (resp.status, _json(resp)) == (401, {"error": "Invalid L1 Request headers"}) and v.auth_failures == 1


# ----------------------------------------------------------------------------- over loopback, the SDK


async def test_the_sdks_create_or_derive_flow_end_to_end() -> None:
    """derive alone fails with the venue's 400 (PolyApiException); create_or_derive creates, its
    key works at L2; a second client (a restart) derives the same key and it works too."""
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as sb:
        v = trading_of(sb)

        def work() -> tuple[str, str, str]:
            first = ClobClient(sb.clob_url, 137, key=key)
            with pytest.raises(PolyApiException) as ei:
                first.derive_api_key()
            assert (ei.value.status_code, ei.value.error_msg) == (400, DERIVE_REFUSED)
            creds = first.create_or_derive_api_key()
            first.set_api_creds(creds)
            assert first.get_open_orders() == []
            again = ClobClient(sb.clob_url, 137, key=key).derive_api_key()
            other_nonce = ClobClient(sb.clob_url, 137, key=key).create_or_derive_api_key(nonce=5)
            return creds.api_key, again.api_key, other_nonce.api_key

        k0, again, k5 = await asyncio.to_thread(work)
        addr = Account.from_key(key).address
        assert k0 == again == derive_creds(addr, 0).api_key and k5 == derive_creds(addr, 5).api_key
        assert v.requests[("GET", "/auth/derive-api-key")] == 2  # the refused one and the restart's
        assert v.auth_failures == 0


async def test_the_engines_live_start_derives_its_credentials_and_a_restart_does_again() -> None:
    """`Broker.derive_creds` (what `LiveExchange.start` calls without PMM_API_KEY) against the
    sandbox: the credentials work (an L2 read); a second broker for the same wallet, as after a
    restart against the same venue, gets the same key."""
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as sb:
        got = []
        for _ in range(2):
            b = Broker(sb.clob_url, 137, key, fast=False)
            try:
                creds = await b.derive_creds()
                assert await b.open_orders() == []
                got.append(creds.api_key.get_secret_value())
            finally:
                await b.aclose()
        assert got[0] == got[1] == derive_creds(Account.from_key(key).address, 0).api_key
        assert trading_of(sb).auth_failures == 0


async def test_a_broker_that_cannot_derive_says_so_without_secrets() -> None:
    """A wallet whose L1 the venue refuses: the broker's error carries the venue's status and text."""
    async with Sandbox(SandboxConfig(markets=4, seed=3, auth_skew_sec=-1.0)) as sb:  # every L1 is stale
        b = Broker(sb.clob_url, 137, "0x" + "11" * 32, fast=False)
        try:
            with pytest.raises(BrokerError) as ei:
                await b.derive_creds()
        finally:
            await b.aclose()
        assert (ei.value.op, ei.value.status) == ("derive", 401) and "Invalid L1 Request headers" in str(ei.value)
