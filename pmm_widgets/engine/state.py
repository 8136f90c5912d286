"""The engine's observable state and event stream: what every face (status line, widgets,
charts, an attached tab) reads.

Why plain dataclasses of floats and strings: the same snapshot is rendered by the headless
runner, streamed into Bokeh sources, and serialised into the lease row for attached faces, so
it must be cheap to copy and JSON-safe. The exact (Decimal) numbers are the quote cycle's
`CycleSnapshot` (`engine/snapshot.py`), whose `to_display()` makes these rows, for display only;
nothing trades off these numbers. The field names are the lease's `state_json` keys that
attached faces read: keep them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

from ..events import Event, EventBus

Role = str  # "idle" (not started), "owner" (trades), "attached" (reads the owner's state)


@dataclass(slots=True)
class MarketRow:
    """One line of the universe table."""

    condition_id: str
    rank: int
    question: str
    mid: float | None = None
    spread: float | None = None
    yes_bid: float | None = None
    yes_ask: float | None = None
    no_bid: float | None = None
    no_ask: float | None = None
    inv_yes: float = 0.0
    inv_no: float = 0.0
    pnl: float = 0.0
    fills: int = 0
    fills_per_min: float = 0.0
    status: str = ""
    strategy: str = ""
    rewards_per_hour: float | None = None  # estimated liquidity reward, USD/h (None: no program)


@dataclass(slots=True)
class Totals:
    pnl: float = 0.0
    realized: float = 0.0
    unrealized: float = 0.0
    # the PnL decomposition (total = spread + inventory + settlement - fees + rebates + rewards)
    spread: float = 0.0
    inventory: float = 0.0
    fees: float = 0.0
    rebates: float = 0.0
    rewards: float = 0.0
    settlement: float = 0.0
    rewards_per_hour: float = 0.0
    fills: int = 0
    fills_per_min: float = 0.0
    placed: int = 0
    cancels: int = 0
    open_orders: int = 0


@dataclass(slots=True)
class FeedState:
    connected: bool = False
    lag_sec: float | None = None
    reconnects: int = 0
    stale_tokens: int = 0


# the kill's result in the state from before its cancel (`OwnerSession._shutdown_steps`): the lease renewals
# that land carry it, so a kill whose final release the DB never took is still on record
# (`attached.kill_on_record`); the faces show it as under way, not as a result (`KillResult.under_way`)
KILL_UNDER_WAY = "KILL under way: cancelling every order"


@dataclass(slots=True)
class KillResult:
    """What the KILL button shows: orders cancelled, what the venue still reports, stopped or not."""

    ts: float
    cancelled: int
    venue_open_after: int
    stopped: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.stopped and self.venue_open_after == 0

    @property
    def under_way(self) -> bool:
        """The kill's cancel has begun and its result is not in yet (`KILL_UNDER_WAY`)."""
        return not self.stopped and self.message == KILL_UNDER_WAY


@dataclass(slots=True)
class EngineState:
    """A snapshot, replaced (not mutated) once per quote cycle by the owner."""

    role: Role = "idle"
    mode: str = "paper"
    running: bool = False
    paused: bool = False
    pause_note: str = ""  # why and who paused ("deadman by …", "pause by <issuer> at 10:31:02")
    owner: str = ""
    venue: str = ""
    tick: int = 0
    ts: float = 0.0
    started_ts: float | None = None
    markets: list[MarketRow] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    feed: FeedState = field(default_factory=FeedState)
    writer_lag_sec: float | None = None
    writer: str = ""  # the writer's health phrase: "db lag 0.2s", plus queued rows / FAULT when unhealthy
    halted: str | None = None  # why quoting is halted for safety (lease, db, writer), else None
    venue_health: str = ""  # live/dry-run: user stream, venue heartbeat, halted valve; "" in paper
    recording: str = ""  # the recorder's trouble: "recording FAILING (…)" / "recording PAUSED (…)", else ""
    last_error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    kill: KillResult | None = None
    handover_ts: float | None = None  # final state of a page-owned engine stopped for a reload

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineState:
        """Rebuild a snapshot from the lease row; unknown keys (a newer owner) are ignored."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["markets"] = [_build(MarketRow, m) for m in data.get("markets") or []]
        kw["totals"] = _build(Totals, data.get("totals") or {})
        kw["feed"] = _build(FeedState, data.get("feed") or {})
        kw["kill"] = _build(KillResult, data["kill"]) if data.get("kill") else None
        return cls(**kw)


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def params_to_json(params: Any) -> dict[str, Any]:
    """Params → JSON-safe dict (Decimal as str so exact values survive the lease row)."""
    out: dict[str, Any] = {}
    for k, v in params.model_dump().items():
        out[k] = str(v) if isinstance(v, Decimal) else v
    return out


# The engine's event stream is the package's one event flow (`pmm_widgets.events`); the old
# names stay importable for faces and notebooks.
EngineEvent = Event
EventLog = EventBus
