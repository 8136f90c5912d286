"""Issue 10: the venue's payloads (tests/fixtures/venue, in the shapes of ../shared/polymarket-api.md)
through the decoders of `venue.wire` and on through the code that consumes them: market channel
frames into the books, user channel events into our fills and order states, CLOB REST objects,
Gamma markets. Unknown fields are ignored; a missing required field is one clear error naming the
field, counted by the stream, never a crash of the feed; token ids (> 64 bits) survive exactly."""

from __future__ import annotations

import asyncio
import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pmm_widgets.book import OrderBook
from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode, Order, OrderStatus, Side
from pmm_widgets.economics.tracker import market_terms
from pmm_widgets.execution.live import LiveExchange, our_fills
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.broker import Broker
from pmm_widgets.venue.gamma import parse_market
from pmm_widgets.venue.market_stream import MarketStream, _Conn, book_matches
from pmm_widgets.venue.user_stream import parse_frame
from pmm_widgets.venue.wire import (
    BookEvent,
    ClobMarket,
    LastTradePriceEvent,
    Liquidity,
    MarketResolvedEvent,
    OrderEvent,
    OrderEventKind,
    PriceChangeEvent,
    Refused,
    TickSizeChangeEvent,
    Trade,
    TradeEvent,
    TradeStatus,
    VenueOrder,
    VenueOrderStatus,
    WireError,
    convert,
    decode_books,
    decode_market_frame,
    decode_user_frame,
)

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "venue"
MARKET = json.loads((FIX / "market_channel.json").read_text())
USER = json.loads((FIX / "user_channel.json").read_text())
REST = json.loads((FIX / "clob_rest.json").read_text())
GAMMA = json.loads((FIX / "gamma_markets.json").read_text())
YES, NO = MARKET["tokens"]["yes"], MARKET["tokens"]["no"]
EXPECTED_TYPES = {"book": BookEvent, "book_no": BookEvent, "price_change": PriceChangeEvent,
                  "tick_size_change": TickSizeChangeEvent, "last_trade_price": LastTradePriceEvent,
                  "market_resolved": MarketResolvedEvent}
# required fields per event (the rest default): deleting one refuses the event, naming it
REQUIRED = {"book": ["asset_id"], "price_change": ["price_changes"], "tick_size_change": ["asset_id"],
            "last_trade_price": ["asset_id", "price", "size", "side"], "market_resolved": ["market"]}


def frame(*events: dict[str, Any]) -> str:
    return json.dumps(list(events) if len(events) > 1 else events[0])


def test_token_ids_beyond_64_bits_survive_exactly():
    assert int(YES) > 2**64 and int(NO) > 2**64
    [ev] = decode_market_frame(frame(MARKET["events"]["book"])).events
    assert ev.asset_id == YES
    [tr] = decode_user_frame(frame(USER["trades"]["matched"])).events
    assert tr.maker_orders[0].asset_id == YES and tr.asset_id == NO
    books, errors = decode_books(json.dumps(REST["books"]))
    assert [b.asset_id for b in books] == [YES, NO] and errors == []
    m = parse_market(GAMMA["rewarded"])
    assert m.token_ids == (YES, NO)


@pytest.mark.parametrize("name", sorted(MARKET["events"]))
def test_each_market_event_decodes_and_ignores_unknown_fields(name):
    ev = MARKET["events"][name]
    [got] = decode_market_frame(frame(ev)).events
    assert not isinstance(got, Refused), got
    if name in EXPECTED_TYPES:
        assert isinstance(got, EXPECTED_TYPES[name])
    extra = {**ev, "zz_new_field": {"nested": [1, {"x": "y"}]}, "another": 123456789012345678901234567890}
    [again] = decode_market_frame(frame(extra)).events
    assert again == got  # unknown fields change nothing


def test_a_frame_array_of_every_market_event_decodes_in_order():
    evs = list(MARKET["events"].values())
    got = decode_market_frame(frame(*evs)).events
    assert [g.__struct_config__.tag for g in got] == [e["event_type"] for e in evs]
    pc = got[list(MARKET["events"]).index("price_change")]
    assert [(c.asset_id, c.side, c.price, c.size) for c in pc.price_changes] == [
        (YES, "BUY", "0.46", "150.0"), (NO, "SELL", "0.54", "150.0")]
    ltp = got[list(MARKET["events"]).index("last_trade_price")]
    assert ltp.side is Side.BUY and ltp.price == "0.456"


