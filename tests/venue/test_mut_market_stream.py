"""Mutation pass over `venue.market_stream` (the books the engine quotes on): the rules that
decide a book's state, each pinned by a test that a one-token change of the code fails.

- REST `/books` answers: an answer older than the book is refused (and asked again while the book
  needs one), a clamped (future) stamp leaves the book distrusted, a refused answer for a book
  that needs one is asked again. A timestamp-less snapshot counts as older than any stamp: it
  replaces a synced book only when that book has no stamp and needs a reload (the code's rule;
  the comment in `_on_book` reads as if it replaced any book needing one: pinned as it is).
- `price_change`: the older / already-contained rules, the two-entry inline path and the general
  path alike (each token on its own), stamps, refusals before any change, distrust.
- `book`, `tick_size_change`, `last_trade_price`, `market_resolved`: their checks and effects.
- Refused and unknown events, bad frames: the resync of exactly the tokens they name, else the
  connection's (at most once per `CONN_RESYNC_MIN_SEC`, the rest owed).
- The applier (`hold` / `settle` / `release`) and the resync loop's choice of tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import typing
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from loop_turns import loop_turns

from pmm_widgets.book import OrderBook
from pmm_widgets.domain import PublicTrade, Side
from pmm_widgets.venue import market_stream as ms
from pmm_widgets.venue import wire
from pmm_widgets.venue.market_stream import FUTURE_SKEW_MS, MarketStream, _Conn
from pmm_widgets.venue.wire import BookSnapshot, PriceLevel

YES, NO = "111", "222"
NOW = 1_800_000_000.0
NOW_MS = int(NOW * 1000)


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def book_ev(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: int | None = NOW_MS,
            h: str = "h0", **extra: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"event_type": "book", "market": "0xm", "asset_id": asset, "hash": h,
                          "bids": [{"price": p, "size": s} for p, s in bids],
                          "asks": [{"price": p, "size": s} for p, s in asks], **extra}
    if ts is not None:
        ev["timestamp"] = str(ts)
    return ev


def pc(entries: list[tuple[str, str, str, str]], ts: int | None = NOW_MS + 1, h: str | None = None,
       bb: str | None = None, ba: str | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"event_type": "price_change", "market": "0xm", "price_changes": [
        {"asset_id": a, "price": p, "size": s, "side": side, "hash": h, "best_bid": bb, "best_ask": ba}
        for a, p, s, side in entries]}
    if ts is not None:
        ev["timestamp"] = str(ts)
    return ev


def snap(asset: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], ts: Any = NOW_MS,
         h: str = "r") -> BookSnapshot:
    return BookSnapshot(asset_id=asset, market="0xm", timestamp=ts, hash=h,
                        bids=[PriceLevel(p, s) for p, s in bids], asks=[PriceLevel(p, s) for p, s in asks])


def make(clock: Clock | None = None, **kw: Any) -> tuple[MarketStream, list[set[str]], list[PublicTrade]]:
    """A stream of two synced books (YES 0.40/0.60, NO 0.40/0.60 at NOW_MS), nothing pending."""
    books = {YES: OrderBook(YES, "0xm"), NO: OrderBook(NO, "0xm")}
    changed: list[set[str]] = []
    trades: list[PublicTrade] = []
    s = MarketStream("ws://127.0.0.1:9", None, books, on_books=changed.append,  # type: ignore[arg-type]
                     on_trade=trades.append, clock=clock or Clock(), **kw)
    s.handle_frame(json.dumps([book_ev(YES, [("0.40", "10")], [("0.60", "10")]),
                               book_ev(NO, [("0.40", "10")], [("0.60", "10")])]))
    assert all(b.synced and not b.needs_resync for b in books.values())
    s._pending.clear()
    changed.clear()
    return s, changed, trades


def lv(b: OrderBook) -> tuple[Any, ...]:
    return (b.wire_levels(), b.hash, b.venue_ts_ms, b.needs_resync)


# ---------------------------------------------------------------------------- REST snapshots
def test_a_rest_book_stamped_in_the_future_is_applied_but_stays_distrusted():
    """BUG (fixed): a REST book whose timestamp lies beyond now + FUTURE_SKEW_MS was clamped and
    applied as a trusted book: stamped 5 s in the future, it silently dropped every websocket
    update of the next seconds (all "older" than the stamp) while the engine quoted on it. The
    websocket `book` path distrusts such a stamp; REST now does too (stale views, asked again)."""
    s, _, _ = make()
    b = s.books[YES]
    got = s.apply_rest([snap(YES, [("0.41", "5")], [("0.59", "5")], ts="32503680000000")], NOW)
    assert got == {YES} and b.best_bid == Decimal("0.41")  # the venue's levels are applied
    assert b.venue_ts_ms == NOW_MS + FUTURE_SKEW_MS  # clamped
    assert b.needs_resync and YES in s._pending  # and not trusted: stale until a sane snapshot
    s._pending.clear()
    s.handle_frame(json.dumps(pc([(YES, "0.42", "3", "BUY")], ts=NOW_MS + 1000)))
    assert b.bids.get(42) is None  # (why it cannot be trusted: the venue's update was dropped)
    s.apply_rest([snap(YES, [("0.42", "3")], [("0.59", "5")], ts=str(NOW_MS + 1500))], NOW + 1.5)
    assert b.best_bid == Decimal("0.42") and not b.needs_resync and b.venue_ts_ms == NOW_MS + 1500
    assert YES not in s._pending


@pytest.mark.parametrize("bad", [
    {"bids": [("0.5", "-1")]},  # invalid level
    {"ts": "nan"},  # invalid timestamp
])
def test_a_refused_rest_book_is_asked_again_while_the_book_needs_one(bad):
    """BUG (fixed): a REST answer refused for a book waiting for it (invalid levels or timestamp)
    was counted and forgotten: the book stayed distrusted (its market unquoted) with nobody asking
    again, until a trade made the venue send a `book` or the market went quiet. Now it is asked again
    (at the resync loop's next turn, as an answer older than the book is)."""
    s, _, _ = make()
    b = s.books[YES]
    args: dict[str, Any] = {"bids": [("0.41", "5")], "asks": [("0.59", "5")], "ts": str(NOW_MS + 10)}
    args.update(bad)
    b.needs_resync = True
    before = lv(b)
    assert s.apply_rest([snap(YES, **args)], NOW) == set()
    assert lv(b) == before and s.stats.bad_messages == 1
    assert s._pending == {YES}
    # a healthy book refused nothing it needed: not asked again
    s._pending.clear()
    n = s.books[NO]
    assert s.apply_rest([snap(NO, **args)], NOW) == set() and s._pending == set() and not n.needs_resync


# ---------------------------------------------------------------------------- frames, connections
class FakeRecorder:
    def __init__(self) -> None:
        self.frames: list[tuple[float, int, str]] = []
        self.rests: list[tuple[float, Any]] = []
        self.conns: list[tuple[float, str, int, list[str]]] = []

    def frame(self, ts: float, conn: int, frame: str) -> None:
        self.frames.append((ts, conn, frame))

    def rest(self, ts: float, snapshots: Any) -> None:
        self.rests.append((ts, snapshots))

    def conn_event(self, ts: float, kind: str, conn: int, assets: Any) -> None:
        self.conns.append((ts, kind, conn, sorted(assets)))


def test_every_frame_is_counted_stamped_and_recorded_a_pong_only_counted():
    clock = Clock()
    s, _, _ = make(clock)
    rec = FakeRecorder()
    s.recorder = rec  # type: ignore[assignment]
    c = _Conn(3)
    frames0 = s.stats.frames
    clock.t = NOW + 1
    s.handle_frame("PONG", c)
    assert s.stats.frames == frames0 + 1 and s.stats.last_message_ts == NOW + 1 and rec.frames == []
    clock.t = NOW + 2
    text = json.dumps(pc([(YES, "0.41", "1", "BUY")]))
    s.handle_frame(text.encode(), c)
    s.handle_frame(b"{\xff", None)
    s.handle_frame("[]", c)
    assert rec.frames == [(NOW + 2, 3, text), (NOW + 2, -1, "{\ufffd"), (NOW + 2, 3, "[]")]
    assert s.stats.frames == frames0 + 4 and s.stats.last_message_ts == NOW + 2
    # a PONG is a short frame: a long one that strips to PONG is a bad frame
    bad0 = s.stats.bad_messages
    s.handle_frame(" PONG\n", c)
    assert s.stats.bad_messages == bad0
    s.handle_frame("PONG" + " " * 12, c)  # 16 characters
    assert s.stats.bad_messages == bad0 + 1
    s.handle_frame(b"PONG", c)
    assert s.stats.bad_messages == bad0 + 1 and len(rec.frames) == 4


def test_events_are_counted_on_the_inline_path_and_the_general_one():
    s, _, _ = make()
    ev0 = s.stats.events
    s.handle_frame(json.dumps([pc([(YES, "0.41", "1", "BUY")]), {"event_type": "best_bid_ask", "asset_id": YES},
                               {"event_type": "nope"}, pc([(NO, "0.41", "1", "BUY")])]))
    assert s.stats.events == ev0 + 4 and s.stats.unknown_events == 1


def test_a_failure_outside_any_handler_costs_the_frame_never_the_feed(monkeypatch):
    s, changed, _ = make()
    c = _Conn(0)
    c.assets = {YES, NO}

    def boom(frame: Any) -> Any:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(ms.wire, "decode_market_frame", boom)
    assert s.handle_frame("[]", c) == set()
    assert s.stats.bad_messages == 1 and s._pending == {YES, NO} and changed == []


def test_a_closed_connection_distrusts_exactly_its_books():
    s, _, _ = make()
    c = _Conn(0)
    c.assets = {YES, "retired-token"}
    c.ws = object()  # type: ignore[assignment]
    s.conn_closed(c)
    assert c.ws is None and s.books[YES].needs_resync and not s.books[NO].needs_resync


# ---------------------------------------------------------------------------- the applier
def big_frame(n: int, asset: str = YES, ts0: int = NOW_MS + 1) -> str:
    """`n` one-entry price changes of one book (distinct sizes of one level: the last one wins)."""
    return json.dumps([pc([(asset, "0.41", str(k + 1), "BUY")], ts=ts0 + k) for k in range(n)])


def test_a_frame_of_slice_events_applies_at_once_one_more_goes_to_the_applier():
    async def go() -> None:
        s, _, _ = make()
        s.apply_budget_sec = 1.0
        assert s.handle_frame(big_frame(ms.SLICE_EVENTS)) == {YES} and s.backlog == 0
        assert s.handle_frame(big_frame(ms.SLICE_EVENTS + 1, NO)) == set() and s.backlog == 1
        for _ in range(5):  # the applier applies it by itself (no settle needed)
            await asyncio.sleep(0)
        assert s.backlog == 0 and s.books[NO].bids[41] == Decimal(ms.SLICE_EVENTS + 1)
        s.apply_budget_sec = 0.0  # no slicing: a frame of any size applies as it is received
        assert s.handle_frame(big_frame(3 * ms.SLICE_EVENTS, YES, NOW_MS + 100)) == {YES} and s.backlog == 0

    asyncio.run(go())


def test_without_an_event_loop_a_queued_frame_applies_in_place():
    s, changed, _ = make()
    s.apply_budget_sec = 1.0
    assert s.handle_frame(big_frame(ms.SLICE_EVENTS + 8)) == set()  # through the queue...
    assert s.backlog == 0 and s.books[YES].bids[41] == Decimal(ms.SLICE_EVENTS + 8)  # ...applied at once
    assert changed == [{YES}] and s.stats.bad_messages == 0
    assert s.handle_frame(big_frame(ms.SLICE_EVENTS + 8, NO)) == set() and s.books[NO].bids[41] == Decimal(40)
    assert s.backlog == 0 and changed == [{YES}, {NO}] and s.stats.bad_messages == 0


def test_settle_waits_for_what_came_up_to_its_time_only():
    async def go() -> None:
        clock = Clock()
        s, _, _ = make(clock)
        s.apply_budget_sec = 1e-9  # one slice at a time, a turn for the loop between slices
        clock.t = NOW + 1
        s.handle_frame(big_frame(4 * ms.SLICE_EVENTS, YES))
        clock.t = NOW + 2
        s.handle_frame(big_frame(12 * ms.SLICE_EVENTS, NO))
        await s.settle(NOW + 1)
        assert s.books[YES].bids[41] == Decimal(4 * ms.SLICE_EVENTS) and s.backlog == 1  # NO's still going
        await s.settle()
        assert s.backlog == 0 and s.books[NO].bids[41] == Decimal(12 * ms.SLICE_EVENTS)

    asyncio.run(go())


def test_a_hold_bounds_settle_and_a_later_hold_or_release_moves_it():
    async def go() -> None:
        clock = Clock()
        s, changed, _ = make(clock)
        await s.hold(NOW + 1)
        clock.t = NOW + 2
        s.handle_frame(json.dumps(pc([(YES, "0.41", "7", "BUY")])))
        await asyncio.wait_for(s.settle(), 1.0)  # held: settle does not wait for it
        assert s.backlog == 1 and 41 not in s.books[YES].bids and s.holding
        await asyncio.wait_for(s.hold(NOW + 3), 1.0)  # a later hold applies what came before it
        assert s.backlog == 0 and s.books[YES].bids[41] == Decimal(7) and changed == [{YES}]
        clock.t = NOW + 4
        s.handle_frame(json.dumps(pc([(YES, "0.41", "8", "BUY")], ts=NOW_MS + 2)))
        assert s.backlog == 1
        for _ in range(5):  # the applier looked at it and left it (held)
            await asyncio.sleep(0)
        assert s.backlog == 1
        s.release()  # the applier takes it by itself
        for _ in range(5):
            await asyncio.sleep(0)
        assert s.backlog == 0 and s.books[YES].bids[41] == Decimal(8) and not s.holding

    asyncio.run(go())


# ---------------------------------------------------------------------------- REST snapshots: the rules
def test_rest_snapshots_older_than_the_book_are_refused_and_asked_again_only_when_needed():
    s, changed, _ = make()
    b = s.books[YES]
    applied0 = s.stats.snapshots_applied
    before = lv(b)
    assert s.apply_rest([snap(YES, [("0.30", "1")], [], ts=str(NOW_MS - 1))], NOW) == set()
    assert lv(b) == before and s._pending == set() and changed == []
    b.needs_resync = True  # waiting for a reload: the venue's copy lags ours, ask again
    assert s.apply_rest([snap(YES, [("0.30", "1")], [], ts=str(NOW_MS - 1))], NOW) == set()
    assert b.best_bid == Decimal("0.40") and s._pending == {YES}
    assert s.stats.snapshots_applied == applied0 and s.stats.bad_messages == 0
    s._pending.clear()
    # as old as the book: applied (the venue's word for that instant), listeners told, counted
    assert s.apply_rest([snap(YES, [("0.30", "1")], [], ts=str(NOW_MS))], NOW + 1) == {YES}
    assert b.best_bid == Decimal("0.30") and not b.needs_resync and b.ts == NOW + 1 and b.hash == "r"
    assert changed == [{YES}] and s.stats.snapshots_applied == applied0 + 1 and s._pending == set()


def test_a_rest_snapshot_without_timestamp_never_replaces_a_stamped_book():
    """An unstamped snapshot counts as older than any stamp (even for a book waiting for a
    reload: it is asked again); it replaces a synced book without a stamp only when that book
    needs a reload (the stamp 0 kept)."""
    s, _, _ = make()
    b = s.books[YES]
    for needs in (False, True):
        b.needs_resync = needs
        for ts in (None, "", "0"):
            assert s.apply_rest([snap(YES, [("0.30", "1")], [], ts=ts)], NOW) == set()
            assert b.best_bid == Decimal("0.40") and s._pending == ({YES} if needs else set())
    b.needs_resync, b.venue_ts_ms = False, 0
    s._pending.clear()
    assert s.apply_rest([snap(YES, [("0.30", "1")], [], ts=None)], NOW) == set()
    b.needs_resync = True
    assert s.apply_rest([snap(YES, [("0.30", "1")], [], ts=None)], NOW) == {YES}
    assert b.best_bid == Decimal("0.30") and b.venue_ts_ms == 0 and not b.needs_resync and s._pending == set()


def test_a_book_never_synced_takes_any_rest_snapshot_and_unknown_tokens_are_ignored():
    books = {YES: OrderBook(YES, "0xm")}
    s = MarketStream("ws://127.0.0.1:9", None, books, clock=Clock())  # type: ignore[arg-type]
    assert s.apply_rest([snap("999", [("0.5", "1")], []), snap(YES, [("0.30", "1")], [], ts=None)], NOW) == {YES}
    assert books[YES].synced and books[YES].best_bid == Decimal("0.30") and s.stats.bad_messages == 0


def test_a_book_stamped_in_our_future_by_a_clamped_frame_takes_the_venue_s_snapshot():
    """A clamped websocket frame stamps its book up to FUTURE_SKEW_MS ahead and distrusts it; the
    REST answer (stamped now, older than that stamp) must still replace it, or the book would stay
    distrusted until the stamp passed."""
    s, _, _ = make()
    b = s.books[YES]
    s.handle_frame(json.dumps(pc([(YES, "0.45", "1", "BUY")], ts=32503680000000)))
    assert b.needs_resync and b.venue_ts_ms == NOW_MS + FUTURE_SKEW_MS and s._pending == {YES}
    s._pending.clear()
    assert s.apply_rest([snap(YES, [("0.41", "2")], [("0.60", "10")], ts=str(NOW_MS + 10))], NOW) == {YES}
    assert b.best_bid == Decimal("0.41") and not b.needs_resync and b.venue_ts_ms == NOW_MS + 10
    # a trusted book never takes an older snapshot, whatever its stamp
    b.venue_ts_ms = NOW_MS + FUTURE_SKEW_MS
    assert s.apply_rest([snap(YES, [("0.31", "2")], [], ts=str(NOW_MS + 20))], NOW) == set()
    assert b.best_bid == Decimal("0.41")


def test_apply_rest_raw_decodes_counts_misfits_and_applies_the_rest():
    s, changed, _ = make()
    raw = json.dumps([{"asset_id": YES, "timestamp": str(NOW_MS + 5), "bids": [{"price": "0.42", "size": "1"}]},
                      {"bids": []}])
    assert s.apply_rest_raw(raw, NOW + 1) == {YES}
    assert s.books[YES].best_bid == Decimal("0.42") and s.stats.bad_messages == 1 and changed == [{YES}]
    assert s.apply_rest_raw([{"asset_id": NO, "timestamp": str(NOW_MS + 5), "asks": [{"price": "0.58", "size": "1"}]}],
                            NOW + 2) == {NO}


# ---------------------------------------------------------------------------- tick changes, prints, resolutions
def tick_ev(asset: str, new: str) -> str:
    return json.dumps({"event_type": "tick_size_change", "market": "0xm", "asset_id": asset, "new_tick_size": new,
                       "timestamp": str(NOW_MS + 1)})


def test_a_tick_change_rekeys_stamps_and_tells_a_refused_one_reloads():
    clock = Clock()
    s, changed, _ = make(clock)
    b = s.books[YES]
    v0 = b.version
    clock.t = NOW + 1
    assert s.handle_frame(tick_ev(YES, "0.001")) == {YES}
    assert b.tick_size == Decimal("0.001") and b.ts == NOW + 1 and b.version > v0 and not b.needs_resync
    assert b.best_bid == Decimal("0.40") and s._pending == set() and changed == [{YES}]
    v1 = b.version
    clock.t = NOW + 2
    assert s.handle_frame(tick_ev(YES, "0.001")) == {YES}  # the tick it has: no level moves, the stamp does
    assert b.ts == NOW + 2 and b.version == v1 + 1
    b.apply_change("0.405", "3", "BUY")  # a level only the fine grid holds
    assert s.handle_frame(tick_ev(YES, "0.01")) == set()  # cannot be re-keyed: kept, distrusted, reloaded
    assert b.tick_size == Decimal("0.001") and b.needs_resync and s._pending == {YES}
    assert s.stats.bad_messages == 0
    s._pending.clear()
    assert s.handle_frame(tick_ev(NO, "0.02")) == set()  # not one of the venue's ticks
    assert s.books[NO].tick_size == Decimal("0.01") and s.books[NO].needs_resync and s._pending == {NO}
    assert s.stats.bad_messages == 1


def ltp(asset: str, price: str = "0.5", size: str = "3", ts: Any = NOW_MS - 500, market: str | None = "0xm") -> str:
    ev: dict[str, Any] = {"event_type": "last_trade_price", "asset_id": asset, "price": price, "size": size,
                          "side": "SELL", "timestamp": ts}
    if market is not None:
        ev["market"] = market
    return json.dumps(ev)


def test_prints_are_bounded_and_stamped_by_the_venue_else_by_us():
    s, changed, trades = make()
    s.books[YES].market = "0xbook"
    s.handle_frame(ltp(YES, " 0.5 ", "1000000000000", str(NOW_MS - 500)))
    s.handle_frame(ltp(YES, "0.01", "0.000001", None, market=None))
    s.handle_frame(ltp(YES, "0.99", "7", "", market=""))
    assert [(t.token_id, t.market, t.price, t.size, t.side, t.ts, t.recv_ts) for t in trades] == [
        (YES, "0xm", Decimal("0.5"), Decimal(10) ** 12, Side.SELL, NOW - 0.5, NOW),
        (YES, "0xbook", Decimal("0.01"), Decimal("0.000001"), Side.SELL, NOW, NOW),
        (YES, "0xbook", Decimal("0.99"), Decimal(7), Side.SELL, NOW, NOW)]
    assert all(type(t) is PublicTrade for t in trades) and changed == [] and s.stats.bad_messages == 0
    bad = [("0", "1"), ("1", "1"), ("1.5", "1"), ("-0.5", "1"), ("NaN", "1"), ("Infinity", "1"), ("0.5", "0"),
           ("0.5", "-1"), ("0.5", "1000000000001"), ("0.5", "NaN"), ("0.5", "sNaN"), ("0.5", "x"), ("x", "1"),
           ("0." + "1" * 40, "1"), ("0.5", "1" * 41)]
    for p, q in bad:
        s.handle_frame(ltp(YES, p, q))
    s.handle_frame(ltp(YES, "0.5", "1", "-5"))  # a bad timestamp
    assert len(trades) == 3 and s.stats.bad_messages == len(bad) + 1 and s._pending == {YES}
    s.handle_frame(ltp(YES, "0." + "1" * 38, "0" * 39 + "1"))  # at the length caps (40): a print
    assert len(trades) == 4


def test_a_print_of_an_unsubscribed_token_is_dropped_one_never_asked_for_is_bad():
    s, _, trades = make()
    s._retired = {"333"}
    s.handle_frame(ltp("333"))
    assert trades == [] and s.stats.bad_messages == 0
    s.handle_frame(ltp("444"))
    assert trades == [] and s.stats.bad_messages == 1


def test_a_resolution_needs_its_market():
    s, _, _ = make()
    s.handle_frame(json.dumps({"event_type": "market_resolved", "market": "0xm", "winning_asset_id": YES}))
    s.handle_frame(json.dumps({"event_type": "market_resolved", "market": ""}))
    assert [(r.market, r.winning_asset_id) for r in s.resolutions] == [("0xm", YES)] and s.stats.bad_messages == 1


# ---------------------------------------------------------------------------- what gets reloaded
class Mono:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_frame_naming_no_known_token_reloads_its_connection_at_most_once_a_window(monkeypatch):
    mono = Mono()
    monkeypatch.setattr(ms.time, "monotonic", mono)
    s, _, _ = make()
    c = _Conn(0)
    c.assets = {YES}
    other = _Conn(1)
    other.assets = {NO}
    s.conns = [c, other]
    s.handle_frame("{not json", c)
    assert s._pending == {YES} and c.last_resync == 1000.0 and not c.resync_owed
    s._pending.clear()
    mono.t += ms.CONN_RESYNC_MIN_SEC - 0.01
    s.handle_frame(json.dumps({"event_type": "nope"}), c)  # within the window: owed, not asked
    assert s._pending == set() and c.resync_owed
    s._owed_resyncs()
    assert s._pending == set() and c.resync_owed  # the window has not ended
    mono.t = 1000.0 + ms.CONN_RESYNC_MIN_SEC
    s._owed_resyncs()
    assert s._pending == {YES} and not c.resync_owed and c.last_resync == mono.t and not other.resync_owed
    s._pending.clear()
    s._owed_resyncs()  # paid: nothing more
    assert s._pending == set()
    mono.t += ms.CONN_RESYNC_MIN_SEC
    s.handle_frame("{not json", c)  # a window later: at once
    assert s._pending == {YES} and c.last_resync == mono.t
    s._pending.clear()
    s.handle_frame("{not json", None)  # no connection (a replay): nothing to reload
    assert s._pending == set()


def test_a_refused_event_reloads_the_tokens_it_names_else_its_connection(monkeypatch):
    s, _, _ = make()
    c = _Conn(0)
    c.assets = {YES, NO}
    s.handle_frame(json.dumps({"event_type": "price_change", "price_changes": [
        {"asset_id": "999", "price": "0.5"}, {"asset_id": NO, "price": "0.5"}, "junk", {"asset_id": 5}]}), c)
    assert s._pending == {NO}
    s._pending.clear()
    s.handle_frame(json.dumps({"event_type": "last_trade_price", "asset_id": YES}), c)  # refused by the decoder
    assert s._pending == {YES}
    s._pending.clear()
    s.handle_frame(json.dumps({"event_type": "brand_new", "asset_id": NO}), c)  # unknown: may have replaced one
    assert s._pending == {NO} and s.stats.unknown_events == 1
    s._pending.clear()
    s.handle_frame(json.dumps({"event_type": "book", "asset_id": 12}), c)  # names nothing we know: the connection's
    assert s._pending == {YES, NO}


def test_a_decoded_event_a_handler_refuses_reloads_exactly_its_tokens(caplog):
    caplog.set_level(logging.DEBUG, logger=ms.__name__)
    s, _, _ = make()
    # (no connection: a reload of the connection's books instead would reload nothing)
    s.handle_frame(json.dumps(pc([(NO, "0.5", "-1", "BUY"), ("999", "0.5", "1", "BUY"), (YES, "0.5", "1", "BUY")])))
    assert s._pending == {NO, YES} and s.stats.bad_messages == 1  # (unknown token: the whole event refused)
    assert "price_change: unknown token '999'" in caplog.text
    s._pending.clear()
    s.handle_frame(json.dumps(book_ev(NO, [("0.5", "x")], [])))
    assert s._pending == {NO} and s.books[NO].needs_resync
    assert "book: book snapshot with invalid levels" in caplog.text
    s._pending.clear()
    s.handle_frame(json.dumps(pc([(YES, "0.5", "-1", "BUY")])))  # the inline one-event path and the applier's alike
    assert s._pending == {YES}
    s._pending.clear()

    def broken(ev: Any, now: float, touched: set[str]) -> None:
        raise ZeroDivisionError("a handler's bug")

    s._handlers[ms.TickSizeChangeEvent] = broken
    s.handle_frame(tick_ev(NO, "0.001"))
    assert s._pending == {NO} and "tick_size_change: ZeroDivisionError: a handler's bug" in caplog.text
    s._pending.clear()

    async def go() -> None:
        await s.hold(NOW)
        s.handle_frame(json.dumps([pc([(NO, "0.5", "-1", "BUY")]), {"event_type": "last_trade_price", "asset_id": YES}]))
        assert s._pending == set()
        s.release()
        await s.settle()

    asyncio.run(go())
    assert s._pending == {NO, YES} and s.stats.bad_messages == 6


def test_request_resync_counts_new_known_tokens_only():
    s, _, _ = make()
    s.request_resync([YES, "999", YES])
    assert s._pending == {YES} and s.stats.resync_requests == 1 and s._resync_evt.is_set()
    s._resync_evt.clear()
    s.request_resync([YES])
    assert s.stats.resync_requests == 1 and not s._resync_evt.is_set()
    s.request_resync([NO, "998"])
    assert s.stats.resync_requests == 2 and s._resync_evt.is_set()


def test_quiet_tokens_are_live_synced_books_not_updated_nor_reloaded_for_quiet_sec(monkeypatch):
    mono = Mono()
    monkeypatch.setattr(ms.time, "monotonic", mono)
    clock = Clock()
    s, _, _ = make(clock, quiet_sec=15.0)
    c = _Conn(0)
    c.assets = {YES, NO}
    c.ws = object()  # type: ignore[assignment]
    s._conn_of = {YES: c, NO: c}
    s.books["333"] = OrderBook("333", "0xm")  # never synced: not quiet, a snapshot is on its way
    clock.t = NOW + 15.0
    assert s._quiet_tokens() == set()  # exactly quiet_sec: not yet
    clock.t = NOW + 15.5
    assert s._quiet_tokens() == {YES, NO}
    s._last_rest[YES] = mono.t - 15.0  # reloaded quiet_sec ago: not yet
    s._last_rest[NO] = mono.t - 15.5
    assert s._quiet_tokens() == {NO}
    del s._conn_of[NO]  # no connection: not live (the stale rule covers it)
    assert s._quiet_tokens() == set()
    s._conn_of[NO] = c
    c.ws = None
    assert s._quiet_tokens() == set() and not s.is_live(NO)


def test_a_large_rest_answer_goes_through_the_applier_in_slices_every_snapshot_applied():
    n = 5 * ms.SLICE_EVENTS
    tokens = [str(1000 + k) for k in range(n)]

    async def go() -> None:
        books = {t: OrderBook(t, "0xm") for t in tokens}
        changed: list[set[str]] = []
        s = MarketStream("ws://127.0.0.1:9", None, books, on_books=changed.append, clock=Clock())  # type: ignore[arg-type]
        s.apply_budget_sec = 1e-9
        async with loop_turns() as turns:
            raw = json.dumps([{"asset_id": t, "timestamp": str(NOW_MS), "bids": [{"price": "0.4", "size": "1"}]}
                              for t in tokens])
            assert s.apply_rest_raw(raw, NOW) == set() and s.backlog == 1
            await s.settle()
        assert all(b.synced and b.best_bid == Decimal("0.4") for b in books.values())
        assert changed == [set(tokens)] and s.stats.snapshots_applied == n
        assert turns[0] >= n // ms.SLICE_EVENTS - 1  # the loop ran between the slices

    asyncio.run(go())


def test_a_failure_inside_the_applier_costs_its_item_only(monkeypatch):
    async def go() -> None:
        s, changed, _ = make()
        await s.hold(NOW)
        s.apply_rest_raw(json.dumps([{"asset_id": YES, "timestamp": str(NOW_MS + 1)}]), NOW)
        s.handle_frame(json.dumps(pc([(NO, "0.41", "2", "BUY")])))

        def boom(*a: Any) -> None:
            raise RuntimeError("bug")

        monkeypatch.setattr(s, "_apply_snap", boom)
        s.release()
        await s.settle()
        assert s.backlog == 0 and s.stats.bad_messages == 1 and s.books[NO].bids[41] == Decimal(2)
        assert changed == [{NO}]

    asyncio.run(go())


# ---------------------------------------------------------------------------- websocket `book`
def test_a_book_event_replaces_the_book_unless_older_or_unstamped_while_trusted():
    clock = Clock()
    s, changed, _ = make(clock)
    b = s.books[YES]
    applied0 = s.stats.snapshots_applied
    clock.t = NOW + 1
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.30", "1")], [], ts=NOW_MS - 1))) == set()  # older
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.31", "1")], [], ts=None))) == set()  # unstamped, trusted
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.32", "1")], [], ts=0))) == set()
    assert b.best_bid == Decimal("0.40") and s.stats.snapshots_applied == applied0 and changed == []
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.33", "1")], [], ts=NOW_MS, h="h1"))) == {YES}  # as old: applied
    assert (b.best_bid, b.hash, b.ts, b.venue_ts_ms) == (Decimal("0.33"), "h1", NOW + 1, NOW_MS)
    assert s.stats.snapshots_applied == applied0 + 1 and changed == [{YES}] and s._pending == set()
    b.needs_resync = True  # waiting for a reload: still never an older or an unstamped one
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.34", "1")], [], ts=None))) == set()
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.35", "1")], [], ts=NOW_MS - 1))) == set()
    assert b.best_bid == Decimal("0.33") and b.needs_resync
    b.needs_resync, b.venue_ts_ms = False, 0  # a synced book without a stamp: unstamped ones only when needed
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.36", "1")], [], ts=None))) == set()
    b.needs_resync = True
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.37", "1")], [], ts=None))) == {YES}
    assert b.best_bid == Decimal("0.37") and b.venue_ts_ms == 0 and not b.needs_resync


def test_a_book_event_of_a_book_never_synced_applies_whatever_its_stamp():
    books = {YES: OrderBook(YES, "0xm")}
    books[YES].venue_ts_ms = NOW_MS  # (a stamp without a snapshot: not a guard)
    s = MarketStream("ws://127.0.0.1:9", None, books, clock=Clock())  # type: ignore[arg-type]
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.30", "1")], [], ts=None))) == {YES}
    assert books[YES].synced and books[YES].best_bid == Decimal("0.30")


def test_a_book_event_stamped_in_the_future_is_applied_clamped_and_distrusted():
    s, _, _ = make()
    b = s.books[YES]
    assert s.handle_frame(json.dumps(book_ev(YES, [("0.30", "1")], [], ts=32503680000000))) == {YES}
    assert b.best_bid == Decimal("0.30") and b.venue_ts_ms == NOW_MS + FUTURE_SKEW_MS
    assert b.needs_resync and s._pending == {YES} and s.stats.bad_messages == 0


def test_a_book_event_of_an_unsubscribed_token_is_dropped_quietly():
    s, changed, _ = make()
    s._retired = {"333"}
    assert s.handle_frame(json.dumps(book_ev("333", [("0.30", "1")], []))) == set()
    assert s.stats.bad_messages == 0 and changed == []
    assert s.handle_frame(tick_ev("333", "0.001")) == set()
    assert s.stats.bad_messages == 0 and changed == []
    assert s.handle_frame(json.dumps(book_ev("444", [("0.30", "1")], []))) == set()
    assert s.stats.bad_messages == 1
    assert s.handle_frame(tick_ev("444", "0.001")) == set()
    assert s.stats.bad_messages == 2


# ---------------------------------------------------------------------------- `price_change`: per token
@pytest.mark.parametrize("extra", [0, 1], ids=["two-entry inline", "general"])
def test_each_token_of_a_price_change_is_judged_on_its_own_stamp_and_hash(extra):
    """A book that already holds the state (older than its stamp, or stamped alike with its hash)
    skips the entry; the other token of the same event still applies. Both paths alike (the
    two-entry one inline, more entries through `_books_of`)."""
    clock = Clock()
    s, changed, _ = make(clock)
    y, n = s.books[YES], s.books[NO]
    s.apply_rest([snap(YES, [("0.40", "10")], [("0.60", "10")], ts=str(NOW_MS + 10), h="hy")], NOW)
    changed.clear()
    entries = [(YES, "0.41", "1", "BUY"), (NO, "0.41", "1", "BUY")] + [(NO, "0.42", "1", "BUY")] * extra
    clock.t = NOW + 1
    assert s.handle_frame(json.dumps(pc(entries, ts=NOW_MS + 5, h="hz"))) == {NO}  # older than YES's snapshot
    assert 41 not in y.bids and n.bids[41] == Decimal(1) and (n.venue_ts_ms, n.hash, n.ts) == (NOW_MS + 5, "hz", NOW + 1)
    assert n.bids.get(42) == (Decimal(1) if extra else None)  # every entry of the token applied
    assert s.handle_frame(json.dumps(pc(entries, ts=NOW_MS + 10, h="hy"))) == {NO}  # YES: as old, its very hash
    assert 41 not in y.bids and y.hash == "hy"
    ent2 = [(YES, "0.43", "1", "BUY"), (NO, "0.43", "1", "BUY")] + [(NO, "0.44", "1", "BUY")] * extra
    assert s.handle_frame(json.dumps(pc(ent2, ts=NOW_MS + 10, h="h2"))) == {YES, NO}  # as old, another hash: applied
    assert y.bids[43] == Decimal(1) and y.hash == "h2" and y.venue_ts_ms == NOW_MS + 10
    assert n.venue_ts_ms == NOW_MS + 10
    ent3 = [(YES, "0.45", "1", "BUY"), (NO, "0.45", "1", "BUY")] + [(NO, "0.46", "1", "BUY")] * extra
    assert s.handle_frame(json.dumps(pc(ent3, ts=None, h=None))) == {YES, NO}  # unstamped: applied, stamps kept
    assert y.bids[45] == Decimal(1) and y.venue_ts_ms == NOW_MS + 10 and y.hash == "h2"
    assert s._pending == set() and s.stats.bad_messages == 0


@pytest.mark.parametrize("extra", [0, 1], ids=["two-entry inline", "general"])
def test_a_price_change_skips_unsynced_and_unsubscribed_books_and_refuses_unknown_tokens_first(extra):
    s, _, _ = make()
    s.books["333"] = OrderBook("333", "0xm")  # subscribed, its snapshot on its way
    s._retired = {"555"}
    for other in ("333", "555"):
        entries = [(other, "0.41", "1", "BUY"), (YES, "0.41", "2", "BUY")] + [(YES, "0.42", "2", "BUY")] * extra
        assert s.handle_frame(json.dumps(pc(entries))) == {YES}
        assert s.books[YES].bids[41] == Decimal(2) and 41 not in s.books["333"].bids
        s.books[YES].apply_change("0.41", "0", "BUY")
    for first in (True, False):  # a token never asked for: nothing applies, whichever comes first
        pair = [(YES, "0.47", "1", "BUY"), ("999", "0.47", "1", "BUY")]
        entries = (pair if first else pair[::-1]) + [(YES, "0.48", "1", "BUY")] * extra
        assert s.handle_frame(json.dumps(pc(entries))) == set()
        assert 47 not in s.books[YES].bids and s._pending == {YES}
        s._pending.clear()
    assert s.stats.bad_messages == 2


@pytest.mark.parametrize("extra", [0, 1], ids=["two-entry inline", "general"])
def test_a_crossing_or_disagreeing_or_clamped_price_change_applies_and_distrusts(extra):
    s, _, _ = make()
    y, n = s.books[YES], s.books[NO]
    cross = [(YES, "0.61", "1", "BUY"), (NO, "0.41", "1", "BUY")] + [(NO, "0.39", "1", "BUY")] * extra
    assert s.handle_frame(json.dumps(pc(cross))) == {YES, NO}
    assert y.crossed and y.needs_resync and not n.needs_resync and s._pending == {YES}
    s2, _, _ = make()
    fut = [(YES, "0.42", "1", "BUY"), (NO, "0.42", "1", "BUY")] + [(NO, "0.43", "1", "BUY")] * extra
    assert s2.handle_frame(json.dumps(pc(fut, ts=32503680000000))) == {YES, NO}
    assert all(b.needs_resync and b.venue_ts_ms == NOW_MS + FUTURE_SKEW_MS for b in s2.books.values())
    assert s2._pending == {YES, NO}
    s3, _, _ = make()
    ent = [(YES, "0.42", "1", "BUY"), (NO, "0.42", "1", "BUY")] + [(NO, "0.41", "1", "BUY")] * extra
    ev = pc(ent, bb="0.42", ba="0.60")
    ev["price_changes"][0]["best_bid"] = "0.44"  # YES: the venue's best bid is not ours
    assert s3.handle_frame(json.dumps(ev)) == {YES, NO}
    assert s3.books[YES].needs_resync and not s3.books[NO].needs_resync and s3._pending == {YES}


@pytest.mark.parametrize("extra", [0, 1], ids=["two-entry inline", "general"])
def test_an_invalid_entry_refuses_its_token_and_distrusts_it(extra):
    s, _, _ = make()
    y, n = s.books[YES], s.books[NO]
    entries = [(YES, "0.41", "1", "BUY"), (NO, "0.415", "1", "BUY")] + [(NO, "0.42", "1", "BUY")] * extra
    s.handle_frame(json.dumps(pc(entries)))
    assert y.bids[41] == Decimal(1) and 41 not in n.bids and 42 not in n.bids  # YES applied before NO's refusal
    assert n.needs_resync and s._pending == {YES, NO} and s.stats.bad_messages == 1 and n.rejected == 1


def test_connected_means_every_connection_with_assets_is_open():
    s, _, _ = make()
    assert not s.connected()  # no connection at all
    a, b, idle = _Conn(0), _Conn(1), _Conn(2)
    a.assets, b.assets = {YES}, {NO}
    s.conns = [a, b, idle]
    a.ws = object()  # type: ignore[assignment]
    assert not s.connected()
    b.ws = object()  # type: ignore[assignment]
    assert s.connected()  # (an idle connection without assets does not count)
    s.conns = [idle]
    assert not s.connected()


def test_an_event_naming_only_unknown_tokens_reloads_its_connection():
    """Refused or decoded, an event whose tokens are none of ours names nothing to reload: its
    connection's books are reloaded instead (it may have carried their updates)."""
    for ev in ({"event_type": "last_trade_price", "asset_id": "999", "price": "0.5", "size": "1", "side": "BUY"},
               {"event_type": "book", "asset_id": "999", "bids": 5},
               {"event_type": "price_change", "price_changes": [{"asset_id": "999", "price": "0.5"}]},
               pc([("999", "0.5", "1", "BUY"), ("998", "0.5", "1", "BUY")]),
               pc([("999", "0.5", "1", "BUY")])):
        s, _, _ = make()
        c = _Conn(0)
        c.assets = {YES, NO}
        s.handle_frame(json.dumps(ev), c)
        assert s._pending == {YES, NO} and s.stats.bad_messages == 1, ev


def test_an_event_that_is_no_object_costs_only_itself():
    s, _, _ = make()
    c = _Conn(0)
    c.assets = {YES, NO}
    assert s.handle_frame(json.dumps([1, pc([(YES, "0.41", "1", "BUY")]), "x"]), c) == {YES}
    assert s.books[YES].bids[41] == Decimal(1) and s.stats.bad_messages == 2 and s._pending == {YES, NO}


def test_a_print_without_a_trade_listener_is_fine():
    s, _, _ = make()
    s.on_trade = None
    s.handle_frame(ltp(YES))
    assert s.stats.bad_messages == 0


def test_the_clamp_follows_the_latest_of_our_clock_the_venue_s_stamps_and_the_venue_clock():
    clock = Clock()
    s, _, _ = make(clock)
    b = s.books[YES]
    clock.t = NOW + 100  # our clock ran on, the venue's stamps did not: our clock is the reference
    s.handle_frame(json.dumps(pc([(YES, "0.41", "1", "BUY")], ts=32503680000000)))
    assert b.venue_ts_ms == (NOW + 100) * 1000 + FUTURE_SKEW_MS and b.needs_resync
    s2, _, _ = make(Clock())
    s2.venue_clock = lambda now: now + 60.0  # a venue running ahead of us (a faster sandbox)
    s2.handle_frame(json.dumps(pc([(YES, "0.41", "1", "BUY")], ts=32503680000000)))
    assert s2.books[YES].venue_ts_ms == NOW_MS + 60_000 + FUTURE_SKEW_MS
    s2.handle_frame(json.dumps(pc([(NO, "0.41", "1", "BUY")], ts=NOW_MS + 60_000 + FUTURE_SKEW_MS)))
    assert s2.books[NO].venue_ts_ms == NOW_MS + 60_000 + FUTURE_SKEW_MS and not s2.books[NO].needs_resync


def test_a_book_listener_that_raises_never_breaks_the_feed(caplog):
    """BUG (fixed): `on_books` was called outside `handle_frame`'s guard, so a listener's error
    escaped a call documented "never raises" (into the websocket reader) and `apply_rest`."""
    s, _, _ = make()
    seen: list[set[str]] = []

    def bad(tokens: set[str]) -> None:
        seen.append(set(tokens))
        raise RuntimeError("listener bug")

    s.on_books = bad
    with caplog.at_level(logging.ERROR, "pmm_widgets.venue.market_stream"):
        got = s.handle_frame(json.dumps(pc([(YES, "0.41", "3", "BUY")])))
    assert got == {YES} and s.books[YES].best_bid == Decimal("0.41")  # applied, the listener told
    assert s.apply_rest([snap(NO, [("0.39", "5")], [("0.60", "5")], ts=str(NOW_MS + 10))], NOW) == {NO}
    assert s.books[NO].best_bid == Decimal("0.39")
    assert seen == [{YES}, {NO}] and s.stats.listener_errors == 2 and s.stats.bad_messages == 0
    assert "market book listener failed (1 so far): RuntimeError: listener bug" in caplog.text


def test_every_decoded_market_event_type_is_handled_or_knowingly_ignored():
    s, _, _ = make()
    assert set(typing.get_args(wire.MarketEvent)) == set(s._handlers) | set(wire.IGNORED_MARKET_EVENTS)
    assert not set(s._handlers) & set(wire.IGNORED_MARKET_EVENTS)
    for ignored in wire.IGNORED_MARKET_EVENTS:
        s._handle_event(msgspec.convert({}, ignored), NOW, set(), None)
    assert s.stats.bad_messages == 0

    class Stray(msgspec.Struct):
        pass

    s._handle_event(Stray(), NOW, set(), None)  # a type added to the wire without a handler here
    assert s.stats.bad_messages == 1
