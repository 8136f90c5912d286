"""Fast unit tests of the live exchange's order entry (`execution/live.py`: `_prepare`,
`_send_places`, `requote`) and of reconcile / `orders_at` / `evict`, around the scripted broker of
`live_fakes.py`: what a second mutation pass found untested. Faults at exact points (a POST's
answer, a cancel that fails) are scripted here; the sandbox tests cover the same paths end to end."""

from __future__ import annotations

import pytest
from live_fakes import M1, YES, Clock, D, add_open, make_ex, maker, pending_row, row, tr, vo

from pmm_widgets.domain import OrderStatus, Quote, Side
from pmm_widgets.execution import live as live_mod
from pmm_widgets.venue.broker import BrokerError, CancelResult, PlaceResult
from pmm_widgets.venue.wire import Trade, WireError, convert


def q(price: str = "0.40", token: str = YES, mkt: str = M1, size: str = "10") -> Quote:
    return Quote(mkt, token, Side.BUY, D(price), D(size))


class PerfClock:
    """Stands in for the `time` module inside live.py: `perf_counter` reads a scripted value."""

    def __init__(self, t: float) -> None:
        self.t = t

    def perf_counter(self) -> float:
        return self.t


# ------------------------------------------------------------------ place: _prepare, _send_places
async def test_an_order_the_venue_would_refuse_is_recorded_rejected_without_a_post():
    ex, b, sink = make_ex()
    [o] = await ex.place([q("0.405")])  # off the tick grid
    r = row(sink, o.client_id)
    assert (r["status"], r["reason"]) == ("REJECTED", o.reason) and o.reason and b.calls == []


async def test_each_order_is_recorded_pending_and_in_flight_while_its_post_is_out(monkeypatch):
    clock = Clock(100.0)
    ex, b, sink = make_ex(clock=clock)
    perf = PerfClock(50.0)
    monkeypatch.setattr(live_mod, "time", perf)
    seen: dict[str, object] = {}

    def at_post() -> None:
        seen["rows"] = {r["client_id"]: r["status"] for r in sink.rows["orders"]}
        seen["inflight"] = sorted(ex._inflight)
        seen["at"] = sorted(o.client_id for o in ex.orders_at(50.0))
        clock.t = 101.5  # the answer comes 1.5 s later
        perf.t = 50.25

    b.on_post = at_post
    o1, o2 = await ex.place([q("0.40"), q("0.41")])
    ids = sorted([o1.client_id, o2.client_id])
    assert seen["rows"] == {o1.client_id: "PENDING", o2.client_id: "PENDING"}
    assert seen["inflight"] == ids == seen["at"]
    assert ex._inflight == {} and list(ex.order_rtt_ms) == [250.0]  # ms, from send to answer
    for o in (o1, o2):
        r = row(sink, o.client_id)
        assert (o.status, o.created_ts, o.updated_ts) == (OrderStatus.LIVE, 100.0, 101.5)
        assert (r["status"], r["venue_order_id"], r["updated_ts"]) == ("LIVE", o.venue_order_id, 101.5)
    # what was sent: each quote with its market's tick size and neg-risk flag, for real
    [(items, dry_run)] = b.posted
    assert [(it[0].price, it[1], it[2]) for it in items] == [(D("0.40"), D("0.01"), False), (D("0.41"), D("0.01"), False)]
    assert dry_run is False


async def test_a_refused_post_is_recorded_rejected_even_when_it_names_an_order_id():
    clock = Clock(10.0)
    ex, b, sink = make_ex(clock=clock)
    q1 = q()
    b.place_results = [PlaceResult(q1, False, order_id="0xr", error="invalid signature")]  # definitive, not uncertain
    [o] = await ex.place([q1])
    assert (o.status, o.reason, o.venue_order_id) == (OrderStatus.REJECTED, "invalid signature", None)
    assert (row(sink, o.client_id)["status"], row(sink, o.client_id)["reason"]) == ("REJECTED", "invalid signature")
    assert ex.open_orders() == [] and "0xr" not in ex._by_venue and b.ops("cancel") == []


