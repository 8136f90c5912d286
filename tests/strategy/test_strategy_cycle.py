"""Strategies inside the QuoteCycle: per-market selection, the guard in front of the exchange, a
failing user strategy, and a switch that never leaves two strategies' orders resting together."""

from __future__ import annotations

from decimal import Decimal

import pytest
from strategy_helpers import WalkingBooks, make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode, Quote, Side
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.base import Decision, MarketContext
from pmm_widgets.ticks import valid_price

D = Decimal


class TaggingExchange(PaperExchange):
    """Paper exchange that remembers which strategy each order came from and, after every
    place and cancel, which strategies have orders resting in each market."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.cycle: QuoteCycle | None = None
        self.tag: dict[str, str] = {}
        self.mixed: list[tuple[str, set[str]]] = []
        self.snapshots = 0

    def _check(self) -> None:
        self.snapshots += 1
        by_market: dict[str, set[str]] = {}
        for o in self.open_orders():
            by_market.setdefault(o.market, set()).add(self.tag[o.client_id])
        self.mixed.extend((m, s) for m, s in by_market.items() if len(s) > 1)

    async def place(self, quotes):
        orders = await super().place(quotes)
        assert self.cycle is not None
        for o in orders:
            self.tag[o.client_id] = self.cycle.strategy_for(o.market).name
        self._check()
        return orders

    async def cancel(self, client_ids):
        out = await super().cancel(client_ids)
        self._check()
        return out

    async def cancel_market(self, market):
        out = await super().cancel_market(market)
        self._check()
        return out


async def drive(qc, ex, books, ms, cycles, t0=1_000.0, before=None):
    for k in range(cycles):
        now = t0 + 3.0 * k
        if before is not None:
            before(k)
        books.step(now)
        await qc.run_once(now, ms, books.view, ex)


async def test_switching_strategy_never_rests_both_strategies_orders():
    p = Params(paper_fill_intensity=3.0)
    sink = MemorySink()
    ms = [make_market(i) for i in range(4)]
    books = WalkingBooks(ms, seed=3)
    ex = TaggingExchange(p, sink, seed=5)
    qc = QuoteCycle(p, sink, Mode.PAPER)
    ex.cycle = qc
    target = ms[1].condition_id

    def flip(k: int) -> None:
        if k == 10:
            qc.set_strategy(target, "as", as_gamma=0.5)
        if k == 20:
            p.strategy = "microprice"  # the default changes: every market without an override switches
        if k == 30:
            qc.set_strategy(target, None)  # back to the default (now microprice)

    await drive(qc, ex, books, ms, 40, before=flip)
    assert ex.snapshots > 40 and ex.mixed == []
    tags_by_market = {}
    for cid, tag in ((o["market"], ex.tag[o["client_id"]]) for o in sink.rows["orders"]):
        tags_by_market.setdefault(cid, set()).add(tag)
    assert tags_by_market[target] == {"spread", "as", "microprice"}
    switches = [e for e in sink.rows["events"] if e["kind"] == "strategy"]
    assert [(e["market"], e["data_json"]["from"], e["data_json"]["to"]) for e in switches if e["market"] == target] == \
        [(target, "spread", "as"), (target, "as", "microprice")]
    assert {e["market"] for e in switches} == {m.condition_id for m in ms}
    assert all(e["data_json"]["cancelled"] >= 1 for e in switches)
    st = qc.snapshot().markets
    assert {s.strategy for s in st.values()} == {"microprice"}
    assert all(ex.tag[o.client_id] == "microprice" for o in ex.open_orders())


class Reckless:
    """A user strategy that tries everything the guard must stop."""

    name = "reckless"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        m, cid = ctx.market, ctx.market.condition_id
        ask = ctx.tick * ctx.ask_ticks
        return Decision((
            Quote(cid, m.yes_token_id, Side.BUY, ask, D(10)),  # crosses
            Quote(cid, m.yes_token_id, Side.BUY, ask - ctx.tick / 2, D(10)),  # off grid
            Quote(cid, m.yes_token_id, Side.SELL, ask + ctx.tick, D(1_000)),  # sells what it does not hold
            Quote(cid, m.no_token_id, Side.BUY, D(1) - ask - ctx.tick, D(10)),  # the only valid one
        ))


class Broken:
    name = "broken"

    def decide(self, ctx, state):
        raise ZeroDivisionError("oops")


async def test_guard_stops_a_reckless_strategy_and_a_broken_one_quotes_nothing():
    p = Params()
    sink = MemorySink()
    ms = [make_market(i) for i in range(3)]
    books = WalkingBooks(ms, seed=1)
    ex = PaperExchange(p, sink, seed=2)
    qc = QuoteCycle(p, sink, Mode.PAPER)
    qc.set_strategy(ms[0].condition_id, Reckless())
    qc.set_strategy(ms[1].condition_id, Broken())
    await drive(qc, ex, books, ms, 6)
    orders = sink.rows["orders"]
    assert orders and all(o["status"] != "REJECTED" for o in orders)
    for o in ex.open_orders():
        assert valid_price(o.price, D("0.01"))
        assert o.market != ms[1].condition_id
        if o.market == ms[0].condition_id:
            assert (o.token_id, o.side) == (ms[0].no_token_id, Side.BUY)
    st = qc.snapshot().markets
    assert "strategy error: ZeroDivisionError: oops" in st[ms[1].condition_id].status
    assert st[ms[2].condition_id].status == "quoting"
    ev = [(e["kind"], e["market"]) for e in sink.rows["events"]]
    assert ("strategy_guard", ms[0].condition_id) in ev and ("strategy_guard", ms[1].condition_id) in ev
    assert len([e for e in ev if e == ("strategy_guard", ms[1].condition_id)]) == 1  # edge-triggered


async def test_set_strategy_validates_like_every_parameter():
    p = Params()
    qc = QuoteCycle(p, MemorySink(), Mode.PAPER)
    with pytest.raises(ValueError, match="unknown strategy"):
        qc.set_strategy("0xc0", "nope")
    with pytest.raises(ValueError, match="greater than 0"):
        qc.set_strategy("0xc0", "as", as_gamma=-1)
    with pytest.raises(ValueError, match="not a strategy parameter: max_daily_loss_usd"):
        qc.set_strategy("0xc0", "as", max_daily_loss_usd=1e9)  # a risk limit is not the strategy's to move
    with pytest.raises(ValueError, match="is not a strategy"):
        qc.set_strategy("0xc0", object())  # type: ignore[arg-type]
    assert qc.overrides == {}
    qc.set_strategy("0xc0", "as", as_gamma=0.25)
    assert qc._market_params("0xc0").as_gamma == 0.25 and p.as_gamma == 1.0


async def test_regime_transitions_are_event_rows():
    p = Params(strategy="regime", regime_wide_vol=0.001, regime_reduce_vol=0.5, regime_halt_vol=0.9)
    sink = MemorySink()
    ms = [make_market(0)]
    books = WalkingBooks(ms, seed=7, spread_ticks=3)
    ex = PaperExchange(p, sink, seed=1)
    qc = QuoteCycle(p, sink, Mode.PAPER)
    await drive(qc, ex, books, ms, 20)
    rows = [e for e in sink.rows["events"] if e["kind"] == "strategy_regime"]
    assert rows and rows[0]["message"].startswith("regime: regime normal -> wide: vol")
    assert rows[0]["data_json"]["regime"] == "wide"
    assert qc.snapshot().markets[ms[0].condition_id].status.startswith("wide (vol")
