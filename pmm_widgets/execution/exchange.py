"""The one interface the engine trades through: paper, dry-run and live all implement it.

Why: the engine must not be able to tell a simulated venue from the real one, so that what is
measured in paper is what runs live. Each implementation records its own orders and fills
through the store `Sink` it is given (it knows the venue ids and statuses first-hand); the
engine consumes fills from `poll()` to update inventory, PnL, markouts and calibration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..book import BookNote
from ..domain import BookView, Fill, Market, Mode, Order, PublicTrade, Quote
from ..ticks import valid_price

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CancelProgress:
    """What a `cancel_settled` under way has done so far, for a caller whose deadline may cut it
    (the stop's `cancel_and_verify`): the orders already cancelled are still counted then, and
    what it was waiting for is said."""

    cancelled: int = 0  # orders the cancel-alls answered so far cancelled
    awaiting: str = "cancel-all"  # "cancel-all" (its answer), or "posts" (placements posted, unanswered)
    unanswered: int = 0  # while awaiting "posts": the orders they carry


@runtime_checkable
class Exchange(Protocol):
    mode: Mode
    # orders this exchange cancelled since it was made, each once, as its venue confirmed it
    # (paper: its own simulated venue; live: the venue's answer to each cancel, whoever asked:
    # a requote, a pause, a halt, the circuit and its probe, a resolution, a universe change, the
    # stop, the watchdog, a reconcile). A cancel of an order already filled, closed or unknown is
    # not counted. The totals' `cancels` on every face are this count (`QuoteCycle.totals`).
    cancels: int

    async def start(self) -> None:
        """Connect / reconcile. Called once before the first `place`."""

    async def close(self) -> None:
        """Cancel everything we have open, then release connections."""

    def set_markets(self, markets: Sequence[Market]) -> None:
        """The current universe: tick size, min size and neg-risk flag per token come from here."""

    async def place(self, quotes: Sequence[Quote]) -> list[Order]:
        """Post quotes as post-only GTC limit orders. Returns the orders (rejected ones included)."""

    async def cancel(self, client_ids: Sequence[str]) -> list[str]:
        """Cancel by our client ids; returns the ids the venue confirmed cancelled."""

    async def cancel_market(self, market: str) -> int:
        """Cancel every open order of one market (condition id); returns how many."""

    async def cancel_all(self) -> int:
        """Cancel every open order of the account; returns how many."""

    async def count_venue_open_orders(self) -> int:
        """Open orders as the venue sees them (live: over REST). Used to verify a kill."""

    async def cancel_settled(self, settle_sec: float, progress: CancelProgress | None = None) -> tuple[int, int]:
        """A stop's cancel (and the circuit probe's): cancel_all, then wait up to `settle_sec` s
        for placements posted and not answered yet (a cycle the stop cancelled mid-post: live
        keeps such a POST running, and the venue may apply it after the cancel-all), then cancel
        again what they placed. Returns (orders cancelled, orders still without an answer: 0, or
        that many may yet come to rest at the venue). Raises when the cancel-all fails (and, with
        posts waited for, when the cancel after them fails too). Paper and dry-run: cancel_all, 0.
        `progress`: kept up to date as it goes (each cancel-all's count as it is answered)."""

    def open_orders(self) -> list[Order]:
        """Our local view of open orders."""

    def observe_book(self, book: BookView | BookNote) -> None:
        """Market data for fill simulation (paper): a `BookNote` from `MarketData`'s listeners, a
        `BookView` from the quote cycle (`book.as_view` reads either)."""

    def observe_books(self, books: Sequence[BookView | BookNote]) -> None:
        """`observe_book` of each, in order (`MarketData`'s `on_books` listener: a frame's changed
        books in one call); a failure of one is logged and the next goes on (`observe_each`)."""

    def observe_trade(self, trade: PublicTrade) -> None:
        """Public tape for fill simulation (paper queue model); no-op for live."""

    async def poll(self, now: float) -> list[Fill]:
        """Fills since the previous call (paper: simulated up to `now`; live: from the user tape)."""


def observe_each(observe_book: Callable[[BookView | BookNote], None], books: Iterable[BookView | BookNote]) -> None:
    """`observe_book(book)` for each book, in order, each call guarded: a failure is logged and the
    next book goes on, as `MarketData` guards each call of an `on_book` listener (an exchange's
    `observe_books` without a whole-frame form of its own)."""
    for book in books:
        try:
            observe_book(book)
        except Exception:  # the feed goes on
            log.exception("book listener failed")


def venue_rule_violation(q: Quote, m: Market | None) -> str | None:
    """Why the venue would refuse `q` (unknown token, market closed, price off the tick grid or
    outside (0, 1), size under the minimum), or None.

    Paper and live both check this before an order leaves the process: paper must refuse what
    the venue refuses, or paper fills overstate live ones; live must not spend a signed round
    trip and a rate-limit slot on an order that cannot rest."""
    if m is None:
        return "unknown token (not in the universe)"
    if not m.tradable:
        return "market not accepting orders"
    if not valid_price(q.price, m.tick_size):
        return f"price {q.price} not on the {m.tick_size} grid inside (0, 1)"
    if q.size < m.min_order_size:
        return f"size {q.size} below min order size {m.min_order_size}"
    return None
