"""The quote cycle's fast paths against the general code they replace (issue 15): each test
runs the new code and a copy of the old one (or the general path) on the same random inputs.

- `slot_init`: the frozen slotted dataclasses the cycle builds per market per cycle (and
  `PublicTrade`, which the paper exchange builds per corrected or mirrored print) get an
  `__init__` that sets their slots through the member descriptors; each must build exactly the
  object the `@dataclass`-generated `__init__` builds (same fields, defaults, default factories,
  same errors for a wrong call), and the class stays frozen;
- the calibrator's fill-rate window and update clock without their scans;
- `PnlBook.parts` memoized on identity, its totals and `pnl` rows summed in locals (compared as
  strings: the exponent of every Decimal too);
- the intensity fill model's `advance` with its helpers written out (same draws, same rng state);
- the guard and the risk screen with `yes_space_price` / `net_delta` written out, the planner;
- the markouts asking each token's mid once per cycle;
- `ReplaySink` without an inner sink (no tagged copy of rows it does not keep);
- `spread_ticks` through `ticks_at` (the cycle's `_decide_spread` calls it with kept floats; the
  decision itself is compared with the general `_decide` in tests/engine/test_incremental_cycle.py),
  `token_quotes`' kept floor of `quote_size`, the guard's kept on-grid size and the planner's kept
  band (the same objects again), `still_holds` as a loop, the rewards per hour summed in the cycle.
"""

from __future__ import annotations

import dataclasses
import inspect
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.analytics.markouts import Markout
from pmm_widgets.analytics.pnl import PnlParts
from pmm_widgets.domain import Fill, PublicTrade, Quote, slot_init
from pmm_widgets.economics.tracker import FillEconomics
from pmm_widgets.execution.fill_model import ModelFill
from pmm_widgets.strategy.base import Decision, MarketContext
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.risk import Screened

FAST = (Quote, Fill, MarketContext, Decision, Inventory, Screened, Markout, PnlParts, FillEconomics, ModelFill,
        PublicTrade)


def generated(cls: type) -> type:
    """The same class as `@dataclass(frozen=True, slots=True)` alone makes it (the reference)."""
    fields = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    clone = dataclasses.make_dataclass(cls.__name__, [(n, t, dataclasses.field(default=f.default,
                                                                               default_factory=f.default_factory))
                                                      if f.default_factory is not dataclasses.MISSING
                                                      or f.default is not dataclasses.MISSING else (n, t)
                                                      for n, t, f in fields],
                                       frozen=True, slots=True)
    return clone


def test_every_fast_class_got_the_descriptor_init_with_the_generated_signature():
    for cls in FAST:
        init = cls.__dict__["__init__"]
        assert "_s0" in init.__code__.co_names, cls  # the descriptor setters, not object.__setattr__
        ref = generated(cls)
        assert str(inspect.signature(init)) == str(inspect.signature(ref.__dict__["__init__"])), cls


values = st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3),
                   st.decimals(allow_nan=False, allow_infinity=False), st.tuples(st.integers()))


@given(st.sampled_from(FAST), st.data())
def test_the_fast_init_builds_what_the_generated_one_builds(cls, data):
    ref = generated(cls)
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    n_opt = data.draw(st.integers(0, len(fields) - len(required)))
    args = [data.draw(values) for _ in range(len(required) + n_opt)]
    as_kw = data.draw(st.booleans())
    kw: dict[str, Any] = {}
    pos: list[Any] = list(args)
    if as_kw:
        kw = {f.name: v for f, v in zip(fields, args)}
        pos = []
    got, want = cls(*pos, **kw), ref(*pos, **kw)
    for f in fields:
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert a is b or (f.default_factory is not dataclasses.MISSING and a == b and type(a) is type(b)), f.name
    if all(f.default_factory is dataclasses.MISSING for f in fields):
        assert got == cls(*[getattr(want, f.name) for f in fields])
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(got, fields[0].name, 1)


def test_default_factories_give_a_fresh_object_per_instance_and_wrong_calls_fail_alike():
    a = MarketContext(None, None, None, Decimal("0.01"), 1, 2, Inventory(), None)  # type: ignore[arg-type]
    b = MarketContext(None, None, None, Decimal("0.01"), 1, 2, Inventory(), None)  # type: ignore[arg-type]
    assert a.vol == {} and a.vol is not b.vol
    ref = generated(Quote)
    for args, kw in (((), {}), (("m", "t", None, 1, 2, 3), {}), (("m",), {"nope": 1}), (("m", "t", None, 1), {"market": "x"})):
        with pytest.raises(TypeError) as e1:
            Quote(*args, **kw)
        with pytest.raises(TypeError) as e2:
            ref(*args, **kw)
        assert str(e1.value).split("() ", 1)[1] == str(e2.value).split("() ", 1)[1]


