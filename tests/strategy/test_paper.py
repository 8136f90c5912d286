"""Paper exchange: venue-like refusals, the intensity model's statistics, queue semantics."""

from __future__ import annotations

from decimal import Decimal

import pytest
from strategy_helpers import book, make_market, mirror_books

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode, OrderStatus, PublicTrade, Quote, Side
from pmm_widgets.execution.exchange import Exchange
from pmm_widgets.execution.fillmodels import depth_factor, intensity_rate
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink

D = Decimal


def test_implements_exchange_protocol():
    assert isinstance(PaperExchange(Params(), MemorySink()), Exchange)
    assert PaperExchange.mode is Mode.PAPER


async def test_rejections_mirror_the_venue():
    m = make_market(0)
    ex = PaperExchange(Params(), MemorySink())
    ex.set_markets([m])
    y, _ = mirror_books(m, "0.45", "0.48")
    ex.observe_book(y)
    cm = m.condition_id
    orders = await ex.place([
        Quote(cm, "y0", Side.BUY, D("0.48"), D(10)),  # crosses best ask
        Quote(cm, "y0", Side.BUY, D("0.455"), D(10)),  # off grid
        Quote(cm, "y0", Side.BUY, D("0.44"), D(2)),  # below min size
        Quote(cm, "y0", Side.SELL, D("0.50"), D(10)),  # no shares
        Quote(cm, "zz", Side.BUY, D("0.40"), D(10)),  # unknown token
        Quote(cm, "y0", Side.BUY, D("0.44"), D(10)),  # fine
    ])
    assert [o.status for o in orders] == [OrderStatus.REJECTED] * 5 + [OrderStatus.LIVE]
    assert [o.client_id for o in ex.open_orders()] == [orders[-1].client_id]
    assert await ex.count_venue_open_orders() == 1
    assert len(ex.rec.sink.rows["orders"]) == 6


def run_intensity(params: Params, minutes: float, markets: int = 40, behind_ticks: int = 0, seed: int = 3) -> int:
    """Fills of BUY orders resting `behind_ticks` behind the touch, re-placed when filled."""
    import asyncio

    async def go() -> int:
        ms = [make_market(i) for i in range(markets)]
        ex = PaperExchange(params, MemorySink(), seed=seed, clock=lambda: 0.0)
        ex.set_markets(ms)
        for m in ms:
            y, _ = mirror_books(m, "0.45", "0.48")
            ex.observe_book(y)
        price = D("0.45") - D("0.01") * behind_ticks
        fills = 0
        now = 0.0
        while now < minutes * 60:
            have = {o.token_id for o in ex.open_orders()}
            await ex.place([Quote(m.condition_id, m.yes_token_id, Side.BUY, price, D(10)) for m in ms if m.yes_token_id not in have])
            now += 2.0
            fills += len(await ex.poll(now))
        return fills

    return asyncio.run(go())


def test_intensity_rate_shape():
    p = Params(paper_fill_intensity=6.0, paper_spread_k=100.0)
    assert intensity_rate(p, 0.0, 100.0) == pytest.approx(0.1)
    assert intensity_rate(p, 0.01, 100.0) == pytest.approx(0.1 * 2.718281828 ** -1)
    assert depth_factor(0.0) == 2.0 and depth_factor(100.0) == 1.0 and depth_factor(1e6) < 0.001


def test_intensity_fill_rate_matches_and_is_monotone():
    low = run_intensity(Params(paper_fill_intensity=1.0), minutes=10)
    mid = run_intensity(Params(paper_fill_intensity=3.0), minutes=10)
    high = run_intensity(Params(paper_fill_intensity=9.0), minutes=10)
    assert low < mid < high
    # 40 orders × 10 min at 1 fill/min/order at a 100-share touch: ~400 fills (Poisson sd ~20)
    assert 320 < low < 480


def test_spread_k_lowers_fill_rate_away_from_touch():
    counts = [run_intensity(Params(paper_fill_intensity=5.0, paper_spread_k=k), minutes=5, behind_ticks=3)
              for k in (0.0, 30.0, 100.0)]
    assert counts[0] > counts[1] > counts[2]


