"""The feed's fast path (issue 15, replay speed) gives exactly the books of the reference path.

`OrderBook.apply_changes` / `_parse_side` read the price and size caches inline and price levels
from the grid lists, `agrees_bbo` compares the venue's best bid/ask by tick when it can,
`parse_ts_ms` reads digit strings directly, `Level`s / `BookView`s are built through their
slots, and `apply_event` does in one call what the stream did in four (apply, stamp, crossed,
best bid / ask check), validating, setting the levels (no `_set_level` call per level) and stamping
itself (no `stamp` call). `RefBook` below is the code before that change (per-entry `_tick_of` / `_size_of` /
`_set_level`, `Level(_price(...))`, Decimal comparisons): random sequences of price changes
(valid and junk), snapshots and tick changes, fed to both, through the books alone and through
a `MarketStream` as wire frames, must leave both with the same state after every step: levels,
level lists (price spelling included), versions, refusal counts, hashes, timestamps, resync
flags, and the same touched tokens.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pmm_widgets.book import (
    _BID_SIDES,
    _SIZES,
    ONE,
    ZERO,
    BookError,
    OrderBook,
    _book_view,
    _level,
    _price,
    parse_ts_ms,
    short,
)
from pmm_widgets.domain import BookView, Level
from pmm_widgets.ticks import to_decimal
from pmm_widgets.venue.market_stream import MarketStream
from pmm_widgets.venue.wire import BookSnapshot, PriceChange, PriceLevel


class RefBook(OrderBook):
    """The reference path: `OrderBook` as it was before the fast path (issue 15, third pass)."""

    def _holds(self, book: Any) -> bool:
        return False  # every snapshot parsed and its sides set (the general path)

    def apply_changes(self, entries: Any) -> bool:
        parsed = []
        try:
            for e in entries:
                is_bid = _BID_SIDES.get(e.side)
                if is_bid is None:
                    raise BookError(f"unknown side {e.side[:20]!r}")
                parsed.append((is_bid, self._tick_of(e.price), self._size_of(e.size)))
        except (BookError, AttributeError, TypeError):
            self.rejected += 1
            return False
        for is_bid, t, s in parsed:
            self._set_level(is_bid, t, s)
        self.version += 1
        return True

    def _set_level(self, is_bid: bool, t: int, s: Decimal) -> None:
        levels, ticks, lvs = ((self.bids, self._bid_ticks, self._bid_lv) if is_bid
                              else (self.asks, self._ask_ticks, self._ask_lv))
        if s:
            i = bisect_left(ticks, t)
            lv = Level(_price(self.tick_size, t), s)
            if t in levels:
                lvs[i] = lv
            else:
                ticks.insert(i, t)
                lvs.insert(i, lv)
            levels[t] = s
        elif t in levels:
            del levels[t]
            i = bisect_left(ticks, t)
            del ticks[i]
            del lvs[i]

    def stamp(self, hash_: str | None, venue_ts_ms: int | None, ts: float) -> None:
        if hash_ is not None:
            self.hash = short(hash_)
        if venue_ts_ms is not None:
            self.venue_ts_ms = venue_ts_ms
        self.ts = ts

    def _parse_side(self, levels: Any) -> dict[int, Decimal]:
        out: dict[int, Decimal] = {}
        for lv in levels:
            t = self._tick_of(lv.price)
            s = self._size_of(lv.size)
            if s:
                out[t] = s
            else:
                out.pop(t, None)
        return out

    def _set_sides(self, bids: dict[int, Decimal], asks: dict[int, Decimal]) -> None:
        tick = self.tick_size
        self.bids, self.asks = bids, asks
        self._bid_ticks, self._ask_ticks = sorted(bids), sorted(asks)
        self._bid_lv = [Level(_price(tick, t), bids[t]) for t in self._bid_ticks]
        self._ask_lv = [Level(_price(tick, t), asks[t]) for t in self._ask_ticks]

    def apply_event(self, entries: Any, hash_: str | None, venue_ts_ms: int | None, ts: float) -> int:
        """The stream's calls before `OrderBook.apply_event`: apply_changes, stamp, then `crossed`
        and `agrees_bbo` of the last entry (a text that is no number: agreeing)."""
        if not self.apply_changes(entries):
            return -1
        self.stamp(hash_, venue_ts_ms, ts)
        last = entries[-1]
        try:
            agrees = not (last.best_bid and last.best_ask) or self.agrees_bbo(last.best_bid, last.best_ask)
        except (InvalidOperation, ValueError):
            agrees = True
        return 1 if self.crossed or not agrees else 0

    def agrees_bbo(self, best_bid: str, best_ask: str) -> bool:
        vb, va = to_decimal(best_bid), to_decimal(best_ask)
        return vb == (self.best_bid or ZERO) and va == (self.best_ask or ONE)

    @property
    def crossed(self) -> bool:
        b, a = self.best_bid_tick, self.best_ask_tick
        return b is not None and a is not None and b >= a


def ref_parse_ts_ms(v: Any) -> int:
    """`parse_ts_ms` before its digit-string shortcut."""
    if v in (None, ""):
        return 0
    if isinstance(v, bool) or not isinstance(v, (str, int, float, Decimal)):
        raise BookError("not a number")
    if isinstance(v, str) and len(v) > 32:
        raise BookError("too long")
    try:
        d = to_decimal(v)
    except (ArithmeticError, ValueError, TypeError):
        raise BookError("unparseable") from None
    if not d.is_finite() or d < 0 or d > 10**14:
        raise BookError("out of range")
    return int(d)


def state(b: OrderBook) -> tuple:
    """Everything a book holds, with the exact spelling of every level's price and size."""
    lv = tuple((str(x.price), str(x.size)) for x in (*b._bid_lv, *b._ask_lv))
    return (dict(b.bids), dict(b.asks), list(b._bid_ticks), list(b._ask_ticks), lv, b.tick_size, b.hash,
            b.venue_ts_ms, b.synced, b.needs_resync, b.rejected, b.version, b.crossed, b.best_bid, b.best_ask,
            b.market, b.min_order_size)


