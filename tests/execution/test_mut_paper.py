"""The paper exchange (`execution/paper.py`) pinned where a mutation-testing pass found it
untested: the factory the engine and the replay build it with, mirrored prints, what a cancel,
a knob change or the end of a session leaves behind, the balance a sell may use, ids, and the
order and trade rows. Queue-model fills are worked by hand (no random draws)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal as D

import numpy as np
import pytest
from fill_helpers import CM, bk
from paper_helpers import MARKETS

from pmm_widgets.book import BookNote
from pmm_widgets.config import Params, Settings
from pmm_widgets.domain import BUY, SELL, BookView, Market, Order, OrderStatus, PublicTrade, Quote, Side
from pmm_widgets.execution.latency_model import ConstantLatency, LatencyModel
from pmm_widgets.execution.paper import PaperExchange, paper_exchange
from pmm_widgets.store.sink import MemorySink

BOOK = bk([("0.45", "100")], [("0.48", "100")])  # y0: 100 ahead of a new bid at 0.45
EMPTY_BID = bk([("0.45", "0")], [("0.48", "100")])  # y0: a new bid at 0.45 is first in line


@dataclass
class Lat:
    """Latency with each delay chosen (seconds)."""

    entry_s: float = 0.0
    cancel_s: float = 0.0
    response_s: float = 0.0
    feed_s: float = 0.0

    def entry(self) -> float:
        return self.entry_s

    def cancel(self) -> float:
        return self.cancel_s

    def response(self) -> float:
        return self.response_s

    def feed(self) -> float:
        return self.feed_s


def paper(model: str = "queue", latency: LatencyModel | None = None, now: float = 0.0, **kw) -> PaperExchange:
    ex = PaperExchange(Params(paper_fill_model=model, **kw), MemorySink(), clock=lambda: now, latency=latency,
                       session="s")
    ex.set_markets(MARKETS)
    return ex


def bid(price: str = "0.45", size: int = 10, token: str = "y0") -> Quote:
    return Quote(CM, token, BUY, D(price), D(size))


def ask(price: str, size: int, token: str = "y0") -> Quote:
    return Quote(CM, token, SELL, D(price), D(size))


def sell_print(price: str, size: int, ts: float, token: str = "y0") -> PublicTrade:
    return PublicTrade(token, CM, D(price), D(size), SELL, ts, recv_ts=ts)


def rows(ex: PaperExchange, table: str) -> list[dict]:
    return ex.rec.sink.rows.get(table, [])  # type: ignore[attr-defined]


def nothing_left(ex: PaperExchange) -> bool:
    """No trace of finished orders: none resting, entering, being cancelled, told or remembered."""
    return not (ex.venue_orders or ex._entering or ex._cancelling or ex._notices or ex._known
                or any(ex._venue_by_token.values()) or any(ex._by_token.values()))


# -- the factory -----------------------------------------------------------------------------------
def test_paper_exchange_is_built_from_the_settings():
    settings = Settings(_env_file=None, sandbox_seed=7, paper_latency_ms=40.0)
    ex = paper_exchange(settings, Params(), MemorySink(), clock=lambda: 12.5, session="run1")
    assert isinstance(ex, PaperExchange) and ex.infer_side
    assert isinstance(ex.latency, ConstantLatency) and ex.latency.entry() == 0.02
    assert ex.rng.random() == np.random.default_rng(7).random()  # seeded by the settings
    assert ex._now() == 12.5 and ex._session == "run1"


# -- ids -------------------------------------------------------------------------------------------
async def test_ids_count_up_in_the_session_orders_and_fills_alike():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    a, b = await ex.place([bid("0.45"), bid("0.44")])
    assert (a.client_id, b.client_id) == ("pp-s-1", "pp-s-2") and a.venue_order_id == a.client_id
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    [f] = await ex.poll(1.0)
    assert f.trade_id == "pt-s-3" and f.order_client_id == "pp-s-1"


# -- mirrored prints -------------------------------------------------------------------------------
async def test_a_print_on_one_token_fills_the_other_at_the_mirrored_price():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    ex.observe_book(bk([("0.51", "0")], [("0.55", "100")], token="n0"))
    [y] = await ex.place([bid("0.45", 10, "y0")])
    [n] = await ex.place([bid("0.51", 10, "n0")])
    # a NO buyer at 0.55 is a YES seller at 0.45 (fills y); a NO seller at 0.51 is a YES buyer at 0.49
    ex.observe_trade(PublicTrade("n0", CM, D("0.55"), D(4), BUY, 1.0, recv_ts=1.0))
    assert [(f.order_client_id, f.size, f.price) for f in await ex.poll(1.0)] == [(y.client_id, D(4), D("0.45"))]
    # the same match on the YES tape: counted once
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    assert await ex.poll(1.0) == []
    # a YES buyer at 0.49 is a NO seller at 0.51: fills n, not y
    ex.observe_trade(PublicTrade("y0", CM, D("0.49"), D(3), BUY, 2.0, recv_ts=2.0))
    assert [(f.order_client_id, f.size, f.token_id) for f in await ex.poll(2.0)] == [(n.client_id, D(3), "n0")]


# -- refusals and the balance a sell may use -------------------------------------------------------
async def test_without_markets_every_quote_is_refused_not_a_crash():
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: 0.0)
    [o] = await ex.place([bid()])
    assert o.status is OrderStatus.REJECTED and o.reason.startswith("unknown token")
    assert ex.open_orders() == [] and rows(ex, "orders")[0]["status"] == "REJECTED"


async def test_a_cancelled_or_filled_sell_no_longer_reserves_shares():
    ex = paper()
    ex.observe_book(BOOK)
    ex.positions["y0"] = D(10)
    await ex.place([bid("0.44", 10)])  # a bid reserves no shares
    [s] = await ex.place([ask("0.50", 10)])
    [no] = await ex.place([ask("0.51", 5)])  # all 10 are reserved
    assert s.status is OrderStatus.LIVE and no.reason == "not enough balance to sell"
    await ex.cancel([s.client_id])
    [s2] = await ex.place([ask("0.50", 10)])
    assert s2.status is OrderStatus.LIVE
    ex.observe_trade(PublicTrade("y0", CM, D("0.50"), D(10), BUY, 1.0, recv_ts=1.0))  # fills all of s2
    [f] = await ex.poll(1.0)
    assert f.size == D(10) and ex.positions["y0"] == D(0) and [o.side for o in ex.open_orders()] == [BUY]
    ex.positions["y0"] = D(6)
    [s3] = await ex.place([ask("0.50", 6)])
    assert s3.status is OrderStatus.LIVE


async def test_post_only_refuses_a_sell_at_or_below_the_best_bid():
    ex = paper()
    ex.observe_book(bk([("0.45", "100")], [("0.48", "100")]))
    ex.positions["y0"] = D(30)
    [cross] = await ex.place([bid("0.48", 10)])
    assert cross.reason == "post-only: would cross the best ask"
    at, below, above = await ex.place([ask("0.45", 10), ask("0.44", 10), ask("0.46", 10)])
    assert at.reason == below.reason == "post-only: would cross the best bid"
    assert (at.status, below.status, above.status) == (OrderStatus.REJECTED, OrderStatus.REJECTED, OrderStatus.LIVE)


# -- lifecycle -------------------------------------------------------------------------------------
async def test_close_cancels_every_open_order():
    ex = paper()
    ex.observe_book(BOOK)
    await ex.place([bid("0.45"), bid("0.44")])
    await ex.close()
    assert ex.open_orders() == [] and not ex.venue_orders
    assert [r["status"] for r in rows(ex, "orders")[-2:]] == ["CANCELED", "CANCELED"]


async def test_end_session_ends_every_order_at_the_venue_too():
    """Open orders end with the reason; orders still entering, or cancelled with the cancel on
    its way, end at the venue at once: no later print fills any of them."""
    now = [0.0]
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: now[0], session="s",
                       latency=Lat(entry_s=1.0, cancel_s=1.0))
    ex.set_markets(MARKETS)
    ex.observe_book(EMPTY_BID)
    resting, cancelled = await ex.place([bid("0.45"), bid("0.44")])
    now[0] = 2.0
    ex.observe_book(EMPTY_BID)  # both rest now
    assert set(ex.venue_orders) == {resting.client_id, cancelled.client_id}
    await ex.cancel([cancelled.client_id])  # lands at 3.0
    [entering] = await ex.place([bid("0.43")])  # rests at 3.0
    assert ex.end_session("stopped") == 2
    assert ex.open_orders() == [] and nothing_left(ex)
    assert resting.status is OrderStatus.CANCELED and resting.reason == "stopped"
    assert entering.status is OrderStatus.CANCELED and cancelled.reason == "cancelled"
    ex.observe_trade(sell_print("0.40", 100, 4.0))  # through every price
    assert await ex.poll(4.0) == [] and not rows(ex, "trades")
    assert ex.end_session("again") == 0


async def test_an_order_cancelled_before_its_entry_lands_never_rests():
    ex = paper("queue", Lat(entry_s=1.0))  # the cancel is instant, the entry takes 1 s
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid()])
    assert await ex.cancel([o.client_id]) == [o.client_id]
    assert nothing_left(ex)
    ex.observe_trade(sell_print("0.45", 10, 2.0))
    assert await ex.poll(2.0) == [] and nothing_left(ex)


async def test_a_landed_cancel_leaves_nothing_behind():
    ex = paper("queue", Lat(cancel_s=0.1))
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid()])
    ex.observe_trade(sell_print("0.45", 3, 0.5))
    [f] = await ex.poll(0.5)
    await ex.cancel([o.client_id])
    assert ex._cancelling == {o.client_id: 0.6} and not nothing_left(ex)
    ex.observe_book(replace(EMPTY_BID, ts=0.6))  # the cancel has landed (just now)
    assert nothing_left(ex) and f.size == D(3) and o.filled == D(3)


async def test_a_cancelled_order_no_longer_takes_a_share_of_a_print():
    ex = paper()
    ex.observe_book(bk([("0.40", "100")], [("0.48", "100")]))
    hi, lo = await ex.place([bid("0.45", 8), bid("0.44", 8)])
    await ex.cancel([hi.client_id])
    ex.observe_trade(sell_print("0.43", 10, 1.0))  # through both prices: all of it is lo's to take
    assert [(f.order_client_id, f.size) for f in await ex.poll(1.0)] == [(lo.client_id, D(8))]
    assert hi.client_id not in ex.model._queues  # type: ignore[attr-defined]  # the model forgot it too


# -- live parameters -------------------------------------------------------------------------------
async def test_a_knob_change_keeps_our_place_in_the_queue():
    """Only a new model starts our orders at the back: a knob of the same model does not."""
    ex = paper("queue")
    ex.observe_book(BOOK)
    [o] = await ex.place([bid("0.45", 20)])
    ex.observe_trade(sell_print("0.45", 60, 1.0))  # 40 still ahead
    ex.params.update(paper_spread_k=50.0, paper_queue_power=3.0)
    ex.observe_trade(sell_print("0.45", 50, 2.0))  # 40 ahead, then 10 of ours
    [f] = await ex.poll(2.0)
    assert f.size == D(10) and o.filled == D(10)


# -- what a fill tells us --------------------------------------------------------------------------
async def test_fills_update_the_order_its_row_the_position_and_carry_their_inputs():
    ex = paper("queue", Lat(response_s=0.25))  # a fill is told 0.25 s after the match
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    assert await ex.poll(1.2) == [] and o.filled == 0
    [f1] = await ex.poll(1.25)
    assert (f1.size, f1.fill_type.value, f1.ts, f1.price, f1.side) == (D(4), "PARTIAL", 1.0, D("0.45"), BUY)
    assert f1.mid == D("0.465") and f1.fee == 0
    assert f1.raw["source"] == "paper" and f1.raw["book_mid"] == "0.465" and f1.raw["fee"] == "0"
    assert f1.raw["seen_ts"] == 1.25 and "after_cancel" not in f1.raw and "rebate" not in f1.raw
    assert (o.status, o.filled, o.updated_ts) == (OrderStatus.PARTIAL, D(4), 1.0)
    assert ex.positions == {"y0": D(4)}
    row = rows(ex, "orders")[-1]
    assert (row["status"], row["filled"], row["updated_ts"]) == ("PARTIAL", D(4), 1.0)
    ex.observe_trade(sell_print("0.45", 9, 2.0))  # 6 of ours: the rest
    [f2] = await ex.poll(2.25)
    assert (f2.size, f2.fill_type.value) == (D(6), "FILLED") and "after_cancel" not in f2.raw
    assert (o.status, o.filled, o.updated_ts) == (OrderStatus.FILLED, D(10), 2.0) and ex.open_orders() == []
    row = rows(ex, "orders")[-1]
    assert (row["status"], row["filled"], row["updated_ts"]) == ("FILLED", D(10), 2.0)
    assert [(t["size"], t["status"], t["mode"], t["fill_type"]) for t in rows(ex, "trades")] == \
        [(D(4), "MATCHED", "paper", "PARTIAL"), (D(6), "MATCHED", "paper", "FILLED")]
    assert ex.positions == {"y0": D(10)} and nothing_left(ex)


async def test_notices_are_told_at_the_next_book_or_print_not_only_at_a_poll():
    ex = paper("queue", Lat(response_s=0.25))
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    ex.observe_trade(sell_print("0.45", 2, 1.1))
    ex.observe_trade(PublicTrade("y0", CM, D("0.48"), D(5), BUY, 1.26, recv_ts=1.26))  # a buyer: told the first
    assert o.filled == D(4) and ex.positions == {"y0": D(4)}
    ex.observe_book(replace(EMPTY_BID, ts=1.4))  # told the second
    assert o.filled == D(6) and [f.size for f in await ex.poll(1.4)] == [D(4), D(2)]


async def test_an_order_entering_rests_at_the_first_book_after_its_entry_and_is_traded_through():
    ex = paper("queue", Lat(entry_s=1.0))
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_book(replace(bk([("0.44", "30")], [("0.45", "7")]), ts=0.5))  # not at the venue yet
    assert not ex.venue_orders and o.filled == 0
    ex.observe_book(replace(bk([("0.44", "30")], [("0.45", "7")]), ts=1.5))  # rests, and is offered at its price
    [f] = await ex.poll(1.5)
    assert f.raw["cause"] == "book_through" and f.ts == 1.5 and o.filled == f.size > 0


# -- the fee model, the session --------------------------------------------------------------------
class FlatFee:
    """One cent a share, whoever pays."""

    def fee(self, market: Market | None, side: Side, price: D, size: D, maker: bool) -> D:
        return size * D("0.01")


async def test_the_fee_model_given_is_the_one_charged():
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: 0.0, fees=FlatFee())
    ex.set_markets(MARKETS)
    ex.observe_book(EMPTY_BID)
    await ex.place([bid("0.45", 10)])
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    [f] = await ex.poll(1.0)
    assert f.fee == D("0.04") and f.raw["fee"] == "0.04" and "rebate" not in f.raw


async def test_without_a_session_each_exchange_makes_up_its_own():
    a, b = (PaperExchange(Params(), MemorySink(), clock=lambda: 0.0) for _ in range(2))
    for ex in (a, b):
        ex.set_markets(MARKETS)
    [oa], [ob] = await a.place([bid("0.40")]), await b.place([bid("0.40")])
    assert oa.client_id != ob.client_id
    assert oa.client_id.startswith("pp-") and len(oa.client_id.split("-")[1]) == 8


# -- the taker's side ------------------------------------------------------------------------------
async def test_inferred_side_at_the_ask_is_a_buyer_and_inside_the_spread_the_label_stands():
    ex = paper("queue")
    ex.infer_side = True
    ex.observe_book(bk([("0.44", "30")], [("0.48", "30")]))
    ex.positions["y0"] = D(10)
    b, s = await ex.place([bid("0.45", 10), ask("0.47", 10)])
    ex.observe_trade(PublicTrade("y0", CM, D("0.48"), D(3), SELL, 1.0, recv_ts=1.0))  # at the ask: a buyer
    assert [(f.order_client_id, f.size) for f in await ex.poll(1.0)] == [(s.client_id, D(3))]
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(2), SELL, 2.0, recv_ts=2.0))  # inside: the label
    assert [(f.order_client_id, f.size) for f in await ex.poll(2.0)] == [(b.client_id, D(2))]
    ex.observe_trade(PublicTrade("y0", CM, D("0.47"), D(1), BUY, 3.0, recv_ts=3.0))  # inside: the label
    assert [(f.order_client_id, f.size) for f in await ex.poll(3.0)] == [(s.client_id, D(1))]
    ex.observe_trade(PublicTrade("y0", CM, D("0.44"), D(1), BUY, 4.0, recv_ts=4.0))  # at the bid: a seller
    assert [(f.order_client_id, f.size) for f in await ex.poll(4.0)] == [(b.client_id, D(1))]
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(1), BUY, 5.0, recv_ts=5.0))  # inside: a buyer, not at our ask
    assert await ex.poll(5.0) == []


async def test_a_print_of_a_token_outside_the_universe_changes_nothing():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid()])
    ex.observe_trade(PublicTrade("zz", "0xzz", D("0.45"), D(5), SELL, 1.0, recv_ts=1.0))
    assert await ex.poll(1.0) == [] and o.filled == 0


async def test_the_prints_remembered_for_mirror_checks_are_bounded():
    ex = paper()
    for k in range(600):
        ex.observe_trade(sell_print("0.45", 1, float(k)))
    assert len(ex._seen) == len(ex._seen_prints) == 512 and set(ex._seen) == set(ex._seen_prints)


async def test_a_live_intensity_change_applies_to_the_intensity_model():
    ex = paper("intensity", paper_fill_intensity=0.0)
    ex.observe_book(BOOK)
    [o] = await ex.place([bid("0.45", 100)])
    assert all([await ex.poll(float(t)) == [] for t in range(1, 20)])
    ex.params.paper_fill_intensity = 600.0  # ~10 fills/s at the touch
    fills = []
    for k in range(1, 20):
        fills += await ex.poll(20.0 + k * 0.5)
    assert fills and o.filled > 0 and ex.model.knobs.intensity == 600.0  # type: ignore[attr-defined]


async def test_cancelling_an_unknown_or_closed_order_is_a_no_op():
    ex = paper()
    ex.observe_book(BOOK)
    [o] = await ex.place([bid()])
    ex._last_now = 3.0
    assert await ex.cancel(["nope"]) == []
    assert await ex.cancel(["nope", o.client_id, o.client_id]) == [o.client_id]
    assert o.updated_ts == 3.0 and rows(ex, "orders")[-1]["updated_ts"] == 3.0
    assert await ex.cancel([o.client_id]) == [] and len(rows(ex, "orders")) == 1 and nothing_left(ex)


async def test_the_intensity_model_settles_a_cancel_at_the_poll_on_the_books_then():
    """A time-driven model fills only when polled; a cancel that landed meanwhile is settled there,
    on the books of the poll: here our bid is far behind the touch by then, so it cannot fill."""
    ex = paper("intensity", Lat(cancel_s=1.0), paper_fill_intensity=1000.0, paper_spread_k=10_000.0)
    ex.observe_book(BOOK)  # our bid at the touch: ~17 fills/s
    [o] = await ex.place([bid("0.45", 100)])
    await ex.cancel([o.client_id])  # lands at 1.0
    ex.observe_trade(PublicTrade("y0", CM, D("0.48"), D(5), BUY, 2.0, recv_ts=2.0))  # no cancel settled here
    assert list(ex.venue_orders) == [o.client_id]
    ex.observe_book(replace(bk([("0.60", "100")], [("0.62", "100")]), ts=2.5))  # 15 ticks ahead of us
    assert await ex.poll(3.0) == [] and o.filled == 0 and nothing_left(ex)


async def test_fills_after_our_cancel_update_the_cancelled_order_until_it_is_filled():
    """The cancel is on its way: each fill still updates the order's row; the last share makes it FILLED."""
    ex = paper("queue", Lat(cancel_s=1.0))
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    await ex.cancel([o.client_id])  # lands at 1.0
    ex.observe_trade(sell_print("0.45", 3, 0.2))
    ex.observe_trade(sell_print("0.45", 3, 0.4))
    assert (o.status, o.filled) == (OrderStatus.CANCELED, D(6))
    row = rows(ex, "orders")[-1]
    assert (row["status"], row["filled"]) == ("CANCELED", D(6))
    ex.observe_trade(sell_print("0.45", 9, 0.6))  # the last 4
    assert (o.status, o.filled) == (OrderStatus.FILLED, D(10))
    row = rows(ex, "orders")[-1]
    assert (row["status"], row["filled"]) == ("FILLED", D(10))
    fills = await ex.poll(0.6)
    assert [(f.size, f.fill_type.value, f.raw["after_cancel"]) for f in fills] == \
        [(D(3), "PARTIAL", True), (D(3), "PARTIAL", True), (D(4), "FILLED", True)]
    assert ex.positions == {"y0": D(10)} and nothing_left(ex)


