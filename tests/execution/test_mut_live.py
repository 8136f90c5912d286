"""Fast unit tests of the live exchange (`execution/live.py`) around a scripted in-memory broker:
what mutation testing found untested in the stop paths (cancel all / market / ids, the
disconnect watchdog, the venue heartbeat, close), the fill accounting from the user tape, and
reconcile. No sockets: the broker is a stand-in with the `Broker` calls the exchange makes
(`live_fakes.py`)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from live_fakes import (
    ADDR,
    KEY,
    M1,
    M2,
    NO,
    NO2,
    YES,
    YES2,
    Clock,
    D,
    FakeStream,
    add_open,
    make_ex,
    maker,
    none_known,
    pending_row,
    rest_trade,
    row,
    tr,
    vo,
)
from live_helpers import wait_for

from pmm_widgets.domain import FillType, Order, OrderStatus, Quote, Side
from pmm_widgets.events import EventKind
from pmm_widgets.execution import live as live_mod
from pmm_widgets.execution.live import CLOSED_KEEP_SEC, EVENT_BUFFER_SEC, LiveError, OurFill, our_fills
from pmm_widgets.venue.broker import BrokerError, CancelError, CancelResult, PlaceResult
from pmm_widgets.venue.wire import (
    Liquidity,
    OrderEvent,
    Trade,
    WireError,
    convert,
)


# ------------------------------------------------------------------ stop paths
async def test_cancel_all_closes_every_order_ours_whatever_the_venue_answers():
    clock = Clock(5000.0)
    ex, b, sink = make_ex(clock=clock)
    a = add_open(ex, "0xa")
    f = add_open(ex, "0xf", filled="10")  # refused: matched meanwhile, nothing left
    p = add_open(ex, "0xp", filled="3")  # refused with 7 left: gone, not filled
    lost = add_open(ex, "0xl")  # the venue does not hold it any more (and says nothing)
    del b.resting["0xl"]
    b.refuse = {"0xf": "matched", "0xp": "order not found"}
    assert await ex.cancel_all() == 1
    assert b.ops("cancel_all") == [None]
    assert ex.open_orders() == []
    assert (a.status, a.reason) == (OrderStatus.CANCELED, "cancelled")
    assert (f.status, f.reason) == (OrderStatus.FILLED, "matched")
    assert (p.status, p.reason) == (OrderStatus.CANCELED, "order not found")
    assert (lost.status, lost.reason) == (OrderStatus.CANCELED, "cancel-all")
    assert all(o.updated_ts == 5000.0 for o in (a, f, p, lost))
    assert row(sink, a.client_id)["status"] == "CANCELED" and row(sink, f.client_id)["status"] == "FILLED"
    assert row(sink, lost.client_id)["status"] == "CANCELED"


async def test_cancel_all_closes_a_filled_order_the_venue_forgot_as_filled():
    ex, b, _ = make_ex()
    o = add_open(ex, "0xa", filled="10")
    del b.resting["0xa"]
    assert await ex.cancel_all() == 0
    assert (o.status, o.reason) == (OrderStatus.FILLED, "cancel-all")


async def test_cancel_all_failure_raises_and_keeps_orders_open():
    ex, b, _ = make_ex()
    o = add_open(ex, "0xa")
    b.fail["cancel_all"] = 503
    with pytest.raises(BrokerError):
        await ex.cancel_all()
    assert ex.open_orders() == [o] and o.status is OrderStatus.LIVE


async def test_dry_run_cancel_all_and_cancel_market_are_local():
    ex, b, _ = make_ex(dry_run=True)
    a = add_open(ex, "0xa")
    c = add_open(ex, "0xc", mkt=M2, token=YES2)
    add_open(ex, "0xd", mkt=M2, token=NO2)
    assert await ex.cancel_market(M2) == 2
    assert ex.open_orders() == [a] and c.status is OrderStatus.CANCELED
    assert await ex.cancel(["nope", a.client_id]) == [a.client_id]
    add_open(ex, "0xe")
    add_open(ex, "0xg")
    assert await ex.cancel_all() == 2
    assert ex.open_orders() == [] and b.calls == []


async def test_cancel_market_cancels_that_market_only():
    ex, b, _ = make_ex()
    a = add_open(ex, "0xa")
    c = add_open(ex, "0xc", mkt=M2, token=YES2)
    d = add_open(ex, "0xd", mkt=M2, token=NO2, filled="10")
    b.refuse = {"0xd": "matched"}
    assert await ex.cancel_market(M2) == 1
    assert b.ops("cancel_market") == [M2]
    assert ex.open_orders() == [a] and a.status is OrderStatus.LIVE
    assert c.status is OrderStatus.CANCELED and d.status is OrderStatus.FILLED


async def test_cancel_sends_known_ids_only_and_returns_the_cancelled_client_ids():
    ex, b, _ = make_ex()
    assert await ex.cancel(["unknown"]) == [] and b.calls == []
    a = add_open(ex, "0xa")
    g = add_open(ex, "0xg", filled="2")
    h = add_open(ex, "0xh")
    b.refuse = {"0xg": "not found"}
    assert await ex.cancel([a.client_id, g.client_id, "unknown"]) == [a.client_id]
    assert b.ops("cancel") == [["0xa", "0xg"]]
    assert (g.status, g.reason) == (OrderStatus.CANCELED, "not found")
    assert ex.open_orders() == [h]


async def test_a_cancel_whose_other_batches_answered_closes_what_they_cancelled_before_it_raises():
    ex, b, sink = make_ex()
    a, g, h = add_open(ex, "0xa"), add_open(ex, "0xg"), add_open(ex, "0xh")

    async def partly(ids: list[str]) -> CancelResult:
        b.calls.append(("cancel", list(ids)))
        raise CancelError(BrokerError("cancel", "bad batch", 400), CancelResult(["0xa"], {"0xg": "matched"}), 2, 1)

    b.cancel = partly  # type: ignore[method-assign]
    with pytest.raises(CancelError):
        await ex.cancel([a.client_id, g.client_id, h.client_id])
    assert (a.status, g.status) == (OrderStatus.CANCELED, OrderStatus.CANCELED)  # g: refused, 0 filled
    assert ex.open_orders() == [h]  # the failed batch's order: unknown, still tracked
    assert row(sink, a.client_id)["status"] == "CANCELED"


def test_apply_cancel_leaves_closed_and_unknown_orders_alone():
    ex, _, sink = make_ex()
    o = add_open(ex, "0xa")
    ex._close_order(o, OrderStatus.FILLED, "filled")
    before = len(sink.updates), [dict(r) for r in sink.rows["orders"]]
    assert ex._apply_cancel(["0xa", "0xzz"], {"0xa": "gone", "0xyy": "gone"}) == []
    assert (o.status, o.reason) == (OrderStatus.FILLED, "filled")
    assert (len(sink.updates), sink.rows["orders"]) == before


def test_close_order_keeps_an_earlier_reason_when_given_none():
    clock = Clock(42.0)
    ex, _, sink = make_ex(clock=clock)
    o = add_open(ex, "0xa")
    o.reason = "why"
    ex._close_order(o, OrderStatus.FILLED)
    assert (o.status, o.reason, o.updated_ts) == (OrderStatus.FILLED, "why", 42.0)
    assert ex.open_orders() == [] and row(sink, o.client_id)["status"] == "FILLED"


def test_close_gone_filled_only_when_nothing_remains():
    ex, _, _ = make_ex()
    full, over, part = add_open(ex, "0x1", filled="10"), add_open(ex, "0x2", filled="11"), add_open(ex, "0x3", filled="9.99")
    for o in (full, over, part):
        ex._close_gone(o, "gone")
    assert [o.status for o in (full, over, part)] == [OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.CANCELED]


async def test_close_cancels_first_then_stops_tasks_stream_and_broker():
    ex, b, _ = make_ex()
    o = add_open(ex, "0xa")
    ex._stream = stream = FakeStream()  # type: ignore[assignment]
    task = asyncio.create_task(asyncio.sleep(3600))
    ex._tasks = [task]
    await ex.close()
    assert b.ops("cancel_all") == [None] and o.status is OrderStatus.CANCELED
    assert task.cancelled() and ex._tasks == [] and stream.closed and ex._stream is None
    assert b.closed and not ex._started


async def test_close_still_stops_when_the_live_cancel_all_fails():
    ex, b, _ = make_ex()
    add_open(ex, "0xa")
    b.fail["cancel_all"] = 500
    await ex.close()
    assert b.ops("cancel_all") == [None] and b.closed and not ex._started


async def test_close_of_a_dry_run_cancels_locally_and_an_unstarted_one_sends_nothing():
    ex, b, _ = make_ex(dry_run=True)
    add_open(ex, "0xa")
    await ex.close()
    assert ex.open_orders() == [] and b.closed
    ex2, b2, _ = make_ex(started=False)
    o = add_open(ex2, "0xa")
    await ex2.close()
    assert b2.ops("cancel_all") == [] and o.status is OrderStatus.LIVE


def test_feeds_ok_needs_the_user_stream_and_the_market_feed():
    ex, _, _ = make_ex()
    assert ex._feeds_ok() is False  # no stream
    ex._stream = FakeStream(True)  # type: ignore[assignment]
    assert ex._feeds_ok() is True
    ex._stream = FakeStream(False)  # type: ignore[assignment]
    assert ex._feeds_ok() is False
    ex.market_feed_ok = lambda: True
    assert ex._feeds_ok() is False
    ex._stream = FakeStream(True)  # type: ignore[assignment]
    assert ex._feeds_ok() is True
    ex.market_feed_ok = lambda: False
    assert ex._feeds_ok() is False

    def broken() -> bool:
        raise RuntimeError("feed gone")

    ex.market_feed_ok = broken
    assert ex._feeds_ok() is False


@pytest.fixture
def fast_watchdog(monkeypatch):
    monkeypatch.setattr(live_mod, "WATCHDOG_SEC", 0.01)


async def test_watchdog_cancels_all_once_after_the_limit_and_resumes_when_back(fast_watchdog):
    ex, b, _ = make_ex(disconnect_cancel_sec=0.15)
    o = add_open(ex, "0xa")
    stream = FakeStream(False)
    ex._stream = stream  # type: ignore[assignment]
    t0 = time.monotonic()
    task = asyncio.create_task(ex._watchdog())
    try:
        assert await wait_for(lambda: ex.disconnect_cancels == 1, 10)
        assert time.monotonic() - t0 >= 0.15  # not before the limit
        assert o.status is OrderStatus.CANCELED and ex.open_orders() == []
        assert ex._halted is not None and ex._halted.startswith("disconnect")
        [ev] = [e for e in ex.events.recent() if e.kind is EventKind.DISCONNECT_CANCEL]
        assert ev.data == {"cancelled": 1}
        down = float(ev.message.removeprefix("stream down for ").split("s:")[0])
        assert 0.15 <= down < 5.0  # how long it was down, said in the event
        # halted: quotes are refused, no second cancel while still down
        [rej] = await ex.place([Quote(M1, YES, Side.BUY, D("0.40"), D("10"))])
        assert rej.status is OrderStatus.REJECTED and rej.reason == ex._halted and not b.ops("post_orders")
        await asyncio.sleep(0.1)
        assert len(b.ops("cancel_all")) == 1 and ex.disconnect_cancels == 1
        stream.connected = True
        assert await wait_for(lambda: ex._halted is None, 10)
        assert ex._down_since is None
    finally:
        task.cancel()


async def test_watchdog_does_nothing_while_the_feeds_are_up_or_down_for_less_than_the_limit(fast_watchdog):
    ex, b, _ = make_ex(disconnect_cancel_sec=1.0)  # far above the sleeps: a loaded host's overshoot
    add_open(ex, "0xa")
    stream = FakeStream(True)
    ex._stream = stream  # type: ignore[assignment]
    ex._halted = "circuit open"  # a halt that is not the watchdog's stays
    task = asyncio.create_task(ex._watchdog())
    try:
        await asyncio.sleep(0.08)
        assert ex._down_since is None and ex._halted == "circuit open"
        ex._halted = None
        stream.connected = False
        await asyncio.sleep(0.08)
        assert ex._down_since is not None
        stream.connected = True  # a blip shorter than the limit
        await asyncio.sleep(0.05)
        assert ex._down_since is None
        stream.connected = False
        await asyncio.sleep(0.15)
        assert b.ops("cancel_all") == [] and ex._halted is None and ex.disconnect_cancels == 0
    finally:
        task.cancel()


async def test_watchdog_retries_a_failed_cancel_all_next_round(fast_watchdog, caplog):
    ex, b, _ = make_ex(disconnect_cancel_sec=0.02)
    o = add_open(ex, "0xa")
    ex._stream = FakeStream(False)  # type: ignore[assignment]
    b.fail["cancel_all"] = 503
    b.fail_once.add("cancel_all")
    task = asyncio.create_task(ex._watchdog())
    try:
        assert await wait_for(lambda: ex.disconnect_cancels == 1, 10)
        assert len(b.ops("cancel_all")) == 2 and o.status is OrderStatus.CANCELED and ex._halted
        assert "disconnect cancel-all failed" in caplog.text
    finally:
        task.cancel()


async def test_watchdog_counts_the_market_feed_too(fast_watchdog):
    ex, b, _ = make_ex(disconnect_cancel_sec=0.02)
    add_open(ex, "0xa")
    ex._stream = FakeStream(True)  # type: ignore[assignment]
    ex.market_feed_ok = lambda: False
    task = asyncio.create_task(ex._watchdog())
    try:
        assert await wait_for(lambda: ex.disconnect_cancels == 1, 10)
    finally:
        task.cancel()


async def test_heartbeats_beat_every_period_mark_failures_and_stop_when_not_served(caplog):
    caplog.set_level("INFO", logger="pmm_widgets.execution.live")
    ex, b, _ = make_ex()
    ex.heartbeat_sec = 0.03
    b.beats = [None, 500, None, 404]
    await asyncio.wait_for(ex._heartbeats(), 2.0)
    # the state each beat found: set by the beat before it
    assert [s for _, s in b.beat_log] == ["off", "ok", "failing", "ok"]
    assert ex._hb_state == "off" and b.beats == [] and b.beat_within == [0.03] * 4  # retries end within a period
    times = [t for t, _ in b.beat_log]
    assert all(t2 - t1 >= 0.025 for t1, t2 in zip(times, times[1:]))
    assert "heartbeat failed" in caplog.text and "does not serve order heartbeats" in caplog.text


async def test_close_stops_the_heartbeat_and_watchdog_tasks(fast_watchdog):
    ex, b, _ = make_ex()
    ex.heartbeat_sec = 0.01
    ex._stream = FakeStream(True)  # type: ignore[assignment]
    ex._tasks = [asyncio.create_task(ex._watchdog()), asyncio.create_task(ex._heartbeats())]
    await asyncio.sleep(0.05)
    assert ex._hb_state == "ok"
    tasks = list(ex._tasks)
    await asyncio.wait_for(ex.close(), 2.0)
    assert all(t.done() for t in tasks)
    n = len(b.beat_log)
    await asyncio.sleep(0.05)
    assert len(b.beat_log) == n


# ------------------------------------------------------------------ our fills
def test_our_fills_taker_by_owner_or_by_order_id():
    ev = tr(trader_side="TAKER", owner=KEY, taker_order_id="0xt", side="SELL", size="5", price="0.4")
    [f] = our_fills(ev, KEY, set(), none_known)
    assert (f.order_id, f.side, f.size, f.liquidity) == ("0xt", Side.SELL, D(5), Liquidity.TAKER)
    # MAKER on the tape but the taker order is ours by id: the top level is ours
    ev = tr(trader_side="MAKER", taker_order_id="0xt", maker_orders=[maker("0xm", owner="x")])
    [f] = our_fills(ev, KEY, set(), lambda v: v == "0xt")
    assert (f.order_id, f.liquidity, f.price) == ("0xt", Liquidity.TAKER, D("0.52"))
    # TAKER, not our key nor our id: only our maker entries count
    ev = tr(trader_side="TAKER", owner="else", taker_order_id="0xt", maker_orders=[maker("0xm")])
    assert [f.order_id for f in our_fills(ev, KEY, set(), none_known)] == ["0xm"]
    # TAKER without a taker order id: nothing at the top level
    ev = tr(trader_side="TAKER", owner=KEY, taker_order_id="")
    assert our_fills(ev, KEY, set(), none_known) == []


def test_our_fills_maker_event_of_ours_with_a_strangers_taker_is_only_our_maker_fill():
    # the event's `owner` is our key (we receive it) but the taker order is someone else's
    ev = tr(trader_side="MAKER", owner=KEY, taker_order_id="0xt", maker_orders=[maker("0xm")])
    assert [(f.order_id, f.liquidity) for f in our_fills(ev, KEY, set(), none_known)] == [("0xm", Liquidity.MAKER)]


def test_our_fills_as_taker_is_the_top_level_only():
    # as taker the top-level fields are ours; maker entries are the other side, even one at our address
    ev = tr(trader_side="TAKER", owner=KEY, taker_order_id="0xt", maker_orders=[maker("0xm", owner="x", maker_address=ADDR)])
    assert [(f.order_id, f.liquidity) for f in our_fills(ev, KEY, {ADDR}, none_known)] == [("0xt", Liquidity.TAKER)]


def test_our_fills_maker_by_address_or_order_id_and_default_asset():
    ev = tr(maker_orders=[maker("0xa", owner="x", maker_address=ADDR.upper()[2:].join(["0x", ""]), asset=""),
                          maker("0xb", owner="x"), maker("0xc", owner="x", maker_address="0xother")])
    fills = our_fills(ev, KEY, {ADDR.lower()}, lambda v: v == "0xb")
    assert [(f.order_id, f.token_id, f.side) for f in fills] == [("0xa", YES, Side.SELL), ("0xb", YES, Side.SELL)]


def test_our_fills_fee_rate_is_read_or_none():
    def rate(bps: Any) -> Decimal | None:
        ev = msgspec.structs.replace(tr(trader_side="TAKER", owner=KEY), fee_rate_bps=bps)
        [f] = our_fills(ev, KEY, set(), none_known)
        return f.fee_rate_bps

    assert rate("25") == D(25) and rate(0) == D(0) and rate(12.5) == D("12.5")
    assert rate(None) is None and rate("") is None and rate(True) is None and rate("abc") is None
    assert rate("Infinity") is None and rate("NaN") is None


def test_our_fills_without_side_or_with_bad_numbers_is_a_wire_error():
    with pytest.raises(WireError, match="without a side"):
        our_fills(tr(trader_side="TAKER", owner=KEY, side=""), KEY, set(), none_known)
    with pytest.raises(WireError, match="unreadable"):
        our_fills(tr(trader_side="TAKER", owner=KEY, price="x"), KEY, set(), none_known)
    with pytest.raises(WireError, match="without a side"):
        our_fills(tr(side="", maker_orders=[maker("0xa")]), KEY, set(), none_known)
    # an explicit maker side wins over the default
    [f] = our_fills(tr(maker_orders=[maker("0xa", side="BUY")]), KEY, set(), none_known)
    assert f.side is Side.BUY


# ------------------------------------------------------------------ tape accounting
def test_a_matched_fill_counts_once_and_later_statuses_only_update_the_row():
    clock = Clock(2000.0)
    ex, _, sink = make_ex(clock=clock)
    o = add_open(ex, "0xa", price="0.40")
    ex._mids[YES] = D("0.41")
    ev = tr(maker_orders=[maker("0xa")], timestamp="1999000", transaction_hash="0xh0")
    ex._on_event(ev)
    [fl] = ex._pending
    assert (fl.raw["taker_order_id"], fl.raw["transaction_hash"], fl.raw["fee_rate_bps"]) == ("0xtaker", "0xh0", None)
    assert (fl.trade_id, fl.order_client_id, fl.side, fl.price, fl.size, fl.fill_type, fl.ts, fl.market) == (
        "t1", o.client_id, Side.SELL, D("0.40"), D(4), FillType.PARTIAL, 1999.0, M1)
    assert fl.mid == D("0.41") and not fl.taker and fl.raw["source"] == "ws" and fl.raw["book_mid"] == "0.41"
    assert (o.filled, o.status, o.updated_ts) == (D(4), OrderStatus.PARTIAL, 2000.0)
    assert row(sink, o.client_id)["status"] == "PARTIAL"
    ex._on_event(ev)  # the same status again: nothing new
    ex._on_event(tr(maker_orders=[maker("0xa")], status="MINED", timestamp="1999500"))
    ex._on_event(tr(maker_orders=[maker("0xa")], status="CONFIRMED", transaction_hash="0xh", timestamp="1998000"))
    ex._on_event(tr(maker_orders=[maker("0xa")], status="FAILED"))  # after a final status: ignored
    assert len(ex._pending) == 1 and o.filled == D(4)
    st = ex._trades["t1"]
    assert [s.value for s in st.statuses] == ["MATCHED", "MINED", "CONFIRMED"]
    assert st.raw["statuses"] == ["MATCHED", "MINED", "CONFIRMED"] and st.raw["transaction_hash"] == "0xh"
    [t] = sink.rows["trades"]
    assert t["status"] == "CONFIRMED" and t["raw_json"]["statuses"] == ["MATCHED", "MINED", "CONFIRMED"]
    assert ex._last_trade_ts == 2000.0  # the last event had no venue time: our clock's


def test_a_failed_trade_is_reversed_once_exactly():
    clock = Clock(3000.0)
    ex, _, sink = make_ex(clock=clock)
    o = add_open(ex, "0xa")
    ex._on_event(tr(maker_orders=[maker("0xa")]))
    clock.t = 3001.0
    ex._on_event(tr(maker_orders=[maker("0xa")], status="RETRYING"))
    ex._on_event(tr(maker_orders=[maker("0xa")], status="FAILED"))
    ex._on_event(tr(maker_orders=[maker("0xa")], status="FAILED"))
    fill, rev = ex._pending
    assert (rev.trade_id, rev.side, rev.price, rev.size, rev.ts, rev.status) == (
        "t1:failed", fill.side.opposite, fill.price, fill.size, 3001.0, "FAILED")
    assert rev.raw == {"reverses": "t1"} and rev.order_client_id == o.client_id
    assert (o.filled, o.updated_ts) == (D(0), 3001.0) and row(sink, o.client_id)["filled"] == D(0)
    assert ex._trades["t1"].reversed


def test_a_trade_first_seen_failed_is_not_counted_nor_reversed():
    ex, _, sink = make_ex()
    o = add_open(ex, "0xa")
    ex._on_event(tr(maker_orders=[maker("0xa")], status="FAILED"))
    ex._on_event(tr(maker_orders=[maker("0xa")], status="FAILED"))
    assert ex._pending == [] and o.filled == 0 and sink.rows["trades"][0]["status"] == "FAILED"


def test_a_trade_an_earlier_run_stored_is_not_counted_again():
    ex, _, sink = make_ex()
    o = add_open(ex, "0xa")
    ex._stored_trades = {"t1"}
    ex._on_event(tr(maker_orders=[maker("0xa")], status="MINED"))
    assert ex._pending == [] and o.filled == 0 and "trades" not in sink.rows
    assert sink.updates[-1] == ("trades", {"trade_id": "t1"}, {"status": "MINED"})


def test_a_fill_of_the_whole_order_closes_it_filled_and_several_fills_get_keys_per_order():
    ex, _, _ = make_ex()
    a = add_open(ex, "0xa", size="4")
    b_ = add_open(ex, "0xb", size="10")
    ex._on_event(tr(maker_orders=[maker("0xa"), maker("0xb", amount="3")]))
    f1, f2 = ex._pending
    assert (f1.trade_id, f1.fill_type, f2.trade_id, f2.fill_type) == ("t1:0xa", FillType.FILLED, "t1:0xb", FillType.PARTIAL)
    assert a.status is OrderStatus.FILLED and ex.open_orders() == [b_]


def test_a_fill_racing_our_cancel_fixes_the_closed_row():
    ex, _, sink = make_ex()
    a = add_open(ex, "0xa", size="4")
    b_ = add_open(ex, "0xb", size="10")
    for o in (a, b_):
        ex._close_order(o, OrderStatus.CANCELED, "cancelled")
    ex._on_event(tr(maker_orders=[maker("0xa"), maker("0xb", amount="3")]))
    assert (a.status, a.filled, a.reason) == (OrderStatus.FILLED, D(4), "filled before the cancel reached the venue")
    assert (b_.status, b_.filled, b_.reason) == (OrderStatus.CANCELED, D(3), "cancelled")
    assert row(sink, a.client_id)["status"] == "FILLED" and row(sink, b_.client_id)["filled"] == D(3)
    assert ex.open_orders() == [] and len(ex._pending) == 2


def test_a_taker_fill_carries_the_taker_flag_and_fee_rate():
    ex, _, _ = make_ex()
    add_open(ex, "0xt", side=Side.SELL)
    ex._on_event(tr(trader_side="TAKER", owner=KEY, taker_order_id="0xt", side="SELL", size="2", fee_rate_bps="30"))
    [f] = ex._pending
    assert f.taker and f.fee_rate_bps == D(30) and f.raw["fee_rate_bps"] == "30" and f.raw["trader_side"] == "TAKER"


def test_unknown_order_fills_wait_in_the_buffer_then_are_recorded_under_a_synthetic_id():
    clock = Clock(100.0)
    ex, _, _ = make_ex(clock=clock)
    ev = tr(maker_orders=[maker("0xnew")])
    ex._on_event(ev)
    ex._on_event(convert({"event_type": "order", "id": "0xgone", "type": "PLACEMENT"}, OrderEvent))
    assert ex._pending == [] and set(ex._buffer) == {"0xnew", "0xgone"}
    ex._on_trade_event(convert({"id": "t9", "asset_id": YES, "side": "BUY", "trader_side": "MAKER",
                                "maker_orders": [maker("0xrest")]}, Trade), source="rest")
    assert "0xrest" not in ex._buffer and ex._pending == []  # a REST row is not buffered
    clock.t = 100.0 + EVENT_BUFFER_SEC
    ex._flush_buffer(clock.t)
    assert set(ex._buffer) == {"0xnew", "0xgone"}
    clock.t += 0.5
    ex._flush_buffer(clock.t)
    assert ex._buffer == {}
    [f] = ex._pending
    assert f.order_client_id == "unknown-0xnew" and f.market == M1 and f.size == D(4)


async def test_events_that_beat_the_placement_answer_apply_once_it_arrives():
    ex, b, _ = make_ex()
    ex._on_event(tr(maker_orders=[maker("0xv1", amount="10", price="0.40", asset=YES)]))
    assert ex._pending == []
    [o] = await ex.place([Quote(M1, YES, Side.BUY, D("0.40"), D("10"))])
    assert o.venue_order_id == "0xv1" and o.status is OrderStatus.FILLED and ex._buffer == {}
    [f] = ex._pending
    assert f.order_client_id == o.client_id and f.fill_type is FillType.FILLED


def test_order_events_close_cancelled_and_filled_orders_and_mark_partials():
    clock = Clock(10.0)
    ex, _, sink = make_ex(clock=clock)
    a, b_, c, d = (add_open(ex, v) for v in ("0xa", "0xb", "0xc", "0xd"))

    def oe(vid: str, kind: str, status: str = "", ts: Any = None) -> OrderEvent:
        return convert({"event_type": "order", "id": vid, "type": kind, "status": status, "timestamp": ts}, OrderEvent)

    ex._on_event(oe("0xa", "PLACEMENT", "LIVE", "5000"))
    assert ex._spans[a.client_id].placed == 5.0 and a.status is OrderStatus.LIVE
    ex._on_event(oe("0xa", "CANCELLATION", "CANCELED", "7000"))
    assert ex._spans[a.client_id].gone == 7.0 and (a.status, a.reason) == (OrderStatus.CANCELED, "canceled")
    ex._on_event(oe("0xb", "UPDATE", "CANCELED_MARKET_RESOLVED"))
    assert (b_.status, b_.reason) == (OrderStatus.CANCELED, "canceled_market_resolved")
    c.filled = D(10)
    ex._on_event(oe("0xc", "UPDATE", "MATCHED"))
    assert c.status is OrderStatus.FILLED
    ex._on_event(oe("0xd", "UPDATE", "MATCHED"))
    assert d.status is OrderStatus.LIVE  # matched, not filled yet, nothing filled: unchanged
    d.filled = D(2)
    clock.t = 11.0
    ex._on_event(oe("0xd", "UPDATE", "LIVE", "bad"))
    assert (d.status, d.updated_ts) == (OrderStatus.PARTIAL, 11.0) and row(sink, d.client_id)["status"] == "PARTIAL"
    assert d.client_id not in ex._spans  # an UPDATE is no placement nor removal
    # a closed order's late CANCELLATION still tells when it went, and changes nothing else
    ex._on_event(oe("0xc", "CANCELLATION", "CANCELED", 9000))
    assert ex._spans[c.client_id].gone == 9.0 and c.status is OrderStatus.FILLED
    ex._on_event(oe("0xd", "PLACEMENT", "LIVE", ""))
    assert d.client_id not in ex._spans
    ex._on_event(oe("0xd", "PLACEMENT", "LIVE", "soon"))  # unreadable: no time, no harm
    assert ex._spans[d.client_id].placed is None and d.status is OrderStatus.PARTIAL


def test_last_trade_time_only_moves_forward():
    ex, _, _ = make_ex()
    add_open(ex, "0xa", size="100")
    ex._on_event(tr(id="t1", maker_orders=[maker("0xa")], match_time="500"))
    ex._on_event(tr(id="t2", maker_orders=[maker("0xa")], match_time="400"))
    assert ex._last_trade_ts == 500.0
    ex._on_event(tr(id="", maker_orders=[maker("0xa")], match_time="900"))
    assert ex._last_trade_ts == 500.0 and len(ex._pending) == 2


# ------------------------------------------------------------------ earlier runs' rows
def test_unconfirmed_rows_take_the_matching_open_order_or_a_backfilled_fill_else_close():
    ex, _, sink = make_ex()
    ex._unconfirmed = [pending_row("p1"), pending_row("p2", price="0.30"), pending_row("p3", price="0.20", size="3"),
                       pending_row("p4", price="0.10")]
    ex._history = {"0xknown": {**pending_row("old"), "venue_order_id": "0xknown", "status": "LIVE"}}
    ex._match_unconfirmed([vo("0xknown"), vo("0xother", size="11"), vo("0xmatch"), vo("0xsell", price="0.30", side="SELL")])
    assert ex._history["0xmatch"]["client_id"] == "p1" and [r["client_id"] for r in ex._unconfirmed] == ["p2", "p3", "p4"]
    # a fill too big for a row is not that row's; side, token and price must match
    assert ex._claim_unconfirmed(OurFill("0xf", YES, Side.BUY, D("0.20"), D(4), Liquidity.MAKER)) is None
    assert ex._claim_unconfirmed(OurFill("0xf", YES, Side.SELL, D("0.30"), D(1), Liquidity.MAKER)) is None
    assert ex._claim_unconfirmed(OurFill("0xf", NO, Side.BUY, D("0.30"), D(1), Liquidity.MAKER)) is None
    o = ex._claim_unconfirmed(OurFill("0xf", YES, Side.BUY, D("0.20"), D(3), Liquidity.MAKER))
    assert o is not None and o.client_id == "p3" and o.venue_order_id == "0xf"
    assert [r["client_id"] for r in ex._unconfirmed] == ["p2", "p4"]
    ex._close_unconfirmed()
    assert ex._unconfirmed == []
    for cid in ("p2", "p4"):
        r = row(sink, cid)
        assert (r["status"], r["venue_order_id"], r["reason"]) == ("CANCELED", None, "reconcile: never acknowledged by the venue")


async def test_reconcile_cancels_strangers_keeps_ours_closes_the_gone_and_backfills():
    clock = Clock(10_000.0)
    ex, b, sink = make_ex(clock=clock)
    ours = add_open(ex, "0xours")
    gone = add_open(ex, "0xgone", filled="10")
    gone2 = add_open(ex, "0xgone2", filled="1")
    ex._history = {"0xh1": {**pending_row("h1"), "venue_order_id": "0xh1", "status": "LIVE"},
                   "0xh2": {**pending_row("h2"), "venue_order_id": "0xh2", "status": "FILLED"},
                   "0xh3": {**pending_row("h3"), "venue_order_id": "0xh3", "status": "LIVE"}}
    ex._last_trade_ts = 5000.5
    b.open = [vo("0xours"), vo("0xstranger"), vo("0xh3")]
    b.refuse = {"0xh3": "matched"}
    b.tape = [convert({"id": "tb", "asset_id": YES, "side": "BUY", "trader_side": "MAKER", "status": "MATCHED",
                       "maker_orders": [maker("0xh1", amount="2")]}, Trade)]
    res = await ex.reconcile()
    assert res == {"venue_open": 3, "adopted": 0, "cancelled": 2, "backfilled": 1}
    assert b.ops("cancel") == [["0xstranger", "0xh3"]] and ex.orphans_cancelled == 1
    assert b.ops("trades") == [4700]
    assert ex.open_orders() == [ours]
    assert (gone.status, gone2.status) == (OrderStatus.FILLED, OrderStatus.CANCELED)
    assert gone.reason == "reconcile: not open at the venue"
    # h1: an earlier run's order, filled 2 of 10 while away and no longer at the venue
    h1 = ex._by_venue["0xh1"]
    assert (h1.client_id, h1.filled, h1.status) == ("h1", D(2), OrderStatus.CANCELED)
    assert row(sink, "h1")["status"] == "CANCELED"
    # h3 was still at the venue but could not be cancelled (matched meanwhile): closed too
    assert row(sink, "h3")["status"] == "CANCELED"
    assert "h2" not in {r["client_id"] for r in sink.rows["orders"]}
    [f] = ex._pending
    assert f.order_client_id == "h1" and f.raw["source"] == "rest" and ex.backfilled == 1 and ex.reconciles == 1
    [ev] = [e for e in ex.events.recent() if e.kind is EventKind.RECONCILE]
    assert ev.data == res


async def test_reconcile_without_a_last_trade_backfills_everything_and_adopts_when_told():
    ex, b, sink = make_ex(adopt_unknown=True)
    ours = add_open(ex, "0xours")
    b.open = [vo("0xours"), vo("0x1234567890abcdef1234", matched="4", size="10", created_at=123),
              vo("0xnew2", matched="0")]
    res = await ex.reconcile()
    assert b.ops("trades") == [None] and b.ops("cancel") == []
    assert res["adopted"] == 2 and ex.adopted == 2
    a = ex._by_venue["0x1234567890abcdef1234"]
    assert (a.client_id, a.filled, a.status, a.created_ts, a.reason) == (
        "adopt-1234567890abcdef", D(4), OrderStatus.PARTIAL, 123.0, "adopted at reconcile")
    assert ex._by_venue["0xnew2"].status is OrderStatus.LIVE
    assert set(ex._open) == {ours.client_id, a.client_id, ex._by_venue["0xnew2"].client_id}
    with pytest.raises(WireError):
        ex._adopt(vo("0xbad", side="HOLD"))


async def test_dry_run_reconcile_asks_nothing():
    ex, b, _ = make_ex(dry_run=True)
    assert await ex.reconcile() == {} and b.calls == []


# ------------------------------------------------------------------ orders_at, evict
def test_orders_at_uses_the_venue_times_and_gives_back_later_fills():
    ex, _, _ = make_ex()
    early = add_open(ex, "0xe", filled="3")
    late = add_open(ex, "0xl")
    cancelled_after = add_open(ex, "0xc")
    cancelled_before = add_open(ex, "0xb")
    ex._spans[early.client_id] = live_mod._Span(placed=99.0)
    ex._spans[late.client_id] = live_mod._Span(placed=100.0)
    ex._spans[cancelled_after.client_id] = live_mod._Span(placed=50.0, gone=100.0)
    ex._spans[cancelled_before.client_id] = live_mod._Span(placed=50.0, gone=99.5)
    ex._close_order(cancelled_after, OrderStatus.CANCELED)
    ex._close_order(cancelled_before, OrderStatus.CANCELED)
    ex._on_event(tr(id="tl", maker_orders=[maker("0xe", amount="2")], match_time="100"))
    ex._on_event(tr(id="te", maker_orders=[maker("0xe", amount="1")], match_time="99"))
    got = {o.client_id: o.filled for o in ex.orders_at(100.0)}
    assert got == {early.client_id: D(4), cancelled_after.client_id: D(0)}
    assert early.filled == D(6)  # copies


def test_evict_forgets_closed_orders_and_final_trades_after_the_keep_time():
    clock = Clock(10_000.0)
    ex, _, _ = make_ex(clock=clock)
    old = add_open(ex, "0xold", size="4")
    ex._on_event(tr(id="t1", maker_orders=[maker("0xold")], match_time="5000", status="CONFIRMED"))
    assert old.status is OrderStatus.FILLED
    kept = add_open(ex, "0xkept")
    old.updated_ts = 10_000.0 - CLOSED_KEEP_SEC - 1
    ex._history = {"0xrow": {"status": "CANCELED", "updated_ts": 10_000.0 - CLOSED_KEEP_SEC - 1},
                   "0xfresh": {"status": "CANCELED", "updated_ts": 10_000.0 - CLOSED_KEEP_SEC + 1},
                   "0xopen": {"status": "LIVE", "updated_ts": 0}}
    assert ex.evict(10_000.0) == 3
    assert set(ex._by_venue) == {"0xkept"} and ex._trades == {} and set(ex._history) == {"0xfresh", "0xopen"}
    assert ex.open_orders() == [kept]


# ------------------------------------------------------------------ place
async def test_place_refuses_before_start_and_what_the_venue_would_refuse():
    ex, b, _ = make_ex(started=False)
    with pytest.raises(LiveError):
        await ex.place([Quote(M1, YES, Side.BUY, D("0.40"), D("10"))])
    ex._started = True
    out = await ex.place([Quote(M1, YES, Side.BUY, D("0.405"), D("10")), Quote(M1, YES, Side.BUY, D("0.40"), D("1")),
                          Quote(M1, "999", Side.BUY, D("0.40"), D("10"))])
    assert [o.status for o in out] == [OrderStatus.REJECTED] * 3 and b.calls == []


async def test_a_lost_post_answer_is_tracked_then_cancelled_and_a_refused_one_rejected():
    ex, b, _ = make_ex()
    q1, q2, q3 = (Quote(M1, YES, Side.BUY, D(p), D("10")) for p in ("0.40", "0.41", "0.42"))
    b.place_results = [PlaceResult(q1, False, order_id="0xu", error="timeout", uncertain=True),
                       PlaceResult(q2, False, error="post only would cross"),
                       PlaceResult(q3, True, order_id="0xok")]
    o1, o2, o3 = await ex.place([q1, q2, q3])
    assert b.ops("cancel") == [["0xu"]]
    assert (o1.status, o1.venue_order_id, o1.reason) == (OrderStatus.CANCELED, "0xu", "cancelled")
    assert (o2.status, o2.reason) == (OrderStatus.REJECTED, "post only would cross")
    assert o3.status is OrderStatus.LIVE and ex.open_orders() == [o3] and ex._inflight == {}
    assert len(ex.order_rtt_ms) == 1
    b.fail["post_orders"] = 503
    [o4] = await ex.place([q1])
    assert o4.status is OrderStatus.REJECTED and "boom" in o4.reason and len(ex.order_rtt_ms) == 1


async def test_requote_on_the_fast_path_pulls_replacements_when_the_cancel_fails():
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")
    other = add_open(ex, "0xother", mkt=M2, token=YES2)
    b.fail["cancel"] = 503
    b.fail_once.add("cancel")
    with pytest.raises(BrokerError):
        await ex.requote([old.client_id], [Quote(M1, YES, Side.BUY, D("0.41"), D("10")),
                                           Quote(M2, YES2, Side.BUY, D("0.41"), D("10"))])
    assert b.ops("cancel") == [["0xold"], ["0xv1"]]
    assert {o.venue_order_id for o in ex.open_orders()} == {"0xold", "0xother", "0xv2"} and other.status is OrderStatus.LIVE
    done, placed = await ex.requote([old.client_id], [Quote(M1, YES, Side.BUY, D("0.42"), D("10"))])
    assert done == [old.client_id] and [o.status for o in placed] == [OrderStatus.LIVE]
    assert await ex.requote(["nope"], []) == ([], [])


async def test_requote_on_the_fast_path_keeps_the_cancelled_batch_and_pulls_only_the_failed_batchs_replacements():
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old, old2 = add_open(ex, "0xold"), add_open(ex, "0xold2", mkt=M2, token=YES2)
    real = b.cancel

    async def first_partly(ids: list[str]) -> CancelResult:
        if ids == ["0xold", "0xold2"]:  # 0xold's batch answered, 0xold2's failed
            b.calls.append(("cancel", list(ids)))
            b.resting.pop("0xold", None)
            raise CancelError(BrokerError("cancel", "boom", 503, True), CancelResult(["0xold"], {}), 2, 1)
        return await real(ids)

    b.cancel = first_partly  # type: ignore[method-assign]
    with pytest.raises(CancelError):
        await ex.requote([old.client_id, old2.client_id], [Quote(M1, YES, Side.BUY, D("0.41"), D("10")),
                                                           Quote(M2, YES2, Side.BUY, D("0.41"), D("10"))])
    assert old.status is OrderStatus.CANCELED  # its batch said so
    assert b.ops("cancel") == [["0xold", "0xold2"], ["0xv2"]]  # only M2's replacement is pulled
    assert {o.venue_order_id for o in ex.open_orders()} == {"0xold2", "0xv1"}


async def test_requote_on_the_fast_path_settles_the_cancels_answer_even_when_the_places_raise():
    """The cancel in flight beside the places is settled by its own task: a place that raises
    (not a venue refusal: the request itself blew up) does not leave a cancelled order open."""
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")

    async def blows_up(items: list[object], dry_run: bool = False) -> list[PlaceResult]:
        await asyncio.sleep(0.01)  # (the cancel answers meanwhile)
        raise RuntimeError("encoder bug")

    b.post_orders = blows_up  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await ex.requote([old.client_id], [Quote(M1, YES, Side.BUY, D("0.41"), D("10"))])
    assert b.ops("cancel") == [["0xold"]]
    assert old.status is OrderStatus.CANCELED and old not in ex.open_orders()


# ------------------------------------------------------------------ a fill is never counted twice
async def test_a_trade_evicted_from_memory_is_not_counted_again_by_a_later_backfill():
    """The last fill is 1000 s old (a quiet market) and has left memory (final, older than
    CLOSED_KEEP_SEC); a reconnect's backfill starts BACKFILL_MARGIN_SEC before it and returns it."""
    clock = Clock(9000.0)
    ex, b, _ = make_ex(clock=clock)
    add_open(ex, "0xa", size="4")
    ex._on_trade_event(rest_trade("t1", "0xa", "9000"), source="ws")
    clock.t = 10_000.0
    assert len(await ex.poll(clock.t)) == 1 and ex._trades == {}  # counted once, then evicted
    b.tape = [rest_trade("t1", "0xa", "9000")]
    await ex.reconcile()
    assert b.ops("trades") == [8700]
    assert await ex.poll(clock.t) == []


