"""Headless face: run one engine under `asyncio.run` until SIGINT/SIGTERM (or `max_seconds`).

Why its own module: `pmm run …` and `python -m pmm_widgets.engine` share it, and it is the
unattended way to trade, so it is strict: live asks for a typed confirmation on a TTY (unless
`--yes`), refuses without credentials, says which venue and wallet it will trade (never a
secret), and on a signal cancels everything, flushes the DB and releases the lease before
exiting 0. It prints one status line per quote cycle.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import sys
import threading
from typing import TextIO

from ..config import ConfigError, Settings
from ..domain import Mode
from ..errors import ExitCode, ExpectedFailure
from ..events import EventKind, Level
from ..store.db import check_shared_db
from ..store.recording import check_record_dir
from .core import Engine, venue_description, wallet_address
from .owner import StartAborted
from .state import EngineState

ROLE_WAIT_SEC = 120.0  # the longest wait for the engine to know whether it owns the DB or is attached
SHOWN_INFO = frozenset({EventKind.ENGINE_START, EventKind.ENGINE_STOP, EventKind.ATTACHED})  # INFO lines printed


def status_line(s: EngineState) -> str:
    quoted = sum(1 for m in s.markets if m.yes_bid is not None or m.yes_ask is not None
                 or m.no_bid is not None or m.no_ask is not None)
    lag = "n/a" if s.feed.lag_sec is None else f"{s.feed.lag_sec:.1f}s"
    feed = ("up" if s.feed.connected else "DOWN") + f" lag {lag} stale {s.feed.stale_tokens}"
    db = s.writer or ("db lag n/a" if s.writer_lag_sec is None else f"db lag {s.writer_lag_sec:.1f}s")
    paused = (f" PAUSED ({s.pause_note})" if s.pause_note else " PAUSED") if s.paused else ""  # why and who
    halted = " HALTED" if s.halted else ""
    return (f"[{s.mode}{paused}{halted}] tick {s.tick} quoted {quoted}/{len(s.markets)} open {s.totals.open_orders} "
            f"fills/min {s.totals.fills_per_min:.2f} fills {s.totals.fills} pnl {s.totals.pnl:+.2f} "
            f"feed {feed} {db}" + (f" | {s.venue_health}" if s.venue_health else "")
            + (f" | {s.recording}" if s.recording else "")
            + (f" | HALTED: {s.halted}" if s.halted else ""))


def confirm_live(settings: Settings, mode: Mode, yes: bool, out: TextIO = sys.stdout) -> str | None:
    """None when trading may proceed, else the one-line reason to refuse."""
    if mode is Mode.PAPER:
        return None
    if not (settings.has_private_key or settings.has_l2_creds):
        return f"{mode.value} mode needs credentials: set PMM_PRIVATE_KEY (see env.example)"
    addr = wallet_address(settings) or "(L2 API key only; wallet address unknown)"
    print(f"{mode.value}: venue {venue_description(settings)}, wallet {addr}", file=out, flush=True)
    if mode is Mode.DRY_RUN or yes:
        return None
    if not sys.stdin.isatty():
        return "live trading needs --yes when stdin is not a terminal"
    answer = input("Type 'yes' to trade real money: ")
    return None if answer.strip() == "yes" else "not confirmed"


_hold_on_exit = False  # set by a process's own entry point (`pmm`, `python -m pmm_widgets.engine`)


def as_process_entry() -> None:
    """Called by a process's own entry point before it runs: once a run has decided its exit code,
    a late SIGTERM/SIGINT keeps it (`hold_exit_code`) from the moment the run's own signal handlers
    go, not only after the interpreter is back in the entry point (closing the loop and its threads
    can take seconds on a loaded machine). Never called in a host process (tests, notebooks)."""
    global _hold_on_exit
    if not _hold_on_exit:  # registered now, before anything the run registers: it runs after those
        atexit.register(_ignore_late_signals)
    _hold_on_exit = True


async def _run(engine: Engine, max_seconds: float | None, out: TextIO) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    got: list[int] = []

    def on_signal(sig: int) -> None:
        got.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    code: int = ExitCode.ERROR
    try:
        code = await _run_engine(engine, max_seconds, out, stop, got)
        return code
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if _hold_on_exit:  # the run is over (orders cancelled, lease released or never held)
            hold_exit_code(code)


async def _run_engine(engine: Engine, max_seconds: float | None, out: TextIO, stop: asyncio.Event,
                      got: list[int]) -> int:
    printed = {"tick": 0}

    def on_state(s: EngineState) -> None:  # one line per quote cycle
        if s.role == "owner" and s.running and s.tick != printed["tick"]:
            printed["tick"] = s.tick
            print(status_line(s), file=out, flush=True)

    engine.add_state_listener(on_state)
    engine.events.subscribe(lambda ev: print(f"{ev.level} {ev.kind}: {ev.message}", file=out, flush=True)
                            if ev.level is not Level.INFO or ev.kind in SHOWN_INFO else None)
    task = engine.start()
    loop = asyncio.get_running_loop()
    deadline = None if max_seconds is None else loop.time() + max_seconds  # from the start, set-up included

    def left(cap: float | None = None) -> float | None:
        rest = None if deadline is None else max(0.0, deadline - loop.time())
        return cap if rest is None else rest if cap is None else min(rest, cap)

    # a signal or `max_seconds` ends the run at any moment, the start-up included (a venue that
    # cannot be reached keeps the start waiting: Ctrl-C stops it at once, not after the role's wait)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        role_task = asyncio.ensure_future(engine.wait_role(timeout=left(ROLE_WAIT_SEC) or 0.0))
        await asyncio.wait({role_task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        role = "stopping"
        if not role_task.done():
            role_task.cancel()
            await asyncio.wait({role_task})  # its end, without taking a cancel of this task for its own
        elif role_task.exception() is None:
            role = role_task.result()
        else:
            role = "crashed"
        if role == "attached":  # headless never mirrors: one quoting engine per DB
            await engine.stop()
            print("another engine owns this DB (lease held): not starting a second one", file=sys.stderr, flush=True)
            return ExitCode.LEASE_HELD
        if not waiter.done():
            await asyncio.wait({task, waiter}, timeout=left(), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not task.done():
        await engine.stop()
    interrupted = ExitCode.INTERRUPTED if signal.SIGINT in got else ExitCode.OK  # Ctrl-C: 130 after the clean stop, like any CLI
    if task.cancelled():
        return interrupted
    exc = task.exception()
    from ..errors import describe

    if isinstance(exc, StartAborted):  # the start was still waiting for the venue: nothing was quoted
        if got:  # the user stopped it
            print(f"stopped before the engine started: {describe(exc)}", file=sys.stderr, flush=True)
            return interrupted
        within = f" within --max-seconds {max_seconds:g}" if max_seconds is not None else ""
        # the venue's failure when one came (its host), else the abort's own words (they name it)
        print(f"not started{within}: {describe(exc) if exc.__cause__ is not None else exc}", file=sys.stderr, flush=True)
        return ExitCode.ERROR
    if isinstance(exc, ExpectedFailure):  # e.g. the venue refused the wallet's signature: its one line
        print(describe(exc), file=sys.stderr, flush=True)
        return ExitCode.ERROR
    if exc is not None:
        print(f"engine crashed: {describe(exc, engine.settings.db_url)}", file=sys.stderr, flush=True)
        return ExitCode.ERROR
    if engine.fatal_halt:  # a safety halt ended the run (lease lost, DB gone): not a clean exit
        print(f"engine stopped (orders cancelled) after a safety halt: {engine.fatal_halt}", file=sys.stderr,
              flush=True)
        return ExitCode.ERROR
    return interrupted


def run_main(settings: Settings, mode: Mode, yes: bool = False, max_seconds: float | None = None,
             out: TextIO | None = None) -> int:
    """Entry of `pmm run …` and `python -m pmm_widgets.engine`. Exit 0 after a clean stop, 130
    after Ctrl-C (also a clean stop), 3 when another engine holds the DB lease, 2 for a bad
    setting (a recording directory it cannot write included: one line, before anything starts)."""
    out = sys.stdout if out is None else out  # the stream of now, not of import time
    if settings.record is None:  # a headless run records unless PMM_RECORD=off (`pmm run` and -m alike)
        settings = settings.model_copy(update={"record": "on"})
    try:
        mode = Mode(mode)
        settings.params()
        check_record_dir(settings)
        check_shared_db(settings)
        refusal = confirm_live(settings, mode, yes, out)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return ExitCode.CONFIG
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return ExitCode.CONFIG
    engine = Engine(settings, mode)
    return asyncio.run(_run(engine, max_seconds, out))


def hold_exit_code(code: int) -> None:
    """A process entry point that has decided its exit code (the run is over: orders cancelled,
    lease released or never held) keeps it: a SIGTERM/SIGINT that arrives while the interpreter
    winds down (threads joining, a second `pmm run` told to stop just as it found the lease held)
    exits with `code` instead of dying by the signal. Only for the process's own exit path."""
    if threading.current_thread() is not threading.main_thread():
        return

    def exiting(_sig: int, _frame: object) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(int(code))

    global _code_held
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, exiting)
    _code_held = True


_code_held = False  # `hold_exit_code` ran in this process


def _ignore_late_signals() -> None:
    """After `hold_exit_code`, at the end of the process's atexit callbacks (`as_process_entry`
    registers it before the run registers any: atexit runs the last registered first): the
    interpreter's finalization that follows puts SIG_DFL back for every signal with a Python
    handler (`exiting`), and on a large import graph it takes ≈ 0.1 s, long enough for a Ctrl-C to
    land there and kill the process by the signal (-2) after it had decided its code. It keeps
    SIG_IGN: from here a late signal is ignored and the code stands. The callbacks that run before
    this one (a child process joined, an executor shut down) can still be stopped by a signal (with
    the decided code); only the ones registered at import, before the entry point ran (logging's
    flush), run after it."""
    if _code_held:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
