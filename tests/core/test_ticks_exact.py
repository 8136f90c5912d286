"""pmm_widgets/ticks.py at its edges (a mutation pass): the clamp's upper bound, the venue's tick
and minimum-size checks with their text memo, parsing without float artefacts, zero ticks, the
size grid, and the memo of the grid checks."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets import ticks as ticks_module
from pmm_widgets.ticks import (
    ALLOWED_TICK_SET,
    ALLOWED_TICKS,
    MAX_MIN_ORDER_SIZE,
    MAX_SIZE,
    clamp_price,
    on_size_grid,
    sane_min_size,
    ticks_to_price,
    to_decimal,
    valid_price,
    venue_tick,
)

D = Decimal


@pytest.fixture(autouse=True)
def empty_memos(monkeypatch):
    monkeypatch.setattr(ticks_module, "_TICK_TEXTS", {})
    monkeypatch.setattr(ticks_module, "_MIN_SIZE_TEXTS", {})


@given(st.sampled_from(ALLOWED_TICKS), st.decimals(min_value=-2, max_value=3, places=4))
def test_a_clamped_price_is_within_tick_and_one_less_tick(tick, price):
    out = clamp_price(price, tick)
    assert tick <= out <= 1 - tick
    assert out == price or out in (tick, 1 - tick)


def test_the_clamp_at_both_ends():
    assert clamp_price(D("0.995"), D("0.01")) == D("0.99")
    assert clamp_price(D("1.5"), D("0.001")) == D("0.999")
    assert clamp_price(D("0"), D("0.01")) == D("0.01") and clamp_price(D("0.5"), D("0.01")) == D("0.5")


def test_constants():
    assert ALLOWED_TICK_SET == {D("0.1"), D("0.01"), D("0.005"), D("0.0025"), D("0.001"), D("0.0001")}
    assert MAX_MIN_ORDER_SIZE == D(100_000) and MAX_SIZE == D(10) ** 12


@pytest.mark.parametrize(("text", "tick"), [("0.01", D("0.01")), ("0.010", D("0.010")), (" 0.001 ", D("0.001")),
                                            (0.1, D("0.1")), (D("0.0025"), D("0.0025")),
                                            ("0.02", None), ("NaN", None), ("Infinity", None), ("tick", None),
                                            (None, None), ("", None), (0.3, None)])
def test_venue_tick_accepts_the_venues_ticks_only(text, tick):
    assert venue_tick(text) == tick
    assert venue_tick(text) == tick  # the memo answers the same


def test_venue_tick_remembers_a_texts_answer_and_spelling():
    first = venue_tick("0.0100")
    assert str(first) == "0.0100" and venue_tick("0.0100") is first  # the very Decimal again
    assert ticks_module._TICK_TEXTS == {"0.0100": first}
    assert venue_tick("0.5") is None and ticks_module._TICK_TEXTS["0.5"] is None  # a refusal remembered too
    assert venue_tick(D("0.01")) == D("0.01") and D("0.01") not in ticks_module._TICK_TEXTS  # only texts


def test_the_text_memo_is_bounded_and_skips_long_texts(monkeypatch):
    monkeypatch.setattr(ticks_module, "_TICK_TEXTS_MAX", 3)
    long = "0.0100000000000000000000000000000"  # 33 characters: answered, not remembered
    assert len(long) == 33 and venue_tick(long) == D("0.01") and long not in ticks_module._TICK_TEXTS
    exactly = long[:32]
    assert venue_tick(exactly) == D("0.01") and exactly in ticks_module._TICK_TEXTS
    for t in ("0.1", "0.001"):
        venue_tick(t)
    assert len(ticks_module._TICK_TEXTS) == 3
    venue_tick("0.005")  # full: emptied, then this one kept
    assert ticks_module._TICK_TEXTS == {"0.005": D("0.005")}


@pytest.mark.parametrize(("text", "size"), [("5", D(5)), ("0.01", D("0.01")), ("100000", D(100_000)),
                                            ("100000.01", None), ("0", None), ("-5", None), ("nan", None), ("x", None)])
def test_a_sane_minimum_order_size_is_in_0_to_100000(text, size):
    assert sane_min_size(text) == size
    assert ticks_module._MIN_SIZE_TEXTS[text] == size


def test_parsing_keeps_the_text_not_the_float():
    assert str(to_decimal(0.1)) == "0.1" and str(to_decimal(" .48 ")) == "0.48"
    d = D("0.4300")
    assert to_decimal(d) is d
    assert to_decimal(5) == 5


def test_zero_ticks_is_zero_and_others_are_normalized():
    assert ticks_to_price(0, D("0.010")) == 0 and str(ticks_to_price(0, D("0.01"))) == "0"
    assert str(ticks_to_price(50, D("0.010"))) == "0.5"


def test_the_size_grid():
    assert on_size_grid(D("5.01")) and on_size_grid(D("5")) and not on_size_grid(D("5.001"))
    assert not on_size_grid(D("0.009"))


def test_grid_checks_are_memoized_only_for_finite_decimals():
    assert valid_price(D("0.5"), D("0.01")) and not valid_price(D("0.995"), D("0.01"))
    assert not valid_price(D("0.99"), D("0.1")) and valid_price(D("0.9"), D("0.1"))
    with pytest.raises(TypeError):
        valid_price(0.5, D("0.01"))  # a float is computed as before: it fails as it did
    assert valid_price(D("NaN"), D("0.01")) is False  # not finite: computed, never cached
    assert on_size_grid(D("Infinity")) is False
