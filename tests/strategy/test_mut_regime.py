"""The regime machine's decisions, pinned where a mutation pass found them unchecked: the
thresholds of every signal (at the limit escalates, just under does not), the trade-through count
(exact decay, a touch at our price counts at every price level), the cooldown (exactly
`regime_cooldown_sec`, reset when the signals come back, a full wait per step), what the wrapped
strategy gets (its own state, the wide multiplier) and what it may impose (a more cautious regime,
reported as a transition), and our resting touch."""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market, mirror_books

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode, Order, Quote, Side
from pmm_widgets.strategy.avellaneda import AvellanedaStoikov
from pmm_widgets.strategy.base import Decision, MarketContext, Regime
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.quoting import effective_touch, grid_tick
from pmm_widgets.strategy.regime import RegimeAware, RegimeState, resting_touch, target_regime

D = Decimal
M = make_market(0)


def fresh_params(**kw) -> Params:
    """Fresh parameters (`Params.update` changes its object in place): a 30 s cooldown."""
    return Params(**{"regime_cooldown_sec": 30.0, **kw})


NORMAL, WIDE, REDUCE, HALTED = Regime.NORMAL, Regime.WIDE, Regime.REDUCE_ONLY, Regime.HALTED
# vols that ask for each regime under the default limits (wide 0.03, reduce 0.06, halt 0.10)
VOL = {NORMAL: 0.0, WIDE: 0.04, REDUCE: 0.07, HALTED: 0.2}


def ctx(now: float = 0.0, vol: float = 0.0, bid: str = "0.45", ask: str = "0.47", inv: Inventory | None = None,
        tte: float | None = None, orders: tuple[Order, ...] = (), calib: float = 1.0,
        params: Params | None = None) -> MarketContext:
    y, n = mirror_books(M, bid, ask)
    tick = grid_tick(M, y, n)
    b, a = effective_touch(y, n, tick)
    assert b is not None and a is not None
    return MarketContext(market=M, yes=y, no=n, tick=tick, bid_ticks=b, ask_ticks=a, inventory=inv or Inventory(),
                         params=params or fresh_params(), now=now, open_orders=orders, calib_mult=calib,
                         vol={M.yes_token_id: vol}, time_to_end_sec=tte)


def order(token: str, side: Side, price: str, cid: str = "c") -> Order:
    return Order(cid, M.condition_id, token, side, D(price), D(10), Mode.PAPER)


class Stub:
    """A wrapped strategy that quotes what it is told, says the regime it is told, and counts its
    own state (None → 1 → 2 ...); it records the multiplier and the state it was given."""

    def __init__(self, name: str = "stub", quotes: tuple[Quote, ...] = (), regime: Regime = NORMAL,
                 reason: str = "") -> None:
        self.name, self.quotes, self.regime, self.reason = name, quotes, regime, reason
        self.seen: list[tuple[float, object]] = []

    def decide(self, c: MarketContext, state: object | None) -> Decision:
        self.seen.append((c.calib_mult, state))
        n = state if isinstance(state, int) else 0
        return Decision(self.quotes, self.regime, self.reason, n + 1)


def run(strat: RegimeAware, steps: list[tuple[float, float]], state: object = None):
    """(time, vol) steps → the decisions."""
    out = []
    for t, v in steps:
        d = strat.decide(ctx(now=t, vol=v), state)
        state = d.state
        out.append(d)
    return out


# ---------------------------------------------------------------- target_regime: the thresholds
@st.composite
def regime_inputs(draw):
    wide, reduce_, halt = sorted(draw(st.lists(st.floats(0.001, 1.0), min_size=3, max_size=3)))
    tw, tr = sorted(draw(st.lists(st.floats(0.01, 1_000.0), min_size=2, max_size=2)))
    hmin, rmin = sorted(draw(st.lists(st.floats(0.0, 600.0), min_size=2, max_size=2)))
    p = Params(regime_wide_vol=wide, regime_reduce_vol=reduce_, regime_halt_vol=halt, regime_wide_tt_per_min=tw,
               regime_reduce_tt_per_min=tr, regime_halt_before_end_min=hmin, regime_reduce_before_end_min=rmin)

    def near(xs):  # each limit exactly, a hair under, a hair over, or anything
        lim = draw(st.sampled_from(xs))
        return draw(st.sampled_from([lim, math.nextafter(lim, -math.inf), math.nextafter(lim, math.inf)]))

    sigma = near([wide, reduce_, halt]) if draw(st.booleans()) else draw(st.floats(0.0, 1.0))
    tt = near([tw, tr]) if draw(st.booleans()) else draw(st.floats(0.0, 2_000.0))
    tte = draw(st.one_of(st.none(), st.floats(0.0, 50_000.0), st.sampled_from([hmin * 60.0, rmin * 60.0])))
    return p, sigma, tt, tte


