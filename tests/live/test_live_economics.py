"""Issue 13, live path over the sandbox: the venue's `/orders-scoring` answer through the SDK and
the tape's fee fields on our fills."""

from __future__ import annotations

import asyncio
import time

import pytest
from live_helpers import start_quoting, wait_for

pytestmark = pytest.mark.integration


async def test_orders_scoring_and_fee_fields(sb, venue, wallet_key, closers):
    ex, key, _ = await start_quoting(sb, wallet_key, closers, 3)
    assert await wait_for(lambda: len(ex.open_orders()) > 0, 10)
    ids = [o.venue_order_id for o in ex.open_orders() if o.venue_order_id]
    sb.paused = True  # the book stands still while both sides look at it
    got = await ex.orders_scoring(ids)
    assert got is not None and set(got) == set(ids)
    for oid, scoring in got.items():
        assert scoring == sb.sim.econ.order_scoring(oid)  # the sandbox's own view of each order
    sb.paused = False
    assert await wait_for(lambda: bool(venue.account_fills(key)), 30), "a fill at the touch"
    fills = []
    for _ in range(100):  # the tape reaches the exchange a moment after the venue's ground truth
        fills += await ex.poll(time.time())
        if fills:
            break
        await asyncio.sleep(0.1)
    assert fills and all(f.raw.get("trader_side") == "MAKER" and f.raw.get("fee_rate_bps") == "0" for f in fills)


async def test_canceled_market_resolved_closes_the_orders_rows(sb, wallet_key, closers):
    from pmm_widgets.store.sink import MemorySink

    sink = MemorySink()
    ex, _, _ = await start_quoting(sb, wallet_key, closers, 2, sink=sink)
    assert await wait_for(lambda: len(ex.open_orders()) > 0, 10)
    cid = next(o.market for o in ex.open_orders())
    assert sb.sim.resolve_market(cid) is not None
    assert await wait_for(lambda: not [o for o in ex.open_orders() if o.market == cid], 10)
    rows = [r for r in sink.rows["orders"] if r["market"] == cid]
    assert rows and all(r["status"] in ("CANCELED", "FILLED") for r in rows)
    assert any("canceled_market_resolved" in (r["reason"] or "") for r in rows)