async def test_a_repeat_on_the_same_token_is_a_new_print():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_trade(sell_print("0.45", 3, 1.0))
    ex.observe_trade(sell_print("0.45", 3, 1.0))
    assert o.filled == D(6) and [f.size for f in await ex.poll(1.0)] == [D(3), D(3)]


async def test_a_print_is_placed_in_local_time_and_recorded_in_venue_time():
    """The order rests from local time 1.0: a print the venue stamped 0.5 that reached us at 1.5
    meets it, and the fill carries the venue's time."""
    ex = paper("queue", Lat(entry_s=1.0))
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(4), SELL, 0.5, recv_ts=1.5))
    [f] = await ex.poll(1.5)
    assert f.size == D(4) and f.ts == 0.5 and o.updated_ts == 0.5


async def _bid_at_clock_zero() -> tuple[PaperExchange, Order, list[float]]:
    """A queue-model exchange on a settable clock (`now[0]`), a bid placed at 0 whose entry lands at 1."""
    now = [0.0]
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: now[0], latency=Lat(entry_s=1.0))
    ex.set_markets(MARKETS)
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    return ex, o, now


async def test_a_book_without_a_time_is_placed_at_the_clock():
    ex, o, now = await _bid_at_clock_zero()
    now[0] = 0.5
    ex.observe_book(EMPTY_BID)  # ts 0: the clock's 0.5, before the entry lands
    assert not ex.venue_orders
    now[0] = 1.5
    ex.observe_book(EMPTY_BID)  # the clock's 1.5: it rests
    assert list(ex.venue_orders) == [o.client_id]


