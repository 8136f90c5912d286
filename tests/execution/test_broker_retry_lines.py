"""The INFO line of a retried venue call says its step once.

BUG (fixed): `derive: derive: HTTP 503: Service Unavailable; retry 1 in 0.01s` (and the same for
every retried call: `open_orders: open_orders: ...`, `post_orders: post_orders: ...`): the
BrokerError's text starts with its op already, and the retry line put the op before it again. Over
the loopback sandbox and its fault knobs (`sb.faults`), with the broker as the live start uses it."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.venue.broker import Broker, BrokerError, said_for

pytestmark = pytest.mark.integration

FAST = dict(backoff_base=0.01, backoff_cap=0.02)


def retry_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "pmm_widgets.venue.broker" and r.levelno == logging.INFO and "; retry " in r.getMessage()]


async def test_each_retried_call_says_its_step_once(sb, wallet_key, caplog):
    caplog.set_level(logging.INFO, logger="pmm_widgets.venue.broker")
    b = Broker(sb.clob_url, 137, wallet_key, fast=False, **FAST)
    try:
        await b.derive_creds()  # the wallet's key, created (the derive's 400 first: no retry)
        caplog.clear()
        b.creds = None
        sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="GET", http_error_count=1)
        await b.derive_creds()  # the derive answered 503 once, then the key
        sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="GET", http_error_count=1)
        await b.open_orders()
        sb.faults.update(http_error_rate=1.0, http_error_status=502, http_error_methods="DELETE", http_error_count=1)
        await b.cancel_all()
    finally:
        await b.aclose()
    lines = retry_lines(caplog)
    assert [ln.split("; retry 1 in ")[0] for ln in lines] == [
        "derive: HTTP 503: Service Unavailable", "open_orders: HTTP 503: Service Unavailable",
        "cancel_all: HTTP 502: Bad Gateway"], lines


async def test_a_create_failing_inside_the_derive_step_says_both(sb, wallet_key, caplog):
    """No key yet: the derive's 400, then the create answered 503: the step (`derive`) and what failed in it."""
    caplog.set_level(logging.INFO, logger="pmm_widgets.venue.broker")
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="POST", http_error_count=1)
    b = Broker(sb.clob_url, 137, wallet_key, fast=False, **FAST)
    try:
        await b.derive_creds()
    finally:
        await b.aclose()
    assert [ln.split("; retry 1 in ")[0] for ln in retry_lines(caplog)] == [
        "derive: create: HTTP 503: Service Unavailable"]


ops = st.sampled_from(["derive", "create", "open_orders", "cancel", "post_orders", "heartbeat"])


@given(op=ops, exc_op=ops, status=st.one_of(st.none(), st.integers(400, 599)), text=st.text(max_size=20))
def test_the_step_is_said_exactly_once_at_the_start(op, exc_op, status, text):
    exc = BrokerError(exc_op, text, status)
    line = said_for(op, exc)
    assert line.startswith(f"{op}: ") and line.endswith(str(exc))
    assert not line.startswith(f"{op}: {op}: ") or str(exc).startswith(f"{op}: {op}: ")  # never doubled by us
    assert line == (str(exc) if op == exc_op else f"{op}: {exc}")
