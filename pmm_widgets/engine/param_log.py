"""Live parameters persisted in `param_changes`: one row per changed field, with who and when.

Why append-only rows and not one current-values row: the table is also the audit trail the
issue asks for (who raised α, when), and "restore" is simply the newest row per name. Values
are validated again by `Params.update` when restored, so a row written by an older build (or
by hand) that no longer validates is skipped and reported, never applied.

Blocking SQL; the engine calls these through `asyncio.to_thread`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..store.schema import param_changes


@dataclass(frozen=True, slots=True)
class ParamValue:
    value: Any
    changed_by: str
    ts: float


def _jsonable(v: Any) -> Any:
    return str(v) if isinstance(v, Decimal) else v


def record(db: sa.Engine, changes: dict[str, Any], changed_by: str, ts: float | None = None) -> None:
    if not changes:
        return
    ts = time.time() if ts is None else ts
    rows = [{"ts": ts, "changed_by": changed_by[:200], "name": k, "value_json": {"v": _jsonable(v)}}
            for k, v in changes.items()]
    with db.begin() as conn:
        conn.execute(sa.insert(param_changes), rows)


def latest(db: sa.Engine) -> dict[str, ParamValue]:
    """The newest value of every parameter ever changed."""
    t = param_changes
    newest = sa.select(t.c.name, sa.func.max(t.c.id).label("id")).group_by(t.c.name).subquery()
    q = sa.select(t.c.name, t.c.value_json, t.c.changed_by, t.c.ts).join(newest, t.c.id == newest.c.id)
    out: dict[str, ParamValue] = {}
    with db.connect() as conn:
        for name, vj, by, ts in conn.execute(q):
            if isinstance(vj, dict) and "v" in vj:
                out[name] = ParamValue(vj["v"], by or "", float(ts))
    return out