@settings(max_examples=300, deadline=None)
@given(regime_inputs())
def test_target_regime_is_the_most_cautious_signal_at_or_over_its_limit(inp):
    p, sigma, tt, tte = inp
    levels = {"calm": 0}
    if tte is not None:
        mins = tte / 60.0
        if mins <= p.regime_halt_before_end_min:
            levels["min to end"] = 3
        elif mins <= p.regime_reduce_before_end_min:
            levels["min to end"] = 2
    vol_level = 3 if sigma >= p.regime_halt_vol else 2 if sigma >= p.regime_reduce_vol else \
        1 if sigma >= p.regime_wide_vol else 0
    if vol_level:
        levels["vol "] = vol_level
    tt_level = 2 if tt >= p.regime_reduce_tt_per_min else 1 if tt >= p.regime_wide_tt_per_min else 0
    if tt_level:
        levels["trade-through"] = tt_level
    top = max(levels.values())
    c = replace(ctx(params=p), vol={M.yes_token_id: sigma}, time_to_end_sec=tte)
    reg, why = target_regime(c, tt)
    assert reg.level == top
    parts = why.split("; ")
    assert len(parts) == sum(1 for lv in levels.values() if lv == top)  # only the top level's reasons
    for key, lv in levels.items():
        assert any(key in part for part in parts) == (lv == top), (key, why)


@pytest.mark.parametrize(("tte", "want"), [
    (600.0, HALTED), (601.0, REDUCE), (3600.0, REDUCE), (3601.0, NORMAL), (0.0, HALTED), (None, NORMAL)])
def test_end_date_limits_are_minutes_and_inclusive(tte, want):
    reg, why = target_regime(ctx(tte=tte), 0.0)  # defaults: halt 10 min, reduce 60 min before the end
    assert reg is want
    if want is not NORMAL:
        assert why == f"{tte / 60:.0f} min to end <= {10 if want is HALTED else 60}"


def test_vol_and_trade_through_limits_are_inclusive():
    p = fresh_params()
    for v, want in ((p.regime_wide_vol, WIDE), (p.regime_reduce_vol, REDUCE), (p.regime_halt_vol, HALTED),
                    (math.nextafter(p.regime_wide_vol, 0), NORMAL)):
        assert target_regime(ctx(vol=v), 0.0)[0] is want, v
    for tt, want in ((p.regime_wide_tt_per_min, WIDE), (p.regime_reduce_tt_per_min, REDUCE),
                     (math.nextafter(p.regime_wide_tt_per_min, 0), NORMAL)):
        reg, why = target_regime(ctx(), tt)
        assert reg is want and (why.startswith("trade-through") or want is NORMAL), tt


# ---------------------------------------------------------------- trade-throughs
@pytest.mark.parametrize(("now", "factor"), [(130.0, math.exp(-0.5)), (160.0, math.exp(-1.0)),
                                             (100.5, math.exp(-0.5 / 60)), (90.0, 1.0), (100.0, 1.0)])
def test_trade_through_rate_decays_over_a_minute_exactly(now, factor):
    st0 = RegimeState(last_ts=100.0, tt_rate=2.0)
    d = RegimeAware(Stub()).decide(ctx(now=now), st0)
    assert isinstance(d.state, RegimeState)
    assert d.state.tt_rate == pytest.approx(2.0 * factor, rel=1e-12, abs=0)  # a clock step back never grows it
    assert d.state.last_ts == now


def test_first_decision_counts_no_trade_through():
    # no previous decision: nothing was resting, whatever the state's prices say
    d = RegimeAware(Stub()).decide(ctx(now=5.0, bid="0.40", ask="0.41"), RegimeState(our_bid=0.5, tt_rate=0.0))
    assert isinstance(d.state, RegimeState) and d.state.tt_rate == 0.0


