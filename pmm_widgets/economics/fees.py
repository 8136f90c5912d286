"""Taker fees and maker rebates (polymarket-api.md §7), exact Decimal.

- Fee (CLOB V2, set by the operator at match time): `fee = C × rate × (p(1−p))^exponent` for C
  shares at price p. Only takers pay when `takerOnly` (every published market); otherwise both
  sides pay. Fees round to 5 dp with a minimum charge of 0.00001 (the reference). The rounding
  *mode* is not documented: we round half-up and say so in the note. py-clob-client-v2
  (`fees.py`, `adjust_buy_amount_for_fees`) uses the same formula, unrounded, for sizing BUYs.
- Rebates: a maker's share of the market's daily pool (`rebateRate × taker fees`) is its
  fee-equivalent (`C × rate × (p(1−p))^exponent` of its filled maker volume) over all makers'
  fee-equivalent. Each match has one maker and one taker of the same size and `p(1−p)` is the
  same on both tokens, so the makers' total equals the takers' total fee and a fill's rebate is
  exactly `rebateRate × its fee-equivalent`: `rebate_accrual` below, computed per fill by the
  engine and the sandbox alike. Payouts (daily, pUSD, minimum $1) are whole 6-dp base units.
- Bad venue data (negative rates, missing schedule when fees are on, odd exponent) never raises
  and never charges: the schedule falls back to "no fee" and each problem is reported so the
  caller can count and log it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ..domain import GammaTerms
from ..venue.gamma_terms import decode_fee_schedule, exact

ZERO = Decimal(0)
FEE_QUANTUM = Decimal("0.00001")  # fees round to 5 dp
MIN_FEE = Decimal("0.00001")  # minimum charge when a fee applies
PUSD_QUANTUM = Decimal("0.000001")  # pUSD base unit (6 dp): payouts
MIN_PAYOUT = Decimal(1)  # daily rebate / reward payouts below $1 are not paid
MAX_EXPONENT = 4


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A market's fee schedule as Gamma's `feeSchedule` (or CLOB `fd`) gives it."""

    rate: Decimal = ZERO
    exponent: int = 1
    taker_only: bool = True
    rebate_rate: Decimal = ZERO

    @property
    def charges(self) -> bool:
        return self.rate > 0

    @property
    def rate_bps(self) -> int:
        """`fee_rate_bps` as trades carry it: the rate in basis points (0.04 → 400)."""
        return int((self.rate * 10000).to_integral_value(rounding=ROUND_HALF_UP))

    def as_json(self) -> dict[str, Any]:
        """Gamma's `feeSchedule` object."""
        return {"exponent": self.exponent, "rate": float(self.rate), "takerOnly": self.taker_only,
                "rebateRate": float(self.rebate_rate)}

    def as_fd(self) -> dict[str, Any]:
        """`/clob-markets` `fd` object (rate, exponent, taker-only)."""
        return {"r": float(self.rate), "e": self.exponent, "to": self.taker_only}


NO_FEES = FeeSchedule()


def fee_schedule_of(terms: GammaTerms) -> tuple[FeeSchedule, list[str]]:
    """`(schedule, problems)` from a market's decoded Gamma terms (`Market.terms`). Never raises;
    a bad field makes the schedule charge nothing (never a wrong payment) and adds a problem."""
    problems = list(terms.fee_problems)
    sched = terms.fee_schedule
    if problems:
        return NO_FEES, problems
    if sched is None:
        if terms.fees_enabled is True:
            problems.append("feesEnabled but feeSchedule missing: no fee assumed")
        return NO_FEES, problems
    rate, rebate = sched.rate, sched.rebate_rate
    if sched.exponent != sched.exponent.to_integral_value():
        problems.append(f"feeSchedule unreadable (exponent {sched.exponent} is not an integer): no fee assumed")
        return NO_FEES, problems
    exponent = int(sched.exponent)
    if rate < 0 or rate >= 1:
        problems.append(f"feeSchedule rate {rate} outside [0, 1): no fee assumed")
        return NO_FEES, problems
    if not 0 <= exponent <= MAX_EXPONENT:
        problems.append(f"feeSchedule exponent {exponent} outside [0, {MAX_EXPONENT}]: no fee assumed")
        return NO_FEES, problems
    if rebate < 0 or rebate > 1:
        problems.append(f"feeSchedule rebateRate {rebate} outside [0, 1]: no rebate assumed")
        rebate = ZERO
    if terms.fees_enabled is False and rate > 0:
        # the venue charges per the schedule only where fees are enabled
        return FeeSchedule(ZERO, exponent, sched.taker_only, ZERO), problems
    return FeeSchedule(rate, exponent, sched.taker_only, rebate), problems


def parse_fee_schedule(fees_enabled: object, schedule: object) -> tuple[FeeSchedule, list[str]]:
    """`(schedule, problems)` from raw `feesEnabled` / `feeSchedule` values (the sandbox's own
    objects, tests): decoded by `venue.gamma_terms` exactly as a Gamma object is, then judged."""
    enabled, sched, problems = decode_fee_schedule(fees_enabled, schedule)
    return fee_schedule_of(GammaTerms(fees_enabled=enabled, fee_schedule=sched, fee_problems=problems))


def parse_fd(fd: object) -> tuple[FeeSchedule, list[str]]:
    """The `/clob-markets` `fd: {r, e, to}` object (no rebate rate there)."""
    if not isinstance(fd, Mapping):
        return parse_fee_schedule(None, None)
    return parse_fee_schedule(True, {"rate": fd.get("r", 0), "exponent": fd.get("e", 1),
                                     "takerOnly": fd.get("to", True), "rebateRate": 0})


def fee_equivalent(size: Decimal, price: Decimal, sched: FeeSchedule) -> Decimal:
    """`C × rate × (p(1−p))^exponent`, rounded like a fee (5 dp, half up, minimum 0.00001)."""
    if not sched.charges or size <= 0 or not (0 < price < 1):
        return ZERO
    raw = size * sched.rate * (price * (1 - price)) ** sched.exponent
    fee = raw.quantize(FEE_QUANTUM, rounding=ROUND_HALF_UP)
    return max(fee, MIN_FEE)


def fill_fee(size: Decimal, price: Decimal, sched: FeeSchedule, taker: bool) -> Decimal:
    """What the venue charges one fill in pUSD: the fee-equivalent for a taker, and for a maker
    only when the schedule is not taker-only."""
    if not taker and sched.taker_only:
        return ZERO
    return fee_equivalent(size, price, sched)


def rebate_accrual(size: Decimal, price: Decimal, sched: FeeSchedule, taker: bool) -> Decimal:
    """A maker fill's rebate: `rebateRate × fee-equivalent`, in pUSD to 6 dp (0 for takers)."""
    if taker or sched.rebate_rate <= 0:
        return ZERO
    return (sched.rebate_rate * fee_equivalent(size, price, sched)).quantize(PUSD_QUANTUM, rounding=ROUND_DOWN)


def payout(amount: Decimal) -> Decimal:
    """A daily payout: whole pUSD base units, rounded down; nothing under the $1 minimum."""
    a = amount.quantize(PUSD_QUANTUM, rounding=ROUND_DOWN)
    return a if a >= MIN_PAYOUT else ZERO


def fee_from_bps(size: Decimal, price: Decimal, fee_rate_bps: object, exponent: int = 1) -> Decimal | None:
    """The fee a trade's `fee_rate_bps` implies (live tape); None when the field is unreadable."""
    try:
        bps = exact(fee_rate_bps)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if bps < 0:
        return None
    return fee_equivalent(size, price, FeeSchedule(bps / 10000, exponent, True, ZERO))
