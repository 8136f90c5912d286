"""Schema versioning with Alembic, configured in code (the migrations ship inside the package).

Why Alembic: the table names are a contract with notebooks and outside tools, and several
engines may share one PostgreSQL database, so every schema change is a reviewed, ordered revision
that `pmm db init` applies idempotently to whatever version a database is at.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pmm_widgets.store.db import StoreError, check_connection, first_line, make_engine, safe_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(db_url: str) -> Config:
    """An Alembic Config pointing at the packaged migrations (for `command.*` calls and tests)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    return heads[0]


def current_revision(db_url: str) -> str | None:
    """The revision a database is at (None: never migrated)."""
    engine = make_engine(db_url)
    try:
        check_connection(engine)
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


# Alembic's `context` is process-global: two upgrades on two threads at once (two replays started
# together in one kernel) failed with "table alembic_version already exists" and the like.
_UPGRADE_LOCK = threading.Lock()


@functools.cache
def _head() -> str:
    """`head_revision()`, read once per process (the migrations ship with the code)."""
    return head_revision()


def upgrade(db_url: str, revision: str = "head") -> None:
    """Create or upgrade every table idempotently; raises StoreError (one line) on failure.
    One at a time per process (`_UPGRADE_LOCK`). A database at the head revision already costs one
    query: Alembic's upgrade loads and runs every revision script to find that out (≈ 0.06 s; a
    sweep asked twice, before its points and again with its rows, in series with them)."""
    with _UPGRADE_LOCK:
        if revision == "head" and _at_head(db_url):
            return
        _upgrade(db_url, revision)


def _at_head(db_url: str) -> bool:
    """Whether the database is at the head revision; a database that cannot be reached raises as
    `_upgrade` would (the same connection check); anything else odd is left to `_upgrade` to say."""
    try:
        return current_revision(db_url) == _head()
    except StoreError:
        raise
    except Exception:  # noqa: BLE001 - the upgrade says what is wrong, as it did
        return False


def _upgrade(db_url: str, revision: str) -> None:
    engine = make_engine(db_url)
    try:
        check_connection(engine)
        cfg = alembic_config(db_url)
        try:
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"migration of {safe_url(db_url)} failed: {first_line(exc)}") from exc
    finally:
        engine.dispose()
