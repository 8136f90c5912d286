"""Replays' economics rows: `run_id` on `reward_estimates` and `settlements` (a replay's reward
estimates were written as paper rows, and a replay's settlements could not be told apart), the
settlements' unique key per run (`market, mode, run_id`; '' outside replays), and each PnL
component on `sweep_results` (fees, rebates, rewards, settlement: only in `summary_json` before).

Revision ID: 0009_replay_economics
Revises: 0008_venue_payouts
Create Date: 2026-12-03

Idempotent like 0001: a missing column or index is added, the old unique key replaced once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, String

revision: str = "0009_replay_economics"
down_revision: str | Sequence[str] | None = "0008_venue_payouts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SWEEP_COMPONENTS = ("fees", "rebates", "rewards", "settlement")
OLD_UQ, NEW_UQ = "uq_settlements_market_mode", "uq_settlements_market_mode_run"


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    if "reward_estimates" in existing:
        if "run_id" not in {c["name"] for c in insp.get_columns("reward_estimates")}:
            op.add_column("reward_estimates", Column("run_id", String(40), nullable=True))
        if "ix_reward_estimates_run_id" not in {ix["name"] for ix in insp.get_indexes("reward_estimates")}:
            op.create_index("ix_reward_estimates_run_id", "reward_estimates", ["run_id"])
    if "sweep_results" in existing:
        have = {c["name"] for c in insp.get_columns("sweep_results")}
        for name in SWEEP_COMPONENTS:
            if name not in have:
                op.add_column("sweep_results", Column(name, Float, nullable=True))
    if "settlements" in existing:
        have = {c["name"] for c in insp.get_columns("settlements")}
        uqs = {u["name"] for u in insp.get_unique_constraints("settlements")}
        if "run_id" not in have or OLD_UQ in uqs or NEW_UQ not in uqs:
            with op.batch_alter_table("settlements") as b:  # SQLite: the table is rebuilt, rows kept
                if "run_id" not in have:
                    b.add_column(Column("run_id", String(40), nullable=False, server_default=""))
                if OLD_UQ in uqs:
                    b.drop_constraint(OLD_UQ, type_="unique")
                if NEW_UQ not in uqs:
                    b.create_unique_constraint(NEW_UQ, ["market", "mode", "run_id"])


def downgrade() -> None:
    with op.batch_alter_table("settlements") as b:
        b.drop_constraint(NEW_UQ, type_="unique")
        b.create_unique_constraint(OLD_UQ, ["market", "mode"])
        b.drop_column("run_id")
    for name in SWEEP_COMPONENTS:
        op.drop_column("sweep_results", name)
    op.drop_index("ix_reward_estimates_run_id", table_name="reward_estimates")
    op.drop_column("reward_estimates", "run_id")
