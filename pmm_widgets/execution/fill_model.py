"""Fill models of the paper exchange: the `FillModel` protocol and its three implementations.

A fill model answers one question: given our resting orders (the venue's copy of them, see
`RestingOrder`), the books and the public prints we observe, when and how much of each order
fills. It sees four kinds of events, all with local (arrival) timestamps:

- `on_order(order, book)`: the order starts resting at the venue (after the entry latency);
  `on_cancel(order)`: it stops resting (after the cancel latency);
- `on_book(book, orders, ts)`: a book update for one token, with our orders on that token;
- `on_trade(trade, orders, ts)`: a public print, expressed in the terms of the token of `orders`
  (the paper exchange translates prints of the complementary token);
- `advance(now, orders, books)`: time passes (models that fill on time alone act here).

Each returns `ModelFill`s; the exchange applies them (caps at what remains, moves positions,
delays the notice by the latency model). A model is built from its own knobs, never from the
whole `Params`, and holds no clock and no I/O, so the replay path reuses it unchanged: given the
same seed and the same event sequence it returns the same fills.

Implementations (chosen by `PMM_PAPER_FILL_MODEL`):

`intensity` (the seed's model). A resting order fills as a Poisson process with rate
λ = intensity/60 × exp(−spread_k × distance) × depth_factor per second (see `fillmodels`), with
a full or Beta-distributed partial size. It ignores prints: only time and the touch matter.

`queue`. The order joins the back of its price level. Prints at our price eat the queue ahead,
then our order; a decrease of the level's size also eats the queue ahead (optimistic: every
cancel is ahead of us). A print through our price, or a book offering at our price from the
other side, fills the order.

Latent flow (both queue models, `PMM_PAPER_LATENT_INTENSITY`, 0 = off). On the venue our order
is in the book, and some takers trade only because it is there: an informed seller whose limit
lies between our bid and the next public bid, or a sweep that would have stopped one level short
of our price. The public tape of a market without us shows none of it, so a queue model alone
misses those fills (measured on the sandbox: `analytics.fidelity.hidden_fill_share`, about a
fifth of live fill volume in one run). The latent part fills a resting order as a Poisson
process like the intensity model (same distance decay `spread_k`, depth factor and partial
sizes, from its own rate), on top of the fills the public events give.

`prob_queue` (after hftbacktest's ProbQueueModel, Rigtorp's estimator). Like `queue`, but a
decrease of the level not explained by prints is a cancel ahead of us only with probability
f(front) / (f(front) + f(back)), where front is the size ahead, back the size behind, and f is
x**n (`power`, n = `PMM_PAPER_QUEUE_POWER`) or log(1 + x) (`log`). With n = 1 a cancel is equally
likely anywhere in the queue; a large n keeps us nearly still unless we are at the back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from ..domain import BUY, SELL, ZERO, BookView, PublicTrade, Side, slot_init
from .fillmodels import (
    DEFAULT_REF_DEPTH,
    IntensityKnobs,
    QueuePosition,
    draw_fill_size_knobs,
    fill_probability,
    intensity_rate_knobs,
    touch_depth,
    touch_distance,
)

FillModelName = Literal["intensity", "queue", "prob_queue"]
FILL_MODELS: tuple[str, ...] = ("intensity", "queue", "prob_queue")


@dataclass(slots=True)
class RestingOrder:
    """The venue's copy of one paper order. `filled` is what the venue has matched, which runs
    ahead of what we have been told while a fill notice is on its way."""

    client_id: str
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    min_size: Decimal
    filled: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.size - self.filled


@slot_init
@dataclass(frozen=True, slots=True)
class ModelFill:
    client_id: str
    size: Decimal
    ts: float  # event time as the record shows it (the print's or the book's own timestamp)
    raw: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class FillModel(Protocol):
    name: str

    @property
    def time_driven(self) -> bool: ...  # fills on time alone too (`advance`), not only on events

    def on_order(self, order: RestingOrder, book: BookView | None, now: float) -> None: ...

    def on_cancel(self, order: RestingOrder) -> None: ...

    def on_book(self, book: BookView, orders: Sequence[RestingOrder], ts: float) -> list[ModelFill]: ...

    def on_trade(self, trade: PublicTrade, orders: Sequence[RestingOrder], ts: float) -> list[ModelFill]: ...

    def advance(self, now: float, orders: Sequence[RestingOrder], books: Mapping[str, BookView]) -> list[ModelFill]: ...


def traded_through(book: BookView, side: Side, price: Decimal) -> bool:
    """The book offers at (or through) our price from the other side: our level was consumed."""
    if side is BUY:
        return book.best_ask is not None and book.best_ask <= price
    return book.best_bid is not None and book.best_bid >= price


class IntensityFillModel:
    """The seed's Poisson model; the numbers are exactly the seed's for the same seed."""

    name = "intensity"
    time_driven = True  # fills on time alone (`advance`): a cancel is settled only after running up to it

    def __init__(self, knobs: IntensityKnobs, rng: np.random.Generator) -> None:
        self.knobs = knobs
        self.rng = rng
        self._sim_ts: dict[str, float] = {}

    def on_order(self, order: RestingOrder, book: BookView | None, now: float) -> None:
        self._sim_ts[order.client_id] = now

    def on_cancel(self, order: RestingOrder) -> None:
        self._sim_ts.pop(order.client_id, None)

    def track(self, orders: Sequence[RestingOrder], now: float) -> None:
        """Start the clock of orders this model has not seen rest (it was switched on after them)."""
        for o in orders:
            self._sim_ts.setdefault(o.client_id, now)

    def on_book(self, book: BookView, orders: Sequence[RestingOrder], ts: float) -> list[ModelFill]:
        return []

    def on_trade(self, trade: PublicTrade, orders: Sequence[RestingOrder], ts: float) -> list[ModelFill]:
        return []

    def advance(self, now: float, orders: Sequence[RestingOrder], books: Mapping[str, BookView]) -> list[ModelFill]:
        """Each order's chance to fill over the time since its last `advance`. Per resting order per
        poll, so `touch_distance`, `touch_depth`, `intensity_rate_knobs` and `fill_probability` are
        written out here, the same arithmetic in the same order (tests/core/test_cycle_fastpath.py
        compares with `advance_reference`, which calls them)."""
        k = self.knobs
        per_sec, spread_k, ref = k.intensity / 60.0, k.spread_k, k.ref_depth
        exp = math.exp
        rand = self.rng.random
        sim_ts = self._sim_ts
        buy = BUY
        out: list[ModelFill] = []
        for o in orders:
            cid = o.client_id
            start = sim_ts.get(cid, now)
            dt = now - start
            if dt <= 0:
                continue
            sim_ts[cid] = now
            book = books.get(o.token_id)
            if book is None:
                continue
            price = o.price
            if o.side is buy:
                levels = book.bids
                if levels:
                    top = levels[0]
                    dist = max(0.0, float(top.price - price))
                    depth = 0.0 if price > top.price else float(top.size)
                else:
                    dist = depth = 0.0
            else:
                levels = book.asks
                if levels:
                    top = levels[0]
                    dist = max(0.0, float(price - top.price))
                    depth = 0.0 if price < top.price else float(top.size)
                else:
                    dist = depth = 0.0
            rate = per_sec * exp(-spread_k * dist) * (2.0 * ref / (ref + depth))
            if rand() >= (1.0 - exp(-rate * dt) if dt > 0 else 0.0):
                continue
            size = draw_fill_size_knobs(self.rng, k, o.remaining, o.min_size)
            out.append(ModelFill(o.client_id, size, now, {"model": self.name, "distance": dist, "touch_depth": depth,
                                                           "rate_per_min": rate * 60.0, "dt": dt}))
        return out

    def advance_reference(self, now: float, orders: Sequence[RestingOrder],
                          books: Mapping[str, BookView]) -> list[ModelFill]:
        """`advance` through the helper functions (the reference its tests compare with)."""
        k = self.knobs
        out: list[ModelFill] = []
        for o in orders:
            start = self._sim_ts.get(o.client_id, now)
            dt = now - start
            if dt <= 0:
                continue
            self._sim_ts[o.client_id] = now
            book = books.get(o.token_id)
            if book is None:
                continue
            dist = touch_distance(book, o.side, o.price)
            depth = touch_depth(book, o.side, o.price)
            rate = intensity_rate_knobs(k, dist, depth)
            if self.rng.random() >= fill_probability(rate, dt):
                continue
            size = draw_fill_size_knobs(self.rng, k, o.remaining, o.min_size)
            out.append(ModelFill(o.client_id, size, now, {"model": self.name, "distance": dist, "touch_depth": depth,
                                                           "rate_per_min": rate * 60.0, "dt": dt}))
        return out


class QueueFillModel:
    """Queue position with every unexplained level decrease counted ahead of us (optimistic),
    plus the optional latent flow (see the module doc)."""

    name = "queue"

    def __init__(self, latent: IntensityKnobs | None = None, rng: np.random.Generator | None = None) -> None:
        self._queues: dict[str, QueuePosition] = {}
        self._latent: IntensityFillModel | None = None
        self._rng = rng if rng is not None else np.random.default_rng(0)
        self.set_latent(latent)

    @property
    def time_driven(self) -> bool:
        return self._latent is not None

    def set_latent(self, latent: IntensityKnobs | None) -> None:
        """New latent-flow knobs (None or a zero rate: off). Orders resting now start their clock
        at their next `advance`."""
        if latent is None or latent.intensity <= 0:
            self._latent = None
        elif self._latent is None:
            self._latent = IntensityFillModel(latent, self._rng)
        else:
            self._latent.knobs = latent

    def on_order(self, order: RestingOrder, book: BookView | None, now: float) -> None:
        level = book.size_at(order.side, order.price) if book is not None else ZERO
        self._queues[order.client_id] = QueuePosition(ahead=level, level=level)
        if self._latent is not None:
            self._latent.on_order(order, book, now)

    def on_cancel(self, order: RestingOrder) -> None:
        self._queues.pop(order.client_id, None)
        if self._latent is not None:
            self._latent.on_cancel(order)

    def _on_level(self, qp: QueuePosition, level_now: Decimal, order: RestingOrder) -> None:
        qp.on_level(level_now)

    def on_book(self, book: BookView, orders: Sequence[RestingOrder], ts: float) -> list[ModelFill]:
        out: list[ModelFill] = []
        for o in orders:
            qp = self._queues.get(o.client_id)
            if qp is None:
                continue
            self._on_level(qp, book.size_at(o.side, o.price), o)
            if traded_through(book, o.side, o.price) and o.remaining > 0:
                out.append(ModelFill(o.client_id, o.remaining, ts, {"model": self.name, "cause": "book_through"}))
        return out

    def on_trade(self, trade: PublicTrade, orders: Sequence[RestingOrder], ts: float) -> list[ModelFill]:
        """A print eats the resting orders it could have met, best price first, once each share."""
        makers = [o for o in orders if o.side is not trade.side]
        makers.sort(key=lambda o: o.price, reverse=trade.side is SELL)  # a seller hits the highest bid first
        left = trade.size
        out: list[ModelFill] = []
        for o in makers:
            qp = self._queues.get(o.client_id)
            if qp is None or left <= 0:
                continue
            if trade.price == o.price:
                left, cause = qp.on_trade_at_price(left), "trade_at_price"
            elif (trade.price < o.price) if o.side is BUY else (trade.price > o.price):
                cause = "trade_through"
            else:
                continue
            size = min(left, o.remaining)
            left -= size
            if size > 0:
                out.append(ModelFill(o.client_id, size, ts, {"model": self.name, "cause": cause, "ahead": str(qp.ahead)}))
        return out

    def advance(self, now: float, orders: Sequence[RestingOrder], books: Mapping[str, BookView]) -> list[ModelFill]:
        if self._latent is None:
            return []
        self._latent.track(orders, now)
        return [ModelFill(f.client_id, f.size, f.ts, {**f.raw, "model": self.name, "cause": "latent"})
                for f in self._latent.advance(now, orders, books)]


QueueFunc = Literal["power", "log"]


def queue_prob_ahead(front: float, back: float, func: QueueFunc = "power", n: float = 2.0) -> float:
    """Probability that a cancel at our level came from ahead of us: f(front) / (f(front) + f(back)).

    The more of the level is ahead of us, the likelier a cancel came from there; f sets how
    strongly: x**n with n = 1 is proportional to size, n > 1 favours the larger side, and
    log(1 + x) flattens it. Nothing ahead gives 0; nothing behind gives 1."""
    if front <= 0:
        return 0.0
    if back <= 0:
        return 1.0
    if func == "log":
        fb, ff = math.log1p(back), math.log1p(front)
    else:
        fb, ff = back ** n, front ** n
    tot = ff + fb
    return ff / tot if tot > 0 else 0.0


class ProbQueueFillModel(QueueFillModel):
    """Queue position where a cancel is ahead of us with a probability set by our place.

    The update is the expectation (deterministic, like hftbacktest's): a level decrease of d
    shares not explained by prints moves us forward by d × P(ahead), never past the front, and
    never leaves more ahead of us than the level now holds."""

    name = "prob_queue"

    def __init__(self, func: QueueFunc = "power", n: float = 2.0, latent: IntensityKnobs | None = None,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(latent, rng)
        if func not in ("power", "log"):
            raise ValueError(f"queue function must be 'power' or 'log', not {func!r}")
        if not n > 0:
            raise ValueError(f"queue power must be > 0, not {n}")
        self.func: QueueFunc = func
        self.n = n

    def _on_level(self, qp: QueuePosition, level_now: Decimal, order: RestingOrder) -> None:
        if level_now < qp.level:
            drop = qp.level - level_now
            front = float(qp.ahead)
            back = max(0.0, float(qp.level) - front)  # paper orders are not in the book: the rest is behind us
            p = queue_prob_ahead(front, back, self.func, self.n)
            moved = (drop * Decimal(repr(p))).quantize(Decimal("0.01"))
            qp.ahead = max(ZERO, min(qp.ahead - moved, level_now))
        qp.level = level_now


@dataclass(frozen=True, slots=True)
class FillModelSpec:
    """Everything needed to build a fill model: the name and that model's own knobs."""

    name: str = "intensity"
    intensity: IntensityKnobs = field(default_factory=IntensityKnobs)
    queue_func: QueueFunc = "power"
    queue_power: float = 2.0
    latent_intensity: float = 0.0  # queue models: the latent flow's rate (fills/min at the public touch)

    def latent(self) -> IntensityKnobs | None:
        """The latent flow's knobs: the intensity model's, at the latent rate (None when off)."""
        if self.latent_intensity <= 0:
            return None
        return replace(self.intensity, intensity=self.latent_intensity)

    def build(self, rng: np.random.Generator) -> FillModel:
        if self.name == "intensity":
            return IntensityFillModel(self.intensity, rng)
        if self.name == "queue":
            return QueueFillModel(self.latent(), rng)
        if self.name == "prob_queue":
            return ProbQueueFillModel(self.queue_func, self.queue_power, self.latent(), rng)
        raise ValueError(f"unknown paper fill model {self.name!r} (expected one of {', '.join(FILL_MODELS)})")


__all__ = [
    "DEFAULT_REF_DEPTH", "FILL_MODELS", "FillModel", "FillModelSpec", "IntensityFillModel", "ModelFill",
    "ProbQueueFillModel", "QueueFillModel", "RestingOrder", "queue_prob_ahead", "traded_through",
]
