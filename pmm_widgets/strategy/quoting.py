"""The quoting decision: (market, both books, params, inventory, calibration, vol) → wanted quotes.

Pure and synchronous: no I/O, no clock, no state, so it is property-tested and benchmarked
directly and the engine cannot make it block.

YES-space. YES and NO are complements: buying NO at q is economically selling YES at 1 − q (the
pair is worth exactly 1), and Polymarket's matcher treats it so (a YES bid at p and a NO bid at
q match by minting when p + q ≥ 1). So the decision is made once, in YES prices, on the
*effective* YES book that combines both tokens' books:

    best bid B = max(YES best bid, 1 − NO best ask),   best ask A = min(YES best ask, 1 − NO best bid)

and yields one bid `b` and one ask `a` in YES prices. Each is then expressed as a token order:

- the bid: SELL NO at 1 − b if we hold at least a min-size lot of NO (it sheds inventory and
  frees cash), else BUY YES at b;
- the ask: SELL YES at a if we hold YES, else BUY NO at 1 − a.

A SELL needs the shares on Polymarket, hence the rule. With no inventory the two orders are a
YES bid and a NO bid; their prices sum to b + (1 − a) < 1 because b < a is enforced, so both
filling can never lock in a loss (paying ≥ 1 for a pair that is worth exactly 1).

Fair value: the microprice of each book (size-weighted mid) rather than the plain mid, because
on a binary CLOB the touch with less size is the one about to give way, and leaning toward it
reduces adverse selection at no cost in spread. The YES microprice and 1 − the NO microprice
are averaged (the two books are near mirror images; averaging damps a one-lot top on either),
then clamped inside the effective touch [B, A] so a lopsided top can never place fair value
outside the spread.

Half-spread h = α × calib_mult × max(vol term, (A − B)/2, one tick). Inventory skew moves both
prices by −skew × h × clip(net / max_inventory_shares, −1, 1): long YES lowers both, so our
ask (the side that sells YES) becomes more aggressive and our bid less so. Both prices are
then capped at `params.price_band` from the effective mid: the band is the trader's statement
of how far from mid a quote is still worth resting, so a very wide half-spread (high vol, a
calibrator at its ceiling) quotes at the band instead of going silent. (Risk re-checks the band
as a safety net.)

Numbers: fair value, vol and h are estimates, computed in float; they are snapped onto the tick
grid in integer ticks (bid rounded down, ask up: the conservative direction), and every price
that leaves this module is a Decimal built from an integer tick count, on the grid and inside
[tick, 1 − tick]. Post-only: bid ticks < A and ask ticks > B on the effective book, which
implies neither token order crosses its own book nor matches the complement book by minting or
merging. A quote that would fall off the grid's ends is dropped, never pulled inward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache

from ..config import Params
from ..domain import BUY, SELL, BookView, Market, Order, Quote
from ..ticks import floor_size
from .inventory import Inventory


def _ticks_floor(price: Decimal, tick: Decimal) -> int:
    return int((price / tick).to_integral_value(rounding=ROUND_FLOOR))


def _ticks_ceil(price: Decimal, tick: Decimal) -> int:
    return int((price / tick).to_integral_value(rounding=ROUND_CEILING))


@lru_cache(maxsize=64)
def grid_steps(tick: Decimal) -> int:
    """Ticks in one unit of price (⌊1 / tick⌋): an integer of the tick's value alone, memoized
    (every touch and every quote set asked for it)."""
    return _ticks_floor(Decimal(1), tick)


_GRIDS: dict[int, tuple[Decimal, list[Decimal | None]]] = {}  # id(tick) -> (that tick, its prices so far)


def grid_price(tick: Decimal, i: int) -> Decimal:
    """`tick * i` (0 <= i <= grid_steps(tick)), the same object each time for the same tick object.
    Why: a quote's price was a new Decimal per quote per decision, and the guard's and the venue
    rules' `valid_price` memo hashed each one afresh (a Decimal's hash is computed on its first use,
    thousands of instructions); a kept price's hash is computed once. Filled as asked (a tick's grid
    is mostly unused). Keyed by the tick object itself (held in the entry, so its id is not reused
    meanwhile), not by value: 0.01 and 0.010 are equal but print differently, and every price keeps
    the spelling `tick * i` gives it. A tick finer than the venue's finest is not kept."""
    hit = _GRIDS.get(id(tick))
    if hit is None or hit[0] is not tick:
        n = grid_steps(tick)
        if n > 10_000:  # (the finest venue tick, 0.0001, has 10,000 steps)
            return tick * i
        if len(_GRIDS) >= 256:  # (bounded: ticks of markets gone, junk input)
            _GRIDS.clear()
        hit = _GRIDS[id(tick)] = (tick, [None] * (n + 1))
    grid = hit[1]
    p = grid[i]
    if p is None:
        p = grid[i] = tick * i
    return p


