"""Alembic environment, driven programmatically by `pmm_widgets.store.migrate` (no alembic.ini).

`migrate.upgrade` hands over an open connection in `config.attributes["connection"]` so the
upgrade runs in the caller's transaction on an engine built by `store.db.make_engine` (SQLite
pragmas included). `render_as_batch` lets future revisions alter SQLite tables (copy-and-move).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pmm_widgets.store.db import make_engine
from pmm_widgets.store.schema import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """`alembic upgrade --sql`: emit the DDL as text for a DBA to review."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic: no sqlalchemy.url configured and no connection passed in")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
