"""The command queue from attached faces to the owning engine (`commands` table).

Why a table: an attached face (second Voilà tab, JupyterLab beside a headless run) has no
channel to the owner but the shared DB. It inserts a row; the owner polls once per quote cycle,
validates (`Params.update`, the same rules as env and sliders), applies, and writes `applied_at`
and a one-line `result` the face can show.

The table is a control plane with no authentication of its own: whoever can write the DB can
pause, re-parameterise or kill the engine (the README says so). What protects it is therefore
(1) validation (`Params` bounds every limit, so a forged `set_params` of 1e15 is rejected),
(2) expiry judged by the *owner's* clock: a command written before the owner took the lease, or
older than `max_age_sec`, is expired; one dated more than `FUTURE_SKEW_SEC` ahead of the owner's
clock is rejected (a forged or skewed timestamp cannot make a stale KILL live forever), and
(3) attribution: every row carries `issuer` (the sending engine's owner id) and `sender`
(OS user@host, pid and face), shown with the result in the events.

Blocking SQL; called through `asyncio.to_thread`.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..store.schema import commands

KINDS = ("set_params", "set_strategy", "pause", "resume", "kill")
# a command dated further ahead than this (by the owner's clock) is rejected, never kept
FUTURE_SKEW_SEC = 5.0
# default life of a command; the engine passes its own (covering an attached face's kill wait)
DEFAULT_MAX_AGE_SEC = 60.0


def default_sender(face: str = "") -> str:
    """`user@host pid N (face)`: who wrote a command, for the audit trail (no secret in it)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "?"
    out = f"{user}@{socket.gethostname()} pid {os.getpid()}"
    return f"{out} ({face})" if face else out


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    ts: float
    issuer: str
    kind: str
    payload: dict[str, Any]
    sender: str = ""

    @property
    def origin(self) -> str:
        """Who sent it, for messages: the sender, else the issuer, else 'unknown'."""
        return self.sender or self.issuer or "unknown sender"


class CommandQueue:
    def __init__(self, db: sa.Engine, issuer: str, *, sender: str | None = None,
                 max_age_sec: float = DEFAULT_MAX_AGE_SEC) -> None:
        self.db = db
        self.issuer = issuer
        self.sender = (sender if sender is not None else default_sender())[:200]
        self.max_age_sec = max_age_sec

    def send(self, kind: str, payload: dict[str, Any] | None = None) -> int:
        if kind not in KINDS:
            raise ValueError(f"unknown command {kind!r}; expected one of {', '.join(KINDS)}")
        with self.db.begin() as conn:
            res = conn.execute(
                sa.insert(commands).values(ts=time.time(), issuer=self.issuer, sender=self.sender, kind=kind,
                                           payload_json=payload or {})
            )
            pk = res.inserted_primary_key
            assert pk is not None, "an INSERT of one row returns its primary key"
            return int(pk[0])

    def pending(self, now: float | None = None) -> list[Command]:
        """Commands to apply now, oldest first. Rows too old or dated in the future (owner's
        clock `now`) are closed here with an `expired:`/`rejected:` result and not returned."""
        now = time.time() if now is None else now
        c = commands
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(c).where(c.c.applied_at.is_(None)).order_by(c.c.id)).mappings().all()
        out: list[Command] = []
        for r in rows:
            cmd = Command(r["id"], float(r["ts"]), r["issuer"] or "", r["kind"], _payload(r["payload_json"]),
                          r["sender"] or "")
            verdict = self.verdict(cmd, now)
            if verdict is None:
                out.append(cmd)
            else:
                self.mark_applied(cmd.id, verdict)
        return out

    def verdict(self, cmd: Command, now: float) -> str | None:
        """None if `cmd` may be applied at owner time `now`, else the result that closes it."""
        if cmd.ts > now + FUTURE_SKEW_SEC:
            return (f"rejected: dated {cmd.ts - now:.0f}s in the future by the owner's clock "
                    f"(more than {FUTURE_SKEW_SEC:g}s of skew)")
        if cmd.ts < now - self.max_age_sec:
            return f"expired: written {now - cmd.ts:.0f}s ago (commands live {self.max_age_sec:g}s)"
        return None

    def mark_applied(self, command_id: int, result: str) -> None:
        c = commands
        with self.db.begin() as conn:
            conn.execute(sa.update(c).where(c.c.id == command_id).values(applied_at=time.time(), result=result[:1000]))

    def expire_before(self, ts: float) -> int:
        """At the owner's start `ts`: close every command nobody applied that was written before
        it (a stale KILL must not hit a fresh engine) or dated beyond the skew after it (a
        future-dated row is not a way to outlive the expiry)."""
        c = commands
        with self.db.begin() as conn:
            stale = conn.execute(
                sa.update(c)
                .where(c.c.applied_at.is_(None), c.c.ts < ts)
                .values(applied_at=time.time(), result="expired: no engine was running")
            ).rowcount
            future = conn.execute(
                sa.update(c)
                .where(c.c.applied_at.is_(None), c.c.ts > ts + FUTURE_SKEW_SEC)
                .values(applied_at=time.time(), result="rejected: dated in the future by the owner's clock")
            ).rowcount
        return stale + future

    def unconfirmed_kill(self, now: float | None = None) -> Command | None:
        """The newest `kill` nobody applied (none dated beyond the skew): a face asked for a kill
        that no engine confirmed (the owner ended, or its stop could not write the result, when
        the DB did not answer). An automatic start does not run over it (`Engine.start`); an
        owner's start closes it (`expire_before`). Read only."""
        now = time.time() if now is None else now
        c = commands
        with self.db.connect() as conn:
            r = conn.execute(sa.select(c).where(c.c.applied_at.is_(None), c.c.kind == "kill",
                                                c.c.ts <= now + FUTURE_SKEW_SEC)
                             .order_by(c.c.id.desc()).limit(1)).mappings().first()
        if r is None:
            return None
        return Command(r["id"], float(r["ts"]), r["issuer"] or "", r["kind"], _payload(r["payload_json"]),
                       r["sender"] or "")

    def result(self, command_id: int) -> tuple[float, str] | None:
        """(applied_at, result) once the owner has applied the command, else None."""
        c = commands
        with self.db.connect() as conn:
            r = conn.execute(sa.select(c.c.applied_at, c.c.result).where(c.c.id == command_id)).first()
        if r is None or r[0] is None:
            return None
        return float(r[0]), str(r[1] or "")


def _payload(value: Any) -> dict[str, Any]:
    """A row's payload as a dict; anything else (a forged list or string) is an empty payload."""
    return dict(value) if isinstance(value, dict) else {}
