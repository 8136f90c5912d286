"""The sandbox refuses an L1 or L2 request whose POLY_TIMESTAMP is stale or far ahead of the clock
(sandbox/trading.py `_fresh`), with the venue's 401 bodies. The venue's own tolerance is unconfirmed
(polymarket-api.md §4 gives none for L1, calls L2's UNCONFIRMED; the SDK does not say).

BUG (fixed): the L1 ClobAuth timestamp was only part of the signed message, never compared with
the clock: a signed L1 request captured once (a log, a proxy) gave the wallet's API secret forever,
and a client with a clock an hour off created keys here that the venue would refuse. L2 compared
`float(POLY_TIMESTAMP)`, so "1.7e9" or "1780000000.5", signed as such, passed; the SDK always sends
`str(int(seconds))`. The window (`auth_skew_sec`, 300 s) is a sandbox setting: `SandboxConfig.auth_skew_sec`,
`python -m pmm_widgets.sandbox --auth-skew-sec SEC`."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_clob_client_v2 import ClobClient
from py_clob_client_v2.clob_types import ApiCreds, RequestArgs
from py_clob_client_v2.headers.headers import create_level_1_headers, create_level_2_headers
from py_clob_client_v2.signer import Signer
from py_clob_client_v2.signing.eip712 import sign_clob_auth_message
from py_clob_client_v2.signing.hmac import build_hmac_signature
from test_mut_sandbox_trading import ADDR, KEY, _json, _venue
from test_mut_sandbox_trading2 import L1_REFUSED, L2_REFUSED, _request

from pmm_widgets.sandbox.auth_crypto import SandboxCreds, derive_creds
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig, parse_cli
from pmm_widgets.sandbox.trading import AUTH_SKEW_SEC, TradingVenue, trading_of

MARGIN = 5  # seconds kept away from the window's edge: the clock moves while a test signs
CREATE_REFUSED = {"error": "Could not create api key"}  # an accepted L1 create of an existing key


def _l1_at(ts: int | str, nonce: int = 0) -> dict[str, str]:
    """The SDK's L1 headers, signed (validly) over this timestamp text."""
    signer = Signer(KEY, 137)
    return {"POLY_ADDRESS": signer.address(), "POLY_SIGNATURE": sign_clob_auth_message(signer, ts, nonce),  # type: ignore[arg-type]
            "POLY_TIMESTAMP": str(ts), "POLY_NONCE": str(nonce)}


def _l2_at(c: SandboxCreds, ts: int | str, method: str = "GET", path: str = "/auth/api-keys") -> dict[str, str]:
    """The SDK's L2 headers with a valid HMAC over this timestamp text."""
    h = dict(create_level_2_headers(Signer(KEY, 137), ApiCreds(c.api_key, c.secret, c.passphrase),
                                    RequestArgs(method, path), int(time.time())))
    h["POLY_TIMESTAMP"] = str(ts)
    h["POLY_SIGNATURE"] = build_hmac_signature(c.secret, str(ts), method, path)
    return h


async def _l1_status(v: TradingVenue, headers: dict[str, str]) -> list[tuple[int, dict]]:
    out = []
    for handler, method, path in ((v.create_api_key, "POST", "/auth/api-key"),
                                  (v.derive_api_key, "GET", "/auth/derive-api-key")):
        resp = await handler(_request(method, path, headers))
        out.append((resp.status, _json(resp)))
    return out


async def _l2_status(v: TradingVenue, headers: dict[str, str]) -> tuple[int, dict]:
    resp = await v.api_keys(_request("GET", "/auth/api-keys", headers))
    return resp.status, _json(resp)


@pytest.mark.parametrize("offset", [-AUTH_SKEW_SEC - MARGIN, AUTH_SKEW_SEC + MARGIN, -86_400, 86_400 * 365])
async def test_a_signed_l1_request_out_of_the_window_is_refused_and_gives_no_key(offset: float) -> None:
    _, v, _, _ = _venue()
    before = dict(v.keys)
    got = await _l1_status(v, _l1_at(int(time.time() + offset)))
    assert got == [(401, L1_REFUSED), (401, L1_REFUSED)]
    assert v.auth_failures == 2 and v.keys == before


async def test_a_signed_l1_request_within_the_window_is_accepted() -> None:
    _, v, c, _ = _venue()  # the nonce-0 key exists (created): derive answers it, a create is the venue's 400
    for offset in (-AUTH_SKEW_SEC + MARGIN, 0, AUTH_SKEW_SEC - MARGIN):
        got = await _l1_status(v, _l1_at(int(time.time() + offset)))
        assert got[0] == (400, CREATE_REFUSED), offset  # signature accepted: the key exists already
        assert got[1][0] == 200 and got[1][1]["apiKey"] == c.api_key, offset
    assert v.auth_failures == 0


@pytest.mark.parametrize("ts", ["1.78e9", "soon", "", " ", "-5", "+{now}", "{now}.0", "{now}.9", "{now}_0",
                                "\u0661\u0667\u0668", "1" * 5000])
