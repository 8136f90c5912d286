"""Fee models of the paper exchange: what a fill costs (or earns) in fees, per market.

The venue charges takers only (makers pay 0; see `polymarket-api.md` §7), and maker rebates are a
daily pool share, not a per-fill credit. Paper orders are post-only makers, so today every paper
fill's fee is 0; the protocol exists so taker fills (and a per-fill rebate estimate, once the
venue economics work gives one) have one place to come from.

`fee(market, side, price, size, maker)` returns USD, positive = we pay. Plain code, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from ..domain import ZERO, Market, Side


@runtime_checkable
class FeeModel(Protocol):
    def fee(self, market: Market | None, side: Side, price: Decimal, size: Decimal, maker: bool) -> Decimal: ...


class ZeroFeeModel:
    """No fees at all (the seed's assumption)."""

    def fee(self, market: Market | None, side: Side, price: Decimal, size: Decimal, maker: bool) -> Decimal:
        return ZERO
