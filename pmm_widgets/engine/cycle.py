"""`QuoteCycle`: one quote-loop iteration, wiring books → quotes → risk → plan → exchange →
fills → inventory / PnL / markouts / calibration.

Why one object that the engine calls: the engine owns timing (it calls `run_once` every
`PMM_QUOTE_REFRESH_SEC`), the universe and the exchange; everything that turns books into
orders and fills into numbers lives here, so paper, dry-run and live runs share it verbatim,
and it can be driven with synthetic books and a synthetic clock in tests and benches.

Numbers: prices, sizes, inventory, cash and PnL are Decimal (exact); rates, multipliers,
volatility and markout statistics are float (estimates). `snapshot()` (one frozen
`engine/snapshot.py` `CycleSnapshot` per cycle) reports our resting quotes in YES-space (`mid` and `spread` are the effective YES book's, combining both
tokens' books): `yes_bid` is our BUY YES price (or 1 − our SELL NO price), `yes_ask` our
SELL YES price (or 1 − our NO bid); `no_bid = 1 − yes_ask` and `no_ask = 1 − yes_bid`, which
is what each token's book effectively shows of us.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..analytics.markouts import HORIZONS, MarkoutTracker
from ..analytics.pnl import PnlBook, PnlParts
from ..config import STRATEGY_PARAM_FIELDS, Params
from ..domain import REJECTED, ZERO, BookView, Fill, Market, Mode, Order, Quote, Side
from ..economics.rewards import TWO_SIDED_HI, TWO_SIDED_LO, UsdCarry
from ..economics.tracker import EconomicsTracker, RewardSample
from ..events import EventBus, EventKind, Level
from ..execution.exchange import Exchange
from ..store.recorder import DbRecorder, as_recorder, persisting_bus
from ..store.sink import Sink
from ..strategy.base import HALTED, NORMAL, Decision, MarketContext, Regime, Strategy, decision_key
from ..strategy.calibrator import Calibrator
from ..strategy.guard import guard_at, guard_quotes
from ..strategy.inventory import Inventory
from ..strategy.planner import plan
from ..strategy.quoting import (
    _fair_yes,
    effective_touch,
    grid_tick,
    is_quotable,
    max_of3,
    ticks_at,
    token_quotes,
    yes_space_price,
)
from ..strategy.registry import Builtins, build_strategy
from ..strategy.risk import RiskManager, Screened
from ..strategy.spread import SpreadStrategy
from ..strategy.volatility import VolEstimator
from ..tasks import cancel_and_wait
from .snapshot import NO_PNL, CycleSnapshot, MarketSnapshot, SnapshotTotals

if TYPE_CHECKING:
    from ..venue.market_stream import MarketStream

DEFAULT_TICK = Decimal("0.01")
NO_INVENTORY = Inventory()
TOX_EWM_W = 0.2  # weight of a new short-horizon markout in the per-market toxicity EWMA


@dataclass(slots=True)
class MarketOverride:
    """A market's own strategy (by name or a user's object) and strategy parameters."""

    strategy: Strategy | None = None  # None: the default (params.strategy) with these params
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""


def strategy_params(base: Params, overrides: dict[str, Any]) -> Params:
    """`base` with a market's strategy-parameter overrides, validated by the `Params` rules."""
    bad = sorted(set(overrides) - set(STRATEGY_PARAM_FIELDS))
    if bad:
        raise ValueError(f"not a strategy parameter: {', '.join(bad)} (allowed: {', '.join(STRATEGY_PARAM_FIELDS)})")
    if not overrides:
        return base
    return Params.model_validate({**base.model_dump(), **overrides})


def end_ts(market: Market) -> float | None:
    """The market's end date as epoch seconds (None when absent or unparseable)."""
    if not market.end_date:
        return None
    try:
        dt = datetime.fromisoformat(market.end_date)
    except ValueError:
        return None
    return dt.timestamp() if dt.tzinfo is not None else None


@dataclass(slots=True)
class _Decided:
    """A market's last computed decision and everything it was computed from (incremental cycle)."""

    strategy: Strategy
    market: Market
    state: object
    key: tuple[object, ...]
    quotes: list[Quote]
    regime: Regime
    note: str
    guard: str | None  # the guard's drop reason (replayed: edge-triggered flag)


@dataclass(slots=True)
class _FloatsOf:
    """A market's float conversions for `_decide_spread`, each kept while its source is the very
    same object (Decimals and `Inventory` are immutable): the tick, the net inventory of this
    `Inventory`, the inventory limit."""

    tick: Decimal | None = None
    tf: float = 0.0
    inv: Inventory | None = None
    net: float = 0.0
    lim: Decimal | None = None
    limit: float = 0.0


@dataclass(slots=True)
class CycleReport:
    placed: int = 0
    cancelled: int = 0
    fills: int = 0
    kill_requested: bool = False
    breaches: list[str] = field(default_factory=list)  # risk breaches that started this cycle
    quoted_markets: int = 0
    rejected: int = 0
    deferred: int = 0
    strategy_events: list[str] = field(default_factory=list)  # regime transitions, switches, guard drops
    requote_sec: float = 0.0  # wall time of this cycle's cancels + places (0 when there were none)
    decided: int = 0  # markets whose strategy ran this cycle
    reused: int = 0  # markets whose inputs were unchanged: the previous decision kept (incremental)


async def requote(exchange: Exchange, cancel: list[str], place: list[Quote]) -> tuple[list[str], list[Order]]:
    """Send one cycle's cancels and places: together when the exchange can (`LiveExchange.requote`:
    one DELETE beside the POST batches), else cancels first, then places (paper, dry-run)."""
    rq = getattr(exchange, "requote", None)
    if rq is not None:
        done, orders = await rq(cancel, place)
        return list(done), list(orders)
    done = await exchange.cancel(cancel) if cancel else []
    return done, (await exchange.place(place) if place else [])


def _fill_time_mid(fill: Fill) -> Decimal | None:
    """The token's mid when the fill happened, if the exchange recorded it (`Fill.mid`: paper and
    live do); else the caller uses the mid of the cycle that received the fill (up to one refresh later)."""
    return fill.mid


