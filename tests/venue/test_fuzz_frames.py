"""Issue 17 M4 / Minor: the hostile-frame corpus (fixtures/fuzz_frames.json) against the market
stream and the books, directly and over the real loopback socket (the sandbox's `hub.inject`
hook): 0 crashes, 0 forced reconnects, books equal the venue's after resync, memory bounded;
and the exact rules (tick set, bounded numbers, clamped timestamps, length caps, keepalive)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from test_feed_integration import universe, wait_for

from pmm_widgets.book import OrderBook
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.ticks import ALLOWED_TICK_SET, MAX_MIN_ORDER_SIZE
from pmm_widgets.venue.gamma import MarketParseError, parse_market
from pmm_widgets.venue.market_data import MarketData
from pmm_widgets.venue.market_stream import (
    FUTURE_SKEW_MS,
    MarketStream,
    _Conn,
    book_matches,
)

CORPUS = json.loads((Path(__file__).parent / "fixtures" / "fuzz_frames.json").read_text())["frames"]
MB = 1024 * 1024


def expand(frame: str, token: str, market: str) -> str:
    return (frame.replace("$DEEP_LIST", "[" * 100_000 + "]" * 100_000)
            .replace("$DEEP_OBJ", '{"a":' * 100_000 + "1" + "}" * 100_000)
            .replace("$MB_DIGITS", "9" * MB).replace("$MB", "A" * MB)
            .replace("$NOW_MS", str(int(time.time() * 1000)))
            .replace("$TOKEN", token).replace("$MARKET", market))


@pytest.fixture
async def wall_sandbox() -> AsyncIterator[Sandbox]:
    """Venue time = wall time (as on the real venue), so a clamped future timestamp passes."""
    async with Sandbox(SandboxConfig(markets=8, seed=11, speed=5.0), extensions=[]) as sb:
        yield sb


def check_books(md: MarketData) -> None:
    now_ms = int(time.time() * 1000)
    for b in md.books.values():
        assert b.tick_size in ALLOWED_TICK_SET
        assert b.min_order_size.is_finite() and 0 < b.min_order_size <= MAX_MIN_ORDER_SIZE
        assert 0 <= b.venue_ts_ms <= now_ms + FUTURE_SKEW_MS + 1000
        assert len(b.market) <= 100 and len(b.hash) <= 100


async def settled(md: MarketData, sb: Sandbox) -> list[str]:
    """Freeze the market, let every resync land; the tokens whose book differs from the venue's."""
    sb.paused = True
    await asyncio.sleep(0.4)
    await wait_for(lambda: md.stream.connected() and not md.stream._pending
                   and not any(c.resync_owed for c in md.stream.conns)
                   and all(b.synced and not b.needs_resync for b in md.books.values()), timeout=25)
    await asyncio.sleep(0.5)
    return [t for t, b in md.books.items() if not book_matches(b, sb.sim.book_snapshot(t))]


pytestmark = pytest.mark.integration


async def test_corpus_direct_no_crash_books_recover_memory_bounded(wall_sandbox):
    sb = wall_sandbox
    sink = MemorySink()
    md = MarketData(sb.clob_url, sb.ws_url, sink)
    await md.start()
    try:
        await md.set_markets(await universe(sb, 4))
        await wait_for(lambda: all(md.view(t) is not None for t in md.books))
        conn = md.stream.conns[0]
        token = min(conn.assets)
        market = md.books[token].market
        tracemalloc.start()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        for item in CORPUS:
            frame = expand(item["frame"], token, market)
            md.stream.handle_frame(frame, conn)  # never raises
            check_books(md)
        md.stream.handle_frame(b'{"event_type":"book","asset_id":"\xff\xfe"}', conn)  # invalid UTF-8
        del frame
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert grown < 4 * MB, f"{grown / MB:.1f} MB retained after the corpus"
        st = md.stream.stats
        assert st.bad_messages + st.unknown_events >= 30 and st.reconnects == 0
        assert all(len(r["market"]) <= 100 for r in sink.rows.get("public_trades", []))
        assert await settled(md, sb) == []
        check_books(md)
    finally:
        await md.close()