def test_an_exchange_with_its_own_observe_book_gets_each_book_of_a_batch_through_it():
    class Recording(PaperExchange):
        def observe_book(self, book: BookView | BookNote) -> None:  # records, stores nothing
            seen.append(book.token_id)

    seen: list[str] = []
    ex = Recording(Params(), MemorySink(), clock=lambda: 0.0)
    ex.observe_books([bk([("0.45", "1")], []), bk([("0.40", "1")], [], token="n0")])
    assert seen == ["y0", "n0"] and not ex._latest


async def test_an_order_rests_once_its_entry_lands_and_keeps_its_place_after():
    ex = paper("queue", Lat(entry_s=1.0))
    ex.observe_book(BOOK)
    [o] = await ex.place([bid("0.45", 20)])
    ex.observe_book(replace(BOOK, ts=0.5))
    assert not ex.venue_orders
    ex.observe_book(replace(BOOK, ts=1.0))  # rests (just now): 100 ahead
    assert list(ex.venue_orders) == [o.client_id]
    ex.observe_trade(sell_print("0.45", 60, 2.0))  # 40 ahead
    ex.observe_book(replace(BOOK, ts=2.5))
    ex.observe_trade(sell_print("0.45", 50, 3.0))  # 40 ahead, then 10 of ours
    assert o.filled == D(10) and not ex._entering


