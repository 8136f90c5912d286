"""Fee models of the paper exchange: what a fill costs (or earns) in fees, per market.

The venue charges takers only on every published market (makers pay 0; `polymarket-api.md` §7),
and maker rebates are a daily pool share, not a per-fill credit. Paper orders are post-only
makers, so a paper fill's fee is 0 unless a market's schedule charges makers too; the rebate the
fill accrues is reported beside it.

`fee(market, side, price, size, maker)` returns USD, positive = we pay. Plain code, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from ..domain import ZERO, Market, Side
from ..economics.fees import (
    NO_FEES,
    FeeSchedule,
    fee_schedule_of,
    fill_fee,
    rebate_accrual,
)


@runtime_checkable
class FeeModel(Protocol):
    def fee(self, market: Market | None, side: Side, price: Decimal, size: Decimal, maker: bool) -> Decimal: ...


class ZeroFeeModel:
    """No fees at all (the seed's assumption)."""

    def fee(self, market: Market | None, side: Side, price: Decimal, size: Decimal, maker: bool) -> Decimal:
        return ZERO


class ScheduleFeeModel:
    """The venue's rule per market, from Gamma's `feesEnabled` / `feeSchedule` (decoded into `Market.terms`):
    `economics.fees.fill_fee` (takers pay `C × rate × (p(1−p))^exponent`, makers pay only when
    the schedule is not taker-only). A market without a usable schedule charges nothing.

    `rebate(...)` is the maker rebate the fill accrues (`economics.fees.rebate_accrual`); it is
    paid later from a daily pool, so it is reported beside the fee, never netted into it."""

    def __init__(self) -> None:
        self._cache: dict[str, FeeSchedule] = {}

    def schedule(self, market: Market | None) -> FeeSchedule:
        if market is None:
            return NO_FEES
        s = self._cache.get(market.condition_id)
        if s is None:
            s, _problems = fee_schedule_of(market.terms)
            self._cache[market.condition_id] = s
        return s

    def fee(self, market: Market | None, side: Side, price: Decimal, size: Decimal, maker: bool) -> Decimal:
        return fill_fee(size, price, self.schedule(market), taker=not maker)

    def rebate(self, market: Market | None, price: Decimal, size: Decimal, maker: bool) -> Decimal:
        return rebate_accrual(size, price, self.schedule(market), taker=not maker)
