"""Local L2 order book of one token, in integer ticks.

Why integer ticks: the venue's prices are decimal strings on a tick grid; keyed by the exact
tick index (price / tick) a level can never drift, two spellings of one price ("0.430", ".43")
land on the same level, and an off-grid or out-of-range price is refused at the door instead of
becoming a level nobody can quote against. Sizes are Decimal: they are compared with the venue's
own numbers, never summed into floats.

Why a dict plus a sorted tick list per side: `price_change` carries absolute sizes, so an update
is a dict assignment, and a level appears or disappears far less often than it is resized; the
sorted list (maintained with `bisect`, a C-level memmove) keeps best bid / best ask O(1). Beside
each tick list runs a list of the same levels as immutable `Level` objects (price, size), kept
in step by every change (one new `Level` per changed level): a view is then two C-level tuple
copies instead of a Python loop over the depth. Why it matters: every touched token of every
frame is handed to the book listeners (`note`: copies of these lists; the `BookView` is built from
them only when read, see `BookNote`), and the quote cycle views every book it quotes.
Nothing here does I/O or reads a clock: callers pass timestamps.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from .domain import BookView, Level, Side
from .errors import PmmError
from .ticks import MAX_SIZE, sane_min_size, to_decimal, venue_tick

if TYPE_CHECKING:  # the wire shapes are decoded in venue/ (a type-only import: no runtime dependency)
    from .venue.wire import BookSnapshot, PriceLevel

ZERO = Decimal(0)
ONE = Decimal(1)
_PRICE_CACHE_MAX = 4096  # distinct price spellings remembered per book (bounded against junk input)
_SIZE_CACHE_MAX = 65_536  # distinct size spellings remembered (all books; bounded against junk input)
MAX_ID_CHARS = 100  # wire strings kept in a book (market id 66, hash 40): longer is junk, cut
MAX_TS_MS = 10**14  # a venue timestamp (ms) beyond this (year 5138) is junk input


def parse_ts_ms(v: Any) -> int:
    """A venue timestamp in ms: 0 when absent; BookError unless a finite number in [0, MAX_TS_MS]."""
    if type(v) is str and 0 < len(v) <= 14 and v.isascii() and v.isdigit():
        return int(v)  # the common case, "1796033289800" (≤ 14 digits: below MAX_TS_MS); the same int as below
    if v in (None, ""):
        return 0
    if isinstance(v, bool) or not isinstance(v, (str, int, float, Decimal)):
        raise BookError(f"timestamp is not a number: {type(v).__name__}")
    if isinstance(v, str) and len(v) > 32:
        raise BookError("timestamp too long")
    try:
        d = to_decimal(v)
    except (ArithmeticError, ValueError, TypeError):
        raise BookError(f"unparseable timestamp {str(v)[:20]!r}") from None
    if not d.is_finite() or d < 0 or d > MAX_TS_MS:
        raise BookError(f"timestamp {str(v)[:20]!r} out of range")
    return int(d)


def short(v: Any, n: int = MAX_ID_CHARS) -> str:
    """A wire string cut to `n` characters (ids, hashes: nothing legitimate is longer)."""
    return str(v)[:n] if not isinstance(v, str) or len(v) > n else v


_BV_FIELDS = ("token_id", "market", "bids", "asks", "tick_size", "min_order_size", "ts", "venue_ts_ms", "stale",
              "crossed")
if _BV_FIELDS != tuple(f.name for f in fields(BookView)):  # pragma: no cover - a guard for whoever edits BookView
    raise RuntimeError("book._book_view must set every BookView field, in order")


class _NewBookView:
    """A `BookView` under construction (`_book_view`), as `_NewLevel` is a `Level`'s: the same slots."""

    __slots__ = _BV_FIELDS


class _NewLevel:
    """A `Level` under construction: the same two slots, writable. `_level` fills them with plain
    slot stores, then makes the object a `Level` (`__class__` assignment: CPython allows it between
    classes of the same layout, and checks that). Why: the frozen dataclass can only be filled
    through its slot descriptors' `__set__` (a method-wrapper call with a tuple of arguments each:
    ~2.3 k instructions a `Level`), this way ~1.5 k; a `Level` is built for every level change of
    every book. Checked at import (`_LEVEL_OK`) and by tests/core/test_feed_fastpath.py."""

    __slots__ = ("price", "size")

    price: Decimal
    size: Decimal


def _level(price: Decimal, size: Decimal) -> Level:
    """`Level(price, size)` without the frozen dataclass's `__init__` (three times as fast; it is on
    the path of every level change): built as a `_NewLevel`, then made a `Level`.
    tests/core/test_book_fastpath.py checks the result equals `Level(price, size)`."""
    lv: Any = _NewLevel()
    lv.price = price
    lv.size = size
    lv.__class__ = Level
    return lv  # type: ignore[no-any-return]