async def test_partial_and_full_fills_are_recorded():
    p = Params(paper_fill_intensity=200.0, paper_full_fill_prob=0.3)
    sink = MemorySink()
    ms = [make_market(i) for i in range(10)]
    ex = PaperExchange(p, sink, seed=5, clock=lambda: 0.0)
    ex.set_markets(ms)
    for m in ms:
        y, _ = mirror_books(m, "0.45", "0.48")
        ex.observe_book(y)
    await ex.place([Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.45"), D(50)) for m in ms])
    fills = []
    for k in range(1, 30):
        fills += await ex.poll(float(k))
    kinds = {f.fill_type.value for f in fills}
    assert kinds == {"PARTIAL", "FILLED"}
    for f in fills:
        assert D(5) <= f.size <= D(50) or f.fill_type.value == "FILLED"
    trades = sink.rows["trades"]
    assert len(trades) == len(fills)
    assert {t["mode"] for t in trades} == {"paper"} and {t["status"] for t in trades} == {"MATCHED"}
    # per order, filled sizes add up to at most the order size and FILLED closes it
    by_order: dict[str, Decimal] = {}
    for t in trades:
        by_order[t["order_id"]] = by_order.get(t["order_id"], D(0)) + t["size"]
    assert all(v <= D(50) for v in by_order.values())
    rows = {r["client_id"]: r for r in sink.rows["orders"]}
    for cid, filled in by_order.items():
        assert rows[cid]["filled"] == filled
        assert rows[cid]["status"] == ("FILLED" if filled == D(50) else "PARTIAL")
    # partial fraction is capped by paper_partial_max_frac of the remaining size
    first = [f for f in fills if f.fill_type.value == "PARTIAL"]
    assert all(f.size <= D(40) for f in first)
    # positions: shares bought are now sellable
    assert sum(ex.positions.values()) == sum(by_order.values())


async def test_same_seed_same_fills():
    async def once():
        ex = PaperExchange(Params(paper_fill_intensity=30.0), MemorySink(), seed=11, clock=lambda: 0.0)
        m = make_market(0)
        ex.set_markets([m])
        ex.observe_book(mirror_books(m, "0.45", "0.48")[0])
        await ex.place([Quote(m.condition_id, "y0", Side.BUY, D("0.45"), D(100))])
        out = []
        for k in range(1, 20):
            out += [(f.ts, f.size) for f in await ex.poll(float(k))]
        return out
    assert await once() == await once()


async def test_queue_model_semantics():
    p = Params(paper_fill_model="queue")
    sink = MemorySink()
    m = make_market(0)
    ex = PaperExchange(p, sink, clock=lambda: 0.0)
    ex.set_markets([m])
    cm = m.condition_id
    ex.observe_book(book("y0", cm, [("0.45", 100)], [("0.48", 100)]))
    [o] = await ex.place([Quote(cm, "y0", Side.BUY, D("0.45"), D(50))])
    assert o.status is OrderStatus.LIVE
    assert await ex.poll(1.0) == []  # the queue model does not fill on time alone
    ex.observe_trade(PublicTrade("y0", cm, D("0.45"), D(60), Side.SELL, 2.0))  # eats 60 of 100 ahead
    ex.observe_trade(PublicTrade("y0", cm, D("0.45"), D(60), Side.BUY, 2.0))  # a buyer: not against us
    ex.observe_book(book("y0", cm, [("0.45", 40)], [("0.48", 100)], ts=2.5))  # the same trade: no double count
    ex.observe_book(book("y0", cm, [("0.45", 30)], [("0.48", 100)], ts=3.0))  # 10 cancelled ahead → 30 ahead
    assert await ex.poll(3.0) == []
    ex.observe_trade(PublicTrade("y0", cm, D("0.45"), D(50), Side.SELL, 4.0))  # 30 ahead, then 20 of ours
    [f1] = await ex.poll(4.0)
    assert (f1.size, f1.fill_type.value, f1.price) == (D(20), "PARTIAL", D("0.45"))
    ex.observe_book(book("y0", cm, [("0.44", 30)], [("0.45", 10)], ts=5.0))  # offered at our bid: traded through
    [f2] = await ex.poll(5.0)
    assert (f2.size, f2.fill_type.value) == (D(30), "FILLED")
    assert ex.open_orders() == []
    assert [t["fill_type"] for t in sink.rows["trades"]] == ["PARTIAL", "FILLED"]
    assert sink.rows["orders"][0]["status"] == "FILLED" and sink.rows["orders"][0]["filled"] == D(50)


async def test_queue_trade_through_and_sell_side():
    p = Params(paper_fill_model="queue")
    m = make_market(0)
    ex = PaperExchange(p, MemorySink(), clock=lambda: 0.0)
    ex.set_markets([m])
    cm = m.condition_id
    ex.observe_book(book("y0", cm, [("0.45", 100)], [("0.48", 100)]))
    ex.positions["y0"] = D(40)
    [s] = await ex.place([Quote(cm, "y0", Side.SELL, D("0.49"), D(40))])
    assert s.status is OrderStatus.LIVE
    ex.observe_trade(PublicTrade("y0", cm, D("0.50"), D(15), Side.BUY, 1.0))  # a buy above our ask
    [f] = await ex.poll(1.0)
    assert f.side is Side.SELL and f.size == D(15) and ex.positions["y0"] == D(25)


async def test_cancel_paths_and_model_switch_live():
    p = Params()
    m0, m1 = make_market(0), make_market(1)
    sink = MemorySink()
    ex = PaperExchange(p, sink, clock=lambda: 0.0)
    ex.set_markets([m0, m1])
    await ex.place([Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.40"), D(10)) for m in (m0, m1)] +
                   [Quote(m0.condition_id, m0.no_token_id, Side.BUY, D("0.40"), D(10))])
    assert await ex.cancel_market(m0.condition_id) == 2
    assert await ex.cancel_all() == 1
    assert all(r["status"] == "CANCELED" for r in sink.rows["orders"])
    p.paper_fill_model = "queue"  # params are read live
    assert await ex.poll(10.0) == []


async def test_one_print_fills_each_share_once_best_price_first():
    p = Params(paper_fill_model="queue")
    m = make_market(0)
    ex = PaperExchange(p, MemorySink(), clock=lambda: 0.0)
    ex.set_markets([m])
    cm = m.condition_id
    ex.observe_book(book("y0", cm, [("0.40", 100)], [("0.48", 100)]))
    hi, lo = await ex.place([Quote(cm, "y0", Side.BUY, D("0.45"), D(8)), Quote(cm, "y0", Side.BUY, D("0.44"), D(8))])
    ex.observe_trade(PublicTrade("y0", cm, D("0.43"), D(10), Side.SELL, 1.0))  # through both of our bids
    fills = await ex.poll(1.0)
    assert [(f.order_client_id, f.size) for f in fills] == [(hi.client_id, D(8)), (lo.client_id, D(2))]