@pytest.mark.parametrize("kind,field", [(k, f) for k, fs in REQUIRED.items() for f in fs])
def test_a_missing_required_field_is_one_error_naming_it(kind, field):
    ev = copy.deepcopy(MARKET["events"][kind])
    del ev[field]
    good = MARKET["events"]["book_no"]
    got = decode_market_frame(frame(ev, good)).events  # the other event of the frame still decodes
    assert isinstance(got[0], Refused) and not got[0].unknown and got[0].kind == kind
    assert f"`{field}`" in got[0].reason and got[0].reason.startswith(kind)
    assert isinstance(got[1], BookEvent) and got[1].asset_id == NO
    with pytest.raises(WireError, match=f"`{field}`"):
        convert(ev, EXPECTED_TYPES[kind])


def stream_for(*tokens: str) -> MarketStream:
    books = {t: OrderBook(t, MARKET["market"], Decimal("0.01")) for t in tokens}
    return MarketStream("ws://127.0.0.1:9", None, books, clock=lambda: 1786604072.5)  # type: ignore[arg-type]


def test_the_market_fixtures_drive_the_books_trades_and_resolutions():
    s = stream_for(YES, NO)
    trades = []
    s.on_trade = trades.append
    ev = MARKET["events"]
    assert s.handle_frame(frame(ev["book"], ev["book_no"])) == {YES, NO}
    assert book_matches(s.books[YES], ev["book"]) and book_matches(s.books[NO], ev["book_no"])
    yes = s.books[YES]
    assert (yes.best_bid, yes.best_ask, yes.hash, yes.venue_ts_ms) == (
        Decimal("0.45"), Decimal("0.55"), ev["book"]["hash"], 1786604072222)
    assert s.handle_frame(frame(ev["price_change"])) == {YES, NO}
    assert s.books[YES].best_bid == Decimal("0.46") and s.books[NO].best_ask == Decimal("0.54")
    assert not s.books[YES].needs_resync and not s.books[NO].needs_resync  # best_bid/best_ask agree
    assert s.handle_frame(frame(ev["tick_size_change"])) == {YES}
    assert s.books[YES].tick_size == Decimal("0.001") and s.books[YES].best_bid == Decimal("0.46")
    s.handle_frame(frame(ev["last_trade_price"], ev["best_bid_ask"], ev["new_market"], ev["market_resolved"]))
    assert [(t.token_id, t.price, t.size, t.side, t.ts) for t in trades] == [
        (YES, Decimal("0.456"), Decimal("219.217767"), Side.BUY, 1786604075.0)]
    assert [(r.market, r.winning_asset_id) for r in s.resolutions] == [(MARKET["market"], YES)]
    assert (s.stats.bad_messages, s.stats.unknown_events) == (0, 0)


def test_a_refused_event_is_counted_and_reloads_only_its_book():
    s = stream_for(YES, NO)
    ev = MARKET["events"]
    s.handle_frame(frame(ev["book"], ev["book_no"]))
    bad = {k: v for k, v in ev["last_trade_price"].items() if k != "side"}
    bad_pc = copy.deepcopy(ev["price_change"])
    del bad_pc["price_changes"][1]["price"]
    c = _Conn(0)
    touched = s.handle_frame(frame(bad, bad_pc, {"event_type": "brand_new_thing", "asset_id": NO}, ev["book"]), c)
    assert touched == {YES}  # the good event of the frame still applied
    assert s.stats.bad_messages == 2 and s.stats.unknown_events == 1
    assert s._pending == {YES, NO}  # the books those events name are reloaded, nothing else
    assert c.last_pong > 0


def test_user_events_decode_with_statuses_and_kinds_as_enums():
    kinds = {"placement_live": (OrderEventKind.PLACEMENT, VenueOrderStatus.LIVE),
             "update_matched": (OrderEventKind.UPDATE, VenueOrderStatus.MATCHED),
             "cancellation": (OrderEventKind.CANCELLATION, VenueOrderStatus.CANCELED),
             "market_resolved_cancel": (OrderEventKind.CANCELLATION, VenueOrderStatus.CANCELED_MARKET_RESOLVED),
             "fok_killed": (OrderEventKind.CANCELLATION, VenueOrderStatus.CANCELED),
             "invalid": (OrderEventKind.UPDATE, VenueOrderStatus.INVALID)}
    assert set(kinds) == set(USER["orders"])
    for name, (kind, status) in kinds.items():
        [ev] = parse_frame(frame(USER["orders"][name]))
        assert isinstance(ev, OrderEvent) and (ev.kind, ev.order_status) == (kind, status), name
        assert ev.id == USER["our_order_id"] and ev.side_enum is Side.BUY or name == "fok_killed"
    statuses = {"matched": TradeStatus.MATCHED, "mined": TradeStatus.MINED, "confirmed": TradeStatus.CONFIRMED,
                "retrying": TradeStatus.RETRYING, "failed": TradeStatus.FAILED, "taker": TradeStatus.MATCHED,
                "matched_not_broadcasted": TradeStatus.MATCHED_NOT_BROADCASTED}
    assert set(statuses) == set(USER["trades"])
    names = list(USER["trades"])
    evs = parse_frame(frame(*USER["trades"].values()))
    for ev, name in zip(evs, names, strict=True):
        status = statuses[name]
        assert isinstance(ev, TradeEvent) and ev.trade_status is status, name
        assert ev.trade_status.is_final == (name in ("confirmed", "failed"))
    assert evs[names.index("matched")].venue_ts(0) == 1786604080.0  # `matchtime` (s) on the WS