def test_classes_the_helper_cannot_serve_keep_the_generated_init():
    @slot_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPost:
        x: int

        def __post_init__(self) -> None:
            object.__setattr__(self, "x", self.x + 1)

    @slot_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class KwOnly:
        x: int = dataclasses.field(kw_only=True)

    @slot_init
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        x: int

    assert WithPost(1).x == 2 and KwOnly(x=3).x == 3 and NoSlots(4).x == 4
    for cls in (WithPost, KwOnly, NoSlots):
        assert "_s0" not in cls.__dict__["__init__"].__code__.co_names


# -- the calibrator's window and update clock: the old code as the reference -------------------------

def _old_window(cal: Any, st: Any, now: float) -> tuple[int, float]:
    if st.started_at is None:
        return 0, 0.0
    cutoff = now - cal.window_sec
    st.fill_ts = [t for t in st.fill_ts if t > cutoff]
    keep = min(cutoff, st.updated_at)
    st.quoted = [q for q in st.quoted if q[1] > keep]
    start = max(cutoff, st.started_at)
    sec = sum(max(0.0, min(e, now) - max(s, start)) for s, e in st.quoted)
    return sum(1 for t in st.fill_ts if t > start), sec / 60.0


def _old_due(st: Any) -> float:
    return sum(e - max(s, st.updated_at) for s, e in st.quoted if e > st.updated_at)


times = st.floats(0.0, 2000.0, allow_nan=False)


@given(st.lists(st.tuples(st.sampled_from(("step", "fill", "ask", "restart")), times, st.booleans()), max_size=60),
       st.floats(0.0, 500.0), st.floats(1.0, 600.0))
def test_the_calibrators_window_and_update_clock_equal_the_old_scans(ops, started, window):
    import copy

    from pmm_widgets.config import Params
    from pmm_widgets.store.sink import MemorySink
    from pmm_widgets.strategy.calibrator import Calibrator, CalibState

    cal = Calibrator(Params(target_fills_per_min=1.0), MemorySink(), update_sec=30.0, window_sec=window)
    ref = copy.deepcopy(cal)
    for op, t, flag in ops:
        if op == "restart":  # a restored state: the window starts before the first step
            for c in (cal, ref):
                c.states["m"] = CalibState(started_at=started, updated_at=min(started, t))
        elif op == "fill":
            cal.on_fill("m", t, None)
            ref.on_fill("m", t, None)
        elif op == "ask":
            a, b = cal.states.get("m"), ref.states.get("m")
            if a is not None and b is not None:
                assert cal._window(a, t) == _old_window(ref, b, t)
                assert (a.fill_ts, a.quoted) == (b.fill_ts, b.quoted)
            assert cal.total_fills_per_min(["m", "x"], t) == sum(ref.fills_per_min(k, t) for k in ("m", "x"))
        else:
            b = ref.state("m")
            ref._accrue(b, t, flag)  # the old step: accrue, then the due time by the old scan
            due = _old_due(b)
            if due >= ref.update_sec:
                n, minutes = _old_window(ref, b, t)
                b.fills_per_min = n / minutes if minutes > 0 else 0.0
                b.updated_at = t
            cal.step("m", t, 0.01, flag)
            a = cal.states["m"]
            assert (a.updated_at, a.fills_per_min, a.quoted, a.fill_ts) == (b.updated_at, b.fills_per_min, b.quoted,
                                                                             b.fill_ts)
            b.mult = a.mult  # (the multiplier's own arithmetic is unchanged; the old scan gave the same n, minutes)


# -- PnL: the per-market memo of `PnlBook.parts` and the unrolled totals --------------------------------

def _fresh_parts(book: Any, mids: dict[str, Decimal | None]) -> dict[str, PnlParts]:
    return {cid: lg.parts(mids.get(cid)) for cid, lg in book.ledgers.items()}


def _old_totals(parts: dict[str, PnlParts]) -> PnlParts:
    acc = [Decimal(0)] * 10
    for p in parts.values():
        for i, v in enumerate((p.total, p.realized, p.unrealized, p.spread, p.inventory, p.inventory_usd,
                               p.fees, p.rebates, p.rewards, p.settlement)):
            acc[i] += v
    return PnlParts(*acc)