async def test_a_lost_answer_whose_cancel_fails_stays_tracked_with_its_reason(caplog):
    ex, b, sink = make_ex()
    q1 = q()
    long_error = "timeout " + "x" * 600
    b.place_results = [PlaceResult(q1, False, order_id="0xu", error=long_error, uncertain=True)]
    b.fail["cancel"] = 503
    [o] = await ex.place([q1])
    assert b.ops("cancel") == [["0xu"]]
    assert o.reason == ("uncertain: " + long_error)[:500] and len(o.reason) == 500
    assert o.status is OrderStatus.LIVE and ex.open_orders() == [o] and ex._by_venue["0xu"] is o
    assert row(sink, o.client_id)["status"] == "LIVE"
    assert "cancel of 1 orders with a lost answer failed" in caplog.text


async def test_dry_run_signs_without_posting_and_shows_what_would_rest():
    ex, b, sink = make_ex(dry_run=True)
    [o] = await ex.place([q()])
    [(_, dry_run)] = b.posted
    assert dry_run is True
    assert o.status is OrderStatus.DRY_RUN and ex.open_orders() == [o] and row(sink, o.client_id)["status"] == "DRY_RUN"


# ------------------------------------------------------------------ requote
async def test_requote_without_the_fast_path_cancels_first_then_places():
    ex, b, _ = make_ex()  # the SDK path (`fast` off): one call after the other
    old = add_open(ex, "0xold")
    done, placed = await ex.requote([old.client_id], [q("0.41")])
    assert [op for op, _ in b.calls] == ["cancel", "post_orders"]
    assert done == [old.client_id] and old.status is OrderStatus.CANCELED
    assert [o.status for o in placed] == [OrderStatus.LIVE] and ex.open_orders() == placed
    b.calls.clear()
    assert await ex.requote([], []) == ([], []) and b.calls == []


async def test_requote_on_the_fast_path_has_the_post_out_before_the_cancel_answer():
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")
    done, placed = await ex.requote([old.client_id], [q("0.41")])
    # the DELETE is scheduled beside the POST: the (instant) POST goes out, then the cancel runs
    assert [op for op, _ in b.calls] == ["post_orders", "cancel"]
    assert done == [old.client_id] and [o.status for o in placed] == [OrderStatus.LIVE]


async def test_a_dry_run_requote_stays_local_even_on_a_fast_broker():
    ex, b, _ = make_ex(dry_run=True)
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")
    done, placed = await ex.requote([old.client_id], [q("0.41")])
    assert done == [old.client_id] and old.status is OrderStatus.CANCELED
    assert [o.status for o in placed] == [OrderStatus.DRY_RUN] and b.ops("cancel") == []


async def test_a_fast_requote_with_only_cancels_or_only_places_or_nothing_to_send():
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")
    assert await ex.requote([old.client_id], []) == ([old.client_id], [])
    assert b.ops("cancel") == [["0xold"]] and b.ops("post_orders") == []
    done, placed = await ex.requote([], [q("0.41")])
    assert done == [] and [o.status for o in placed] == [OrderStatus.LIVE] and len(b.ops("post_orders")) == 1
    # every quote refused before sending and nothing (known) to cancel: the refusals come back, no call
    b.calls.clear()
    done, placed = await ex.requote(["nope"], [q("0.405")])
    assert done == [] and [o.status for o in placed] == [OrderStatus.REJECTED] and b.calls == []


async def test_a_failed_requote_cancel_says_how_many_replacements_it_pulls(caplog):
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")
    b.fail["cancel"] = 503
    b.fail_once.add("cancel")
    with pytest.raises(BrokerError):
        await ex.requote([old.client_id], [q("0.41"), q("0.42")])
    assert "requote cancel failed" in caplog.text and "pulling 2 replacements" in caplog.text
    assert b.ops("cancel") == [["0xold"], ["0xv1", "0xv2"]] and ex.open_orders() == [old]
    # the pull fails too: the cancel's error is raised, the replacements stay tracked as open
    b.fail["cancel"] = 503
    b.fail_once.discard("cancel")
    with pytest.raises(BrokerError):
        await ex.requote([old.client_id], [q("0.43")])
    assert {o.venue_order_id for o in ex.open_orders()} == {"0xold", "0xv3"}


