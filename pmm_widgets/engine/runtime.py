"""Wiring: what an owning engine opens before it can quote, as typed values.

Why separate from `Engine`: the engine's job is the session (quote loop, lease, commands, halts,
shutdown); which endpoints, writer, market data, exchange and cycle it runs with is wiring. Here
it is built in one place, in the order the safety rules need, and handed over as a `Runtime`
whose fields are all set (no Optional, no `Any`, no asserts to reach them):

- `open_store` — the row sink (the batched writer on `PMM_DB_URL`, or a test's sink), the typed
  `DbRecorder` over it that every producer writes through, and the recording (`PMM_RECORD=on`). Opened first and closed last by the engine: the shutdown's own
  events and the calibrator's state are written through it.
- `build_runtime` — endpoints (an embedded sandbox for `PMM_VENUE=sandbox`), Gamma, the start-up
  universe, market data, the exchange (paper or live/dry-run), the issue-11 restore hook (rows
  read before the exchange's reconcile; the engine installs them once it holds the runtime) and
  the `QuoteCycle`.
  All or nothing: when a step fails after the exchange exists, its orders are cancelled (the same
  `cancel_and_verify` the shutdown uses) and everything opened so far is closed before the error
  propagates. Every resource is registered on `Runtime.closing` (an `AsyncExitStack`), so
  `Runtime.aclose()` closes exchange, market data, Gamma and endpoints, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import Params, Settings
from ..domain import Market, Mode
from ..events import EventBus
from ..execution.exchange import CancelProgress, Exchange
from ..store.recorder import DbRecorder
from ..store.sink import Sink
from ..tasks import together

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ..store.db import DbIdentity
    from ..store.recording import Recorder
    from ..store.writer import BatchWriter
    from ..venue.endpoints import Endpoints
    from ..venue.gamma import GammaClient
    from ..venue.market_data import MarketData
    from .commands import CommandQueue
    from .cycle import QuoteCycle
    from .lease import Lease
    from .restore import SessionRows


@dataclass(frozen=True, slots=True)
class DbHandles:
    """The DB as every role needs it: the SQLAlchemy engine, the lease row, the commands queue
    and the file identity (a deleted or replaced SQLite file is a halt)."""

    db: sa.Engine
    lease: Lease
    commands: CommandQueue
    identity: DbIdentity


def warm_imports(settings: Settings, mode: Mode, sandbox: bool = True) -> None:
    """Import, in the worker thread that calls it, the modules the owner's set-up imports on the
    event loop (`build_runtime`, `OwnerSession._setup`): the first import of each ran there and
    held the loop (a notebook's widgets, an attached face) for 0.3-0.7 s at every engine start
    (the embedded sandbox's signature checks 0.24 s, pandas through `store.repo` 0.13 s, aiohttp
    0.09 s, measured). A thread's import gives the loop the GIL every switch interval. A module
    that fails to import here fails again, and is reported, where the set-up imports it.

    The venue clients' TLS contexts are built here too (`venue.tls`, 20-50 ms of CPU each), in
    the same thread hop: `build_runtime`'s `tls.warm()` then has nothing left to do (it was a
    second hop to a worker thread at every start). A context that fails to build here is built,
    and its error reported, there."""
    import importlib

    from ..config import Venue
    from ..venue import tls

    names = ["pmm_widgets.store.repo", "pmm_widgets.store.recording", "pmm_widgets.engine.restore",
             "pmm_widgets.engine.cycle", "pmm_widgets.venue.market_data", "pmm_widgets.venue.universe",
             "pmm_widgets.venue.endpoints", "pmm_widgets.execution.paper" if mode is Mode.PAPER else
             "pmm_widgets.execution.live"]
    if sandbox and settings.venue is Venue.SANDBOX:
        names += ["pmm_widgets.sandbox.server", "pmm_widgets.sandbox.trading"]
    for name in names:
        with contextlib.suppress(Exception):  # (said where the set-up imports it)
            importlib.import_module(name)
    with contextlib.suppress(Exception):  # (said by `tls.warm` in `build_runtime`)
        tls.build_all()


def open_db(settings: Settings, owner_id: str) -> DbHandles:
    """Migrate (Alembic, idempotent) and open; blocking: call it in a worker thread."""
    from ..store.db import DbIdentity, make_engine
    from ..store.migrate import upgrade
    from .commands import CommandQueue, default_sender
    from .lease import Lease

    s = settings
    upgrade(s.db_url)
    db = make_engine(s.db_url)
    # a command lives as long as an attached face waits for its result (see AttachedSession.kill)
    commands = CommandQueue(db, owner_id, sender=default_sender("engine"),
                            max_age_sec=max(60.0, 4 * s.quote_refresh_sec + 2 * s.lease_ttl_sec))
    return DbHandles(db, Lease(db, s.lease_ttl_sec, owner=owner_id), commands, DbIdentity(s.db_url))


@dataclass(frozen=True, slots=True)
class Store:
    """Where an owner's rows go."""

    sink: Sink
    db: DbRecorder  # the typed writer over `sink`: the only one producers use
    writer: BatchWriter | None  # None: a sink handed in (tests share a MemorySink or a writer)
    recorder: Recorder | None  # None: PMM_RECORD=off

    async def aclose(self) -> str | None:
        """Close the recorder and flush the writer (worker threads); the spill file, if any."""
        return (await self.close_within(None)).spill

    async def close_within(self, timeout: float | None) -> StoreClosed:
        """Close the recorder and flush the writer, side by side in worker threads, each within
        `timeout` seconds (None: until done; the engine's stop passes what is left of its budget):
        a write the DB has not answered by then is left to the writer's worker, its rows (marked
        in_flight) and everything queued behind it spilled at once (`BatchWriter.close`); a
        recording still writing is left to its thread (`Recorder.close`). Never raises."""

        async def recorder() -> None:
            if self.recorder is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.recorder.close, timeout)

        async def writer() -> int:
            if self.writer is None:
                return 0
            try:
                return await asyncio.to_thread(self.writer.close, timeout)
            except Exception:  # noqa: BLE001 - a stop never raises (the writer logs what it could not save)
                return 0

        _, unanswered = await asyncio.gather(recorder(), writer())
        spill = self.writer.spill_path if self.writer is not None else None
        return StoreClosed(spill, unanswered)


