"""The paper fill model (`execution/fill_model.py`) pinned where a second mutation-testing pass
found it untested: boundaries of the draws and of the queue arithmetic, one order never stopping
the others, and the invariants every simulated fill keeps. Figures are worked by hand from the
module's docstrings; random draws come from a scripted generator."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest
from fill_helpers import BOOK, CM, K6, ScriptedRng, bk
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.domain import BUY, SELL, BookView, PublicTrade
from pmm_widgets.execution.fill_model import (
    IntensityFillModel,
    ProbQueueFillModel,
    QueueFillModel,
    RestingOrder,
    queue_prob_ahead,
)
from pmm_widgets.execution.fillmodels import IntensityKnobs


# ---------------------------------------------------------------- the intensity model
def test_a_zero_rate_never_fills_even_on_a_zero_draw() -> None:
    # λ = 0 gives p = 1 − e^0 = 0: an order fills when the uniform draw is under p, never at it
    k = IntensityKnobs(intensity=0.0, spread_k=100.0, full_fill_prob=1.0)
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m = IntensityFillModel(k, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(o, BOOK, 0.0)
    assert m.advance(10.0, [o], {"y0": BOOK}) == []


def test_one_order_that_cannot_fill_does_not_stop_the_others() -> None:
    fresh = RestingOrder("fresh", "y0", BUY, D("0.45"), D(10), D(5))  # rests since now: no time, no draw
    nobook = RestingOrder("nobook", "n0", BUY, D("0.45"), D(10), D(5))  # no book for its token: no draw
    unlucky = RestingOrder("unlucky", "y0", BUY, D("0.45"), D(10), D(5))  # draws 0.99 ≥ 0.632
    lucky = RestingOrder("lucky", "y0", SELL, D("0.48"), D(7), D(5))  # draws 0.0, then a full fill
    m = IntensityFillModel(K6, ScriptedRng([0.99, 0.0, 0.0]))  # type: ignore[arg-type]
    for o in (nobook, unlucky, lucky):
        m.on_order(o, BOOK, 0.0)
    m.on_order(fresh, BOOK, 10.0)
    fills = m.advance(10.0, [fresh, nobook, unlucky, lucky], {"y0": BOOK})
    assert [(f.client_id, f.size, f.ts) for f in fills] == [("lucky", D(7), 10.0)]


@pytest.mark.parametrize("side,price,book", [
    (BUY, "0.45", bk([], [("0.48", "100")])),  # no bids: a bid is at the (empty) touch
    (SELL, "0.48", bk([("0.45", "100")], [])),  # no asks
])
def test_an_empty_side_is_the_touch_with_nobody_ahead(side: object, price: str, book: BookView) -> None:
    # distance 0, depth 0: λ = 0.1/s × e^0 × 2·100/(100 + 0) = 0.2/s = 12/min
    o = RestingOrder("o1", "y0", side, D(price), D(10), D(5))  # type: ignore[arg-type]
    m = IntensityFillModel(K6, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(o, book, 0.0)
    [f] = m.advance(1.0, [o], {"y0": book})
    assert f.raw["distance"] == 0.0 and f.raw["touch_depth"] == 0.0
    assert f.raw["rate_per_min"] == pytest.approx(12.0)


# ---------------------------------------------------------------- queue: books
def test_book_through_skips_an_unknown_order_and_fills_a_fraction_of_a_share() -> None:
    m = QueueFillModel()
    unknown = RestingOrder("unknown", "y0", BUY, D("0.45"), D(10), D(5))  # never rested here
    part = RestingOrder("part", "y0", BUY, D("0.45"), D(10), D(5), filled=D("9.5"))
    m.on_order(part, BOOK, 0.0)
    fills = m.on_book(bk([("0.44", "5")], [("0.45", "20")]), [unknown, part], 1.0)
    assert [(f.client_id, f.size, f.ts, f.raw["cause"]) for f in fills] == [("part", D("0.5"), 1.0, "book_through")]


# ---------------------------------------------------------------- queue: prints
def test_a_print_skips_an_unknown_order_and_fills_the_next() -> None:
    m = QueueFillModel()
    unknown = RestingOrder("unknown", "y0", BUY, D("0.45"), D(10), D(5))
    known = RestingOrder("known", "y0", BUY, D("0.44"), D(10), D(5))
    m.on_order(known, bk([], []), 0.0)
    fills = m.on_trade(PublicTrade("y0", CM, D("0.43"), D(4), SELL, 1.0), [unknown, known], 1.0)
    assert [(f.client_id, f.size) for f in fills] == [("known", D(4))]


def test_a_sell_print_above_our_bid_does_not_reach_it() -> None:
    # a seller who sold at 0.46 never met our 0.45 bid (nobody ahead of us, so any meeting would fill)
    m = QueueFillModel()
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m.on_order(o, bk([], []), 0.0)
    assert m.on_trade(PublicTrade("y0", CM, D("0.46"), D(5), SELL, 1.0), [o], 1.0) == []
    [f] = m.on_trade(PublicTrade("y0", CM, D("0.44"), D(5), SELL, 2.0), [o], 2.0)  # below it: through
    assert (f.size, f.raw["cause"]) == (D(5), "trade_through")


def test_the_last_share_of_a_print_reaches_the_next_order() -> None:
    # a 9-share sell through two bids of 8: the higher bid takes 8, the lower the last 1
    m = QueueFillModel()
    hi = RestingOrder("hi", "y0", BUY, D("0.45"), D(8), D(5))
    lo = RestingOrder("lo", "y0", BUY, D("0.44"), D(8), D(5))
    for o in (lo, hi):
        m.on_order(o, bk([], []), 0.0)
    fills = m.on_trade(PublicTrade("y0", CM, D("0.43"), D(9), SELL, 1.0), [lo, hi], 1.0)
    assert [(f.client_id, f.size) for f in fills] == [("hi", D(8)), ("lo", D(1))]


def test_a_print_at_our_price_eats_the_queue_ahead_before_us() -> None:
    m = QueueFillModel()
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m.on_order(o, bk([("0.45", "10")], [("0.48", "100")]), 0.0)  # 10 ahead of us
    sell = PublicTrade("y0", CM, D("0.45"), D(4), SELL, 1.0)
    assert m.on_trade(sell, [o], 1.0) == []  # 4 of the 10 ahead: nothing reaches us, no empty fill
    assert m._queues["o1"].ahead == D(6)
    [f] = m.on_trade(PublicTrade("y0", CM, D("0.45"), D(7), SELL, 2.0), [o], 2.0)  # 6 ahead, 1 for us
    assert (f.size, f.ts, f.raw["cause"], f.raw["ahead"]) == (D(1), 2.0, "trade_at_price", "0")


# ---------------------------------------------------------------- prob_queue
def test_queue_prob_ahead_boundaries_and_fractions_of_a_share() -> None:
    assert queue_prob_ahead(0.0, 0.0) == 0.0  # nothing ahead gives 0, even with nothing behind
    assert queue_prob_ahead(3.0, 1.0) == pytest.approx(0.9)  # default: power, n = 2 (PMM_PAPER_QUEUE_POWER's default)
    assert queue_prob_ahead(0.1, 0.3, "power", 1.0) == pytest.approx(0.25)  # 0.1 / 0.4
    assert queue_prob_ahead(0.1, 0.1, "power", 2.0) == pytest.approx(0.5)  # 0.01 / 0.02
    assert queue_prob_ahead(0.5, 0.5, "log") == pytest.approx(0.5)
    assert queue_prob_ahead(5.0, -0.5) == 1.0  # nothing behind gives 1
    # a probability even where x**n underflows to 0 on both sides (no division by zero, never negative)
    assert 0.0 <= queue_prob_ahead(1e-200, 1e-200, "power", 2.0) <= 1.0


def test_log_is_chosen_by_value_as_a_setting_read_at_run_time_gives_it() -> None:
    # PMM_PAPER_QUEUE_FUNC=log arrives as a string built at run time, not the interned literal:
    # log(1 + x) with front e − 1 and back e² − 1 gives 1 / (1 + 2) (power n = 2 would give 0.067)
    func = "".join(["lo", "g"])
    assert queue_prob_ahead(math.e - 1, math.e ** 2 - 1, func) == pytest.approx(1 / 3)  # type: ignore[arg-type]


def test_queue_defaults_are_the_settings_defaults() -> None:
    from pmm_widgets.config import Params

    p = Params()
    m = ProbQueueFillModel()
    assert (m.func, m.n) == (p.paper_queue_func, p.paper_queue_power) == ("power", 2.0)


def test_prob_queue_half_a_share_behind_is_what_sets_the_chance() -> None:
    # 29.5 ahead and 0.5 behind (the rest of the level), n = 1: P = 29.5 / 30 = 0.98333; a drop
    # 30 → 20 moves us 9.83 (to the cent), leaving 19.67 ahead (under the 20 the level holds)
    m = ProbQueueFillModel("power", 1.0)
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m.on_order(o, bk([("0.45", "30")], [("0.48", "100")]), 0.0)
    m._queues["o1"].ahead = D("29.5")
    m.on_book(bk([("0.45", "20")], [("0.48", "100")]), [o], 1.0)
    assert (m._queues["o1"].ahead, m._queues["o1"].level) == (D("19.67"), D(20))


def test_prob_queue_never_leaves_more_ahead_than_the_level_holds() -> None:
    # 25 ahead, 50 behind, n = 2: P = 625 / (625 + 2500) = 0.2; a drop 75 → 10 moves us 13,
    # which would leave 12 ahead of a 10-share level: 10 it is
    m = ProbQueueFillModel("power", 2.0)
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m.on_order(o, bk([("0.45", "75")], [("0.48", "100")]), 0.0)
    m._queues["o1"].ahead = D(25)
    m.on_book(bk([("0.45", "10")], [("0.48", "100")]), [o], 1.0)
    assert (m._queues["o1"].ahead, m._queues["o1"].level) == (D(10), D(10))


# ---------------------------------------------------------------- invariants
PRICES = [D("0.43"), D("0.44"), D("0.45"), D("0.46"), D("0.47")]
sizes = st.integers(0, 4000).map(lambda c: D(c) / 100)  # 0 to 40 shares, to the cent
event = st.one_of(
    st.tuples(st.just("book"), st.sampled_from(PRICES), sizes, st.sampled_from(PRICES), sizes),
    st.tuples(st.just("trade"), st.sampled_from(PRICES), sizes, st.sampled_from([BUY, SELL])),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["queue", "power", "log"]), st.floats(0.5, 4.0),
       st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.sampled_from(PRICES), sizes.filter(lambda s: s > 0),
                          sizes), min_size=1, max_size=4),
       st.lists(event, max_size=25))
def test_fills_stay_within_what_remains_and_the_queue_within_the_level(
        kind: str, n: float, specs: list[tuple[object, D, D, D]], events: list[tuple[object, ...]]) -> None:
    m = QueueFillModel() if kind == "queue" else ProbQueueFillModel(kind, n)  # type: ignore[arg-type]
    orders = []
    for i, (side, price, size, lvl) in enumerate(specs):
        o = RestingOrder(f"o{i}", "y0", side, price, size, D(5))  # type: ignore[arg-type]
        level = [(str(price), str(lvl))] if lvl > 0 else []
        m.on_order(o, bk(level, level), 0.0)  # joins behind `lvl` shares at its price
        orders.append(o)
    for t, ev in enumerate(events, 1):
        if ev[0] == "book":
            _, bp, bs, ap, as_ = ev
            book = bk([(str(bp), str(bs))] if bs > 0 else [], [(str(ap), str(as_))] if as_ > 0 else [])
            fills = m.on_book(book, orders, float(t))
        else:
            _, price, size, side = ev
            fills = m.on_trade(PublicTrade("y0", CM, price, size, side, float(t)), orders, float(t))  # type: ignore[arg-type]
            assert sum((f.size for f in fills), D(0)) <= size  # a print fills each share once at most
        by_id = {o.client_id: o for o in orders}
        for f in fills:
            o = by_id[f.client_id]
            assert 0 < f.size <= o.remaining  # never empty, never negative, never more than remains
            o.filled += f.size
        for o in orders:
            qp = m._queues[o.client_id]
            assert 0 <= qp.ahead <= max(qp.level, D(0)) and qp.level >= 0
