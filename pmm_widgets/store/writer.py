"""BatchWriter: the only `Sink` that touches the database.

Why a worker thread and batches: producers (quote loop, market-data recorder, exchanges) run on
the asyncio event loop and must never wait for disk or network. `insert`/`upsert`/`update` only
append to a deque (a few hundred nanoseconds, thread-safe); a worker thread wakes every
`flush_sec` and writes everything queued in ONE transaction, grouping rows into executemany
statements. A crash therefore loses at most the rows queued since the last commit (<= flush_sec).

Ordering: operations on the same table keep their order (an order's upsert before its update);
operations on different tables are independent (the schema has no foreign keys between them).

Failure policy (a writer fault is never a dropped row):
- A *writer fault* is anything about the database rather than the row: "database or disk is
  full", "database is locked" past busy_timeout, I/O errors, a read-only or unreachable DB, a
  server gone away, or the SQLite file deleted/replaced under us (`DbIdentity`, checked before
  every write so nothing is committed into a deleted inode). The batch goes back to the front of
  the queue, order kept, and is retried every flush. Rows are kept up to `max_pending`; past that
  bound (or after `max_lag_sec` of backlog once a write failed, or when one write has not
  returned for `max_lag_sec`: a DB call hung without an error, a server behind a dead network
  path; or on a storage fault such as a full disk, or when the DB file is gone) `stats().fault`
  says why, and the engine's risk stage pauses quoting and cancels. Only past the hard cap
  `MAX_PENDING` are rows shed, `book_snapshots` first (market data the venue can serve again),
  counted and logged.
- A *row fault* (constraint or type error: IntegrityError, DataError, a value the driver cannot
  bind) is the row's own: the batch is retried once, then written op by op, each in its own
  transaction, and only the failing op is quarantined (kept in `quarantine`, counted, logged).
  A writer fault met on the way stops the one-by-one pass and requeues the rest.
- At close, ops still unwritten (the DB never came back) are spilled as JSON lines next to the
  SQLite file (`<db>.unwritten-<ts>.jsonl`, `-1`, `-2`.. added when another writer took that name)
  and the path is logged, rather than lost silently. A close with a timeout (the engine's stop has
  a budget) whose last write the DB has not answered by then spills at once that write's rows
  (marked `in_flight`: the DB may still commit them) and what is queued behind it, and leaves the
  write to the worker, which logs how it ended.
"""

from __future__ import annotations

import atexit
import collections
import copy
import decimal
import enum
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    select,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from pmm_widgets.store.db import (
    DbIdentity,
    json_dumps,
    make_engine,
    safe_url,
    sqlite_file,
)
from pmm_widgets.store.schema import metadata

log = logging.getLogger(__name__)