async def test_trades_an_earlier_run_stored_stay_uncounted_after_a_quiet_spell(tmp_path):
    from sqlalchemy import insert

    from pmm_widgets.store.db import make_engine
    from pmm_widgets.store.migrate import upgrade
    from pmm_widgets.store.schema import trades

    url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade(url)
    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(insert(trades), [{"trade_id": "t1", "order_id": "lv-x-1", "market": M1, "token_id": YES,
                                    "side": "SELL", "price": 0.52, "size": 4, "fill_type": "FILLED", "mode": "live",
                                    "ts": 9000.0}])
    eng.dispose()
    clock = Clock(10_000.0)
    ex, b, _ = make_ex(clock=clock, db_url=url)
    await ex._load_history()
    assert "t1" in ex._stored_trades and ex._last_trade_ts == 9000.0
    await ex.poll(clock.t)  # the periodic eviction, 1000 s after the last trade
    b.tape = [rest_trade("t1", "0xa", "9000")]
    await ex.reconcile()  # a reconnect: the backfill from 8700 returns the earlier run's trade
    assert await ex.poll(clock.t) == []


def test_a_fill_leaving_a_fraction_of_a_share_is_partial_and_an_unknown_order_id_is_cut_to_18():
    ex, _, _ = make_ex()
    o = add_open(ex, "0xa", size="10")
    c = add_open(ex, "0xc", size="10")
    ex._close_order(c, OrderStatus.CANCELED, "cancelled")
    long_vid = "0x" + "ab" * 20
    ex._on_trade_event(tr(maker_orders=[maker("0xa", amount="9.5"), maker("0xc", amount="9.5"),
                                        maker(long_vid, amount="1")]), source="rest", force=True)
    fa, fc, fu = ex._pending
    assert (fa.fill_type, o.status, o.filled) == (FillType.PARTIAL, OrderStatus.PARTIAL, D("9.5"))
    assert ex.open_orders() == [o]
    assert (fc.fill_type, c.status, c.reason) == (FillType.PARTIAL, OrderStatus.CANCELED, "cancelled")
    assert fu.order_client_id == "unknown-" + long_vid[:18]


