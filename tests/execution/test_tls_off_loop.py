"""No TLS context is built on the event loop once venue/tls.py is warm (`build_runtime` warms it
in a worker thread): the quote cycle, the market feed and the user stream share that loop, and
each context is 20-50 ms of CPU that stalls all of them. Before, every `httpx.AsyncClient` built
its own (the order entry's at the first order, mid-trading; each `JsonHttp`), and websockets
built one at every wss:// connect (every reconnect). Spied here: `ssl.create_default_context`
(httpx's and websockets' builder) and `SSLContext.load_verify_locations` (loading a CA bundle),
with the thread that called them; against the sandbox (plain http; a wss:// URL at its port
makes a real connect attempt whose TLS handshake fails)."""
from __future__ import annotations

import asyncio
import logging
import ssl
import threading

import pytest
from eth_account import Account
from live_helpers import active_markets, touch_bids

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.venue import tls
from pmm_widgets.venue.clob_rest import ClobPublic
from pmm_widgets.venue.http import JsonHttp
from pmm_widgets.venue.market_stream import MarketStream
from pmm_widgets.venue.order_entry import OrderEntry
from pmm_widgets.venue.signer import OrderSigner
from pmm_widgets.venue.user_stream import UserStream

pytestmark = pytest.mark.integration


def spy_tls_builds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(what, thread ident) of every TLS context built or CA bundle loaded from now on."""
    calls: list[tuple[str, int]] = []
    create, load = ssl.create_default_context, ssl.SSLContext.load_verify_locations

    def create_spy(*a, **kw):
        calls.append(("create_default_context", threading.get_ident()))
        return create(*a, **kw)

    def load_spy(self, *a, **kw):
        calls.append(("load_verify_locations", threading.get_ident()))
        return load(self, *a, **kw)

    monkeypatch.setattr(ssl, "create_default_context", create_spy)
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load_spy)
    return calls


async def test_the_first_order_and_a_rest_client_build_no_tls_context_on_the_loop(sb: Sandbox, wallet_key: str,
                                                                                  monkeypatch):
    signer = OrderSigner(wallet_key, 137)
    c = derive_creds(Account.from_key(wallet_key).address, 0)
    creds = (c.api_key, c.secret, c.passphrase)
    markets = active_markets(sb, 1)
    q = touch_bids(sb, markets)[0]
    # (signing imports py-clob-client-v2, whose import builds its module-global client: in the
    # engine that import is the broker's construction, before the first order)
    body = signer.sign(q.token_id, q.side, q.price, q.size, markets[0].tick_size, markets[0].neg_risk).body
    await tls.warm()
    calls = spy_tls_builds(monkeypatch)
    loop_thread = threading.get_ident()
    http = JsonHttp(sb.clob_url)  # as Gamma's and the CLOB REST client are
    entry = OrderEntry(sb.clob_url, signer.address, lambda: creds)
    try:
        assert (await http.get("/book", {"token_id": q.token_id}))["asset_id"] == q.token_id
        answers = await entry.post([body], creds[0])  # the first request opens the entry's client
        assert answers[0]["success"] is True
        assert (await entry.cancel([answers[0]["orderID"]]))["canceled"] == [answers[0]["orderID"]]
    finally:
        await entry.aclose()
        await http.aclose()
    assert [what for what, thread in calls if thread == loop_thread] == []


async def test_a_wss_connect_builds_no_tls_context_on_the_loop(sb: Sandbox, monkeypatch, caplog):
    """The market and the user stream at wss://<the sandbox's plain port>: each connect attempt
    is real (its TLS handshake fails, the stream backs off and tries again)."""
    await tls.warm()
    calls = spy_tls_builds(monkeypatch)
    loop_thread = threading.get_ident()
    wss = "wss" + sb.ws_url.removeprefix("ws")
    rest = ClobPublic(sb.clob_url)
    market = MarketStream(wss, rest, {}, backoff_base=0.01, backoff_cap=0.02)
    user = UserStream(wss + "/user", lambda: {}, lambda ev: None, backoff_min=0.01, backoff_max=0.02)
    caplog.set_level(logging.WARNING, logger="pmm_widgets.venue.user_stream")
    try:
        await market.set_assets([active_markets(sb, 1)[0].yes_token_id])
        await user.start(wait=None)
        for _ in range(500):
            tried = sum("user stream: " in r.getMessage() for r in caplog.records)
            if market.stats.reconnects >= 2 and tried >= 2:
                break
            await asyncio.sleep(0.01)
        assert market.stats.reconnects >= 2 and tried >= 2  # failed connect attempts, then reconnects
        assert not market.connected()
    finally:
        await user.close()
        await market.close()
        await rest.aclose()
    assert [what for what, thread in calls if thread == loop_thread] == []


def test_wss_urls_get_the_shared_http11_context_and_ws_urls_none():
    assert tls.ws_context("ws://127.0.0.1:1/market") is None  # plain ws: no TLS, as before
    assert tls.ws_context("wss://ws-subscriptions-clob.polymarket.com/ws/market") is tls.client_context()
    assert tls.client_context(http2=True) is tls.client_context(http2=True) is not tls.client_context()
