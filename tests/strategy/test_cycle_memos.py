"""The quote cycle's memos and shared per-cycle values give exactly what computing afresh gives.

- `ticks.valid_price` / `ticks.on_size_grid`: memoized by value for finite Decimals; any other
  input computed each time (a NaN, an infinity, another representation of the same value);
- `quoting.grid_steps` / `quoting.band_ticks`: integers of the tick's (and band's) value alone;
- `quoting.grid_price`: `tick * i` kept per tick object (value and spelling: a tick spelled
  otherwise gets its own prices), and `token_quotes` pricing through it as through `tick * i`;
- `QuoteCycle.inventory`: the last `Inventory` handed out again only while the ledger holds the
  very same `yes` / `no` objects;
- the PnL parts of a cycle's risk inputs summed again by its publish phase (the incremental
  cycle; the full cycle recomputes them): the snapshot's totals and the `pnl` rows equal a fresh
  computation after every cycle, fills included.
"""

from __future__ import annotations

import asyncio
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import WalkingBooks, make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import Fill, FillType, Mode, Side
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.quoting import band_ticks, grid_price, grid_steps, token_quotes
from pmm_widgets.ticks import ALLOWED_TICKS, floor_size, on_grid, on_size_grid, valid_price

D = Decimal

# the same value spelled several ways (exponents), off-grid values, out of range and non-finite ones
PRICES = st.one_of(
    st.builds(lambda k, z: D(k).scaleb(-4) if z == 0 else D(f"{D(k).scaleb(-4)}{'0' * z}"),
              st.integers(-20_000, 20_000), st.integers(0, 3)),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-2, max_value=2),
    st.sampled_from([D("NaN"), D("Infinity"), D("-Infinity"), D("-0"), D("0E-10"), D("1"), D("1.000")]),
)
TICKS = st.sampled_from([*ALLOWED_TICKS, D("0.010"), D("0.0100"), D("1E-2")])


def _valid_fresh(price: Decimal, tick: Decimal) -> bool:
    return on_grid(price, tick) and tick <= price <= 1 - tick


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(PRICES, TICKS), min_size=1, max_size=30))
def test_valid_price_memo_equals_the_fresh_answer(pairs):
    for price, tick in pairs:  # in sequence: an earlier (equal-valued) key must not answer a later one wrongly
        assert valid_price(price, tick) is _valid_fresh(price, tick), (price, tick)


def test_valid_price_of_a_signalling_nan_still_raises():
    with pytest.raises(InvalidOperation):
        valid_price(D("sNaN"), D("0.01"))


@settings(max_examples=300, deadline=None)
@given(st.lists(PRICES, min_size=1, max_size=30))
def test_on_size_grid_memo_equals_the_fresh_answer(sizes):
    for s in sizes:
        if not s.is_finite():  # a NaN or an infinity is on no grid (an infinity's floor is itself)
            assert on_size_grid(s) is False
            continue
        assert on_size_grid(s) is (floor_size(s) == s), s


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(2, 20_000), st.sampled_from([D("0.05"), D("0.1"), D("0.25"), D("0.5"), D("0.100")]),
                          TICKS), min_size=1, max_size=30))
def test_grid_steps_and_band_ticks_equal_the_fresh_integers(cases):
    for ba, band, tick in cases:
        assert grid_steps(tick) == int((D(1) / tick).to_integral_value(rounding=ROUND_FLOOR))
        mid2, b = D(ba) / 2, band / tick
        assert band_ticks(ba, band, tick) == (int((mid2 - b).to_integral_value(rounding=ROUND_CEILING)),
                                              int((mid2 + b).to_integral_value(rounding=ROUND_FLOOR)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TICKS, st.floats(0, 1)), min_size=1, max_size=40))
def test_grid_price_is_tick_times_i_spelling_included(cases):
    ticks = {str(t): D(str(t)) for t in [*ALLOWED_TICKS, D("0.010"), D("0.0100"), D("1E-2")]}  # one object per spelling
    for t, x in cases:
        tick = ticks[str(t)]
        i = int(x * grid_steps(tick))
        p = grid_price(tick, i)
        assert str(p) == str(tick * i) and p == tick * i, (tick, i)  # the value and its spelling (rows print it)
        assert grid_price(tick, i) is p  # kept: its hash computed once
    assert str(grid_price(D("1E-6"), 7)) == str(D("1E-6") * 7)  # finer than the venue's ticks: not kept, still right


