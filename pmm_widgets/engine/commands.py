"""The command queue from attached faces to the owning engine (`commands` table).

Why a table: an attached face (second Voilà tab, JupyterLab beside a headless run) has no
channel to the owner but the shared DB. It inserts a row; the owner polls once per quote cycle,
validates (`Params.update`, the same rules as env and sliders), applies, and writes `applied_at`
and a one-line `result` the face can show. Commands issued before the owner took the lease are
expired rather than applied: a stale KILL must not hit a fresh engine.

Blocking SQL; called through `asyncio.to_thread`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..store.schema import commands

KINDS = ("set_params", "set_strategy", "pause", "resume", "kill")


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    ts: float
    issuer: str
    kind: str
    payload: dict[str, Any]


class CommandQueue:
    def __init__(self, db: sa.Engine, issuer: str) -> None:
        self.db = db
        self.issuer = issuer

    def send(self, kind: str, payload: dict[str, Any] | None = None) -> int:
        if kind not in KINDS:
            raise ValueError(f"unknown command {kind!r}; expected one of {', '.join(KINDS)}")
        with self.db.begin() as conn:
            res = conn.execute(
                sa.insert(commands).values(ts=time.time(), issuer=self.issuer, kind=kind, payload_json=payload or {})
            )
            return int(res.inserted_primary_key[0])

    def pending(self) -> list[Command]:
        c = commands
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(c).where(c.c.applied_at.is_(None)).order_by(c.c.id)).mappings().all()
        return [Command(r["id"], r["ts"], r["issuer"] or "", r["kind"], dict(r["payload_json"] or {})) for r in rows]

    def mark_applied(self, command_id: int, result: str) -> None:
        c = commands
        with self.db.begin() as conn:
            conn.execute(sa.update(c).where(c.c.id == command_id).values(applied_at=time.time(), result=result[:1000]))

    def expire_before(self, ts: float) -> int:
        """Mark commands nobody applied before `ts` (the owner's start) as expired."""
        c = commands
        with self.db.begin() as conn:
            res = conn.execute(
                sa.update(c)
                .where(c.c.applied_at.is_(None), c.c.ts < ts)
                .values(applied_at=time.time(), result="expired: no engine was running")
            )
            return res.rowcount

    def result(self, command_id: int) -> tuple[float, str] | None:
        """(applied_at, result) once the owner has applied the command, else None."""
        c = commands
        with self.db.connect() as conn:
            r = conn.execute(sa.select(c.c.applied_at, c.c.result).where(c.c.id == command_id)).first()
        if r is None or r[0] is None:
            return None
        return float(r[0]), str(r[1] or "")
