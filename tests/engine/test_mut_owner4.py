"""The owner session's last survivors (mutation testing of engine/owner.py, part 4): the quote
loop's two pieces that end it on a cancel, each on its own (a cancel a library swallowed inside a
cycle; a cancel raised out of a cycle), and the restored-rows summary in the recording's start row.
`test_mut_owner2.py` and `test_mut_owner3.py` cover the rest (their fakes, `owner_fakes.py`, are reused)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from engine_helpers import open_orders_in_db, until
from owner_fakes import FakeCycle, Target, instant_waits, owner_session, record_waits, with_runtime

from pmm_widgets.engine import Engine
from pmm_widgets.engine import owner as owner_module
from pmm_widgets.store import schema

Cycle = Callable[[int], Awaitable[None]]


def _bare_loop(owner, cycle: Cycle) -> SimpleNamespace:
    """`owner._quote_loop` with every step but the cycle a no-op (books ready, commands and store
    fine, no venue minute to wait for, the venue's next sample an hour away). `cycle(n)` is the
    n-th cycle's body (from 1). Returned: `cycles` run so far, `failed` (each failed cycle's message)."""
    seen = SimpleNamespace(cycles=0, failed=[])

    async def nothing(*_: Any) -> None:
        return None

    async def one_cycle() -> Any:
        seen.cycles += 1
        await cycle(seen.cycles)
        return SimpleNamespace(kill_requested=False)

    async def cycle_failed(msg: str) -> None:
        seen.failed.append(msg)

    fake = FakeCycle({}, set())
    clock = SimpleNamespace(next_boundary_wall=lambda now, sample_sec: now + 3600.0)
    fake.econ = SimpleNamespace(clock=clock, sample_sec=60.0, sample_count=0)
    with_runtime(owner, fake, None)
    for name in ("_first_books", "_apply_commands", "_check_store", "_after_venue_minute", "_sync_venue_clock"):
        setattr(owner, name, nothing)
    owner._one_cycle, owner._cycle_failed, owner._publish_cycle = one_cycle, cycle_failed, lambda: None
    return seen


async def _swallow_a_cancel(entered: asyncio.Event) -> None:
    """A library call that returns normally although its caller was cancelled meanwhile (3.11's
    `asyncio.wait_for` when its inner task finished in that loop step): the task's `cancelling()`
    stays 1, but no CancelledError reaches the caller."""
    entered.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(30)


async def _cancelled_once_entered(task: asyncio.Task[Any], entered: asyncio.Event, timeout: float) -> bool:
    """Cancel `task` once a cycle has `entered`; True when it then ended cancelled within `timeout`."""
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=timeout)
    return done == {task} and task.cancelled()


async def _end(task: asyncio.Task[Any], stop: asyncio.Event) -> None:
    """A test's clean-up: a loop the test expected to have ended, ended all the same."""
    stop.set()
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


# ---------------------------------------------------------------- a cancel a cycle swallowed
async def test_a_cancel_a_cycle_swallowed_ends_the_loop_at_the_next_round_even_if_no_wait_raises_it(
        fast_settings, db, monkeypatch):
    """The waits return as they do on Python 3.12+ with a dropped cancel outstanding (at their
    timeout, no CancelledError: its `asyncio.timeout` counts the cancels it found on entry; only
    3.11's raises it there): the loop's own check of `cancelling()` ends it, at the top of the
    round after the cycle that swallowed the cancel, never quoting again."""
    waits = instant_waits(monkeypatch)
    owner = owner_session(fast_settings.model_copy(update={"quote_refresh_sec": 0.05, "gc_freeze": False}), db, Target())
    entered = asyncio.Event()

    async def cycle(n: int) -> None:
        if n == 2:
            await _swallow_a_cancel(entered)
        if n == 6:  # a loop that went on quoting: ended here, not cancelled
            owner._ctl.stop.set()

    seen = _bare_loop(owner, cycle)
    task = asyncio.create_task(owner._quote_loop())
    try:
        assert await _cancelled_once_entered(task, entered, timeout=2)
        assert seen.cycles == 2 and seen.failed == [] and len(waits) == 2  # no third round, nothing failed
    finally:
        await _end(task, owner._ctl.stop)


@pytest.mark.parametrize("how", ["stop", "risk kill"])
async def test_a_cancel_a_cycle_swallowed_with_a_stop_in_the_same_round_still_ends_the_loop_cancelled(
        fast_settings, db, monkeypatch, how):
    """The cycle that swallowed the cancel also stopped the run (a stop, or a risk kill): the
    loop leaves through its normal exit, and used to return normally, so the run looked ended by
    the stop, not cancelled. It ends cancelled, after that one cycle."""
    instant_waits(monkeypatch)
    owner = owner_session(fast_settings.model_copy(update={"quote_refresh_sec": 0.05, "gc_freeze": False}), db, Target())
    entered = asyncio.Event()

    async def cycle(n: int) -> None:
        if n == 2:
            await _swallow_a_cancel(entered)
            if how == "stop":
                owner._ctl.stop.set()

    seen = _bare_loop(owner, cycle)
    if how == "risk kill":
        body = owner._one_cycle

        async def killing() -> Any:
            await body()
            return SimpleNamespace(kill_requested=seen.cycles == 2)

        owner._one_cycle = killing
    task = asyncio.create_task(owner._quote_loop())
    try:
        assert await _cancelled_once_entered(task, entered, timeout=2)
        assert seen.cycles == 2 and seen.failed == []
        assert owner._ctl.stop.is_set()
    finally:
        await _end(task, owner._ctl.stop)


