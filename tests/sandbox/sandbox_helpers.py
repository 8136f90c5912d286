"""Helpers shared by the sandbox tests (imported by module name; pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import psutil

from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.sandbox.simulator import SimMarket, Simulator, _Rest


def book_tokens(sb: Sandbox) -> list[str]:
    """YES and NO token ids of every market that has a book."""
    out: list[str] = []
    for m in sb.sim.markets:
        if m.has_book:
            out += [m.yes_token_id, m.no_token_id]
    return out


def events_of(frame: str) -> list[dict[str, Any]]:
    """A market-channel frame holds one event or a JSON array of events."""
    data = json.loads(frame)
    return data if isinstance(data, list) else [data]


async def collect(ws: Any, seconds: float, until: Any = None) -> list[dict[str, Any]]:
    """Read events for up to `seconds` (or until `until(event)` is true); PONG frames skipped."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            frame = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            break
        if frame == "PONG":
            continue
        for ev in events_of(frame):
            out.append(ev)
            if until is not None and until(ev):
                return out
    return out


def blank_book(sim: Simulator, m: SimMarket, bids: dict[int, int], asks: dict[int, int]) -> None:
    """Replace the market's book with background orders: {price mil: size centi} per side."""
    for d in (m.bids, m.asks, m.bid_tot, m.ask_tot):
        d.clear()
    m.bid_px.clear()
    m.ask_px.clear()
    m.n_bg = 0
    m.min_order_size = Decimal(5)
    for is_bid, levels in ((True, bids), (False, asks)):
        for px, centi in levels.items():
            sim._rest(m, is_bid, px, _Rest(centi))


def gone(pid: int, within: float, poll: float = 0.05) -> bool:
    """Whether process `pid` ends (or is a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(poll)
    return False
