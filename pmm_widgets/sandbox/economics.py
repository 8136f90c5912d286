"""The sandbox venue's economics: per-market fee schedules and reward programs, taker fees at
match, maker-rebate pools, per-minute reward sampling, daily payouts, neg-risk events and the
ground-truth ledger per account. The engine's own estimates are measured against this.

Why it is built this way:
- The terms (fees, rewards, events) are drawn from their own seeded generator, so adding them
  leaves the simulator's market stream (fair values, flow, matching) exactly as before.
- Arithmetic is the engine's: `economics.fees` and `economics.rewards`. The per-fill fee is
  computed in integer 1e-5 pUSD units on the hot matching path (`fee_units`), tested equal to
  `fees.fee_equivalent` for every price, size and rate.
- Rebates are pooled as the venue documents: `pool = rebateRate × Σ taker fees` of a market-day,
  shared by the makers' fee-equivalent of their filled volume (background makers included).
- Rewards: every simulated minute each maker's `Q_min` is sampled in every market with a
  program (accounts per order; the background liquidity as one maker account that shows one
  order per price level), normalised across makers, and `share × dailyRate/1440` accrued. The
  sample is the minute boundary's instant: the simulator takes it at the start of the step that
  reaches the boundary, so it sees every event stamped before the boundary and none stamped at
  or after it (that step's flow and the account actions after it carry the step's time), the
  one rule a client can follow from the feed's timestamps (`MarketStream.on_venue_minute`,
  `LiveExchange.orders_at`). At
  simulated 00:00 UTC the day's rewards and rebates are paid (≥ $1, 6-dp base units; the venue
  is silent on what happens to an amount under $1: here it is not paid and not carried over).
  When every minute of the day had a scoring maker (always the case here, the background rests
  in the band), this per-minute accrual equals the documented per-epoch normalisation.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..economics.fees import NO_FEES, PUSD_QUANTUM, FeeSchedule, payout
from ..economics.rewards import (
    NO_PROGRAM,
    QScore,
    RewardProgram,
    ScoredOrder,
    adjusted_mid,
    book_orders,
    minute_reward,
    score_orders,
    share,
)

if TYPE_CHECKING:
    from .simulator import SimMarket, SimOrder, Simulator

BACKGROUND = "background"  # the ledger's name for the simulated background makers
SAMPLE_SEC = 60.0
FEE_UNIT = Decimal("0.00001")
ZERO = Decimal(0)

# fee mix (rate, rebateRate) like the reference's categories; None: fees off
_FEE_CHOICES: tuple[tuple[str, str] | None, ...] = (
    None, None, None, ("0.04", "0.25"), ("0.04", "0.25"), ("0.05", "0.25"), ("0.03", "0.25"), ("0.07", "0.20"))
_MAX_SPREADS = (Decimal(2), Decimal(3), Decimal("3.5"), Decimal("4.5"))
_DAILY_RATES = (Decimal(2), Decimal(5), Decimal(10), Decimal(25), Decimal(50), Decimal(100))


def fee_units(centi: int, mil: int, bps: int, exponent: int = 1) -> int:
    """`fees.fee_equivalent` in integer 1e-5 pUSD units for a size in hundredths of a share and a
    price in thousandths (half up, minimum 1 unit); 0 when nothing is charged."""
    if bps <= 0 or centi <= 0 or not 0 < mil < 1000:
        return 0
    num: int = centi * bps * (mil * (1000 - mil)) ** exponent
    den: int = 10 ** (6 * exponent + 1)
    return max(1, (2 * num + den) // (2 * den))


@dataclass
class Ledger:
    """One account in one market: what the venue charged, accrued and paid (pUSD)."""

    fees: Decimal = ZERO  # taker (and, where not taker-only, maker) fees charged
    maker_equiv_units: int = 0  # today's fee-equivalent of filled maker volume (1e-5 units)
    rebates_accrued_past: Decimal = ZERO  # rebates of finished days
    rebates_paid: Decimal = ZERO
    rewards_today: Decimal = ZERO
    rewards_accrued_past: Decimal = ZERO
    rewards_paid: Decimal = ZERO
    samples: int = 0  # minutes sampled while the account had orders in the market
    last: dict[str, Any] = field(default_factory=dict)  # the last reward sample


@dataclass(frozen=True)
class Payout:
    """What one account was paid for one market and one day at the following 00:00 UTC (pUSD);
    `/rewards/user` and `/rebates/current` read these."""

    owner: str
    condition_id: str
    date: str  # YYYY-MM-DD, the day earned
    rewards: Decimal
    rebates: Decimal


@dataclass
class Settlement:
    owner: str
    condition_id: str
    winner_token: str
    yes_shares: Decimal
    no_shares: Decimal
    payout: Decimal
    ts: float


class VenueEconomics:
    """Terms, ledgers and sampling for one `Simulator`. `sim.econ` is the instance."""

    def __init__(self, sim: Simulator, seed: int):
        self.sim = sim
        self._rnd = random.Random(seed * 104729 + 13)
        self.ledgers: dict[tuple[str, str], Ledger] = {}
        self.day_fee_units: dict[str, int] = {}  # cid -> today's taker fees (1e-5 units)
        self.day_equiv_units: dict[str, int] = {}  # cid -> today's makers' fee-equivalent
        self.settlements: list[Settlement] = []
        self.events: dict[str, list[SimMarket]] = {}  # neg-risk event id -> its markets
        self.event_winner: dict[str, str] = {}  # event id -> condition id of its one winner
        self.next_sample = (sim.now() // SAMPLE_SEC + 1) * SAMPLE_SEC  # on UTC minute boundaries
        self.day = int(sim.now() // 86400)
        self.minutes_sampled = 0
        self.payouts = 0
        self.paid: list[Payout] = []  # every day's payouts, oldest first

    # ------------------------------------------------------------------ terms
    def assign_terms(self, markets: list[SimMarket]) -> None:
        """A realistic mix: fees off in ~3/8 of markets, different rates elsewhere; no reward
        program in ~1/3; neg-risk markets grouped into events of 2-4 with one winner each."""
        rnd = self._rnd
        for m in markets:
            choice = rnd.choice(_FEE_CHOICES)
            if choice is None:
                m.fees_enabled, m.fee = False, NO_FEES
            else:
                m.fees_enabled = True
                m.fee = FeeSchedule(Decimal(choice[0]), 1, True, Decimal(choice[1]))
            m.fee_bps = m.fee.rate_bps
            if rnd.random() < 0.33:
                m.program = NO_PROGRAM
            else:
                # min size near the background's typical order so part of it qualifies
                typical = max(m.min_order_size, Decimal(int(m.size_scale)))
                min_size = min((Decimal(s) for s in (10, 20, 50, 100, 200) if Decimal(s) >= typical / 2),
                               default=Decimal(200))
                m.program = RewardProgram(min_size, rnd.choice(_MAX_SPREADS), rnd.choice(_DAILY_RATES))
        nr = [m for m in markets if m.neg_risk]
        i, k = 0, 0
        while i < len(nr):
            size = min(rnd.choice((2, 3, 4)), len(nr) - i)
            group = nr[i:i + size]
            if len(group) < 2 and self.events:  # a lone leftover joins the previous event
                last = list(self.events)[-1]
                self.events[last].extend(group)
                for m in group:
                    m.event_id = last
                break
            k += 1
            eid = str(900_000 + self.sim.seed % 1000 * 100 + k)
            self.events[eid] = list(group)
            for m in group:
                m.event_id = eid
            i += size
        for eid, ms in self.events.items():
            w = [max(m.fair, 0.01) for m in ms]
            self.event_winner[eid] = rnd.choices(ms, weights=w)[0].condition_id

    def draw_winner(self, m: SimMarket) -> bool:
        """Whether YES wins: the event's one winner for neg-risk markets, else by the fair value."""
        if m.event_id is not None:
            return self.event_winner[m.event_id] == m.condition_id
        return self._rnd.random() < m.fair

    # ------------------------------------------------------------------ fees / rebates at match
    def on_match(self, m: SimMarket, yes_mil: int, centi: int, maker: SimOrder | None,
                 taker: SimOrder | None) -> None:
        """One maker/taker match of `centi` at `yes_mil` (YES terms; p(1−p) is the same on
        either token). Called only for markets that charge fees."""
        units = fee_units(centi, yes_mil, m.fee_bps, m.fee.exponent)
        cid = m.condition_id
        self.day_fee_units[cid] = self.day_fee_units.get(cid, 0) + units
        self.day_equiv_units[cid] = self.day_equiv_units.get(cid, 0) + units
        t_owner = taker.owner if taker is not None else BACKGROUND
        mk_owner = maker.owner if maker is not None else BACKGROUND
        lt = self._ledger(t_owner, cid)
        lt.fees += units * FEE_UNIT
        lm = self._ledger(mk_owner, cid)
        lm.maker_equiv_units += units
        if not m.fee.taker_only:
            lm.fees += units * FEE_UNIT

    def _ledger(self, owner: str, cid: str) -> Ledger:
        k = (owner, cid)
        led = self.ledgers.get(k)
        if led is None:
            led = self.ledgers[k] = Ledger()
        return led

    def rebate_today(self, owner: str, cid: str) -> Decimal:
        """The owner's share of today's rebate pool so far (pUSD, 6 dp down)."""
        led = self.ledgers.get((owner, cid))
        total = self.day_equiv_units.get(cid, 0)
        if led is None or total <= 0 or led.maker_equiv_units <= 0:
            return ZERO
        m = self.sim.by_condition[cid]
        pool = m.fee.rebate_rate * self.day_fee_units.get(cid, 0) * FEE_UNIT
        return (pool * led.maker_equiv_units / total).quantize(PUSD_QUANTUM, rounding="ROUND_DOWN")

    # ------------------------------------------------------------------ reward sampling
    def yes_levels(self, m: SimMarket) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids = [(Decimal(p) / 1000, Decimal(m.bid_tot[p]) / 100) for p in reversed(m.bid_px)]
        asks = [(Decimal(p) / 1000, Decimal(m.ask_tot[p]) / 100) for p in m.ask_px]
        return bids, asks

    def market_scores(self, m: SimMarket) -> tuple[Decimal | None, dict[str, QScore], dict[str, list[tuple[str, ScoredOrder]]]]:
        """(adjusted YES mid, Q per maker, account orders per owner) of one market now."""
        prog = m.program
        bids, asks = self.yes_levels(m)
        mid = adjusted_mid(bids, asks, prog.min_size)
        per_owner: dict[str, list[tuple[str, ScoredOrder]]] = {}
        for oid, (mm, is_bid, mil, rest) in self.sim._orders.items():
            acct = rest.acct
            if mm is m and acct is not None:
                per_owner.setdefault(acct.owner, []).append(
                    (oid, ScoredOrder(is_bid, Decimal(mil) / 1000, Decimal(rest.size) / 100)))
        scores: dict[str, QScore] = {}
        if mid is None:
            return None, scores, per_owner
        everyone = [o for lst in per_owner.values() for _, o in lst]
        scores[BACKGROUND] = score_orders(book_orders(bids, asks, minus=everyone), mid, prog)
        for owner, lst in per_owner.items():
            scores[owner] = score_orders([o for _, o in lst], mid, prog)
        return mid, scores, per_owner

    def sample(self) -> None:
        """One per-minute sample of every maker in every market with a reward program."""
        now = self.sim.now()
        self.minutes_sampled += 1
        for m in self.sim.markets:
            prog = m.program
            if not prog.active or not m.has_book:
                continue
            mid, scores, per_owner = self.market_scores(m)
            total = sum((q.q_min for q in scores.values()), ZERO)
            for owner, q in scores.items():
                if owner == BACKGROUND and q.q_min == 0:
                    continue
                sh = share(q.q_min, total)
                usd = minute_reward(prog, sh)
                led = self._ledger(owner, m.condition_id)
                led.rewards_today += usd
                led.samples += 1
                led.last = {"ts": now, "mid": None if mid is None else str(mid), "q_one": str(q.q_one),
                            "q_two": str(q.q_two), "q_min": str(q.q_min), "share": str(sh), "usd": str(usd)}
            for owner in per_owner:
                if owner not in scores:  # no mid this minute: sampled, nothing earned
                    self._ledger(owner, m.condition_id).samples += 1

    def order_scoring(self, order_id: str) -> bool:
        """Whether a resting order scores now (in band, large enough, program active)."""
        ent = self.sim._orders.get(order_id)
        if ent is None:
            return False
        m, _, mil, rest = ent
        prog = m.program
        if not prog.active or not m.has_book or Decimal(rest.size) / 100 < prog.min_size:
            return False
        bids, asks = self.yes_levels(m)
        mid = adjusted_mid(bids, asks, prog.min_size)
        if mid is None:
            return False
        return abs(Decimal(mil) / 1000 - mid) * 100 < prog.max_spread_c

    # ------------------------------------------------------------------ clock
    def on_step(self) -> None:
        """Called by `Simulator.step` once its time advanced and before its flow: the minute
        samples (and the payout of a day) the new time reached, on the book of the boundary."""
        now = self.sim.now()
        while now >= self.next_sample:
            self.sample()
            self.next_sample += SAMPLE_SEC
        day = int(now // 86400)
        if day != self.day:
            self.midnight()
            self.day = day

    def midnight(self) -> None:
        """Pay the day's rewards and rebates (≥ $1 each), start a new day."""
        date = time.strftime("%Y-%m-%d", time.gmtime(self.day * 86400))
        for (owner, cid), led in self.ledgers.items():
            reb = self.rebate_today(owner, cid)
            led.rebates_accrued_past += reb
            led.rebates_paid += payout(reb)
            led.rewards_accrued_past += led.rewards_today
            led.rewards_paid += payout(led.rewards_today)
            if owner != BACKGROUND and (payout(reb) or payout(led.rewards_today)):
                self.paid.append(Payout(owner, cid, date, payout(led.rewards_today), payout(reb)))
            led.rewards_today = ZERO
            led.maker_equiv_units = 0
        self.day_fee_units.clear()
        self.day_equiv_units.clear()
        self.payouts += 1

    # ------------------------------------------------------------------ settlement
    def settle(self, m: SimMarket, positions: dict[tuple[str, str], Decimal]) -> list[Settlement]:
        """Redeem every account's shares of a resolved market: winners at 1, losers at 0."""
        out = []
        owners = {o for (o, tok) in positions if tok in (m.yes_token_id, m.no_token_id)}
        win = m.yes_token_id if m.winner_yes else m.no_token_id
        for owner in sorted(owners):
            y = positions.get((owner, m.yes_token_id), ZERO)
            n = positions.get((owner, m.no_token_id), ZERO)
            pay = positions.get((owner, win), ZERO)
            s = Settlement(owner, m.condition_id, win, y, n, max(pay, ZERO), self.sim.now())
            self.settlements.append(s)
            out.append(s)
        return out

    # ------------------------------------------------------------------ ground truth
    def paid_on(self, owners: set[str], date: str) -> list[Payout]:
        """The payouts of these accounts for the day `date` (YYYY-MM-DD)."""
        return [p for p in self.paid if p.owner in owners and p.date == date]

    def account(self, owner: str) -> dict[str, Any]:
        """Everything the venue charged, accrued and paid one account, per market and in total."""
        markets = []
        tot: dict[str, Decimal] = {"fees": ZERO, "rebates_accrued": ZERO, "rebates_paid": ZERO, "rewards_accrued": ZERO,
               "rewards_paid": ZERO, "settlement": ZERO}
        for (o, cid), led in self.ledgers.items():
            if o != owner:
                continue
            reb = led.rebates_accrued_past + self.rebate_today(owner, cid)
            rew = led.rewards_accrued_past + led.rewards_today
            row: dict[str, Any] = {"condition_id": cid, "fees": led.fees, "rebates_accrued": reb, "rebates_paid": led.rebates_paid,
                   "rewards_accrued": rew, "rewards_paid": led.rewards_paid, "samples": led.samples,
                   "last_sample": dict(led.last)}
            markets.append(row)
            for k in ("fees", "rebates_accrued", "rebates_paid", "rewards_accrued", "rewards_paid"):
                tot[k] += row[k]
        sets = [s for s in self.settlements if s.owner == owner]
        tot["settlement"] = sum((s.payout for s in sets), ZERO)
        return {"owner": owner, "markets": markets, "totals": tot,
                "settlements": [{"condition_id": s.condition_id, "winner_token": s.winner_token,
                                 "yes_shares": s.yes_shares, "no_shares": s.no_shares, "payout": s.payout,
                                 "ts": s.ts} for s in sets],
                "minutes_sampled": self.minutes_sampled, "payouts": self.payouts,
                "day": time.strftime("%Y-%m-%d", time.gmtime(self.day * 86400))}


def jsonable(x: Any) -> Any:
    """Decimals as strings, recursively (for the admin endpoint)."""
    if isinstance(x, Decimal):
        return format(x.normalize(), "f") if x else "0"
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x
