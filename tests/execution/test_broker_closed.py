"""An order entry or a broker used after its close (venue/order_entry.py `EntryClosed`,
venue/broker.py `BrokerClosed`), against the sandbox's trading half: every call raises at once,
sends nothing, and opens no HTTP client. The order entry used to open a new `httpx.AsyncClient`
for such a call (nobody closed it: its connections leaked) and send the request, and the broker's
retries took a closed entry's failure for a transient one."""
from __future__ import annotations

import asyncio
import functools

import pytest
from eth_account import Account
from live_helpers import active_markets, touch_bids
from pydantic import SecretStr

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.sandbox.trading import TradingVenue
from pmm_widgets.venue.broker import Broker, BrokerClosed, BrokerError, Creds
from pmm_widgets.venue.order_entry import EntryClosed, EntryError, OrderEntry
from pmm_widgets.venue.signer import OrderSigner

pytestmark = pytest.mark.integration


@pytest.fixture
def wallet(wallet_key: str) -> tuple[OrderSigner, tuple[str, str, str]]:
    creds = derive_creds(Account.from_key(wallet_key).address, 0)
    return OrderSigner(wallet_key, 137), (creds.api_key, creds.secret, creds.passphrase)


def creds_of(key: str) -> Creds:
    c = derive_creds(Account.from_key(key).address, 0)
    return Creds(SecretStr(c.api_key), SecretStr(c.secret), SecretStr(c.passphrase))


def calls(entry: OrderEntry, owner: str) -> dict[str, object]:
    return {"post": entry.post([], owner), "cancel": entry.cancel(["0x01"]), "cancel_all": entry.cancel_all(),
            "open_orders": entry.open_orders_page("MA=="), "heartbeat": entry.heartbeat("")}


async def test_an_order_entry_used_after_aclose_raises_sends_nothing_and_opens_no_client(sb, venue: TradingVenue,
                                                                                        wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url, signer.address, lambda: creds)
    assert (await entry.heartbeat(""))["heartbeat_id"]  # the client opened and used
    await entry.aclose()
    assert entry._client is None
    before = len(venue.requests)
    for op, call in calls(entry, creds[0]).items():
        with pytest.raises(EntryClosed) as ei:
            await call  # type: ignore[misc]
        assert isinstance(ei.value, EntryError) and (ei.value.op, ei.value.status) == (op, None)
        assert str(ei.value) == f"{op}: the order entry is closed: nothing was sent"
        assert entry._client is None  # no client reopened (nobody would close it)
    assert len(venue.requests) == before and entry.rtts[-1].kind == "heartbeat" and len(entry.rtts) == 1
    never = OrderEntry(sb.clob_url, signer.address, lambda: creds)  # closed before any request
    await never.aclose()
    with pytest.raises(EntryClosed):
        await never.cancel_all()
    assert never._client is None and len(venue.requests) == before


async def test_a_request_waiting_for_its_slot_when_the_entry_closes_is_not_sent(sb, venue: TradingVenue, wallet):
    signer, creds = wallet
    entry = OrderEntry(sb.clob_url, signer.address, lambda: creds, max_inflight=1)
    sb.faults.update(latency_ms=300)
    try:
        first = asyncio.ensure_future(entry.cancel(["0x01"]))  # holds the one slot for 0.3 s
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(entry.cancel(["0x02"]))
        await asyncio.sleep(0.05)
        assert not waiting.done() and entry.inflight == 1
        await entry.aclose()
        with pytest.raises(EntryClosed):
            await waiting
        with pytest.raises(EntryError):  # its client closed under it
            await first
    finally:
        sb.faults.update(latency_ms=0)
    await asyncio.sleep(0.4)  # (the venue notes a request once its delay is over)
    assert len([p for _, p in venue.requests if p == "/orders"]) == 1 and entry._client is None  # the first only


async def test_a_broker_used_after_aclose_raises_broker_closed_without_a_retry_or_a_request(sb: Sandbox,
                                                                                           venue: TradingVenue,
                                                                                           wallet_key: str):
    markets = active_markets(sb, 1)
    by_token = {t: m for m in markets for t in m.token_ids}
    items = [(q, by_token[q.token_id].tick_size, by_token[q.token_id].neg_risk) for q in touch_bids(sb, markets)]
    for fast in (True, False):
        b = Broker(sb.clob_url, 137, wallet_key, creds=creds_of(wallet_key), fast=fast, backoff_base=0.01,
                   backoff_cap=0.02)
        assert b.fast is fast
        await b.heartbeat()
        await b.aclose()
        before = len(venue.requests)
        for op, call in (("cancel_all", b.cancel_all), ("heartbeat", b.heartbeat), ("open_orders", b.open_orders),
                         ("cancel", functools.partial(b.cancel, ["0x01", "0x02"])), ("trades", b.trades)):
            with pytest.raises(BrokerClosed) as ei:
                await call()
            assert isinstance(ei.value, BrokerError) and (ei.value.op, ei.value.transient) == (op, False), fast
        res = await b.post_orders(items)  # refused, never uncertain: nothing was sent
        assert res and all(not r.ok and not r.uncertain and r.error == "the broker is closed: nothing was sent"
                           for r in res), (fast, res)
        assert (b.retried, len(venue.requests)) == (0, before), fast
        assert b.order_entry is None or b.order_entry._client is None