_INSERT, _UPSERT, _UPDATE = "insert", "upsert", "update"
# Rows per executemany call inside one flush transaction, with a short sleep between calls, and
# batches freed piecewise. Why: one 100k-row executemany, or freeing 100k rows at once, keeps the
# GIL long enough to stall the event loop ~45-57 ms (bench/bench_writer.py); in pieces the worst
# stall measured drops to ~9-16 ms on a loaded 2-core machine, for ~1% of flush time.
EXECUTEMANY_CHUNK = 500
GIL_YIELD_SEC = 0.0005
RELEASE_CHUNK = 5000
# While the database cannot take rows they wait in memory. Past `max_pending` (default below) the
# writer reports a fault (the engine stops quoting, so few new rows come); past the hard cap
# MAX_PENDING the oldest are shed, book_snapshots first.
MAX_PENDING = 1_000_000
DEFAULT_MAX_PENDING = 200_000
DEFAULT_MAX_LAG_SEC = 30.0
SHED_FIRST = ("book_snapshots", "public_trades")
QUARANTINE_KEEP = 1_000
# driver messages that say the storage itself is failing: a fault at once, not after max_lag_sec
_STORAGE_FAULTS = ("disk is full", "no space left", "disk i/o error", "readonly database", "read-only",
                   "unable to open database", "could not extend file", "disk full", "file is not a database")


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of the writer's health, for dashboards and tests.

    `lag_sec` is the age of the oldest operation still queued (0 when the queue is empty);
    `errors` counts failed write attempts (whole batches and single rows); `dropped` counts
    operations given up on after the one-by-one fallback.
    """

    rows_written: int
    pending: int
    last_flush_ts: float
    lag_sec: float
    errors: int
    dropped: int = 0
    flushes: int = 0
    last_error: str | None = None  # the last write error, one line (None once writes succeed again)
    fault: str | None = None  # why the writer is unhealthy (the engine pauses quoting), else None
    quarantined: int = 0  # bad rows (constraint/type errors) kept aside, never retried
    shed: int = 0  # rows given up past the hard cap MAX_PENDING

    def line(self) -> str:
        """The status-line phrase: `db lag 0.2s` plus queued rows / fault when there are any."""
        out = f"db lag {self.lag_sec:.1f}s"
        if self.pending > 1000 or self.fault or self.last_error:
            out += f" queued {self.pending}"
        if self.fault:
            out += f" FAULT: {self.fault}"
        elif self.last_error:
            out += f" (retrying: {self.last_error})"
        return out


@dataclass(slots=True)
class _Op:
    kind: str
    table: str
    row: dict[str, Any]  # insert/upsert: the row; update: the new values
    key: tuple[str, ...] = ()  # upsert: conflict columns; update: where columns
    where: dict[str, Any] | None = None
    ts: float = 0.0


class BatchWriter:
    """Implements `Sink`. Thread-safe; producers never block; one transaction per flush."""

    def __init__(self, db_url: str, flush_sec: float = 0.5, *, engine: Engine | None = None,
                 max_pending: int = DEFAULT_MAX_PENDING, max_lag_sec: float = DEFAULT_MAX_LAG_SEC) -> None:
        if not 0 < flush_sec <= 1.0:
            raise ValueError("flush_sec must be in (0, 1] so that a crash loses at most one second of rows")
        self.max_pending = max_pending
        self.max_lag_sec = max_lag_sec
        self.identity = DbIdentity(db_url)
        self.quarantine: collections.deque[tuple[_Op, str]] = collections.deque(maxlen=QUARANTINE_KEEP)
        self._quarantined = 0
        self._shed = 0
        self._last_error: str | None = None
        self._storage_fault: str | None = None
        self.spill_path: str | None = None
        self.db_url = db_url
        self.flush_sec = flush_sec
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(db_url)
        self._dialect = self.engine.dialect.name
        # statements by shape, built once: an ON CONFLICT insert built per flush made ~150 objects of
        # cyclic garbage (its `excluded` alias), which the GC collected in pauses of the event loop
        self._stmts: dict[tuple[object, ...], Any] = {}
        self._queue: collections.deque[_Op] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._io_lock = threading.Lock()  # one drain at a time: the worker's or a caller's flush()
        # held for O(1) steps only: a batch moves between the queue and in flight in one step, so that
        # stats() never misses it (pending 0 while it is taken) nor counts it twice (while it goes back)
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rows_written = 0
        self._errors = 0
        self._dropped = 0
        self._flushes = 0
        self._last_flush_ts = 0.0
        self._closed = False
        self._dropped_after_close = 0
        self._outage_since: float | None = None
        self._in_flight: tuple[int, float] = (0, 0.0)  # (ops being written, oldest one's submit ts)
        # the write in flight (a close that cannot wait for it saves it too); never mutated while set
        self._writing: Sequence[_Op] = ()
        self._write_t0 = 0.0  # when the write in flight began or last made progress (a DB call may hang)
        # the hand-over at a close with a timeout: the worker's end, or the closer leaving first
        self._close_lock = threading.Lock()
        self._worker_done = False
        self._left_to_worker = False  # the closer left at its timeout: the worker says how its write ended
        self._in_flight_spilled = False  # ... and that write's ops are in the spill file already

    # ----------------------------------------------------------------- Sink (producer side)
    # Rows are snapshotted at call time (a copy; JSON values deep-copied) so a producer may keep
    # mutating its dicts, e.g. a trade's raw_json as markouts arrive, while the worker writes.
    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        self._put(_Op(_INSERT, table, _snapshot(table, row), ts=time.time()))

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> None:
        if not key:
            raise ValueError("upsert needs at least one key column")
        self._put(_Op(_UPSERT, table, _snapshot(table, row), tuple(key), ts=time.time()))

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        if not where:
            raise ValueError("update needs a where clause (refusing to update every row)")
        w = dict(where)
        self._put(_Op(_UPDATE, table, _snapshot(table, values), tuple(sorted(w)), w, ts=time.time()))

    def _put(self, op: _Op) -> None:
        if self._closed:
            # A late producer during shutdown must not crash the caller: count it, say it once.
            self._dropped += 1
            if self._dropped_after_close == 0:
                log.warning("batch writer: closed, dropping %s into %s (and any later ones)", op.kind, op.table)
            self._dropped_after_close += 1
            return
        with self._count_lock:  # not swapped for a new deque between reading self._queue and the append
            self._queue.append(op)

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> BatchWriter:
        """Start the worker thread (idempotent). Returns self for chaining."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pmm-batch-writer", daemon=True)
            self._thread.start()
            atexit.register(self.close)
        return self

    def flush(self) -> None:
        """Write everything queued so far, blocking the caller until it is committed.

        If the database is unavailable the rows stay queued (`stats().pending > 0`) instead.
        For tests and shutdown paths; on the event loop use `await asyncio.to_thread(w.flush)`.
        """
        self._drain()

    def close(self, timeout: float | None = None) -> int:
        """Flush, stop the worker and release the engine's connections (idempotent); what the DB
        did not take is spilled (`spill_path`). The last flush is the worker's.

        `timeout` (None: until done): a close that must end in time (the engine's stop). When the
        worker's write has not returned by then (a DB that hangs, or holds a lock), its rows and
        those queued behind it are spilled at once, the write's marked `in_flight` (the DB may
        still commit them), and the write is left to the worker, which logs whether it was
        committed or refused (`_after_late_write`). Returns the rows of that write (0: none was
        under way: everything was written or spilled)."""
        if self._closed:
            return 0
        self._closed = True
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None:
            t.join(timeout)
            with self._close_lock:
                if not self._worker_done:  # its write has not returned: left to it
                    self._left_to_worker = True
                    with self._count_lock:  # (one step: a write that fails meanwhile is in one of the two)
                        queued, writing = list(self._queue), list(self._writing)
                        self._queue = collections.deque()
                    self._in_flight_spilled = self._spill(queued, writing) and bool(writing)
                    log.error("batch writer: closing after %gs with a write of %d ops the database has not "
                              "answered (%s): left to the worker%s", timeout, len(writing),
                              self._last_error or "no answer yet",
                              f"; saved to {self.spill_path} too (marked in_flight)" if self._in_flight_spilled else "")
                    return len(writing)
            self._thread = None
        else:
            self._drain()
        if self._queue:
            self._spill()
        atexit.unregister(self.close)
        if self._own_engine:
            self.engine.dispose()
        return 0

    def __enter__(self) -> BatchWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> WriterStats:
        """Pending counts queued rows plus the batch being written; lag is the oldest one's age."""
        with self._count_lock:
            in_flight, in_flight_ts = self._in_flight
            write_t0 = self._write_t0
            queued = len(self._queue)
            oldest = in_flight_ts if in_flight else None
            if oldest is None and queued:
                try:
                    oldest = self._queue[0].ts
                except IndexError:  # shed (past MAX_PENDING) between the two reads
                    pass
        pending = queued + in_flight
        now = time.time()
        lag = max(0.0, now - oldest) if oldest is not None else 0.0
        writing = max(0.0, now - write_t0) if in_flight and write_t0 else 0.0
        return WriterStats(
            rows_written=self._rows_written,
            pending=pending,
            last_flush_ts=self._last_flush_ts,
            lag_sec=lag,
            errors=self._errors,
            dropped=self._dropped,
            flushes=self._flushes,
            last_error=self._last_error,
            fault=self._fault(pending, lag, writing),
            quarantined=self._quarantined,
            shed=self._shed,
        )

    def _fault(self, pending: int, lag: float, writing: float = 0.0) -> str | None:
        if self.identity.lost is not None:
            return self.identity.lost
        if self._storage_fault is not None:
            return self._storage_fault
        if pending > self.max_pending:
            return f"{pending} rows queued, over the bound of {self.max_pending} ({self._last_error or 'slow DB'})"
        if lag > self.max_lag_sec and self._last_error is not None:
            return f"rows waiting {lag:.0f}s (> {self.max_lag_sec:g}s): {self._last_error}"
        if writing > self.max_lag_sec:
            return f"a DB write has not returned for {writing:.0f}s (> {self.max_lag_sec:g}s), {pending} rows waiting"
        return None

    # ----------------------------------------------------------------- worker side
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_sec)
            if self._stop.is_set():
                break
            try:
                self._drain()
            except Exception:  # never let the worker die: the next interval retries
                self._errors += 1
                log.exception("batch writer: unexpected error while flushing")
        # closing: the last flush is the worker's, so that a closer with a timeout can leave it
        try:
            if not self._left_to_worker:
                self._drain()
        except Exception:  # what stays queued is spilled (by the closer, or just below)
            self._errors += 1
            log.exception("batch writer: unexpected error in the last flush")
        finally:
            with self._close_lock:
                self._worker_done = True
                late = self._left_to_worker
            if late:
                self._after_late_write()

    def _drain(self) -> None:
        with self._io_lock:
            with self._count_lock:  # queued -> in flight in one step (stats() reads both under the lock)
                if not self._queue:
                    return
                taken, self._queue = self._queue, collections.deque()
                self._in_flight = (len(taken), taken[0].ts)
                # what a close that cannot wait saves (`close`): from the moment it left the queue
                self._writing = taken
            try:
                ops = list(taken)
                with self._count_lock:
                    self._writing = ops
                taken.clear()
                ready = [op for op in (self._normalize(op) for op in ops) if op is not None]
                with self._count_lock:
                    self._in_flight = (len(ready), ready[0].ts) if ready else (0, 0.0)  # the quarantined are done
                    self._writing = ready
                    self._write_t0 = time.time()
                if ready and not self._write(ready):
                    return  # database unavailable: the batch is back in the queue
                self._flushes += 1
                self._last_flush_ts = time.time()
            finally:
                with self._count_lock:
                    self._in_flight = (0, 0.0)
                    self._writing = ()
                    self._write_t0 = 0.0
            del ready
            _release(ops)

    def _write(self, ops: list[_Op]) -> bool:
        """Write ops in one transaction. False: a writer fault; the unwritten ops were requeued."""
        gone = self.identity.check()
        if gone is not None:  # never commit into a deleted/replaced file: keep the rows instead
            self._requeue(ops, gone)
            return False
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    for group in _group(ops):
                        self._execute(conn, group)
                self._rows_written += len(ops)
                self._recovered()
                return True
            except Exception as exc:  # noqa: BLE001 - classified just below
                self._errors += 1
                if not is_row_fault(exc):
                    self._requeue(ops, exc)
                    return False
                log.warning(
                    "batch writer: batch of %d ops to %s failed (attempt %d): %s",
                    len(ops), safe_url(self.engine.url), attempt, _one_line(exc),
                )
        for i, op in enumerate(ops):  # one by one: a single bad row must not lose the batch
            try:
                with self.engine.begin() as conn:
                    self._execute(conn, [op])
                self._rows_written += 1
            except Exception as exc:  # noqa: BLE001 - classified just below
                self._errors += 1
                if not is_row_fault(exc):  # the DB failed, not the row: keep this one and the rest
                    self._requeue(ops[i:], exc)
                    return False
                self._quarantine_op(op, _one_line(exc))
            # this op is done (written or quarantined): what stays in flight is the rest
            self._in_flight = (len(ops) - i - 1, ops[i + 1].ts) if i + 1 < len(ops) else (0, 0.0)
            self._write_t0 = time.time()  # progress: the stuck-write clock starts again
        self._recovered()
        return True

    def _recovered(self) -> None:
        if self._outage_since is not None:
            log.warning("batch writer: %s available again after %.1f s", safe_url(self.engine.url),
                        time.time() - self._outage_since)
            self._outage_since = None
        self._last_error = None
        self._storage_fault = None

    def _quarantine_op(self, op: _Op, why: str) -> None:
        """A truly bad row: kept aside (bounded), counted and logged; never retried."""
        self._dropped += 1
        self._quarantined += 1
        self.quarantine.append((op, why))
        log.error("batch writer: quarantined %s into %s: %s", op.kind, op.table, why)

    def _requeue(self, ops: list[_Op], exc: Exception | str) -> None:
        """Keep the ops for the next flush (front of the queue, order kept); shed past MAX_PENDING."""
        why = exc if isinstance(exc, str) else _one_line(exc)
        self._last_error = why
        if any(p in why.lower() for p in _STORAGE_FAULTS):
            self._storage_fault = why
        with self._count_lock:  # in flight -> queued in one step
            self._queue.extendleft(reversed(ops))
            self._in_flight = (0, 0.0)
            self._writing = ()
        excess = len(self._queue) - MAX_PENDING
        if excess > 0:
            self._shed_oldest(excess)
        if self._outage_since is None:
            self._outage_since = time.time()
            log.error("batch writer: %s cannot take rows (%s); keeping %d ops queued and retrying every %.1f s",
                      safe_url(self.engine.url), why, len(self._queue), self.flush_sec)

    def _shed_oldest(self, n: int) -> None:
        """Past the hard cap: give up the n oldest ops, market data first, counted and logged."""
        keep: list[_Op] = []
        shed = 0
        for first_pass in (True, False):
            while shed < n and self._queue:
                op = self._queue.popleft()
                if first_pass and op.table not in SHED_FIRST:
                    keep.append(op)
                    continue
                shed += 1
            self._queue.extendleft(reversed(keep))
            keep = []
            if shed >= n:
                break
        self._shed += shed
        self._dropped += shed
        log.error("batch writer: queue over %d ops: shed the %d oldest (market data first)", MAX_PENDING, shed)

    def _after_late_write(self) -> None:
        """The worker, once the write a close left to it (`close` with a timeout) has returned:
        committed, or refused (its ops back in the queue). The close saved that write's ops in the
        spill file already, marked `in_flight` (the DB might still commit them): say which it was;
        when that spill could not be made, spill what the DB refused now."""
        with self._count_lock:
            back = list(self._queue)
            self._queue = collections.deque()
        if not self._in_flight_spilled:
            if back:
                self._spill(back)
        elif back:
            log.error("batch writer: the write left at close was refused by the database: its %d ops are in %s "
                      "(marked in_flight), not in the database", len(back), self.spill_path)
        else:
            log.warning("batch writer: the write left at close was committed: the ops marked in_flight in %s are "
                        "in the database too", self.spill_path)
        if self._own_engine:
            self.engine.dispose()

    def _spill(self, queued: list[_Op] | None = None, in_flight: list[_Op] | None = None) -> bool:
        """Closing with rows the DB never took (`queued`; None: the queue, taken from it): write
        them as JSON lines beside the SQLite file; True when saved. `in_flight`: a write the DB
        has not answered (a close that cannot wait for it), saved first, each line marked
        `"in_flight": true`: the DB may still commit them (check before replaying those). A spill
        that fails puts what it took back in the queue."""
        if queued is None:
            with self._count_lock:
                taken, self._queue = self._queue, collections.deque()
            queued = list(taken)
        writing = in_flight or []
        ops = [*writing, *queued]
        if not ops:
            return True
        path = sqlite_file(self.db_url)
        try:
            if path is None:
                raise OSError("not an SQLite file")
            # a new file, never another writer's spill of the same second (mode "x": it must not exist yet)
            stem = f"{path}.unwritten-{int(time.time())}"
            for n in itertools.count():
                target = f"{stem}.jsonl" if n == 0 else f"{stem}-{n}.jsonl"
                try:
                    fh = open(target, "x", encoding="utf-8")
                except FileExistsError:
                    continue
                break
            flagged = len(writing)
            with fh:
                fh.writelines(json_dumps({"kind": op.kind, "table": op.table, "row": op.row, "key": list(op.key),
                                         "where": op.where, "ts": op.ts, **({"in_flight": True} if i < flagged else {})})
                              + "\n" for i, op in enumerate(ops))
            self.spill_path = target
            log.error("batch writer: closing with %d ops the database did not take (%s): saved to %s",
                      len(ops), self._last_error or "unavailable", target)
            return True
        except Exception as exc:  # noqa: BLE001 - the spill is best effort, said in the log
            with self._count_lock:  # (kept: the process may still write them, or say them)
                self._queue.extendleft(reversed(queued))
            log.error("batch writer: closing with %d ops not written (database unavailable; spill failed: %s)",
                      len(ops), exc)
            return False

    def _normalize(self, op: _Op) -> _Op | None:
        """Check column names and convert enums / Decimals to what each column type stores."""
        table = metadata.tables[op.table]
        try:
            op.row = _convert(table, op.row)
            if op.where is not None:
                op.where = _convert(table, op.where)
            missing_key = [k for k in op.key if k not in ((op.where or {}) if op.kind == _UPDATE else op.row)]
            if missing_key:
                raise KeyError(f"key column(s) {missing_key} missing from the row")
        except Exception as exc:  # whatever a producer passed, one bad row only costs itself
            self._errors += 1
            self._quarantine_op(op, f"{type(exc).__name__}: {exc}")
            return None
        return op

    def _execute(self, conn: Connection, ops: list[_Op]) -> None:
        first = ops[0]
        table = metadata.tables[first.table]
        if first.kind == _INSERT:
            cols = _union_columns(op.row for op in ops)
            n = len(cols)  # a row with as many keys as the union has them all: pass it as is
            _executemany(conn, table.insert(),
                         [op.row if len(op.row) == n else {c: op.row.get(c) for c in cols} for op in ops])
        elif first.kind == _UPSERT:
            self._upsert(conn, table, first.key, [op.row for op in ops])
        else:
            vals = sorted(first.row)
            skey = ("update", first.table, first.key, tuple(vals))
            stmt = self._stmts.get(skey)
            if stmt is None:
                stmt = self._keep(skey, table.update()
                                  .where(and_(*(table.c[k] == bindparam(f"w_{k}") for k in first.key)))
                                  .values({c: bindparam(f"v_{c}") for c in vals}))
            params = [
                {**{f"w_{k}": op.where[k] for k in first.key}, **{f"v_{c}": op.row[c] for c in vals}}  # type: ignore[index]
                for op in ops
            ]
            _executemany(conn, stmt, params)

    def _keep(self, key: tuple[object, ...], stmt: Any) -> Any:
        if len(self._stmts) >= 512:  # row shapes are few; a bound all the same
            self._stmts.clear()
        self._stmts[key] = stmt
        return stmt

    def _upsert(self, conn: Connection, table: Table, key: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        # Same key twice in one statement is an error on PostgreSQL; the later row wins anyway.
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            by_key[tuple(row[k] for k in key)] = row
        rows = list(by_key.values())
        cols = list(rows[0])
        # INSERT .. ON CONFLICT checks NOT NULL before the conflict, so a partial row (e.g. only
        # status + updated_ts of a known order) must take the update-else-insert path.
        complete = _required_columns(table) <= set(cols)
        if complete and self._dialect in ("sqlite", "postgresql") and _has_unique(table, key):
            skey = ("upsert", table.name, key, tuple(cols))
            stmt = self._stmts.get(skey)
            if stmt is None:
                ins = (sqlite_dialect.insert if self._dialect == "sqlite" else pg_dialect.insert)(table)
                updates = {c: ins.excluded[c] for c in cols if c not in key}
                stmt = self._keep(skey, ins.on_conflict_do_update(index_elements=list(key), set_=updates)
                                  if updates else ins.on_conflict_do_nothing(index_elements=list(key)))
            _executemany(conn, stmt, rows)
            return
        # Generic fallback (other dialects, or a key without a unique index): update, else insert.
        where = and_(*(table.c[k] == bindparam(f"k_{k}") for k in key))
        for row in rows:
            values = {c: v for c, v in row.items() if c not in key}
            exists = conn.execute(
                select(table.c[key[0]]).where(where).limit(1), {f"k_{k}": row[k] for k in key}
            ).first()
            if exists is None:
                conn.execute(table.insert(), [row])
            elif values:
                conn.execute(
                    table.update().where(and_(*(table.c[k] == row[k] for k in key))).values(values)
                )


def _executemany(conn: Connection, stmt: Any, params: list[dict[str, Any]]) -> None:
    for i in range(0, len(params), EXECUTEMANY_CHUNK):
        if i:
            time.sleep(GIL_YIELD_SEC)  # hand the GIL to the event loop between pieces
        conn.execute(stmt, params[i:i + EXECUTEMANY_CHUNK])


_JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(c.name for c in t.columns if isinstance(c.type, JSON)) for name, t in metadata.tables.items()
}