async def test_the_intensity_model_runs_a_cancelled_order_up_to_the_cancel():
    ex = paper("intensity", Lat(cancel_s=1.0), paper_fill_intensity=1000.0)
    ex.observe_book(BOOK)
    [o] = await ex.place([bid("0.45", 100)])
    await ex.cancel([o.client_id])  # lands at 1.0: ~17 fills/s until then
    fills = await ex.poll(5.0)
    assert [(f.ts, f.raw["after_cancel"]) for f in fills] == [(1.0, True)] and o.filled == fills[0].size
    assert nothing_left(ex) and await ex.poll(10.0) == []


async def test_the_intensity_model_and_a_cancel_that_lands_before_the_entry():
    ex = paper("intensity", Lat(entry_s=2.0, cancel_s=0.5), paper_fill_intensity=1000.0)
    ex.observe_book(BOOK)
    [o] = await ex.place([bid("0.45", 100)])
    await ex.cancel([o.client_id])
    assert await ex.poll(1.0) == [] and nothing_left(ex)
    assert await ex.poll(5.0) == [] and o.filled == 0


async def test_a_one_sided_book_takes_any_quote_on_its_empty_side():
    for bids, asks in (([("0.45", "100")], []), ([], [("0.48", "100")])):
        ex = paper()
        ex.observe_book(bk(bids, asks))
        ex.positions["y0"] = D(10)
        b, s = await ex.place([bid("0.90", 10), ask("0.10", 10)])
        assert (b.status, s.status) == (OrderStatus.LIVE if not asks else OrderStatus.REJECTED,
                                        OrderStatus.LIVE if not bids else OrderStatus.REJECTED)


