"""Holdings of one market's two tokens, as the strategy sees them.

Why a tiny value type: quoting only needs the share counts of YES and NO, and the one number
that carries risk, the net YES-equivalent position. A YES and a NO share together are worth
exactly 1 at resolution (and can be merged), so a held pair is riskless; only `yes - no` moves
with the price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..domain import ZERO, Market, Side, slot_init


@slot_init
@dataclass(frozen=True, slots=True)
class Inventory:
    yes: Decimal = ZERO
    no: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """YES-equivalent exposure: positive means long YES, negative means long NO."""
        return self.yes - self.no


def net_delta(market: Market, token_id: str, side: Side, size: Decimal) -> Decimal:
    """How a fill of (token, side, size) changes the net YES-equivalent position."""
    signed = size if side is Side.BUY else -size
    return signed if token_id == market.yes_token_id else -signed
