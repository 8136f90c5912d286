"""One quoting engine per database: a lease row in `engine_lease`.

Why a DB lease and not a lock file: Voilà starts one kernel per page load and JupyterLab or a
headless run may sit beside it, possibly on another host sharing a PostgreSQL DB. The DB is the
one thing all of them share. The row is taken atomically (a conditional UPDATE that steals only
an expired lease, else an INSERT guarded by the primary key), renewed every few seconds, and
carries the owner's serialised state so attached faces can show it without a second engine.

All methods are blocking (SQL); the engine calls them through `asyncio.to_thread`.

Timing (`LeaseTimer`, issue 17 C1): the owner renews every `period` (TTL/6, at most 1 s) and
counts how long it has gone without a successful renewal. After `halt_after` (TTL/3) it halts:
stops quoting and cancels, with two thirds of the TTL still its own, so the cancel is finished
before the lease can expire and a second engine take over. `renewed_at` is the time *before* the
renewing statement ran (the expiry it wrote is that + TTL), so a renewal that sat behind a lock
never overstates how long the lease is proven.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..store.schema import engine_lease

# One quoting engine per DB, whatever the mode: paper and live sharing a DB must not both quote.
LEASE_NAME = "engine"


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class LeaseRow:
    name: str
    owner: str
    expires_at: float
    heartbeat_at: float
    state_json: dict[str, Any] | None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at < (time.time() if now is None else now)

    def kill(self) -> str | None:
        """The kill this row's state records, in one phrase (None: none): the final state of a
        killed engine (`kill`: its result), or the state of one whose kill was under way when
        its last renewal landed (its final release never did: the result is not `stopped`)."""
        kill = (self.state_json or {}).get("kill")
        if not isinstance(kill, dict):
            return None
        when = time.strftime("%H:%M:%S", time.localtime(float(kill.get("ts") or 0.0)))
        said = f"{kill.get('message') or 'KILLED'} at {when}"
        return said if kill.get("stopped") else f"{said}, its end never recorded"


class LeaseTimer:
    """Pure timing of the owner's proof of holding the lease (no IO, testable with any clock)."""

    def __init__(self, ttl_sec: float, proven_at: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_sec = ttl_sec
        self.period = min(1.0, ttl_sec / 6)
        self.halt_after = ttl_sec / 3
        self._proven_at = proven_at
        self._clock = clock

    def proven(self, at: float) -> None:
        """A renewal that started at `at` succeeded: the lease is ours until `at + ttl`."""
        self._proven_at = max(self._proven_at, at)

    def silent(self) -> float:
        """Seconds since the last proof."""
        return self._clock() - self._proven_at

    def left(self) -> float:
        """Seconds until the lease (as last proven) expires; negative once it has."""
        return self.ttl_sec - self.silent()

    def must_halt(self) -> bool:
        return self.silent() >= self.halt_after


class Lease:
    def __init__(self, db: sa.Engine, ttl_sec: float, name: str = LEASE_NAME, owner: str | None = None) -> None:
        self.db = db
        self.ttl_sec = ttl_sec
        self.name = name
        self.owner = owner or new_owner_id()
        self.held = False
        self.renewed_at: float | None = None  # start time of the last successful acquire/renew

    def try_acquire(self, now: float | None = None, *, refuse: Callable[[LeaseRow], bool] | None = None) -> bool:
        """Take the lease if it is free, expired or already ours. Atomic on SQLite and PostgreSQL.

        `refuse`: an automatic start's (a page's, a take-over): an expired row of another owner
        for which it says True is not taken (a killed engine's); one it lets pass is taken as it
        was read, or not at all (a kill recorded in it meanwhile is never taken over)."""
        now = time.time() if now is None else now
        t = engine_lease
        if refuse is not None:
            row = self.read()
            if row is not None and row.owner != self.owner:
                if not row.expired(now) or refuse(row):
                    return False
                with self.db.begin() as conn:
                    res = conn.execute(
                        sa.update(t)
                        .where(t.c.name == self.name, t.c.owner == row.owner, t.c.expires_at == row.expires_at,
                               t.c.heartbeat_at == row.heartbeat_at)
                        .values(owner=self.owner, expires_at=now + self.ttl_sec, heartbeat_at=now, state_json=None)
                    )
                if res.rowcount != 1:
                    return False  # changed since it was read: the caller looks again
                self.held = True
                self.renewed_at = now
                return True
        with self.db.begin() as conn:
            res = conn.execute(
                sa.update(t)
                .where(t.c.name == self.name, sa.or_(t.c.expires_at < now, t.c.owner == self.owner))
                .values(owner=self.owner, expires_at=now + self.ttl_sec, heartbeat_at=now, state_json=None)
            )
            if res.rowcount == 1:
                self.held = True
                self.renewed_at = now
                return True
        try:
            with self.db.begin() as conn:
                conn.execute(
                    sa.insert(t).values(
                        name=self.name, owner=self.owner, expires_at=now + self.ttl_sec, heartbeat_at=now, state_json=None
                    )
                )
        except IntegrityError:
            return False  # held by a live owner (or another contender won the insert)
        self.held = True
        self.renewed_at = now
        return True

    def renew(self, state_json: dict[str, Any] | None = None, now: float | None = None) -> bool:
        """Extend our lease (and publish state). False means we lost it: the caller must stop trading.

        A row released with a final state (`release`: expires_at 0) is never renewed: a renewal
        the DB applies after the release (its thread was still waiting on the DB when a stop's
        budget ran out and the release went ahead) must not make the stopped owner look alive
        again, with its running state over the final one, for a whole TTL."""
        now = time.time() if now is None else now
        t = engine_lease
        values: dict[str, Any] = {"expires_at": now + self.ttl_sec, "heartbeat_at": now}
        if state_json is not None:
            values["state_json"] = state_json
        with self.db.begin() as conn:
            res = conn.execute(sa.update(t).where(t.c.name == self.name, t.c.owner == self.owner,
                                                  t.c.expires_at != 0.0).values(**values))
        self.held = res.rowcount == 1
        if self.held:
            self.renewed_at = now
        return self.held

    def release(self, final_state: dict[str, Any] | None = None, *, fence: float | None = None) -> bool:
        """Give the lease up (only if still ours), so the next face can own immediately. False:
        the row was not ours (any more) and nothing changed.

        With `final_state` the row is kept, expired, carrying that state: attached faces then see
        *why* the engine ended (a kill) instead of a vanished owner, and do not take over.

        Only the row as this run renewed it: one whose heartbeat is later than this call (the
        same engine started again and took the lease anew) is another run's. A release left
        waiting on a DB that did not answer (a stop's deadline cut it) used to land on it when
        the DB answered, and that run lost its lease ("lease lost to another engine"). `fence`:
        the latest heartbeat of this run (default: now; a release tried again later passes the
        time its run stopped renewing)."""
        t = engine_lease
        fence = time.time() if fence is None else fence
        with self.db.begin() as conn:
            mine = sa.and_(t.c.name == self.name, t.c.owner == self.owner, t.c.heartbeat_at <= fence)
            if final_state is None:
                res = conn.execute(sa.delete(t).where(mine))
            else:
                res = conn.execute(sa.update(t).where(mine).values(expires_at=0.0, state_json=final_state))
        self.held = False
        return bool(res.rowcount)

    def read(self) -> LeaseRow | None:
        t = engine_lease
        with self.db.connect() as conn:
            r = conn.execute(sa.select(t).where(t.c.name == self.name)).mappings().first()
        if r is None:
            return None
        return LeaseRow(r["name"], r["owner"], r["expires_at"], r["heartbeat_at"], r["state_json"])
