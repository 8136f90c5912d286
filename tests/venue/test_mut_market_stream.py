"""Mutation pass over `venue.market_stream` (the books the engine quotes on): the rules that
decide a book's state, each pinned by a test that a one-token change of the code fails.

- REST `/books` answers: an answer older than the book is refused (and asked again while the book
  needs one), a timestamp-less one only replaces a book that needs a resync, a clamped (future)
  stamp leaves the book distrusted, a refused answer for a book that needs one is asked again.
- `price_change`: the older / already-contained rules, the two-entry inline path and the general
  path alike (each token on its own), stamps, refusals before any change, distrust.
- `book`, `tick_size_change`, `last_trade_price`, `market_resolved`: their checks and effects.
- Refused and unknown events, bad frames: the resync of exactly the tokens they name, else the
  connection's (at most once per `CONN_RESYNC_MIN_SEC`, the rest owed).
- The applier (`hold` / `settle` / `release`) and the resync loop's choice of tokens.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from pmm_widgets.book import OrderBook
from pmm_widgets.domain import PublicTrade
from pmm_widgets.venue.market_stream import FUTURE_SKEW_MS, MarketStream
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
