"""Markouts get their own table: one row per fill and horizon (horizon 0: the realized spread).

Revision ID: 0007_markouts
Revises: 0006_economics
Create Date: 2026-12-01

Before, each completed horizon rewrote the trade's `trades.raw_json` (keys `markouts`,
`mid_at_fill`, `realized_spread`, `realized_spread_usd`). This revision creates `markouts`
(idempotent like 0001), moves the signals stored that way into it, and leaves `raw_json` with
the venue's (or the fill model's) payload only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, Index, Integer, MetaData, Numeric, String, Table

revision: str = "0007_markouts"
down_revision: str | Sequence[str] | None = "0006_economics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICE = Numeric(18, 6)
SIZE = Numeric(24, 6)
MOVED_KEYS = ("markouts", "mid_at_fill", "realized_spread", "realized_spread_usd")

_meta = MetaData()

markouts = Table(
    "markouts",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trade_id", String(100), nullable=False),
    Column("market", String(80)),
    Column("token_id", String(100)),
    Column("side", String(4)),
    Column("mode", String(10)),
    Column("horizon_sec", Float, nullable=False),
    Column("fill_ts", Float),
    Column("fill_price", PRICE),
    Column("size", SIZE),
    Column("mid", PRICE),
    Column("markout", Float),
    Column("markout_usd", Float),
    Column("ts", Float, nullable=False),
    Column("run_id", String(40)),
    Index("ix_markouts_trade", "trade_id"),
    Index("ix_markouts_market_ts", "market", "ts"),
    Index("ix_markouts_run_id", "run_id"),
)


def _dec(v: Any) -> Decimal | None:
    try:
        return None if v in (None, "") else Decimal(str(v))
    except InvalidOperation:
        return None


def _move_from_raw_json(bind: sa.Connection) -> None:
    """Rows of trades whose raw_json carries markouts → `markouts` rows; raw_json stripped."""
    t = sa.table("trades", sa.column("trade_id"), sa.column("market"), sa.column("token_id"), sa.column("side"),
                 sa.column("mode"), sa.column("price"), sa.column("size"), sa.column("ts"), sa.column("raw_json", sa.JSON),
                 sa.column("run_id"))
    rows = bind.execute(sa.select(t).where(t.c.raw_json.is_not(None))).all()
    for r in rows:
        raw = r.raw_json
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                continue
        if not isinstance(raw, dict) or not any(k in raw for k in MOVED_KEYS):
            continue
        base = {"trade_id": r.trade_id, "market": r.market, "token_id": r.token_id, "side": r.side, "mode": r.mode,
                "fill_ts": r.ts, "fill_price": _dec(r.price), "size": _dec(r.size), "run_id": r.run_id}
        out = []
        if raw.get("realized_spread") is not None:
            out.append({**base, "horizon_sec": 0.0, "mid": _dec(raw.get("mid_at_fill")),
                        "markout": float(raw["realized_spread"]),
                        "markout_usd": None if raw.get("realized_spread_usd") is None
                        else float(raw["realized_spread_usd"]), "ts": r.ts})
        for key, mk in (raw.get("markouts") or {}).items():
            if not isinstance(mk, dict):
                continue
            try:
                h = float(str(key).rstrip("s"))
            except ValueError:
                continue
            out.append({**base, "horizon_sec": h, "mid": _dec(mk.get("mid")), "markout": mk.get("px"),
                        "markout_usd": mk.get("usd"), "ts": mk.get("ts") if mk.get("ts") is not None else r.ts + h})
        if out:
            bind.execute(markouts.insert(), out)
        kept = {k: v for k, v in raw.items() if k not in MOVED_KEYS}
        bind.execute(t.update().where(t.c.trade_id == r.trade_id)
                     .values(raw_json=kept))


def upgrade() -> None:
    bind = op.get_bind()
    insp = sa.inspect(bind)
    existing = set(insp.get_table_names())
    if "markouts" not in existing:
        markouts.create(bind)
    else:
        have_idx = {ix["name"] for ix in insp.get_indexes("markouts")}
        for index in markouts.indexes:
            if index.name not in have_idx:
                index.create(bind)
    if "trades" in existing:
        _move_from_raw_json(bind)


def downgrade() -> None:
    markouts.drop(op.get_bind(), checkfirst=True)
