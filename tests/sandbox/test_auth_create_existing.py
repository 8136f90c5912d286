"""`POST /auth/api-key` for an (address, nonce) whose key already exists is the venue's HTTP 400
`{"error": "Could not create api key"}` (sandbox/trading.py `create_api_key`); the key stays
derivable and usable at L2.

BUG (fixed): the sandbox answered 200 (the same key again), so the SDK's `create_or_derive_api_key`
(create first, then derive) never hit the 400 here that it hits on every restart at the venue,
where it logs `[py_clob_client_v2] request error status=400 ... /auth/api-key` as an ERROR before
deriving. Source: the venue's answer in Polymarket/clob-client #202 and py-clob-client-v2 #45
(py-clob-client-v2 PR #20 discusses the SDK's fallback on it); polymarket-api.md §4 does not say."""

from __future__ import annotations

import asyncio
import logging

import pytest
from eth_account import Account
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.exceptions import PolyApiException
from test_auth_derive import _create, _derive
from test_mut_sandbox_trading import ADDR, _json, _venue
from test_mut_sandbox_trading2 import _l2, _request, _tampered

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import CREATE_REFUSED, TradingVenue, trading_of

REFUSED = {"error": "Could not create api key"}


async def _l2_ok(v: TradingVenue, nonce: int) -> bool:
    c = derive_creds(ADDR, nonce)
    resp = await v.api_keys(_request("GET", "/auth/api-keys", _l2(c, "GET", "/auth/api-keys")))
    return resp.status == 200 and c.api_key in _json(resp)["apiKeys"]


@pytest.mark.parametrize("nonce", [0, 4])
async def test_a_second_create_is_the_venues_400_and_the_key_stays_derivable_and_usable(nonce: int) -> None:
    assert {"error": CREATE_REFUSED} == REFUSED
    _, v, _, _ = _venue()
    v.keys.clear()
    c = derive_creds(ADDR, nonce)
    want = {"apiKey": c.api_key, "secret": c.secret, "passphrase": c.passphrase}
    assert await _create(v, nonce=nonce) == (200, want)
    for _ in range(2):  # as often as asked
        assert await _create(v, nonce=nonce) == (400, REFUSED)
    assert await _derive(v, nonce=nonce) == (200, want)
    assert await _l2_ok(v, nonce)
    assert list(v.keys) == [c.api_key] and v.auth_failures == 0  # a good signature: no auth failure
    # another nonce of the same wallet is another key: created once
    other = 1 if nonce == 0 else 0
    assert (await _create(v, nonce=other))[0] == 200
    assert await _create(v, nonce=other) == (400, REFUSED)


async def test_a_nonce_0_key_used_at_l2_exists_here_too() -> None:
    """A nonce-0 key an earlier sandbox process gave out stays usable at L2 (`_creds_for`); once
    used, it exists in this process as at the venue: derive answers it, a create is refused."""
    _, v, _, _ = _venue()
    v.keys.clear()
    assert await _l2_ok(v, 0)
    assert (await _derive(v, nonce=0))[0] == 200
    assert await _create(v, nonce=0) == (400, REFUSED)
    assert await _l2_ok(v, 0)


async def test_a_create_of_an_existing_key_with_a_bad_signature_is_still_the_401() -> None:
    """The signature is checked first: the 400 tells only a wallet that signed that its key exists."""
    _, v, _, _ = _venue()  # the nonce-0 key exists
    resp = await v.create_api_key(_request("POST", "/auth/api-key", _tampered("another address")))
    assert (resp.status, _json(resp)) == (401, {"error": "Invalid L1 Request headers"}) and v.auth_failures == 1


async def test_over_loopback_the_sdk_sees_the_venues_400_and_its_create_or_derive_logs_it(caplog) -> None:
    """The SDK's own view: `create_api_key` of an existing key raises PolyApiException 400 with the
    venue's body; `create_or_derive_api_key` still gets the key, after logging that 400 as an ERROR
    (why `Broker.derive_creds` does not use it: tests/execution/test_broker_api_key_start.py)."""
    caplog.set_level(logging.INFO)
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as sb:

        def work() -> tuple[str, str]:
            first = ClobClient(sb.clob_url, 137, key=key).create_api_key()
            with pytest.raises(PolyApiException) as ei:
                ClobClient(sb.clob_url, 137, key=key).create_api_key()
            assert (ei.value.status_code, ei.value.error_msg) == (400, REFUSED)
            caplog.clear()
            again = ClobClient(sb.clob_url, 137, key=key).create_or_derive_api_key()
            return first.api_key, again.api_key

        first, again = await asyncio.to_thread(work)
        assert first == again == derive_creds(Account.from_key(key).address, 0).api_key
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "status=400" in errors[0] and errors[0].split(" body=")[0].endswith("/auth/api-key")
        v = trading_of(sb)
        assert v.requests[("POST", "/auth/api-key")] == 3 and v.auth_failures == 0