async def test_a_print_without_times_is_placed_and_recorded_at_the_clock():
    ex, o, now = await _bid_at_clock_zero()
    now[0] = 1.5
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D(4), SELL, 0.0))  # no venue time, no receive time
    assert o.filled == D(4) and o.updated_ts == 1.5


async def test_the_last_share_and_a_fraction_of_one():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 5)])
    ex.observe_trade(sell_print("0.45", 1, 1.0))
    assert (o.filled, o.status) == (D(1), OrderStatus.PARTIAL)
    ex.observe_trade(PublicTrade("y0", CM, D("0.45"), D("3.5"), SELL, 2.0, recv_ts=2.0))
    assert (o.filled, o.status) == (D("4.5"), OrderStatus.PARTIAL) and o in ex.open_orders()
    ex.observe_trade(sell_print("0.45", 1, 3.0))
    assert (o.filled, o.status) == (D(5), OrderStatus.FILLED)
    assert [(f.size, f.fill_type.value) for f in await ex.poll(3.0)] == \
        [(D(1), "PARTIAL"), (D("3.5"), "PARTIAL"), (D("0.5"), "FILLED")]


async def test_a_fill_on_a_token_without_a_book_has_no_mid():
    ex = paper()
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    [f] = await ex.poll(1.0)
    assert f.size == D(4) and f.mid is None and f.raw["book_mid"] is None