@lru_cache(maxsize=4096)
def band_ticks(b_plus_a: int, price_band: Decimal, tick: Decimal) -> tuple[int, int]:
    """The integer ticks [lo, hi] within `price_band` of the effective mid (b + a) / 2 ticks: a
    pair of integers of these values alone, memoized (touches and bands repeat cycle after cycle)."""
    mid2 = Decimal(b_plus_a) / 2
    band = price_band / tick
    return _ticks_ceil(mid2 - band, Decimal(1)), _ticks_floor(mid2 + band, Decimal(1))


def grid_tick(market: Market, yes: BookView | None, no: BookView | None) -> Decimal:
    """The coarsest tick among the market and its books (a tick-size change shows up there first)."""
    tick = market.tick_size
    for v in (yes, no):
        if v is not None and v.tick_size > tick:
            tick = v.tick_size
    return tick


def effective_touch(yes: BookView, no: BookView, tick: Decimal) -> tuple[int | None, int | None]:
    """(B, A) of the effective YES book in integer ticks (None for an empty side).

    Off-grid levels (a finer old tick) round toward the conservative side: bids up, asks down.
    """
    n = grid_steps(tick)
    bids: list[int] = []
    asks: list[int] = []
    if yes.bids:
        bids.append(_ticks_ceil(yes.bids[0].price, tick))
    if no.asks:
        bids.append(n - _ticks_floor(no.asks[0].price, tick))
    if yes.asks:
        asks.append(_ticks_floor(yes.asks[0].price, tick))
    if no.bids:
        asks.append(n - _ticks_ceil(no.bids[0].price, tick))
    return (max(bids) if bids else None, min(asks) if asks else None)


def yes_mid(yes: BookView | None, no: BookView | None, tick: Decimal) -> Decimal | None:
    """Mid of the effective YES book (what PnL marks at and the price band is measured from)."""
    if yes is None or no is None:
        return None
    b, a = effective_touch(yes, no, tick)
    if b is None or a is None or b >= a:
        return None
    return tick * (b + a) / 2


def fair_yes(yes: BookView, no: BookView, b: int, a: int, tick: Decimal) -> float:
    """Microprice fair value of YES, combined from both books, clamped into the effective touch."""
    return _fair_yes(yes, no, b, a, float(tick))


def _fair_yes(yes: BookView, no: BookView, b: int, a: int, tf: float) -> float:
    """`fair_yes` with the tick as a float (`spread_ticks` has it). The estimates' mean is what
    `sum(estimates) / len(estimates)` gave (`sum` starts at 0: 0.0 + x, then + y), without the list."""
    my = yes.microprice
    fy = None if my is None else float(my)
    mn = no.microprice
    if fy is not None:
        fair = (0.0 + fy + (1.0 - float(mn))) / 2 if mn is not None else 0.0 + fy
    elif mn is not None:
        fair = 0.0 + (1.0 - float(mn))
    else:
        fair = (b + a) * tf / 2
    lo, hi = b * tf, a * tf  # `min(max(fair, lo), hi)`, as conditionals (see `ticks_at`)
    if lo > fair:
        fair = lo
    return hi if hi < fair else fair


