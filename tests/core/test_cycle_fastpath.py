"""The quote cycle's fast paths against the general code they replace (issue 15).

`slot_init`: the frozen slotted dataclasses the cycle builds per market per cycle get an
`__init__` that sets their slots through the member descriptors; each must build exactly the
object the `@dataclass`-generated `__init__` builds (same fields, defaults, default factories,
same errors for a wrong call), and the class stays frozen.
"""

from __future__ import annotations

import dataclasses
import inspect
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.analytics.markouts import Markout
from pmm_widgets.analytics.pnl import PnlParts
from pmm_widgets.domain import Fill, Quote, slot_init
from pmm_widgets.economics.tracker import FillEconomics
from pmm_widgets.execution.fill_model import ModelFill
from pmm_widgets.strategy.base import Decision, MarketContext
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.risk import Screened

FAST = (Quote, Fill, MarketContext, Decision, Inventory, Screened, Markout, PnlParts, FillEconomics, ModelFill)


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
