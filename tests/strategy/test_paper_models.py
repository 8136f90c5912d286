"""Fill, latency and fee models of the paper exchange: queue depletion, cancels ahead/behind,
trade-through, complement prints, latency ordering, typed fee/mid on fills."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategy_helpers import book, make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import OrderStatus, PublicTrade, Quote, Side
from pmm_widgets.execution.fee_model import FeeModel, ZeroFeeModel
from pmm_widgets.execution.fill_model import (
    FillModel,
    FillModelSpec,
    IntensityFillModel,
    ProbQueueFillModel,
    QueueFillModel,
    RestingOrder,
    queue_prob_ahead,
)
from pmm_widgets.execution.latency_model import (
    ConstantLatency,
    LatencyModel,
    SampledLatency,
)
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.gamma_terms import decode_terms

D = Decimal
CM = "0xc0"


def bid_order(size: str = "10", price: str = "0.45", cid: str = "o1") -> RestingOrder:
    return RestingOrder(cid, "y0", Side.BUY, D(price), D(size), D(5))


def test_models_implement_the_protocols():
    import numpy as np

    for spec in (FillModelSpec("intensity"), FillModelSpec("queue"), FillModelSpec("prob_queue")):
        assert isinstance(spec.build(np.random.default_rng(0)), FillModel)
    assert isinstance(ConstantLatency(), LatencyModel) and isinstance(SampledLatency([100.0]), LatencyModel)
    assert isinstance(ZeroFeeModel(), FeeModel)
    with pytest.raises(ValueError):
        FillModelSpec("nope").build(np.random.default_rng(0))
    with pytest.raises(ValueError):
        ProbQueueFillModel("cubic")  # type: ignore[arg-type]


def test_queue_depletion_prints_eat_the_queue_ahead_then_us():
    m = QueueFillModel()
    o = bid_order("10")
    m.on_order(o, book("y0", CM, [("0.45", 30)], [("0.48", 100)]), 0.0)
    sell = lambda sz: PublicTrade("y0", CM, D("0.45"), D(sz), Side.SELL, 1.0)
    assert m.on_trade(sell(20), [o], 1.0) == []  # 10 still ahead
    [f] = m.on_trade(sell(15), [o], 2.0)  # 10 ahead, then 5 of ours
    assert f.size == D(5) and f.raw["cause"] == "trade_at_price"
    assert m.on_trade(PublicTrade("y0", CM, D("0.45"), D(50), Side.BUY, 3.0), [o], 3.0) == []  # a buyer


def test_optimistic_queue_counts_every_cancel_ahead():
    m = QueueFillModel()
    o = bid_order()
    m.on_order(o, book("y0", CM, [("0.45", 100)], [("0.48", 100)]), 0.0)
    m.on_book(book("y0", CM, [("0.45", 60)], [("0.48", 100)]), [o], 1.0)
    assert m._queues["o1"].ahead == D(60)


def test_prob_queue_cancels_ahead_and_behind():
    def after_drop(level_before: int, ahead: int, level_after: int, func: str = "power", n: float = 1.0) -> Decimal:
        m = ProbQueueFillModel(func, n)  # type: ignore[arg-type]
        o = bid_order()
        m.on_order(o, book("y0", CM, [("0.45", level_before)], [("0.48", 100)]), 0.0)
        m._queues["o1"].ahead = D(ahead)  # we had moved up before
        m.on_book(book("y0", CM, [("0.45", level_after)], [("0.48", 100)]), [o], 1.0)
        return m._queues["o1"].ahead

    # joined at the back: nothing behind us, every cancel is ahead
    assert after_drop(100, 100, 80) == D(80)
    # in the middle with n = 1: half of a 20-share drop is ahead
    assert after_drop(100, 50, 80) == D(40)
    # at the front: nothing ahead to cancel
    assert after_drop(100, 0, 80) == D(0)
    # a higher power pushes the cancel to the longer side: 75 ahead / 25 behind
    lo, hi = after_drop(100, 75, 80, n=1.0), after_drop(100, 75, 80, n=3.0)
    assert lo == D("60") and hi < lo
    # log flattens it: between "all ahead" and proportional
    lg = after_drop(100, 75, 80, func="log")
    assert D(60) < lg < D(75)
    # never more ahead than the level holds
    assert after_drop(100, 90, 10) <= D(10)


@given(st.floats(0, 1e5), st.floats(0, 1e5), st.sampled_from(["power", "log"]), st.floats(0.1, 5))
def test_prob_ahead_is_a_probability_and_grows_with_the_queue_ahead(front, back, func, n):
    p = queue_prob_ahead(front, back, func, n)
    assert 0.0 <= p <= 1.0
    assert queue_prob_ahead(front + 10, back, func, n) >= p - 1e-12


def test_trade_through_fills_the_prob_queue_model():
    m = ProbQueueFillModel("power", 2.0)
    a, b = bid_order("8", "0.45", "a"), bid_order("8", "0.44", "b")
    for o in (a, b):
        m.on_order(o, book("y0", CM, [("0.45", 100), ("0.44", 100)], [("0.48", 100)]), 0.0)
    fills = m.on_trade(PublicTrade("y0", CM, D("0.43"), D(10), Side.SELL, 1.0), [b, a], 1.0)
    assert [(f.client_id, f.size) for f in fills] == [("a", D(8)), ("b", D(2))]  # best price first
    [f] = m.on_book(book("y0", CM, [("0.43", 5)], [("0.44", 10)]), [b], 2.0)  # offered at our bid
    assert f.client_id == "b" and f.raw["cause"] == "book_through"


def paper(model: str = "queue", latency: LatencyModel | None = None, **kw) -> PaperExchange:
    ex = PaperExchange(Params(paper_fill_model=model, **kw), MemorySink(), clock=lambda: 0.0, latency=latency)
    ex.set_markets([make_market(0)])
    return ex


async def test_complement_prints_fill_and_a_mirrored_repeat_counts_once():
    ex = paper("prob_queue")
    ex.observe_book(book("y0", CM, [("0.45", 10)], [("0.48", 100)]))
    [o] = await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(20))])
    # a NO buyer at 0.55 is a YES seller at 0.45: 10 ahead, then 5 of ours
    ex.observe_trade(PublicTrade("n0", CM, D("0.55"), D(15), Side.BUY, 1.0))
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(15), Side.SELL, 1.0))  # the same match on the other tape
    fills = await ex.poll(1.0)
    assert [(f.order_client_id, f.size) for f in fills] == [(o.client_id, D(5))]


async def test_latency_entry_cancel_and_a_fill_the_cancel_cannot_undo():
    ex = paper("queue", ConstantLatency(200))  # 100 ms each way: rests after 0.2 s, cancel lands 0.2 s later
    ex.observe_book(book("y0", CM, [("0.45", 0)], [("0.48", 100)]))
    [o] = await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(20))])
    sell = lambda sz, t: PublicTrade("y0", CM, D("0.45"), D(sz), Side.SELL, t, recv_ts=t)
    ex.observe_trade(sell(5, 0.1))  # not at the venue yet
    assert await ex.poll(0.1) == [] and not ex.venue_orders
    ex.observe_trade(sell(5, 0.3))
    [f1] = await ex.poll(0.3)
    assert f1.size == D(5)
    ex._last_now = 1.0
    assert await ex.cancel([o.client_id]) == [o.client_id]
    assert o.status is OrderStatus.CANCELED and ex.open_orders() == []
    ex.observe_trade(sell(5, 1.1))  # the cancel is still on its way: this fill stands
    [f2] = await ex.poll(1.1)
    assert f2.size == D(5) and f2.raw["after_cancel"] is True and o.filled == D(10)
    ex.observe_trade(sell(5, 1.3))  # the cancel has landed
    assert await ex.poll(1.3) == [] and not ex.venue_orders
    assert o.status is OrderStatus.CANCELED and ex.positions["y0"] == D(10)


class SlowNotice:
    """Orders travel instantly; fill notices take 0.5 s to come back."""

    def entry(self) -> float:
        return 0.0

    def cancel(self) -> float:
        return 0.0

    def response(self) -> float:
        return 0.5

    def feed(self) -> float:
        return 0.0


async def test_fill_notice_delay_and_typed_fee_and_mid():
    ex = paper("queue", SlowNotice())
    ex.observe_book(book("y0", CM, [("0.45", 0)], [("0.48", 100)]))
    [o] = await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(10))])
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(10), Side.SELL, 2.0))
    assert await ex.poll(2.0) == [] and o.filled == D(0)  # matched at the venue, not yet told
    assert not ex.venue_orders  # the venue no longer holds it
    [f] = await ex.poll(2.5)
    assert f.fee == D(0) and f.mid == D("0.465") and o.status is OrderStatus.FILLED
    assert ex.rec.sink.rows["trades"][0]["raw_json"]["fee"] == "0"


async def test_intensity_respects_entry_latency():
    ex = paper("intensity", ConstantLatency(2000), paper_fill_intensity=600.0)  # ~10 fills/s at the touch
    ex.observe_book(book("y0", CM, [("0.45", 100)], [("0.48", 100)]))
    await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(100))])
    assert await ex.poll(1.9) == []  # not at the venue before 2 s
    fills = []
    for k in range(1, 20):
        fills += await ex.poll(2.0 + k * 0.5)
    assert fills and min(f.ts for f in fills) > 2.0


async def test_switching_to_prob_queue_between_cycles():
    p = Params()
    ex = PaperExchange(p, MemorySink(), clock=lambda: 0.0)
    ex.set_markets([make_market(0)])
    ex.observe_book(book("y0", CM, [("0.45", 10)], [("0.48", 100)]))
    await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(20))])
    p.paper_fill_model = "prob_queue"
    p.paper_queue_power = 3.0
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(12), Side.SELL, 1.0))
    [f] = await ex.poll(1.0)
    assert f.size == D(2) and f.raw["model"] == "prob_queue"
    assert isinstance(ex.model, ProbQueueFillModel) and ex.model.n == 3.0


def test_sampled_latency_is_seeded_and_checked(tmp_path):
    a, b = SampledLatency([100, 200, 300], seed=4), SampledLatency([100, 200, 300], seed=4)
    assert [a.entry() for _ in range(20)] == [b.entry() for _ in range(20)]
    assert a.feed() == 0.1 and {a.response() for _ in range(50)} <= {0.05, 0.1, 0.15}
    f = tmp_path / "rtt.txt"
    f.write_text("# ms\n120\n\n80\n")
    assert sorted(SampledLatency.from_file(f).samples_ms.tolist()) == [80.0, 120.0]
    f.write_text("fast\n")
    with pytest.raises(ValueError, match="not a latency"):
        SampledLatency.from_file(f)
    with pytest.raises(ValueError):
        ConstantLatency(-1)
    # the feed can be faster than an order's half round trip
    assert ConstantLatency(100, feed_ms=2).feed() == 0.002 and ConstantLatency(100).feed() == 0.05
    assert SampledLatency([100, 300], feed_ms=0).feed() == 0.0


def test_intensity_model_is_pure_given_its_seed():
    import numpy as np

    def run() -> list[tuple[float, Decimal]]:
        from pmm_widgets.execution.fillmodels import IntensityKnobs

        m = IntensityFillModel(IntensityKnobs(intensity=120.0), np.random.default_rng(3))
        o = bid_order("50")
        bk = {"y0": book("y0", CM, [("0.45", 100)], [("0.48", 100)])}
        m.on_order(o, bk["y0"], 0.0)
        return [(f.ts, f.size) for t in range(1, 30) for f in m.advance(float(t), [o], bk)]

    assert run() == run() and run()


async def test_schedule_fee_model_charges_takers_only_and_reports_the_maker_rebate():
    from pmm_widgets.execution.fee_model import ScheduleFeeModel

    sched = {"feesEnabled": True, "feeSchedule": {"exponent": 1, "rate": 0.04, "takerOnly": True, "rebateRate": 0.25}}
    m = make_market(0, terms=decode_terms(sched))
    fm = ScheduleFeeModel()
    assert fm.fee(m, Side.BUY, D("0.5"), D(100), maker=False) == D("1.00000")  # 100 × 0.04 × 0.25
    assert fm.fee(m, Side.BUY, D("0.5"), D(100), maker=True) == 0
    assert fm.fee(make_market(1), Side.BUY, D("0.5"), D(100), maker=False) == 0  # no schedule: no fee
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: 0.0)
    ex.set_markets([m])
    ex.observe_book(book("y0", CM, [("0.45", 0)], [("0.48", 100)]))
    await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(10))])
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(10), Side.SELL, 1.0))
    [f] = await ex.poll(1.0)
    assert f.fee == 0 and D(f.raw["rebate"]) == D("0.02475")  # 0.25 × 10 × 0.04 × 0.45 × 0.55


async def test_taker_side_comes_from_the_book_not_the_feed_label():
    ex = paper("queue")
    ex.infer_side = True
    ex.observe_book(book("y0", CM, [("0.45", 0)], [("0.48", 100)]))
    await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(10))])
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(4), Side.BUY, 1.0))  # labelled BUY, but at the bid
    [f] = await ex.poll(1.0)
    assert f.size == D(4)
    ex.observe_trade(PublicTrade("y0", CM, D("0.48"), D(4), Side.SELL, 2.0))  # labelled SELL, but at the ask
    assert await ex.poll(2.0) == []


async def test_two_notices_of_a_cancelled_order_due_together():
    ex = paper("queue", SlowNotice())
    ex.observe_book(book("y0", CM, [("0.45", 0)], [("0.48", 100)]))
    [o] = await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(10))])
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(3), Side.SELL, 1.0))
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(4), Side.SELL, 1.1))
    ex._last_now = 1.2
    await ex.cancel([o.client_id])  # instant cancel; both fills are still on their way
    fills = await ex.poll(2.0)
    assert [f.size for f in fills] == [D(3), D(4)] and o.filled == D(7) and o.status is OrderStatus.CANCELED
    assert not ex._known


def test_paper_latency_comes_from_the_settings_constant_or_a_samples_file(tmp_path):
    """`PMM_PAPER_LATENCY_MS` (half each way), or `PMM_PAPER_LATENCY_FILE` of measured round
    trips (what `pmm fidelity --fit` writes from the live exchange's `order_rtt_ms`); a file
    that cannot be read is one line naming the setting."""
    from pmm_widgets.config import ConfigError, Settings
    from pmm_widgets.execution.latency_model import ConstantLatency, latency_from_settings, write_samples

    lat = latency_from_settings(Settings(_env_file=None, paper_latency_ms=40.0))
    assert isinstance(lat, ConstantLatency) and lat.entry() == lat.cancel() == 0.02
    f = write_samples(tmp_path / "rtt.txt", [10.0, 30.0], note="measured")
    lat = latency_from_settings(Settings(_env_file=None, paper_latency_file=str(f), sandbox_seed=3))
    assert isinstance(lat, SampledLatency) and sorted(lat.samples_ms) == [10.0, 30.0]
    assert {lat.entry() for _ in range(50)} == {0.005, 0.015}
    for bad, why in ((tmp_path / "missing.txt", "cannot read"), (tmp_path / "bad.txt", "not a latency")):
        if bad.name == "bad.txt":
            bad.write_text("12\nfast\n")
        with pytest.raises(ConfigError) as e:
            latency_from_settings(Settings(_env_file=None, paper_latency_file=str(bad)))
        assert str(e.value).startswith("PMM_PAPER_LATENCY_FILE=") and why in str(e.value) and "\n" not in str(e.value)


async def test_latent_flow_fills_a_queue_order_on_time_and_follows_its_knob():
    """`PMM_PAPER_LATENT_INTENSITY`: on top of the events, a queue model's order at the public touch
    fills as a Poisson process (cause `latent`); 0 turns it off, a live change applies at once, and
    a cancel still in flight is run up to (the order can fill until the cancel lands)."""
    ex = paper("queue", paper_latent_intensity=0.0)
    ex.observe_book(book("y0", CM, [("0.45", 100)], [("0.48", 100)]))
    await ex.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(100))])
    assert all([await ex.poll(float(t)) == [] for t in range(1, 30)])  # no events, no latent flow: nothing
    assert not ex.model.time_driven
    ex.params.paper_latent_intensity = 600.0  # ~10 fills/s at the touch
    fills = []
    for k in range(1, 20):
        fills += await ex.poll(30.0 + k * 0.5)
    assert fills and all(f.raw["cause"] == "latent" and f.raw["model"] == "queue" for f in fills)
    assert ex.model.time_driven and isinstance(ex.model, QueueFillModel)
    # 1 s each way and a 1 s feed: the order rests from 2 s; a cancel sent at 1.5 s lands at 3.5 s, and
    # the latent flow fills it until then (reported as after the cancel), never later
    ex2 = paper("prob_queue", ConstantLatency(2000), paper_latent_intensity=1000.0)
    ex2.observe_book(book("y0", CM, [("0.45", 100)], [("0.48", 100)]))
    [o] = await ex2.place([Quote(CM, "y0", Side.BUY, D("0.45"), D(100))])
    assert await ex2.poll(1.5) == []
    assert await ex2.cancel([o.client_id]) == [o.client_id]
    late = []
    for t in (2.0, 2.4, 3.0, 4.0, 6.0):
        late += await ex2.poll(t)
    assert late and all(f.raw.get("after_cancel") for f in late)
    assert 2.0 < min(f.ts for f in late) and max(f.ts for f in late) <= 3.5 + 1e-9