# prices: on the 0.01 / 0.001 grids, off them, the edges, other spellings, junk
PRICES = st.one_of(
    st.integers(1, 99).map(lambda t: str(Decimal(t) / 100)),
    st.integers(1, 999).map(lambda t: str(Decimal(t) / 1000)),
    st.sampled_from(["0.5", ".5", "0.50", "0.500", "0", "1", "1.0", "-0.5", "0.0001", "abc", "", " 0.4 ", "NaN",
                     "Infinity", "0.1e0", "5E-1", "9" * 40, "0." + "0" * 40 + "1"]),
)
SIZES = st.one_of(st.sampled_from(["0", "5", "10", "10.0", "12.5", "100", "0.00", "1e3", "-1", "x", "", "1E+13",
                                   "NaN", "7" * 45]),
                  st.integers(0, 10**6).map(str))
SIDES = st.sampled_from(["BUY", "SELL", "buy", "ask", "BID", "bid", "sell", "ASK", "HOLD", ""])
ASSETS = ("A", "B")
BBO = st.one_of(st.none(), PRICES)


@st.composite
def change_entry(draw: Any) -> PriceChange:
    return PriceChange(asset_id=draw(st.sampled_from(ASSETS)), price=draw(PRICES), size=draw(SIZES),
                       side=draw(SIDES), hash=draw(st.sampled_from([None, "h1", "h2"])), best_bid=draw(BBO),
                       best_ask=draw(BBO))


levels = st.lists(st.builds(PriceLevel, price=PRICES, size=SIZES), max_size=10)
snapshot_op = st.tuples(st.just("snap"), st.sampled_from(ASSETS), levels, levels,
                        st.sampled_from([None, "0.01", "0.001", "0.1", "0.003"]),
                        st.sampled_from([None, "", "1796033289800", "1796033289801", "17960332898"]))
change_op = st.tuples(st.just("changes"), st.lists(change_entry(), min_size=1, max_size=6),
                      st.sampled_from([None, "1796033289800", "1796033289900", "0"]))
tick_op = st.tuples(st.just("tick"), st.sampled_from(ASSETS), st.sampled_from(["0.01", "0.001", "0.1", "0.0001"]))
OPS = st.lists(st.one_of(change_op, change_op, snapshot_op, tick_op), max_size=30)


def _snap(asset: str, bids: list, asks: list, tick: str | None, ts: str | None) -> BookSnapshot:
    return BookSnapshot(asset_id=asset, bids=bids, asks=asks, tick_size=tick, timestamp=ts, hash="s" + asset)


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_books_alone_equal_the_reference(ops: list) -> None:
    fast = {a: OrderBook(a, "m", Decimal("0.01")) for a in ASSETS}
    ref = {a: RefBook(a, "m", Decimal("0.01")) for a in ASSETS}
    for op in ops:
        if op[0] == "changes":
            for a in ASSETS:
                chs = [e for e in op[1] if e.asset_id == a]
                if chs:
                    if len(chs) % 2:
                        assert fast[a].apply_changes(chs) == ref[a].apply_changes(chs)
                    else:  # the stream's call: apply, stamp, check
                        args = (chs, chs[-1].hash, 1_796_033_289_800 + len(chs), 2.0 + len(ops))
                        assert fast[a].apply_event(*args) == ref[a].apply_event(*args)
                        assert fast[a].ts == ref[a].ts
                    last = chs[-1]
                    if last.best_bid and last.best_ask:
                        try:
                            want: bool | str = ref[a].agrees_bbo(last.best_bid, last.best_ask)
                        except (InvalidOperation, ValueError):
                            want = "raises"
                        try:
                            got: bool | str = fast[a].agrees_bbo(last.best_bid, last.best_ask)
                        except (InvalidOperation, ValueError):
                            got = "raises"
                        assert got == want
        elif op[0] == "snap":
            snap = _snap(*op[1:])
            assert fast[op[1]].apply_snapshot(snap, ts=1.0) == ref[op[1]].apply_snapshot(snap, ts=1.0)
        else:
            assert fast[op[1]].set_tick_size(Decimal(op[2])) == ref[op[1]].set_tick_size(Decimal(op[2]))
        for a in ASSETS:
            assert state(fast[a]) == state(ref[a])
            assert fast[a].view() == ref[a].view()


