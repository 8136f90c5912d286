"""Invariants of every shipped strategy (hypothesis), the regime machine, and the guard the cycle
puts around any strategy's output."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategy_helpers import book, make_market, mirror_books
from test_quoting import scenario

from pmm_widgets.config import Params
from pmm_widgets.domain import Quote, Side
from pmm_widgets.strategy.avellaneda import AvellanedaStoikov, as_quotes
from pmm_widgets.strategy.base import Decision, MarketContext, Regime, Strategy
from pmm_widgets.strategy.guard import guard_quotes
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.microprice import Microprice, imbalance_fair
from pmm_widgets.strategy.quoting import (
    effective_touch,
    grid_tick,
    make_quotes,
    yes_space_price,
)
from pmm_widgets.strategy.regime import RegimeAware, RegimeState
from pmm_widgets.strategy.registry import BUILDERS, build_strategy
from pmm_widgets.strategy.rewards_band import RewardsBand, reward_program
from pmm_widgets.strategy.spread import SpreadStrategy
from pmm_widgets.ticks import valid_price
from pmm_widgets.venue.gamma_terms import decode_terms

D = Decimal

def context(m, yes, no, params, inv, **kw) -> MarketContext:
    tick = grid_tick(m, yes, no)
    b, a = effective_touch(yes, no, tick)
    assert b is not None and a is not None and b < a
    return MarketContext(market=m, yes=yes, no=no, tick=tick, bid_ticks=b, ask_ticks=a, inventory=inv,
                         params=params, **kw)


@st.composite
def contexts(draw, inv_range=(0, 800)):
    """The seed's quoting scenarios (books of both tokens, sizes, ticks), with a reward program,
    every strategy's parameters, markouts and a time to end drawn on top."""
    m, yes, no, params, _, mult, vol = draw(scenario())
    raw = draw(st.one_of(st.just({}), st.builds(
        lambda ms, v, r: {"rewardsMinSize": ms, "rewardsMaxSpread": v, "clobRewards": [{"rewardsDailyRate": r}]},
        st.sampled_from([0, 20, 100]), st.sampled_from([1, 3.5, 5]), st.sampled_from([0, 10, 500]))))
    m = replace(m, terms=decode_terms(raw))
    params = params.update(as_gamma=draw(st.floats(0.01, 50)), as_kappa=draw(st.floats(1, 5000)),
                           as_horizon_sec=draw(st.floats(1, 86_400)), micro_levels=draw(st.integers(1, 5)),
                           micro_toxicity_mult=draw(st.floats(0, 10)), rewards_band_frac=draw(st.floats(0.05, 0.95)))
    inv = Inventory(D(draw(st.integers(*inv_range))), D(draw(st.integers(*inv_range))))
    tte = draw(st.one_of(st.none(), st.floats(0, 30 * 86_400)))
    tick = grid_tick(m, yes, no)
    b, a = effective_touch(yes, no, tick)
    assume(b is not None and a is not None and b < a)
    return context(m, yes, no, params, inv, calib_mult=mult, vol=dict(vol), now=1_000.0,
                   markout_short=draw(st.one_of(st.none(), st.floats(-0.2, 0.2))),
                   markout_count=draw(st.integers(0, 50)), time_to_end_sec=tte)


def all_strategies() -> list[Strategy]:
    return [SpreadStrategy(), AvellanedaStoikov(), Microprice(), RewardsBand(), RegimeAware(),
            RegimeAware(AvellanedaStoikov()), RegimeAware(Microprice())]


def yes_prices(ctx: MarketContext, quotes) -> tuple[list[Decimal], list[Decimal]]:
    bids, asks = [], []
    for q in quotes:
        kind, yp = yes_space_price(ctx.market, q)
        (bids if kind == "bid" else asks).append(yp)
    return bids, asks


@settings(max_examples=150, deadline=None)
@given(contexts())
def test_every_strategy_is_valid_post_only_and_consistent(ctx):
    for strat in all_strategies():
        d = strat.decide(ctx, None)
        m, tick = ctx.market, ctx.tick
        bids, asks = yes_prices(ctx, d.quotes)
        assert len(bids) <= 1 and len(asks) <= 1, strat.name
        for q in d.quotes:
            assert q.market == m.condition_id and q.token_id in m.token_ids
            assert valid_price(q.price, tick), (strat.name, q)  # on the grid, inside (0, 1)
            if q.side is Side.SELL:
                held = ctx.inventory.yes if q.token_id == m.yes_token_id else ctx.inventory.no
                assert q.size <= held
        for bp in bids:
            assert bp / tick < ctx.ask_ticks, (strat.name, bp)  # never crosses the effective ask
        for ap in asks:
            assert ap / tick > ctx.bid_ticks, (strat.name, ap)
        if bids and asks:
            assert bids[0] < asks[0]  # YES/NO consistent: our pair never locks in a loss
        # what the strategy wants is exactly what the cycle's guard lets through
        kept, why = guard_quotes(ctx, d.quotes, d.regime)
        assert why is None and kept == list(d.quotes), (strat.name, why)
        if d.regime is Regime.HALTED:
            assert d.quotes == ()