def is_quotable(market: Market, yes: BookView | None, no: BookView | None, params: Params) -> str | None:
    """None when the market may be quoted, else the status word saying why not."""
    if params.quoting_paused:
        return "paused"
    if not market.tradable:
        return "closed"
    if yes is None or no is None or yes.stale or no.stale:
        return "stale"
    if yes.crossed or no.crossed:
        return "crossed"
    return None


def make_quotes(
    market: Market,
    yes: BookView | None,
    no: BookView | None,
    params: Params,
    inventory: Inventory,
    calib_mult: float,
    vol: Mapping[str, float],
    touch: tuple[Decimal, int, int] | None = None,
) -> list[Quote]:
    """Wanted resting orders for one market (0 to 2 quotes: one bid and one ask in YES-space).

    `vol` maps token id → expected mid move (price units) over the holding horizon; the larger
    of the two tokens' values is used (they are the same market seen from both sides).
    `touch`: (grid tick, effective bid, ask ticks) when the caller has them (a strategy's
    context).
    """
    if is_quotable(market, yes, no, params) is not None:
        return []
    assert yes is not None and no is not None
    if touch is None:
        tick = grid_tick(market, yes, no)
        b, a = effective_touch(yes, no, tick)
    else:
        tick, b, a = touch
    if b is None or a is None or b >= a:
        return []
    bid_t, ask_t = spread_ticks(market, yes, no, params, inventory, calib_mult, vol, tick, b, a)
    return token_quotes(market, yes, no, params, inventory, tick, b, a, bid_t, ask_t)


def spread_ticks(market: Market, yes: BookView, no: BookView, params: Params, inventory: Inventory,
                 calib_mult: float, vol: Mapping[str, float], tick: Decimal, b: int, a: int) -> tuple[int, int]:
    """`make_quotes`' YES-space bid and ask in integer ticks, before the band and post-only caps
    (`token_quotes`): all of its decision that depends on the books' sizes, vol and calibration."""
    tf = float(tick)
    return ticks_at(_fair_yes(yes, no, b, a, tf), max(vol.get(market.yes_token_id, 0.0), vol.get(market.no_token_id, 0.0)),
                    tf, b, a, params.alpha, calib_mult, float(inventory.net), float(params.max_inventory_shares),
                    params.skew)


def ticks_at(fair: float, vol_term: float, tf: float, b: int, a: int, alpha: float, calib_mult: float, net: float,
             limit: float, skew: float) -> tuple[int, int]:
    """`spread_ticks` from its float inputs (fair value, the larger token's vol term, the tick,
    the net inventory and its limit as floats): the cycle's decision of the seed's strategy keeps
    the conversions of the Decimals that did not change since the last cycle.

    Its `max`/`min` are written as the conditionals the builtins evaluate (`max(a, b)`: b when
    `b > a`, else a; `min`: b when `b < a`; more arguments in turn): the same operand chosen, NaN
    and -0.0 alike, without the builtins' argument parsing (~0.8 k instructions a call, a dozen
    calls per market per cycle). tests/strategy/test_minmax_inline.py compares them with the builtins."""
    base = vol_term  # `max(vol_term, (a - b) * tf / 2.0, tf)`
    half = (a - b) * tf / 2.0
    if half > base:
        base = half
    if tf > base:
        base = tf
    h = alpha * calib_mult * base
    y = net / limit  # `max(-1.0, min(1.0, net / limit))`
    x = y if y < 1.0 else 1.0
    if not x > -1.0:
        x = -1.0
    shift = skew * h * x

    bid_t = math.floor((fair - h - shift) / tf + 1e-9)
    ask_t = math.ceil((fair + h - shift) / tf - 1e-9)
    if ask_t <= bid_t:
        ask_t = bid_t + 1
    return bid_t, ask_t