def _old_rows(book: Any, ts: float, mode: str, parts: dict[str, PnlParts]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tot: dict[str, Any] = {"realized": Decimal(0), "unrealized": Decimal(0), "total": Decimal(0),
                           "spread_pnl": Decimal(0), "inventory_pnl": Decimal(0), "inventory_yes": Decimal(0),
                           "inventory_no": Decimal(0), "inventory_usd": Decimal(0), "cash": Decimal(0), "fills": 0,
                           "volume": Decimal(0), "fees": Decimal(0), "rebates": Decimal(0), "rewards": Decimal(0),
                           "settlement": Decimal(0)}
    for cid, lg in book.ledgers.items():
        p = parts[cid]
        row = {"realized": p.realized, "unrealized": p.unrealized, "total": p.total, "spread_pnl": p.spread,
               "inventory_pnl": p.inventory, "inventory_yes": lg.yes, "inventory_no": lg.no,
               "inventory_usd": p.inventory_usd, "cash": lg.cash, "fills": lg.fills, "volume": lg.volume,
               "fees": p.fees, "rebates": p.rebates, "rewards": p.rewards, "settlement": p.settlement}
        for k, v in row.items():
            tot[k] += v
        out.append({"ts": ts, "market": cid, "mode": mode, **row})
    out.append({"ts": ts, "market": "TOTAL", "mode": mode, **tot})
    return out


decimals = st.sampled_from([Decimal(s) for s in ("0", "0.0", "0.000000", "0.5", "0.50", "0.43", "1.25", "-2.5", "3")])


@given(st.lists(st.tuples(st.sampled_from(("fill", "reward", "fee", "mid", "same", "settle", "none")),
                          st.sampled_from(("a", "b")), decimals, st.integers(1, 98)), max_size=40))
def test_memoized_parts_and_totals_equal_fresh_ones_to_the_exponent(ops):
    import copy

    from pmm_widgets.analytics.pnl import PnlBook
    from pmm_widgets.domain import FillType, Market, Mode, Side

    mk = {c: Market(c, "q", f"y{c}", f"n{c}", Decimal("0.01"), Decimal(5)) for c in ("a", "b")}
    book = PnlBook()
    mids: dict[str, Decimal | None] = {"a": Decimal("0.5"), "b": None}
    for i, (op, cid, d, k) in enumerate(ops):
        lg = book.ledger(cid)
        if op == "fill":
            side = Side.BUY if k % 2 else Side.SELL
            tok = mk[cid].yes_token_id if k % 3 else mk[cid].no_token_id
            book.apply(Fill(f"t{i}", "o", cid, tok, side, Decimal(k) / 100, Decimal(k % 7 + 1), FillType.FILLED,
                            Mode.PAPER, float(i)), mk[cid], mids.get(cid))
        elif op == "reward":
            lg.rewards += d
        elif op == "fee":
            lg.fees += d
        elif op == "mid":
            mids[cid] = Decimal(k) / 100
        elif op == "same":  # an equal mid of another object (and exponent)
            m = mids.get(cid)
            mids[cid] = None if m is None else m.quantize(Decimal("0.0001"))
        elif op == "settle" and not lg.settled:
            lg.settle(k % 2 == 0, mids.get(cid))
        elif op == "none":
            mids[cid] = None
        ref = copy.deepcopy(book)
        ref_mids = dict(mids)
        want = _fresh_parts(ref, ref_mids)
        got = book.parts(mids)
        assert {c: [str(v) for v in dataclasses.astuple(p)] for c, p in got.items()} == \
            {c: [str(v) for v in dataclasses.astuple(p)] for c, p in want.items()}
        for c in book.ledgers:  # the marks the parts left
            assert str(book.ledgers[c].last_mid) == str(ref.ledgers[c].last_mid)
        assert [str(v) for v in dataclasses.astuple(book.totals(mids, got))] == \
            [str(v) for v in dataclasses.astuple(_old_totals(want))]
        rows, old_rows = book.rows(float(i), "paper", mids, got), _old_rows(ref, float(i), "paper", want)
        assert [list(r) for r in rows] == [list(r) for r in old_rows]  # the same keys in the same order
        assert [{k: str(v) for k, v in r.items()} for r in rows] == [{k: str(v) for k, v in r.items()} for r in old_rows]


# -- the intensity fill model's advance, written out, against its reference through the helpers --------

@given(st.lists(st.tuples(st.sampled_from(("t1", "t2", "t3")), st.sampled_from(("BUY", "SELL")), st.integers(1, 99),
                          st.integers(1, 300)), min_size=1, max_size=8),
       st.lists(st.tuples(st.lists(st.tuples(st.integers(1, 99), st.integers(0, 500)), max_size=3),
                          st.lists(st.tuples(st.integers(1, 99), st.integers(0, 500)), max_size=3)), min_size=3, max_size=3),
       st.lists(st.floats(-1.0, 30.0), min_size=1, max_size=4), st.integers(0, 2**32 - 1),
       st.floats(0.0, 50.0), st.floats(0.0, 500.0))
def test_intensity_advance_equals_its_reference_through_the_helpers(orders, books, steps, seed, intensity, spread_k):
    import numpy as np

    from pmm_widgets.domain import BookView, Level, Side
    from pmm_widgets.execution.fill_model import IntensityFillModel, RestingOrder
    from pmm_widgets.execution.fillmodels import IntensityKnobs

    def view(tok: str, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> BookView:
        return BookView(tok, "m", tuple(Level(Decimal(p) / 100, Decimal(s)) for p, s in sorted(bids, reverse=True)),
                        tuple(Level(Decimal(p) / 100, Decimal(s)) for p, s in sorted(asks)), Decimal("0.01"))

    bv = {t: view(t, b, a) for t, (b, a) in zip(("t1", "t2", "t3"), books)}
    bv.pop("t3")  # a token without a book
    knobs = IntensityKnobs(intensity=intensity, spread_k=spread_k)
    fast, ref = IntensityFillModel(knobs, np.random.default_rng(seed)), IntensityFillModel(knobs, np.random.default_rng(seed))
    ros = [RestingOrder(f"o{i}", t, Side(s), Decimal(p) / 100, Decimal(z), Decimal(5)) for i, (t, s, p, z) in enumerate(orders)]
    for m in (fast, ref):
        for o in ros:
            m.on_order(o, None, 0.0)
    now = 0.0
    for dt in steps:
        now += dt
        got, want = fast.advance(now, ros, bv), ref.advance_reference(now, ros, bv)
        assert got == want and [f.raw for f in got] == [f.raw for f in want]
        assert fast.rng.bit_generator.state == ref.rng.bit_generator.state


# -- the guard (yes-space price written out) and the markouts (one mid per token) against the old code --

def _old_guard(ctx: Any, quotes: Any, regime: Any) -> tuple[list[Any], str | None]:
    from pmm_widgets.strategy.base import Regime
    from pmm_widgets.strategy.guard import _malformed, reduces
    from pmm_widgets.strategy.inventory import net_delta
    from pmm_widgets.strategy.quoting import yes_space_price

    m, inv, tick = ctx.market, ctx.inventory, ctx.tick
    min_size = max(m.min_order_size, ctx.yes.min_order_size, ctx.no.min_order_size)
    reason = None
    if regime is Regime.HALTED:
        quotes = list(quotes)
        return [], ("halted" if quotes else None)
    kept, top_bid, low_ask = [], None, None
    for q in quotes:
        why = _malformed(m, q, inv.yes, inv.no, tick, min_size)
        if why is None:
            kind, yp = yes_space_price(m, q)
            t = yp / tick
            if kind == "bid" and t >= ctx.ask_ticks:
                why = f"bid {yp} would cross the ask {tick * ctx.ask_ticks}"
            elif kind == "ask" and t <= ctx.bid_ticks:
                why = f"ask {yp} would cross the bid {tick * ctx.bid_ticks}"
            elif regime is Regime.REDUCE_ONLY and \
                    not reduces(inv.net, inv.net + net_delta(m, q.token_id, q.side, q.size)):
                why = "reduce-only: the quote would not reduce the position"
            elif kind == "bid":
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


@given(st.lists(st.tuples(st.sampled_from(("y", "n", "x")), st.sampled_from(("BUY", "SELL")), st.integers(-2, 102),
                          st.sampled_from(("5", "10", "7.5", "3", "10.001"))), max_size=4),
       st.integers(1, 97), st.integers(1, 5), st.sampled_from(("normal", "wide", "reduce-only", "halted")),
       st.sampled_from(("0", "20", "6")), st.sampled_from(("0", "15", "5")), st.booleans())
def test_the_guard_equals_the_old_one(qs, b, width, regime, held_yes, held_no, shared):
    from pmm_widgets.domain import BookView, Market, Side
    from pmm_widgets.strategy.base import Regime
    from pmm_widgets.strategy.guard import guard_quotes

    tick = Decimal("0.01")
    m = Market("c", "q", "y", "n", tick, Decimal(5))
    v = BookView("y", "c", (), (), tick)
    ctx = MarketContext(m, v, v, tick, b, min(b + width, 99), Inventory(Decimal(held_yes), Decimal(held_no)), None)  # type: ignore[arg-type]
    sizes = {z: Decimal(z) for z in ("5", "10", "7.5", "3", "10.001")}  # `shared`: the very same size objects
    quotes = [Quote("c" if tok != "x" else "other", tok, Side(side), Decimal(p) / 100,
                    sizes[size] if shared else Decimal(size)) for tok, side, p, size in qs]
    for _ in range(2):  # (the guard keeps the last on-grid size: the second pass starts with it)
        assert guard_quotes(ctx, quotes, Regime(regime)) == _old_guard(ctx, quotes, Regime(regime))


@given(st.lists(st.tuples(st.sampled_from(("y1", "n1", "y2")), st.floats(0.0, 200.0), st.integers(1, 99)), max_size=12),
       st.lists(st.tuples(st.floats(0.0, 60.0), st.dictionaries(st.sampled_from(("y1", "n1", "y2")),
                                                                st.one_of(st.none(), st.integers(1, 99)))),
                max_size=8))
def test_markouts_ask_each_tokens_mid_once_and_complete_what_they_did(fills, steps):
    import copy

    from pmm_widgets.analytics.markouts import MarkoutTracker
    from pmm_widgets.domain import FillType, Mode, Side
    from pmm_widgets.store.sink import MemorySink

    fast, ref = MarkoutTracker(MemorySink()), MarkoutTracker(MemorySink())
    for i, (tok, ts, p) in enumerate(sorted(fills, key=lambda f: f[1])):
        f = Fill(f"t{i}", "o", "c", tok, Side.BUY if i % 2 else Side.SELL, Decimal(p) / 100, Decimal(5), FillType.FILLED,
                 Mode.PAPER, ts)
        for t in (fast, ref):
            t.on_fill(f, Decimal(p) / 100 if i % 3 else None)
    ref_pending = copy.deepcopy(ref._pending)
    ref._pending = ref_pending
    now = 0.0
    for dt, mids in steps:
        now += dt
        asked: list[str] = []

        def mid_of(tok: str, _mids: dict[str, int | None] = mids, _asked: list[str] = asked) -> Decimal | None:
            _asked.append(tok)
            v = _mids.get(tok)
            return None if v is None else Decimal(v) / 100

        got = fast.advance(now, mid_of)
        n_asked = len(asked)
        # the old loop: one `mid_of` per pending fill
        done, still = [], []
        for p in ref._pending:
            tok = p.fill.token_id
            mid = mid_of(tok)
            if mid is not None:
                ref._last_mid[tok] = mid
            else:
                mid = ref._last_mid.get(tok)
            while p.next_idx < len(ref.horizons) and now >= p.fill.ts + ref.horizons[p.next_idx]:
                h = ref.horizons[p.next_idx]
                p.next_idx += 1
                if mid is None:
                    continue
                px = float(p.sign * (mid - p.fill.price))
                row = ref._row(p, h, mid, px, now)
                ref.rec.markout(row)
                done.append(Markout(p.fill.trade_id, p.fill.market, h, px, row.markout_usd))
            if p.next_idx < len(ref.horizons):
                still.append(p)
        ref._pending = still
        assert got == done and n_asked == len({p for p in asked[:n_asked]})
        assert fast._last_mid == ref._last_mid and fast.pending == ref.pending
    assert fast.rec.sink.rows == ref.rec.sink.rows  # type: ignore[attr-defined]


def _old_screen(rm: Any, market: Any, quotes: Any, inv: Any, mid: Decimal, total: Decimal) -> Screened:
    from pmm_widgets.domain import Side
    from pmm_widgets.strategy.inventory import net_delta
    from pmm_widgets.strategy.quoting import yes_space_price
    from pmm_widgets.strategy.risk import TOTAL_RULE, exposure_usd

    p = rm.params
    out, flags, totals = [], [], []
    cid = market.condition_id
    net = inv.net
    own = exposure_usd(net, mid)
    for q in quotes:
        _, yp = yes_space_price(market, q)
        new_net = net + net_delta(market, q.token_id, q.side, q.size)
        growing = abs(new_net) > abs(net)
        held = inv.yes if q.token_id == market.yes_token_id else inv.no
        new_usd = exposure_usd(new_net, mid)
        rule = None
        if abs(yp - mid) > p.price_band:
            rule = ("price band", cid, f"quote {yp} further than {p.price_band} from mid {mid}")
        elif growing and abs(new_net) > p.max_inventory_shares:
            rule = ("inventory shares", cid, f"net inventory {net} near limit {p.max_inventory_shares} shares")
        elif q.side is Side.BUY and held + q.size > p.max_inventory_shares:
            rule = ("token shares", cid, f"token holding {held} near limit {p.max_inventory_shares} shares")
        elif growing and new_usd > p.max_inventory_usd:
            rule = ("inventory usd", cid, f"inventory {own:.2f} USD near limit {p.max_inventory_usd}")
        elif growing:
            over = rm._total_over(total, own, new_usd)
            totals.append((own, new_usd, over))
            if over:
                rule = (TOTAL_RULE, None, "")
        if rule is None:
            out.append(q)
        else:
            flags.append(rule)
    return Screened(tuple(out), tuple(flags), tuple(totals))


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(("y", "n")), st.sampled_from(("BUY", "SELL")), st.integers(1, 99),
                          st.sampled_from(("5", "50", "400", "10.5", "20", "40", "60"))), max_size=4),
       st.sampled_from(("0", "30", "480", "-20")), st.sampled_from(("0", "10", "499")), st.integers(1, 99),
       st.sampled_from(("0", "50", "900", "2000")))