def _snapshot(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        json_cols = _JSON_COLUMNS[table]
    except KeyError:
        raise KeyError(f"unknown table {table!r}") from None
    out = dict(row)
    for col in json_cols:
        value = out.get(col)
        if isinstance(value, (dict, list)):
            out[col] = copy.deepcopy(value)
    return out


def _release(ops: list[_Op]) -> None:
    """Free a large batch piecewise: deallocating 100k rows at once holds the GIL ~40 ms."""
    while len(ops) > RELEASE_CHUNK:
        del ops[-RELEASE_CHUNK:]
        time.sleep(GIL_YIELD_SEC)
    ops.clear()


def _group(ops: Iterable[_Op]) -> list[list[_Op]]:
    """Split ops into executemany groups, keeping the order of ops on the same table.

    A group holds ops of one kind and shape on one table. An op joins its table's open group when
    the shape matches; otherwise it opens a new group, which seals the previous one for that table.
    Groups are executed in creation order, so per-table order is preserved.
    """
    groups: list[list[_Op]] = []
    open_group: dict[str, tuple[tuple[Any, ...], list[_Op]]] = {}
    for op in ops:
        if op.kind == _INSERT:
            shape: tuple[Any, ...] = (_INSERT,)
        else:
            shape = (op.kind, op.key, tuple(sorted(op.row)))
        current = open_group.get(op.table)
        if current is not None and current[0] == shape:
            current[1].append(op)
        else:
            group = [op]
            groups.append(group)
            open_group[op.table] = (shape, group)
    return groups


def _union_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for c in row:
            seen.setdefault(c, None)
    return list(seen)


def _required_columns(table: Table) -> frozenset[str]:
    cached = _REQUIRED.get(table.name)
    if cached is None:
        cached = frozenset(
            c.name
            for c in table.columns
            if not c.nullable
            and c.default is None
            and c.server_default is None
            and not (c.primary_key and c.autoincrement is not False and isinstance(c.type, Integer))
        )
        _REQUIRED[table.name] = cached
    return cached


_REQUIRED: dict[str, frozenset[str]] = {}


def _has_unique(table: Table, key: tuple[str, ...]) -> bool:
    wanted = set(key)
    if {c.name for c in table.primary_key.columns} == wanted:
        return True
    for cons in table.constraints:
        if isinstance(cons, UniqueConstraint) and {c.name for c in cons.columns} == wanted:
            return True
    return any(ix.unique and {c.name for c in ix.columns} == wanted for ix in table.indexes)


_OTHER, _JSONCOL, _FLOATCOL, _INTCOL, _STRCOL = range(5)
_PLANS: dict[str, dict[str, int]] = {}
_PLAIN = (float, int, bool, str)


def _plan(table: Table) -> dict[str, int]:
    """Per column, which conversion its values need (computed once per table)."""
    plan = _PLANS.get(table.name)
    if plan is None:
        plan = {}
        for col in table.columns:
            t = col.type
            plan[col.name] = (
                _JSONCOL if isinstance(t, JSON)
                else _FLOATCOL if isinstance(t, Float)
                else _INTCOL if isinstance(t, Integer)
                else _STRCOL if isinstance(t, (String, Text))
                else _OTHER
            )
        _PLANS[table.name] = plan
    return plan


def _convert(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """Enums to their value, Decimal to float/int/str where the column is not Numeric.

    Hot path of the worker (every value of every row): plain values skip all isinstance checks.
    """
    plan = _plan(table)
    out: dict[str, Any] = {}
    for name, value in row.items():
        kind = plan.get(name)
        if kind is None:
            raise KeyError(f"no column {name!r} in {table.name}")
        if value is not None and kind != _JSONCOL:  # JSON: the engine's serializer handles Decimal
            cls = type(value)
            if cls in _PLAIN:
                if kind == _STRCOL and cls is not str:
                    value = str(value)
            else:
                if isinstance(value, enum.Enum):
                    value = value.value
                if isinstance(value, decimal.Decimal):
                    if kind == _FLOATCOL:
                        value = float(value)
                    elif kind == _INTCOL:
                        value = int(value)
                    elif kind == _STRCOL:
                        value = str(value)
                elif kind == _STRCOL and not isinstance(value, str):
                    value = str(value)
        out[name] = value
    return out


def is_row_fault(exc: BaseException) -> bool:
    """True when the failure is the row's own (constraint, type, a value the driver cannot bind);
    False for writer faults (disk full, locked, I/O, unreachable, schema or file gone)."""
    if isinstance(exc, (IntegrityError, DataError)):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # SQLAlchemy could not convert a value: the row's fault
    if isinstance(exc, (TypeError, ValueError, OverflowError, KeyError)):
        return True
    orig = getattr(exc, "orig", None)
    msg = str(orig if orig is not None else exc).lower()
    return "binding parameter" in msg or "type" in msg and "not supported" in msg


def _one_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"
