"""Mutation pass over `venue.market_stream`'s applier (`hold` / `release` / `settle` and the slices
of `apply_budget_sec`): when the applier gives the event loop a turn, and how much it applies in
between. The stream's `time` is replaced by one whose `perf_counter` the test moves (by each event
or each item applied), so every slice boundary is exact; a bystander task counts the loop's turns
and each applied event or item is stamped with the count: events stamped alike were applied in
one turn."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from loop_turns import loop_turns
from stream_time import FakeTime, fake_stream_time

from pmm_widgets.book import OrderBook
from pmm_widgets.venue import market_stream as ms
from pmm_widgets.venue.market_stream import MarketStream

YES = "111"
NOW = 1_800_000_000.0
NOW_MS = int(NOW * 1000)


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ft(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return fake_stream_time(monkeypatch, perf=100.0)


def runs(stamps: list[int]) -> list[int]:
    """The lengths of the runs of equal stamps (what was applied in one turn each)."""
    out: list[int] = []
    for k, v in enumerate(stamps):
        if k and v == stamps[k - 1]:
            out[-1] += 1
        else:
            out.append(1)
    return out


def make(tokens: list[str] | None = None, **kw: Any) -> tuple[MarketStream, Clock, list[set[str]]]:
    clock = Clock()
    books = {t: OrderBook(t, "0xm") for t in (tokens or [YES])}
    changed: list[set[str]] = []
    s = MarketStream("ws://127.0.0.1:9", None, books, on_books=changed.append, clock=clock, **kw)  # type: ignore[arg-type]
    s.apply_rest([ms.BookSnapshot(asset_id=t, market="0xm", timestamp=str(NOW_MS), hash="r",
                                  bids=[ms.wire.PriceLevel("0.40", "10")], asks=[ms.wire.PriceLevel("0.60", "10")])
                  for t in books], NOW)
    changed.clear()
    return s, clock, changed


def pc(size: int, ts: int) -> dict[str, Any]:
    return {"event_type": "price_change", "market": "0xm", "timestamp": str(ts), "price_changes": [
        {"asset_id": YES, "price": "0.41", "size": str(size), "side": "BUY"}]}


# ---------------------------------------------------------------------------- turns between items
@pytest.mark.parametrize("budget", [0.0, 10.0])
async def test_held_items_apply_in_one_turn_while_the_budget_lasts(budget):
    """No budget (frames whole as received), or a budget not spent: what waited applies in one go."""
    s, clock, changed = make()
    s.apply_budget_sec = budget
    stamps: list[int] = []
    async with loop_turns(started=True) as tick:
        s.on_books = lambda t: stamps.append(tick[0])
        await s.hold(NOW)
        for k in range(12):
            clock.t = NOW + 1 + k
            s.handle_frame(json.dumps(pc(k + 1, NOW_MS + 1 + k)))
        assert s.backlog == 12 and stamps == []
        s.release()
        await s.settle()
    assert runs(stamps) == [12] and s.backlog == 0 and s.books[YES].bids[41] == Decimal(12)


async def test_the_budget_gives_the_loop_a_turn_each_time_it_is_spent(ft):
    """Each item costs 0.5 s of (fake) time, the budget is 1.0 s: a turn after every second item,
    the budget counted again from each turn."""
    s, clock, changed = make()
    s.apply_budget_sec = 1.0
    stamps: list[int] = []

    def heard(tokens: set[str]) -> None:
        stamps.append(tick[0])
        ft.perf += 0.5

    async with loop_turns(started=True) as tick:
        s.on_books = heard
        await s.hold(NOW)
        for k in range(6):
            clock.t = NOW + 1 + k
            s.handle_frame(json.dumps(pc(k + 1, NOW_MS + 1 + k)))
        s.release()
        await s.settle()
    assert runs(stamps) == [2, 2, 2] and s.books[YES].bids[41] == Decimal(6)


# ---------------------------------------------------------------------------- slices inside an item
async def test_a_large_frame_stops_at_the_first_slice_boundary_past_its_deadline(ft, monkeypatch):
    """Each event costs 1 s of (fake) time, the budget is exactly SLICE_EVENTS s: the deadline is
    reached at the slice boundary itself, so every slice is exactly SLICE_EVENTS events."""
    s, clock, changed = make()
    n = 3 * ms.SLICE_EVENTS + 4
    s.apply_budget_sec = float(ms.SLICE_EVENTS)
    stamps: list[int] = []
    real = s._handle_event

    def timed(ev: Any, now: float, touched: set[str], conn: Any) -> None:
        stamps.append(tick[0])
        ft.perf += 1.0
        real(ev, now, touched, conn)

    monkeypatch.setattr(s, "_handle_event", timed)
    async with loop_turns(started=True) as tick:
        clock.t = NOW + 1
        assert s.handle_frame(json.dumps([pc(k + 1, NOW_MS + 1 + k) for k in range(n)])) == set()
        await s.settle()
    assert runs(stamps) == [ms.SLICE_EVENTS] * 3 + [4]
    assert s.books[YES].bids[41] == Decimal(n) and changed == [{YES}]


async def test_a_large_rest_answer_stops_at_the_first_slice_boundary_past_its_deadline(ft, monkeypatch):
    n = 3 * ms.SLICE_EVENTS + 4
    tokens = [str(1000 + k) for k in range(n)]
    s, clock, changed = make(tokens)
    s.apply_budget_sec = float(ms.SLICE_EVENTS)
    stamps: list[int] = []
    real = s._apply_snap

    def timed(snap: Any, now: float, replaced: set[str]) -> None:
        stamps.append(tick[0])
        ft.perf += 1.0
        real(snap, now, replaced)

    monkeypatch.setattr(s, "_apply_snap", timed)
    raw = [{"asset_id": t, "timestamp": str(NOW_MS + 1), "bids": [{"price": "0.45", "size": "1"}]} for t in tokens]
    clock.t = NOW + 1
    async with loop_turns(started=True) as tick:
        assert s.apply_rest_raw(raw, NOW + 1) == set() and s.backlog == 1
        await s.settle()
    assert runs(stamps) == [ms.SLICE_EVENTS] * 3 + [4]
    assert all(b.best_bid == Decimal("0.45") for b in s.books.values()) and changed == [set(tokens)]


# ---------------------------------------------------------------------------- without an event loop
def test_without_a_loop_what_came_up_to_the_hold_applies_in_place_the_rest_at_release():
    s, clock, changed = make()
    asyncio.run(s.hold(NOW))  # (nothing queued: no applier was made)
    assert s.handle_frame(json.dumps(pc(7, NOW_MS + 1))) == set()  # received at the hold's time: applies
    assert s.backlog == 0 and s.books[YES].bids[41] == Decimal(7) and changed == [{YES}]
    clock.t = NOW + 0.001
    s.handle_frame(json.dumps(pc(8, NOW_MS + 2)))  # after it: waits
    assert s.backlog == 1 and s.books[YES].bids[41] == Decimal(7)
    s.release()
    assert s.backlog == 0 and s.books[YES].bids[41] == Decimal(8) and s.stats.bad_messages == 0


# ---------------------------------------------------------------------------- quiet books
def test_a_book_never_reloaded_counts_as_reloaded_never_not_at_boot(ft):
    """`_quiet_tokens`: a live book with no REST reload yet is quiet after `quiet_sec` without an
    update, whatever the monotonic clock reads (it starts near 0 on a fresh boot)."""
    s, clock, _ = make(quiet_sec=15.0)
    c = ms._Conn(0)
    c.assets = {YES}
    c.ws = object()  # type: ignore[assignment]
    s._conn_of = {YES: c}
    clock.t = NOW + 16.0
    ft.mono = 15.5
    assert s._quiet_tokens() == {YES}
