"""Market websocket over a real websockets client: snapshot, events, subscriptions, keepalive."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
import websockets
from sandbox_helpers import book_tokens, collect, events_of

from pmm_widgets.domain import Side
from pmm_widgets.sandbox.server import Sandbox

pytestmark = pytest.mark.integration


def _sub(assets: list[str], custom: bool = True) -> str:
    return json.dumps({"assets_ids": assets, "type": "market", "custom_feature_enabled": custom})


async def test_snapshot_then_price_changes(sandbox: Sandbox) -> None:
    toks = book_tokens(sandbox)
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(_sub(toks))
        first = events_of(await ws.recv())
        assert [e["event_type"] for e in first] == ["book"] * len(toks)
        assert [e["asset_id"] for e in first] == toks
        b = first[0]
        assert {"market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "last_trade_price"} <= set(b)
        evs = await collect(ws, 3.0)
    kinds = {e["event_type"] for e in evs}
    assert {"price_change", "last_trade_price", "best_bid_ask"} <= kinds
    pc = next(e for e in evs if e["event_type"] == "price_change")
    assert set(pc) == {"event_type", "market", "price_changes", "timestamp"}
    assert pc["timestamp"].isdigit() and len(pc["timestamp"]) == 13
    for ch in pc["price_changes"]:
        assert set(ch) == {"asset_id", "price", "size", "side", "hash", "best_bid", "best_ask"}
        assert ch["side"] in ("BUY", "SELL") and 0 < Decimal(ch["price"]) < 1 and Decimal(ch["size"]) >= 0
        assert len(ch["hash"]) == 40
    # both tokens of a market change together in one message
    assert len({ch["asset_id"] for ch in pc["price_changes"]}) == 2
    lt = next(e for e in evs if e["event_type"] == "last_trade_price")
    assert {"market", "asset_id", "price", "size", "side", "fee_rate_bps", "timestamp"} <= set(lt)
    bba = next(e for e in evs if e["event_type"] == "best_bid_ask")
    assert {"market", "asset_id", "best_bid", "best_ask", "spread", "timestamp"} <= set(bba)
    # events carry the simulated time, which runs ahead of the start
    assert int(pc["timestamp"]) >= int(b["timestamp"]) >= 1_780_000_000_000


async def test_replaying_events_reproduces_the_book(sandbox: Sandbox) -> None:
    """A client applying snapshot + price_change ends with exactly the sandbox's book and hash."""
    m = next(x for x in sandbox.sim.markets if x.has_book and x.activity > 1.5)
    tok = m.no_token_id
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(_sub([tok], custom=False))
        snap = events_of(await ws.recv())[0]
        bids = {x["price"]: x["size"] for x in snap["bids"]}
        asks = {x["price"]: x["size"] for x in snap["asks"]}
        last_hash = snap["hash"]
        evs = await collect(ws, 2.0)
        sandbox.paused = True
        evs += await collect(ws, 0.5)
        for ev in evs:
            assert ev["event_type"] != "best_bid_ask"  # custom feature off
            if ev["event_type"] == "book":  # re-sent after trades: replaces the local book
                assert ev["asset_id"] == tok
                bids = {x["price"]: x["size"] for x in ev["bids"]}
                asks = {x["price"]: x["size"] for x in ev["asks"]}
                last_hash = ev["hash"]
                continue
            if ev["event_type"] != "price_change":
                continue
            for ch in ev["price_changes"]:
                assert ch["asset_id"] == tok  # the other token's entries are filtered out
                book = bids if ch["side"] == "BUY" else asks
                if Decimal(ch["size"]) == 0:
                    book.pop(ch["price"], None)
                else:
                    book[ch["price"]] = ch["size"]
                last_hash = ch["hash"]
        truth = sandbox.sim.book_snapshot(tok)
    assert truth["hash"] == last_hash != snap["hash"]
    assert bids == {x["price"]: x["size"] for x in truth["bids"]}
    assert asks == {x["price"]: x["size"] for x in truth["asks"]}


async def test_dynamic_subscribe_unsubscribe(sandbox: Sandbox) -> None:
    toks = book_tokens(sandbox)
    a, b = toks[:4], toks[4:8]
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(_sub(a))
        assert {e["asset_id"] for e in events_of(await ws.recv())} == set(a)
        await ws.send(json.dumps({"operation": "subscribe", "assets_ids": b, "custom_feature_enabled": True}))
        seen: set[str] = set()
        await collect(ws, 3.0, until=lambda e: e["event_type"] == "book" and (seen.add(e["asset_id"]) or set(b) <= seen))
        assert set(b) <= seen
        await ws.send(json.dumps({"operation": "unsubscribe", "assets_ids": a + b}))
        await collect(ws, 0.3)  # frames already queued before the unsubscribe
        assert await collect(ws, 1.0) == []


