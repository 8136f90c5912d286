"""What a mutation pass on engine/runner.py found untested, in process (fast): the status line,
the live confirmation (live never starts by accident), the run's role wait, deadline, signals and
exit codes over a scripted engine, `run_main`'s checks before anything starts, and the process
entry's late-signal guard (`as_process_entry`, `hold_exit_code`, `_ignore_late_signals`)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from eth_account import Account

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine import runner
from pmm_widgets.engine.owner import StartAborted
from pmm_widgets.engine.state import EngineState, FeedState, MarketRow, Totals
from pmm_widgets.errors import ExitCode
from pmm_widgets.events import EventBus, EventKind, Level

KEY = "0x" + "11" * 32  # a throwaway private key (never funded)
ADDR = Account.from_key(KEY).address


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, db_url="sqlite:///unused.db", **kw)


# ---------------------------------------------------------------- status_line
def test_status_line_counts_markets_quoted_on_any_side_and_says_each_part():
    rows = [MarketRow("a", 1, "qa"), MarketRow("b", 2, "qb", yes_bid=0.4), MarketRow("c", 3, "qc", yes_ask=0.6),
            MarketRow("d", 4, "qd", no_bid=0.3), MarketRow("e", 5, "qe", no_ask=0.7)]
    s = EngineState(mode="paper", tick=12, markets=rows, totals=Totals(pnl=-1.5, fills=4, fills_per_min=0.25,
                                                                        open_orders=7),
                    feed=FeedState(connected=True, lag_sec=1.25, stale_tokens=2), writer_lag_sec=0.34)
    assert runner.status_line(s) == ("[paper] tick 12 quoted 4/5 open 7 fills/min 0.25 fills 4 pnl -1.50 "
                                     "feed up lag 1.2s stale 2 db lag 0.3s")


def test_status_line_unknowns_down_feed_pause_halt_and_trouble_segments():
    s = EngineState(mode="live", tick=3, markets=[MarketRow("a", 1, "qa")], paused=True, halted="lease lost",
                    feed=FeedState(connected=False, lag_sec=None, stale_tokens=0), venue_health="user stream DOWN",
                    recording="recording FAILING (disk)")
    assert runner.status_line(s) == ("[live PAUSED HALTED] tick 3 quoted 0/1 open 0 fills/min 0.00 fills 0 pnl +0.00 "
                                     "feed DOWN lag n/a stale 0 db lag n/a | user stream DOWN "
                                     "| recording FAILING (disk) | HALTED: lease lost")
    # the writer's own phrase wins over the lag figure
    assert runner.status_line(EngineState(writer="db FAULT", writer_lag_sec=0.1)).endswith(" db FAULT")


# ---------------------------------------------------------------- confirm_live
@pytest.fixture
def no_input(monkeypatch):
    def refuse(prompt: str = "") -> str:
        raise AssertionError(f"asked for input: {prompt}")

    monkeypatch.setattr("builtins.input", refuse)


@pytest.mark.usefixtures("no_input")
def test_paper_proceeds_silently_without_credentials():
    out = io.StringIO()
    assert runner.confirm_live(settings(), Mode.PAPER, yes=False, out=out) is None
    assert out.getvalue() == ""


@pytest.mark.usefixtures("no_input")
@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRY_RUN])
def test_live_and_dry_run_need_credentials_even_with_yes(mode):
    out = io.StringIO()
    why = runner.confirm_live(settings(), mode, yes=True, out=out)
    assert why == f"{mode.value} mode needs credentials: set PMM_PRIVATE_KEY (see env.example)"
    assert out.getvalue() == ""


@pytest.mark.usefixtures("no_input")
def test_live_with_yes_says_venue_and_wallet_then_proceeds():
    out = Flushes()
    assert runner.confirm_live(settings(private_key=KEY), Mode.LIVE, yes=True, out=out) is None
    assert out.getvalue() == f"live: venue {runner.venue_description(settings())}, wallet {ADDR}\n"
    assert out.flushed == [out.getvalue()]  # shown before the run starts, even on a pipe
    assert KEY[2:] not in out.getvalue()


@pytest.mark.usefixtures("no_input")
def test_dry_run_needs_no_confirmation_and_l2_only_says_the_wallet_is_unknown(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: would refuse a live run
    out = io.StringIO()
    s = settings(api_key="k", api_secret="s", api_passphrase="p")
    assert runner.confirm_live(s, Mode.DRY_RUN, yes=False, out=out) is None
    assert out.getvalue().endswith(", wallet (L2 API key only; wallet address unknown)\n")
    assert out.getvalue().startswith("dry_run: venue ")


@pytest.mark.usefixtures("no_input")
def test_live_without_yes_off_a_terminal_is_refused(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    why = runner.confirm_live(settings(private_key=KEY), Mode.LIVE, yes=False, out=io.StringIO())
    assert why == "live trading needs --yes when stdin is not a terminal"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("typed,ok", [("yes", True), ("  yes \n", True), ("y", False), ("YES", False), ("", False),
                                      ("yes please", False)])
def test_live_on_a_terminal_needs_the_typed_word_yes(monkeypatch, typed, ok):
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or typed)
    out = io.StringIO()
    why = runner.confirm_live(settings(private_key=KEY, funder="0xF00"), Mode.LIVE, yes=False, out=out)
    assert asked == ["Type 'yes' to trade real money: "]
    assert "wallet 0xF00\n" in out.getvalue()  # the funder is the wallet traded
    assert why == (None if ok else "not confirmed")


# ---------------------------------------------------------------- the run over a scripted engine
class FakeEngine:
    """What `_run_engine` uses of an `Engine`, scripted: `body` is the run task's coroutine."""

    def __init__(self, role: str = "owner", body: Callable[[FakeEngine], Awaitable[None]] | None = None,
                 fatal_halt: str | None = None, cancel_on_stop: bool = False) -> None:
        self.settings = settings()
        self.events = EventBus()
        self.listeners: list[Callable[[EngineState], None]] = []
        self.role_value = role
        self.fatal_halt = fatal_halt
        self.body = body or FakeEngine.serve
        self.cancel_on_stop = cancel_on_stop
        self.stops = 0
        self.stopped_at: float | None = None
        self.wait_timeouts: list[float] = []
        self.task: asyncio.Task[None] | None = None
        self.role_wait_over = self.role_wait_over_at_stop = False

    async def serve(self) -> None:  # the default: the role is known at once, runs until stopped
        self.role_known.set()
        await self.stop_asked.wait()

    def add_state_listener(self, cb: Callable[[EngineState], None]) -> Callable[[], None]:
        self.listeners.append(cb)
        return lambda: None

    def publish(self, s: EngineState) -> None:
        for cb in self.listeners:
            cb(s)

    def start(self) -> asyncio.Task[None]:
        self.stop_asked = asyncio.Event()
        self.role_known = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self.body(self))
        return self.task

    async def wait_role(self, timeout: float = 30.0) -> str:
        assert self.task is not None
        self.wait_timeouts.append(timeout)
        waiter = asyncio.ensure_future(self.role_known.wait())
        try:
            await asyncio.wait({waiter, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            self.role_wait_over = True
        if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
            raise self.task.exception()  # type: ignore[misc]
        return self.role_value if self.role_known.is_set() else "idle"

    async def stop(self) -> None:
        assert self.task is not None
        self.stops += 1
        self.role_wait_over_at_stop = self.role_wait_over
        self.stopped_at = asyncio.get_running_loop().time()
        if self.cancel_on_stop:
            self.task.cancel()
        self.stop_asked.set()
        try:
            await self.task
        except BaseException:  # noqa: BLE001 - as Engine.stop: the task's end is read by the runner
            pass


class Flushes(io.StringIO):
    """An output stream that keeps what had been written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


BOUND = 5.0  # no scripted run here takes a second: a hang fails the test instead of the suite's timeout


async def run_engine(engine: FakeEngine, max_seconds: float | None = None, signal_after: float | None = None,
                     sig: int = signal.SIGTERM, out: io.StringIO | None = None) -> tuple[int, str]:
    """`_run_engine` with a simulated signal (what `on_signal` does) after `signal_after` seconds."""
    out = io.StringIO() if out is None else out
    stop = asyncio.Event()
    got: list[int] = []
    if signal_after is not None:
        asyncio.get_running_loop().call_later(signal_after, lambda: (got.append(sig), stop.set()))
    code = await asyncio.wait_for(runner._run_engine(engine, max_seconds, out, stop, got),  # type: ignore[arg-type]
                                  BOUND)
    return code, out.getvalue()


async def test_an_attached_start_stops_and_exits_lease_held(capsys):
    eng = FakeEngine(role="attached")
    code, out = await run_engine(eng)
    assert code == ExitCode.LEASE_HELD
    assert eng.stops == 1 and eng.task is not None and eng.task.done()
    assert capsys.readouterr().err == "another engine owns this DB (lease held): not starting a second one\n"


async def test_the_role_wait_is_the_runners_cap_or_the_time_left():
    eng = FakeEngine()
    await run_engine(eng, signal_after=0.05)
    assert eng.wait_timeouts == [runner.ROLE_WAIT_SEC] and runner.ROLE_WAIT_SEC == 120.0
    eng = FakeEngine()
    await run_engine(eng, max_seconds=5.0, signal_after=0.05)
    assert 4.0 < eng.wait_timeouts[0] <= 5.0
    eng = FakeEngine()
    await run_engine(eng, max_seconds=500.0, signal_after=0.05)
    assert eng.wait_timeouts == [runner.ROLE_WAIT_SEC]  # the cap when more time is left
    eng = FakeEngine()
    await run_engine(eng, max_seconds=0.0)
    assert eng.wait_timeouts == [0.0]


async def test_max_seconds_ends_an_owner_run_with_a_clean_stop_and_exit_0():
    eng = FakeEngine()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    code, _ = await run_engine(eng, max_seconds=0.3)
    assert code == ExitCode.OK
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no stray waiter left behind
    assert eng.stops == 1 and eng.stopped_at is not None and eng.stopped_at - t0 >= 0.29


async def test_without_max_seconds_only_a_signal_ends_the_run():
    eng = FakeEngine()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    code, _ = await run_engine(eng, signal_after=0.4, sig=signal.SIGTERM)
    assert code == ExitCode.OK and eng.stops == 1
    assert eng.stopped_at is not None and eng.stopped_at - t0 >= 0.39


@pytest.mark.parametrize("sig,expected", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.OK)])
async def test_a_signal_stops_the_run_with_its_code(sig, expected):
    eng = FakeEngine()
    code, _ = await run_engine(eng, max_seconds=30.0, signal_after=0.05, sig=sig)
    assert code == expected and eng.stops == 1


@pytest.mark.parametrize("sig,expected", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.OK)])
async def test_a_task_cancelled_by_the_stop_exits_with_the_signals_code(sig, expected):
    eng = FakeEngine(cancel_on_stop=True)
    code, _ = await run_engine(eng, signal_after=0.05, sig=sig)
    assert eng.task is not None and eng.task.cancelled()
    assert code == expected


async def test_a_run_that_ends_by_itself_is_not_stopped_again():
    async def short(e: FakeEngine) -> None:
        e.role_known.set()
        await asyncio.sleep(0.05)

    eng = FakeEngine(body=short)
    code, _ = await run_engine(eng, max_seconds=30.0)
    assert code == ExitCode.OK and eng.stops == 0


async def test_a_crash_is_exit_1_with_one_line(capsys):
    async def crash(e: FakeEngine) -> None:
        e.role_known.set()
        await asyncio.sleep(0.02)
        raise RuntimeError("boom")

    code, _ = await run_engine(FakeEngine(body=crash), max_seconds=30.0)
    err = capsys.readouterr().err
    assert err.startswith("engine crashed: ") and "boom" in err and err.count("\n") == 1


async def test_a_crash_while_the_role_is_awaited_is_exit_1():
    async def crash(e: FakeEngine) -> None:
        await asyncio.sleep(0.02)
        raise RuntimeError("boom before the role")

    eng = FakeEngine(body=crash)
    code, _ = await run_engine(eng)  # no deadline: it must not wait for a signal
    assert code == ExitCode.ERROR and eng.stops == 0


async def test_a_safety_halt_that_ended_the_run_is_exit_1(capsys):
    async def halted(e: FakeEngine) -> None:
        e.role_known.set()
        await asyncio.sleep(0.02)
        e.fatal_halt = "lease lost"

    code, _ = await run_engine(FakeEngine(body=halted), max_seconds=30.0)
    assert code == ExitCode.ERROR
    assert capsys.readouterr().err == "engine stopped (orders cancelled) after a safety halt: lease lost\n"


async def test_a_start_that_gives_up_is_exit_1_naming_max_seconds(capsys):
    async def aborted(e: FakeEngine) -> None:
        await asyncio.sleep(0.02)
        raise StartAborted("venue unreachable")

    code, _ = await run_engine(FakeEngine(body=aborted), max_seconds=7.5)
    assert code == ExitCode.ERROR
    err = capsys.readouterr().err
    assert err.startswith("not started within --max-seconds 7.5: ") and "venue unreachable" in err
    assert err.count("\n") == 1  # that one line, not also a crash
    code, _ = await run_engine(FakeEngine(body=aborted))
    assert code == ExitCode.ERROR
    assert capsys.readouterr().err.startswith("not started: ")


@pytest.mark.parametrize("sig,expected", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.OK)])
async def test_a_signal_during_the_role_wait_stops_the_start_at_once(capsys, sig, expected):
    async def waits_for_the_venue(e: FakeEngine) -> None:  # the role is never known
        await e.stop_asked.wait()
        raise StartAborted("still loading the universe")

    eng = FakeEngine(body=waits_for_the_venue)
    t0 = asyncio.get_running_loop().time()
    code, _ = await run_engine(eng, signal_after=0.05, sig=sig)
    assert code == expected and eng.stops == 1
    assert eng.role_wait_over_at_stop  # the cancelled role wait has ended before the stop begins
    assert asyncio.get_running_loop().time() - t0 < 5.0  # not the role's 120 s wait
    assert eng.wait_timeouts == [runner.ROLE_WAIT_SEC]
    err = capsys.readouterr().err
    assert err.startswith("stopped before the engine started: ") and "still loading" in err


async def test_one_status_line_per_owner_cycle_and_only_warnings_or_life_cycle_events():
    async def cycles(e: FakeEngine) -> None:
        e.role_known.set()
        for s in (EngineState(role="owner", running=True, tick=0),  # no cycle yet
                  EngineState(role="owner", running=True, tick=1), EngineState(role="owner", running=True, tick=1),
                  EngineState(role="owner", running=True, tick=2), EngineState(role="attached", running=True, tick=3),
                  EngineState(role="owner", running=False, tick=4)):
            e.publish(s)
        e.events.emit(Level.INFO, EventKind.ENGINE_START, "started")
        e.events.emit(Level.INFO, EventKind.PARAMS, "alpha=2")
        e.events.emit(Level.WARNING, EventKind.LEASE, "slow renew")
        e.events.emit(Level.INFO, EventKind.ENGINE_STOP, "stopped")

    stream = Flushes()
    code, out = await run_engine(FakeEngine(body=cycles), max_seconds=30.0, out=stream)
    assert code == ExitCode.OK
    lines = out.splitlines()
    for i in range(len(lines)):  # each line is flushed as it is printed (a pipe shows it at once)
        assert "".join(ln + "\n" for ln in lines[:i + 1]) in stream.flushed, lines[i]
    ticks = [ln for ln in lines if ln.startswith("[")]
    assert [ln.split(" tick ")[1].split(" ")[0] for ln in ticks] == ["1", "2"]
    assert [ln for ln in lines if not ln.startswith("[")] == [
        "INFO engine_start: started", "WARNING lease: slow renew", "INFO engine_stop: stopped"]


# ---------------------------------------------------------------- _run: real signals, handlers, the held code
@pytest.mark.parametrize("sig,expected", [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.OK)])
async def test_run_takes_a_real_signal_and_gives_the_handlers_back(monkeypatch, sig, expected):
    monkeypatch.setattr(runner, "_hold_on_exit", False)
    eng = FakeEngine()
    asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), sig)
    code = await asyncio.wait_for(runner._run(eng, None, io.StringIO()), BOUND)  # type: ignore[arg-type]
    assert code == expected and eng.stops == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("hold", [True, False])
async def test_run_holds_its_exit_code_only_in_a_process_entry(monkeypatch, hold):
    held: list[int] = []
    monkeypatch.setattr(runner, "_hold_on_exit", hold)
    monkeypatch.setattr(runner, "hold_exit_code", held.append)
    code = await runner._run(FakeEngine(role="attached"), None, io.StringIO())  # type: ignore[arg-type]
    assert code == ExitCode.LEASE_HELD
    assert held == ([ExitCode.LEASE_HELD] if hold else [])


async def test_run_holds_the_error_code_when_the_run_itself_fails(monkeypatch):
    held: list[int] = []
    monkeypatch.setattr(runner, "_hold_on_exit", True)
    monkeypatch.setattr(runner, "hold_exit_code", held.append)

    async def fails(*_a: Any) -> int:
        raise RuntimeError("runner bug")

    monkeypatch.setattr(runner, "_run_engine", fails)
    with pytest.raises(RuntimeError):
        await runner._run(FakeEngine(), None, io.StringIO())  # type: ignore[arg-type]
    assert held == [ExitCode.ERROR]


# ---------------------------------------------------------------- run_main
@pytest.fixture
def no_engine(monkeypatch):
    """run_main with the engine and its run replaced: what it would start, and with what."""
    made: list[tuple[Settings, Mode]] = []

    class Made:
        def __init__(self, s: Settings, mode: Mode) -> None:
            made.append((s, mode))

    async def run(engine: Any, max_seconds: float | None, out: Any) -> int:
        made_runs.append((max_seconds, out))
        return 42

    made_runs: list[tuple[float | None, Any]] = []
    monkeypatch.setattr(runner, "Engine", Made)
    monkeypatch.setattr(runner, "_run", run)
    return made, made_runs


@pytest.mark.usefixtures("no_input")
def test_run_main_records_unless_told_off_and_runs_with_the_current_stdout(no_engine, tmp_path, capsys):
    made, runs = no_engine
    s = settings(record_dir=str(tmp_path / "rec")).model_copy(update={"record": None})  # as `pmm run` gets it
    assert runner.run_main(s, "paper", max_seconds=3.0) == 42
    assert made[0][0].record == "on" and made[0][1] is Mode.PAPER
    assert runs == [(3.0, __import__("sys").stdout)]
    assert runner.run_main(s.model_copy(update={"record": "off"}), Mode.PAPER) == 42
    assert made[1][0].record == "off"


@pytest.mark.usefixtures("no_input")
def test_run_main_prints_the_live_wallet_on_the_current_stdout_or_the_given_stream(no_engine, capsys):
    made, runs = no_engine
    s = settings(private_key=KEY, record="off")
    assert runner.run_main(s, Mode.LIVE, yes=True) == 42
    assert f"wallet {ADDR}" in capsys.readouterr().out
    out = io.StringIO()
    assert runner.run_main(s, Mode.LIVE, yes=True, out=out) == 42
    assert f"wallet {ADDR}" in out.getvalue() and capsys.readouterr().out == ""
    assert runs[-1] == (None, out)


@pytest.mark.usefixtures("no_input")
def test_run_main_asks_for_the_confirmation_unless_told_yes(no_engine, monkeypatch, capsys):
    """`yes` defaults to False: a live run_main without it is refused off a terminal."""
    made, runs = no_engine
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert runner.run_main(settings(private_key=KEY, record="off"), Mode.LIVE) == ExitCode.CONFIG
    assert made == [] and runs == []
    assert capsys.readouterr().err == "live trading needs --yes when stdin is not a terminal\n"


@pytest.mark.usefixtures("no_input")
def test_run_main_refuses_live_before_anything_starts(no_engine, capsys):
    made, runs = no_engine
    assert runner.run_main(settings(record="off"), Mode.LIVE, yes=True) == ExitCode.CONFIG
    assert made == [] and runs == []
    assert capsys.readouterr().err == "live mode needs credentials: set PMM_PRIVATE_KEY (see env.example)\n"


@pytest.mark.usefixtures("no_input")
def test_run_main_bad_parameter_or_memory_db_is_one_line_exit_2(no_engine, capsys):
    made, _ = no_engine
    assert runner.run_main(settings(record="off").model_copy(update={"alpha": -1}), Mode.PAPER) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ALPHA" in err.upper()
    mem = Settings(_env_file=None, db_url="sqlite://", record="off")
    assert runner.run_main(mem, Mode.PAPER) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in memory" in err
    assert made == []


# ---------------------------------------------------------------- process entry: the late-signal guard
def test_as_process_entry_registers_the_late_signal_guard_once(monkeypatch):
    registered: list[Callable[[], None]] = []
    monkeypatch.setattr(runner, "_hold_on_exit", False)
    monkeypatch.setattr(runner.atexit, "register", registered.append)
    runner.as_process_entry()
    assert runner._hold_on_exit is True
    runner.as_process_entry()
    assert registered == [runner._ignore_late_signals]


class Exited(Exception):
    pass


def test_hold_exit_code_makes_a_late_signal_exit_with_the_decided_code(monkeypatch):
    installed: dict[int, Any] = {}
    monkeypatch.setattr(runner.signal, "signal", lambda sig, h: installed.__setitem__(sig, h))
    monkeypatch.setattr(runner, "_code_held", False)
    flushed: list[str] = []

    class Stream(io.StringIO):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def flush(self) -> None:
            flushed.append(self.name)

    monkeypatch.setattr(runner.sys, "stdout", Stream("out"))
    monkeypatch.setattr(runner.sys, "stderr", Stream("err"))

    def exit_(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(runner.os, "_exit", exit_)
    runner.hold_exit_code(ExitCode.LEASE_HELD)
    assert set(installed) == {signal.SIGINT, signal.SIGTERM} and runner._code_held is True
    for sig in (signal.SIGINT, signal.SIGTERM):
        flushed.clear()
        with pytest.raises(Exited) as e:
            installed[sig](sig, None)
        assert e.value.args == (3,) and type(e.value.args[0]) is int
        assert flushed == ["out", "err"]


def test_hold_exit_code_does_nothing_off_the_main_thread(monkeypatch):
    installed: list[int] = []
    monkeypatch.setattr(runner.signal, "signal", lambda sig, h: installed.append(sig))
    monkeypatch.setattr(runner, "_code_held", False)
    t = threading.Thread(target=runner.hold_exit_code, args=(0,))
    t.start()
    t.join()
    assert installed == [] and runner._code_held is False


@pytest.mark.parametrize("held", [True, False])
def test_ignore_late_signals_only_after_a_held_code(monkeypatch, held):
    installed: dict[int, Any] = {}
    monkeypatch.setattr(runner.signal, "signal", lambda sig, h: installed.__setitem__(sig, h))
    monkeypatch.setattr(runner, "_code_held", held)
    runner._ignore_late_signals()
    assert installed == ({signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_IGN} if held else {})


def test_a_process_holds_nothing_until_its_entry_point_says_so():
    # no test calls as_process_entry/hold_exit_code unpatched: these are the values at import
    assert runner._hold_on_exit is False and runner._code_held is False
