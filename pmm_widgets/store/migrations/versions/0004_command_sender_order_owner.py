"""Who sent a command, and which engine placed an order.

Revision ID: 0004_command_sender_order_owner
Revises: 0003_param_changes
Create Date: 2026-12-01

`commands.sender`: the `commands` table is a control plane (DB write access is control access);
each row now says who wrote it (OS user, host, pid and face), shown with the result.
`orders.owner`: the lease owner id (host:pid:uuid) of the engine that placed the order, so
"at no moment did two engines quote one DB" can be checked from the table itself.
Both nullable: rows written before this revision stay valid. Idempotent like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_command_sender_order_owner"
down_revision: str | Sequence[str] | None = "0003_param_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = (("commands", "sender"), ("orders", "owner"))


def upgrade() -> None:
    insp = sa.inspect(op.get_bind())
    for table, column in _NEW:
        if column not in {c["name"] for c in insp.get_columns(table)}:
            op.add_column(table, sa.Column(column, sa.String(200), nullable=True))


def downgrade() -> None:
    for table, column in _NEW:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
