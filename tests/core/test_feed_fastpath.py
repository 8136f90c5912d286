"""The feed's fast paths of issue 15 (fourth pass) give exactly what the general code gives.

- `safejson.brackets` counts `[` and `{` with numpy for long texts: the same number as the two
  `str.count` scans it replaces, for any text (str with any characters, lone surrogates
  included; bytes; bytearray), so `shallow` / `loads` decide alike.
- `OrderBook.apply_event` hands a lone entry to `apply_one` (no list), and `apply_one` /
  `apply_event` / `_parse_side` read the size cache by `get` (a miss: `_size_of`), not by a subscript whose KeyError they
  caught: the books stay those of the reference path (tests/core/test_book_fastpath.py runs its
  random sequences through this code), and a new or invalid size behaves as before.
"""

from __future__ import annotations

from collections.abc import Callable
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
    the book unchanged; alike with one entry (its own path, `apply_one`) and with several."""
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


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_built_levels_are_levels(data: st.DataObject) -> None:
    """`_level` (a `_NewLevel` made a `Level`) is a `Level` in every respect: type, fields (the
    very objects), equality, hash, repr, frozen, pickled and copied alike; `apply_event` and
    snapshots build their levels the same way (their lists equal `Level(...)`s)."""
    import copy
    import dataclasses
    import pickle

    from pmm_widgets.book import _level
    from pmm_widgets.domain import Level
    from pmm_widgets.venue.wire import PriceChange

    p = data.draw(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.999"), places=3))
    s = data.draw(st.decimals(min_value=0, max_value=10**6, places=2))
    lv, ref = _level(p, s), Level(p, s)
    assert type(lv) is Level and lv.price is p and lv.size is s
    assert lv == ref and hash(lv) == hash(ref) and repr(lv) == repr(ref)
    assert pickle.loads(pickle.dumps(lv)) == ref and copy.copy(lv) == ref and dataclasses.astuple(lv) == (p, s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lv.size = s  # type: ignore[misc]
    b = OrderBook("t", "m", Decimal("0.001"))
    assert b.apply_event([PriceChange("t", str(p), str(s), "SELL")], None, None, 1.0) >= 0
    assert all(type(x) is Level for x in b._ask_lv + b._bid_lv)
    if s:
        assert b._ask_lv == [Level(p.normalize(), Decimal(str(s)))]


@pytest.mark.parametrize("replay", [False, True])
def test_listener_staleness_reads_the_connections_like_is_live(replay: bool) -> None:
    """`MarketData._on_books` reads `stream.live_conns()` instead of calling `is_live` per book:
    every note's `stale` is `is_stale` of its book at the frame's time, for each connection state
    (open, closed, none; a replay's stream tracking its recording's connections or not) and each
    other reason (a resync due, no update for `stale_sec`)."""
    from pmm_widgets.book import BookNote
    from pmm_widgets.research.replayer import ReplayStream
    from pmm_widgets.store.sink import MemorySink
    from pmm_widgets.venue.market_data import MarketData
    from pmm_widgets.venue.market_stream import MarketStream, _Conn

    now = 1_000.0
    md = MarketData(None, "ws://x", MemorySink(), stale_sec=10.0, clock=lambda: now,
                    stream_cls=ReplayStream if replay else MarketStream)
    up, down = _Conn(0), _Conn(1)
    up.ws = object()  # type: ignore[assignment]
    conn_of = {"up": up, "down": down, "resync": up, "old": up}  # "none": no connection
    for t in ("up", "down", "none", "resync", "old"):
        b = md.books[t] = OrderBook(t, "m")
        b.synced, b.ts = True, now - (20.0 if t == "old" else 1.0)
        b.needs_resync = t == "resync"
        if t in conn_of:
            md.stream._conn_of[t] = conn_of[t]
    got: dict[str, bool] = {}

    def listen(n: BookNote) -> None:
        got[n.token_id] = n.stale

    md.add_listener(on_book=listen)
    for tracking in ((False, True) if replay else (True,)):
        if replay:
            md.stream.tracking = tracking  # type: ignore[attr-defined]
        got.clear()
        md._on_books(set(md.books))
        want = {t: md.is_stale(b, now) for t, b in md.books.items()}
        assert got == want
        assert want == {"up": False, "down": tracking, "none": tracking, "resync": True, "old": True}


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=5), st.text(max_size=5), st.integers(0, 4), st.integers(0, 4), st.floats(allow_nan=False),
       st.integers(0, 10**13), st.booleans(), st.booleans())
def test_built_views_are_views(token: str, market: str, nb: int, na: int, ts: float, vts: int, stale: bool,
                               crossed: bool) -> None:
    """`_book_view` (a `_NewBookView` made a `BookView`) equals the `BookView(...)` of the same
    fields in every respect, `dataclasses.replace` (`OrderBook.view(stale=True)`) included; a
    `BookNote`'s view and `OrderBook.view` give `BookView`s."""
    import dataclasses
    import pickle

    from pmm_widgets.book import _book_view, _level
    from pmm_widgets.domain import BookView

    bids = tuple(_level(Decimal(f"0.{40 - i}"), Decimal(i + 1)) for i in range(nb))
    asks = tuple(_level(Decimal(f"0.{60 + i}"), Decimal(i + 1)) for i in range(na))
    args = (token, market, bids, asks, Decimal("0.01"), Decimal(5), ts, vts, stale, crossed)
    v, ref = _book_view(*args), BookView(*args)
    assert type(v) is BookView and v == ref and repr(v) == repr(ref) and pickle.loads(pickle.dumps(v)) == ref
    assert all(getattr(v, f.name) is a for f, a in zip(dataclasses.fields(BookView), args))
    assert dataclasses.replace(v, stale=True) == dataclasses.replace(ref, stale=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.stale = not stale  # type: ignore[misc]
    b = OrderBook(token or "t", market)
    n = b.note(stale)
    assert type(n.view()) is BookView and type(b.view()) is BookView and n.view() == b.view(stale=stale)


def _levels_ref(ticks: list[int], sizes: dict[int, Decimal], grid: list[Decimal], old: dict[int, Any]) -> list[Any]:
    """`book._levels` before the same-ticks path: the old levels looked up in a dict."""
    from pmm_widgets.domain import Level

    out = []
    for t in ticks:
        s, p = sizes[t], grid[t]
        o = old.get(t)
        out.append(o if o is not None and o.size is s and o.price is p else Level(p, s))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 99), max_size=12, unique=True), st.data())