def test_our_fills_in_the_fixture_trades():
    key, addr = USER["api_key"], {USER["address"]}
    [mk] = our_fills(convert(USER["trades"]["matched"], TradeEvent), key, addr, lambda vid: False)
    # a maker fill on the complement: BUY NO at 0.55 by the taker filled our BUY YES at 0.45 (a mint)
    assert (mk.order_id, mk.token_id, mk.side, mk.price, mk.size, mk.liquidity) == (
        USER["our_order_id"], YES, Side.BUY, Decimal("0.45"), Decimal(40), Liquidity.MAKER)
    [tk] = our_fills(convert(USER["trades"]["taker"], TradeEvent), key, addr, lambda vid: False)
    assert (tk.side, tk.price, tk.size, tk.liquidity, tk.fee_rate_bps) == (
        Side.SELL, Decimal("0.44"), Decimal(10), Liquidity.TAKER, Decimal(400))
    assert our_fills(convert(USER["trades"]["matched"], TradeEvent), "someone", {"0x0"}, lambda vid: False) == []
    rest = convert(REST["trade"], Trade)  # the same trade as a REST /data/trades row
    assert rest.trade_status is TradeStatus.CONFIRMED and rest.venue_ts(0) == 1786604080.0
    assert our_fills(rest, key, addr, lambda vid: False)[0].size == Decimal(40)


def live_with_our_order() -> tuple[LiveExchange, MemorySink, Order]:
    sink = MemorySink()
    ex = LiveExchange(Settings(), sink, "http://127.0.0.1:9", "ws://127.0.0.1:9")
    ex._api_key, ex._addresses = USER["api_key"], {USER["address"]}
    o = Order("lv-test-1", MARKET["market"], YES, Side.BUY, Decimal("0.45"), Decimal(100), Mode.LIVE,
              status=OrderStatus.LIVE, venue_order_id=USER["our_order_id"])
    ex._open[o.client_id] = o
    ex._by_venue[USER["our_order_id"]] = o
    ex._mids[YES] = Decimal("0.455")
    return ex, sink, o


def test_live_fills_follow_the_fixture_tape_to_confirmed_and_to_a_failed_reversal():
    ex, sink, o = live_with_our_order()
    t = USER["trades"]
    for name in ("matched", "mined", "confirmed", "failed"):  # nothing after a final status
        ex._on_event(convert(t[name], TradeEvent))
    [fill] = asyncio.run(ex.poll(0.0))
    assert (fill.side, fill.price, fill.size, fill.status, fill.mid) == (
        Side.BUY, Decimal("0.45"), Decimal(40), "MATCHED", Decimal("0.455"))
    assert not fill.taker and fill.fee_rate_bps == 0 and o.filled == Decimal(40) and o.status is OrderStatus.PARTIAL
    [row] = sink.rows["trades"]
    assert row["status"] == "CONFIRMED" and row["raw_json"]["statuses"] == ["MATCHED", "MINED", "CONFIRMED"]

    ex, sink, o = live_with_our_order()
    for name in ("matched", "retrying", "failed"):
        ex._on_event(convert(t[name], TradeEvent))
    fill, reversal = asyncio.run(ex.poll(0.0))
    assert reversal.side is Side.SELL and reversal.size == fill.size and reversal.status == "FAILED"
    assert reversal.mid == fill.mid == Decimal("0.455")  # the fill-time mid is a typed field, also on the reversal
    assert o.filled == 0 and sink.rows["trades"][0]["status"] == "FAILED"


def test_live_order_events_from_the_fixtures_close_our_order():
    for name, status in (("cancellation", OrderStatus.CANCELED), ("market_resolved_cancel", OrderStatus.CANCELED),
                         ("fok_killed", OrderStatus.CANCELED)):
        ex, sink, o = live_with_our_order()
        ex._on_event(convert(USER["orders"]["placement_live"], OrderEvent))
        assert o.status is OrderStatus.LIVE
        ex._on_event(convert(USER["orders"][name], OrderEvent))
        assert o.status is status and o.client_id not in ex._open, name
        assert o.reason == USER["orders"][name]["status"].lower()


