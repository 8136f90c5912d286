"""Read helpers over the contract tables, for the engine's start-up and the faces.

Why a small module of functions: reads are few and simple (latest universe, calibration state,
recent events, open orders, fills and their markouts as frames). Each takes an Engine and returns plain dicts or a
pandas DataFrame, so callers need no SQL and run them in a worker thread (`asyncio.to_thread`)
when on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Engine, Executable, func, select

from pmm_widgets.domain import OrderStatus
from pmm_widgets.store import schema
from pmm_widgets.store.recorder import SESSION_COLUMNS

OPEN_STATUSES = tuple(s.value for s in OrderStatus if s.is_open)


def _rows(engine: Engine, stmt: Executable) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def load_calibration(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per-market calibration state (`market` -> `state_json`), to resume where the last run left."""
    t = schema.market_calibration
    return {r["market"]: dict(r["state_json"] or {}) for r in _rows(engine, select(t.c.market, t.c.state_json))}


def load_overrides(engine: Engine) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """Per-market strategy overrides (`market` -> (strategy name or None, strategy params))."""
    t = schema.market_overrides
    return {r["market"]: (r["strategy"], dict(r["params_json"] or {}))
            for r in _rows(engine, select(t.c.market, t.c.strategy, t.c.params_json))}


def latest_universe(engine: Engine) -> list[dict[str, Any]]:
    """The rows of the newest `markets` snapshot, by rank (empty before any `pmm universe refresh`)."""
    t = schema.markets
    latest = select(func.max(t.c.snapshot_ts)).scalar_subquery()
    return _rows(engine, select(t).where(t.c.snapshot_ts == latest).order_by(t.c.rank))


def universe_snapshots(engine: Engine) -> list[float]:
    """Timestamps of every stored universe snapshot, newest first."""
    t = schema.markets
    with engine.connect() as conn:
        return list(conn.execute(select(t.c.snapshot_ts).distinct().order_by(t.c.snapshot_ts.desc())).scalars())


def recent_events(engine: Engine, n: int = 50, min_level: str | None = None) -> list[dict[str, Any]]:
    """The newest `n` events, newest first; `min_level='WARNING'` keeps warnings and errors."""
    t = schema.events
    stmt = select(t).order_by(t.c.ts.desc(), t.c.id.desc()).limit(n)
    if min_level is not None:
        order = ["DEBUG", "INFO", "WARNING", "ERROR"]
        stmt = stmt.where(t.c.level.in_(order[order.index(min_level.upper()):]))
    return _rows(engine, stmt)


def open_orders(engine: Engine, mode: str | None = None) -> list[dict[str, Any]]:
    """Orders whose stored status is still open (PENDING, LIVE, PARTIAL), oldest first."""
    t = schema.orders
    stmt = select(t).where(t.c.status.in_(OPEN_STATUSES)).order_by(t.c.created_ts)
    if mode is not None:
        stmt = stmt.where(t.c.mode == getattr(mode, "value", mode))
    return _rows(engine, stmt)


def trades_frame(engine: Engine, mode: str | None = None, since: float | None = None) -> pd.DataFrame:
    """Our fills as a DataFrame (columns of `trades`), oldest first; price/size as float."""
    t = schema.trades
    stmt = select(t).order_by(t.c.ts, t.c.id)  # id breaks ties: fills in the order they happened
    if mode is not None:
        stmt = stmt.where(t.c.mode == getattr(mode, "value", mode))
    if since is not None:
        stmt = stmt.where(t.c.ts >= since)
    return _frame(engine, stmt, [c.name for c in t.columns], numeric=("price", "size"))


MARKOUT_NUMERIC = ("fill_price", "size", "mid", "markout", "markout_usd")


