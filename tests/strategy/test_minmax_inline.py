"""The quote decision's `min` / `max` written as the conditionals the builtins evaluate (the first
largest / smallest operand: `max(a, b)` is b only when `b > a`) choose the very same operand as the
builtins: the same float (NaN, ±inf and -0.0 included) and the same Decimal object (5 and 5.00 are
equal, but rows print the one chosen). Each function is compared with its earlier code (the
builtins), kept here as the reference: `ticks_at`, `_fair_yes`, `token_quotes`, `max_of3`,
`Calibrator.mult`, `guard_at` (its top bid / low ask, printed in its reason)."""

from __future__ import annotations

import math
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Quote, Side
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy import guard as G
from pmm_widgets.strategy.base import Regime
from pmm_widgets.strategy.calibrator import Calibrator, CalibState
from pmm_widgets.strategy.inventory import Inventory, net_delta
from pmm_widgets.strategy.quoting import _fair_yes, band_ticks, grid_price, grid_steps, max_of3, ticks_at, token_quotes
from pmm_widgets.ticks import floor_size

FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 0.01]))


def _ticks_at_builtins(fair, vol_term, tf, b, a, alpha, calib_mult, net, limit, skew):
    base = max(vol_term, (a - b) * tf / 2.0, tf)
    h = alpha * calib_mult * base
    x = max(-1.0, min(1.0, net / limit))
    shift = skew * h * x
    bid_t = math.floor((fair - h - shift) / tf + 1e-9)
    ask_t = math.ceil((fair + h - shift) / tf - 1e-9)
    if ask_t <= bid_t:
        ask_t = bid_t + 1
    return bid_t, ask_t


def _outcome(fn, *args):
    try:
        return ("ok", repr(fn(*args)))
    except Exception as exc:  # noqa: BLE001 (an overflow / NaN to int: both must raise alike)
        return ("raised", type(exc).__name__)


@settings(max_examples=600, deadline=None)
@given(st.floats(0, 1), st.one_of(FLOATS, st.floats(0, 0.2)), st.sampled_from([0.01, 0.001, 0.1]), st.integers(0, 100),
       st.one_of(st.integers(0, 2), st.integers(0, 100)), st.floats(0, 5), st.floats(0, 5), FLOATS,
       st.one_of(FLOATS, st.sampled_from([1.0, 100.0])), st.floats(0, 2))
def test_ticks_at_equals_the_builtins(fair, vol, tf, b, w, alpha, mult, net, limit, skew):
    args = (fair, vol, tf, b, b + w, alpha, mult, net, limit, skew)
    assert _outcome(ticks_at, *args) == _outcome(_ticks_at_builtins, *args)


@settings(max_examples=300, deadline=None)
@given(FLOATS, FLOATS)
def test_max_of_two_floats_as_written_in_decide_spread(sy, sn):
    got = sn if sn > sy else sy  # `QuoteCycle._decide_spread`'s `max(sy, sn)`
    assert repr(got) == repr(max(sy, sn))


SPELLED = st.sampled_from([D("5"), D("5.0"), D("5.00"), D("0.5E+1"), D("4.99"), D("5.01"), D("10"), D("1E+1"), D("0")])


@settings(max_examples=300, deadline=None)
@given(SPELLED, SPELLED, SPELLED)
def test_max_of3_chooses_the_builtins_operand(a, b, c):
    assert max_of3(a, b, c) is max(a, b, c)


def _view(token, m, levels_b, levels_a, mos):
    return BookView(token, m.condition_id, tuple(Level(p, s) for p, s in levels_b),
                    tuple(Level(p, s) for p, s in levels_a), m.tick_size, mos)


def _fair_builtins(yes, no, b, a, tf):
    my = yes.microprice
    fy = None if my is None else float(my)
    mn = no.microprice
    if fy is not None:
        fair = (0.0 + fy + (1.0 - float(mn))) / 2 if mn is not None else 0.0 + fy
    elif mn is not None:
        fair = 0.0 + (1.0 - float(mn))
    else:
        fair = (b + a) * tf / 2
    return min(max(fair, b * tf), a * tf)


TOP = st.one_of(st.none(), st.tuples(st.integers(1, 99), st.sampled_from([D(0), D(1), D(7), D("100.5")])))


@settings(max_examples=400, deadline=None)
@given(TOP, TOP, TOP, TOP, st.integers(0, 99), st.integers(1, 100))
def test_fair_yes_equals_the_builtins(yb, ya, nb, na, b, w):
    m = make_market(0)
    t = m.tick_size

    def lv(x):
        return [] if x is None else [(t * x[0], x[1])]

    yes, no = _view(m.yes_token_id, m, lv(yb), lv(ya), D(5)), _view(m.no_token_id, m, lv(nb), lv(na), D(5))
    a = b + w
    assert repr(_fair_yes(yes, no, b, a, 0.01)) == repr(_fair_builtins(yes, no, b, a, 0.01))