@dataclass(frozen=True, slots=True)
class StoreClosed:
    """What `Store.close_within` left: where the rows the DB did not take were saved (None:
    nowhere: all written, or the spill failed), and the rows of a write the DB had not answered
    when the time was up (0: none; in the spill file too, marked in_flight, when there is one:
    the DB may still commit them; the writer's worker logs which it was)."""

    spill: str | None
    unanswered: int = 0


def open_store(settings: Settings, sink: Sink | None = None) -> Store:
    from ..store.recording import RestoreRowsTee, recorder_from_settings

    s = settings
    writer = None
    if sink is None:
        from ..store.writer import BatchWriter

        writer = BatchWriter(s.db_url, flush_sec=s.writer_flush_sec, max_pending=s.writer_max_pending,
                             max_lag_sec=s.writer_max_lag_sec)
        writer.start()
        sink = writer
    recorder = recorder_from_settings(s)
    if recorder is not None:
        recorder.start()
        sink = RestoreRowsTee(sink, recorder)  # a replay from inside a session continues from its rows
    return Store(sink, DbRecorder(sink), writer, recorder)


@dataclass(slots=True)
class Runtime:
    """An owner's open venue side: everything the quote loop uses, all set."""

    mode: Mode
    store: Store
    endpoints: Endpoints
    gamma: GammaClient
    md: MarketData
    exchange: Exchange
    cycle: QuoteCycle
    markets: list[Market]  # the start-up universe
    calibration: dict[str, dict[str, Any]]
    session_rows: SessionRows  # the last session's rows (issue 11), read before the exchange started
    closing: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def aclose(self) -> None:
        """Close exchange, market data, Gamma and endpoints (errors swallowed: a stop never raises)."""
        with contextlib.suppress(Exception):
            await self.closing.aclose()


# The stop's budget. A page kernel's stop must end within `KERNEL_STOP_SEC` (9 s), or Voilà
# SIGKILLs the kernel mid-way (no writer flush, no lease release). Of it, a cycle under way gets
# the stop's grace (`Engine.stop`), the rest of the shutdown after the verification (the
# exchange's close, bounded by `CLOSE_CANCEL_SEC`; market data; the writer's flush; the lease's
# release) gets `AFTER_VERIFY_SEC`, and the cancel and its verification the remainder (5 s): each
# venue call of it is otherwise bounded only by the HTTP timeout (10 s), and a venue slow on every
# call took the stop past the SIGKILL.
KERNEL_STOP_SEC = 9.0  # `ui.lifecycle.kernel_stop_timeout()` (a test keeps the two equal: the engine imports no face)
STOP_GRACE_SEC = 2.0  # what a stop lets a quote cycle under way take to end on its own (`Engine.stop`)
AFTER_VERIFY_SEC = 2.0
# The rest is bounded as a whole (`owner.StopSteps`), and may use what the verification left of
# its own: it ends `STOP_VERIFY_SEC + AFTER_VERIFY_SEC` after the shutdown began (at least
# `AFTER_VERIFY_SEC` after the verification), within `KERNEL_STOP_SEC` with the grace. A step
# still running at its deadline is cut and said, and the steps after it run. The last slices are
# kept for what matters most when a step before them hangs: the writer's flush (rows written, or
# spilled beside the DB file) and the lease's release (a lease left held makes the next engine
# wait for its expiry).
STOP_FLUSH_SLICE_SEC = 0.25
STOP_RELEASE_SLICE_SEC = 0.25
STOP_VERIFY_SEC = KERNEL_STOP_SEC - STOP_GRACE_SEC - AFTER_VERIFY_SEC  # cancel_and_verify's deadline
SETTLE_INFLIGHT_SEC = 4.0  # the stop's wait for posts in flight: within the verification's deadline


