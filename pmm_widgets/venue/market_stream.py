"""The CLOB market channel: live L2 books for a set of tokens, kept equal to the venue's.

Why it is built this way:
- Subscriptions are spread over several connections of at most `chunk` assets each (the venue's
  per-connection cap is unconfirmed); assets join and leave a live socket with `operation`
  frames, so a universe change does not reconnect anything.
- Liveness is the venue's own protocol: a text `PING` every 10 s, and a connection without a
  `PONG` for 30 s is dead. Reconnects back off exponentially with full jitter.
- The websocket has no sequence numbers, so the stream never assumes it saw everything. A
  book is reloaded from REST `/books` (one batched request for every token that needs it) after
  every (re)connect, whenever a frame had to be thrown away (it may have carried updates),
  whenever a book turns inconsistent (crossed, the venue's best bid/ask in a `price_change`
  disagrees with ours, a tick change that cannot be re-keyed), and for books quiet for a while
  (which also proves they are still current). A snapshot is applied only if it is not older
  than what the book already holds (venue timestamps), so REST and websocket can interleave.
- Bad input (bad JSON, a price outside (0, 1), a negative size, an unknown token) is counted,
  logged at a bounded rate, and changes no book: validation happens before any mutation.
- Hostile input (issue 17): every frame is handled inside one guard, so no frame can end the
  connection; a bad event costs at most its token's resync (a frame that names no token we
  know: its connection's books, at most once per `CONN_RESYNC_MIN_SEC`). Numbers are bounded
  (finite; ticks only from the venue's set; sizes and timestamps in range); a timestamp in the
  future is clamped to now + `FUTURE_SKEW_MS` (else that book would refuse every later update);
  a snapshot without a timestamp never replaces a stamped book (only an unstamped one that
  waits for a resync). Strings are cut before they reach the tape. Any received frame proves
  the connection alive, not only a PONG.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from ..book import ONE, ZERO, BookError, OrderBook, parse_ts_ms, short, snapshot_levels
from ..domain import PublicTrade
from ..errors import PmmError
from ..tasks import cancel_and_wait, wait_set
from ..ticks import MAX_SIZE, venue_tick
from . import wire
from .clob_rest import ClobPublic
from .wire import (
    BookEvent,
    BookSnapshot,
    LastTradePriceEvent,
    MarketResolvedEvent,
    PriceChange,
    PriceChangeEvent,
    Refused,
    TickSizeChangeEvent,
)

if TYPE_CHECKING:
    from ..store.recording import Recorder
from .http import backoff_delay
from .tls import ws_context

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 8 * 1024 * 1024
_LOG_EVERY_SEC = 10.0
FUTURE_SKEW_MS = 5_000  # venue timestamps later than now + this are clamped to it
SLICE_EVENTS = 32  # engine runs: a frame of more events is applied by the applier, its time checked this often
CONN_RESYNC_MIN_SEC = 1.0  # a frame naming no known token reloads its connection's books at most this often


class _NewPublicTrade:
    """A `PublicTrade` under construction (`_on_last_trade`), as `book._NewLevel` is a `Level`'s."""

    __slots__ = ("token_id", "market", "price", "size", "side", "ts", "recv_ts")


if PublicTrade.__slots__ != _NewPublicTrade.__slots__:  # pragma: no cover
    raise RuntimeError("market_stream._NewPublicTrade must have the slots of domain.PublicTrade")


class BadMessage(PmmError, ValueError):
    """A message the stream refuses; the text is the logged reason."""


@dataclass
class StreamStats:
    frames: int = 0
    events: int = 0
    bad_messages: int = 0
    unknown_events: int = 0
    listener_errors: int = 0  # `on_books` raised (logged, never into the feed)
    reconnects: int = 0
    resync_requests: int = 0
    snapshots_applied: int = 0  # REST + websocket `book` snapshots
    rest_errors: int = 0
    last_message_ts: float = 0.0  # local epoch seconds of the last frame of any connection


class _Pending:
    """A received frame (decoded) or REST `/books` answer not yet fully applied (see `hold`)."""

    __slots__ = ("now", "conn", "what", "pos", "touched")

    def __init__(self, now: float, conn: _Conn | None, what: wire.DecodedFrame | list[BookSnapshot]) -> None:
        self.now = now  # receive time: the time it applies with
        self.conn = conn
        self.what = what
        self.pos = 0  # events (or snapshots) applied so far
        self.touched: set[str] = set()  # books changed so far: the listeners hear of them once, at the end


class _Conn:
    """One websocket connection and the assets it carries."""

    __slots__ = ("n", "assets", "ws", "task", "last_pong", "stopping", "last_resync", "resync_owed")

    def __init__(self, n: int) -> None:
        self.n = n
        self.assets: set[str] = set()
        self.ws: ClientConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.last_pong = 0.0  # monotonic time of the last frame of any kind (liveness)
        self.stopping = False
        self.last_resync = 0.0  # monotonic time of the last connection-wide resync for a bad frame
        self.resync_owed = False  # a bad frame arrived inside the window: resync when it ends