def test_the_risk_screen_equals_the_old_one(qs, yes, no, mid, total):
    """(Sizes of twice a net position: a quote that flips the position to the same size, not growing.)"""
    from pmm_widgets.config import Params
    from pmm_widgets.domain import Market, Side
    from pmm_widgets.events import EventBus
    from pmm_widgets.strategy.risk import RiskManager

    rm = RiskManager(Params(), EventBus())
    m = Market("c", "q", "y", "n", Decimal("0.01"), Decimal(5))
    inv = Inventory(Decimal(yes).copy_abs(), Decimal(no))
    quotes = [Quote("c", tok, Side(side), Decimal(p) / 100, Decimal(size)) for tok, side, p, size in qs]
    args = (m, quotes, inv, Decimal(mid) / 100, Decimal(total))
    assert rm.screen(*args) == _old_screen(rm, *args)


def _old_plan(wanted: Any, open_orders: Any, tick_of: Any, requote_ticks: int) -> Any:
    from pmm_widgets.strategy.planner import Plan

    by_key: dict[Any, list[Any]] = {}
    for o in open_orders:
        by_key.setdefault((o.token_id, o.side), []).append(o)
    kept: set[str] = set()
    out = Plan()
    for q in wanted:
        band = tick_of(q.token_id) * requote_ticks
        best = None
        for o in by_key.get((q.token_id, q.side), ()):
            if o.client_id in kept or abs(o.price - q.price) > band or o.remaining > q.size:
                continue
            if best is None or abs(o.price - q.price) < abs(best.price - q.price):
                best = o
        if best is None:
            out.place.append(q)
        else:
            kept.add(best.client_id)
    out.cancel = [o.client_id for o in open_orders if o.client_id not in kept]
    return out


