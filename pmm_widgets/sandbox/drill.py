"""Fault drills: `pmm run live` as a separate process against an in-process sandbox whose fault
knobs change on a schedule, and the ground-truth audit afterwards (issue 17).

Why here: the fault suite test (`tests/execution/test_live_faults.py`, short phases, in CI) and the
soak benchmark (`bench/bench_soak_faults.py`, every knob cycling for up to 30 minutes with
SIGKILLs) drive the same process the same way and must judge it by the same rules:
- no duplicate order: every order the venue ever held for our account is one DB order row (by
  venue order id), and no DB row names a venue order twice;
- 0 orphans: nothing of ours rests at the venue at the end, and no DB order row is left open;
- DB trades == venue fills (same trade ids, token, side, price, size), none lost, none twice.
Loopback only: the sandbox binds 127.0.0.1; the engine gets production settings pointed at it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .server import Sandbox

OPEN = ("PENDING", "LIVE", "PARTIAL")
CLEAR = {"latency_ms": 0.0, "latency_methods": "", "http_error_rate": 0.0, "http_error_status": 503, "http_error_methods": "",
         "http_error_count": -1, "ws_drop_rate": 0.0, "malformed_rate": 0.0, "garbled_answer_rate": 0.0,
         "garbled_answer_methods": ""}


@dataclass
class Phase:
    """`seconds` with these fault knobs (Faults field names; `paused`: the market stands still,
    a stale feed)."""

    name: str
    seconds: float
    knobs: dict[str, Any] = field(default_factory=dict)
    paused: bool = False


def live_env(sb: Sandbox, key: str, db_url: str, **extra: str) -> dict[str, str]:
    """Production settings pointed at the sandbox's URLs (nothing sandbox-specific)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_GAMMA_URL": sb.gamma_url, "PMM_CLOB_URL": sb.clob_url, "PMM_CLOB_WS_URL": sb.ws_url,
                "PMM_DB_URL": db_url, "PMM_PRIVATE_KEY": key, "PMM_UNIVERSE_SIZE": "4",
                "PMM_QUOTE_REFRESH_SEC": "0.5", "PMM_LEASE_TTL_SEC": "3", "PMM_WRITER_FLUSH_SEC": "0.2",
                "PMM_ALPHA": "0.2", "PMM_LOG_LEVEL": "INFO", "PMM_RECORD": "off",
                # venue=polymarket here, but its round trips are the loopback sandbox's: never
                # written where a real run's samples go (./data/live-order-rtt-ms-polymarket.txt)
                "PMM_LIVE_RTT_FILE": ""})
    env.update(extra)
    return env


async def spawn_live(env: dict[str, str], log: Path, *extra: str) -> asyncio.subprocess.Process:
    with open(log, "ab") as out:  # noqa: ASYNC230 - opening a local log file, once per spawn
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "pmm_widgets.cli", "run", "live", "--yes",
                                                    *extra, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT)


def apply_phase(sb: Sandbox, ph: Phase) -> None:
    sb.faults.update(**{**CLEAR, **ph.knobs})
    sb.paused = ph.paused


async def run_phases(sb: Sandbox, phases: list[Phase], proc: asyncio.subprocess.Process | None = None,
                     on_tick: Any = None) -> list[str]:
    """Apply each phase for its duration; returns the names of phases during which `proc` exited."""
    died: list[str] = []
    for ph in phases:
        apply_phase(sb, ph)
        end = time.monotonic() + ph.seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.2)
            if on_tick is not None:
                on_tick()
            if proc is not None and proc.returncode is not None and not died:
                died.append(ph.name)
    apply_phase(sb, Phase("clear", 0))
    return died


def audit(sb: Sandbox, api_key: str, db_url: str) -> dict[str, Any]:
    """The ground-truth checks of a finished drill (see the module doc); `ok` when all hold."""
    from .trading import trading_of

    venue = trading_of(sb)
    ever = {o.order_id for o in sb.sim._all_account.values() if o.owner == api_key}
    venue_open = {o.order_id for o in sb.sim.open_orders(api_key)}
    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as c:
            rows = [dict(r) for r in c.execute(sa.text(
                "SELECT client_id, venue_order_id, status FROM orders WHERE mode = 'live'")).mappings()]
            trades = {str(r["trade_id"]): dict(r) for r in c.execute(sa.text(
                "SELECT trade_id, venue_order_id, token_id, side, price, size, order_id FROM trades "
                "WHERE mode = 'live'")).mappings()}
    finally:
        eng.dispose()
    vids = [r["venue_order_id"] for r in rows if r["venue_order_id"]]
    truth = {f["trade_id"]: f for f in venue.account_fills(api_key)}
    mismatched = [tid for tid, r in trades.items() if tid in truth and (
        r["venue_order_id"], r["token_id"], r["side"], Decimal(str(r["price"])), Decimal(str(r["size"])))
        != (truth[tid]["order_id"], truth[tid]["token_id"], truth[tid]["side"], truth[tid]["price"],
            truth[tid]["size"])]
    res = {
        "venue_orders": len(ever),
        "db_orders": len(rows),
        "unmapped_venue_orders": len(ever - set(vids)),  # a venue order the DB does not know: a duplicate
        "db_rows_sharing_a_venue_id": len(vids) - len(set(vids)),
        "orphans_at_venue": len(venue_open),
        "db_rows_left_open": sum(1 for r in rows if r["status"] in OPEN),
        "venue_fills": len(truth),
        "db_trades": len(trades),
        "lost_fills": len(set(truth) - set(trades)),
        "extra_trades": len(set(trades) - set(truth)),
        "mismatched_trades": len(mismatched),
        "trades_without_our_order": sum(1 for r in trades.values() if str(r["order_id"]).startswith("unknown-")),
    }
    res["ok"] = all(res[k] == 0 for k in ("unmapped_venue_orders", "db_rows_sharing_a_venue_id", "orphans_at_venue",
                                          "db_rows_left_open", "lost_fills", "extra_trades", "mismatched_trades"))
    return res


def event_counts(db_url: str) -> dict[str, int]:
    """events rows per kind (cycle_error, circuit_open, ...): what the engine said about the faults."""
    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as c:
            return {str(k): int(n) for k, n in c.execute(sa.text("SELECT kind, COUNT(*) FROM events GROUP BY kind"))}
    finally:
        eng.dispose()
