"""Helpers of the live tests (imported by module name, like the other areas' helpers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from pmm_widgets.config import Settings
from pmm_widgets.domain import Market, Quote, Side
from pmm_widgets.sandbox.server import Sandbox


def make_settings(sb: Sandbox, key: str | None, db: Path | None = None, **kw) -> Settings:
    values = dict(clob_url=sb.clob_url, clob_ws_url=sb.ws_url, gamma_url=sb.gamma_url,
                  db_url=f"sqlite:///{db}" if db else "sqlite:////nonexistent/pmm-live-tests.db",
                  disconnect_cancel_sec=1.0, private_key=key)
    values.update(kw)
    return Settings(_env_file=None, **values)


def active_markets(sb: Sandbox, n: int) -> list[Market]:
    """The n most active markets that have a two-sided book, as domain Markets."""
    ms = [m for m in sb.sim.markets if m.has_book and m.best_bid_mil is not None and m.best_ask_mil is not None]
    ms.sort(key=lambda m: -m.activity)
    return [Market(m.condition_id, m.question, m.yes_token_id, m.no_token_id, m.tick_size, m.min_order_size,
                   neg_risk=m.neg_risk) for m in ms[:n]]


def touch_bids(sb: Sandbox, markets: list[Market], size: Decimal | None = None) -> list[Quote]:
    """A post-only BUY on both tokens of each market: one tick above the best bid when the
    spread is wide enough not to cross (first in the queue), else at the best bid."""
    out = []
    for m in markets:
        tick = sb.sim.tick_size(m.yes_token_id)
        for tok in m.token_ids:
            bb, ba = sb.sim.best(tok)
            if bb is None or ba is None:
                continue
            px = bb + tick if bb + 2 * tick < ba else bb
            out.append(Quote(m.condition_id, tok, Side.BUY, px, size or m.min_order_size))
    return out


async def start_quoting(sb: Sandbox, key: str, closers: list, n_markets: int, sink=None, **settings):
    """A started LiveExchange (closed at teardown) with post-only bids at the touch on both tokens
    of the `n_markets` most active markets: (exchange, api key, markets)."""
    from pmm_widgets.execution.live import LiveExchange
    from pmm_widgets.store.sink import MemorySink

    ex = LiveExchange(make_settings(sb, key, **settings), sink if sink is not None else MemorySink(), sb.clob_url,
                      sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()
    markets = active_markets(sb, n_markets)
    ex.set_markets(markets)
    await ex.place(touch_bids(sb, markets))
    return ex, ex.broker.creds.api_key.get_secret_value(), markets


async def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(step)
    return cond()
