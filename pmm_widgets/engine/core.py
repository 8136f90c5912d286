"""The `Engine`: the one object every face (headless runner, widgets, notebooks) drives — a thin
facade that chooses the role of each run and keeps what outlives a run (settings, mode,
parameters and who changed them, strategy choices, the published state and its listeners, the
event bus, the DB handles).

Roles: the engine that takes the DB lease is the *owner* and trades: `engine/owner.py`
`OwnerSession` (quote loop, lease renewal, commands, safety halts, the shutdown that cancels every
order first), over the typed `Runtime` the wiring builds (`engine/runtime.py`). One that finds the
lease held is *attached*: `engine/attached.py` `AttachedSession` mirrors the owner's state from the
lease row and turns `params` assignments, pause/resume and `kill()` into rows of the `commands`
table. The sessions never ask which role they play; this facade dispatches.

Why it runs as a task on the *running* loop: inside a Jupyter/Voilà kernel the loop is already
running and cells must return, so `start()` schedules `run()` and returns at once; headless,
`asyncio.run` provides the loop. Nothing here blocks the loop: SQL runs through
`asyncio.to_thread`, rows go through the non-blocking `Sink`.

Whatever ends an owned run (stop, kill, crash, lost lease, SIGTERM) goes through the owner
session's one shutdown, which cancels every order and verifies with the venue first, so no path
leaves quotes behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..config import PARAM_FIELDS, Params, Settings, Venue, format_validation_error
from ..domain import Mode
from ..errors import PmmError, crash_event, crash_text
from ..events import Event, EventBus, EventKind, Level
from ..store.db import first_line
from ..store.sink import Sink
from ..tasks import spawn, to_thread_undone_on_cancel, wait_set
from .attached import AttachedSession, RemoteParams, kill_on_record
from .attached import jsonable as _jsonable
from .lease import new_owner_id
from .owner import LoadUniverse, OwnerSession, RunControl
from .runtime import STOP_GRACE_SEC, DbHandles, Runtime, Store, open_db
from .state import EngineState, KillResult, params_to_json

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..venue.endpoints import Endpoints

HANDOVER_SEC = 60.0  # a page opened this soon after the owning page's kernel stopped takes over
# what a pause's cancel waits for placements posted and not answered yet (`Exchange.cancel_settled`):
# nothing (the button returns at once; what they place is cancelled by the next cycle, paused)
PAUSE_SETTLE_SEC = 0.0
# (STOP_GRACE_SEC, from runtime: what a stop lets a quote cycle under way take to end on its own
# before it interrupts it; the shutdown, which cancels first, then runs at once: see `Engine.stop`)

__all__ = ["HANDOVER_SEC", "STOP_GRACE_SEC", "Engine", "EngineStateError", "RemoteParams", "venue_description", "wallet_address"]


class EngineStateError(PmmError, RuntimeError):
    """What the engine was asked cannot be done in its present state: switch mode while running,
    trade live without credentials, reach a runtime or DB it does not hold. (A RuntimeError, as
    these were before they joined the package's exception tree.)"""


class Engine:
    stop_grace_sec: float = STOP_GRACE_SEC  # (tests shorten it on an instance)

    def __init__(
        self,
        settings: Settings,
        mode: Mode = Mode.PAPER,
        *,
        sink: Sink | None = None,
        endpoints: Endpoints | None = None,
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
        self._automatic = False  # this run's start was nobody's explicit one (`start`)
        self._pause_note = ""
        self.events = EventBus()  # the one event flow: faces subscribe, `_record_event` persists
        self._params = settings.params()
        self._sink_override = sink
        self._endpoints_override = endpoints
        self._owner_id = new_owner_id()
        self._state = EngineState(mode=self.mode.value, owner=self._owner_id, venue=settings.venue.value,
                                  params=params_to_json(self._params))
        self._state_listeners: list[Callable[[EngineState], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._ctl = RunControl()  # one run's signals (stop, role known, trade lock, kill): fresh per run
        self._via_start = False
        self._kill_result: KillResult | None = None
        self._dbh: DbHandles | None = None  # open_db: DB, lease, commands, file identity
        self._db_lock: asyncio.Lock | None = None
        from ..venue.universe import load_universe

        self._load_universe: LoadUniverse = load_universe  # handed to each owner session
        self._owner: OwnerSession | None = None  # the owner role of the current (or last) run
        self._crash_reported = False
        self._sending: set[asyncio.Task[Any]] = set()  # parameter records and commands in flight
        self._strategy_overrides: dict[str, tuple[Any, dict[str, Any]]] = {}  # market → (strategy, params)
        self._default_strategy: Any = None  # a strategy object for every market ("*"), this process only
        self.events.subscribe(self._record_event)

    # ---------------------------------------------------------------- public API (all faces)
    @property
    def runtime(self) -> Runtime:
        """The owner's venue side (exchange, market data, cycle, store: `engine/runtime.py`) while
        it runs; EngineStateError otherwise (idle, attached, stopped)."""
        if self._owner is None:
            raise EngineStateError("the engine has no runtime: it is not running as the owner")
        return self._owner.runtime

    @property
    def owner(self) -> OwnerSession:
        """The owner session of the current (or last) run (`engine/owner.py`); EngineStateError when
        this engine never owned the DB."""
        if self._owner is None:
            raise EngineStateError("this engine has not owned the DB: no owner session")
        return self._owner

    @property
    def fatal_halt(self) -> str | None:
        """Why a safety halt ended the last owned run (lease lost, DB gone), else None."""
        return self._owner.fatal_halt if self._owner is not None else None

    @property
    def _store(self) -> Store | None:
        """The running owner's sink/writer/recorder, else None."""
        return self._owner.store if self._owner is not None else None

    @property
    def _rt(self) -> Runtime | None:
        return self._owner.runtime if self._owner is not None and self._owner.has_runtime else None

    @property
    def role(self) -> str:
        return self._state.role

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def task(self) -> asyncio.Task[None] | None:
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
            if self._owner is not None and self._store is not None:
                self._owner.record_params(time.time())
            self._publish(replace(self._state, **self._param_state()))
            if self.persist_params:
                self._persist_params({k: getattr(self._params, k) for k in changes}, changed_by or self._owner_id)

    def _param_state(self) -> dict[str, Any]:
        """The parameter fields of the published state: values, paused, and why (who paused)."""
        paused = self._params.quoting_paused
        return {"params": params_to_json(self._params), "paused": paused,
                "pause_note": self._pause_note if paused else ""}

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
              lambda _t, exc: self.events.emit(Level.ERROR, EventKind.PARAMS, f"could not record parameter change: {exc}"))

    async def _restore_params(self) -> None:
        """Owner start: newest recorded values, then the changes made while idle (recorded now).

        Each stored value is validated against all the others (`Params.update`), one at a time in
        passes until a pass applies none more: a value bounded by another (regime vols wide <=
        reduce <= halt, the trade-through rates, the before-end times) waits for it, so values that
        were consistent when recorded are restored whole, whatever their names' order. One that
        never validates (an older build's, or against an idle change) is said and skipped."""
        from .param_log import latest, record

        db = self._opened().db
        stored = await asyncio.to_thread(latest, db)
        left = {name: pv for name, pv in sorted(stored.items())
                if name not in self._unsaved_params and name in PARAM_FIELDS}
        why: dict[str, str] = {}
        applied: set[str] = set()
        progress = True
        while progress:
            progress = False
            for name in list(left):
                try:
                    self._params.update(**{name: left[name].value})
                except ValidationError as exc:
                    why[name] = format_validation_error(exc)
                    continue
                applied.add(name)
                del left[name]
                progress = True
        for name, pv in left.items():
            self.events.emit(Level.WARNING, EventKind.PARAMS, f"stored {name}={pv.value!r} not restored: {why[name]}")
        restored = [f"{name}={pv.value} (by {pv.changed_by} at {time.strftime('%H:%M:%S', time.localtime(pv.ts))})"
                    for name, pv in sorted(stored.items()) if name in applied]
        by_who: dict[str, dict[str, Any]] = {}
        for name, (value, by) in self._unsaved_params.items():
            by_who.setdefault(by, {})[name] = value
        for by, changes in by_who.items():
            await asyncio.to_thread(record, db, changes, by)
        self._unsaved_params.clear()
        if self._params.quoting_paused and not self._pause_note:
            self._pause_note = "paused before the restart (restored from the DB)"
        if restored:
            self.events.emit(Level.INFO, EventKind.PARAMS, "restored from the DB: " + ", ".join(restored))

    def set_strategy(self, market: str, strategy: Any = None, **params: Any) -> None:
        """Give one market (condition id; "*" for every market of the current universe) its own
        strategy: a built-in name (`spread`, `as`, `microprice`, `regime`, `rewards`), an object
        implementing `strategy.base.Strategy` (owner or idle engine only), or None for the default
        (`PMM_STRATEGY`); `params` are strategy parameters (`as_gamma=0.5`, `alpha=2`, ...)
        validated by the same rules as every parameter. Raises ValueError and changes nothing
        on a bad name or value; EngineStateError on "*" with a name or parameters before any
        universe is known (it would apply to no market). The next quote cycle cancels the market's orders before the new
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
        markets = self._owner.markets if self._owner is not None else []
        targets = [m.condition_id for m in markets] if market == "*" else [market]
        if not targets and (isinstance(strategy, str) or params):  # it would apply to no market, kept nowhere
            raise EngineStateError("no market is known yet (the engine has not run): set the default strategy "
                                   "(PMM_STRATEGY, params.strategy) or name one market; '*' with a name applies "
                                   "to the markets of the current universe")
        if market == "*" and not isinstance(strategy, str):  # an object (or None) also covers markets joining later
            self._default_strategy = strategy
            if self._rt is not None:
                self._rt.cycle.default_strategy = strategy
        for cid in targets:
            if self._rt is not None:
                self._rt.cycle.set_strategy(cid, strategy, **params)
            recorder = self._store.recorder if self._store is not None else None
            if recorder is not None and (strategy is None or isinstance(strategy, str)):
                recorder.engine(time.time(), "strategy", {"market": cid, "strategy": strategy,
                                                                "params": _jsonable(params)})
            if strategy is None and not params and self._store is not None:
                self._strategy_overrides.pop(cid, None)  # (the store keeps the reset: the NULL row below)
            else:  # idle, a reset is kept too: the next start applies it over the saved row, and writes it
                self._strategy_overrides[cid] = (strategy, dict(params))
            if self._store is not None and (strategy is None or isinstance(strategy, str)):
                self._store.db.market_override(cid, strategy, _jsonable(params), time.time())
        name = strategy if strategy is None or isinstance(strategy, str) else getattr(strategy, "name", "?")
        self.events.emit(Level.INFO, EventKind.STRATEGY, f"strategy of {market}: {name or 'default'}"
                         + (f" {_jsonable(params)}" if params else ""), market=None if market == "*" else market)

    def set_mode(self, mode: Mode | str) -> None:
        """Change the execution mode; only while not running. Live needs credentials."""
        mode = Mode(mode)
        if self.running:
            raise EngineStateError("stop the engine before switching mode")
        if mode is not Mode.PAPER and not (self.settings.has_private_key or self.settings.has_l2_creds):
            raise EngineStateError(f"{mode.value} mode needs credentials: set PMM_PRIVATE_KEY (and optionally the API key trio)")
        self.mode = mode
        self._publish(replace(self._state, mode=mode.value))

    def add_state_listener(self, cb: Callable[[EngineState], None]) -> Callable[[], None]:
        """cb(state) after every published snapshot (owner: each cycle; attached: each poll)."""
        self._state_listeners.append(cb)
        return lambda: self._state_listeners.remove(cb) if cb in self._state_listeners else None

    def start(self, attach_only: bool = False, *, automatic: bool = False) -> asyncio.Task[None]:
        """Schedule `run()` on the running loop and return the task (a no-op if already running).

        `attach_only`: mirror an engine that owns the DB, never take the lease (a page whose own
        engine stopped watches whoever runs now); ends at once when nobody owns it.
        `automatic`: nobody asked for this start (a demo page's on its first view, a hand-over):
        it does not run over a kill the DB records (`attached.kill_on_record`), it mirrors it
        (the page says the engine was killed, and waits for Start). An explicit start (Start,
        `pmm run`, `engine.start()`) clears such a kill, and says so in one WARNING line."""
        self._attach_only = attach_only
        self._automatic = automatic
        if self.running:
            assert self._task is not None
            return self._task
        loop = asyncio.get_running_loop()
        self._ctl = RunControl()
        self._via_start = True
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
        waiter = asyncio.ensure_future(self._ctl.role.wait())
        try:
            await asyncio.wait({waiter, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when the caller is cancelled (a signal during the start): no stray waiter
            waiter.cancel()
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        return self.role

    async def stop(self, handover: bool = False) -> None:
        """Owner: cancel all orders, flush the DB, release the lease. Attached: stop mirroring.

        `handover`: the lease row keeps this engine's final state marked for hand-over (a page
        kernel shutting down: a reload), so the next page may take over in the same mode
        within `HANDOVER_SEC` (`handover_pending`).

        The stop event ends the wait between two quote cycles at once; what a stop may wait for is
        a cycle under way. It gets `stop_grace_sec` (2 s) to end on its own, then it is
        interrupted and the shutdown (cancel all and verify first, within `runtime.STOP_VERIFY_SEC`:
        the stop's budget ends before a page kernel's SIGKILL) runs: the grace does not grow
        with `quote_refresh_sec` (it was two refreshes: at 5 s, a cycle whose placements the
        venue kept refusing held the cancel-all back 10 s, with Voilà's SIGKILL 12 s after a
        page kernel's shutdown request). A healthy cycle takes well under it (a first placement
        of ~100 orders 0.2-0.6 s, `bench/README.md`); one longer is retrying at the venue."""
        if not self.running:
            return
        self._ctl.handover = handover
        assert self._task is not None  # running
        self._ctl.stop.set()
        grace = self.stop_grace_sec
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done and self._shutdown_started() is None:
            self._task.cancel()  # a cycle stuck in the venue: its finally runs the clean shutdown
            done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            # the clean shutdown (cancel-all, verify, flush, release) is under way: interrupting it
            # would leave orders resting; it is bounded by the stop's budget (`runtime`: its
            # verification, then `owner.StopSteps`), this only by a backstop
            started = self._shutdown_started() or time.time()
            backstop = max(30.0, 3 * self.settings.lease_ttl_sec, 4 * self.settings.http_deadline_sec)
            await asyncio.wait({self._task}, timeout=max(0.0, started + backstop - time.time()))
            if not self._task.done():
                self.events.emit(Level.ERROR, EventKind.ENGINE_STOP, f"clean shutdown still running after {backstop:g}s: "
                                 "interrupted")
                self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    def _shutdown_started(self) -> float | None:
        """When this run's owner began its clean shutdown (None: not begun, or not an owner)."""
        return self._owner.shutdown_started if self._owner is not None else None

    async def kill(self) -> KillResult:
        """Cancel every order, verify the venue reports none open, record a `kill` event, stop.

        Attached: sends a `kill` command and waits for the owner's result."""
        if self.role == "attached" and self.running:
            return await self._remote_kill()
        self._ctl.kill_requested = True
        if self.running:
            await self.stop()
        if self._kill_result is None:
            self._kill_result = KillResult(time.time(), 0, 0, True, "engine was not running: nothing to cancel")
            self._publish(replace(self._state, kill=self._kill_result))
        return self._kill_result

    async def pause(self, cancel: bool = True, reason: str = "pause", by: str | None = None) -> int:
        """Hold no quotes (the cycle keeps running, market data and PnL stay live); cancel all now.

        The state carries why and who (`pause_note`), shown on every face. The pause is in force
        at once, and so is its cancel-all. A quote cycle under way is cut where it is
        (`OwnerSession.cut_cycle`): it posts nothing more, and the trade lock it held is free at
        once (the pause used to wait for it: a cycle retrying a placement at a slow venue held the
        pause button up to the HTTP deadline, its cancel-all reaching the venue only then). The
        cancel is the exchange's `cancel_settled` without a wait: posts still out make no new
        attempt, and what they place when their answer lands is cancelled by the next cycle,
        paused. Beside the circuit breaker's probe, which posts nothing, the cancel-all goes at
        once too, and the probe, when it succeeds, leaves quoting paused. A face's `pause`
        command is seen by the cycle's watch, which cuts it the same way (`_cycle_watch`)."""
        if self.role == "attached":
            self._send_command("pause", {})
            return 0
        self._pause_note = f"{reason} by {by or self._owner_id} at {time.strftime('%H:%M:%S')}"
        self.set_params(quoting_paused=True, changed_by=by)
        n = unanswered = 0
        rt = self._rt
        if cancel and rt is not None:
            owner = self._owner
            # (the totals' `cancels` are the exchange's own count)
            if owner is not None and owner.probing:  # (the exchange serialises its own calls)
                owner.record_cancel_all(time.time(), reason)
                n = await rt.exchange.cancel_all()
            else:
                if owner is not None:
                    owner.cut_cycle()
                async with self._ctl.trade_lock:
                    if self._owner is not None:  # (the pause itself is recorded by `set_params` above)
                        self._owner.record_cancel_all(time.time(), reason)
                    n, unanswered = await rt.exchange.cancel_settled(PAUSE_SETTLE_SEC)
        # a reason that is a kind ("pause button") is the event's kind; a caller's own words go in the message
        kind = EventKind(reason) if reason in EventKind._value2member_map_ else EventKind.PAUSE
        landing = f"; {unanswered} more posted, not answered yet: cancelled when they land" if unanswered else ""
        self.events.emit(Level.WARNING, kind, f"quoting paused ({reason}); {n} orders cancelled{landing}")
        return n

    async def resume(self, by: str | None = None) -> None:
        if self.role == "attached":
            self._send_command("resume", {})
            return
        self._pause_note = ""
        self.set_params(quoting_paused=False, changed_by=by)
        self.events.emit(Level.INFO, EventKind.RESUME, "quoting resumed")

    # ---------------------------------------------------------------- the task
    async def run(self, max_seconds: float | None = None) -> None:
        """Decide the role, then trade (owner) or mirror (attached) until stopped."""
        if not self._via_start:  # run() awaited directly (headless) rather than via start()
            self._ctl = RunControl(kill_requested=self._ctl.kill_requested)
            self._automatic = False
        self._via_start = False
        if max_seconds is not None:
            asyncio.get_running_loop().call_later(max_seconds, self._ctl.stop.set)
        self._owner = None  # this run's role decides anew
        self._kill_result = None
        self._crash_reported = False
        self._publish(replace(self._state, last_error=None, kill=None))
        await self._open_db()
        if self._attach_only:
            await self._run_attached(watch_only=True)
            return
        while not self._ctl.stop.is_set():
            if await self._try_acquire():
                await self._run_owner()
                return
            if self._ctl.stop.is_set():
                return
            takeover = await self._run_attached()
            if not takeover:
                return
            self._automatic = True  # a take-over (the lease freed) is nobody's explicit start

    async def _try_acquire(self) -> bool:
        """Take the lease; while the DB cannot answer (locked, unreachable) keep asking, quoting
        nothing, until it answers or we are stopped. A live owner → False (attach, never quote).

        A start that is nobody's explicit one (`start(automatic=True)`, a take-over): a kill on
        record → False too (the mirror then shows it); an explicit start that takes a killed
        engine's lease says what it clears."""
        automatic = self._automatic
        said = None
        while not self._ctl.stop.is_set():
            try:
                # a stop that cancels this run while the DB thread runs must not leave a lease it
                # took behind, held with nobody renewing it (other engines would wait out its TTL)
                taken, cleared = await to_thread_undone_on_cancel(lambda: self._acquire(automatic), self._give_back)
            except Exception as exc:  # noqa: BLE001 - whatever the DB says, retry and never quote
                why = first_line(exc)
                if why != said:
                    said = why
                    self._publish(replace(self._state, last_error=f"cannot take the DB lease: {why}: retrying"))
                    self.events.emit(Level.WARNING, EventKind.LEASE, f"cannot take the DB lease ({why}): not quoting, retrying")
            else:  # the DB answered: an error still on the status (this retry's, or the old owner's that
                # this face mirrored before it took over) is not this engine's
                if self._state.last_error is not None:
                    self._publish(replace(self._state, last_error=None))
                if cleared is not None:
                    self.events.emit(Level.WARNING, EventKind.ENGINE_START,
                                     f"the last engine on this DB was killed ({cleared}); this start clears it")
                return taken
            await wait_set(self._ctl.stop, 1.0)
        return False

    def _acquire(self, automatic: bool) -> tuple[bool, str | None]:
        """(taken, the kill on record it cleared), in a worker thread (`_try_acquire`)."""
        h = self._opened()
        lease, commands = h.lease, h.commands
        row = lease.read()
        free = row is None or row.expired()  # (its own killed row too: Kill, then Start on one page)
        killed = kill_on_record(row, commands) if free else None
        if automatic:
            if killed is not None:
                return False, None
            return lease.try_acquire(refuse=lambda r: kill_on_record(r, commands) is not None), None
        taken = lease.try_acquire()
        return taken, killed if taken else None

    def _give_back(self, result: tuple[bool, str | None]) -> None:
        """Release a lease a cancelled acquire took after all (in a thread)."""
        if result[0]:
            self._opened().lease.release()

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
            raise EngineStateError("the engine's DB is not open")
        return self._dbh

    @property
    def _db(self) -> sa.Engine | None:
        return self._dbh.db if self._dbh is not None else None

    async def _run_owner(self) -> None:
        """The owner role for this run (`engine/owner.py`); what it leaves (kill result, a fatal
        halt, a reported crash) stays readable here after it ended. Each run has fresh controls
        (`RunControl`), so a `stop(handover=True)` that landed since the lease was taken is kept."""
        # who, in what mode and on which venue are this engine's (a face that took the lease over
        # still shows the old owner's, mirrored)
        self._publish(replace(self._state, owner=self._owner_id, mode=self.mode.value, venue=self.settings.venue.value))
        session = self._owner = OwnerSession(
            self.settings, self.mode, self._params, self._opened(), self._owner_id, ctl=self._ctl, events=self.events,
            publish=self._publish, state=lambda: self._state, param_state=self._param_state, commands=self,
            load_universe=self._load_universe, overrides=self._strategy_overrides,
            default_strategy=lambda: self._default_strategy,
            restore_params=self._restore_params if self.persist_params else None,
            sink=self._sink_override, endpoints=self._endpoints_override)
        try:
            await session.run()
        finally:
            self._kill_result = session.kill_result
            self._crash_reported = session.crash_reported

    # ---------------------------------------------------------------- attached role
    def _attached_session(self) -> AttachedSession:
        """The attached role's mirror and command sender (`engine/attached.py`)."""
        if self._dbh is None:
            raise EngineStateError("not attached to an engine")
        return AttachedSession(self.settings, self._dbh.lease, self._dbh.commands, self._owner_id, publish=self._publish,
                               state=lambda: self._state, emit=self.events.emit, tasks=self._sending)

    async def _run_attached(self, watch_only: bool = False) -> bool:
        """Mirror the owner until stopped (see `AttachedSession.mirror`); True: take the lease over."""
        return await self._attached_session().mirror(self._ctl.stop, self._ctl.role, watch_only=watch_only,
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
        store = self._store
        if store is not None:
            store.db.event(ev)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        """Surface a crash: never silent, even when nobody awaits the task."""
        if task.cancelled():
            self._publish(replace(self._state, running=False))
            return
        exc = task.exception()
        if exc is not None:
            msg = crash_text(exc)
            self._publish(replace(self._state, running=False, last_error=msg))
            if not self._crash_reported:
                self.events.emit(Level.ERROR, EventKind.ERROR, crash_event(exc))
        self._ctl.role.set()


def wallet_address(settings: Settings) -> str | None:
    """The address orders are placed for (funder if set, else the key's address); never the key."""
    if settings.funder:
        return settings.funder
    if not settings.has_private_key:
        return None
    from eth_account import Account

    assert settings.private_key is not None
    address: str = Account.from_key(settings.private_key.get_secret_value()).address
    return address


def venue_description(settings: Settings) -> str:
    return "embedded sandbox (loopback)" if settings.venue is Venue.SANDBOX else settings.clob_url