async def test_a_timestamp_that_is_not_epoch_seconds_is_refused_even_when_signed(ts: str) -> None:
    """What the SDK never sends, validly signed over that very text: L1 and L2 both refuse it."""
    ts = ts.format(now=int(time.time()))
    _, v, c, _ = _venue()
    assert await _l1_status(v, _l1_at(ts)) == [(401, L1_REFUSED), (401, L1_REFUSED)]
    assert await _l2_status(v, _l2_at(c, ts)) == (401, L2_REFUSED)
    assert v.auth_failures == 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(-3 * 86_400, 3 * 86_400).filter(lambda o: abs(abs(o) - AUTH_SKEW_SEC) > MARGIN))
async def test_l1_and_l2_accept_exactly_the_timestamps_within_the_window(offset: int) -> None:
    _, v, c, _ = _venue()
    v.auth_skew_sec = 120.0 if offset % 2 else AUTH_SKEW_SEC  # the setting is what counts, not the constant
    if abs(abs(offset) - v.auth_skew_sec) <= MARGIN:
        return
    ok = abs(offset) < v.auth_skew_sec
    ts = int(time.time()) + offset
    l1 = await _l1_status(v, _l1_at(ts))
    assert [s for s, _ in l1] == ([400, 200] if ok else [401, 401])  # 400: the key exists (created by _venue)
    assert (await _l2_status(v, _l2_at(c, ts)))[0] == (200 if ok else 401)


async def test_l2_out_of_a_narrower_window_is_refused() -> None:
    _, v, c, _ = _venue()
    v.auth_skew_sec = 30.0
    assert await _l2_status(v, _l2_at(c, int(time.time()) - 60)) == (401, L2_REFUSED)
    assert await _l2_status(v, _l2_at(c, int(time.time()) + 60)) == (401, L2_REFUSED)
    assert (await _l2_status(v, _l2_at(c, int(time.time()) - 20)))[0] == 200


def test_the_window_is_a_sandbox_setting() -> None:
    assert SandboxConfig().auth_skew_sec == AUTH_SKEW_SEC == 300.0
    assert parse_cli(["--auth-skew-sec", "30"])[0].auth_skew_sec == 30.0
    assert parse_cli([])[0].auth_skew_sec == AUTH_SKEW_SEC


async def test_over_loopback_the_sdk_is_served_and_a_replayed_l1_header_is_refused() -> None:
    """The SDK signs with its own clock and gets its key; the same wallet's valid signature from
    an hour ago, or a window of 30 s set on the sandbox and a signature 60 s old, is the venue's 401."""
    async with Sandbox(SandboxConfig(markets=4, seed=3, auth_skew_sec=30.0)) as sb:
        v = trading_of(sb)
        assert v.auth_skew_sec == 30.0
        async with httpx.AsyncClient(base_url=sb.clob_url) as http:
            for age in (3600, 60):
                h = dict(create_level_1_headers(Signer(KEY, 137), 0, int(time.time()) - age))
                r = await http.post("/auth/api-key", headers=h)
                assert (r.status_code, r.json()) == (401, L1_REFUSED), age
            assert v.keys == {} and v.auth_failures == 2
            h = dict(create_level_1_headers(Signer(KEY, 137), 0))  # now: the SDK's own headers
            r = await http.post("/auth/api-key", headers=h)
            assert r.status_code == 200 and r.json()["apiKey"] == derive_creds(ADDR, 0).api_key
            c = derive_creds(ADDR, 0)
            r = await http.get("/auth/api-keys", headers=_l2_at(c, int(time.time()) - 60))
            assert (r.status_code, r.json()) == (401, L2_REFUSED)
            r = await http.get("/auth/api-keys", headers=_l2_at(c, int(time.time())))
            assert (r.status_code, r.json()) == (200, {"apiKeys": [c.api_key]})


async def test_the_sdk_client_end_to_end_with_its_own_clock() -> None:
    import asyncio

    async with Sandbox(SandboxConfig(markets=4, seed=3)) as sb:
        def work() -> list:
            cl = ClobClient(sb.clob_url, 137, key=KEY)
            cl.set_api_creds(cl.create_or_derive_api_key())
            return list(cl.get_open_orders())

        assert await asyncio.to_thread(work) == []
        assert trading_of(sb).auth_failures == 0


async def test_a_client_signing_with_the_venues_time_is_served_too() -> None:
    """The SDK's `use_server_time=True` signs with `GET /time`, the simulated clock (here a week
    behind the wall clock); it gets its key and trades, as a wall-clock client does, and a
    timestamp far from both clocks is still refused."""
    import asyncio

    start = time.time() - 7 * 86_400
    async with Sandbox(SandboxConfig(markets=4, seed=3, start_ts=start)) as sb:
        v = trading_of(sb)

        def work(server_time: bool) -> list:
            cl = ClobClient(sb.clob_url, 137, key=KEY, use_server_time=server_time)
            assert abs(int(cl.get_server_time()) - start) < 60
            cl.set_api_creds(cl.create_or_derive_api_key())
            return list(cl.get_open_orders())

        assert await asyncio.to_thread(work, True) == [] and await asyncio.to_thread(work, False) == []
        assert v.auth_failures == 0
        assert await _l1_status(v, _l1_at(int(time.time()) - 3 * 86_400)) == [(401, L1_REFUSED)] * 2
        assert await _l2_status(v, _l2_at(derive_creds(ADDR, 0), int(start) - 86_400)) == (401, L2_REFUSED)
