"""BatchWriter in detail (mutation pass over store/writer.py): each row written exactly once across
faults, the pending/lag accounting the engine's safety halt reads, the health phrase, close."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from decimal import Decimal
from pathlib import PurePosixPath

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, StatementError
from store_helpers import order_row

from pmm_widgets.domain import Side
from pmm_widgets.store import schema
from pmm_widgets.store import writer as writer_mod
from pmm_widgets.store.db import make_engine, safe_url
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.store.writer import BatchWriter, WriterStats, is_row_fault

WRITER_LOG = "pmm_widgets.store.writer"


@pytest.fixture
def sqlite_writer(sqlite_url: str):
    w = BatchWriter(sqlite_url)
    yield w
    w.close()


def _records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == WRITER_LOG and text in r.getMessage()]


def _stats(**kw: object) -> WriterStats:
    base: dict[str, object] = dict(rows_written=0, pending=0, last_flush_ts=0.0, lag_sec=0.0, errors=0)
    base.update(kw)
    return WriterStats(**base)  # type: ignore[arg-type]


# ----------------------------------------------------------------- the health phrase
def test_line_shows_the_queue_only_past_1000_rows_or_with_a_fault_or_an_error():
    assert _stats(pending=1000, lag_sec=0.25).line() == "db lag 0.2s"
    assert _stats(pending=1001, lag_sec=1.25).line() == "db lag 1.2s queued 1001"
    assert _stats(pending=3, lag_sec=2.0, last_error="OperationalError: database is locked").line() == (
        "db lag 2.0s queued 3 (retrying: OperationalError: database is locked)")
    assert _stats(pending=0, fault="disk is full").line() == "db lag 0.0s queued 0 FAULT: disk is full"
    # a fault says FAULT only, not also the retry
    assert _stats(pending=7, fault="gone", last_error="x").line() == "db lag 0.0s queued 7 FAULT: gone"


# ----------------------------------------------------------------- producer side, lifecycle
class _Clock:
    """The writer module's `time`, by hand: `time()` returns `now`; the GIL yields do not sleep."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, sec: float) -> None:
        self.sleeps.append(sec)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock(1000.0)
    monkeypatch.setattr(writer_mod, "time", c)
    return c


def _event(ts: float, kind: str = "e") -> dict[str, object]:
    return {"ts": ts, "level": "INFO", "kind": kind}


def _new_writer_thread(start) -> threading.Thread:
    before = set(threading.enumerate())
    start()
    new = [t for t in set(threading.enumerate()) - before if t.name == "pmm-batch-writer"]
    assert len(new) == 1
    return new[0]


def test_upsert_refuses_an_empty_key(sqlite_writer):
    with pytest.raises(ValueError, match="at least one key column"):
        sqlite_writer.upsert("orders", {"client_id": "c1"}, key=[])
    assert sqlite_writer.stats().pending == 0


def test_late_rows_after_close_are_counted_not_queued_and_said_once(sqlite_writer, caplog):
    sqlite_writer.close()
    with caplog.at_level(logging.WARNING, logger=WRITER_LOG):
        sqlite_writer.insert("events", _event(1.0))
        sqlite_writer.update("orders", {"client_id": "c1"}, {"status": "CANCELED"})
    st = sqlite_writer.stats()
    assert (st.dropped, st.pending) == (2, 0)
    said = _records(caplog, "closed, dropping")
    assert [r.getMessage() for r in said] == [
        "batch writer: closed, dropping insert into events (and any later ones)"]


def test_start_is_idempotent_one_daemon_thread_registered_for_exit_and_close_ends_it(
        sqlite_url, monkeypatch):
    registered: list[object] = []
    monkeypatch.setattr(writer_mod.atexit, "register", registered.append)
    monkeypatch.setattr(writer_mod.atexit, "unregister", registered.remove)
    w = BatchWriter(sqlite_url, flush_sec=1.0)
    thread = _new_writer_thread(w.start)
    assert thread.daemon is True and registered == [w.close]
    before = set(threading.enumerate())
    assert w.start() is w
    assert set(threading.enumerate()) == before and registered == [w.close]  # no second worker
    w.close()
    assert not thread.is_alive() and registered == []


