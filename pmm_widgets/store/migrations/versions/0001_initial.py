"""Initial schema: the seven contract tables plus public_trades, engine_lease and commands.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Why idempotent: databases created before migrations existed (by `metadata.create_all`, an older
build, or a hand-made table) are adopted instead of failing: missing tables are created, and an
existing table gets any missing column (nullable, so old rows stay valid) and missing index.
The table definitions are a frozen copy of `store/schema.py` at this revision: later schema
changes go in new revisions, never here.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_meta = MetaData()

PRICE = Numeric(18, 6)
SIZE = Numeric(24, 6)
MONEY = Numeric(24, 6)

markets = Table(
    "markets",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_ts", Float, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("condition_id", String(80), nullable=False),
    Column("question", Text, nullable=False),
    Column("slug", Text),
    Column("yes_token_id", String(100), nullable=False),
    Column("no_token_id", String(100), nullable=False),
    Column("liquidity_num", Float),
    Column("volume_24h", Float),
    Column("tick_size", PRICE),
    Column("min_order_size", SIZE),
    Column("neg_risk", Boolean),
    Column("best_bid", Float),
    Column("best_ask", Float),
    Column("raw_json", JSON),
    Index("ix_markets_snapshot", "snapshot_ts", "rank"),
    Index("ix_markets_condition", "condition_id"),
)

book_snapshots = Table(
    "book_snapshots",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(100), nullable=False),
    Column("market", String(80)),
    Column("ts", Float, nullable=False),
    Column("best_bid", PRICE),
    Column("best_ask", PRICE),
    Column("mid", PRICE),
    Column("spread", PRICE),
    Column("bid_depth", SIZE),  # size within depth_ticks of the best bid
    Column("ask_depth", SIZE),
    Column("depth_ticks", Integer),
    Column("bid_levels", Integer),
    Column("ask_levels", Integer),
    Column("stale", Boolean),
    Column("crossed", Boolean),
    Index("ix_book_snapshots_token_ts", "token_id", "ts"),
)

public_trades = Table(
    "public_trades",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(100), nullable=False),
    Column("market", String(80)),
    Column("ts", Float, nullable=False),
    Column("price", PRICE, nullable=False),
    Column("size", SIZE, nullable=False),
    Column("side", String(4)),
    Index("ix_public_trades_token_ts", "token_id", "ts"),
)

orders = Table(
    "orders",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False),
    Column("venue_order_id", String(100)),
    Column("mode", String(10), nullable=False),
    Column("market", String(80)),
    Column("token_id", String(100), nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", PRICE, nullable=False),
    Column("size", SIZE, nullable=False),
    Column("filled", SIZE),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    UniqueConstraint("client_id", name="uq_orders_client_id"),
    Index("ix_orders_status", "status"),
    Index("ix_orders_venue", "venue_order_id"),
)

trades = Table(
    "trades",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trade_id", String(100), nullable=False),
    Column("order_id", String(64)),  # our client_id
    Column("venue_order_id", String(100)),
    Column("market", String(80)),
    Column("token_id", String(100), nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", PRICE, nullable=False),
    Column("size", SIZE, nullable=False),
    Column("fill_type", String(8), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("status", String(24)),
    Column("ts", Float, nullable=False),
    Column("raw_json", JSON),  # venue payload, status history, markouts, realized spread
    UniqueConstraint("trade_id", name="uq_trades_trade_id"),
    Index("ix_trades_market_ts", "market", "ts"),
)

pnl = Table(
    "pnl",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("market", String(80), nullable=False),  # condition id, or 'TOTAL'
    Column("mode", String(10)),
    Column("realized", MONEY),
    Column("unrealized", MONEY),
    Column("total", MONEY),
    Column("spread_pnl", MONEY),
    Column("inventory_pnl", MONEY),
    Column("inventory_yes", SIZE),
    Column("inventory_no", SIZE),
    Column("inventory_usd", MONEY),
    Column("cash", MONEY),
    Column("fills", Integer),
    Column("volume", MONEY),
    Index("ix_pnl_market_ts", "market", "ts"),
)

market_calibration = Table(
    "market_calibration",
    _meta,
    Column("market", String(80), primary_key=True),
    Column("state_json", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

events = Table(
    "events",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("level", String(8), nullable=False),  # INFO, WARNING, ERROR
    Column("kind", String(40), nullable=False),  # engine_start, risk_breach, kill, error, ...
    Column("market", String(80)),
    Column("message", Text),
    Column("data_json", JSON),
    Index("ix_events_ts", "ts"),
)

engine_lease = Table(
    "engine_lease",
    _meta,
    Column("name", String(200), primary_key=True),  # account + db scope
    Column("owner", String(200), nullable=False),  # host:pid:uuid
    Column("expires_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("state_json", JSON),  # the owner's observable state, for attached faces
)

commands = Table(
    "commands",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("issuer", String(200)),
    Column("kind", String(40), nullable=False),  # set_params, pause, resume, kill
    Column("payload_json", JSON),
    Column("applied_at", Float),
    Column("result", Text),
)


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    for table in _meta.sorted_tables:
        if table.name not in existing:
            table.create(bind)
            continue
        have_cols = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have_cols:
                op.add_column(table.name, Column(col.name, col.type, nullable=True))
        have_idx = {ix["name"] for ix in insp.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have_idx:
                index.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_meta.sorted_tables):
        table.drop(bind, checkfirst=True)
