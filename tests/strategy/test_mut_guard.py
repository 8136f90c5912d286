"""Guard behaviours that mutation testing found unpinned (each test failed on a surviving mutant of
pmm_widgets/strategy/guard.py): reduce-only keeps a quote only when it takes the position
*strictly* closer to flat, never past it; a quote whose price or size is not a Decimal (user
code) is dropped with its reason, not raised on."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market

from pmm_widgets.domain import Quote, Side
from pmm_widgets.strategy.base import NORMAL
from pmm_widgets.strategy.guard import guard_at, reduces
from pmm_widgets.strategy.inventory import Inventory

D = Decimal


@settings(max_examples=300, deadline=None)
@given(st.integers(-300, 300), st.integers(-300, 300))
def test_reduces_is_strictly_toward_flat_without_passing_it(net_c, new_c):
    """Positions on the 0.01 size grid, fractional ones included."""
    assert reduces(D(net_c) / 100, D(new_c) / 100) is (abs(new_c) < abs(net_c) and new_c * net_c >= 0)


def test_an_unchanged_or_mirrored_position_does_not_reduce():
    for net in (D(5), D(-5), D("0.01")):
        assert not reduces(net, net)
        assert not reduces(net, -net)
        assert reduces(net, D(0))
    assert not reduces(D(0), D(0))
    assert reduces(D(1), D("0.5")) and reduces(D("0.5"), D("0.01"))


def test_a_price_or_size_that_is_not_a_decimal_is_dropped_not_raised():
    """User code may hand the guard a float: the quote is dropped with the reason."""
    m = make_market()
    good = Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.45"), D(10))
    for bad in (Quote(m.condition_id, m.yes_token_id, Side.BUY, 0.45, D(10)),  # type: ignore[arg-type]
                Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.45"), 10.0)):  # type: ignore[arg-type]
        kept, why = guard_at(m, Inventory(), D("0.01"), 40, 50, D(5), [bad, good], NORMAL)
        assert kept == [good] and why == "price and size must be Decimal"


def test_a_zero_size_quote_is_dropped_even_where_the_min_size_is_zero():
    """The guard's contract says size > 0: a market whose min order size is 0 (a notebook's
    `Market`, say) used to let a size-0 quote through, since 0 is on the 0.01 grid and not below
    the min. A SELL of 0 held 0 passed too."""
    m = make_market()
    good = Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.45"), D("0.01"))
    for zero in (Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.45"), D(0)),
                 Quote(m.condition_id, m.no_token_id, Side.SELL, D("0.50"), D("0.00"))):
        kept, why = guard_at(m, Inventory(), D("0.01"), 40, 50, D(0), [zero, good], NORMAL)
        assert kept == [good] and why == f"size {zero.size} is not positive", (kept, why)