def test_the_worker_flushes_on_its_interval_and_close_wakes_it_at_once(sqlite_url):
    w = BatchWriter(sqlite_url, flush_sec=1.0)
    thread = _new_writer_thread(w.start)
    t0 = time.monotonic()
    w.insert("events", _event(1.0))
    time.sleep(0.2)
    early = w.stats().rows_written
    if time.monotonic() - t0 < 0.9:  # (a host stalled for a second would have let the interval pass)
        assert early == 0  # a put does not wake the worker: it writes once per interval
    t1 = time.monotonic()
    w.close()
    assert time.monotonic() - t1 < 0.5 and not thread.is_alive() and w.stats().rows_written == 1


def test_the_context_manager_starts_the_worker_and_closes_on_exit(sqlite_url):
    before = set(threading.enumerate())
    with BatchWriter(sqlite_url, flush_sec=1.0) as w:
        assert isinstance(w, BatchWriter)
        (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "pmm-batch-writer"]
        w.insert("events", _event(1.0))
    assert not thread.is_alive() and w.stats().rows_written == 1
    w.insert("events", _event(2.0))  # closed by the exit: dropped
    assert w.stats().dropped == 1


def test_close_disposes_only_an_engine_it_made(sqlite_url):
    own = BatchWriter(sqlite_url)
    pool = own.engine.pool
    own.close()
    assert own.engine.pool is not pool  # dispose() replaced the pool
    eng = make_engine(sqlite_url)
    lent = BatchWriter(sqlite_url, engine=eng)
    pool = eng.pool
    lent.close()
    assert eng.pool is pool  # the caller's engine stays the caller's to dispose
    eng.dispose()


def test_a_clean_close_spills_nothing_and_a_second_close_spills_nothing_again(tmp_path, sqlite_url, caplog):
    w = BatchWriter(sqlite_url)
    w.insert("events", _event(1.0))
    w.close()
    assert w.spill_path is None and not list(tmp_path.glob("*.unwritten-*"))
    assert w.stats().rows_written == 1
    gone = BatchWriter(sqlite_url)
    os.unlink(gone.identity.path)
    gone.insert("events", _event(2.0))
    with caplog.at_level(logging.ERROR, logger=WRITER_LOG):
        gone.close()
        first = gone.spill_path
        gone.close()
    assert first is not None and gone.spill_path == first
    assert len(_records(caplog, "did not take")) == 1  # spilled once, not once per close


# ----------------------------------------------------------------- pending and lag (the safety halt reads them)
def test_lag_is_the_age_of_the_oldest_queued_row(sqlite_writer, clock):
    assert (sqlite_writer.stats().pending, sqlite_writer.stats().lag_sec) == (0, 0.0)
    sqlite_writer.insert("events", _event(1.0))
    clock.now += 3.0
    sqlite_writer.insert("events", _event(2.0))
    clock.now += 0.5
    st = sqlite_writer.stats()
    assert (st.pending, st.lag_sec) == (2, 3.5)
    clock.now -= 10.0  # a clock stepped back: no negative lag
    assert sqlite_writer.stats().lag_sec == 0.0


def test_rows_in_flight_count_as_pending_with_the_oldest_ones_age(sqlite_url, clock):
    seen: list[WriterStats] = []
    eng = make_engine(sqlite_url)
    w = BatchWriter(sqlite_url, engine=eng)

    @event.listens_for(eng, "begin")
    def _probe(conn):  # the batch is taken, not yet written; a producer adds a row meanwhile
        clock.now += 2.0
        w.insert("events", _event(9.0, "meanwhile"))
        clock.now += 0.25
        seen.append(w.stats())

    w.insert("events", _event(1.0))
    clock.now += 1.0
    w.insert("events", _event(2.0))
    w.flush()
    assert [(s.pending, s.lag_sec) for s in seen[:1]] == [(3, 3.25)]
    st = w.stats()
    assert (st.rows_written, st.pending, st.lag_sec) == (2, 1, 0.25)
    w.close()
    eng.dispose()


UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def _stats_at_every_line(w: BatchWriter, action) -> list[tuple[int, int, float]]:
    """(line, pending, lag) as stats() reads them before each line the writer runs in `action`."""
    seen: list[tuple[int, int, float]] = []

    def local(frame, ev, arg):
        if ev == "line" and not w._count_lock.locked():  # under the lock no reader can look
            st = w.stats()
            seen.append((frame.f_lineno, st.pending, st.lag_sec))
        return local

    def tracer(frame, ev, arg):
        return local if frame.f_code.co_filename == writer_mod.__file__ else None

    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(None)
    return seen


