"""Liquidity-reward scoring (polymarket-api.md §7), pure and exact.

- An order scores `S(v, s) = ((v − s)/v)² · b`: v the market's max spread (¢), s the order's
  distance (¢) from the size-cutoff-adjusted midpoint, b the in-game multiplier (1 here). Orders
  smaller than `rewardsMinSize`, or with s ≥ v, score 0.
- `Q_one` = Σ S·size over bids on the YES token and asks on the NO token; `Q_two` = asks on YES
  and bids on NO (a NO ask at q is a YES bid at 1 − q: the same side of the one book).
- Mid in [0.10, 0.90]: `Q_min = max(min(Q_one, Q_two), max(Q_one, Q_two)/c)`, c = 3 (one-sided
  quoting earns a third); outside that range both sides are required: `Q_min = min(Q_one, Q_two)`.
- Each minute a maker's share is its `Q_min` over all makers' `Q_min`; it accrues
  `share × dailyRate / 1440` of the market's pool.
- The size-cutoff-adjusted midpoint (the reference names it but does not define it): each side's
  price is the first level, best first, where the cumulative size reaches the cutoff
  (`rewardsMinSize`); the mid of those two. With cutoff 0 it is the plain mid. A side that never
  reaches the cutoff gives no mid: nothing scores that minute.

Everything is in the YES token's terms (`yes_mid`); a NO order is mapped onto the YES book by
`to_yes_terms`. The sandbox's ground truth and the engine's estimate call these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from ..domain import GammaTerms, Side
from ..venue.gamma_terms import decode_rewards

ZERO = Decimal(0)
C_DEFAULT = Decimal(3)
TWO_SIDED_LO = Decimal("0.10")
TWO_SIDED_HI = Decimal("0.90")
MINUTES_PER_DAY = 1440
USD_QUANTUM = Decimal("0.000001")  # the pUSD base unit: what is paid and what a row stores
ACCRUAL_QUANTUM = Decimal("1e-12")  # a minute's accrual: 1,440 samples a day lose < 1.5e-9 to it


@dataclass(frozen=True, slots=True)
class RewardProgram:
    """One market's liquidity-reward terms: min size (shares), max spread v (¢), daily pool."""

    min_size: Decimal = ZERO
    max_spread_c: Decimal = ZERO
    daily_rate: Decimal = ZERO

    @property
    def active(self) -> bool:
        return self.daily_rate > 0 and self.max_spread_c > 0

    @property
    def max_spread(self) -> Decimal:
        """v in price units (3.5¢ → 0.035)."""
        return self.max_spread_c / 100

    def per_minute(self) -> Decimal:
        return self.daily_rate / MINUTES_PER_DAY


NO_PROGRAM = RewardProgram()


def program_of(terms: GammaTerms) -> tuple[RewardProgram, list[str]]:
    """`(program, problems)` from a market's decoded Gamma terms (`Market.terms`: `rewardsMinSize`,
    `rewardsMaxSpread`, `clobRewards[].rewardsDailyRate` summed). Never raises: bad values
    (negative rates, max spread 0 with a pool, unreadable numbers) give NO_PROGRAM or drop the bad
    entry, and are reported so the caller counts and logs them; nothing is ever paid on bad data."""
    problems = list(terms.reward_problems)
    min_size, max_spread = terms.rewards_min_size, terms.rewards_max_spread
    if min_size is None or max_spread is None:
        return NO_PROGRAM, problems
    rate = ZERO
    for r in terms.reward_daily_rates:
        if r < 0:
            problems.append(f"clobRewards rewardsDailyRate {r} negative: ignored")
            continue
        rate += r
    if min_size < 0:
        problems.append(f"rewardsMinSize {min_size} negative: no program")
        return NO_PROGRAM, problems
    if max_spread < 0:
        problems.append(f"rewardsMaxSpread {max_spread} negative: no program")
        return NO_PROGRAM, problems
    if rate > 0 and max_spread == 0:
        problems.append("max spread (rewardsMaxSpread) 0 with a reward pool: no order can score")
        return NO_PROGRAM, problems
    if rate == 0:
        return NO_PROGRAM, problems
    return RewardProgram(min_size, max_spread, rate), problems


