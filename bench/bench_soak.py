"""Soak: the live engine on a sandbox process for a long run: RSS, DB size, live state, orphans.

The sandbox runs in its own process (`python -m pmm_widgets.sandbox`); the real engine (mode
LIVE, a throwaway wallet, a fresh SQLite file) quotes `--markets` markets for `--minutes` with a
short retention (`PMM_RETAIN_DAYS=--retain-days`, pruned every `--prune-sec`). Every
`--sample-sec` the bench records the process RSS, the DB size (file + WAL) and the live-state
sizes (`LiveExchange.memory_counts()`). At the end (the engine stops, which cancels its orders)
the venue is asked for our open orders: orphans must be 0.

Printed: the samples (the RSS curve, with the DB's rows and bytes per table), RSS growth after the
warm-up (`--warmup-min`, 10 by the issue), DB size growth once retention has kicked in, the growth
of each table over that span (rows/min and KB/min, table + its indexes, from SQLite's dbstat; the
freelist and the WAL file apart), orders rows written per minute, orphans. Keep the sandbox at speed 1: the
retention cutoff is wall time and the sandbox stamps public trades with its simulated clock,
which runs `speed` times faster (speed 10 would stamp trades hours in the future, never pruned
within the run).

Usage: python bench/bench_soak.py [--minutes 120] [--markets 50] [--retain-days 0.003] [--prune-sec 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from eth_account import Account

sys.path.insert(0, str(Path(__file__).parent))
from bench_live_cycle import sandbox_process

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.core import Engine
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.repo import table_counts
from pmm_widgets.store.retention import free_bytes, table_sizes
from pmm_widgets.venue.broker import Broker


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def table_stats(path: Path) -> dict[str, tuple[int, int]]:
    """`read_table_stats` in a child process, so that reading the DB never shows in the RSS
    measured here (in-process it added ~4 MB at the first call, then ~0.05 MB a call)."""
    out = subprocess.run([sys.executable, __file__, "--table-stats", str(path)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    return {k: (int(v[0]), int(v[1])) for k, v in json.loads(out).items()}


def read_table_stats(path: Path) -> dict[str, tuple[int, int]]:
    """(rows, bytes incl. indexes) per table, plus "(free)" (freelist pages) and "(wal)" (WAL file),
    read over a separate short-lived connection (`pmm db status` uses the same functions)."""
    eng = make_engine(f"sqlite:///{path}")
    try:
        counts, sizes, free = table_counts(eng), table_sizes(eng), free_bytes(eng) or 0
    finally:
        eng.dispose()
    wal = Path(f"{path}-wal")
    out = {n: (counts.get(n, 0), int(sizes.get(n) or 0)) for n in counts}
    out["(free)"] = (0, free)
    out["(wal)"] = (0, wal.stat().st_size if wal.exists() else 0)
    return out


def live_exchange(engine: Engine) -> object | None:
    """The engine's exchange while it owns its runtime (None before start-up and after the stop)."""
    try:
        return engine.runtime.exchange
    except (AttributeError, RuntimeError):
        return None


async def main(a: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    proc = psutil.Process(os.getpid())
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    samples: list[tuple[float, float, float, dict[str, int], dict[str, tuple[int, int]]]] = []
    async with sandbox_process(max(150, 3 * a.markets), a.seed, 1.0) as sb:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "soak.db"
            settings = Settings(_env_file=None, venue="polymarket", db_url=f"sqlite:///{db}", universe_size=a.markets,
                                quote_refresh_sec=a.refresh, private_key=key, retain_days=a.retain_days,
                                prune_sec=a.prune_sec, disconnect_cancel_sec=30.0, record_book_sec=a.record_book_sec)
            engine = Engine(settings, Mode.LIVE, endpoints=sb.endpoints())
            t0 = time.monotonic()
            run = asyncio.create_task(engine.run(max_seconds=a.minutes * 60))
            while not run.done():
                await asyncio.wait({run}, timeout=a.sample_sec)
                ex = live_exchange(engine)
                counts = ex.memory_counts() if ex is not None and hasattr(ex, "memory_counts") else {}
                tables = await asyncio.to_thread(table_stats, db) if db.exists() else {}
                samples.append(((time.monotonic() - t0) / 60, proc.memory_info().rss / 2**20, db_bytes(db) / 2**20, counts,
                                tables))
                m, rss, size, c, _ = samples[-1]
                big = sorted(((b, n, r) for n, (r, b) in tables.items() if b >= 64 * 1024), reverse=True)
                shown = " ".join(f"{n}={r}r/{b / 2**20:.2f}MB" for b, n, r in big)
                print(f"{m:6.1f} min  rss {rss:7.1f} MB  db {size:7.2f} MB  live state {c}  tables: {shown}", flush=True)
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
    if len(kicked) >= 2:
        first, last = kicked[0], kicked[-1]
        span = last[0] - first[0]
        print(f"\nper-table growth after retention kicked in ({first[0]:.1f} -> {last[0]:.1f} min):")
        names = sorted(set(first[4]) | set(last[4]),
                       key=lambda n: -(last[4].get(n, (0, 0))[1] - first[4].get(n, (0, 0))[1]))
        for n in names:
            (r0, b0), (r1, b1) = first[4].get(n, (0, 0)), last[4].get(n, (0, 0))
            if (r0, b0) != (r1, b1):
                print(f"  {n:<18} rows {r0:>8} -> {r1:>8} ({(r1 - r0) / span:+8.1f}/min)  "
                      f"{b0 / 1024:9.0f} -> {b1 / 1024:9.0f} KB ({(b1 - b0) / 1024 / span:+7.1f} KB/min)")
        o0, o1 = first[4].get("orders", (0, 0)), last[4].get("orders", (0, 0))
        if o1[0] > o0[0]:
            print(f"soak: orders_rows_per_min={(o1[0] - o0[0]) / span:.1f} bytes_per_order_row="
                  f"{(o1[1] - o0[1]) / (o1[0] - o0[0]):.0f}")
    print(f"\nsoak: {a.minutes:g} min, {a.markets} markets, refresh {a.refresh:g}s, retention "
          f"{a.retain_days * 86400:.0f}s pruned every {a.prune_sec:g}s, sandbox speed 1")
    print(f"soak: rss_growth_after_{a.warmup_min:g}min={rss_growth:.1f}MB db_growth_after_retention={db_growth:.2f}MB "
          f"(db {kicked[0][2] if kicked else float('nan'):.2f} -> {samples[-1][2]:.2f} MB) orphans={orphans} "
          f"peak_rss={max(s[1] for s in samples):.1f}MB")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table-stats":
        print(json.dumps(read_table_stats(Path(sys.argv[2]))))
        sys.exit(0)
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
