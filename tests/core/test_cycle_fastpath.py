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
