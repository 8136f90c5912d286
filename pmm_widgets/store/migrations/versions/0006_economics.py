"""Venue economics: fee / rebate / liquidity on `trades`, PnL components on `pnl`, and the
`reward_estimates` and `settlements` tables.

Revision ID: 0006_economics
Revises: 0005_replay_sweeps
Create Date: 2026-12-01

Idempotent like 0001: missing tables are created and missing (nullable) columns added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, Index, Integer, MetaData, Numeric, String, Table, UniqueConstraint

revision: str = "0006_economics"
down_revision: str | Sequence[str] | None = "0005_replay_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICE = Numeric(18, 6)
SIZE = Numeric(24, 6)
MONEY = Numeric(24, 6)

NEW_COLUMNS: dict[str, list[Column[Any]]] = {
    "trades": [Column("fee", MONEY), Column("rebate", MONEY), Column("liquidity", String(6))],
    "pnl": [Column("fees", MONEY), Column("rebates", MONEY), Column("rewards", MONEY), Column("settlement", MONEY)],
}

_meta = MetaData()

reward_estimates = Table(
    "reward_estimates",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("market", String(80), nullable=False),
    Column("mode", String(10)),
    Column("mid", PRICE),
    Column("q_one", MONEY),
    Column("q_two", MONEY),
    Column("q_min", MONEY),
    Column("q_min_total", MONEY),
    Column("share", Numeric(18, 12)),
    Column("usd", MONEY),
    Column("usd_per_hour", MONEY),
    Column("daily_rate", MONEY),
    Column("orders", Integer),
    Column("scoring", Integer),
    Column("venue_scoring", Integer),
    Column("disagreements", Integer),
    Index("ix_reward_estimates_market_ts", "market", "ts"),
)

settlements = Table(
    "settlements",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("market", String(80), nullable=False),
    Column("mode", String(10)),
    Column("winner_token", String(100)),
    Column("winning_outcome", String(8)),
    Column("yes_shares", SIZE),
    Column("no_shares", SIZE),
    Column("payout", MONEY),
    Column("pnl", MONEY),
    Column("source", String(20)),
    UniqueConstraint("market", "mode", name="uq_settlements_market_mode"),
)


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    for table, cols in NEW_COLUMNS.items():
        if table not in existing:
            continue  # 0001 creates it; nothing to adopt
        have = {c["name"] for c in insp.get_columns(table)}
        for col in cols:
            if col.name not in have:
                op.add_column(table, Column(col.name, col.type, nullable=True))
    for tbl in _meta.sorted_tables:
        if tbl.name not in existing:
            tbl.create(bind)
            continue
        have_idx = {ix["name"] for ix in insp.get_indexes(tbl.name)}
        for index in tbl.indexes:
            if index.name not in have_idx:
                index.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_meta.sorted_tables):
        table.drop(bind, checkfirst=True)
    for table, cols in NEW_COLUMNS.items():
        for col in cols:
            op.drop_column(table, col.name)