@given(st.lists(st.tuples(st.sampled_from(("a", "b")), st.sampled_from(("BUY", "SELL")), st.integers(1, 99),
                          st.integers(1, 20)), max_size=8),
       st.lists(st.tuples(st.sampled_from(("a", "b")), st.sampled_from(("BUY", "SELL")), st.integers(1, 99),
                          st.integers(1, 20), st.integers(0, 20)), max_size=10),
       st.integers(0, 3), st.booleans())
def test_the_plan_equals_the_old_one(wanted, orders, requote_ticks, shared):
    from pmm_widgets.domain import Mode, Order, Side
    from pmm_widgets.strategy.planner import plan

    ws = [Quote("c", t, Side(s), Decimal(p) / 100, Decimal(z)) for t, s, p, z in wanted]
    os_ = [Order(f"o{i}", "c", t, Side(s), Decimal(p) / 100, Decimal(z), Mode.PAPER, filled=min(Decimal(f), Decimal(z)))
           for i, (t, s, p, z, f) in enumerate(orders)]

    ticks = {"a": Decimal("0.01"), "b": Decimal("0.001")}

    def tick_of(tok: str) -> Decimal:  # `shared`: each token's tick the very same object (`plan` keeps its band)
        return ticks[tok] if shared else Decimal("0.01") if tok == "a" else Decimal("0.001")

    got, want = plan(ws, os_, tick_of, requote_ticks), _old_plan(ws, os_, tick_of, requote_ticks)
    assert (got.place, got.cancel) == (want.place, want.cancel)