@pytest.mark.parametrize("k", range(2, 98))
def test_a_touch_at_our_price_is_a_trade_through_at_every_price_level(k):
    """Our bid at k ticks, then the ask comes down to it (or our ask at k ticks and the bid comes up
    to it): one trade-through each, at every level of the 0.01 grid. (A float product of ticks and
    tick size missed 10 of the 99 levels, 0.35, 0.41, 0.47, 0.57 ... on the bid side.)"""
    price = f"{D(k) / 100}"
    lo, hi = f"{D(k - 1) / 100}", f"{D(k + 1) / 100}"
    strat = RegimeAware(Stub())
    s = strat.decide(ctx(now=0.0, bid=lo, ask=hi, orders=(order(M.yes_token_id, Side.BUY, price),)), None).state
    d = strat.decide(ctx(now=0.0, bid=lo, ask=price), s)  # no time passed: no decay
    assert isinstance(d.state, RegimeState) and d.state.tt_rate == 1.0, price
    s = strat.decide(ctx(now=0.0, bid=lo, ask=hi, orders=(order(M.yes_token_id, Side.SELL, price),)), None).state
    d = strat.decide(ctx(now=0.0, bid=price, ask=hi), s)
    assert isinstance(d.state, RegimeState) and d.state.tt_rate == 1.0, price


def test_a_touch_inside_our_quotes_is_no_trade_through_and_each_side_counts_once():
    st0 = RegimeState(last_ts=0.0, our_bid=0.44, our_ask=0.48)
    inside = RegimeAware(Stub()).decide(ctx(now=0.0, bid="0.45", ask="0.47"), st0).state
    assert isinstance(inside, RegimeState) and inside.tt_rate == 0.0
    both = RegimeAware(Stub()).decide(ctx(now=0.0, bid="0.45", ask="0.47"),
                                      replace(st0, our_bid=0.47, our_ask=0.45)).state
    assert isinstance(both, RegimeState) and both.tt_rate == 2.0
    ask_side = RegimeAware(Stub()).decide(ctx(now=0.0, bid="0.49", ask="0.50"), st0).state
    assert isinstance(ask_side, RegimeState) and ask_side.tt_rate == 1.0


# ---------------------------------------------------------------- escalation and cooldown
def test_step_down_needs_exactly_the_cooldown_and_a_full_one_per_step():
    ds = run(RegimeAware(Stub()), [(1000.0, VOL[HALTED]), (1010.0, 0.0), (1039.5, 0.0), (1040.0, 0.0),
                                   (1041.0, 0.0), (1069.5, 0.0), (1070.0, 0.0), (1100.0, 0.0), (1200.0, 0.0)])
    assert [d.regime for d in ds] == [HALTED, HALTED, HALTED, REDUCE, REDUCE, REDUCE, WIDE, NORMAL, NORMAL]
    calm = [d.state.calm_since for d in ds]
    assert calm == [None, 1010.0, 1010.0, 1040.0, 1040.0, 1040.0, 1070.0, None, None]
    assert ds[3].events == ("regime halted -> reduce-only: calm for 30s (calm)",)
    assert ds[3].reason == "calm for 30s (calm)"
    assert ds[7].events == ("regime wide -> normal: calm for 30s (calm)",) and ds[7].reason == ""
    assert [len(d.events) for d in ds] == [1, 0, 0, 1, 0, 0, 1, 1, 0]


def test_signals_back_at_the_current_regime_restart_the_cooldown():
    ds = run(RegimeAware(Stub()), [(1000.0, VOL[WIDE]), (1010.0, 0.0), (1020.0, VOL[WIDE]), (1045.0, 0.0),
                                   (1074.0, 0.0), (1075.0, 0.0)])
    assert [d.regime for d in ds] == [WIDE, WIDE, WIDE, WIDE, WIDE, NORMAL]
    assert [d.state.calm_since for d in ds] == [None, 1010.0, None, 1045.0, 1045.0, None]


def test_staying_at_the_wanted_regime_never_steps_down():
    ds = run(RegimeAware(Stub()), [(1000.0, VOL[WIDE]), (1100.0, VOL[WIDE]), (1200.0, VOL[WIDE])])
    assert [d.regime for d in ds] == [WIDE, WIDE, WIDE]
    assert [d.state.calm_since for d in ds] == [None, None, None]
    assert all(d.reason.startswith("vol 0.0400 >= 0.03") for d in ds)


