"""Pipelined requote over the sandbox, with injected latency and failures (fault knobs): one
DELETE /orders beside the POST /orders batches, all in flight together; no order placed twice;
lost answers never leave an order at the venue we forgot; a failed cancel pulls the replacements;
every request's round trip is recorded; the SDK path (`PMM_FAST_ORDERS=false`) still works."""

from __future__ import annotations

import pytest
from live_helpers import active_markets, make_settings, touch_bids, wait_for

from pmm_widgets.domain import OrderStatus
from pmm_widgets.execution.live import LiveExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.broker import BrokerError

pytestmark = pytest.mark.integration


@pytest.fixture
async def sb():
    """30 markets (enough two-sided books for more than one POST batch), speed 5."""
    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig

    async with Sandbox(SandboxConfig(markets=30, seed=5, speed=5.0)) as s:
        yield s


async def _started(sb, key, closers, **kw) -> LiveExchange:
    ex = LiveExchange(make_settings(sb, key, **kw), MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()
    return ex


def _orders_of(venue, api_key: str) -> list[str]:
    return [oid for oid, m in venue._meta.items() if m.api_key == api_key]


async def test_requote_sends_cancel_beside_post_batches(sb, venue, wallet_key, closers):
    ex = await _started(sb, wallet_key, closers)
    assert ex.broker.fast
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 20)
    ex.set_markets(markets)
    first = [o for o in await ex.place(touch_bids(sb, markets)) if o.status is not OrderStatus.REJECTED]
    assert len(first) > 15  # two POST batches at least
    sb.faults.update(latency_ms=30)
    entry = ex.broker.order_entry
    entry.peak_inflight = 0
    before = venue.requests.copy()
    quotes = touch_bids(sb, markets)
    cancelled, placed = await ex.requote([o.client_id for o in first], quotes)
    sb.faults.update(latency_ms=0)
    posts = venue.requests[("POST", "/orders")] - before[("POST", "/orders")]
    deletes = venue.requests[("DELETE", "/orders")] - before[("DELETE", "/orders")]
    assert (posts, deletes) == (-(-len(quotes) // 15), 1)
    assert entry.peak_inflight >= 1 + posts  # the cancel and every batch were in flight together
    live = [o for o in placed if o.status is OrderStatus.LIVE]
    assert cancelled and not {o.client_id for o in first} & {o.client_id for o in ex.open_orders()}
    assert not {o.venue_order_id for o in first} & {so.order_id for so in sb.sim.open_orders(key)}
    assert live and {o.venue_order_id for o in live} <= set(_orders_of(venue, key))
    # each order reached the venue exactly once
    assert len(_orders_of(venue, key)) == len(first) + len(quotes)
    kinds = {r.kind for r in entry.rtts}
    assert kinds == {"post", "cancel", "open_orders"}  # (the start's reconcile read the open orders)
    slow = [r for r in entry.rtts if r.status == 200 and r.rtt >= 0.03]
    assert len(slow) >= posts + deletes  # the injected 30 ms shows in the recorded round trips
    assert ex.broker.order_entry.rtt_summary()["post"]["n"] >= posts
    await ex.close()
    assert not sb.sim.open_orders(key)


async def test_signing_overlaps_the_requests_and_respects_the_inflight_budget(sb, venue, wallet_key, closers,
                                                                              monkeypatch):
    """Batches are signed on the loop one at a time and each is posted as soon as it is signed:
    the first POST (and the DELETE) are on the wire before the last batch is signed; with an
    in-flight budget of 2 no more than 2 requests are ever out, and every order still lands once."""
    from pmm_widgets.venue.broker import Broker
    from pmm_widgets.venue.order_entry import OrderEntry

    ex = await _started(sb, wallet_key, closers, max_inflight_requests=2)
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 25)
    ex.set_markets(markets)
    sent = [o for o in await ex.place(touch_bids(sb, markets)) if o.venue_order_id]
    first = [o for o in sent if o.status is OrderStatus.LIVE]
    quotes = touch_bids(sb, markets)
    assert len(quotes) > 2 * 15  # three batches at least
    trace: list[str] = []
    sign, request = Broker._sign_chunk, OrderEntry._request

    def traced_sign(self, chunk):
        out = sign(self, chunk)
        trace.append("sign")
        return out

    async def traced_request(self, kind, *a, **kw):
        trace.append(kind)
        return await request(self, kind, *a, **kw)

    monkeypatch.setattr(Broker, "_sign_chunk", traced_sign)
    monkeypatch.setattr(OrderEntry, "_request", traced_request)
    entry = ex.broker.order_entry
    entry.peak_inflight = 0
    sb.faults.update(latency_ms=30)
    _, placed = await ex.requote([o.client_id for o in first], quotes)
    sb.faults.update(latency_ms=0)
    last_sign = max(i for i, k in enumerate(trace) if k == "sign")
    assert trace.index("post") < last_sign and trace.index("cancel") < last_sign, trace
    assert trace.count("sign") == -(-len(quotes) // 15) and trace.count("post") == trace.count("sign")
    assert entry.peak_inflight == 2  # the budget holds (and was used)
    assert all(o.status is OrderStatus.LIVE for o in placed)
    assert len(_orders_of(venue, key)) == len(sent) + len(quotes)  # each order reached the venue once
    await ex.close()
    assert not sb.sim.open_orders(key)


async def test_lost_post_answer_leaves_no_orphan_and_no_duplicate(sb, venue, wallet_key, closers):
    """The venue takes the orders but the answer comes after the client gave up (latency >
    timeout): the orders are tracked by the ids we signed, cancelled, and reconciled."""
    ex = await _started(sb, wallet_key, closers, http_timeout_sec=0.15)
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 4)
    ex.set_markets(markets)
    quotes = touch_bids(sb, markets)
    sb.faults.update(latency_ms=400)
    orders = await ex.place(quotes)
    # the answer was lost: every order is tracked as open (its id is known), none REJECTED
    assert all(o.status is OrderStatus.LIVE and o.reason.startswith("uncertain") for o in orders)
    assert all(o.venue_order_id and o.venue_order_id.startswith("0x") for o in orders)
    sb.faults.update(latency_ms=0)
    # the venue did take them (late), and our cancel reached it after them
    assert await wait_for(lambda: len(_orders_of(venue, key)) == len(quotes), 2.0)
    assert await wait_for(lambda: not sb.sim.open_orders(key), 2.0)
    await ex.reconcile()
    assert not ex.open_orders()
    assert not sb.sim.open_orders(key)
    assert len(_orders_of(venue, key)) == len(quotes)  # never placed twice
    await ex.close()


async def test_a_post_that_lands_after_the_cancel_of_its_lost_answer_is_cancelled_when_the_tape_shows_it(
        sb, venue, wallet_key, closers):
    """The POST's answer is lost (latency > timeout) and the venue acts on it late, after the
    DELETE sent just behind it found nothing ("not found": the order was closed here as gone).
    The venue then places it: it rested with nobody managing it until a reconnect's reconcile
    (hours). The tape's PLACEMENT of an order of ours that is closed here now cancels it at once."""
    # (a timeout that a loaded host's DELETE still answers within; the POST's latency far above it)
    ex = await _started(sb, wallet_key, closers, http_timeout_sec=0.5, venue_retries=0)
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 3)
    ex.set_markets(markets)
    quotes = touch_bids(sb, markets)
    sb.faults.update(latency_ms=1500, latency_methods="POST")  # the DELETE overtakes the POST
    try:
        orders = await ex.place(quotes)
        # the answer lost, the orders were cancelled at once by the ids we signed: the venue had
        # none of them yet, so they were closed here as gone
        assert [(o.status, o.reason) for o in orders] == [(OrderStatus.CANCELED, "order not found")] * len(quotes)
        assert not ex.open_orders()
        assert await wait_for(lambda: len(_orders_of(venue, key)) == len(quotes), 3.0)  # ... then they landed
    finally:
        sb.faults.update(latency_ms=0, latency_methods="")
    assert await wait_for(lambda: not sb.sim.open_orders(key), 3.0), [so.order_id for so in sb.sim.open_orders(key)]
    final = [sb.sim.get_order(vid) for vid in _orders_of(venue, key)]
    cancelled = [so for so in final if so is not None and so.status == "CANCELED"]
    assert len(cancelled) + sum(1 for so in final if so is not None and so.status == "MATCHED") == len(quotes)
    assert ex.orphans_cancelled == len(cancelled) >= 1  # each by the tape's placement (a fill took the others)
    assert len(_orders_of(venue, key)) == len(quotes)  # never placed twice
    await ex.close()