# -- ReplaySink without an inner sink (benches, sweeps): what it keeps equals the general path's ------------

@given(st.lists(st.tuples(st.sampled_from(("insert", "upsert")),
                          st.sampled_from(("orders", "trades", "pnl", "events", "markouts", "reward_estimates",
                                           "settlements", "markets")),
                          st.sampled_from(("a", "b", "c")), st.booleans(), st.integers(0, 9), st.booleans()),
                max_size=30))
def test_a_replay_sink_without_inner_keeps_what_the_general_path_keeps(ops):
    from pmm_widgets.research.replayer import ReplaySink
    from pmm_widgets.store.sink import MemorySink

    fast, general = ReplaySink(None, "RUN"), ReplaySink(MemorySink(), "RUN")
    for how, table, key, with_mode, v, extra in ops:
        row: dict[str, Any] = {"client_id": key, "trade_id": key, "market": key, "v": v}
        if with_mode:
            row["mode"] = "paper"
        if extra:
            row[f"x{v}"] = v  # a key the kept row may not have yet
        for sink in (fast, general):
            if how == "insert":
                sink.insert(table, dict(row))
            else:
                sink.upsert(table, dict(row), key=["client_id"])
    for name in ("orders", "trades", "markouts", "rewards", "settlements", "rows"):
        a, b = getattr(fast, name), getattr(general, name)
        assert a == b, name
        if isinstance(a, dict):
            assert [list(r) for r in a.values()] == [list(r) for r in b.values()], name  # key order too


