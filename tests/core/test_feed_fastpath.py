"""The feed's fast paths of issue 15 (fourth pass) give exactly what the general code gives.

- `safejson.brackets` counts `[` and `{` with numpy for long texts: the same number as the two
  `str.count` scans it replaces, for any text (str with any characters, lone surrogates
  included; bytes; bytearray), so `shallow` / `loads` decide alike.
- `book._SIZES` validates a size on a miss (`__missing__`) instead of the hot paths catching a
  KeyError: a subscript gives `OrderBook._size_of`'s Decimal or raises its BookError, and caches
  exactly what `_size_of` caches.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets import book, safejson
from pmm_widgets.book import BookError, OrderBook

_CHARS = st.characters(codec=None, blacklist_categories=())  # any code point, surrogates included
_JSONISH = st.sampled_from(list('[]{}",:0123456789.abc \n') + ["é", "\U0001F600", "\ud800", "\x7b", "\x5b", "\x1b", "\xfb"])


def _ref(text: Any) -> int:
    if isinstance(text, (bytes, bytearray)):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(_JSONISH, max_size=5000), st.text(_CHARS, max_size=300)),
       st.integers(0, 3000), st.sampled_from(["str", "bytes", "bytearray"]))
def test_brackets_equal_the_two_counts(text: str, pad: int, kind: str) -> None:
    text = text + "x" * pad if pad % 2 else "[" * pad + text  # both sides of the numpy threshold
    if kind != "str":
        raw = text.encode("utf-8", "surrogatepass")
        obj: Any = raw if kind == "bytes" else bytearray(raw)
    else:
        obj = text
    assert safejson.brackets(obj) == _ref(obj)


@pytest.mark.parametrize("n", [safejson.MAX_DEPTH - 1, safejson.MAX_DEPTH])
def test_shallow_and_loads_decide_at_the_same_count(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long texts (counted by numpy) just under and at the limit: orjson's check runs exactly from
    `MAX_DEPTH` brackets on, as with the two scans."""
    import orjson

    calls: list[int] = []
    real = orjson.loads
    monkeypatch.setattr(safejson.orjson, "loads", lambda t: calls.append(1) or real(t))
    flat = "[" + ",".join(["{}"] * (n - 1)) + "]" + " " * 2048  # n brackets, depth 2
    deep = "[" * n + "]" * n + " " * 2048  # n brackets, depth n
    for text in (flat, flat.encode(), bytearray(deep.encode()), deep):
        assert len(text) >= 2048 and safejson.brackets(text) == n == _ref(text)
        calls.clear()
        assert safejson.shallow(text) and safejson.loads(text) is not None
        assert len(calls) == (2 if n >= safejson.MAX_DEPTH else 0)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(st.sampled_from(list("0123456789.-eE+ _x")), max_size=12), st.sampled_from(
    ["1", "0", "-1", "1e3", "NaN", "Infinity", "1e999", "5" * 41, "12.50", "1_000", ""]),
    st.integers(-5, 10**12), st.decimals(allow_nan=True).filter(lambda d: not d.is_snan())))
def test_size_cache_subscript_is_size_of(v: Any) -> None:
    book._SIZES.clear()
    try:
        want: Decimal | str = OrderBook._size_of(v)
    except BookError as exc:
        want = f"BookError: {exc}"
    cached = dict(book._SIZES)
    book._SIZES.clear()
    try:
        got: Decimal | str = book._SIZES[v]
    except BookError as exc:
        got = f"BookError: {exc}"
    assert got == want and type(got) is type(want)
    assert dict(book._SIZES) == cached  # the same entries stored (a text's Decimal; nothing else)
    assert (v in book._SIZES) is (type(v) is str and not isinstance(want, str))


def test_size_cache_miss_raises_no_key_error() -> None:
    """A new size is validated by the subscript itself; an invalid one refuses the event (-1,
    counted), the book unchanged, as before."""
    from pmm_widgets.venue.wire import PriceChange

    b = OrderBook("t", "m")
    assert b.apply_event([PriceChange("t", "0.5", "17.25", "BUY")], None, None, 1.0) == 0
    assert "17.25" in book._SIZES and b.bids == {50: Decimal("17.25")}
    assert b.apply_event([PriceChange("t", "0.5", "-3", "BUY")], None, None, 2.0) == -1
    assert b.rejected == 1 and b.bids == {50: Decimal("17.25")} and b.ts == 1.0
    with pytest.raises(BookError, match="negative"):
        book._SIZES["-3"]