class MarketStream:
    """Keeps `books` (token id -> OrderBook, owned by the caller) in line with the venue.

    `on_books(token_ids)` is called after each frame with the tokens whose book changed;
    `on_trade(trade)` for each public print. Both run on the event loop and must be quick.
    """

    def __init__(self, ws_url: str, rest: ClobPublic, books: dict[str, OrderBook], *,
                 on_books: Callable[[set[str]], None] | None = None,
                 on_trade: Callable[[PublicTrade], None] | None = None,
                 chunk: int = 200, ping_sec: float = 10.0, pong_timeout_sec: float = 30.0,
                 backoff_base: float = 0.25, backoff_cap: float = 8.0, quiet_sec: float = 15.0,
                 resync_pause_sec: float = 0.05, clock: Callable[[], float] = time.time,
                 recorder: Recorder | None = None) -> None:
        self.url = ws_url.rstrip("/") + "/market"
        self.rest = rest
        self.books = books
        self.on_books = on_books
        self.on_trade = on_trade
        self.chunk = chunk
        self.ping_sec = ping_sec
        self.pong_timeout_sec = pong_timeout_sec
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.quiet_sec = quiet_sec
        self.resync_pause_sec = resync_pause_sec
        self.clock = clock
        self.recorder = recorder  # full-fidelity record of frames, connections and resyncs
        self.stats = StreamStats()
        self.conns: list[_Conn] = []
        self._conn_of: dict[str, _Conn] = {}
        self._retired: set[str] = set()  # unsubscribed tokens: late frames for them are not errors
        self._pending: set[str] = set()  # tokens to reload from REST
        self._resync_evt = asyncio.Event()
        self._last_rest: dict[str, float] = {}
        self._resync_task: asyncio.Task[None] | None = None
        self._closed = False
        self._next_conn = 0
        self._rnd = random.Random()
        self._last_log = 0.0
        self._venue_max_ms = 0  # latest venue timestamp accepted (the venue's clock, as far as we know)
        # the venue's clock for a local time, when the engine knows it (a sandbox `speed` times faster)
        self.venue_clock: Callable[[float], float] | None = None
        # called with each venue minute boundary (ms) a timestamp reaches, before that event applies:
        # the books as every event stamped before the boundary left them (reward sampling, issue 13)
        self.on_venue_minute: Callable[[int], None] | None = None
        self._boundary_ms = 0  # the next venue minute boundary (ms); 0 before the first timestamp
        # `_on_price_change`: the last timestamp text its inline path accepted, and its int (a repeat
        # is not parsed again; checked against the two fields above, which a new process resets)
        self._pc_ts_text: wire.Num = ""  # (only ever a digit text: the inline path reads no other)
        self._pc_ts_ms = 0
        self._handlers: dict[type, Callable[[Any, float, set[str]], None]] = {
            BookEvent: self._on_book,
            PriceChangeEvent: self._on_price_change,
            TickSizeChangeEvent: self._on_tick_size_change,
            LastTradePriceEvent: self._on_last_trade,
            MarketResolvedEvent: self._on_market_resolved,
        }  # the custom `best_bid_ask` / `new_market` events are decoded and not used
        self.resolutions: deque[MarketResolvedEvent] = deque(maxlen=10_000)  # market_resolved events, oldest first
        # issue 12, engine runs: a frame of many events is applied in slices of this many seconds, the
        # event loop getting a turn between them (0: every frame applied whole, as it is received)
        self.apply_budget_sec = 0.0
        self._queue: deque[_Pending] = deque()  # received, not yet (fully) applied: oldest first
        self._hold_after: float | None = None  # `hold`: what was received after this time waits
        self._applier: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # the applier has work (or the hold moved)
        self._progress: asyncio.Event | None = None  # the applier applied something (settle waits on it)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._resync_task is None:
            self._resync_task = asyncio.create_task(self._resync_loop(), name="market-resync")

    async def close(self) -> None:
        self._closed = True
        for c in self.conns:
            c.stopping = True
        try:  # a cancel of whoever closes still raises
            await cancel_and_wait(*(c.task for c in self.conns), self._resync_task, self._applier)
        finally:
            self.conns.clear()
            self._conn_of.clear()

    @property
    def assets(self) -> set[str]:
        return set(self._conn_of)

    def connected(self) -> bool:
        """True when every connection that carries assets is open (and there is one)."""
        live = [c for c in self.conns if c.assets]
        return bool(live) and all(c.ws is not None for c in live)

    def is_live(self, token_id: str) -> bool:
        c = self._conn_of.get(token_id)
        return c is not None and c.ws is not None

    def live_conns(self) -> Mapping[str, _Conn] | None:
        """What `is_live` reads: token -> its connection (a token is live when it has one whose `ws`
        is set); None when every token counts as live. For a caller that asks of every touched
        book of every frame (`MarketData._on_books`): a dict read per book instead of a call."""
        return self._conn_of

    # ------------------------------------------------------------------ subscriptions
    async def set_assets(self, assets: Iterable[str]) -> None:
        """Subscribe exactly these assets: unsubscribe the rest on their live sockets, add the new
        ones to connections with room (or new connections), bootstrap them from REST."""
        want = set(assets)
        removed = set(self._conn_of) - want
        added = sorted(want - set(self._conn_of))
        self._retired = removed  # late frames arrive within moments; the next change forgets them
        for c in self.conns:
            gone = c.assets & removed
            if gone:
                c.assets -= gone
                for a in gone:
                    self._conn_of.pop(a, None)
                self._record_conn("unsub", c, gone)
                await self._send(c, {"operation": "unsubscribe", "assets_ids": sorted(gone)})
        self._pending -= removed
        for c in [c for c in self.conns if not c.assets]:
            await self._stop_conn(c)
        for c in self.conns:
            room = self.chunk - len(c.assets)
            if room <= 0 or not added:
                continue
            take, added = added[:room], added[room:]
            c.assets.update(take)
            for a in take:
                self._conn_of[a] = c
            self._record_conn("sub", c, take)
            # the custom events (`market_resolved`: the engine settles and stops quoting on it) are
            # asked for with every subscription, as on connect (the venue's docs send the flag with
            # an `operation` subscribe too; without it, assets added on a live socket may never get them)
            await self._send(c, {"operation": "subscribe", "assets_ids": take, "custom_feature_enabled": True})
            self.request_resync(take)
        while added:
            take, added = added[: self.chunk], added[self.chunk:]
            c = _Conn(self._next_conn)
            self._next_conn += 1
            c.assets.update(take)
            for a in take:
                self._conn_of[a] = c
            self._record_conn("sub", c, take)
            self.conns.append(c)
            if not self._closed:
                c.task = asyncio.create_task(self._run_conn(c), name=f"market-ws-{c.n}")
        self.start()

    async def _stop_conn(self, c: _Conn) -> None:
        c.stopping = True
        self.conns.remove(c)
        await cancel_and_wait(c.task)

    async def _send(self, c: _Conn, msg: Any) -> None:
        ws = c.ws
        if ws is None:
            return  # not connected: the next (re)connect subscribes c.assets as they are then
        try:
            await ws.send(json.dumps(msg))
        except (WebSocketException, OSError):
            pass  # the reader sees the closed socket and reconnects

    # ------------------------------------------------------------------ connection
    async def _run_conn(self, c: _Conn) -> None:
        attempt = 0
        while not (self._closed or c.stopping) and c.assets:
            opened_at = 0.0
            try:
                # wss: the process's TLS context (websockets built one per connect, on the loop)
                async with connect(self.url, ping_interval=None, max_size=MAX_FRAME_BYTES, open_timeout=10,
                                   close_timeout=1, compression=None, ssl=ws_context(self.url)) as ws:
                    opened_at = time.monotonic()
                    c.last_pong = opened_at
                    c.ws = ws  # from here on, assets added meanwhile go out as `operation` frames
                    self._record_conn("open", c, c.assets)
                    await ws.send(json.dumps({"assets_ids": sorted(c.assets), "type": "market",
                                              "custom_feature_enabled": True}))
                    self.request_resync(c.assets)
                    pinger = asyncio.create_task(self._keepalive(c, ws), name=f"market-ping-{c.n}")
                    try:
                        async for frame in ws:
                            self.handle_frame(frame, c)
                    finally:
                        pinger.cancel()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, WebSocketException, OSError) as exc:
                self._log(logging.INFO, "market websocket %d: %s", c.n, type(exc).__name__)
            except Exception:  # a bug must cost one reconnect, not the feed
                log.exception("market websocket %d failed", c.n)
            finally:
                if c.ws is not None:
                    self._record_conn("close", c, ())
                    self.conn_closed(c)
            if self._closed or c.stopping or not c.assets:
                break
            self.stats.reconnects += 1
            if opened_at and time.monotonic() - opened_at > 2.0:
                attempt = 0  # it was a working connection: come back quickly
            await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap, self._rnd))
            attempt = min(attempt + 1, 16)

    def conn_closed(self, c: _Conn) -> None:
        """A connection went down: its books are outdated until a fresh snapshot."""
        c.ws = None
        for a in c.assets:
            b = self.books.get(a)
            if b is not None:
                b.needs_resync = True

    def _record_conn(self, kind: str, c: _Conn, assets: Iterable[str]) -> None:
        if self.recorder is not None:
            self.recorder.conn_event(self.clock(), kind, c.n, assets)

    async def _keepalive(self, c: _Conn, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_sec)
            if time.monotonic() - c.last_pong > self.pong_timeout_sec:
                self._log(logging.WARNING, "market websocket %d: no frame for %.0f s, reconnecting", c.n,
                          self.pong_timeout_sec)
                ws.transport.abort()
                return
            try:
                await ws.send("PING")
            except (WebSocketException, OSError):
                return

    # ------------------------------------------------------------------ frames
    def handle_frame(self, frame: str | bytes, conn: _Conn | None = None) -> set[str]:
        """Decode (`venue.wire`) and apply one frame (one event or an array); returns the tokens
        whose book changed (none while `hold` defers it). Never raises (one guard around
        everything): a bad frame or event is counted and logged (throttled)."""
        now = self.clock()
        self.stats.frames += 1
        self.stats.last_message_ts = now
        if conn is not None:
            conn.last_pong = time.monotonic()  # any frame proves the connection alive
        touched: set[str] = set()
        try:
            if len(frame) < 16 and frame.strip() in ("PONG", b"PONG"):
                return touched
            if self.recorder is not None:
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                self.recorder.frame(now, conn.n if conn is not None else -1, text)
            decoded = wire.decode_market_frame(frame)
            if self._queued(len(decoded.events)):
                self._enqueue(_Pending(now, conn, decoded))  # applied in order by the applier (see `hold`)
                return touched
            self._apply_frame(decoded, now, touched, conn)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a frame never ends the feed
            self._bad(f"frame failed: {type(exc).__name__}: {str(exc)[:80]}", conn)
        if touched and self.on_books is not None:
            self._notify(touched)
        return touched

    def _notify(self, touched: set[str]) -> None:
        """`on_books(touched)`; a listener's failure is logged (bounded rate) and counted, never
        raised into the feed: the books it was told of are applied, the next frame goes on."""
        assert self.on_books is not None
        try:
            self.on_books(touched)
        except Exception as exc:  # noqa: BLE001 - a listener never ends the feed
            self.stats.listener_errors += 1
            self._log(logging.ERROR, "market book listener failed (%d so far): %s: %s", self.stats.listener_errors,
                      type(exc).__name__, str(exc)[:200])

    def _apply_frame(self, decoded: wire.DecodedFrame, now: float, touched: set[str], conn: _Conn | None) -> None:
        if decoded.error is not None:
            self._bad(decoded.error, conn)
            return
        # `_handle_event` per event, its common case inline (a decoded event we handle: one call
        # less per event); anything else (a refused or unused event) goes through it
        stats, handlers = self.stats, self._handlers
        for ev in decoded.events:
            handler = handlers.get(type(ev))
            if handler is None:
                self._handle_event(ev, now, touched, conn)
                continue
            stats.events += 1
            try:
                handler(ev, now, touched)
            except Exception as exc:  # noqa: BLE001 - as in `_handle_event`
                self._event_failed(ev, exc, conn)

    # ------------------------------------------------------------------ holding the books still
    # Why: the engine's quote cycle yields to the event loop (issue 12: no 30 ms block at 500
    # markets), and a large frame is applied in slices; yet every cycle must decide on one
    # snapshot of the books, and a replay of the recording (which applies each frame whole, at
    # its receive time, and runs each cycle at its recorded time) must see what the engine saw.
    # So: everything received goes through one queue, applied in arrival order by one applier
    # task, each item with its receive time and each frame's book listeners called once, when the
    # frame is complete (as a whole frame would); `hold(until)` first applies everything received
    # up to `until` (the cycle's time), then lets nothing newer apply until `release`.
    @property
    def holding(self) -> bool:
        return self._hold_after is not None

    @property
    def backlog(self) -> int:
        """Items (frames, REST answers) received and not yet fully applied."""
        return len(self._queue)

    async def hold(self, until: float | None = None) -> None:
        """Apply everything received up to `until` (default: now), whole, then hold the books
        still: what arrives later is received (recorded, decoded) and waits until `release`."""
        until = self.clock() if until is None else until
        self._hold_after = until
        await self.settle(until)

    def release(self) -> None:
        """Let what waited (and what arrives) apply again, in order, by the applier."""
        self._hold_after = None
        if self._queue:
            self._kick()

    async def settle(self, until: float | None = None) -> None:
        """Wait until everything received up to `until` (default: now) is applied (not what a
        hold keeps waiting)."""
        until = self.clock() if until is None else until
        if self._hold_after is not None:
            until = min(until, self._hold_after)
        while self._queue and self._queue[0].now <= until:
            self._kick()
            assert self._progress is not None
            self._progress.clear()
            await self._progress.wait()

    def _queued(self, n: int) -> bool:
        """Whether a frame or REST answer of `n` events goes through the applier's queue rather than
        applying at once: something received earlier still waits (arrival order holds), a hold is
        on, or it is large enough to be applied in slices (engine runs)."""
        return bool(self._queue) or self._hold_after is not None or (self.apply_budget_sec > 0 and n > SLICE_EVENTS)

    def _enqueue(self, item: _Pending) -> None:
        self._queue.append(item)
        self._kick()

    def _kick(self) -> None:
        if self._wake is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a synchronous caller): apply in place
                self._apply_now()
                return
            self._wake, self._progress = asyncio.Event(), asyncio.Event()
        if self._applier is None or self._applier.done():
            self._applier = asyncio.create_task(self._apply_loop(), name="market-apply")
        self._wake.set()

    def _apply_now(self) -> None:
        while self._queue and (self._hold_after is None or self._queue[0].now <= self._hold_after):
            if self._apply_some(self._queue[0], None):
                self._queue.popleft()

    async def _apply_loop(self) -> None:
        """The one applier: the queue, oldest first, in slices of `apply_budget_sec`."""
        assert self._wake is not None and self._progress is not None
        wake, progress = self._wake, self._progress
        while True:
            await wake.wait()
            wake.clear()
            t0 = time.perf_counter()
            q = self._queue
            while q and (self._hold_after is None or q[0].now <= self._hold_after):
                budget = self.apply_budget_sec
                if self._apply_some(q[0], t0 + budget if budget > 0 else None):
                    q.popleft()
                progress.set()
                if budget > 0 and time.perf_counter() - t0 >= budget and q:
                    await asyncio.sleep(0)
                    t0 = time.perf_counter()
            progress.set()

    def _apply_some(self, item: _Pending, deadline: float | None) -> bool:
        """Apply `item` from where it stopped, until done (True) or past `deadline` (False)."""
        try:
            what = item.what
            if isinstance(what, list):  # a REST `/books` answer
                while item.pos < len(what):
                    self._apply_snap(what[item.pos], item.now, item.touched)
                    item.pos += 1
                    if deadline is not None and item.pos % SLICE_EVENTS == 0 and time.perf_counter() >= deadline:
                        return False
            elif what.error is not None:
                self._bad(what.error, item.conn)
            else:
                evs = what.events
                while item.pos < len(evs):
                    self._handle_event(evs[item.pos], item.now, item.touched, item.conn)
                    item.pos += 1
                    if deadline is not None and item.pos % SLICE_EVENTS == 0 and time.perf_counter() >= deadline:
                        return False
        except Exception as exc:  # noqa: BLE001 - as in handle_frame: a frame never ends the feed
            self._bad(f"frame failed: {type(exc).__name__}: {str(exc)[:80]}", item.conn)
        if item.touched and self.on_books is not None:
            self._notify(item.touched)
        return True

    def _handle_event(self, ev: Any, now: float, touched: set[str], conn: _Conn | None) -> None:
        self.stats.events += 1
        handler = self._handlers.get(type(ev))
        if handler is None:
            if isinstance(ev, Refused):
                tokens = self._raw_tokens(ev.raw)
                if ev.unknown:
                    self.stats.unknown_events += 1
                    self._lost_frame(conn, tokens)  # it may have taken the place of a real one
                else:
                    self._bad(ev.reason, conn, tokens)
            elif not isinstance(ev, wire.IGNORED_MARKET_EVENTS):  # a decoded type with no handler: never silent
                self._bad(f"no handler for a decoded {type(ev).__name__}", conn)
            return  # (or a custom-feature event we do not use)
        try:
            handler(ev, now, touched)
        except Exception as exc:  # noqa: BLE001 - BadMessage, or any other refusal of hostile input
            self._event_failed(ev, exc, conn)

    def _event_failed(self, ev: Any, exc: Exception, conn: _Conn | None) -> None:
        """A handler refused a decoded event: counted, logged, its tokens reloaded."""
        what = str(exc) if isinstance(exc, BadMessage) else f"{type(exc).__name__}: {str(exc)[:80]}"
        self._bad(f"{ev.__struct_config__.tag}: {what}", conn, self._tokens_of(ev))

    def _tokens_of(self, ev: Any) -> set[str]:
        """The subscribed tokens a decoded event names (its asset_id, or those of its price changes)."""
        if isinstance(ev, PriceChangeEvent):
            return {ch.asset_id for ch in ev.price_changes[:1000] if ch.asset_id in self.books}
        a = getattr(ev, "asset_id", None)
        return {a} if isinstance(a, str) and a in self.books else set()

    def _raw_tokens(self, ev: Any) -> set[str]:
        """The subscribed tokens an event the decoder refused still names (for a targeted resync)."""
        out: set[str] = set()
        if not isinstance(ev, Mapping):
            return out
        a = ev.get("asset_id")
        if isinstance(a, str) and a in self.books:
            out.add(a)
        chs = ev.get("price_changes")
        if isinstance(chs, list):
            for ch in chs[:1000]:
                a = ch.get("asset_id") if isinstance(ch, dict) else None
                if isinstance(a, str) and a in self.books:
                    out.add(a)
        return out

    def _book(self, asset: str) -> OrderBook | None:
        """The book of a subscribed asset; None for a token unsubscribed a moment ago; BadMessage
        for a token we never asked for."""
        b = self.books.get(asset)
        if b is None and asset not in self._retired:
            raise BadMessage(f"unknown token {asset[:20]!r}")
        return b

    def _on_book(self, ev: BookEvent, now: float, touched: set[str]) -> None:
        b = self._book(ev.asset_id)
        if b is None:
            return
        ts, clamped = self._ts(ev.timestamp, now)
        if b.synced and (ts < b.venue_ts_ms or (not ts and not b.needs_resync)):
            return  # older than the book; one without a timestamp only replaces an unstamped book that needs it
        if not b.apply_snapshot(ev, ts=now, venue_ts_ms=ts):
            self._distrust(b)
            raise BadMessage("book snapshot with invalid levels")
        self.stats.snapshots_applied += 1
        touched.add(b.token_id)
        if clamped:
            self._distrust(b)

    def _on_price_change(self, ev: PriceChangeEvent, now: float, touched: set[str]) -> None:
        v = ev.timestamp
        if v == self._pc_ts_text and (ts := self._pc_ts_ms) < self._boundary_ms and ts <= self._venue_max_ms:
            # the text the inline path below accepted last (~95 % of the events: those of a frame
            # share their timestamp), `int(v)` kept: still before the next venue minute and not
            # beyond the latest venue timestamp, that path would take it again (not clamped) and
            # change nothing (no text is parsed; the initial ("", 0) answers `_ts("")`'s (0, False))
            clamped = False
        else:
            ts = int(v) if type(v) is str and 0 < len(v) <= 14 and v.isascii() and v.isdigit() else 0
            vmax = self._venue_max_ms
            if 0 < ts < self._boundary_ms and (ts <= vmax + FUTURE_SKEW_MS or ts <= int(now * 1000) + FUTURE_SKEW_MS):
                # `_ts`'s common case, inline (a digit timestamp before the next venue minute that
                # cannot be clamped): the same answer and the same update of the latest timestamp
                clamped = False
                if ts > vmax:
                    self._venue_max_ms = ts
                self._pc_ts_text, self._pc_ts_ms = v, ts
            else:
                ts, clamped = self._ts(v, now)
        changes = ev.price_changes
        if len(changes) == 2 and (c0 := changes[0]).asset_id != (c1 := changes[1]).asset_id:
            # `_books_of`, inline for its common case (one entry on each token of a market: ~70 % of the
            # events): the same groups and the same refusal of an unknown token, without a call or a list
            by_token, retired = self.books, self._retired
            a0, a1 = c0.asset_id, c1.asset_id
            b0, b1 = by_token.get(a0), by_token.get(a1)
            if b0 is None and a0 not in retired:
                raise BadMessage(f"unknown token {a0[:20]!r}")
            if b1 is None and a1 not in retired:
                raise BadMessage(f"unknown token {a1[:20]!r}")
            # the loop below for these two one-entry groups, each applied by `OrderBook.apply_one`
            # (what `apply_event` does for a lone entry, without its length check and call)
            for b, c in ((b0, c0), (b1, c1)):
                if b is None or not b.synced:
                    continue  # as below
                h = c.hash
                vts = b.venue_ts_ms
                if ts and (ts < vts or (ts == vts and h and h == b.hash)):
                    continue
                r = b.apply_one(c, h, ts if ts > vts else None, now)
                if r < 0:
                    self._distrust(b)
                    raise BadMessage("price change with invalid price/size/side")
                touched.add(b.token_id)
                if r or clamped:
                    self._distrust(b)
            return
        for b, chs in self._books_of(changes):  # unknown token: whole message refused
            if b is None or not b.synced:
                continue  # a snapshot is on its way
            h = chs[-1].hash
            vts = b.venue_ts_ms
            if ts and (ts < vts or (ts == vts and h and h == b.hash)):
                continue  # already contained in the snapshot the book holds
            r = b.apply_event(chs, h, ts if ts > vts else None, now)  # apply, stamp, check (`OrderBook.apply_event`)
            if r < 0:
                self._distrust(b)  # it missed a real update of the venue's
                raise BadMessage("price change with invalid price/size/side")
            touched.add(b.token_id)
            if r or clamped:  # crossed, or not the venue's best bid / ask after the change
                self._distrust(b)

    def _books_of(self, changes: list[PriceChange]) -> list[tuple[OrderBook | None, list[PriceChange]]]:
        """The entries of a `price_change` grouped by token, tokens in order of first appearance,
        each with its book (`_book`: None for a token unsubscribed a moment ago; BadMessage for
        one we never asked for, before any book changes). Why not a dict per message: the venue
        sends each token's entries together (both tokens of a market, one after the other), so
        the groups are runs of one token, cut where the token changes; a token that comes back
        after another one's run (never seen from the venue) takes the general grouping."""
        books, retired = self.books, self._retired
        out: list[tuple[OrderBook | None, list[PriceChange]]] = []
        seen: list[str] = []
        cur: list[PriceChange] = []
        a = None
        for ch in changes:
            x = ch.asset_id
            if x == a:
                cur.append(ch)
                continue
            if x in seen:  # a token's second run: group as a dict would (rare; the same result)
                return self._books_of_grouped(changes)
            a = x
            seen.append(x)
            b = books.get(x)  # `_book`, inline
            if b is None and x not in retired:
                raise BadMessage(f"unknown token {x[:20]!r}")
            cur = [ch]
            out.append((b, cur))
        return out

    def _books_of_grouped(self, changes: list[PriceChange]) -> list[tuple[OrderBook | None, list[PriceChange]]]:
        """`_books_of` for entries of one token in more than one run: grouped by a dict."""
        by_asset: dict[str, list[PriceChange]] = {}
        for ch in changes:
            chs = by_asset.get(ch.asset_id)
            if chs is None:
                by_asset[ch.asset_id] = [ch]
            else:
                chs.append(ch)
        book = self._book
        return [(book(a), chs) for a, chs in by_asset.items()]

    def _on_tick_size_change(self, ev: TickSizeChangeEvent, now: float, touched: set[str]) -> None:
        b = self._book(ev.asset_id)
        if b is None:
            return
        new = venue_tick(ev.new_tick_size)
        if new is None:  # the book keeps its grid; REST tells the truth
            self._distrust(b)
            raise BadMessage(f"tick_size_change to {str(ev.new_tick_size)[:20]!r}: not one of the venue's ticks")
        if b.set_tick_size(new):
            b.ts = now
            b.version += 1  # a tick it had already changes no level, but the views carry `ts` (cached per version)
            touched.add(b.token_id)
        else:
            self._distrust(b)

    def _on_market_resolved(self, ev: MarketResolvedEvent, now: float, touched: set[str]) -> None:
        """`market_resolved` (custom feature): kept for the engine, which settles and stops quoting."""
        if not ev.market:
            raise BadMessage("market_resolved without market")
        self.resolutions.append(ev)

    def _on_last_trade(self, ev: LastTradePriceEvent, now: float, touched: set[str]) -> None:
        b = self._book(ev.asset_id)
        if b is None:
            return
        p, q = ev.price, ev.size
        if len(p) > 40 or len(q) > 40:
            raise BadMessage("last_trade_price with an overlong number")
        try:  # `to_decimal` of the wire's texts (str: the decoder's type), inline
            price, size = Decimal(p.strip()), Decimal(q.strip())
        except (ArithmeticError, ValueError, TypeError, AttributeError):  # (AttributeError: no text, as `to_decimal`'s error)
            raise BadMessage("last_trade_price with invalid price/size") from None
        if not (price.is_finite() and ZERO < price < ONE) or not (size.is_finite() and 0 < size <= MAX_SIZE):
            raise BadMessage(f"last_trade_price out of range: {str(price)[:20]} x {str(size)[:20]}")
        ts, _ = self._ts(ev.timestamp, now)
        # `PublicTrade(...)` built as `book._level` builds a `Level` (~2 k instructions, against ~11 k
        # through the frozen dataclass's `__init__`): every print of the tape
        trade: Any = _NewPublicTrade()
        trade.token_id = b.token_id
        trade.market = short(ev.market or b.market)
        trade.price = price
        trade.size = size
        trade.side = ev.side
        trade.ts = ts / 1000.0 if ts else now
        trade.recv_ts = now
        trade.__class__ = PublicTrade
        if self.on_trade is not None:
            self.on_trade(trade)

    def _ref_ms(self, now: float) -> int:
        """Our best idea of the venue's "now" (ms): the local clock, or the latest venue timestamp
        accepted when the venue runs ahead (a sandbox faster than real time), or the venue clock."""
        ref = max(int(now * 1000), self._venue_max_ms)
        if self.venue_clock is not None:
            ref = max(ref, int(self.venue_clock(now) * 1000))
        return ref

    def _ts(self, v: Any, now: float) -> tuple[int, bool]:
        """(a checked venue timestamp in ms, 0 when absent; whether it had to be clamped). A
        timestamp beyond `_ref_ms` + FUTURE_SKEW_MS is clamped to that: such a frame is suspect and
        its book is reloaded (a freeze of at most one REST round trip, not for the rest of the
        process). BadMessage for a non-number, NaN, infinity, negative or absurd one."""
        if v == self._pc_ts_text and (ts := self._pc_ts_ms) < self._boundary_ms and ts <= self._venue_max_ms:
            return ts, False  # the timestamp text `_on_price_change` accepted last: as there, nothing below changes
        if type(v) is str and 0 < len(v) <= 14 and v.isascii() and v.isdigit():
            ts = int(v)  # `parse_ts_ms`'s common case, inline (one call less per event)
        else:
            try:
                ts = parse_ts_ms(v)
            except BookError as exc:
                raise BadMessage(str(exc)) from None
        if ts > self._venue_max_ms + FUTURE_SKEW_MS and ts > int(now * 1000) + FUTURE_SKEW_MS:
            # only then can it be beyond the cap (`_ref_ms` is the max of those two and the venue
            # clock's): the venue clock is asked on this path only
            cap = self._ref_ms(now) + FUTURE_SKEW_MS
            if ts > cap:
                return cap, True
        if ts > self._venue_max_ms:
            self._venue_max_ms = ts
        if ts >= self._boundary_ms and ts:
            self._venue_minutes(ts)
        return ts, False

    def venue_minute_pending(self, guard_ms: int, venue_now_ms: int = 0) -> bool:
        """Whether the venue's time is within `guard_ms` of its next minute, or past it while no
        timestamp of that minute arrived yet (`on_venue_minute` not called for it): an order
        placed or cancelled now could straddle the venue's reward sample. The venue's time is its
        latest timestamp, or `venue_now_ms` (the venue clock) when that is further but not beyond
        the boundary plus the guard (frames late; a clock further on is the one that is off)."""
        b = self._boundary_ms
        if b <= 0:
            return False
        ref = venue_now_ms if self._venue_max_ms < venue_now_ms < b + guard_ms else self._venue_max_ms
        return ref + guard_ms >= b

    def _venue_minutes(self, ts: int) -> None:
        """Venue minutes: the venue samples the books at each minute boundary, as every event
        stamped before it left them; an event stamped at or after the boundary comes after the
        sample (the sandbox samples so). The first timestamp at or past a boundary hands it to
        `on_venue_minute` before its event applies; boundaries passed further back too, oldest
        first (the books did not change in between; at most 10)."""
        if self._boundary_ms:
            self._minute_hook(list(range(max(self._boundary_ms, ts - ts % 60_000 - 9 * 60_000), ts + 1, 60_000)))
        self._boundary_ms = ts - ts % 60_000 + 60_000

    def _minute_hook(self, boundaries: list[int]) -> None:
        hook = self.on_venue_minute
        for b in boundaries:
            if hook is None:
                return
            try:
                hook(b)
            except Exception:  # noqa: BLE001 - a sampler's failure never costs a frame
                log.exception("venue minute hook failed")

    def _distrust(self, b: OrderBook) -> None:
        """The book no longer matches the venue: flag it (views turn stale) and reload it."""
        b.needs_resync = True
        self.request_resync([b.token_id])

    def _bad(self, reason: str, conn: _Conn | None, tokens: set[str] | None = None) -> None:
        self.stats.bad_messages += 1
        self._log(logging.WARNING, "bad market message (%d so far): %s", self.stats.bad_messages, reason[:200])
        self._lost_frame(conn, tokens)

    def _lost_frame(self, conn: _Conn | None, tokens: set[str] | None = None) -> None:
        """A frame we could not use may have carried real updates: reload the books it names; when
        it names none we know, its connection's books (at most once per CONN_RESYNC_MIN_SEC)."""
        if tokens:
            self.request_resync(tokens)
            return
        if conn is not None:
            mono = time.monotonic()
            if mono - conn.last_resync >= CONN_RESYNC_MIN_SEC:
                conn.last_resync, conn.resync_owed = mono, False
                self.request_resync(conn.assets)
            else:
                conn.resync_owed = True  # the resync loop pays it when the window ends

    def _owed_resyncs(self) -> None:
        mono = time.monotonic()
        for c in self.conns:
            if c.resync_owed and mono - c.last_resync >= CONN_RESYNC_MIN_SEC:
                c.last_resync, c.resync_owed = mono, False
                self.request_resync(c.assets)

    def _log(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if level >= logging.WARNING and now - self._last_log < _LOG_EVERY_SEC:
            log.debug(msg, *args)
            return
        if level >= logging.WARNING:
            self._last_log = now
        log.log(level, msg, *args)

    # ------------------------------------------------------------------ REST resync
    def request_resync(self, tokens: Iterable[str]) -> None:
        n = len(self._pending)
        self._pending.update(t for t in tokens if t in self.books)
        if len(self._pending) != n:
            self.stats.resync_requests += len(self._pending) - n
            self._resync_evt.set()

    async def resync_now(self, tokens: Iterable[str]) -> set[str]:
        """Reload these books from REST now; returns the tokens whose book was replaced (none
        while `hold` defers the answer)."""
        tokens = [t for t in tokens if t in self.books]
        if not tokens:
            return set()
        for t in tokens:
            self._last_rest[t] = time.monotonic()
        raw = await self.rest.books(tokens)
        now = self.clock()
        if self.recorder is not None:
            self.recorder.rest(now, raw)  # the venue's objects as received (replay decodes them the same way)
        return self.apply_rest_raw(raw, now)

    def apply_rest_raw(self, payload: str | bytes | Sequence[Any], now: float) -> set[str]:
        """Decode (`venue.wire`) and apply a REST `/books` answer: JSON text or decoded objects;
        an object without the book's shape is counted and logged, the others apply."""
        snaps, errors = wire.decode_books(payload)
        for e in errors:
            self._bad(e, None)
        if self._queued(len(snaps)):
            self._enqueue(_Pending(now, None, list(snaps)))  # in order with the frames (see `hold`)
            return set()
        return self.apply_rest(snaps, now)

    def apply_rest(self, snaps: Iterable[BookSnapshot], now: float) -> set[str]:
        """Apply decoded REST `/books` snapshots received at `now` (live resyncs and replays alike)."""
        replaced: set[str] = set()
        for snap in snaps:
            self._apply_snap(snap, now, replaced)
        if replaced and self.on_books is not None:
            self._notify(replaced)
        return replaced

    def _apply_snap(self, snap: BookSnapshot, now: float, replaced: set[str]) -> None:
        b = self.books.get(snap.asset_id)
        if b is None:
            return
        try:
            ts, clamped = self._ts(snap.timestamp, now)
        except BadMessage:
            self._bad("REST book with an invalid timestamp", None)
            self._rest_again(b)
            return
        # a distrusted book whose timestamp lies in our future got it from a clamped frame: no
        # real update can be newer than the venue's own snapshot then, so the snapshot wins
        future = b.needs_resync and b.venue_ts_ms > self._ref_ms(now)
        if b.synced and (ts < b.venue_ts_ms or (not ts and not b.needs_resync)) and not future:
            self._rest_again(b)  # the venue's copy lags ours
            return
        if b.apply_snapshot(snap, ts=now, venue_ts_ms=ts):
            self.stats.snapshots_applied += 1
            replaced.add(b.token_id)
            if clamped:  # stamped in our future (as `_on_book`): the stamp would refuse the venue's
                b.needs_resync = True  # next updates, so the book is not trusted until a sane one
                self._rest_again(b)
        else:
            self._bad("REST book with invalid levels", None)
            self._rest_again(b)

    def _rest_again(self, b: OrderBook) -> None:
        """A REST answer that left `b` waiting for one (distrusted, or never synced): ask again at
        the resync loop's next turn, without waking it (a venue that keeps answering so is not
        asked in a tight loop)."""
        if b.needs_resync or not b.synced:
            self._pending.add(b.token_id)

    def _quiet_tokens(self) -> set[str]:
        """Live books without an update for `quiet_sec` (and not reloaded for as long)."""
        now, mono = self.clock(), time.monotonic()
        out = set()
        for t, b in self.books.items():
            if (b.synced and now - b.ts > self.quiet_sec and self.is_live(t)
                    and mono - self._last_rest.get(t, 0.0) > self.quiet_sec):
                out.add(t)
        return out

    async def _resync_loop(self) -> None:
        failures = 0
        while not self._closed:
            await wait_set(self._resync_evt, 1.0)
            await asyncio.sleep(self.resync_pause_sec)  # let a burst of requests coalesce
            self._owed_resyncs()
            self._resync_evt.clear()
            tokens = (self._pending & set(self.books)) | self._quiet_tokens()
            self._pending.clear()
            if not tokens:
                continue
            try:
                await self.resync_now(sorted(tokens))
                failures = 0
            except Exception as exc:  # VenueHTTPError, or a body we could not use: try again later
                self.stats.rest_errors += 1
                self._pending |= tokens
                self._log(logging.WARNING, "book resync failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(backoff_delay(failures, 0.5, 10.0, self._rnd))
                failures += 1


def book_matches(b: OrderBook, snapshot: BookSnapshot | Mapping[str, Any]) -> bool:
    """Whether a local book holds exactly the levels of a venue snapshot (tests, audits; a raw
    wire object is decoded first)."""
    snap = snapshot if isinstance(snapshot, BookSnapshot) else wire.convert(snapshot, BookSnapshot)
    tick = b.tick_size if snap.tick_size in (None, "") else Decimal(str(snap.tick_size))
    return b.wire_levels() == snapshot_levels(snap) and b.tick_size == tick