def _token_quotes_fresh(market, yes, no, params, inventory, tick, b, a, bid_t, ask_t):
    """`token_quotes` as it priced before `grid_price`: `tick * i` per quote."""
    out = token_quotes(market, yes, no, params, inventory, tick, b, a, bid_t, ask_t)
    n = grid_steps(tick)
    exp: list[str] = []
    for q in out:
        t = q.price / tick
        exp.append(str(tick * int(t)))
        assert int(t) == t and 1 <= t <= n - 1
    return out, exp


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([D("0.01"), D("0.010"), D("0.001"), D("0.1")]), st.integers(0, 10_000), st.integers(1, 30),
       st.integers(-40, 40), st.integers(-40, 40), st.integers(0, 40), st.integers(0, 40))
def test_token_quotes_prices_are_the_grid_products(tick, at, width, db, da, yes_held, no_held):
    from pmm_widgets.domain import BookView
    n = grid_steps(tick)
    b = 1 + at % max(1, n - 2 - width) if n > 3 else 1
    a = min(b + width, n - 1)
    if a <= b:
        return
    m = make_market(0)
    yv = BookView(m.yes_token_id, m.condition_id, (), (), tick)
    nv = BookView(m.no_token_id, m.condition_id, (), (), tick)
    inv = Inventory(D(yes_held), D(no_held))
    out, exp = _token_quotes_fresh(m, yv, nv, Params(), inv, tick, b, a, b + db, a + da)
    assert [str(q.price) for q in out] == exp


OPS = st.lists(st.tuples(st.sampled_from(["buy_yes", "sell_yes", "buy_no", "sell_no", "same_value", "noop"]),
                         st.integers(1, 50)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_cycle_inventory_follows_every_ledger_change(ops):
    """Fills in any order, and a ledger given an equal value as a new object: `inventory` always
    equals the ledger's holdings (a stale one would quote and risk-check the wrong position)."""
    m = make_market(0)
    qc = QuoteCycle(Params(), MemorySink(), Mode.PAPER)
    qc._known[m.condition_id] = m
    assert qc.inventory(m.condition_id) == Inventory()
    for k, (op, n) in enumerate(ops):
        if op == "same_value":
            lg = qc.pnl.ledger(m.condition_id)
            lg.yes = lg.yes + D("0.000")  # equal, but another object spelled otherwise (10 → 10.000)
        elif op != "noop":
            side = Side.BUY if op.startswith("buy") else Side.SELL
            token = m.yes_token_id if op.endswith("yes") else m.no_token_id
            qc.pnl.apply(Fill(f"t{k}", f"o{k}", m.condition_id, token, side, D("0.40"), D(n), FillType.FILLED,
                              Mode.PAPER, 1000.0 + k), m, D("0.5"))
        lg = qc.pnl.ledgers.get(m.condition_id)
        inv = qc.inventory(m.condition_id)
        held = (lg.yes, lg.no) if lg is not None else (D(0), D(0))
        assert (str(inv.yes), str(inv.no)) == (str(held[0]), str(held[1]))  # the value and its spelling (rows print it)
        assert qc.inventory(m.condition_id) is inv  # unchanged: the same object again


@pytest.mark.parametrize("incremental", [True, False])
def test_published_totals_and_rows_equal_a_fresh_sum_after_every_cycle(incremental):
    """The publish phase's totals and `pnl` rows (from the risk inputs' parts when incremental)
    equal `PnlBook.totals` / `rows` recomputed after the cycle, in cycles with fills."""

    async def run() -> int:
        params = Params(paper_fill_intensity=30.0)
        sink = MemorySink()
        ms = [make_market(i) for i in range(3)]
        books = WalkingBooks(ms, seed=3)
        ex = PaperExchange(params, sink, seed=5)
        qc = QuoteCycle(params, sink, Mode.PAPER, pnl_sec=5.0, incremental=incremental)
        now, fills = 1000.0, 0
        while now <= 1400.0:
            books.step(now)
            n_rows = len(sink.rows.get("pnl", []))
            rep = await qc.run_once(now, ms, books.view, ex)
            fills += rep.fills
            assert qc.totals.pnl == qc.pnl.totals(qc._mids)
            written = sink.rows.get("pnl", [])[n_rows:]
            if written:
                assert written == qc.pnl.rows(now, Mode.PAPER.value, qc._mids)
            now += 5.0
        return fills

    assert asyncio.run(run()) > 0  # the property is about cycles whose ledgers changed
