"""`MarketData`'s book listeners: `on_book` (one call per note) and `on_books` (a frame's notes in
one call), registered explicitly (no listener's form is guessed from its object). Both hear the
same notes in the same order; listeners are called in the order they were added, each with the
whole frame first; a listener's exception is logged and the feed goes on (for `on_book`, with its
next notes too); `replace_listener` keeps a listener's form."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pmm_widgets.book import BookNote, OrderBook
from pmm_widgets.errors import PmmError
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.market_data import ListenerError, MarketData

TOKENS = ("a", "b", "c")


def _md() -> MarketData:
    md = MarketData(None, "ws://x", MemorySink(), clock=lambda: 100.0)
    for i, t in enumerate(TOKENS):
        b = md.books[t] = OrderBook(t, "m", Decimal("0.01"))
        b.apply_change(f"0.4{i}", "10", "BUY")
        b.apply_change("0.5", "7", "SELL")
        b.synced, b.ts = True, 99.0
    md.books["unsynced"] = OrderBook("unsynced", "m")
    return md


def test_on_books_gets_a_frame_at_once_as_on_book_gets_it_note_by_note() -> None:
    md = _md()
    log: list[tuple[str, object]] = []
    md.add_listener(on_book=lambda n: log.append(("one", n)))
    md.add_listener(on_books=lambda ns: log.append(("all", list(ns))))
    md._on_books({*TOKENS, "unsynced", "gone"})
    ones = [n for k, n in log if k == "one"]
    alls = [ns for k, ns in log if k == "all"]
    assert [k for k, _ in log] == ["one"] * 3 + ["all"]  # in the order added, the whole frame each
    assert len(alls) == 1 and alls[0] == ones  # the very notes, in the same order
    assert sorted(n.token_id for n in ones) == sorted(TOKENS)  # synced books only
    md._on_books({"unsynced"})  # nothing synced changed: nobody is called
    assert len(log) == 4


def test_one_registration_takes_one_form() -> None:
    md = _md()
    with pytest.raises(ListenerError) as exc:
        md.add_listener(on_book=print, on_books=print)
    assert isinstance(exc.value, PmmError)
    md._on_books(set(TOKENS))  # nothing was added


def test_a_failing_listener_is_logged_and_the_feed_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    md = _md()
    got: list[str] = []
    frames: list[int] = []

    def picky(n: BookNote) -> None:
        if n.token_id == "a":
            raise RuntimeError("boom")
        got.append(n.token_id)

    def broken(ns: list[BookNote]) -> None:
        raise RuntimeError("bang")

    md.add_listener(on_book=picky)
    md.add_listener(on_books=broken)
    md.add_listener(on_books=lambda ns: frames.append(len(ns)))
    md._on_books(set(TOKENS))
    assert sorted(got) == ["b", "c"]  # its other notes still came
    assert frames == [3]  # the listener after the broken one still heard the frame
    assert caplog.text.count("book listener failed") == 2


def test_replace_listener_keeps_the_form() -> None:
    md = _md()
    one_old: list[BookNote] = []
    one_new: list[BookNote] = []
    all_old: list[list[BookNote]] = []
    all_new: list[list[BookNote]] = []
    md.add_listener(on_book=one_old.append)
    md.add_listener(on_books=all_old.append)
    md.replace_listener(one_old.append, one_new.append)
    md.replace_listener(all_old.append, all_new.append)
    md._on_books(set(TOKENS))
    assert one_old == [] and all_old == []
    assert len(one_new) == 3 and all_new == [one_new]  # each in its old place and form
