"""The engine's credential step (`Broker.derive_creds`: the live start without PMM_API_KEY and
`pmm auth derive`) over the loopback sandbox, which answers as the venue does: a create of an
existing key is HTTP 400 `Could not create api key`, a derive of a key never created HTTP 400
`Could not derive api key!` (tests/sandbox/test_auth_create_existing.py, test_auth_derive.py).

BUG (fixed): the step was the SDK's `create_or_derive_api_key` (create first, then derive). At the
venue every live restart (the key exists) got the create's 400, which the SDK logs as
`ERROR [py_clob_client_v2] request error status=400 url=.../auth/api-key ...` before the derive
succeeded: an operator read an ERROR on every normal start. A refused L1 signature was sent twice
(two ERROR lines, two auth failures at the venue), and a create that failed with a 5xx was hidden
behind the derive's 400 (`derive: HTTP 400: Could not derive api key!`: "no key", not "the venue
is down"). Now it derives first and creates only after the derive's 400, which it logs at INFO."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from live_helpers import make_settings
from py_clob_client_v2 import ClobClient

from pmm_widgets.execution.live import LiveError, LiveExchange
from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import trading_of
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.auth import derive_main
from pmm_widgets.venue.broker import Broker, BrokerError, creds_failure

pytestmark = pytest.mark.integration

CREATE = ("POST", "/auth/api-key")
DERIVE = ("GET", "/auth/derive-api-key")


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


async def _live_start(sb: Sandbox, key: str, closers: list) -> str:
    """A live engine's start (its API key), then its clean stop."""
    ex = LiveExchange(make_settings(sb, key), MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()  # reconciles: an L2 read with the credentials it got
    api_key = ex.broker.creds.api_key.get_secret_value()
    await ex.close()
    return api_key


async def _auth_derive(sb: Sandbox, key: str, closers: list) -> str:
    """`pmm auth derive --show-secrets` (its PMM_API_KEY line)."""
    out = io.StringIO()
    assert await asyncio.to_thread(derive_main, make_settings(sb, key), True, out) == 0
    return next(ln for ln in out.getvalue().splitlines() if ln.startswith("PMM_API_KEY=")).split("=", 1)[1]


START = {"live start": _live_start, "pmm auth derive": _auth_derive}


@pytest.mark.parametrize("how", list(START))
async def test_a_start_on_an_existing_key_derives_it_with_no_error_line(sb, venue, wallet_key, closers, caplog, how):
    """The key exists (an earlier session created it): no create is sent, nothing is logged as an
    ERROR, and the derived key works (the live start's reconcile reads at L2)."""
    caplog.set_level(logging.DEBUG)
    address = Account.from_key(wallet_key).address
    await asyncio.to_thread(lambda: ClobClient(sb.clob_url, 137, key=wallet_key).create_api_key())
    assert venue.requests[CREATE] == 1
    caplog.clear()
    for _ in range(2):  # and a restart after it
        assert await START[how](sb, wallet_key, closers) == derive_creds(address, 0).api_key
    assert errors(caplog) == []
    assert venue.requests[CREATE] == 1 and venue.requests[DERIVE] == 2 and venue.auth_failures == 0


@pytest.mark.parametrize("how", list(START))
async def test_a_first_start_on_a_fresh_key_creates_it_with_no_error_line(sb, venue, wallet_key, closers, caplog,
                                                                           how):
    """No key yet: the derive's 400 is expected, said at INFO, and the key is created; the next
    start derives it. The SDK's ERROR line for that 400 is dropped on the asking thread only."""
    caplog.set_level(logging.DEBUG)
    address = Account.from_key(wallet_key).address
    want = derive_creds(address, 0).api_key
    assert await START[how](sb, wallet_key, closers) == want
    assert venue.requests[DERIVE] == 1 and venue.requests[CREATE] == 1
    said = [r for r in caplog.records if r.name == "pmm_widgets.venue.broker" and "creating one" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert address in said[0].getMessage() and "HTTP 400: Could not derive api key!" in said[0].getMessage()
    assert await START[how](sb, wallet_key, closers) == want  # the restart: derived, no create
    assert venue.requests[DERIVE] == 2 and venue.requests[CREATE] == 1
    assert errors(caplog) == [] and venue.auth_failures == 0
    assert want not in caplog.text and derive_creds(address, 0).secret not in caplog.text


async def test_a_refused_derive_outside_the_brokers_step_is_still_an_error(sb, wallet_key, caplog):
    """Only the broker's own expected 400 is dropped: a derive the SDK is asked for elsewhere (another
    thread, after the step) is still its ERROR line."""
    caplog.set_level(logging.INFO)
    b = Broker(sb.clob_url, 137, wallet_key, fast=False)
    try:
        await b.derive_creds()
        other = "0x" + Account.create().key.hex().removeprefix("0x")
        with pytest.raises(Exception, match="400"):
            await asyncio.to_thread(lambda: ClobClient(sb.clob_url, 137, key=other).derive_api_key())
    finally:
        await b.aclose()
    errs = errors(caplog)
    assert len(errs) == 1 and "status=400" in errs[0] and "/auth/derive-api-key" in errs[0]


@pytest.fixture
async def refusing_sb() -> AsyncIterator[Sandbox]:
    """A venue that refuses every L1 signature (window < 0: every timestamp is stale)."""
    async with Sandbox(SandboxConfig(markets=4, seed=3, auth_skew_sec=-1.0)) as s:
        yield s


async def test_an_l1_refused_live_start_fails_in_one_line_after_one_request(refusing_sb, wallet_key, closers,
                                                                            caplog):
    caplog.set_level(logging.DEBUG)
    v = trading_of(refusing_sb)
    ex = LiveExchange(make_settings(refusing_sb, wallet_key), MemorySink(), refusing_sb.clob_url,
                      refusing_sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    with pytest.raises(LiveError) as ei:
        await ex.start()
    assert str(ei.value) == (f"cannot derive API credentials at {refusing_sb.clob_url}: "
                             + creds_failure(BrokerError("derive", "Invalid L1 Request headers", 401)))
    # the refused wallet signed once: no create sent after the refusal, no retry (not transient), and
    # no ERROR line: the failure is the start's own one line; the SDK's line is said at DEBUG
    assert v.requests[CREATE] == 0 and v.requests[DERIVE] == 1 and v.auth_failures == 1
    assert errors(caplog) == []
    sdk = [r.getMessage() for r in caplog.records if "the SDK said" in r.getMessage()]
    assert len(sdk) == 1 and "status=401" in sdk[0] and "/auth/derive-api-key" in sdk[0]


async def test_an_l1_refused_auth_derive_fails_in_one_line(refusing_sb, wallet_key, capsys):
    out = io.StringIO()
    assert await asyncio.to_thread(derive_main, make_settings(refusing_sb, wallet_key), True, out) == 1
    assert out.getvalue() == ""
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"auth derive failed at {refusing_sb.clob_url}: "
                   + creds_failure(BrokerError("derive", "Invalid L1 Request headers", 401))]


async def test_a_create_the_venue_fails_is_said_as_the_creates_failure(sb, venue, wallet_key, closers):
    """No key yet and the create answered 503: the error is the create's (transient), not the
    derive's 400, which said only that no key existed yet."""
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="POST")
    b = Broker(sb.clob_url, 137, wallet_key, fast=False, retries=0)
    try:
        with pytest.raises(BrokerError) as ei:
            await b.derive_creds()
    finally:
        await b.aclose()
    assert str(ei.value) == "create: HTTP 503: Service Unavailable" and ei.value.transient
    ex = LiveExchange(make_settings(sb, wallet_key, venue_retries=0), MemorySink(), sb.clob_url, sb.ws_url,
                      heartbeat_sec=0)
    closers.append(ex)
    with pytest.raises(LiveError) as li:
        await ex.start()
    assert str(li.value) == f"cannot derive API credentials at {sb.clob_url}: create: HTTP 503: Service Unavailable"
    sb.faults.update(http_error_rate=0.0)
    assert await _live_start(sb, wallet_key, closers) == derive_creds(Account.from_key(wallet_key).address, 0).api_key
