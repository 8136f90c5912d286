"""market_overrides: a market's own strategy and strategy parameters.

Revision ID: 0002_market_overrides
Revises: 0001
Create Date: 2026-12-01

Idempotent like 0001: the table is created only when missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import JSON, Column, Float, MetaData, String, Table

revision: str = "0002_market_overrides"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_meta = MetaData()

market_overrides = Table(
    "market_overrides",
    _meta,
    Column("market", String(80), primary_key=True),
    Column("strategy", String(40)),
    Column("params_json", JSON),
    Column("updated_at", Float, nullable=False),
)


def upgrade() -> None:
    bind = op.get_bind()
    if "market_overrides" not in set(sa.inspect(bind).get_table_names()):
        market_overrides.create(bind)


def downgrade() -> None:
    market_overrides.drop(op.get_bind(), checkfirst=True)