def _token_quotes_builtins(market, yes, no, params, inventory, tick, b, a, bid_t, ask_t):
    n = grid_steps(tick)
    lo, hi = band_ticks(b + a, params.price_band, tick)
    bid_ok = ask_ok = False
    if bid_t is not None:
        bid_t = min(max(bid_t, lo), a - 1)
        bid_ok = lo <= bid_t and 1 <= bid_t <= n - 1
    if ask_t is not None:
        ask_t = max(min(ask_t, hi), b + 1)
        ask_ok = ask_t <= hi and 1 <= ask_t <= n - 1
    if bid_ok and ask_ok and bid_t is not None and ask_t is not None and bid_t >= ask_t:
        return []
    min_size = max(market.min_order_size, yes.min_order_size, no.min_order_size)
    size = max(floor_size(params.quote_size), min_size)
    out = []
    if bid_ok:
        if inventory.no >= min_size:
            out.append(Quote(market.condition_id, market.no_token_id, Side.SELL,
                             grid_price(tick, n - bid_t), floor_size(min(size, inventory.no))))
        else:
            out.append(Quote(market.condition_id, market.yes_token_id, Side.BUY, grid_price(tick, bid_t), size))
    if ask_ok:
        if inventory.yes >= min_size:
            out.append(Quote(market.condition_id, market.yes_token_id, Side.SELL,
                             grid_price(tick, ask_t), floor_size(min(size, inventory.yes))))
        else:
            out.append(Quote(market.condition_id, market.no_token_id, Side.BUY, grid_price(tick, n - ask_t), size))
    return out


HELD = st.sampled_from([D(0), D(5), D("5.00"), D("7.5"), D(10), D("10.000"), D("12.345"), D(100)])


@settings(max_examples=500, deadline=None)
@given(SPELLED, SPELLED, SPELLED, HELD, HELD, st.sampled_from([D(10), D("10.0"), D("5"), D("7.777")]),
       st.sampled_from([D("0.10"), D("0.03"), D("0.5")]), st.integers(1, 97), st.integers(1, 6),
       st.one_of(st.none(), st.integers(-10, 110)), st.one_of(st.none(), st.integers(-10, 110)))
def test_token_quotes_equals_the_builtins(mos, ymos, nmos, yes_held, no_held, qsize, band, b, w, bid_t, ask_t):
    m = make_market(0, min_size=str(mos))
    yes, no = _view(m.yes_token_id, m, [], [], ymos), _view(m.no_token_id, m, [], [], nmos)
    params = Params(quote_size=qsize, price_band=band)
    inv = Inventory(yes_held, no_held)
    a = min(b + w, 99)
    args = (m, yes, no, params, inv, m.tick_size, b, a, bid_t, ask_t)
    assert repr(token_quotes(*args)) == repr(_token_quotes_builtins(*args))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), FLOATS), st.floats(0.1, 1.0), st.floats(1.0, 5.0))
def test_calibrator_mult_equals_the_builtins(mult, lo, hi):
    cal = Calibrator(Params(calib_min_mult=lo, calib_max_mult=hi), MemorySink())
    if mult is not None:
        cal.states["c"] = CalibState(mult=mult)
    m = mult if mult is not None else 1.0
    assert repr(cal.mult("c")) == repr(min(max(m, lo), hi))


def _guard_builtins(m, inv, tick, bid_ticks, ask_ticks, min_size, quotes, regime):
    if regime is Regime.HALTED:
        quotes = list(quotes)
        return [], ("halted" if quotes else None)
    kept, reason, top_bid, low_ask = [], None, None, None
    for q in quotes:
        why = G._malformed(m, q, inv.yes, inv.no, tick, min_size)
        if why is None:
            if q.token_id == m.yes_token_id:
                bid, yp = q.side is Side.BUY, q.price
            else:
                bid, yp = q.side is not Side.BUY, 1 - q.price
            t = yp / tick
            if bid and t >= ask_ticks:
                why = f"bid {yp} would cross the ask {tick * ask_ticks}"
            elif not bid and t <= bid_ticks:
                why = f"ask {yp} would cross the bid {tick * bid_ticks}"
            elif regime is Regime.REDUCE_ONLY and \
                    not G.reduces(inv.net, inv.net + net_delta(m, q.token_id, q.side, q.size)):
                why = "reduce-only: the quote would not reduce the position"
            elif bid:
                top_bid = yp if top_bid is None else max(top_bid, yp)
            else:
                low_ask = yp if low_ask is None else min(low_ask, yp)
        if why is None:
            kept.append(q)
        elif reason is None:
            reason = why
    if top_bid is not None and low_ask is not None and top_bid >= low_ask:
        return [], f"own bid {top_bid} >= own ask {low_ask}"
    return kept, reason


PRICES = st.sampled_from([D("0.40"), D("0.4"), D("0.45"), D("0.450"), D("0.50"), D("0.5"), D("0.55"), D("0.60"), D("0.6")])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([Side.BUY, Side.SELL]), PRICES,
                          st.sampled_from([D(5), D(10), D("10.00")])), max_size=6),
       st.integers(30, 50), st.integers(50, 70), st.sampled_from([Regime.NORMAL, Regime.REDUCE_ONLY, Regime.HALTED]))
def test_guard_at_equals_the_builtins(specs, bid_ticks, ask_ticks, regime):
    m = make_market(0)
    inv = Inventory(D(20), D(20))
    quotes = [Quote(m.condition_id, m.yes_token_id if yes else m.no_token_id, side, p, s) for yes, side, p, s in specs]
    args = (m, inv, m.tick_size, bid_ticks, ask_ticks, D(5), quotes, regime)
    assert repr(G.guard_at(*args)) == repr(_guard_builtins(*args))
