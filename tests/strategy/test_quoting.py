"""Properties of the pure quoting decision."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import book, make_market, mirror_books

from pmm_widgets.config import Params
from pmm_widgets.domain import Side
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.quoting import effective_touch, make_quotes, yes_space_price
from pmm_widgets.ticks import valid_price

D = Decimal
TICKS = ["0.01", "0.001", "0.005", "0.0025"]


@st.composite
def scenario(draw):
    tick = draw(st.sampled_from(TICKS))
    n = int(1 / D(tick))
    m = make_market(0, tick=tick, min_size=str(draw(st.sampled_from([1, 5, 15]))))
    b = draw(st.integers(1, n - 2))
    a = draw(st.integers(b + 1, min(n - 1, b + n // 5)))
    sz = lambda: str(draw(st.integers(1, 5000)))  # noqa: E731
    yb = [(D(tick) * (b - i), sz()) for i in range(3) if b - i >= 1]
    ya = [(D(tick) * (a + i), sz()) for i in range(3) if a + i <= n - 1]
    if draw(st.booleans()):  # mirror NO book
        nb = [(1 - p, s) for p, s in ya]
        na = [(1 - p, s) for p, s in yb]
    else:  # an independent NO book that does not cross the YES one through the complement
        nb_t = draw(st.integers(max(1, n - a - 3), n - a))
        na_t = draw(st.integers(n - b, min(n - 1, n - b + 3)))
        nb = [(D(tick) * nb_t, sz())] if nb_t < na_t else []
        na = [(D(tick) * na_t, sz())]
    yes = book(m.yes_token_id, m.condition_id, yb, ya, tick)
    no = book(m.no_token_id, m.condition_id, nb, na, tick)
    params = Params(alpha=draw(st.floats(0.05, 10)), skew=draw(st.floats(0, 5)),
                    quote_size=D(draw(st.integers(1, 200))), price_band=D(draw(st.sampled_from(["0.001", "0.02", "0.1", "0.5"]))))
    inv = Inventory(D(draw(st.integers(0, 800))), D(draw(st.integers(0, 800))))
    mult = draw(st.floats(0.5, 4.0))
    vol = {m.yes_token_id: draw(st.floats(0, 0.2))}
    return m, yes, no, params, inv, mult, vol


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_quotes_are_valid_post_only_and_consistent(sc):
    m, yes, no, params, inv, mult, vol = sc
    quotes = make_quotes(m, yes, no, params, inv, mult, vol)
    tick = m.tick_size
    B, A = effective_touch(yes, no, tick)
    kinds = {}
    mid = tick * (B + A) / 2 if B is not None and A is not None else None
    for q in quotes:
        assert valid_price(q.price, tick), q
        assert q.size >= m.min_order_size
        own = yes if q.token_id == m.yes_token_id else no
        if q.side is Side.BUY:
            assert own.best_ask is None or q.price < own.best_ask
        else:
            assert own.best_bid is None or q.price > own.best_bid
            held = inv.yes if q.token_id == m.yes_token_id else inv.no
            assert q.size <= held  # a SELL needs the shares
        kind, yp = yes_space_price(m, q)
        assert abs(yp - mid) <= params.price_band
        assert kind not in kinds  # one bid and one ask at most
        kinds[kind] = yp
        if kind == "bid":
            assert A is None or yp < tick * A  # never crosses the effective book
        else:
            assert B is None or yp > tick * B
    if "bid" in kinds and "ask" in kinds:
        assert kinds["bid"] < kinds["ask"]
    buys = [q for q in quotes if q.side is Side.BUY]
    if len(buys) == 2 and buys[0].token_id != buys[1].token_id:
        assert buys[0].price + buys[1].price < 1  # buying both never locks in a loss


@settings(max_examples=200, deadline=None)
@given(scenario(), st.integers(5, 500))
def test_skew_sheds_inventory(sc, shares):
    m, yes, no, params, _, mult, vol = sc
    flat = dict(yes_space_price(m, q) for q in make_quotes(m, yes, no, params, Inventory(), mult, vol))
    long_yes = dict(yes_space_price(m, q) for q in make_quotes(m, yes, no, params, Inventory(D(shares), D(0)), mult, vol))
    long_no = dict(yes_space_price(m, q) for q in make_quotes(m, yes, no, params, Inventory(D(0), D(shares)), mult, vol))
    for k in ("bid", "ask"):
        if k in flat and k in long_yes:
            assert long_yes[k] <= flat[k]  # long YES: sell YES cheaper, buy YES lower
        if k in flat and k in long_no:
            assert long_no[k] >= flat[k]  # long NO: the mirror image


def test_skew_moves_quotes_strictly_when_large():
    m = make_market(0)
    y, n = mirror_books(m, "0.40", "0.60")
    p = Params(skew=2.0, price_band=D("0.5"))
    flat = dict(yes_space_price(m, q) for q in make_quotes(m, y, n, p, Inventory(), 1.0, {}))
    lng = dict(yes_space_price(m, q) for q in make_quotes(m, y, n, p, Inventory(D(500), D(0)), 1.0, {}))
    assert lng["ask"] < flat["ask"] and lng["bid"] < flat["bid"]


def test_flat_quotes_are_a_yes_bid_and_a_no_bid():
    m = make_market(0)
    y, n = mirror_books(m, "0.45", "0.48")
    qs = make_quotes(m, y, n, Params(), Inventory(), 1.0, {})
    assert [(q.token_id, q.side) for q in qs] == [("y0", Side.BUY), ("n0", Side.BUY)]
    # fair = microprice 0.465, half-spread = 1.5 × 0.015 → bid 0.44, ask 0.49 (NO bid 0.51)
    assert [q.price for q in qs] == [D("0.44"), D("0.51")]
    assert all(q.size == D(10) for q in qs)


def test_held_inventory_is_offered_as_a_sell_and_size_raised_to_min():
    m = make_market(0, min_size="15")
    y, n = mirror_books(m, "0.45", "0.48")
    qs = make_quotes(m, y, n, Params(quote_size=D(10)), Inventory(D(40), D(0)), 1.0, {})
    sells = [q for q in qs if q.side is Side.SELL]
    assert len(sells) == 1 and sells[0].token_id == "y0" and sells[0].size == D(15)
    assert all(q.size >= D(15) for q in qs)


def test_no_quotes_when_not_quotable():
    m = make_market(0)
    y, n = mirror_books(m, "0.45", "0.48")
    inv = Inventory()
    assert make_quotes(m, y, n, Params(quoting_paused=True), inv, 1.0, {}) == []
    assert make_quotes(replace(m, closed=True), y, n, Params(), inv, 1.0, {}) == []
    assert make_quotes(replace(m, accepting_orders=False), y, n, Params(), inv, 1.0, {}) == []
    assert make_quotes(m, replace(y, stale=True), n, Params(), inv, 1.0, {}) == []
    assert make_quotes(m, y, replace(n, crossed=True), Params(), inv, 1.0, {}) == []
    assert make_quotes(m, None, n, Params(), inv, 1.0, {}) == []
    # crossed through the complement: YES bid 0.50 while NO bid 0.55 implies a YES ask of 0.45
    yc = book("y0", m.condition_id, [("0.50", 10)], [("0.52", 10)])
    nc = book("n0", m.condition_id, [("0.55", 10)], [("0.56", 10)])
    assert make_quotes(m, yc, nc, Params(), inv, 1.0, {}) == []


def test_wide_half_spread_is_capped_at_the_price_band():
    m = make_market(0)
    y, n = mirror_books(m, "0.49", "0.51")
    qs = dict(yes_space_price(m, q) for q in make_quotes(m, y, n, Params(alpha=10, price_band=D("0.05")), Inventory(), 4.0, {}))
    assert qs == {"bid": D("0.45"), "ask": D("0.55")}


def test_calibration_and_vol_widen():
    m = make_market(0)
    y, n = mirror_books(m, "0.45", "0.55")
    def width(mult, vol):
        d = dict(yes_space_price(m, q) for q in make_quotes(m, y, n, Params(), Inventory(), mult, vol))
        return d["ask"] - d["bid"]
    assert width(2.0, {}) > width(1.0, {})
    assert width(1.0, {"y0": 0.06}) > width(1.0, {})