async def test_ping_pong(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send("PING")
        assert await ws.recv() == "PONG"
        await ws.send(_sub(book_tokens(sandbox)[:2]))
        await ws.send("PING")
        for _ in range(200):  # PONG arrives in order among the data frames
            if await asyncio.wait_for(ws.recv(), 5) == "PONG":
                break
        else:
            raise AssertionError("no PONG")


async def test_unknown_assets_and_junk_are_ignored(sandbox: Sandbox) -> None:
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send("not json")
        await ws.send(_sub(["1" * 77]))
        await ws.send("PING")
        assert await ws.recv() == "PONG"


async def test_tick_size_change_event(sandbox: Sandbox) -> None:
    sim = sandbox.sim
    m = next(x for x in sim.markets if x.has_book and x.tick_size == Decimal("0.01")
             and (bb := sim.best(x.yes_token_id)[0]) is not None and Decimal("0.2") < bb < Decimal("0.8"))
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(_sub([m.yes_token_id, m.no_token_id]))
        await ws.recv()  # snapshots
        asks = sum(Decimal(x["size"]) for x in sim.book_snapshot(m.yes_token_id)["asks"])
        sim.place_order("whale", "w1", m.yes_token_id, Side.BUY, Decimal("0.97"), asks + 50, False)
        evs = await collect(ws, 3.0, until=lambda e: e["event_type"] == "tick_size_change")
    tsc = [e for e in evs if e["event_type"] == "tick_size_change"]
    assert tsc and tsc[0]["old_tick_size"] == "0.01" and tsc[0]["new_tick_size"] == "0.001"
    assert tsc[0]["market"] == m.condition_id and tsc[0]["timestamp"].isdigit()


async def test_account_actions_show_on_the_feed(sandbox: Sandbox) -> None:
    sim = sandbox.sim
    sandbox.paused = True
    m = next(x for x in sim.markets if x.has_book and (sim.best(x.yes_token_id)[0] or 0) > Decimal("0.1"))
    bb, _ = sim.best(m.yes_token_id)
    price = bb - 3 * m.tick_size
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(_sub([m.yes_token_id]))
        await ws.recv()
        sim.place_order("acct", "p1", m.yes_token_id, Side.BUY, price, Decimal(1000), True)
        evs = await collect(ws, 3.0, until=lambda e: e["event_type"] == "price_change" and any(
            Decimal(c["price"]) == price and c["side"] == "BUY" and Decimal(c["size"]) >= 1000 for c in e["price_changes"]))
    assert evs and evs[-1]["event_type"] == "price_change"


async def test_book_is_resent_after_a_trade(sandbox: Sandbox) -> None:
    sim = sandbox.sim
    sandbox.paused = True  # only our trade moves the market
    m = next(x for x in sim.markets if x.has_book and sim.best(x.yes_token_id)[1] is not None)
    _, ba = sim.best(m.yes_token_id)
    async with websockets.connect(sandbox.ws_url + "/market") as ws:
        await ws.send(_sub([m.yes_token_id, m.no_token_id], custom=False))
        await ws.recv()
        taker = sim.place_order("taker", "t1", m.yes_token_id, Side.BUY, ba, m.min_order_size, False)
        evs = await collect(ws, 2.0)
    kinds = [e["event_type"] for e in evs]
    assert "last_trade_price" in kinds and "price_change" in kinds
    books = [e for e in evs if e["event_type"] == "book"]
    assert {e["asset_id"] for e in books} == {m.yes_token_id, m.no_token_id}
    assert books[0]["hash"] == sim.book_snapshot(books[0]["asset_id"])["hash"]
    prints = [e for e in evs if e["event_type"] == "last_trade_price"]
    assert sum(Decimal(e["size"]) for e in prints) == taker.size_matched > 0


async def test_frames_stay_under_the_default_client_limit() -> None:
    from pmm_widgets.sandbox.market_ws import MAX_FRAME_CHARS
    from pmm_widgets.sandbox.server import SandboxConfig

    async with Sandbox(SandboxConfig(markets=80, seed=3, speed=150.0), extensions=[]) as sb:
        async with websockets.connect(sb.ws_url + "/market") as ws:  # default max_size: 1 MiB
            await ws.send(_sub(book_tokens(sb)))
            frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(8)]
    assert max(len(f) for f in frames[1:]) <= MAX_FRAME_CHARS + 64 * 1024  # one event may overshoot the soft cap
    assert sum(len(f) > MAX_FRAME_CHARS // 2 for f in frames[1:]) >= 3  # the split really happened


async def test_a_resolution_reaches_a_connection_holding_one_token_of_the_market(sandbox: Sandbox) -> None:
    """The engine spreads its assets over connections of at most 200 (sorted by token id), so a
    market's YES and NO can sit on two connections. `market_resolved` names both tokens: the
    broadcast filtered it as if it were a `price_change` (KeyError 'price_changes'), so neither
    connection got it and the clock's tick failed there."""
    m = next(x for x in sandbox.sim.markets if x.has_book and not x.resolved)
    async with websockets.connect(sandbox.ws_url + "/market") as yes_ws, \
            websockets.connect(sandbox.ws_url + "/market") as no_ws:
        await yes_ws.send(_sub([m.yes_token_id]))
        await no_ws.send(_sub([m.no_token_id]))
        events_of(await yes_ws.recv()), events_of(await no_ws.recv())  # the snapshots

        def resolved(e: dict) -> bool:
            return e["event_type"] == "market_resolved"

        sandbox.sim.resolve_market(m.condition_id, winner_yes=True)
        got = [[e for e in await collect(ws, 3.0, until=resolved) if resolved(e)] for ws in (yes_ws, no_ws)]
    for evs in got:
        assert len(evs) == 1 and evs[0]["market"] == m.condition_id
        assert evs[0]["winning_asset_id"] == m.yes_token_id
        assert evs[0]["assets_ids"] == [m.yes_token_id, m.no_token_id]  # the whole event, as sent to both