def _frame(op: tuple) -> str:
    if op[0] == "changes":
        ev: dict[str, Any] = {"event_type": "price_change", "market": "m",
                              "price_changes": [{k: v for k, v in (("asset_id", e.asset_id), ("price", e.price),
                                                                   ("size", e.size), ("side", e.side), ("hash", e.hash),
                                                                   ("best_bid", e.best_bid), ("best_ask", e.best_ask))
                                                 if v is not None} for e in op[1]]}
        if op[2] is not None:
            ev["timestamp"] = op[2]
        return json.dumps(ev)
    if op[0] == "snap":
        _, asset, bids, asks, tick, ts = op
        ev = {"event_type": "book", "asset_id": asset, "market": "m", "hash": "s" + asset,
              "bids": [{"price": lv.price, "size": lv.size} for lv in bids],
              "asks": [{"price": lv.price, "size": lv.size} for lv in asks]}
        if tick is not None:
            ev["tick_size"] = tick
        if ts is not None:
            ev["timestamp"] = ts
        return json.dumps(ev)
    return json.dumps({"event_type": "tick_size_change", "asset_id": op[1], "market": "m", "new_tick_size": op[2],
                       "old_tick_size": "0.01"})


@settings(max_examples=100, deadline=None)
@given(OPS)
def test_stream_frames_give_the_reference_books(ops: list) -> None:
    """The same frames through two streams (fast books vs reference books): same books, same
    touched tokens, same counts of bad messages and resync requests, after every frame."""
    now = [1_796_033_289.0]
    fast = {a: OrderBook(a, "m", Decimal("0.01")) for a in ASSETS}
    ref: dict[str, OrderBook] = {a: RefBook(a, "m", Decimal("0.01")) for a in ASSETS}
    streams = [MarketStream("ws://x", None, books, clock=lambda: now[0]) for books in (fast, ref)]  # type: ignore[arg-type]
    for s, books in zip(streams, (fast, ref), strict=True):  # both start synced from one snapshot per token
        s.apply_rest([_snap(a, [PriceLevel("0.4", "10")], [PriceLevel("0.6", "10")], "0.01", "1796033289000")
                      for a in books], now[0])
    for op in ops:
        now[0] += 0.1
        frame = _frame(op)
        got = [s.handle_frame(frame) for s in streams]
        assert got[0] == got[1]
        for a in ASSETS:
            assert state(fast[a]) == state(ref[a])
        st0, st1 = streams[0].stats, streams[1].stats
        assert (st0.events, st0.bad_messages, st0.resync_requests) == (st1.events, st1.bad_messages, st1.resync_requests)
        assert streams[0]._pending == streams[1]._pending


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789", max_size=20), st.text(max_size=8),
                 st.sampled_from(["١٢٣", "²", "00017960", "0", "99999999999999", "100000000000000", "1e3", " 12"])))
def test_timestamps_equal_the_reference(v: str) -> None:
    try:
        want: int | str = ref_parse_ts_ms(v)
    except BookError:
        want = "raises"
    try:
        got: int | str = parse_ts_ms(v)
    except BookError:
        got = "raises"
    assert got == want


def test_slot_built_levels_and_views_equal_the_constructed_ones() -> None:
    lv = _level(Decimal("0.43"), Decimal("12.5"))
    assert lv == Level(Decimal("0.43"), Decimal("12.5")) and type(lv) is Level
    with pytest.raises(AttributeError):
        lv.size = Decimal(1)  # type: ignore[misc]  # still frozen
    args = ("t", "m", (lv,), (), Decimal("0.01"), Decimal(5), 1.5, 17, False, True)
    v = _book_view(*args)
    assert v == BookView(*args) and hash(v) == hash(BookView(*args)) and type(v) is BookView
    with pytest.raises(AttributeError):
        v.stale = True  # type: ignore[misc]


@pytest.mark.parametrize("tick", ["0.01", "0.003", "0.00001", "0.25"])
def test_any_grid_prices_levels_like_the_reference(tick: str) -> None:
    """Venue ticks use the grid lists; a junk tick from metadata (finer than 10,001 prices, or one
    of more than 64 grids) falls back to `_price`: the same levels either way."""
    import pmm_widgets.book as book_mod

    t = Decimal(tick)
    prices = [str((t * k).normalize()) for k in (1, 2, 3) if t * k < 1]
    entries = [PriceChange("A", p, "5", "BUY") for p in prices]
    for crowded in (False, True):
        saved = dict(book_mod._GRIDS)
        try:
            if crowded:  # 64 other grids already known: this one is not stored
                book_mod._GRIDS.clear()
                book_mod._GRIDS.update({Decimal(10) ** -k * 7: book_mod._EMPTY_GRID for k in range(1, 65)})
            fast, ref = OrderBook("A", "m", t), RefBook("A", "m", t)
            assert fast.apply_changes(entries) == ref.apply_changes(entries)
            assert state(fast) == state(ref)
            assert (t in book_mod._GRIDS) is not crowded
        finally:
            book_mod._GRIDS.clear()
            book_mod._GRIDS.update(saved)


