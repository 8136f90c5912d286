"""Mutation pass over `venue.wire` (the decoding of the venue's frames at the edge): the rules a
one-token change of the decoder would break without any other test noticing.

- The forgiving (event by event) path decodes exactly what the typed path decodes: the custom
  events we do not use are decoded (not "unknown"), a non-object is refused, an unknown event type
  is refused as unknown with its raw object, a known one that does not fit names its kind.
- Statuses: every member parses (REST prefix, any case, blanks), an empty one is None, an unknown
  one is UNKNOWN (never a cancel, never final), anything starting with CANCELED is a cancel.
- `Trade.venue_ts`: seconds, else milliseconds, else the default; never a non-finite or absurd
  time (a junk `match_time` once turned into inf/NaN or raised, see the test).
- `decode_books` / `convert_all`: every fitting book kept, one error per misfit, in order.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import Side
from pmm_widgets.venue import wire
from pmm_widgets.venue.wire import (
    BestBidAskEvent,
    BookEvent,
    BookSnapshot,
    ClobMarket,
    Liquidity,
    NewMarketEvent,
    OrderEvent,
    OrderEventKind,
    PriceChangeEvent,
    Refused,
    Trade,
    TradeEvent,
    TradeStatus,
    VenueOrder,
    VenueOrderStatus,
    convert,
    convert_all,
    decode_books,
    decode_market_frame,
    decode_user_frame,
    parse_side,
)

BOOK = {"event_type": "book", "asset_id": "1", "market": "0xm", "timestamp": "5", "hash": "h",
        "bids": [{"price": "0.4", "size": "1"}], "asks": []}
BBA = {"event_type": "best_bid_ask", "asset_id": "1", "best_bid": "0.4", "best_ask": "0.6"}
NEW = {"event_type": "new_market", "id": "9", "market": "0xn", "assets_ids": ["3", "4"]}
BROKEN = {"event_type": "price_change", "price_changes": "nope"}  # a known event that does not fit


# ---------------------------------------------------------------------------- frames
def test_the_forgiving_path_decodes_the_custom_events_like_the_typed_one():
    """A broken event sends its frame event by event: the custom events in it are still decoded
    (a `best_bid_ask` read as an unknown event would cost its connection a resync, every time)."""
    fast = decode_market_frame(json.dumps([BOOK, BBA, NEW])).events
    slow = decode_market_frame(json.dumps([BOOK, BBA, NEW, BROKEN])).events
    assert [type(e) for e in fast] == [BookEvent, BestBidAskEvent, NewMarketEvent]
    assert list(slow[:3]) == list(fast)
    last = slow[3]
    assert isinstance(last, Refused) and not last.unknown and last.kind == "price_change"
    assert last.raw == BROKEN and last.reason.startswith("price_change: ")


@pytest.mark.parametrize("ev,reason", [
    ({"event_type": "no_such_thing", "asset_id": "1"}, "unknown market event 'no_such_thing'"),
    ({"asset_id": "1"}, "unknown market event 'None'"),
    ({"event_type": 7, "asset_id": "1"}, "unknown market event '7'"),
    ({"event_type": "x" * 100}, "unknown market event '" + "x" * 30 + "'"),
])
def test_an_unknown_event_is_refused_as_unknown_with_its_raw_object(ev, reason):
    [got] = decode_market_frame(json.dumps(ev)).events
    assert got == Refused(reason, None, ev, unknown=True)


@pytest.mark.parametrize("text", ["[1, \"a\", null]", "5", "\"book\"", "null"])
def test_a_value_that_is_no_object_is_refused_event_by_event(text):
    got = decode_market_frame(text)
    assert got.error is None
    data = json.loads(text)
    n = len(data) if isinstance(data, list) else 1
    assert list(got.events) == [Refused("event is not an object")] * n


def test_a_single_event_and_an_empty_array():
    one = decode_market_frame(json.dumps(BOOK))
    assert isinstance(one.events, tuple) and len(one.events) == 1 and isinstance(one.events[0], BookEvent)
    assert list(decode_market_frame("[]").events) == [] and decode_market_frame("[]").error is None


@pytest.mark.parametrize("frame", ["{not json", b"{not json", bytearray(b"[1,"), b"\xff\xfe"])
def test_not_json_is_a_frame_error_naming_its_start(frame):
    got = decode_market_frame(frame)
    assert list(got.events) == [] and got.error is not None and got.error.startswith("not JSON: ")
    text = bytes(frame).decode("utf-8", "replace") if isinstance(frame, (bytes, bytearray)) else frame
    assert got.error == f"not JSON: {text[:60]!r}"


def test_bytes_frames_decode_like_text_on_both_paths():
    for evs in ([BOOK, BBA], [BOOK, BROKEN]):
        text = json.dumps(evs)
        assert list(decode_market_frame(text.encode()).events) == list(decode_market_frame(text).events)
        assert list(decode_market_frame(bytearray(text.encode())).events) == list(decode_market_frame(text).events)


def test_user_frames_refuse_market_events_as_unknown():
    evs = decode_user_frame(json.dumps([{"event_type": "order", "id": "o1", "status": "LIVE"},
                                        {"event_type": "book", "asset_id": "1"}])).events
    assert isinstance(evs[0], OrderEvent) and evs[0].order_status is VenueOrderStatus.LIVE
    assert isinstance(evs[1], Refused) and evs[1].unknown and evs[1].reason == "unknown user event 'book'"


# ---------------------------------------------------------------------------- statuses, sides
@pytest.mark.parametrize("raw,want", [
    *[(m.value, m) for m in VenueOrderStatus],
    *[(f"ORDER_STATUS_{m.value}", m) for m in VenueOrderStatus],
    (" live ", VenueOrderStatus.LIVE), ("delayed", VenueOrderStatus.DELAYED), ("UNMATCHED", VenueOrderStatus.UNMATCHED),
    ("MATCHED", VenueOrderStatus.MATCHED), ("INVALID", VenueOrderStatus.INVALID),
    ("CANCELED_FOK_NOT_FILLED", VenueOrderStatus.CANCELED), ("canceled_whatever", VenueOrderStatus.CANCELED),
    ("SOMETHING_NEW", VenueOrderStatus.UNKNOWN), ("CANCELLED", VenueOrderStatus.UNKNOWN),
    ("", None), ("   ", None), ("ORDER_STATUS_", None),
])
def test_order_statuses(raw, want):
    assert VenueOrderStatus.parse(raw) is want
    got = convert({"id": "o", "status": raw}, VenueOrder).order_status
    assert got is want


def test_only_the_cancel_statuses_are_cancels_and_only_two_trade_statuses_are_final():
    assert {m for m in VenueOrderStatus if m.is_cancel} == {VenueOrderStatus.CANCELED,
                                                             VenueOrderStatus.CANCELED_MARKET_RESOLVED}
    assert {m for m in TradeStatus if m.is_final} == {TradeStatus.CONFIRMED, TradeStatus.FAILED}


@pytest.mark.parametrize("raw,want", [
    *[(m.value, m) for m in TradeStatus],
    *[(f"TRADE_STATUS_{m.value}", m) for m in TradeStatus],
    ("confirmed", TradeStatus.CONFIRMED), (" mined ", TradeStatus.MINED),
    ("SETTLED", TradeStatus.UNKNOWN), ("", None), (" ", None), ("TRADE_STATUS_", None),
])
def test_trade_statuses(raw, want):
    assert TradeStatus.parse(raw) is want
    assert convert({"id": "t", "status": raw}, Trade).trade_status is want


def test_kinds_sides_and_liquidity():
    for k in ("PLACEMENT", "UPDATE", "CANCELLATION"):
        assert convert({"id": "o", "type": k.lower()}, OrderEvent).kind is OrderEventKind[k]
    assert convert({"id": "o", "type": "REPLACEMENT"}, OrderEvent).kind is OrderEventKind.UNKNOWN
    assert convert({"id": "o"}, OrderEvent).kind is OrderEventKind.UNKNOWN
    assert (parse_side(" buy "), parse_side("SELL"), parse_side(""), parse_side("BID")) == (Side.BUY, Side.SELL, None, None)
    assert convert({"id": "o", "side": "sell"}, VenueOrder).side_enum is Side.SELL
    assert [convert({"id": "t", "trader_side": x}, Trade).liquidity for x in ("maker", "TAKER", "", "X")] == [
        Liquidity.MAKER, Liquidity.TAKER, None, None]


def test_defaults_of_the_structs():
    vo = convert({"id": "o"}, VenueOrder)
    assert (vo.original_size, vo.size_matched, vo.status, vo.order_status) == ("0", "0", "", None)
    m = convert({}, ClobMarket)
    assert (m.closed, m.active, m.accepting_orders, m.neg_risk, m.tokens, m.winners) == (False, True, True, False, [], [])
    assert convert({"token_id": "1"}, wire.ClobToken).winner is False
    r = Refused("x")
    assert (r.kind, r.raw, r.unknown) == (None, None, False)
    assert wire.DecodedFrame(()).error is None


# ---------------------------------------------------------------------------- REST books
def test_decode_books_keeps_every_fitting_book_and_one_error_per_misfit():
    good = [{"asset_id": "1", "bids": [{"price": "0.4", "size": "1"}]}, {"asset_id": "2"}]
    books, errors = decode_books(json.dumps(good))
    assert [b.asset_id for b in books] == ["1", "2"] and errors == []
    mixed = [good[0], {"bids": []}, "junk", good[1]]
    for payload in (json.dumps(mixed), json.dumps(mixed).encode(), mixed):
        books, errors = decode_books(payload)
        assert [b.asset_id for b in books] == ["1", "2"] and len(errors) == 2
        assert all(e.startswith("REST book: ") for e in errors) and "`asset_id`" in errors[0]
    assert decode_books("{nope") == ([], ["REST books: not JSON"])
    assert decode_books(b'{"asset_id": "1"}') == ([], ["REST books: not a list"])
    assert decode_books("[]") == ([], [])


def test_convert_names_the_type_or_the_caller_s_words():
    with pytest.raises(wire.WireError, match=r"^BookSnapshot: .*`asset_id`"):
        convert({}, BookSnapshot)
    with pytest.raises(wire.WireError, match=r"^REST book: "):
        convert({}, BookSnapshot, "REST book")
    out, errs = convert_all([{"asset_id": "1"}, {}, {"asset_id": "2"}], BookSnapshot)
    assert [b.asset_id for b in out] == ["1", "2"] and len(errs) == 1 and errs[0].startswith("BookSnapshot: ")


def test_to_builtins_round_trips_a_frame():
    evs = decode_market_frame(json.dumps([BOOK, {"event_type": "price_change", "market": "0xm", "price_changes": [
        {"asset_id": "1", "price": "0.4", "size": "2", "side": "BUY"}]}])).events
    again = decode_market_frame(json.dumps(wire.to_builtins(list(evs)))).events
    assert list(again) == list(evs) and isinstance(evs[1], PriceChangeEvent)


# ---------------------------------------------------------------------------- venue time of a trade
@pytest.mark.parametrize("fields,want", [
    ({"match_time": "1786604080"}, 1786604080.0),
    ({"match_time": 1786604080}, 1786604080.0),
    ({"match_time": 1786604080.5}, 1786604080.5),
    ({"matchtime": "1786604081"}, 1786604081.0),
    ({"timestamp": "1786604082000"}, 1786604082.0),
    ({"match_time": "1786604080", "matchtime": "1", "timestamp": "2"}, 1786604080.0),  # seconds first
    ({"match_time": "", "matchtime": "1786604081", "timestamp": "2"}, 1786604081.0),
    ({"match_time": "x", "timestamp": "1786604082000"}, 1786604082.0),  # unreadable: the next field
    ({"match_time": True, "timestamp": "1786604082000"}, None),  # (a bool is refused by the decoder)
    ({}, 7.0),
    ({"match_time": "0"}, 0.0), ({"match_time": "0.5"}, 0.5),  # the bounds: [0, MAX_TS_SEC]
    ({"match_time": str(int(wire.MAX_TS_SEC))}, wire.MAX_TS_SEC), ({"match_time": str(int(wire.MAX_TS_SEC) + 1)}, 7.0),
])
def test_venue_ts_reads_seconds_then_milliseconds_then_the_default(fields, want):
    try:
        t = convert({"id": "t", **fields}, Trade)
    except wire.WireError:
        assert want is None
        return
    assert t.venue_ts(7.0) == want


@pytest.mark.parametrize("junk", ["inf", "-inf", "nan", "NaN", "1e999", "Infinity", 10**400, "9" * 400, "-5",
                                  "1e300", 1e300],
                         ids=["inf", "-inf", "nan", "NaN", "1e999", "Infinity", "int400", "str400", "-5", "1e300", "f1e300"])
def test_a_junk_trade_time_falls_back_never_to_inf_nan_or_an_exception(junk):
    """BUG (fixed): `venue_ts` parsed a junk `match_time` with `float()`: "inf"/"1e999" gave inf,
    "nan" NaN, a 400-digit integer raised OverflowError. The live exchange keeps the latest venue
    time for its REST backfill (`after = int(last - margin)`): after one such event every
    reconcile raised (int(inf) / int(nan)) and missed fills were never backfilled; the overflow
    dropped the event's fills outright (our inventory short of the venue's). A junk value is now
    skipped like an unreadable one: the next field, else the default."""
    for field in ("match_time", "matchtime", "timestamp"):
        t = convert({"id": "t", field: junk}, Trade)
        assert t.venue_ts(7.0) == 7.0
        t = convert({"id": "t", field: junk, "timestamp": "1786604082000"} if field != "timestamp"
                    else {"id": "t", field: junk}, Trade)
        assert t.venue_ts(7.0) == (1786604082.0 if field != "timestamp" else 7.0)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**500, max_value=10**500),
                 st.text(max_size=40), st.none()))
def test_venue_ts_is_always_a_finite_time(v: Any):
    for field in ("match_time", "matchtime", "timestamp"):
        try:
            t = convert({"id": "t", field: v}, Trade)
        except wire.WireError:
            continue
        got = t.venue_ts(7.0)
        assert math.isfinite(got) and 0 <= got <= 10**11


class _Spy:
    """A typed decoder that records what it is given, then decodes it as the real one."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.seen: list[Any] = []

    def decode(self, frame: Any) -> Any:
        self.seen.append(frame)
        return self.real.decode(frame)


