"""Per-fill quality signals: markouts at several horizons and the realized spread.

Definitions (sign s = +1 for a BUY, −1 for a SELL; mids are the filled token's own mid):

- realized spread = s × (mid at fill − fill price): the edge captured against fair value at the
  moment of the fill (positive = we bought below / sold above mid);
- markout(h) = s × (mid at fill time + h − fill price): what the position is worth h seconds
  later; a markout well below the realized spread means the flow that filled us knew better
  (adverse selection).

Both are kept in price units and in USD (× size). The mid at t + h is the first mid seen at or
after t + h (the quote loop samples once per refresh, so up to one refresh late); if the book is
gone then, the last mid seen for that token is used. Each signal is one row of the `markouts`
table as soon as it is known (`store.recorder.DbRecorder.markout`): horizon 0 is the realized
spread (written at the fill), then one row per horizon. `trades.raw_json` keeps only the
venue's (or the fill model's) payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..domain import Fill, Side, slot_init
from ..store.recorder import DbRecorder, MarkoutRow, as_recorder
from ..store.sink import Sink

HORIZONS: tuple[float, ...] = (5.0, 30.0, 120.0)


def horizon_key(h: float) -> str:
    return f"{h:g}s"


@slot_init
@dataclass(frozen=True, slots=True)
class Markout:
    trade_id: str
    market: str
    horizon: float
    px: float  # price units
    usd: float


@dataclass(slots=True)
class MarkoutStats:
    """Running sums per market: enough for means, and JSON-serialisable for calibration state."""

    count: dict[str, int] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    rs_count: int = 0
    rs_total: float = 0.0

    def add_markout(self, h: float, px: float) -> None:
        k = horizon_key(h)
        self.count[k] = self.count.get(k, 0) + 1
        self.total[k] = self.total.get(k, 0.0) + px

    def add_realized_spread(self, px: float) -> None:
        self.rs_count += 1
        self.rs_total += px

    def mean(self, h: float) -> float | None:
        k = horizon_key(h)
        return self.total[k] / self.count[k] if self.count.get(k) else None

    @property
    def realized_spread_mean(self) -> float | None:
        return self.rs_total / self.rs_count if self.rs_count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "count": dict(self.count),
            "sum": dict(self.total),
            "mean": {k: self.total[k] / c for k, c in self.count.items() if c},
            "realized_spread_count": self.rs_count,
            "realized_spread_sum": self.rs_total,
            "realized_spread_mean": self.realized_spread_mean,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> MarkoutStats:
        d = d or {}
        return cls(
            count={k: int(v) for k, v in (d.get("count") or {}).items()},
            total={k: float(v) for k, v in (d.get("sum") or {}).items()},
            rs_count=int(d.get("realized_spread_count") or 0),
            rs_total=float(d.get("realized_spread_sum") or 0.0),
        )


@dataclass(slots=True)
class _Pending:
    fill: Fill
    sign: int
    next_idx: int = 0


def realized_spread(fill: Fill, mid: Decimal) -> float:
    s = 1 if fill.side is Side.BUY else -1
    return float(s * (mid - fill.price))


class MarkoutTracker:
    def __init__(self, sink: Sink | DbRecorder, horizons: tuple[float, ...] = HORIZONS) -> None:
        self.rec = as_recorder(sink)
        self.horizons = tuple(sorted(horizons))
        self._pending: list[_Pending] = []
        self._last_mid: dict[str, Decimal] = {}
        self._last_ts: dict[str, float] = {}  # when each token's last mid was seen

    def _row(self, p: _Pending, horizon: float, mid: Decimal, px: float, ts: float) -> MarkoutRow:
        f = p.fill
        return MarkoutRow(f.trade_id, f.market, f.token_id, f.side.value, f.mode.value, horizon, f.ts, f.price, f.size,
                          mid, px, px * float(f.size), ts)

    def on_fill(self, fill: Fill, mid_at_fill: Decimal | None) -> float | None:
        """Start tracking a fill; returns its realized spread (price units) when the mid is known
        (then also its `markouts` row at horizon 0). A mid given is the token's last mid seen from
        then on, unless a later one was seen already (a fill reported late)."""
        p = _Pending(fill, 1 if fill.side is Side.BUY else -1)
        rs: float | None = None
        tok = fill.token_id
        if mid_at_fill is None:
            mid_at_fill = self._last_mid.get(tok)
        elif fill.ts >= self._last_ts.get(tok, fill.ts):
            self._last_mid[tok] = mid_at_fill
            self._last_ts[tok] = fill.ts
        if mid_at_fill is not None:
            rs = realized_spread(fill, mid_at_fill)
            self.rec.markout(self._row(p, 0.0, mid_at_fill, rs, fill.ts))
        self._pending.append(p)
        return rs

    def advance(self, now: float, mid_of: Callable[[str], Decimal | None]) -> list[Markout]:
        """Complete the horizons that are due at `now`: one `markouts` row each. `mid_of` (the
        token's mid now: a read of the cycle's books) is asked once per token, not once per fill."""
        done: list[Markout] = []
        still: list[_Pending] = []
        seen: dict[str, Decimal | None] = {}  # each token's mid, asked once (`mid_of` reads this cycle's books)
        for p in self._pending:
            tok = p.fill.token_id
            if tok in seen:
                mid = seen[tok]
            else:
                mid = mid_of(tok)
                if mid is not None:
                    self._last_mid[tok] = mid
                    self._last_ts[tok] = now
                else:
                    mid = self._last_mid.get(tok)
                seen[tok] = mid
            while p.next_idx < len(self.horizons) and now >= p.fill.ts + self.horizons[p.next_idx]:
                h = self.horizons[p.next_idx]
                p.next_idx += 1
                if mid is None:
                    continue
                px = float(p.sign * (mid - p.fill.price))
                row = self._row(p, h, mid, px, now)
                self.rec.markout(row)
                done.append(Markout(p.fill.trade_id, p.fill.market, h, px, row.markout_usd))
            if p.next_idx < len(self.horizons):
                still.append(p)
        self._pending = still
        return done

    @property
    def pending(self) -> int:
        return len(self._pending)
