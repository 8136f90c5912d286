"""Lazy book views (issue 15, replay speed): `MarketData`'s book listeners get a `BookNote` per
synced book a frame changed, whose `view()` is built when first read. What it gives must be
exactly the `BookView` the eager path handed over at that notification (`OrderBook.view` with
the `is_stale` of the frame's time), however late it is read: after later frames changed the
book without telling the listener of it yet, after the book went unsynced (a replay's gap) or
had its stamps cleared (a new engine process), after the clock made the book stale or its
connection went down."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_book_fastpath import _frame, _snap, change_op, snapshot_op, tick_op

from pmm_widgets.book import BookNote, LatestBooks, OrderBook, as_view
from pmm_widgets.domain import BookView
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.market_data import MarketData
from pmm_widgets.venue.market_stream import _Conn
from pmm_widgets.venue.wire import PriceChange, PriceLevel

T0 = 1_796_033_289.0
ASSETS = ("A", "B")


class _Feed:
    """An offline `MarketData` over two books, both live on one connection, and a listener that
    keeps every note with the view the eager path built for it (at the notification)."""

    def __init__(self, read_at_once: bool = False) -> None:
        self.now = T0
        self.md = MarketData(None, "ws://x", MemorySink(), stale_sec=1.0, clock=lambda: self.now)
        self.conn = _Conn(0)
        self.conn.ws = object()  # type: ignore[assignment]  # open: the books are live
        for a in ASSETS:
            self.md.books[a] = OrderBook(a, "m", Decimal("0.01"))
            self.md.stream._conn_of[a] = self.conn
            self.conn.assets.add(a)
        self.seen: list[tuple[BookNote, BookView]] = []
        self.read_at_once = read_at_once
        self.md.add_listener(on_book=self._on_book)
        self.md.stream.apply_rest([_snap(a, [PriceLevel("0.4", "10")], [PriceLevel("0.6", "10")], "0.01",
                                         "1796033289000") for a in ASSETS], self.now)

    def _on_book(self, n: BookNote) -> None:
        b = self.md.books[n.token_id]
        eager = b.view(None, stale=self.md.is_stale(b, self.now))  # what `_on_books` handed over before
        self.seen.append((n, eager))
        if self.read_at_once:
            assert n.view() == eager

    def frame(self, text: str) -> None:
        self.md.stream.handle_frame(text, self.conn)

    def last(self, token: str) -> tuple[BookNote, BookView]:
        return next(x for x in reversed(self.seen) if x[0].token_id == token)


def _change(asset: str, price: str, size: str, side: str = "BUY") -> str:
    import json

    return json.dumps({"event_type": "price_change", "market": "m",
                       "price_changes": [{"asset_id": asset, "price": price, "size": size, "side": side}]})


# price changes that apply (on the grid, both sides, removals too), the level lists changed in place
VALID = st.tuples(st.just("changes"), st.lists(st.builds(
    PriceChange, asset_id=st.sampled_from(ASSETS), price=st.integers(30, 70).map(lambda t: str(Decimal(t) / 100)),
    size=st.sampled_from(["0", "5", "12.5", "40"]), side=st.sampled_from(["BUY", "SELL"])), min_size=1, max_size=4),
    st.just(None))
# besides the frames: the clock moves (books turn stale by age), the connection goes down and up,
# a book goes unsynced as in a replay's gap, or has its stamps cleared as at a new engine process
EXTRA = st.one_of(st.tuples(st.just("wait"), st.sampled_from([0.1, 0.6, 2.0])),
                  st.tuples(st.just("conn"), st.booleans()),
                  st.tuples(st.just("unsync"), st.sampled_from(ASSETS)),
                  st.tuples(st.just("new_process"), st.sampled_from(ASSETS)),
                  st.tuples(st.just("read"), st.sampled_from(ASSETS)))


def _run(ops: list[Any], read_at_once: bool) -> _Feed:
    f = _Feed(read_at_once)
    for op in ops:
        kind = op[0]
        if kind == "wait":
            f.now += op[1]
        elif kind == "conn":
            if op[1]:
                f.md.stream.conn_closed(f.conn)  # needs_resync on its books, not live
            else:
                f.conn.ws = object()  # type: ignore[assignment]
        elif kind == "unsync":
            b = f.md.books[op[1]]
            b.synced, b.needs_resync = False, True
        elif kind == "new_process":
            b = f.md.books[op[1]]
            b.synced, b.needs_resync, b.venue_ts_ms, b.hash = False, False, 0, ""
        elif kind == "read":  # a read in the middle (then cached): the view of the last notification
            n, eager = f.last(op[1])
            assert n.view() == eager
        else:
            f.now += 0.1
            f.frame(_frame(op))
    return f


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(VALID, VALID, VALID, change_op, snapshot_op, tick_op, EXTRA, EXTRA), max_size=40),
       st.booleans())
def test_every_note_reads_as_the_view_of_its_notification(ops: list[Any], read_at_once: bool) -> None:
    """Random frames (valid and junk price changes, snapshots, tick changes), clock moves,
    connection drops, unsynced books: every note, read at once (a listener that reads every
    view) or at the very end, equals the view the eager path built at its notification."""
    f = _run(ops, read_at_once)
    assert f.seen
    for n, eager in f.seen:
        assert n.view() == eager
        assert as_view(n) is n.view()  # built once


def test_a_later_unnotified_change_is_not_read() -> None:
    """The book changes after the last notification without the listener being told (it went
    unsynced, as in a replay's gap, then a change applied to it directly; its stamps cleared as at
    a new process): the note still reads as the book was when it was handed over."""
    f = _Feed()
    f.frame(_change("A", "0.45", "7"))
    n, eager = f.last("A")
    assert eager.bids[0].price == Decimal("0.45")
    b = f.md.books["A"]
    b.synced, b.venue_ts_ms, b.hash = False, 0, ""
    assert b.apply_changes([PriceChange("A", "0.45", "0", "BUY"), PriceChange("A", "0.55", "3", "SELL")])
    f.frame(_change("A", "0.44", "9"))  # an unsynced book: not applied, nobody told
    assert f.last("A")[0] is n and f.md.view("A") is None
    v = n.view()
    assert v == eager and v.bids[0].price == Decimal("0.45") and v.asks[0].price == Decimal("0.6")
    assert v.venue_ts_ms == eager.venue_ts_ms != 0


def test_the_stale_flag_is_the_frames() -> None:
    f = _Feed()
    f.frame(_change("A", "0.45", "7"))
    fresh, _ = f.last("A")
    f.now += 5.0  # past stale_sec: the book is stale now, it was not at the frame
    f.md.stream.conn_closed(f.conn)
    assert f.md.view("A").stale  # type: ignore[union-attr]
    assert fresh.view().stale is False and fresh.stale is False
    f.frame(_change("A", "0.46", "7"))  # notified while the connection is down: stale
    down, _ = f.last("A")
    f.conn.ws = object()  # type: ignore[assignment]
    f.md.books["A"].needs_resync = False
    assert not f.md.view("A").stale  # type: ignore[union-attr]
    assert down.view().stale is True


def test_latest_books_reads_notes_and_views() -> None:
    """The paper exchange's store: the latest note or view per token, read as views."""
    f = _Feed()
    f.frame(_change("A", "0.45", "7"))
    n, eager = f.last("A")
    books = LatestBooks()
    assert books.get("A") is None and "A" not in books and len(books) == 0
    books.put(n)
    v = BookView("B", "m", (), (), Decimal("0.01"))
    books.put(v)
    assert books.get("A") == eager and books["B"] is v and sorted(books) == ["A", "B"] and "A" in books
    assert as_view(v) is v and books.get("Z", v) is v and books.get("A", v) == eager