def ref_books_of(stream: MarketStream, changes: list) -> list:
    """`_on_price_change`'s grouping before runs (issue 15, fourth pass): a dict per message, then
    `_book` per token in order of first appearance."""
    by_asset: dict[str, list] = {}
    for ch in changes:
        by_asset.setdefault(ch.asset_id, []).append(ch)
    return [(stream._book(a), chs) for a, chs in by_asset.items()]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C", "R", "U"]), st.integers(0, 3)), max_size=8))
def test_grouping_by_runs_equals_the_dict_grouping(spec: list) -> None:
    """Entries grouped by runs of one token (`MarketStream._books_of`) give the dict's groups, in
    the same order, with the same books; a token never subscribed refuses the message alike (the
    same message), a retired one ("R") has no book; tokens back after another's run included."""
    books = {a: OrderBook(a, "m", Decimal("0.01")) for a in ("A", "B", "C")}
    s = MarketStream("ws://x", None, books)  # type: ignore[arg-type]
    s._retired = {"R"}
    changes = [PriceChange(a, "0.5", str(k), "BUY") for a, k in spec]
    try:
        want: Any = [(b, [id(c) for c in chs]) for b, chs in ref_books_of(s, changes)]
    except Exception as exc:  # noqa: BLE001 - compared below
        want = (type(exc), str(exc))
    try:
        got: Any = [(b, [id(c) for c in chs]) for b, chs in s._books_of(changes)]
    except Exception as exc:  # noqa: BLE001
        got = (type(exc), str(exc))
    assert got == want


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.none(), st.sampled_from(["", "0", "1e3", " 12", "abc", "9" * 15]),
                 st.integers(1_796_033_200_000, 1_796_033_400_000).map(str)),
       st.integers(1_796_033_200_000, 1_796_033_400_000), st.sampled_from([0, 1, 2]),
       st.floats(1_796_033_200.0, 1_796_033_400.0))
def test_price_change_timestamp_inline_equals_ts(v: str | None, vmax: int, boundary: int, now: float) -> None:
    """`_on_price_change` reads a digit timestamp inline (no `_ts` call) when it can be neither
    clamped nor past the next venue minute: the same timestamp, clamping, latest venue
    timestamp, minute boundary and minute-hook calls as `_ts` (an event without entries: only
    the timestamp is read)."""
    from pmm_widgets.venue.wire import PriceChangeEvent

    streams, hooks = [], []
    for _ in range(2):
        s = MarketStream("ws://x", None, {})  # type: ignore[arg-type]
        s._venue_max_ms = vmax
        s._boundary_ms = (0, vmax - vmax % 60_000 + 60_000, vmax + 1)[boundary]
        got: list[int] = []
        s.on_venue_minute = got.append
        streams.append(s)
        hooks.append(got)
    try:
        want: Any = streams[0]._ts(v, now)
    except Exception as exc:  # noqa: BLE001 - compared below
        want = type(exc)
    seen: list[int] = []
    streams[1]._ts = lambda v_, now_: seen.append(1) or MarketStream._ts(streams[1], v_, now_)  # type: ignore[method-assign]
    try:
        streams[1]._on_price_change(PriceChangeEvent(price_changes=[], timestamp=v), now, set())
        got_exc: Any = None
    except Exception as exc:  # noqa: BLE001
        got_exc = type(exc)
    if not isinstance(want, tuple):
        assert got_exc is want
    else:
        assert got_exc is None
    for attr in ("_venue_max_ms", "_boundary_ms"):
        assert getattr(streams[0], attr) == getattr(streams[1], attr)
    assert hooks[0] == hooks[1]


def _same_price_change(fast: MarketStream, ref: MarketStream, ev: Any, now: float) -> None:
    """`ev` through `fast._on_price_change` and through `ref_on_price_change(ref, ...)`: the same
    touched tokens and the same error (type and text), or none (the books: the caller compares)."""
    out = []
    for apply in (fast._on_price_change, lambda e, n, t: ref_on_price_change(ref, e, n, t)):
        touched: set[str] = set()
        try:
            apply(ev, now, touched)
            out.append((touched, None))
        except Exception as exc:  # noqa: BLE001 - compared below
            out.append((touched, (type(exc), str(exc))))
    assert out[0] == out[1]


