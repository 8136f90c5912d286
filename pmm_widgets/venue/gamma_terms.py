"""Decode a Gamma market object's economics fields into `domain.GammaTerms`, once, at the edge.

`venue/gamma.py` `parse_market` calls `decode_terms` for every market it parses (and
`store/recording.py` for markets read back from a recording), so fee and reward code reads typed
fields (`Market.terms`), never `Market.raw`.

What is checked here is only the *type* of each field (a number is an exact Decimal, a list is a
list, an object an object). A field that does not decode becomes None or is left out, with its
reason in `fee_problems` / `reward_problems`; nothing raises. Whether the values make sense
(negative rates, a fractional exponent, a pool with a max spread of 0) is decided in
`economics/fees.py` `fee_schedule_of` and `economics/rewards.py` `program_of`, which also turn
these problems into `venue_data` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..domain import ONE, GammaFeeSchedule, GammaTerms


def exact(x: object) -> Decimal:
    """A JSON number or numeric string as an exact, finite Decimal (floats by their repr);
    InvalidOperation for anything else (bool and None included)."""
    if isinstance(x, bool) or x is None:
        raise InvalidOperation(f"not a number: {x!r}")
    if isinstance(x, Decimal):
        d = x
    elif isinstance(x, float):
        d = Decimal(repr(x))
    else:
        d = Decimal(str(x).strip())
    if not d.is_finite():
        raise InvalidOperation(f"not finite: {x!r}")
    return d


def decode_fee_schedule(fees_enabled: object, schedule: object
                        ) -> tuple[bool | None, GammaFeeSchedule | None, tuple[str, ...]]:
    """`(feesEnabled, feeSchedule, problems)`: `feesEnabled` is kept only when it is a JSON bool;
    a missing or null `feeSchedule` is None without a problem (economics decides whether that is one)."""
    enabled = fees_enabled if isinstance(fees_enabled, bool) else None
    if schedule is None:
        return enabled, None, ()
    if not isinstance(schedule, Mapping):
        return enabled, None, (f"feeSchedule is not an object: {type(schedule).__name__}",)
    try:
        rate = exact(schedule.get("rate", 0) or 0)
        rebate = exact(schedule.get("rebateRate", 0) or 0)
        exp_raw = schedule.get("exponent", 1)
        exponent = ONE if exp_raw is None else exact(exp_raw)
    except (InvalidOperation, ValueError, TypeError) as exc:
        return enabled, None, (f"feeSchedule unreadable ({exc}): no fee assumed",)
    taker_only = schedule.get("takerOnly")  # missing or null: the published default, true
    if taker_only is not None and not isinstance(taker_only, bool):  # "false" is not False (bool() said True)
        return enabled, None, (f"feeSchedule unreadable (takerOnly {taker_only!r} is not a boolean): no fee assumed",)
    return enabled, GammaFeeSchedule(rate, exponent, taker_only is not False, rebate), ()


def decode_rewards(obj: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, tuple[Decimal, ...], tuple[str, ...]]:
    """`(rewardsMinSize, rewardsMaxSpread, daily rates, problems)`; unreadable min size or max
    spread → both None (no program); an unreadable `clobRewards` entry is left out."""
    problems: list[str] = []
    try:
        min_size: Decimal | None = exact(obj.get("rewardsMinSize", 0) or 0)
        max_spread: Decimal | None = exact(obj.get("rewardsMaxSpread", 0) or 0)
    except (InvalidOperation, ValueError, TypeError) as exc:
        min_size = max_spread = None
        problems.append(f"rewards fields unreadable: {exc}")
    rates: list[Decimal] = []
    entries = obj.get("clobRewards") or []
    if not isinstance(entries, list):
        problems.append("clobRewards is not a list")
        entries = []
    for e in entries:
        if not isinstance(e, Mapping):
            problems.append("clobRewards entry is not an object")
            continue
        try:
            rates.append(exact(e.get("rewardsDailyRate", 0) or 0))
        except (InvalidOperation, ValueError, TypeError):
            problems.append(f"clobRewards rewardsDailyRate unreadable: {e.get('rewardsDailyRate')!r}")
    return min_size, max_spread, tuple(rates), tuple(problems)


def decode_event_id(obj: Mapping[str, Any]) -> str | None:
    """`events[0].id` as text (the neg-risk event a market belongs to), else None."""
    evs = obj.get("events")
    if isinstance(evs, list) and evs and isinstance(evs[0], Mapping) and evs[0].get("id") is not None:
        return str(evs[0]["id"])
    return None


def decode_terms(obj: Mapping[str, Any]) -> GammaTerms:
    """Every economics field of one Gamma market object (never raises)."""
    if not isinstance(obj, Mapping):
        return GammaTerms(fee_problems=("market is not an object",))
    enabled, sched, fee_problems = decode_fee_schedule(obj.get("feesEnabled"), obj.get("feeSchedule"))
    min_size, max_spread, rates, reward_problems = decode_rewards(obj)
    return GammaTerms(enabled, sched, fee_problems, min_size, max_spread, rates, reward_problems,
                      decode_event_id(obj))

