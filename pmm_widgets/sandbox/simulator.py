"""Seeded, deterministic market simulator behind the sandbox venue.

Why it is built this way:
- Pure and deterministic: time advances in fixed simulated steps (`STEP_SEC`) and every random
  draw comes from generators seeded once, so the same seed gives the same event stream whatever
  the wall clock does. The server only decides *how many* steps to run (the speed factor).
- One YES-denominated book per market. The NO book is derived on the fly (a NO bid at q is a
  YES ask at 1 - q), so the two tokens can never disagree; orders sent on the NO token are
  converted to the YES side they are economically equal to.
- Prices are integer thousandths ("mils") internally, sizes integer hundredths of a share, so
  matching is exact and cheap; Decimal / strings appear only at the edges.
- A latent fair probability moves in logit space with occasional jumps. Background liquidity is
  centred on a *lagged* public reference, and part of the marketable flow trades on the latent
  fair value before the book shows it: resting quotes suffer real adverse selection.
- Account orders (the trading half) rest in the same books with true price-time priority and are
  filled by the same background flow.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from ..domain import BookView, Level, Side
from ..economics.fees import NO_FEES, FeeSchedule
from ..economics.rewards import NO_PROGRAM, RewardProgram
from ..errors import PmmError
from .economics import VenueEconomics

log = logging.getLogger(__name__)

STEP_SEC = 0.1  # simulated seconds per step
MAX_LEVELS = 30  # background depth cap per side (keeps CPU bounded)
PUBLIC_TRADES_KEPT = 20_000
PRICE_HISTORY_SEC = 60.0  # one price-history point per simulated minute per market
PRICE_HISTORY_KEPT = 10_000

# Flow calibration, per simulated second, for a market of activity 1.0.
LIMIT_RATE = 2.0  # new background limit orders
CANCEL_RATE = 0.07  # per resting background order
NOISE_TAKER_RATE = 0.15  # uninformed marketable orders
INFORMED_K = 12.0  # informed marketable orders per second per unit of |fair - public ref|
REF_TAU_SEC = 15.0  # lag of the public reference behind the latent fair value
LOGIT_VOL = 0.012  # per sqrt(second)
JUMP_RATE = 1.0 / 900.0  # news jumps per second per market
JUMP_SIZE = 0.6  # logit stdev of a jump
LOGIT_CLIP = 5.2  # fair stays within about [0.0055, 0.9945]
EXTREME_LO, EXTREME_HI = 40, 960  # mils: finer tick below 0.04 / above 0.96

_PSTR = [format((Decimal(m) / 1000).normalize(), "f") for m in range(1001)]
_TICK_STR = {10: "0.01", 1: "0.001"}
_CENTI = Decimal("0.01")


def price_str(mil: int) -> str:
    """Wire text of a price in mils: "0.43", "0.431"."""
    return _PSTR[mil]


def size_str(centi: int) -> str:
    """Wire text of a size in hundredths of a share: "100", "12.5", "3.07"."""
    q, r = divmod(centi, 100)
    if r == 0:
        return str(q)
    if r % 10 == 0:
        return f"{q}.{r // 10}"
    return f"{q}.{r:02d}"


class SimReject(PmmError):
    """An account order refused with the real CLOB's error text (str(exc) is that text)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class SimOrder:
    """An account order as the venue tracks it; `side`/`price` in the terms of `token_id`."""

    order_id: str
    owner: str
    token_id: str
    condition_id: str
    side: Side
    price: Decimal
    original_size: Decimal
    size_matched: Decimal = Decimal(0)
    status: str = "LIVE"  # LIVE | MATCHED | CANCELED
    created_ts: float = 0.0
    post_only: bool = False
    order_type: str = "GTC"  # GTC | GTD | FOK | FAK

    @property
    def remaining(self) -> Decimal:
        return self.original_size - self.size_matched


@dataclass(frozen=True, slots=True)
class SimTrade:
    """One fill of an account order. `side`/`price` are the account's, in `token_id` terms;
    `taker_side` is the taker's side in the same token's terms; `trader_side` says which role
    the account played ("MAKER" or "TAKER"); `counterparty_order_id` is the other order
    (None when it was background flow)."""

    trade_id: str
    order_id: str
    owner: str
    token_id: str
    condition_id: str
    side: Side
    price: Decimal
    size: Decimal
    ts: float
    taker_side: Side
    trader_side: str = "MAKER"
    counterparty_order_id: str | None = None


class _Rest:
    """A resting order inside a book level (background when `acct` is None)."""

    __slots__ = ("size", "acct")

    def __init__(self, size: int, acct: SimOrder | None = None):
        self.size = size
        self.acct = acct


@dataclass(eq=False)
class SimMarket:
    """One binary market: static metadata plus its live YES-denominated book."""

    index: int
    gamma_id: str
    condition_id: str
    question: str
    slug: str
    yes_token_id: str
    no_token_id: str
    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool
    closed: bool
    accepting_orders: bool
    has_enable_order_book: bool
    liquidity_num: float
    volume_base: float  # lifetime volume before the simulation started
    volume24_base: float  # 24 h volume before the simulation started
    activity: float
    size_scale: float
    min_dist: int  # nearest background quote distance from the reference, in ticks (wider when illiquid)
    end_date: str
    created_at: str
    fair: float = 0.5
    ref: float = 0.5
    # book (YES terms): price in mils -> FIFO list of resting orders; sorted price lists; totals
    bids: dict[int, list[_Rest]] = field(default_factory=dict)
    asks: dict[int, list[_Rest]] = field(default_factory=dict)
    bid_px: list[int] = field(default_factory=list)  # ascending
    ask_px: list[int] = field(default_factory=list)  # ascending
    bid_tot: dict[int, int] = field(default_factory=dict)
    ask_tot: dict[int, int] = field(default_factory=dict)
    n_bg: int = 0
    tick_mil: int = 10
    last_trade_mil: int | None = None  # YES terms
    last_trade_side: str = ""  # taker side in YES terms
    volume_traded: float = 0.0  # notional since start
    trades_24h: deque[list[float]] = field(default_factory=deque)  # [epoch minute, notional]
    book_ts_ms: int = 0
    version: int = 0
    changed: set[tuple[bool, int]] = field(default_factory=set)  # {(is_bid, mil)} since last event flush
    # venue economics (sandbox/economics.py assigns them) and resolution
    fees_enabled: bool = False
    fee: FeeSchedule = NO_FEES
    fee_bps: int = 0
    program: RewardProgram = NO_PROGRAM
    event_id: str | None = None  # neg-risk event this market belongs to
    resolved: bool = False
    winner_yes: bool | None = None
    resolved_ts: float | None = None

    @property
    def has_book(self) -> bool:
        return not self.closed and self.accepting_orders

    @property
    def best_bid_mil(self) -> int | None:
        return self.bid_px[-1] if self.bid_px else None

    @property
    def best_ask_mil(self) -> int | None:
        return self.ask_px[0] if self.ask_px else None