def ref_on_price_change(s: MarketStream, ev: Any, now: float, touched: set[str]) -> None:
    """`MarketStream._on_price_change` before its two-entry case was inlined (issue 15, pass 21):
    every event grouped by `_books_of`."""
    from pmm_widgets.venue.market_stream import FUTURE_SKEW_MS, BadMessage

    v = ev.timestamp
    ts = int(v) if type(v) is str and 0 < len(v) <= 14 and v.isascii() and v.isdigit() else 0
    vmax = s._venue_max_ms
    if 0 < ts < s._boundary_ms and (ts <= vmax + FUTURE_SKEW_MS or ts <= int(now * 1000) + FUTURE_SKEW_MS):
        clamped = False
        if ts > vmax:
            s._venue_max_ms = ts
    else:
        ts, clamped = s._ts(v, now)
    for b, chs in s._books_of(ev.price_changes):
        if b is None or not b.synced:
            continue
        h = chs[-1].hash
        vts = b.venue_ts_ms
        if ts and (ts < vts or (ts == vts and h and h == b.hash)):
            continue
        r = b.apply_event(chs, h, ts if ts > vts else None, now)
        if r < 0:
            s._distrust(b)
            raise BadMessage("price change with invalid price/size/side")
        touched.add(b.token_id)
        if r or clamped:
            s._distrust(b)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.tuples(st.sampled_from(["A", "B", "C", "R", "U"]), PRICES, SIZES, SIDES,
                                             st.sampled_from([None, "h1"]), BBO, BBO), min_size=1, max_size=3),
                          st.sampled_from([None, "1796033289800", "1796033289900"])), max_size=12))
def test_two_entry_price_changes_equal_the_grouped_path(events: list) -> None:
    """`_on_price_change` groups an event of two entries on two tokens inline (no `_books_of`
    call): the same books, touched tokens, refusals (the same message: a token never subscribed,
    "U", refuses the event before any book changes; a retired one, "R", has no book), resyncs and
    timestamps as the grouped path, after every event; events of 1 and 3 entries in between."""
    from pmm_widgets.venue.wire import PriceChangeEvent

    now = 1_796_033_289.0
    streams = []
    for _ in range(2):
        books = {a: OrderBook(a, "m", Decimal("0.01")) for a in ("A", "B", "C")}
        s = MarketStream("ws://x", None, books)  # type: ignore[arg-type]
        s._retired = {"R"}
        s.apply_rest([_snap(a, [PriceLevel("0.4", "10")], [PriceLevel("0.6", "10")], "0.01", "1796033289000")
                      for a in ("A", "B")], now)  # "C": not synced
        streams.append(s)
    fast, ref = streams
    for entries, ts in events:
        ev = PriceChangeEvent(price_changes=[PriceChange(a, p, q, sd, h, bb, ba) for a, p, q, sd, h, bb, ba in entries],
                              timestamp=ts)
        _same_price_change(fast, ref, ev, now)
        for a in ("A", "B", "C"):
            assert state(fast.books[a]) == state(ref.books[a])
        assert fast._pending == ref._pending
        assert (fast._venue_max_ms, fast._boundary_ms) == (ref._venue_max_ms, ref._boundary_ms)


class GeneralBook(OrderBook):
    """`OrderBook` whose snapshots always take the general path (`_holds` never answers yes): the
    oracle of the snapshot that confirms a book."""

    def _holds(self, book: Any) -> bool:
        return False


def _perturb(levels: list[PriceLevel], how: str, k: int) -> list[PriceLevel]:
    """A wire side almost like `levels`: one level another spelling / zero / dropped / doubled, two
    swapped, one more, or as is."""
    out = list(levels)
    if not out:
        return [PriceLevel("0.33", "7")] if how == "extra" else out
    i = k % len(out)
    lv = out[i]
    if how == "respell":
        out[i] = PriceLevel(lv.price + "0" if "." in lv.price else lv.price, lv.size + ".0" if "." not in lv.size else lv.size + "0")
    elif how == "zero":
        out[i] = PriceLevel(lv.price, "0")
    elif how == "drop":
        del out[i]
    elif how == "double":
        out.insert(i, lv)
    elif how == "swap" and len(out) > 1:
        j = (i + 1) % len(out)
        out[i], out[j] = out[j], out[i]
    elif how == "extra":
        out.append(PriceLevel("0.33", "7"))
    elif how == "size":
        out[i] = PriceLevel(lv.price, str(int(Decimal(lv.size)) + 1) if Decimal(lv.size) == int(Decimal(lv.size)) else "3")
    return out


HOW = st.sampled_from(["same", "same", "same", "respell", "zero", "drop", "double", "swap", "extra", "size"])
REPEAT_OPS = st.lists(st.one_of(
    snapshot_op,
    st.tuples(st.just("repeat"), st.sampled_from(ASSETS), HOW, HOW, st.integers(0, 20),
              st.sampled_from([None, "0.01", "0.001"])),
    change_op,
    tick_op,
), max_size=25)