def test_a_step_that_reaches_the_wanted_regime_starts_no_cooldown():
    # reduce-only, the signals ask for wide: one step to wide, and the wait to normal starts only
    # when the signals fall below wide (1050), not at the step (1040)
    ds = run(RegimeAware(Stub()), [(1000.0, VOL[REDUCE]), (1010.0, VOL[WIDE]), (1040.0, VOL[WIDE]),
                                   (1050.0, 0.0), (1070.0, 0.0), (1080.0, 0.0)])
    assert [d.regime for d in ds] == [REDUCE, REDUCE, WIDE, WIDE, WIDE, NORMAL]
    assert [d.state.calm_since for d in ds] == [None, 1010.0, None, 1050.0, 1050.0, None]


def test_escalation_is_immediate_and_forgets_the_calm():
    ds = run(RegimeAware(Stub()), [(1000.0, VOL[WIDE]), (1010.0, 0.0), (1011.0, VOL[HALTED]), (1012.0, VOL[WIDE])])
    assert [d.regime for d in ds] == [WIDE, WIDE, HALTED, HALTED]
    assert [d.state.calm_since for d in ds] == [None, 1010.0, None, 1012.0]
    assert ds[2].events == ("regime wide -> halted: vol 0.2000 >= 0.1",)
    assert ds[0].events == ("regime normal -> wide: vol 0.0400 >= 0.03",)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 40.0), st.sampled_from(list(VOL))), min_size=1, max_size=12))
def test_the_machine_escalates_at_once_and_steps_down_one_level_after_a_calm_cooldown(steps):
    """Whatever the signals: never below what they ask for, at most one level down per cycle and
    only after `regime_cooldown_sec` of calm, an event for exactly every change."""
    strat, state, t, prev = RegimeAware(Stub()), None, 1000.0, NORMAL
    for dt, want in steps:
        t += dt
        d = strat.decide(ctx(now=t, vol=VOL[want]), state)
        assert d.regime.level >= want.level
        assert d.regime.level >= prev.level - 1
        if d.regime.level < prev.level:
            assert isinstance(state, RegimeState) and state.calm_since is not None
            assert t - state.calm_since >= 30.0
        assert bool(d.events) == (d.regime is not prev)
        assert (d.reason == "") == (d.regime is NORMAL)
        state, prev = d.state, d.regime


# ---------------------------------------------------------------- the wrapped strategy
def test_the_given_strategy_is_the_one_that_quotes_and_keeps_its_own_state():
    q = Quote(M.condition_id, M.yes_token_id, Side.BUY, D("0.44"), D(7))
    stub = Stub(quotes=(q,))
    strat = RegimeAware(stub)
    d1 = strat.decide(ctx(now=0.0), None)
    d2 = strat.decide(ctx(now=1.0), d1.state)
    assert d1.quotes == d2.quotes == (q,)
    assert [s for _, s in stub.seen] == [None, 1]  # its state comes back to it
    assert isinstance(d2.state, RegimeState) and d2.state.base_state == 2 and d2.state.base_name == "stub"
    other = Stub(name="other")
    d3 = RegimeAware(other).decide(ctx(now=2.0), d2.state)  # another strategy never sees stub's state
    assert other.seen == [(1.0, None)]
    assert isinstance(d3.state, RegimeState) and d3.state.base_name == "other" and d3.state.base_state == 1


def test_halted_keeps_the_wrapped_state_without_asking_it():
    stub = Stub()
    strat = RegimeAware(stub)
    d1 = strat.decide(ctx(now=0.0), None)
    d2 = strat.decide(ctx(now=1.0, vol=VOL[HALTED]), d1.state)
    assert len(stub.seen) == 1 and d2.quotes == ()
    assert isinstance(d2.state, RegimeState) and d2.state.base_state == 1


def test_wide_multiplies_the_calibration_multiplier_and_only_wide_does():
    p = fresh_params(regime_wide_mult=2.5)
    stub = Stub()
    strat = RegimeAware(stub)
    for vol in (VOL[NORMAL], VOL[WIDE], VOL[REDUCE]):
        strat.decide(ctx(vol=vol, calib=1.2, params=p), None)
    assert [m for m, _ in stub.seen] == [1.2, 1.2 * 2.5, 1.2]


def test_the_builtin_base_follows_regime_base_and_is_built_once():
    c = ctx(params=fresh_params(regime_base="as"), inv=Inventory(D(30), D(0)))
    strat = RegimeAware()
    d = strat.decide(c, None)
    assert d.quotes == AvellanedaStoikov().decide(c, None).quotes and d.quotes
    assert isinstance(d.state, RegimeState) and d.state.base_name == "as"
    assert strat._base(c) is strat._base(c)  # one instance per built-in name
    assert strat._base(ctx()).name == "spread"
    assert strat.name == "regime"