def test_a_failed_flush_neither_hides_nor_doubles_the_rows_at_any_step(clock):
    """Every line the writer runs while a batch fails and goes back, stats() from another thread
    could run: pending must stay the rows queued and lag the oldest one's age all along (they used
    to read 0 while the batch was being taken, and twice the rows while it was being put back)."""
    w = BatchWriter(UNREACHABLE)
    for i in range(5):
        w.insert("events", _event(float(i)))
        clock.now += 1.0
    seen = _stats_at_every_line(w, w.flush)
    assert len(seen) > 10
    assert [s for s in seen if s[1:] != (5, 5.0)] == []
    st = w.stats()
    assert (st.pending, st.lag_sec, st.rows_written, st.errors) == (5, 5.0, 0, 1)
    w.close()


def test_the_bound_is_a_fault_only_past_max_pending():
    w = BatchWriter(UNREACHABLE, max_pending=3)
    for i in range(3):
        w.insert("events", _event(float(i)))
    assert w.stats().fault is None  # at the bound: kept, not yet a fault
    w.insert("events", _event(3.0))
    assert w.stats().fault == "4 rows queued, over the bound of 3 (slow DB)"
    w.flush()  # the server refuses: the reason joins the fault
    fault = w.stats().fault or ""
    assert fault.startswith("4 rows queued, over the bound of 3 (OperationalError: ") and fault.endswith(")")
    w.close()


def test_the_lag_is_a_fault_only_past_max_lag_sec_and_only_with_an_error(clock):
    w = BatchWriter(UNREACHABLE, max_lag_sec=30.0)
    w.insert("events", _event(1.0))
    clock.now += 31.0
    assert w.stats().fault is None  # slow, but no write has failed yet
    clock.now -= 31.0
    w.flush()
    err = w.stats().last_error
    assert err is not None and err.startswith("OperationalError: ")
    clock.now += 30.0
    assert w.stats().fault is None  # exactly at the limit
    clock.now += 1.0
    assert w.stats().fault == f"rows waiting 31s (> 30s): {err}"
    w.close()


def test_the_worker_survives_an_unexpected_error_counted_and_logged(sqlite_url, caplog):
    w = BatchWriter(sqlite_url, flush_sec=0.05)
    real_drain, calls = w._drain, []

    def drain_once_broken() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        real_drain()

    w._drain = drain_once_broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger=WRITER_LOG):
        w.start()
        w.insert("events", _event(1.0))
        deadline = time.monotonic() + 10
        while w.stats().rows_written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    st = w.stats()
    assert (st.rows_written, st.errors) == (1, 1)
    (rec,) = _records(caplog, "unexpected error while flushing")
    assert rec.exc_info is not None and "boom" in str(rec.exc_info[1])
    w.close()


# ----------------------------------------------------------------- each row exactly once across faults
def _rows(url: str, table: str = "events", col: str = "ts") -> list[object]:
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            return list(conn.execute(text(f"SELECT {col} FROM {table} ORDER BY id")).scalars())
    finally:
        eng.dispose()


def test_a_failed_flush_is_not_counted_as_a_flush(sqlite_url, clock):
    for w in (BatchWriter(UNREACHABLE), BatchWriter(sqlite_url)):
        if w.identity.path is not None:
            os.unlink(w.identity.path)  # the file gone: nothing may be committed into it
        w.insert("events", _event(1.0))
        clock.now += 1.0
        w.flush()
        st = w.stats()
        assert (st.flushes, st.last_flush_ts, st.pending, st.rows_written) == (0, 0.0, 1, 0)
        w.close()


def test_a_bad_row_batch_is_tried_twice_then_row_by_row_each_error_counted(sqlite_url, caplog):
    w = BatchWriter(sqlite_url)
    w.insert("events", _event(0.0))
    w.insert("events", {"ts": 1.0, "level": "INFO"})  # kind is NOT NULL
    w.insert("events", _event(2.0))
    with caplog.at_level(logging.WARNING, logger=WRITER_LOG):
        w.flush()
    st = w.stats()
    assert (st.rows_written, st.errors, st.quarantined, st.dropped, st.pending, st.flushes) == (2, 3, 1, 1, 0, 1)
    assert (st.last_error, st.fault) == (None, None)
    tries = [r.getMessage() for r in _records(caplog, "batch of 3 ops to sqlite:///")]
    assert len(tries) == 2 and "failed (attempt 1): IntegrityError: NOT NULL" in tries[0]
    assert "failed (attempt 2): IntegrityError: NOT NULL" in tries[1]
    assert _rows(sqlite_url) == [0.0, 2.0]
    (said,) = _records(caplog, "quarantined")
    assert said.getMessage().startswith("batch writer: quarantined insert into events: IntegrityError: NOT NULL")
    w.close()