@settings(max_examples=300, deadline=None)
@given(REPEAT_OPS)
def test_a_snapshot_that_confirms_the_book_equals_the_general_path(ops: list) -> None:
    """`apply_snapshot` keeps the sides of a book a snapshot confirms (`OrderBook._holds`): the same
    book, level for level (price spellings, kept `Level` objects, versions, stamps, refusals), as
    the general path gives, after snapshots that repeat the book's last one as is or almost (a
    level respelt, zeroed, dropped, doubled, swapped with the next, one more, another size; its
    tick, another or none), with price changes and tick changes in between."""
    fast = {a: OrderBook(a, "m", Decimal("0.01")) for a in ASSETS}
    ref = {a: GeneralBook(a, "m", Decimal("0.01")) for a in ASSETS}
    for n, op in enumerate(ops):
        if op[0] == "changes":
            for a in ASSETS:
                chs = [e for e in op[1] if e.asset_id == a]
                if chs:
                    args = (chs, chs[-1].hash, 1_796_033_289_800 + n, 2.0 + n)
                    assert fast[a].apply_event(*args) == ref[a].apply_event(*args)
            continue
        if op[0] == "tick":
            assert fast[op[1]].set_tick_size(Decimal(op[2])) == ref[op[1]].set_tick_size(Decimal(op[2]))
            continue
        a = op[1]
        if op[0] == "snap":
            bids, asks, tick, ts = op[2], op[3], op[4], op[5]
        else:  # the wire form of the book (best last), from its own texts where it has them
            b = fast[a]
            text = {t: p for p, t in b._px.items()}
            sizes = {id(v): k for k, v in _SIZES.items()}
            wire = [[PriceLevel(text.get(t, str(lv.price)), sizes.get(id(lv.size), str(lv.size)))
                     for t, lv in zip(ticks, lvs, strict=True)]
                    for ticks, lvs in ((b._bid_ticks, b._bid_lv), (b._ask_ticks, b._ask_lv))]
            bids, asks = _perturb(wire[0], op[2], op[4]), _perturb(wire[1][::-1], op[3], op[4] + 1)
            tick, ts = op[5], "1796033289900"
        snap = _snap(a, bids, asks, tick, ts)
        before = {x: (list(fast[x]._bid_lv), list(fast[x]._ask_lv), list(ref[x]._bid_lv), list(ref[x]._ask_lv))
                  for x in ASSETS}
        assert fast[a].apply_snapshot(snap, ts=1.0 + n) == ref[a].apply_snapshot(snap, ts=1.0 + n)
        fb, fa, rb, ra = before[a]
        for now_f, was_f, now_r, was_r in ((fast[a]._bid_lv, fb, ref[a]._bid_lv, rb),
                                           (fast[a]._ask_lv, fa, ref[a]._ask_lv, ra)):
            kept_f = [any(x is y for y in was_f) for x in now_f]
            kept_r = [any(x is y for y in was_r) for x in now_r]
            assert kept_f == kept_r  # the same levels kept (`_levels`), the others new
        for x in ASSETS:
            assert state(fast[x]) == state(ref[x])
            assert fast[x].view() == ref[x].view()


def test_a_repeated_snapshot_takes_the_fast_path() -> None:
    """The case the fast path is for: a book's own snapshot again (same texts, same tick) keeps its
    sides (the very dicts and `Level`s); one level different, and the sides are rebuilt."""
    b = OrderBook("A", "m", Decimal("0.01"))
    bids = [PriceLevel("0.40", "10"), PriceLevel("0.41", "12.5")]
    asks = [PriceLevel("0.60", "3"), PriceLevel("0.55", "10")]
    assert b.apply_snapshot(_snap("A", bids, asks, "0.01", "1796033289800"), ts=1.0)
    kept = (b.bids, b.asks, b._bid_lv, b._ask_lv)
    v = b.version
    assert b.apply_snapshot(_snap("A", list(bids), list(asks), "0.01", "1796033289900"), ts=2.0)
    assert (b.bids, b.asks, b._bid_lv, b._ask_lv) == kept and all(
        x is y for x, y in zip((b.bids, b.asks, b._bid_lv, b._ask_lv), kept, strict=True))
    assert (b.version, b.ts, b.venue_ts_ms) == (v + 1, 2.0, 1796033289900)
    assert b.apply_snapshot(_snap("A", bids, [PriceLevel("0.60", "4"), asks[1]], "0.01", "1796033289950"), ts=3.0)
    assert b.asks is not kept[1] and b.asks == {60: Decimal(4), 55: Decimal(10)}
    assert b._bid_lv == kept[2] and all(x is y for x, y in zip(b._bid_lv, kept[2], strict=True))


NEAR = st.sampled_from(["0.39", "0.4", "0.41", "0.42", "0.58", "0.59", "0.6", "0.61"])  # about the books' levels


@st.composite
def near_entry(draw: Any) -> PriceChange:
    """An entry about the books' best levels (its best bid / ask often the book's, or one tick off)."""
    return PriceChange(asset_id="A", price=draw(st.one_of(NEAR, NEAR, PRICES)), size=draw(SIZES),
                       side=draw(st.one_of(st.sampled_from(["BUY", "SELL"]), SIDES)), hash=None,
                       best_bid=draw(st.one_of(NEAR, NEAR, BBO)), best_ask=draw(st.one_of(NEAR, NEAR, BBO)))


