"""One state: the frozen snapshot the quote cycle produces once per cycle, and its display view.

Why one model: the numbers a fill moves (inventory, the PnL decomposition, fill counts) used to
take a Decimal shape in the cycle, a float shape in the engine (bridged by `getattr` on `Any`)
and a third in the replay summary. Now the cycle produces one `CycleSnapshot` (exact Decimals,
the ledger's `PnlParts` as they are), and every face gets `to_display()`: the float/str rows of
`engine/state.py` that widgets render and the lease's `state_json` carries to attached tabs
(whose JSON keys stay as they were). Persisted shapes keep their names: the `pnl` table rows
come from `PnlBook.rows` (DB columns), the replay/sweep summary from `SnapshotTotals.summary()`
(the `sweep_points` columns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from ..analytics.pnl import PnlParts
from ..domain import ZERO, Market
from .state import MarketRow, Totals

NO_PNL = PnlParts(ZERO, ZERO, ZERO, ZERO, ZERO, ZERO)


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """One market at the end of a cycle. Our resting quotes are in YES-space (`yes_bid`: our BUY
    YES price or 1 − our SELL NO price); `mid`/`spread` are the effective YES book's."""

    condition_id: str
    question: str
    status: str
    mid: Decimal | None = None
    spread: Decimal | None = None
    yes_bid: Decimal | None = None
    yes_ask: Decimal | None = None
    inventory_yes: Decimal = ZERO
    inventory_no: Decimal = ZERO
    pnl: PnlParts = NO_PNL
    rewards_per_hour: Decimal | None = None  # estimated liquidity reward, USD/h (None: no program)
    fills: int = 0
    fills_per_min: float = 0.0
    placed: int = 0
    calib_mult: float = 1.0
    strategy: str = ""
    regime: str = ""

    @property
    def no_bid(self) -> Decimal | None:
        """What the NO book shows of us as a bid: 1 − our YES ask."""
        return None if self.yes_ask is None else 1 - self.yes_ask

    @property
    def no_ask(self) -> Decimal | None:
        return None if self.yes_bid is None else 1 - self.yes_bid

    def to_display(self, rank: int) -> MarketRow:
        spread = _f(self.spread)
        if spread is None and self.yes_bid is not None and self.yes_ask is not None:
            spread = _f(self.yes_ask - self.yes_bid)
        return MarketRow(
            condition_id=self.condition_id, rank=rank, question=self.question, mid=_f(self.mid), spread=spread,
            yes_bid=_f(self.yes_bid), yes_ask=_f(self.yes_ask), no_bid=_f(self.no_bid), no_ask=_f(self.no_ask),
            inv_yes=_f0(self.inventory_yes), inv_no=_f0(self.inventory_no), pnl=_f0(self.pnl.total),
            fills=self.fills, fills_per_min=_f0(self.fills_per_min), status=self.status, strategy=self.strategy,
            rewards_per_hour=_f(self.rewards_per_hour),
        )


@dataclass(frozen=True, slots=True)
class SnapshotTotals:
    """Every market of the session (also those that left the universe) summed."""

    pnl: PnlParts = NO_PNL
    rewards_per_hour: Decimal = ZERO
    fills: int = 0
    fills_per_min: float = 0.0
    placed: int = 0
    cancels: int = 0
    rejected: int = 0
    open_orders: int = 0

    def to_display(self) -> Totals:
        p = self.pnl
        return Totals(
            pnl=_f0(p.total), realized=_f0(p.realized), unrealized=_f0(p.unrealized), spread=_f0(p.spread),
            inventory=_f0(p.inventory), fees=_f0(p.fees), rebates=_f0(p.rebates), rewards=_f0(p.rewards),
            settlement=_f0(p.settlement), rewards_per_hour=_f0(self.rewards_per_hour), fills=self.fills,
            fills_per_min=_f0(self.fills_per_min), placed=self.placed, cancels=self.cancels,
            open_orders=self.open_orders,
        )

    def summary(self) -> dict[str, float | int]:
        """The replay/sweep summary's PnL keys (columns of `sweep_points`: a contract)."""
        p = self.pnl
        return {
            "pnl_total": float(p.total), "realized": float(p.realized), "unrealized": float(p.unrealized),
            "spread_pnl": float(p.spread), "inventory_pnl": float(p.inventory),
            "inventory_usd": float(p.inventory_usd), "fees": float(p.fees), "rebates": float(p.rebates),
            "rewards": float(p.rewards), "settlement": float(p.settlement),
            "rewards_per_hour": float(self.rewards_per_hour), "cancels": self.cancels, "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True)
class CycleSnapshot:
    """What one quote cycle left behind: per-market rows (universe order) and totals."""

    ts: float
    markets: Mapping[str, MarketSnapshot]
    totals: SnapshotTotals

    def to_display(self, universe: Sequence[Market]) -> tuple[list[MarketRow], Totals]:
        """Rows for the faces, ranked by `universe` (the engine's current order; a market the
        cycle has not seen yet shows as `waiting`), and the display totals."""
        rows: list[MarketRow] = []
        for rank, m in enumerate(universe, 1):
            ms = self.markets.get(m.condition_id)
            row = ms.to_display(rank) if ms is not None else MarketRow(m.condition_id, rank, m.question,
                                                                       status="waiting")
            if not row.question:
                row.question = m.question
            rows.append(row)
        return rows, self.totals.to_display()


EMPTY = CycleSnapshot(0.0, {}, SnapshotTotals())


def _f(value: Decimal | float | int | None) -> float | None:
    """Decimal/int/float → finite float, else None (display only; NaN/inf would break JSON)."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _f0(value: Decimal | float | int | None) -> float:
    f = _f(value)
    return 0.0 if f is None else f