# what the trading half hears about an account: ("order", SimOrder, kind) or ("trade", SimTrade)
AccountEvent = tuple[Any, ...]
# per market index: (market, old best bid, old best ask, old tick, prints (price mil, size centi, buy))
PendingEvents = tuple[SimMarket, int | None, int | None, int, list[tuple[int, int, bool]]]


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One market-channel event: the assets it concerns, whether it is a custom-feature event,
    and the wire payload (a dict exactly as sent)."""

    assets: tuple[str, ...]
    custom: bool
    payload: dict[str, Any]


def _token_id(rnd: random.Random) -> str:
    while True:
        s = str(rnd.getrandbits(256))
        if 76 <= len(s) <= 78:
            return s


class Simulator:
    """N binary markets with seeded fair values and background order flow.

    `step()` advances one fixed simulated step and returns the market-channel events it
    produced for the watched tokens (`watched=None`: every token). Nothing here does I/O.
    """

    def __init__(self, markets: int = 80, seed: int = 7, speed: float = 1.0, start_ts: float | None = None):
        self.seed = seed
        self.speed = speed
        self._t = float(time.time() if start_ts is None else start_ts)
        self._t0 = self._t
        self.steps = 0
        self._np = np.random.default_rng(seed)
        self._rnd = random.Random(seed * 7919 + 1)
        self.markets: list[SimMarket] = []
        self.by_token: dict[str, tuple[SimMarket, bool]] = {}  # token -> (market, is_yes)
        self.by_condition: dict[str, SimMarket] = {}
        self.by_gamma_id: dict[str, SimMarket] = {}
        self.watched: set[str] | None = None
        # the real market channel re-sends the full `book` after a trade; level changes also go
        # out as price_change, so a client handling either message stays exact
        self.book_after_trade = True
        self._orders: dict[str, tuple[SimMarket, bool, int, _Rest]] = {}  # account id -> (m, is_bid, mil, rest)
        self._all_account: dict[str, SimOrder] = {}
        self._account_trades: dict[str, list[SimTrade]] = {}
        self._listeners: list[Callable[[AccountEvent], None]] = []
        self._public: deque[dict[str, Any]] = deque(maxlen=PUBLIC_TRADES_KEPT)
        self._history: dict[str, deque[tuple[int, float]]] = {}  # condition id -> deque[(t, yes prob)]
        self._next_hist = self._t
        self._trade_seq = 0
        self._hash_cache: dict[str, tuple[int, str, str]] = {}
        self._pending_events: dict[int, PendingEvents] = {}  # market index -> (m, old bb, old ba, old tick, prints)
        self._build(markets)
        self.econ = VenueEconomics(self, seed)
        self.econ.assign_terms(self.markets)
        self.resolve_every: float | None = None  # simulated seconds between resolutions (None: off)
        self._next_resolve: float | None = None
        self._extra_events: list[SimEvent] = []  # custom events raised between steps (market_resolved)
        self.bad_venue_data = 0  # resolution requests for unknown / already resolved markets
        n = len(self.markets)
        self._x = np.array([math.log(m.fair / (1 - m.fair)) for m in self.markets])
        self._ref = np.array([m.fair for m in self.markets])
        self._act = np.array([m.activity for m in self.markets])
        self._live = np.array([m.has_book for m in self.markets])
        self._nbg = np.zeros(n)
        for m in self.markets:
            if m.has_book:
                self._seed_book(m)
        self._record_history()

    # ------------------------------------------------------------------ construction
    def _build(self, n: int) -> None:
        rnd = random.Random(self.seed)
        base_id = 500_000 + rnd.randrange(100_000)
        closed_idx = set(rnd.sample(range(n), min(3, n))) if n >= 10 else set()
        rest = [i for i in range(n) if i not in closed_idx]
        not_accepting = set(rnd.sample(rest, min(2, len(rest)))) if n >= 10 else set()
        rest = [i for i in rest if i not in not_accepting]
        no_eob = set(rnd.sample(rest, min(2, len(rest)))) if n >= 10 else set()
        topics = ["Fed cut rates", "BTC above $150k", "ETH ETF inflows top $1B", "a ceasefire be signed",
                  "the incumbent win", "GDP growth exceed 3%", "the bill pass the Senate", "CPI print above 3%",
                  "the team win the final", "the launch succeed", "SpaceX reach orbit", "the merger close",
                  "unemployment exceed 5%", "oil close above $100", "the court rule in favour", "turnout exceed 60%"]
        for i in range(n):
            fair = min(max(rnd.betavariate(0.9, 0.9), 0.02), 0.98)
            liq = 10 ** rnd.uniform(2.3, 6.3)  # $200 .. $2M: orders of magnitude apart
            act = 0.3 + 2.7 * (math.log10(liq) - 2.3) / 4.0
            tick = Decimal("0.001") if (fair < 0.04 or fair > 0.96 or rnd.random() < 0.25) else Decimal("0.01")
            q = f"Will {topics[i % len(topics)]} by {2027 + i % 3}? (#{i + 1})"
            slug = q.lower().replace("?", "").replace("$", "").replace("%", "pct").replace("#", "").replace("(", "").replace(")", "")
            slug = "-".join(w for w in slug.replace(",", "").split())
            created = self._t - rnd.uniform(5, 400) * 86400
            end = self._t + rnd.uniform(10, 700) * 86400
            m = SimMarket(
                index=i,
                gamma_id=str(base_id + i * 7 + rnd.randrange(7)),
                condition_id="0x" + format(rnd.getrandbits(256), "064x"),
                question=q,
                slug=slug,
                yes_token_id=_token_id(rnd),
                no_token_id=_token_id(rnd),
                tick_size=tick,
                min_order_size=Decimal(rnd.choice((5, 5, 10, 15))),
                neg_risk=rnd.random() < 0.3,
                closed=i in closed_idx,
                accepting_orders=i not in closed_idx and i not in not_accepting,
                has_enable_order_book=i not in no_eob,
                liquidity_num=round(liq, 5),
                volume_base=(vol := liq * 10 ** rnd.uniform(0.5, 2.5)),
                volume24_base=vol * rnd.uniform(0.0005, 0.03),
                activity=act,
                size_scale=10 ** rnd.uniform(1.2, 2.6) * (0.5 + act / 3),
                min_dist=max(1, round(3.5 - 1.2 * act)),
                end_date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)),
                created_at=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(created)),
                fair=fair,
                ref=fair,
            )
            m.tick_mil = 1 if tick == Decimal("0.001") else 10
            m.book_ts_ms = int(self._t * 1000)
            self.markets.append(m)
            self.by_token[m.yes_token_id] = (m, True)
            self.by_token[m.no_token_id] = (m, False)
            self.by_condition[m.condition_id] = m
            self.by_gamma_id[m.gamma_id] = m
            self._history[m.condition_id] = deque(maxlen=PRICE_HISTORY_KEPT)

    def _seed_book(self, m: SimMarket) -> None:
        """Initial depth: a dozen background orders per side around the fair value."""
        for _ in range(14):
            self._add_background_limit(m, True, m.fair)
            self._add_background_limit(m, False, m.fair)
        m.changed.clear()

    # ------------------------------------------------------------------ clock
    def now(self) -> float:
        """Simulated epoch seconds (time of the last completed step)."""
        return self._t

    def run_until(self, t: float, max_steps: int | None = None) -> list[SimEvent]:
        """Advance whole steps until simulated time reaches `t` (at most `max_steps`)."""
        out: list[SimEvent] = []
        n = 0
        while self._t + STEP_SEC <= t + 1e-9 and (max_steps is None or n < max_steps):
            out.extend(self.step())
            n += 1
        return out

    def step(self) -> list[SimEvent]:
        """One simulated step: fair values, then flow market by market, then the events. A minute
        (or day) boundary the step reaches is an instant: its reward sample (and payout) is taken
        first, on the market as every event stamped before the boundary left it; this step's flow,
        stamped at the step's time (at or after the boundary), comes after it."""
        dt = STEP_SEC
        events: list[SimEvent] = self.flush_account_events()
        self._t = round(self._t + dt, 6)
        self.steps += 1
        self.econ.on_step()
        ts_ms = int(round(self._t * 1000))
        g = self._np
        n = len(self.markets)
        # latent fair (logit random walk + jumps) and its lagged public reference
        jumps = (g.random(n) < JUMP_RATE * dt) * g.normal(0.0, JUMP_SIZE, n)
        self._x = np.clip(self._x + g.normal(0.0, LOGIT_VOL * math.sqrt(dt), n) + jumps, -LOGIT_CLIP, LOGIT_CLIP)
        fair = 1.0 / (1.0 + np.exp(-self._x))
        self._ref += (fair - self._ref) * (dt / REF_TAU_SEC)
        gap = fair - self._ref
        act = self._act
        n_lim = g.poisson(act * LIMIT_RATE * dt)
        n_can = g.poisson(self._nbg * CANCEL_RATE * dt)
        n_noise = g.poisson(act * NOISE_TAKER_RATE * dt)
        n_inf = g.poisson(act * INFORMED_K * np.abs(gap) * dt)
        for m, f, r in zip(self.markets, fair.tolist(), self._ref.tolist()):
            m.fair, m.ref = f, r
        busy = np.nonzero(((n_lim + n_can + n_noise + n_inf) > 0) & self._live)[0]
        for i in busy.tolist():
            m = self.markets[i]
            self._flow(m, int(n_lim[i]), int(n_can[i]), int(n_noise[i]), int(n_inf[i]), float(gap[i]), ts_ms, events)
            self._nbg[i] = m.n_bg
        if self._t >= self._next_hist:
            self._record_history()
        if self.resolve_every:
            if self._next_resolve is None:
                self._next_resolve = self._t + self.resolve_every
            elif self._t >= self._next_resolve:
                self._next_resolve += self.resolve_every
                due = self.next_to_resolve()
                if due is not None:
                    self.resolve_market(due.condition_id)
                    events.extend(self.flush_account_events())
        return events

    def _record_history(self) -> None:
        for m in self.markets:
            mid = self._mid_mil(m)
            p = mid / 1000 if mid is not None else round(m.fair, 4)
            self._history[m.condition_id].append((int(self._t), round(p, 4)))
        self._next_hist = self._t + PRICE_HISTORY_SEC

    # ------------------------------------------------------------------ background flow
    def _flow(self, m: SimMarket, n_lim: int, n_can: int, n_noise: int, n_inf: int, gap: float,
              ts_ms: int, events: list[SimEvent]) -> None:
        rnd = self._rnd
        old_bb, old_ba, old_tick = m.best_bid_mil, m.best_ask_mil, m.tick_mil
        prints: list[tuple[int, int, bool]] = []  # (mil, centi, taker buys YES)
        for _ in range(n_can):
            self._cancel_background(m)
        for _ in range(n_lim):
            self._add_background_limit(m, rnd.random() < 0.5, m.ref)
        for _ in range(n_noise):
            buy = rnd.random() < 0.5
            size = self._draw_size(m, 0.6)
            best = m.best_ask_mil if buy else m.best_bid_mil
            if best is None:
                continue
            limit = best + 3 * m.tick_mil if buy else best - 3 * m.tick_mil
            self._take(m, buy, limit, size, None, ts_ms, prints)
        for _ in range(n_inf):
            buy = gap > 0
            size = self._draw_size(m, 1.2)
            fair_mil = m.fair * 1000
            t = m.tick_mil
            limit = int(fair_mil // t) * t if buy else int(-(-fair_mil // t)) * t
            self._take(m, buy, limit, size, None, ts_ms, prints)
        if not m.changed and not prints:
            return
        m.version += 1
        m.book_ts_ms = ts_ms
        self._tick_check(m)
        self._emit(m, old_bb, old_ba, old_tick, prints, ts_ms, events)

    def _draw_size(self, m: SimMarket, mult: float) -> int:
        s = m.size_scale * mult * math.exp(self._rnd.gauss(0.0, 0.8))
        centi = max(int(s * 100), int(m.min_order_size * 100))
        return centi - centi % 100 if centi > 1000 else centi  # big sizes in whole shares

    def _add_background_limit(self, m: SimMarket, is_bid: bool, ref: float) -> None:
        t = m.tick_mil
        r = ref * 1000
        k = (m.min_dist if t == 10 else 4 * m.min_dist) + int(self._rnd.expovariate(1.0 / (3.0 if t == 10 else 12.0)))
        if is_bid:
            px = int(-(-r // t)) * t - k * t
            ba = m.best_ask_mil
            if ba is not None and px >= ba:
                px = ba - t
        else:
            px = int(r // t) * t + k * t
            bb = m.best_bid_mil
            if bb is not None and px <= bb:
                px = bb + t
        if px < t or px > 1000 - t:
            return
        self._rest(m, is_bid, px, _Rest(self._draw_size(m, 1.0)))
        m.n_bg += 1
        levels = m.bid_px if is_bid else m.ask_px
        if len(levels) > MAX_LEVELS:
            self._trim_worst(m, is_bid)

    def _trim_worst(self, m: SimMarket, is_bid: bool) -> None:
        px = m.bid_px[0] if is_bid else m.ask_px[-1]
        book = m.bids if is_bid else m.asks
        keep = [o for o in book[px] if o.acct is not None]
        removed = len(book[px]) - len(keep)
        if not removed:
            return
        m.n_bg -= removed
        if keep:
            book[px] = keep
            (m.bid_tot if is_bid else m.ask_tot)[px] = sum(o.size for o in keep)
        else:
            self._drop_level(m, is_bid, px)
        m.changed.add((is_bid, px))

    def _cancel_background(self, m: SimMarket) -> None:
        """Cancel one resting order drawn uniformly over all of them, so every order has the
        same hazard (CANCEL_RATE per second). An earlier version drew a level first, which made
        an order in a crowded level (usually the touch) live several times longer than a lone
        deep one: touch queues only ever shrank by trades."""
        n = sum(map(len, m.bids.values())) + sum(map(len, m.asks.values()))
        if n == 0:
            return
        j = self._rnd.randrange(n)
        for is_bid, prices, book in ((True, m.bid_px, m.bids), (False, m.ask_px, m.asks)):
            for px in prices:
                level = book[px]
                if j < len(level):
                    o = level[j]
                    if o.acct is None:
                        self._remove_rest(m, is_bid, px, o)
                        m.n_bg -= 1
                    return
                j -= len(level)

    # ------------------------------------------------------------------ book primitives
    def _rest(self, m: SimMarket, is_bid: bool, px: int, o: _Rest) -> None:
        book, tot, prices = (m.bids, m.bid_tot, m.bid_px) if is_bid else (m.asks, m.ask_tot, m.ask_px)
        level = book.get(px)
        if level is None:
            book[px] = [o]
            tot[px] = o.size
            insort(prices, px)
        else:
            level.append(o)
            tot[px] += o.size
        m.changed.add((is_bid, px))

    def _drop_level(self, m: SimMarket, is_bid: bool, px: int) -> None:
        book, tot, prices = (m.bids, m.bid_tot, m.bid_px) if is_bid else (m.asks, m.ask_tot, m.ask_px)
        del book[px]
        del tot[px]
        del prices[bisect_left(prices, px)]

    def _remove_rest(self, m: SimMarket, is_bid: bool, px: int, o: _Rest) -> None:
        book, tot = (m.bids, m.bid_tot) if is_bid else (m.asks, m.ask_tot)
        level = book[px]
        level.remove(o)
        if level:
            tot[px] -= o.size
        else:
            self._drop_level(m, is_bid, px)
        m.changed.add((is_bid, px))

    def _take(self, m: SimMarket, buy: bool, limit: int, size: int, taker: SimOrder | None,
              ts_ms: int, prints: list[tuple[int, int, bool]]) -> int:
        """Match a marketable order against the opposite side, best price first, FIFO within a
        level. Returns the filled size (centi). Account makers get trades and order updates."""
        book, tot, prices = (m.asks, m.ask_tot, m.ask_px) if buy else (m.bids, m.bid_tot, m.bid_px)
        left = size
        while left > 0 and prices:
            px = prices[0] if buy else prices[-1]
            if (buy and px > limit) or (not buy and px < limit):
                break
            level = book[px]
            filled_here = 0
            while left > 0 and level:
                o = level[0]
                q = min(o.size, left)
                o.size -= q
                left -= q
                filled_here += q
                if m.fee_bps:
                    self.econ.on_match(m, px, q, o.acct, taker)
                if o.acct is not None:
                    self._account_fill(m, o.acct, px, q, buy, taker, "MAKER", ts_ms)
                if taker is not None:
                    self._account_fill(m, taker, px, q, buy, o.acct, "TAKER", ts_ms)
                if o.size == 0:
                    level.pop(0)
                    if o.acct is None:
                        m.n_bg -= 1
                    else:
                        self._orders.pop(o.acct.order_id, None)
            m.changed.add((not buy, px))
            if level:
                tot[px] -= filled_here
            else:
                self._drop_level(m, not buy, px)
            prints.append((px, filled_here, buy))
            m.last_trade_mil = px
            m.last_trade_side = "BUY" if buy else "SELL"
            notional = filled_here / 100 * px / 1000
            m.volume_traded += notional
            minute = ts_ms // 60_000  # per-minute buckets keep the 24 h window small
            buckets = m.trades_24h
            if buckets and buckets[-1][0] == minute:
                buckets[-1][1] += notional
            else:
                buckets.append([minute, notional])
        return size - left

    def _tick_check(self, m: SimMarket) -> None:
        if m.tick_mil != 10:
            return
        bb, ba = m.best_bid_mil, m.best_ask_mil
        if (bb is not None and (bb < EXTREME_LO or bb > EXTREME_HI)) or (
            ba is not None and (ba < EXTREME_LO or ba > EXTREME_HI)
        ):
            m.tick_mil = 1
            m.tick_size = Decimal("0.001")
            m.version += 1

    def _mid_mil(self, m: SimMarket) -> float | None:
        bb, ba = m.best_bid_mil, m.best_ask_mil
        if bb is None or ba is None:
            return None
        return (bb + ba) / 2

    # ------------------------------------------------------------------ events
    def _watched(self, m: SimMarket) -> bool:
        w = self.watched
        return w is None or m.yes_token_id in w or m.no_token_id in w

    def _emit(self, m: SimMarket, old_bb: int | None, old_ba: int | None, old_tick: int,
              prints: list[tuple[int, int, bool]], ts_ms: int, events: list[SimEvent]) -> None:
        ts = str(ts_ms)
        cid, yes, no = m.condition_id, m.yes_token_id, m.no_token_id
        for px, centi, buy in prints:
            on_yes = self._rnd.random() < 0.5  # which token's tape printed this match
            p = px if on_yes else 1000 - px
            side = ("BUY" if buy else "SELL") if on_yes else ("SELL" if buy else "BUY")
            tok = yes if on_yes else no
            self._trade_seq += 1
            payload = {"event_type": "last_trade_price", "market": cid, "asset_id": tok, "price": _PSTR[p],
                       "size": size_str(centi), "side": side, "fee_rate_bps": str(m.fee_bps), "timestamp": ts,
                       "transaction_hash": "0x" + hashlib.sha1(f"{self.seed}:{self._trade_seq}".encode()).hexdigest().ljust(64, "0")}
            self._public.append(payload)
            if self._watched(m):
                events.append(SimEvent((tok,), False, payload))
        changed, m.changed = m.changed, set()
        if not self._watched(m):
            return
        if m.tick_mil != old_tick:
            for tok in (yes, no):
                events.append(SimEvent((tok,), False, {
                    "event_type": "tick_size_change", "market": cid, "asset_id": tok,
                    "old_tick_size": _TICK_STR[old_tick], "new_tick_size": _TICK_STR[m.tick_mil], "timestamp": ts}))
        if changed:
            bb, ba = m.best_bid_mil, m.best_ask_mil
            y_bb, y_ba = (_PSTR[bb] if bb is not None else "0"), (_PSTR[ba] if ba is not None else "1")
            n_bb, n_ba = (_PSTR[1000 - ba] if ba is not None else "0"), (_PSTR[1000 - bb] if bb is not None else "1")
            yh, nh = self._hash(m, True), self._hash(m, False)
            ylist, nlist = [], []
            for is_bid, px in sorted(changed):
                tot = (m.bid_tot if is_bid else m.ask_tot).get(px, 0)
                s = size_str(tot)
                ylist.append({"asset_id": yes, "price": _PSTR[px], "size": s, "side": "BUY" if is_bid else "SELL",
                              "hash": yh, "best_bid": y_bb, "best_ask": y_ba})
                nlist.append({"asset_id": no, "price": _PSTR[1000 - px], "size": s, "side": "SELL" if is_bid else "BUY",
                              "hash": nh, "best_bid": n_bb, "best_ask": n_ba})
            events.append(SimEvent((yes, no), False, {"event_type": "price_change", "market": cid,
                                                      "price_changes": ylist + nlist, "timestamp": ts}))
            if bb != old_bb or ba != old_ba:
                for tok, b, a in ((yes, bb, ba), (no, None if ba is None else 1000 - ba, None if bb is None else 1000 - bb)):
                    events.append(SimEvent((tok,), True, {
                        "event_type": "best_bid_ask", "market": cid, "asset_id": tok,
                        "best_bid": _PSTR[b] if b is not None else "0", "best_ask": _PSTR[a] if a is not None else "1",
                        "spread": _PSTR[a - b] if (a is not None and b is not None) else "1", "timestamp": ts}))
        if prints and self.book_after_trade:
            for is_yes in (True, False):
                events.append(SimEvent((yes if is_yes else no,), False, self._book_event(m, is_yes)))

    # ------------------------------------------------------------------ ground truth / public data
    def token(self, token_id: str) -> tuple[SimMarket, bool] | None:
        return self.by_token.get(token_id)

    def _levels(self, m: SimMarket, is_yes: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Wire levels, best last: bids ascending, asks descending."""
        if is_yes:
            bids = [{"price": _PSTR[p], "size": size_str(m.bid_tot[p])} for p in m.bid_px]
            asks = [{"price": _PSTR[p], "size": size_str(m.ask_tot[p])} for p in reversed(m.ask_px)]
        else:  # NO bids at q = YES asks at 1-q; NO asks at q = YES bids at 1-q
            bids = [{"price": _PSTR[1000 - p], "size": size_str(m.ask_tot[p])} for p in reversed(m.ask_px)]
            asks = [{"price": _PSTR[1000 - p], "size": size_str(m.bid_tot[p])} for p in m.bid_px]
        return bids, asks

    def _book_dict(self, m: SimMarket, is_yes: bool, h: str) -> dict[str, Any]:
        bids, asks = self._levels(m, is_yes)
        lt = m.last_trade_mil
        return {
            "market": m.condition_id,
            "asset_id": m.yes_token_id if is_yes else m.no_token_id,
            "timestamp": str(m.book_ts_ms),
            "hash": h,
            "bids": bids,
            "asks": asks,
            "min_order_size": format(m.min_order_size, "f"),
            "tick_size": _TICK_STR[m.tick_mil],
            "neg_risk": m.neg_risk,
            "last_trade_price": "" if lt is None else _PSTR[lt if is_yes else 1000 - lt],
        }

    def _hash(self, m: SimMarket, is_yes: bool) -> str:
        """SHA-1 of the compact book JSON with hash "" (the server's rule, as reproduced by
        py-clob-client-v2's `generate_orderbook_summary_hash`), cached per book version. Both
        tokens are hashed together from one pass over the levels; the JSON text is assembled
        directly (every field is plain ASCII) because this runs for every changed book."""
        c = self._hash_cache.get(m.yes_token_id)
        if c is None or c[0] != m.version:
            c = (m.version, *self._hash_pair(m))
            self._hash_cache[m.yes_token_id] = c
        return c[1] if is_yes else c[2]

    def _hash_pair(self, m: SimMarket) -> tuple[str, str]:
        P = _PSTR
        bt, at = m.bid_tot, m.ask_tot
        bsz = [size_str(bt[p]) for p in m.bid_px]
        asz = [size_str(at[p]) for p in m.ask_px]
        lv = '{"price":"%s","size":"%s"}'
        y_b = ",".join([lv % (P[p], s) for p, s in zip(m.bid_px, bsz)])
        y_a = ",".join([lv % (P[p], s) for p, s in zip(reversed(m.ask_px), reversed(asz))])
        n_b = ",".join([lv % (P[1000 - p], s) for p, s in zip(reversed(m.ask_px), reversed(asz))])
        n_a = ",".join([lv % (P[1000 - p], s) for p, s in zip(m.bid_px, bsz)])
        lt = m.last_trade_mil
        tail = '"min_order_size":"%s","tick_size":"%s","neg_risk":%s,"last_trade_price":"%s"}'
        mos, tick, nr = format(m.min_order_size, "f"), _TICK_STR[m.tick_mil], "true" if m.neg_risk else "false"
        head = '{"market":"%s","asset_id":"%s","timestamp":"%d","hash":"","bids":[%s],"asks":[%s],'
        y = head % (m.condition_id, m.yes_token_id, m.book_ts_ms, y_b, y_a) + tail % (
            mos, tick, nr, "" if lt is None else P[lt])
        n = head % (m.condition_id, m.no_token_id, m.book_ts_ms, n_b, n_a) + tail % (
            mos, tick, nr, "" if lt is None else P[1000 - lt])
        return hashlib.sha1(y.encode()).hexdigest(), hashlib.sha1(n.encode()).hexdigest()

    def _book_event(self, m: SimMarket, is_yes: bool) -> dict[str, Any]:
        b = self._book_dict(m, is_yes, self._hash(m, is_yes))
        return {"event_type": "book", "market": b["market"], "asset_id": b["asset_id"], "timestamp": b["timestamp"],
                "hash": b["hash"], "bids": b["bids"], "asks": b["asks"], "tick_size": b["tick_size"],
                "last_trade_price": b["last_trade_price"]}

    def book_event(self, token_id: str) -> dict[str, Any] | None:
        """The market-channel `book` message for a token now (None without an order book)."""
        t = self.by_token.get(token_id)
        if t is None or not t[0].has_book:
            return None
        return self._book_event(*t)

    def book_snapshot(self, token_id: str) -> dict[str, Any] | None:
        """The exact GET /book body now; None when the token has no order book (unknown/closed)."""
        t = self.by_token.get(token_id)
        if t is None or not t[0].has_book:
            return None
        m, is_yes = t
        return self._book_dict(m, is_yes, self._hash(m, is_yes))

    def book_view(self, token_id: str, ts: float | None = None) -> BookView | None:
        """The book now as the strategy sees it (levels best first), for in-process drivers
        (benches and tests that run the engine's cycle on the simulator without sockets)."""
        snap = self.book_snapshot(token_id)
        if snap is None:
            return None

        def levels(xs: list[dict[str, Any]]) -> tuple[Level, ...]:
            return tuple(Level(Decimal(x["price"]), Decimal(x["size"])) for x in reversed(xs))  # wire: best last

        return BookView(token_id, snap["market"], levels(snap["bids"]), levels(snap["asks"]),
                        Decimal(snap["tick_size"]), Decimal(snap["min_order_size"]),
                        ts=self.now() if ts is None else ts)

    def best(self, token_id: str) -> tuple[Decimal | None, Decimal | None]:
        """(best bid, best ask) of a token, in its own terms."""
        m, is_yes = self.by_token[token_id]
        bb, ba = m.best_bid_mil, m.best_ask_mil
        if not is_yes:
            bb, ba = (None if ba is None else 1000 - ba), (None if bb is None else 1000 - bb)

        def d(x: int | None) -> Decimal | None:
            return None if x is None else Decimal(_PSTR[x])

        return d(bb), d(ba)

    def mid(self, token_id: str) -> Decimal | None:
        if token_id not in self.by_token:
            return None
        bb, ba = self.best(token_id)
        if bb is None or ba is None:
            return None
        return (bb + ba) / 2

    def tick_size(self, token_id: str) -> Decimal:
        return self.by_token[token_id][0].tick_size

    def fair(self, token_id: str) -> float:
        """Latent fair probability that this token pays out."""
        m, is_yes = self.by_token[token_id]
        return m.fair if is_yes else 1.0 - m.fair

    def last_trade(self, token_id: str) -> tuple[str, str]:
        """(price, taker side) of the last match in this token's terms; ("", "") before any."""
        m, is_yes = self.by_token[token_id]
        if m.last_trade_mil is None:
            return "", ""
        if is_yes:
            return _PSTR[m.last_trade_mil], m.last_trade_side
        return _PSTR[1000 - m.last_trade_mil], ("SELL" if m.last_trade_side == "BUY" else "BUY")

    def public_trades(self, since: float = 0) -> list[dict[str, Any]]:
        """Trade prints (`last_trade_price` payloads) strictly after `since` (epoch s), so that
        polling with the previous poll's time never returns a print twice."""
        lo = int(round(since * 1000))
        return [p for p in self._public if int(p["timestamp"]) > lo]

    def price_history(self, token_id: str, start: float | None = None, end: float | None = None) -> list[dict[str, Any]]:
        m, is_yes = self.by_token[token_id]
        out = []
        for t, p in self._history[m.condition_id]:
            if (start is not None and t < start) or (end is not None and t > end):
                continue
            out.append({"t": t, "p": p if is_yes else round(1 - p, 4)})
        return out

    def volume_24h(self, m: SimMarket) -> float:
        """Notional traded over the last simulated day (the pre-start volume fades out linearly)."""
        elapsed = self._t - self._t0
        cutoff = (self._t - 86400) // 60
        q = m.trades_24h
        while q and q[0][0] < cutoff:
            q.popleft()
        return m.volume24_base * max(0.0, 1 - elapsed / 86400) + sum(n for _, n in q)

    def gamma_markets(self) -> list[dict[str, Any]]:
        """Every market object exactly as Gamma serves it (closed / not accepting included)."""
        from .gamma import gamma_object

        return [gamma_object(self, m) for m in self.markets]

    def state(self) -> dict[str, Any]:
        """A compact ground-truth summary (admin endpoint)."""
        return {
            "now": self._t,
            "steps": self.steps,
            "seed": self.seed,
            "speed": self.speed,
            "markets": [
                {"condition_id": m.condition_id, "yes_token_id": m.yes_token_id, "no_token_id": m.no_token_id,
                 "fair": m.fair, "ref": m.ref, "tick_size": _TICK_STR[m.tick_mil],
                 "best_bid": None if m.best_bid_mil is None else _PSTR[m.best_bid_mil],
                 "best_ask": None if m.best_ask_mil is None else _PSTR[m.best_ask_mil],
                 "has_book": m.has_book, "closed": m.closed, "accepting_orders": m.accepting_orders,
                 "volume_traded": round(m.volume_traded, 2), "fees_enabled": m.fees_enabled,
                 "fee_rate_bps": m.fee_bps, "rewards_daily_rate": str(m.program.daily_rate),
                 "rewards_max_spread": str(m.program.max_spread_c), "rewards_min_size": str(m.program.min_size),
                 "event_id": m.event_id, "resolved": m.resolved, "winner": None if m.winner_yes is None else (
                     "YES" if m.winner_yes else "NO")}
                for m in self.markets
            ],
            "public_trades": len(self._public),
            "open_account_orders": len(self._orders),
        }

    # ------------------------------------------------------------------ account trading hooks
    def add_account_listener(self, fn: Callable[[AccountEvent], None]) -> None:
        self._listeners.append(fn)

    def _notify(self, ev: AccountEvent) -> None:
        """A failing listener is logged, never allowed to break matching half-way."""
        for fn in self._listeners:
            try:
                fn(ev)
            except Exception:
                log.exception("sandbox account listener %r failed", fn)

    def place_order(self, owner: str, order_id: str, token_id: str, side: Side, price: Decimal, size: Decimal,
                    post_only: bool, order_type: str = "GTC") -> SimOrder:
        """Validate, match what crosses (unless post-only, which is refused when crossing), rest
        the remainder with price-time priority (GTC/GTD). FOK fills completely or is refused; FAK
        fills what it can and cancels the rest. Raises SimReject with the real error text."""
        side = Side(side)
        order_type = order_type.upper()
        if order_type not in ("GTC", "GTD", "FOK", "FAK"):
            raise SimReject(f"invalid order type: {order_type}")
        if post_only and order_type in ("FOK", "FAK"):
            raise SimReject("invalid post-only order: only GTC and GTD orders can be post-only")
        t = self.by_token.get(token_id)
        if t is None:
            raise SimReject("Invalid token id")
        m, is_yes = t
        if not m.has_book:
            raise SimReject("the market is not yet ready to process new orders")
        if order_id in self._all_account:
            raise SimReject(f"order {order_id} is invalid. Duplicated.")
        price = Decimal(price)
        size = Decimal(size)
        tick = m.tick_size
        q = price / tick
        if q != q.to_integral_value() or not (tick <= price <= 1 - tick):
            raise SimReject(f"order {order_id} is invalid. Price ({price}) breaks minimum tick size rule: {tick}")
        if size < m.min_order_size:
            raise SimReject(f"order {order_id} is invalid. Size ({size}) lower than the minimum: {m.min_order_size}")
        mil = int(price * 1000)
        centi = int(size * 100)
        buy_yes = (side is Side.BUY) == is_yes
        yes_mil = mil if is_yes else 1000 - mil
        crosses = (buy_yes and m.best_ask_mil is not None and m.best_ask_mil <= yes_mil) or (
            not buy_yes and m.best_bid_mil is not None and m.best_bid_mil >= yes_mil)
        if post_only and crosses:
            raise SimReject("invalid post-only order: order crosses book")
        if order_type == "FOK" and self._fillable(m, buy_yes, yes_mil) < centi:
            raise SimReject("order couldn't be fully filled. FOK orders are fully filled or killed.")
        if order_type == "FAK" and not crosses:
            raise SimReject("no orders found to match with FAK order. FAK orders are partially filled or killed "
                            "if no match is found.")
        so = SimOrder(order_id=order_id, owner=owner, token_id=token_id, condition_id=m.condition_id, side=side,
                      price=price, original_size=Decimal(centi) / 100, created_ts=self._t, post_only=post_only,
                      order_type=order_type)
        self._all_account[order_id] = so
        self._notify(("order", so, "PLACEMENT"))
        ts_ms = int(round(self._t * 1000))
        old_bb, old_ba, old_tick = m.best_bid_mil, m.best_ask_mil, m.tick_mil
        prints: list[tuple[int, int, bool]] = []
        filled = self._take(m, buy_yes, yes_mil, centi, so, ts_ms, prints) if crosses else 0
        if filled < centi and order_type == "FAK":
            so.status = "CANCELED"
            self._notify(("order", so, "CANCELLATION"))
        elif filled < centi:
            r = _Rest(centi - filled, so)
            self._rest(m, buy_yes, yes_mil, r)
            self._orders[order_id] = (m, buy_yes, yes_mil, r)
        m.version += 1
        m.book_ts_ms = ts_ms
        self._tick_check(m)
        self._pending_events.setdefault(m.index, (m, old_bb, old_ba, old_tick, []))[4].extend(prints)
        return so

    def _fillable(self, m: SimMarket, buy_yes: bool, limit: int) -> int:
        """Size (centi) resting on the opposite side at prices up to `limit`."""
        if buy_yes:
            return sum(m.ask_tot[p] for p in m.ask_px if p <= limit)
        return sum(m.bid_tot[p] for p in m.bid_px if p >= limit)

    def _account_fill(self, m: SimMarket, so: SimOrder, yes_mil: int, centi: int, taker_buys_yes: bool,
                      other: SimOrder | None, role: str, ts_ms: int) -> None:
        is_yes = so.token_id == m.yes_token_id
        q = Decimal(centi) / 100
        so.size_matched += q
        if so.size_matched >= so.original_size:
            so.status = "MATCHED"
        self._trade_seq += 1
        price = Decimal(_PSTR[yes_mil if is_yes else 1000 - yes_mil])
        taker_side = Side.BUY if taker_buys_yes == is_yes else Side.SELL
        tr = SimTrade(trade_id=f"sim-{self.seed}-{self._trade_seq}", order_id=so.order_id, owner=so.owner,
                      token_id=so.token_id, condition_id=m.condition_id, side=so.side, price=price, size=q,
                      ts=ts_ms / 1000, taker_side=taker_side, trader_side=role,
                      counterparty_order_id=None if other is None else other.order_id)
        self._account_trades.setdefault(so.owner, []).append(tr)
        self._notify(("trade", tr))
        if role == "MAKER":
            self._notify(("order", so, "UPDATE"))

    def cancel_order(self, owner: str, order_id: str) -> bool:
        so = self._all_account.get(order_id)
        if so is None or so.owner != owner or so.status != "LIVE":
            return False
        ent = self._orders.pop(order_id, None)
        if ent is not None:
            m, is_bid, px, r = ent
            old_bb, old_ba, old_tick = m.best_bid_mil, m.best_ask_mil, m.tick_mil
            self._remove_rest(m, is_bid, px, r)
            m.version += 1
            m.book_ts_ms = int(round(self._t * 1000))
            self._pending_events.setdefault(m.index, (m, old_bb, old_ba, old_tick, []))
        so.status = "CANCELED"
        self._notify(("order", so, "CANCELLATION"))
        return True

    def cancel_all(self, owner: str) -> list[str]:
        return [oid for oid in [o.order_id for o in self.open_orders(owner)] if self.cancel_order(owner, oid)]

    def cancel_market(self, owner: str, condition_id: str | None = None, token_id: str | None = None) -> list[str]:
        ids = [o.order_id for o in self.open_orders(owner)
               if (condition_id is None or o.condition_id == condition_id) and (token_id is None or o.token_id == token_id)]
        return [oid for oid in ids if self.cancel_order(owner, oid)]

    def open_orders(self, owner: str) -> list[SimOrder]:
        return [acct for *_, rest in self._orders.values() if (acct := rest.acct) is not None and acct.owner == owner]

    def get_order(self, order_id: str) -> SimOrder | None:
        return self._all_account.get(order_id)

    def account_trades(self, owner: str) -> list[SimTrade]:
        return list(self._account_trades.get(owner, ()))

    # ------------------------------------------------------------------ resolution
    def next_to_resolve(self) -> SimMarket | None:
        """The next market the resolve knob closes: the most liquid one still trading."""
        live = [m for m in self.markets if m.has_book and not m.resolved]
        return max(live, key=lambda m: (m.liquidity_num, m.index)) if live else None

    def resolve_market(self, condition_id: str, winner_yes: bool | None = None) -> SimMarket | None:
        """Resolve one market as the venue does: stop accepting orders, cancel resting account
        orders with CANCELED_MARKET_RESOLVED, drop the book (/book answers 404), send
        `market_resolved` (custom feature) with the winning asset, and redeem every account's
        shares (listeners get ("resolved", market)). A neg-risk market's winner is its event's
        one winner. An unknown or already resolved market is counted and ignored (None)."""
        m = self.by_condition.get(condition_id)
        if m is None or m.resolved:
            self.bad_venue_data += 1
            log.warning("sandbox: resolution for %s market %s ignored", "unknown" if m is None else "resolved",
                        condition_id)
            return None
        if winner_yes is None or m.event_id is not None:
            winner_yes = self.econ.draw_winner(m)
        ts_ms = round(self._t * 1000)
        for oid in [oid for oid, ent in self._orders.items() if ent[0] is m]:
            so = self._orders.pop(oid)[3].acct
            if so is not None:
                so.status = "CANCELED_MARKET_RESOLVED"
                self._notify(("order", so, "CANCELLATION"))
        for book in (m.bids, m.asks, m.bid_tot, m.ask_tot):
            book.clear()
        m.bid_px.clear()
        m.ask_px.clear()
        m.n_bg = 0
        m.changed.clear()
        self._pending_events.pop(m.index, None)
        m.resolved, m.winner_yes, m.resolved_ts = True, winner_yes, self._t
        m.closed, m.accepting_orders = True, False
        m.version += 1
        self._live[m.index] = False
        self._nbg[m.index] = 0
        win_tok = m.yes_token_id if winner_yes else m.no_token_id
        payload = {"event_type": "market_resolved", "id": m.gamma_id, "question": m.question,
                   "market": m.condition_id, "slug": m.slug, "description": "",
                   "assets_ids": [m.yes_token_id, m.no_token_id], "outcomes": ["Yes", "No"],
                   "winning_asset_id": win_tok, "winning_outcome": "Yes" if winner_yes else "No",
                   "event_message": {"id": m.event_id or m.gamma_id, "ticker": m.slug, "slug": m.slug,
                                     "title": m.question, "description": ""},
                   "timestamp": str(ts_ms)}
        if self._watched(m):
            self._extra_events.append(SimEvent((m.yes_token_id, m.no_token_id), True, payload))
        self._notify(("resolved", m))
        return m

    def flush_account_events(self) -> list[SimEvent]:
        """Market events caused by account actions between steps (placements, cancels, taker
        fills): the server broadcasts them right after the action, like the real feed."""
        events: list[SimEvent] = self._extra_events
        self._extra_events = []
        pend, self._pending_events = self._pending_events, {}
        ts_ms = int(round(self._t * 1000))
        for m, old_bb, old_ba, old_tick, prints in pend.values():
            self._emit(m, old_bb, old_ba, old_tick, prints, ts_ms, events)
        return events
