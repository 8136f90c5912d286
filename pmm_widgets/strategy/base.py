"""The `Strategy` protocol: one market's inputs in, wanted quotes (and a status) out.

Why a protocol this small: a researcher should be able to write a strategy in a notebook cell
and run it paper, replay or live without touching the engine. So a strategy is a plain object
with a `name` and one pure method,

    decide(ctx: MarketContext, state: object | None) -> Decision

called once per market per quote cycle. Pure means: no I/O, no clock (the cycle's time is
`ctx.now`), no DB, no exchange. Everything it may use is in `ctx`: both tokens' books, the
effective YES touch, our inventory and open orders in this market, the live parameters (with
the market's overrides applied), the calibrator's multiplier, volatility, short-term markouts
of our fills, and the time to the market's end. Its own memory is `state`: whatever the
previous `Decision.state` was for this market (None at first and after a strategy switch), so a
replay that feeds the same inputs gets the same outputs.

What a strategy can NOT do: bypass a limit or cross the book. The cycle passes every
`Decision` through `guard.guard_quotes` (market/token, tick grid inside (0, 1), size, SELL
within holdings, post-only against the effective touch, no self-crossing pair, the status's
reduce-only / halted rule), then through risk (inventory, band, loss limits), the planner and the
exchange's venue rules, exactly as for the seed's quoting. A quote the guard drops is reported
in the market's status and as an `events` row (kind `strategy_guard`), never sent.

Statuses (`Regime`): `normal` and `wide` quote; `reduce-only` keeps only quotes that move the
net YES-equivalent position toward zero; `halted` quotes nothing. `Decision.reason` says why
and `Decision.events` carries messages the cycle records as `events` rows (kind
`strategy_regime`), e.g. a regime transition.

Helpers for writing one: `ctx.fair_micro` (the seed's microprice fair value), `ctx.sigma`
(expected YES mid move over `ctx.vol_horizon_sec`), and `ctx.quotes(bid, ask)`, which turns a
YES-space bid/ask (floats or Decimals, in price units) into token orders exactly as the seed
does: bid rounded down and ask up onto the grid, capped at the price band, post-only, BUY YES
or SELL NO for the bid and SELL YES or BUY NO for the ask.

Incremental cycle (optional): a strategy may also define `decision_key(ctx) -> object | None`,
a value (compared with ==) that captures everything its decision reads from `ctx` *besides*
what the cycle always compares itself (the market object, the market's parameters, inventory,
tick, effective touch, both books' min order sizes, the incoming `state`). Two contexts with
equal keys and the same state must give an equal `Decision`; the cycle then keeps the previous
decision instead of calling `decide` again. A strategy without the method, or returning None,
is decided every cycle (always exact; the safe default for notebook strategies). A strategy
that reads `ctx.now` must not define it (or must put `now` in the key).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from ..config import Params
from ..domain import BookView, Market, Order, Quote, slot_init
from .inventory import Inventory
from .quoting import fair_yes, token_quotes


class Regime(str, enum.Enum):
    NORMAL = "normal"
    WIDE = "wide"
    REDUCE_ONLY = "reduce-only"
    HALTED = "halted"

    @property
    def level(self) -> int:
        return _LEVELS[self]


_LEVELS = {Regime.NORMAL: 0, Regime.WIDE: 1, Regime.REDUCE_ONLY: 2, Regime.HALTED: 3}
# the regimes the cycle and the guard compare with per market, as module constants (why: see
# `domain.BUY`: a member read off its enum class is slow on Python 3.11)
NORMAL, REDUCE_ONLY, HALTED = Regime.NORMAL, Regime.REDUCE_ONLY, Regime.HALTED


@slot_init
@dataclass(frozen=True, slots=True)
class MarketContext:
    """Everything one market's decision may read (immutable; built by the cycle each cycle)."""

    market: Market
    yes: BookView
    no: BookView
    tick: Decimal  # the coarsest tick of market and books
    bid_ticks: int  # effective YES touch (both books combined), integer ticks: B < A
    ask_ticks: int
    inventory: Inventory
    params: Params  # live parameters, with this market's overrides applied
    now: float = 0.0  # the cycle's time (epoch s): strategies never read a clock
    open_orders: tuple[Order, ...] = ()
    calib_mult: float = 1.0  # the calibrator's spread multiplier for this market
    vol: dict[str, float] = field(default_factory=dict)  # token → expected mid move over vol_horizon_sec
    vol_horizon_sec: float = 30.0
    markout_short: float | None = None  # EWMA of our fills' short-horizon markouts, price units (< 0: picked off)
    markout_count: int = 0
    fills_per_min: float = 0.0  # this market's fills/min at the calibrator's last update (both tokens)
    time_to_end_sec: float | None = None  # None when the market has no end date

    @property
    def n(self) -> int:
        """Ticks in one unit of price (1 / tick)."""
        return int(Decimal(1) / self.tick)

    @property
    def tf(self) -> float:
        return float(self.tick)

    @property
    def best_bid(self) -> float:
        return self.bid_ticks * self.tf

    @property
    def best_ask(self) -> float:
        return self.ask_ticks * self.tf

    @property
    def mid(self) -> float:
        return (self.bid_ticks + self.ask_ticks) * self.tf / 2.0

    @property
    def half_spread(self) -> float:
        return (self.ask_ticks - self.bid_ticks) * self.tf / 2.0

    @property
    def fair_micro(self) -> float:
        """The seed's fair value: both books' microprices averaged, clamped into the touch."""
        return fair_yes(self.yes, self.no, self.bid_ticks, self.ask_ticks, self.tick)

    @property
    def sigma(self) -> float:
        """Expected YES mid move over `vol_horizon_sec` (the larger of the two tokens' values)."""
        return max(self.vol.get(self.market.yes_token_id, 0.0), self.vol.get(self.market.no_token_id, 0.0))

    @property
    def var_rate(self) -> float:
        """Variance of the YES mid per second (price² / s)."""
        return self.sigma ** 2 / self.vol_horizon_sec if self.vol_horizon_sec > 0 else 0.0

    def quotes(self, bid: float | Decimal | None, ask: float | Decimal | None,
               size: Decimal | None = None) -> tuple[Quote, ...]:
        """YES-space bid/ask prices → token orders (see the module docstring). None: no quote on that side."""
        bid_t, ask_t = self.quote_ticks(bid, ask)
        return tuple(token_quotes(self.market, self.yes, self.no, self.params, self.inventory, self.tick,
                                  self.bid_ticks, self.ask_ticks, bid_t, ask_t, size))

    def quote_ticks(self, bid: float | Decimal | None, ask: float | Decimal | None) -> tuple[int | None, int | None]:
        """`quotes`' YES-space prices in integer ticks (bid down, ask up; the ask above the bid),
        before the band and post-only caps: what a `decision_key` of a strategy using `quotes` can return."""
        tf = self.tf
        bid_t = None if bid is None else math.floor(float(bid) / tf + 1e-9)
        ask_t = None if ask is None else math.ceil(float(ask) / tf - 1e-9)
        if bid_t is not None and ask_t is not None and ask_t <= bid_t:
            ask_t = bid_t + 1
        return bid_t, ask_t

    def inventory_fraction(self) -> float:
        """Net YES-equivalent position as a fraction of `max_inventory_shares`, clipped to [−1, 1]."""
        x = float(self.inventory.net) / float(self.params.max_inventory_shares)
        return max(-1.0, min(1.0, x))