async def _resting_then_failing_deletes(sb, wallet_key, closers, n_failing: int, **settings):
    """A started exchange with bids resting on 3 markets, and the next `n_failing` DELETEs answered 500."""
    ex = await _started(sb, wallet_key, closers, venue_backoff_sec=0.05, **settings)
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 3)
    ex.set_markets(markets)
    first = [o for o in await ex.place(touch_bids(sb, markets)) if o.status is OrderStatus.LIVE]
    assert first
    sb.faults.update(http_error_rate=1.0, http_error_status=500, http_error_methods="DELETE",
                     http_error_count=n_failing)
    return ex, key, markets, first


async def test_failed_cancel_pulls_the_replacements(sb, venue, wallet_key, closers):
    # one retry (issue 17): the requote's cancel fails for good after 2 attempts
    ex, key, markets, first = await _resting_then_failing_deletes(sb, wallet_key, closers, 2, venue_retries=1)
    with pytest.raises(BrokerError):
        await ex.requote([o.client_id for o in first], touch_bids(sb, markets))
    # the replacements were posted then pulled again: only the old orders rest
    assert sb.faults.http_error_count == 0  # exactly the requote's cancel (and its one retry) failed
    sb.faults.update(http_error_rate=0.0, http_error_methods="", http_error_count=-1)
    still = {so.order_id for so in sb.sim.open_orders(key)}
    assert still <= {o.venue_order_id for o in first}
    assert {o.venue_order_id for o in ex.open_orders()} >= still
    assert await ex.cancel_all() >= 0
    assert not sb.sim.open_orders(key)
    await ex.close()


