"""`PaperExchange.observe_books` (issue 15, replay speed): the market data hands the paper exchange
every changed book of a frame in one call. Checked here against `observe_book` called once per
book, over random sequences of frames (1-5 book updates each, our tokens among them), prints,
placements, cancels, polls, fill-model switches and knob changes, for every fill model, with and
without latency (`paper_helpers.run_pair`): the same fills (ids, sizes, times, model inputs), the
same order and trade rows, positions, resting orders and stored books after every step."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st
from paper_helpers import FRAME, MARKETS, MODELS, OPS, PLACE, WAIT, at_once, one_by_one, run_pair, side
from paper_helpers import view as _view

from pmm_widgets.book import BookNote, OrderBook
from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, PublicTrade, Quote, Side
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.market_data import MarketData

D = Decimal
B = Side.BUY
# an order entering, then a frame with our book after another: the first update activates it, the
# second must then take the full path (the batch's test is read again after a full update)
ENTER = [("frame", [(0, 40, 2, 20, 20)]), ("place", 0, B, 40, 10), ("wait", 0.4),
               ("frame", [(2, 40, 2, 50, 50), (0, 40, 2, 10, 20), (0, 40, 2, 5, 20)]), ("trade", 0, 40, 30, Side.SELL)]
# a fill in a frame's first update, its notice due at a later update's time: delivered there, which
# the batch's test (read before the fill) would skip if it were not read again
DUE = [("frame", [(0, 38, 4, 20, 20)]), ("place", 0, B, 40, 10), ("wait", 0.4), ("frame", [(0, 38, 4, 20, 20)]),
       ("frame", [(0, 37, 2, 20, 20), (1, 40, 2, 20, 20)])]


@settings(max_examples=300, deadline=None)
@example("queue", 300.0, DUE)
@example("queue", 300.0, ENTER)
@example("queue", 0.0, ENTER)
@example("intensity", 0.0, [("frame", [(0, 40, 2, 20, 20)]), ("place", 0, B, 40, 10), ("model", "queue"),
                            ("frame", [(2, 40, 2, 50, 50), (0, 40, 2, 50, 20), (0, 40, 2, 0, 20)])])
@given(st.sampled_from(MODELS), st.sampled_from([0.0, 40.0, 300.0]),
       st.lists(st.one_of(OPS, FRAME, PLACE, WAIT), max_size=60))
def test_a_frame_at_once_equals_each_book_alone(model: str, latency_ms: float, ops: list[tuple]) -> None:
    asyncio.run(run_pair(model, latency_ms, ops, (PaperExchange, at_once), (PaperExchange, one_by_one)))


def test_a_failing_update_is_logged_and_the_frame_goes_on(caplog) -> None:  # type: ignore[no-untyped-def]
    """As the market data guards each listener call: a failure of one book's update costs that
    update only, the next books of the frame are still stored."""
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: 100.0, session="s")
    ex.set_markets(MARKETS)
    ex.observe_book(_view(0, 40, 2, 20, 20, 100.0))
    asyncio.run(ex.place([Quote("0xc0", "y0", Side.BUY, D("0.40"), D(10))]))

    def boom(book: BookView) -> None:
        raise RuntimeError("boom")

    ex._observe_book = boom  # type: ignore[method-assign]
    later = _view(1, 40, 2, 20, 20, 101.0)
    ex.observe_books([_view(0, 41, 2, 20, 20, 101.0), later])
    assert ex._latest["n0"] is later
    assert "book listener failed" in caplog.text


def _md_of_three() -> MarketData:
    md = MarketData(None, "ws://x", MemorySink(), clock=lambda: 100.0)
    for i, t in enumerate(("y0", "n0", "y1")):
        b = md.books[t] = OrderBook(t, "0xc0")
        b.apply_change(f"0.4{i}", "10", "BUY")
        b.apply_change("0.5", "7", "SELL")
        b.synced, b.ts = True, 99.0
    return md


def _spied(ex: PaperExchange) -> list[list[BookNote]]:
    calls: list[list[BookNote]] = []
    real = ex.observe_books

    def spy(notes: list[BookNote]) -> None:
        calls.append(list(notes))
        real(notes)

    ex.observe_books = spy  # type: ignore[method-assign]
    return calls


def test_market_data_hands_the_paper_exchange_each_frame_at_once() -> None:
    """The exchange registered as `on_books=ex.observe_books` (as the engine and the replayer do)
    gets a frame's notes in one call: the same notes, in the same order, as an `on_book` listener."""
    md = _md_of_three()
    ex = PaperExchange(Params(), MemorySink(), clock=lambda: 100.0, session="s")
    calls = _spied(ex)
    md.add_listener(on_books=ex.observe_books)
    md._on_books({"y0", "n0", "y1"})
    assert len(calls) == 1 and sorted(n.token_id for n in calls[0]) == ["n0", "y0", "y1"]
    assert list(ex._latest) == [n.token_id for n in calls[0]]
    plain: list[BookNote] = []
    md2 = MarketData(None, "ws://x", MemorySink(), clock=lambda: 100.0)
    md2.books.update(md.books)
    md2.add_listener(on_book=plain.append)
    md2._on_books({"y0", "n0", "y1"})
    assert [n.view() for n in plain] == [n.view() for n in calls[0]]  # the same notes, in the same order
    assert [n.stale for n in plain] == [n.stale for n in calls[0]] == [True] * 3  # (no connection: stale)