_probe = _level(ONE, ZERO)  # a `Level` whose layout `_NewLevel` no longer matches fails here, at import
if type(_probe) is not Level or _probe != Level(ONE, ZERO) or _probe.__slots__ != _NewLevel.__slots__:
    raise RuntimeError("book._NewLevel must have the slots of domain.Level")  # pragma: no cover
del _probe


def _levels(ticks: list[int], sizes: dict[int, Decimal], grid: list[Decimal], old_ticks: list[int],
            old_lv: list[Level]) -> list[Level]:
    """The `Level`s of `ticks` (sizes from `sizes`, prices from `grid`), a snapshot's side: the old
    `Level` of a tick (`old_ticks` / `old_lv`: the side before) when it holds these very objects (a
    level the snapshot repeats keeps it), else a new one; no call per level (~20 levels a side).
    When the snapshot has the very ticks of the side before (the common case: a snapshot confirms
    the book), a tick's old `Level` is the one at its index: no dict of the old levels is built."""
    out: list[Level] = []
    append = out.append
    if ticks == old_ticks:
        for t, o in zip(ticks, old_lv):
            s, p = sizes[t], grid[t]
            if o.size is s and o.price is p:  # as below
                append(o)
            else:
                lv: Any = _NewLevel()  # `_level`, inline
                lv.price = p
                lv.size = s
                lv.__class__ = Level
                append(lv)
        return out
    old = dict(zip(old_ticks, old_lv))
    for t in ticks:
        s, p = sizes[t], grid[t]
        was = old.get(t)
        if was is not None and was.size is s and was.price is p:  # (an old level of another grid: another price)
            append(was)
        else:
            lv = _NewLevel()  # `_level`, inline
            lv.price = p
            lv.size = s
            lv.__class__ = Level
            append(lv)
    return out


def _book_view(token_id: str, market: str, bids: tuple[Level, ...], asks: tuple[Level, ...], tick_size: Decimal,
               min_order_size: Decimal, ts: float, venue_ts_ms: int, stale: bool, crossed: bool) -> BookView:
    """`BookView(...)` (every field) built like `_level` (a `_NewBookView` made a `BookView`: ~1.6 k
    instructions, against ~8 k through the frozen slots' descriptors): a view of a book the quote
    cycle reads, or of a note a listener reads."""
    v: Any = _NewBookView()
    v.token_id = token_id
    v.market = market
    v.bids = bids
    v.asks = asks
    v.tick_size = tick_size
    v.min_order_size = min_order_size
    v.ts = ts
    v.venue_ts_ms = venue_ts_ms
    v.stale = stale
    v.crossed = crossed
    v.__class__ = BookView
    return v  # type: ignore[no-any-return]


_probe_view = _book_view("t", "m", (), (), ONE, ONE, 0.0, 0, False, False)  # as `_level`'s check, at import
if (type(_probe_view) is not BookView or _probe_view != BookView("t", "m", (), (), ONE, ONE, 0.0, 0, False, False)
        or BookView.__slots__ != _NewBookView.__slots__):
    raise RuntimeError("book._NewBookView must have the slots of domain.BookView")  # pragma: no cover
del _probe_view


class BookNote:
    """What a book listener is told (`MarketData`, after each frame): one token's book exactly as
    it stood when the listeners were notified, and whether it was stale then. `view()` is the
    `BookView` that `OrderBook.view` gave at that moment, built on its first read only (then kept).

    Why: a replay notifies ~1.6 books per market event, and the paper exchange reads few of them
    (its default fill model ignores books; the others read those of tokens where orders rest), so
    building every view was most of the book listeners' cost. A note holds copies of the two level
    lists (C-level: a few pointers, the `Level`s are immutable) and the view's other fields: what
    the book does afterwards (the next frames, going unsynced, a new process clearing its
    timestamps) cannot change it. Made by `OrderBook.note`; never changed after."""

    __slots__ = ("token_id", "stale", "_bids", "_asks", "_market", "_tick", "_mos", "_ts", "_vts", "_view")

    token_id: str
    stale: bool
    _bids: tuple[Level, ...]  # ascending, like the book's lists (the view's bids are these reversed)
    _asks: tuple[Level, ...]
    _market: str
    _tick: Decimal
    _mos: Decimal
    _ts: float
    _vts: int
    _view: BookView | None

    def view(self) -> BookView:
        v = self._view
        if v is None:
            bids, asks = self._bids[::-1], self._asks
            # `crossed` as `OrderBook.view` computes it from the ticks: the prices of one grid compare alike
            v = self._view = _book_view(self.token_id, self._market, bids, asks, self._tick, self._mos, self._ts,
                                        self._vts, self.stale, bool(bids) and bool(asks) and bids[0].price >= asks[0].price)
        return v


