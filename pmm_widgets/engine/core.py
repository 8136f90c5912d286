"""The `Engine`: one object that wires universe, market data, strategy, exchange, store and the
lease together, and that every face (headless runner, widgets, notebooks) drives.

Why it runs as a task on the *running* loop: inside a Jupyter/Voilà kernel the loop is already
running and cells must return, so `start()` schedules `run()` and returns at once; headless,
`asyncio.run` provides the loop. Nothing here blocks the loop: SQL runs through
`asyncio.to_thread`, rows go through the non-blocking `Sink`.

Whatever ends the run (stop, kill, crash, lost lease, SIGTERM) goes through one `finally` that
cancels every order and verifies with the venue, so no path leaves quotes behind.

Safety halts (issue 17): the owner stops quoting and cancels everything, *while still running*,
when it cannot prove it is safe to trade: the lease could not be renewed for a third of its TTL
(so the cancel runs with two thirds of the TTL left, before another engine may take over), the
DB file it opened was deleted or replaced, or the batch writer reports a fault (disk full, rows
past the bound, DB gone; an input of the risk stage). Each halt says why on every face (state
`halted` and `last_error`, the status line, an ERROR event) and lifts itself when the cause goes
(lease renewed, writer healthy); a lost lease, a lost DB file or a halt that outlasts
`LEASE_GIVE_UP_TTLS` TTLs ends the run (cancelled first, like every stop).

Roles: the engine that takes the DB lease is the *owner* and trades. One that finds the lease
held is *attached*: it mirrors the owner's state from the lease row and turns `params`
assignments, pause/resume and `kill()` into rows of the `commands` table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..config import PARAM_FIELDS, Params, Settings, Venue, format_validation_error
from ..domain import Market, Mode
from ..events import Event, EventBus, EventKind
from ..store.db import first_line
from ..store.sink import Sink
from ..tasks import spawn
from .attached import AttachedSession, RemoteParams
from .attached import jsonable as _jsonable
from .circuit import Circuit
from .commands import CommandQueue
from .lease import Lease, LeaseTimer, new_owner_id
from .runtime import DbHandles, Runtime, Store, build_runtime, cancel_and_verify, open_db, open_store
from .state import (
    EngineState,
    FeedState,
    KillResult,
    params_to_json,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..store.recording import Recorder
    from ..store.writer import BatchWriter
    from ..venue.clob_rest import ClobPublic

HANDOVER_SEC = 60.0  # a page opened this soon after the owning page's kernel stopped takes over


# a lease halt that lasts this many TTLs ends the run instead of waiting for the DB forever
LEASE_GIVE_UP_TTLS = 20


class Engine:
    def __init__(
        self,
        settings: Settings,
        mode: Mode = Mode.PAPER,
        *,
        sink: Sink | None = None,
        endpoints: Any = None,
        auto_takeover: bool = False,
        persist_params: bool = False,
    ) -> None:
        """`sink`/`endpoints` let tests share a sandbox or a MemorySink; by default the engine opens
        its own (embedded sandbox when `settings.venue` is sandbox, BatchWriter on `db_url`).
        `auto_takeover`: an attached engine becomes owner when the lease frees (a reloaded page).
        `persist_params`: every parameter change is written to `param_changes` (who, when) and the
        newest values are restored when this engine becomes owner (the dashboard; headless runs
        keep env/flags as given)."""
        self.settings = settings
        self.mode = Mode(mode)
        self.auto_takeover = auto_takeover
        self.persist_params = persist_params
        self._unsaved_params: dict[str, tuple[Any, str]] = {}  # changed before the DB was open
        self._attach_only = False
        self._handover = False
        self._pause_note = ""
        self.events = EventBus()  # the one event flow: faces subscribe, `_record_event` persists
        self._params = settings.params()
        self._sink_override = sink
        self._endpoints_override = endpoints
        self._owner_id = new_owner_id()
        self._state = EngineState(mode=self.mode.value, owner=self._owner_id, venue=settings.venue.value,
                                  params=params_to_json(self._params))
        self._state_listeners: list[Callable[[EngineState], None]] = []
        self._task: asyncio.Task | None = None
        # one run's signals, fresh for every run (start(), or run() awaited directly)
        self._stop_evt = asyncio.Event()
        self._role_evt = asyncio.Event()
        self._via_start = False
        self._venue_speed = 1.0
        self._cycle_wall = 0.0  # wall seconds the last quote cycle took (requote round trip included)
        self._clock_synced_at = 0
        self._kill_requested = False
        self._kill_result: KillResult | None = None
        self._trade_lock = asyncio.Lock()  # a cycle, a halt's cancel, a pause's cancel: one at a time
        self._dbh: DbHandles | None = None  # open_db: DB, lease, commands, file identity
        self._db_lock: asyncio.Lock | None = None
        from ..venue.universe import load_universe

        self._load_universe: Callable[..., Awaitable[list[Market]]] = load_universe  # tests slow it down
        self._store: Store | None = None  # the owner's sink/writer/recorder (open_store), else None
        self._rt: Runtime | None = None  # the owner's venue side (build_runtime), else None
        self._recorded_params: dict[str, Any] = {}  # the parameter values the recording last saw
        self._markets: list[Market] = []
        self._universe_ts = 0.0
        self._kill_command_id: int | None = None
        self._shutdown_started: float | None = None  # set when the clean shutdown begins (see stop)
        self._crash_reported = False
        self._sending: set[asyncio.Task] = set()
        self._circuit = Circuit(settings.circuit_errors, settings.circuit_probe_sec)
        self.cycle_errors = 0  # quote cycles that failed (each one an `events` row, never a crash)
        self._background: set[asyncio.Task] = set()
        self._halts: dict[str, str] = {}  # source (lease, db, writer) → why quoting is halted
        self.fatal_halt: str | None = None  # set when a safety halt ended the run (lease lost, DB gone)
        self._strategy_overrides: dict[str, tuple[Any, dict[str, Any]]] = {}  # market → (strategy, params)
        self._default_strategy: Any = None  # a strategy object for every market ("*"), this process only
        self.events.subscribe(self._record_event)

    # ---------------------------------------------------------------- public API (all faces)
    @property
    def runtime(self) -> Runtime:
        """The owner's venue side (exchange, market data, cycle, store: `engine/runtime.py`) while
        it runs; RuntimeError otherwise (idle, attached, stopped)."""
        if self._rt is None:
            raise RuntimeError("the engine has no runtime: it is not running as the owner")
        return self._rt

    @property
    def _sink(self) -> Sink | None:
        return self._store.sink if self._store is not None else None

    @property
    def _writer(self) -> BatchWriter | None:
        return self._store.writer if self._store is not None else None

    @property
    def _recorder(self) -> Recorder | None:
        return self._store.recorder if self._store is not None else None

    @property
    def role(self) -> str:
        return self._state.role

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def params(self) -> Params | RemoteParams:
        return RemoteParams(lambda: self.state.params, self._send_command) if self.role == "attached" else self._params

    @params.setter
    def params(self, value: Params | dict[str, Any]) -> None:
        changes = value.model_dump() if isinstance(value, Params) else dict(value)
        self.set_params(**changes)

    def set_params(self, *, changed_by: str | None = None, **changes: Any) -> None:
        """Validate and apply (owner/idle) or send (attached). Raises ValidationError; applies nothing then.

        `changed_by` names who asked (recorded with `persist_params`; default: this engine)."""
        if self.role == "attached":
            RemoteParams(lambda: self.state.params, self._send_command).update(**changes)
        else:
            self._params.update(**changes)
            if self._recorder is not None:
                self._record_params(time.time())
            self._publish(replace(self._state, params=params_to_json(self._params), paused=self._params.quoting_paused,
                                  pause_note=self._pause_note if self._params.quoting_paused else ""))
            if self.persist_params:
                self._persist_params({k: getattr(self._params, k) for k in changes}, changed_by or self._owner_id)

    def _persist_params(self, changes: dict[str, Any], by: str) -> None:
        """Record a change in `param_changes` (a worker thread); before the DB is open, at start."""
        if self._db is None:
            for k, v in changes.items():
                self._unsaved_params[k] = (v, by)
            return
        from .param_log import record

        db = self._db
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (a notebook cell before start): record here
            record(db, changes, by)
            return
        spawn(asyncio.to_thread(record, db, changes, by), "pmm-record-params", self._sending,
              lambda _t, exc: self.events.emit("ERROR", "params", f"could not record parameter change: {exc}"))

    async def _restore_params(self) -> None:
        """Owner start: newest recorded values, then the changes made while idle (recorded now)."""
        from .param_log import latest, record

        db = self._opened().db
        stored = await asyncio.to_thread(latest, db)
        restored: list[str] = []
        for name, pv in sorted(stored.items()):
            if name in self._unsaved_params or name not in PARAM_FIELDS:
                continue
            try:
                self._params.update(**{name: pv.value})
            except ValidationError as exc:
                self.events.emit("WARNING", "params", f"stored {name}={pv.value!r} not restored: "
                                 f"{format_validation_error(exc)}")
                continue
            restored.append(f"{name}={pv.value} (by {pv.changed_by} at {time.strftime('%H:%M:%S', time.localtime(pv.ts))})")
        by_who: dict[str, dict[str, Any]] = {}
        for name, (value, by) in self._unsaved_params.items():
            by_who.setdefault(by, {})[name] = value
        for by, changes in by_who.items():
            await asyncio.to_thread(record, db, changes, by)
        self._unsaved_params.clear()
        if self._params.quoting_paused and not self._pause_note:
            self._pause_note = "paused before the restart (restored from the DB)"
        if restored:
            self.events.emit("INFO", "params", "restored from the DB: " + ", ".join(restored))

    def set_strategy(self, market: str, strategy: Any = None, **params: Any) -> None:
        """Give one market (condition id; "*" for every market of the current universe) its own
        strategy: a built-in name (`spread`, `as`, `microprice`, `regime`, `rewards`), an object
        implementing `strategy.base.Strategy` (owner or idle engine only), or None for the default
        (`PMM_STRATEGY`); `params` are strategy parameters (`as_gamma=0.5`, `alpha=2`, ...)
        validated by the same rules as every parameter. Raises ValueError and changes nothing
        on a bad name or value. The next quote cycle cancels the market's orders before the new
        strategy's are placed. Names and parameters are kept in `market_overrides` (restored at
        start-up); a strategy object lives only in this process ("*" with an object also makes it
        the default of markets that join the universe later)."""
        from ..strategy.registry import build_strategy
        from .cycle import strategy_params

        if isinstance(strategy, str):
            build_strategy(strategy)  # raises ValueError on an unknown name
        elif strategy is not None and not hasattr(strategy, "decide"):
            raise ValueError(f"{strategy!r} is not a strategy: it needs a `name` and a `decide(ctx, state)` method")
        strategy_params(self._params if self.role != "attached" else Params.model_validate(self.state.params or {}),
                        params)
        if self.role == "attached":
            if strategy is not None and not isinstance(strategy, str):
                raise ValueError("a strategy object can only be handed to the engine that owns the lease (this one is attached)")
            self._send_command("set_strategy", {"market": market, "strategy": strategy, "params": _jsonable(params)})
            return
        targets = [m.condition_id for m in self._markets] if market == "*" else [market]
        if market == "*" and not isinstance(strategy, str):  # an object (or None) also covers markets joining later
            self._default_strategy = strategy
            if self._rt is not None:
                self._rt.cycle.default_strategy = strategy
        for cid in targets:
            if self._rt is not None:
                self._rt.cycle.set_strategy(cid, strategy, **params)
            if self._recorder is not None and (strategy is None or isinstance(strategy, str)):
                self._recorder.engine(time.time(), "strategy", {"market": cid, "strategy": strategy,
                                                                "params": _jsonable(params)})
            if strategy is None and not params:
                self._strategy_overrides.pop(cid, None)
            else:
                self._strategy_overrides[cid] = (strategy, dict(params))
            if self._store is not None and (strategy is None or isinstance(strategy, str)):
                self._store.db.market_override(cid, strategy, _jsonable(params), time.time())
        name = strategy if strategy is None or isinstance(strategy, str) else getattr(strategy, "name", "?")
        self.events.emit("INFO", "strategy", f"strategy of {market}: {name or 'default'}"
                         + (f" {_jsonable(params)}" if params else ""), market=None if market == "*" else market)

    def set_mode(self, mode: Mode | str) -> None:
        """Change the execution mode; only while not running. Live needs credentials."""
        mode = Mode(mode)
        if self.running:
            raise RuntimeError("stop the engine before switching mode")
        if mode is not Mode.PAPER and not (self.settings.has_private_key or self.settings.has_l2_creds):
            raise RuntimeError(f"{mode.value} mode needs credentials: set PMM_PRIVATE_KEY (and optionally the API key trio)")
        self.mode = mode
        self._publish(replace(self._state, mode=mode.value))

    def add_state_listener(self, cb: Callable[[EngineState], None]) -> Callable[[], None]:
        """cb(state) after every published snapshot (owner: each cycle; attached: each poll)."""
        self._state_listeners.append(cb)
        return lambda: self._state_listeners.remove(cb) if cb in self._state_listeners else None

    def start(self, attach_only: bool = False) -> asyncio.Task:
        """Schedule `run()` on the running loop and return the task (a no-op if already running).

        `attach_only`: mirror an engine that owns the DB, never take the lease (a page whose own
        engine stopped watches whoever runs now); ends at once when nobody owns it."""
        self._attach_only = attach_only
        if self.running:
            assert self._task is not None
            return self._task
        loop = asyncio.get_running_loop()
        self._stop_evt, self._role_evt, self._trade_lock = asyncio.Event(), asyncio.Event(), asyncio.Lock()
        self._via_start = True
        self._kill_requested = False
        self._task = loop.create_task(self.run(), name="pmm-engine")
        self._task.add_done_callback(self._on_done)
        return self._task

    async def lease_holder(self) -> str | None:
        """The id of another engine holding a live lease on this DB, else None (opens the DB)."""
        lease = (await self._open_db()).lease
        row = await asyncio.to_thread(lease.read)
        if row is None or row.expired() or row.owner == self._owner_id:
            return None
        return row.owner

    async def handover_pending(self, max_age: float = HANDOVER_SEC) -> Mode | None:
        """The mode of an engine that stopped for a hand-over (its page reloaded or its kernel shut
        down) less than `max_age` seconds ago, when nobody owns the DB since; else None."""
        lease = (await self._open_db()).lease
        row = await asyncio.to_thread(lease.read)
        if row is None or not row.expired() or not row.state_json:
            return None
        last = EngineState.from_json(row.state_json)
        if last.kill is not None or last.handover_ts is None or time.time() - last.handover_ts > max_age:
            return None
        try:
            return Mode(last.mode)
        except ValueError:
            return None

    async def wait_role(self, timeout: float = 30.0) -> str:
        """Wait until the started engine knows whether it owns (set up and quoting) or is attached."""
        assert self._task is not None, "call start() first"
        waiter = asyncio.ensure_future(self._role_evt.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        return self.role

    async def stop(self, handover: bool = False) -> None:
        """Owner: cancel all orders, flush the DB, release the lease. Attached: stop mirroring.

        `handover`: the lease row keeps this engine's final state marked for hand-over (a page
        kernel shutting down: a reload), so the next page may take over in the same mode
        within `HANDOVER_SEC` (`handover_pending`)."""
        if not self.running:
            return
        self._handover = handover
        assert self._task is not None  # running
        self._stop_evt.set()
        grace = max(2.0, self.settings.quote_refresh_sec * 2)
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done and self._shutdown_started is None:
            self._task.cancel()  # a cycle stuck in the venue: its finally runs the clean shutdown
            done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            # the clean shutdown (cancel-all, verify, flush, release) is under way: interrupting it
            # would leave orders resting; it is bounded by its HTTP timeouts, this only by a backstop
            started = self._shutdown_started or time.time()
            backstop = max(30.0, 3 * self.settings.lease_ttl_sec, 4 * self.settings.http_deadline_sec)
            await asyncio.wait({self._task}, timeout=max(0.0, started + backstop - time.time()))
            if not self._task.done():
                self.events.emit("ERROR", "engine_stop", f"clean shutdown still running after {backstop:g}s: "
                                 "interrupted")
                self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    async def kill(self) -> KillResult:
        """Cancel every order, verify the venue reports none open, record a `kill` event, stop.

        Attached: sends a `kill` command and waits for the owner's result."""
        if self.role == "attached" and self.running:
            return await self._remote_kill()
        self._kill_requested = True
        if self.running:
            await self.stop()
        if self._kill_result is None:
            self._kill_result = KillResult(time.time(), 0, 0, True, "engine was not running: nothing to cancel")
            self._publish(replace(self._state, kill=self._kill_result))
        return self._kill_result

    async def pause(self, cancel: bool = True, reason: str = "pause", by: str | None = None) -> int:
        """Hold no quotes (the cycle keeps running, market data and PnL stay live); cancel all now.

        The state carries why and who (`pause_note`), shown on every face."""
        if self.role == "attached":
            self._send_command("pause", {})
            return 0
        self._pause_note = f"{reason} by {by or self._owner_id} at {time.strftime('%H:%M:%S')}"
        self.set_params(quoting_paused=True, changed_by=by)
        n = 0
        rt = self._rt
        if cancel and rt is not None:
            async with self._trade_lock:
                n = await rt.exchange.cancel_all()
        kind = reason if reason in EventKind._value2member_map_ else EventKind.PAUSE  # a caller's own words
        self.events.emit("WARNING", kind, f"quoting paused ({reason}); {n} orders cancelled")
        return n

    async def resume(self, by: str | None = None) -> None:
        if self.role == "attached":
            self._send_command("resume", {})
            return
        self._pause_note = ""
        self.set_params(quoting_paused=False, changed_by=by)
        self.events.emit("INFO", "resume", "quoting resumed")

    # ---------------------------------------------------------------- the task
    async def run(self, max_seconds: float | None = None) -> None:
        """Decide the role, then trade (owner) or mirror (attached) until stopped."""
        if not self._via_start:  # run() awaited directly (headless) rather than via start()
            self._stop_evt, self._role_evt, self._trade_lock = asyncio.Event(), asyncio.Event(), asyncio.Lock()
        self._via_start = False
        if max_seconds is not None:
            asyncio.get_running_loop().call_later(max_seconds, self._stop_evt.set)
        self._kill_result = None
        self._crash_reported = False
        self._publish(replace(self._state, last_error=None, kill=None))
        await self._open_db()
        if self._attach_only:
            await self._run_attached(watch_only=True)
            return
        while not self._stop_evt.is_set():
            if await self._try_acquire():
                await self._run_owner()
                return
            if self._stop_evt.is_set():
                return
            takeover = await self._run_attached()
            if not takeover:
                return

    async def _try_acquire(self) -> bool:
        """Take the lease; while the DB cannot answer (locked, unreachable) keep asking, quoting
        nothing, until it answers or we are stopped. A live owner → False (attach, never quote)."""
        lease = self._opened().lease
        said = None
        while not self._stop_evt.is_set():
            try:
                return await asyncio.to_thread(lease.try_acquire)
            except Exception as exc:  # noqa: BLE001 - whatever the DB says, retry and never quote
                why = first_line(exc)
                if why != said:
                    said = why
                    self._publish(replace(self._state, last_error=f"cannot take the DB lease: {why}: retrying"))
                    self.events.emit("WARNING", "lease", f"cannot take the DB lease ({why}): not quoting, retrying")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_evt.wait(), timeout=1.0)
        return False

    async def _open_db(self) -> DbHandles:
        if self._dbh is None:
            if self._db_lock is None:
                self._db_lock = asyncio.Lock()
            async with self._db_lock:  # a face's lease check and a start may both open it: migrate once
                if self._dbh is None:
                    self._dbh = await asyncio.to_thread(open_db, self.settings, self._owner_id)
        return self._dbh

    def _opened(self) -> DbHandles:
        """The DB handles (opened by `run()` and the lease checks before anything uses them)."""
        if self._dbh is None:
            raise RuntimeError("the engine's DB is not open")
        return self._dbh

    @property
    def _db(self) -> sa.Engine | None:
        return self._dbh.db if self._dbh is not None else None

    @property
    def _lease(self) -> Lease | None:
        return self._dbh.lease if self._dbh is not None else None

    @property
    def _commands(self) -> CommandQueue | None:
        return self._dbh.commands if self._dbh is not None else None

    async def _run_owner(self) -> None:
        commands = self._opened().commands
        started = time.time()
        self._halts = {}
        self._shutdown_started = None
        self.fatal_halt = None
        self._handover = False
        await asyncio.to_thread(commands.expire_before, started)
        if self.persist_params:  # before the role shows: a face never sees an owner with stale parameters
            await self._restore_params()
        self._publish(replace(self._state, role="owner", running=True, started_ts=started, tick=0, halted=None,
                              handover_ts=None, params=params_to_json(self._params), paused=self._params.quoting_paused,
                              pause_note=self._pause_note if self._params.quoting_paused else ""))
        lease_task: asyncio.Task | None = None
        universe_task: asyncio.Task | None = None
        prune_task: asyncio.Task | None = None
        try:
            # the lease is renewed from the start: setup (universe, market data) may take long
            lease_task = spawn(self._lease_loop(), "pmm-lease", self._background, self._on_background_error)
            await self._setup()
            if self.mode is not Mode.PAPER and self._cancel_budget() < self.settings.http_timeout_sec:
                self.events.emit("WARNING", "lease", f"PMM_LEASE_TTL_SEC={self.settings.lease_ttl_sec:g} leaves "
                                 f"{self._cancel_budget():.1f}s for a cancel when the DB stops answering, less "
                                 f"than PMM_HTTP_TIMEOUT_SEC={self.settings.http_timeout_sec:g}: raise the TTL")
            self.events.emit("INFO", "engine_start", f"engine started: mode={self.mode.value} "
                             f"venue={self.settings.venue.value} markets={len(self._markets)}")
            self._role_evt.set()
            universe_task = spawn(self._universe_loop(), "pmm-universe", self._background,
                                  self._on_background_error)
            prune_task = spawn(self._prune_loop(), "pmm-prune", self._background, self._on_background_error)
            await self._quote_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            self._publish(replace(self._state, last_error=msg))
            self.events.emit("ERROR", "error", f"engine crashed: {msg}")
            self._crash_reported = True
            raise
        finally:
            if prune_task is not None and not prune_task.done():
                prune_task.cancel()
                with contextlib.suppress(BaseException):
                    await prune_task
            if universe_task is not None and not universe_task.done():
                universe_task.cancel()
                with contextlib.suppress(BaseException):
                    await universe_task
            if lease_task is not None and not lease_task.done():
                lease_task.cancel()
                with contextlib.suppress(BaseException):
                    await lease_task
            await self._shutdown()

    async def _setup(self) -> None:
        """Open the store and the venue side (`engine/runtime.py`), then this session's part:
        the venue clock, the strategies, the recording's start row."""
        from ..store import repo

        s = self.settings
        self._store = open_store(s, self._sink_override)

        def on_universe(markets: list[Market]) -> None:
            self._markets = markets
            self._record_universe(markets)
            if self._recorder is not None:
                self._recorder.universe(time.time(), markets)
            self._universe_ts = time.time()

        db = self._opened().db
        rt = self._rt = await build_runtime(
            s, self.mode, self._params, self._store, db=db, owner_id=self._owner_id,
            first_universe=self._first_universe, on_universe=on_universe, endpoints=self._endpoints_override,
            events=self.events)
        from . import restore  # issue 11: positions, PnL and fills continue from the DB

        await restore.resume(rt.session_rows, rt.cycle, rt.exchange, self.mode, self._markets, time.time(),
                             self.events.emit)
        # the venue samples reward scores once per minute of its own clock (a sandbox's runs faster)
        self._venue_speed = s.sandbox_speed if s.venue.value == "sandbox" else 1.0
        await self._sync_venue_clock()
        rt.cycle.default_strategy = self._default_strategy
        saved = await asyncio.to_thread(repo.load_overrides, db)
        for cid, (name, params) in {**saved, **self._strategy_overrides}.items():
            try:
                rt.cycle.set_strategy(cid, name, **params)
            except ValueError as exc:  # a row an older build wrote, a name no longer known
                self.events.emit("WARNING", "strategy", f"market override of {cid} ignored: {exc}", market=cid)
        if self._recorder is not None:  # what a replay needs to start where this run started
            self._recorded_params = self._params.model_dump(mode="json")
            self._recorder.engine(time.time(), "start", {
                "mode": self.mode.value, "params": _jsonable(self._params.model_dump()), "seed": s.sandbox_seed,
                "venue": s.venue.value, "quote_refresh_sec": s.quote_refresh_sec, "stale_sec": s.stale_sec,
                "pnl_sec": s.pnl_sec, "calibration": rt.calibration,
                "strategies": {cid: [name, _jsonable(params)] for cid, (name, params)
                               in {**saved, **self._strategy_overrides}.items() if name is None or isinstance(name, str)}})

    def _record_params(self, now: float) -> None:
        """Record the parameters that changed since the recording last saw them."""
        cur = self._params.model_dump(mode="json")
        diff = {k: v for k, v in cur.items() if self._recorded_params.get(k, v) != v}
        self._recorded_params = cur
        if diff and self._recorder is not None:
            self._recorder.engine(now, "params", diff)

    def _record_universe(self, markets: list[Market]) -> None:
        if self._store is not None:
            self._store.db.markets(markets, time.time())

    async def _refresh_universe(self) -> None:
        from ..venue.universe import diff_universe

        rank = self.settings.universe_rank
        gamma = self.runtime.gamma
        fresh = await (self._load_universe(gamma, self.settings.universe_size) if rank == "liquidity"
                       else self._load_universe(gamma, self.settings.universe_size, rank))
        if self._recorder is not None:  # every refresh (metadata may change without members changing)
            self._recorder.universe(time.time(), fresh)
        added, removed = diff_universe(self._markets, fresh)
        async with self._trade_lock:
            for m in removed:  # a market leaving the universe takes its quotes with it
                n = await self.runtime.exchange.cancel_market(m.condition_id)
                self.events.emit("INFO", "universe", f"left the universe: {m.question[:60]} ({n} orders cancelled)",
                                 market=m.condition_id)
                await self._settle_if_closed(m)
            self._markets = fresh  # the cycle hands the exchange every market it knows (late fills)
        await self.runtime.md.set_markets(fresh)
        if added or removed:
            self._record_universe(fresh)
            self.events.emit("INFO", "universe", f"universe refreshed: +{len(added)} -{len(removed)}")
        self._universe_ts = time.time()

    async def _prune_loop(self) -> None:
        """Retention (issue 12): every `PMM_PRUNE_SEC`, delete rows older than `PMM_RETAIN_DAYS`
        from book_snapshots, public_trades, events and pnl, in small batches in a worker thread
        (never on the loop; `trades` and `orders` are kept). `PMM_RETAIN_DAYS=0` keeps everything."""
        from ..store.retention import prune

        stop = self._stop_evt
        while not stop.is_set():
            # first wait, then prune: start-up (and short runs) never compete with the pruner
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.prune_sec)
            if stop.is_set():
                return
            days = self.settings.retain_days
            db = self._db
            if days > 0 and db is not None:
                try:
                    rep = await asyncio.to_thread(prune, db, days, stop=stop.is_set)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - retention must never stop trading; say so
                    self.events.emit("WARNING", "retention", f"prune failed: {type(exc).__name__}: {exc}")
                else:
                    if rep.total:
                        self.events.emit("INFO", "retention", f"retention: {rep.total} rows older than {days:g} days "
                                         f"pruned in {rep.seconds:.2f}s: " + ", ".join(
                                             f"{k} {v}" for k, v in rep.deleted.items() if v))

    async def _first_universe(self, gamma: Any) -> list[Market]:
        """The start-up universe. A venue that fails transiently (every Gamma call already retried
        within its deadline) delays the start, it does not end it: retried with backoff, said on
        every face, until it loads or the engine is stopped (nothing is quoted meanwhile)."""
        from ..venue.http import backoff_delay

        s = self.settings
        attempt = 0
        while True:
            try:
                markets = await self._load_universe(gamma, s.universe_size, s.universe_rank)
                if attempt:
                    self.events.emit("INFO", "universe", f"universe loaded after {attempt} failed attempt(s)")
                    self._publish(replace(self._state, last_error=None))
                return markets
            except Exception as exc:  # noqa: BLE001 - reported, retried; a stop ends the wait
                if self._stop_evt.is_set():
                    raise
                delay = max(1.0, backoff_delay(attempt, 1.0, 15.0))
                attempt += 1
                msg = f"universe load failed ({type(exc).__name__}: {exc}); retrying in {delay:.1f}s"
                self.events.emit("WARNING", "universe", msg)
                self._publish(replace(self._state, last_error=msg[:300]))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop_evt.wait(), timeout=delay)
                if self._stop_evt.is_set():
                    raise RuntimeError(f"stopped before the universe could be loaded: {exc}") from None

    async def _universe_loop(self) -> None:
        """The universe refresh, off the quote loop (issue 17 M3): a slow or failing Gamma never
        delays a cycle (every Gamma call also has a total deadline, PMM_HTTP_DEADLINE_SEC)."""
        while not self._stop_evt.is_set():
            wait = self.settings.universe_refresh_sec - (time.time() - self._universe_ts)
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop_evt.wait(), timeout=min(wait, 1.0))
                continue
            try:
                await self._refresh_universe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep quoting the old universe; say so
                self.events.emit("WARNING", "universe", f"universe refresh failed: {type(exc).__name__}: {exc}")
                self._universe_ts = time.time()

    async def _quote_loop(self) -> None:
        """One cycle every `quote_refresh_sec`. A cycle that raises, or during which venue calls
        failed for good, is an `events` row and a status, never a crash; the circuit breaker
        pauses quoting and cancels when such cycles persist (see `engine/circuit.py`)."""
        loop = asyncio.get_running_loop()
        self._circuit = Circuit(self.settings.circuit_errors, self.settings.circuit_probe_sec)
        await self._first_books(self.settings.quote_refresh_sec)
        while not self._stop_evt.is_set():
            t0 = loop.time()
            try:
                await self._apply_commands()
                if self._stop_evt.is_set():
                    break
                await self._check_store()
                if self._stop_evt.is_set():
                    break
                if self._circuit.is_open:
                    await self._circuit_probe()
                else:
                    await self._after_venue_minute()
                    t_cycle = time.monotonic()
                    report = await self._one_cycle()  # its breaches are already events (risk emits them)
                    self._cycle_wall = time.monotonic() - t_cycle
                    if getattr(report, "kill_requested", False):
                        self.events.emit("ERROR", "risk_kill", "risk limits requested a kill")
                        self._kill_requested = True
                        self._stop_evt.set()
                        self._publish_cycle()
                        break
                self._publish_cycle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing cycle is an event, never a crash
                await self._cycle_failed(f"{type(exc).__name__}: {exc}")
            delay = self.settings.quote_refresh_sec - (loop.time() - t0)
            # wake just after the venue's reward-sampling minute, so the estimate sees the book it samples
            econ = self.runtime.cycle.econ
            now = time.time()
            to_boundary = econ.clock.next_boundary_wall(now, econ.sample_sec) - now + 0.02
            if to_boundary < delay:
                delay = to_boundary
            if econ.sample_count != self._clock_synced_at:  # re-read the venue's clock after each sample
                self._clock_synced_at = econ.sample_count
                await self._sync_venue_clock()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_evt.wait(), timeout=max(0.0, delay))

    async def _after_venue_minute(self) -> None:
        """Live: no requote straddles the venue's reward sample (issue 13): while the market stream has
        passed a venue minute it has not sampled yet, or the venue's time is within a guard of the
        next one (1 venue s, or at the sandbox's speed twice the last cycle's wall time with its
        requote's round trip, at least 0.25 s; at most 20 venue s), wait (at most that guard in
        wall time plus 0.5 s; a stop ends it). The venue's time is the stream's timestamps, or the venue clock when it is
        further (frames late on a loaded machine)."""
        assert self._stop_evt is not None
        stream = self.runtime.md.stream
        if self.mode is not Mode.LIVE or not self.runtime.cycle.econ.stream_sampling:
            return  # paper and dry-run orders are not in the venue's sample
        econ = self.runtime.cycle.econ
        guard_ms = int(1000 * min(20.0, max(1.0, self._venue_speed * max(0.25, 2 * self._cycle_wall))))
        end = time.monotonic() + guard_ms / 1000 / self._venue_speed + 0.5
        while (stream.venue_minute_pending(guard_ms, int(econ.clock.to_venue(time.time()) * 1000))
               and time.monotonic() < end and not self._stop_evt.is_set()):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_evt.wait(), timeout=0.005)

    async def _first_books(self, limit: float) -> None:
        """Before the first cycle, wait (at most `limit`) until every book of the universe is
        synced and fresh: a first cycle that finds none quotes nothing, and the next one comes a
        whole refresh later (issue 11, take-over speed: `bench/bench_takeover.py`). A stop ends it."""
        assert self._stop_evt is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        md = self.runtime.md
        tokens = [t for m in self._markets for t in m.token_ids]
        while loop.time() < end and not self._stop_evt.is_set():
            books = [md.books.get(t) for t in tokens]
            if all(b is not None and not md.is_stale(b) for b in books):
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_evt.wait(), timeout=0.02)

    async def _settle_if_closed(self, m: Market) -> None:
        """A market that left the universe while we hold its shares: when the venue says it is
        closed with a winner (`/markets/{cid}` `tokens[].winner`), settle it like `market_resolved`."""
        lg = self.runtime.cycle.pnl.ledgers.get(m.condition_id)
        if lg is None or (lg.yes == 0 and lg.no == 0) or m.condition_id in self.runtime.cycle.resolved:
            return
        try:
            info = await self._venue_rest().market(m.condition_id)
        except Exception as exc:  # noqa: BLE001 - retried at the next refresh? no: say so, keep the inventory
            self.events.emit("WARNING", "resolution", f"could not check whether {m.condition_id} closed: "
                             f"{type(exc).__name__}: {exc}", market=m.condition_id)
            return
        winners = info.winners
        if not info.closed or len(winners) != 1:
            return
        if await self.runtime.cycle.resolve_market(time.time(), m.condition_id, winners[0], self.runtime.exchange, "closed"):
            self.events.emit("INFO", "resolution", f"closed market settled from the venue: {m.condition_id}",
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
        """Markets the venue resolved (`market_resolved`): cancel, settle, drop from the universe."""
        pop = getattr(self.runtime.md, "pop_resolutions", None)
        if pop is None:
            return
        for ev in pop():
            cid = ev.market
            if await self.runtime.cycle.resolve_market(time.time(), cid, ev.winning_asset_id or None,
                                                       self.runtime.exchange, "market_resolved"):
                self.events.emit("INFO", "resolution", f"market resolved and settled: {cid}")
            before = len(self._markets)
            self._markets = [m for m in self._markets if m.condition_id != cid]
            if len(self._markets) != before:
                await self.runtime.md.set_markets(self._markets)

    def _venue_failures(self) -> int:
        fn = getattr(self.runtime.exchange, "venue_failures", None)
        return int(fn()) if fn is not None else 0

    async def _one_cycle(self) -> Any:
        """Run the quote cycle once; venue calls that failed for good during it fail the cycle."""
        before = self._venue_failures()
        async with self._trade_lock:
            await self._apply_resolutions()
            now, hold = time.time(), self._hold_reason()
            if self._recorder is not None:
                self._record_params(now)  # also catches `engine.params.alpha = 2` (a direct assignment)
                self._recorder.engine(now, "cycle", {"hold": hold} if hold else None)
            report = await self.runtime.cycle.run_once(now, self._markets, self.runtime.md.view, self.runtime.exchange, hold=hold)
        failed = self._venue_failures() - before
        if failed:
            await self._cycle_failed(f"{failed} venue call(s) failed after retries")
        else:
            self._circuit.record(time.time(), None)
            err = self._state.last_error
            if err and err.startswith("cycle failed"):  # the venue answers again: the status says so
                self._publish(replace(self._state, last_error=None))
        return report

    async def _cycle_failed(self, msg: str) -> None:
        """Record a failed cycle (event + status); open the circuit when failures persist."""
        self.cycle_errors += 1
        self.events.emit("WARNING", "cycle_error", f"quote cycle failed: {msg}")
        if self._circuit.record(time.time(), msg):
            self.events.emit("ERROR", "circuit_open", f"venue errors persist ({self._circuit.failures} failing cycles "
                             f"in a row): quoting paused, cancelling all orders; probing every "
                             f"{self._circuit.probe_sec:g}s")
            try:
                async with self._trade_lock:
                    n = await self.runtime.exchange.cancel_all()
                self.events.emit("WARNING", "circuit_open", f"circuit open: {n} orders cancelled")
            except Exception as exc:  # noqa: BLE001 - the probes cancel again until it works
                self.events.emit("ERROR", "circuit_open", f"circuit open: cancel-all failed ({type(exc).__name__}: "
                                 f"{exc}); retrying at every probe")
        with contextlib.suppress(Exception):
            self._publish(replace(self._state, last_error=f"cycle failed: {msg}"[:300],
                                  venue_health=self._venue_health()))

    async def _circuit_probe(self) -> None:
        """While the circuit is open: cancel all and check the venue; close the circuit when it works."""
        now = time.time()
        if not self._circuit.probe_due(now):
            return
        try:
            async with self._trade_lock:
                probe = getattr(self.runtime.exchange, "probe", None)
                if probe is not None:
                    await probe()
                else:
                    await self.runtime.exchange.cancel_all()
        except Exception as exc:  # noqa: BLE001 - a failed probe keeps the circuit open
            first = self._circuit.probes_failed == 0
            self._circuit.probe_result(time.time(), f"{type(exc).__name__}: {exc}")
            if first:
                self.events.emit("WARNING", "circuit_open", f"venue probe failed: {type(exc).__name__}: {exc}; "
                                 f"quoting stays paused")
            return
        down = now - (self._circuit.open_since or now)
        self._circuit.probe_result(time.time(), None)
        self.events.emit("INFO", "circuit_closed", f"venue recovered after {down:.0f}s: quoting resumes")
        err = self._state.last_error
        self._publish(replace(self._state, last_error=None if err and err.startswith("cycle failed") else err))

    def _publish_cycle(self) -> None:
        rows, totals = self.runtime.cycle.snapshot().to_display(self._markets)
        h = self.runtime.md.health()
        ws = self._writer.stats() if self._writer is not None else None
        self._publish(replace(
            self._state, running=True, tick=self._state.tick + 1, ts=time.time(), markets=rows,
            totals=totals,
            feed=FeedState(bool(h.connected), float(h.lag_sec), int(h.reconnects), int(h.stale_tokens)),
            writer_lag_sec=ws.lag_sec if ws is not None else None, writer=ws.line() if ws is not None else "",
            params=params_to_json(self._params), paused=self._params.quoting_paused,
            pause_note=self._pause_note if self._params.quoting_paused else "",
            mode=self.mode.value, venue_health=self._venue_health(), halted=self._hold_reason(),
        ))

    def _venue_health(self) -> str:
        """One phrase from the live exchange's health (paper has none)."""
        circuit = self._circuit.describe(time.time())
        health = getattr(self.runtime.exchange, "health", None)
        if health is None:
            return circuit
        h = health()
        us = getattr(h, "user_stream", None)
        parts = [f"user stream {'up' if us is not None and us.connected else 'down'}",
                 f"heartbeat {getattr(h, 'heartbeat', '?')}"]
        if getattr(h, "halted", None):
            parts.append(f"HALTED: {h.halted}")
        if circuit:
            parts.append(circuit)
        return ", ".join(parts)

    # ---------------------------------------------------------------- safety halts
    def _hold_reason(self) -> str | None:
        """Why quoting is halted (every active halt, one line), else None."""
        return "; ".join(f"{k}: {v}" for k, v in self._halts.items()) or None

    async def _halt(self, source: str, reason: str, *, fatal: bool = False) -> None:
        """Stop quoting and cancel every order now; say why on every face. `fatal` also ends the run."""
        first = source not in self._halts
        self._halts[source] = reason
        self._publish(replace(self._state, halted=self._hold_reason(), last_error=f"HALTED ({source}): {reason}"))
        if first:
            self.events.emit("ERROR", source, f"HALTED: {reason}: quoting stopped, cancelling all orders")
            n, note = await self._cancel_now(self._cancel_budget())
            self.events.emit("ERROR" if note else "WARNING", source,
                             f"HALTED ({source}): {n} orders cancelled{note}; quoting stays off until the cause clears")
        if fatal:
            self.fatal_halt = f"{source}: {reason}"
            self._stop_evt.set()

    def _clear_halt(self, source: str, message: str) -> None:
        if self._halts.pop(source, None) is None:
            return
        self._publish(replace(self._state, halted=self._hold_reason(), last_error=None if not self._halts else
                              self._state.last_error))
        self.events.emit("WARNING", source, f"{message}: quoting resumes" if not self._halts else message)

    def _cancel_budget(self) -> float:
        """Time the halt cancel may take: what remains of the lease after the halt threshold."""
        return max(1.0, self.settings.lease_ttl_sec * 2 / 3 - 0.5)

    async def _cancel_now(self, budget: float) -> tuple[int, str]:
        """cancel_all within `budget` seconds; waits for a running cycle (the trade lock) for half of it."""
        rt = self._rt
        if rt is None:
            return 0, ""
        got = False
        try:
            await asyncio.wait_for(self._trade_lock.acquire(), timeout=budget / 2)
            got = True
        except TimeoutError:
            pass  # a cycle is stuck at the venue: cancel anyway (the exchange serialises its own calls)
        try:
            return await asyncio.wait_for(rt.exchange.cancel_all(), timeout=budget / 2), ""
        except Exception as exc:  # noqa: BLE001 - reported; the shutdown path retries
            return 0, f" (cancel failed: {type(exc).__name__}: {exc}; the shutdown path retries)"
        finally:
            if got:
                self._trade_lock.release()

    async def _check_store(self) -> None:
        """Once per cycle: the DB file is still ours, and the writer is healthy (a risk input)."""
        gone = self._dbh.identity.check() if self._dbh is not None else None
        if gone is not None:
            await self._halt("db", f"{gone}: this engine cannot record or prove its lease; stopping", fatal=True)
            return
        writer = self._writer
        if writer is None or self._rt is None:
            return
        block = self._rt.cycle.risk.writer_block(time.time(), writer.stats())
        if block is not None:
            await self._halt("writer", block, fatal=writer.identity.lost is not None)
        elif "writer" in self._halts:
            self._clear_halt("writer", "DB writer healthy again")

    def _on_background_error(self, task: asyncio.Task, exc: BaseException) -> None:
        """A background task of the owner died: nothing it guarded is proven any more. Stop."""
        msg = f"background task {task.get_name()} failed: {type(exc).__name__}: {exc}"
        self._publish(replace(self._state, last_error=msg))
        self.events.emit("ERROR", "error", f"{msg}: stopping (orders are cancelled first)")
        self._stop_evt.set()

    async def _lease_loop(self) -> None:
        """Renew the lease (publishing state for attached faces) every `LeaseTimer.period`.

        Renewal runs in a worker thread and is never awaited past one period: a DB that hangs
        (locked, disk full, gone) cannot stall this loop. When no renewal has succeeded for
        `halt_after` (a third of the TTL) the engine halts — stops quoting and cancels — with two
        thirds of the TTL left, so the cancel is done before the lease can expire and another
        engine take over. A later successful renewal lifts the halt; a renewal answered "not
        yours" (another engine took it), a lost DB file, or a halt longer than
        `LEASE_GIVE_UP_TTLS` TTLs ends the run."""
        handles = self._opened()
        lease, ttl = handles.lease, self.settings.lease_ttl_sec
        timer = LeaseTimer(ttl, proven_at=lease.renewed_at or time.time())
        pending: asyncio.Future | None = None
        last_err: str | None = None
        halted_at = 0.0
        try:
            while True:
                if pending is None:
                    await asyncio.sleep(timer.period)
                    gone = handles.identity.check()
                    if gone is not None:
                        await self._halt("db", f"{gone}: the lease there proves nothing; stopping", fatal=True)
                        return
                    pending = asyncio.ensure_future(asyncio.to_thread(lease.renew, self._state.to_json()))
                done, _ = await asyncio.wait({pending}, timeout=timer.period)
                if pending in done:
                    fut, pending = pending, None
                    try:
                        ok = fut.result()
                    except Exception as exc:  # noqa: BLE001 - any renewal failure is reported and retried
                        why = first_line(exc)
                        if why != last_err:
                            self.events.emit("WARNING", "lease", f"lease renewal failed ({why}); retrying, "
                                             f"{timer.left():.1f}s of lease left")
                        last_err = why
                    else:
                        if not ok:
                            await self._halt("lease", "lease lost to another engine", fatal=True)
                            return
                        timer.proven(lease.renewed_at or 0.0)
                        last_err = None
                        # a renewal that waited behind a lock proves little: the next, quick one clears
                        if "lease" in self._halts and not timer.must_halt():
                            self._clear_halt("lease", f"lease renewed after {time.time() - halted_at:.1f}s halted")
                if timer.must_halt() and "lease" not in self._halts:
                    halted_at = time.time()
                    await self._halt("lease", f"cannot renew the DB lease for {timer.silent():.1f}s "
                                     f"({last_err or 'renewal not answered'}); it expires in {timer.left():.1f}s")
                if timer.silent() > LEASE_GIVE_UP_TTLS * ttl:
                    await self._halt("lease", f"no lease renewal for {timer.silent():.0f}s: giving up", fatal=True)
                    return
        finally:
            if pending is not None:  # the renewal's thread runs on: let it land before anything releases
                with contextlib.suppress(BaseException):
                    await asyncio.wait({pending}, timeout=ttl)

    async def _apply_commands(self) -> None:
        commands = self._opened().commands
        for cmd in await asyncio.to_thread(commands.pending):
            result = "ok"
            try:
                if cmd.kind == "set_params":
                    self.set_params(**cmd.payload, changed_by=cmd.issuer or "a command")
                    result = "ok: " + ", ".join(f"{k}={v}" for k, v in cmd.payload.items())
                elif cmd.kind == "set_strategy":
                    pl = cmd.payload
                    self.set_strategy(pl["market"], pl.get("strategy"), **(pl.get("params") or {}))
                    result = f"ok: {pl['market']} -> {pl.get('strategy') or 'default'}"
                elif cmd.kind == "pause":
                    await self.pause(cancel=True, reason="pause", by=cmd.issuer or "a command")
                elif cmd.kind == "resume":
                    await self.resume(by=cmd.issuer or "a command")
                elif cmd.kind == "kill":
                    # applied after shutdown, with the verified result (see _shutdown)
                    self._kill_requested = True
                    self._kill_command_id = cmd.id
                    self._stop_evt.set()
                    return
                else:
                    result = f"error: unknown command {cmd.kind}"
            except ValidationError as exc:
                result = "rejected: " + format_validation_error(exc)
            except Exception as exc:
                result = f"error: {type(exc).__name__}: {exc}"
            self.events.emit("INFO", "command", f"{cmd.kind} from {cmd.origin}: {result}")
            await asyncio.to_thread(commands.mark_applied, cmd.id, result)

    async def _shutdown(self) -> None:
        """Cancel all and verify, record, close everything, release the lease. Never raises.

        The lease stays renewed until it is released: a shutdown that takes longer than the TTL
        (a slow venue, a loaded machine) must neither let another engine take over while our
        cancels are still in flight nor show attached faces an owner that vanished without its
        final state."""
        self._shutdown_started = time.time()
        stopping = asyncio.Event()
        keeper = asyncio.ensure_future(self._keep_lease_while_stopping(stopping))
        try:
            await self._shutdown_steps(stopping, keeper)
        finally:
            stopping.set()
            if not keeper.done():
                keeper.cancel()
                with contextlib.suppress(BaseException):
                    await keeper

    async def _keep_lease_while_stopping(self, stopping: asyncio.Event) -> None:
        """Renew our lease every period until `stopping` is set; the last renewal is awaited, so
        none lands after the release. Only an engine that still holds the lease renews it."""
        lease = self._lease
        if lease is None or not lease.held:
            return
        period = max(0.5, self.settings.lease_ttl_sec / 3)
        while not stopping.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=period)
            if stopping.is_set():
                return
            try:
                if not await asyncio.to_thread(lease.renew, self._state.to_json()):
                    return  # another engine owns it now: nothing of ours to keep
            except Exception:  # noqa: BLE001 - a DB hiccup: the next period retries
                pass

    async def _shutdown_steps(self, stopping: asyncio.Event, keeper: asyncio.Future) -> None:
        rt = self._rt
        cancelled, open_after, err = (0, -1, None) if rt is None else await cancel_and_verify(rt.exchange)
        if self._kill_requested:
            kr = KillResult(time.time(), cancelled, max(open_after, 0) if err is None else open_after, True,
                            f"KILLED: {cancelled} orders cancelled, venue reports {open_after} open"
                            + (f" (error: {err})" if err else ""))
            self._kill_result = kr
            self.events.emit("ERROR" if not kr.ok else "WARNING", "kill", kr.message)
        venue_open = "venue not checked (no exchange)" if rt is None and err is None else (
            f"venue open count unknown ({err})" if open_after < 0 else f"{open_after} open")
        self.events.emit("INFO", "engine_stop", f"engine stopped: {cancelled} orders cancelled, {venue_open}")
        ended = "killed" if self._kill_requested else "stopped"
        rows = [replace(m, yes_bid=None, yes_ask=None, no_bid=None, no_ask=None, status=ended)
                for m in self._state.markets]  # no quotes rest any more: the table must not show any
        self._publish(replace(self._state, running=False, kill=self._kill_result, markets=rows, ts=time.time(),
                              totals=replace(self._state.totals, open_orders=max(open_after, 0))))
        if rt is not None:
            await rt.aclose()  # exchange, market data, Gamma, endpoints (the exit stack)
            with contextlib.suppress(Exception):
                rt.cycle.calibrator.persist(time.time())
        store, self._store = self._store, None  # nothing more is recorded by this session
        if store is not None:
            if store.recorder is not None:
                store.recorder.engine(time.time(), "stop")
            spill = await store.aclose()
            if spill:
                self.events.emit("ERROR", "writer", f"rows the DB did not take were saved to {spill}")
        cmd_id = self._kill_command_id
        if cmd_id is not None and self._commands is not None and self._kill_result is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._commands.mark_applied, cmd_id, json.dumps(asdict(self._kill_result)))
            self._kill_command_id = None
        stopping.set()
        with contextlib.suppress(BaseException):
            await keeper  # an in-flight renewal finishes before the release, never after
        if self._lease is not None:
            with contextlib.suppress(Exception):
                final = self._state.to_json() if self._kill_result is not None else None
                if final is None and self._handover:
                    final = replace(self._state, handover_ts=time.time()).to_json()
                await asyncio.to_thread(self._lease.release, final)
        self._rt = None

    # ---------------------------------------------------------------- attached role
    def _attached_session(self) -> AttachedSession:
        """The attached role's mirror and command sender (`engine/attached.py`)."""
        if self._dbh is None:
            raise RuntimeError("not attached to an engine")
        return AttachedSession(self.settings, self._dbh.lease, self._dbh.commands, self._owner_id, publish=self._publish,
                               state=lambda: self._state, emit=self.events.emit, tasks=self._sending)

    async def _run_attached(self, watch_only: bool = False) -> bool:
        """Mirror the owner until stopped (see `AttachedSession.mirror`); True: take the lease over."""
        return await self._attached_session().mirror(self._stop_evt, self._role_evt, watch_only=watch_only,
                                                     auto_takeover=self.auto_takeover)

    def _send_command(self, kind: str, payload: dict[str, Any]) -> None:
        self._attached_session().send(kind, payload)

    async def _remote_kill(self) -> KillResult:
        kr, confirmed = await self._attached_session().kill()
        if confirmed:
            self._kill_result = kr
        return kr

    # ---------------------------------------------------------------- plumbing
    def _publish(self, state: EngineState) -> None:
        self._state = state
        for cb in list(self._state_listeners):
            try:
                cb(state)
            except Exception:  # a broken face must not break the engine
                pass

    def _record_event(self, ev: Event) -> None:
        """The one persisting subscriber: one `events` row per event (the owner's only)."""
        if self._store is not None and self.role == "owner":
            self._store.db.event(ev)

    def _on_done(self, task: asyncio.Task) -> None:
        """Surface a crash: never silent, even when nobody awaits the task."""
        if task.cancelled():
            self._publish(replace(self._state, running=False))
            return
        exc = task.exception()
        if exc is not None:
            msg = f"{type(exc).__name__}: {exc}"
            self._publish(replace(self._state, running=False, last_error=msg))
            if not self._crash_reported:
                self.events.emit("ERROR", "error", f"engine crashed: {msg}")
        self._role_evt.set()


def wallet_address(settings: Settings) -> str | None:
    """The address orders are placed for (funder if set, else the key's address); never the key."""
    if settings.funder:
        return settings.funder
    if not settings.has_private_key:
        return None
    from eth_account import Account

    assert settings.private_key is not None
    return Account.from_key(settings.private_key.get_secret_value()).address


def venue_description(settings: Settings) -> str:
    return "embedded sandbox (loopback)" if settings.venue is Venue.SANDBOX else settings.clob_url
