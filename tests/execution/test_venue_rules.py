"""The sandbox's trading half refuses what the real CLOB refuses, with the real error shapes,
when driven by the official SDK; and the broker maps those answers without raising."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from live_helpers import active_markets
from py_clob_client_v2 import (
    ApiCreds,
    ClobClient,
    CreateOrderOptions,
    OrderArgs,
    OrderType,
    PartialCreateOrderOptions,
    PostOrdersV2Args,
)
from py_clob_client_v2.exceptions import PolyApiException

from pmm_widgets.domain import Quote, Side
from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.venue.broker import Broker, BrokerError, Creds, tick_str

pytestmark = pytest.mark.integration


def l2_client(sb, key: str) -> ClobClient:
    c = ClobClient(sb.clob_url, 137, key=key)
    c.set_api_creds(c.create_or_derive_api_key())
    return c


def api_error(fn) -> tuple[int, dict]:
    with pytest.raises(PolyApiException) as ei:
        fn()
    return ei.value.status_code, ei.value.error_msg


def buy_args(m, price: Decimal, size: Decimal) -> OrderArgs:
    return OrderArgs(token_id=m.yes_token_id, price=float(price), size=float(size), side="BUY")


def opts(m) -> PartialCreateOrderOptions:
    return PartialCreateOrderOptions(tick_size=tick_str(m.tick_size), neg_risk=m.neg_risk)


def safe_bid(sb, m) -> Decimal:
    bb, _ = sb.sim.best(m.yes_token_id)
    return max(bb - 2 * m.tick_size, m.tick_size)


async def test_l1_and_l2_auth_are_checked(sb, venue, wallet_key):
    def work():
        good = l2_client(sb, wallet_key)
        creds = good.creds
        assert creds.api_key == derive_creds(good.get_address(), 0).api_key  # deterministic per wallet
        bad = ClobClient(sb.clob_url, 137, key=wallet_key,
                         creds=ApiCreds(creds.api_key, "c2VjcmV0LXRoYXQtaXMtd3Jvbmc=", creds.api_passphrase))
        st, body = api_error(bad.get_open_orders)
        assert (st, body) == (401, {"error": "Unauthorized/Invalid api key"})
        r = httpx.get(sb.clob_url + "/auth/derive-api-key",
                      headers={"POLY_ADDRESS": good.get_address(), "POLY_SIGNATURE": "0x" + "11" * 65,
                               "POLY_TIMESTAMP": "1", "POLY_NONCE": "0"})
        assert (r.status_code, r.json()) == (401, {"error": "Invalid L1 Request headers"})
        assert good.get_open_orders() == []

    await asyncio.to_thread(work)
    assert venue.auth_failures == 2


async def test_orders_rejected_with_the_real_errors(sb, venue, wallet_key):
    m = active_markets(sb, 1)[0]
    sm = sb.sim.by_condition[m.condition_id]
    closed = next(x for x in sb.sim.markets if x.closed)

    def work():
        c = l2_client(sb, wallet_key)
        px = safe_bid(sb, m)
        # accepted, and the id is the order's EIP-712 hash as the SDK computes it
        order = c.create_order(buy_args(m, px, m.min_order_size), opts(m))
        broker = Broker(sb.clob_url, 137, wallet_key)
        try:
            expected_id = broker._order_id(order, m.neg_risk)
        finally:
            broker.close()
        r = c.post_order(order, OrderType.GTC, post_only=True)
        assert r["success"] and r["orderID"] == expected_id and r["status"] == "live"
        assert api_error(lambda: c.post_order(order, OrderType.GTC, post_only=True)) == (
            400, {"error": f"order {expected_id} is invalid. Duplicated."})
        # bad signature: tampered amount, or a garbled signature
        o2 = c.create_order(buy_args(m, px, m.min_order_size), opts(m))
        o2.makerAmount = str(int(o2.makerAmount) + 10_000)
        assert api_error(lambda: c.post_order(o2)) == (400, {"error": "invalid signature"})
        o3 = c.create_order(buy_args(m, px, m.min_order_size), opts(m))
        o3.signature = o3.signature[:-6] + ("00" if o3.signature[-6:-4] != "00" else "11") + o3.signature[-4:]
        assert api_error(lambda: c.post_order(o3))[0] == 400
        # below the market's minimum size (the SDK does not check it)
        small = m.min_order_size - 1
        o4 = c.create_order(buy_args(m, px, small), opts(m))
        st, body = api_error(lambda: c.post_order(o4, OrderType.GTC, post_only=True))
        assert st == 400 and body["error"].endswith(f"is invalid. Size ({small}) lower than the minimum: {m.min_order_size}")
        # crossing post-only
        _, ba = sb.sim.best(m.yes_token_id)
        o5 = c.create_order(buy_args(m, ba, m.min_order_size), opts(m))
        assert api_error(lambda: c.post_order(o5, OrderType.GTC, post_only=True)) == (
            400, {"error": "invalid post-only order: order crosses book"})
        # off the tick grid: signed on a finer grid than the market's (what a stale tick cache does)
        fine = "0.001" if m.tick_size == Decimal("0.01") else "0.0001"
        off = px + Decimal(fine) * 5
        o6 = c.builder.build_order(buy_args(m, off, m.min_order_size), CreateOrderOptions(tick_size=fine, neg_risk=m.neg_risk))
        st, body = api_error(lambda: c.post_order(o6, OrderType.GTC, post_only=True))
        assert st == 400 and "breaks minimum tick size rule: " + format(sm.tick_size, "f") in body["error"]
        assert f"Price ({off.normalize()})" in body["error"]
        # closed market
        o7 = c.builder.build_order(
            OrderArgs(token_id=closed.yes_token_id, price=0.5, size=float(closed.min_order_size), side="BUY"),
            CreateOrderOptions(tick_size=format(closed.tick_size, "f"), neg_risk=closed.neg_risk))
        assert api_error(lambda: c.post_order(o7, OrderType.GTC, post_only=True)) == (
            400, {"error": "the market is not yet ready to process new orders"})
        # selling tokens we do not hold
        o8 = c.create_order(OrderArgs(token_id=m.yes_token_id, price=0.99 - float(m.tick_size), size=float(m.min_order_size),
                                      side="SELL"), opts(m))
        assert api_error(lambda: c.post_order(o8, OrderType.GTC, post_only=True)) == (
            400, {"error": "not enough balance / allowance"})
        # more than 15 orders in one batch
        many = [PostOrdersV2Args(order=c.create_order(buy_args(m, px, m.min_order_size), opts(m)), orderType=OrderType.GTC)
                for _ in range(16)]
        assert api_error(lambda: c.post_orders(many, post_only=True)) == (
            400, {"error": "Too many orders in payload: 16, max allowed: 15"})
        return c

    c = await asyncio.to_thread(work)
    assert len(sb.sim.open_orders(c.creds.api_key)) == 1


async def test_broker_batches_by_15_and_maps_each_result(sb, venue, wallet_key):
    ms = active_markets(sb, 2)
    broker = Broker(sb.clob_url, 137, wallet_key)
    try:
        await broker.derive_creds()
        items = []
        for i in range(20):
            m = ms[i % 2]
            size = m.min_order_size - 1 if i == 7 else m.min_order_size
            items.append((Quote(m.condition_id, m.yes_token_id, Side.BUY, safe_bid(sb, m), size), m.tick_size, m.neg_risk))
        before = venue.requests[("POST", "/orders")]
        res = await broker.post_orders(items)
        assert venue.requests[("POST", "/orders")] - before == 2
        assert [r.ok for r in res] == [i != 7 for i in range(20)]
        assert "lower than the minimum" in res[7].error
        open_ids = await broker.open_orders()
        assert len(open_ids) == 19 and {o.id for o in open_ids} == {r.order_id for r in res if r.ok}
        venue.page_limit = 7  # the SDK follows the cursor pages
        assert len(await broker.open_orders()) == 19
        one = res[0].order_id
        assert (await broker.cancel([one])).canceled == [one]
        r = await broker.cancel([one, res[1].order_id])
        assert r.canceled == [res[1].order_id] and one in r.not_canceled
        market0 = {r.order_id for r in res if r.ok and r.quote.market == ms[0].condition_id}
        gone = set((await broker.cancel_market(market=ms[0].condition_id)).canceled)
        assert gone and gone <= market0
        assert all(o.market == ms[1].condition_id for o in await broker.open_orders())
        assert (await broker.cancel_all()).canceled
        assert await broker.open_orders() == []
        bad = Broker(sb.clob_url, 137, wallet_key, creds=Creds(*(broker.creds.api_key, broker.creds.api_key,
                                                                  broker.creds.api_passphrase)))
        try:
            with pytest.raises(BrokerError) as ei:
                await bad.cancel_all()
            assert ei.value.status == 401 and "Unauthorized" in str(ei.value)
        finally:
            bad.close()
    finally:
        broker.close()


async def test_heartbeat_arms_a_dead_mans_switch(sb, venue, wallet_key):
    venue.heartbeat_timeout_sec = 2.0  # (0.6 s fired between a beat and the next line on a loaded host)
    ms = active_markets(sb, 1)
    broker = Broker(sb.clob_url, 137, wallet_key)
    try:
        creds = await broker.derive_creds()
        api_key = creds.api_key.get_secret_value()
        m = ms[0]
        await broker.post_orders([(Quote(m.condition_id, m.yes_token_id, Side.BUY, safe_bid(sb, m), m.min_order_size),
                                   m.tick_size, m.neg_risk)])
        first = await broker.heartbeat()
        assert first and venue.heartbeat_armed(api_key)
        broker._hb_id = ""  # a restarted client: the venue says which id it expects, we resync
        assert await broker.heartbeat() not in ("", first)
        assert sb.sim.open_orders(api_key)
        await asyncio.sleep(2.6)  # no beat for longer than the timeout
        assert sb.sim.open_orders(api_key) == [] and venue.heartbeat_cancels == 1
    finally:
        broker.close()