async def _wait_as_on_312(event: asyncio.Event, timeout: float) -> bool:
    """`wait_set` as Python 3.12+ runs it when the task has a dropped cancel outstanding: it ends
    at its timeout (or when `event` is set) and returns; a cancel requested meanwhile still ends it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + max(0.0, timeout)
    await asyncio.sleep(0)
    while not event.is_set() and loop.time() < end:
        await asyncio.sleep(min(0.01, max(0.0, end - loop.time())))
    return event.is_set()


@pytest.mark.integration
async def test_a_run_whose_cycle_swallowed_its_cancel_still_ends_cancelled_with_its_orders_cancelled(
        fast_settings, db, monkeypatch):
    """The run's task cancelled while a cycle awaits a library that drops the cancel: the run
    still ends, cancelled, and its shutdown cancels every order (it used to go on quoting when
    nothing below raised the cancel again)."""
    engine = Engine(fast_settings)
    task = engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: open_orders_in_db(db) > 0)
        monkeypatch.setattr(owner_module, "wait_set", _wait_as_on_312)
        owner = engine.owner
        real = owner._one_cycle
        entered = asyncio.Event()
        quoted_after: list[int] = []

        async def one_cycle() -> Any:
            if not entered.is_set():
                await _swallow_a_cancel(entered)
            else:
                quoted_after.append(1)
            return await real()

        owner._one_cycle = one_cycle  # type: ignore[method-assign]
        await asyncio.wait_for(entered.wait(), 5)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        assert done == {task} and task.cancelled() and quoted_after == []
        assert open_orders_in_db(db) == 0 and not engine.state.running
    finally:
        if not task.done():
            await engine.stop()


# ---------------------------------------------------------------- a cancel raised out of a cycle
async def test_a_cancel_raised_out_of_a_cycle_ends_the_loop_at_once_without_the_refresh_wait(
        fast_settings, db, monkeypatch):
    """The cancel reaches the loop as a CancelledError out of the cycle: it ends the loop there,
    not counted as a failed cycle and not after waiting out the refresh (30 s here: the orders
    would rest that long before the shutdown cancels them)."""
    waits = record_waits(monkeypatch)
    owner = owner_session(fast_settings.model_copy(update={"quote_refresh_sec": 30.0, "gc_freeze": False}), db, Target())
    entered = asyncio.Event()

    async def cycle(n: int) -> None:
        entered.set()
        await asyncio.sleep(30)

    seen = _bare_loop(owner, cycle)
    task = asyncio.create_task(owner._quote_loop())
    try:
        assert await _cancelled_once_entered(task, entered, timeout=1)
        assert seen.cycles == 1 and seen.failed == [] and waits == []
    finally:
        await _end(task, owner._ctl.stop)


# ---------------------------------------------------------------- the restored rows' summary, recorded
def _an_earlier_sessions_fills(db, cid: str) -> None:
    """A market the DB knows and two paper fills of it an earlier session wrote: bought 10 YES at
    0.40, sold 4 at 0.50."""
    now = time.time()
    with db.begin() as conn:
        conn.execute(sa.insert(schema.markets).values(snapshot_ts=now - 120, rank=1, condition_id=cid,
                                                      question="an earlier market", yes_token_id=f"{cid}-yes",
                                                      no_token_id=f"{cid}-no"))
        for i, (side, price, size) in enumerate((("BUY", "0.40", "10"), ("SELL", "0.50", "4"))):
            conn.execute(sa.insert(schema.trades).values(
                trade_id=f"earlier-{i}", order_id=f"o{i}", market=cid, token_id=f"{cid}-yes", side=side, price=price,
                size=size, fill_type="MAKER", mode="paper", status="MATCHED", ts=now - 60 + i, fee="0", rebate="0"))


@pytest.mark.integration
async def test_the_recordings_start_row_says_what_the_session_restored_as_its_restore_event_did(
        fast_settings, db, tmp_path, monkeypatch):
    """A replay of this recording says the session continued from its DB (its summary and its
    problems read `restored` in the start row): the row carries the start-up's restore line."""
    from pmm_widgets.store.recording import Recorder

    _an_earlier_sessions_fills(db, "0xearlier")
    starts: list[dict[str, Any]] = []
    real_record = Recorder.record

    def record(self, channel, ts, kind, payload, conn=-1):
        if channel == "engine" and kind == "start":
            starts.append(json.loads(payload))
        return real_record(self, channel, ts, kind, payload, conn)

    monkeypatch.setattr(Recorder, "record", record)
    engine = Engine(fast_settings.model_copy(update={"record": "on", "record_dir": str(tmp_path / "rec")}))
    engine.set_params(quoting_paused=True)
    said: list[str] = []
    engine.events.subscribe(lambda ev: said.append(ev.message) if ev.kind == "restore" else None)
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: bool(starts))
    finally:
        await engine.stop()
    (start,) = starts
    # realized: the 4 sold at 0.50 had cost 0.40 each
    assert said == ["restored from the DB: 2 fills over 1 markets, realized PnL 0.4000"]
    assert start["restored"] == said[0]
    assert [(side, Decimal(p), Decimal(n)) for _, _, side, p, n, *_ in start["restored_rows"]["trades"]] == [
        ("BUY", Decimal("0.40"), Decimal(10)), ("SELL", Decimal("0.50"), Decimal(4))]  # the rows it restored from