def test_on_book_is_called_per_note_whatever_the_listener() -> None:
    """No introspection: `on_book=ex.observe_book` is a per-note listener like any other (the
    exchange's `observe_books` is not looked for), and still sees every book."""
    md = _md_of_three()
    ex = PaperExchange(Params(), MemorySink(), clock=lambda: 100.0, session="s")
    calls = _spied(ex)
    md.add_listener(on_book=ex.observe_book)
    md._on_books({"y0", "n0", "y1"})
    assert calls == [] and sorted(ex._latest) == ["n0", "y0", "y1"]


def test_a_replaced_exchange_keeps_the_frame_form() -> None:
    """`replace_listener(old.observe_books, new.observe_books)` (a replay's next session): the new
    exchange gets the frames in one call each, the old one nothing more."""
    md = _md_of_three()
    old = PaperExchange(Params(), MemorySink(), clock=lambda: 100.0, session="s")
    new = PaperExchange(Params(), MemorySink(), clock=lambda: 100.0, session="t")
    old_calls, new_calls = _spied(old), _spied(new)
    md.add_listener(on_books=old.observe_books, on_trade=old.observe_trade)
    md._on_books({"y0"})
    md.replace_listener(old.observe_books, new.observe_books)
    md.replace_listener(old.observe_trade, new.observe_trade)
    md._on_books({"y0", "n0"})
    assert len(old_calls) == 1 and len(new_calls) == 1 and sorted(n.token_id for n in new_calls[0]) == ["n0", "y0"]
    assert md._trade_listeners == [new.observe_trade]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 99), st.integers(0, 30)), max_size=12),
       st.integers(1, 99), side)
def test_taker_side_reads_a_note_as_its_view(levels: list, px: int, sd: Side) -> None:
    """`_taker_side` reads a stored note's best bid / ask from its level tuples (no view built):
    the side its view gives, for any book (empty sides, crossed ones) and any print price."""
    b = OrderBook("y0", "0xc0")
    for is_bid, t, size in levels:
        b.apply_change(str(D(t) / 100), str(size), "BUY" if is_bid else "SELL")
    note = b.note(False)
    trade = PublicTrade("y0", "0xc0", D(px) / 100, D(5), sd, 1.0, 1.0)
    ex = PaperExchange(Params(), MemorySink(), clock=lambda: 1.0, session="s", infer_side=True)
    ex._latest["y0"] = note
    got = ex._taker_side(trade)
    assert note._view is None  # not built
    ex._latest["y0"] = note.view()
    assert got is ex._taker_side(trade)


def test_a_subclass_observe_book_still_sees_every_book() -> None:
    """An exchange whose class overrides `observe_book` (a test's full-path exchange) gets each
    book of a frame through its override, not the base class's batch."""
    seen: list[str] = []

    class Own(PaperExchange):
        def observe_book(self, book: BookView | BookNote) -> None:
            seen.append(book.token_id)
            super().observe_book(book)

    ex = Own(Params(), MemorySink(), clock=lambda: 100.0, session="s")
    ex.observe_books([_view(0, 40, 2, 20, 20, 100.0), _view(1, 40, 2, 20, 20, 100.0)])
    assert seen == ["y0", "n0"] and list(ex._latest) == ["y0", "n0"]