ONE_OPS = st.lists(st.one_of(
    st.tuples(st.just("one"), st.sampled_from(ASSETS), st.one_of(near_entry(), near_entry(), change_entry()),
              st.sampled_from([None, "h1", "h2"]), st.sampled_from([None, 1_796_033_289_800, 1_796_033_289_900])),
    change_op, snapshot_op, tick_op), max_size=30)


@settings(max_examples=300, deadline=None)
@given(ONE_OPS)
def test_a_lone_entry_applies_like_the_reference(ops: list) -> None:
    """`OrderBook.apply_one` (the stream's call for a token's lone entry, and `apply_event`'s for a
    list of one) gives the reference's answer (-1 / 0 / 1: refused, agrees, crossed or not the
    venue's best bid / ask) and book (levels, stamps, refusals) for one entry, valid or junk, with
    the venue's stamps or without; entry lists, snapshots and tick changes in between."""
    fast = {a: OrderBook(a, "m", Decimal("0.01")) for a in ASSETS}
    ref = {a: RefBook(a, "m", Decimal("0.01")) for a in ASSETS}
    for a in ASSETS:
        snap = _snap(a, [PriceLevel("0.4", "10"), PriceLevel("0.41", "5")], [PriceLevel("0.6", "10"),
                                                                             PriceLevel("0.59", "5")], "0.01", None)
        assert fast[a].apply_snapshot(snap, ts=0.5) and ref[a].apply_snapshot(snap, ts=0.5)
    for n, op in enumerate(ops):
        if op[0] == "one":
            a, e, h, vts = op[1], op[2], op[3], op[4]
            assert fast[a].apply_one(e, h, vts, 3.0 + n) == ref[a].apply_event([e], h, vts, 3.0 + n)
        elif op[0] == "changes":
            for a in ASSETS:
                chs = [e for e in op[1] if e.asset_id == a]
                if chs:
                    args = (chs, chs[-1].hash, 1_796_033_289_800 + n, 2.0 + n)
                    assert fast[a].apply_event(*args) == ref[a].apply_event(*args)
        elif op[0] == "snap":
            snap = _snap(*op[1:])
            assert fast[op[1]].apply_snapshot(snap, ts=1.0) == ref[op[1]].apply_snapshot(snap, ts=1.0)
        else:
            assert fast[op[1]].set_tick_size(Decimal(op[2])) == ref[op[1]].set_tick_size(Decimal(op[2]))
        for a in ASSETS:
            assert state(fast[a]) == state(ref[a])
            assert fast[a].ts == ref[a].ts


@pytest.mark.parametrize("one", [True, False])
@pytest.mark.parametrize(("bb", "ba", "want"), [
    ("0.41", "0.59", 0),  # the venue's best bid and ask are ours
    ("0.4", "0.59", 1),  # its best bid is another of our levels' prices (our best is 0.41)
    ("0.41", "0.6", 1),  # its best ask is another of our levels' prices (our best is 0.59)
    ("0.4", "0.6", 1),
    ("0.410", "0.59", 0),  # a spelling of no level (not cached): compared by value, the same price
    ("0.42", "0.59", 1),  # ... another price
])
def test_an_event_answers_whether_the_venue_s_best_bid_and_ask_are_ours(one: bool, bb: str, ba: str, want: int) -> None:
    """The answer of `apply_one` (a lone entry) and of `apply_event`'s loop (several), each of which
    spells the check out: 1 when the last entry's best bid or best ask is not the book's, each side
    on its own (a hypothesis run need not draw a text that is a cached price of the book on one
    side only: dropping either side's comparison from either copy fails here, checked)."""
    b = OrderBook("A", "m", Decimal("0.01"))
    snap = _snap("A", [PriceLevel("0.4", "10"), PriceLevel("0.41", "5")],
                 [PriceLevel("0.6", "10"), PriceLevel("0.59", "5")], "0.01", None)
    assert b.apply_snapshot(snap, ts=0.5)
    last = PriceChange(asset_id="A", price="0.4", size="12", side="BUY", hash=None, best_bid=bb, best_ask=ba)
    if one:
        assert b.apply_one(last, None, None, 1.0) == want
    else:
        first = PriceChange(asset_id="A", price="0.6", size="11", side="SELL", hash=None, best_bid="0", best_ask="0")
        assert b.apply_event([first, last], None, None, 1.0) == want
    assert (b.best_bid, b.best_ask) == (Decimal("0.41"), Decimal("0.59"))


def ref_ts(s: MarketStream, v: Any, now: float) -> tuple[int, bool]:
    """`MarketStream._ts` before it read the kept timestamp text (issue 15, pass 23)."""
    from pmm_widgets.venue.market_stream import FUTURE_SKEW_MS, BadMessage

    if type(v) is str and 0 < len(v) <= 14 and v.isascii() and v.isdigit():
        ts = int(v)
    else:
        try:
            ts = parse_ts_ms(v)
        except BookError as exc:
            raise BadMessage(str(exc)) from None
    if ts > s._venue_max_ms + FUTURE_SKEW_MS and ts > int(now * 1000) + FUTURE_SKEW_MS:
        cap = s._ref_ms(now) + FUTURE_SKEW_MS
        if ts > cap:
            return cap, True
    if ts > s._venue_max_ms:
        s._venue_max_ms = ts
    if ts >= s._boundary_ms and ts:
        s._venue_minutes(ts)
    return ts, False