async def test_corpus_over_the_socket_costs_no_reconnect(wall_sandbox):
    sb = wall_sandbox
    md = MarketData(sb.clob_url, sb.ws_url, MemorySink())
    await md.start()
    try:
        await md.set_markets(await universe(sb, 4))
        await wait_for(lambda: all(md.view(t) is not None for t in md.books))
        st = md.stream.stats
        token = min(md.stream.conns[0].assets)
        market = md.books[token].market
        reconnects0, bad0 = st.reconnects, st.bad_messages + st.unknown_events
        for item in CORPUS:
            assert sb.hub.inject(expand(item["frame"], token, market)) > 0
        await wait_for(lambda: st.bad_messages + st.unknown_events - bad0 >= 30, timeout=20)
        assert st.reconnects == reconnects0 and md.stream.connected()  # no frame forced a reconnect
        check_books(md)
        assert await settled(md, sb) == []
    finally:
        await md.close()


# ---------------------------------------------------------------------------- the exact rules
class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def stream_with_book(now: float) -> tuple[MarketStream, OrderBook, Clock]:
    clock = Clock(now)
    b = OrderBook("7", "0xm", Decimal("0.01"), Decimal(5))
    s = MarketStream("ws://127.0.0.1:9", None, {"7": b}, clock=clock)  # type: ignore[arg-type]
    s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", "market": "0xm", "timestamp": str(int(now * 1000)),
                               "hash": "a", "bids": [{"price": "0.4", "size": "10"}],
                               "asks": [{"price": "0.6", "size": "10"}]}))
    assert b.synced and b.best_bid == Decimal("0.4")
    return s, b, clock


def test_timestamp_zero_or_missing_keeps_the_older_snapshot_guard():
    now = 1_800_000_000.0
    s, b, _ = stream_with_book(now)
    for extra in ({"timestamp": "0"}, {}):
        s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", **extra,
                                   "bids": [{"price": "0.01", "size": "1"}], "asks": []}))
        assert b.best_bid == Decimal("0.4") and b.venue_ts_ms == int(now * 1000)
    older = json.dumps({"event_type": "book", "asset_id": "7", "timestamp": str(int(now * 1000) - 1),
                        "bids": [{"price": "0.02", "size": "1"}], "asks": []})
    s.handle_frame(older)
    assert b.best_bid == Decimal("0.4")  # the guard still holds after the timestamp-less frames


def test_a_future_timestamp_is_clamped_and_cannot_freeze_the_book():
    now = 1_800_000_000.0
    s, b, clock = stream_with_book(now)
    s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", "timestamp": "32503680000000",
                               "bids": [{"price": "0.3", "size": "1"}], "asks": [{"price": "0.7", "size": "1"}]}))
    assert b.venue_ts_ms == int(now * 1000) + FUTURE_SKEW_MS and b.needs_resync  # clamped, and reloaded
    clock.t = now + FUTURE_SKEW_MS / 1000 + 1  # a few seconds later the venue's updates apply again
    s.handle_frame(json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(int(clock.t * 1000)),
                               "price_changes": [{"asset_id": "7", "price": "0.35", "size": "4", "side": "BUY"}]}))
    assert b.bids.get(35) == Decimal(4)


def test_a_price_below_the_tick_never_becomes_level_zero():
    s, b, _ = stream_with_book(1_800_000_000.0)
    s.handle_frame(json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(1_800_000_000_001),
                               "price_changes": [{"asset_id": "7", "price": "1e-999999999", "size": "3", "side": "BUY"}]}))
    assert 0 not in b.bids and s.stats.bad_messages == 1 and b.needs_resync


