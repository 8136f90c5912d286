"""Risk limits, valves and the kill decision, applied between the quoting decision and the venue.

Why a separate stage: `make_quotes` says what a market maker would like to rest; this module
says what the account may rest. Each rule either drops quotes (inventory, price band), silences
a market (loss per market, anomaly cool-down), defers actions (orders + cancels per minute,
max open orders: a deferred action is simply re-planned next cycle, never sent late), or asks
the engine to kill (daily loss).

Inventory is measured where the risk is: the net YES-equivalent position `yes − no` (a YES+NO
pair is riskless), in shares and in USD at mid (long YES is worth `net × mid`, long NO
`|net| × (1 − mid)`). A quote that would move the position *toward* zero is always allowed, so
a market at its limit can still shed. `max_inventory_shares` also caps each token's holding
(the Params contract: "per token, absolute").

Breaches are edge-triggered: one `risk_breach` event (emitted on the injected `EventBus`, so
one `events` row with the rule in `data_json`, and a line in the faces' log) when a rule starts
to bind, not on every cycle while it keeps binding, so a market pinned at its limit does not
flood the table; the message list for the cycle report carries the new ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from ..config import Params
from ..domain import BUY, ZERO, Market, Quote, slot_init
from ..events import EventBus, EventKind, Level
from .inventory import Inventory
from .planner import Plan

WINDOW_SEC = 60.0
DAY_SEC = 86_400.0
JUMP_EPS = 1e-9  # float rounding of a mid difference (~1e-16), far below the finest half tick (5e-5)


def exposure_usd(net: Decimal, mid: Decimal) -> Decimal:
    """Value at risk of a net YES-equivalent position marked at the YES mid."""
    return net * mid if net >= 0 else -net * (1 - mid)


class RateLimiter:
    """Rolling one-minute window of sent actions (orders + cancels)."""

    def __init__(self) -> None:
        self._ts: deque[float] = deque()

    def budget(self, now: float, limit: int) -> int:
        while self._ts and self._ts[0] <= now - WINDOW_SEC:
            self._ts.popleft()
        return max(0, limit - len(self._ts))

    def record(self, now: float, n: int) -> None:
        self._ts.extend([now] * n)


TOTAL_RULE = "total inventory"


@slot_init
@dataclass(frozen=True, slots=True)
class Screened:
    """`RiskManager.screen`'s verdict on one market's quotes: the kept quotes, the rules that
    dropped the others (rule, market, message), and for each quote the total-inventory rule
    judged: (own exposure, exposure after the fill, over the limit?)."""

    kept: tuple[Quote, ...]
    flags: tuple[tuple[str, str | None, str], ...]
    totals: tuple[tuple[Decimal, Decimal, bool], ...]


@dataclass(slots=True)
class _MarketRisk:
    mids: deque[tuple[float, float]] = field(default_factory=deque)
    cooldown_until: float = 0.0
    stopped: str | None = None  # reason, sticky for the UTC day


class RiskManager:
    def __init__(self, params: Params, events: EventBus) -> None:
        self.params = params
        self.events = events
        self.rate = RateLimiter()
        self._markets: dict[str, _MarketRisk] = {}
        self._active: set[tuple[str, str | None]] = set()
        self._current: set[tuple[str, str | None]] = set()
        self._new: list[str] = []
        self._day: int | None = None
        self._day_base_total = ZERO
        self._day_base_market: dict[str, Decimal] = {}
        self.kill_reason: str | None = None
        self._writer_faulted = False
        self.dropped: dict[str, str] = {}  # market → the rule that dropped a quote this cycle
        self._jump: tuple[object, float] = (None, 0.0)  # `params.anomaly_jump`, its float + JUMP_EPS (per market per cycle)

    # -- store health --------------------------------------------------------------------------
    def writer_block(self, now: float, health: object | None) -> str | None:
        """Why quoting must pause because the DB writer is unhealthy, else None.

        `health` is the writer's `WriterStats` (duck-typed: `fault`, `pending`, `last_error`).
        A trade the engine cannot record is a trade it cannot account for: with a fault (disk
        full, rows past the bound, DB file gone, backlog past its lag limit) no quote rests."""
        fault = getattr(health, "fault", None) if health is not None else None
        was, self._writer_faulted = self._writer_faulted, bool(fault)
        if not fault:
            return None
        msg = f"DB writer unhealthy ({getattr(health, 'pending', '?')} rows queued): {fault}"
        if not was:  # edge-triggered like every breach (the row waits in the writer's queue)
            self._breach(now, None, msg, {"rule": "writer"})
        return msg

    # -- cycle bookkeeping -------------------------------------------------------------------
    def begin_cycle(self) -> None:
        self._current = set()
        self._new = []
        self.dropped = {}

    def end_cycle(self) -> list[str]:
        """Close the cycle; returns the breaches that started in it."""
        self._active = self._current
        return self._new

    def _flag(self, now: float, rule: str, market: str | None, message: str) -> None:
        key = (rule, market)
        fresh = key not in self._active and key not in self._current
        self._current.add(key)
        if not fresh:
            return
        self._new.append(f"{market}: {message}" if market else message)
        self._breach(now, market, message, {"rule": rule})

    def _breach(self, now: float, market: str | None, message: str, data: dict[str, object]) -> None:
        self.events.emit(Level.WARNING, EventKind.RISK_BREACH, message, market, data=data, ts=now)

    def _m(self, market: str) -> _MarketRisk:
        st = self._markets.get(market)
        if st is None:
            st = self._markets[market] = _MarketRisk()
        return st

    # -- per-market valves -------------------------------------------------------------------
    def observe_mid(self, now: float, market: str, mid: float) -> None:
        """Anomaly guard: a mid jump larger than `anomaly_jump` inside `anomaly_window_sec`
        pulls the market's quotes for `anomaly_cooldown_sec` (a news shock or a broken feed).

        The mids are floats of tick-grid Decimals, and float subtraction rounds their difference
        either way (0.55 - 0.45 is 0.10000000000000003, 0.60 - 0.50 is 0.09999999999999998): a
        jump is larger than the threshold when it is by more than `JUMP_EPS`, so a move of exactly
        `anomaly_jump` pulls no market at any price level."""
        p = self.params
        st = self._m(market)
        mids = st.mids
        cut = now - p.anomaly_window_sec
        while mids and mids[0][0] < cut:
            mids.popleft()
        jump = 0.0  # `max(|mid - m|, default=0.0)`: the first largest (a loop, not a generator, per market per cycle)
        for _, m in mids:
            d = abs(mid - m)
            if d > jump:
                jump = d
        mids.append((now, mid))
        aj = p.anomaly_jump
        if self._jump[0] is not aj:
            self._jump = (aj, float(aj) + JUMP_EPS)
        if jump > self._jump[1]:
            st.cooldown_until = now + p.anomaly_cooldown_sec
            st.mids.clear()
            st.mids.append((now, mid))
            self._new.append(f"{market}: anomaly: mid jumped {jump:.4f} within {p.anomaly_window_sec:g}s")
            self._breach(now, market, f"anomaly: mid jumped {jump:.4f}, cooling down {p.anomaly_cooldown_sec:g}s",
                         {"rule": "anomaly", "jump": jump})

    def market_block(self, now: float, market: str) -> str | None:
        """Status word when risk silences the market this cycle, else None."""
        st = self._m(market)
        if st.stopped:
            self._flag(now, "market_loss", market, st.stopped)
            return f"risk: {st.stopped}"
        if now < st.cooldown_until:
            return "cooldown"
        return None

    def check_losses(self, now: float, market_pnl: dict[str, Decimal], total_pnl: Decimal) -> bool:
        """Loss limits since the start of the UTC day. Returns True when a kill is wanted."""
        p = self.params
        day = int(now // DAY_SEC)
        if day != self._day:
            self._day = day
            self._day_base_total = total_pnl
            self._day_base_market = dict(market_pnl)
            for st in self._markets.values():
                st.stopped = None
        base, limit = self._day_base_market, p.max_loss_per_market_usd
        for cid, pnl in market_pnl.items():
            loss = base.setdefault(cid, ZERO) - pnl
            if loss > limit and not self._m(cid).stopped:
                self._m(cid).stopped = f"max loss {loss:.2f} > {limit} USD"
        day_loss = self._day_base_total - total_pnl
        if day_loss > p.max_daily_loss_usd:
            self.kill_reason = f"daily loss {day_loss:.2f} > {p.max_daily_loss_usd} USD"
            self._flag(now, "daily_loss", None, self.kill_reason)
            return True
        return False

    # -- quote filter ------------------------------------------------------------------------
    def filter_quotes(
        self,
        now: float,
        market: Market,
        quotes: list[Quote],
        inv: Inventory,
        mid: Decimal,
        total_exposure_usd: Decimal,
    ) -> list[Quote]:
        """Drop quotes that would breach inventory limits or sit outside the price band."""
        return self.apply(now, market.condition_id, self.screen(market, quotes, inv, mid, total_exposure_usd),
                          total_exposure_usd)

    def screen(self, market: Market, quotes: list[Quote], inv: Inventory, mid: Decimal,
               total_exposure_usd: Decimal) -> Screened:
        """The filter's verdict without its side effects (`apply` records them). It depends on the
        total exposure only through `Screened.totals`: `still_holds` says whether it is still the
        verdict at another total (the incremental cycle reuses it then)."""
        p = self.params
        out: list[Quote] = []
        flags: list[tuple[str, str | None, str]] = []
        totals: list[tuple[Decimal, Decimal, bool]] = []
        cid = market.condition_id
        net = inv.net  # a property: computed once here, not three times per quote
        anet = abs(net)  # (and its size: once, not per quote)
        own = exposure_usd(net, mid)
        yes_id = market.yes_token_id
        band, max_shares, max_usd = p.price_band, p.max_inventory_shares, p.max_inventory_usd
        for q in quotes:
            # `yes_space_price` and `net_delta`, written out (per quote per decision): the same operations
            is_yes = q.token_id == yes_id
            yp = q.price if is_yes else 1 - q.price
            buy = q.side is BUY
            signed = q.size if buy else -q.size
            new_net = net + (signed if is_yes else -signed)
            anew = abs(new_net)
            growing = anew > anet
            held = inv.yes if is_yes else inv.no
            rule: tuple[str, str | None, str] | None = None
            if abs(yp - mid) > band:
                rule = ("price band", cid, f"quote {yp} further than {band} from mid {mid}")
            elif growing and anew > max_shares:
                rule = ("inventory shares", cid, f"net inventory {net} near limit {max_shares} shares")
            elif buy and held + q.size > max_shares:
                rule = ("token shares", cid, f"token holding {held} near limit {max_shares} shares")
            elif growing:  # (the exposure after the fill: read by the two rules of a growing quote only)
                new_usd = exposure_usd(new_net, mid)
                if new_usd > max_usd:
                    rule = ("inventory usd", cid, f"inventory {own:.2f} USD near limit {max_usd}")
                else:
                    over = self._total_over(total_exposure_usd, own, new_usd)
                    totals.append((own, new_usd, over))
                    if over:
                        rule = (TOTAL_RULE, None, "")  # the message names the total: written by `apply`
            if rule is None:
                out.append(q)
            else:
                flags.append(rule)
        return Screened(tuple(out), tuple(flags), tuple(totals))

    def _total_over(self, total: Decimal, own: Decimal, new_usd: Decimal) -> bool:
        return total - own + new_usd > self.params.max_total_inventory_usd

    def still_holds(self, s: Screened, total_exposure_usd: Decimal) -> bool:
        """True when `s` is also the verdict at this total exposure (the other inputs equal)."""
        for own, new, over in s.totals:  # (`all` over a generator, per market per cycle: a loop)
            if self._total_over(total_exposure_usd, own, new) is not over:
                return False
        return True

    def apply(self, now: float, market: str, s: Screened, total_exposure_usd: Decimal) -> list[Quote]:
        """Record a verdict: the market's dropped rule and the (edge-triggered) breaches."""
        for rule, mkt, msg in s.flags:
            if rule == TOTAL_RULE:
                msg = f"total inventory {total_exposure_usd:.2f} USD near limit {self.params.max_total_inventory_usd}"
            self.dropped[market] = rule
            self._flag(now, rule, mkt, msg)
        return list(s.kept)

    # -- action valves -----------------------------------------------------------------------
    def limit_actions(self, now: float, plan: Plan, open_count: int, token_of: dict[str, str]) -> Plan:
        """Truncate a plan to the per-minute action budget and the open-order cap.

        Cancels go first (they reduce risk); a place is sent only if no cancel on the same token
        was deferred (a replacement must never rest beside the order it replaces) and the open
        order count stays within `max_open_orders`. The rest waits for the next cycle.
        """
        p = self.params
        budget = self.rate.budget(now, p.max_actions_per_min)
        cancels = plan.cancel[:budget]
        deferred_tokens = {token_of.get(c) for c in plan.cancel[budget:]}
        budget -= len(cancels)
        room = p.max_open_orders - (open_count - len(cancels))
        places: list[Quote] = []
        for q in plan.place:
            if q.token_id in deferred_tokens:
                continue
            if budget <= 0:
                break
            if room <= 0:
                self._flag(now, "max_open_orders", None, f"open orders at limit {p.max_open_orders}")
                break
            places.append(q)
            budget -= 1
            room -= 1
        deferred = len(plan.cancel) - len(cancels) + len(plan.place) - len(places)
        if deferred and budget <= 0:
            self._flag(now, "action_rate", None, f"action rate at {p.max_actions_per_min}/min: {deferred} actions deferred")
        self.rate.record(now, len(cancels) + len(places))
        return Plan(place=places, cancel=cancels)
