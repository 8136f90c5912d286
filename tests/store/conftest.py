"""Store fixtures: every store test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from pmm_widgets.store.db import make_engine


@pytest.fixture
def fresh_pg_db(pg_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database per test, dropped afterwards."""
    name = f"pmm_t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("fresh_pg_db")


@pytest.fixture
def engine_of():
    """Build engines for a test and dispose them at the end."""
    made = []

    def make(url: str):
        eng = make_engine(url)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A migrated SQLite file, for tests that need SQLite itself (its locks, its file)."""
    from pmm_widgets.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    return url
