"""The feed's fast paths of issue 15 (fourth pass) give exactly what the general code gives.

- `safejson.brackets` counts `[` and `{` with numpy for long texts: the same number as the two
  `str.count` scans it replaces, for any text (str with any characters, lone surrogates
  included; bytes; bytearray), so `shallow` / `loads` decide alike.
- `OrderBook.apply_event` parses a lone entry without a list, and `apply_event` / `_parse_side`
  read the size cache by `get` (a miss: `_size_of`), not by a subscript whose KeyError they
  caught: the books stay those of the reference path (tests/core/test_book_fastpath.py runs its
  random sequences through this code), and a new or invalid size behaves as before.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets import book, safejson
from pmm_widgets.book import OrderBook

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


def test_a_new_size_applies_and_an_invalid_one_refuses() -> None:
    """A size new to the cache is validated by `_size_of` (`apply_event` reads the cache by `get`:
    no KeyError caught per new size) and stored; an invalid one refuses the event (-1, counted),
    the book unchanged; alike with one entry (its own path) and with several."""
    from pmm_widgets.venue.wire import PriceChange

    for many in (False, True):
        book._SIZES.clear()
        b = OrderBook("t", "m")
        pre = [PriceChange("t", "0.4", "1", "BUY")] if many else []
        assert b.apply_event(pre + [PriceChange("t", "0.5", "17.25", "BUY")], None, None, 1.0) == 0
        assert "17.25" in book._SIZES and b.bids[50] == Decimal("17.25")
        assert b.apply_event(pre + [PriceChange("t", "0.5", "-3", "BUY")], None, None, 2.0) == -1
        assert b.rejected == 1 and b.bids[50] == Decimal("17.25") and b.ts == 1.0 and "-3" not in book._SIZES
        assert b.apply_event(pre + [PriceChange("t", "0.5", "0", "BUY")], None, None, 3.0) == 0
        assert 50 not in b.bids and b.ts == 3.0
