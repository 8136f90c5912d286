"""Issue 17 M1 at the broker / live-exchange level, over the loopback sandbox and its fault knobs:
transient errors are retried, a post whose answer was lost is never duplicated, a post whose
outcome stays unknown is tracked by its hash until a reconcile settles it."""

from __future__ import annotations

import asyncio

import pytest
from py_clob_client_v2.http_helpers import helpers

from pmm_widgets.domain import OrderStatus
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.broker import BrokerError

from live_helpers import active_markets, start_quoting, touch_bids

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
    sb.paused = True  # the book stands still: a re-post must not cross a market that moved meanwhile
    sb.faults.update(latency_ms=900)  # read at arrival: the POST lands ~0.9 s later, after our 0.4 s timeout
    task = asyncio.create_task(ex.place(quotes))
    # clear the latency after the POST has surely arrived (signing and connecting can take a while
    # on a loaded machine) but before the retry (>= the 0.4 s timeout): the retry is answered at once
    await asyncio.sleep(0.3)
    sb.faults.update(latency_ms=0)
    orders = await task
    assert ex.broker.retried >= 1
    assert all(o.status is OrderStatus.LIVE and o.venue_order_id for o in orders), [o.reason for o in orders]
    await asyncio.sleep(1.0)  # let any late POST land
    ever = [o for o in sb.sim._all_account.values() if o.owner == api_key]  # resting, filled or cancelled
    assert len(ever) == len(quotes)  # never a duplicate
    assert {o.order_id for o in ever} == {o.venue_order_id for o in orders}


async def test_cancels_ride_out_503s_and_a_persisting_error_fails_cleanly(sb, wallet_key, closers):
    ex, api_key, _ = await start_quoting(sb, wallet_key, closers, 2, venue_backoff_sec=0.1,
                                         venue_backoff_cap_sec=0.3, venue_retries=6)
    assert sb.sim.open_orders(api_key)
    sb.faults.update(http_error_rate=1.0, http_error_status=503)
    loop = asyncio.get_running_loop()
    loop.call_later(0.4, lambda: sb.faults.update(http_error_rate=0.0))
    n = await ex.cancel_all()
    assert n > 0 and sb.sim.open_orders(api_key) == [] and ex.broker.retried >= 1
    assert ex.venue_failures() == 0
    sb.faults.update(http_error_rate=1.0, http_error_status=429)  # persisting: fails after the retries
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