async def test_a_book_through_fill_carries_the_venue_time_of_the_book():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.observe_book(replace(bk([("0.44", "30")], [("0.45", "7")]), ts=2.0, venue_ts_ms=1_400))
    [f] = await ex.poll(2.0)
    assert f.raw["cause"] == "book_through" and f.ts == 1.4


async def test_an_order_on_a_market_that_left_the_universe_still_meets_prints():
    ex = paper()
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid("0.45", 10)])
    ex.set_markets([])  # the universe moved on; the order still rests at the venue
    ex.observe_trade(sell_print("0.45", 4, 1.0))
    assert o.filled == D(4)


async def test_a_live_queue_power_change_applies_to_the_prob_queue_model():
    ex = paper("prob_queue", paper_queue_power=2.0)
    ex.observe_book(BOOK)
    await ex.place([bid("0.45", 10)])
    ex.params.update(paper_queue_power=3.0, paper_queue_func="log")
    await ex.poll(1.0)
    assert (ex.model.n, ex.model.func) == (3.0, "log")  # type: ignore[attr-defined]


async def test_a_switch_of_model_is_not_skipped_by_the_fast_path():
    """The intensity model ignores books; once the parameters name the queue model, the next book
    of our token is the new model's (one book or a batch), and a book offered at our bid fills it."""
    for batch in (False, True):
        ex = paper("intensity", paper_fill_intensity=0.0)
        ex.observe_book(BOOK)
        [o] = await ex.place([bid("0.45", 10)])
        ex.params.paper_fill_model = "queue"
        through = replace(bk([("0.44", "30")], [("0.45", "7")]), ts=1.0)
        if batch:
            ex.observe_books([through])
        else:
            ex.observe_book(through)
        [f] = await ex.poll(1.0)
        assert f.raw["cause"] == "book_through" and f.raw["model"] == "queue" and o.filled == f.size