def test_order_events_with_a_fraction_of_a_share_filled_or_left():
    ex, _, _ = make_ex()
    a = add_open(ex, "0xa", filled="0.5")
    b_ = add_open(ex, "0xb", filled="9.5")

    def oe(vid: str, status: str) -> OrderEvent:
        return convert({"event_type": "order", "id": vid, "type": "UPDATE", "status": status}, OrderEvent)

    ex._on_event(oe("0xa", "LIVE"))
    assert a.status is OrderStatus.PARTIAL
    ex._on_event(oe("0xb", "MATCHED"))
    assert b_.status is not OrderStatus.FILLED and b_ in ex.open_orders()


def test_identical_unconfirmed_rows_take_one_venue_order_each():
    ex, _, _ = make_ex()
    ex._unconfirmed = [pending_row("p1"), pending_row("p2")]
    ex._match_unconfirmed([vo("0xm1"), vo("0xm2")])
    assert (ex._history["0xm1"]["client_id"], ex._history["0xm2"]["client_id"]) == ("p1", "p2")
    assert ex._unconfirmed == []


async def test_reconcile_gives_an_unconfirmed_row_its_open_venue_order():
    ex, b, sink = make_ex()
    ex._unconfirmed = [pending_row("p1"), pending_row("p9", price="0.10")]
    ex.backfilled = 3
    b.open = [vo("0xmatch")]
    res = await ex.reconcile()
    assert res["backfilled"] == 0 and row(sink, "p9")["reason"] == "reconcile: never acknowledged by the venue"
    assert b.ops("cancel") == [["0xmatch"]]  # not adopted (the setting): cancelled under our client id
    r = row(sink, "p1")
    assert (r["venue_order_id"], r["status"], r["reason"]) == ("0xmatch", "CANCELED", "reconcile: not ours to keep")


