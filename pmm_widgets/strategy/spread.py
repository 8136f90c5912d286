"""`SpreadStrategy`: the seed's quoting as a `Strategy` (the default, `PMM_STRATEGY=spread`).

α × calibrated half-spread around the microprice fair value, with inventory skew: exactly
`quoting.make_quotes` (see its module docstring), so its numbers are the seed's.
"""

from __future__ import annotations

from .base import Decision, MarketContext, book_flags
from .quoting import make_quotes, spread_ticks


class SpreadStrategy:
    """`decide` is `make_quotes` given the context's grid tick and effective touch (the cycle builds
    them with `grid_tick` / `effective_touch`, the functions `make_quotes` calls) and the integer
    ticks `decision_key` just computed for the same context (the cycle asks for the key, then,
    when it changed, for the decision: the pair was computed twice).
    tests/strategy/test_strategies.py compares it with `make_quotes` (with and without the key)."""

    name = "spread"
    _last: tuple[MarketContext, tuple[int, int]] | None = None  # the last key's context and its ticks

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        last, self._last = self._last, None
        return Decision(tuple(make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult,
                                          ctx.vol, touch=(ctx.tick, ctx.bid_ticks, ctx.ask_ticks),
                                          ticks=last[1] if last is not None and last[0] is ctx else None)))

    def decision_key(self, ctx: MarketContext) -> object:
        ticks = _ticks(ctx)
        self._last = (ctx, ticks)
        return spread_key(ctx, ticks)


def _ticks(ctx: MarketContext) -> tuple[int, int]:
    return spread_ticks(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult, ctx.vol, ctx.tick,
                        ctx.bid_ticks, ctx.ask_ticks)


def spread_key(ctx: MarketContext, ticks: tuple[int, int] | None = None) -> tuple[object, ...]:
    """`make_quotes` = `token_quotes` over `spread_ticks`: with the cycle's own key (market,
    params, inventory, tick, touch, min sizes) the integer ticks and the book flags decide it.
    `ticks`: the context's `spread_ticks` when the caller has them."""
    return (book_flags(ctx), _ticks(ctx) if ticks is None else ticks)
