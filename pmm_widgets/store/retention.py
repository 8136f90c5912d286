"""Retention: bounded storage for long runs, and table sizes for `pmm db status`.

Why: at 50 markets the engine writes ~1.6 MB/min (book snapshots, public trades, events, PnL
rows), ~2.4 GB a day with nothing ever removed. The high-volume, derived tables
(`RETAINED_TABLES`) keep `PMM_RETAIN_DAYS` days (default 7; 0 keeps everything); `trades` and
`orders` are the ledger and are never pruned, nor are markets, calibration or settlements.

How: rows are deleted oldest first in small batches (`DELETE ... WHERE id IN (SELECT id ... WHERE
ts < cutoff ORDER BY id LIMIT n)`), one short transaction each, with a pause between batches, so
the batched writer and readers are never blocked for long. The subquery walks the integer primary
key from the oldest row and stops after n matches, so no index on `ts` is needed (ids grow with
time: rows are appended by one writer). The engine runs `prune` in a worker thread (never on the
event loop) every `PMM_PRUNE_SEC`; `pmm db prune` runs it once. SQLite reuses the freed pages,
so the file stops growing once retention has kicked in (it does not shrink without VACUUM).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, Table, delete, func, inspect, select, text

from .schema import metadata

RETAINED_TABLES = ("book_snapshots", "public_trades", "events", "pnl")
LEDGER_TABLES = ("trades", "orders")  # kept forever
DEFAULT_BATCH = 2_000


@dataclass
class PruneReport:
    cutoff: float
    deleted: dict[str, int]
    batches: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def prune(engine: Engine, retain_days: float, *, now: float | None = None, batch: int = DEFAULT_BATCH,
          pause_sec: float = 0.005, max_batches: int | None = None,
          stop: Callable[[], bool] | None = None) -> PruneReport:
    """Delete rows older than `retain_days` from `RETAINED_TABLES`, `batch` rows per transaction.
    `retain_days <= 0` deletes nothing. `max_batches` bounds one call (the rest waits for the
    next); `stop()` true ends it early (engine shutdown)."""
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    cutoff = now - retain_days * 86_400.0
    deleted = {t: 0 for t in RETAINED_TABLES}
    batches = 0
    if retain_days <= 0:
        return PruneReport(cutoff, deleted, 0, 0.0)
    present = set(inspect(engine).get_table_names())
    for name in RETAINED_TABLES:
        if name not in present:
            continue
        t: Table = metadata.tables[name]
        while max_batches is None or batches < max_batches:
            if stop is not None and stop():
                return PruneReport(cutoff, deleted, batches, time.perf_counter() - t0)
            ids = select(t.c.id).where(t.c.ts < cutoff).order_by(t.c.id).limit(batch).scalar_subquery()
            with engine.begin() as c:
                n = c.execute(delete(t).where(t.c.id.in_(ids))).rowcount or 0
            batches += 1
            deleted[name] += n
            if n < batch:
                break
            if pause_sec > 0:
                time.sleep(pause_sec)
    return PruneReport(cutoff, deleted, batches, time.perf_counter() - t0)


def table_sizes(engine: Engine) -> dict[str, int | None]:
    """Bytes on disk per table including its indexes (SQLite: the `dbstat` table when the build
    has it; PostgreSQL: pg_total_relation_size); None where the database cannot tell."""
    names = [n for n in metadata.tables if n in set(inspect(engine).get_table_names())]
    out: dict[str, int | None] = {n: None for n in names}
    dialect = engine.dialect.name
    try:
        with engine.connect() as c:
            if dialect == "sqlite":
                idx: dict[str, str] = {}
                for row in c.execute(text("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table','index')")):
                    idx[str(row[0])] = str(row[1])
                sizes: dict[str, int] = {}
                for name, size in c.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")):
                    owner = idx.get(str(name))
                    if owner in out:
                        sizes[owner] = sizes.get(owner, 0) + int(size or 0)
                out.update({n: sizes.get(n, 0) for n in names})
            elif dialect == "postgresql":
                for n in names:
                    out[n] = int(c.execute(text("SELECT pg_total_relation_size(:t)"), {"t": n}).scalar() or 0)
    except Exception:  # noqa: BLE001, S110 - sizes are informative: a build without dbstat shows "?"
        pass
    return out


def database_bytes(engine: Engine) -> int | None:
    """The whole database on disk (SQLite: page_count x page_size; PostgreSQL: pg_database_size)."""
    try:
        with engine.connect() as c:
            if engine.dialect.name == "sqlite":
                pc = c.execute(text("PRAGMA page_count")).scalar() or 0
                ps = c.execute(text("PRAGMA page_size")).scalar() or 0
                return int(pc) * int(ps)
            if engine.dialect.name == "postgresql":
                return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
    except Exception:  # noqa: BLE001
        return None
    return None


def oldest_ts(engine: Engine, name: str) -> float | None:
    t = metadata.tables[name]
    with engine.connect() as c:
        v = c.execute(select(func.min(t.c.ts))).scalar()
    return None if v is None else float(v)
