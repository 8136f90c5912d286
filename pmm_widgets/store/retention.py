"""Retention: bounded storage for long runs, and table sizes for `pmm db status`.

Why: at 50 markets the engine writes ~1.6 MB/min (book snapshots, public trades, events, PnL
rows, markouts, reward estimates), ~2.4 GB a day with nothing ever removed. The high-volume,
derived tables (`RETAINED_TABLES`) keep `PMM_RETAIN_DAYS` days (default 7; 0 keeps everything);
`trades` and `orders` are the ledger and are never pruned, nor are calibration, settlements,
commands, parameter changes or replay results. What old rows the readers still need stays:
- `markets` (a snapshot of ~N rows with the Gamma payload, ~3 KB a row, written each time the
  universe's membership changes: with a churning top-N that is every refresh): the newest row of
  every condition id is kept whatever its age (the restore of issue 11, the dashboard and
  `pmm report` map tokens and questions through it; the newest snapshot stays whole), older
  snapshots lose the rows a newer snapshot repeats;
- `pnl`: the newest row of each (market, mode) is kept whatever its age (`pmm report` and the
  economics decomposition read the latest PnL row per market);
- `reward_estimates`: old rows are rolled up, not dropped: one row per (market, mode, venue day)
  carries the exact sum of their `usd` (`pmm report` and the restore of issue 11 sum it), its per-sample
  columns NULL;
- rows with a `run_id` (written by `pmm replay`/`pmm sweep`, stamped with the replayed time) are
  never pruned: they belong to their replay run, not to the live clock;
- `markouts` keep the window like the rest: `pmm report`'s markout means cover the last
  `PMM_RETAIN_DAYS` days (the fills themselves stay in `trades`).

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
from decimal import Decimal

from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, delete, func, inspect, select, text, update

from .schema import metadata

RETAINED_TABLES = ("book_snapshots", "public_trades", "events", "pnl", "markouts", "reward_estimates", "markets")
LEDGER_TABLES = ("trades", "orders")  # kept forever
KEEP_LATEST = {"pnl": ("market", "mode"), "markets": ("condition_id",)}  # the newest row per group stays
TIME_COLUMN = {"markets": "snapshot_ts"}  # the age of a row (default: `ts`)
# old rows summed into one per group (per venue day too: a day the venue paid replaces its estimate)
ROLLUP = {"reward_estimates": (("market", "mode", "venue_date"), "usd")}
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
    """Delete rows older than `retain_days` from `RETAINED_TABLES`, `batch` rows per transaction
    (`KEEP_LATEST`, `ROLLUP` and replay rows: see the module doc). `retain_days <= 0` deletes
    nothing. `max_batches` bounds one call (the rest waits for the next); `stop()` true ends it
    early (engine shutdown)."""
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    cutoff = now - retain_days * 86_400.0
    deleted = {t: 0 for t in RETAINED_TABLES}
    batches = 0

    def report() -> PruneReport:
        return PruneReport(cutoff, deleted, batches, time.perf_counter() - t0)

    if retain_days <= 0:
        return PruneReport(cutoff, deleted, 0, 0.0)
    present = set(inspect(engine).get_table_names())
    for name in RETAINED_TABLES:
        if name not in present:
            continue
        t: Table = metadata.tables[name]
        old = _old_rows(engine, t, cutoff)
        while max_batches is None or batches < max_batches:
            if stop is not None and stop():
                return report()
            with engine.begin() as c:
                n = _rollup_batch(c, t, old, batch) if name in ROLLUP else _delete_batch(c, t, old, batch)
            batches += 1
            deleted[name] += n
            if n < batch:
                break
            if pause_sec > 0:
                time.sleep(pause_sec)
    return report()


def _old_rows(engine: Engine, t: Table, cutoff: float) -> ColumnElement[bool]:
    """The rows of `t` retention may remove: older than the cutoff, not a replay run's, and not
    the newest of their `KEEP_LATEST` group (those ids read once per call: the table is bounded)."""
    cond: ColumnElement[bool] = t.c[TIME_COLUMN.get(t.name, "ts")] < cutoff
    if "run_id" in t.c:
        cond = and_(cond, t.c.run_id.is_(None))
    group = KEEP_LATEST.get(t.name)
    if group:
        with engine.connect() as c:
            keep = [int(i) for i in c.execute(select(func.max(t.c.id)).group_by(*(t.c[g] for g in group))).scalars()
                    if i is not None]
        if keep:
            cond = and_(cond, t.c.id.not_in(keep))
    return cond


def _delete_batch(c: Connection, t: Table, old: ColumnElement[bool], batch: int) -> int:
    """Delete up to `batch` old rows, oldest first (the id-ordered subquery needs no ts index)."""
    ids = select(t.c.id).where(old).order_by(t.c.id).limit(batch).scalar_subquery()
    return int(c.execute(delete(t).where(t.c.id.in_(ids))).rowcount or 0)


def _rollup_batch(c: Connection, t: Table, old: ColumnElement[bool], batch: int) -> int:
    """Fold up to `batch` old rows into the oldest row of their group: its `usd` becomes the exact
    (Decimal) sum, its `ts` the newest of them, its per-sample columns NULL; the others go. A group
    already down to one old row is left alone. Returns the rows removed."""
    keys, value = ROLLUP[t.name]
    kcols = [t.c[k] for k in keys]
    groups = c.execute(select(*kcols).where(old).group_by(*kcols).having(func.count() > 1)).all()
    removed = 0
    for g in groups:
        if removed >= batch:
            break
        same = and_(old, *((col.is_(None) if v is None else col == v) for col, v in zip(kcols, g)))
        rows = c.execute(select(t.c.id, t.c[value], t.c.ts).where(same).order_by(t.c.id)
                         .limit(batch - removed + 1)).all()
        if len(rows) < 2:
            continue
        total = sum((Decimal(str(r[1])) for r in rows if r[1] is not None), Decimal(0))
        sample = {col.name: None for col in t.c if col.name not in ("id", "ts", value, *keys)}
        c.execute(update(t).where(t.c.id == rows[0][0]).values(**sample, **{value: total},
                                                                 ts=max(float(r[2]) for r in rows)))
        ids = [r[0] for r in rows[1:]]
        c.execute(delete(t).where(t.c.id.in_(ids)))
        removed += len(ids)
    return removed


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


def free_bytes(engine: Engine) -> int | None:
    """SQLite: the bytes of the freelist (pages retention freed, reused before the file grows);
    None elsewhere."""
    if engine.dialect.name != "sqlite":
        return None
    try:
        with engine.connect() as c:
            free = c.execute(text("PRAGMA freelist_count")).scalar() or 0
            page = c.execute(text("PRAGMA page_size")).scalar() or 0
            return int(free) * int(page)
    except Exception:  # noqa: BLE001
        return None


def oldest_ts(engine: Engine, name: str) -> float | None:
    t = metadata.tables[name]
    with engine.connect() as c:
        v = c.execute(select(func.min(t.c.ts))).scalar()
    return None if v is None else float(v)