MS_NEAR = st.sampled_from([0, 1_796_033_289_799, 1_796_033_289_800, 1_796_033_289_801, 1_796_033_294_801, 1_796_033_300_000,
                           1_796_033_349_999, 1_796_033_350_000, 1_796_033_360_000, 1_796_033_500_000])
TS_TEXTS = st.sampled_from(["1796033289800", "1796033289900", "1796033349999", "1796033350000", "1796033410001",
                            "1796033299800", "1796033500000", "", "0", "abc", " 12"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("event"), TS_TEXTS, st.sampled_from(["A", "B", "AB"]), st.integers(0, 3),
              st.floats(1_796_033_280.0, 1_796_033_420.0)),
    st.tuples(st.just("state"), MS_NEAR, MS_NEAR),
    st.tuples(st.just("new_process")),
    st.tuples(st.just("ts"), st.one_of(TS_TEXTS, st.none()), st.floats(1_796_033_280.0, 1_796_033_420.0))), max_size=25))
@example([("event", "1796033289800", "A", 0, 1_796_033_290.0), ("state", 1_796_033_289_799, 1_796_033_300_000),
          ("event", "1796033289800", "AB", 1, 1_796_033_290.0)])  # the latest timestamp below the kept one
@example([("event", "1796033289800", "A", 0, 1_796_033_290.0), ("state", 1_796_033_289_800, 1_796_033_289_800),
          ("event", "1796033289800", "B", 1, 1_796_033_290.0)])  # the minute boundary reached
@example([("event", "1796033289800", "A", 0, 1_796_033_290.0), ("state", 1_796_033_289_799, 1_796_033_300_000),
          ("ts", "1796033289800", 1_796_033_290.0)])  # `_ts` too
@example([("event", "1796033289800", "A", 0, 1_796_033_290.0), ("new_process",),
          ("event", "1796033289800", "A", 1, 1_796_033_290.0)])
def test_a_repeated_timestamp_reads_like_a_new_one(ops: list) -> None:
    """`_on_price_change` keeps the last timestamp text its inline path accepted and does not parse
    it again while that path would accept it unchanged: the same books (venue stamps), distrusted
    books, latest venue timestamp, minute boundary and minute-hook calls as the path without the
    memo (`ref_on_price_change`), over events that repeat timestamps, with the stream's clock
    state set anywhere (the latest timestamp or the boundary below a kept one) and reset as the
    replay's `new_process` does."""
    from pmm_widgets.venue.wire import PriceChangeEvent

    streams, hooks = [], []
    for _ in range(2):
        books = {a: OrderBook(a, "m", Decimal("0.01")) for a in ASSETS}
        s = MarketStream("ws://x", None, books)  # type: ignore[arg-type]
        s.apply_rest([_snap(a, [PriceLevel("0.4", "10")], [PriceLevel("0.6", "10")], "0.01", "1796033280000")
                      for a in ASSETS], 1_796_033_280.0)
        got: list[int] = []
        s.on_venue_minute = got.append
        streams.append(s)
        hooks.append(got)
    fast, ref = streams
    ref._ts = lambda v, n: ref_ts(ref, v, n)  # type: ignore[method-assign]  # the reference reads no kept text
    for op in ops:
        if op[0] == "ts":  # a book's or a print's timestamp (`_ts`, which reads the kept text too)
            res = []
            for read in (fast._ts, ref._ts):
                try:
                    res.append(read(op[1], op[2]))
                except Exception as exc:  # noqa: BLE001 - compared below
                    res.append((type(exc), str(exc)))
            assert res[0] == res[1]
            assert (fast._venue_max_ms, fast._boundary_ms) == (ref._venue_max_ms, ref._boundary_ms)
            assert hooks[0] == hooks[1]
            continue
        if op[0] == "state":
            for s in streams:
                s._venue_max_ms, s._boundary_ms = op[1], op[2]
            continue
        if op[0] == "new_process":
            for s in streams:
                s._venue_max_ms, s._boundary_ms = 0, 0
            continue
        _, v, tokens, k, now = op
        sizes = ("5", "7", "0", "12")
        ev = PriceChangeEvent(price_changes=[PriceChange(a, "0.4" if i % 2 else "0.6", sizes[(k + i) % 4],
                                                         "BUY" if i % 2 else "SELL", f"h{k}")
                                             for i, a in enumerate(tokens)], timestamp=v)
        _same_price_change(fast, ref, ev, now)
        for a in ASSETS:
            assert state(fast.books[a]) == state(ref.books[a])
        assert fast._pending == ref._pending
        assert (fast._venue_max_ms, fast._boundary_ms) == (ref._venue_max_ms, ref._boundary_ms)
        assert hooks[0] == hooks[1]