@pytest.mark.parametrize("deep", ["[" * 2000 + "]" * 2000, "[" * 600, '{"event_type": "book", "x": ' + "[" * 2000])
def test_a_deep_or_broken_frame_never_reaches_the_typed_decoder(monkeypatch, deep):
    """msgspec skips unknown nested values recursing on the C stack: a frame of `MAX_DEPTH` or more
    brackets reaches it only after orjson parsed it (never one orjson refuses)."""
    spy = _Spy(wire._MARKET_FRAME)
    monkeypatch.setattr(wire, "_MARKET_FRAME", spy)
    got = decode_market_frame(deep)
    assert spy.seen == [] and got.error is not None
    for text in (json.dumps(BOOK), json.dumps([BOOK] * 600)):  # shallow, or deep in brackets but valid JSON
        spy.seen.clear()
        decode_market_frame(text)
        assert spy.seen == [text]


@pytest.mark.parametrize("deep", ["[" * 2000 + "]" * 2000, "[" * 2000])
def test_a_deep_rest_answer_never_reaches_the_typed_decoder(monkeypatch, deep):
    spy = _Spy(wire._BOOKS)
    monkeypatch.setattr(wire, "_BOOKS", spy)
    books, errors = decode_books(deep)
    assert spy.seen == [] and books == [] and len(errors) == 1