async def test_a_batch_of_books_lands_a_cancel_as_one_book_does():
    ex = paper("queue", Lat(cancel_s=0.1))
    ex.observe_book(EMPTY_BID)
    [o] = await ex.place([bid()])
    await ex.cancel([o.client_id])
    ex.observe_books([bk([("0.40", "10")], [("0.60", "10")], token="n0")])  # ts 0: the clock's 0.0
    assert list(ex.venue_orders) == [o.client_id]
    ex.observe_books([replace(bk([("0.40", "10")], [("0.60", "10")], token="n0"), ts=0.2)])
    assert nothing_left(ex)


async def test_cancelling_one_entering_order_leaves_the_others_on_their_way():
    ex = paper("queue", Lat(entry_s=1.0))
    ex.observe_book(EMPTY_BID)
    a, b = await ex.place([bid("0.45"), bid("0.44")])
    await ex.cancel([a.client_id])
    ex.observe_book(replace(EMPTY_BID, ts=1.0))
    assert list(ex.venue_orders) == [b.client_id]


async def test_an_order_filled_while_another_enters_is_forgotten():
    now = [0.0]
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: now[0], latency=Lat(entry_s=1.0))
    ex.set_markets(MARKETS)
    ex.observe_book(EMPTY_BID)
    [a] = await ex.place([bid("0.45", 5)])
    now[0] = 1.5
    ex.observe_book(replace(EMPTY_BID, ts=1.5))  # a rests
    [b] = await ex.place([bid("0.44", 5)])  # rests at 2.5
    ex.observe_trade(sell_print("0.45", 5, 2.0))  # fills all of a
    assert a.status is OrderStatus.FILLED and a.client_id not in ex._known
    await ex.cancel([b.client_id])
    assert nothing_left(ex)


