"""The credential step's retries (`Broker.derive_creds`: the live start without PMM_API_KEY, `pmm
auth derive`, the app's Start) over the loopback sandbox and its fault knobs (`sb.faults`).

BUG (fixed): the step ran with no retry, unlike every other idempotent call of the broker, so one
transient answer (a 429, a 5xx, a timeout, an answer cut short) to the derive failed the whole live
start: `engine crashed: LiveError: cannot derive API credentials: derive: HTTP 503: ...`. Now a
transient failure repeats the whole step, derive first (PMM_VENUE_RETRIES, the backoff,
PMM_HTTP_DEADLINE_SEC). The create (a POST) is never re-sent blindly: a create whose answer was lost
may have made the key, and the next attempt's derive finds it; a create is only sent after a
derive said "no key". A refused signature (401) is never retried (test_broker_api_key_start.py)."""

from __future__ import annotations

import logging

import pytest
from eth_account import Account
from live_helpers import make_settings
from test_broker_api_key_start import CREATE, DERIVE, errors

from pmm_widgets.execution.live import LiveError, LiveExchange
from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.broker import Broker, BrokerError

pytestmark = pytest.mark.integration

FAST = dict(venue_backoff_sec=0.01, venue_backoff_cap_sec=0.02)  # the settings' backoff, scaled down


def key_of(wallet_key: str) -> str:
    return derive_creds(Account.from_key(wallet_key).address, 0).api_key


async def _live_start(sb, key: str, closers: list) -> str:
    """A live engine's start (its API key; the settings' retries, backoff scaled down), then its stop."""
    ex = LiveExchange(make_settings(sb, key, **FAST), MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()  # reconciles: an L2 read with the credentials it got
    assert ex.broker.creds is not None
    api_key = ex.broker.creds.api_key.get_secret_value()
    await ex.close()
    return api_key


async def _existing(sb, wallet_key: str) -> None:
    """An earlier session created the wallet's key."""
    b = Broker(sb.clob_url, 137, wallet_key, fast=False)
    try:
        await b.derive_creds()
    finally:
        await b.aclose()


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_a_transient_answer_to_the_derive_is_retried_and_the_start_goes_on(sb, venue, wallet_key, closers,
                                                                                  caplog, status):
    await _existing(sb, wallet_key)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    sb.faults.update(http_error_rate=1.0, http_error_status=status, http_error_methods="GET", http_error_count=1)
    ex = LiveExchange(make_settings(sb, wallet_key, **FAST), MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()  # the derive's second attempt answered: the start went on (its reconcile read at L2)
    assert ex.broker.creds is not None and ex.broker.creds.api_key.get_secret_value() == key_of(wallet_key)
    await ex.close()
    assert sb.faults.http_error_count == 0  # the fault answered the first derive
    assert venue.requests[DERIVE] == 2 and venue.requests[CREATE] == 1  # the earlier session's create only
    assert ex.broker.retried == 1 and errors(caplog) == []  # the SDK's line for the fault is DEBUG
    assert [r.levelno for r in caplog.records if "the SDK said" in r.getMessage()] == [logging.DEBUG]


async def test_a_derive_that_never_answers_well_fails_after_the_configured_retries(sb, venue, wallet_key, closers,
                                                                                     caplog):
    caplog.set_level(logging.INFO)
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="GET")
    ex = LiveExchange(make_settings(sb, wallet_key, venue_retries=2, **FAST), MemorySink(), sb.clob_url, sb.ws_url,
                      heartbeat_sec=0)
    closers.append(ex)
    with pytest.raises(LiveError) as ei:
        await ex.start()
    assert str(ei.value) == f"cannot derive API credentials at {sb.clob_url}: derive: HTTP 503: Service Unavailable"
    assert ex.broker.retried == 2 and ex.broker.failures == 1  # 1 + PMM_VENUE_RETRIES attempts
    assert venue.requests[CREATE] == 0 and errors(caplog) == []


async def test_a_create_the_venue_did_not_take_is_sent_again_after_a_derive(sb, venue, wallet_key, closers):
    """No key yet; the first create is answered 503 before the venue acts: the next attempt derives
    (still no key: 400) and creates it."""
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="POST", http_error_count=1)
    assert await _live_start(sb, wallet_key, closers) == key_of(wallet_key)
    assert sb.faults.http_error_count == 0
    assert venue.requests[DERIVE] == 2 and venue.requests[CREATE] == 1  # the 503'd create never reached the venue


async def test_a_create_whose_answer_was_lost_is_found_by_the_next_derive(sb, venue, wallet_key, closers, caplog):
    """No key yet; the venue creates it but its answer is cut short on the way (the client cannot
    read it). The next attempt's derive finds the key: no second create is sent."""
    caplog.set_level(logging.DEBUG)
    sb.faults.update(garbled_answer_rate=1.0, garbled_answer_methods="POST")
    assert await _live_start(sb, wallet_key, closers) == key_of(wallet_key)
    assert venue.requests[CREATE] == 1 and venue.requests[DERIVE] == 2
    assert errors(caplog) == []


async def test_the_broker_step_alone_retries_a_timeout_of_the_derive(sb, venue, wallet_key):
    """A derive held past the HTTP timeout (a transport failure: the SDK's "Request exception!") is
    retried like the broker's other idempotent reads."""
    await _existing(sb, wallet_key)
    sb.faults.update(latency_ms=600, latency_methods="GET")
    b = Broker(sb.clob_url, 137, wallet_key, fast=False, timeout=0.2, retries=1, backoff_base=0.01,
               backoff_cap=0.02)
    try:
        with pytest.raises(BrokerError) as ei:
            await b.derive_creds()
        assert str(ei.value) == "derive: Request exception!" and ei.value.transient
        assert b.retried == 1 and not b.has_creds  # two attempts, each timed out
        sb.faults.update(latency_ms=0)
        assert (await b.derive_creds()).api_key.get_secret_value() == key_of(wallet_key)
    finally:
        await b.aclose()