def test_a_venue_clock_running_ahead_is_followed_not_clamped():
    """A sandbox at 10x runs its clock ahead of ours: steady frames 4 s apart are the venue's time,
    not hostile ones (clamping them would distrust every book, every frame)."""
    now = 1_800_000_000.0
    s, b, _ = stream_with_book(now)
    for k in range(1, 20):
        ts = int(now * 1000) + 4_000 * k
        s.handle_frame(json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(ts),
                                   "price_changes": [{"asset_id": "7", "price": "0.4", "size": str(10 + k),
                                                      "side": "BUY", "best_bid": "0.4", "best_ask": "0.6"}]}))
        assert b.venue_ts_ms == ts and not b.needs_resync
    s.handle_frame(json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": "32503680000000",
                               "price_changes": [{"asset_id": "7", "price": "0.4", "size": "1", "side": "BUY"}]}))
    assert b.venue_ts_ms == ts + FUTURE_SKEW_MS and b.needs_resync  # a jump is still clamped


def test_ticks_sizes_and_strings_are_bounded():
    now = 1_800_000_000.0
    s, b, _ = stream_with_book(now)
    for tick in ("1e-999999999", "0.03", "NaN", "1e+999999"):
        s.handle_frame(json.dumps({"event_type": "tick_size_change", "asset_id": "7", "new_tick_size": tick}))
        s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", "tick_size": tick,
                                   "timestamp": str(int(now * 1000) + 1), "bids": [], "asks": []}))
        assert b.tick_size == Decimal("0.01") and b.best_bid == Decimal("0.4")  # refused, grid unchanged
    assert b.set_tick_size(Decimal("0.001")) and b.tick_size == Decimal("0.001")  # a venue tick is fine
    for mos in ("NaN", "Infinity", "0", "-5", "1e+999999"):
        s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", "min_order_size": mos,
                                   "timestamp": str(int(now * 1000) + 2), "bids": [], "asks": []}))
        assert b.min_order_size == Decimal(5)
    trades = []
    s.on_trade = trades.append
    s.handle_frame(json.dumps({"event_type": "last_trade_price", "asset_id": "7", "market": "M" * MB,
                               "price": "0.5", "size": "1", "side": "BUY"}))
    assert trades and len(trades[0].market) <= 100
    s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", "market": "M" * MB, "hash": "H" * MB,
                               "timestamp": str(int(now * 1000) + 3), "bids": [], "asks": []}))
    assert len(b.market) <= 100 and len(b.hash) <= 100


def test_any_frame_counts_for_the_keepalive():
    s, _, _ = stream_with_book(1_800_000_000.0)
    c = _Conn(0)
    c.last_pong = 0.0
    s.handle_frame('{"event_type":"no_such_event"}', c)
    assert c.last_pong > 0.0


@pytest.mark.parametrize("field,value", [("orderPriceMinTickSize", "1e-999999999"), ("orderPriceMinTickSize", "0.03"),
                                         ("orderMinSize", "1e+999999"), ("orderMinSize", "NaN"),
                                         ("orderMinSize", "0"), ("orderMinSize", "-5"),
                                         ("orderPriceMinTickSize", "Infinity")])
def test_gamma_ticks_and_min_sizes_outside_the_venue_set_are_skipped(field, value):
    obj = {"conditionId": "0x" + "1" * 64, "clobTokenIds": '["1", "2"]', "orderPriceMinTickSize": "0.01",
           "orderMinSize": "5", "question": "Q" * MB, "description": "D" * MB,
           "acceptingOrders": True, "enableOrderBook": True}
    m = parse_market(obj)  # the sane object parses; its strings are cut
    assert len(m.question) <= 500 and len(json.dumps(m.raw)) < 20_000
    with pytest.raises(MarketParseError):
        parse_market({**obj, field: value})


def test_deep_nesting_is_refused_even_under_a_raised_recursion_limit():
    """The stdlib C scanner would overflow the C stack here (a segfault, not an exception)."""
    import sys

    from pmm_widgets import safejson

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        for text in ("[" * 200_000 + "]" * 200_000, '{"a":' * 200_000 + "1" + "}" * 200_000):
            with pytest.raises(ValueError):
                safejson.loads(text)
            with pytest.raises(ValueError):
                safejson.loads(text.encode())
    finally:
        sys.setrecursionlimit(old)
    assert safejson.loads('{"a": [1, 2, {"b": 123456789012345678901234567890}]}')["a"][2]["b"] == 123456789012345678901234567890
