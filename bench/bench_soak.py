"""Soak: the live engine on a sandbox process for a long run: RSS, DB size, live state, orphans.

The sandbox runs in its own process (`python -m pmm_widgets.sandbox`); the real engine (mode
LIVE, a throwaway wallet, a fresh SQLite file) quotes `--markets` markets for `--minutes` with a
short retention (`PMM_RETAIN_DAYS=--retain-days`, pruned every `--prune-sec`). Every
`--sample-sec` the bench records the process RSS, the DB size (file + WAL) and the live-state
sizes (`LiveExchange.memory_counts()`). At the end (the engine stops, which cancels its orders)
the venue is asked for our open orders: orphans must be 0.

Printed: the samples (the RSS curve), RSS growth after the warm-up (`--warmup-min`, 10 by the
issue), DB size growth once retention has kicked in, orphans. Keep the sandbox at speed 1: the
retention cutoff is wall time and the sandbox stamps public trades with its simulated clock,
which runs `speed` times faster (speed 10 would stamp trades hours in the future, never pruned
within the run).

Usage: python bench/bench_soak.py [--minutes 120] [--markets 50] [--retain-days 0.003] [--prune-sec 30]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil
from eth_account import Account

sys.path.insert(0, str(Path(__file__).parent))
from bench_live_cycle import SandboxProcess

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.core import Engine
from pmm_widgets.venue.broker import Broker


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


async def main(a: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    proc = psutil.Process(os.getpid())
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    samples: list[tuple[float, float, float, dict[str, int]]] = []
    with SandboxProcess(max(150, 3 * a.markets), a.seed, 1.0) as sb, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.db"
        settings = Settings(_env_file=None, venue="polymarket", db_url=f"sqlite:///{db}", universe_size=a.markets,
                            quote_refresh_sec=a.refresh, private_key=key, retain_days=a.retain_days,
                            prune_sec=a.prune_sec, disconnect_cancel_sec=30.0, record_book_sec=a.record_book_sec)
        engine = Engine(settings, Mode.LIVE, endpoints=sb.endpoints())
        t0 = time.monotonic()
        run = asyncio.create_task(engine.run(max_seconds=a.minutes * 60))
        while not run.done():
            await asyncio.wait({run}, timeout=a.sample_sec)
            ex = getattr(engine, "_exchange", None)
            counts = ex.memory_counts() if ex is not None and hasattr(ex, "memory_counts") else {}
            samples.append(((time.monotonic() - t0) / 60, proc.memory_info().rss / 2**20, db_bytes(db) / 2**20, counts))
            m, rss, size, c = samples[-1]
            print(f"{m:6.1f} min  rss {rss:7.1f} MB  db {size:7.2f} MB  live state {c}", flush=True)
        run.result()
        b = Broker(sb.endpoints().clob_url, 137, key)
        try:
            await b.derive_creds()
            orphans = len(await b.open_orders())
        finally:
            await b.aclose()
    after = [s for s in samples if s[0] >= a.warmup_min] or samples[len(samples) // 3:]
    rss_growth = after[-1][1] - after[0][1] if after else float("nan")
    kicked = [s for s in samples if s[0] * 60 >= a.retain_days * 86400 + 2 * a.prune_sec]
    db_growth = kicked[-1][2] - kicked[0][2] if len(kicked) >= 2 else float("nan")
    print(f"\nsoak: {a.minutes:g} min, {a.markets} markets, refresh {a.refresh:g}s, retention "
          f"{a.retain_days * 86400:.0f}s pruned every {a.prune_sec:g}s, sandbox speed 1")
    print(f"soak: rss_growth_after_{a.warmup_min:g}min={rss_growth:.1f}MB db_growth_after_retention={db_growth:.2f}MB "
          f"(db {kicked[0][2] if kicked else float('nan'):.2f} -> {samples[-1][2]:.2f} MB) orphans={orphans} "
          f"peak_rss={max(s[1] for s in samples):.1f}MB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--refresh", type=float, default=3.0)
    ap.add_argument("--retain-days", type=float, default=0.003)
    ap.add_argument("--prune-sec", type=float, default=30.0)
    ap.add_argument("--record-book-sec", type=float, default=5.0)
    ap.add_argument("--sample-sec", type=float, default=60.0)
    ap.add_argument("--warmup-min", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=7)
    asyncio.run(main(ap.parse_args()))