@settings(max_examples=150, deadline=None)
@given(contexts(inv_range=(0, 0)), st.integers(5, 600), st.booleans())
def test_skew_moves_quotes_to_shed_inventory(ctx, held, long_yes):
    """Long YES: both YES-space prices are no higher than when flat (sell sooner, buy later);
    long NO: no lower. Every strategy, same book."""
    inv = Inventory(D(held), D(0)) if long_yes else Inventory(D(0), D(held))
    params = ctx.params.update(skew=max(ctx.params.skew, 0.1))
    flat, skewed = replace(ctx, params=params), replace(ctx, params=params, inventory=inv)
    for strat in all_strategies():
        b0, a0 = yes_prices(flat, strat.decide(flat, None).quotes)
        b1, a1 = yes_prices(skewed, strat.decide(skewed, None).quotes)
        for before, after in ((b0, b1), (a0, a1)):
            if before and after:
                assert (after[0] <= before[0]) if long_yes else (after[0] >= before[0]), strat.name


def test_skew_strictly_lowers_the_reservation_price_in_as():
    m = make_market(0)
    y, n = mirror_books(m, "0.45", "0.55")
    p = Params(as_gamma=0.5)
    vol = {m.yes_token_id: 0.03}
    flat = context(m, y, n, p, Inventory(), vol=vol)
    r0, h0, v = as_quotes(flat)
    r1, h1, _ = as_quotes(replace(flat, inventory=Inventory(D(50), D(0))))
    assert v > 0 and h1 == h0
    assert r1 == pytest.approx(r0 - 5 * 0.5 * v)  # q = 50 / quote_size 10 lots, × γ × V
    r2, _, _ = as_quotes(replace(flat, inventory=Inventory(D(0), D(50))))  # long NO = short YES
    assert r2 > r0


def test_as_variance_is_bounded_by_the_binary_payoff():
    """Near a bound or close to the end the variance term never exceeds p(1 − p)."""
    m = make_market(0)
    y, n = mirror_books(m, "0.96", "0.98")
    huge = context(m, y, n, Params(as_horizon_sec=86_400), Inventory(), vol={m.yes_token_id: 0.5})
    _, _, v = as_quotes(huge)
    s = huge.fair_micro
    assert v == pytest.approx(s * (1 - s))
    # a quiet market one hour before its end still carries the resolution variance
    quiet = context(m, y, n, Params(as_horizon_sec=600), Inventory(), time_to_end_sec=3600.0)
    _, _, vq = as_quotes(quiet)
    assert vq == pytest.approx(s * (1 - s) * 600 / 3600)


def test_microprice_leans_toward_the_thin_side_and_widens_on_toxic_markouts():
    m = make_market(0)
    y = book("y0", m.condition_id, [("0.40", 900)], [("0.50", 100)])
    n = book("n0", m.condition_id, [("0.50", 100)], [("0.60", 900)])
    ctx = context(m, y, n, Params(micro_levels=1), Inventory())
    assert imbalance_fair(ctx) == pytest.approx(0.49)  # heavy bids: fair near the ask
    calm = Microprice().decide(ctx, None)
    toxic = Microprice().decide(replace(ctx, markout_short=-0.02, markout_count=10), None)
    (cb,), (ca,) = yes_prices(ctx, calm.quotes)
    (tb,), (ta,) = yes_prices(ctx, toxic.quotes)
    assert tb <= cb and ta >= ca and (ta - tb) > (ca - cb)


def test_spread_strategy_is_the_seed_quoting():
    m = make_market(0)
    y, n = mirror_books(m, "0.31", "0.36")
    p = Params()
    inv = Inventory(D(40), D(0))
    vol = {m.yes_token_id: 0.02}
    ctx = context(m, y, n, p, inv, calib_mult=1.7, vol=vol)
    assert list(SpreadStrategy().decide(ctx, None).quotes) == make_quotes(m, y, n, p, inv, 1.7, vol)


