"""Replays and sweeps: `run_id` on orders / trades / pnl / events, `replay_runs`, `sweep_results`.

Revision ID: 0005_replay_sweeps
Revises: 0004_command_sender_order_owner
Create Date: 2026-12-01

Idempotent like 0001: a column or table that already exists is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

revision: str = "0005_replay_sweeps"
down_revision: str | Sequence[str] | None = "0004_command_sender_order_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_meta = MetaData()

replay_runs = Table(
    "replay_runs",
    _meta,
    Column("run_id", String(40), primary_key=True),
    Column("mode", String(10), nullable=False),
    Column("t0", Float, nullable=False),
    Column("t1", Float, nullable=False),
    Column("started_ts", Float, nullable=False),
    Column("finished_ts", Float),
    Column("status", String(16), nullable=False),
    Column("markets", Integer),
    Column("seed", Integer),
    Column("params_json", JSON),
    Column("summary_json", JSON),
    Column("problems_json", JSON),
)

sweep_results = Table(
    "sweep_results",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sweep_id", String(40), nullable=False),
    Column("point", Integer, nullable=False),
    Column("run_id", String(40)),
    Column("created_ts", Float, nullable=False),
    Column("t0", Float, nullable=False),
    Column("t1", Float, nullable=False),
    Column("grid_json", JSON, nullable=False),
    Column("fills", Integer),
    Column("fills_per_min", Float),
    Column("pnl_total", Float),
    Column("realized", Float),
    Column("unrealized", Float),
    Column("spread_pnl", Float),
    Column("inventory_pnl", Float),
    Column("markout_5s_usd", Float),
    Column("markout_30s_usd", Float),
    Column("markout_120s_usd", Float),
    Column("max_inventory_usd", Float),
    Column("reward_estimate", Float),
    Column("summary_json", JSON),
    UniqueConstraint("sweep_id", "point", name="uq_sweep_results_point"),
    Index("ix_sweep_results_sweep", "sweep_id"),
)

RUN_ID_TABLES = ("orders", "trades", "pnl", "events")


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    for name in RUN_ID_TABLES:
        if "run_id" not in {c["name"] for c in insp.get_columns(name)}:
            op.add_column(name, Column("run_id", String(40), nullable=True))
    if "ix_trades_run_id" not in {ix["name"] for ix in insp.get_indexes("trades")}:
        op.create_index("ix_trades_run_id", "trades", ["run_id"])
    existing = set(insp.get_table_names())
    for table in _meta.sorted_tables:
        if table.name not in existing:
            table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_meta.sorted_tables):
        table.drop(bind, checkfirst=True)
    op.drop_index("ix_trades_run_id", table_name="trades")
    for name in RUN_ID_TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_column("run_id")
