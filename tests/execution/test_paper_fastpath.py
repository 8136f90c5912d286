"""`PaperExchange.observe_book`'s fast path (issue 15, replay speed): a book update that cannot
change anything but the stored book returns right after storing it. Checked here against an
exchange that runs every update through the full path (`paper_helpers.FullPath`, the code before
the fast path), over random sequences of book updates, prints, placements, cancels, polls,
fill-model switches and knob changes, for every fill model, with and without latency
(`paper_helpers.run_pair`): the same fills (ids, sizes, times, model inputs), the same order and
trade rows, positions, resting orders and stored books after every step."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st
from paper_helpers import MARKETS, MODELS, ONE_BOOK, OPS, PLACE, WAIT, FullPath, one_by_one, run_pair, view

from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Quote, Side
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink

D = Decimal
B = Side.BUY
# an order entering: activated at the next update of any book
ENTER = [("frame", [(0, 40, 2, 20, 20)]), ("place", 0, B, 40, 10), ("wait", 0.4), ("frame", [(2, 40, 2, 50, 50)])]


@settings(max_examples=300, deadline=None)
# each found to fail when one condition of the fast path is dropped (random sequences seldom hit them):
@example("queue", 300.0, ENTER)
@example("queue", 300.0, ENTER[:3] + [("frame", [(0, 40, 2, 20, 20)]), ("cancel", 0), ("wait", 0.4),
                                      ("frame", [(2, 40, 2, 50, 50)])])  # a cancel on its way: settled there too
@example("intensity", 0.0, [("frame", [(0, 40, 2, 20, 20)]), ("place", 0, B, 40, 10), ("model", "queue"),
                            ("frame", [(2, 40, 2, 50, 50)]), ("frame", [(0, 40, 2, 50, 20)]),
                            ("trade", 0, 40, 30, Side.SELL)])  # a model switch: rebuilt at the next update
@example("queue", 300.0, ENTER[:3] + [("frame", [(0, 40, 2, 20, 20)]), ("trade", 0, 39, 10, Side.SELL),
                                      ("wait", 0.1), ("frame", [(2, 40, 2, 50, 50)])])  # a fill notice due
@given(st.sampled_from(MODELS), st.sampled_from([0.0, 40.0, 300.0]),
       st.lists(st.one_of(OPS, ONE_BOOK, PLACE, WAIT), max_size=80))
def test_fast_path_changes_nothing(model: str, latency_ms: float, ops: list[tuple]) -> None:
    asyncio.run(run_pair(model, latency_ms, ops, (PaperExchange, one_by_one), (FullPath, one_by_one)))


def test_the_fast_path_is_taken() -> None:
    """Not a vacuous check: with nothing in flight, updates of books without our orders (and any
    book under the intensity model) skip the full path."""
    calls: list[str] = []

    class Counting(PaperExchange):
        def _observe_book(self, book: BookView) -> None:
            calls.append(book.token_id)
            super()._observe_book(book)

    for model, expect in (("intensity", []), ("queue", ["y0"])):
        calls.clear()
        ex = Counting(Params(paper_fill_model=model), MemorySink(), clock=lambda: 0.0)
        ex.set_markets(MARKETS)
        ex.observe_book(view(0, 45, 3, 10, 10, 0.0))
        asyncio.run(ex.place([Quote("0xc0", "y0", Side.BUY, D("0.45"), D(10))]))
        ex.observe_book(view(0, 45, 3, 8, 10, 0.0))  # our token
        ex.observe_book(view(2, 45, 3, 8, 10, 0.0))  # y1: no orders there
        assert calls == expect, model