def test_a_more_cautious_wrapped_strategy_wins_and_is_reported():
    yes_buy = Quote(M.condition_id, M.yes_token_id, Side.BUY, D("0.44"), D(5))
    yes_sell = Quote(M.condition_id, M.yes_token_id, Side.SELL, D("0.48"), D(5))
    inv = Inventory(D(20), D(0))
    d = RegimeAware(Stub(quotes=(yes_buy, yes_sell), regime=REDUCE, reason="stub says")).decide(
        ctx(now=5.0, inv=inv), None)
    assert d.regime is REDUCE and d.reason == "stub says" and d.quotes == (yes_sell,)
    assert d.events == ("regime normal -> reduce-only: stub says",)
    assert isinstance(d.state, RegimeState) and d.state.regime is REDUCE
    # the same level as the machine's: the machine's reason stays
    d = RegimeAware(Stub(regime=WIDE, reason="stub wide")).decide(ctx(vol=VOL[WIDE]), None)
    assert d.regime is WIDE and d.reason.startswith("vol ")
    # less cautious: the machine's regime stays
    d = RegimeAware(Stub(quotes=(yes_buy, yes_sell))).decide(ctx(vol=VOL[REDUCE], inv=inv), None)
    assert d.regime is REDUCE and d.quotes == (yes_sell,)


def test_a_wrapped_halt_quotes_nothing_and_is_reported():
    q = Quote(M.condition_id, M.yes_token_id, Side.BUY, D("0.44"), D(5))
    strat = RegimeAware(Stub(quotes=(q,), regime=HALTED, reason="stub halts"))
    d = strat.decide(ctx(now=0.0), None)
    assert d.regime is HALTED and d.quotes == () and d.reason == "stub halts"
    assert d.events == ("regime normal -> halted: stub halts",)
    # it keeps halting: no further transition reported, however long the machine's signals are calm
    for t in (40.0, 80.0, 120.0):
        d = strat.decide(ctx(now=t), d.state)
        assert d.regime is HALTED and d.events == () and d.quotes == ()


def test_reduce_only_keeps_exactly_the_quotes_that_bring_the_net_toward_flat():
    cid, y, n = M.condition_id, M.yes_token_id, M.no_token_id
    quotes = (Quote(cid, y, Side.BUY, D("0.44"), D(5)), Quote(cid, y, Side.SELL, D("0.48"), D(5)),
              Quote(cid, n, Side.BUY, D("0.52"), D(5)), Quote(cid, n, Side.SELL, D("0.56"), D(5)),
              Quote(cid, y, Side.SELL, D("0.48"), D(20)), Quote(cid, y, Side.SELL, D("0.48"), D(25)))
    d = RegimeAware(Stub(quotes=quotes)).decide(ctx(vol=VOL[REDUCE], inv=Inventory(D(30), D(10))), None)
    assert d.quotes == (quotes[1], quotes[2], quotes[4])  # net 20: 15, 15, 0 reduce; 25, 25, -5 do not


# ---------------------------------------------------------------- our resting touch, the state
def test_resting_touch_is_our_best_bid_and_best_ask_in_yes_space():
    y, n = M.yes_token_id, M.no_token_id
    orders = (order(y, Side.BUY, "0.40"), order(n, Side.SELL, "0.57"), order(y, Side.BUY, "0.41"),
              order(y, Side.SELL, "0.50"), order(n, Side.BUY, "0.48"), order(y, Side.SELL, "0.55"))
    assert resting_touch(ctx(orders=orders)) == (0.43, 0.50)  # NO sell 0.57 = YES bid 0.43; NO buy 0.48 = ask 0.52
    assert resting_touch(ctx(orders=orders[:1])) == (0.40, None)
    assert resting_touch(ctx(orders=orders[3:4])) == (None, 0.50)
    assert resting_touch(ctx()) == (None, None)
    d = RegimeAware(Stub()).decide(ctx(now=3.0, orders=orders), None)
    assert isinstance(d.state, RegimeState) and (d.state.our_bid, d.state.our_ask) == (0.43, 0.50)


def test_regime_state_is_immutable_and_slotted():
    s = RegimeState()
    with pytest.raises(FrozenInstanceError):
        s.regime = HALTED  # type: ignore[misc]
    assert not hasattr(s, "__dict__")
