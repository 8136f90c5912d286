"""BatchWriter semantics on SQLite and PostgreSQL: batching, upserts, updates, failures, crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from store_helpers import order_row

from pmm_widgets.domain import Mode, OrderStatus, Side
from pmm_widgets.store import schema
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.writer import BatchWriter


@pytest.fixture
def migrated(db_url: str) -> str:
    upgrade(db_url)
    return db_url


@pytest.fixture
def writer(migrated: str):
    w = BatchWriter(migrated, flush_sec=0.2)
    yield w
    w.close()


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_many_rows_one_flush_one_transaction(writer, engine_of, migrated):
    for i in range(3000):
        writer.insert("book_snapshots", {"token_id": f"t{i % 7}", "ts": float(i), "mid": Decimal("0.5")})
        if i % 10 == 0:
            writer.insert("events", {"ts": float(i), "level": "INFO", "kind": "tick", "market": None})
    writer.flush()
    st = writer.stats()
    assert (st.rows_written, st.pending, st.errors, st.flushes) == (3300, 0, 0, 1)
    eng = engine_of(migrated)
    assert count(eng, schema.book_snapshots) == 3000
    assert count(eng, schema.events) == 300


def test_inserts_with_different_column_sets_fill_missing_with_null(writer, engine_of, migrated):
    writer.insert("events", {"ts": 1.0, "level": "INFO", "kind": "a", "market": "m1"})
    writer.insert("events", {"ts": 2.0, "level": "INFO", "kind": "b", "message": "hello"})
    writer.flush()
    with engine_of(migrated).connect() as conn:
        rows = conn.execute(select(schema.events.c.kind, schema.events.c.market, schema.events.c.message)
                            .order_by(schema.events.c.ts)).all()
    assert [tuple(r) for r in rows] == [("a", "m1", None), ("b", None, "hello")]


def test_upsert_inserts_then_updates_by_key(writer, engine_of, migrated):
    writer.upsert("orders", order_row("c1"), key=["client_id"])
    writer.upsert("orders", order_row("c2"), key=["client_id"])
    writer.flush()
    writer.upsert("orders", order_row("c1", status=OrderStatus.FILLED, filled=Decimal("10"), updated_ts=2.0),
                  key=["client_id"])
    writer.flush()
    with engine_of(migrated).connect() as conn:
        rows = {r.client_id: r for r in conn.execute(select(schema.orders)).all()}
    assert set(rows) == {"c1", "c2"}
    assert rows["c1"].status == "FILLED" and rows["c1"].filled == Decimal("10") and rows["c1"].updated_ts == 2.0
    assert rows["c2"].status == "LIVE" and rows["c2"].price == Decimal("0.53")
    assert rows["c1"].side == "BUY" and rows["c1"].mode == "paper"


def test_upsert_same_key_twice_in_one_batch_last_wins(writer, engine_of, migrated):
    writer.upsert("market_calibration", {"market": "m1", "state_json": {"mult": 1.0}, "updated_at": 1.0}, key=["market"])
    writer.upsert("market_calibration", {"market": "m1", "state_json": {"mult": 2.5}, "updated_at": 2.0}, key=["market"])
    writer.flush()
    with engine_of(migrated).connect() as conn:
        rows = conn.execute(select(schema.market_calibration)).all()
    assert len(rows) == 1 and rows[0].state_json == {"mult": 2.5} and rows[0].updated_at == 2.0
    assert writer.stats().errors == 0


def test_partial_upsert_updates_only_given_columns(writer, engine_of, migrated):
    writer.upsert("orders", order_row("c1"), key=["client_id"])
    writer.upsert("orders", {"client_id": "c1", "status": "CANCELED", "updated_ts": 5.0}, key=["client_id"])
    writer.flush()
    with engine_of(migrated).connect() as conn:
        row = conn.execute(select(schema.orders)).one()
    assert (row.status, row.updated_ts, row.price, row.token_id) == ("CANCELED", 5.0, Decimal("0.53"), "tok")
    assert writer.stats().errors == 0


def test_upsert_without_unique_index_uses_generic_path(writer, engine_of, migrated):
    writer.upsert("pnl", {"ts": 1.0, "market": "TOTAL", "mode": "paper", "realized": Decimal("1")}, key=["market", "mode"])
    writer.flush()
    writer.upsert("pnl", {"ts": 2.0, "market": "TOTAL", "mode": "paper", "realized": Decimal("3")}, key=["market", "mode"])
    writer.flush()
    with engine_of(migrated).connect() as conn:
        rows = conn.execute(select(schema.pnl)).all()
    assert len(rows) == 1 and rows[0].realized == Decimal("3") and rows[0].ts == 2.0


def test_update_by_where_and_order_within_a_table_is_kept(writer, engine_of, migrated):
    writer.upsert("orders", order_row("c1"), key=["client_id"])
    writer.update("orders", {"client_id": "c1"}, {"status": OrderStatus.PARTIAL, "filled": Decimal("4")})
    writer.upsert("orders", order_row("c2"), key=["client_id"])
    writer.update("orders", {"client_id": "c2", "mode": Mode.PAPER}, {"status": "CANCELED"})
    writer.update("orders", {"client_id": "nope"}, {"status": "CANCELED"})  # matches nothing: fine
    writer.flush()
    with engine_of(migrated).connect() as conn:
        rows = {r.client_id: r for r in conn.execute(select(schema.orders)).all()}
    assert rows["c1"].status == "PARTIAL" and rows["c1"].filled == Decimal("4")
    assert rows["c2"].status == "CANCELED"
    assert writer.stats().errors == 0


def test_json_decimal_enum_conversion(writer, engine_of, migrated):
    writer.insert("trades", {
        "trade_id": "t1", "order_id": "c1", "token_id": "tok", "side": Side.SELL, "price": Decimal("0.47"),
        "size": Decimal("5.5"), "fill_type": "FILLED", "mode": Mode.LIVE, "ts": 3.0,
        "raw_json": {"markout_5s": Decimal("0.0125"), "side": Side.SELL, "history": ("MATCHED", "MINED")},
    })
    writer.insert("markets", {
        "snapshot_ts": 1.0, "rank": 1, "condition_id": "0xabc", "question": "Q?", "yes_token_id": "y",
        "no_token_id": "n", "liquidity_num": Decimal("1234.5"), "tick_size": Decimal("0.01"),
        "min_order_size": Decimal("5"), "neg_risk": False, "raw_json": {"id": 1},
    })
    writer.flush()
    with engine_of(migrated).connect() as conn:
        tr = conn.execute(select(schema.trades)).one()
        mk = conn.execute(select(schema.markets)).one()
    assert tr.raw_json == {"markout_5s": "0.0125", "side": "SELL", "history": ["MATCHED", "MINED"]}
    assert (tr.side, tr.mode, tr.price, tr.size) == ("SELL", "live", Decimal("0.47"), Decimal("5.5"))
    assert mk.liquidity_num == 1234.5 and mk.tick_size == Decimal("0.01") and mk.neg_risk is False


def test_single_bad_row_never_loses_the_batch(writer, engine_of, migrated):
    for i in range(50):
        writer.insert("events", {"ts": float(i), "level": "INFO", "kind": "ok"})
    writer.insert("events", {"ts": 99.0, "level": "INFO"})  # kind is NOT NULL: fails in the DB
    writer.insert("events", {"ts": 98.0, "level": "INFO", "kind": "x", "no_such_column": 1})  # refused up front
    for i in range(50, 100):
        writer.insert("events", {"ts": float(i), "level": "INFO", "kind": "ok"})
    writer.flush()
    st = writer.stats()
    assert count(engine_of(migrated), schema.events) == 100
    assert st.dropped == 2 and st.errors >= 3 and st.pending == 0  # 2 batch attempts + 2 rows


def test_unknown_table_is_refused_by_the_producer(writer):
    with pytest.raises(KeyError):
        writer.insert("no_such_table", {"x": 1})
    with pytest.raises(ValueError):
        writer.update("orders", {}, {"status": "X"})


def test_worker_flushes_on_its_own_and_close_flushes_rest(migrated, engine_of):
    w = BatchWriter(migrated, flush_sec=0.1).start()
    w.insert("events", {"ts": 1.0, "level": "INFO", "kind": "a"})
    deadline = time.time() + 10
    while w.stats().rows_written < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert w.stats().rows_written == 1 and w.stats().last_flush_ts > 0
    w.insert("events", {"ts": 2.0, "level": "INFO", "kind": "b"})
    w.close()
    assert count(engine_of(migrated), schema.events) == 2
    w.insert("events", {"ts": 3.0, "level": "INFO", "kind": "late"})  # after close: dropped, no raise
    assert w.stats().dropped == 1


def test_concurrent_producers(writer, engine_of, migrated):
    writer.start()

    def produce(n: int) -> None:
        for i in range(500):
            writer.insert("public_trades", {"token_id": f"t{n}", "ts": float(i), "price": Decimal("0.5"), "size": 1})

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.flush()
    assert count(engine_of(migrated), schema.public_trades) == 2000
    assert writer.stats().errors == 0


def test_producers_do_not_wait_for_a_locked_database(tmp_path):
    """While another process holds SQLite's write lock, inserts still return and queue up."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    upgrade(url)
    import sqlite3

    locker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    w = BatchWriter(url, flush_sec=0.05).start()
    try:
        for i in range(1000):
            w.insert("events", {"ts": float(i), "level": "INFO", "kind": "queued"})
        assert w.stats().rows_written == 0
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    w.close()
    assert w.stats().rows_written == 1000


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    from pmm_widgets.store.writer import BatchWriter
    w = BatchWriter(sys.argv[1], flush_sec=1.0).start()
    for i in range(500):
        w.insert("events", {"ts": float(i), "level": "INFO", "kind": "before_kill"})
    w.upsert("orders", {"client_id": "c1", "mode": "paper", "token_id": "t", "side": "BUY",
                        "price": "0.5", "size": "1", "status": "LIVE", "created_ts": 1.0, "updated_ts": 1.0},
             key=["client_id"])
    w.flush()
    print("flushed", flush=True)
    while True:
        w.insert("events", {"ts": 0.0, "level": "INFO", "kind": "after_flush"})
        time.sleep(0.001)
