"""param_changes: every change of a live parameter (who, when), restored at the next start.

Revision ID: 0003_param_changes
Revises: 0002_market_overrides
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_param_changes"
down_revision: str | Sequence[str] | None = "0002_market_overrides"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if "param_changes" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "param_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("changed_by", sa.String(200)),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("value_json", sa.JSON),
    )
    op.create_index("ix_param_changes_name", "param_changes", ["name", "id"])


def downgrade() -> None:
    op.drop_index("ix_param_changes_name", table_name="param_changes")
    op.drop_table("param_changes")