async def test_reconcile_adopts_an_earlier_runs_open_order_under_its_client_id():
    ex, b, sink = make_ex(adopt_unknown=True)
    ex._history = {"0xh": {**pending_row("h1"), "venue_order_id": "0xh", "status": "LIVE"}}
    b.open = [vo("0xh", matched="1")]
    res = await ex.reconcile()
    assert res["adopted"] == 1 and [o.client_id for o in ex.open_orders()] == ["h1"]
    r = row(sink, "h1")
    assert (r["status"], r["filled"], r["venue_order_id"]) == ("PARTIAL", D(1), "0xh")


def test_orders_at_counts_an_order_filled_since_and_the_ones_in_flight():
    ex, _, _ = make_ex()
    f = add_open(ex, "0xf", size="4", filled="1")
    ex._on_event(tr(id="tf", maker_orders=[maker("0xf", amount="3")], match_time="100"))
    assert f.status is OrderStatus.FILLED
    ex._inflight["fl"] = Order("fl", M1, YES, Side.BUY, D("0.40"), D("10"), ex.mode)
    ex._inflight["late"] = Order("late", M1, YES, Side.BUY, D("0.40"), D("10"), ex.mode)
    ex._spans["late"] = live_mod._Span(placed=100.0)
    got = {o.client_id: o.filled for o in ex.orders_at(100.0)}
    assert got == {f.client_id: D(1), "fl": D(0)}
    assert {o.client_id for o in ex.orders_at(101.0)} == {"fl", "late"}