@settings(max_examples=150, deadline=None)
@given(ctx=contexts(), other=contexts(), paused=st.booleans())
def test_spread_strategy_decides_as_make_quotes_with_or_without_its_key(ctx, other, paused):
    """`decide` keeps no state between calls (the cycle asks for the key, then the decision; the
    incremental cycle decides this class itself, `QuoteCycle._decide_spread`): equal to
    `make_quotes` with no key, after that context's key, and after a key of another context."""
    if paused:
        ctx = replace(ctx, params=ctx.params.update(quoting_paused=True))
    want = make_quotes(ctx.market, ctx.yes, ctx.no, ctx.params, ctx.inventory, ctx.calib_mult, ctx.vol)
    s = SpreadStrategy()
    assert list(s.decide(ctx, None).quotes) == want
    s.decision_key(ctx)
    assert list(s.decide(ctx, None).quotes) == want
    s.decision_key(other)
    assert list(s.decide(ctx, None).quotes) == want


def test_rewards_band_pulls_quotes_into_the_scoring_band():
    from pmm_widgets.economics.rewards import score_orders, to_yes_terms

    raw = {"rewardsMinSize": 50, "rewardsMaxSpread": 3, "clobRewards": [{"rewardsDailyRate": 100}]}
    m = make_market(0, terms=decode_terms(raw))
    y, n = mirror_books(m, "0.45", "0.50", size="500")
    ctx = context(m, y, n, Params(alpha=3.0, quote_size=D(10)), Inventory(), vol={m.yes_token_id: 0.02})
    prog = reward_program(ctx)

    def q_min(quotes):
        orders = [to_yes_terms(q.token_id == m.yes_token_id, q.side, q.price, q.size) for q in quotes]
        return score_orders(orders, D("0.475"), prog).q_min

    seed = SpreadStrategy().decide(ctx, None).quotes
    band = RewardsBand().decide(ctx, None).quotes
    assert q_min(seed) == 0  # too wide and too small to score
    assert all(q.size == 50 for q in band) and len(band) == 2
    bids, asks = yes_prices(ctx, band)
    assert bids[0] >= D("0.475") - D("0.015") and asks[0] <= D("0.475") + D("0.015")
    assert q_min(band) > 0
    # no program: exactly the seed's quotes
    plain = replace(ctx, market=make_market(0))
    assert RewardsBand().decide(plain, None).quotes == SpreadStrategy().decide(plain, None).quotes


# ---------------------------------------------------------------- regime machine
def regime_ctx(**kw) -> MarketContext:
    m = make_market(0)
    y, n = mirror_books(m, "0.45", "0.47")
    p = Params(regime_cooldown_sec=30.0)
    return context(m, y, n, p, kw.pop("inv", Inventory()), **kw)


def test_regime_walks_normal_wide_reduce_halted_and_back_with_events():
    strat = RegimeAware()
    m = make_market(0)
    vols = [0.0, 0.035, 0.07, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0]
    times = [0, 3, 6, 9, 12, 45, 80, 115, 150]
    state, seen, events = None, [], []
    for t, v in zip(times, vols):
        ctx = regime_ctx(vol={m.yes_token_id: v}, now=float(t), inv=Inventory(D(20), D(0)))
        d = strat.decide(ctx, state)
        state = d.state
        seen.append(d.regime)
        events.extend(d.events)
        if d.regime is Regime.HALTED:
            assert d.quotes == ()
        if d.regime is Regime.REDUCE_ONLY:  # long YES: only the YES sell survives
            assert [(q.token_id, q.side) for q in d.quotes] == [(m.yes_token_id, Side.SELL)]
    assert seen == [Regime.NORMAL, Regime.WIDE, Regime.REDUCE_ONLY, Regime.HALTED, Regime.HALTED,
                    Regime.REDUCE_ONLY, Regime.WIDE, Regime.NORMAL, Regime.NORMAL]
    assert events[0].startswith("regime normal -> wide: vol 0.0350")
    assert events[2].startswith("regime reduce-only -> halted: vol 0.2000")
    assert events[3].startswith("regime halted -> reduce-only: calm for 30s")
    assert len(events) == 6


def test_regime_wide_quotes_wider_than_normal():
    m = make_market(0)
    normal = RegimeAware().decide(regime_ctx(), None)
    wide = RegimeAware().decide(regime_ctx(vol={m.yes_token_id: 0.035}), None)
    nb, na = yes_prices(regime_ctx(), normal.quotes)
    wb, wa = yes_prices(regime_ctx(), wide.quotes)
    assert wide.regime is Regime.WIDE and wa[0] - wb[0] > na[0] - nb[0]


def test_regime_end_date_reduces_then_halts():
    d = RegimeAware().decide(regime_ctx(time_to_end_sec=30 * 60.0), None)
    assert d.regime is Regime.REDUCE_ONLY and "min to end" in d.reason and d.quotes == ()  # flat: nothing reduces
    d = RegimeAware().decide(regime_ctx(time_to_end_sec=5 * 60.0), None)
    assert d.regime is Regime.HALTED and d.quotes == ()


