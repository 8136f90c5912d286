"""Bounded live state (issue 12): closed orders and final trades leave memory after
CLOSED_KEEP_SEC (open ones never do); start-up loads open and recent order rows only."""

from __future__ import annotations

import time

import pytest
from live_helpers import active_markets, make_settings, touch_bids
from sqlalchemy import insert

from pmm_widgets.domain import OrderStatus
from pmm_widgets.execution.live import CLOSED_KEEP_SEC, LiveExchange
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.schema import orders, trades
from pmm_widgets.store.sink import MemorySink

pytestmark = pytest.mark.integration


async def test_closed_orders_leave_memory_open_ones_stay(sb, venue, wallet_key, closers):
    now = [time.time()]
    ex = LiveExchange(make_settings(sb, wallet_key), MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0,
                      clock=lambda: now[0])
    closers.append(ex)
    await ex.start()
    markets = active_markets(sb, 4)
    ex.set_markets(markets)
    placed = [o for o in await ex.place(touch_bids(sb, markets)) if o.status is OrderStatus.LIVE]
    assert len(placed) >= 4
    half = placed[: len(placed) // 2]
    await ex.cancel([o.client_id for o in half])
    assert ex.memory_counts()["by_venue"] == len(placed)
    assert ex.evict(now[0]) == 0  # recent: kept for late events
    now[0] += CLOSED_KEEP_SEC + 1
    assert ex.evict(now[0]) >= len(half)
    mem = ex.memory_counts()
    assert mem["by_venue"] == len(ex.open_orders()) == mem["open"]
    assert {o.client_id for o in ex.open_orders()} <= {o.client_id for o in placed} - {o.client_id for o in half}
    await ex.poll(now[0])  # the periodic eviction runs from poll
    await ex.close()


async def test_startup_loads_open_and_recent_rows_only(sb, venue, wallet_key, tmp_path, closers):
    db = tmp_path / "mem.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    now = time.time()
    rows = []
    for i in range(300):  # 300 old closed orders, 3 old open ones, 5 recently closed
        status = "LIVE" if i < 3 else "CANCELED"
        ts = now - 3 * 86400
        rows.append({"client_id": f"old-{i}", "venue_order_id": f"0x{i:064x}", "mode": "live", "market": "m",
                     "token_id": "1", "side": "BUY", "price": 0.5, "size": 5, "filled": 0, "status": status,
                     "created_ts": ts, "updated_ts": ts})
    for i in range(5):
        rows.append({"client_id": f"new-{i}", "venue_order_id": f"0x{1000 + i:064x}", "mode": "live", "market": "m",
                     "token_id": "1", "side": "BUY", "price": 0.5, "size": 5, "filled": 0, "status": "CANCELED",
                     "created_ts": now - 60, "updated_ts": now - 60})
    eng = make_engine(url)
    with eng.begin() as c:
        c.execute(insert(orders), rows)
        c.execute(insert(trades), [{"trade_id": f"t{i}", "order_id": "old-5", "market": "m", "token_id": "1",
                                    "side": "BUY", "price": 0.5, "size": 1, "fill_type": "FILLED", "mode": "live",
                                    "ts": now - 2 * 86400 + i} for i in range(200)]
                  + [{"trade_id": "t-last", "order_id": "new-1", "market": "m", "token_id": "1", "side": "BUY",
                      "price": 0.5, "size": 1, "fill_type": "FILLED", "mode": "live", "ts": now - 30}])
    eng.dispose()
    ex = LiveExchange(make_settings(sb, wallet_key, db), MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex._load_history()
    assert {r["client_id"] for r in ex._history.values()} == {"old-0", "old-1", "old-2"} | {f"new-{i}" for i in range(5)}
    assert ex._stored_trades == {"t-last"}
    assert ex._last_trade_ts == pytest.approx(now - 30)