def test_a_sane_rest_answer_takes_the_one_typed_pass(monkeypatch):
    spy = _Spy(wire._BOOKS)
    monkeypatch.setattr(wire, "_BOOKS", spy)
    calls: list[Any] = []
    real_loads = wire.safejson.loads
    monkeypatch.setattr(wire.safejson, "loads", lambda t: calls.append(t) or real_loads(t))
    text = json.dumps([{"asset_id": "1"}, {"asset_id": "2"}])
    books, errors = decode_books(text)
    assert [b.asset_id for b in books] == ["1", "2"] and errors == [] and spy.seen == [text] and calls == []
    books, errors = decode_books(text[:-1] + ', {"bids": 5}]')  # a misfit: the forgiving path, once
    assert [b.asset_id for b in books] == ["1", "2"] and len(errors) == 1 and len(calls) == 1


def test_a_bytes_frame_with_bad_utf8_in_one_event_keeps_the_others():
    frame = b'[' + json.dumps(BOOK).encode() + b', {"event_type": "x\xff"}]'
    evs = decode_market_frame(frame).events
    assert isinstance(evs[0], BookEvent) and isinstance(evs[1], Refused) and evs[1].unknown
    assert evs[1].reason == "unknown market event 'x\ufffd'"


@pytest.mark.parametrize("junk", ["1e999", "nan", 10**400], ids=["inf", "nan", "int400"])
def test_a_junk_trade_time_leaves_the_live_backfill_start_finite(junk):
    """What the bug above did to the live exchange: its backfill start (`_last_trade_ts`) became
    inf or NaN (every later reconcile raised on `int(...)`), or the event's handling raised."""
    from pmm_widgets.config import Settings
    from pmm_widgets.execution.live import LiveExchange
    from pmm_widgets.store.sink import MemorySink

    ex = LiveExchange(Settings(), MemorySink(), "http://127.0.0.1:9", "ws://127.0.0.1:9")
    ex._clock = lambda: 1786604090.0
    ex._on_event(convert({"event_type": "trade", "id": "t1", "status": "MATCHED", "match_time": junk}, TradeEvent))
    assert ex._last_trade_ts == 1786604090.0
    ex._on_event(convert({"event_type": "trade", "id": "t2", "status": "MATCHED", "match_time": "1786604095"}, TradeEvent))
    assert ex._last_trade_ts == 1786604095.0