def as_view(book: BookView | BookNote) -> BookView:
    """The view of what a book listener was handed (a note's, built now if not yet; a view as is)."""
    return book.view() if isinstance(book, BookNote) else book


_T = TypeVar("_T")


class LatestBooks(Mapping[str, BookView]):
    """Each token's latest book a listener was handed (a `BookNote`, or a `BookView` given
    directly), read as a `BookView`: a note's view is built when first read, so storing one costs
    a dict assignment (`put`)."""

    __slots__ = ("_latest",)

    def __init__(self) -> None:
        self._latest: dict[str, BookNote | BookView] = {}

    def put(self, book: BookNote | BookView) -> None:
        self._latest[book.token_id] = book

    @property
    def latest(self) -> dict[str, BookNote | BookView]:
        """The store itself (token -> what was handed): `put` is `latest[book.token_id] = book`,
        for a caller that stores a book per frame without a call (the paper exchange)."""
        return self._latest

    @overload
    def get(self, token_id: str, /) -> BookView | None: ...

    @overload
    def get(self, token_id: str, /, default: BookView | _T) -> BookView | _T: ...

    def get(self, token_id: str, /, default: Any = None) -> Any:
        """`Mapping.get` without its `__getitem__` call and KeyError (the paper exchange's reads)."""
        b = self._latest.get(token_id)
        return default if b is None else as_view(b)

    def __getitem__(self, token_id: str) -> BookView:
        return as_view(self._latest[token_id])

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._latest

    def __iter__(self) -> Iterator[str]:
        return iter(self._latest)

    def __len__(self) -> int:
        return len(self._latest)


_SIZES: dict[str, Decimal] = {}  # size text -> its checked Decimal: a level's size recurs in every snapshot


class LevelChange(Protocol):
    """What `OrderBook.apply_event` reads of an entry: a wire `PriceChange` (or `apply_change`'s)."""

    price: Any
    size: Any
    side: Any
    best_bid: str | None
    best_ask: str | None


class _Change:
    """`apply_change`'s one entry."""

    __slots__ = ("price", "size", "side", "best_bid", "best_ask")

    price: Any
    size: Any
    side: Any
    best_bid: str | None
    best_ask: str | None

    def __init__(self, price: Any, size: Any, side: Any) -> None:
        self.price, self.size, self.side, self.best_bid, self.best_ask = price, size, side, None, None


class BookError(PmmError, ValueError):
    """A wire value the book refuses (off grid, outside (0, 1), negative size, unknown side)."""


_BID_SIDES = {"BUY": True, "buy": True, "BID": True, "bid": True, "SELL": False, "sell": False, "ASK": False, "ask": False}


