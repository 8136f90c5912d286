"""The totals' `cancels` are the exchange's own count of the orders it cancelled, whoever asked.

They were counted by the callers (the requotes, and `add_cancels` at the owner's pause, halt,
circuit opening and stop): a circuit probe's cancel-all and a resolution's `cancel_market`
cancelled orders that no face ever counted. Here each of a pause, a probe and a resolution
cancels orders in one paper session, and the totals equal, at each step and at the end, the
orders the session's records say were cancelled (exactly: not one more, so nothing is counted
twice). Live: the probe's cancel-all counts what the venue answered cancelled, not what the
engine thought was open (an order the venue itself cancelled meanwhile is not counted)."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import pytest
from engine_helpers import count, until
from venue_arrivals import live_engine

from pmm_widgets.domain import Order, OrderStatus
from pmm_widgets.engine import Engine
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.endpoints import Endpoints

pytestmark = pytest.mark.integration


def spy_cancels(ex: Any) -> Counter[str]:
    """Orders each caller's `cancel_all` / `cancel_market` cancelled, by the calling function's
    name (the exchange's own methods, called through; through `cancel_settled`, its caller's)."""
    by: Counter[str] = Counter()
    cancel_all, cancel_market = ex.cancel_all, ex.cancel_market

    async def all_() -> int:
        who = sys._getframe(1).f_code.co_name
        if who == "cancel_settled":  # (the exchange's own sequence: its caller is the one that asked)
            who = sys._getframe(2).f_code.co_name
        n = await cancel_all()
        by[who] += n
        return n

    async def market(m: str) -> int:
        who = sys._getframe(1).f_code.co_name
        n = await cancel_market(m)
        by[who] += n
        return n

    ex.cancel_all, ex.cancel_market = all_, market
    return by


def cancelled_records(ex: Any) -> dict[str, tuple[OrderStatus, str]]:
    """Each order's latest recorded (status, reason), as the paper exchange records it (kept
    while recording, called through): the session's own account of what was cancelled."""
    last: dict[str, tuple[OrderStatus, str]] = {}
    record = ex._record_order

    def rec(o: Order) -> None:
        last[o.client_id] = (o.status, o.reason)
        record(o)

    ex._record_order = rec
    return last


async def test_a_pause_a_probe_and_a_resolution_are_each_counted_once(fast_settings, db):
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15.0)) as sb:
        engine = Engine(fast_settings, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
            owner, ex, cyc = engine.owner, engine.runtime.exchange, engine.runtime.cycle
            by = spy_cancels(ex)
            last = cancelled_records(ex)

            def cancelled() -> int:
                return sum(1 for st, why in last.values() if st is OrderStatus.CANCELED and why == "cancelled")

            async def settled() -> int:
                """Under the trade lock (no cycle under way): the totals and the records agree."""
                async with owner._ctl.trade_lock:
                    assert cyc.totals.cancels == cancelled(), (cyc.totals, cancelled(), dict(by))
                    return cyc.totals.cancels

            assert await until(lambda: len(ex.open_orders()) >= 2)
            # a pause
            n = await engine.pause(reason="pause button", by="test")
            assert n >= 2 and by["pause"] == n
            await settled()
            await engine.resume(by="test")
            # the circuit's probe: the circuit opened while its cancel-all failed (a venue down), so
            # the orders still rest when its first probe (due now) cancels all
            assert await until(lambda: len(ex.open_orders()) >= 2)
            async with owner._ctl.trade_lock:
                now = time.time()
                owner._circuit.open_since, owner._circuit.next_probe = now, now
            assert await until(lambda: not owner._circuit.is_open, timeout=10)
            assert by["_circuit_probe"] >= 1, dict(by)
            await settled()
            # a resolution of a market with orders resting
            assert await until(lambda: len({o.market for o in ex.open_orders()}) >= 1)
            async with owner._ctl.trade_lock:  # no cycle until the resolution has arrived
                cid = ex.open_orders()[0].market
                assert sb.sim.resolve_market(cid, winner_yes=True) is not None
                assert await until(lambda: any(ev.market == cid for ev in engine.runtime.md.stream.resolutions),
                                   timeout=10)
            assert await until(lambda: cid in cyc.resolved, timeout=10)
            assert by["resolve_market"] >= 1, dict(by)
            shown = await settled()
            assert shown >= by["pause"] + by["_circuit_probe"] + by["resolve_market"]
        finally:
            await engine.stop()
    assert engine.state.totals.open_orders == 0
    final = engine.state.totals.cancels  # the stop's cancels in it
    assert final == cancelled() == count(db, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELED' "
                                             "AND reason = 'cancelled'"), (final, cancelled(), dict(by))
    assert final > shown


async def test_a_live_probe_counts_what_the_venue_cancelled(fast_settings):
    """The probe's cancel-all on the sandbox venue: counted as the venue answered it. An order the
    venue cancelled on its own (not at the engine's request) is in no count, though the engine
    may still have held it open when the cancel-all left."""
    async with live_engine(fast_settings, quote_refresh_sec=5.0, universe_size=2) as run:
        engine, sb = run.engine, run.sb
        owner, ex, cyc = engine.owner, engine.runtime.exchange, engine.runtime.cycle
        gone: list[str] = []  # the venue's cancellations of orders, in order
        sb.sim.add_account_listener(lambda ev: len(ev) == 3 and ev[0] == "order" and ev[2] == "CANCELLATION"
                                    and gone.append(ev[1].order_id))
        await run.quoting_still()
        async with owner._ctl.trade_lock:
            resting = [o.venue_order_id for o in ex.open_orders() if o.venue_order_id]
            assert len(resting) >= 2
            key = ex.broker.creds.api_key.get_secret_value()
            assert sb.sim.cancel_order(key, resting[0])  # the venue's own cancel: nobody asked for it
            mark, before = len(gone), cyc.totals.cancels
            now = time.time()
            owner._circuit.open_since, owner._circuit.next_probe = now, now
        assert await until(lambda: not owner._circuit.is_open, timeout=10)
        async with owner._ctl.trade_lock:
            requested = gone[mark:]  # since: all at the engine's request (the probe's, a requote's)
            assert resting[0] not in requested and set(resting[1:]) <= set(requested) and run.venue_open() == 0
            assert cyc.totals.cancels - before == len(requested), (cyc.totals, before, requested)
