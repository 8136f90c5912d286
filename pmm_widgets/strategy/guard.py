"""What the cycle enforces on every strategy's output, the seed's and a notebook's alike.

Why here and not in each strategy: a strategy is user code; the account's safety cannot depend
on it. `guard_quotes` keeps only quotes that are well-formed for this market and cannot cross:

- the market's own condition id and one of its two tokens; size > 0, at least the min size, on
  the 0.01 size grid; a SELL no larger than the shares held of that token;
- price on the tick grid and inside [tick, 1 − tick];
- post-only on the effective YES book (both books combined): a YES-space bid strictly below
  the effective ask A and a YES-space ask strictly above the effective bid B, so no token order
  crosses its own book or matches the complement book by minting or merging;
- no self-crossing: the highest YES-space bid stays below the lowest YES-space ask (otherwise
  our own orders would pay ≥ 1 for a pair worth 1); if they cross, every quote is dropped;
- the status: `halted` keeps nothing, `reduce-only` keeps only quotes that move the net
  YES-equivalent position toward zero (never past it).

Risk (`risk.filter_quotes`), the planner and the exchange's venue rules then apply as usual.
Returns the kept quotes and the reason of the first drop (None when nothing was dropped).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from ..domain import BUY, SELL, Market, Quote
from ..ticks import on_size_grid, valid_price
from .base import HALTED, REDUCE_ONLY, MarketContext, Regime
from .inventory import Inventory, net_delta


def guard_quotes(ctx: MarketContext, quotes: Iterable[Quote], regime: Regime) -> tuple[list[Quote], str | None]:
    return guard_at(ctx.market, ctx.inventory, ctx.tick, ctx.bid_ticks, ctx.ask_ticks,
                    max(ctx.market.min_order_size, ctx.yes.min_order_size, ctx.no.min_order_size), quotes, regime)


def guard_at(m: Market, inv: Inventory, tick: Decimal, bid_ticks: int, ask_ticks: int, min_size: Decimal,
             quotes: Iterable[Quote], regime: Regime) -> tuple[list[Quote], str | None]:
    """`guard_quotes` given what it reads of the context (the cycle's decision of the seed's
    strategy has them without a `MarketContext`): the effective touch in ticks and the largest
    of the market's and both books' min sizes."""
    reason: str | None = None
    if regime is HALTED:
        quotes = list(quotes)
        return [], ("halted" if quotes else None)
    kept: list[Quote] = []
    top_bid: Decimal | None = None
    low_ask: Decimal | None = None
    held_yes, held_no = inv.yes, inv.no
    yes_id = m.yes_token_id
    for q in quotes:
        why = _malformed(m, q, held_yes, held_no, tick, min_size)
        if why is None:
            # `yes_space_price(m, q)`, written out (per quote per decision)
            if q.token_id == yes_id:
                bid, yp = q.side is BUY, q.price
            else:
                bid, yp = q.side is not BUY, 1 - q.price
            t = yp / tick
            if bid and t >= ask_ticks:
                why = f"bid {yp} would cross the ask {tick * ask_ticks}"
            elif not bid and t <= bid_ticks:
                why = f"ask {yp} would cross the bid {tick * bid_ticks}"
            elif regime is REDUCE_ONLY and \
                    not reduces(inv.net, inv.net + net_delta(m, q.token_id, q.side, q.size)):
                why = "reduce-only: the quote would not reduce the position"
            elif bid:  # (`max(top_bid, yp)` / `min(low_ask, yp)` as the builtins evaluate them: `quoting.ticks_at`)
                if top_bid is None or yp > top_bid:
                    top_bid = yp
            elif low_ask is None or yp < low_ask:
                low_ask = yp
        if why is None:
            kept.append(q)
        elif reason is None:
            reason = why
    if top_bid is not None and low_ask is not None and top_bid >= low_ask:
        return [], f"own bid {top_bid} >= own ask {low_ask}"
    return kept, reason


def reduces(net: Decimal, new: Decimal) -> bool:
    """True when `new` is strictly closer to flat than `net` without passing through zero."""
    return abs(new) < abs(net) and (new == 0 or (new > 0) == (net > 0))


_on_grid: object = None  # the last size found on the size grid (a BUY's size is the same Decimal quote after quote)


def _malformed(m: Market, q: Quote, held_yes: Decimal, held_no: Decimal, tick: Decimal,
               min_size: Decimal) -> str | None:
    if q.market != m.condition_id or q.token_id not in (m.yes_token_id, m.no_token_id):
        return f"quote for another market or token ({q.token_id})"
    if not isinstance(q.price, Decimal) or not isinstance(q.size, Decimal):
        return "price and size must be Decimal"
    if not q.price.is_finite() or not valid_price(q.price, tick):
        return f"price {q.price} off the {tick} grid or outside (0, 1)"
    global _on_grid
    size = q.size
    if not size.is_finite() or size < min_size or (size is not _on_grid and not on_size_grid(size)):
        return f"size {q.size} below min size {min_size} or off the 0.01 grid"
    if size <= 0:  # (a market whose min size is 0, a notebook's or an imported one's: 0 is on the grid)
        return f"size {q.size} is not positive"
    _on_grid = size
    if q.side is SELL:
        held = held_yes if q.token_id == m.yes_token_id else held_no
        if q.size > held:
            return f"SELL {q.size} > {held} held"
    elif q.side is not BUY:
        return f"unknown side {q.side}"
    return None