class OrderBook:
    """The book of one token. Mutated only through `apply_snapshot`, `apply_change`, `set_tick_size`.

    A refused input leaves the book unchanged and is counted in `rejected`. `needs_resync` is set
    when the book cannot be trusted any more (a tick change it could not re-key); the market-data
    layer then reloads it from REST. `crossed` is derived from the best levels, so a book the
    venue sent crossed stays flagged until a later update uncrosses it.
    """

    __slots__ = (
        "token_id", "market", "tick_size", "min_order_size", "bids", "asks", "_bid_ticks", "_ask_ticks",
        "_px", "hash", "venue_ts_ms", "ts", "synced", "needs_resync", "rejected", "version", "_view",
        "_bid_lv", "_ask_lv", "_grid_tick", "_grid",
    )

    def __init__(self, token_id: str, market: str = "", tick_size: Decimal = Decimal("0.01"),
                 min_order_size: Decimal = Decimal(5)) -> None:
        if tick_size <= 0:
            raise BookError(f"tick size must be positive, got {tick_size}")
        self.token_id = token_id
        self.market = market
        self.tick_size = tick_size
        self.min_order_size = min_order_size
        self.bids: dict[int, Decimal] = {}  # tick -> size
        self.asks: dict[int, Decimal] = {}
        self._bid_ticks: list[int] = []  # ascending; best bid is the last
        self._ask_ticks: list[int] = []  # ascending; best ask is the first
        self._px: dict[str, int] = {}  # price text -> tick index, for the current tick size
        self.hash = ""
        self.venue_ts_ms = 0
        self.ts = 0.0  # local epoch seconds of the last applied update (set by the caller)
        self.synced = False  # True once a full snapshot was applied
        self.needs_resync = False
        self.rejected = 0
        self.version = 0  # bumped on every change; views are cached per version
        self._view: tuple[int, int | None, BookView] | None = None
        self._bid_lv: list[Level] = []  # the Levels of `_bid_ticks`, same (ascending) order
        self._ask_lv: list[Level] = []  # the Levels of `_ask_ticks`, same order
        # `_grid(tick)` of the last tick size `apply_event` priced with (that very object): a Decimal's
        # hash is not cached (~600 instructions, a `_GRIDS` read per event), an identity check is
        self._grid_tick: Decimal | None = None
        self._grid: list[Decimal] = _EMPTY_GRID

    # ------------------------------------------------------------------ parsing
    def _tick_of(self, price: Any) -> int:
        """Tick index of a wire price; BookError unless strictly inside (0, 1) and on the grid."""
        key = price if isinstance(price, str) else None
        if key is not None:
            t = self._px.get(key)
            if t is not None:
                return t
        if isinstance(price, str) and len(price) > 32:
            raise BookError("price too long")
        try:
            p = to_decimal(price)
        except (ArithmeticError, ValueError, TypeError):
            raise BookError(f"unparseable price {str(price)[:20]!r}") from None
        if not p.is_finite() or p <= ZERO or p >= ONE:
            raise BookError(f"price {str(price)[:20]!r} outside (0, 1)")
        try:
            q = p / self.tick_size
            t = int(q)
        except ArithmeticError:
            raise BookError(f"price {str(price)[:20]!r} not representable") from None
        if t != q or t <= 0:  # t <= 0: a price below the tick underflowed to tick 0 (1e-999999999)
            raise BookError(f"price {str(price)[:20]!r} off the {self.tick_size} grid")
        if key is not None:
            if len(self._px) >= _PRICE_CACHE_MAX:
                self._px.clear()
            self._px[key] = t
        return t

    @staticmethod
    def _size_of(size: Any) -> Decimal:
        if type(size) is str:
            s = _SIZES.get(size)
            if s is not None:
                return s
        if isinstance(size, str) and len(size) > 40:
            raise BookError("size too long")
        try:
            s = to_decimal(size)
        except (ArithmeticError, ValueError, TypeError):
            raise BookError(f"unparseable size {str(size)[:20]!r}") from None
        if not s.is_finite() or s < ZERO or s > MAX_SIZE:
            raise BookError(f"size {str(size)[:20]!r} negative, not finite or beyond {MAX_SIZE:.0E}")
        if type(size) is str:
            if len(_SIZES) >= _SIZE_CACHE_MAX:
                _SIZES.clear()
            _SIZES[size] = s
        return s

    def _level_of(self, price: Any, size: Any) -> tuple[int, Decimal]:
        """(tick, size) of a wire level: `_tick_of` / `_size_of` with their caches read here first
        (a hit costs two dict reads and no call; a miss validates as they do). BookError if refused."""
        t = self._px.get(price)
        if t is None:
            t = self._tick_of(price)
        s = _SIZES.get(size) if type(size) is str else None
        if s is None:
            s = self._size_of(size)
        return t, s

    # ------------------------------------------------------------------ mutation
    def apply_change(self, price: str, size: str, side: str) -> bool:
        """Set the absolute size of one level ("0" removes it). False (and counted) if refused."""
        return self.apply_changes((_Change(price, size, side),))

    def apply_changes(self, entries: Sequence[LevelChange]) -> bool:
        """Apply the entries of one `price_change` message for this token atomically: every entry
        is validated first, and one bad entry refuses them all (counted once, book unchanged).
        `apply_event` without the venue's stamps (the book keeps its own) and its check."""
        return self.apply_event(entries, None, None, self.ts) >= 0

    def apply_event(self, entries: Sequence[LevelChange], hash_: str | None, venue_ts_ms: int | None,
                    ts: float) -> int:
        """One token's entries of a `price_change` message, the feed's hot path in one call: every
        entry is validated first, and one bad entry refuses them all (counted once, book
        unchanged); then each level is set (absolute size, "0" removes it), the version bumped, and
        the venue's hash / timestamp of the state reached and the local time `ts` recorded (a
        None keeps the book's own). Returns -1 when refused, 1 when applied but the book is now
        crossed or disagrees with the venue's best bid / ask of the last entry (`agrees_bbo`; a
        text that is no number counts as agreeing), else 0.

        This is the hot path of the feed and of every replay (one call per token per event, and
        no other: the validation, the level lists and the stamps are done here): the caches of
        `_tick_of` / `_size_of` are read first (only a miss calls them, the same validation then)
        and levels are priced from the grid list (`_grid`, the same Decimals as `_price`).
        tests/core/test_book_fastpath.py checks it against the code before over random sequences."""
        if len(entries) == 1:  # one entry per token: most events (`apply_one`: no list, no loop)
            return self.apply_one(entries[0], hash_, venue_ts_ms, ts)
        px, sizes = self._px, _SIZES
        parsed: list[tuple[bool, int, Decimal]] = []
        try:
            for e in entries:
                # the side: the venue's two spellings compared first (hashing the decoder's fresh text for
                # `_BID_SIDES` costs more than two comparisons), any other through `_BID_SIDES`; the
                # side and price caches by subscript (a miss, or an unknown side: `_entry`), the
                # size cache by `get` (a miss validates, `_size_of`): a size is new in ~7 % of the
                # entries (sizes are arbitrary decimals), and a KeyError caught costs ~20 times a `get`
                try:
                    parsed.append((True if (sd := e.side) == "BUY" else False if sd == "SELL" else _BID_SIDES[sd],
                                   px[e.price], s if (s := sizes.get(e.size)) is not None else self._size_of(e.size)))
                except KeyError:
                    parsed.append(self._entry(e))
        except (BookError, AttributeError, TypeError):
            self.rejected += 1
            return -1
        tick = self.tick_size
        if tick is self._grid_tick:
            grid = self._grid
        else:  # the same Decimals as `_price(tick, t)`; kept for this tick object (`_GRIDS` never drops one)
            grid = self._grid = _GRIDS.get(tick) or _grid(tick)
            self._grid_tick = tick
        for is_bid, t, s in parsed:
            if is_bid:
                levels, ticks, lvs = self.bids, self._bid_ticks, self._bid_lv
            else:
                levels, ticks, lvs = self.asks, self._ask_ticks, self._ask_lv
            if s:
                lv: Any = _NewLevel()  # `_level`, inline
                lv.price = grid[t] if grid else _price(tick, t)
                lv.size = s
                lv.__class__ = Level
                i = bisect_left(ticks, t)
                if t in levels:
                    lvs[i] = lv
                else:
                    ticks.insert(i, t)
                    lvs.insert(i, lv)
                levels[t] = s
            elif t in levels:  # size 0: the wire's delete
                del levels[t]
                i = bisect_left(ticks, t)
                del ticks[i]
                del lvs[i]
        self.version += 1
        if hash_ is not None:
            self.hash = hash_ if type(hash_) is str and len(hash_) <= MAX_ID_CHARS else short(hash_)
        if venue_ts_ms is not None:
            self.venue_ts_ms = venue_ts_ms
        self.ts = ts
        bt, at = self._bid_ticks, self._ask_ticks
        if bt and at and bt[-1] >= at[0]:
            return 1
        if not entries:
            return 0
        last = entries[-1]
        bb, ba = last.best_bid, last.best_ask
        if not bb or not ba:
            return 0
        try:  # `agrees_bbo`'s tick comparison, inline: both texts seen as level prices of this book
            tb, ta = px[bb], px[ba]
        except KeyError:
            try:
                return 0 if self.agrees_bbo(bb, ba) else 1
            except (InvalidOperation, ValueError):
                return 0
        return 0 if bt and at and bt[-1] == tb and at[0] == ta else 1

    def apply_one(self, e: LevelChange, hash_: str | None, venue_ts_ms: int | None, ts: float) -> int:
        """`apply_event((e,), hash_, venue_ts_ms, ts)`: one token's lone entry of a `price_change`
        (most events carry one entry per token: the stream calls this directly for them). The
        same validation, level update, stamps and answer, in the same order, without the list of
        parsed entries and the loop over them (~1.8 k instructions a call). Any change here goes
        into `apply_event` too: tests/core/test_book_fastpath.py drives both paths (a lone entry
        through this, several through `apply_event`'s loop) against the reference book (`RefBook`,
        the code before the fast paths), answers and books alike."""
        try:
            try:  # as `apply_event`: side, price cache by subscript, size cache by `get`; a miss: `_entry`
                is_bid = True if (sd := e.side) == "BUY" else False if sd == "SELL" else _BID_SIDES[sd]
                t = self._px[e.price]
                s = _SIZES.get(e.size)
                if s is None:
                    s = self._size_of(e.size)
            except KeyError:
                is_bid, t, s = self._entry(e)
        except (BookError, AttributeError, TypeError):
            self.rejected += 1
            return -1
        tick = self.tick_size
        if tick is self._grid_tick:
            grid = self._grid
        else:  # as `apply_event`
            grid = self._grid = _GRIDS.get(tick) or _grid(tick)
            self._grid_tick = tick
        if is_bid:
            levels, ticks, lvs = self.bids, self._bid_ticks, self._bid_lv
        else:
            levels, ticks, lvs = self.asks, self._ask_ticks, self._ask_lv
        if s:
            lv: Any = _NewLevel()  # `_level`, inline
            lv.price = grid[t] if grid else _price(tick, t)
            lv.size = s
            lv.__class__ = Level
            i = bisect_left(ticks, t)
            if t in levels:
                lvs[i] = lv
            else:
                ticks.insert(i, t)
                lvs.insert(i, lv)
            levels[t] = s
        elif t in levels:  # size 0: the wire's delete
            del levels[t]
            i = bisect_left(ticks, t)
            del ticks[i]
            del lvs[i]
        self.version += 1
        if hash_ is not None:
            self.hash = hash_ if type(hash_) is str and len(hash_) <= MAX_ID_CHARS else short(hash_)
        if venue_ts_ms is not None:
            self.venue_ts_ms = venue_ts_ms
        self.ts = ts
        bt, at = self._bid_ticks, self._ask_ticks
        if bt and at and bt[-1] >= at[0]:
            return 1
        bb, ba = e.best_bid, e.best_ask
        if not bb or not ba:
            return 0
        px = self._px
        try:  # as `apply_event`
            tb, ta = px[bb], px[ba]
        except KeyError:
            try:
                return 0 if self.agrees_bbo(bb, ba) else 1
            except (InvalidOperation, ValueError):
                return 0
        return 0 if bt and at and bt[-1] == tb and at[0] == ta else 1

    def _entry(self, e: LevelChange) -> tuple[bool, int, Decimal]:
        """(is bid, tick, size) of one entry, validated (`apply_event` on a cache miss); BookError if refused."""
        is_bid = _BID_SIDES.get(e.side)
        if is_bid is None:
            raise BookError(f"unknown side {e.side[:20]!r}")
        t, s = self._level_of(e.price, e.size)
        return is_bid, t, s

    def agrees_bbo(self, best_bid: str, best_ask: str) -> bool:
        """Whether the venue's best bid / ask after a change (decimal texts; 0 / 1 mean an empty
        side) equal ours. InvalidOperation/ValueError for a text that is no number. A text seen
        as a level price of this book compares by tick (cached), the rest by value."""
        px = self._px
        tb, ta = px.get(best_bid), px.get(best_ask)
        if tb is not None and ta is not None:  # tick * tb == Decimal(best_bid) exactly: same answer as below
            bt, at = self._bid_ticks, self._ask_ticks
            return bool(bt) and bool(at) and bt[-1] == tb and at[0] == ta
        vb, va = to_decimal(best_bid), to_decimal(best_ask)  # both parsed first: either may raise
        return vb == (self.best_bid or ZERO) and va == (self.best_ask or ONE)

    def apply_snapshot(self, book: BookSnapshot, ts: float = 0.0, venue_ts_ms: int | None = None) -> bool:
        """Replace the whole book with a decoded wire book (REST /book or a ws `book` event).

        The wire lists the best level last; the order is not relied upon. Everything (levels, tick
        size, timestamp) is validated before anything changes: one bad field refuses the snapshot
        (counted, book unchanged, its tick included). A `tick_size` field, when present, must be
        one of the venue's ticks and becomes the book's grid. `venue_ts_ms`: the caller's checked
        (and clamped) venue timestamp; else the snapshot's own is parsed (bounded). A timestamp
        of 0 / none keeps the book's previous one, so the older-snapshot guard stays armed.
        A `min_order_size` outside (0, 100000] is ignored (the previous minimum stays).
        """
        old_tick, old_px = self.tick_size, self._px
        sides: tuple[dict[int, Decimal], dict[int, Decimal]] | None = None  # None: the book's own (`_holds`)
        try:
            tick = self.tick_size
            if book.tick_size not in (None, ""):
                vt = venue_tick(book.tick_size)
                if vt is None:
                    raise BookError(f"tick size {str(book.tick_size)[:20]!r} not one of the venue's")
                tick = vt
            ts_ms = parse_ts_ms(book.timestamp) if venue_ts_ms is None else venue_ts_ms
            if tick != old_tick or not self._holds(book):
                if tick != old_tick:
                    self.tick_size, self._px = tick, {}
                try:
                    sides = self._parse_side(book.bids), self._parse_side(book.asks)
                finally:
                    new_tick = self.tick_size
                    self.tick_size, self._px = old_tick, old_px
        except (BookError, ArithmeticError, ValueError, TypeError, AttributeError):
            self.rejected += 1
            return False
        if sides is not None:
            if new_tick != old_tick:
                self.tick_size, self._px = new_tick, {}
            self._set_sides(*sides)
        h, m = book.hash, book.market  # `short` of each, inline for a text of a legitimate length
        self.hash = h if type(h) is str and len(h) <= MAX_ID_CHARS else short(h)
        if ts_ms:
            self.venue_ts_ms = ts_ms
        if m:
            self.market = m if type(m) is str and len(m) <= MAX_ID_CHARS else short(m)
        mos = sane_min_size(book.min_order_size) if book.min_order_size not in (None, "") else None
        if mos is not None:
            self.min_order_size = mos
        self.ts = ts
        self.synced = True
        self.needs_resync = False
        self.version += 1
        return True

    def _holds(self, book: BookSnapshot) -> bool:
        """Whether a snapshot on the book's grid has exactly the book's levels (a resync that finds
        nothing missed: 99 % of a replay's snapshots), so that `apply_snapshot` keeps the sides as
        they are: `_parse_side` and `_set_sides` would rebuild equal dicts and tick lists and reuse
        every `Level` (`_levels`). The wire lists the best level last: level for level, the bids
        are the book's ascending ticks and the asks its descending ones; each price is a text the
        price cache maps to that tick, each size a text the size cache maps to the very Decimal the
        book holds there (a size of another spelling, or one the cache dropped since, is a doubt).
        Nothing is validated here: every text is one the caches hold, validated when it entered.
        False at the first doubt (another order, a duplicate, a zero size, a level more or less):
        the general path decides. tests/core/test_book_fastpath.py compares the books."""
        wb, wa = book.bids, book.asks
        bt, at = self._bid_ticks, self._ask_ticks
        if type(wb) is not list or type(wa) is not list or len(wb) != len(bt) or len(wa) != len(at):
            return False
        px, sizes, bids, asks = self._px, _SIZES, self.bids, self.asks
        try:  # the caches by subscript (a dict subscript costs less than a `get` call; a miss: a doubt)
            for lv, t in zip(wb, bt):
                if px[lv.price] != t or bids[t] is not sizes[lv.size]:
                    return False
            for lv, t in zip(wa, reversed(at)):
                if px[lv.price] != t or asks[t] is not sizes[lv.size]:
                    return False
        except KeyError:
            return False
        return True

    def _parse_side(self, levels: Sequence[PriceLevel]) -> dict[int, Decimal]:
        out: dict[int, Decimal] = {}
        px, sizes = self._px, _SIZES
        for lv in levels:
            price, size = lv.price, lv.size
            try:  # the price cache by subscript, the size cache by `get` (as `apply_event`); a miss validates
                t = px[price]
            except KeyError:
                t, s = self._level_of(price, size)
            else:
                got = sizes.get(size)
                s = got if got is not None else self._size_of(size)
            if s:
                out[t] = s
            else:
                out.pop(t, None)
        return out

    def set_tick_size(self, new: Decimal) -> bool:
        """Re-key every level on the new grid. If a level would be off it, the book is left as it
        was and marked `needs_resync` (the venue's REST book is then the only truth)."""
        vt = venue_tick(new)
        if vt is None:  # not one of the venue's ticks: refuse it, keep the grid, reload from REST
            self.rejected += 1
            self.needs_resync = True
            return False
        new = vt
        if new == self.tick_size:
            return True
        old = self.tick_size

        def rekey(levels: dict[int, Decimal]) -> dict[int, Decimal] | None:
            out: dict[int, Decimal] = {}
            for t, s in levels.items():
                q = old * t / new
                nt = int(q)
                if nt != q:
                    return None
                out[nt] = s
            return out

        bids, asks = rekey(self.bids), rekey(self.asks)
        if bids is None or asks is None:
            self.needs_resync = True
            return False
        self.tick_size = new
        self._px = {}
        self._set_sides(bids, asks)
        self.version += 1
        return True

    def _set_sides(self, bids: dict[int, Decimal], asks: dict[int, Decimal]) -> None:
        """Replace both sides (priced on the current tick size)."""
        tick = self.tick_size
        old_bt, old_bl, old_at, old_al = self._bid_ticks, self._bid_lv, self._ask_ticks, self._ask_lv
        self.bids, self.asks = bids, asks
        self._bid_ticks, self._ask_ticks = sorted(bids), sorted(asks)
        if tick is self._grid_tick:  # as in `apply_event`
            grid = self._grid
        else:
            grid = self._grid = _GRIDS.get(tick) or _grid(tick)
            self._grid_tick = tick
        if grid:  # a level the snapshot repeats keeps its Level
            self._bid_lv = _levels(self._bid_ticks, bids, grid, old_bt, old_bl)
            self._ask_lv = _levels(self._ask_ticks, asks, grid, old_at, old_al)
        else:
            self._bid_lv = [Level(_price(tick, t), bids[t]) for t in self._bid_ticks]
            self._ask_lv = [Level(_price(tick, t), asks[t]) for t in self._ask_ticks]

    # ------------------------------------------------------------------ reading
    @property
    def best_bid_tick(self) -> int | None:
        return self._bid_ticks[-1] if self._bid_ticks else None

    @property
    def best_ask_tick(self) -> int | None:
        return self._ask_ticks[0] if self._ask_ticks else None

    @property
    def best_bid(self) -> Decimal | None:
        lv = self._bid_lv
        return lv[-1].price if lv else None

    @property
    def best_ask(self) -> Decimal | None:
        lv = self._ask_lv
        return lv[0].price if lv else None

    @property
    def mid(self) -> Decimal | None:
        b, a = self.best_bid_tick, self.best_ask_tick
        if b is None or a is None:
            return None
        return self.tick_size * (b + a) / 2

    @property
    def crossed(self) -> bool:
        b, a = self._bid_ticks, self._ask_ticks
        return bool(b) and bool(a) and b[-1] >= a[0]

    @property
    def levels(self) -> tuple[int, int]:
        return len(self.bids), len(self.asks)

    def price_of(self, tick: int) -> Decimal:
        return _price(self.tick_size, tick)

    def depth(self, side: Side, ticks: int) -> Decimal:
        """Total size on one side within `ticks` ticks of that side's best level (inclusive)."""
        if side is Side.BUY:
            bt = self._bid_ticks
            if not bt:
                return ZERO
            lo = bisect_left(bt, bt[-1] - ticks)
            lv = self.bids
            return sum((lv[t] for t in bt[lo:]), ZERO)
        at = self._ask_ticks
        if not at:
            return ZERO
        hi = bisect_right(at, at[0] + ticks)
        lv = self.asks
        return sum((lv[t] for t in at[:hi]), ZERO)

    def view(self, depth: int | None = None, stale: bool = False) -> BookView:
        """Immutable best-first snapshot (bids descending, asks ascending); cached per version."""
        c = self._view
        if c is not None and c[0] == self.version and c[1] == depth:
            v = c[2]
        else:
            bl, al = self._bid_lv, self._ask_lv
            if depth is None:
                bids, asks = tuple(bl[::-1]), tuple(al)
            elif depth > 0:
                bids, asks = tuple(bl[:-depth - 1:-1]), tuple(al[:depth])
            else:
                bids, asks = (), ()
            bt, at = self._bid_ticks, self._ask_ticks  # `crossed`, read here without the property call
            v = _book_view(self.token_id, self.market, bids, asks, self.tick_size, self.min_order_size, self.ts,
                           self.venue_ts_ms, False, bool(bt) and bool(at) and bt[-1] >= at[0])
            self._view = (self.version, depth, v)
        return replace(v, stale=True) if stale else v

    def note(self, stale: bool) -> BookNote:
        """The book as it stands now, for the listeners (`BookNote`: the view is built when read).
        It drops the view `view` cached (for an earlier version: a notified book has just changed),
        which would keep the levels replaced since alive until the next `view` (every few seconds, a
        quote cycle's): garbage the collector walks meanwhile, 4x as many young collections."""
        self._view = None
        n = BookNote()  # (no __init__: a type call is cheaper than object.__new__)
        n.token_id = self.token_id
        n.stale = stale
        n._bids = tuple(self._bid_lv)
        n._asks = tuple(self._ask_lv)
        n._market = self.market
        n._tick = self.tick_size
        n._mos = self.min_order_size
        n._ts = self.ts
        n._vts = self.venue_ts_ms
        n._view = None
        return n

    def wire_levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """(bids, asks) as (price, size), best first: for comparisons with a venue snapshot."""
        v = self.view()
        return [(lv.price, lv.size) for lv in v.bids], [(lv.price, lv.size) for lv in v.asks]