def markouts_frame(engine: Engine, mode: str | None = None, since: float | None = None,
                   where: Sequence[ColumnElement[bool]] = ()) -> pd.DataFrame:
    """Our fills' markouts (columns of `markouts`), one row per fill and horizon, oldest first.
    `horizon_sec` 0 is the realized spread (the mid at the fill's own time); `markout` is in
    price units, signed for our side (+ = the fill was worth it), `markout_usd` is × size."""
    t = schema.markouts
    stmt = select(t).order_by(t.c.fill_ts, t.c.id)
    if mode is not None:
        stmt = stmt.where(t.c.mode == getattr(mode, "value", mode))
    if since is not None:
        stmt = stmt.where(t.c.fill_ts >= since)
    if where:  # further conditions on `markouts` (the report's scope)
        stmt = stmt.where(*where)
    return _frame(engine, stmt, [c.name for c in t.columns], numeric=MARKOUT_NUMERIC)


def pnl_frame(engine: Engine, market: str | None = "TOTAL", since: float | None = None,
              mode: str | None = None) -> pd.DataFrame:
    """PnL rows (default: the TOTAL series; None: every market), oldest first, money as float.
    `mode` ('paper', 'dry_run', 'live', 'replay'): that mode's rows only; None: every mode's (in a
    DB that holds more than one, their series interleave: name the one you mean)."""
    t = schema.pnl
    stmt = select(t).order_by(t.c.ts, t.c.id)  # id breaks ties: rows in the order they were written
    if market is not None:
        stmt = stmt.where(t.c.market == market)
    if mode is not None:
        stmt = stmt.where(t.c.mode == getattr(mode, "value", mode))
    if since is not None:
        stmt = stmt.where(t.c.ts >= since)
    money = tuple(c.name for c in t.columns if c.name not in ("id", "ts", "market", "mode", "fills"))
    return _frame(engine, stmt, [c.name for c in t.columns], numeric=money)


def _frame(engine: Engine, stmt: Executable, columns: list[str], numeric: tuple[str, ...]) -> pd.DataFrame:
    df = pd.DataFrame(_rows(engine, stmt), columns=columns)
    for col in numeric:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df


def table_counts(engine: Engine) -> dict[str, int]:
    """Row count per table of the schema (tables not created yet are left out)."""
    from sqlalchemy import inspect

    present = set(inspect(engine).get_table_names())
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for name, table in schema.metadata.tables.items():
            if name in present:
                out[name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
    return out


def load_session_rows(engine: Engine, mode: str) -> dict[str, list[dict[str, Any]]]:
    """What a new engine needs to continue the last one's positions and PnL (`engine/restore.py`):
    this mode's fills in the order they were recorded (`trades` by id), the token pair of every
    market the DB has seen (`markets`), this mode's reward estimates summed per market and venue
    day, its settlements and what the venue paid (`venue_payouts`). One read, in a worker thread when on the event loop."""
    mode = getattr(mode, "value", mode)
    t, mk, rw, st = schema.trades, schema.markets, schema.reward_estimates, schema.settlements
    with engine.connect() as conn:
        trades = [dict(r._mapping) for r in conn.execute(
            select(t.c.id, *(t.c[k] for k in SESSION_COLUMNS["trades"])).where(t.c.mode == mode).order_by(t.c.id))]
        tokens = [dict(r._mapping) for r in conn.execute(
            select(mk.c.condition_id, mk.c.yes_token_id, mk.c.no_token_id).distinct())]
        market, day, usd = SESSION_COLUMNS["reward_estimates"]
        rewards = [dict(r._mapping) for r in conn.execute(
            select(rw.c[market], rw.c[day], func.sum(rw.c[usd]).label(usd)).where(rw.c.mode == mode)
            .group_by(rw.c[market], rw.c[day]))]
        settlements = [dict(r._mapping) for r in conn.execute(
            select(*(st.c[k] for k in SESSION_COLUMNS["settlements"])).where(st.c.mode == mode))]
        vp = schema.venue_payouts
        payouts = [dict(r._mapping) for r in conn.execute(
            select(vp.c.kind, vp.c.market, vp.c.date, vp.c.amount).where(vp.c.mode == mode))]
    return {"trades": trades, "tokens": tokens, "rewards": rewards, "settlements": settlements, "payouts": payouts}
