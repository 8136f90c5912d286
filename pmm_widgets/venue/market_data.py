"""`MarketData`: the engine's eyes. Books for every token of the universe, the public trade tape,
feed health, and the recording of both.

Why a facade over the stream: the engine and the strategy only need `view(token)` (a best-first,
immutable `BookView` whose `stale` / `crossed` flags they must respect), listeners, `health()` and
`set_markets()`. Whether a view may be trusted is decided here in one place: a book is *stale*
when its connection is down, when it waits for a resync, or when nothing confirmed it for
`stale_sec` (no update and no REST reload); it is *crossed* when its best bid is not below its
best ask. Recording goes through the `DbRecorder` (never blocking the loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..book import BookNote, OrderBook
from ..domain import BookView, Market, PublicTrade, Side
from ..errors import PmmError
from ..store.recorder import DbRecorder, as_recorder
from ..store.sink import Sink
from ..tasks import cancel_and_wait
from .clob_rest import ClobPublic
from .market_stream import MarketStream
from .wire import MarketResolvedEvent

log = logging.getLogger(__name__)

DEPTH_TICKS = 3  # `book_snapshots.bid_depth/ask_depth`: size within this many ticks of the best level
TAPE_KEPT = 20_000
CHECKPOINT_SEC = 300.0  # full books into the recording this often: a replay can start from any hour
DEFAULT_TICK = Decimal("0.01")  # until the venue's first snapshot says otherwise


@dataclass(frozen=True, slots=True)
class FeedHealth:
    connected: bool
    lag_sec: float  # seconds since the last frame of any connection (0.0 before the first one)
    reconnects: int
    bad_messages: int
    stale_tokens: int
    last_message_ts: float


class MarketData:
    def __init__(self, clob_url: str | None, ws_url: str, sink: Sink | DbRecorder, stale_sec: float = 30.0,
                 record_book_sec: float = 5.0, *, depth_ticks: int = DEPTH_TICKS,
                 clock: Callable[[], float] = time.time, stream_cls: type[MarketStream] = MarketStream,
                 **stream_opts: Any) -> None:
        """`clob_url=None` and a `stream_cls` that needs no sockets: the replayer's offline feed."""
        self.rec = as_recorder(sink)
        self.stale_sec = stale_sec
        self.record_book_sec = record_book_sec
        self.depth_ticks = depth_ticks
        self.clock = clock
        self.books: dict[str, OrderBook] = {}
        self.markets: dict[str, Market] = {}  # condition id -> market
        self.tape: deque[PublicTrade] = deque(maxlen=TAPE_KEPT)
        self.rest = ClobPublic(clob_url) if clob_url else None
        stream_opts.setdefault("quiet_sec", min(15.0, stale_sec / 2))
        self.stream = stream_cls(ws_url, self.rest, self.books, on_books=self._on_books,  # type: ignore[arg-type]
                                 on_trade=self._on_trade, clock=clock, **stream_opts)
        self._book_listeners: list[_BookListener] = []  # in the order they were added
        self._frame_calls: list[Callable[[list[BookNote]], None]] = []  # theirs, `_BookListener.call` each
        self._trade_listeners: list[Callable[[PublicTrade], None]] = []
        self._record_task: asyncio.Task[None] | None = None
        self.rows_recorded = 0
        self.recorder = stream_opts.get("recorder")
        self._next_checkpoint = 0.0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.stream.start()
        if self._record_task is None:
            self._record_task = asyncio.create_task(self._record_loop(), name="market-record")

    async def close(self) -> None:
        task, self._record_task = self._record_task, None
        try:  # a cancel of whoever closes still raises, once the stream and the REST client are closed too
            await cancel_and_wait(task)
        finally:
            try:
                await self.stream.close()
            finally:
                if self.rest is not None:
                    await self.rest.aclose()

    def pop_resolutions(self) -> list[MarketResolvedEvent]:
        """`market_resolved` events received since the last call (market, winning_asset_id)."""
        out = list(self.stream.resolutions)
        self.stream.resolutions.clear()
        return out

    def unpop_resolutions(self, events: Sequence[MarketResolvedEvent]) -> None:
        """Give back events `pop_resolutions` returned and that were not handled (their settlement
        failed): next popped first, in their order, before any received meanwhile."""
        self.stream.resolutions.extendleft(reversed(events))

    async def set_markets(self, markets: Sequence[Market]) -> None:
        """Follow exactly these markets: both tokens of each; books of the others are dropped."""
        self.markets = {m.condition_id: m for m in markets}
        want: dict[str, Market] = {}
        for m in markets:
            for t in m.token_ids:
                if t:
                    want[t] = m
        for t in [t for t in self.books if t not in want]:
            del self.books[t]
        for t, m in want.items():
            if t not in self.books:
                self.books[t] = new_book(t, m)
        await self.stream.set_assets(want)

    # ------------------------------------------------------------------ reading
    def is_stale(self, b: OrderBook, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return (not b.synced or b.needs_resync or not self.stream.is_live(b.token_id)
                or now - b.ts > self.stale_sec)

    def view(self, token_id: str, depth: int | None = None) -> BookView | None:
        """The token's book, best first; None before its first snapshot. Check `stale`/`crossed`."""
        b = self.books.get(token_id)
        if b is None or not b.synced:
            return None
        return b.view(depth, stale=self.is_stale(b))

    def add_listener(self, on_book: Callable[[BookNote], None] | None = None,
                     on_trade: Callable[[PublicTrade], None] | None = None, *,
                     on_books: Callable[[list[BookNote]], None] | None = None) -> None:
        """Book listeners hear of each frame once it is applied: a `BookNote` for each synced book
        it changed, the book as it stands then (`note.view()`: its `BookView`, built when read).
        `on_book(note)` is called per note; `on_books(notes)` once per frame with all of them, in
        the order `on_book` would get them (the paper exchange's form: one call per frame instead
        of one per changed book, ~1.6 books per market event). One registration takes one of the
        two (ListenerError for both: the same object would hear of every book twice). Book
        listeners are called in the order they were added, each with the whole frame before the
        next; a listener's exception is logged, and the others (for `on_book`, its next notes
        too) still hear of the frame: a listener's bug never stops the feed. `on_trade` per print."""
        if on_book is not None and on_books is not None:
            raise ListenerError("add_listener: on_book or on_books, not both (one would hear every book twice)")
        if on_book is not None:
            self._book_listeners.append(_BookListener(on_book, False))
        if on_books is not None:
            self._book_listeners.append(_BookListener(on_books, True))
        self._frame_calls = [x.call for x in self._book_listeners]
        if on_trade is not None:
            self._trade_listeners.append(on_trade)

    def replace_listener(self, old: Callable[..., None], new: Callable[..., None]) -> None:
        """`new` where `old` listened, in its place and in its form (a book listener added as
        `on_books` stays one; a replay's next engine session: a fresh exchange)."""
        ls = self._book_listeners
        for i, x in enumerate(ls):
            if x.fn == old:
                ls[i] = _BookListener(new, x.per_frame)
        self._frame_calls = [x.call for x in ls]
        tl = self._trade_listeners
        for i, fn in enumerate(tl):
            if fn == old:
                tl[i] = new

    def health(self) -> FeedHealth:
        now = self.clock()
        st = self.stream.stats
        stale = sum(1 for b in self.books.values() if self.is_stale(b, now))
        return FeedHealth(
            connected=self.stream.connected(),
            lag_sec=max(0.0, now - st.last_message_ts) if st.last_message_ts else 0.0,
            reconnects=st.reconnects,
            bad_messages=st.bad_messages,
            stale_tokens=stale,
            last_message_ts=st.last_message_ts,
        )

    # ------------------------------------------------------------------ events
    def _on_books(self, tokens: set[str]) -> None:
        calls = self._frame_calls
        if not calls:
            return
        now = self.clock()  # one frame: one instant
        books, stale_sec = self.books, self.stale_sec
        conns = self.stream.live_conns()  # `is_live`'s data (None: every token is live)
        notes: list[BookNote] = []
        append = notes.append
        for t in tokens:
            b = books.get(t)
            if b is None or not b.synced:
                continue
            # `is_stale(b, now)`, inline (a synced book; `t` is its token), `stream.is_live(t)` too: no call per book
            if b.needs_resync or now - b.ts > stale_sec:
                stale = True
            elif conns is None:
                stale = False
            else:
                c = conns.get(t)
                stale = c is None or c.ws is None
            append(b.note(stale))
        if not notes:
            return
        for call in calls:
            try:
                call(notes)
            except Exception:  # a listener's bug must not stop the feed (an `on_book` one's: see `_BookListener`)
                log.exception("book listener failed")

    def _on_trade(self, trade: PublicTrade) -> None:
        self.tape.append(trade)
        # `side._value_`: `.value` for an enum member (its property costs two Python calls a print)
        self.rec.public_trade(trade.token_id, trade.market, trade.ts, trade.price, trade.size, trade.side._value_)
        for fn in self._trade_listeners:
            try:
                fn(trade)
            except Exception:
                log.exception("trade listener failed")

    # ------------------------------------------------------------------ recording
    def record_now(self, now: float | None = None) -> int:
        """One `book_snapshots` row per synced book; returns the number of rows."""
        now = self.clock() if now is None else now
        n = 0
        k = self.depth_ticks
        for t, b in self.books.items():
            if not b.synced:
                continue
            bb, ba = b.best_bid, b.best_ask
            self.rec.book_snapshot(t, b.market, now, best_bid=bb, best_ask=ba, mid=b.mid,
                                   bid_depth=b.depth(Side.BUY, k), ask_depth=b.depth(Side.SELL, k), depth_ticks=k,
                                   bid_levels=len(b.bids), ask_levels=len(b.asks), stale=self.is_stale(b, now),
                                   crossed=b.crossed)
            n += 1
        self.rows_recorded += n
        return n

    def checkpoint(self, now: float | None = None) -> int:
        """Every synced book, as a wire snapshot, into the recording (`rest` channel, kind
        `checkpoint`): a replay starting mid-session (or after a gap) rebuilds books from it."""
        if self.recorder is None:
            return 0
        now = self.clock() if now is None else now
        snaps = checkpoint_books(self.books.values())
        if snaps:
            self.recorder.record("rest", now, "checkpoint", _dumps(snaps))
        self._next_checkpoint = now + CHECKPOINT_SEC
        return len(snaps)

    async def _record_loop(self) -> None:
        while True:
            await asyncio.sleep(self.record_book_sec)
            try:
                self.record_now()
                if self.recorder is not None and self.clock() >= self._next_checkpoint:
                    self.checkpoint()
            except Exception:  # recording must never take the feed down
                log.exception("book recording failed")


class ListenerError(PmmError, ValueError):
    """A listener registration `MarketData` refuses."""


class _BookListener:
    """A book listener as added: `fn`, and whether it takes a frame's notes at once (`per_frame`,
    `on_books`) or one by one (`on_book`). `call(notes)` hands it a frame either way: `_on_books`
    then has one loop for every listener, and the common one (the paper exchange's `on_books`)
    costs one call per frame."""

    __slots__ = ("fn", "per_frame", "call")

    def __init__(self, fn: Callable[..., None], per_frame: bool) -> None:
        self.fn = fn
        self.per_frame = per_frame
        self.call: Callable[[list[BookNote]], None] = fn if per_frame else self._each

    def _each(self, notes: list[BookNote]) -> None:
        """`fn(note)` for each note, each call guarded (one failing note costs that note only)."""
        fn = self.fn
        for n in notes:
            try:
                fn(n)
            except Exception:  # a listener's bug must not stop the feed
                log.exception("book listener failed")


def new_book(token_id: str, m: Market) -> OrderBook:
    """The empty book of one token of `m` (its tick, or the default until a snapshot says)."""
    return OrderBook(token_id, m.condition_id, m.tick_size if m.tick_size > 0 else DEFAULT_TICK, m.min_order_size)


def book_checkpoint(b: OrderBook) -> dict[str, Any]:
    """A book as the venue's wire snapshot (best level last, like REST `/book`), plus what a
    replay starting from it needs to continue exactly as the book did: its minimum order size and
    `local_ts`, the local time of its last update (staleness counts from it; the wire has no such
    field, a decoder ignores it)."""
    bids, asks = b.wire_levels()
    return {"asset_id": b.token_id, "market": b.market, "tick_size": str(b.tick_size),
            "min_order_size": str(b.min_order_size), "timestamp": str(b.venue_ts_ms), "hash": b.hash,
            "local_ts": b.ts,
            "bids": [{"price": str(p), "size": str(q)} for p, q in reversed(bids)],
            "asks": [{"price": str(p), "size": str(q)} for p, q in reversed(asks)]}


def checkpoint_books(books: Iterable[OrderBook]) -> list[dict[str, Any]]:
    """The checkpoint of `books`: every book synced and trusted (the others wait for a resync)."""
    return [book_checkpoint(b) for b in books if b.synced and not b.needs_resync]


def _dumps(obj: Any) -> str:
    from ..store.recording import dumps

    return dumps(obj)