class QuoteCycle:
    def __init__(
        self,
        params: Params,
        sink: Sink | DbRecorder,
        mode: Mode,
        calibration: dict[str, dict[str, Any]] | None = None,
        *,
        events: EventBus | None = None,
        pnl_sec: float = 10.0,
        vol_horizon_sec: float = 30.0,
        markout_horizons: tuple[float, ...] = HORIZONS,
        calib_update_sec: float = 30.0,
        calib_window_sec: float = 300.0,
        incremental: bool = True,
        yield_sec: float = 0.0,
        exchange: Exchange | None = None,
    ) -> None:
        """`sink`: where rows go (a `DbRecorder`, or a bare sink it wraps). `events`: the bus to
        emit on (the engine's, persisted by the engine); None: a bus of its own that persists
        through the recorder (tests, replays). `incremental`: re-decide only markets whose
        decision inputs changed (exactly the full cycle's decisions; False: every market every
        cycle, the reference the property test compares against). `yield_sec` > 0: the cycle gives
        the event loop a turn whenever it has held it that long (between markets; engine runs,
        whose market stream holds the books still meanwhile: `MarketStream.hold`); 0: it never
        yields (replays, tests: a cycle is then one block, deterministic). `exchange`: the one it
        trades through, whose count of cancelled orders is the totals' `cancels` (also before the
        first cycle: a stop before it); each `run_once` / `resolve_market` takes the one it is given."""
        self.params = params
        self._exchange = exchange
        self.rec = as_recorder(sink)
        self.events = events if events is not None else persisting_bus(self.rec)
        self.mode = mode
        self.pnl_sec = pnl_sec
        self.vol_horizon_sec = vol_horizon_sec
        self.vol = VolEstimator()
        self.risk = RiskManager(params, self.events)
        self.pnl = PnlBook()
        self.markouts = MarkoutTracker(self.rec, markout_horizons)
        self.calibrator = Calibrator(params, self.rec, calibration, update_sec=calib_update_sec, window_sec=calib_window_sec)
        self._markets: list[Market] = []
        self._known: dict[str, Market] = {}  # every market seen (fills may arrive after it left)
        self._token_market: dict[str, Market] = {}
        self._universe_key: tuple[str, ...] = ()
        self._mids: dict[str, Decimal | None] = {}  # effective YES mid per market
        self._spreads: dict[str, Decimal | None] = {}  # effective YES book spread per market
        self._fmid: dict[str, tuple[Decimal, float]] = {}  # a market's mid and its float (`_observed`)
        self._ftick: dict[str, tuple[Decimal, float]] = {}  # a market's tick and its float (`_account`)
        self._status: dict[str, str] = {}
        self._placed: dict[str, int] = {}
        self._our: dict[str, dict[str, Decimal | None]] | None = {}  # None: `_our_quotes` builds it from:
        self._our_orders: list[Order] = []  # the open orders at the last cycle's end
        self._quoted: set[str] = set()  # the markets they rest in
        self._next_pnl_ts: float | None = None
        self._ended = False  # `final_pnl` wrote the session's last rows; a cycle since clears it
        self._last_pnl: list[dict[str, Any]] = []  # the `pnl` rows written last (`final_pnl` repeats none)
        self._killed = False
        self._now = 0.0
        self._totals = SnapshotTotals()
        self._n_placed = self._n_rejected = 0
        self._snap: CycleSnapshot | None = None
        # strategies: the default by name (params.strategy), per-market overrides, their state
        self.overrides: dict[str, MarketOverride] = {}
        self._builtin = Builtins()
        self.default_strategy: Strategy | None = None  # an object instead of params.strategy (replay, notebooks)
        self._active: dict[str, Strategy] = {}  # the strategy that decided each market last
        self._sstate: dict[str, object] = {}
        self._regime: dict[str, str] = {}
        self._guard_flag: dict[str, str] = {}
        self._mparams: dict[str, tuple[str, Params]] = {}
        self._touch: dict[str, tuple[Decimal, int, int]] = {}
        self._tox: dict[str, tuple[float, int]] = {}  # short-horizon markout EWMA (price units), count
        self._end: dict[str, tuple[str | None, float | None]] = {}
        self.econ = EconomicsTracker(self.rec, mode.value, events=self.events)
        self._resolved: dict[str, str] = {}  # market -> winning token (no more quoting there)
        self._venue_samples: list[RewardSample] = []  # taken at venue minutes, recorded by the next cycle
        self._payouts: tuple[str, asyncio.Task[Any]] | None = None  # live: a venue day's payouts being read
        self._usd_rows = UsdCarry()  # `reward_estimates.usd` at 6 dp, unbiased (the remainder carried)
        # incremental cycle: the inputs of each market's last touch computation and decision
        self.incremental = incremental
        self._pkey = ""  # the live parameters as JSON, once per cycle (they are mutated in place)
        self._okey: dict[str, tuple[object, ...]] = {}
        self._decided: dict[str, _Decided] = {}
        self._floats: dict[str, _FloatsOf] = {}  # `_decide_spread`'s conversions per market
        self._screened: dict[str, tuple[tuple[object, ...], Screened]] = {}
        self._inv: dict[str, Inventory] = {}  # `inventory`'s last answer per market
        self._parts: dict[str, PnlParts] = {}  # this cycle's PnL parts per market (`_risk_inputs`)
        self._ptotals = NO_PNL  # and their sums
        self.wanted: list[Quote] = []  # the last cycle's decisions: every market's quotes after risk
        self.yield_sec = yield_sec
        self._slice_t0 = 0.0  # perf_counter when the cycle last took the event loop
        self.yields = 0  # turns the cycles gave the event loop (benches, tests)

    # -- helpers -------------------------------------------------------------------------------
    def _set_universe(self, markets: list[Market], exchange: Exchange) -> None:
        key = tuple(m.condition_id for m in markets)
        if key == self._universe_key and all(self._known.get(m.condition_id) is m for m in markets):
            return
        self._our_quotes()  # (built with the token map of the cycle that ended, which this changes)
        self._universe_key = key
        self._markets = list(markets)
        for m in markets:
            self._known[m.condition_id] = m
            for t in m.token_ids:
                self._token_market[t] = m
        exchange.set_markets(list(self._known.values()))

    def token_mid(self, token_id: str) -> Decimal | None:
        m = self._token_market.get(token_id)
        if m is None:
            return None
        mid = self._mids.get(m.condition_id)
        if mid is None:
            return None
        return mid if token_id == m.yes_token_id else 1 - mid

    def _tick_of(self, token_id: str) -> Decimal:
        m = self._token_market.get(token_id)
        return m.tick_size if m is not None else DEFAULT_TICK

    def inventory(self, market: str) -> Inventory:
        """The market's holdings (`Inventory` is frozen: the one of the last call is handed out
        again while the ledger holds the very same `yes` / `no` Decimals, which are immutable)."""
        lg = self.pnl.ledgers.get(market)
        if lg is None:
            return NO_INVENTORY
        inv = self._inv.get(market)
        if inv is None or inv.yes is not lg.yes or inv.no is not lg.no:
            inv = self._inv[market] = Inventory(lg.yes, lg.no)
        return inv

    # -- strategies ----------------------------------------------------------------------------
    def set_strategy(self, market: str, strategy: Strategy | str | None, **params: Any) -> None:
        """Give one market its own strategy (a name, or any object with `name` and `decide`) and
        strategy parameters; `None` with no params returns it to the default (`params.strategy`).
        Raises ValueError (unknown name, not a strategy, a parameter the rules refuse) and
        changes nothing then. The switch takes effect at the next cycle, which cancels the
        market's orders before the new strategy's are placed."""
        if isinstance(strategy, str):
            obj: Strategy | None = build_strategy(strategy)
        elif strategy is None:
            obj = None
        elif isinstance(strategy, Strategy):
            obj = strategy
        else:
            raise ValueError(f"{strategy!r} is not a strategy: it needs a `name` and a `decide(ctx, state)` method")
        strategy_params(self.params, params)  # raises before anything changes
        if obj is None and not params:
            self.overrides.pop(market, None)
        else:
            self.overrides[market] = MarketOverride(obj, dict(params), obj.name if obj is not None else "")
        self._mparams.pop(market, None)

    def strategy_for(self, market: str) -> Strategy:
        ov = self.overrides.get(market)
        if ov is not None and ov.strategy is not None:
            return ov.strategy
        if self.default_strategy is not None:
            return self.default_strategy
        name = self.params.strategy
        if self.params.rewards_mode == "fit" and name == "spread":
            name = "rewards"  # PMM_REWARDS_MODE=fit: the seed's quotes pulled into the reward band
        return self._builtin.get(name)

    def _market_params(self, market: str) -> Params:
        ov = self.overrides.get(market)
        if ov is None or not ov.params:
            return self.params
        key = self.params.model_dump_json()
        hit = self._mparams.get(market)
        if hit is None or hit[0] != key:
            try:
                mp = strategy_params(self.params, ov.params)
            except ValueError:  # the global params moved under an override: the override yields
                mp = self.params
            hit = self._mparams[market] = (key, mp)
        return hit[1]

    def _time_to_end(self, m: Market, now: float) -> float | None:
        hit = self._end.get(m.condition_id)
        if hit is None or hit[0] != m.end_date:
            hit = self._end[m.condition_id] = (m.end_date, end_ts(m))
        return None if hit[1] is None else hit[1] - now

    def _decide(self, now: float, m: Market, yv: BookView, nv: BookView, inv: Inventory,
                orders: tuple[Order, ...], rep: CycleReport, tte: float | None) -> tuple[list[Quote], Regime, str]:
        """Run the market's strategy and the guard; returns (quotes, regime, status note).
        `tte`: `_time_to_end(m, now)`, which the caller has just read."""
        cid = m.condition_id
        strat = self._active[cid]
        tick, b, a = self._touch[cid]
        tox, ntox = self._tox.get(cid, (0.0, 0))
        cs = self.calibrator.states.get(cid)  # fills/min as of its last update (no window scan per cycle)
        sigma, h = self.vol.sigma, self.vol_horizon_sec
        yt, nt = m.yes_token_id, m.no_token_id
        ctx = MarketContext(  # (positional: `MarketContext`'s field order)
            m, yv, nv, tick, b, a, inv, self._market_params(cid), now, orders, self.calibrator.mult(cid),
            {yt: sigma(yt, h), nt: sigma(nt, h)},  # each token's (the dict of `m.token_ids`, as built before)
            h, tox if ntox else None, ntox, cs.fills_per_min if cs is not None else 0.0, tte,
        )
        state = self._sstate.get(cid)
        key: tuple[object, ...] | None = None
        if self.incremental:
            try:
                skey = decision_key(strat, ctx)
            except Exception:  # noqa: BLE001 (user code: `decide` below reports the failure)
                skey = None
            if skey is not None:
                ov = self.overrides.get(cid)
                key = (self._pkey, dict(ov.params) if ov is not None else None, inv.yes, inv.no, tick, b, a,
                       yv.min_order_size, nv.min_order_size, skey)
                hit = self._decided.get(cid)
                if hit is not None and hit.strategy is strat and hit.market is m and hit.state is state \
                        and hit.key == key:
                    rep.reused += 1
                    self._regime[cid] = hit.regime._value_  # (`.value`: an enum property, µs)
                    self._guard(now, cid, strat.name, hit.guard, hit.regime, rep)
                    return list(hit.quotes), hit.regime, hit.note
        rep.decided += 1
        try:
            d = strat.decide(ctx, state)
            if not isinstance(d, Decision):
                raise TypeError(f"decide() returned {type(d).__name__}, not a Decision")
            regime = d.regime if type(d.regime) is Regime else Regime(d.regime)  # (the Enum call costs µs)
        except Exception as exc:  # noqa: BLE001 (user code: never let it take the engine down)
            note = f"strategy error: {type(exc).__name__}: {exc}"
            self._flag_guard(now, cid, strat.name, note, rep, level=Level.ERROR)
            self._decided.pop(cid, None)
            return [], Regime.HALTED, note
        self._sstate[cid] = d.state
        for msg in d.events:
            self._event(now, cid, EventKind.STRATEGY_REGIME, f"{strat.name}: {msg}",
                        {"strategy": strat.name, "regime": regime.value, "reason": d.reason}, rep)
        self._regime[cid] = regime._value_
        quotes, why = guard_quotes(ctx, d.quotes, regime)
        self._guard(now, cid, strat.name, why, regime, rep)
        note = "" if regime is Regime.NORMAL else regime.value + (f" ({d.reason})" if d.reason else "")
        if key is not None and d.state is state and not d.events:  # a fixed point: equal inputs, equal decision
            self._decided[cid] = _Decided(strat, m, state, key, list(quotes), regime, note, why)
        else:
            self._decided.pop(cid, None)
        return quotes, regime, note

    def _decide_spread(self, now: float, m: Market, yv: BookView, nv: BookView, inv: Inventory, rep: CycleReport,
                       strat: SpreadStrategy) -> tuple[list[Quote], Regime, str] | None:
        """`_decide` of the seed's strategy (`SpreadStrategy` itself, incremental; `_decide_all` asks
        this first): what its `decision_key` and `decide` compute, without the `MarketContext`
        (`spread_ticks` from the floats of the Decimals that did not change since the last cycle:
        `_FloatsOf`). Its key is `_decide`'s without the book flags (the market is quotable: none is
        set), the ticks flattened in. None when the ticks fail (then `_decide` reports it, as before)."""
        cid = m.condition_id
        tick, b, a = self._touch[cid]
        ov = self.overrides.get(cid)
        mp = self.params if ov is None or not ov.params else self._market_params(cid)  # (as it answers)
        mult = self.calibrator.mult(cid)
        sigma, h = self.vol.sigma, self.vol_horizon_sec
        yt, nt = m.yes_token_id, m.no_token_id
        sy, sn = sigma(yt, h), sigma(nt, h)
        if yt == nt:  # (`{yt: sy, nt: sn}` held one key then)
            sy = sn
        fl = self._floats.get(cid)
        if fl is None:
            fl = self._floats[cid] = _FloatsOf()
        try:
            if fl.tick is not tick:
                fl.tick, fl.tf = tick, float(tick)
            tf = fl.tf
            fair = _fair_yes(yv, nv, b, a, tf)  # (the views are new objects almost every cycle: not kept)
            if fl.inv is not inv:
                fl.inv, fl.net = inv, float(inv.net)
            lim = mp.max_inventory_shares
            if fl.lim is not lim:
                fl.lim, fl.limit = lim, float(lim)
            bid_t, ask_t = ticks_at(fair, sn if sn > sy else sy, tf, b, a, mp.alpha, mult, fl.net, fl.limit,
                                    mp.skew)  # (`max(sy, sn)` as the builtin evaluates it: `quoting.ticks_at`)
        except Exception:  # noqa: BLE001 (`_decide` asks the strategy itself, which reports it)
            self._floats.pop(cid, None)
            return None
        state = self._sstate.get(cid)
        key = (self._pkey, dict(ov.params) if ov is not None else None, inv.yes, inv.no, tick, b, a,
               yv.min_order_size, nv.min_order_size, bid_t, ask_t)
        hit = self._decided.get(cid)
        if hit is not None and hit.strategy is strat and hit.market is m and hit.state is state and hit.key == key:
            rep.reused += 1
            self._regime[cid] = hit.regime._value_
            self._guard(now, cid, strat.name, hit.guard, hit.regime, rep)
            return list(hit.quotes), hit.regime, hit.note
        rep.decided += 1
        try:  # `SpreadStrategy.decide`: `make_quotes` given the touch and these ticks
            if (mp is not self.params and is_quotable(m, yv, nv, mp) is not None) or b >= a:
                raw: list[Quote] = []
            else:
                raw = token_quotes(m, yv, nv, mp, inv, tick, b, a, bid_t, ask_t)
        except Exception as exc:  # noqa: BLE001 (as `_decide` handles a strategy's failure)
            note = f"strategy error: {type(exc).__name__}: {exc}"
            self._flag_guard(now, cid, strat.name, note, rep, level=Level.ERROR)
            self._decided.pop(cid, None)
            return [], HALTED, note
        self._sstate[cid] = None
        self._regime[cid] = "normal"
        quotes, why = guard_at(m, inv, tick, b, a, max_of3(m.min_order_size, yv.min_order_size, nv.min_order_size),
                               raw, NORMAL)
        self._guard(now, cid, strat.name, why, NORMAL, rep)
        if state is None:  # a fixed point: the decision's state is None
            self._decided[cid] = _Decided(strat, m, None, key, list(quotes), NORMAL, "", why)
        else:
            self._decided.pop(cid, None)
        return quotes, NORMAL, ""

    def _guard(self, now: float, cid: str, name: str, why: str | None, regime: Regime, rep: CycleReport) -> None:
        if why is not None and regime is not HALTED:
            self._flag_guard(now, cid, name, f"guard dropped a quote: {why}", rep)
        else:
            self._guard_flag.pop(cid, None)

    def _event(self, now: float, market: str | None, kind: EventKind, message: str, data: dict[str, Any],
               rep: CycleReport, level: Level = Level.INFO) -> None:
        rep.strategy_events.append(f"{market}: {message}" if market else message)
        self.events.emit(level, kind, message, market, data=data, ts=now)

    def _flag_guard(self, now: float, cid: str, name: str, message: str, rep: CycleReport,
                    level: Level = Level.WARNING) -> None:
        """Edge-triggered: one `events` row when a market's guard/strategy problem starts or changes."""
        if self._guard_flag.get(cid) != message:
            self._guard_flag[cid] = message
            self._event(now, cid, EventKind.STRATEGY_GUARD, f"{name}: {message}", {"strategy": name}, rep, level)

    # -- the cycle -----------------------------------------------------------------------------
    async def run_once(
        self,
        now: float,
        markets: list[Market],
        view: Callable[[str], BookView | None],
        exchange: Exchange,
        *,
        hold: str | None = None,
        decided: Callable[[], None] | None = None,
    ) -> CycleReport:
        """One cycle, in named phases: observe (books → mids, volatility) → account (fills →
        PnL, economics, markouts, calibration; the reward sample) → risk (loss limits, exposure)
        → decide (each market's strategy, guard, risk filter) → execute (strategy switches, plan,
        rate limit, requote) → publish (`pnl` rows, breaches, the cycle's snapshot).

        `hold`: a safety halt's reason (lease unproven, DB writer faulted): every market holds no
        quote (open orders are cancelled by the plan) while books, fills and PnL keep flowing.
        `decided`: called once every market is decided, before the execute phase (the live
        engine lets the market stream apply again there: the requote's round trips never hold
        the books still)."""
        rep = CycleReport()
        self._exchange = exchange
        self._slice_t0 = time.perf_counter()
        if self.incremental:
            pkey = self.params.model_dump_json()
            if pkey != self._pkey:  # (unchanged: the same str again, so the keys holding it compare by identity)
                self._pkey = pkey
        self.risk.begin_cycle()
        self._set_universe(markets, exchange)
        self.econ.set_markets(markets, now)
        if self._resolved:
            markets = [m for m in markets if m.condition_id not in self._resolved]
        views = await self._observe(now, markets, view, exchange)
        await self._account(now, markets, views, exchange, rep)
        parts, exposure = self._risk_inputs(now, rep)
        wanted, switched = await self._decide_all(now, markets, views, exchange, parts, exposure, hold, rep)
        self.wanted = wanted
        if decided is not None:
            decided()
        await self._execute(now, exchange, wanted, switched, rep)
        self._publish(now, exchange, rep)
        return rep

    async def _pace(self) -> None:
        """Give the event loop a turn when this cycle has held it `yield_sec` (callers check
        `yield_sec` first: 0 never yields). Only between markets, never inside one's decision."""
        if time.perf_counter() - self._slice_t0 >= self.yield_sec:
            await asyncio.sleep(0)
            self.yields += 1
            self._slice_t0 = time.perf_counter()

    async def _observe(self, now: float, markets: list[Market], view: Callable[[str], BookView | None],
                       exchange: Exchange) -> dict[str, tuple[BookView | None, BookView | None]]:
        """Books → each market's effective YES mid/spread/touch, volatility, the risk's mid path
        (incremental: the touch is recomputed only for markets whose best prices or ticks moved)."""
        views: dict[str, tuple[BookView | None, BookView | None]] = {}
        pace = self.yield_sec > 0
        for m in markets:
            if pace:
                await self._pace()
            yv, nv = view(m.yes_token_id), view(m.no_token_id)
            views[m.condition_id] = (yv, nv)
            for v in (yv, nv):
                if v is not None:
                    exchange.observe_book(v)
            ok = yv is not None and nv is not None and not (yv.stale or nv.stale or yv.crossed or nv.crossed)
            okey: tuple[object, ...] | None = None
            if ok and self.incremental:  # the touch reads the best prices and the ticks only
                assert yv is not None and nv is not None
                okey = (m.tick_size, yv.tick_size, nv.tick_size, yv.bids[0].price if yv.bids else None,
                        yv.asks[0].price if yv.asks else None, nv.bids[0].price if nv.bids else None,
                        nv.asks[0].price if nv.asks else None)
                if self._okey.get(m.condition_id) == okey:  # unchanged: mid, spread and touch as they are
                    mid = self._mids.get(m.condition_id)
                    if mid is not None:
                        self._observed(now, m, mid)
                    continue
            mid, spread = None, None
            if ok:
                assert yv is not None and nv is not None
                tick = grid_tick(m, yv, nv)
                b, a = effective_touch(yv, nv, tick)
                if b is not None and a is not None and b < a:
                    mid, spread = tick * (b + a) / 2, tick * (a - b)
                    self._touch[m.condition_id] = (tick, b, a)
            if okey is not None:
                self._okey[m.condition_id] = okey
            else:
                self._okey.pop(m.condition_id, None)
            self._mids[m.condition_id] = mid
            self._spreads[m.condition_id] = spread
            if mid is not None:
                self._observed(now, m, mid)
        return views

    def _observed(self, now: float, m: Market, mid: Decimal) -> None:
        """A market's mid this cycle into volatility and the anomaly guard (every cycle: both
        depend on time, not only on the mid)."""
        hit = self._fmid.get(m.condition_id)
        if hit is not None and hit[0] is mid:  # the touch did not move: the mid is the very same Decimal
            fm = hit[1]
        else:
            fm = float(mid)
            self._fmid[m.condition_id] = (mid, fm)
        hl = self.params.vol_halflife_sec
        self.vol.update(m.yes_token_id, fm, now, hl)
        self.vol.update(m.no_token_id, 1.0 - fm, now, hl)
        self.risk.observe_mid(now, m.condition_id, fm)

    async def _account(self, now: float, markets: list[Market],
                       views: dict[str, tuple[BookView | None, BookView | None]], exchange: Exchange,
                       rep: CycleReport) -> None:
        """Fills → ledgers (PnL), fees/rebates, late settlements, markouts, calibration; then the
        reward sample when due (before requoting: the orders that rested at the venue's sample)."""
        fills = await exchange.poll(now)
        rep.fills = len(fills)
        for f in fills:
            mkt = self._known.get(f.market) or self._token_market.get(f.token_id)
            if mkt is None:
                continue
            tmid = _fill_time_mid(f) or self.token_mid(f.token_id)
            if tmid is None:  # no mid now (a side empty): the market's last mark, for the PnL and the
                last = self.pnl.ledger(mkt.condition_id).last_mid  # markouts alike (they used two different ones)
                if last is not None:
                    tmid = last if f.token_id == mkt.yes_token_id else 1 - last
            ymid = None if tmid is None else (tmid if f.token_id == mkt.yes_token_id else 1 - tmid)
            self.pnl.apply(f, mkt, ymid)
            ec = self.econ.on_fill(f, mkt)
            lg = self.pnl.ledger(mkt.condition_id)
            lg.fees += ec.fee
            lg.rebates += ec.rebate
            if self._resolved.get(mkt.condition_id):  # a fill of before the resolution, reported late
                self._settle(now, mkt, self._resolved[mkt.condition_id], "late_fill")
            rs = self.markouts.on_fill(f, tmid)
            self.calibrator.on_fill(mkt.condition_id, f.ts, rs)
        short_h = min(self.markouts.horizons) if self.markouts.horizons else None
        for mk in self.markouts.advance(now, self.token_mid):
            self.calibrator.on_markout(mk)
            if mk.horizon == short_h:
                ew, n = self._tox.get(mk.market, (0.0, 0))
                w = max(TOX_EWM_W, 1.0 / (n + 1))  # a plain mean for the first few, then an EWMA
                self._tox[mk.market] = ((1 - w) * ew + w * mk.px, n + 1)
        pace = self.yield_sec > 0
        quoted = self._quoted  # markets with resting orders since the last cycle's end: only their time counts
        ftick = self._ftick
        step = self.calibrator.step
        for m in markets:
            if pace:
                await self._pace()
            cid, tick = m.condition_id, m.tick_size
            hit = ftick.get(cid)
            if hit is None or hit[0] is not tick:
                hit = ftick[cid] = (tick, float(tick))
            step(cid, now, hit[1], cid in quoted)
        if self.econ.sample_due(now):
            await self._sample_rewards(now, markets, views, exchange)
        if self._venue_samples:  # taken by the market stream at the venue's minutes
            samples, self._venue_samples = self._venue_samples, []
            await self._record_rewards(now, samples, exchange)
        if self.mode is Mode.LIVE:
            await self._venue_payouts(now, exchange)

    def _risk_inputs(self, now: float, rep: CycleReport) -> tuple[dict[str, PnlParts], Decimal]:
        """Per-market PnL parts, the loss limits (a breach past the kill limit stops quoting for
        good) and the total inventory exposure at mid."""
        # incremental: the publish phase sums these very parts (no ledger changes between: fills,
        # fees, rewards and settlements are booked before, in `_account` and outside the cycle)
        parts = self._parts = self.pnl.parts(self._mids)
        # their sums: `totals` adds each field in the parts' order from ZERO, as `sum(..., ZERO)` did
        tot = self._ptotals = self.pnl.totals(self._mids, parts)
        if self.risk.check_losses(now, {cid: pp.total for cid, pp in parts.items()}, tot.total):
            self._killed = True
        rep.kill_requested = self._killed
        return parts, tot.inventory_usd

    async def _decide_all(self, now: float, markets: list[Market],
                          views: dict[str, tuple[BookView | None, BookView | None]], exchange: Exchange,
                          parts: dict[str, PnlParts], total_exposure: Decimal, hold: str | None,
                          rep: CycleReport) -> tuple[list[Quote], list[tuple[str, str, str]]]:
        """Each market's status and wanted quotes (strategy → two-sided fit → risk filter → event
        limit); markets whose strategy changed are listed (their orders go first)."""
        p = self.params
        wanted: list[Quote] = []
        by_market: dict[str, list[Order]] | None = None  # the open orders per market, once a strategy needs them
        pace = self.yield_sec > 0
        if pace:  # (as they stood at the decisions' start: the cycle gives the loop turns between markets)
            by_market = self._by_market(exchange)
        switched: list[tuple[str, str, str]] = []
        exposures: dict[str, Decimal] | None = None  # per neg-risk event, once per cycle when needed
        overrides = self.overrides
        dflt: Strategy | None = None  # `strategy_for` of a market without its own strategy, once per cycle
        fit = p.rewards_mode == "fit"
        for m in markets:
            if pace:  # (the loop's turn can change the parameters: `strategy_for` per market, as it reads them)
                await self._pace()
                dflt = None
                fit = p.rewards_mode == "fit"
            cid = m.condition_id
            ov = overrides.get(cid)
            if ov is not None and ov.strategy is not None:
                strat = ov.strategy
            else:
                if dflt is None:
                    dflt = self.strategy_for(cid)
                strat = dflt
            prev = self._active.get(cid)
            if prev is not strat:  # a switch: its orders go before the new strategy's are placed
                if prev is not None:
                    switched.append((cid, prev.name, strat.name))
                self._active[cid] = strat
                self._sstate.pop(cid, None)
                self._regime.pop(cid, None)
            yv, nv = views[cid]
            status = "risk: killed" if self._killed else "halted" if hold else (
                is_quotable(m, yv, nv, p) or self.risk.market_block(now, cid))
            tte = self._time_to_end(m, now)
            if status is None and tte is not None and tte <= p.stop_before_end_min * 60:
                status = "ending: stopped quoting"
            mid = self._mids.get(cid)
            if status is None and mid is None:
                status = "stale"
            if status is None:
                assert mid is not None and yv is not None and nv is not None
                inv = self.inventory(cid)
                got = None
                orders: tuple[Order, ...] = ()
                if type(strat) is SpreadStrategy and self.incremental:
                    got = self._decide_spread(now, m, yv, nv, inv, rep, strat)  # (it never reads the orders)
                elif prev is strat:
                    if by_market is None:
                        by_market = self._by_market(exchange)
                    orders = tuple(by_market.get(cid, ()))
                raw, regime, note = got if got is not None else self._decide(now, m, yv, nv, inv, orders, rep, tte)
                if fit and regime is NORMAL:  # (`_fit_two_sided` returns `raw` itself otherwise)
                    raw = self._fit_two_sided(m, raw, mid)
                quotes = self._risk_filter(now, m, raw, inv, mid, total_exposure)
                if exposures is None:
                    exposures = self._event_exposure(parts)
                quotes = self._event_limit(m, quotes, exposures)
                dropped = self.risk.dropped.get(cid)
                status = f"quoting (risk: {dropped})" if quotes and dropped else \
                    "quoting" if quotes or not raw else f"risk: {dropped}"
                if regime is HALTED:
                    status = note or "halted"
                elif note:
                    status = f"{note}: {status}"
                if quotes:
                    rep.quoted_markets += 1
                wanted.extend(quotes)
            self._status[cid] = status
        return wanted, switched

    @staticmethod
    def _by_market(exchange: Exchange) -> dict[str, list[Order]]:
        by_market: dict[str, list[Order]] = {}
        for o in exchange.open_orders():
            by_market.setdefault(o.market, []).append(o)
        return by_market

    def _risk_filter(self, now: float, m: Market, quotes: list[Quote], inv: Inventory, mid: Decimal,
                     total_exposure: Decimal) -> list[Quote]:
        """`RiskManager.filter_quotes`; incremental: the market's last verdict when its quotes,
        inventory, mid and parameters are unchanged and the total exposure is on the same side
        of every limit it was judged against."""
        if not self.incremental:
            return self.risk.filter_quotes(now, m, quotes, inv, mid, total_exposure)
        cid = m.condition_id
        key = (tuple(quotes), inv.yes, inv.no, mid, self._pkey, m)
        hit = self._screened.get(cid)
        if hit is not None and hit[0] == key and self.risk.still_holds(hit[1], total_exposure):
            sc = hit[1]
        else:
            sc = self.risk.screen(m, quotes, inv, mid, total_exposure)
            self._screened[cid] = (key, sc)
        return self.risk.apply(now, cid, sc, total_exposure)

    async def _execute(self, now: float, exchange: Exchange, wanted: list[Quote],
                       switched: list[tuple[str, str, str]], rep: CycleReport) -> None:
        """Cancel switched markets' orders, plan against what rests, rate-limit, requote."""
        for cid, old, new in switched:
            n = await exchange.cancel_market(cid)
            self.risk.rate.record(now, n)
            rep.cancelled += n
            self._event(now, cid, EventKind.STRATEGY, f"strategy {old} -> {new}: {n} orders cancelled before requoting",
                        {"from": old, "to": new, "cancelled": n}, rep)
        open_orders = exchange.open_orders()
        pl = plan(wanted, open_orders, self._tick_of, self.params.requote_ticks)
        limited = self.risk.limit_actions(now, pl, len(open_orders), {o.client_id: o.token_id for o in open_orders})
        rep.deferred = len(pl.cancel) + len(pl.place) - len(limited.cancel) - len(limited.place)
        if limited.cancel or limited.place:
            t0 = time.perf_counter()
            cancelled, placed = await requote(exchange, limited.cancel, limited.place)
            rep.requote_sec = time.perf_counter() - t0
            rep.cancelled += len(cancelled)  # (after a switch's `cancel_market`s, counted above)
            for o in placed:
                if o.status is REJECTED:
                    rep.rejected += 1
                else:
                    rep.placed += 1
                    self._placed[o.market] = self._placed.get(o.market, 0) + 1

    def _publish(self, now: float, exchange: Exchange, rep: CycleReport) -> None:
        """`pnl` rows on a fixed grid, the cycle's risk breaches, the state behind `snapshot()`."""
        self._ended = False
        if self._next_pnl_ts is None or now >= self._next_pnl_ts:  # on a fixed grid: no drift
            nxt = now if self._next_pnl_ts is None else self._next_pnl_ts
            while nxt <= now:
                nxt += self.pnl_sec
            self._next_pnl_ts = nxt
            rows = self.pnl.rows(now, self.mode.value, self._mids, self._parts if self.incremental else None)
            self.rec.pnl(rows)
            self._last_pnl = rows
        rep.breaches = self.risk.end_cycle()
        self._refresh_state(now, exchange, rep)

    # -- venue economics -----------------------------------------------------------------------
    def _event_exposure(self, parts: dict[str, PnlParts]) -> dict[str, Decimal]:
        """Each neg-risk event's inventory at mid (the sum over its markets' PnL parts, in the
        parts' order): computed once per cycle, not once per market (it was a scan of every
        market for each one, quadratic in the universe)."""
        out: dict[str, Decimal] = {}
        terms_of = self.econ.terms_of
        for cid, pp in parts.items():
            eid = terms_of(cid).event_id
            if eid is not None:
                out[eid] = out.get(eid, ZERO) + pp.inventory_usd
        return out

    def _event_limit(self, m: Market, quotes: list[Quote], exposures: dict[str, Decimal]) -> list[Quote]:
        """PMM_MAX_EVENT_USD: at the limit of a neg-risk event's inventory (all its markets, at
        mid; `exposures` from `_event_exposure`), keep only quotes that shrink this market's
        YES-equivalent position."""
        eid = self.econ.terms_of(m.condition_id).event_id
        if eid is None or not quotes:
            return quotes
        exposure = exposures.get(eid, ZERO)
        if exposure < self.params.max_event_usd:
            return quotes
        lg = self.pnl.ledgers.get(m.condition_id)
        net = lg.net if lg is not None else ZERO

        def grows(q: Quote) -> bool:
            up = (q.side is Side.BUY) == (q.token_id == m.yes_token_id)  # adds YES-equivalent shares
            return net == 0 or (net > 0) == up

        kept = [q for q in quotes if not grows(q)]
        if len(kept) < len(quotes):
            self.risk.dropped[m.condition_id] = f"event {eid} inventory {exposure:.2f} USD at limit {self.params.max_event_usd}"
        return kept

    def _fit_two_sided(self, m: Market, quotes: list[Quote], mid: Decimal) -> list[Quote]:
        """PMM_REWARDS_MODE=fit outside [0.10, 0.90], where only two-sided quoting scores: a
        one-sided quote set gets the missing side joined at the touch (a BUY on the token whose
        bid it is, so no inventory is needed), when that price is inside the reward band, of the
        market's quote size (its override's, else the global one) and at least `rewardsMinSize`.
        Risk, the event limit and the guard still apply afterwards."""
        if self.params.rewards_mode != "fit" or not quotes:
            return quotes
        prog = self.econ.terms_of(m.condition_id).program
        if not prog.active or TWO_SIDED_LO <= mid <= TWO_SIDED_HI:
            return quotes
        kinds = {yes_space_price(m, q)[0] for q in quotes}
        if len(kinds) == 2 or m.condition_id not in self._touch:
            return quotes
        tick, b, a = self._touch[m.condition_id]
        size = max(self._market_params(m.condition_id).quote_size, prog.min_size, m.min_order_size)  # (its own size)
        if "bid" in kinds:  # add the ask side: BUY NO at 1 - best ask
            yp = tick * a
            q = Quote(m.condition_id, m.no_token_id, Side.BUY, 1 - yp, size)
        else:  # add the bid side: BUY YES at the best bid
            yp = tick * b
            q = Quote(m.condition_id, m.yes_token_id, Side.BUY, yp, size)
        if abs(yp - mid) >= prog.max_spread or not (0 < q.price < 1):
            return quotes
        return [*quotes, q]

    def sample_on_venue_minutes(self, stream: MarketStream, view: Callable[[str], BookView | None],
                                exchange: Exchange) -> None:
        """Take the reward estimate when the market stream passes a venue minute (its
        timestamps), on the books as they stood then, instead of at the next cycle: the venue
        samples on its own clock, which a sped-up sandbox (or a late cycle) does not share with
        ours. The stream also clamps timestamps against the venue's clock, not only ours."""
        self.econ.stream_sampling = True
        clock = stream.clock
        stream.venue_clock = lambda now: self.econ.clock.to_venue(now)

        def on_minute(boundary_ms: int) -> None:
            markets = [m for m in self._markets if m.condition_id not in self._resolved]
            if not markets:
                return
            views = {m.condition_id: view(m.yes_token_id) for m in markets}
            at = getattr(exchange, "orders_at", None)  # live: fills after the minute given back
            orders = at(boundary_ms / 1000) if callable(at) else exchange.open_orders()
            self._venue_samples.extend(self.econ.sample(clock(), markets, views, orders,
                                                        ours_in_book=self.mode is Mode.LIVE,
                                                        venue_ts=boundary_ms / 1000))

        stream.on_venue_minute = on_minute

    async def _venue_payouts(self, now: float, exchange: Exchange) -> None:
        """Live: once per venue day, what the venue paid the day before (rewards and rebates);
        the ledgers' rewards turn from estimated to paid for that day. The venue is asked in a
        task of this cycle's, and the first cycle after its answer books it: two reads with
        retries can take the broker's deadline twice over (and are asked again every few minutes
        while they fail), which the quote loop must not wait for."""
        ask = getattr(exchange, "venue_payouts", None)
        if not callable(ask):
            return
        if self._payouts is None:
            day = self.econ.payouts.due(self.econ.clock.to_venue(now))
            if day is not None:
                self._payouts = (day, asyncio.get_running_loop().create_task(ask(day), name=f"venue-payouts-{day}"))
            return
        day, task = self._payouts
        if not task.done():
            return
        self._payouts = None
        try:
            if task.cancelled():
                raise TimeoutError("the read was cancelled")
            got = task.result()
        except Exception as exc:  # noqa: BLE001 (the estimate stands; asked again later)
            self.econ.payouts.failed(self.econ.clock.to_venue(now))
            self.econ.bad_data(now, None, f"venue payouts for {day} failed: {type(exc).__name__}: {exc}")
            return
        if got is None:  # dry-run: nothing of ours rests at the venue
            self.econ.payouts.answered(day)
            return
        deltas = self.econ.record_payouts(now, day, got[0], got[1])  # `econ.rewards` stays the estimate
        for cid, d in deltas["rewards"].items():
            self.pnl.ledger(cid).rewards += d
        for cid, d in deltas["rebates"].items():
            self.pnl.ledger(cid).rebates += d

    async def _sample_rewards(self, now: float, markets: list[Market],
                              views: dict[str, tuple[BookView | None, BookView | None]], exchange: Exchange) -> None:
        """The per-minute reward estimate when the clock says a minute passed."""
        samples = self.econ.sample(now, markets, {cid: v[0] for cid, v in views.items()}, exchange.open_orders(),
                                   ours_in_book=self.mode is Mode.LIVE)
        await self._record_rewards(now, samples, exchange)

    async def _record_rewards(self, now: float, samples: list[RewardSample], exchange: Exchange) -> None:
        """Record reward samples; live also asks the venue which orders score."""
        venue: dict[str, bool] | None = None
        ask = getattr(exchange, "orders_scoring", None)
        ids = [i for s in samples for i in s.ids]
        try:
            if self.mode is Mode.LIVE and callable(ask) and ids:
                try:
                    venue = await ask(ids)
                except Exception as exc:  # noqa: BLE001 (an estimate; the venue's answer is optional)
                    self.econ.bad_data(now, None, f"/orders-scoring failed: {type(exc).__name__}: {exc}")
        finally:  # (also when a pause cuts the cycle during that read: the samples are kept, without it)
            # the rows hold 6 dp: each rounded down with the remainder carried to the market's next row,
            # so they sum to the exact estimate less under one unit (rounded one by one, they lost ~½
            # unit a row); the ledger adds the rows' amounts: the PnL, the DB rows (what `pmm report`
            # and a restart read) and the replay's summary agree to the unit
            rows = [replace(s, usd=self._usd_rows.round(s.market, s.usd)) for s in samples]
            self.econ.record_samples(now, rows, venue)
            for s in rows:
                self.pnl.ledger(s.market).rewards += s.usd

    async def resolve_market(self, now: float, market: str, winner_token: str | None, exchange: Exchange,
                             source: str, *, known: Market | None = None) -> bool:
        """A market resolved (or closed): cancel its orders, redeem its inventory at 1 / 0, record
        the settlement, and never quote it again. Unknown markets and unknown winners are counted
        as bad venue data and pay nothing (never a wrong payment): a market closed with a winner we
        do not know stops being quoted, and a later resolution that names its winner (the engine
        asks the venue about every market outside the universe whose shares no settlement
        redeemed) settles it. `known`: the market when this cycle never saw it (shares restored
        from the DB in a market no longer in the universe). Returns True when settled."""
        self._exchange = exchange
        m = self._known.get(market)
        if m is None and known is not None and known.condition_id == market:
            m = self._known[market] = known
        if m is None:
            self.econ.bad_data(now, market, f"resolution ({source}) for a market we do not know")
            return False
        done = self._resolved.get(market)
        if done or (done == "" and winner_token not in m.token_ids):
            return False  # settled; or closed, and still no winner we know
        n = await exchange.cancel_market(market)
        self.econ.last.pop(market, None)  # nothing rests nor is sampled there again: no USD/h on the faces
        if winner_token not in m.token_ids:
            self.econ.bad_data(now, market, f"resolution ({source}) with unknown winner {winner_token!r}: "
                                            "quoting stopped, inventory left unsettled")
            self._resolved[market] = ""
            self._status[market] = "closed: winner unknown"
            self._snap = None
            return False
        assert winner_token is not None
        self._resolved[market] = winner_token
        self._status[market] = "resolved"
        self._snap = None
        yes, no, payout, pnl = self._settle(now, m, winner_token, source)
        rep = CycleReport()
        self._event(now, market, EventKind.RESOLUTION,
                    f"resolved {('YES' if winner_token == m.yes_token_id else 'NO')}: {n} orders cancelled, "
                    f"{yes} YES + {no} NO redeemed for {payout} (settlement PnL {pnl:.4f})",
                    {"winner_token": winner_token, "cancelled": n, "yes": str(yes), "no": str(no),
                     "payout": str(payout), "pnl": str(pnl), "source": source}, rep)
        return True

    def _settle(self, now: float, m: Market, winner_token: str, source: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Redeem what the ledger holds of a resolved market; the `settlements` row is cumulative."""
        lg = self.pnl.ledger(m.condition_id)
        yes, no = lg.yes, lg.no
        payout, pnl = lg.settle(winner_token == m.yes_token_id, self._mids.get(m.condition_id))
        self.econ.record_settlement(now, m, winner_token, yes, no, payout, pnl, source)
        return yes, no, payout, pnl

    @property
    def resolved(self) -> dict[str, str]:
        """Market -> its winning token; "" for one closed with a winner not known yet."""
        return dict(self._resolved)

    def known_market(self, market: str) -> Market | None:
        """A market this cycle has seen (in the universe now or before)."""
        return self._known.get(market)

    async def aclose(self) -> None:
        """End the cycle's own task: a venue payouts read still out (its answer is not booked; the
        next engine asks again, the day not being marked read)."""
        if self._payouts is not None:
            task = self._payouts[1]
            self._payouts = None
            await cancel_and_wait(task)

    # -- faces ---------------------------------------------------------------------------------
    def final_pnl(self, now: float) -> None:
        """The session's last `pnl` rows, at its end (a stop, the end of a replay's window): the
        grid's last rows can be `pnl_sec` older and miss the last fills, so the table's latest rows
        (what `pmm report` reads) disagreed with the session's own totals. The totals (the
        snapshot's) are brought to the same figures. Nothing when no cycle ran since the last call
        (or ever): a replay writes them at the recorded stop and again at its window's end. Nothing
        either when the last cycle's grid rows are these very rows (same time, same figures: a
        replay's grid ending on its window's end wrote every row twice)."""
        if self._next_pnl_ts is None or self._ended:
            return
        self._ended = True
        rows = self.pnl.rows(now, self.mode.value, self._mids)
        if rows != self._last_pnl:
            self.rec.pnl(rows)
            self._last_pnl = rows
        self._totals = replace(self._totals, pnl=self.pnl.totals(self._mids))
        self._snap = None

    def _refresh_state(self, now: float, exchange: Exchange, rep: CycleReport) -> None:
        """End of a cycle: our best resting quote per market (YES-space) and the totals; the
        per-market rows of the snapshot are built when a face first asks (`snapshot()`)."""
        open_orders = exchange.open_orders()
        token_market = self._token_market
        self._quoted = {m.condition_id for o in open_orders if (m := token_market.get(o.token_id)) is not None}
        self._our_orders = list(open_orders)
        self._our = None  # our best quotes: built when a face asks (`snapshot`), not every cycle
        self._now = now
        self._n_placed += rep.placed
        self._n_rejected += rep.rejected
        self._totals = SnapshotTotals(
            pnl=self._ptotals if self.incremental else self.pnl.totals(self._mids),
            rewards_per_hour=self._rewards_per_hour(),
            fills=sum(lg.fills for lg in self.pnl.ledgers.values()),
            fills_per_min=self.calibrator.total_fills_per_min([m.condition_id for m in self._markets], now),
            placed=self._n_placed, cancels=exchange.cancels, rejected=self._n_rejected, open_orders=len(open_orders),
        )
        self._snap = None

    def _sync_cancels(self) -> None:
        """The totals' `cancels`: the exchange's own count (`Exchange.cancels`), read when the
        totals are: every order it cancelled, whoever asked (a requote, a pause, a halt, the
        circuit and its probe, a resolution, a universe change, the stop), each once. Counted by
        the callers, a resolution's and the probe's cancels were in no count."""
        ex = self._exchange
        if ex is not None and ex.cancels != self._totals.cancels:
            self._totals = replace(self._totals, cancels=ex.cancels)
            if self._snap is not None:  # (its per-market rows stand)
                self._snap = replace(self._snap, totals=self._totals)

    def _rewards_per_hour(self) -> Decimal:
        """`sum((econ.usd_per_hour(cid) or ZERO for each market), ZERO)`, its lookups written out."""
        last = self.econ.last
        out = ZERO
        for m in self._markets:
            s = last.get(m.condition_id)
            out = out + ((None if s is None else s.usd_per_hour) or ZERO)
        return out

    def _our_quotes(self) -> dict[str, dict[str, Decimal | None]]:
        """Our best resting quote per market and kind (YES-space) at the last cycle's end."""
        our = self._our
        if our is not None:
            return our
        our = self._our = {}
        token_market = self._token_market
        for o in self._our_orders:
            m = token_market.get(o.token_id)
            if m is None:
                continue
            kind, yp = yes_space_price(m, o)
            slot = our.get(m.condition_id)
            if slot is None:  # (`setdefault` built the empty slot for every order)
                slot = our[m.condition_id] = {"bid": None, "ask": None}
            cur = slot[kind]
            if cur is None or (kind == "bid" and yp > cur) or (kind == "ask" and yp < cur):
                slot[kind] = yp
        self._our_orders = []
        return our

    def snapshot(self) -> CycleSnapshot:
        """The frozen state of the last cycle (built once per cycle, on the first request)."""
        self._sync_cancels()
        if self._snap is None:
            self._snap = CycleSnapshot(self._now, self._market_snapshots(), self._totals)
        return self._snap

    @property
    def totals(self) -> SnapshotTotals:
        """The last cycle's totals (the snapshot's, without building its per-market rows: replay
        reads them every cycle)."""
        self._sync_cancels()
        return self._totals

    def _market_snapshots(self) -> dict[str, MarketSnapshot]:
        out: dict[str, MarketSnapshot] = {}
        ours = self._our_quotes()
        for m in self._markets:
            cid = m.condition_id
            mid = self._mids.get(cid)
            slot = ours.get(cid, {})
            lg = self.pnl.ledgers.get(cid)
            out[cid] = MarketSnapshot(
                condition_id=cid,
                question=m.question,
                status=self._status.get(cid, "stale"),
                mid=mid,
                spread=self._spreads.get(cid),
                yes_bid=slot.get("bid"),
                yes_ask=slot.get("ask"),
                inventory_yes=lg.yes if lg else ZERO,
                inventory_no=lg.no if lg else ZERO,
                pnl=lg.parts(mid) if lg is not None else NO_PNL,
                rewards_per_hour=self.econ.usd_per_hour(cid),
                fills=lg.fills if lg else 0,
                fills_per_min=self.calibrator.fills_per_min(cid, self._now) if cid in self.calibrator.states else 0.0,
                placed=self._placed.get(cid, 0),
                calib_mult=self.calibrator.mult(cid),
                strategy=self.strategy_for(cid).name,
                regime=self._regime.get(cid, ""),
            )
        return out
