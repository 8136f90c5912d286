"""The total-inventory rule at its limit: `RiskManager.screen` and `still_holds` drop a growing
quote when the total after it is strictly over the limit (at the limit the quote is kept), for
totals below, at and above the limit, and positions of either sign; the rule is spelled out here
(`_over`), not read from `RiskManager._total_over`, which both call. Why: the cycle's fast-path
tests never land exactly on the limit, and a `>=` there survived them."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import Quote, Side
from pmm_widgets.events import EventBus
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.risk import TOTAL_RULE, RiskManager, Screened, exposure_usd

LIMIT = D(100)


def _over(total: D, own: D, new_usd: D) -> bool:
    """The rule: the total with this market's exposure replaced by the quote's is over the limit."""
    return total - own + new_usd > LIMIT


def _rm() -> RiskManager:
    return RiskManager(Params(max_total_inventory_usd=LIMIT), EventBus())


@pytest.mark.parametrize(("total", "kept"), [(D("94.99"), True), (D(95), True), (D("95.01"), False)])
def test_the_screen_keeps_a_growing_quote_at_the_total_limit_and_drops_it_past(total, kept):
    m = make_market()
    q = Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.50"), D(10))  # flat: 10 YES at mid 0.5 is 5 USD
    sc = _rm().screen(m, [q], Inventory(), D("0.5"), total)
    assert (sc.kept == (q,)) is kept
    assert sc.totals == ((D(0), D(5), not kept),)
    assert (sc.flags == ((TOTAL_RULE, None, ""),)) is not kept


@settings(max_examples=300, deadline=None)
@given(st.integers(-200, 200), st.sampled_from(("y", "n")), st.sampled_from((Side.BUY, Side.SELL)),
       st.integers(1, 60), st.integers(1, 99), st.integers(0, 20_000))
def test_the_screens_total_rule_equals_the_rule_spelled_out(net, tok, side, size, mid_c, total_c):
    """Totals on a cent grid near the limit (at it often): the verdict and its recorded totals."""
    m = make_market()
    inv = Inventory(D(net), D(0)) if net >= 0 else Inventory(D(0), D(-net))
    token = m.yes_token_id if tok == "y" else m.no_token_id
    q = Quote(m.condition_id, token, side, D("0.50"), D(size))
    mid, total = D(mid_c) / 100, D(total_c) / 100
    rm = _rm()
    sc = rm.screen(m, [q], inv, mid, total)
    for own, new_usd, over in sc.totals:
        assert own == exposure_usd(inv.net, mid)
        assert over is _over(total, own, new_usd)
        assert ((TOTAL_RULE, None, "") in sc.flags) is over


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 200), st.booleans()), max_size=4),
       st.integers(-100, 300))
def test_still_holds_at_the_limit_equals_the_rule_spelled_out(totals, shift):
    """Totals chosen so that one of them lands exactly on the limit (`shift` 0) or near it."""
    rm = _rm()
    s = Screened((), (), tuple((D(o), D(n), over) for o, n, over in totals))
    for own, new, _ in s.totals:
        tot = LIMIT + own - new + D(shift) / 100  # total - own + new == limit + shift / 100
        assert rm.still_holds(s, tot) is all(_over(tot, o, n) is over for o, n, over in s.totals)
    s1 = Screened((), (), ((D(10), D(20), False),))
    assert rm.still_holds(s1, D(90)) is True  # 90 - 10 + 20 == 100: not over the limit
    assert rm.still_holds(s1, D("90.01")) is False
