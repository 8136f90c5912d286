"""The engine's side of venue economics: fees and rebates on every fill, the per-minute reward
estimate, settlement records and bad-venue-data accounting. Plain code over typed data; its only
output is `DbRecorder` rows (`trades` fee columns, `reward_estimates`, `settlements`, `events`).

- Terms come from each market's Gamma object, decoded once in `venue/` (`Market.terms`):
  `feesEnabled` / `feeSchedule` and `rewardsMinSize` / `rewardsMaxSpread` / `clobRewards`. Bad values are counted, logged once per
  market and problem (an `events` row of kind `venue_data`), and never charge or pay anything.
- A fill is a taker fill when the venue says so (`trader_side` TAKER on the live tape); paper
  and dry-run fills are post-only makers. Fee and rebate come from `economics.fees`, exactly as
  the sandbox charges them; live takers use the tape's `fee_rate_bps` when it is readable.
- The reward estimate (every `sample_sec`, 60 s like the venue): our resting orders are scored
  against the YES book with `economics.rewards`; the competition is the book minus our own
  orders (live: ours rest in it; paper/dry-run: they do not), seen as one maker with one order
  per level, which is how the sandbox's background maker is scored too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..domain import ZERO, BookView, Fill, Market, Order, slot_init
from ..events import EventBus, EventKind, Level
from ..store.recorder import DbRecorder, as_recorder, persisting_bus
from ..store.sink import Sink
from .fees import (
    NO_FEES,
    FeeSchedule,
    fee_from_bps,
    fee_schedule_of,
    fill_fee,
    rebate_accrual,
)
from .payouts import PayoutSchedule, parse_paid, venue_date
from .rewards import (
    NO_PROGRAM,
    QScore,
    RewardProgram,
    ScoredOrder,
    adjusted_mid,
    minute_reward,
    order_score,
    program_of,
    score_book,
    score_orders,
    share,
    to_yes_terms,
)

log = logging.getLogger(__name__)

SAMPLE_SEC = 60.0


@dataclass(frozen=True, slots=True)
class MarketTerms:
    fee: FeeSchedule = NO_FEES
    program: RewardProgram = NO_PROGRAM
    event_id: str | None = None


NO_TERMS = MarketTerms()  # a market without known terms (frozen: one instance serves every caller)


def market_terms(m: Market) -> tuple[MarketTerms, list[str]]:
    """A market's fee schedule, reward program and neg-risk event id, with any problems."""
    fee, p1 = fee_schedule_of(m.terms)
    prog, p2 = program_of(m.terms)
    return MarketTerms(fee, prog, m.terms.event_id if m.neg_risk else None), p1 + p2


