"""Issue 17 M1 at the broker / live-exchange level, over the loopback sandbox and its fault knobs:
transient errors are retried, a post whose answer was lost is never duplicated, a post whose
outcome stays unknown is tracked by its hash until a reconcile settles it."""

from __future__ import annotations

import asyncio

import pytest
from live_helpers import active_markets, start_quoting, touch_bids
from py_clob_client_v2.http_helpers import helpers

from pmm_widgets.domain import OrderStatus
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.broker import BrokerError

pytestmark = pytest.mark.integration


@pytest.fixture
def sdk_timeout():
    """Broker(timeout=...) sets the SDK's module-global client timeout: restore it afterwards."""
    before = helpers._http_client.timeout
    yield
    helpers._http_client.timeout = before


async def test_a_lost_post_answer_is_retried_without_a_duplicate(sb, venue, wallet_key, closers, sdk_timeout):
    """The venue takes the orders but the answer comes after our timeout: the retry finds the
    hashes at the venue (or the venue refuses them as duplicates), so each quote rests once."""
    ex, api_key, markets = await start_quoting(sb, wallet_key, closers, 0, http_timeout_sec=0.4,
                                               venue_backoff_sec=0.05, venue_backoff_cap_sec=0.2)
    markets = active_markets(sb, 3)
    ex.set_markets(markets)
    quotes = touch_bids(sb, markets)
    # every answer comes after our 0.4 s timeout, but every request is still executed (0.9 s later):
    # each POST, each re-post and each check times out, so the venue sees the same orders several times
    sb.faults.update(latency_ms=900)
    try:
        orders = await ex.place(quotes)
    finally:
        sb.faults.update(latency_ms=0)
    assert ex.broker.retried >= 1
    assert all(o.venue_order_id for o in orders), [o.reason for o in orders]  # tracked by hash
    await asyncio.sleep(2.0)  # let every late request land
    ever = [o for o in sb.sim._all_account.values() if o.owner == api_key]  # resting, filled or cancelled
    # never a duplicate: the re-posts were the same signed orders, so every order the venue ever took
    # is one of our hashes (a quote the moving book made cross may have been refused: fewer, never more)
    assert ever and len(ever) <= len(quotes)
    assert {o.order_id for o in ever} <= {o.venue_order_id for o in orders}
    await ex.reconcile()  # and nothing of ours rests that we do not track
    assert {o.order_id for o in sb.sim.open_orders(api_key)} <= {o.venue_order_id for o in ex.open_orders()}


async def test_cancels_ride_out_503s_and_a_persisting_error_fails_cleanly(sb, wallet_key, closers):
    ex, api_key, _ = await start_quoting(sb, wallet_key, closers, 2, venue_backoff_sec=0.1,
                                         venue_backoff_cap_sec=0.3, venue_retries=6)
    assert sb.sim.open_orders(api_key)
    # the next 3 requests fail (a count, not a time window: full-jitter retries may all fall
    # inside any window shorter than their cap, which made a 0.4 s window flaky)
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_count=3)
    n = await ex.cancel_all()
    assert n > 0 and sb.sim.open_orders(api_key) == [] and ex.broker.retried >= 3
    assert ex.venue_failures() == 0
    sb.faults.update(http_error_rate=1.0, http_error_status=429, http_error_count=-1)  # persisting: fails after the retries
    with pytest.raises(BrokerError) as ei:
        await ex.count_venue_open_orders()
    assert ei.value.status == 429 and ei.value.transient
    assert ex.venue_failures() == 1


async def test_an_unknown_post_is_tracked_by_hash_and_settled_by_reconcile(sb, wallet_key, closers):
    sink = MemorySink()
    ex, api_key, _ = await start_quoting(sb, wallet_key, closers, 0, sink=sink, venue_retries=1,
                                         venue_backoff_sec=0.05, venue_backoff_cap_sec=0.1)
    markets = active_markets(sb, 2)
    ex.set_markets(markets)
    quotes = touch_bids(sb, markets)
    # sign once first: the SDK fetches (and caches) each token's tick size over HTTP
    await ex.broker.post_orders([(q, m.tick_size, m.neg_risk) for q in quotes for m in markets
                                 if q.market == m.condition_id], dry_run=True)
    sb.faults.update(http_error_rate=1.0, http_error_status=503)
    orders = await ex.place(quotes)
    assert orders and all(o.venue_order_id for o in orders)  # its hash: known before it was sent
    assert all(o.reason.startswith("uncertain") for o in orders), [o.reason for o in orders]
    assert len(ex.open_orders()) == len(orders)  # tracked, not forgotten
    sb.faults.update(http_error_rate=0.0)
    await ex.reconcile()  # the venue never took them (503 before the handler): closed
    assert ex.open_orders() == [] and sb.sim.open_orders(api_key) == []
    assert all(o.status is OrderStatus.CANCELED for o in orders)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-entry", "sdk"])
async def test_a_post_whose_answer_is_cut_is_tracked_and_cancelled_never_called_refused(sb, wallet_key, closers, fast):
    """The venue takes the orders, then the answer is cut (not JSON): nothing in it says what
    happened to each order. They may rest, so each is uncertain under its hash, tracked and
    cancelled at once; none is left resting untracked. (They were marked REJECTED, "no
    response", and rested at the venue unmanaged until a reconnect's reconcile.)"""
    ex, api_key, _ = await start_quoting(sb, wallet_key, closers, 0, fast_orders=fast)
    markets = active_markets(sb, 2)
    ex.set_markets(markets)
    quotes = touch_bids(sb, markets)
    if not fast:  # the SDK fetches (and caches) each token's tick size over HTTP: not a POST, but first
        await ex.broker.post_orders([(q, m.tick_size, m.neg_risk) for q in quotes for m in markets
                                     if q.market == m.condition_id], dry_run=True)
    sb.faults.update(garbled_answer_rate=1.0, garbled_answer_methods="POST")
    try:
        orders = await ex.place(quotes)
    finally:
        sb.faults.update(garbled_answer_rate=0.0, garbled_answer_methods="")
    ever = {o.order_id for o in sb.sim._all_account.values() if o.owner == api_key}
    assert ever, "the venue took the orders (only their answer was cut)"
    assert all(o.venue_order_id for o in orders) and ever <= {o.venue_order_id for o in orders}
    assert all(o.status is not OrderStatus.REJECTED for o in orders), [o.reason for o in orders]
    assert sb.sim.open_orders(api_key) == []  # cancelled at once: uncertain orders are not left to rest
    assert ex.open_orders() == [] and all(o.status is OrderStatus.CANCELED for o in orders)
