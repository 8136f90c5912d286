"""`BatchWriter.close(timeout)`: the engine's stop closes its writer within what is left of its
budget. A DB that holds its lock (another connection's `BEGIN EXCLUSIVE`, SQLite's real "database
is locked" after the busy timeout) kept `close()` waiting for the worker's write, then for a
last flush of its own: a busy timeout each (10 s by default), past a page kernel's SIGKILL, with
the rows neither written nor spilled until then. Now, at the timeout, the rows queued behind the
write and the write's own rows are spilled at once (the latter marked `in_flight`: the DB may
still commit them), and the write is left to the worker, which says how it ended. No row is
lost, whatever comes next (a SIGKILL included)."""

from __future__ import annotations

import glob
import json
import logging
import sqlite3
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.writer import BatchWriter


def _event(i: int) -> dict[str, object]:
    return {"ts": float(i), "level": "INFO", "kind": "engine_stop", "message": f"row {i}"}


def _spilled(path: str) -> list[tuple[str, bool]]:
    """(message, marked in_flight) of every row spilled beside the DB file, in file order."""
    out = []
    for name in sorted(glob.glob(path + ".unwritten-*.jsonl")):
        with open(name, encoding="utf-8") as fh:
            out += [(d["row"]["message"], d.get("in_flight", False)) for d in map(json.loads, fh)]
    return out


def _written(url: str) -> list[str]:
    db = make_engine(url)
    try:
        with db.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT message FROM events ORDER BY ts"))]
    finally:
        db.dispose()


def _until(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


@pytest.fixture
def held(tmp_path) -> Iterator[tuple[str, str, sqlite3.Connection]]:
    """(db url, file, a connection holding the DB's write lock: `COMMIT` frees it)."""
    path = str(tmp_path / "held.db")
    url = f"sqlite:///{path}"
    upgrade(url)
    hold = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        yield url, path, hold
    finally:
        if hold.in_transaction:
            hold.execute("COMMIT")
        hold.close()


def _writing(w: BatchWriter, hold: sqlite3.Connection) -> None:
    """5 rows in a write that the DB holds, 3 more queued behind it."""
    hold.execute("BEGIN EXCLUSIVE")
    for i in range(5):
        w.insert("events", _event(i))
    assert _until(lambda: w._in_flight[0] == 5, 2.0), w._in_flight  # the worker's write waits on the lock
    for i in range(5, 8):
        w.insert("events", _event(i))


SPILLED_AT_CLOSE = [*((f"row {i}", True) for i in range(5)), *((f"row {i}", False) for i in range(5, 8))]


def test_a_close_whose_write_the_db_refuses_later_loses_no_row(held, caplog):
    url, path, hold = held
    w = BatchWriter(url, flush_sec=0.05, engine=make_engine(url, busy_timeout_ms=800)).start()
    _writing(w, hold)
    t0 = time.monotonic()
    unanswered = w.close(timeout=0.2)
    took = time.monotonic() - t0
    assert took < 0.5, took  # (it waited for the write's busy timeout, then a last flush's)
    assert unanswered == 5
    assert w.spill_path is not None and _spilled(path) == SPILLED_AT_CLOSE  # all 8, at the close
    # the write ends with the busy timeout ("database is locked"): the worker says so, once
    with caplog.at_level(logging.ERROR, logger="pmm_widgets.store.writer"):
        assert _until(lambda: "refused" in caplog.text, 3.0)
    assert "its 5 ops are in " + w.spill_path + " (marked in_flight), not in the database" in caplog.text
    hold.execute("COMMIT")
    assert _spilled(path) == SPILLED_AT_CLOSE and _written(url) == []  # (no second spill)


def test_a_close_whose_write_the_db_answers_later_loses_no_row(held):
    url, path, hold = held
    w = BatchWriter(url, flush_sec=0.05, engine=make_engine(url, busy_timeout_ms=3000)).start()
    _writing(w, hold)
    assert w.close(timeout=0.2) == 5
    assert _spilled(path) == SPILLED_AT_CLOSE
    hold.execute("COMMIT")  # the DB answers: the write left to the worker commits
    assert _until(lambda: len(_written(url)) == 5, 3.0)
    assert _written(url) == [f"row {i}" for i in range(5)]  # those marked in_flight in the spill file
    assert _spilled(path) == SPILLED_AT_CLOSE


def test_a_close_with_time_enough_writes_everything(held):
    url, path, _hold = held
    w = BatchWriter(url, flush_sec=0.05).start()
    for i in range(3):
        w.insert("events", _event(i))
    assert w.close(timeout=2.0) == 0
    assert _written(url) == ["row 0", "row 1", "row 2"] and w.spill_path is None and _spilled(path) == []
