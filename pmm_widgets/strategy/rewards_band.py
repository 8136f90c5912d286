"""`RewardsBand` (`PMM_STRATEGY=rewards`): the seed's quotes, pulled into the market's liquidity-
reward band and sized to qualify, so they score under Polymarket's reward formula.

The venue pays a market's daily pool to makers in proportion to Q_min, built from each resting
order's S(v, s) = ((v − s)/v)² × size, s the distance from the size-cutoff-adjusted mid, v the
market's max spread; orders smaller than `rewardsMinSize` or at s ≥ v score nothing, and
outside [0.10, 0.90] only two-sided quoting scores (`economics.rewards`, the same functions the
sandbox's ground truth and the engine's estimate use).

So, for a market with a reward program (decoded from its Gamma object: `Market.terms`):
- reference: the size-cutoff-adjusted mid of the effective YES book (both tokens' books, the
  cutoff `rewardsMinSize`), falling back to the effective mid;
- each side starts at the seed's price (`SpreadStrategy`: α × half-spread, inventory skew) and
  is pulled in to at most `rewards_band_frac × v` from the reference, so each order scores at
  least (1 − frac)² of the best score; a side already inside keeps the seed's price (closer
  scores more but is picked off more: the band fraction is that trade-off);
- size: max(quote_size, rewardsMinSize), so every order qualifies.
The seed's pull-in never crosses: the prices still go through the band cap and the post-only
rule (`MarketContext.quotes`), and the cycle's guard and risk limits (inventory, price band,
losses) apply as for every strategy: a reward never buys a limit. A market without a program
quotes exactly like `spread`.
"""

from __future__ import annotations

import math
from decimal import Decimal

from ..economics.rewards import RewardProgram, adjusted_mid, program_of
from .base import Decision, MarketContext, book_levels
from .quoting import make_quotes, yes_space_price
from .spread import spread_key


def reward_program(ctx: MarketContext) -> RewardProgram:
    prog, _ = program_of(ctx.market.terms)
    return prog


def reference_mid(ctx: MarketContext, cutoff: Decimal) -> float:
    one = Decimal(1)
    bids = sorted([(lv.price, lv.size) for lv in ctx.yes.bids] + [(one - lv.price, lv.size) for lv in ctx.no.asks],
                  key=lambda x: -x[0])
    asks = sorted([(lv.price, lv.size) for lv in ctx.yes.asks] + [(one - lv.price, lv.size) for lv in ctx.no.bids],
                  key=lambda x: x[0])
    mid = adjusted_mid(bids, asks, cutoff)
    return ctx.mid if mid is None else float(mid)


class RewardsBand:
    name = "rewards"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        seed = make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult, ctx.vol)
        prog = reward_program(ctx)
        if not prog.active:
            return Decision(tuple(seed))
        ref = reference_mid(ctx, prog.min_size)
        reach = ctx.params.rewards_band_frac * float(prog.max_spread)
        tf = ctx.tf
        lo_t = math.ceil((ref - reach) / tf - 1e-9)  # band edges in ticks, rounded toward the reference
        hi_t = math.floor((ref + reach) / tf + 1e-9)
        bid: float | None = None
        ask: float | None = None
        for q in seed:
            kind, yp = yes_space_price(ctx.market, q)
            t = int(yp / ctx.tick)
            if kind == "bid":
                bid = max(t, lo_t) * tf
            else:
                ask = min(t, hi_t) * tf
        if bid is None and ask is None:  # the seed quotes nothing here
            return Decision()
        size = max(ctx.params.quote_size, prog.min_size)
        return Decision(ctx.quotes(bid, ask, size))

    def decision_key(self, ctx: MarketContext) -> object:
        # the seed's inputs, and the full depth (the reward program's adjusted mid reads it)
        return (spread_key(ctx), book_levels(ctx.yes), book_levels(ctx.no))