def test_snapshot_levels_equal_the_dict_lookup(old_ticks: list[int], data: st.DataObject) -> None:
    """`_levels` picks the same old `Level` objects (or equal new ones) as the dict lookup did,
    whether the snapshot has the very ticks of the side before (its own path) or not, with sizes
    the same objects, equal ones of another spelling, or other ones, on the same grid or another."""
    from pmm_widgets.book import _grid, _level, _levels

    old_ticks = sorted(old_ticks)
    g = _grid(Decimal("0.01"))
    pool = [Decimal("1"), Decimal("1.0"), Decimal("2"), Decimal("0.5")]
    old_lv = [_level(g[t], data.draw(st.sampled_from(pool))) for t in old_ticks]
    same = data.draw(st.booleans())
    ticks = list(old_ticks) if same else sorted(data.draw(st.lists(st.integers(1, 99), max_size=12, unique=True)))
    keep = {t: lv.size for t, lv in zip(old_ticks, old_lv)}
    sizes = {t: keep[t] if t in keep and data.draw(st.booleans()) else data.draw(st.sampled_from(pool)) for t in ticks}
    grid = g if data.draw(st.booleans()) else [Decimal(str(p)) for p in g]  # another grid: other price objects
    got = _levels(ticks, sizes, grid, old_ticks, old_lv)
    want = _levels_ref(ticks, sizes, grid, dict(zip(old_ticks, old_lv)))
    assert got == want and [str(x.size) for x in got] == [str(x.size) for x in want]
    assert [x is y for x, y in zip(got, want)] == [any(x is o for o in old_lv) for x in got]
    assert all(x.price is grid[t] and x.size is sizes[t] for x, t in zip(got, ticks))


