"""`AvellanedaStoikov` (`PMM_STRATEGY=as`): reservation price and optimal spread, adapted to a
binary market whose price lives in [0, 1] and whose two tokens are complements.

The model (Avellaneda & Stoikov 2008): a market maker with inventory q, risk aversion γ and a
mid s with variance rate σ² quotes around the reservation price

    r = s − q · γ · σ² · τ                       (τ: the time over which inventory is held)

with a total spread δ_bid + δ_ask = γ · σ² · τ + (2/γ) · ln(1 + γ/κ), where κ is the decay of
the order-arrival intensity with distance, λ(δ) = A · e^(−κ·δ). So each side sits

    half = γ · σ² · τ / 2 + (1/γ) · ln(1 + γ/κ)

from r: the first term pays for holding inventory through the horizon, the second is the
monopolist's mark-up given how fast fills die off with distance.

Adaptation to Polymarket (what differs from the textbook):
- **YES/NO complementarity.** q is the net YES-equivalent position `yes − no` (a YES+NO pair
  is worth exactly 1 and carries no risk), in lots of `quote_size`. The decision is made once in
  YES prices on the effective book of both tokens; the bid becomes BUY YES or SELL NO, the ask
  SELL YES or BUY NO at 1 − ask (the seed's mapping, `quoting.token_quotes`).
- **Bounded prices.** A price in [0, 1] that resolves to 0 or 1 is a bounded martingale: its
  total remaining variance can never exceed p(1 − p). So the variance over the horizon is
  V = min(σ² · τ, p(1 − p)) with p the fair value (the seed's microprice), not σ² · τ, which
  would explode near the bounds. When the market has an end date, τ is capped by the time left
  and V is at least p(1 − p) · τ / T_end: the resolution jump spread over the time to the end
  (a market about to resolve is risky even when its mid has been quiet).
- **Grid and bounds.** r is kept inside the effective touch widened by one half-spread and
  inside [tick, 1 − tick]; prices are rounded outward onto the tick grid, capped at
  `price_band`, post-only (`MarketContext.quotes`).
- **Calibration.** The calibrator's per-market multiplier scales the κ term (it steers the
  fill rate toward `target_fills_per_min`, as it scales α × half-spread for `spread`). α is not
  used: γ and κ set the spread.

Parameters: `as_gamma` (γ, per lot), `as_kappa` (κ, per unit of price), `as_horizon_sec` (τ).
"""

from __future__ import annotations

import math

from .base import Decision, MarketContext


def as_quotes(ctx: MarketContext) -> tuple[float, float, float]:
    """(reservation price, half-spread, variance over the horizon) in YES price units."""
    p = ctx.params
    s = ctx.fair_micro
    q = float(ctx.inventory.net) / float(p.quote_size)
    tau = p.as_horizon_sec
    pq = max(s * (1.0 - s), 0.0)
    var = ctx.var_rate * tau
    t_end = ctx.time_to_end_sec
    if t_end is not None:
        t_end = max(t_end, 1.0)
        tau = min(tau, t_end)
        var = max(ctx.var_rate * tau, pq * tau / t_end)
    var = min(var, pq)
    g = p.as_gamma
    half = 0.5 * g * var + ctx.calib_mult * math.log1p(g / p.as_kappa) / g
    r = s - q * g * var
    lo, hi = ctx.best_bid - half, ctx.best_ask + half
    r = min(max(r, lo, ctx.tf), hi, 1.0 - ctx.tf)
    return r, half, var


class AvellanedaStoikov:
    name = "as"

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        r, half, _ = as_quotes(ctx)
        return Decision(ctx.quotes(r - half, r + half))

    def decision_key(self, ctx: MarketContext) -> object:
        r, half, _ = as_quotes(ctx)  # `decide` is `ctx.quotes` of these: its ticks decide it
        return ctx.quote_ticks(r - half, r + half)
