"""Issue 17 (DB/lease half): how fast the engine stops quoting and cancels under DB faults.

Paper engine on the embedded loopback sandbox, tmp SQLite, lease TTL 3 s (the test settings):
- lock: another connection holds BEGIN EXCLUSIVE for TTL + 1.5 s. Figures: lock -> halt
  (quoting stopped), lock -> cancel done, as a fraction of the TTL (the baseline: the cancel
  must finish before the lease can expire, ratio < 1), and orders resting at expiry (must be 0).
- full disk: `PRAGMA max_page_count` = the file's current size on every connection. Figures:
  disk full -> halt, rows retained by the writer, and fills lost after space returns (must be 0).
Median of --runs runs (default 3). Run: `python bench/bench_faults_core.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from pmm_widgets.config import Settings
from pmm_widgets.engine import Engine
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade

FAST = dict(venue="sandbox", quote_refresh_sec=0.2, dashboard_refresh_sec=0.2, sandbox_speed=15, sandbox_markets=20,
            universe_size=6, lease_ttl_sec=3, writer_flush_sec=0.2, paper_fill_intensity=120)


async def until(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.02)
    return bool(pred())


def scalar(db: sa.Engine, sql: str) -> int:
    with db.connect() as c:
        return int(c.execute(sa.text(sql)).scalar() or 0)


async def lock_run(tmp: Path) -> dict[str, float]:
    url = f"sqlite:///{tmp / 'lock.db'}"
    upgrade(url)
    s = Settings(_env_file=None, db_url=url, **FAST)
    eng = Engine(s)
    cancelled: list[float] = []
    eng.events.subscribe(lambda ev: cancelled.append(ev.ts) if ev.kind == "lease" and "orders cancelled" in ev.message
                         else None)
    eng.start()
    await eng.wait_role()
    await until(lambda: eng.state.totals.open_orders > 0 and eng.state.tick >= 3, 20)
    locker = sqlite3.connect(tmp / "lock.db", isolation_level=None, timeout=10)
    locker.execute("BEGIN EXCLUSIVE")
    t0 = time.time()
    await until(lambda: eng.state.halted is not None, s.lease_ttl_sec)
    t_halt = time.time() - t0
    await asyncio.sleep(s.lease_ttl_sec + 1.5 - (time.time() - t0))
    locker.execute("ROLLBACK")
    locker.close()
    await eng.stop()
    db = make_engine(url)
    resting = scalar(db, f"SELECT COUNT(*) FROM orders WHERE status != 'REJECTED' AND created_ts <= {t0 + 3} "
                         f"AND (status NOT IN ('CANCELED','FILLED') OR updated_ts > {t0 + 3})")
    db.dispose()
    done = (cancelled[0] - t0) if cancelled else float("nan")
    return {"halt": t_halt, "cancel": done, "ratio": done / s.lease_ttl_sec, "resting_at_expiry": resting}


async def disk_run(tmp: Path) -> dict[str, float]:
    path = tmp / "full.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    cap = {"pages": 0}

    def on_begin(conn):
        if conn.engine.url.database == str(path):
            conn.exec_driver_sql(f"PRAGMA max_page_count={cap['pages'] or 1073741823}")

    event.listen(sa.engine.Engine, "begin", on_begin)
    try:
        eng = Engine(Settings(_env_file=None, db_url=url, **FAST))
        eng.start()
        await eng.wait_role()
        db = make_engine(url)
        await until(lambda: scalar(db, "SELECT COUNT(*) FROM trades") > 0, 30)
        with sqlite3.connect(path) as c:
            cap["pages"] = c.execute("PRAGMA page_count").fetchone()[0]
        t0 = time.time()
        await until(lambda: eng.state.halted is not None, 15)
        t_halt = time.time() - t0
        await asyncio.sleep(2.0)
        retained = eng.owner.store.writer.stats().pending
        cap["pages"] = 0
        await until(lambda: eng.state.halted is None, 15)
        await asyncio.sleep(1.0)
        await eng.stop()
        lost = eng.state.totals.fills - scalar(db, "SELECT COUNT(*) FROM trades")
        db.dispose()
    finally:
        event.remove(sa.engine.Engine, "begin", on_begin)
    return {"halt": t_halt, "retained": retained, "fills": eng.state.totals.fills, "lost": lost}


def med(rows: list[dict[str, float]], k: str) -> float:
    return statistics.median(r[k] for r in rows)


async def main(runs: int) -> None:
    locks, disks = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            locks.append(await lock_run(Path(d)))
        with tempfile.TemporaryDirectory() as d:
            disks.append(await disk_run(Path(d)))
    each = ", ".join(format(r["cancel"], ".2f") for r in locks)
    print(f"lock (TTL 3 s, {runs} runs): lock->halt {med(locks, 'halt'):.2f} s, lock->cancel done "
          f"{med(locks, 'cancel'):.2f} s = {med(locks, 'ratio'):.2f} x TTL "
          f"(runs {each}), orders resting at expiry "
          f"{max(r['resting_at_expiry'] for r in locks):.0f}")
    print(f"full disk ({runs} runs): disk full->halt {med(disks, 'halt'):.2f} s, rows retained after 2 s "
          f"{med(disks, 'retained'):.0f}, fills {med(disks, 'fills'):.0f}, fills lost "
          f"{max(r['lost'] for r in disks):.0f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    asyncio.run(main(ap.parse_args().runs))