def parse_program(gamma: Mapping[str, Any]) -> tuple[RewardProgram, list[str]]:
    """`program_of` over a raw Gamma object (the sandbox's own objects, tests), decoded by
    `venue.gamma_terms` exactly as `parse_market` decodes one."""
    min_size, max_spread, rates, problems = decode_rewards(gamma)
    return program_of(GammaTerms(rewards_min_size=min_size, rewards_max_spread=max_spread,
                                 reward_daily_rates=rates, reward_problems=problems))


def order_score(v_c: Decimal, s_c: Decimal, b: Decimal = Decimal(1)) -> Decimal:
    """S(v, s) = ((v − s)/v)² · b for 0 ≤ s < v, else 0 (v, s in cents)."""
    if v_c <= 0 or s_c >= v_c or s_c < 0:
        return ZERO
    r = (v_c - s_c) / v_c
    return r * r * b


def adjusted_mid(bids: Sequence[tuple[Decimal, Decimal]], asks: Sequence[tuple[Decimal, Decimal]],
                 cutoff: Decimal) -> Decimal | None:
    """Size-cutoff-adjusted midpoint of one book; levels `(price, size)` best first."""

    def side(levels: Sequence[tuple[Decimal, Decimal]]) -> Decimal | None:
        cum = ZERO
        for px, sz in levels:
            cum += sz
            if cum >= cutoff and cum > 0:
                return px
        return None

    b, a = side(bids), side(asks)
    if b is None or a is None:
        return None
    return (b + a) / 2


@dataclass(frozen=True, slots=True)
class ScoredOrder:
    """A resting order in YES terms: `bid` True when it rests on the YES bid side (a YES bid or
    a NO ask), `price` its YES-terms price, `size` its remaining shares."""

    bid: bool
    price: Decimal
    size: Decimal


def to_yes_terms(is_yes_token: bool, side: Side, price: Decimal, size: Decimal) -> ScoredOrder:
    if is_yes_token:
        return ScoredOrder(side is Side.BUY, price, size)
    return ScoredOrder(side is Side.SELL, 1 - price, size)


@dataclass(frozen=True, slots=True)
class QScore:
    q_one: Decimal = ZERO
    q_two: Decimal = ZERO
    q_min: Decimal = ZERO


def q_min(q_one: Decimal, q_two: Decimal, yes_mid: Decimal, c: Decimal = C_DEFAULT) -> Decimal:
    """The two-sided rule: one side earns a third inside [0.10, 0.90], nothing outside it."""
    lo = min(q_one, q_two)
    if TWO_SIDED_LO <= yes_mid <= TWO_SIDED_HI:
        return max(lo, max(q_one / c, q_two / c))
    return lo


def score_orders(orders: Iterable[ScoredOrder], yes_mid: Decimal | None, prog: RewardProgram,
                 c: Decimal = C_DEFAULT) -> QScore:
    """One maker's Q_one, Q_two, Q_min over its resting orders (YES terms)."""
    if yes_mid is None or not prog.active:
        return QScore()
    q1 = q2 = ZERO
    v = prog.max_spread_c
    for o in orders:
        if o.size <= 0 or o.size < prog.min_size:
            continue
        s = abs(o.price - yes_mid) * 100
        sc = order_score(v, s)
        if sc == 0:
            continue
        if o.bid:
            q1 += sc * o.size
        else:
            q2 += sc * o.size
    return QScore(q1, q2, q_min(q1, q2, yes_mid, c))


def score_book(bids: Sequence[tuple[Decimal, Decimal]], asks: Sequence[tuple[Decimal, Decimal]],
               yes_mid: Decimal | None, prog: RewardProgram, minus: Iterable[ScoredOrder] = (),
               c: Decimal = C_DEFAULT) -> QScore:
    """`score_orders(book_orders(bids, asks, minus), yes_mid, prog, c)`: the book's levels as one
    maker's orders, scored, without an order built per level, and each side read only as far as a
    level can score. Levels best first (a `BookView`'s: bids descending, asks ascending): once a
    bid below the mid (an ask above it) is `max_spread` or further from it, every later one is
    further still (exact Decimal differences) and scores 0, which `score_orders` skips; the levels
    before it are taken in the same order with the same products, so the sums are the same Decimals.
    (A bid above the mid, possible against the size-cutoff-adjusted mid, does not stop the scan:
    the levels after it come nearer first.) Per venue minute per market, over whole books."""
    if yes_mid is None or not prog.active:
        return QScore()
    take = _taken(minus)
    v, min_size = prog.max_spread_c, prog.min_size
    q1 = _side_score(bids, True, yes_mid, v, min_size, take)
    q2 = _side_score(asks, False, yes_mid, v, min_size, take)
    return QScore(q1, q2, q_min(q1, q2, yes_mid, c))