# ------------------------------------------------------------------ reconcile
async def test_reconcile_never_closes_an_earlier_runs_order_the_venue_still_holds_uncancelled():
    """The venue's cancel answer names the order neither cancelled nor refused: it may still
    rest, so its row stays open (the next reconcile tries again), never marked gone."""
    ex, b, sink = make_ex()
    ex._history = {"0xh": {**pending_row("h1"), "venue_order_id": "0xh", "status": "LIVE"}}
    b.open = [vo("0xh")]

    async def silent_cancel(ids: list[str]) -> CancelResult:
        b.calls.append(("cancel", list(ids)))
        return CancelResult([], {})

    b.cancel = silent_cancel  # type: ignore[method-assign]
    res = await ex.reconcile()
    assert res["cancelled"] == 1 and b.ops("cancel") == [["0xh"]]
    assert "h1" not in {r["client_id"] for r in sink.rows.get("orders", [])}


async def test_a_second_reconcile_leaves_an_order_it_closed_earlier_as_later_events_made_it():
    clock = Clock(1000.0)
    ex, _, _ = make_ex(clock=clock)
    ex._history = {"0xh": {**pending_row("h1"), "venue_order_id": "0xh", "status": "LIVE"}}
    await ex.reconcile()  # the venue holds it no more: closed
    h1 = ex._by_venue["0xh"]
    assert (h1.status, h1.reason) == (OrderStatus.CANCELED, "reconcile: not open at the venue")
    ex._on_event(tr(id="tl", maker_orders=[maker("0xh", amount="10", side="BUY")]))  # a late fill of all of it
    assert (h1.status, h1.reason) == (OrderStatus.FILLED, "filled before the cancel reached the venue")
    clock.t = 1001.0
    await ex.reconcile()  # a reconnect: the earlier run's row still says LIVE; the order is closed already
    assert (h1.status, h1.reason, h1.updated_ts) == (OrderStatus.FILLED, "filled before the cancel reached the venue",
                                                     1000.0)


async def test_reconcile_reads_an_earlier_runs_row_without_a_status_as_open():
    ex, _, sink = make_ex()
    ex._history = {"0xh": {**pending_row("h1"), "venue_order_id": "0xh", "status": None}}
    await ex.reconcile()
    r = row(sink, "h1")
    assert (r["status"], r["reason"]) == ("CANCELED", "reconcile: not open at the venue")


async def test_reconcile_adopts_an_order_with_an_empty_matched_size_as_unfilled():
    ex, b, _ = make_ex(adopt_unknown=True)
    b.open = [vo("0xnew", matched="")]
    assert (await ex.reconcile())["adopted"] == 1
    a = ex._by_venue["0xnew"]
    assert (a.filled, a.status) == (D(0), OrderStatus.LIVE) and ex.open_orders() == [a]


async def test_reconcile_counts_a_backfilled_fill_of_an_order_it_does_not_know():
    """Ours by the API key but of no order we know (nor a PENDING row's): counted all the same,
    under a synthetic client id, so inventory and cash stay right."""
    ex, b, _ = make_ex()
    b.tape = [convert({"id": "tu", "asset_id": YES, "side": "BUY", "trader_side": "MAKER", "status": "MATCHED",
                       "market": M1, "maker_orders": [maker("0xstray", amount="3")]}, Trade)]
    res = await ex.reconcile()
    [f] = ex._pending
    assert res["backfilled"] == 1 and (f.order_client_id, f.size, f.raw["source"]) == ("unknown-0xstray", D(3), "rest")


# ------------------------------------------------------------------ orders_at
def test_orders_at_gives_back_the_later_fills_of_an_order_cancelled_since_and_skips_unknown_orders():
    ex, _, _ = make_ex()
    c = add_open(ex, "0xc", filled="1")
    ex._on_event(tr(id="tc", maker_orders=[maker("0xc", amount="2", side="BUY")], match_time="101"))
    ex._spans[c.client_id] = live_mod._Span(placed=50.0, gone=102.0)
    ex._close_order(c, OrderStatus.CANCELED)
    late = add_open(ex, "0xl", size="4")  # placed at the instant, filled whole after it: not resting then
    ex._spans[late.client_id] = live_mod._Span(placed=100.0)
    ex._on_event(tr(id="tl", maker_orders=[maker("0xl", amount="4", side="BUY")], match_time="101"))
    # a fill after the instant of an order we do not know (counted under a synthetic id)
    ex._on_trade_event(tr(id="tu", maker_orders=[maker("0xstray", amount="2")], match_time="103"), source="ws", force=True)
    plain = add_open(ex, "0xp", filled="2")  # no fill since: as it is
    # still open here, its removal stamped at the instant (a re-adopted order): it rested then
    readopted = add_open(ex, "0xr")
    ex._spans[readopted.client_id] = live_mod._Span(placed=50.0, gone=100.0)
    assert c.filled == D(3) and late.status is OrderStatus.FILLED and len(ex._pending) == 3
    assert {o.client_id: o.filled for o in ex.orders_at(100.0)} == {c.client_id: D(1), plain.client_id: D(2),
                                                                   readopted.client_id: D(0)}