_PRICES: dict[tuple[Decimal, int], Decimal] = {}


def _price(tick: Decimal, t: int) -> Decimal:
    """Decimal price of a tick index; memoized (a handful of grids, at most 10,000 ticks each)."""
    key = (tick, t)
    p = _PRICES.get(key)
    if p is None:
        if len(_PRICES) > 100_000:
            _PRICES.clear()
        p = _PRICES[key] = (tick * t).normalize() if t else ZERO
    return p


_GRIDS: dict[Decimal, list[Decimal]] = {}


_EMPTY_GRID: list[Decimal] = []


def _grid(tick: Decimal) -> list[Decimal]:
    """Every price of a tick grid by index (`_price(tick, t)` for t in [0, 1/tick]), built once per
    grid; a book's ticks are always inside (0, 1/tick). Only for grids of at most 10,001 prices
    (every venue tick) and at most 64 grids; any other (junk ticks from metadata) gets [] and its
    levels are priced by `_price`."""
    g = _GRIDS.get(tick)
    if g is None:
        if len(_GRIDS) >= 64:  # junk ticks by the dozen: price them by `_price`, never rebuild a list per call
            return _EMPTY_GRID
        n = int(ONE / tick) if tick > 0 else 0
        g = _GRIDS[tick] = [_price(tick, t) for t in range(n + 1)] if 0 < n <= 10_000 else _EMPTY_GRID
    return g


def snapshot_levels(book: BookSnapshot) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    """A wire book's levels as (price, size), best first, zero sizes dropped: the comparison form
    of `OrderBook.wire_levels` (used to check a local book against the venue's)."""
    def side(levels: Sequence[PriceLevel], reverse: bool) -> list[tuple[Decimal, Decimal]]:
        out: dict[Decimal, Decimal] = {}
        for lv in levels:
            p, s = to_decimal(lv.price), to_decimal(lv.size)
            if s:
                out[p] = s
            else:
                out.pop(p, None)
        return sorted(out.items(), reverse=reverse)

    return side(book.bids, True), side(book.asks, False)
