"""quoting.py behaviours that mutation testing found unpinned (each test failed on a surviving
mutant of pmm_widgets/strategy/quoting.py)."""

from __future__ import annotations

from decimal import Decimal

from strategy_helpers import book, make_market

from pmm_widgets.config import Params
from pmm_widgets.strategy import quoting
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.quoting import effective_touch, grid_price, grid_tick, make_quotes, ticks_at, yes_mid

D = Decimal


def test_grid_price_keeps_each_ticks_prices_while_other_ticks_are_asked(monkeypatch):
    """"the same object each time for the same tick object": markets of different ticks are
    priced in turn, every cycle."""
    # (an empty memo: left at 255 ticks by earlier tests, the second tick's entry cleared the first)
    monkeypatch.setattr(quoting, "_GRIDS", {})
    t1, t2 = D("0.01"), D("0.001")
    p1, p2 = grid_price(t1, 45), grid_price(t2, 450)
    for _ in range(3):
        assert grid_price(t1, 45) is p1
        assert grid_price(t2, 450) is p2


def test_grid_price_memo_is_bounded():
    """"(bounded: ticks of markets gone, junk input)": at most 256 ticks kept."""
    ticks = [D("0.01") for _ in range(300)]  # 300 distinct tick objects
    for i, t in enumerate(ticks):
        assert grid_price(t, i % 100) == t * (i % 100)
        assert len(quoting._GRIDS) <= 256


def test_the_grid_tick_is_the_coarsest_of_the_market_and_its_books():
    m = make_market(0, tick="0.01")
    fine = book(m.yes_token_id, m.condition_id, [("0.45", 10)], [("0.55", 10)], tick="0.001")
    coarse = book(m.no_token_id, m.condition_id, [("0.4", 10)], [("0.6", 10)], tick="0.1")
    assert grid_tick(m, None, None) == D("0.01")
    assert grid_tick(m, fine, None) == D("0.01")
    assert grid_tick(m, fine, coarse) == D("0.1")
    assert grid_tick(m, None, coarse) == D("0.1")


def test_the_effective_touch_combines_both_books():
    """B = max(YES best bid, 1 − NO best ask), A = min(YES best ask, 1 − NO best bid): each side
    from either book alone, and the better of the two when both have one."""
    m = make_market()
    tick = D("0.01")
    empty_yes = book(m.yes_token_id, m.condition_id, [], [])
    no_only = book(m.no_token_id, m.condition_id, [("0.40", 10)], [("0.52", 10)])
    assert effective_touch(empty_yes, no_only, tick) == (48, 60)
    yes = book(m.yes_token_id, m.condition_id, [("0.45", 10)], [("0.58", 10)])
    assert effective_touch(yes, no_only, tick) == (48, 58)
    yes_better = book(m.yes_token_id, m.condition_id, [("0.49", 10)], [("0.61", 10)])
    assert effective_touch(yes_better, no_only, tick) == (49, 60)
    empty_no = book(m.no_token_id, m.condition_id, [], [])
    assert effective_touch(yes, empty_no, tick) == (45, 58)
    assert effective_touch(empty_yes, empty_no, tick) == (None, None)


def test_yes_mid_is_the_effective_books_mid_or_none():
    """The effective mid (b + a) / 2 in price; None without both books, without both sides, or on
    a locked or crossed effective book."""
    m = make_market()
    tick = D("0.01")
    yes = book(m.yes_token_id, m.condition_id, [("0.45", 10)], [("0.58", 10)])
    no = book(m.no_token_id, m.condition_id, [("0.40", 10)], [("0.52", 10)])  # B 0.48, A 0.58
    assert yes_mid(yes, no, tick) == D("0.53")
    assert yes_mid(None, no, tick) is None and yes_mid(yes, None, tick) is None
    empty_yes = book(m.yes_token_id, m.condition_id, [], [])
    bids_only = book(m.no_token_id, m.condition_id, [("0.40", 10)], [])
    asks_only = book(m.no_token_id, m.condition_id, [], [("0.52", 10)])
    assert yes_mid(empty_yes, bids_only, tick) is None  # no bid anywhere
    assert yes_mid(empty_yes, asks_only, tick) is None  # no ask anywhere
    assert yes_mid(empty_yes, no, tick) == D("0.54")
    locked = book(m.no_token_id, m.condition_id, [("0.42", 10)], [("0.60", 10)])  # A = 1 − 0.42 = 0.58
    assert yes_mid(book(m.yes_token_id, m.condition_id, [("0.58", 10)], [("0.70", 10)]), locked, tick) is None


def test_no_quotes_on_a_locked_effective_book():
    """Each book alone uncrossed, but the YES bid meets 1 − the NO bid (B == A): there is no mid
    to measure the band from (`yes_mid` is None) and nothing to quote inside; a one-tick spread
    quotes."""
    m = make_market()
    p = Params()
    yes = book(m.yes_token_id, m.condition_id, [("0.58", 100)], [("0.70", 100)])
    locked = book(m.no_token_id, m.condition_id, [("0.42", 100)], [("0.60", 100)])  # A = 0.58 = B
    assert make_quotes(m, yes, locked, p, Inventory(), 1.0, {}) == []
    open_ = book(m.no_token_id, m.condition_id, [("0.41", 100)], [("0.60", 100)])  # A = 0.59
    assert len(make_quotes(m, yes, open_, p, Inventory(), 1.0, {})) == 2


def test_a_price_exactly_on_the_grid_is_that_tick_despite_float_rounding():
    """"snapped onto the tick grid in integer ticks (bid rounded down, ask up)": a fair value and
    half-spread whose bid or ask is a grid price (0.58 − 0.01 = 0.57) give that tick, though the
    float quotient is 56.99999999999999."""
    tf = 0.01
    for k in range(5, 96):
        for h_ticks in (1, 2, 3):
            fair, h = k / 100, h_ticks / 100
            b = k - 1
            bid_t, ask_t = ticks_at(fair, h, tf, b, b + 2, 1.0, 1.0, 0.0, 100.0, 0.5)
            assert (bid_t, ask_t) == (k - h_ticks, k + h_ticks), (k, h_ticks)


def test_the_inventory_skew_stops_growing_at_the_limit():
    """The skew moves prices by −skew × h × clip(net / max_inventory_shares, −1, 1): a position
    past the limit (a limit lowered under it) skews as one at the limit."""
    args = (0.5, 0.02, 0.01, 45, 55, 1.0, 1.0)
    for sign in (1.0, -1.0):
        at_limit = ticks_at(*args, sign * 100.0, 100.0, 0.5)
        assert at_limit != ticks_at(*args, 0.0, 100.0, 0.5)
        for past in (101.0, 150.0, 199.0, 1_000.0):
            assert ticks_at(*args, sign * past, 100.0, 0.5) == at_limit, (sign, past)