def max_of3(a: Decimal, b: Decimal, c: Decimal) -> Decimal:
    """`max(a, b, c)` as the builtin evaluates it (the first largest; see `ticks_at`)."""
    if b > a:
        a = b
    return c if c > a else a


_quote_size: tuple[object, Decimal] = (None, Decimal(0))  # `params.quote_size` and its `floor_size`


def token_quotes(
    market: Market,
    yes: BookView,
    no: BookView,
    params: Params,
    inventory: Inventory,
    tick: Decimal,
    b: int,
    a: int,
    bid_t: int | None,
    ask_t: int | None,
    size: Decimal | None = None,
) -> list[Quote]:
    """A YES-space bid/ask in integer ticks → at most two token orders (every strategy's tail).

    Caps both prices at `params.price_band` from the effective mid, keeps them post-only against
    the effective touch (b, a), drops a price that falls off the grid's ends, and maps each side
    to a token order (SELL the held token first, else BUY): see the module docstring. `None`
    for a side quotes nothing on it; `size` defaults to `params.quote_size` (raised to min size).
    """
    n = grid_steps(tick)
    lo, hi = band_ticks(b + a, params.price_band, tick)
    bid_ok = ask_ok = False
    if bid_t is not None:  # (`min`/`max` as conditionals: see `ticks_at`)
        if lo > bid_t:  # `min(max(bid_t, lo), a - 1)`: capped at the price band, then post-only
            bid_t = lo
        if a - 1 < bid_t:
            bid_t = a - 1
        bid_ok = lo <= bid_t and 1 <= bid_t <= n - 1
    if ask_t is not None:
        if hi < ask_t:  # `max(min(ask_t, hi), b + 1)`
            ask_t = hi
        if b + 1 > ask_t:
            ask_t = b + 1
        ask_ok = ask_t <= hi and 1 <= ask_t <= n - 1
    if bid_ok and ask_ok and bid_t is not None and ask_t is not None and bid_t >= ask_t:
        return []  # only with a band narrower than the book: no pair

    min_size = max_of3(market.min_order_size, yes.min_order_size, no.min_order_size)
    if size is None:  # the parameter's floor, kept while it is the very same Decimal (per market per decision)
        global _quote_size
        qs = params.quote_size
        if _quote_size[0] is not qs:
            _quote_size = (qs, floor_size(qs))
        size = min_size if min_size > _quote_size[1] else _quote_size[1]  # `max(floor, min_size)`
    else:
        size = max(floor_size(size), min_size)
    out: list[Quote] = []
    if bid_ok:
        assert bid_t is not None
        if inventory.no >= min_size:
            out.append(Quote(market.condition_id, market.no_token_id, SELL,
                             grid_price(tick, n - bid_t), floor_size(inventory.no if inventory.no < size else size)))
        else:
            out.append(Quote(market.condition_id, market.yes_token_id, BUY, grid_price(tick, bid_t), size))
    if ask_ok:
        assert ask_t is not None
        if inventory.yes >= min_size:
            out.append(Quote(market.condition_id, market.yes_token_id, SELL,
                             grid_price(tick, ask_t), floor_size(inventory.yes if inventory.yes < size else size)))
        else:
            out.append(Quote(market.condition_id, market.no_token_id, BUY, grid_price(tick, n - ask_t), size))
    return out


def yes_space_price(market: Market, q: Quote | Order) -> tuple[str, Decimal]:
    """('bid'|'ask', YES price) of a token order (a quote or a resting order): BUY YES / SELL NO
    are bids, the others asks."""
    is_yes = q.token_id == market.yes_token_id
    if is_yes:
        return ("bid" if q.side is BUY else "ask", q.price)
    return ("ask" if q.side is BUY else "bid", 1 - q.price)
