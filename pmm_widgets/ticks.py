"""Exact price-grid arithmetic.

Why: a price off the tick grid or outside (0, 1) is rejected by the venue, and float rounding
silently produces such prices (0.1 + 0.2). Every price that leaves the strategy goes through
these helpers, which work in Decimal and integer ticks.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

ALLOWED_TICKS = tuple(Decimal(t) for t in ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001"))


def to_decimal(x: object) -> Decimal:
    """Parse a wire value ("0.43", ".48", 0.01, 5) into Decimal without float artefacts."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float):
        return Decimal(repr(x))
    return Decimal(str(x).strip())


def price_to_ticks(price: Decimal, tick: Decimal) -> int:
    """Exact tick index of an on-grid price; raises ValueError for an off-grid one."""
    q = price / tick
    if q != q.to_integral_value():
        raise ValueError(f"price {price} is not on the {tick} grid")
    return int(q)


def ticks_to_price(ticks: int, tick: Decimal) -> Decimal:
    return (tick * ticks).normalize() if ticks else Decimal(0)


def floor_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_FLOOR) * tick


def ceil_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_CEILING) * tick


def on_grid(price: Decimal, tick: Decimal) -> bool:
    return (price / tick) == (price / tick).to_integral_value()


def valid_price(price: Decimal, tick: Decimal) -> bool:
    """What the venue accepts: on the grid and within [tick, 1 - tick]."""
    return on_grid(price, tick) and tick <= price <= 1 - tick


def clamp_price(price: Decimal, tick: Decimal) -> Decimal:
    return min(max(price, tick), 1 - tick)


def floor_size(size: Decimal, step: Decimal = Decimal("0.01")) -> Decimal:
    """Sizes are rounded down to 2 dp by the SDK; do it ourselves so the record matches."""
    return (size / step).to_integral_value(rounding=ROUND_DOWN) * step
