"""Further invariants: risk never lets inventory grow past a limit, fill sizes stay in bounds,
the paper exchange never fills more than an order's size, the vol estimator is consistent."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import book, make_market, mirror_books

from pmm_widgets.config import Params
from pmm_widgets.domain import PublicTrade, Quote, Side
from pmm_widgets.events import EventBus
from pmm_widgets.execution.fillmodels import draw_fill_size
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.inventory import Inventory, net_delta
from pmm_widgets.strategy.quoting import make_quotes
from pmm_widgets.strategy.risk import RiskManager, exposure_usd
from pmm_widgets.strategy.volatility import VolEstimator

D = Decimal


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 700), st.integers(0, 700), st.integers(10, 90), st.integers(50, 600), st.integers(20, 400))
def test_risk_filtered_quotes_never_grow_past_limits(yes, no, bid, lim_sh, lim_usd):
    m = make_market(0)
    y, n = mirror_books(m, str(D(bid) / 100), str(D(bid + 3) / 100))
    p = Params(max_inventory_shares=D(lim_sh), max_inventory_usd=D(lim_usd), quote_size=D(25), price_band=D("0.5"))
    inv = Inventory(D(yes), D(no))
    mid = D(2 * bid + 3) / 200
    r = RiskManager(p, EventBus())
    r.begin_cycle()
    for q in r.filter_quotes(0.0, m, make_quotes(m, y, n, p, inv, 1.0, {}), inv, mid, D(0)):
        new = inv.net + net_delta(m, q.token_id, q.side, q.size)
        if abs(new) > abs(inv.net):
            assert abs(new) <= p.max_inventory_shares
            assert exposure_usd(new, mid) <= p.max_inventory_usd
        if q.side is Side.BUY:
            held = inv.yes if q.token_id == m.yes_token_id else inv.no
            assert held + q.size <= p.max_inventory_shares


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 100_000), st.sampled_from([1, 5, 15]), st.floats(0, 1), st.floats(0.05, 1), st.integers(0, 10_000))
def test_fill_size_bounds(remaining_c, min_size, full_p, max_frac, seed):
    remaining = D(remaining_c) / 100
    p = Params(paper_full_fill_prob=full_p, paper_partial_max_frac=max_frac)
    size = draw_fill_size(np.random.default_rng(seed), p, remaining, D(min_size))
    assert D(0) < size <= remaining
    assert size == remaining or size >= D(min_size)
    assert size == remaining or size <= max(remaining * D(repr(max_frac)), D(min_size))
    assert size == size.quantize(D("0.01"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["trade", "book", "poll"]), st.integers(40, 50), st.integers(1, 120),
                          st.sampled_from([Side.BUY, Side.SELL])), max_size=40),
       st.sampled_from(["intensity", "queue"]))
def test_paper_never_overfills(events, model):
    asyncio.run(_overfill_case(events, model))


async def _overfill_case(events, model) -> None:
    p = Params(paper_fill_model=model, paper_fill_intensity=300.0)
    sink = MemorySink()
    m = make_market(0)
    ex = PaperExchange(p, sink, seed=1, clock=lambda: 0.0)
    ex.set_markets([m])
    cm = m.condition_id
    ex.observe_book(book("y0", cm, [("0.45", 100)], [("0.50", 100)]))
    orders = await ex.place([Quote(cm, "y0", Side.BUY, D("0.45"), D(30)), Quote(cm, "y0", Side.BUY, D("0.44"), D(20))])
    t = 0.0
    for kind, px, sz, side in events:
        t += 1.0
        price = D(px) / 100
        if kind == "trade":
            ex.observe_trade(PublicTrade("y0", cm, price, D(sz), side, t))
        elif kind == "book":
            ex.observe_book(book("y0", cm, [(str(min(price, D("0.45"))), sz)], [(str(max(price + D("0.01"), D("0.46"))), 100)], ts=t))
        else:
            await ex.poll(t)
    await ex.poll(t + 1)
    filled: dict[str, Decimal] = {}
    for tr in sink.rows.get("trades", []):
        filled[tr["order_id"]] = filled.get(tr["order_id"], D(0)) + tr["size"]
        assert tr["size"] > 0
    for o in orders:
        assert filled.get(o.client_id, D(0)) <= o.size
        assert o.filled == filled.get(o.client_id, D(0))
    assert ex.positions.get("y0", D(0)) == sum(filled.values(), D(0))


def test_vol_estimator_recovers_a_random_walk_variance():
    rng = np.random.default_rng(3)
    v = VolEstimator()
    sigma_per_sqrt_s = 0.002
    mid, t = 0.5, 0.0
    v.update("a", mid, t, 600.0)
    for _ in range(4000):
        dt = float(rng.uniform(1.0, 5.0))
        t += dt
        mid += float(rng.normal(0, sigma_per_sqrt_s * math.sqrt(dt)))
        v.update("a", mid, t, 600.0)
    est = v.sigma("a", 30.0)
    assert abs(est / (sigma_per_sqrt_s * math.sqrt(30.0)) - 1) < 0.2
    assert v.sigma("unknown", 30.0) == 0.0
    v.update("a", mid, t, 600.0)  # dt = 0 is ignored
    assert v.sigma("a", 30.0) == est
