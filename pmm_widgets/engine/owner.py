"""The owner session: the engine that holds the DB lease and trades.

One object per owned run, created by the `Engine` facade (`engine/core.py`) once it has taken
the lease, over the wiring's typed `Runtime`/`Store` (`engine/runtime.py`). It mirrors the
attached role's `AttachedSession` (`engine/attached.py`); the facade only chooses which one runs.

What it does, in `run()`:
- set-up: the store, the venue side (`build_runtime`), the restored session rows (issue 11), the
  venue clock, the strategies;
- the quote loop (commands, store checks, one cycle or a circuit probe, publish) until stopped;
- three background loops — lease renewal, universe refresh, retention — owned by one
  `asyncio.TaskGroup`: each is started in the group, a failure of one is reported and stops the
  run (orders are cancelled first), and the group's exit is the one place they all end;
- safety halts (lease, DB file, writer): stop quoting and cancel now, lift when the cause goes;
- the shutdown, on every way out: cancel all and verify, record, close the runtime and the store,
  apply a kill command's result, release the lease.

The lease is renewed by one loop, `_lease_loop`, from before the set-up until just before the
release: while the session runs it also halts on a silent DB; once the shutdown has begun it only
renews (a shutdown longer than the TTL must neither let another engine take over while our
cancels are in flight nor show attached faces an owner that vanished without its final state).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

from ..config import Params, Settings, format_validation_error
from ..domain import Market, Mode
from ..errors import PmmError, crash_event, crash_text
from ..events import EventBus, EventKind, Level
from ..execution.latency_model import save_round_trips
from ..store.db import first_line
from ..tasks import EventSetFirst, cancel_and_wait, in_daemon_thread, unless_set, wait_set, within
from . import runtime
from .attached import jsonable as _jsonable
from .circuit import Circuit
from .lease import LeaseTimer
from .runtime import DbHandles, Runtime, Store, StoreClosed, build_runtime, cancel_and_verify, open_store
from .state import KILL_UNDER_WAY, EngineState, FeedState, KillResult

if TYPE_CHECKING:
    from ..execution.live import LiveHealth
    from ..store.recording import Recorder
    from ..store.sink import Sink
    from ..store.writer import BatchWriter
    from ..venue.clob_rest import ClobPublic
    from ..venue.endpoints import Endpoints
    from ..venue.gamma import GammaClient
    from .cycle import CycleReport
    from .lease import Lease

# a lease halt that lasts this many TTLs ends the run instead of waiting for the DB forever
LEASE_GIVE_UP_TTLS = 20
# while the circuit probe or a quote cycle runs (the quote loop reads no command meanwhile): how
# often a kill (and, during a cycle, a pause) sent by another face is looked for (`OwnerSession._command_sent`)
KILL_POLL_SEC = 0.25

LoadUniverse = Callable[..., Awaitable[list[Market]]]
T = TypeVar("T")


def _renew_with(lease: Lease, state: EngineState, now: float) -> bool:
    """A lease renewal carrying `state` (serialised here, in the worker thread), dated `now` (taken
    on the loop when it was asked for: before any release the shutdown asks for after it)."""
    return lease.renew(state.to_json(), now=now)


# `PMM_GC_FREEZE`: frozen once more after this many cycles (the per-market state they built)
GC_REFREEZE_CYCLE = 5


class StartAborted(PmmError, RuntimeError):
    """The engine was told to stop while its start-up was still waiting for the venue (the
    universe): nothing was quoted. A stop the user asked for, not a crash."""


class FullCollections:
    """`PMM_GC_FREEZE`, while the quote loop runs: no automatic full (gen-2) collection; one every
    `GC_FULL_SEC`, between two cycles. Why: after the freeze a full collection still walks what
    was made since (~33k objects at 500 markets: ~30-40 ms of CPU, 100-380 ms of wall time on a
    loaded host) and the automatic ones came every few seconds, anywhere (inside a cycle's slice,
    a frame); young and middle collections stay automatic (a few ms each). Cyclic garbage that
    reached the oldest generation waits at most `GC_FULL_SEC`. `stop` restores the thresholds (a
    notebook kernel gets Python's back)."""

    def __init__(self) -> None:
        self.saved: tuple[int, int, int] | None = None
        self.last = 0.0

    def start(self) -> None:
        import gc

        g0, g1, g2 = gc.get_threshold()
        if g0 == 0:  # collection disabled by the host: left as it is
            return
        self.saved = (g0, g1, g2)
        gc.set_threshold(g0, g1, GC_NO_AUTO_FULL)
        self.last = time.monotonic()

    def between_cycles(self) -> None:
        import gc

        if self.saved is not None and time.monotonic() - self.last >= GC_FULL_SEC:
            gc.collect()
            self.last = time.monotonic()

    def stop(self) -> None:
        """Thresholds back, and what `freeze_heap` froze back into the collected generations: in a
        notebook kernel (or a test process) the engine stops and the process goes on, and reference
        cycles that were garbage at a freeze would otherwise never be collected."""
        import gc

        if self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None
        gc.unfreeze()


GC_FULL_SEC = 60.0
GC_NO_AUTO_FULL = 1_000_000_000  # threshold2: more middle collections than a run makes


def freeze_heap() -> int:
    """Issue 12: after the set-up (universe loaded, books subscribed and synced), move every object
    alive into the permanent generation (`gc.freeze`), which no collection walks: a full
    collection walks every tracked object (0.3-0.9 s seen at 500 markets, the event loop stopped
    meanwhile); after this, only what was made since. The thresholds stay Python's: raising the
    young one to 7,000 made each young collection walk ~40k objects (18-28 ms of CPU at 500
    markets) instead of a few thousand. Objects frozen are still freed by reference counting;
    only reference cycles among them are never collected (a one-off, bounded by the set-up).
    Called again after the first `GC_REFREEZE_CYCLE` cycles: at 500 markets the full collections
    after the first freeze still walked ~49k objects (~33 ms of CPU), most of them the per-market
    state the first cycles built (decisions, risk verdicts, snapshots, ~15 objects a market) and
    the books' levels. Returns the number of objects frozen."""
    import gc

    gc.freeze()
    return gc.get_freeze_count()


@dataclass(slots=True)
class RunControl:
    """One run's signals, shared by the facade (stop, kill) and the session; fresh for every run."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    role: asyncio.Event = field(default_factory=asyncio.Event)  # set once the role is known (owner: quoting)
    trade_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # a cycle, a halt's cancel, a pause's cancel
    kill_requested: bool = False
    handover: bool = False  # the lease row keeps the final state marked for a hand-over


@runtime_checkable
class VenueChecks(Protocol):
    """What the live (and dry-run) exchange adds to `Exchange`: its health, the venue calls that
    failed for good (the circuit breaker's input) and a probe that proves the venue answers again.
    The paper exchange has none of these."""

    def health(self) -> LiveHealth: ...

    def venue_failures(self) -> int: ...

    async def probe(self) -> int: ...


class CommandTarget(Protocol):
    """What the owner's `commands` rows act on: the facade's own API (the same calls a face makes)."""

    def set_params(self, *, changed_by: str | None = None, **changes: Any) -> None: ...

    def set_strategy(self, market: str, strategy: Any = None, **params: Any) -> None: ...

    async def pause(self, cancel: bool = True, reason: str = "pause", by: str | None = None) -> int: ...

    async def resume(self, by: str | None = None) -> None: ...


class OwnerSession:
    """The owner role for one run. `publish`/`state` are the facade's state slot; `param_state`
    gives the parameter fields of the state (values, paused, why)."""

    def __init__(self, settings: Settings, mode: Mode, params: Params, dbh: DbHandles, owner_id: str, *,
                 ctl: RunControl, events: EventBus, publish: Callable[[EngineState], None],
                 state: Callable[[], EngineState], param_state: Callable[[], dict[str, Any]],
                 commands: CommandTarget, load_universe: LoadUniverse,
                 overrides: dict[str, tuple[Any, dict[str, Any]]], default_strategy: Callable[[], Any],
                 restore_params: Callable[[], Awaitable[None]] | None = None,
                 sink: Sink | None = None, endpoints: Endpoints | None = None) -> None:
        self.settings = settings
        self.mode = mode
        self._params = params
        self._dbh = dbh
        self._owner_id = owner_id
        self._ctl = ctl
        self.events = events
        self._publish = publish
        self._state = state
        self._param_state = param_state
        self._commands_target = commands
        self.load_universe = load_universe  # tests slow it down
        self._overrides = overrides  # the facade's market → (strategy, params), kept across runs
        self._default_strategy = default_strategy  # the facade's strategy object for every market ("*")
        self._restore_params = restore_params
        self._sink_override = sink
        self._endpoints_override = endpoints
        self._store: Store | None = None  # open_store; None again once the shutdown closed it
        self._rt: Runtime | None = None  # build_runtime; None again after the shutdown
        self.markets: list[Market] = []
        self.universe_ts = 0.0
        self._recorded_params: dict[str, Any] = {}  # the parameter values the recording last saw
        self._venue_speed = 1.0
        self._cycle_wall = 0.0  # wall seconds the last quote cycle took (requote round trip included)
        self._clock_synced_at = 0
        self._halts: dict[EventKind, str] = {}  # source (lease, db, writer) → why quoting is halted
        self._circuit = Circuit(settings.circuit_errors, settings.circuit_probe_sec)
        self._kill_command_id: int | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._left_running: set[asyncio.Future[Any]] = set()  # shutdown steps its budget cut (`StopSteps`)
        self._releasing = asyncio.Event()  # the shutdown is about to release the lease: the lease loop ends
        self.stopping = False  # the shutdown has begun: the lease loop only renews
        self.shutdown_started: float | None = None  # set when the clean shutdown begins (see Engine.stop)
        self.kill_result: KillResult | None = None
        self.fatal_halt: str | None = None  # set when a safety halt ended the run (lease lost, DB gone)
        self.crash_reported = False
        self.cycle_errors = 0  # quote cycles that failed (each one an `events` row, never a crash)
        # the circuit probe holds the trade lock (it posts nothing: a pause cancels beside it, `Engine.pause`)
        self.probing = False
        # the quote cycle under way: the run's task while it runs (`_watched_cycle`), and whether a
        # pause cut it (`cut_cycle`: the cancel this session sent the task, taken back when it ends)
        self._cycle_run: asyncio.Task[Any] | None = None
        self._cut_sent = False

    # ---------------------------------------------------------------- what the facade reads
    @property
    def runtime(self) -> Runtime:
        """The venue side while the session runs; RuntimeError before the set-up and after the shutdown."""
        if self._rt is None:
            raise RuntimeError("the engine has no runtime: it is not running as the owner")
        return self._rt

    @property
    def has_runtime(self) -> bool:
        return self._rt is not None

    @property
    def store(self) -> Store | None:
        """The session's sink/writer/recorder until the shutdown closes them."""
        return self._store

    @property
    def _writer(self) -> BatchWriter | None:
        return self._store.writer if self._store is not None else None

    @property
    def _recorder(self) -> Recorder | None:
        return self._store.recorder if self._store is not None else None

    # ---------------------------------------------------------------- the run
    async def run(self) -> None:
        """Own the DB until stopped: set up, quote, and shut down on every way out (cancel first).
        A crash is reported and raised as it is, after the shutdown."""
        started = time.time()
        await asyncio.to_thread(self._dbh.commands.expire_before, started)
        if self._restore_params is not None:  # before the role shows: a face never sees stale parameters
            await self._restore_params()
        self._publish(replace(self._state(), role="owner", running=True, started_ts=started, tick=0, halted=None,
                              handover_ts=None, kill=None, **self._param_state()))
        crash: Exception | None = None
        async with asyncio.TaskGroup() as tg:
            loops: list[asyncio.Task[None]] = []
            try:
                # the lease is renewed from the start (setup may take long) until just before the release
                self._lease_task = tg.create_task(self._owned(self._lease_loop, "pmm-lease"), name="pmm-lease")
                await self._setup()
                if self.mode is not Mode.PAPER and self._cancel_budget() < self.settings.http_timeout_sec:
                    self.events.emit(Level.WARNING, EventKind.LEASE,
                                     f"PMM_LEASE_TTL_SEC={self.settings.lease_ttl_sec:g} leaves "
                                     f"{self._cancel_budget():.1f}s for a cancel when the DB stops answering, less "
                                     f"than PMM_HTTP_TIMEOUT_SEC={self.settings.http_timeout_sec:g}: raise the TTL")
                self.events.emit(Level.INFO, EventKind.ENGINE_START, f"engine started: mode={self.mode.value} "
                                 f"venue={self.settings.venue.value} markets={len(self.markets)}")
                self._ctl.role.set()
                loops.append(tg.create_task(self._owned(self._universe_loop, "pmm-universe"), name="pmm-universe"))
                loops.append(tg.create_task(self._owned(self._prune_loop, "pmm-prune"), name="pmm-prune"))
                await self._quote_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                msg = crash_text(exc)
                self._publish(replace(self._state(), last_error=msg))
                if isinstance(exc, StartAborted):  # a stop asked for during the start: nothing was quoted
                    self.events.emit(Level.WARNING, EventKind.ENGINE_STOP, str(exc))
                else:  # (an expected failure, e.g. the venue refused the wallet: its one line, no crash)
                    self.events.emit(Level.ERROR, EventKind.ERROR, crash_event(exc))
                self.crash_reported = True
                crash = exc  # raised after the group (a group would wrap it in an ExceptionGroup)
            finally:
                for t in loops:  # a universe refresh may be waiting on Gamma: end it now
                    t.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.gather(*loops, return_exceptions=True)
                await self._shutdown()  # ends the lease loop just before the release
        if crash is not None:
            raise crash

    async def _owned(self, loop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """A background loop of the group: its failure is reported and stops the run (never
        propagated into the group, which would cancel the quote loop mid-cycle instead of letting
        the shutdown cancel the orders). `loop` is the loop's function, called here: a task
        cancelled before its first step (a stop just after the start) leaves no coroutine behind."""
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever it guarded is not proven any more: stop
            msg = f"background task {name} failed: {type(exc).__name__}: {exc}"
            self._publish(replace(self._state(), last_error=msg))
            self.events.emit(Level.ERROR, EventKind.ERROR, f"{msg}: stopping (orders are cancelled first)")
            self._ctl.stop.set()

    async def _setup(self) -> None:
        """Open the store and the venue side (`engine/runtime.py`), then this session's part:
        the venue clock, the strategies, the recording's start row."""
        s = self.settings
        # (what the set-up imports, imported off the loop first: a notebook's widgets stay live)
        await asyncio.to_thread(runtime.warm_imports, s, self.mode, sandbox=self._endpoints_override is None)
        from ..store import repo

        self._store = open_store(s, self._sink_override)

        def on_universe(markets: list[Market]) -> None:
            self.markets = markets
            self._record_universe(markets)
            if self._recorder is not None:
                self._recorder.universe(time.time(), markets)
            self.universe_ts = time.time()

        db = self._dbh.db
        rt = self._rt = await build_runtime(
            s, self.mode, self._params, self._store, db=db, owner_id=self._owner_id,
            first_universe=self._first_universe, on_universe=on_universe, endpoints=self._endpoints_override,
            events=self.events)
        from . import restore  # issue 11: positions, PnL and fills continue from the DB

        restored = await restore.resume(rt.session_rows, rt.cycle, rt.exchange, self.mode, self.markets, time.time(),
                                        self.events.emit)
        # the venue samples reward scores once per minute of its own clock (a sandbox's runs faster)
        self._venue_speed = s.sandbox_speed if s.venue.value == "sandbox" else 1.0
        await self._sync_venue_clock()
        rt.cycle.default_strategy = self._default_strategy()
        saved = await asyncio.to_thread(repo.load_overrides, db)
        for cid, (name, params) in {**saved, **self._overrides}.items():
            try:
                rt.cycle.set_strategy(cid, name, **params)
            except ValueError as exc:  # a row an older build wrote, a name no longer known
                self.events.emit(Level.WARNING, EventKind.STRATEGY, f"market override of {cid} ignored: {exc}", market=cid)
                continue
            if cid in self._overrides and (name is None or isinstance(name, str)):
                # chosen while no store was open (an idle engine): kept now, as a running engine keeps
                # it, so the next start restores it (an object lives only in this process)
                self._store.db.market_override(cid, name, _jsonable(params), time.time())
        if self._recorder is not None:  # what a replay needs to start where this run started
            self._recorded_params = self._params.model_dump(mode="json")
            start = {
                "mode": self.mode.value, "params": _jsonable(self._params.model_dump()), "seed": s.sandbox_seed,
                "venue": s.venue.value, "quote_refresh_sec": s.quote_refresh_sec, "stale_sec": s.stale_sec,
                "pnl_sec": s.pnl_sec, "calibration": rt.calibration,
                "restored": None if restored.empty else restored.summary(),
                "strategies": {cid: [name, _jsonable(params)] for cid, (name, params)
                               in {**saved, **self._overrides}.items() if name is None or isinstance(name, str)}}
            rows = rt.session_rows
            from ..store.recording import dumps as recording_dumps

            def start_json() -> str:
                # what the session continued from its DB, and the rows it read: a replay from this
                # session's start continues from the same rows (`restore.rows_from_json`). A long
                # history is large (≈ 0.2 KB and 5 µs per fill): built off the event loop
                return recording_dumps({**start, "restored_rows": restore.rows_to_json(rows)})

            text = await asyncio.to_thread(start_json)
            if self._recorder is not None:
                self._recorder.record("engine", time.time(), "start", text)

    def record_cancel_all(self, now: float, reason: str) -> None:
        """An all-orders cancel outside a quote cycle (a pause, the circuit opening): a replay
        cancels at the same instant (it used to wait for the next cycle, and its fills diverged)."""
        if self._recorder is not None:
            self._recorder.engine(now, "cancel_all", {"reason": reason})

    def record_params(self, now: float) -> None:
        """Record the parameters that changed since the recording last saw them."""
        cur = self._params.model_dump(mode="json")
        diff = {k: v for k, v in cur.items() if self._recorded_params.get(k, v) != v}
        self._recorded_params = cur
        if diff and self._recorder is not None:
            self._recorder.engine(now, "params", diff)

    def _record_universe(self, markets: list[Market]) -> None:
        if self._store is not None:
            self._store.db.markets(markets, time.time())

    async def refresh_universe(self) -> None:
        from ..venue.universe import diff_universe

        rank = self.settings.universe_rank
        gamma = self.runtime.gamma
        fresh = await (self.load_universe(gamma, self.settings.universe_size) if rank == "liquidity"
                       else self.load_universe(gamma, self.settings.universe_size, rank))
        if self._recorder is not None:  # every refresh (metadata may change without members changing)
            self._recorder.universe(time.time(), fresh)
        added, removed = diff_universe(self.markets, fresh)
        held: list[Market] = []  # left the ranking, but their orders could not be cancelled
        async with self._ctl.trade_lock:
            for m in removed:  # a market leaving the universe takes its quotes with it
                try:
                    n = await self.runtime.exchange.cancel_market(m.condition_id)
                except Exception as exc:  # noqa: BLE001 - kept (its orders still managed); the others go
                    held.append(m)
                    self.events.emit(Level.WARNING, EventKind.UNIVERSE,
                                     f"left the universe but its orders could not be cancelled, kept until the next refresh: "
                                     f"{m.question[:60]} ({type(exc).__name__}: {exc})"[:500], market=m.condition_id)
                    continue
                self.events.emit(Level.INFO, EventKind.UNIVERSE, f"left the universe: {m.question[:60]} ({n} orders cancelled)",
                                 market=m.condition_id)
            # the cycle hands the exchange every market it knows (late fills); a market whose cancel
            # failed stays in it, so its orders are still managed, and its removal is tried again
            self.markets = [*fresh, *held]
        await self.runtime.md.set_markets(self.markets)
        gone = len(removed) - len(held)
        if added or gone:
            self._record_universe(self.markets)
            self.events.emit(Level.INFO, EventKind.UNIVERSE, f"universe refreshed: +{len(added)} -{gone}")
        await self._settle_orphans()  # (those that just left among them; outside the trade lock: REST reads)
        self.universe_ts = time.time()

    async def _prune_loop(self) -> None:
        """Retention (issue 12): every `PMM_PRUNE_SEC`, delete rows older than `PMM_RETAIN_DAYS`
        from book_snapshots, public_trades, events and pnl, in small batches in a worker thread
        (never on the loop; `trades` and `orders` are kept). `PMM_RETAIN_DAYS=0` keeps everything."""
        from ..store.retention import prune

        stop = self._ctl.stop
        while not stop.is_set():
            # first wait, then prune: start-up (and short runs) never compete with the pruner
            await wait_set(stop, self.settings.prune_sec)
            if stop.is_set():
                return
            days = self.settings.retain_days
            if days > 0:
                try:
                    rep = await asyncio.to_thread(prune, self._dbh.db, days, stop=stop.is_set)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - retention must never stop trading; say so
                    self.events.emit(Level.WARNING, EventKind.RETENTION, f"prune failed: {type(exc).__name__}: {exc}")
                else:
                    if rep.total:
                        self.events.emit(Level.INFO, EventKind.RETENTION, f"retention: {rep.total} rows older than {days:g} days "
                                         f"pruned in {rep.seconds:.2f}s: " + ", ".join(
                                             f"{k} {v}" for k, v in rep.deleted.items() if v))

    async def _first_universe(self, gamma: GammaClient) -> list[Market]:
        """The start-up universe. A venue that fails transiently (every Gamma call already retried
        within its deadline) delays the start, it does not end it: retried with backoff, said on
        every face, until it loads or the engine is stopped (nothing is quoted meanwhile)."""
        from ..venue.http import backoff_delay

        s = self.settings
        attempt = 0
        last: Exception | None = None  # the last attempt's failure (None: none failed yet)
        while True:
            try:
                # a stop ends an attempt under way at once (Gamma's retries can take longer than
                # the stop's grace): a start that never loaded says so, whenever the stop came
                markets = await unless_set(self.load_universe(gamma, s.universe_size, s.universe_rank), self._ctl.stop)
                if attempt:
                    self.events.emit(Level.INFO, EventKind.UNIVERSE, f"universe loaded after {attempt} failed attempt(s)")
                    self._publish(replace(self._state(), last_error=None))
                return markets
            except EventSetFirst:
                said = str(last) if last is not None else f"Gamma at {gamma.http.base_url} had not answered yet"
                raise StartAborted(f"stopped before the universe could be loaded: {said}") from last
            except Exception as exc:  # noqa: BLE001 - reported, retried; a stop (during the attempt or the wait) ends it
                last = exc  # a stop from here on: the next turn's `unless_set` makes no attempt, and aborts naming it
                if not self._ctl.stop.is_set():
                    delay = max(1.0, backoff_delay(attempt, 1.0, 15.0))
                    attempt += 1
                    msg = f"universe load failed ({type(exc).__name__}: {exc}); retrying in {delay:.1f}s"
                    self.events.emit(Level.WARNING, EventKind.UNIVERSE, msg)
                    self._publish(replace(self._state(), last_error=msg[:300]))
                    await wait_set(self._ctl.stop, delay)

    async def _universe_loop(self) -> None:
        """The universe refresh, off the quote loop (issue 17 M3): a slow or failing Gamma never
        delays a cycle (every Gamma call also has a total deadline, PMM_HTTP_DEADLINE_SEC). It first
        settles what closed while no engine ran (`_settle_orphans`)."""
        try:
            await self._settle_orphans()
        except Exception as exc:  # noqa: BLE001 - the refresh still runs; they are asked again after it
            self.events.emit(Level.WARNING, EventKind.RESOLUTION, f"markets outside the universe not checked: "
                             f"{type(exc).__name__}: {exc}"[:500])
        while not self._ctl.stop.is_set():
            wait = self.settings.universe_refresh_sec - (time.time() - self.universe_ts)
            if wait > 0:
                await wait_set(self._ctl.stop, min(wait, 1.0))
                continue
            try:
                await self.refresh_universe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep quoting the old universe; say so
                self.events.emit(Level.WARNING, EventKind.UNIVERSE, f"universe refresh failed: {type(exc).__name__}: {exc}")
                self.universe_ts = time.time()

    async def _quote_loop(self) -> None:
        """One cycle every `quote_refresh_sec`. A cycle that raises, or during which venue calls
        failed for good, is an `events` row and a status, never a crash; the circuit breaker
        pauses quoting and cancels when such cycles persist (see `engine/circuit.py`)."""
        loop = asyncio.get_running_loop()
        self._circuit = Circuit(self.settings.circuit_errors, self.settings.circuit_probe_sec)
        await self._first_books(self.settings.quote_refresh_sec)
        pacer = FullCollections() if self.settings.gc_freeze else None
        if pacer is not None:
            freeze_heap()
            pacer.start()
        cycles_run = 0
        me = asyncio.current_task()
        try:
            while not self._ctl.stop.is_set():
                if me is not None and me.cancelling():
                    # a cancel that an await below us dropped (3.11's wait_for did, see tasks.py; a
                    # library may): the run is being cancelled all the same, so it ends (orders first)
                    raise asyncio.CancelledError
                t0 = loop.time()
                cut = False
                try:
                    await self._apply_commands()
                    if self._ctl.stop.is_set():
                        break
                    await self._check_store()
                    if self._ctl.stop.is_set():
                        break
                    if self._circuit.is_open:
                        await self._circuit_probe()
                    else:
                        await self._after_venue_minute()
                        t_cycle = time.monotonic()
                        report = await self._watched_cycle()  # its breaches are already events (risk emits them)
                        # None: cut by a pause (`cut_cycle`); the next turn comes at once (a face's pause is read there)
                        cut = report is None
                        if report is not None:
                            self._cycle_wall = time.monotonic() - t_cycle
                        cycles_run += 1
                        if cycles_run == GC_REFREEZE_CYCLE and pacer is not None:
                            freeze_heap()  # the per-market state the first cycles built (see freeze_heap)
                        if report is not None and report.kill_requested:
                            self.events.emit(Level.ERROR, EventKind.RISK_KILL, "risk limits requested a kill")
                            self._ctl.kill_requested = True
                            self._ctl.stop.set()
                            self._publish_cycle()
                            break
                    self._publish_cycle()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failing cycle is an event, never a crash
                    await self._cycle_failed(f"{type(exc).__name__}: {exc}")
                if pacer is not None:
                    pacer.between_cycles()
                delay = 0.0 if cut else self.settings.quote_refresh_sec - (loop.time() - t0)
                # wake just after the venue's reward-sampling minute, so the estimate sees the book it samples
                econ = self.runtime.cycle.econ
                now = time.time()
                to_boundary = econ.clock.next_boundary_wall(now, econ.sample_sec) - now + 0.02
                if to_boundary < delay:
                    delay = to_boundary
                if econ.sample_count != self._clock_synced_at:  # re-read the venue's clock after each sample
                    self._clock_synced_at = econ.sample_count
                    await self._sync_venue_clock()
                await wait_set(self._ctl.stop, max(0.0, delay))
            if me is not None and me.cancelling():
                # the same dropped cancel, with a stop (or a risk kill) in the same round: the loop
                # ended through its normal exit, but the run is still being cancelled and ends so
                raise asyncio.CancelledError
        finally:
            if pacer is not None:
                pacer.stop()

    async def _after_venue_minute(self) -> None:
        """Live: no requote straddles the venue's reward sample (issue 13): while the market
        stream has passed a venue minute it has not sampled yet, or the venue's time is within a
        guard of the next one (1 venue s, or at the sandbox's speed twice the last cycle's wall
        time with its requote's round trip, at least 0.25 s; at most 20 venue s), wait (at most
        that guard in wall time plus 0.5 s; a stop ends it). The venue's time is the stream's
        timestamps, or the venue clock when it is further (frames late on a loaded machine)."""
        econ = self.runtime.cycle.econ
        if self.mode is not Mode.LIVE or not econ.stream_sampling:
            return  # paper and dry-run orders are not in the venue's sample
        stream = self.runtime.md.stream
        guard_ms = int(1000 * min(20.0, max(1.0, self._venue_speed * max(0.25, 2 * self._cycle_wall))))
        end = time.monotonic() + guard_ms / 1000 / self._venue_speed + 0.5
        while (stream.venue_minute_pending(guard_ms, int(econ.clock.to_venue(time.time()) * 1000))
               and time.monotonic() < end and not self._ctl.stop.is_set()):
            await wait_set(self._ctl.stop, 0.005)

    async def _first_books(self, limit: float) -> None:
        """Before the first cycle, wait (at most `limit`) until every book of the universe is
        synced and fresh: a first cycle that finds none quotes nothing, and the next one comes a
        whole refresh later (issue 11, take-over speed: `bench/bench_takeover.py`). A stop ends it."""
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        md = self.runtime.md
        tokens = [t for m in self.markets for t in m.token_ids]
        while loop.time() < end and not self._ctl.stop.is_set():
            books = [md.books.get(t) for t in tokens]
            if all(b is not None and not md.is_stale(b) for b in books):
                return
            await wait_set(self._ctl.stop, 0.02)

    async def _settle_orphans(self) -> None:
        """Every market outside the universe whose shares no settlement redeemed is asked of the
        venue (`_settle_if_closed`), at start and after every universe refresh: one that just left
        the universe (it closed and its `market_resolved` was lost, or its ranking fell), one that
        resolved while no engine ran (its shares restored from the DB; Gamma lists open markets
        only, so it is not in the universe), one whose resolution named a winner we do not know.
        Before, only a market leaving the universe was asked, once: the other two kept their
        shares, marked at their last mid, for good. One that cannot be checked is said and asked
        again at the next refresh."""
        from .restore import pair_market

        cycle = self.runtime.cycle
        inside = {m.condition_id for m in self.markets}
        pairs = self.runtime.session_rows.tokens
        for cid in list(cycle.pnl.ledgers):  # (whether its shares need asking: `_settle_if_closed`)
            if self._ctl.stop.is_set():
                return
            if cid in inside:
                continue
            m = cycle.known_market(cid)
            if m is None and cid in pairs:
                m = pair_market(cid, *pairs[cid])
            if m is None:  # (not met: a ledger's fills are on tokens of the universe or of the DB's `markets`)
                continue
            try:
                await self._settle_if_closed(m)
            except Exception as exc:  # noqa: BLE001 - the others are still asked; this one again at the next refresh
                self.events.emit(Level.WARNING, EventKind.RESOLUTION, f"could not settle {cid} outside the universe: "
                                 f"{type(exc).__name__}: {exc}"[:500], market=cid)

    async def _settle_if_closed(self, m: Market) -> None:
        """A market outside the universe whose shares we hold: when the venue says it is closed
        with a winner (`/markets/{cid}` `tokens[].winner`), settle it like `market_resolved`."""
        cycle = self.runtime.cycle
        lg = cycle.pnl.ledgers.get(m.condition_id)
        if lg is None or (lg.yes == 0 and lg.no == 0) or cycle.resolved.get(m.condition_id):
            return
        try:
            info = await self._venue_rest().market(m.condition_id)
        except Exception as exc:  # noqa: BLE001 - said; the inventory is kept and asked again at the next refresh
            self.events.emit(Level.WARNING, EventKind.RESOLUTION, f"could not check whether {m.condition_id} closed: "
                             f"{type(exc).__name__}: {exc}", market=m.condition_id)
            return
        winners = info.winners
        if not info.closed or len(winners) != 1:
            return
        async with self._ctl.trade_lock:
            now = time.time()
            settled = await cycle.resolve_market(now, m.condition_id, winners[0], self.runtime.exchange, "closed",
                                                 known=m)
        if settled:
            if self._recorder is not None:  # the venue's answer is no market data: a replay reads it here
                self._recorder.engine(now, "settled", {"market": m.condition_id, "winner": winners[0],
                                                       "yes_token_id": m.yes_token_id, "no_token_id": m.no_token_id})
            self.events.emit(Level.INFO, EventKind.RESOLUTION, f"closed market settled from the venue: {m.condition_id}",
                             market=m.condition_id)

    def _venue_rest(self) -> ClobPublic:
        rest = self.runtime.md.rest
        if rest is None:
            raise RuntimeError("market data has no CLOB REST client (no clob_url)")
        return rest

    async def _sync_venue_clock(self) -> None:
        """Anchor the reward-sampling clock on the venue's `/time` (integer seconds: +0.5 on
        average); a failure keeps the previous anchor (the local clock at first)."""
        from ..economics.tracker import VenueClock

        try:
            v = await self._venue_rest().server_time()
        except Exception as exc:  # noqa: BLE001 - an estimate's timing, never a reason to stop
            logging.getLogger(__name__).debug("venue /time failed: %s", exc)
            return
        clock = VenueClock(time.time(), float(v) + 0.5, self._venue_speed)
        self.runtime.cycle.econ.clock = clock
        if self._recorder is not None:  # replay samples rewards on the same venue minutes
            self._recorder.engine(clock.w0, "venue_clock", clock.to_json())

    async def _apply_resolutions(self) -> None:
        """Markets the venue resolved (`market_resolved`): cancel, settle, drop from the universe.
        One that fails (its cancel: the venue down for a moment; the cycle fails) goes back to the
        stream with those after it, for the next cycle: never lost (a market is settled once:
        `resolve_market` refuses one it resolved, and one whose cancel failed is not resolved)."""
        md = self.runtime.md
        pending = md.pop_resolutions()
        for i, ev in enumerate(pending):
            cid = ev.market
            try:
                # a market of the universe that resolved before the first cycle saw it (the feed runs
                # from the start; the venue resolves at any time) is known here: without it, the cycle
                # said "resolution for a market we do not know", a false WARNING, and settled nothing.
                # (The cycle's RESOLUTION event says what was settled; no second line for it here.)
                known = next((m for m in self.markets if m.condition_id == cid), None)
                await self.runtime.cycle.resolve_market(time.time(), cid, ev.winning_asset_id or None,
                                                        self.runtime.exchange, "market_resolved", known=known)
                before = len(self.markets)
                self.markets = [m for m in self.markets if m.condition_id != cid]
                if len(self.markets) != before:
                    await md.set_markets(self.markets)
            except BaseException:
                md.unpop_resolutions(pending[i:])
                raise

    def _venue_checks(self) -> VenueChecks | None:
        """The exchange's venue health and probe (live and dry-run), None for paper."""
        ex = self.runtime.exchange
        return ex if isinstance(ex, VenueChecks) else None

    def _venue_failures(self) -> int:
        checks = self._venue_checks()
        return checks.venue_failures() if checks is not None else 0

    async def _one_cycle(self) -> CycleReport:
        """Run the quote cycle once; venue calls that failed for good during it fail the cycle."""
        before = self._venue_failures()
        async with self._ctl.trade_lock:
            await self._apply_resolutions()
            now, hold = time.time(), self._hold_reason()
            if self._recorder is not None:
                self.record_params(now)  # also catches `engine.params.alpha = 2` (a direct assignment)
                self._recorder.engine(now, "cycle", {"hold": hold} if hold else None)
            report = await self._held_cycle(now, hold)
        failed = self._venue_failures() - before
        if failed:
            await self._cycle_failed(f"{failed} venue call(s) failed after retries")
        else:
            self._circuit.record(time.time(), None)
            err = self._state().last_error
            if err and err.startswith("cycle failed"):  # the venue answers again: the status says so
                self._publish(replace(self._state(), last_error=None))
        return report

    async def _held_cycle(self, now: float, hold: str | None) -> CycleReport:
        """`QuoteCycle.run_once` on one snapshot of the books. When the cycle yields to the event
        loop (`PMM_CYCLE_YIELD_MS` > 0, which also slices large frames) the market stream first
        applies everything it received up to the cycle's time `now`, then holds the books still:
        what arrives during the cycle is applied after it, in order, with its receive time, which
        is what a replay of the recording does (the session stays reproducible)."""
        rt = self.runtime
        if rt.cycle.yield_sec <= 0:
            return await rt.cycle.run_once(now, self.markets, rt.md.view, rt.exchange, hold=hold)
        stream = rt.md.stream
        # live and dry-run: the books apply again once every market is decided, so the requote's
        # round trips (a slow venue: seconds) never hold the feed; paper keeps the hold to the
        # end of the cycle (nothing waits on the network there, and a replay reproduces it)
        early = None if self.mode is Mode.PAPER else stream.release
        try:
            await stream.hold(now)
            return await rt.cycle.run_once(now, self.markets, rt.md.view, rt.exchange, hold=hold, decided=early)
        finally:
            stream.release()

    async def _cycle_failed(self, msg: str) -> None:
        """Record a failed cycle (event + status); open the circuit when failures persist."""
        self.cycle_errors += 1
        self.events.emit(Level.WARNING, EventKind.CYCLE_ERROR, f"quote cycle failed: {msg}")
        if self._circuit.record(time.time(), msg):
            self.events.emit(Level.ERROR, EventKind.CIRCUIT_OPEN, f"venue errors persist ({self._circuit.failures} failing cycles "
                             f"in a row): quoting paused, cancelling all orders; probing every "
                             f"{self._circuit.probe_sec:g}s")
            try:
                async with self._ctl.trade_lock:
                    self.record_cancel_all(time.time(), "circuit_open")
                    n = await self.runtime.exchange.cancel_all()
                self.events.emit(Level.WARNING, EventKind.CIRCUIT_OPEN, f"circuit open: {n} orders cancelled")
            except Exception as exc:  # noqa: BLE001 - the probes cancel again until it works
                self.events.emit(Level.ERROR, EventKind.CIRCUIT_OPEN, f"circuit open: cancel-all failed ({type(exc).__name__}: "
                                 f"{exc}); retrying at every probe")
        with contextlib.suppress(Exception):
            self._publish(replace(self._state(), last_error=f"cycle failed: {msg}"[:300],
                                  venue_health=self._venue_health()))

    async def _circuit_probe(self) -> None:
        """While the circuit is open: cancel all and check the venue; close the circuit when it works.

        A stop ends the probe at once (the live probe may wait `PROBE_SETTLE_SEC` for posts in
        flight, then read the venue's count and reconcile, on a venue slow enough to have opened
        the circuit): the shutdown's cancel and verification are the same sequence, and a stop
        used to wait its whole grace for a cycle under way (2 s) before it interrupted the probe.
        So does a kill another face sends meanwhile (`_command_sent`): the quote loop reads commands
        between two of its turns only, after the probe, while that face waits for the result.
        A pause meanwhile does not wait for it either: the probe posts nothing, so the pause's
        cancel-all goes beside it (`probing`, `Engine.pause`); a probe that then succeeds closes
        the circuit with quoting still paused (said in its event)."""
        now = time.time()
        if not self._circuit.probe_due(now):
            return
        try:
            async with self._ctl.trade_lock:
                self.probing = True
                try:
                    checks = self._venue_checks()
                    if checks is not None:
                        watch = asyncio.ensure_future(self._command_sent())
                        try:
                            await unless_set(checks.probe(), self._ctl.stop)
                        finally:
                            await cancel_and_wait(watch)
                    else:
                        await self.runtime.exchange.cancel_all()
                finally:
                    self.probing = False
        except EventSetFirst:
            return  # stopped: the shutdown cancels and verifies next; the circuit stays as it was
        except Exception as exc:  # noqa: BLE001 - a failed probe keeps the circuit open
            first = self._circuit.probes_failed == 0
            self._circuit.probe_result(time.time(), f"{type(exc).__name__}: {exc}")
            if first:
                self.events.emit(Level.WARNING, EventKind.CIRCUIT_OPEN, f"venue probe failed: {type(exc).__name__}: {exc}; "
                                 f"quoting stays paused")
            return
        down = now - (self._circuit.open_since or now)
        self._circuit.probe_result(time.time(), None)
        note = self._param_state().get("pause_note") or ""
        then = (f"quoting stays paused ({note})" if note else "quoting stays paused") if self._params.quoting_paused \
            else "quoting resumes"
        self.events.emit(Level.INFO, EventKind.CIRCUIT_CLOSED, f"venue recovered after {down:.0f}s: {then}")
        err = self._state().last_error
        self._publish(replace(self._state(), last_error=None if err and err.startswith("cycle failed") else err))

    def _publish_cycle(self) -> None:
        rows, totals = self.runtime.cycle.snapshot().to_display(self.markets)
        h = self.runtime.md.health()
        ws = self._writer.stats() if self._writer is not None else None
        self._publish(replace(
            self._state(), running=True, tick=self._state().tick + 1, ts=time.time(), markets=rows,
            totals=totals,
            feed=FeedState(bool(h.connected), float(h.lag_sec), int(h.reconnects), int(h.stale_tokens)),
            writer_lag_sec=ws.lag_sec if ws is not None else None, writer=ws.line() if ws is not None else "",
            mode=self.mode.value, venue_health=self._venue_health(), halted=self._hold_reason(),
            recording=self._recorder.health() if self._recorder is not None else "",
            **self._param_state(),
        ))

    def _venue_health(self) -> str:
        """One phrase from the live exchange's health (paper has none)."""
        circuit = self._circuit.describe(time.time())
        checks = self._venue_checks()
        if checks is None:
            return circuit
        h = checks.health()
        us = h.user_stream
        # a dry run sends nothing and subscribes to nothing: its user stream is off, not "down" (an alarm)
        stream = "off (dry run)" if self.mode is Mode.DRY_RUN else "up" if us is not None and us.connected else "down"
        parts = [f"user stream {stream}", f"heartbeat {h.heartbeat}"]
        if h.halted:
            parts.append(f"HALTED: {h.halted}")
        if circuit:
            parts.append(circuit)
        return ", ".join(parts)

    # ---------------------------------------------------------------- safety halts
    def _hold_reason(self) -> str | None:
        """Why quoting is halted (every active halt, one line), else None."""
        return "; ".join(f"{k}: {v}" for k, v in self._halts.items()) or None

    async def _halt(self, source: EventKind, reason: str, *, fatal: bool = False) -> None:
        """Stop quoting and cancel every order now; say why on every face. `fatal` also ends the run."""
        first = source not in self._halts
        self._halts[source] = reason
        self._publish(replace(self._state(), halted=self._hold_reason(), last_error=f"HALTED ({source}): {reason}"))
        if first:
            self.events.emit(Level.ERROR, source, f"HALTED: {reason}: quoting stopped, cancelling all orders")
            n, note = await self._cancel_now(self._cancel_budget())
            self.events.emit(Level.ERROR if note else Level.WARNING, source,
                             f"HALTED ({source}): {n} orders cancelled{note}; quoting stays off until the cause clears")
        if fatal:
            self.fatal_halt = f"{source}: {reason}"
            self._ctl.stop.set()

    def _clear_halt(self, source: EventKind, message: str) -> None:
        if self._halts.pop(source, None) is None:
            return
        self._publish(replace(self._state(), halted=self._hold_reason(), last_error=None if not self._halts else
                              self._state().last_error))
        self.events.emit(Level.WARNING, source, f"{message}: quoting resumes" if not self._halts else message)

    def _cancel_budget(self) -> float:
        """Time the halt cancel may take: what remains of the lease after the halt threshold."""
        return max(1.0, self.settings.lease_ttl_sec * 2 / 3 - 0.5)

    async def _cancel_now(self, budget: float) -> tuple[int, str]:
        """cancel_all within `budget` seconds. A live quote cycle under way is cut first, as a
        pause cuts it (`cut_cycle`: it posts nothing more, the trade lock is free at once; a halt
        waited up to half its budget for a cycle retrying at a slow venue, its cancel-all
        reaching the venue only then); a cycle not cut (paper, or the halt comes from inside the
        cycle's own task) is waited for, for half of the budget. The cancel is the exchange's
        `cancel_settled` without a wait: the posts still out make no new attempt, and what they
        place when their answer lands is cancelled by the next cycle (quoting is off)."""
        rt = self._rt
        if rt is None:
            return 0, ""
        self.cut_cycle()
        got = False
        try:
            await within(self._ctl.trade_lock.acquire(), budget / 2)
            got = True
        except TimeoutError:
            pass  # a cycle is stuck at the venue: cancel anyway (the exchange serialises its own calls)
        try:
            return (await within(rt.exchange.cancel_settled(0.0), budget / 2))[0], ""
        except Exception as exc:  # noqa: BLE001 - reported; the shutdown path retries
            return 0, f" (cancel failed: {type(exc).__name__}: {exc}; the shutdown path retries)"
        finally:
            if got:
                self._ctl.trade_lock.release()

    async def _check_store(self) -> None:
        """Once per cycle: the DB file is still ours, and the writer is healthy (a risk input)."""
        gone = self._dbh.identity.check()
        if gone is not None:
            await self._halt(EventKind.DB, f"{gone}: this engine cannot record or prove its lease; stopping", fatal=True)
            return
        writer = self._writer
        if writer is None or self._rt is None:
            return
        block = self._rt.cycle.risk.writer_block(time.time(), writer.stats())
        if block is not None:
            await self._halt(EventKind.WRITER, block, fatal=writer.identity.lost is not None)
        elif EventKind.WRITER in self._halts:
            self._clear_halt(EventKind.WRITER, "DB writer healthy again")

    async def _lease_loop(self) -> None:
        """Renew the lease (publishing state for attached faces) every `LeaseTimer.period`, from
        before the set-up until the shutdown is about to release it (`_releasing`).

        Renewal runs in a worker thread and is never awaited past one period: a DB that hangs
        (locked, disk full, gone) cannot stall this loop. When no renewal has succeeded for
        `halt_after` (a third of the TTL) the engine halts — stops quoting and cancels — with two
        thirds of the TTL left, so the cancel is done before the lease can expire and another
        engine take over. A later successful renewal lifts the halt; a renewal answered "not
        yours" (another engine took it), a lost DB file, or a halt longer than
        `LEASE_GIVE_UP_TTLS` TTLs ends the run.

        Once the shutdown has begun (`stopping`) it only renews: the shutdown is cancelling
        already, so no halt; "not yours" ends it quietly (nothing of ours left to keep). Its last
        renewal lands before the release, never after (the `finally`)."""
        handles = self._dbh
        lease, ttl = handles.lease, self.settings.lease_ttl_sec
        timer = LeaseTimer(ttl, proven_at=lease.renewed_at or time.time())
        pending: asyncio.Future[bool] | None = None
        last_err: str | None = None
        halted_at = 0.0
        try:
            while not self._releasing.is_set():
                if pending is None:
                    await wait_set(self._releasing, timer.period)
                    if self._releasing.is_set():
                        return
                    if not self.stopping:
                        gone = handles.identity.check()
                        if gone is not None:
                            await self._halt(EventKind.DB, f"{gone}: the lease there proves nothing; stopping",
                                             fatal=True)
                            return
                    # the state (500 market rows: ~10 ms of asdict) is serialised in the worker thread,
                    # off the event loop; published states are replaced, never mutated
                    # (a daemon thread: one the DB holds past the stop does not hold the process's exit)
                    pending = asyncio.ensure_future(in_daemon_thread(_renew_with, lease, self._state(), time.time(),
                                                                     name="pmm-lease-renew"))
                done, _ = await asyncio.wait({pending}, timeout=timer.period)
                if pending in done:
                    fut, pending = pending, None
                    try:
                        ok = fut.result()
                    except Exception as exc:  # noqa: BLE001 - any renewal failure is reported and retried
                        why = first_line(exc)
                        if why != last_err:
                            self.events.emit(Level.WARNING, EventKind.LEASE, f"lease renewal failed ({why}); "
                                             f"retrying, {timer.left():.1f}s of lease left")
                        last_err = why
                    else:
                        if not ok:
                            if self.stopping:
                                return  # another engine owns it now: nothing of ours to keep
                            await self._halt(EventKind.LEASE, "lease lost to another engine", fatal=True)
                            return
                        timer.proven(lease.renewed_at or 0.0)
                        last_err = None
                        # a renewal that waited behind a lock proves little: the next, quick one clears
                        if EventKind.LEASE in self._halts and not timer.must_halt():
                            self._clear_halt(EventKind.LEASE,
                                             f"lease renewed after {time.time() - halted_at:.1f}s halted")
                if self.stopping:
                    continue  # the shutdown cancels and verifies already: no halt on top of it
                if timer.must_halt() and EventKind.LEASE not in self._halts:
                    halted_at = time.time()
                    await self._halt(EventKind.LEASE, f"cannot renew the DB lease for {timer.silent():.1f}s "
                                     f"({last_err or 'renewal not answered'}); it expires in {timer.left():.1f}s")
                if timer.silent() > LEASE_GIVE_UP_TTLS * ttl:
                    await self._halt(EventKind.LEASE, f"no lease renewal for {timer.silent():.0f}s: giving up",
                                     fatal=True)
                    return
        finally:
            if pending is not None:  # the renewal's thread runs on: let it land before anything releases
                # (its failure is nobody's to raise now: retrieved, so that asyncio logs no "never retrieved")
                pending.add_done_callback(lambda f: f.cancelled() or f.exception())
                # not when cancelled: the shutdown's budget ran out (`StopSteps`: the release goes
                # ahead), or the run is cancelled past its shutdown (no release follows); the wait
                # held the run's end up to a TTL after the shutdown's own deadline
                me = asyncio.current_task()
                if me is None or not me.cancelling():
                    await asyncio.wait({pending}, timeout=ttl)

    async def _watched_cycle(self) -> CycleReport | None:
        """`_one_cycle`, watched (`_cycle_watch`): a kill another face sends meanwhile is taken within
        `KILL_POLL_SEC` of the cycle's first `KILL_POLL_SEC`; a pause, this face's (`Engine.pause`)
        or another's (a `pause` command the watch sees), ends the cycle where it is (`cut_cycle`):
        None then. The quote loop reads commands between two of its turns: a cycle held by a slow
        venue (posts retrying, up to the HTTP deadline) held an attached face's KILL as long, the
        face waiting for its result, and any pause too. A healthy cycle ends before the watch's
        first look."""
        me = asyncio.current_task()
        self._cycle_run, self._cut_sent = me, False
        watch = asyncio.ensure_future(self._cycle_watch(me))
        try:
            return await self._one_cycle()
        except asyncio.CancelledError:
            if self._cut_sent and me is not None:
                self._cut_sent = False
                if me.uncancel() == 0:  # the cut's cancel, and no other (a stop's, a kill's: raised)
                    return None
            raise
        finally:
            self._cycle_run = None
            if self._cut_sent and me is not None:  # the cycle ended on its own although cut (it swallowed
                self._cut_sent = False  # the cancel): taken back all the same, so the run is not seen cancelled
                me.uncancel()
            await cancel_and_wait(watch)  # (as the probe's watch: ended and waited for)

    def cut_cycle(self) -> bool:
        """A pause: the quote cycle under way ends where it is, at once (its task is cancelled as
        `Engine.stop` cancels it, the cancel taken back when the cycle has ended: the run goes on).
        It posts nothing more: its next step is the cancel (a step that was due runs no further);
        placements it had sent are the exchange's, which the pause's `cancel_settled` stops retrying,
        and what they place when their answer lands is cancelled by the next, paused, cycle. The
        trade lock is free as soon as it has unwound. False when no cycle runs (or one is cut
        already, or the shutdown has begun), and in paper and dry-run: no venue holds their
        cycles (the paper venue answers in the process), and a paper cycle cut where it is would
        not be what a replay of the session runs (the whole cycle, then the pause's cancel-all):
        there the pause waits for the cycle under way, milliseconds, as before."""
        run = self._cycle_run
        if (self.mode is not Mode.LIVE or run is None or self._cut_sent or self.stopping or run.done()
                or run is asyncio.current_task()):
            return False
        self._cut_sent = True
        run.cancel()
        return True

    async def _cycle_watch(self, run: asyncio.Task[Any] | None) -> None:
        """A cycle's watch. A kill taken (`_command_sent`: the stop set): the cycle gets the stop's
        grace to end, as a local kill's `Engine.stop` gives it; still running, the run is cancelled
        as `Engine.stop` cancels it, and its shutdown (cancel all, verify) runs. A pause another
        face sent: the cycle is cut (`cut_cycle`) and the quote loop's next turn, at once, applies
        it with the commands before it, in order."""
        seen = await self._command_sent(first_after=KILL_POLL_SEC, during="the quote cycle",
                                        pause=self.mode is Mode.LIVE)  # (a cut is live's only: `cut_cycle`)
        if seen == "pause":
            self.cut_cycle()
            return
        if seen != "kill":
            return
        await asyncio.sleep(runtime.STOP_GRACE_SEC)  # (cancelled here when the cycle ends within it)
        if run is not None and self.shutdown_started is None:
            run.cancel()

    async def _command_sent(self, every: float = KILL_POLL_SEC, *, first_after: float = 0.0,
                            during: str = "the venue probe", pause: bool = False) -> str | None:
        """Until stopped: every `every` seconds, look for a `kill` command; one found is taken as
        `_apply_commands` takes it (its result is written by the shutdown) and stops the run:
        "kill". With `pause`, a `pause` command found (and no kill) is said and left to the quote
        loop: "pause". The other commands wait for the quote loop, which reads them in order
        between its turns. `first_after`: seconds before the first look (a cycle's watch: most
        cycles end sooner). None when the run was stopped otherwise."""
        commands = self._dbh.commands
        if first_after > 0:
            await asyncio.sleep(first_after)  # (a cycle's watch is cancelled when the cycle ends)
        while not self._ctl.stop.is_set():
            try:
                pending = await asyncio.to_thread(commands.pending)
            except Exception as exc:  # noqa: BLE001 - the quote loop reads them again after the probe
                logging.getLogger(__name__).debug("commands not read during %s: %s", during, exc)
                pending = []
            kill = next((cmd for cmd in pending if cmd.kind == "kill"), None)
            if kill is not None:
                self.events.emit(Level.WARNING, EventKind.COMMAND, f"kill from {kill.origin}: ending {during}")
                self._take_kill(kill.id)
                return "kill"
            held = next((cmd for cmd in pending if cmd.kind == "pause"), None) if pause else None
            if held is not None:
                self.events.emit(Level.INFO, EventKind.COMMAND, f"pause from {held.origin}: ending {during}")
                return "pause"
            await wait_set(self._ctl.stop, every)
        return None

    def _take_kill(self, command_id: int) -> None:
        """A `kill` command: applied after the shutdown, with the verified result (see _shutdown)."""
        self._ctl.kill_requested = True
        self._kill_command_id = command_id
        self._ctl.stop.set()

    async def _apply_commands(self) -> None:
        commands = self._dbh.commands
        for cmd in await asyncio.to_thread(commands.pending):
            result = "ok"
            try:
                if cmd.kind == "set_params":
                    self._commands_target.set_params(**cmd.payload, changed_by=cmd.issuer or "a command")
                    result = "ok: " + ", ".join(f"{k}={v}" for k, v in cmd.payload.items())
                elif cmd.kind == "set_strategy":
                    pl = cmd.payload
                    self._commands_target.set_strategy(pl["market"], pl.get("strategy"), **(pl.get("params") or {}))
                    result = f"ok: {pl['market']} -> {pl.get('strategy') or 'default'}"
                elif cmd.kind == "pause":
                    await self._commands_target.pause(cancel=True, reason="pause", by=cmd.issuer or "a command")
                elif cmd.kind == "resume":
                    await self._commands_target.resume(by=cmd.issuer or "a command")
                elif cmd.kind == "kill":
                    self._take_kill(cmd.id)
                    return
                else:
                    result = f"error: unknown command {cmd.kind}"
            except ValidationError as exc:
                result = "rejected: " + format_validation_error(exc)
            except Exception as exc:
                result = f"error: {type(exc).__name__}: {exc}"
            self.events.emit(Level.INFO, EventKind.COMMAND, f"{cmd.kind} from {cmd.origin}: {result}")
            await asyncio.to_thread(commands.mark_applied, cmd.id, result)

    async def _shutdown(self) -> None:
        """Cancel all and verify, record, close everything, release the lease. Never raises.

        The lease loop keeps renewing until just before the release (see `_lease_loop`)."""
        self.shutdown_started = time.time()
        self.stopping = True
        try:
            await self._shutdown_steps()
        finally:
            self._releasing.set()  # also when a step was interrupted: the lease loop ends with the group

    async def _save_round_trips(self, rt: Runtime) -> str:
        """A live run's measured order round trips to PMM_LIVE_RTT_FILE (after the cancels; for
        PMM_PAPER_LATENCY_FILE); the stop message's tail. Never raises."""
        try:
            target = self.settings.live_rtt_file.replace("{venue}", self.settings.venue.value)
            saved = await asyncio.to_thread(save_round_trips, rt.exchange, target,
                                            f"venue {self.settings.venue.value}, saved {time.strftime('%Y-%m-%d %H:%M:%S')}")
        except Exception as exc:
            return f"; order round trips not saved ({first_line(exc)})"
        if saved is None:
            return ""
        path, n, med = saved
        return f"; {n} order round trips (median {med:.0f} ms) saved to {path}"

    async def _shutdown_steps(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        rt = self._rt
        if self._ctl.kill_requested:  # on record from before the cancel: every lease renewal from now carries it
            self._publish(replace(self._state(), kill=KillResult(time.time(), 0, -1, False, KILL_UNDER_WAY)))
        cancelled, open_after, err = (0, -1, None) if rt is None else await cancel_and_verify(rt.exchange)
        # the rest of the shutdown ends within the stop's budget (`runtime.AFTER_VERIFY_SEC`), and
        # may use what the verification left of its own: the verification and the rest, together
        # (`STOP_VERIFY_SEC + AFTER_VERIFY_SEC`: 7 s; a page kernel's 9 s with the stop's grace)
        steps = StopSteps(began, max(began + runtime.STOP_VERIFY_SEC + runtime.AFTER_VERIFY_SEC,
                                     loop.time() + runtime.AFTER_VERIFY_SEC), self._step_cut, self._left_running)
        flush_keep = runtime.STOP_FLUSH_SLICE_SEC + runtime.STOP_RELEASE_SLICE_SEC  # kept for the flush and release
        # what the venue said, for the KILL's and the stop's messages alike (-1: no count, or posts unanswered)
        venue_open = "venue not checked (no exchange)" if rt is None and err is None else (
            f"venue open count unknown ({err})" if open_after < 0 else f"{open_after} open")
        if self._ctl.kill_requested:
            kr = KillResult(time.time(), cancelled, max(open_after, 0) if err is None else open_after, True,
                            f"KILLED: {cancelled} orders cancelled, "
                            + (f"venue reports {open_after} open" if open_after >= 0 else venue_open))
            self.kill_result = kr
            self.events.emit(Level.ERROR if not kr.ok else Level.WARNING, EventKind.KILL, kr.message)
        end_ts = time.time()  # the session's end: its last `pnl` rows and the recording's `stop`
        if rt is not None:
            with contextlib.suppress(Exception):
                rt.cycle.final_pnl(end_ts)  # after the last fills: the `pnl` table ends with the session
        rtts = "" if rt is None else await steps.run(
            "saving the order round trips", self._save_round_trips(rt), "", keep=flush_keep, then="not saved")
        self.events.emit(Level.INFO, EventKind.ENGINE_STOP,
                         f"engine stopped: {cancelled} orders cancelled, {venue_open}{rtts}")
        ended = "killed" if self._ctl.kill_requested else "stopped"
        rows = [replace(m, yes_bid=None, yes_ask=None, no_bid=None, no_ask=None, status=ended)
                for m in self._state().markets]  # no quotes rest any more: the table must not show any
        # `cancels`: the exchange's count, the stop's own cancels in it (`QuoteCycle.totals`)
        cancels = self._state().totals.cancels if rt is None else rt.cycle.totals.cancels
        self._publish(replace(self._state(), running=False, kill=self.kill_result, markets=rows, ts=time.time(),
                              totals=replace(self._state().totals, open_orders=max(open_after, 0), cancels=cancels)))
        if rt is not None:
            # exchange, market data, Gamma, endpoints (the exit stack); cut short, they close on their own
            await steps.run("closing the venue side (exchange, market data, Gamma)", rt.aclose(), None,
                            keep=flush_keep, then="left to end on its own")
            with contextlib.suppress(Exception):
                rt.cycle.calibrator.persist(time.time())  # (rows queued for the writer: no wait)
        store, self._store = self._store, None  # nothing more is recorded by this session
        if store is not None:
            if store.recorder is not None:
                store.recorder.engine(end_ts, "stop")
            release = runtime.STOP_RELEASE_SLICE_SEC
            closed = await steps.run("the DB writer's flush", store.close_within(steps.left(keep=release)),
                                     StoreClosed(None, -1), keep=release / 2,
                                     then="what it had not written is saved beside the DB file when it ends (said in the log; "
                                          "lost if the process ends first)")
            if closed.spill:
                self.events.emit(Level.ERROR, EventKind.WRITER, f"rows the DB did not take were saved to {closed.spill}")
            if closed.unanswered > 0:
                where = (f"saved to {closed.spill} too, marked in_flight (the DB may still commit them)"
                         if closed.spill else "left to the writer's thread (lost if the process ends first)")
                self._step_cut(EventKind.WRITER, f"the DB writer's flush not finished within the stop's {steps.budget:g} s: "
                               f"a write of {closed.unanswered} rows not answered by the DB, {where}")
            lost = store.recorder.health() if store.recorder is not None else ""  # (closed: the rows it never wrote)
            if lost:
                self.events.emit(Level.WARNING, EventKind.WRITER, lost)
        cmd_id = self._kill_command_id
        if cmd_id is not None and self.kill_result is not None:
            await steps.run("writing the kill command's result", in_daemon_thread(
                self._dbh.commands.mark_applied, cmd_id, json.dumps(asdict(self.kill_result))), None,
                keep=runtime.STOP_RELEASE_SLICE_SEC, thread=True,
                then="the face that sent it says the owner did not confirm the kill")
            self._kill_command_id = None
        self._releasing.set()
        if self._lease_task is not None:
            # an in-flight renewal finishes before the release, never after; one the DB holds past
            # the budget is left (the release cannot land before it: the row is locked meanwhile, and
            # a renewal never revives a row released with a final state: `Lease.renew`)
            await steps.run("the lease's last renewal", self._lease_task, None,
                            keep=runtime.STOP_RELEASE_SLICE_SEC, kind=EventKind.LEASE, then="released anyway")
        final = None
        with contextlib.suppress(Exception):
            final = self._state().to_json() if self.kill_result is not None else None
            if final is None and self._ctl.handover:
                final = replace(self._state(), handover_ts=time.time()).to_json()
        ttl = self.settings.lease_ttl_sec
        renewed_until = time.time()  # (the lease loop asks for no renewal any more: `_releasing`)
        if self.kill_result is not None and final is not None:
            # the kill's record: a face that finds the lease expired without it would start anew
            await steps.run("the kill's record (the lease's release)", self._record_kill(final, renewed_until), None,
                            kind=EventKind.LEASE, thread=True,
                            then="written as soon as the DB answers, while this process runs; until then a page "
                                 f"that finds the lease expired (in up to {ttl:g} s) may start a new engine")
        else:
            lease = self._dbh.lease
            await steps.run("the lease's release", in_daemon_thread(lambda: lease.release(final, fence=renewed_until)),
                            None,
                            kind=EventKind.LEASE, thread=True, say_failure=f"the next engine to start attaches to this stopped "
                                                                           f"one until the lease expires (up to {ttl:g} s)",
                            then=f"released if the DB answers while this process runs, else the next engine to start "
                                 f"attaches to this stopped one until the lease expires (up to {ttl:g} s)")
        self._rt = None

    async def _record_kill(self, final: dict[str, Any], fence: float) -> None:
        """The killed engine's final state into the lease row (`Lease.release`), tried again
        until the DB takes it, while this process runs: a release that failed (SQLite's busy
        timeout ran out, PostgreSQL unreachable) used to leave the row with the running state,
        and once it expired a page's automatic start or take-over ran a new engine as if nothing
        had happened. Ends when written, or when the row is not this run's any more (another
        engine, or this one started again, took the lease first: said)."""
        lease = self._dbh.lease
        pause, said = 0.1, False
        while True:
            try:
                mine = await in_daemon_thread(lambda: lease.release(final, fence=fence), name="pmm-lease-release")
            except Exception as exc:  # noqa: BLE001 - the DB does not answer yet: again, a bit later
                if not said:
                    said = True
                    logging.getLogger(__name__).warning("the kill's record not written yet (%s): retrying while "
                                                        "this process runs", first_line(exc))
                await asyncio.sleep(pause)
                pause = min(2 * pause, 2.0)
                continue
            if not mine:
                self._step_cut(EventKind.LEASE, "the kill could not be recorded in the lease row: another engine "
                                                "took the DB's lease first")
            elif said:
                logging.getLogger(__name__).warning("the kill's record written to the lease row")
            return

    def _step_cut(self, kind: EventKind, message: str) -> None:
        """A step of the shutdown the stop's budget cut short: said once, as an event and in the log
        (the events of the last steps are not recorded any more: the writer is closed)."""
        self.events.emit(Level.ERROR, kind, message)
        logging.getLogger(__name__).error("%s", message)


class StopSteps:
    """The shutdown's steps after its verification, each bounded by the stop's deadline (`end`,
    loop time): a step still running then is cancelled and left to end on its own (held here,
    its error logged), said once (`say`), and the next step runs. `keep`: seconds of the budget
    kept for the steps after this one (the writer's flush, the lease's release: what matters most
    when a step before them hangs)."""

    def __init__(self, began: float, end: float, say: Callable[[EventKind, str], None],
                 left_running: set[asyncio.Future[Any]]) -> None:
        self.began = began
        self.end = end
        self.say = say
        self.budget = round(end - began, 1)  # seconds from the shutdown's start, as the messages say them
        self.left_running = left_running  # the session's: held until they end

    def left(self, keep: float = 0.0) -> float:
        """Seconds until the deadline, less `keep` (never negative)."""
        return max(0.0, self.end - keep - asyncio.get_running_loop().time())

    async def run(self, what: str, aw: Awaitable[T], default: T, *, keep: float = 0.0,
                  kind: EventKind = EventKind.ENGINE_STOP, then: str = "", say_failure: str = "",
                  thread: bool = False) -> T:
        """`aw`'s result; `default` when it failed (logged; said too with `say_failure`, what it
        means) or was cut by the deadline (said, with `then`: what follows). `thread`: `aw` is a
        worker thread's (`asyncio.to_thread`), which a cancel cannot stop: cut, it is left as it
        is, and how it ended is logged when it does."""
        job = asyncio.ensure_future(aw)
        try:
            done, _ = await asyncio.wait({job}, timeout=self.left(keep))
        except BaseException:
            job.cancel()
            raise
        if job in done:
            exc = None if job.cancelled() else job.exception()
            if job.cancelled() or exc is not None:
                why = "cancelled" if exc is None else f"{type(exc).__name__}: {first_line(exc)}"
                if say_failure:
                    self.say(kind, f"{what} failed ({why}): {say_failure}")
                else:
                    logging.getLogger(__name__).warning("shutdown: %s failed: %s", what, why)
                return default
            return job.result()
        if not thread:
            job.cancel()
        self.left_running.add(job)
        job.add_done_callback(lambda j: self._ended(j, what))
        self.say(kind, f"{what} not finished within the stop's {self.budget:g} s" + (f": {then}" if then else ""))
        return default

    def _ended(self, job: asyncio.Future[Any], what: str) -> None:
        """A step cut by the deadline ended (it was cancelled; a thread of it ran to its end)."""
        self.left_running.discard(job)
        if job.cancelled():
            return
        if (exc := job.exception()) is not None:
            logging.getLogger(__name__).warning("shutdown: %s, left running, failed: %s: %s", what,
                                                type(exc).__name__, first_line(exc))
        else:
            logging.getLogger(__name__).info("shutdown: %s, left running, ended", what)