async def test_orders_enter_each_at_its_own_time_and_a_print_at_that_time_meets_it_once():
    now = [0.0]
    ex = PaperExchange(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: now[0], latency=Lat(entry_s=1.0))
    ex.set_markets(MARKETS)
    ex.observe_book(BOOK)
    [a] = await ex.place([bid("0.45", 20)])  # rests at 1.0
    now[0] = 0.5
    [b] = await ex.place([bid("0.44", 20)])  # rests at 1.5
    ex.observe_book(replace(BOOK, ts=1.0))
    assert list(ex.venue_orders) == [a.client_id]
    ex.observe_trade(sell_print("0.45", 60, 1.0))  # 40 ahead of a
    ex.observe_trade(sell_print("0.45", 50, 1.0))  # 40, then 10 of a
    assert a.filled == D(10)
    ex.observe_book(replace(BOOK, ts=1.5))
    assert list(ex.venue_orders) == [a.client_id, b.client_id] and not ex._entering


def test_a_failing_book_of_a_batch_is_logged_and_the_next_goes_on(caplog: pytest.LogCaptureFixture):
    class FailsOnNo(PaperExchange):
        def _observe_book(self, book: BookView) -> None:
            if book.token_id == "n0":
                raise RuntimeError("boom")
            done.append(book.token_id)

    done: list[str] = []
    ex = FailsOnNo(Params(paper_fill_model="queue"), MemorySink(), clock=lambda: 0.0)
    ex._cancelling["x"] = 9.0  # no fast path: every book goes the full way
    ex.observe_books([bk([], [], token="n0"), bk([], [])])
    assert done == ["y0"] and caplog.messages == ["book listener failed"]
