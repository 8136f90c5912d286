"""Invariants of the exact price grid and of the domain's book view."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import BookView, Level, Market, Side
from pmm_widgets.ticks import (
    ALLOWED_TICKS,
    ceil_to_tick,
    clamp_price,
    floor_size,
    floor_to_tick,
    on_grid,
    price_to_ticks,
    ticks_to_price,
    to_decimal,
    valid_price,
)

ticks = st.sampled_from(ALLOWED_TICKS)
prices = st.decimals(min_value=Decimal("0.00001"), max_value=Decimal("0.99999"), places=5)


@given(ticks, prices)
def test_floor_and_ceil_land_on_grid_and_bracket_the_price(tick, price):
    lo, hi = floor_to_tick(price, tick), ceil_to_tick(price, tick)
    assert on_grid(lo, tick) and on_grid(hi, tick)
    assert lo <= price <= hi
    assert hi - lo in (0, tick)


@given(ticks, st.integers(min_value=1, max_value=9_999))
def test_tick_index_round_trips(tick, n):
    price = ticks_to_price(n, tick)
    assert price_to_ticks(price, tick) == n


def test_off_grid_price_is_refused():
    with pytest.raises(ValueError):
        price_to_ticks(Decimal("0.505"), Decimal("0.01"))


@given(ticks, prices)
def test_clamped_grid_price_is_always_valid(tick, price):
    assert valid_price(clamp_price(floor_to_tick(price, tick), tick), tick)


def test_valid_price_excludes_the_edges():
    t = Decimal("0.01")
    assert not valid_price(Decimal(0), t)
    assert not valid_price(Decimal(1), t)
    assert not valid_price(Decimal("0.995"), t)
    assert valid_price(Decimal("0.99"), t) and valid_price(Decimal("0.01"), t)


def test_to_decimal_parses_wire_formats_without_float_noise():
    assert to_decimal(".48") == Decimal("0.48")
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal("0.430") == Decimal("0.43")
    assert floor_size(Decimal("12.3456")) == Decimal("12.34")


def _view(bids, asks):
    return BookView(
        token_id="t",
        market="m",
        bids=tuple(Level(Decimal(p), Decimal(s)) for p, s in bids),
        asks=tuple(Level(Decimal(p), Decimal(s)) for p, s in asks),
        tick_size=Decimal("0.01"),
    )


def test_book_view_top_of_book_and_microprice():
    v = _view([("0.40", "100"), ("0.39", "50")], [("0.42", "300")])
    assert v.best_bid == Decimal("0.40") and v.best_ask == Decimal("0.42")
    assert v.mid == Decimal("0.41") and v.spread == Decimal("0.02")
    # more size on the ask: the microprice leans toward the bid
    assert v.microprice < v.mid
    assert v.depth(Side.BUY, Decimal("0.01")) == Decimal(150)
    assert v.size_at(Side.SELL, Decimal("0.42")) == Decimal(300)
    empty = _view([], [("0.5", "1")])
    assert empty.mid is None and empty.microprice is None


def test_market_tradable_and_complements():
    m = Market("c", "q?", "1", "2", Decimal("0.01"), Decimal(5))
    assert m.tradable and m.complement_of("1") == "2" and m.complement_of("2") == "1"
    assert not Market("c", "q?", "1", "2", Decimal("0.01"), Decimal(5), accepting_orders=False).tradable
    assert not Market("c", "q?", "1", "", Decimal("0.01"), Decimal(5)).tradable


def test_the_member_constants_are_the_members_and_answer_as_spelled_out() -> None:
    """`domain.BUY` / `SELL` / `REJECTED` and `strategy.base.NORMAL` / `REDUCE_ONLY` / `HALTED` (the
    members hot paths compare with `is`, read once) are the very members; `Side.opposite` and
    `OrderStatus.is_open`, which now read module constants, answer as their definitions say."""
    from pmm_widgets import domain
    from pmm_widgets.domain import OrderStatus, Side
    from pmm_widgets.strategy import base
    from pmm_widgets.strategy.base import Regime

    assert domain.BUY is Side.BUY and domain.SELL is Side.SELL and domain.REJECTED is OrderStatus.REJECTED
    assert (base.NORMAL, base.REDUCE_ONLY, base.HALTED) == (Regime.NORMAL, Regime.REDUCE_ONLY, Regime.HALTED)
    assert base.NORMAL is Regime.NORMAL and base.REDUCE_ONLY is Regime.REDUCE_ONLY and base.HALTED is Regime.HALTED
    assert Side.BUY.opposite is Side.SELL and Side.SELL.opposite is Side.BUY
    assert {s for s in OrderStatus if s.is_open} == {OrderStatus.PENDING, OrderStatus.LIVE, OrderStatus.PARTIAL}