def _old_fair_yes(yes: Any, no: Any, b: int, a: int, tick: Decimal) -> float:
    tf = float(tick)
    est: list[float] = []
    my = yes.microprice
    if my is not None:
        est.append(float(my))
    mn = no.microprice
    if mn is not None:
        est.append(1.0 - float(mn))
    fair = sum(est) / len(est) if est else (b + a) * tf / 2
    return min(max(fair, b * tf), a * tf)


levels = st.lists(st.tuples(st.integers(1, 999), st.integers(0, 10**6)), max_size=2)


@given(levels, levels, levels, levels, st.integers(1, 998), st.integers(1, 5), st.sampled_from(("0.01", "0.001", "0.1")))
def test_fair_yes_equals_the_old_mean_of_its_estimates(yb, ya, nb, na, b, width, tick):
    from pmm_widgets.domain import BookView, Level
    from pmm_widgets.strategy.quoting import fair_yes

    t = Decimal(tick)

    def view(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> BookView:
        return BookView("x", "c", tuple(Level(Decimal(p) / 1000, Decimal(s) / 100) for p, s in bids),
                        tuple(Level(Decimal(p) / 1000, Decimal(s) / 100) for p, s in asks), t)

    yv, nv = view(yb, ya), view(nb, na)
    got, want = fair_yes(yv, nv, b, b + width, t), _old_fair_yes(yv, nv, b, b + width, t)
    assert got == want and str(got) == str(want)


# -- the seed strategy's ticks from floats, token_quotes' quote-size floor, the risk verdict's reuse -----------

def _old_spread_ticks(market: Any, yes: Any, no: Any, params: Any, inventory: Any, calib_mult: float, vol: Any,
                      tick: Decimal, b: int, a: int) -> tuple[int, int]:
    import math

    from pmm_widgets.strategy.quoting import _fair_yes

    tf = float(tick)
    fair = _fair_yes(yes, no, b, a, tf)
    vol_term = max(vol.get(market.yes_token_id, 0.0), vol.get(market.no_token_id, 0.0))
    base = max(vol_term, (a - b) * tf / 2.0, tf)
    h = params.alpha * calib_mult * base
    limit = float(params.max_inventory_shares)
    x = max(-1.0, min(1.0, float(inventory.net) / limit))
    shift = params.skew * h * x
    bid_t = math.floor((fair - h - shift) / tf + 1e-9)
    ask_t = math.ceil((fair + h - shift) / tf - 1e-9)
    if ask_t <= bid_t:
        ask_t = bid_t + 1
    return bid_t, ask_t


@given(levels, levels, st.integers(1, 97), st.integers(1, 5), st.sampled_from(("0.01", "0.001")),
       st.floats(0.0, 0.2), st.floats(0.0, 0.2), st.floats(0.1, 5.0), st.floats(0.5, 3.0), st.floats(0.0, 1.0),
       st.integers(-300, 300), st.integers(0, 300), st.sampled_from(("50", "200", "1000")))
def test_spread_ticks_through_ticks_at_equal_the_old_body(yb, ya, b, width, tick, sy, sn, alpha, mult, skew, net, no,
                                                          limit):
    from pmm_widgets.config import Params
    from pmm_widgets.domain import BookView, Level, Market
    from pmm_widgets.strategy.quoting import spread_ticks

    t = Decimal(tick)
    m = Market("c", "q", "y", "n", t, Decimal(5))

    def lv(side: list[tuple[int, int]]) -> tuple[Level, ...]:
        return tuple(Level(Decimal(p) / 1000, Decimal(s) / 100) for p, s in side)

    yv = BookView("y", "c", lv(yb), lv(ya), t)
    nv = BookView("n", "c", lv(ya), lv(yb), t)
    p = Params(alpha=alpha, skew=skew, max_inventory_shares=Decimal(limit))
    inv = Inventory(Decimal(max(net, 0) + no), Decimal(no))
    vol = {"y": sy, "n": sn}
    a = b + width
    assert spread_ticks(m, yv, nv, p, inv, mult, vol, t, b, a) == _old_spread_ticks(m, yv, nv, p, inv, mult, vol, t, b, a)


@given(st.lists(st.sampled_from(("10", "10.00", "25", "7.555", "0.5", "100")), min_size=1, max_size=6),
       st.integers(0, 40))
def test_token_quotes_keep_the_floor_of_the_quote_size_it_was_computed_of(sizes, held):
    from pmm_widgets.config import Params
    from pmm_widgets.domain import BookView, Market
    from pmm_widgets.strategy.quoting import token_quotes
    from pmm_widgets.ticks import floor_size

    t = Decimal("0.01")
    m = Market("c", "q", "y", "n", t, Decimal(5))
    v = BookView("y", "c", (), (), t, Decimal("0.5"))
    p = Params()
    for z in sizes:  # the parameter changes (equal values of another exponent too) and stays
        p.quote_size = Decimal(z)
        for _ in range(2):
            got = token_quotes(m, v, v, p, Inventory(Decimal(held), ZERO_), t, 40, 45, 41, 44)
            want = max(floor_size(p.quote_size), Decimal(5))
            assert [str(q.size) for q in got if q.side.value == "BUY"] == [str(want)] * sum(q.side.value == "BUY" for q in got)
            assert got, (z, held)


ZERO_ = Decimal(0)


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 200), st.booleans()), max_size=5), st.integers(0, 500),
       st.integers(1, 400))