def test_a_writer_fault_in_the_row_by_row_pass_keeps_the_rest_in_order(sqlite_url):
    """The bad row's batch goes row by row; the DB fails at the bad row: it and the rows after it
    wait (not quarantined: the DB failed, not the row); once the DB is back, each lands once."""
    eng = make_engine(sqlite_url)
    begins: list[int] = []

    @event.listens_for(eng, "begin")
    def _fail_fourth(conn):  # 1, 2: the batch; 3: row 0; 4: the bad row, when the DB is locked
        begins.append(1)
        if len(begins) == 4:
            raise sqlite3.OperationalError("database is locked")

    w = BatchWriter(sqlite_url, engine=eng)
    w.insert("events", _event(0.0))
    w.insert("events", {"ts": 1.0, "level": "INFO"})  # kind is NOT NULL
    w.insert("events", _event(2.0))
    w.insert("events", _event(3.0))
    w.flush()
    st = w.stats()
    assert (st.rows_written, st.pending, st.quarantined, st.dropped, st.errors, st.flushes) == (1, 3, 0, 0, 3, 0)
    assert st.last_error == "OperationalError: database is locked"
    w.flush()
    st = w.stats()
    assert (st.rows_written, st.pending, st.quarantined, st.dropped, st.flushes, st.last_error) == (3, 0, 1, 1, 1, None)
    assert _rows(sqlite_url) == [0.0, 2.0, 3.0]
    w.close()
    eng.dispose()


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends(sqlite_url, clock, caplog):
    eng = make_engine(sqlite_url)
    down = {"now": True}

    @event.listens_for(eng, "begin")
    def _locked(conn):
        if down["now"]:
            raise sqlite3.OperationalError("database is locked")

    w = BatchWriter(sqlite_url, engine=eng)
    url = safe_url(sqlite_url)
    with caplog.at_level(logging.WARNING, logger=WRITER_LOG):
        for i in range(2):
            w.insert("events", _event(float(i)))
        w.flush()
        clock.now += 5.0
        w.insert("events", _event(2.0))
        w.flush()  # still down: no second "cannot take rows"
        clock.now += 7.5
        down["now"] = False
        w.flush()
        w.flush()  # nothing queued: no second "available again"
        down["now"] = True
        w.insert("events", _event(3.0))
        w.flush()  # a new outage: said again
    assert [r.getMessage() for r in _records(caplog, url)] == [
        f"batch writer: {url} cannot take rows (OperationalError: database is locked);"
        " keeping 2 ops queued and retrying every 0.5 s",
        f"batch writer: {url} available again after 12.5 s",
        f"batch writer: {url} cannot take rows (OperationalError: database is locked);"
        " keeping 1 ops queued and retrying every 0.5 s",
    ]
    assert w.stats().rows_written == 3
    w.close()
    eng.dispose()


def test_a_lost_file_is_the_last_error_word_for_word(sqlite_url):
    w = BatchWriter(sqlite_url)
    os.unlink(w.identity.path or "")
    w.insert("events", _event(1.0))
    w.flush()
    st = w.stats()
    said = f"database file {w.identity.path} was deleted while in use"
    assert (st.last_error, st.fault) == (said, said)
    w.close()


def _spilled(w: BatchWriter) -> list[tuple[str, object]]:
    assert w.spill_path is not None
    with open(w.spill_path, encoding="utf-8") as fh:
        return [(r["table"], r["row"]["ts"]) for r in map(json.loads, fh)]


