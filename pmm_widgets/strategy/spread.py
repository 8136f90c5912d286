"""`SpreadStrategy`: the seed's quoting as a `Strategy` (the default, `PMM_STRATEGY=spread`).

α × calibrated half-spread around the microprice fair value, with inventory skew: exactly
`quoting.make_quotes` (see its module docstring), so its numbers are the seed's.
"""

from __future__ import annotations

from .base import Decision, MarketContext
from .quoting import make_quotes


class SpreadStrategy:
    name = "spread"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        return Decision(tuple(make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory,
                                          ctx.calib_mult, ctx.vol)))
