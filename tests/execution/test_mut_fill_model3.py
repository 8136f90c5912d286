"""fill_model.py's remaining parts (the intensity model's clock keeping, `advance_reference`, the
queue models' latent flow, `FillModelSpec`, the dataclasses): behaviours a mutation pass found
unpinned (each test failed on a surviving mutant of pmm_widgets/execution/fill_model.py)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import numpy as np
import pytest
from fill_helpers import BOOK, CM, K6, ScriptedRng, bk

from pmm_widgets.domain import BUY, SELL, PublicTrade
from pmm_widgets.execution.fill_model import (
    FILL_MODELS,
    FillModel,
    FillModelSpec,
    IntensityFillModel,
    ModelFill,
    ProbQueueFillModel,
    QueueFillModel,
    RestingOrder,
)
from pmm_widgets.execution.fillmodels import IntensityKnobs


def order(cid: str = "o1", side: object = BUY, price: str = "0.45", size: str = "10", filled: str = "0") -> RestingOrder:
    return RestingOrder(cid, "y0", side, D(price), D(size), D(5), D(filled))  # type: ignore[arg-type]


def dts(fills: list[ModelFill]) -> list[tuple[str, float]]:
    return [(f.client_id, f.raw["dt"]) for f in fills]


# ---------------------------------------------------------------- the dataclasses
def test_resting_order_remaining_and_defaults() -> None:
    o = RestingOrder("o", "y0", BUY, D("0.45"), D("10"), D(5))
    assert o.filled == 0 and o.remaining == D(10)
    o.filled = D("3.5")
    assert o.remaining == D("6.5")
    assert order(size="7", filled="7").remaining == 0


def test_model_fill_raw_defaults_to_its_own_empty_mapping() -> None:
    a, b = ModelFill("a", D(1), 1.0), ModelFill("b", D(2), 2.0)
    assert a.raw == {} and b.raw == {} and a.raw is not b.raw
    assert (a.client_id, a.size, a.ts) == ("a", D(1), 1.0)
    assert FILL_MODELS == ("intensity", "queue", "prob_queue")


def test_fill_records_and_specs_are_values() -> None:
    """A fill the model returned cannot be changed on its way to the exchange; a spec is a value
    (immutable, hashable: equal specs are one key)."""
    f = ModelFill("a", D(1), 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.size = D(2)  # type: ignore[misc]
    s = FillModelSpec("queue", latent_intensity=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "intensity"  # type: ignore[misc]
    assert {s: 1, FillModelSpec("queue", latent_intensity=0.5): 2} == {s: 2}


def test_every_model_is_a_fill_model_and_a_nameless_one_is_not() -> None:
    for m in (IntensityFillModel(K6, np.random.default_rng(0)), QueueFillModel(), ProbQueueFillModel()):
        assert isinstance(m, FillModel)

    class Nameless:
        time_driven = False

        def on_order(self, order: RestingOrder, book: object, now: float) -> None: ...

        def on_cancel(self, order: RestingOrder) -> None: ...

        def on_book(self, book: object, orders: object, ts: float) -> list[ModelFill]: return []

        def on_trade(self, trade: object, orders: object, ts: float) -> list[ModelFill]: return []

        def advance(self, now: float, orders: object, books: object) -> list[ModelFill]: return []

    assert not isinstance(Nameless(), FillModel)
    Nameless.name = "x"  # type: ignore[attr-defined]
    assert isinstance(Nameless(), FillModel)


# ---------------------------------------------------------------- the intensity model's clock
def test_intensity_model_ignores_books_and_prints() -> None:
    m = IntensityFillModel(K6, ScriptedRng([]))  # type: ignore[arg-type]
    assert m.name == "intensity" and m.time_driven
    o = order()
    m.on_order(o, BOOK, 0.0)
    through = bk([("0.40", "5")], [("0.44", "5")])
    assert m.on_book(through, [o], 1.0) == []
    assert m.on_trade(PublicTrade("y0", CM, D("0.40"), D("50"), SELL, 1.0), [o], 1.0) == []


def test_on_order_starts_the_clock_and_on_cancel_stops_it() -> None:
    o = order()
    m = IntensityFillModel(K6, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(o, BOOK, 2.0)
    assert dts(m.advance(5.0, [o], {"y0": BOOK})) == [("o1", 3.0)]
    # cancelled: its clock is gone, so a later step (the order passed again) counts no time and draws nothing
    m = IntensityFillModel(K6, ScriptedRng([]))  # type: ignore[arg-type]
    m.on_order(o, BOOK, 2.0)
    m.on_cancel(o)
    m.on_cancel(o)  # twice (the latency model may repeat it): no error
    assert m.advance(5.0, [o], {"y0": BOOK}) == []


def test_track_starts_only_the_clocks_not_running() -> None:
    seen, new = order("seen"), order("new")
    m = IntensityFillModel(K6, ScriptedRng([0.0, 0.0, 0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(seen, BOOK, 1.0)
    m.track([seen, new], 4.0)
    assert dts(m.advance(10.0, [seen, new], {"y0": BOOK})) == [("seen", 9.0), ("new", 6.0)]


def test_advance_reference_is_advance() -> None:
    """The reference path (through the helpers) fills the same orders by the same sizes, with the
    same record, and keeps the clocks the same way."""
    book = bk([("0.45", "100"), ("0.44", "50")], [("0.48", "40"), ("0.49", "60")])
    orders = [order("bid", BUY, "0.45"), order("behind", BUY, "0.43"), order("over", BUY, "0.46"),
              order("ask", SELL, "0.49", "20", "4"), order("inside", SELL, "0.47"),
              RestingOrder("other", "n0", BUY, D("0.50"), D(10), D(5))]
    k = IntensityKnobs(intensity=30.0, spread_k=100.0, full_fill_prob=0.5)

    def run(ref: bool) -> list[list[ModelFill]]:
        rng = np.random.default_rng(7)
        m = IntensityFillModel(k, rng)
        for o in orders[:4]:
            m.on_order(o, book, 0.0)
        step = m.advance_reference if ref else m.advance
        return [step(t, orders, {"y0": book}) for t in (0.0, 2.0, 2.0, 5.0, 11.0)]

    got = run(True)
    assert got == run(False)
    assert sum(len(fs) for fs in got) >= 3
    # the order without a book never fills; one whose clock starts late counts from there
    assert all(f.client_id != "other" for fs in got for f in fs)
    assert [f.raw["model"] for fs in got for f in fs] == ["intensity"] * sum(len(fs) for fs in got)


def test_advance_reference_step_by_step() -> None:
    o = order()
    m = IntensityFillModel(K6, ScriptedRng([0.63, 0.0, 0.64]))  # type: ignore[arg-type]
    m.on_order(o, BOOK, 0.0)
    assert m.advance_reference(0.0, [o], {"y0": BOOK}) == []  # no time passed: no draw
    assert m.advance_reference(-1.0, [o], {"y0": BOOK}) == []
    [f] = m.advance_reference(10.0, [o], {"y0": BOOK})  # p = 1 − e^−1 = 0.632
    assert (f.client_id, f.size, f.ts) == ("o1", D(10), 10.0)
    assert f.raw == {"model": "intensity", "distance": 0.0, "touch_depth": 100.0,
                     "rate_per_min": pytest.approx(6.0), "dt": 10.0}
    assert m.advance_reference(20.0, [o], {"y0": BOOK}) == []  # 0.64 ≥ 0.632
    assert m.advance_reference(25.0, [o], {}) == []  # no book: no draw, but the clock moves
    m.rng = ScriptedRng([0.0, 0.0])  # type: ignore[assignment]
    assert dts(m.advance_reference(27.0, [o], {"y0": BOOK})) == [("o1", 2.0)]


def test_advance_reference_never_fills_at_a_zero_rate_even_on_a_zero_draw() -> None:
    # λ = 0 gives p = 0: an order fills when the draw is under p, never at it
    o = order()
    m = IntensityFillModel(IntensityKnobs(intensity=0.0, full_fill_prob=1.0), ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    m.on_order(o, BOOK, 0.0)
    assert m.advance_reference(10.0, [o], {"y0": BOOK}) == []


# ---------------------------------------------------------------- the queue models' latent flow
def test_latent_flow_off_by_default_and_at_a_zero_rate() -> None:
    q = QueueFillModel()
    assert q.name == "queue" and not q.time_driven
    o = order()
    q.on_order(o, BOOK, 0.0)
    assert q.advance(10.0, [o], {"y0": BOOK}) == []
    assert not QueueFillModel(IntensityKnobs(intensity=0.0)).time_driven
    assert QueueFillModel(IntensityKnobs(intensity=0.01)).time_driven
    q = QueueFillModel(K6)
    q.set_latent(None)
    assert not q.time_driven and q.advance(10.0, [o], {"y0": BOOK}) == []


def test_latent_fills_are_the_queue_models_own_records() -> None:
    q = QueueFillModel(K6, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    o = order()
    q.on_order(o, BOOK, 1.0)
    [f] = q.advance(4.0, [o], {"y0": BOOK})
    assert (f.client_id, f.size, f.ts) == ("o1", D(10), 4.0)
    assert f.raw == {"model": "queue", "cause": "latent", "distance": 0.0, "touch_depth": 100.0,
                     "rate_per_min": pytest.approx(6.0), "dt": 3.0}
    p = ProbQueueFillModel(latent=K6, rng=ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    assert p.name == "prob_queue" and p.time_driven
    p.on_order(o, BOOK, 1.0)
    [f] = p.advance(4.0, [o], {"y0": BOOK})
    assert (f.raw["model"], f.raw["cause"], f.raw["dt"]) == ("prob_queue", "latent", 3.0)


def test_latent_clock_starts_when_the_order_rests_and_stops_at_its_cancel() -> None:
    q = QueueFillModel(K6, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    o, gone = order("o1"), order("gone")
    q.on_order(o, BOOK, 2.0)
    q.on_order(gone, BOOK, 2.0)
    q.on_cancel(gone)
    q.on_cancel(gone)  # a second cancel: no error
    # the cancelled order's queue place is gone too: a book through its price fills only the other
    assert [f.client_id for f in q.on_book(bk([("0.44", "5")], [("0.45", "5")]), [o, gone], 3.0)] == ["o1"]
    q = QueueFillModel(K6, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    q.on_order(o, BOOK, 2.0)
    q.on_order(gone, BOOK, 2.0)
    q.on_cancel(gone)
    # passed again (the exchange's last step before it forgets it), the cancelled order counts no time
    assert dts(q.advance(5.0, [o, gone], {"y0": BOOK})) == [("o1", 3.0)]


def test_latent_flow_switched_on_later_starts_the_clocks_at_the_next_step() -> None:
    q = QueueFillModel(None, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    o = order()
    q.on_order(o, BOOK, 0.0)
    q.set_latent(K6)
    assert q.time_driven
    assert q.advance(3.0, [o], {"y0": BOOK}) == []  # the clock starts here
    assert dts(q.advance(5.0, [o], {"y0": BOOK})) == [("o1", 2.0)]


def test_new_latent_knobs_keep_the_running_clocks() -> None:
    q = QueueFillModel(K6, ScriptedRng([0.0, 0.0]))  # type: ignore[arg-type]
    o = order()
    q.on_order(o, BOOK, 0.0)
    q.set_latent(IntensityKnobs(intensity=12.0, spread_k=100.0, full_fill_prob=1.0))
    [f] = q.advance(10.0, [o], {"y0": BOOK})
    assert f.raw["dt"] == 10.0 and f.raw["rate_per_min"] == pytest.approx(12.0)


def test_the_default_generator_is_seeded() -> None:
    """Without a generator the latent flow draws from `default_rng(0)`: the same fills each run."""
    o = order()

    def run(rng: np.random.Generator | None) -> list[tuple[str, D, float]]:
        q = QueueFillModel(IntensityKnobs(intensity=60.0), rng)
        q.on_order(o, BOOK, 0.0)
        return [(f.client_id, f.size, f.ts) for t in range(1, 30) for f in q.advance(float(t), [o], {"y0": BOOK})]

    got = run(None)
    assert got and got == run(np.random.default_rng(0))
    assert got != run(np.random.default_rng(1))


def test_prob_queue_checks_its_function_and_power() -> None:
    with pytest.raises(ValueError, match="'power' or 'log'"):
        ProbQueueFillModel("cube")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be > 0"):
        ProbQueueFillModel("power", -1.0)
    with pytest.raises(ValueError, match="must be > 0"):
        ProbQueueFillModel("power", float("nan"))
    assert ProbQueueFillModel("log", 0.5).n == 0.5


# ---------------------------------------------------------------- FillModelSpec
def test_spec_defaults() -> None:
    s = FillModelSpec()
    assert (s.name, s.intensity, s.queue_func, s.queue_power, s.latent_intensity) == (
        "intensity", IntensityKnobs(), "power", 2.0, 0.0)
    assert s.latent() is None
    assert FillModelSpec("queue", latent_intensity=-1.0).latent() is None
    assert FillModelSpec("queue", latent_intensity=0.001).latent() == IntensityKnobs(intensity=0.001)


def test_spec_builds_each_model_with_its_knobs_and_generator() -> None:
    rng = np.random.default_rng(3)
    k = IntensityKnobs(intensity=2.0, spread_k=50.0)
    m = FillModelSpec("intensity", k).build(rng)
    assert isinstance(m, IntensityFillModel) and m.knobs is k and m.rng is rng
    q = FillModelSpec("queue", k, latent_intensity=0.5).build(rng)
    assert type(q) is QueueFillModel and q._latent is not None and q._latent.rng is rng
    assert q._latent.knobs == IntensityKnobs(intensity=0.5, spread_k=50.0)
    pq = FillModelSpec("prob_queue", k, "log", 3.0, latent_intensity=0.5).build(rng)
    assert isinstance(pq, ProbQueueFillModel) and (pq.func, pq.n) == ("log", 3.0)
    assert pq._latent is not None and pq._latent.rng is rng and pq._latent.knobs.intensity == 0.5
    assert not FillModelSpec("prob_queue").build(rng).time_driven
    with pytest.raises(ValueError, match="unknown paper fill model 'fifo'.*intensity, queue, prob_queue"):
        FillModelSpec("fifo").build(rng)