_NUMS = st.one_of(st.sampled_from(["0.45", ".5", " 0.3 ", "0.999", "1", "0", "-0.2", "12.5", "1e-3", "NaN", "Infinity",
                                   "sNaN", "abc", "", "5" * 41, "0." + "1" * 39, "1e400", "100000000000"]),
                  st.text(st.sampled_from(list("0123456789.-e ")), max_size=8))


@settings(max_examples=300, deadline=None)
@given(_NUMS, _NUMS, st.sampled_from(["BUY", "SELL"]), st.sampled_from([None, "", "1796033289000", "x"]),
       st.sampled_from(["", "0xm"]))
def test_tape_prints_equal_the_reference(price: str, size: str, side: str, ts: str | None, market: str) -> None:
    """`_on_last_trade` (the texts parsed inline, the `PublicTrade` built through its slots) hands
    over the very print the code before did (`to_decimal`, `PublicTrade(...)`), or refuses the event
    with the same message."""
    import msgspec

    from pmm_widgets.book import ONE, ZERO, short
    from pmm_widgets.domain import PublicTrade
    from pmm_widgets.ticks import MAX_SIZE, to_decimal
    from pmm_widgets.venue.market_stream import BadMessage, MarketStream
    from pmm_widgets.venue.wire import LastTradePriceEvent

    def reference(st_: MarketStream, ev: Any, now: float) -> PublicTrade:
        b = st_.books[ev.asset_id]
        if len(ev.price) > 40 or len(ev.size) > 40:
            raise BadMessage("last_trade_price with an overlong number")
        try:
            price, size = to_decimal(ev.price), to_decimal(ev.size)
        except (ArithmeticError, ValueError, TypeError):
            raise BadMessage("last_trade_price with invalid price/size") from None
        if not (price.is_finite() and ZERO < price < ONE) or not (size.is_finite() and 0 < size <= MAX_SIZE):
            raise BadMessage(f"last_trade_price out of range: {str(price)[:20]} x {str(size)[:20]}")
        t, _ = st_._ts(ev.timestamp, now)
        return PublicTrade(token_id=b.token_id, market=short(ev.market or b.market), price=price, size=size,
                           side=ev.side, ts=t / 1000.0 if t else now, recv_ts=now)

    now = 1_796_033_289.5
    out: list[Any] = []
    streams = []
    for _ in range(2):
        s = MarketStream("ws://x", None, {"a": OrderBook("a", "0xbook")}, on_trade=out.append,  # type: ignore[arg-type]
                         clock=lambda: now)
        streams.append(s)
    ev = msgspec.convert({"asset_id": "a", "price": price, "size": size, "side": side, "timestamp": ts,
                          "market": market}, LastTradePriceEvent)
    results = []
    for i, s in enumerate(streams):
        out.clear()
        try:
            if i == 0:
                s._on_last_trade(ev, now, set())
                got = out[-1]
            else:
                got = reference(s, ev, now)
        except BadMessage as exc:
            got = f"BadMessage: {exc}"
        results.append(got)
    a, b = results
    assert a == b and repr(a) == repr(b) and type(a) is type(b)
    if isinstance(a, PublicTrade):
        assert a.recv_ts == b.recv_ts and a.price is not None and str(a.price) == str(b.price) and str(a.size) == str(b.size)


_NOTE_SLOTS = ("token_id", "stale", "_bids", "_asks", "_market", "_tick", "_mos", "_ts", "_vts", "_view")