async def cancel_and_verify(exchange: Exchange, attempts: int = 3, pause: float = 0.2,
                            settle_sec: float = SETTLE_INFLIGHT_SEC,
                            deadline_sec: float | None = None) -> tuple[int, int, str | None]:
    """Cancel (`Exchange.cancel_settled`), then ask the venue's open count, until it reports
    nothing open: up to `attempts` times, `pause` seconds apart (none after the last: a stop
    waits for nothing). The cancel waits for the placements still posted and unanswered (a
    cycle the stop cancelled mid-post; `settle_sec` over all attempts): the venue may apply such
    a POST after the cancel-all, so what they placed is cancelled again.
    All of it ends within `deadline_sec` (None: `STOP_VERIFY_SEC`, the stop's budget): a call
    still out then is abandoned and the open count is unknown (no pause is begun that would end
    past it: the last attempt's result stands).
    Returns (orders cancelled over all attempts, an attempt's cancel that the deadline or an
    error cut included (`CancelProgress`), the open count the last attempt got (-1: it
    got none, or a post was still unanswered: orders may yet rest), the last attempt's error
    and/or the posts still unanswered, or the deadline that cut it (None: none of these)). What
    an earlier attempt met is not reported: a refusal the next attempt got past is not an error
    of the result."""
    budget = STOP_VERIFY_SEC if deadline_sec is None else deadline_sec
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    cancelled, open_after, err, unanswered = 0, -1, None, 0
    settle_end = loop.time() + settle_sec
    step = "cancel-all"
    # the cancel under way (None: none): what it cancelled counts also when an error or the
    # deadline ends it (they used to lose it: "0 orders cancelled" after the venue cancelled them)
    prog: CancelProgress | None = None
    scope = asyncio.timeout_at(deadline)
    try:
        async with scope:
            for n in range(attempts):
                if n:
                    if loop.time() + pause >= deadline:
                        break
                    await asyncio.sleep(pause)
                # this attempt's own: what an earlier one met (posts it left unanswered) is not
                # its note when this one is cut or fails before its cancel answers
                open_after, err, unanswered = -1, None, 0
                try:
                    step = "cancel-all"
                    prog = CancelProgress()
                    got, unanswered = await exchange.cancel_settled(max(0.0, min(settle_end, deadline) - loop.time()),
                                                                    prog)
                    prog = None
                    cancelled += got
                    step = "open count"
                    open_after = await exchange.count_venue_open_orders()
                except Exception as exc:
                    err = f"{type(exc).__name__}: {exc}"
                    if prog is not None:
                        cancelled, prog = cancelled + prog.cancelled, None
                if open_after == 0:
                    break
    except TimeoutError:
        if not scope.expired():
            raise
        open_after, err = -1, f"the venue's {step} not answered within the stop's {budget:g} s deadline"
        if prog is not None:
            cancelled += prog.cancelled
            if prog.awaiting == "posts":
                err = (f"{prog.unanswered} orders posted and not answered within the stop's {budget:g} s deadline: "
                       "they may still come to rest")
    if unanswered:
        said = f"{unanswered} orders posted and not answered after {settle_sec:g} s: they may still come to rest"
        open_after, err = -1, said if err is None else f"{err}; {said}"
    return cancelled, open_after, err