def _side_score(levels: Sequence[tuple[Decimal, Decimal]], bid: bool, yes_mid: Decimal, v: Decimal,
                min_size: Decimal, take: dict[tuple[bool, Decimal], Decimal]) -> Decimal:
    """One side of `score_book`: the sum of score x size over its levels, best first, minus what
    `take` takes out, until a level beyond the mid on the side's own side is `v` or further away."""
    q = ZERO
    for px, sz in levels:
        s = abs(px - yes_mid) * 100  # (`score_orders`' distance)
        if s >= v and (px < yes_mid if bid else px > yes_mid):
            break
        rest = sz - take.get((bid, px), ZERO)
        if rest <= 0 or rest < min_size:  # (`book_orders` keeps rest > 0; `score_orders` skips the small)
            continue
        sc = order_score(v, s)
        if sc != 0:
            q += sc * rest
    return q


def share(ours: Decimal, total: Decimal) -> Decimal:
    """Our fraction of a sample; 0 when nobody scores."""
    if total <= 0 or ours <= 0:
        return ZERO
    return min(ours / total, Decimal(1))


def minute_reward(prog: RewardProgram, sample_share: Decimal) -> Decimal:
    """pUSD one per-minute sample earns, to `ACCRUAL_QUANTUM` (rounded down: a sum of shares is
    never more than the pool). Not to the 6-dp pUSD unit: each minute rounded down to it biased
    the day's sum low (≈ 0.7 % on small shares). Amounts are rounded to the unit where they are
    paid (the day's payout, `fees.payout`) or stored (`UsdCarry`: rows whose sum stays exact)."""
    if not prog.active or sample_share <= 0:
        return ZERO
    return (prog.per_minute() * sample_share).quantize(ACCRUAL_QUANTUM, rounding=ROUND_DOWN)


class UsdCarry:
    """Rounds a stream of exact amounts per key (a market) to the pUSD quantum (6 dp, what a
    `reward_estimates.usd` row holds) without bias: each amount is rounded down after adding what
    the earlier roundings left out, so the rounded amounts' running sum is the exact running sum
    less a remainder in [0, 1 quantum) — never more than was earned, never a quantum short."""

    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest: dict[str, Decimal] = {}

    def round(self, key: str, exact: Decimal) -> Decimal:
        x = exact + self.rest.get(key, ZERO)
        q = x.quantize(USD_QUANTUM, rounding=ROUND_DOWN)
        self.rest[key] = x - q
        return q


def _taken(minus: Iterable[ScoredOrder]) -> dict[tuple[bool, Decimal], Decimal]:
    """The size of `minus` (our own resting orders) per (bid, price): what `book_orders` and
    `score_book` take out of the book's levels."""
    take: dict[tuple[bool, Decimal], Decimal] = {}
    for o in minus:
        k = (o.bid, o.price)
        take[k] = take.get(k, ZERO) + o.size
    return take


def book_orders(bids: Sequence[tuple[Decimal, Decimal]], asks: Sequence[tuple[Decimal, Decimal]],
                minus: Iterable[ScoredOrder] = ()) -> list[ScoredOrder]:
    """The book's levels (YES terms) as one maker's orders, one per price level, after taking
    out `minus` (our own resting orders): how the engine sees its competition, and how the
    sandbox scores its background maker (one account, one order per level)."""
    take = _taken(minus)
    out: list[ScoredOrder] = []
    for is_bid, levels in ((True, bids), (False, asks)):
        for px, sz in levels:
            rest = sz - take.get((is_bid, px), ZERO)
            if rest > 0:
                out.append(ScoredOrder(is_bid, px, rest))
    return out