@pytest.mark.parametrize("listeners", [1, 2])
def test_listener_notes_equal_the_books_notes(listeners: int) -> None:
    """`MarketData._on_books` hands each listener its book's note (`OrderBook.note`, the batch form
    or per listener): every slot equal to `note(stale)` of its book (level tuples of the very `Level`s, the same stamps), the book's
    cached view dropped as `note` drops it, one listener alone or several, every listener told."""
    from pmm_widgets.book import BookNote
    from pmm_widgets.store.sink import MemorySink
    from pmm_widgets.venue.market_data import MarketData

    now = 1_000.0
    md = MarketData(None, "ws://x", MemorySink(), stale_sec=10.0, clock=lambda: now)
    for i, t in enumerate(("a", "b", "c")):
        b = md.books[t] = OrderBook(t, f"m{i}", Decimal("0.001"), Decimal(i + 1))
        for k in range(i + 1):
            b.apply_change(f"0.4{k}", str(10 + k), "BUY")
            b.apply_change(f"0.6{k}", str(20 + k), "SELL")
        b.synced, b.ts, b.venue_ts_ms = True, now - 2.0 * i, 1_796_033_289_000 + i
        b.needs_resync = t == "b"
        b.view()  # a cached view, dropped by the note
    got: list[list[BookNote]] = [[] for _ in range(listeners)]
    for g in got:
        md.add_listener(on_book=g.append)
    md._on_books({"a", "b", "c"})
    assert all([n.token_id for n in g] == [n.token_id for n in got[0]] for g in got)
    assert sorted(n.token_id for n in got[0]) == ["a", "b", "c"]
    for n in got[0]:
        b = md.books[n.token_id]
        assert b._view is None
        want = b.note(md.is_stale(b, now))
        assert [getattr(n, k) for k in _NOTE_SLOTS] == [getattr(want, k) for k in _NOTE_SLOTS]
        assert all(x is y for x, y in zip(n._bids + n._asks, want._bids + want._asks, strict=True))
        assert n.view() == want.view() == b.view(stale=n.stale)


def _answers_as_before(xs: list, fn: Callable[[Any], Decimal | None], ref: Callable[[Any], Decimal | None],
                       texts: dict) -> None:
    """`fn` (a memo of texts, `ticks._by_text`) gives what `ref` (the code before it) gives, value
    and spelling of the Decimal or None, on the first call and on every repeat; its memo stays bounded."""
    from pmm_widgets import ticks

    for x in xs + xs:
        want, got = ref(x), fn(x)
        assert (got is None) == (want is None)
        if want is not None:
            assert got is not None and str(got) == str(want) and got == want
    assert len(texts) <= ticks._TICK_TEXTS_MAX


def _venue_tick_ref(x: Any) -> Decimal | None:
    """`ticks.venue_tick` before its memo of texts."""
    from pmm_widgets.ticks import ALLOWED_TICK_SET, to_decimal

    try:
        d = to_decimal(x)
    except (ArithmeticError, ValueError, TypeError):
        return None
    return d if d.is_finite() and d in ALLOWED_TICK_SET else None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["0.01", "0.001", "0.0010", " 0.1", "0.005", "0.0025", "0.0001", "0.02", "1e-2",
                                           "NaN", "Infinity", "", "abc", "0.1" * 20]),
                          st.text(max_size=6), st.decimals(allow_nan=True), st.floats(allow_nan=True), st.integers()),
                max_size=20))
def test_venue_tick_memo_answers_as_before(xs: list) -> None:
    """`venue_tick` remembers its answer per text: the same answer as the code before (value and
    spelling of the Decimal, or None) on the first call and on every repeat, for any input."""
    from pmm_widgets import ticks

    _answers_as_before(xs, ticks.venue_tick, _venue_tick_ref, ticks._TICK_TEXTS)


def _sane_min_size_ref(x: Any) -> Decimal | None:
    """`ticks.sane_min_size` before its memo of texts."""
    from pmm_widgets.ticks import MAX_MIN_ORDER_SIZE, to_decimal

    try:
        d = to_decimal(x)
    except (ArithmeticError, ValueError, TypeError):
        return None
    return d if d.is_finite() and 0 < d <= MAX_MIN_ORDER_SIZE else None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["5", "5.0", "5.00", " 5", "0", "-1", "0.001", "100000", "100000.01", "1e5",
                                           "1E+5", "NaN", "Infinity", "", "abc", "1" * 40]),
                          st.text(max_size=6), st.decimals(allow_nan=True), st.floats(allow_nan=True), st.integers()),
                max_size=20))
def test_min_size_memo_answers_as_before(xs: list) -> None:
    """`sane_min_size` remembers its answer per text (`apply_snapshot` asks it for every snapshot):
    the same answer as the code before (value and spelling, or None), first call and repeats."""
    from pmm_widgets import ticks

    _answers_as_before(xs, ticks.sane_min_size, _sane_min_size_ref, ticks._MIN_SIZE_TEXTS)