def test_clob_rest_objects():
    books, errors = decode_books(REST["books"])  # decoded objects (the SDK's dicts) or text alike
    assert errors == [] and [b.last_trade_price for b in books] == ["0.430", ""] and books[1].asks == []
    b = OrderBook(YES, "", Decimal("0.01"))
    assert b.apply_snapshot(books[0]) and b.best_bid == Decimal("0.45") and b.best_ask == Decimal("0.55")
    assert b.min_order_size == Decimal(5) and book_matches(b, REST["book"])
    bad, errs = decode_books([REST["book"], {"bids": []}, "junk"])
    assert [x.asset_id for x in bad] == [YES] and len(errs) == 2 and "`asset_id`" in errs[0]
    m = convert(REST["market_open"], ClobMarket)
    assert not m.closed and m.winners == [] and [t.token_id for t in m.tokens] == [YES, NO]
    won = convert({**REST["market_open"], "closed": True,
                   "tokens": [{**REST["market_open"]["tokens"][0], "winner": True}, REST["market_open"]["tokens"][1]]},
                  ClobMarket)
    assert won.closed and won.winners == [YES]
    vo = convert(REST["open_order"], VenueOrder)
    assert (vo.order_status, vo.side_enum, vo.size_matched, vo.created_at) == (
        VenueOrderStatus.LIVE, Side.BUY, "25.0000", 1786604070)
    c = Broker._cancel_result(REST["cancel"])  # cancel answers become the broker's typed CancelResult
    assert c.canceled == [USER["our_order_id"]] and list(c.not_canceled.values()) == [
        "order can't be found - already canceled or matched"]
    assert Broker._cancel_result(REST["cancel_none"]).not_canceled == {}  # `not_canceled` can be null
    assert isinstance(REST["time"], int)


def test_gamma_fixtures_parse_into_markets_and_terms():
    live = parse_market(GAMMA["live"])
    assert live.neg_risk and live.tick_size == Decimal("0.001") and live.min_order_size == Decimal(5)
    assert live.yes_token_id == "54533043819946592547517511176940999955633860128497669742211153063842200957669"
    terms, problems = market_terms(parse_market(GAMMA["rewarded"]))
    assert problems == [] and terms.fee.rate == Decimal("0.05")
    assert parse_market(GAMMA["closed"]).tradable is False


def test_the_sandbox_serves_what_the_decoders_read():
    """The loopback venue's own market-channel events and REST books decode without a refusal
    (the socket suites in tests/venue and tests/execution run the same decoders end to end)."""
    from pmm_widgets.sandbox.simulator import Simulator

    sim = Simulator(markets=4, seed=3, start_ts=1_786_600_000.0)
    sim.resolve_every = 60.0
    events = sim.run_until(sim.now() + 180.0)
    kinds: set[str] = set()
    for e in events:
        [got] = decode_market_frame(json.dumps(e.payload)).events
        assert not isinstance(got, Refused), (e.payload["event_type"], got)
        kinds.add(got.__struct_config__.tag)
    assert {"book", "price_change", "last_trade_price", "market_resolved"} <= kinds
    snaps = [sim.book_snapshot(t) for t in sim.by_token]
    books, errors = decode_books(json.dumps([x for x in snaps if x is not None]))
    assert errors == [] and len(books) >= 2


def test_a_large_frame_takes_the_typed_path_and_decodes_like_the_event_by_event_one(monkeypatch):
    """A sandbox tick of many assets is one frame of more than `safejson.MAX_DEPTH` brackets: once
    orjson has parsed it (no C recursion), the one typed msgspec pass decodes it (issue 12: 5-8x
    cheaper), with exactly the events the forgiving event-by-event path gives. Nested deeper than
    orjson's limit inside such a frame: refused, never decoded by msgspec, even under a raised
    recursion limit."""
    import sys

    from pmm_widgets import safejson
    from pmm_widgets.venue import wire

    evs = [MARKET["events"][k] for k in ("price_change", "book", "last_trade_price")] * 120
    text = frame(*evs)
    assert text.count("[") + text.count("{") >= safejson.MAX_DEPTH and safejson.shallow(text)
    fast = decode_market_frame(text)
    slow = wire._events(json.loads(text), wire.MarketEvent, wire.MARKET_EVENT_TYPES, "market")
    assert fast.error is None and list(fast.events) == list(slow.events) and len(fast.events) == 360
    assert not any(isinstance(e, Refused) for e in fast.events)
    calls: list[int] = []
    monkeypatch.setattr(safejson, "loads", lambda t: calls.append(1) or json.loads(t))
    decode_market_frame(text)
    assert calls == []  # the stdlib parse is spared
    monkeypatch.undo()
    deep = text[:-1] + ',{"event_type": "book", "x": ' + "[" * 5000 + "]" * 5000 + "}]"
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        assert not safejson.shallow(deep) and not safejson.shallow(deep.encode())
        got = decode_market_frame(deep)
    finally:
        sys.setrecursionlimit(old)
    assert got.error is not None and got.error.startswith("not JSON")