def test_an_open_order_without_a_side_is_refused_naming_it_cut_short():
    ex, _, _ = make_ex(adopt_unknown=True)
    vid = "0x" + "1234567890" * 3
    with pytest.raises(WireError) as ei:
        ex._adopt(vo(vid, side="SIDEWAYS-AND-MORE"))
    assert str(ei.value) == f"open order {vid[:20]}: side 'SIDEWAYS-A' is not BUY or SELL"


# ------------------------------------------------------------------ evict
def test_evict_keeps_a_dry_run_order_that_would_rest_however_old():
    ex, _, _ = make_ex(dry_run=True)
    o = add_open(ex, "0xd")
    o.status = OrderStatus.DRY_RUN  # not an open status, yet it rests (would rest) until cancelled
    assert ex.evict(10_000.0) == 0
    assert ex._by_venue == {"0xd": o} and ex.open_orders() == [o]


def test_evict_forgets_an_evicted_orders_span_and_history_row_and_counts_each_thing_gone():
    ex, _, _ = make_ex()
    ex._history = {"0xh": {**pending_row("h1"), "venue_order_id": "0xh", "status": "LIVE"},
                   "0xk": {**pending_row("k1"), "venue_order_id": "0xk", "status": "LIVE"}}
    h1 = ex._order_for("0xh")  # an earlier run's order, in memory since; closed long ago
    assert h1 is not None
    ex._close_order(h1, OrderStatus.CANCELED)
    h1.updated_ts = 1.0
    ex._spans["h1"] = live_mod._Span(placed=1.0, gone=1.0)
    k1 = ex._order_for("0xk")  # another, still open here: its row has done its work
    assert k1 is not None
    ex._open[k1.client_id] = k1
    ex._spans["k1"] = live_mod._Span(placed=1.0)
    edge = add_open(ex, "0xe")  # closed exactly CLOSED_KEEP_SEC ago: not yet older, kept
    ex._close_order(edge, OrderStatus.CANCELED)
    edge.updated_ts = 10_000.0 - live_mod.CLOSED_KEEP_SEC
    assert ex.evict(10_000.0) == 2  # h1 (order and row together), k1's row
    assert set(ex._by_venue) == {"0xk", "0xe"} and ex._history == {} and set(ex._spans) == {"k1"}
    assert not ex._known("0xh")  # a late event cannot bring h1 back as the open order its row says


def test_evict_drops_a_closed_row_without_a_time_as_old_and_keeps_one_touched_at_the_cutoff():
    ex, _, _ = make_ex()
    ex._history = {"0xr": {"status": "CANCELED"}, "0xs": {"status": "CANCELED", "updated_ts": 0.75},
                   "0xt": {"status": "FILLED", "updated_ts": 0.5}}
    assert ex.evict(live_mod.CLOSED_KEEP_SEC + 0.5) == 1 and set(ex._history) == {"0xs", "0xt"}  # cutoff 0.5


def test_evict_keeps_a_final_trade_stamped_exactly_at_the_cutoff():
    ex, _, _ = make_ex()
    add_open(ex, "0xa", size="8")
    ex._on_event(tr(id="t1", maker_orders=[maker("0xa")], match_time="9400", status="CONFIRMED"))
    ex._on_event(tr(id="t0", maker_orders=[maker("0xa")], match_time="9399", status="CONFIRMED"))
    assert ex.evict(10_000.0) == 1  # the cutoff is 9400: t0 is older, t1 is not
    assert set(ex._trades) == {"t1"} and ex._stored_trades == {"t0"}