""")


def test_rows_survive_sigkill_after_flush(migrated, engine_of):
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, migrated], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "flushed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    eng = engine_of(migrated)
    with eng.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM events WHERE kind = 'before_kill'")).scalar_one()
        orders = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
    assert (before, orders) == (500, 1)
    if eng.dialect.name == "sqlite":
        with eng.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"


def test_outage_keeps_rows_queued_and_writes_them_later(tmp_path):
    """SQLite locked past busy_timeout stands for an outage: rows wait, then all land in order."""
    import sqlite3

    from pmm_widgets.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'outage.db'}"
    upgrade(url)
    w = BatchWriter(url, engine=make_engine(url, busy_timeout_ms=50))
    locker = sqlite3.connect(tmp_path / "outage.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        for i in range(20):
            w.insert("events", {"ts": float(i), "level": "INFO", "kind": "during_outage"})
        w.flush()
        st = w.stats()
        assert (st.pending, st.rows_written, st.dropped) == (20, 0, 0) and st.errors >= 1
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    w.insert("events", {"ts": 99.0, "level": "INFO", "kind": "after"})
    w.flush()
    st = w.stats()
    assert (st.pending, st.rows_written, st.dropped) == (0, 21, 0)
    with w.engine.connect() as conn:
        ts = conn.execute(text("SELECT ts FROM events ORDER BY id")).scalars().all()
    assert ts == [float(i) for i in range(20)] + [99.0]
    w.close()
    w.engine.dispose()


def test_unreachable_server_keeps_rows_queued():
    w = BatchWriter("postgresql+psycopg://nobody@127.0.0.1:1/none")
    w.insert("events", {"ts": 1.0, "level": "INFO", "kind": "x"})
    w.flush()
    st = w.stats()
    assert (st.pending, st.rows_written, st.dropped) == (1, 0, 0) and st.errors == 1


def test_rows_are_snapshotted_at_call_time(writer, engine_of, migrated):
    raw = {"markouts": {"5s": "0.01"}}
    row = {"trade_id": "t1", "token_id": "tok", "side": "BUY", "price": Decimal("0.5"), "size": 1,
           "fill_type": "FILLED", "mode": "paper", "ts": 1.0, "raw_json": raw}
    writer.insert("trades", row)
    raw["markouts"]["60s"] = "0.05"  # the producer keeps mutating its own dicts
    row["price"] = Decimal("0.9")
    writer.flush()
    with engine_of(migrated).connect() as conn:
        stored = conn.execute(select(schema.trades)).one()
    assert stored.raw_json == {"markouts": {"5s": "0.01"}} and stored.price == Decimal("0.5")