@dataclass(frozen=True, slots=True)
class VenueClock:
    """The venue's clock as a line through one observation: `venue = v0 + (wall − w0) × speed`
    (a sandbox runs `speed` times faster; the real venue: speed 1, the offset is clock skew). The
    venue samples reward scores on its own minute boundaries; the engine follows them."""

    w0: float = 0.0
    v0: float = 0.0
    speed: float = 1.0

    def to_venue(self, wall: float) -> float:
        return self.v0 + (wall - self.w0) * self.speed

    def to_wall(self, venue: float) -> float:
        return self.w0 + (venue - self.v0) / self.speed

    def next_boundary_wall(self, wall: float, every: float = SAMPLE_SEC) -> float:
        """Wall time of the venue's next sampling boundary after `wall`."""
        v = self.to_venue(wall)
        return self.to_wall((v // every + 1) * every)

    def to_json(self) -> dict[str, float]:
        """The recorder's `venue_clock` payload (read back by `from_json`, e.g. in replay)."""
        return {"w0": self.w0, "v0": self.v0, "speed": self.speed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VenueClock:
        """A clock from its `to_json` form; ValueError naming the field when one is missing or not a
        finite number (a NaN or infinite time would stop the reward samples and the venue day)."""
        vals: list[float] = []
        for name in ("w0", "v0", "speed"):
            v = data.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ValueError(f"venue_clock: field {name!r} missing or not a number")
            try:
                f = float(v)
            except (ValueError, OverflowError):
                f = math.nan
            if not math.isfinite(f):
                raise ValueError(f"venue_clock: field {name!r} is not a finite number: {str(v)[:20]!r}")
            vals.append(f)
        if not vals[2] > 0:
            raise ValueError(f"venue_clock: speed must be > 0, got {vals[2]}")
        return cls(*vals)


@slot_init
@dataclass(frozen=True, slots=True)
class FillEconomics:
    fee: Decimal
    rebate: Decimal
    liquidity: str  # MAKER or TAKER


@dataclass(slots=True)
class RewardSample:
    market: str
    mid: Decimal | None
    ours: QScore
    total_q_min: Decimal
    share: Decimal
    usd: Decimal
    usd_per_hour: Decimal
    orders: int
    scoring: int
    scoring_ids: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # every resting order of ours in the market
    venue_date: str = ""  # the venue's day this sample counts for (its payouts are per day)


def is_taker(fill: Fill) -> bool:
    return fill.taker


def fill_economics(fill: Fill, terms: MarketTerms) -> FillEconomics:
    """Fee and rebate of one of our fills (pUSD)."""
    taker = is_taker(fill)
    fee = fill_fee(fill.size, fill.price, terms.fee, taker)
    bps = fill.fee_rate_bps
    if taker and bps is not None:
        venue_fee = fee_from_bps(fill.size, fill.price, bps, terms.fee.exponent)
        if venue_fee is not None:
            fee = venue_fee  # the operator sets the fee at match: the tape's rate wins
    return FillEconomics(fee, rebate_accrual(fill.size, fill.price, terms.fee, taker), "TAKER" if taker else "MAKER")


def _levels(v: BookView) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    return [(lv.price, lv.size) for lv in v.bids], [(lv.price, lv.size) for lv in v.asks]


def estimate_market(m: Market, prog: RewardProgram, yes_view: BookView, orders: Iterable[Order],
                    ours_in_book: bool) -> RewardSample:
    """Score our resting orders in one market against its YES book (one sample)."""
    mine: list[tuple[str, ScoredOrder]] = []
    for o in orders:
        if o.remaining <= 0 or o.token_id not in m.token_ids:
            continue
        mine.append((o.venue_order_id or o.client_id,
                     to_yes_terms(o.token_id == m.yes_token_id, o.side, o.price, o.remaining)))
    bids, asks = _levels(yes_view)
    mid = adjusted_mid(bids, asks, prog.min_size)
    ours = score_orders([o for _, o in mine], mid, prog)
    others = score_book(bids, asks, mid, prog, minus=[o for _, o in mine] if ours_in_book else ())
    total = ours.q_min + others.q_min
    sh = share(ours.q_min, total)
    scoring_ids = []
    if mid is not None and prog.active:
        for oid, so in mine:
            if so.size >= prog.min_size and order_score(prog.max_spread_c, abs(so.price - mid) * 100) > 0:
                scoring_ids.append(oid)
    return RewardSample(m.condition_id, mid, ours, total, sh, minute_reward(prog, sh),
                        (prog.daily_rate * sh / 24).quantize(Decimal("0.000001")), len(mine), len(scoring_ids),
                        scoring_ids, [oid for oid, _ in mine])


class EconomicsTracker:
    """Per-run venue economics for the quote cycle (one instance per `QuoteCycle`)."""

    def __init__(self, sink: Sink | DbRecorder, mode: str, sample_sec: float = SAMPLE_SEC, *,
                 events: EventBus | None = None) -> None:
        self.rec = as_recorder(sink)
        self.events = events if events is not None else persisting_bus(self.rec)
        self.mode = mode
        self.sample_sec = sample_sec  # in venue seconds
        self.clock = VenueClock()
        self.sample_count = 0
        self.terms: dict[str, MarketTerms] = {}
        self.bad_venue_data = 0
        self._reported: set[tuple[str, str]] = set()
        self._next_sample: float | None = None
        # sampled at the venue's own minutes (the market stream's timestamps, `QuoteCycle.
        # sample_on_venue_minutes`) instead of when the clock says a minute passed
        self.stream_sampling = False
        self.fees: dict[str, Decimal] = {}
        self.rebates: dict[str, Decimal] = {}
        self.rewards: dict[str, Decimal] = {}
        self.last: dict[str, RewardSample] = {}  # the latest sample per market
        self.settled: dict[str, str] = {}  # market -> winning token
        self.rewards_by_day: dict[tuple[str, str], Decimal] = {}  # (market, venue day) -> estimated USD
        self.rebates_by_day: dict[tuple[str, str], Decimal] = {}  # (market, venue day of the fill) -> accrued
        self.payouts = PayoutSchedule()  # live: which venue day's payouts to read next
        self.paid: dict[tuple[str, str, str], Decimal] = {}  # (kind, market, venue day) -> paid USD
        self._settlement_sums: dict[str, tuple[Decimal, Decimal, Decimal, Decimal, str]] = {}

    # -- terms -----------------------------------------------------------------------------------
    def set_markets(self, markets: Iterable[Market], now: float) -> None:
        for m in markets:
            if m.condition_id in self.terms:
                continue
            terms, problems = market_terms(m)
            self.terms[m.condition_id] = terms
            for p in problems:
                self.bad_data(now, m.condition_id, p)

    def bad_data(self, now: float, market: str | None, problem: str) -> None:
        """Count and log one piece of bad venue data (once per market and problem)."""
        self.bad_venue_data += 1
        key = (market or "", problem)
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning("bad venue data for %s: %s", market, problem)
        self.events.emit(Level.WARNING, EventKind.VENUE_DATA, problem, market, data={"count": self.bad_venue_data},
                         ts=now)

    def terms_of(self, market: str) -> MarketTerms:
        return self.terms.get(market, NO_TERMS)  # one shared default: it ran per market per cycle

    # -- fills -----------------------------------------------------------------------------------
    def on_fill(self, fill: Fill, market: Market) -> FillEconomics:
        """Fee and rebate of a fill; stored on its `trades` row and added to the market's sums."""
        ec = fill_economics(fill, self.terms_of(market.condition_id))
        cid = market.condition_id
        self.fees[cid] = self.fees.get(cid, ZERO) + ec.fee
        self.rebates[cid] = self.rebates.get(cid, ZERO) + ec.rebate
        if ec.rebate:
            k = (cid, venue_date(fill.ts))  # live: the venue's match time
            self.rebates_by_day[k] = self.rebates_by_day.get(k, ZERO) + ec.rebate
        self.rec.fill_economics(fill.trade_id, ec.fee, ec.rebate, ec.liquidity)
        return ec

    # -- rewards ---------------------------------------------------------------------------------
    def sample_due(self, now: float) -> bool:
        """Whether the venue's clock passed a sampling boundary since the last sample (`now` is
        wall time; the first call only arms the next boundary)."""
        if self.stream_sampling:
            return False
        v = self.clock.to_venue(now)
        if self._next_sample is None:
            self._next_sample = (v // self.sample_sec + 1) * self.sample_sec
            return False
        return v >= self._next_sample

    def sample(self, now: float, markets: Iterable[Market], yes_view: dict[str, BookView | None],
               orders: list[Order], ours_in_book: bool, venue_ts: float | None = None) -> list[RewardSample]:
        """One per-minute estimate for every market with a reward program: `reward_estimates`
        rows, and the estimated USD added to each market's rewards. `venue_ts`: the venue minute
        sampled (the stream knows it); else the venue clock's last minute at `now`."""
        venue_now = self.clock.to_venue(now)
        if self._next_sample is not None:
            while self._next_sample <= venue_now:
                self._next_sample += self.sample_sec
        if venue_ts is None:
            venue_ts = venue_now - venue_now % self.sample_sec
        # the sample at 00:00 closes the day before (the venue pays after its last minute)
        day = venue_date(venue_ts - 0.001)
        self.sample_count += 1
        by_market: dict[str, list[Order]] = {}
        for o in orders:
            by_market.setdefault(o.market, []).append(o)
        out = []
        for m in markets:
            cid = m.condition_id
            prog = self.terms_of(cid).program
            v = yes_view.get(cid)
            if not prog.active or v is None or cid in self.settled:
                continue
            s = estimate_market(m, prog, v, by_market.get(cid, ()), ours_in_book)
            s.venue_date = day
            self.rewards[cid] = self.rewards.get(cid, ZERO) + s.usd
            self.rewards_by_day[(cid, day)] = self.rewards_by_day.get((cid, day), ZERO) + s.usd
            self.last[cid] = s
            out.append(s)
        return out

    def record_samples(self, now: float, samples: list[RewardSample],
                       venue: dict[str, bool] | None = None) -> None:
        """Write `reward_estimates` rows; with the venue's `/orders-scoring` answer, count the
        orders where our view and the venue's differ."""
        for s in samples:
            row = {"ts": now, "market": s.market, "mode": self.mode, "mid": s.mid, "q_one": s.ours.q_one,
                   "q_two": s.ours.q_two, "q_min": s.ours.q_min, "q_min_total": s.total_q_min, "share": s.share,
                   "usd": s.usd, "usd_per_hour": s.usd_per_hour,
                   "daily_rate": self.terms_of(s.market).program.daily_rate, "orders": s.orders,
                   "scoring": s.scoring, "venue_scoring": None, "disagreements": None,
                   "venue_date": s.venue_date or None}
            if venue is not None:
                mine = set(s.scoring_ids)
                asked = [i for i in s.ids if i in venue]
                row["venue_scoring"] = sum(1 for i in asked if venue[i])
                row["disagreements"] = sum(1 for i in asked if venue[i] != (i in mine))
                if row["disagreements"]:
                    log.info("reward scoring: %d of %d orders disagree with the venue in %s",
                             row["disagreements"], len(asked), s.market)
            self.rec.reward_estimate(row)

    def record_payouts(self, now: float, date: str, rewards_rows: Any,
                       rebates_rows: Any) -> dict[str, dict[str, Decimal]]:
        """One venue day's paid rewards and rebates (the venue's rows, `payouts.parse_paid`):
        `venue_payouts` rows (per market, and "TOTAL" = the day was read). Returns, per kind and
        market, what the paid amounts change in the ledgers (paid − that day's estimate or
        accrual): rewards and rebates are paid where the venue said, estimated elsewhere. Bad
        rows are counted and pay nothing."""
        out: dict[str, dict[str, Decimal]] = {}
        for kind, rows, key, est_by_day in (("rewards", rewards_rows, "earnings", self.rewards_by_day),
                                            ("rebates", rebates_rows, "rebated_fees_usdc", self.rebates_by_day)):
            paid, problems = parse_paid(rows, key)
            for p in problems:
                self.bad_data(now, None, p)
            for cid, amt in sorted(paid.items()):
                self.paid[(kind, cid, date)] = amt
                self.rec.venue_payout(now, self.mode, date, kind, cid, amt)
            self.rec.venue_payout(now, self.mode, date, kind, "TOTAL", sum(paid.values(), ZERO))
            delta = out[kind] = {cid: paid.get(cid, ZERO) - est for (cid, day), est in est_by_day.items() if day == date}
            for cid, amt in paid.items():
                delta.setdefault(cid, amt)
        self.payouts.answered(date)
        return out

    def usd_per_hour(self, market: str) -> Decimal | None:
        s = self.last.get(market)
        return None if s is None else s.usd_per_hour

    # -- settlement ------------------------------------------------------------------------------
    def record_settlement(self, now: float, m: Market, winner_token: str, yes: Decimal, no: Decimal,
                          payout: Decimal, pnl: Decimal, source: str) -> None:
        """Upsert the market's `settlements` row; a later redemption (a fill reported after the
        resolution) adds to it."""
        cid = m.condition_id
        self.settled[cid] = winner_token
        y0, n0, p0, q0, src = self._settlement_sums.get(cid, (ZERO, ZERO, ZERO, ZERO, source))
        sums = (y0 + yes, n0 + no, p0 + payout, q0 + pnl, src)
        self._settlement_sums[cid] = sums
        self.rec.settlement(now, m, self.mode, winner_token, sums[0], sums[1], sums[2], sums[3], src)
