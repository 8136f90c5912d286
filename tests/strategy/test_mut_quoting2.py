"""quoting.py's tail (`token_quotes`, `yes_space_price`): behaviours a mutation pass found
unpinned (each test failed on a surviving mutant of pmm_widgets/strategy/quoting.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from strategy_helpers import book, make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import BUY, SELL, Quote
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.quoting import token_quotes, yes_space_price

D = Decimal
M = make_market()  # tick 0.01, min size 5
YES = book(M.yes_token_id, M.condition_id, [("0.45", 100)], [("0.55", 100)])
NO = book(M.no_token_id, M.condition_id, [("0.45", 100)], [("0.55", 100)])
TICK = D("0.01")


def tq(b: int, a: int, bid_t: int | None, ask_t: int | None, inv: Inventory | None = None,
       size: Decimal | None = None, params: Params | None = None, **books_min: str) -> list[Quote]:
    yes, no, m = YES, NO, M
    if "yes_min" in books_min:
        yes = replace(YES, min_order_size=D(books_min["yes_min"]))
    if "no_min" in books_min:
        no = replace(NO, min_order_size=D(books_min["no_min"]))
    if "market_min" in books_min:
        m = make_market(min_size=books_min["market_min"])
    return token_quotes(m, yes, no, params or Params(), inv or Inventory(), TICK, b, a, bid_t, ask_t, size)


def buy_yes(p: str, s: str = "10") -> Quote:
    return Quote(M.condition_id, M.yes_token_id, BUY, D(p), D(s))


def buy_no(p: str, s: str = "10") -> Quote:
    return Quote(M.condition_id, M.no_token_id, BUY, D(p), D(s))


def sell_yes(p: str, s: str) -> Quote:
    return Quote(M.condition_id, M.yes_token_id, SELL, D(p), D(s))


def sell_no(p: str, s: str) -> Quote:
    return Quote(M.condition_id, M.no_token_id, SELL, D(p), D(s))


def test_flat_inventory_quotes_a_yes_bid_and_a_no_bid_at_one_minus_the_ask():
    assert tq(45, 55, 47, 53) == [buy_yes("0.47"), buy_no("0.47")]
    assert tq(45, 55, 46, 52) == [buy_yes("0.46"), buy_no("0.48")]


def test_none_quotes_nothing_on_that_side():
    assert tq(45, 55, None, 53) == [buy_no("0.47")]
    assert tq(45, 55, 47, None) == [buy_yes("0.47")]
    assert tq(45, 55, None, None) == []


def test_both_prices_are_capped_at_the_band_from_the_effective_mid():
    """Book 0.30/0.70, mid 0.50, band 0.10: a bid below 0.40 quotes at 0.40, an ask above 0.60
    at 0.60; prices inside the band stay where they are."""
    assert tq(30, 70, 35, 65) == [buy_yes("0.40"), buy_no("0.40")]
    assert tq(30, 70, 40, 60) == [buy_yes("0.40"), buy_no("0.40")]
    assert tq(30, 70, 41, 59) == [buy_yes("0.41"), buy_no("0.41")]
    assert tq(30, 70, 49, 51) == [buy_yes("0.49"), buy_no("0.49")]
    # the band is measured from (b + a) / 2, not from a or b alone
    assert tq(30, 50, 10, 90) == [buy_yes("0.30"), buy_no("0.50")]


def test_post_only_keeps_the_bid_under_the_ask_and_the_ask_over_the_bid():
    """Book 0.45/0.55: a bid at or over the ask quotes one tick under it, an ask at or under the
    bid one tick over it; inside the book they stay."""
    for bid_t, want in ((56, "0.54"), (55, "0.54"), (54, "0.54"), (53, "0.53")):
        assert tq(45, 55, bid_t, None) == [buy_yes(want)], bid_t
    for ask_t, want in ((44, "0.54"), (45, "0.54"), (46, "0.54"), (47, "0.53")):
        assert tq(45, 55, None, ask_t) == [buy_no(want)], ask_t
    # crossed inputs end as a bid and an ask at one price: no pair
    assert tq(45, 47, 50, 40) == []


def test_a_band_narrower_than_a_tick_gives_no_pair_but_one_side_may_quote():
    """Band 0.001 round the mid 0.50 of a 0.40/0.60 book: both sides land on 0.50 (a bid and an
    ask at the same price are no pair); either side alone still quotes there."""
    p = Params(price_band=D("0.001"))
    assert tq(40, 60, 45, 55, params=p) == []
    assert tq(40, 60, 45, None, params=p) == [buy_yes("0.50")]
    assert tq(40, 60, None, 55, params=p) == [buy_no("0.50")]
    # a one-tick book with a half-tick mid: the band holds no tick on either side
    assert tq(45, 46, 45, 46, params=p) == []


def test_a_price_off_the_grid_ends_is_dropped_not_pulled_inward():
    """Valid prices are [tick, 1 − tick]: a bid at tick 0 or below and an ask at tick 100 or
    above quote nothing on that side; ticks 1 and 99 quote."""
    for bid_t in (0, -1):
        assert tq(3, 6, bid_t, 5) == [buy_no("0.95")]
    assert tq(3, 6, 1, 5) == [buy_yes("0.01"), buy_no("0.95")]
    for ask_t in (100, 101):
        assert tq(94, 97, 95, ask_t) == [buy_yes("0.95")]
    assert tq(94, 97, 95, 99) == [buy_yes("0.95"), buy_no("0.01")]


def test_size_is_the_floored_quote_size_raised_to_the_largest_min_size():
    assert tq(45, 55, 47, 53, params=Params(quote_size=D("12.349"))) == [buy_yes("0.47", "12.34"),
                                                                          buy_no("0.47", "12.34")]
    assert tq(45, 55, 47, None, params=Params(quote_size=D("3"))) == [buy_yes("0.47", "5")]
    assert tq(45, 55, 47, None, market_min="20") == [buy_yes("0.47", "20")]
    assert tq(45, 55, 47, None, yes_min="15") == [buy_yes("0.47", "15")]
    assert tq(45, 55, 47, None, no_min="15") == [buy_yes("0.47", "15")]
    small = Params(quote_size=D("3"))
    for mins in (("8", "6", "7"), ("6", "8", "7"), ("6", "7", "8")):
        got = tq(45, 55, 47, None, params=small, market_min=mins[0], yes_min=mins[1], no_min=mins[2])
        assert got == [buy_yes("0.47", "8")], mins


def test_size_is_never_under_the_min_size_and_keeps_the_floors_spelling():
    """`max(floor_size(quote_size), min_size)` as the builtin: the first largest, so a floor equal
    to the min size is the floor (5.00 stays 5.00, the min size 5 is not taken); a min size the
    floor falls under wins even where the unfloored quote size is above it."""
    [q] = tq(45, 55, 47, None, params=Params(quote_size=D("5.00")))
    assert q.size == D(5) and str(q.size) == "5.00"
    [q] = tq(45, 55, 47, None, params=Params(quote_size=D("5.008")), market_min="5.005")
    assert q.size == D("5.005")


def test_each_params_quote_size_is_its_own():
    """The floored quote size is kept per `params.quote_size` object: a new one is floored anew."""
    for qs in ("10", "7.5", "30", "7.5", "10"):
        assert tq(45, 55, 47, None, params=Params(quote_size=D(qs))) == [buy_yes("0.47", qs)]


def test_a_given_size_is_floored_and_raised_to_min_size():
    assert tq(45, 55, 47, 53, size=D("7.999")) == [buy_yes("0.47", "7.99"), buy_no("0.47", "7.99")]
    assert tq(45, 55, 47, None, size=D("3")) == [buy_yes("0.47", "5")]
    assert tq(45, 55, 47, None, size=D("3"), no_min="6") == [buy_yes("0.47", "6")]


def test_held_no_sells_on_the_bid_from_one_min_size_lot():
    """The bid is SELL NO at 1 − bid once a min-size lot of NO is held, at most the quote size
    and at most what is held (floored); under one lot it stays a YES bid."""
    assert tq(45, 55, 47, None, Inventory(no=D("4.99"))) == [buy_yes("0.47")]
    assert tq(45, 55, 47, None, Inventory(no=D("5"))) == [sell_no("0.53", "5")]
    assert tq(45, 55, 47, None, Inventory(no=D("7.555"))) == [sell_no("0.53", "7.55")]
    assert tq(45, 55, 47, None, Inventory(no=D("10"))) == [sell_no("0.53", "10")]
    assert tq(45, 55, 47, None, Inventory(no=D("25"))) == [sell_no("0.53", "10")]
    assert tq(45, 55, 47, 53, Inventory(no=D("25"))) == [sell_no("0.53", "10"), buy_no("0.47")]
    assert tq(45, 55, 47, None, Inventory(no=D("6")), no_min="7") == [buy_yes("0.47", "10")]


def test_held_yes_sells_on_the_ask_from_one_min_size_lot():
    assert tq(45, 55, None, 53, Inventory(yes=D("4.99"))) == [buy_no("0.47")]
    assert tq(45, 55, None, 53, Inventory(yes=D("5"))) == [sell_yes("0.53", "5")]
    assert tq(45, 55, None, 53, Inventory(yes=D("7.555"))) == [sell_yes("0.53", "7.55")]
    assert tq(45, 55, None, 53, Inventory(yes=D("10"))) == [sell_yes("0.53", "10")]
    assert tq(45, 55, None, 53, Inventory(yes=D("25"))) == [sell_yes("0.53", "10")]
    assert tq(45, 55, 47, 53, Inventory(yes=D("25"))) == [buy_yes("0.47"), sell_yes("0.53", "10")]
    assert tq(45, 55, None, 53, Inventory(yes=D("6")), yes_min="7") == [buy_no("0.47", "10")]


def test_yes_space_price_of_each_token_order():
    """BUY YES / SELL NO are bids, BUY NO / SELL YES asks; a NO price is 1 − it in YES-space."""
    assert yes_space_price(M, buy_yes("0.47")) == ("bid", D("0.47"))
    assert yes_space_price(M, sell_yes("0.53", "5")) == ("ask", D("0.53"))
    assert yes_space_price(M, buy_no("0.47")) == ("ask", D("0.53"))
    assert yes_space_price(M, sell_no("0.53", "5")) == ("bid", D("0.47"))


def test_holding_exactly_the_quote_size_sells_the_quote_size():
    """The SELL's size is `min(size, held)` as the builtin evaluates it: the quote size unless
    less is held, so a holding of 10.00 sells the quote size 10 as it is spelled."""
    [q] = tq(45, 55, 47, None, Inventory(no=D("10.00")))
    assert q == sell_no("0.53", "10") and str(q.size) == "10"
    [q] = tq(45, 55, None, 53, Inventory(yes=D("10.00")))
    assert q == sell_yes("0.53", "10") and str(q.size) == "10"