def test_still_holds_equals_all_of_the_totals(totals, total, limit):
    from pmm_widgets.config import Params
    from pmm_widgets.events import EventBus
    from pmm_widgets.strategy.risk import RiskManager

    rm = RiskManager(Params(max_total_inventory_usd=Decimal(limit)), EventBus())
    s = Screened((), (), tuple((Decimal(o), Decimal(n), over) for o, n, over in totals))
    tot = Decimal(total)
    assert rm.still_holds(s, tot) is all(rm._total_over(tot, own, new) is over for own, new, over in s.totals)


@given(st.lists(st.one_of(st.none(), st.sampled_from(("0", "1.25", "0.000001", "3.10", "-0"))), max_size=6))
def test_rewards_per_hour_equals_the_sum_of_usd_per_hour(rates):
    from types import SimpleNamespace

    from pmm_widgets.config import Params
    from pmm_widgets.domain import ZERO, Market, Mode
    from pmm_widgets.engine.cycle import QuoteCycle
    from pmm_widgets.store.sink import MemorySink

    qc = QuoteCycle(Params(), MemorySink(), Mode.PAPER)
    qc._markets = [Market(f"c{i}", "q", f"y{i}", f"n{i}", Decimal("0.01"), Decimal(5)) for i in range(len(rates) + 1)]
    qc.econ.last = {f"c{i}": SimpleNamespace(usd_per_hour=None if r is None else Decimal(r))  # type: ignore[misc]
                    for i, r in enumerate(rates)}
    want = sum((qc.econ.usd_per_hour(m.condition_id) or ZERO for m in qc._markets), ZERO)
    got = qc._rewards_per_hour()
    assert str(got) == str(want)
