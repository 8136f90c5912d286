"""`Exchange.cancels`: the orders an exchange actually cancelled, each once, whoever asked.

Paper: every order its cancel closed (by id, by market, all), never one already filled, closed
or unknown; and, with latency, not one a fill then shows the venue had matched whole before the
cancel reached it (the order ends FILLED). So the count is always the orders whose record ends
CANCELED by a cancel. Live: what the venue answered cancelled, not what was open here."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from live_helpers import start_quoting, wait_for
from paper_helpers import MARKETS, OPS, PLACE, TOKENS, WAIT, market_of, view

from pmm_widgets.config import Params
from pmm_widgets.domain import OrderStatus, PublicTrade, Quote, Side
from pmm_widgets.execution.latency_model import ConstantLatency
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink

D = Decimal
CANCELS = st.one_of(
    st.tuples(st.just("cancel_ids"), st.lists(st.integers(0, 9), max_size=4)),  # repeats, closed ids, unknown ids
    st.tuples(st.just("cancel_market"), st.integers(0, 1)),
    st.tuples(st.just("cancel_all")),
    st.tuples(st.just("end_session")),  # orders ended with the process: no cancel
)
# bids on y0 and the prints that fill them, a cancel among them, waits past the latencies
SELL = st.tuples(st.just("trade"), st.just(0), st.integers(35, 50), st.integers(5, 60), st.just(Side.SELL))
# a bid resting, a print that matches it (whole, or part), and at once our cancel of it (or the
# process's end: no cancel): with latency, the fill's notice is still on its way
RACE = st.tuples(st.just("race"), st.integers(40, 45), st.integers(5, 20), st.integers(-4, 10), st.booleans())


def cancelled_rows(sink: MemorySink) -> int:
    return sum(1 for r in sink.rows.get("orders", []) if r["status"] == "CANCELED" and r["reason"] == "cancelled")


@settings(max_examples=150)
@given(latency_ms=st.sampled_from([0.0, 40.0, 300.0]), ops=st.lists(st.one_of(OPS, CANCELS, PLACE, SELL, WAIT, RACE), max_size=40))
def test_paper_counts_the_orders_its_cancels_ended_and_nothing_else(latency_ms, ops):
    async def run() -> None:
        now = [100.0]
        sink = MemorySink()
        lat = ConstantLatency(latency_ms, feed_ms=latency_ms / 4) if latency_ms else None
        ex = PaperExchange(Params(paper_fill_model="queue", paper_fill_intensity=600.0), sink, seed=3,
                           clock=lambda: now[0], latency=lat, session="s", infer_side=True)
        ex.set_markets(MARKETS)
        ever: list[str] = []  # every client id placed: a cancel may name a closed one again
        for op in ops:
            kind = op[0]
            if kind == "wait":
                now[0] += op[1]
            elif kind == "frame":
                ex.observe_books([view(*u, ts=now[0]) for u in op[1]])
            elif kind == "trade":
                _, i, px, size, sd = op
                ex.observe_trade(PublicTrade(TOKENS[i], market_of(TOKENS[i]).condition_id, D(px) / 100, D(size), sd,
                                             now[0], now[0]))
            elif kind == "place":
                _, i, sd, px, size = op
                got = await ex.place([Quote(market_of(TOKENS[i]).condition_id, TOKENS[i], sd, D(px) / 100, D(size))])
                ever += [o.client_id for o in got]
            elif kind == "cancel":
                open_ = ex.open_orders()
                if open_:
                    await ex.cancel([open_[op[1] % len(open_)].client_id])
            elif kind == "cancel_ids":
                before = ex.cancels
                ids = [ever[k] if k < len(ever) else f"unknown-{k}" for k in op[1]]
                done = await ex.cancel(ids)
                assert ex.cancels - before == len(done) == len(set(done))
            elif kind == "cancel_market":
                before = ex.cancels
                n = await ex.cancel_market(MARKETS[op[1]].condition_id)
                assert ex.cancels - before == n
            elif kind == "cancel_all":
                before = ex.cancels
                n = await ex.cancel_all()
                assert ex.cancels - before == n and ex.open_orders() == []
            elif kind == "race":
                _, px, size, more, ended = op
                [o] = await ex.place([Quote(MARKETS[0].condition_id, "y0", Side.BUY, D(px) / 100, D(size))])
                now[0] += 0.4  # at the venue (every latency here)
                ex.observe_trade(PublicTrade("y0", MARKETS[0].condition_id, D(px) / 100, D(size + more), Side.SELL,
                                             now[0], now[0]))
                if ended:
                    ex.end_session("engine stopped")
                else:
                    await ex.cancel([o.client_id])
            elif kind == "end_session":
                ex.end_session("engine stopped")
            elif kind == "poll":
                await ex.poll(now[0])
            assert ex.cancels == cancelled_rows(sink), (kind, ex.cancels, cancelled_rows(sink))
        await ex.poll(now[0] + 5)  # every fill on its way delivered
        assert ex.cancels == cancelled_rows(sink)

    asyncio.run(run())


async def test_a_paper_order_the_venue_matched_whole_before_the_cancel_arrived_is_no_cancel():
    """With latency, the cancel closes the order here at once; the fill notice that comes back
    afterwards says the venue had matched all of it: it ends FILLED, and is not counted."""
    sink = MemorySink()
    ex = PaperExchange(Params(paper_fill_model="queue"), sink, clock=lambda: 0.0, latency=ConstantLatency(400, feed_ms=0),
                       session="s")
    ex.set_markets(MARKETS)
    m = MARKETS[0]
    ex.observe_book(view(0, 45, 3, 0, 100, ts=0.0))  # y0: nothing bid at 0.45, asks from 0.48
    [a, b] = await ex.place([Quote(m.condition_id, "y0", Side.BUY, D("0.45"), D(10)),
                             Quote(m.condition_id, "y0", Side.BUY, D("0.44"), D(10))])
    sell = lambda px, size, t: PublicTrade("y0", m.condition_id, D(px), D(size), Side.SELL, t, recv_ts=t)
    ex.observe_trade(sell("0.45", 10, 0.5))  # at the venue from 0.2 s: `a` matched whole, its notice comes at 0.7 s
    ex._last_now = 0.6
    assert await ex.cancel([a.client_id, b.client_id]) == [a.client_id, b.client_id]  # closed here, both
    assert ex.cancels == 2
    await ex.poll(1.0)
    assert a.status is OrderStatus.FILLED and b.status is OrderStatus.CANCELED
    assert ex.cancels == 1 == cancelled_rows(sink)
    assert await ex.cancel([a.client_id, b.client_id, "nobody"]) == [] and ex.cancels == 1


async def test_live_counts_what_the_venue_answered_cancelled(sb, wallet_key, closers):
    """The sandbox venue: an order it already cancelled on its own is not counted by the
    cancel-all, though the engine may still hold it open; a cancel by id of an order the venue
    no longer holds (cancelled, or unknown) is not counted either."""
    ex, key, _ = await start_quoting(sb, wallet_key, closers, 3)
    resting = [o.venue_order_id for o in ex.open_orders() if o.venue_order_id]
    assert len(resting) >= 3
    gone: list[str] = []
    sb.sim.add_account_listener(lambda ev: len(ev) == 3 and ev[0] == "order" and ev[2] == "CANCELLATION"
                                and gone.append(ev[1].order_id))
    first = next(o for o in ex.open_orders() if o.venue_order_id == resting[0])
    assert sb.sim.cancel_order(key, resting[0])  # the venue's own cancel
    assert ex.cancels == 0
    assert await ex.cancel([first.client_id]) == [] and ex.cancels == 0  # (open here still, or closed by the tape)
    mark = len(gone)
    n = await ex.cancel_all()
    venue_cancelled = gone[mark:]
    assert resting[0] not in venue_cancelled and set(resting[1:]) <= set(venue_cancelled)
    assert n == ex.cancels == len(venue_cancelled)
    assert await ex.cancel_all() == 0 and ex.cancels == len(venue_cancelled)  # nothing left: nothing counted
    await wait_for(lambda: not sb.sim.open_orders(key), 5)
