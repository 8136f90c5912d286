"""The book's `Level` lists (what `view()` copies) stay in step with its levels through any mix
of changes, snapshots and tick-size changes: every view (full and depth-limited) and the best
bid/ask equal what the tick -> size dicts say."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.book import OrderBook
from pmm_widgets.venue.wire import BookSnapshot, PriceLevel

TICK = Decimal("0.01")

change = st.tuples(st.just("change"), st.integers(1, 99), st.sampled_from(["0", "5", "10", "12.5", "100"]),
                   st.sampled_from(["BUY", "SELL"]))
snapshot = st.tuples(st.just("snap"), st.lists(st.tuples(st.integers(1, 99), st.sampled_from(["1", "5", "7.25"])),
                                                max_size=12),
                     st.lists(st.tuples(st.integers(1, 99), st.sampled_from(["2", "5", "9"])), max_size=12))
tick = st.tuples(st.just("tick"), st.sampled_from(["0.01", "0.001", "0.1"]))


def _reference(b: OrderBook, depth: int | None) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    bids = sorted(((b.tick_size * t).normalize(), s) for t, s in b.bids.items())[::-1]
    asks = sorted(((b.tick_size * t).normalize(), s) for t, s in b.asks.items())
    return (bids, asks) if depth is None else (bids[:depth], asks[:depth])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(change, snapshot, tick), max_size=40))
def test_views_follow_the_levels_through_any_sequence(ops):
    b = OrderBook("t", "m", TICK)
    for op in ops:
        if op[0] == "change":
            _, t, size, side = op
            b.apply_change(str(b.tick_size * t) if b.tick_size * t < 1 else "0.5", size, side)
        elif op[0] == "snap":
            _, bids, asks = op
            b.apply_snapshot(BookSnapshot(asset_id="t", bids=[PriceLevel(str(TICK * p), s) for p, s in bids],
                                          asks=[PriceLevel(str(TICK * p), s) for p, s in asks], tick_size="0.01"))
        else:
            b.set_tick_size(Decimal(op[1]))
        for depth in (None, 0, 1, 3, 50):
            v = b.view(depth)
            got = ([(lv.price, lv.size) for lv in v.bids], [(lv.price, lv.size) for lv in v.asks])
            assert got == _reference(b, depth)
        bids, asks = _reference(b, None)
        assert b.best_bid == (bids[0][0] if bids else None)
        assert b.best_ask == (asks[0][0] if asks else None)
