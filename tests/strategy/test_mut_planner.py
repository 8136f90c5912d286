"""Planner behaviours that mutation testing found unpinned (each test failed on a surviving
mutant of pmm_widgets/strategy/planner.py): the closest resting order is the one kept, and an
order already kept for one wanted quote does not stop the search for the next one."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.domain import Mode, Order, Quote, Side
from pmm_widgets.strategy.planner import plan

D = Decimal
TICK = D("0.01")


def order(cid: str, price: str, size: str = "10") -> Order:
    return Order(cid, "m", "y", Side.BUY, D(price), D(size), Mode.PAPER)


def q(price: str, size: str = "10") -> Quote:
    return Quote("m", "y", Side.BUY, D(price), D(size))


def test_the_closest_resting_order_is_kept():
    p = plan([q("0.40")], [order("far", "0.42"), order("near", "0.41"), order("at", "0.40")], lambda t: TICK, 2)
    assert p.cancel == ["far", "near"] and p.place == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 99), min_size=1, max_size=6, unique=True), st.integers(1, 99), st.integers(0, 5))
def test_the_kept_order_is_one_of_the_closest_within_the_threshold(prices, want, k):
    open_ = [order(str(i), str(TICK * p)) for i, p in enumerate(prices)]
    p = plan([q(str(TICK * want))], open_, lambda t: TICK, k)
    near = [abs(x - want) for x in prices if abs(x - want) <= k]
    kept = [o for o in open_ if o.client_id not in p.cancel]
    if near:
        assert len(kept) == 1 and p.place == []
        assert abs(kept[0].price - TICK * want) == TICK * min(near)
    else:
        assert kept == [] and len(p.place) == 1


def test_orders_resting_at_every_wanted_price_are_all_kept():
    """Each resting order satisfies at most one wanted quote: the second quote finds the second
    order though the first (kept already) comes before it."""
    open_ = [order("a", "0.40"), order("b", "0.45")]
    p = plan([q("0.40"), q("0.45")], open_, lambda t: TICK, 1)
    assert p.cancel == [] and p.place == []
