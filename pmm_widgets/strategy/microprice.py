"""`Microprice` (`PMM_STRATEGY=microprice`): fair value from the size-weighted book imbalance,
half-spread widening with the short-term toxicity of our own fills.

Fair value. On the effective YES book (YES bids and 1 − NO asks are YES bids; YES asks and
1 − NO bids are YES asks) the imbalance over the best `micro_levels` price levels per side,
level i weighted 1/(i + 1), is I = V_bid / (V_bid + V_ask); fair = B + (A − B) · I. Heavy bids
push fair toward the ask (the ask is about to be taken), as in Stoikov's microprice; with one
level this is the classic size-weighted touch.

Half-spread h = α · calib_mult · max(vol, book half-spread, one tick) · (1 + m · tox), where
tox = clip(−markout / tick, 0, 5) is how many ticks our fills have been losing over the short
markout horizon (EWMA kept by the cycle, used after 3 markouts) and m = `micro_toxicity_mult`:
a market whose flow picks us off widens at once, without waiting for the calibrator's 30 s
step. Inventory skew as the seed's (`skew` half-spreads at the inventory limit).
"""

from __future__ import annotations

from decimal import Decimal

from .base import Decision, MarketContext

MIN_MARKOUTS = 3
MAX_TOX_TICKS = 5.0


def _side(levels: list[tuple[Decimal, Decimal]], best_first_desc: bool, k: int) -> float:
    """Weighted size of the best k distinct prices of one side of the effective book."""
    agg: dict[Decimal, Decimal] = {}
    for px, sz in levels:
        agg[px] = agg.get(px, Decimal(0)) + sz
    prices = sorted(agg, reverse=best_first_desc)[:k]
    return sum(float(agg[px]) / (i + 1) for i, px in enumerate(prices))


def imbalance_fair(ctx: MarketContext) -> float:
    k = ctx.params.micro_levels
    one = Decimal(1)
    bids = [(lv.price, lv.size) for lv in ctx.yes.bids[:k]] + [(one - lv.price, lv.size) for lv in ctx.no.asks[:k]]
    asks = [(lv.price, lv.size) for lv in ctx.yes.asks[:k]] + [(one - lv.price, lv.size) for lv in ctx.no.bids[:k]]
    vb, va = _side(bids, True, k), _side(asks, False, k)
    if vb + va <= 0:
        return ctx.mid
    return ctx.best_bid + (ctx.best_ask - ctx.best_bid) * vb / (vb + va)


def toxicity_ticks(ctx: MarketContext) -> float:
    if ctx.markout_short is None or ctx.markout_count < MIN_MARKOUTS:
        return 0.0
    return max(0.0, min(MAX_TOX_TICKS, -ctx.markout_short / ctx.tf))


class Microprice:
    name = "microprice"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        return Decision(ctx.quotes(*self._prices(ctx)))

    def _prices(self, ctx: MarketContext) -> tuple[float, float]:
        p = ctx.params
        fair = imbalance_fair(ctx)
        base = max(ctx.sigma, ctx.half_spread, ctx.tf)
        h = p.alpha * ctx.calib_mult * base * (1.0 + p.micro_toxicity_mult * toxicity_ticks(ctx))
        shift = p.skew * h * ctx.inventory_fraction()
        return fair - h - shift, fair + h - shift

    def decision_key(self, ctx: MarketContext) -> object:
        return ctx.quote_ticks(*self._prices(ctx))  # `decide` is `ctx.quotes` of these prices
