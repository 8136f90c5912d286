"""`SpreadStrategy`: the seed's quoting as a `Strategy` (the default, `PMM_STRATEGY=spread`).

α × calibrated half-spread around the microprice fair value, with inventory skew: exactly
`quoting.make_quotes` (see its module docstring), so its numbers are the seed's.
"""

from __future__ import annotations

from .base import Decision, MarketContext, book_top
from .quoting import make_quotes


class SpreadStrategy:
    name = "spread"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        return Decision(tuple(make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory,
                                          ctx.calib_mult, ctx.vol)))

    def decision_key(self, ctx: MarketContext) -> object:
        return spread_key(ctx)


def spread_key(ctx: MarketContext) -> tuple[object, ...]:
    """What `make_quotes` reads besides the cycle's own key: both books' tops, the calibration
    multiplier and its spread base max(vol, book half-spread, tick) (vol below the book's
    half-spread does not move the quotes)."""
    m = ctx.market
    tf = ctx.tf
    vol_term = max(ctx.vol.get(m.yes_token_id, 0.0), ctx.vol.get(m.no_token_id, 0.0))
    base = max(vol_term, (ctx.ask_ticks - ctx.bid_ticks) * tf / 2.0, tf)
    return (book_top(ctx.yes), book_top(ctx.no), ctx.calib_mult, base)