def test_past_the_hard_cap_market_data_is_shed_first_then_the_oldest(sqlite_url, monkeypatch, caplog):
    monkeypatch.setattr(writer_mod, "MAX_PENDING", 4)
    w = BatchWriter(sqlite_url)
    os.unlink(w.identity.path or "")  # every flush puts the batch back
    w.insert("events", _event(0.0))
    w.insert("book_snapshots", {"token_id": "t", "ts": 1.0})
    w.insert("events", _event(2.0))
    w.insert("public_trades", {"token_id": "t", "ts": 3.0, "price": 0.5, "size": 1.0})
    w.insert("events", _event(4.0))
    w.insert("events", _event(5.0))
    with caplog.at_level(logging.ERROR, logger=WRITER_LOG):
        w.flush()  # 6 > 4: the two market-data rows go, the events stay in order
        st = w.stats()
        assert (st.pending, st.shed, st.dropped) == (4, 2, 2)
        w.flush()  # at the cap: nothing more is shed
        assert (w.stats().pending, w.stats().shed) == (4, 2)
        w.insert("events", _event(6.0))
        w.flush()  # one over, no market data: the oldest event goes
        assert (w.stats().pending, w.stats().shed) == (4, 3)
        w.insert("book_snapshots", {"token_id": "t", "ts": 7.0})
        w.insert("events", _event(8.0))
        w.insert("events", _event(9.0))
        w.flush()  # 7 > 4: the one market-data row, then the two oldest events
    st = w.stats()
    assert (st.pending, st.shed, st.dropped) == (4, 6, 6)
    shed_said = [r.getMessage() for r in _records(caplog, "shed the")]
    assert shed_said == [f"batch writer: queue over 4 ops: shed the {n} oldest (market data first)" for n in (2, 1, 3)]
    w.close()
    assert _spilled(w) == [("events", 5.0), ("events", 6.0), ("events", 8.0), ("events", 9.0)]


