"""The attached session: an engine that found the DB lease held by another engine.

It never trades (it has no runtime: no exchange, no market data). It mirrors the owner's state
from the lease row (`state_json`, written at every renewal) and turns a face's actions into rows
of the `commands` table, which the owner applies at its next cycle: parameter and strategy
changes, pause/resume, and kill (whose verified result comes back the same way).

The `Engine` facade (`engine/core.py`) keeps one API for every face and dispatches on the role;
`RemoteParams` is what `engine.params` is while attached.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from ..config import Params, Settings
from ..events import EventKind, Level
from ..tasks import spawn, wait_set
from .commands import CommandQueue
from .lease import Lease, LeaseRow
from .state import EngineState, KillResult

KILLED = "the engine was killed: press Start to run a new one"


def kill_on_record(row: LeaseRow | None, commands: CommandQueue, now: float | None = None) -> str | None:
    """A kill the DB records and no operator cleared, in one phrase (None: none), for a lease row
    that no live engine holds: the row's state records it (`LeaseRow.kill`), or a face's `kill`
    command was never confirmed (`CommandQueue.unconfirmed_kill`: the owner ended without
    writing its result). An automatic start (a page's, a take-over) does not run over it; an
    explicit start clears it (and says so). Blocking SQL: call it in a worker thread."""
    if row is not None and (said := row.kill()) is not None:
        return said
    cmd = commands.unconfirmed_kill(now)
    if cmd is None:
        return None
    when = time.strftime("%H:%M:%S", time.localtime(cmd.ts))
    return f"a KILL sent by {cmd.origin} at {when}, never confirmed by an engine"


def jsonable(changes: dict[str, Any]) -> dict[str, Any]:
    """Command payload values: Decimal as str (exact through JSON)."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in changes.items()}


class AttachedSession:
    """Mirror the owner, send commands. `publish`/`state` are the facade's state slot."""

    def __init__(self, settings: Settings, lease: Lease, commands: CommandQueue, owner_id: str, *,
                 publish: Callable[[EngineState], None], state: Callable[[], EngineState],
                 emit: Callable[[Level, EventKind, str], object], tasks: set[asyncio.Task[Any]]) -> None:
        self.settings = settings
        self.lease = lease
        self.commands = commands
        self.owner_id = owner_id
        self._publish = publish
        self._state = state
        self._emit = emit
        self._tasks = tasks  # the facade's set: sends in flight are held until they land

    async def mirror(self, stop: asyncio.Event, role_evt: asyncio.Event, *, watch_only: bool = False,
                     auto_takeover: bool = False) -> bool:
        """Mirror the owner's state until stopped. True: the lease freed and we may take it over.

        `watch_only`: never take over, and end quietly (role idle) when nobody owns the lease."""
        self._publish(replace(self._state(), role="attached", running=True, last_error=None))
        self._emit(Level.INFO, EventKind.ATTACHED, "another engine owns this DB: attached (commands go through the DB)")
        while not stop.is_set():
            row = await asyncio.to_thread(self.lease.read)
            if row is not None and not row.expired() and row.owner != self.owner_id:
                owner_state = EngineState.from_json(row.state_json) if row.state_json else EngineState()
                self._publish(replace(owner_state, role="attached", owner=row.owner, running=True))
                role_evt.set()  # after the first mirror, so callers see the owner's state
            else:
                last = EngineState.from_json(row.state_json) if row is not None and row.state_json else None
                killed = await asyncio.to_thread(kill_on_record, row, self.commands)
                if killed is not None:  # killed: stay down until an explicit Start
                    why = KILLED if last is not None and last.kill is not None and last.kill.stopped else \
                        f"the engine was killed ({killed}): press Start to run a new one"
                    self._publish(replace(last if last is not None else self._state(), role="idle", running=False,
                                          owner="", last_error=why))
                    return False
                if watch_only:
                    if self._state().role == "attached":
                        self._publish(replace(self._state(), role="idle", running=False, owner="",
                                              last_error="the engine stopped: press Start to run one"))
                    return False
                if auto_takeover:
                    self._publish(replace(self._state(), role="idle"))
                    return True
                self._publish(replace(self._state(), running=False,
                                      last_error="no engine owns the DB lease: press Start to own it"))
                return False
            await wait_set(stop, self.settings.dashboard_refresh_sec)
        self._publish(replace(self._state(), running=False))
        return False

    def send(self, kind: str, payload: dict[str, Any]) -> None:
        """Insert a command row for the owner: in a worker thread when a loop runs (widget callbacks)."""
        what = f"{kind} {payload}" if payload else kind  # an empty payload is not shown (nor "{}")
        self._emit(Level.INFO, EventKind.COMMAND, f"sent {what} to the owner")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.commands.send(kind, payload)
            return
        spawn(asyncio.to_thread(self.commands.send, kind, payload), f"pmm-send-{kind}", self._tasks,
              lambda _t, exc: self._emit(Level.ERROR, EventKind.COMMAND, f"could not send {kind}: {exc}"))

    async def kill(self) -> tuple[KillResult, bool]:
        """Send `kill` and wait for the owner's verified result: (result, confirmed by the owner)."""
        cid = await asyncio.to_thread(self.commands.send, "kill", {})
        deadline = time.time() + max(10.0, 4 * self.settings.quote_refresh_sec + self.settings.lease_ttl_sec)
        while time.time() < deadline:
            res = await asyncio.to_thread(self.commands.result, cid)
            if res is not None:
                try:
                    kr = KillResult(**json.loads(res[1]))
                except (ValueError, TypeError):
                    kr = KillResult(res[0], 0, -1, False, f"owner answered: {res[1]}")
                self._publish(replace(self._state(), kill=kr))
                return kr, True
            await asyncio.sleep(0.2)
        kr = KillResult(time.time(), 0, -1, False, "kill sent, but the owner did not confirm in time")
        self._publish(replace(self._state(), kill=kr))
        return kr, False


class RemoteParams:
    """The `.params` of an attached engine: reads the owner's published values; assignments are
    validated locally with the same `Params` rules (so a bad value fails in the caller at once)
    and then sent to the owner as a `set_params` command."""

    def __init__(self, current: Callable[[], dict[str, Any]], send: Callable[[str, dict[str, Any]], None]) -> None:
        object.__setattr__(self, "_values", current)
        object.__setattr__(self, "_send", send)

    def _current(self) -> Params:
        return Params.model_validate(self._values() or {})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.update(**{name: value})

    def update(self, **changes: Any) -> RemoteParams:
        self._current().update(**changes)  # raises ValidationError like a local Params
        self._send("set_params", jsonable(changes))
        return self

    def model_dump(self) -> dict[str, Any]:
        return self._current().model_dump()
