"""`SpreadStrategy`: the seed's quoting as a `Strategy` (the default, `PMM_STRATEGY=spread`).

α × calibrated half-spread around the microprice fair value, with inventory skew: exactly
`quoting.make_quotes` (see its module docstring), so its numbers are the seed's.
"""

from __future__ import annotations

from .base import Decision, MarketContext, book_flags
from .quoting import make_quotes, spread_ticks


class SpreadStrategy:
    name = "spread"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        return Decision(tuple(make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory,
                                          ctx.calib_mult, ctx.vol)))

    def decision_key(self, ctx: MarketContext) -> object:
        return spread_key(ctx)


def spread_key(ctx: MarketContext) -> tuple[object, ...]:
    """`make_quotes` = `token_quotes` over `spread_ticks`: with the cycle's own key (market,
    params, inventory, tick, touch, min sizes) the integer ticks and the book flags decide it."""
    return (book_flags(ctx), spread_ticks(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult,
                                          ctx.vol, ctx.tick, ctx.bid_ticks, ctx.ask_ticks))
