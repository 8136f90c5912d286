"""Writer faults (issue 17 M2): a full, locked, deleted or replaced DB never drops a row; only a
truly bad row is quarantined. Full disk is SQLite's own `PRAGMA max_page_count` on the writer's
connections (portable, no root or tmpfs needed): inserts past the cap fail with SQLite's real
"database or disk is full" error, exactly what a full filesystem gives."""

from __future__ import annotations

import json
import os
import sqlite3

from sqlalchemy import event, text

from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.writer import BatchWriter, is_row_fault


def _capped_writer(url: str, cap: dict[str, int], **kw) -> BatchWriter:
    eng = make_engine(url, busy_timeout_ms=50)

    @event.listens_for(eng, "begin")
    def _limit(conn):  # the cap in force for this transaction (0: unlimited)
        conn.exec_driver_sql(f"PRAGMA max_page_count={cap['pages'] or 1073741823}")

    return BatchWriter(url, engine=eng, **kw)


def _fill_rows(w: BatchWriter, n: int, start: int = 0, table: str = "trades") -> None:
    for i in range(start, start + n):
        w.insert(table, {"trade_id": f"t{i}", "token_id": "tok" * 20, "side": "BUY", "price": 0.5, "size": 1,
                         "fill_type": "FULL", "mode": "paper", "ts": float(i), "raw_json": {"pad": "x" * 400}})


def test_disk_full_keeps_every_row_reports_a_fault_and_writes_all_once_space_returns(tmp_path):
    url = f"sqlite:///{tmp_path / 'full.db'}"
    upgrade(url)
    with sqlite3.connect(tmp_path / "full.db") as c:
        pages = c.execute("PRAGMA page_count").fetchone()[0]
    cap = {"pages": pages}  # the disk is full: not one more page
    w = _capped_writer(url, cap)
    _fill_rows(w, 300)
    w.flush()
    st = w.stats()
    assert st.rows_written == 0 and st.pending == 300 and st.dropped == 0 and st.quarantined == 0
    assert "full" in (st.last_error or "") and st.fault is not None and "full" in st.fault
    assert "FAULT" in st.line() and "queued 300" in st.line()
    _fill_rows(w, 200, start=300)  # producers keep going while full: still kept
    w.flush()
    assert w.stats().pending == 500
    cap["pages"] = 0  # space returns
    w.flush()
    st = w.stats()
    assert (st.rows_written, st.pending, st.dropped, st.fault, st.last_error) == (500, 0, 0, None, None)
    with w.engine.connect() as conn:
        ids = conn.execute(text("SELECT trade_id FROM trades ORDER BY id")).scalars().all()
    assert ids == [f"t{i}" for i in range(500)]  # every row, in order
    w.close()


def test_bad_row_is_quarantined_while_a_disk_full_batch_is_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    upgrade(url)
    cap = {"pages": 0}
    w = _capped_writer(url, cap)
    w.insert("events", {"ts": 1.0, "level": "INFO"})  # kind NOT NULL: a truly bad row
    _fill_rows(w, 5)
    w.flush()
    st = w.stats()
    assert (st.rows_written, st.quarantined, st.dropped, st.pending) == (5, 1, 1, 0)
    assert w.quarantine[0][0].table == "events" and "NOT NULL" in w.quarantine[0][1]
    w.close()


def test_past_the_bound_the_writer_reports_a_fault(tmp_path):
    path = tmp_path / "bound.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    w = BatchWriter(url, engine=make_engine(url, busy_timeout_ms=50), max_pending=50)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        _fill_rows(w, 40)
        w.flush()
        st = w.stats()
        assert st.pending == 40 and st.fault is None and "locked" in (st.last_error or "")  # locked: a wait, not yet a fault
        _fill_rows(w, 20, start=40)
        w.flush()
        st = w.stats()
        assert st.pending == 60 and st.dropped == 0 and "over the bound of 50" in (st.fault or "")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    w.flush()
    st = w.stats()
    assert (st.pending, st.rows_written, st.fault) == (0, 60, None)
    w.close()


def test_deleted_db_file_is_detected_rows_are_kept_and_spilled_at_close(tmp_path):
    path = tmp_path / "gone.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    w = BatchWriter(url)
    _fill_rows(w, 3)
    w.flush()
    assert w.stats().rows_written == 3
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    _fill_rows(w, 4, start=3)
    w.flush()
    st = w.stats()
    assert st.rows_written == 3 and st.pending == 4 and "deleted" in (st.fault or "")
    w.close()
    assert w.spill_path is not None and w.spill_path.startswith(str(path))
    with open(w.spill_path, encoding="utf-8") as fh:
        spilled = [json.loads(line) for line in fh]
    assert [r["row"]["trade_id"] for r in spilled] == ["t3", "t4", "t5", "t6"]


def test_replaced_db_file_is_detected(tmp_path):
    path = tmp_path / "swap.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    w = BatchWriter(url)
    os.rename(path, tmp_path / "old.db")
    upgrade(url)  # a fresh file at the same path (what a second engine would create)
    _fill_rows(w, 1)
    w.flush()
    assert "replaced" in (w.stats().fault or "") and w.stats().rows_written == 0
    w.close()


def test_row_fault_classification():
    from sqlalchemy.exc import IntegrityError, OperationalError

    assert is_row_fault(IntegrityError("INSERT", {}, sqlite3.IntegrityError("NOT NULL constraint failed")))
    assert not is_row_fault(OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")))
    assert not is_row_fault(OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")))
    assert not is_row_fault(OperationalError("INSERT", {}, sqlite3.OperationalError("no such table: trades")))
