"""Migrations: fresh DB, re-run, adopting an older DB, and head == schema.py (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from pmm_widgets.store.db import StoreError
from pmm_widgets.store.migrate import alembic_config, current_revision, head_revision, upgrade
from pmm_widgets.store.schema import CONTRACT_TABLES, metadata


def test_fresh_upgrade_creates_every_table(db_url, engine_of):
    assert current_revision(db_url) is None
    upgrade(db_url)
    tables = set(inspect(engine_of(db_url)).get_table_names())
    assert set(CONTRACT_TABLES) <= tables
    assert set(metadata.tables) | {"alembic_version"} == tables
    assert current_revision(db_url) == head_revision()


def test_upgrade_twice_is_a_no_op(db_url, engine_of):
    upgrade(db_url)
    eng = engine_of(db_url)
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO events (ts, level, kind) VALUES (1.0, 'INFO', 'kept')"))
    before = {t: inspect(eng).get_columns(t) for t in metadata.tables}
    upgrade(db_url)
    eng.dispose()
    after = {t: inspect(eng).get_columns(t) for t in metadata.tables}
    assert [c["name"] for t in before for c in before[t]] == [c["name"] for t in after for c in after[t]]
    with eng.connect() as conn:
        assert conn.execute(text("SELECT kind FROM events")).scalars().all() == ["kept"]
    assert current_revision(db_url) == head_revision()


def test_head_matches_schema_py(db_url, engine_of):
    """Editing schema.py without a new migration revision fails here."""
    upgrade(db_url)
    with engine_of(db_url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, metadata)
    assert diffs == []


def test_existing_older_db_is_adopted(db_url, engine_of):
    """A DB from before migrations: stamped at base, with an older `events` table holding data."""
    eng = engine_of(db_url)
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE events (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, "
                          "level VARCHAR(8) NOT NULL, kind VARCHAR(40) NOT NULL)"))
        conn.execute(text("INSERT INTO events (id, ts, level, kind) VALUES (1, 1.0, 'INFO', 'old_row')"))
    cfg = alembic_config(db_url)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.stamp(cfg, "base")
    assert current_revision(db_url) is None

    upgrade(db_url)

    eng.dispose()
    insp = inspect(eng)
    assert set(CONTRACT_TABLES) <= set(insp.get_table_names())
    assert {"market", "message", "data_json"} <= {c["name"] for c in insp.get_columns("events")}
    assert "ix_events_ts" in {ix["name"] for ix in insp.get_indexes("events")}
    with eng.begin() as conn:
        assert conn.execute(text("SELECT kind FROM events")).scalars().all() == ["old_row"]
        conn.execute(text("INSERT INTO events (id, ts, level, kind, message) VALUES (2, 2.0, 'INFO', 'new', 'hi')"))
    assert current_revision(db_url) == head_revision()


def test_downgrade_to_base_and_back(db_url, engine_of):
    upgrade(db_url)
    cfg = alembic_config(db_url)
    eng = engine_of(db_url)
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(eng).get_table_names()) <= {"alembic_version"}
    upgrade(db_url)
    eng.dispose()
    assert set(CONTRACT_TABLES) <= set(inspect(eng).get_table_names())


def test_sqlite_file_is_in_wal_mode(tmp_path, engine_of):
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    upgrade(url)
    with engine_of(url).connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() >= 1000
        assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL


def test_relative_sqlite_url_and_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    upgrade("sqlite:///relative.db")
    assert (tmp_path / "relative.db").exists()
    upgrade("sqlite://")  # memory: works, nothing on disk


@pytest.mark.parametrize("url, says", [
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot connect to postgresql+psycopg://nobody@127.0.0.1:1/none"),
    ("sqlite:////nonexistent-dir/x.db", "cannot connect to sqlite:////nonexistent-dir/x.db"),
    ("nosuchdialect://x/y", "no database driver"),
    ("not a url", "not an SQLAlchemy database URL"),
])
def test_unusable_database_is_one_line(url, says):
    with pytest.raises(StoreError) as info:
        upgrade(url)
    msg = str(info.value)
    assert says in msg and "\n" not in msg


def test_password_never_in_error():
    with pytest.raises(StoreError) as info:
        upgrade("postgresql+psycopg://user:hunter2secret@127.0.0.1:1/db")
    assert "hunter2secret" not in str(info.value) and "***" in str(info.value)


def test_upgrades_on_two_threads_at_once_both_succeed(tmp_path):
    """Two replays started together in one kernel upgrade their DB on two threads: Alembic's
    context is process-global, and they failed ("table alembic_version already exists", "not an
    error", ...). One upgrade at a time per process now."""
    import threading

    for n in range(3):  # the race was not every time: a few fresh DBs
        url = f"sqlite:///{tmp_path / f'two{n}.db'}"
        errors: list[BaseException] = []

        def run(url: str = url, errors: list[BaseException] = errors) -> None:
            try:
                upgrade(url)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert current_revision(url) == head_revision()