async def test_one_failed_cancel_is_retried(sb, venue, wallet_key, closers):
    """Issue 17 M1: a transient 500 on the requote's DELETE costs a retry, not the cycle."""
    ex, key, markets, first = await _resting_then_failing_deletes(sb, wallet_key, closers, 1)
    cancelled, placed = await ex.requote([o.client_id for o in first], touch_bids(sb, markets))
    sb.faults.update(http_error_rate=0.0, http_error_methods="", http_error_count=-1)
    assert ex.broker.retried >= 1 and ex.venue_failures() == 0
    assert placed and all(o.status is OrderStatus.CANCELED for o in first)
    assert {so.order_id for so in sb.sim.open_orders(key)}.isdisjoint({o.venue_order_id for o in first})
    await ex.close()
    assert not sb.sim.open_orders(key)


async def test_sdk_path_still_places_and_cancels(sb, venue, wallet_key, closers):
    ex = await _started(sb, wallet_key, closers, fast_orders=False)
    assert not ex.broker.fast
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 2)
    ex.set_markets(markets)
    first = await ex.place(touch_bids(sb, markets))
    assert first and all(o.status is OrderStatus.LIVE for o in first), [o.reason for o in first]
    cancelled, placed = await ex.requote([o.client_id for o in first], touch_bids(sb, markets))
    # (the user stream may report the cancels before the DELETE answer: `cancelled` can be short)
    assert placed and all(o.status is not OrderStatus.REJECTED for o in placed)
    assert all(o.status is OrderStatus.CANCELED for o in first) and set(cancelled) <= {o.client_id for o in first}
    assert len(_orders_of(venue, key)) == len(first) + len(placed)
    await ex.close()
    assert not sb.sim.open_orders(key)


@pytest.mark.parametrize("sig_type", [1, 2])
async def test_sandbox_verifies_project_signatures_of_proxy_and_safe_wallets(sb, venue, wallet_key, closers, sig_type):
    """Types 1/2: maker = the funder (proxy / safe), signer = the EOA; the sandbox recomputes the
    EIP-712 signature from the wire values and accepts the orders (type 0 is every other test)."""
    from eth_account import Account

    funder = Account.create().address
    ex = await _started(sb, wallet_key, closers, signature_type=sig_type, funder=funder)
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 3)  # neg-risk and standard markets alike
    ex.set_markets(markets)
    orders = await ex.place(touch_bids(sb, markets))
    assert orders and all(o.status is OrderStatus.LIVE for o in orders), [o.reason for o in orders]
    assert {venue._meta[o.venue_order_id].maker_address.lower() for o in orders} == {funder.lower()}
    await ex.close()
    assert not sb.sim.open_orders(key)
