"""The fill models' arithmetic (pure functions over plain numbers); the models are in `fill_model`.

`intensity` (the seed's model). A resting order fills as a Poisson process with rate

    λ = paper_fill_intensity / 60 × exp(−paper_spread_k × distance) × depth_factor   [1/s]

`distance` is how far (price units) the order sits behind its side's touch (0 at or inside the
touch). `depth_factor = 2·D0 / (D0 + D)`, with D the size resting at the touch on our side (0 if our
order improves on the touch) and
D0 a reference depth (shares): 1 when the touch holds D0 shares, up to 2 for an empty touch and
falling like 2·D0/D for a deep one. Why this form: incoming flow is shared by the resting size,
so our share of it falls with the queue, yet stays bounded (≤ 2×) on an empty touch, where a
thin book is a reason to fill more often, not infinitely often. The chance of at least one fill
over dt is `1 − exp(−λ dt)`. A fill is the whole remaining size with probability
`paper_full_fill_prob`, otherwise a fraction ~ Beta(a, b) of the remaining size, capped at
`paper_partial_max_frac`, at least one min-size lot and never more than what remains.

`queue`. The order joins the back of its price level: the size already resting there (from the
last book seen) is ahead of it. Public trades at our price eat the queue ahead first, then our
order; a decrease of the level's size in the book (cancels, or trades we did not see) also eats
the queue ahead (the optimistic assumption: a cancel ahead of us, never behind). A trade at a
better price than ours, or a book that now offers at our price from the other side, means the
market traded through our level: the order fills. One print is shared among our orders best
price first, and each of its shares fills at most one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..config import Params
from ..domain import BUY, ZERO, BookView, Side
from ..ticks import floor_size

DEFAULT_REF_DEPTH = 100.0


def touch_distance(view: BookView, side: Side, price: Decimal) -> float:
    """Price distance behind our side's touch (0 when at or better than the touch)."""
    best = view.best_bid if side is BUY else view.best_ask
    if best is None:
        return 0.0
    d = best - price if side is BUY else price - best
    return max(0.0, float(d))


def touch_depth(view: BookView, side: Side, price: Decimal) -> float:
    """Size resting at our side's touch; 0 when our price improves on it (nobody is ahead)."""
    levels = view.bids if side is BUY else view.asks
    if not levels:
        return 0.0
    better = price > levels[0].price if side is BUY else price < levels[0].price
    return 0.0 if better else float(levels[0].size)


def depth_factor(depth: float, ref_depth: float = DEFAULT_REF_DEPTH) -> float:
    return 2.0 * ref_depth / (ref_depth + depth)


@dataclass(frozen=True, slots=True)
class IntensityKnobs:
    """The intensity model's own parameters (the `PMM_PAPER_*` knobs it reads, and nothing else)."""

    intensity: float = 1.0  # fills/min for a quote at the touch
    spread_k: float = 100.0
    full_fill_prob: float = 0.3
    beta_a: float = 2.0
    beta_b: float = 5.0
    partial_max_frac: float = 0.8
    ref_depth: float = DEFAULT_REF_DEPTH

    @classmethod
    def from_params(cls, p: Params, ref_depth: float = DEFAULT_REF_DEPTH) -> IntensityKnobs:
        return cls(p.paper_fill_intensity, p.paper_spread_k, p.paper_full_fill_prob, p.paper_partial_beta_a,
                   p.paper_partial_beta_b, p.paper_partial_max_frac, ref_depth)


def intensity_rate_knobs(k: IntensityKnobs, distance: float, depth: float) -> float:
    """λ in fills per second for an order `distance` behind a touch holding `depth` shares."""
    return k.intensity / 60.0 * math.exp(-k.spread_k * distance) * depth_factor(depth, k.ref_depth)


def intensity_rate(params: Params, distance: float, depth: float, ref_depth: float = DEFAULT_REF_DEPTH) -> float:
    return intensity_rate_knobs(IntensityKnobs.from_params(params, ref_depth), distance, depth)


def fill_probability(rate_per_sec: float, dt: float) -> float:
    return 1.0 - math.exp(-rate_per_sec * dt) if dt > 0 else 0.0


def draw_fill_size_knobs(rng: np.random.Generator, k: IntensityKnobs, remaining: Decimal, min_size: Decimal) -> Decimal:
    """Size of one fill: all of `remaining`, or a Beta-distributed partial (see module doc)."""
    if rng.random() < k.full_fill_prob:
        return remaining
    frac = min(float(rng.beta(k.beta_a, k.beta_b)), k.partial_max_frac)
    size = floor_size(remaining * Decimal(repr(frac)))
    return min(remaining, max(size, min_size))


def draw_fill_size(rng: np.random.Generator, params: Params, remaining: Decimal, min_size: Decimal) -> Decimal:
    return draw_fill_size_knobs(rng, IntensityKnobs.from_params(params), remaining, min_size)


@dataclass(slots=True)
class QueuePosition:
    """Our place in a price level: `ahead` shares before us; `level` the level size last seen."""

    ahead: Decimal
    level: Decimal

    def on_level(self, level_now: Decimal) -> None:
        if level_now < self.level:
            self.ahead = max(ZERO, self.ahead - (self.level - level_now))
        self.level = level_now

    def on_trade_at_price(self, size: Decimal) -> Decimal:
        """A print at our price: eat the queue ahead; returns the size left for our order."""
        eaten = min(self.ahead, size)
        self.ahead -= eaten
        self.level = max(ZERO, self.level - size)  # the book update that follows is the same trade
        return size - eaten
