"""One event flow: a typed `Event`, the `EventKind`/`Level` enums and the `EventBus` every
producer emits on.

Why one bus: risk, the cycle's strategy guard, the exchanges (paper and live), the economics
tracker and the engine all report things a person must see (a breach, a reconcile, a halt). They
emit on the one bus the engine injects; exactly one subscriber persists each event (one `events`
row, `data_json` when there is data: `store.recorder.DbRecorder.event`) and the faces subscribe
for their log (the dashboard, the headless runner). A component built without an engine (a unit
test, a replay) gets a bus of its own that persists through its recorder
(`store.recorder.persisting_bus`).

The enum values are the strings of the `events.kind` column (a contract for notebooks and tools):
`EventKind` is a `StrEnum`, so `ev.kind == "risk_breach"` keeps working. Pure: no I/O, no imports
from the rest of the package.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class EventKind(StrEnum):
    """Every `events.kind` value the package writes (values are the column's contract)."""

    # engine life cycle and faces
    ENGINE_START = "engine_start"
    ENGINE_STOP = "engine_stop"
    ERROR = "error"
    ATTACHED = "attached"
    COMMAND = "command"
    PARAMS = "params"
    LEASE = "lease"
    DB = "db"
    WRITER = "writer"
    RETENTION = "retention"
    UNIVERSE = "universe"
    RESOLUTION = "resolution"
    RESTORE = "restore"
    PAUSE = "pause"
    PAUSE_BUTTON = "pause button"
    RESUME = "resume"
    DEADMAN = "deadman"
    KILL = "kill"
    CYCLE_ERROR = "cycle_error"
    CIRCUIT_OPEN = "circuit_open"
    CIRCUIT_CLOSED = "circuit_closed"
    # risk and strategies
    RISK_BREACH = "risk_breach"
    RISK_KILL = "risk_kill"
    STRATEGY = "strategy"
    STRATEGY_GUARD = "strategy_guard"
    STRATEGY_REGIME = "strategy_regime"
    # venue
    RECONCILE = "reconcile"
    DISCONNECT_CANCEL = "disconnect_cancel"
    VENUE_DATA = "venue_data"


@dataclass(frozen=True, slots=True)
class Event:
    """One event: what every subscriber receives and what one `events` row stores."""

    ts: float
    level: Level
    kind: EventKind
    message: str
    market: str | None = None
    data: Mapping[str, Any] | None = None  # the row's data_json (None: no data)


Subscriber = Callable[[Event], None]


class EventBus:
    """The emitter: a bounded ring of recent events with synchronous subscribers.

    Why callbacks and not a queue: a face just appends a line and the persisting subscriber only
    queues a row for the batched writer; a subscriber that raises is skipped for that event and
    never hurts the producer (an exchange, the risk stage)."""

    def __init__(self, maxlen: int = 500, clock: Callable[[], float] = time.time) -> None:
        self._ring: deque[Event] = deque(maxlen=maxlen)
        self._subs: list[Subscriber] = []
        self._clock = clock

    def emit(self, level: Level | str, kind: EventKind | str, message: str, market: str | None = None, *,
             data: Mapping[str, Any] | None = None, ts: float | None = None) -> Event:
        """Publish one event. `level`/`kind` may be given by value ("WARNING", "risk_breach");
        an unknown one raises ValueError (a typo must not invent a new `events.kind`)."""
        ev = Event(self._clock() if ts is None else ts, Level(level), EventKind(kind), message, market,
                   dict(data) if data is not None else None)
        self.publish(ev)
        return ev

    def publish(self, ev: Event) -> None:
        self._ring.append(ev)
        for cb in list(self._subs):
            try:
                cb(ev)
            except Exception:  # a broken face must not break the engine
                pass

    def subscribe(self, cb: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subs.append(cb)
        return lambda: self._subs.remove(cb) if cb in self._subs else None

    def recent(self, n: int = 50) -> list[Event]:
        return list(self._ring)[-n:]
