from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.domain import Mode, Order, Quote, Side
from pmm_widgets.strategy.planner import plan

D = Decimal
TICK = D("0.01")


def order(cid, token, side, price, size="10", filled="0"):
    return Order(cid, "m", token, side, D(price), D(size), Mode.PAPER, filled=D(filled))


def q(token, side, price, size="10"):
    return Quote("m", token, side, D(price), D(size))


def test_keeps_within_threshold_and_replaces_the_rest():
    open_ = [order("a", "y", Side.BUY, "0.40"), order("b", "n", Side.BUY, "0.50"), order("c", "x", Side.BUY, "0.3")]
    wanted = [q("y", Side.BUY, "0.41"), q("n", Side.BUY, "0.53")]
    p = plan(wanted, open_, lambda t: TICK, requote_ticks=1)
    assert p.cancel == ["b", "c"]
    assert p.place == [wanted[1]]
    p0 = plan(wanted, open_, lambda t: TICK, requote_ticks=0)
    assert set(p0.cancel) == {"a", "b", "c"} and p0.place == wanted


def test_side_matters_and_sell_larger_than_wanted_is_replaced():
    open_ = [order("a", "y", Side.SELL, "0.60", size="20")]
    p = plan([q("y", Side.SELL, "0.60", size="10")], open_, lambda t: TICK, 2)
    assert p.cancel == ["a"] and len(p.place) == 1
    p2 = plan([q("y", Side.BUY, "0.60")], open_, lambda t: TICK, 2)
    assert p2.cancel == ["a"] and len(p2.place) == 1
    # a partly filled order whose remaining fits the wanted size is kept
    p3 = plan([q("y", Side.SELL, "0.60", size="10")], [order("a", "y", Side.SELL, "0.60", size="20", filled="12")],
              lambda t: TICK, 0)
    assert p3.cancel == [] and p3.place == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("yn"), st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 99)), max_size=6),
       st.lists(st.tuples(st.sampled_from("yn"), st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 99)), max_size=6),
       st.integers(0, 5))
def test_plan_result_covers_every_wanted_quote_once(w, o, k):
    wanted = [q(t, s, str(TICK * p)) for t, s, p in w]
    open_ = [order(str(i), t, s, str(TICK * p)) for i, (t, s, p) in enumerate(o)]
    p = plan(wanted, open_, lambda t: TICK, k)
    kept = [x for x in open_ if x.client_id not in p.cancel]
    assert len(set(p.cancel)) == len(p.cancel)
    assert len(kept) + len(p.place) == len(wanted)
    # every kept order is within k ticks of a distinct wanted quote on the same token/side
    remaining = [x for x in wanted if x not in p.place or p.place.count(x) < wanted.count(x)]
    for x in kept:
        assert any(r.token_id == x.token_id and r.side == x.side and abs(r.price - x.price) <= TICK * k for r in remaining)


# -- found unpinned by mutation testing of planner.py (each failed on a surviving mutant) ---------

def test_the_closest_resting_order_is_kept():
    p = plan([q("y", Side.BUY, "0.40")], [order("far", "y", Side.BUY, "0.42"), order("near", "y", Side.BUY, "0.41"),
                                         order("at", "y", Side.BUY, "0.40")], lambda t: TICK, 2)
    assert p.cancel == ["far", "near"] and p.place == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 99), min_size=1, max_size=6, unique=True), st.integers(1, 99), st.integers(0, 5))
def test_the_kept_order_is_one_of_the_closest_within_the_threshold(prices, want, k):
    open_ = [order(str(i), "y", Side.BUY, str(TICK * p)) for i, p in enumerate(prices)]
    p = plan([q("y", Side.BUY, str(TICK * want))], open_, lambda t: TICK, k)
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
    open_ = [order("a", "y", Side.BUY, "0.40"), order("b", "y", Side.BUY, "0.45")]
    p = plan([q("y", Side.BUY, "0.40"), q("y", Side.BUY, "0.45")], open_, lambda t: TICK, 1)
    assert p.cancel == [] and p.place == []
