"""Wanted quotes vs resting orders → what to cancel and what to place.

Why a threshold: every cancel/replace costs rate-limit budget and loses queue position, so an
order whose price is within `requote_ticks` of the wanted price (same token and side) is kept.
A resting order is also only kept if its remaining size does not exceed the wanted size (a SELL
must never offer more shares than we now hold). Each resting order satisfies at most one wanted
quote; the closest in price wins. Cancels are listed before places so that a replacement never
coexists with the order it replaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from ..domain import Order, Quote


@dataclass(slots=True)
class Plan:
    place: list[Quote] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)  # client ids


def plan(
    wanted: list[Quote],
    open_orders: list[Order],
    tick_of: Callable[[str], Decimal],
    requote_ticks: int,
) -> Plan:
    by_key: dict[tuple[str, object], list[Order]] = {}
    for o in open_orders:
        k = (o.token_id, o.side)
        same = by_key.get(k)
        if same is None:
            by_key[k] = [o]
        else:
            same.append(o)
    kept: set[str] = set()
    out = Plan()
    last_tick: Decimal | None = None
    band = Decimal(0)
    for q in wanted:
        tick = tick_of(q.token_id)
        if tick is not last_tick:  # (a market's two quotes share its tick: one product for both)
            last_tick, band = tick, tick * requote_ticks
        best: Order | None = None
        best_d = band
        price = q.price
        for o in by_key.get((q.token_id, q.side), ()):
            if o.client_id in kept:
                continue
            d = abs(o.price - price)  # (once per order: it was computed again for the best so far)
            if d > band or o.remaining > q.size:
                continue
            if best is None or d < best_d:
                best, best_d = o, d
        if best is None:
            out.place.append(q)
        else:
            kept.add(best.client_id)
    out.cancel = [o.client_id for o in open_orders if o.client_id not in kept]
    return out