@pytest.mark.parametrize(("t2", "kept"), [(9301, True), (9302, False)])
def test_evicted_trade_ids_are_kept_exactly_while_a_backfill_can_return_them(t2, kept):
    """t0 and t1 (venue times 8990, 9000) left memory; t2 moves the last trade to `t2`. A backfill then starts
    at int(t2 - BACKFILL_MARGIN_SEC): t1's id must stay while t1 can be in it (9000 >= 9301 - 301:
    the second of slack for the rounding) and goes once it cannot (9302): memory stays bounded."""
    clock = Clock(9000.0)
    ex, _, _ = make_ex(clock=clock)
    add_open(ex, "0xa", size="8")
    add_open(ex, "0xb", size="4")
    ex._on_trade_event(rest_trade("t1", "0xa", "9000"), source="ws")
    ex._on_trade_event(rest_trade("t0", "0xa", "8990"), source="ws")  # older, and not the last seen
    ex.evict(9700.0)  # both are final and older than CLOSED_KEEP_SEC: the newest, t1, decides
    assert ex._trades == {} and ex._stored_trades == {"t0", "t1"}
    ex._on_trade_event(rest_trade("t2", "0xb", str(t2)), source="ws")
    ex.evict(9700.0)  # t2 is too recent to leave memory
    assert set(ex._trades) == {"t2"}
    assert (ex._stored_trades == {"t0", "t1"}) is kept
    assert ex.memory_counts()["stored_trades"] == (2 if kept else 0)
