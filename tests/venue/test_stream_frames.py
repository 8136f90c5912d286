"""Frame handling of the market stream without a socket: dispatch, validation, bad input."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest

from pmm_widgets.book import OrderBook
from pmm_widgets.domain import PublicTrade, Side
from pmm_widgets.sandbox.faults import malformed_frame
from pmm_widgets.venue.clob_rest import ClobPublic
from pmm_widgets.venue.market_stream import MarketStream, _Conn

YES, NO = "111", "222"


def book_ev(asset: str, bids, asks, ts: int = 1000, h: str = "h0", tick: str = "0.01") -> dict:
    return {"event_type": "book", "market": "0xm", "asset_id": asset, "timestamp": str(ts), "hash": h,
            "tick_size": tick, "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks]}


def pc(entries, ts: int = 2000) -> dict:
    return {"event_type": "price_change", "market": "0xm", "timestamp": str(ts), "price_changes": [
        {"asset_id": a, "price": p, "size": s, "side": side, "hash": h, "best_bid": bb, "best_ask": ba}
        for a, p, s, side, h, bb, ba in entries]}


@pytest.fixture
def stream():
    books = {YES: OrderBook(YES, "0xm"), NO: OrderBook(NO, "0xm")}
    trades: list[PublicTrade] = []
    changed: list[set[str]] = []
    s = MarketStream("ws://127.0.0.1:9/ws", ClobPublic("http://127.0.0.1:9"), books,
                     on_books=changed.append, on_trade=trades.append, clock=lambda: 5000.0)
    s.handle_frame(json.dumps([book_ev(YES, [("0.40", "10"), ("0.45", "5")], [("0.55", "7"), ("0.50", "3")]),
                               book_ev(NO, [("0.50", "3")], [("0.60", "5")])]))
    s.trades, s.changed = trades, changed  # type: ignore[attr-defined]
    return s


def levels(s: MarketStream):
    return {t: (b.wire_levels(), b.tick_size, b.hash, b.venue_ts_ms) for t, b in s.books.items()}


def test_snapshots_then_changes_in_one_array_frame(stream):
    assert stream.books[YES].best_bid == Decimal("0.45") and stream.books[YES].ts == 5000.0
    touched = stream.handle_frame(json.dumps([
        pc([(YES, "0.46", "2", "BUY", "h1", "0.46", "0.5"), (YES, "0.5", "0", "SELL", "h1", "0.46", "0.55"),
            (NO, "0.54", "1", "BUY", "h2", "0.54", "0.6")]),
        {"event_type": "last_trade_price", "market": "0xm", "asset_id": YES, "price": "0.50", "size": "3",
         "side": "BUY", "fee_rate_bps": "0", "timestamp": "2000"},
    ]))
    y = stream.books[YES]
    assert touched == {YES, NO} and stream.changed[-1] == {YES, NO}
    assert (y.best_bid, y.best_ask, y.hash, y.venue_ts_ms) == (Decimal("0.46"), Decimal("0.55"), "h1", 2000)
    assert stream.trades == [PublicTrade(YES, "0xm", Decimal("0.5"), Decimal(3), Side.BUY, 2.0)]
    assert stream.stats.bad_messages == 0 and not stream._pending


def test_older_or_already_contained_changes_are_skipped(stream):
    before = levels(stream)
    stream.handle_frame(json.dumps(pc([(YES, "0.46", "2", "BUY", "hx", "0.46", "0.5")], ts=999)))
    stream.handle_frame(json.dumps(pc([(YES, "0.46", "2", "BUY", "h0", "0.46", "0.5")], ts=1000)))
    assert levels(stream) == before


def test_disagreeing_best_levels_or_crossing_ask_for_resync(stream):
    stream.handle_frame(json.dumps(pc([(YES, "0.44", "2", "BUY", "h1", "0.47", "0.5")])))
    assert stream._pending == {YES}
    stream._pending.clear()
    stream.handle_frame(json.dumps(pc([(NO, "0.65", "2", "BUY", "h1", "0.65", "0.6")])))
    assert stream.books[NO].crossed and stream._pending == {NO}


def test_tick_size_change_rekeys(stream):
    stream.handle_frame(json.dumps({"event_type": "tick_size_change", "market": "0xm", "asset_id": YES,
                                    "old_tick_size": "0.01", "new_tick_size": "0.001", "timestamp": "2000"}))
    assert stream.books[YES].tick_size == Decimal("0.001")
    stream.handle_frame(json.dumps(pc([(YES, "0.451", "1", "BUY", "h1", "0.451", "0.5")])))
    assert stream.books[YES].best_bid == Decimal("0.451") and not stream._pending


BAD_FRAMES = [
    "INVALID MESSAGE",
    '{"event_type": "price_change", "market": "0x',
    json.dumps(pc([("1", "1.5", "10", "BUY", "h", "1.5", "0.2")])),  # unknown token, price > 1
    json.dumps([book_ev("1", [("-0.2", "-5")], [])]),
    json.dumps(book_ev(YES, [("0.41", "1"), ("-0.2", "5")], [])),  # known token, one bad level
    json.dumps(pc([(YES, "0.41", "-3", "BUY", "h", "0.41", "0.5")])),  # negative size
    json.dumps(pc([(YES, "0.41", "3", "BUY", "h", "0.41", "0.5"), (YES, "1.01", "3", "SELL", "h", "0.41", "0.5")])),
    json.dumps(pc([(YES, "0.41", "3", "BUY", "h", "0.41", "0.5"), ("999", "0.5", "3", "SELL", "h", "0", "1")])),
    json.dumps(pc([(YES, "0.415", "3", "BUY", "h", "0.415", "0.5")])),  # off the 0.01 grid
    json.dumps({"event_type": "last_trade_price", "asset_id": YES, "price": "0", "size": "1", "side": "BUY"}),
    json.dumps({"event_type": "last_trade_price", "asset_id": YES, "price": "0.5", "size": "-1", "side": "BUY"}),
    json.dumps({"event_type": "tick_size_change", "asset_id": YES, "new_tick_size": "2"}),
    json.dumps({"event_type": "price_change", "price_changes": "nope"}),
    json.dumps([1, 2]),
]


@pytest.mark.parametrize("frame", BAD_FRAMES)
def test_bad_messages_are_counted_and_change_no_book(stream, frame):
    before = levels(stream)
    stream.handle_frame(frame)
    assert stream.stats.bad_messages >= 1
    assert levels(stream) == before and stream.trades == []


def test_sandbox_malformed_frames_never_touch_a_book(stream):
    conn = _Conn(0)
    conn.assets = {YES, NO}
    before = levels(stream)
    rnd = random.Random(5)
    for _ in range(60):
        stream.handle_frame(malformed_frame(rnd), conn)
    st = stream.stats
    assert st.bad_messages + st.unknown_events == 60 and st.bad_messages > 0 and st.unknown_events > 0
    assert levels(stream) == before
    assert stream._pending == {YES, NO}  # a frame we could not use may have carried updates: reload


def test_pong_refreshes_liveness_and_ignored_custom_events(stream):
    conn = _Conn(0)
    stream.handle_frame("PONG", conn)
    assert conn.last_pong > 0
    stream.handle_frame(json.dumps({"event_type": "best_bid_ask", "asset_id": YES, "best_bid": "0.45"}), conn)
    assert stream.stats.unknown_events == 0 and stream.stats.bad_messages == 0