def test_the_spill_keeps_each_op_whole_and_says_where(sqlite_url, clock, caplog):
    w = BatchWriter(sqlite_url)
    os.unlink(w.identity.path or "")
    w.upsert("orders", {"client_id": "c1", "status": "LIVE"}, key=["client_id"])
    clock.now += 1.0
    w.update("orders", {"client_id": "c1"}, {"status": "CANCELED"})
    with caplog.at_level(logging.ERROR, logger=WRITER_LOG):
        w.close()
    assert w.spill_path == f"{w.identity.path}.unwritten-1001.jsonl"
    with open(w.spill_path, encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == [
            {"kind": "upsert", "table": "orders", "row": {"client_id": "c1", "status": "LIVE"},
             "key": ["client_id"], "where": None, "ts": 1000.0},
            {"kind": "update", "table": "orders", "row": {"status": "CANCELED"},
             "key": ["client_id"], "where": {"client_id": "c1"}, "ts": 1001.0},
        ]
    assert [r.getMessage() for r in _records(caplog, "closing with")] == [
        f"batch writer: closing with 2 ops the database did not take "
        f"(database file {w.identity.path} was deleted while in use): saved to {w.spill_path}"]


def test_a_spill_that_cannot_be_written_is_said(caplog):
    w = BatchWriter(UNREACHABLE)
    w.insert("events", _event(1.0))
    with caplog.at_level(logging.ERROR, logger=WRITER_LOG):
        w.close()
    assert w.spill_path is None
    assert [r.getMessage() for r in _records(caplog, "closing with")] == [
        "batch writer: closing with 1 ops not written (database unavailable; spill failed: not an SQLite file)"]


def test_two_writers_spilling_in_the_same_second_keep_both_files(sqlite_url, clock):
    """Two writers on one lost DB file closing within a second (an engine and a universe refresh
    at shutdown) used to spill to the same name, the second file replacing the first's rows."""
    a, b = BatchWriter(sqlite_url), BatchWriter(sqlite_url)
    os.unlink(a.identity.path or "")
    a.insert("events", _event(1.0))
    b.insert("events", _event(2.0))
    a.close()
    b.close()
    assert a.spill_path is not None and b.spill_path is not None and a.spill_path != b.spill_path
    assert (_spilled(a), _spilled(b)) == ([("events", 1.0)], [("events", 2.0)])


def test_a_row_without_its_key_column_is_quarantined_up_front(sqlite_writer):
    sqlite_writer.upsert("orders", {"status": "LIVE"}, key=["client_id"])
    sqlite_writer.flush()
    st = sqlite_writer.stats()
    assert (st.quarantined, st.dropped, st.errors, st.pending, st.rows_written) == (1, 1, 1, 0, 0)
    assert sqlite_writer.quarantine[0][1] == "KeyError: \"key column(s) ['client_id'] missing from the row\""


def test_an_update_where_is_converted_like_the_row(sqlite_writer, sqlite_url):
    class Token(enum.Enum):  # not a str: the driver could not bind it as it is
        T = "t"

    sqlite_writer.insert("book_snapshots", {"token_id": "t", "ts": 1.5})
    sqlite_writer.update("book_snapshots", {"token_id": Token.T, "ts": Decimal("1.5")}, {"mid": Decimal("0.25")})
    sqlite_writer.flush()
    assert _rows(sqlite_url, "book_snapshots", "mid") == [0.25]
    assert (sqlite_writer.stats().errors, sqlite_writer.stats().quarantined) == (0, 0)


def test_big_batches_are_written_and_freed_in_pieces_yielding_the_gil_between(sqlite_writer, sqlite_url, clock):
    chunk, release = writer_mod.EXECUTEMANY_CHUNK, writer_mod.RELEASE_CHUNK
    assert release % chunk == 0
    for i in range(release):
        sqlite_writer.insert("events", _event(float(i)))
    sqlite_writer.flush()
    assert clock.sleeps == [writer_mod.GIL_YIELD_SEC] * (release // chunk - 1)  # between pieces; freed at once
    clock.sleeps.clear()
    for i in range(release + 1):
        sqlite_writer.insert("events", _event(float(i)))
    sqlite_writer.flush()
    assert len(clock.sleeps) == release // chunk + 1  # one more piece, and the rows freed in two
    assert sqlite_writer.stats().rows_written == 2 * release + 1 and len(_rows(sqlite_url)) == 2 * release + 1


def test_flush_sec_is_bounded_to_at_most_a_second(sqlite_url):
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match=r"flush_sec must be in \(0, 1\] so that a crash loses at most one second"):
            BatchWriter(sqlite_url, flush_sec=bad)
    w = BatchWriter(sqlite_url, flush_sec=1.0)
    assert w.flush_sec == 1.0
    w.close()


def test_the_quarantine_keeps_the_newest_bad_rows_and_counts_them_all(sqlite_writer):
    keep = writer_mod.QUARANTINE_KEEP
    for i in range(keep + 1):
        sqlite_writer.insert("events", {"ts": float(i), "level": "INFO", "kind": "x", "no_such_column": i})
    sqlite_writer.flush()
    st = sqlite_writer.stats()
    assert (st.quarantined, st.dropped, st.errors, st.pending) == (keep + 1, keep + 1, keep + 1, 0)
    assert len(sqlite_writer.quarantine) == keep
    assert [op.row["ts"] for op, _ in sqlite_writer.quarantine][:1] == [1.0]  # the oldest one gave way
    assert sqlite_writer.quarantine[-1][1] == "KeyError: \"no column 'no_such_column' in events\""


def test_values_are_converted_to_what_each_column_stores():
    class Tier(enum.Enum):
        TOP = 3

    class Label(enum.Enum):  # its value goes as it is, even to an Integer column
        SEVEN = "7"

    out = writer_mod._convert(schema.book_snapshots, {
        "token_id": 12345, "market": Side.BUY, "ts": Decimal("2.5"), "mid": Decimal("0.25"),
        "depth_ticks": Decimal("3"), "bid_levels": Label.SEVEN, "ask_levels": Tier.TOP, "stale": True, "best_bid": None,
        "spread": 0.5, "bid_depth": Tier.TOP})
    assert out == {"token_id": "12345", "market": "BUY", "ts": 2.5, "mid": Decimal("0.25"), "depth_ticks": 3,
                   "bid_levels": "7", "ask_levels": 3, "stale": True, "best_bid": None, "spread": 0.5, "bid_depth": 3}
    assert [type(out[c]) for c in ("token_id", "market", "ts", "mid", "depth_ticks")] == [str, str, float, Decimal, int]
    raw = {"d": Decimal("0.1")}
    out = writer_mod._convert(schema.events, {"kind": Decimal("0.10"), "message": PurePosixPath("/x"),
                                              "run_id": 7.5, "data_json": raw, "level": "INFO", "market": None})
    assert out == {"kind": "0.10", "message": "/x", "run_id": "7.5", "data_json": raw, "level": "INFO", "market": None}
    assert out["data_json"] is raw  # JSON columns: the engine's serializer handles Decimal
    with pytest.raises(KeyError, match="no column 'nope' in events"):
        writer_mod._convert(schema.events, {"nope": 1})


def test_row_faults_and_writer_faults_are_told_apart():
    def op_err(msg: str) -> OperationalError:
        return OperationalError("INSERT", {}, sqlite3.OperationalError(msg))

    assert is_row_fault(DataError("INSERT", {}, sqlite3.DataError("value too long")))
    assert is_row_fault(StatementError("could not convert", "INSERT", {}, TypeError("bad")))
    for exc in (TypeError("t"), ValueError("v"), OverflowError("o"), KeyError("k")):
        assert is_row_fault(exc)
    assert is_row_fault(op_err("Error binding parameter 2: type 'Foo' is not supported"))
    assert is_row_fault(op_err("type 'Foo' is not supported"))
    assert is_row_fault(RuntimeError("Error binding parameter 1"))  # no driver error inside: its own text
    assert not is_row_fault(op_err("datatype mismatch in type check"))  # "type" alone: not the row's
    assert not is_row_fault(op_err("operation not supported on this server"))  # "not supported" alone
    assert not is_row_fault(DBAPIError("INSERT", {}, sqlite3.DatabaseError("server closed the connection")))
    assert not is_row_fault(RuntimeError("boom"))
    # the driver's words decide, not the statement's (trades has a fill_type column)
    assert not is_row_fault(OperationalError("INSERT INTO trades (fill_type) VALUES (?)", {},
                                             sqlite3.OperationalError("operation not supported")))


def test_one_line_names_the_driver_error_and_its_first_line():
    exc = OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked\nmore detail"))
    assert writer_mod._one_line(exc) == "OperationalError: database is locked"
    assert writer_mod._one_line(RuntimeError("  first\nsecond")) == "RuntimeError: first"
    assert writer_mod._one_line(RuntimeError()) == "RuntimeError: "


def test_rows_done_in_the_row_by_row_pass_leave_pending_as_they_go(sqlite_url, clock):
    """A row refused up front, or written or quarantined in the row-by-row pass, is no longer
    pending (it was counted in flight, and its age as the lag, until the whole pass ended: a big
    batch with one bad row read as queued rows, up to a bound fault, while its rows were written)."""
    eng = make_engine(sqlite_url)
    seen: list[tuple[int, float]] = []
    w = BatchWriter(sqlite_url, engine=eng)

    @event.listens_for(eng, "begin")
    def _probe(conn):
        st = w.stats()
        seen.append((st.pending, st.lag_sec))

    w.insert("events", {"ts": 0.0, "level": "INFO", "kind": "x", "no_such_column": 1})  # refused up front
    for row in (_event(1.0), {"ts": 2.0, "level": "INFO"}, _event(3.0)):  # the second: kind is NOT NULL
        clock.now += 1.0
        w.insert("events", row)
    clock.now += 1.0
    w.flush()
    # two batch attempts, then row 1, the bad row, row 3, each with what is left in flight
    assert seen == [(3, 3.0), (3, 3.0), (3, 3.0), (2, 2.0), (1, 1.0)]
    st = w.stats()
    assert (st.pending, st.lag_sec, st.rows_written, st.quarantined) == (0, 0.0, 2, 2)
    w.close()
    eng.dispose()


def test_a_stats_snapshot_is_frozen_and_its_counters_default_to_none_seen():
    st = _stats(rows_written=5, pending=1)
    assert (st.dropped, st.flushes, st.quarantined, st.shed, st.last_error, st.fault) == (0, 0, 0, 0, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.pending = 0  # type: ignore[misc]


def test_complete_upserts_are_one_statement_the_later_row_of_a_key_winning(sqlite_writer, sqlite_url):
    stmts: list[tuple[str, int]] = []

    @event.listens_for(sqlite_writer.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):
        stmts.append((statement.split()[0], len(parameters) if executemany else 1))

    for cid, price in (("c1", "0.5"), ("c2", "0.6"), ("c1", "0.7")):
        sqlite_writer.upsert("orders", order_row(cid, price=Decimal(price)), key=["client_id"])
    sqlite_writer.flush()
    assert stmts == [("INSERT", 2)]  # one ON CONFLICT executemany, one row per key
    assert _rows(sqlite_url, "orders", "price") == [0.7, 0.6]  # (raw SQL: SQLite's REAL)
    stmts.clear()
    sqlite_writer.upsert("orders", {"client_id": "c1"}, key=["client_id"])  # partial, nothing to change
    sqlite_writer.flush()
    assert [s[0] for s in stmts] == ["SELECT"]  # found, and no empty UPDATE
    stmts.clear()
    sqlite_writer.upsert("market_calibration", {"market": "m1", "state_json": {}, "updated_at": 1.0}, key=["market"])
    sqlite_writer.flush()  # the key is the primary key: ON CONFLICT too
    assert stmts == [("INSERT", 1)]
    stmts.clear()
    for kind in ("a", "b"):  # ts is indexed, but not unique: update else insert
        sqlite_writer.upsert("events", _event(5.0, kind), key=["ts"])
        sqlite_writer.flush()
    assert [s[0] for s in stmts] == ["SELECT", "INSERT", "SELECT", "UPDATE"]
    assert _rows(sqlite_url, "events", "kind") == ["b"]
    assert (sqlite_writer.stats().errors, sqlite_writer.stats().quarantined) == (0, 0)


def test_once_every_row_is_done_nothing_reads_as_in_flight(sqlite_url, clock):
    """After the last row of a row-by-row pass, or a batch all refused up front, no step reads a
    row in flight (an op 'in flight' since epoch 0 would read as a lag of decades)."""
    w = BatchWriter(sqlite_url)
    w.insert("events", {"ts": 0.0, "level": "INFO", "kind": "x", "no_such_column": 1})  # refused up front
    clock.now += 1.0
    w.insert("events", {"ts": 1.0, "level": "INFO"})  # kind is NOT NULL: quarantined row by row
    clock.now += 1.0
    seen = _stats_at_every_line(w, w.flush)
    assert seen[0][1:] == (2, 2.0) and seen[-1][1:] == (0, 0.0)
    assert max(s[1] for s in seen) == 2 and max(s[2] for s in seen) == 2.0
    w.insert("events", {"ts": 2.0, "level": "INFO", "kind": "x", "no_such_column": 1})
    clock.now += 1.0
    seen = _stats_at_every_line(w, w.flush)
    assert {s[1:] for s in seen} == {(1, 1.0), (0, 0.0)} and seen[-1][1:] == (0, 0.0)
    assert (w.stats().quarantined, w.stats().rows_written) == (3, 0)
    w.close()


# ----------------------------------------------------------------- store/sink.py
def test_memory_sink_upserts_by_key_and_records_every_update():
    sink = MemorySink()
    sink.upsert("orders", {"client_id": "c1", "status": "LIVE", "price": 1}, key=["client_id"])
    sink.upsert("orders", {"client_id": "c1", "status": "FILLED"}, key=["client_id"])
    assert sink.rows == {"orders": [{"client_id": "c1", "status": "FILLED", "price": 1}]}
    sink.update("orders", {"client_id": "c1"}, {"status": "CANCELED"})
    sink.update("orders", {"client_id": "nope"}, {"status": "X"})  # matches nothing: still recorded
    assert sink.updates == [("orders", {"client_id": "c1"}, {"status": "CANCELED"}),
                            ("orders", {"client_id": "nope"}, {"status": "X"})]
    assert sink.rows["orders"][0]["status"] == "CANCELED"


def test_a_write_that_hangs_without_an_error_is_a_fault_after_max_lag_sec(sqlite_url):
    """BUG (fixed): the lag fault needed an earlier write error, so a DB call that hung (a server
    behind a dead network path answers nothing, raises nothing) left `fault` None: the engine
    went on quoting while none of its rows, fills included, reached the DB."""
    w = BatchWriter(sqlite_url, max_lag_sec=0.2)
    entered, release = threading.Event(), threading.Event()
    real_write = w._write

    def hung_write(ops):  # type: ignore[no-untyped-def]
        entered.set()
        release.wait(10)
        return real_write(ops)

    w._write = hung_write  # type: ignore[method-assign]
    w.insert("events", _event(time.time()))
    t = threading.Thread(target=w.flush)
    t.start()
    try:
        assert entered.wait(5)
        assert w.stats().fault is None  # a write in progress, not yet past the limit
        deadline = time.monotonic() + 5
        while w.stats().fault is None and time.monotonic() < deadline:
            time.sleep(0.02)
        fault = w.stats().fault or ""
        assert fault.startswith("a DB write has not returned for ") and fault.endswith("(> 0.2s), 1 rows waiting")
        assert w.stats().last_error is None  # nothing failed: only the hang says so
    finally:
        release.set()
        t.join(10)
    st = w.stats()
    assert (st.fault, st.pending, st.rows_written) == (None, 0, 1)  # it returned: the fault is gone
    w.close()
