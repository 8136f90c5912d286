"""Exact price-grid arithmetic.

Why: a price off the tick grid or outside (0, 1) is rejected by the venue, and float rounding
silently produces such prices (0.1 + 0.2). Every price that leaves the strategy goes through
these helpers, which work in Decimal and integer ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from functools import lru_cache, wraps

ALLOWED_TICKS = tuple(Decimal(t) for t in ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001"))
ALLOWED_TICK_SET = frozenset(ALLOWED_TICKS)  # the SDK's TickSize literal (docs list 4; the SDK wins)
MAX_MIN_ORDER_SIZE = Decimal(100_000)  # a market's minimum order size beyond this is junk input
MAX_SIZE = Decimal(10) ** 12  # shares at one level / in one print beyond this are junk input


_TICK_TEXTS: dict[str, Decimal | None] = {}  # wire text -> `venue_tick` of it (bounded against junk input)
_MIN_SIZE_TEXTS: dict[str, Decimal | None] = {}  # wire text -> `sane_min_size` of it (bounded alike)
_TICK_TEXTS_MAX = 256  # entries of each of these memos; a full one is emptied
_NO_TEXT = object()


def _by_text(x: object, texts: dict[str, Decimal | None], ok: Callable[[Decimal], bool]) -> Decimal | None:
    """`x` as a finite Decimal that `ok` accepts, else None (unparseable too); the answer for a
    text (at most 32 characters) remembered in `texts`: the same Decimal (value and spelling) for
    the same text, or None again. The memo of `venue_tick` and `sane_min_size`, which every `book`
    snapshot asks with the market's tick and minimum size as text."""
    if type(x) is str:
        got = texts.get(x, _NO_TEXT)
        if got is not _NO_TEXT:
            return got  # type: ignore[return-value]
    try:
        d = to_decimal(x)
    except (ArithmeticError, ValueError, TypeError):
        d = None
    out = d if d is not None and d.is_finite() and ok(d) else None
    if type(x) is str and len(x) <= 32:
        if len(texts) >= _TICK_TEXTS_MAX:
            texts.clear()
        texts[x] = out
    return out


def venue_tick(x: object) -> Decimal | None:
    """`x` as one of the venue's tick sizes, else None (unparseable, not finite, not in the set).
    A text's answer is remembered (`_by_text`: the set's test hashes a Decimal, ~6 k instructions,
    its hash not cached)."""
    return _by_text(x, _TICK_TEXTS, ALLOWED_TICK_SET.__contains__)


def _sane_size(d: Decimal) -> bool:
    return 0 < d <= MAX_MIN_ORDER_SIZE


def sane_min_size(x: object) -> Decimal | None:
    """A minimum order size in (0, MAX_MIN_ORDER_SIZE], else None. A text's answer is remembered
    (`_by_text`: a parse and two Decimal comparisons each, ~10 % of a snapshot that confirms its
    book)."""
    return _by_text(x, _MIN_SIZE_TEXTS, _sane_size)


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


def _memo_of_finite_decimals(fn: Callable[..., bool]) -> Callable[..., bool]:
    """`fn` (a bool of Decimal values alone) memoized by value when every argument is a finite
    Decimal (Decimal equality and hashing are by value; the default context); anything else (a
    NaN, an infinity, another type) is computed each time, so it fails exactly as it did. The
    grid checks' one memo: the guard and the venue rules ask them for every quote, and the
    values repeat (a grid has at most 1 / tick prices; sizes are the quote size, lots)."""
    cached = lru_cache(maxsize=4096)(fn)

    @wraps(fn)
    def call(*args: Decimal) -> bool:
        for a in args:
            if type(a) is not Decimal or not a.is_finite():
                return fn(*args)
        return cached(*args)

    return call


@_memo_of_finite_decimals
def valid_price(price: Decimal, tick: Decimal) -> bool:
    """What the venue accepts: on the grid and within [tick, 1 - tick] (memoized by value)."""
    return on_grid(price, tick) and tick <= price <= 1 - tick


def clamp_price(price: Decimal, tick: Decimal) -> Decimal:
    return min(max(price, tick), 1 - tick)


def floor_size(size: Decimal, step: Decimal = Decimal("0.01")) -> Decimal:
    """Sizes are rounded down to 2 dp by the SDK; do it ourselves so the record matches."""
    return (size / step).to_integral_value(rounding=ROUND_DOWN) * step


@_memo_of_finite_decimals
def on_size_grid(size: Decimal) -> bool:
    """`floor_size(size) == size` (on the 0.01 size grid; memoized by value); an infinite size
    is on no grid (its floor is itself)."""
    return size.is_finite() and floor_size(size) == size
