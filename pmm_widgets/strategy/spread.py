"""`SpreadStrategy`: the seed's quoting as a `Strategy` (the default, `PMM_STRATEGY=spread`).

α × calibrated half-spread around the microprice fair value, with inventory skew: exactly
`quoting.make_quotes` (see its module docstring), so its numbers are the seed's.
"""

from __future__ import annotations

from .base import Decision, MarketContext, book_flags
from .quoting import make_quotes, spread_ticks


class SpreadStrategy:
    """`decide` is `make_quotes` given the context's grid tick and effective touch (the cycle builds
    them with `grid_tick` / `effective_touch`, the functions `make_quotes` calls).
    tests/strategy/test_strategies.py compares it with `make_quotes`. The incremental cycle decides
    this very class without calling it (`QuoteCycle._decide_spread`: the same `spread_ticks` and
    `token_quotes`, compared with this path in tests/engine/test_incremental_cycle.py); a subclass
    goes through `decision_key` and `decide`."""

    name = "spread"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        return Decision(tuple(make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult,
                                          ctx.vol, touch=(ctx.tick, ctx.bid_ticks, ctx.ask_ticks))))

    def decision_key(self, ctx: MarketContext) -> object:
        return spread_key(ctx)


def _ticks(ctx: MarketContext) -> tuple[int, int]:
    return spread_ticks(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult, ctx.vol, ctx.tick,
                        ctx.bid_ticks, ctx.ask_ticks)


def spread_key(ctx: MarketContext) -> tuple[object, ...]:
    """`make_quotes` = `token_quotes` over `spread_ticks`: with the cycle's own key (market,
    params, inventory, tick, touch, min sizes) the integer ticks and the book flags decide it."""
    return (book_flags(ctx), _ticks(ctx))
