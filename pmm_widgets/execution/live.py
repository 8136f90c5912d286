"""Live (and dry-run) exchange: the `Exchange` protocol over the SDK broker and the user tape.

Why it is built this way:
- Orders go out as post-only GTC limit orders through `venue.broker`: signed by the project's
  signer (byte-identical to the official SDK's, which stays the reference) and posted by the
  async order entry, or, with PMM_FAST_ORDERS=false, signed and posted by the SDK on its one
  worker thread. Our client ids are mapped to the venue's order hashes in `orders` (upsert key
  client_id, mode 'live' or 'dry_run'). A live post runs as a task this exchange owns: a caller
  cancelled mid-post (a stop) never abandons a POST the venue holds (`settle_inflight`).
- Fills come from the authenticated user channel (`venue.user_stream`), not from order
  responses: `trade` events become `trades` rows keyed by the venue trade id (one row per fill,
  every status transition kept in raw_json["statuses"]). A fill counts when MATCHED; if the trade
  later ends FAILED, `poll()` returns a reversing fill (same price and size, opposite side) so
  inventory and cash are corrected exactly, and the row's status becomes FAILED.
- Events can race the HTTP response that tells us an order's id (the venue pushes PLACEMENT
  before we read the answer), so events for ids we do not know yet wait in a short buffer.
- Reconcile at start and after every user-stream reconnect, under the same lock as place and
  cancel (so an in-flight order is never mistaken for an orphan): list open orders over REST and
  adopt or cancel the ones we do not own (`settings.adopt_unknown`), then backfill trades from
  `/data/trades`. Rows are upserted by trade id, so a fill is never counted twice; the
  venue-id → client-id map and the trade ids already stored are read back from the DB at start
  so that a restart after a crash keeps the original client ids and counts only missed fills.
- Safety valves, independent of each other: the venue's order heartbeat (dead-man's switch,
  every `heartbeat_sec` while the venue serves it), and a watchdog that cancels everything when
  the user stream (or the market feed, via `market_feed_ok`) has been down longer than
  `settings.disconnect_cancel_sec`; quoting stays halted until the streams are back. `kill()`
  cancels all, verifies zero open orders over REST and records an event.
- Dry-run builds and signs every order (as live would) but posts nothing and makes no
  authenticated request at all; intended orders are recorded with mode 'dry_run', status
  DRY_RUN, and `open_orders()` shows what would rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from ..book import BookNote, as_view
from ..config import Settings
from ..domain import BookView, Fill, FillType, Market, Mode, Order, OrderStatus, PublicTrade, Quote, Side
from ..errors import ExpectedFailure, PmmError
from ..events import EventBus, EventKind, Level
from ..store.recorder import DbRecorder, as_recorder, persisting_bus
from ..store.sink import Sink
from ..tasks import spawn, to_thread_undone_on_cancel, within
from ..ticks import to_decimal
from ..venue.broker import (
    Broker,
    BrokerError,
    CancelError,
    Creds,
    PlaceResult,
    api_creds_refused,
    call_options,
    creds_failure,
)
from ..venue.user_stream import UserStream, UserStreamHealth
from ..venue.wire import (
    Liquidity,
    Num,
    OrderEvent,
    OrderEventKind,
    Trade,
    TradeEvent,
    TradeStatus,
    UserEvent,
    VenueOrder,
    VenueOrderStatus,
    WireError,
    parse_side,
)
from .exchange import CancelProgress, observe_each, venue_rule_violation

log = logging.getLogger(__name__)

T = TypeVar("T")

EVENT_BUFFER_SEC = 30.0  # how long events for a not-yet-known order id wait for its placement answer
BACKFILL_MARGIN_SEC = 300.0
WATCHDOG_SEC = 0.2
CLOSED_KEEP_SEC = 600.0  # closed orders and final trades stay in memory this long (late events), then go
EVICT_EVERY_SEC = 60.0
GONE_KEPT = 10_000  # orders closed as gone whose late placement is still watched for (`_cancel_landed_late`)
CLOSE_SETTLE_SEC = 1.0  # what `close` still waits for posts in flight (the stop's `cancel_and_verify` waited first)
# `close`'s cancel and its wait for posts in flight, together: inside the stop's budget after its
# verification (engine.runtime.AFTER_VERIFY_SEC), whatever the venue's HTTP timeout
CLOSE_CANCEL_SEC = 1.5
PROBE_SETTLE_SEC = 4.0  # what the circuit probe waits for posts in flight (as the stop: `SETTLE_INFLIGHT_SEC`)


POST_TASK = "a placement's post"
REQUOTE_CANCEL_TASK = "a requote's cancel"


def _log_unheard(what: str, exc: BaseException) -> None:
    """The error of a task whose caller was cancelled (`LiveExchange._own`): nobody else hears it."""
    log.error("live: %s (its caller cancelled) failed: %s", what, exc, exc_info=exc)


class LiveError(PmmError):
    """Live trading cannot start or continue (missing credentials, venue refused auth)."""


class VenueRefusedStart(LiveError, ExpectedFailure):
    """The live start's first reconcile failed for good (the venue down after the retries, or
    refusing this client): one line naming the host, not a crash (`pmm run` printed "engine
    crashed: LiveError: cannot reconcile with the venue at …")."""


class CredentialsFailed(LiveError, ExpectedFailure):
    """The live start's credential step failed for good (after its retries): the venue refused the
    wallet's signature, or did not answer (`creds_failure`); or the venue refused the L2 API
    credentials at their first use (`api_creds_refused`). One line naming the host, not a crash."""


@dataclass(frozen=True)
class LiveHealth:
    mode: str
    user_stream: UserStreamHealth | None
    heartbeat: str  # "ok", "off" (venue does not serve it / dry-run), "failing"
    halted: str | None  # why quoting is halted (a safety valve fired), None when trading
    open_orders: int
    reconciles: int
    disconnect_cancels: int


@dataclass
class _TradeState:
    fill: Fill
    statuses: list[TradeStatus]
    counted: bool
    reversed: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Span:
    """When the venue placed and removed one of our orders, on its own clock (epoch s): the
    `timestamp` of the user channel's PLACEMENT and CANCELLATION events. What `orders_at` reads
    to say which orders rested at a venue instant just past."""

    placed: float | None = None
    gone: float | None = None


@dataclass(frozen=True, slots=True)
class OurFill:
    """One fill of ours inside a venue trade (one trade can fill several of our maker orders)."""

    order_id: str
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    liquidity: Liquidity
    fee_rate_bps: Decimal | None = None  # None when the tape's field is absent or unreadable


def our_fills(ev: Trade, api_key: str, addresses: set[str], our_order_ids: Callable[[str], bool]) -> list[OurFill]:
    """Our fills inside one trade (WS event or REST row). As taker the top-level fields are ours;
    as maker each `maker_orders` entry whose owner or maker_address is ours is a fill at its own
    price, possibly on the complement token (the entry's asset_id); its side defaults to the
    taker's opposite on the same token and to the taker's side on the complement. WireError
    (a ValueError) when a fill of ours has no readable side, price or size."""
    out: list[OurFill] = []
    taker_id = ev.taker_order_id
    top_side = parse_side(ev.side)
    top_asset = ev.asset_id

    def fill(order_id: str, token: str, side: Side | None, price: str, size: str, liq: Liquidity, bps: Num) -> OurFill:
        if side is None:
            raise WireError(f"trade {ev.id[:40]}: fill of order {order_id[:20]} without a side")
        try:
            rate = None if bps in (None, "") or isinstance(bps, bool) else to_decimal(bps)
        except (ArithmeticError, ValueError, TypeError):
            rate = None  # the fee then comes from the market's schedule, as for a maker
        try:
            return OurFill(order_id, token, side, to_decimal(price), to_decimal(size), liq,
                           rate if rate is None or rate.is_finite() else None)
        except (ArithmeticError, ValueError) as exc:
            raise WireError(f"trade {ev.id[:40]}: unreadable price/size {price[:20]!r} x {size[:20]!r}") from exc

    if ev.liquidity is Liquidity.TAKER or (taker_id and our_order_ids(taker_id)):
        if taker_id and (ev.owner == api_key or our_order_ids(taker_id)):
            out.append(fill(taker_id, top_asset, top_side, ev.price, ev.size, Liquidity.TAKER, ev.fee_rate_bps))
            return out
    for mo in ev.maker_orders or ():
        if not (mo.owner == api_key or mo.maker_address.lower() in addresses or our_order_ids(mo.order_id)):
            continue
        asset = mo.asset_id or top_asset
        side = parse_side(mo.side)
        if side is None and top_side is not None:
            side = top_side.opposite if asset == top_asset else top_side
        out.append(fill(mo.order_id, asset, side, mo.price, mo.matched_amount, Liquidity.MAKER, mo.fee_rate_bps))
    return out


class LiveExchange:
    """`Exchange` for mode LIVE (or DRY_RUN with `dry_run=True`)."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink | DbRecorder,
        clob_url: str,
        ws_url: str,
        dry_run: bool = False,
        *,
        market_feed_ok: Callable[[], bool] | None = None,
        heartbeat_sec: float = 5.0,
        broker: Broker | None = None,
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        """`sink`: where orders and trades are recorded; `events`: the bus its events go on (the
        engine's: persisted once and shown in the faces' log; None: one that persists here)."""
        self.mode = Mode.DRY_RUN if dry_run else Mode.LIVE
        self.settings = settings
        self.rec = as_recorder(sink)
        self.events = events if events is not None else persisting_bus(self.rec)
        self.clob_url = clob_url.rstrip("/")
        self.ws_url = ws_url.rstrip("/")
        self.market_feed_ok = market_feed_ok
        self.heartbeat_sec = heartbeat_sec
        self.adopt_unknown = bool(getattr(settings, "adopt_unknown", False))
        self._clock = clock
        self._broker = broker
        self._stream: UserStream | None = None
        self._session = uuid.uuid4().hex[:8]
        self._seq = 0
        self._markets: dict[str, Market] = {}  # token id -> market
        self._mids: dict[str, Decimal] = {}
        self._open: dict[str, Order] = {}  # client id -> open order
        self._inflight: dict[str, Order] = {}  # client id -> order posted, no answer yet
        self._spans: dict[str, _Span] = {}  # client id -> venue times of its placement/removal (`orders_at`)
        # measured order round trips (ms): one per POST of a batch, from send to the venue's answer
        # (signing included); what the paper latency model draws from (`PMM_PAPER_LATENCY_FILE`)
        self.order_rtt_ms: deque[float] = deque(maxlen=10_000)
        self._by_venue: dict[str, Order] = {}  # venue id -> order (closed ones too: late fills)
        self._history: dict[str, dict[str, Any]] = {}  # venue id -> DB row of an earlier run
        self._unconfirmed: list[dict[str, Any]] = []  # PENDING rows of an earlier run, no venue id
        self._trades: dict[str, _TradeState] = {}
        # trade ids already counted that are not in `_trades`: written by an earlier run, or evicted
        # from memory; a backfill can return them while they are newer than the last trade less
        # BACKFILL_MARGIN_SEC, so they stay until the newest of them (`_stored_max_ts`) is older
        self._stored_trades: set[str] = set()
        self._stored_max_ts: float | None = None
        self._pending: list[Fill] = []
        self._buffer: dict[str, list[tuple[float, UserEvent]]] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        # venue ids of orders closed because the venue did not hold them (`_close_gone`; the newest
        # GONE_KEPT), and the cancels of those the venue then placed after all (`_cancel_landed_late`)
        self._gone: dict[str, None] = {}
        self._late_tasks: set[asyncio.Task[Any]] = set()
        # a fast requote's DELETE, sent beside its POST (`requote`): owned here too
        self._cancels: set[asyncio.Task[list[str]]] = set()
        # live placements being posted and settled (`_send_places`): owned here, not by the caller,
        # so a caller cancelled meanwhile (a stop's grace ran out) never abandons a POST the venue holds
        self._posts: set[asyncio.Task[None]] = set()
        # the owned tasks a caller will hear (`_own`, `_hear`), with the error spawn passed on
        # meanwhile (None: none yet): the caller hears it, or, cancelled, logs it as it leaves
        self._awaited: dict[asyncio.Task[Any], BaseException | None] = {}
        self._started = False
        self._api_key = ""
        self._addresses: set[str] = set()
        self._hb_state = "off"
        self._halted: str | None = None
        self._down_since: float | None = None
        self._last_trade_ts: float | None = None
        self._next_evict = 0.0
        self.reconciles = 0
        self.cancels = 0  # orders the venue answered cancelled (`Exchange.cancels`; dry-run: closed here)
        self.disconnect_cancels = 0
        self.adopted = 0
        self.orphans_cancelled = 0
        self.backfilled = 0

    # ------------------------------------------------------------------ lifecycle
    def _make_broker(self) -> Broker:
        s = self.settings
        if not s.has_private_key:
            raise LiveError(f"{self.mode.value} mode needs PMM_PRIVATE_KEY: orders are signed with the wallet key")
        creds = Creds(s.api_key, s.api_secret, s.api_passphrase) if s.has_l2_creds else None  # type: ignore[arg-type]
        return Broker(self.clob_url, s.chain_id, s.private_key, creds=creds, signature_type=s.signature_type,
                      funder=s.funder or None, fast=s.fast_orders, max_inflight=s.max_inflight_requests,
                      **call_options(s))

    async def start(self) -> None:
        """Live: derive L2 creds if needed, load the DB history, reconcile, open the user stream,
        start the safety valves. Dry-run: only the signer (no request that needs auth)."""
        if self._started:
            return
        if self._broker is None:
            # in a worker thread: the first broker of a process imports and builds the SDK client
            # (~0.4 s of CPU), which on the loop would stall the page, the feed and every task; a
            # start cancelled meanwhile closes the broker the thread built (its threads, its client)
            self._broker = await to_thread_undone_on_cancel(self._make_broker, Broker.close)
        b = self._broker
        self._addresses = {a.lower() for a in (b.address, b.funder) if a}
        self._started = True
        if self.mode is Mode.DRY_RUN:
            return
        given = b.has_creds  # PMM_API_KEY/SECRET/PASSPHRASE (else derived here)
        if not given:
            try:
                await b.derive_creds()
            except BrokerError as exc:
                raise CredentialsFailed(f"cannot derive API credentials at {b.host}: {creds_failure(exc)}") from None
        assert b.creds is not None
        self._api_key = b.creds.api_key.get_secret_value()
        await self._load_history()
        try:
            await self.reconcile()
        except BrokerError as exc:  # the first call with the L2 credentials: a refusal is theirs
            refused = api_creds_refused(exc, b.host, b.address, given)
            if refused is not None:
                raise CredentialsFailed(refused) from None
            raise VenueRefusedStart(f"cannot start live at {b.host}: the first reconcile failed ({exc})") from None
        self._stream = UserStream(self.ws_url + "/user", self._ws_auth, self._on_event, on_connect=self._on_connect)
        await self._stream.start(wait=10.0)
        self._tasks = [asyncio.create_task(self._watchdog(), name="live-watchdog")]
        if self.heartbeat_sec > 0:
            self._tasks.append(asyncio.create_task(self._heartbeats(), name="live-heartbeat"))

    async def close(self) -> None:
        """Cancel everything we have open, then stop the valves, the stream and the worker."""
        if self._started and self.mode is Mode.LIVE:
            try:  # a post still in flight may yet place orders: wait a little, cancel what landed
                _, left = await within(self.cancel_settled(CLOSE_SETTLE_SEC), CLOSE_CANCEL_SEC)
            except TimeoutError:  # a venue slow on every call: the stop's budget cannot wait for it
                left = len(self._inflight)
                log.error("live: closing: the cancel-all was not answered within %g s: orders of ours may rest "
                          "at the venue (check its open orders)", CLOSE_CANCEL_SEC)
            except Exception:
                left = len(self._inflight)
            if left:
                self._event(Level.ERROR, EventKind.ERROR,
                            f"closing with {left} orders posted and not answered by the venue: they may "
                            "still come to rest there (check the venue's open orders)",
                            {"client_ids": sorted(self._inflight)})
        elif self._started:
            await self.cancel_all()
        # the valves, the cancels of late-placed orders and of requotes whose cycle was cancelled
        # (the cancel-all above took those orders too) and the posts still unanswered (said
        # above); a cancel of this close is swallowed here (as before): the stream and the broker
        # still close
        tasks: list[asyncio.Task[Any]] = [*self._tasks, *self._late_tasks, *self._cancels, *self._posts]
        self._tasks = []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._stream is not None:
            await self._stream.close()
            self._stream = None
        if self._broker is not None:
            await self._broker.aclose()
        self._started = False

    def set_markets(self, markets: Sequence[Market]) -> None:
        for m in markets:
            for t in m.token_ids:
                self._markets[t] = m  # kept after a market leaves: late fills still resolve

    def health(self) -> LiveHealth:
        return LiveHealth(self.mode.value, self._stream.health() if self._stream else None, self._hb_state,
                          self._halted, len(self._open), self.reconciles, self.disconnect_cancels)

    def venue_failures(self) -> int:
        """Venue calls that failed for good (after their retries) since start: the engine's
        circuit breaker watches this grow."""
        return self._broker.failures if self._broker is not None else 0

    async def probe(self) -> int:
        """The circuit breaker's probe while quoting is paused: cancel all, then confirm with the
        venue that nothing rests (raises BrokerError while the venue still fails). After a
        successful probe, reconcile: posts that landed late and fills missed are settled. A post
        still in flight (its cycle was cancelled) is waited for first, as a stop does
        (`cancel_settled`): one the venue still holds is a failed probe, not "0 open"."""
        n, unanswered = await self.cancel_settled(PROBE_SETTLE_SEC)
        if unanswered:
            raise BrokerError("probe", f"{unanswered} orders posted and not answered after {PROBE_SETTLE_SEC:g} s: "
                              "they may still come to rest")
        left = await self.count_venue_open_orders()
        if left:
            raise BrokerError("probe", f"{left} orders still open after cancel-all")
        if self.mode is Mode.LIVE:
            await self.reconcile()
        return n

    @property
    def broker(self) -> Broker | None:
        return self._broker

    @property
    def _venue(self) -> Broker:
        """The broker, for the calls that need one (it exists from `start()` on)."""
        if self._broker is None:
            raise LiveError(f"{self.mode.value} exchange not started: no broker to talk to the venue")
        return self._broker

    # ------------------------------------------------------------------ records
    def _next_id(self) -> str:
        self._seq += 1
        return f"{'lv' if self.mode is Mode.LIVE else 'dr'}-{self._session}-{self._seq}"

    def _record_order(self, o: Order) -> None:
        self.rec.order(o, reason_max=500)

    def _event(self, level: Level, kind: EventKind, message: str, data: dict[str, Any] | None = None) -> None:
        self.events.emit(level, kind, message, data=data, ts=self._clock())
        # the log names the kind once ("reconcile: 0 open …", never "reconcile: reconcile: 0 open …")
        named = message.startswith(f"{kind.value}:")
        log.log(logging.getLevelName(level.value), "%s", message if named else f"{kind.value}: {message}")

    def _close_order(self, o: Order, status: OrderStatus, reason: str = "") -> None:
        o.status, o.updated_ts = status, self._clock()
        if reason:
            o.reason = reason
        self._open.pop(o.client_id, None)
        self._record_order(o)

    def _close_gone(self, o: Order, reason: str) -> None:
        """The venue no longer holds `o`: FILLED when nothing of it remains, else CANCELED. Or not
        yet: a POST it acts on late is placed after this (`_cancel_landed_late`), so the id is kept."""
        self._close_order(o, OrderStatus.FILLED if o.remaining <= 0 else OrderStatus.CANCELED, reason)
        if o.venue_order_id:
            self._gone[o.venue_order_id] = None
            if len(self._gone) > GONE_KEPT:
                del self._gone[next(iter(self._gone))]

    # ------------------------------------------------------------------ orders
    async def place(self, quotes: Sequence[Quote]) -> list[Order]:
        """Post quotes as post-only GTC orders (batches of 15). Rejected ones come back REJECTED."""
        out, send = self._prepare(quotes)
        if not send:
            return out
        async with self._lock:
            await self._send_places(send)
        return out

    def _prepare(self, quotes: Sequence[Quote]) -> tuple[list[Order], list[tuple[Order, tuple[Quote, Decimal, bool]]]]:
        """New orders for `quotes` (the ones the venue would refuse REJECTED at once), and what to send."""
        if not self._started:
            raise LiveError("LiveExchange.start() was not called")
        now = self._clock()
        out: list[Order] = []
        send: list[tuple[Order, tuple[Quote, Decimal, bool]]] = []
        for q in quotes:
            o = Order(self._next_id(), q.market, q.token_id, q.side, q.price, q.size, self.mode,
                      created_ts=now, updated_ts=now)
            reason = self._halted or venue_rule_violation(q, self._markets.get(q.token_id))
            if reason is not None:
                o.status, o.reason = OrderStatus.REJECTED, reason
                self._record_order(o)
            else:
                m = self._markets[q.token_id]
                send.append((o, (q, m.tick_size, m.neg_risk)))
            out.append(o)
        return out, send

    async def _send_places(self, send: list[tuple[Order, tuple[Quote, Decimal, bool]]]) -> None:
        """Post (caller holds the lock) and settle the answer (`_post`). Live, this runs as a task
        the exchange owns (`_posts`), shielded from the caller: a caller cancelled while the venue
        holds the POST (a stop's grace ran out mid-cycle) leaves it running, so the orders that
        land are recorded LIVE with their venue id, and the stop waits for it (`settle_inflight`)
        before it verifies; the POST itself cannot be called back once sent. Dry-run posts nothing."""
        if self.mode is Mode.DRY_RUN:
            await self._post(send)
            return
        await self._hear(self._start_post(send), POST_TASK)

    def _start_post(self, send: list[tuple[Order, tuple[Quote, Decimal, bool]]]) -> asyncio.Task[None]:
        return self._own(self._post(send), "live-post", self._posts, POST_TASK)

    def _own(self, coro: Coroutine[Any, Any, T], name: str, owner: set[asyncio.Task[T]], what: str) -> asyncio.Task[T]:
        """Start `coro` as a task this exchange owns (`spawn` into `owner`: `close` ends it) for
        the caller that awaits it (`_hear`). Its error goes to that caller; a caller that leaves
        without hearing it (cancelled: a stop's grace ran out mid-cycle) leaves it running, and
        its error, then or later, has nobody else to tell: it is logged. Once either way."""

        def failed(task: asyncio.Task[Any], exc: BaseException) -> None:
            if task in self._awaited:
                self._awaited[task] = exc  # the caller hears it (`_hear`) or logs it as it leaves (`_release`)
            else:
                _log_unheard(what, exc)

        task = spawn(coro, name, owner, on_error=failed)
        self._awaited[task] = None
        return task

    async def _hear(self, task: asyncio.Task[T], what: str) -> T:
        """The result or error of a task started by `_own`, awaited shielded: a cancel of the
        caller leaves the task running (`_release`)."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._release(task, what)
            raise
        finally:
            self._awaited.pop(task, None)  # heard

    def _release(self, task: asyncio.Task[Any], what: str) -> None:
        """The caller of a task started by `_own` leaves without hearing it: its error, if spawn
        already passed it on (it failed in the very step the caller was cancelled), is logged
        now, else when it comes."""
        if task in self._awaited and (exc := self._awaited.pop(task)) is not None:
            _log_unheard(what, exc)

    async def cancel_settled(self, settle_sec: float, progress: CancelProgress | None = None) -> tuple[int, int]:
        """`Exchange.cancel_settled`: the one sequence of a stop, a close, a probe and a pause. The
        placements posted and not answered yet make no new attempt from its start (a retry sent
        during the cancel-all's round trip placed orders after it); the cancel-all leaves at once;
        then those placements are waited for (`settle_inflight`; a pause waits 0 s) and what they
        placed meanwhile (open here, venue id known) is cancelled. A cancel-all that fails with
        posts in flight is tried again after the wait (its error raises only if that one fails
        too); when the first one succeeded, a failure of the second is logged, not raised: what it
        left rests at the venue, and the caller's count (a stop's verification, the probe's) sees it."""
        prog = CancelProgress() if progress is None else progress
        if self._posts:
            self._venue.stop_posting()
        try:
            n, failed = await self.cancel_all(), False
        except Exception:
            if not self._posts:
                raise
            n, failed = 0, True
        prog.cancelled += n
        prog.awaiting, prog.unanswered = "posts", len(self._inflight)
        left = await self.settle_inflight(settle_sec)
        if failed or self._open:  # placed by a post that ended meanwhile (or not cancelled yet)
            prog.awaiting = "cancel-all"
            try:
                got = await self.cancel_all()
                n += got
                prog.cancelled += got
            except Exception as exc:
                if failed:
                    raise
                log.warning("live: cancel-all after the posts in flight ended failed (%s): %d orders of ours "
                            "may rest at the venue", exc, len(self._open))
        return n, left

    async def settle_inflight(self, timeout: float) -> int:
        """A stop's (a probe's, a pause's): wait (at most `timeout` s, and no longer than one HTTP timeout) for the
        placements posted and not answered yet (`_send_places`: a cancelled caller leaves them
        running); from then on they make no new attempt (`Broker.stop_posting`). What they leave
        resting is then open here (LIVE, venue id known) for a cancel. Returns the orders still
        without an answer: 0, or that many may still come to rest at the venue."""
        posts = set(self._posts)
        if posts:
            self._venue.stop_posting()  # a post retrying (a 429, a lost answer) sends nothing more
            await asyncio.wait(posts, timeout=max(0.0, min(timeout, self.settings.http_timeout_sec)))
        return len(self._inflight)

    async def _post(self, send: list[tuple[Order, tuple[Quote, Decimal, bool]]]) -> None:
        """POST and settle the answer. An order whose POST got no definitive answer (timeout,
        transport error, 5xx) may rest at the venue: its id is known (we signed it), so it is
        tracked as open and cancelled at once; if that cancel fails too it stays open locally and
        the next cycle or reconcile deals with it: never an order at the venue we forgot."""
        for o, _ in send:
            self._record_order(o)  # PENDING: recorded before anything leaves
            self._inflight[o.client_id] = o
        t0 = time.perf_counter()
        try:
            results = await self._venue.post_orders([it for _, it in send], dry_run=self.mode is Mode.DRY_RUN)
            if self.mode is Mode.LIVE:  # a dry run signs and sends nothing: no round trip to measure
                self.order_rtt_ms.append((time.perf_counter() - t0) * 1000.0)
        except BrokerError as exc:
            results = [PlaceResult(it[0], False, error=str(exc)) for _, it in send]
        finally:
            for o, _ in send:
                self._inflight.pop(o.client_id, None)
        now = self._clock()
        unsure: list[str] = []
        for (o, _), r in zip(send, results):
            o.updated_ts = now
            if not r.ok and not (r.uncertain and r.order_id):
                o.status, o.reason = OrderStatus.REJECTED, r.error
                self._record_order(o)
                continue
            o.venue_order_id = r.order_id
            o.status = OrderStatus.DRY_RUN if self.mode is Mode.DRY_RUN else OrderStatus.LIVE
            if not r.ok:
                o.reason = f"uncertain: {r.error}"[:500]
                unsure.append(str(r.order_id))
            self._open[o.client_id] = o
            if r.order_id:
                self._by_venue[r.order_id] = o
            self._record_order(o)
            if r.order_id in self._buffer:
                for _, ev in self._buffer.pop(r.order_id):
                    self._on_event(ev)
        if unsure:
            try:
                await self._cancel_venue(unsure)
            except BrokerError as exc:
                log.warning("live: cancel of %d orders with a lost answer failed (%s); they stay tracked",
                            len(unsure), exc)

    async def requote(self, cancel_ids: Sequence[str], quotes: Sequence[Quote]) -> tuple[list[str], list[Order]]:
        """One cycle's cancels and places, in flight together (one DELETE /orders beside the
        POST /orders batches): (client ids cancelled, new orders). If the cancel request itself
        fails, the orders just placed on the tokens it concerned are cancelled again, so a
        replacement never rests beside the order it replaces for longer than one round trip."""
        if self.mode is Mode.DRY_RUN or not self._broker or not self._broker.fast:
            done = await self.cancel(cancel_ids) if cancel_ids else []
            return done, (await self.place(quotes) if quotes else [])
        out, send = self._prepare(quotes)
        ids = self._venue_ids(cancel_ids)
        if not ids and not send:
            return [], out
        async with self._lock:
            post = self._start_post(send) if send else None  # (first: the POST leaves before the DELETE)
            cancel_task = self._own(self._cancel_venue(list(ids)), "live-requote-cancel", self._cancels,
                                    REQUOTE_CANCEL_TASK) if ids else None
            try:
                if post is not None:
                    await self._hear(post, POST_TASK)
                done = []
                if cancel_task is not None:
                    try:
                        done = await self._hear(cancel_task, REQUOTE_CANCEL_TASK)
                    except BrokerError as exc:  # (what the batches that did answer said is settled)
                        tokens = {self._open[cid].token_id for cid in ids.values() if cid in self._open}
                        undo = [o.venue_order_id for o, _ in send if o.token_id in tokens
                                and o.client_id in self._open and o.venue_order_id]
                        log.warning("live: requote cancel failed (%s); pulling %d replacements", exc, len(undo))
                        if undo:
                            with contextlib.suppress(BrokerError):
                                await self._cancel_venue([v for v in undo if v])
                        raise
            finally:  # a caller cancelled while the POST was out leaves the DELETE running, owned
                if cancel_task is not None:
                    self._release(cancel_task, REQUOTE_CANCEL_TASK)
        return done, out

    def _venue_ids(self, client_ids: Sequence[str]) -> dict[str, str]:
        return {o.venue_order_id: cid for cid in client_ids
                if (o := self._open.get(cid)) is not None and o.venue_order_id}

    async def cancel(self, client_ids: Sequence[str]) -> list[str]:
        if self.mode is Mode.DRY_RUN:
            done = [cid for cid in client_ids if cid in self._open]
            for cid in done:
                self._close_order(self._open[cid], OrderStatus.CANCELED, "cancelled")
            self.cancels += len(done)
            return done
        ids = self._venue_ids(client_ids)
        if not ids:
            return []
        async with self._lock:
            return await self._cancel_venue(list(ids))

    async def _cancel_venue(self, vids: list[str]) -> list[str]:
        """DELETE these venue ids and settle what the venue answered (client ids cancelled); when
        some batches failed (CancelError), the others' answer is settled before it propagates."""
        try:
            r = await self._venue.cancel(vids)
        except CancelError as exc:
            self._apply_cancel(exc.partial.canceled, exc.partial.not_canceled)
            raise
        return self._apply_cancel(r.canceled, r.not_canceled)

    def _venue_cancelled(self, canceled: Sequence[str]) -> None:
        """Count the orders one answer of the venue says it cancelled (`cancels`): every id it
        names once, ours open here or not (an earlier run's, one closed here as gone); an order
        it could not cancel (filled, already gone: `not_canceled`) is not counted."""
        self.cancels += len(set(canceled))

    def _apply_cancel(self, canceled: Sequence[str], not_canceled: dict[str, str]) -> list[str]:
        self._venue_cancelled(canceled)
        done = []
        for vid in canceled:
            o = self._by_venue.get(vid)
            if o is not None and o.client_id in self._open:
                self._close_order(o, OrderStatus.CANCELED, "cancelled")
                done.append(o.client_id)
        for vid, why in not_canceled.items():
            o = self._by_venue.get(vid)
            if o is not None and o.client_id in self._open:  # not open at the venue: filled or gone
                self._close_gone(o, why)
        return done

    async def cancel_market(self, market: str) -> int:
        if self.mode is Mode.DRY_RUN:
            return len(await self.cancel([o.client_id for o in self._open.values() if o.market == market]))
        async with self._lock:
            r = await self._venue.cancel_market(market=market)
            self._apply_cancel(r.canceled, r.not_canceled)
        return len(r.canceled)

    async def cancel_all(self) -> int:
        if self.mode is Mode.DRY_RUN:
            return len(await self.cancel(list(self._open)))
        async with self._lock:
            r = await self._venue.cancel_all()
            self._apply_cancel(r.canceled, r.not_canceled)
            for o in list(self._open.values()):  # the venue holds none of ours any more
                self._close_gone(o, "cancel-all")
        return len(r.canceled)

    async def orders_scoring(self, order_ids: list[str]) -> dict[str, bool] | None:
        """The venue's reward eligibility of our orders (None in dry-run: nothing rests there)."""
        if self.mode is Mode.DRY_RUN:
            return None
        return await self._venue.orders_scoring(order_ids)

    async def venue_payouts(self, date: str) -> tuple[Any, Any] | None:
        """The venue's answers for one day's paid liquidity rewards and maker rebates (raw rows,
        read by `economics.payouts.parse_paid`); None in dry-run (nothing of ours earns there)."""
        if self.mode is Mode.DRY_RUN:
            return None
        return await self._venue.rewards_paid(date), await self._venue.rebates_paid(date)

    async def venue_positions(self, token_ids: Sequence[str]) -> dict[str, Decimal]:
        """The wallet's shares of each token as the venue holds them (live; empty in dry-run)."""
        if self.mode is Mode.DRY_RUN:
            return {}
        return {t: await self._venue.token_balance(t) for t in token_ids}

    async def count_venue_open_orders(self) -> int:
        if self.mode is Mode.DRY_RUN:
            return len(self._open)
        return len(await self._venue.open_orders())

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    def orders_at(self, venue_ts: float) -> list[Order]:
        """Our orders as they rested at a venue instant a moment ago (the reward sample the market
        stream hands over after the fact): the venue's state made of every event stamped before
        `venue_ts`; one stamped at or after it is later (the rule of `MarketStream.on_venue_minute`
        and of the sandbox's sample). The shares filled at or after `venue_ts` are given back (the
        fills' venue times are whole seconds: one stamped `venue_ts` was matched at or after it).
        Where the user channel already told the venue's times of an order's placement and
        removal (`_Span`), they decide: an order placed at or after the instant does not count,
        one cancelled at or after it does (a requote around a minute is counted once, not twice).
        An order whose events have not arrived yet counts as it is now (open or posted). Copies."""
        back: dict[str, Decimal] = {}
        for st in self._trades.values():
            f = st.fill
            # `>=`: the tape's match time has whole seconds, and the venue samples at the start of its minute
            if st.counted and not st.reversed and f.ts >= venue_ts and f.venue_order_id:
                back[f.venue_order_id] = back.get(f.venue_order_id, Decimal(0)) + f.size
        spans = self._spans

        def placed_after(o: Order) -> bool:
            sp = spans.get(o.client_id)
            return sp is not None and sp.placed is not None and sp.placed >= venue_ts

        def gone(o: Order) -> float | None:
            sp = spans.get(o.client_id)
            return None if sp is None else sp.gone

        out = [replace(o, filled=o.filled - back.pop(o.venue_order_id or "", Decimal(0)))
               for o in self._open.values() if not placed_after(o) and ((g := gone(o)) is None or g >= venue_ts)]
        out += [replace(o) for o in self._inflight.values() if not placed_after(o)]
        for vid, c in self._by_venue.items():  # cancelled since the instant (closed orders stay a while)
            if c.status is OrderStatus.CANCELED and (g := gone(c)) is not None and g >= venue_ts and not placed_after(c):
                out.append(replace(c, filled=c.filled - back.pop(vid, Decimal(0))))
        for vid, size in back.items():
            o = self._by_venue.get(vid)
            if o is not None and o.status is OrderStatus.FILLED and not placed_after(o):
                out.append(replace(o, filled=o.filled - size))
        return out

    def observe_book(self, book: BookView | BookNote) -> None:
        mid = as_view(book).mid
        if mid is not None:
            self._mids[book.token_id] = mid

    def observe_books(self, books: Sequence[BookView | BookNote]) -> None:
        observe_each(self.observe_book, books)

    def observe_trade(self, trade: PublicTrade) -> None:
        return None

    async def poll(self, now: float) -> list[Fill]:
        clock = self._clock()
        self._flush_buffer(clock)
        if clock >= self._next_evict:
            self._next_evict = clock + EVICT_EVERY_SEC
            self.evict(clock)
        out, self._pending = self._pending, []
        return out

    def evict(self, now: float) -> int:
        """Bounded live state (issue 12): forget closed orders and final trades last touched more
        than `CLOSED_KEEP_SEC` ago (their rows stay in the DB), and history rows already turned
        into orders or long closed. Open orders and recent ones are kept. Returns how many went."""
        cutoff = now - CLOSED_KEEP_SEC
        n = 0
        for vid in [v for v, o in self._by_venue.items()
                    if o.client_id not in self._open and not o.status.is_open and o.updated_ts < cutoff]:
            self._spans.pop(self._by_venue.pop(vid).client_id, None)
            self._history.pop(vid, None)
            n += 1
        for vid in [v for v, row in self._history.items() if v in self._by_venue
                    or (not OrderStatus(row.get("status") or "LIVE").is_open
                        and float(row.get("updated_ts") or 0) < cutoff)]:
            del self._history[vid]
            n += 1
        for key in [k for k, st in self._trades.items()
                    if st.statuses[-1].is_final and st.fill.ts < cutoff]:
            ts = self._trades.pop(key).fill.ts
            # a backfill (from the last trade less BACKFILL_MARGIN_SEC) can still return it: keep its
            # id, or the fill would be counted a second time (a quiet market: the last trade is old)
            self._stored_trades.add(key)
            self._stored_max_ts = ts if self._stored_max_ts is None else max(self._stored_max_ts, ts)
            n += 1
        if self._stored_trades and self._last_trade_ts is not None and self._stored_max_ts is not None \
                and self._stored_max_ts < self._last_trade_ts - BACKFILL_MARGIN_SEC - 1:
            # stored ids only matter while a backfill can return them: none is newer than the
            # backfill's start (`after` is whole seconds, rounded down: one second of slack)
            self._stored_trades = set()
            self._stored_max_ts = None
        return n

    def memory_counts(self) -> dict[str, int]:
        """Sizes of the live state, for benches and the soak (all bounded by open + recent)."""
        return {"open": len(self._open), "by_venue": len(self._by_venue), "history": len(self._history),
                "trades": len(self._trades), "stored_trades": len(self._stored_trades),
                "buffer": sum(len(v) for v in self._buffer.values())}

    # ------------------------------------------------------------------ user tape
    def _ws_auth(self) -> dict[str, str]:
        c = self._venue.creds
        assert c is not None
        return {"apiKey": c.api_key.get_secret_value(), "secret": c.api_secret.get_secret_value(),
                "passphrase": c.api_passphrase.get_secret_value()}

    def _known(self, vid: str) -> bool:
        return vid in self._by_venue or vid in self._history

    def _order_for(self, vid: str) -> Order | None:
        o = self._by_venue.get(vid)
        if o is None and vid in self._history:
            o = self._order_from_row(self._history[vid])
            self._by_venue[vid] = o
        return o

    def _order_from_row(self, row: dict[str, Any]) -> Order:
        return Order(str(row["client_id"]), str(row.get("market") or ""), str(row["token_id"]), Side(row["side"]),
                     to_decimal(row["price"]), to_decimal(row["size"]), self.mode,
                     status=OrderStatus(row.get("status") or "LIVE"), filled=to_decimal(row.get("filled") or 0),
                     venue_order_id=str(row.get("venue_order_id")), created_ts=float(row.get("created_ts") or 0),
                     updated_ts=float(row.get("updated_ts") or 0))

    def _on_event(self, ev: UserEvent) -> None:
        """One decoded user-channel event (`venue.wire`: the stream decoded it)."""
        if isinstance(ev, OrderEvent):
            self._on_order_event(ev)
        elif isinstance(ev, TradeEvent):
            self._on_trade_event(ev, source="ws")

    def _buffer_event(self, vid: str, ev: UserEvent) -> None:
        self._buffer.setdefault(vid, []).append((self._clock(), ev))

    def _flush_buffer(self, now: float) -> None:
        """Events whose order id never became known: order events are dropped (reconcile deals
        with unknown orders); trades are recorded under a synthetic client id so inventory is right."""
        for vid in [v for v, evs in self._buffer.items() if now - evs[0][0] > EVENT_BUFFER_SEC]:
            for _, ev in self._buffer.pop(vid):
                if isinstance(ev, TradeEvent):
                    self._on_trade_event(ev, source="ws", force=True)

    def _on_order_event(self, ev: OrderEvent) -> None:
        vid = ev.id
        o = self._order_for(vid)
        if o is None:
            self._buffer_event(vid, ev)
            return
        if ev.kind in (OrderEventKind.PLACEMENT, OrderEventKind.CANCELLATION) and ev.timestamp not in (None, ""):
            sp = self._spans.get(o.client_id) or self._spans.setdefault(o.client_id, _Span())
            with contextlib.suppress(TypeError, ValueError):
                ts = float(ev.timestamp) / 1000.0  # ms, the venue's clock
                if ev.kind is OrderEventKind.PLACEMENT:
                    sp.placed = ts
                else:
                    sp.gone = ts
        status = ev.order_status
        if o.client_id not in self._open:
            if ev.kind is OrderEventKind.PLACEMENT:
                self._cancel_landed_late(o)
            return
        if ev.kind is OrderEventKind.CANCELLATION or (status is not None and status.is_cancel):
            self._close_order(o, OrderStatus.CANCELED, ev.status.lower() or "cancelled")
        elif status is VenueOrderStatus.MATCHED and o.remaining <= 0:
            self._close_order(o, OrderStatus.FILLED)
        elif o.filled > 0 and o.status is OrderStatus.LIVE:
            o.status, o.updated_ts = OrderStatus.PARTIAL, self._clock()
            self._record_order(o)

    def _cancel_landed_late(self, o: Order) -> None:
        """The venue placed an order of ours that is closed here: a POST whose answer was lost and
        that the venue acted on after the cancel sent just behind it found nothing (the order was
        closed as gone). It would rest with nobody managing it until a reconnect's reconcile:
        cancel it now (once; a failure leaves it to that reconcile, said)."""
        vid = o.venue_order_id
        if not vid or vid not in self._gone:  # (only an order closed as gone: the placement of one we
            return  # cancelled ourselves may reach the tape after the venue's answer to the cancel)
        del self._gone[vid]  # (once)
        log.warning("live: order %s (%s %s @ %s) was placed by the venue after it was closed here (%s): "
                    "cancelling it", vid[:14], o.side.value, o.size, o.price, o.reason or o.status.value)
        spawn(self._cancel_late(vid), f"live-late-cancel-{vid[:10]}", self._late_tasks)

    async def _cancel_late(self, vid: str) -> None:
        try:
            async with self._lock:
                r = await self._venue.cancel([vid])
        except BrokerError as exc:
            log.warning("live: cancel of late-placed order %s failed (%s): the next reconcile cancels it", vid[:14], exc)
            return
        self._venue_cancelled(r.canceled)
        self.orphans_cancelled += len(r.canceled)

    def _on_trade_event(self, ev: Trade, source: str, force: bool = False) -> None:
        """A trade from the tape (`TradeEvent`) or a REST backfill row (`Trade`)."""
        tid = ev.id
        if not tid:
            return
        status = ev.trade_status
        fills = our_fills(ev, self._api_key, self._addresses, self._known)
        ts = ev.venue_ts(self._clock())
        if self._last_trade_ts is None or ts > self._last_trade_ts:
            self._last_trade_ts = ts
        for f in fills:
            key = tid if len(fills) == 1 else f"{tid}:{f.order_id}"
            st = self._trades.get(key)
            if st is None:
                o = self._order_for(f.order_id)
                if o is None and force and self._unconfirmed:
                    o = self._claim_unconfirmed(f)
                if o is None and not force:
                    if isinstance(ev, TradeEvent):
                        self._buffer_event(f.order_id, ev)
                    continue
                self._new_fill(key, o, f, ev, status or TradeStatus.MATCHED, ts, source)
            elif status is not None:
                self._trade_status(key, st, status, ev)

    def _new_fill(self, key: str, o: Order | None, f: OurFill, ev: Trade, status: TradeStatus, ts: float,
                  source: str) -> None:
        size, price, side = f.size, f.price, f.side
        market = ev.market or (o.market if o else "")
        client_id = o.client_id if o is not None else f"unknown-{f.order_id[:18]}"
        stored = key in self._stored_trades  # an earlier run wrote (and counted) it
        counted = status is not TradeStatus.FAILED and not stored
        if o is not None and counted:
            o.filled += size
            o.updated_ts = self._clock()
            if o.client_id in self._open:
                if o.remaining <= 0:
                    self._close_order(o, OrderStatus.FILLED)
                else:
                    o.status = OrderStatus.PARTIAL
                    self._record_order(o)
            elif o.status in (OrderStatus.CANCELED, OrderStatus.FILLED):
                # a fill that raced our cancel: the closed row's `filled` must match its trades
                # (an order of an earlier run not yet reconciled is left to the reconcile)
                if o.remaining <= 0 and o.status is OrderStatus.CANCELED:
                    o.status, o.reason = OrderStatus.FILLED, "filled before the cancel reached the venue"
                self._record_order(o)
        done = o is not None and o.remaining <= 0
        mid = self._mids.get(f.token_id)
        # the row's record (trades.raw_json); the fill carries them typed (`mid`, `taker`, `fee_rate_bps`)
        raw = {"source": source, "statuses": [status.value], "trader_side": f.liquidity.value,
               "fee_rate_bps": None if f.fee_rate_bps is None else str(f.fee_rate_bps), "taker_order_id": ev.taker_order_id or None,
               "transaction_hash": ev.transaction_hash or None, "book_mid": None if mid is None else str(mid)}
        fill = Fill(key, client_id, market, f.token_id, side, price, size,
                    FillType.FILLED if done else FillType.PARTIAL, self.mode, ts,
                    venue_order_id=f.order_id, status=status.value, raw=raw, mid=mid,
                    taker=f.liquidity is Liquidity.TAKER, fee_rate_bps=f.fee_rate_bps)
        self._trades[key] = _TradeState(fill, [status], counted, raw=raw)
        if stored:
            self.rec.trade_status(key, status.value)
            return
        self.rec.fill(fill, upsert=True)
        if counted:
            self._pending.append(fill)
            if source == "rest":
                self.backfilled += 1

    def _trade_status(self, key: str, st: _TradeState, status: TradeStatus, ev: Trade) -> None:
        if status == st.statuses[-1] or st.statuses[-1].is_final:
            return
        st.statuses.append(status)
        st.raw = {**st.raw, "statuses": [s.value for s in st.statuses],
                  "transaction_hash": ev.transaction_hash or st.raw.get("transaction_hash")}
        self.rec.trade_status(key, status.value, st.raw)
        if status is TradeStatus.FAILED and st.counted and not st.reversed:
            st.reversed = True
            f = st.fill
            self._pending.append(Fill(f"{key}:failed", f.order_client_id, f.market, f.token_id, f.side.opposite,
                                      f.price, f.size, FillType.PARTIAL, self.mode, self._clock(),
                                      venue_order_id=f.venue_order_id, status=TradeStatus.FAILED.value,
                                      raw={"reverses": key}, mid=f.mid))
            o = self._by_venue.get(f.venue_order_id or "")
            if o is not None:
                o.filled -= f.size
                o.updated_ts = self._clock()
                self._record_order(o)  # the row's `filled` follows its (non-failed) trades

    # ------------------------------------------------------------------ reconcile
    async def _load_history(self) -> None:
        """Venue id → order row of earlier live runs, and the trade ids already stored (DB read
        in a thread; a missing or unreadable DB just means nothing to recover)."""
        url = self.settings.db_url
        if url.startswith("sqlite:///") and not await asyncio.to_thread(Path(url.removeprefix("sqlite:///")).exists):
            return
        since = self._clock() - 7 * 86400
        recent = self._clock() - CLOSED_KEEP_SEC
        open_statuses = [st.value for st in OrderStatus if st.is_open]

        def read() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], set[str], float | None]:
            from sqlalchemy import func, or_, select

            from ..store.db import make_engine
            from ..store.schema import orders, trades

            eng = make_engine(url)
            try:
                with eng.connect() as c:
                    # bounded (issue 12): rows still open, whatever their age, and rows closed
                    # recently (late fills); not every order of the last 7 days
                    rows = c.execute(select(orders).where(orders.c.mode == Mode.LIVE.value,
                                                          orders.c.venue_order_id.is_not(None),
                                                          or_(orders.c.status.in_(open_statuses),
                                                              orders.c.updated_ts >= recent))).mappings().all()
                    pending = c.execute(select(orders).where(orders.c.mode == Mode.LIVE.value,
                                                             orders.c.venue_order_id.is_(None),
                                                             orders.c.status == OrderStatus.PENDING.value,
                                                             orders.c.updated_ts >= since)).mappings().all()
                    last = c.execute(select(func.max(trades.c.ts)).where(trades.c.mode == Mode.LIVE.value)).scalar()
                    # the trade ids a backfill (from last - BACKFILL_MARGIN_SEC) or a late status
                    # update can bring back; older ones cannot be counted twice
                    t_from = (float(last) if last is not None else self._clock()) - BACKFILL_MARGIN_SEC - CLOSED_KEEP_SEC
                    tids = c.execute(select(trades.c.trade_id).where(trades.c.mode == Mode.LIVE.value,
                                                                     trades.c.ts >= t_from)).scalars().all()
            finally:
                eng.dispose()
            return ({str(r["venue_order_id"]): dict(r) for r in rows}, [dict(r) for r in pending],
                    set(map(str, tids)), last)

        try:
            self._history, self._unconfirmed, self._stored_trades, last = await asyncio.to_thread(read)
        except Exception as exc:
            log.warning("live: cannot read earlier orders/trades from the DB (%s); reconciling without them",
                        type(exc).__name__)
            return
        if last is not None:
            self._last_trade_ts = float(last)
            self._stored_max_ts = float(last)  # no stored trade is newer than the last one

    async def _on_connect(self, reconnected: bool) -> None:
        if reconnected:
            try:
                await self.reconcile()
            except BrokerError as exc:
                log.warning("live: reconcile after reconnect failed: %s", exc)
        if self._halted and self._feeds_ok():
            log.warning("live: streams back: quoting resumes")
            self._halted = None

    async def reconcile(self) -> dict[str, int]:
        """Open orders: adopt ours / unknown (setting) or cancel unknown ones; mark local orders
        the venue no longer holds; then backfill trades missed since the last one we saw."""
        if self.mode is Mode.DRY_RUN:
            return {}
        async with self._lock:
            venue = await self._venue.open_orders()
            self._match_unconfirmed(venue)
            seen: set[str] = set()
            orphans: list[str] = []
            adopted = 0
            for vo in venue:
                vid = vo.id
                seen.add(vid)
                o = self._by_venue.get(vid)
                if o is not None and o.client_id in self._open:
                    continue
                if not self.adopt_unknown:
                    orphans.append(vid)
                    continue
                o = self._order_for(vid) or self._adopt(vo)
                o.filled = to_decimal(vo.size_matched or 0)
                o.status = OrderStatus.LIVE if o.filled == 0 else OrderStatus.PARTIAL
                self._open[o.client_id] = o
                self._by_venue[vid] = o
                self._record_order(o)
                adopted += 1
            gone: set[str] = set()  # orphans the venue could not cancel: filled or gone meanwhile
            if orphans:
                try:
                    r = await self._venue.cancel(orphans)
                except CancelError as exc:  # what the batches that did answer cancelled is counted
                    self._venue_cancelled(exc.partial.canceled)
                    raise
                self._venue_cancelled(r.canceled)
                gone = set(r.not_canceled)
                for vid in r.canceled:
                    o = self._order_for(vid)
                    if o is not None:
                        self._close_order(o, OrderStatus.CANCELED, "reconcile: not ours to keep")
                self.orphans_cancelled += len(r.canceled)
            after = None if self._last_trade_ts is None else int(self._last_trade_ts - BACKFILL_MARGIN_SEC)
            before = self.backfilled
            for t in await self._venue.trades(after=after):
                self._on_trade_event(t, source="rest", force=True)
            self._close_unconfirmed()
            for o in list(self._open.values()):
                if o.venue_order_id not in seen:  # filled or cancelled while we were away
                    self._close_gone(o, "reconcile: not open at the venue")
            # rows an earlier run left open (it died without cancelling) whose order the venue no
            # longer holds: close them too, or the DB would show orders open forever
            for vid, row in self._history.items():
                if (vid in seen and vid not in gone) or not OrderStatus(row.get("status") or "LIVE").is_open:
                    continue
                o = self._order_for(vid)
                if o is not None and o.status.is_open and o.client_id not in self._open:
                    self._close_gone(o, "reconcile: not open at the venue")
            self.adopted += adopted
            self.reconciles += 1
            res = {"venue_open": len(venue), "adopted": adopted, "cancelled": len(orphans),
                   "backfilled": self.backfilled - before}
        self._event(Level.INFO, EventKind.RECONCILE, f"reconcile: {res['venue_open']} open at the venue, {adopted} adopted, "
                    f"{len(orphans)} cancelled, {res['backfilled']} fills backfilled", res)
        return res

    def _match_unconfirmed(self, venue: list[VenueOrder]) -> None:
        """PENDING rows of an earlier run that died between posting and hearing back: give each
        the unknown open venue order with its token, side, price and size (so that order and its
        fills keep our client id). The rest wait for the trade backfill (`_claim_unconfirmed`: the
        order may have filled while nobody listened) and are then closed (`_close_unconfirmed`)."""
        if not self._unconfirmed:
            return
        free = [vo for vo in venue if not self._known(vo.id)]
        left: list[dict[str, Any]] = []
        for row in self._unconfirmed:
            want = (str(row["token_id"]), Side(row["side"]), to_decimal(row["price"]), to_decimal(row["size"]))
            match = next((vo for vo in free if (vo.asset_id, vo.side_enum, to_decimal(vo.price),
                                                 to_decimal(vo.original_size)) == want), None)
            if match is not None:
                free.remove(match)
                self._history[match.id] = {**row, "venue_order_id": match.id}
            else:
                left.append(row)
        self._unconfirmed = left

    def _claim_unconfirmed(self, f: OurFill) -> Order | None:
        """A backfilled fill of an order we do not know: the PENDING row of an earlier run with its
        token, side and price (and room for the fill) is that order, acknowledged and traded while
        we were away; the row takes the venue's id, so the fill keeps our client id."""
        for row in self._unconfirmed:
            if (str(row["token_id"]), Side(row["side"]), to_decimal(row["price"])) == (f.token_id, f.side, f.price) \
                    and to_decimal(row["size"]) >= f.size:
                self._unconfirmed.remove(row)
                self._history[f.order_id] = {**row, "venue_order_id": f.order_id}
                return self._order_for(f.order_id)
        return None

    def _close_unconfirmed(self) -> None:
        """PENDING rows neither open at the venue nor traded: the venue never took them."""
        for row in self._unconfirmed:
            o = self._order_from_row(row)
            o.venue_order_id = None
            self._close_order(o, OrderStatus.CANCELED, "reconcile: never acknowledged by the venue")
        self._unconfirmed = []

    def _adopt(self, vo: VenueOrder) -> Order:
        vid = vo.id
        now = self._clock()
        side = vo.side_enum
        if side is None:
            raise WireError(f"open order {vid[:20]}: side {vo.side[:10]!r} is not BUY or SELL")
        return Order(f"adopt-{vid[2:18]}", vo.market, vo.asset_id, side, to_decimal(vo.price),
                     to_decimal(vo.original_size), self.mode, venue_order_id=vid,
                     created_ts=float(vo.created_at or now), updated_ts=now, reason="adopted at reconcile")

    # ------------------------------------------------------------------ safety valves
    def _feeds_ok(self) -> bool:
        up = self._stream is not None and self._stream.connected
        if self.market_feed_ok is not None:
            try:
                up = up and bool(self.market_feed_ok())
            except Exception:
                up = False
        return up

    async def _watchdog(self) -> None:
        """Cancel all when the user stream or the market feed has been down too long."""
        limit = self.settings.disconnect_cancel_sec
        while True:
            await asyncio.sleep(WATCHDOG_SEC)
            now = time.monotonic()
            if self._feeds_ok():
                self._down_since = None
                if self._halted and self._halted.startswith("disconnect"):
                    self._halted = None
                continue
            if self._down_since is None:
                self._down_since = now
                continue
            if now - self._down_since < limit or self._halted:
                continue
            self._halted = f"disconnect: stream down > {limit:g}s, orders cancelled"
            try:
                n = await self.cancel_all()
            except BrokerError as exc:
                self._halted = None  # try again next round
                log.error("live: disconnect cancel-all failed: %s", exc)
                continue
            self.disconnect_cancels += 1
            self._event(Level.ERROR, EventKind.DISCONNECT_CANCEL, f"stream down for {now - self._down_since:.1f}s: "
                        f"cancelled {n} orders; quoting halted until it is back", {"cancelled": n})

    async def _heartbeats(self) -> None:
        """The venue's dead-man's switch: one beat every `heartbeat_sec`; off if not served."""
        while True:
            try:
                await self._venue.heartbeat(within=self.heartbeat_sec)
                self._hb_state = "ok"
            except BrokerError as exc:
                if exc.status == 404:
                    self._hb_state = "off"
                    log.info("live: the venue does not serve order heartbeats; relying on the watchdog")
                    return
                self._hb_state = "failing"
                log.warning("live: heartbeat failed: %s", exc)
            await asyncio.sleep(self.heartbeat_sec)
