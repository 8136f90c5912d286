"""Issue 17 minor: a fill that races our cancel must not leave the order row CANCELED with
filled=0 while `trades` holds fills for it. Real sockets, sandbox venue, throwaway wallet.

The race is made certain: every placed order is closed as CANCELED on our side (what a cancel
response does) while it still rests at the venue, so each fill the venue then makes arrives
for an order we already closed."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from live_helpers import start_quoting

from pmm_widgets.domain import OrderStatus
from pmm_widgets.store.sink import MemorySink

pytestmark = pytest.mark.integration


async def test_fill_after_cancel_updates_the_closed_order_row(sb, venue, wallet_key, closers):
    sink = MemorySink()
    ex, api_key, _ = await start_quoting(sb, wallet_key, closers, 6, sink=sink)
    placed = [o for o in ex.open_orders() if o.status is OrderStatus.LIVE]
    assert placed
    for o in placed:  # our side thinks they are cancelled; the venue still holds them
        ex._close_order(o, OrderStatus.CANCELED, "cancelled")
    ours = {o.venue_order_id for o in placed}
    end = time.monotonic() + 40
    while time.monotonic() < end:
        await ex.poll(time.time())
        if any(f["order_id"] in ours for f in venue.account_fills(api_key)) and any(
                r.get("venue_order_id") in ours for r in sink.rows.get("trades", [])):
            break
        await asyncio.sleep(0.1)
    await ex.poll(time.time())
    await ex.close()
    trades = [r for r in sink.rows.get("trades", []) if r["venue_order_id"] in ours]
    assert trades, "no fill on a cancelled order within 40 s"
    by_order: dict[str, Decimal] = {}
    for r in trades:
        by_order[r["venue_order_id"]] = by_order.get(r["venue_order_id"], Decimal(0)) + Decimal(str(r["size"]))
    rows = {r["venue_order_id"]: r for r in sink.rows["orders"]}
    for vid, filled in by_order.items():
        row = rows[vid]
        assert Decimal(str(row["filled"])) == filled, (row["status"], row["filled"], filled)
        assert row["status"] in ("CANCELED", "FILLED")
        if filled >= Decimal(str(row["size"])):
            assert row["status"] == "FILLED"