async def build_runtime(
    settings: Settings,
    mode: Mode,
    params: Params,
    store: Store,
    *,
    db: sa.Engine,
    owner_id: str,
    first_universe: Callable[[GammaClient], Awaitable[list[Market]]],
    on_universe: Callable[[list[Market]], None],
    endpoints: Endpoints | None = None,
    events: EventBus | None = None,
) -> Runtime:
    """Open the venue side for an owner (see the module docstring). `first_universe` loads the
    start-up universe (the engine retries it and says so); `on_universe` records it; `endpoints`
    given: a test's shared sandbox (not closed). `events`: the engine's bus, which the exchange
    and the cycle (risk, economics, strategies) emit on. The engine installs `session_rows` into the
    cycle (`restore.resume`) once it holds the runtime."""
    from ..store import repo
    from ..venue import tls
    from ..venue.gamma import GammaClient
    from ..venue.market_data import MarketData
    from . import restore  # issue 11: positions, PnL and fills continue from the DB
    from .cycle import QuoteCycle

    s = settings
    # the TLS contexts every client below shares (REST, order entry, wss connects), built in a
    # worker thread: on the loop each client built its own (20-50 ms of CPU, every task stalled).
    # An owner's set-up built them already, with its imports (`warm_imports`): then no thread hop
    await tls.warm()
    closing = contextlib.AsyncExitStack()
    exchange: Exchange | None = None
    try:
        if endpoints is None:
            from ..venue.endpoints import open_endpoints

            endpoints = await closing.enter_async_context(open_endpoints(s))
        gamma = GammaClient(endpoints.gamma_url, timeout=s.http_timeout_sec, deadline=s.http_deadline_sec,
                            retry_after_max=s.retry_after_max_sec)
        closing.push_async_callback(gamma.aclose)
        md = MarketData(endpoints.clob_url, endpoints.ws_url, store.db,
                        stale_sec=s.stale_sec, record_book_sec=s.record_book_sec, recorder=store.recorder)
        closing.push_async_callback(md.close)
        md.stream.apply_budget_sec = s.cycle_yield_ms / 1000  # large frames in slices (see MarketStream.hold)
        await md.start()
        tagged = store.db.with_owner(owner_id)  # every `orders` row names the engine that placed it
        if mode is Mode.PAPER:
            from ..execution.paper import paper_exchange

            # Paper orders live in the process that placed them. Rows still open belong to an engine
            # that died without its finally (a killed kernel); we hold the lease, so none is ours.
            store.db.close_stale_orders(Mode.PAPER.value, ("PENDING", "LIVE", "PARTIAL"),
                                        "engine restarted: paper orders die with their process", time.time())
            exchange = paper_exchange(s, params, tagged)
        else:
            from ..execution.live import LiveExchange

            # the market feed counts as a stream for the cancel-all-on-disconnect valve: quotes
            # priced off a book we no longer see are as dangerous as fills we no longer see
            exchange = LiveExchange(s, tagged, clob_url=endpoints.clob_url, ws_url=endpoints.ws_url,
                                    dry_run=mode is Mode.DRY_RUN, market_feed_ok=lambda: md.stream.connected(),
                                    events=events)
        closing.push_async_callback(exchange.close)
        md.add_listener(on_books=exchange.observe_books, on_trade=exchange.observe_trade)
        ex = exchange

        async def venue_side() -> SessionRows:
            rows = await restore.read_rows(db, mode)  # before the exchange's reconcile adds fills
            await ex.start()
            return rows

        async def market_side() -> list[Market]:
            markets = await first_universe(gamma)
            on_universe(markets)
            await md.set_markets(markets)
            return markets

        # take-over speed (issue 11, bench/bench_takeover.py): the exchange's start (live:
        # credentials, reconcile, user stream) needs no universe, and the universe and its books
        # need no exchange: side by side; the first failure cancels the other
        got = await together(venue_side(), market_side())
        session_rows: SessionRows = got[0]
        markets: list[Market] = got[1]
        exchange.set_markets(markets)
        calibration = await asyncio.to_thread(repo.load_calibration, db)
        cycle = QuoteCycle(params, store.db, mode, calibration=calibration, pnl_sec=s.pnl_sec, events=events,
                           incremental=s.cycle_incremental, yield_sec=s.cycle_yield_ms / 1000, exchange=exchange)
        closing.push_async_callback(cycle.aclose)  # (before the exchange closes: last in, first out)
        cycle.sample_on_venue_minutes(md.stream, md.view, exchange)  # reward samples at the venue's minutes
    except BaseException:
        if exchange is not None:  # whatever it may have placed or found goes first
            with contextlib.suppress(BaseException):
                await cancel_and_verify(exchange)
        with contextlib.suppress(BaseException):
            await closing.aclose()
        raise
    return Runtime(mode, store, endpoints, gamma, md, exchange, cycle, markets, calibration, session_rows, closing)
