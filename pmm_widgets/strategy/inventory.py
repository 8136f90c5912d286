"""Holdings of one market's two tokens, as the strategy sees them.

Why a tiny value type: quoting only needs the share counts of YES and NO, and the one number
that carries risk, the net YES-equivalent position. A YES and a NO share together are worth
exactly 1 at resolution (and can be merged), so a held pair is riskless; only `yes - no` moves
with the price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..domain import ZERO, Fill, Market, Outcome, Side


@dataclass(frozen=True, slots=True)
class Inventory:
    yes: Decimal = ZERO
    no: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """YES-equivalent exposure: positive means long YES, negative means long NO."""
        return self.yes - self.no

    @property
    def pairs(self) -> Decimal:
        """Shares held on both tokens at once: riskless, worth 1 each."""
        return min(self.yes, self.no)

    def after(self, fill: Fill, market: Market) -> "Inventory":
        """Holdings once `fill` (of one of this market's tokens) has settled."""
        delta = fill.size if fill.side is Side.BUY else -fill.size
        if market.outcome_of(fill.token_id) is Outcome.YES:
            return Inventory(self.yes + delta, self.no)
        return Inventory(self.yes, self.no + delta)


def net_delta(market: Market, token_id: str, side: Side, size: Decimal) -> Decimal:
    """How a fill of (token, side, size) changes the net YES-equivalent position."""
    signed = size if side is Side.BUY else -size
    return signed if token_id == market.yes_token_id else -signed