@slot_init
@dataclass(frozen=True, slots=True)
class Decision:
    """What a strategy wants for one market this cycle."""

    quotes: tuple[Quote, ...] = ()
    regime: Regime = Regime.NORMAL
    reason: str = ""
    state: object = None  # handed back as `state` next cycle
    events: tuple[str, ...] = ()  # messages recorded as `events` rows (kind strategy_regime)


def book_flags(ctx: MarketContext) -> tuple[bool, bool, bool, bool]:
    """Both books' stale / crossed flags (the seed's `is_quotable` reads them)."""
    return (ctx.yes.stale, ctx.yes.crossed, ctx.no.stale, ctx.no.crossed)


def book_levels(v: BookView, k: int | None = None) -> tuple[object, ...]:
    """A book's best `k` levels per side (all when None), tick and flags: for decisions reading depth."""
    return (v.bids[:k], v.asks[:k], v.tick_size, v.stale, v.crossed)


def decision_key(strategy: object, ctx: MarketContext) -> object | None:
    """The strategy's `decision_key(ctx)` (see the module docstring), None when it has none."""
    fn = getattr(strategy, "decision_key", None)
    return fn(ctx) if callable(fn) else None


@runtime_checkable
class Strategy(Protocol):
    """A quoting strategy. `name` is shown in the dashboard and status; `decide` must be pure."""

    name: str

    def decide(self, ctx: MarketContext, state: object | None) -> Decision: ...