def test_regime_counts_trade_throughs_of_our_resting_quotes():
    from pmm_widgets.domain import Mode, Order

    m = make_market(0)
    strat = RegimeAware()
    bid = Order("c1", m.condition_id, m.yes_token_id, Side.BUY, D("0.44"), D(10), Mode.PAPER)
    state = strat.decide(regime_ctx(now=0.0, open_orders=(bid,)), None).state
    # the market falls through our bid twice in a row: 2 trade-throughs within the minute
    for k, (b, a) in enumerate((("0.40", "0.43"), ("0.36", "0.39"))):
        y, n = mirror_books(m, b, a)
        bid = replace(bid, price=D(b) - D("0.01"))
        c = context(m, y, n, Params(), Inventory(), now=3.0 * (k + 1), open_orders=(bid,))
        d = strat.decide(c, state)
        state = d.state
    assert isinstance(state, RegimeState) and state.tt_rate > 1.5
    assert d.regime is Regime.WIDE and "trade-through" in d.reason


@settings(max_examples=60, deadline=None)
@given(contexts(), st.floats(0, 9.9))
def test_halted_quotes_nothing_for_any_base(ctx, mins_left):
    ctx = replace(ctx, time_to_end_sec=mins_left * 60.0)
    for base in (SpreadStrategy(), AvellanedaStoikov(), Microprice(), RewardsBand()):
        d = RegimeAware(base).decide(ctx, None)
        assert d.regime is Regime.HALTED and d.quotes == ()
        assert guard_quotes(ctx, list(SpreadStrategy().decide(ctx, None).quotes), Regime.HALTED)[0] == []


# ---------------------------------------------------------------- the guard
def test_guard_drops_every_malformed_or_crossing_quote():
    m = make_market(0)
    y, n = mirror_books(m, "0.45", "0.50")
    ctx = context(m, y, n, Params(), Inventory(D(7), D(0)))
    cid = m.condition_id
    good = Quote(cid, "y0", Side.BUY, D("0.44"), D(10))
    bad = [
        Quote("0xother", "y0", Side.BUY, D("0.44"), D(10)),
        Quote(cid, "zz", Side.BUY, D("0.44"), D(10)),
        Quote(cid, "y0", Side.BUY, D("0.445"), D(10)),  # off grid
        Quote(cid, "y0", Side.BUY, D("0"), D(10)),  # outside (0, 1)
        Quote(cid, "y0", Side.BUY, D("0.50"), D(10)),  # crosses the ask
        Quote(cid, "n0", Side.BUY, D("0.55"), D(10)),  # YES-space ask 0.45 crosses the bid
        Quote(cid, "y0", Side.SELL, D("0.52"), D(8)),  # more than the 7 held
        Quote(cid, "y0", Side.BUY, D("0.44"), D(2)),  # below min size
        Quote(cid, "y0", Side.BUY, D("0.44"), D("5.001")),  # off the size grid
    ]
    for q in bad:
        kept, why = guard_quotes(ctx, [good, q], Regime.NORMAL)
        assert kept == [good] and why, q
    # a self-crossing pair is dropped whole
    pair = [Quote(cid, "y0", Side.BUY, D("0.48"), D(10)), Quote(cid, "n0", Side.BUY, D("0.53"), D(10))]
    assert guard_quotes(ctx, pair, Regime.NORMAL)[0] == []
    # reduce-only keeps the sell of what we hold, not the buy
    sell = Quote(cid, "y0", Side.SELL, D("0.52"), D(7))
    assert guard_quotes(ctx, [good, sell], Regime.REDUCE_ONLY)[0] == [sell]
    assert guard_quotes(ctx, [good, sell], Regime.HALTED)[0] == []


def test_registry_and_params_validation():
    assert set(BUILDERS) == {"spread", "as", "microprice", "regime", "rewards"}
    assert build_strategy("as").name == "as"
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy("nope")
    with pytest.raises(ValueError, match="expected one of"):
        Params(strategy="nope")
    with pytest.raises(ValueError, match="wide <= reduce <= halt") as exc:
        Params(regime_wide_vol=0.5)
    from pmm_widgets.config import format_validation_error

    line = format_validation_error(exc.value, env=True)  # a cross-field rule: its message names the fields
    assert line.startswith("regime vols must satisfy") and "regime_wide_vol=0.5" in line
    with pytest.raises(ValueError, match="cannot wrap itself"):
        Params(regime_base="regime")
    assert isinstance(SpreadStrategy(), Strategy)

    class Mine:
        name = "mine"

        def decide(self, ctx, state):
            return Decision()

    assert isinstance(Mine(), Strategy)
