"""What the venue paid (issue 13): the `venue_payouts` table, and the venue's day on each
`reward_estimates` row (so a day the venue paid replaces that day's estimate).

Revision ID: 0008_venue_payouts
Revises: 0007_markouts
Create Date: 2026-12-01

Idempotent like 0001: a missing table is created and a missing (nullable) column added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, Integer, MetaData, Numeric, String, Table, UniqueConstraint

revision: str = "0008_venue_payouts"
down_revision: str | Sequence[str] | None = "0007_markouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = Numeric(24, 6)

NEW_COLUMNS: dict[str, list[Column[Any]]] = {"reward_estimates": [Column("venue_date", String(10))]}

_meta = MetaData()

venue_payouts = Table(
    "venue_payouts",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("mode", String(10)),
    Column("date", String(10), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("market", String(80), nullable=False),
    Column("amount", MONEY),
    UniqueConstraint("market", "mode", "date", "kind", name="uq_venue_payouts_market_mode_date_kind"),
)


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    for table, cols in NEW_COLUMNS.items():
        if table not in existing:
            continue  # 0001/0006 create it
        have = {c["name"] for c in insp.get_columns(table)}
        for col in cols:
            if col.name not in have:
                op.add_column(table, Column(col.name, col.type, nullable=True))
    for tbl in _meta.sorted_tables:
        if tbl.name not in existing:
            tbl.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_meta.sorted_tables):
        table.drop(bind, checkfirst=True)
    for table, cols in NEW_COLUMNS.items():
        for col in cols:
            op.drop_column(table, col.name)
