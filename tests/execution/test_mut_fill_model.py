"""The paper exchange's fill arithmetic pinned where mutation testing found it untested
(`execution/fillmodels.py` and `execution/fill_model.py` docstrings). Random draws come from a
scripted generator, so each figure is worked by hand."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest
from fill_helpers import CM, ScriptedRng, bk

from pmm_widgets.domain import BUY, SELL, PublicTrade
from pmm_widgets.execution.fill_model import (
    FillModelSpec,
    IntensityFillModel,
    ProbQueueFillModel,
    QueueFillModel,
    RestingOrder,
    queue_prob_ahead,
    traded_through,
)
from pmm_widgets.execution.fillmodels import (
    IntensityKnobs,
    QueuePosition,
    depth_factor,
    draw_fill_size_knobs,
    fill_probability,
    intensity_rate_knobs,
    touch_depth,
    touch_distance,
)

BOOK = bk([("0.45", "30"), ("0.44", "50")], [("0.48", "40"), ("0.49", "60")])


# ---------------------------------------------------------------- the touch
def test_traded_through_at_and_beyond_our_price() -> None:
    assert traded_through(BOOK, BUY, D("0.48"))  # offered at our bid
    assert traded_through(BOOK, BUY, D("0.49"))
    assert not traded_through(BOOK, BUY, D("0.47"))
    assert traded_through(BOOK, SELL, D("0.45"))  # bid at our ask
    assert traded_through(BOOK, SELL, D("0.44"))
    assert not traded_through(BOOK, SELL, D("0.46"))
    empty = bk([], [])
    assert not traded_through(empty, BUY, D("0.99")) and not traded_through(empty, SELL, D("0.01"))


def test_touch_distance_and_depth() -> None:
    assert touch_distance(BOOK, BUY, D("0.43")) == pytest.approx(0.02)
    assert touch_distance(BOOK, BUY, D("0.45")) == 0.0
    assert touch_distance(BOOK, BUY, D("0.46")) == 0.0  # inside the touch
    assert touch_distance(BOOK, SELL, D("0.50")) == pytest.approx(0.02)
    assert touch_distance(BOOK, SELL, D("0.47")) == 0.0
    assert touch_distance(bk([], []), BUY, D("0.40")) == 0.0
    assert touch_depth(BOOK, BUY, D("0.45")) == 30.0  # at the touch: its size is ahead
    assert touch_depth(BOOK, BUY, D("0.43")) == 30.0
    assert touch_depth(BOOK, BUY, D("0.46")) == 0.0  # improving on it: nobody ahead
    assert touch_depth(BOOK, SELL, D("0.48")) == 40.0
    assert touch_depth(BOOK, SELL, D("0.47")) == 0.0
    assert touch_depth(BOOK, SELL, D("0.50")) == 40.0
    assert touch_depth(bk([], []), SELL, D("0.5")) == 0.0


def test_depth_factor_rate_and_probability() -> None:
    assert depth_factor(0.0) == 2.0  # empty touch: twice
    assert depth_factor(100.0) == 1.0  # the reference depth: once
    assert depth_factor(300.0) == 0.5
    assert depth_factor(50.0, 50.0) == 1.0
    k = IntensityKnobs(intensity=6.0, spread_k=100.0)  # 6 fills/min at the touch = 0.1/s
    assert intensity_rate_knobs(k, 0.0, 100.0) == pytest.approx(0.1)
    assert intensity_rate_knobs(k, 0.0, 0.0) == pytest.approx(0.2)
    assert intensity_rate_knobs(k, 0.01, 100.0) == pytest.approx(0.1 * 0.36787944117144233)  # e^−1
    assert intensity_rate_knobs(IntensityKnobs(6.0, 100.0, ref_depth=50.0), 0.0, 150.0) == pytest.approx(0.05)
    assert fill_probability(0.1, 10.0) == pytest.approx(0.6321205588285577)  # 1 − e^−1
    assert fill_probability(0.1, 0.0) == 0.0
    assert fill_probability(0.1, -1.0) == 0.0


# ---------------------------------------------------------------- fill sizes
KNOBS = IntensityKnobs(full_fill_prob=0.3, partial_max_frac=0.8)


@pytest.mark.parametrize("rand,beta,remaining,min_size,want", [
    (0.29, None, "10", "5", "10"),  # under full_fill_prob: all of it
    (0.3, 0.5, "10", "1", "5"),  # at it: a partial (strict <)
    (0.9, 0.5, "10.37", "1", "5.18"),  # 5.185 floored to 2 dp
    (0.9, 0.95, "10", "1", "8"),  # capped at partial_max_frac
    (0.9, 0.01, "10", "5", "5"),  # at least one min-size lot
    (0.9, 0.5, "3", "5", "3"),  # never more than remains
])
def test_draw_fill_size(rand: float, beta: float | None, remaining: str, min_size: str, want: str) -> None:
    rng = ScriptedRng([rand], [] if beta is None else [beta])
    got = draw_fill_size_knobs(rng, KNOBS, D(remaining), D(min_size))  # type: ignore[arg-type]
    assert got == D(want)


# ---------------------------------------------------------------- queue arithmetic
def test_queue_position_level_changes_and_prints() -> None:
    qp = QueuePosition(ahead=D(30), level=D(50))
    qp.on_level(D(70))  # growth joins behind us
    assert (qp.ahead, qp.level) == (D(30), D(70))
    qp.on_level(D(60))  # a 10-share drop eats the queue ahead
    assert (qp.ahead, qp.level) == (D(20), D(60))
    qp.on_level(D(60))
    assert (qp.ahead, qp.level) == (D(20), D(60))
    qp.on_level(D(5))  # more than is ahead: we are at the front, not past it
    assert (qp.ahead, qp.level) == (D(0), D(5))
    qp = QueuePosition(ahead=D(10), level=D(12))
    assert qp.on_trade_at_price(D(15)) == D(5)  # 10 ahead, 5 for us
    assert (qp.ahead, qp.level) == (D(0), D(0))  # the level never goes negative
    qp = QueuePosition(ahead=D(10), level=D(40))
    assert qp.on_trade_at_price(D(4)) == 0
    assert (qp.ahead, qp.level) == (D(6), D(36))


def test_queue_prob_ahead_exact() -> None:
    assert queue_prob_ahead(3.0, 1.0, "power", 2.0) == pytest.approx(0.9)  # 9 / (9 + 1)
    assert queue_prob_ahead(3.0, 1.0, "power", 1.0) == pytest.approx(0.75)
    assert queue_prob_ahead(5.0, 5.0, "log") == pytest.approx(0.5)
    assert queue_prob_ahead(math.e - 1, math.e ** 2 - 1, "log") == pytest.approx(1 / 3)  # 1 / (1 + 2)
    assert queue_prob_ahead(0.0, 5.0) == 0.0
    assert queue_prob_ahead(-1.0, 5.0) == 0.0
    assert queue_prob_ahead(5.0, 0.0) == 1.0
    assert queue_prob_ahead(5.0, -1.0) == 1.0


def _prob_queue(level: str, ahead: str, n: float = 1.0) -> tuple[ProbQueueFillModel, RestingOrder]:
    m = ProbQueueFillModel("power", n)
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m.on_order(o, bk([("0.45", level)], [("0.48", "100")]), 0.0)
    m._queues["o1"].ahead = D(ahead)
    return m, o


def test_prob_queue_moves_by_the_expected_share_to_the_cent() -> None:
    # 25 ahead, 50 behind, n = 1: P(ahead) = 1/3; a 10-share drop moves us 3.33
    m, o = _prob_queue("75", "25")
    m.on_book(bk([("0.45", "65")], [("0.48", "100")]), [o], 1.0)
    assert m._queues["o1"].ahead == D("21.67") and m._queues["o1"].level == D(65)
    # the level grows: nothing moves, the new size is behind us
    m.on_book(bk([("0.45", "90")], [("0.48", "100")]), [o], 2.0)
    assert m._queues["o1"].ahead == D("21.67") and m._queues["o1"].level == D(90)
    # the level vanishes: nothing is left ahead
    m.on_book(bk([], [("0.48", "100")]), [o], 3.0)
    assert m._queues["o1"].ahead == 0 and m._queues["o1"].level == 0


def test_on_order_joins_behind_the_level_and_elsewhere_at_the_front() -> None:
    m = QueueFillModel()
    a = RestingOrder("a", "y0", BUY, D("0.44"), D(10), D(5))
    b = RestingOrder("b", "y0", BUY, D("0.46"), D(10), D(5))
    m.on_order(a, BOOK, 0.0)
    m.on_order(b, BOOK, 0.0)
    m.on_order(RestingOrder("c", "y0", BUY, D("0.45"), D(10), D(5)), None, 0.0)
    assert (m._queues["a"].ahead, m._queues["b"].ahead, m._queues["c"].ahead) == (D(50), D(0), D(0))


# ---------------------------------------------------------------- prints and books
def test_a_buyer_lifts_the_lowest_ask_first_and_each_share_once() -> None:
    m = QueueFillModel()
    lo = RestingOrder("lo", "y0", SELL, D("0.55"), D(8), D(5))
    hi = RestingOrder("hi", "y0", SELL, D("0.56"), D(8), D(5))
    empty = bk([], [])
    for o in (hi, lo):
        m.on_order(o, empty, 0.0)
    fills = m.on_trade(PublicTrade("y0", CM, D("0.57"), D(10), BUY, 1.0), [hi, lo], 1.0)
    assert [(f.client_id, f.size, f.raw["cause"]) for f in fills] == [("lo", D(8), "trade_through"),
                                                                      ("hi", D(2), "trade_through")]
    # a print below our ask does not reach it; a print at it does (nobody ahead)
    assert m.on_trade(PublicTrade("y0", CM, D("0.54"), D(10), BUY, 2.0), [lo], 2.0) == []
    [f] = m.on_trade(PublicTrade("y0", CM, D("0.55"), D(3), BUY, 3.0), [lo], 3.0)
    assert (f.size, f.raw["cause"]) == (D(3), "trade_at_price")
    # a seller's print never fills an ask
    assert m.on_trade(PublicTrade("y0", CM, D("0.50"), D(10), SELL, 4.0), [lo], 4.0) == []


def test_a_print_fills_no_more_than_remains_and_an_exhausted_print_stops() -> None:
    m = QueueFillModel()
    a = RestingOrder("a", "y0", BUY, D("0.45"), D(10), D(5), filled=D(7))
    b = RestingOrder("b", "y0", BUY, D("0.44"), D(10), D(5))
    for o in (a, b):
        m.on_order(o, bk([], []), 0.0)
    fills = m.on_trade(PublicTrade("y0", CM, D("0.43"), D(3), SELL, 1.0), [a, b], 1.0)
    assert [(f.client_id, f.size) for f in fills] == [("a", D(3))]  # 3 remained; then nothing left


def test_book_through_fills_what_remains_only() -> None:
    m = QueueFillModel()
    done = RestingOrder("done", "y0", BUY, D("0.45"), D(10), D(5), filled=D(10))
    part = RestingOrder("part", "y0", BUY, D("0.45"), D(10), D(5), filled=D(4))
    for o in (done, part):
        m.on_order(o, BOOK, 0.0)
    fills = m.on_book(bk([("0.44", "5")], [("0.45", "20")]), [done, part], 1.0)
    assert [(f.client_id, f.size) for f in fills] == [("part", D(6))]
    # our price not reached: no fill
    assert m.on_book(bk([("0.44", "5")], [("0.46", "20")]), [part], 2.0) == []


# ---------------------------------------------------------------- the intensity model, step by step
def test_intensity_advance_fills_when_the_draw_is_under_the_probability() -> None:
    # 6/min at the touch holding the reference depth (100): λ = 0.1/s; over 10 s p = 1 − e^−1 = 0.632
    k = IntensityKnobs(intensity=6.0, spread_k=100.0, full_fill_prob=1.0)
    book = bk([("0.45", "100")], [("0.48", "100")])
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m = IntensityFillModel(k, ScriptedRng([0.63, 0.0]))  # type: ignore[arg-type]
    m.on_order(o, book, 0.0)
    [f] = m.advance(10.0, [o], {"y0": book})
    assert f.size == D(10) and f.ts == 10.0
    assert f.raw["distance"] == 0.0 and f.raw["touch_depth"] == 100.0 and f.raw["dt"] == 10.0
    assert f.raw["rate_per_min"] == pytest.approx(6.0)
    m = IntensityFillModel(k, ScriptedRng([0.64]))  # type: ignore[arg-type]
    m.on_order(o, book, 0.0)
    assert m.advance(10.0, [o], {"y0": book}) == []


def test_intensity_advance_sell_side_and_improving_price() -> None:
    k = IntensityKnobs(intensity=6.0, spread_k=100.0, full_fill_prob=1.0)
    book = bk([("0.45", "100")], [("0.48", "100")])
    # an ask 1¢ behind the touch: λ = 0.1 × e^−1; an ask improving on it: depth 0, λ = 0.2
    behind = RestingOrder("b", "y0", SELL, D("0.49"), D(10), D(5))
    inside = RestingOrder("i", "y0", SELL, D("0.47"), D(10), D(5))
    m = IntensityFillModel(k, ScriptedRng([0.0, 0.0, 0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(behind, book, 0.0)
    m.on_order(inside, book, 0.0)
    fb, fi = m.advance(1.0, [behind, inside], {"y0": book})
    assert fb.raw["distance"] == pytest.approx(0.01) and fb.raw["touch_depth"] == 100.0
    assert fb.raw["rate_per_min"] == pytest.approx(6.0 * 0.36787944117144233)
    assert fi.raw["distance"] == 0.0 and fi.raw["touch_depth"] == 0.0
    assert fi.raw["rate_per_min"] == pytest.approx(12.0)
    # a bid above the touch: depth 0 too
    over = RestingOrder("o", "y0", BUY, D("0.46"), D(10), D(5))
    m = IntensityFillModel(k, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(over, book, 0.0)
    [f] = m.advance(1.0, [over], {"y0": book})
    assert f.raw["touch_depth"] == 0.0 and f.raw["rate_per_min"] == pytest.approx(12.0)


def test_intensity_advance_needs_time_and_a_book() -> None:
    k = IntensityKnobs(intensity=6.0, full_fill_prob=1.0)
    book = bk([("0.45", "100")], [("0.48", "100")])
    o = RestingOrder("o1", "y0", BUY, D("0.45"), D(10), D(5))
    m = IntensityFillModel(k, ScriptedRng([]))  # type: ignore[arg-type]  # no draw may happen
    m.on_order(o, book, 5.0)
    assert m.advance(5.0, [o], {"y0": book}) == []  # no time passed
    assert m.advance(4.0, [o], {"y0": book}) == []  # time ran backwards
    assert m.advance(6.0, [o], {}) == []  # no book for its token
    # the clock moved on at that step: the next step counts from 6, not from 5
    m.rng = ScriptedRng([0.0, 0.0])  # type: ignore[assignment]
    [f] = m.advance(8.0, [o], {"y0": book})
    assert f.raw["dt"] == 2.0


# ---------------------------------------------------------------- building models
def test_spec_latent_knobs_and_build() -> None:
    assert FillModelSpec("queue").latent() is None
    spec = FillModelSpec("queue", IntensityKnobs(intensity=3.0, spread_k=50.0), latent_intensity=0.5)
    lat = spec.latent()
    assert lat == IntensityKnobs(intensity=0.5, spread_k=50.0)
    import numpy as np

    q = spec.build(np.random.default_rng(0))
    assert isinstance(q, QueueFillModel) and q.time_driven
    assert not FillModelSpec("queue").build(np.random.default_rng(0)).time_driven
    pq = FillModelSpec("prob_queue", queue_func="log", queue_power=3.0).build(np.random.default_rng(0))
    assert isinstance(pq, ProbQueueFillModel) and (pq.func, pq.n) == ("log", 3.0)
    with pytest.raises(ValueError):
        ProbQueueFillModel("power", 0.0)
    m = QueueFillModel(IntensityKnobs(intensity=1.0))
    m.set_latent(IntensityKnobs(intensity=0.0))
    assert not m.time_driven


def test_knob_defaults_are_the_settings_defaults() -> None:
    # the knobs are "the PMM_PAPER_* knobs it reads": a model built without them fills like the defaults
    from pmm_widgets.config import Params

    assert IntensityKnobs() == IntensityKnobs.from_params(Params())
    assert IntensityKnobs() == IntensityKnobs(1.0, 100.0, 0.3, 2.0, 5.0, 0.8, 100.0)
