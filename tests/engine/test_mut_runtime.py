"""`open_db`, `cancel_and_verify` and `Store` (engine/runtime.py).

`open_db` is what every role opens first.

It migrates the file itself (a fresh DB needs no separate step), and its command queue keeps a
command alive for as long as an attached face waits for the owner's answer to it
(`AttachedSession.kill`: `max(10, 4 x quote refresh + lease TTL)`), plus one lease TTL for a
take-over by a new owner; and no longer than that or a minute, so a KILL left from a past
session never fires into a new one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from engine_helpers import paper_with_bids
from hypothesis import given, settings
from hypothesis import strategies as st

import pmm_widgets.engine.runtime as runtime_mod
from pmm_widgets.config import Settings
from pmm_widgets.engine.commands import Command
from pmm_widgets.engine.runtime import Runtime, cancel_and_verify, open_db, open_store
from pmm_widgets.events import Event, EventKind, Level
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.sink import MemorySink


def test_a_fresh_db_file_is_migrated_and_usable(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    handles = open_db(Settings(_env_file=None, db_url=url), "host:1:a")
    try:
        assert handles.lease.try_acquire()
        cid = handles.commands.send("pause", {})
        assert [c.id for c in handles.commands.pending()] == [cid]
    finally:
        handles.db.dispose()


def _kill(age: float, now: float) -> Command:
    return Command(1, now - age, "face", "kill", {})


@settings(max_examples=30, deadline=None)
@given(refresh=st.floats(min_value=0.05, max_value=600.0), ttl=st.floats(min_value=3.0, max_value=120.0))
def test_a_kill_outlives_the_attached_faces_wait_and_a_take_over(tmp_path_factory, refresh, ttl):
    url = f"sqlite:///{tmp_path_factory.getbasetemp() / 'cmd.db'}"
    s = Settings(_env_file=None, db_url=url, quote_refresh_sec=refresh, lease_ttl_sec=ttl)
    handles = open_db(s, "host:1:a")
    try:
        now = time.time()
        attached_wait = max(10.0, 4 * refresh + ttl)  # AttachedSession.kill's deadline
        assert handles.commands.verdict(_kill(attached_wait + ttl, now), now) is None
        stale = max(60.0, attached_wait + ttl) + 1.0
        verdict = handles.commands.verdict(_kill(stale, now), now)
        assert verdict is not None and verdict.startswith("expired:")
    finally:
        handles.db.dispose()


def test_with_quick_settings_a_command_older_than_a_minute_never_applies(tmp_path):
    url = f"sqlite:///{tmp_path / 'quick.db'}"
    handles = open_db(Settings(_env_file=None, db_url=url, quote_refresh_sec=3.0, lease_ttl_sec=15.0), "host:1:a")
    try:
        now = time.time()
        assert handles.commands.verdict(_kill(59.0, now), now) is None
        verdict = handles.commands.verdict(_kill(61.0, now), now)
        assert verdict is not None and verdict.startswith("expired:")
    finally:
        handles.db.dispose()


# ---------------------------------------------------------------- cancel_and_verify
# The shutdown's and the KILL's last word with the venue. A real paper exchange holds the orders;
# the venue's faults (a refused cancel, a count that fails or still sees an order) are scripted
# around its own methods.

class _Venue:
    """Scripted faults over a real exchange: each call's entry in the script (an exception to
    raise, an int to report instead, or None: the exchange's own answer), then the exchange's."""

    def __init__(self, ex: PaperExchange, cancels: list[Any] | None = None, counts: list[Any] | None = None) -> None:
        self.ex, self.cancels, self.counts = ex, list(cancels or []), list(counts or [])
        self.calls: list[str] = []
        self.real_cancel, self.real_count = ex.cancel_all, ex.count_venue_open_orders
        ex.cancel_all = self.cancel_all  # type: ignore[method-assign]
        ex.count_venue_open_orders = self.count  # type: ignore[method-assign]

    @staticmethod
    async def _answer(script: list[Any], real: Any) -> int:
        step = script.pop(0) if script else None
        if isinstance(step, BaseException):
            raise step
        got: int = await real()
        return got if step is None else int(step)

    async def cancel_all(self) -> int:
        self.calls.append("cancel_all")
        return await self._answer(self.cancels, self.real_cancel)

    async def count(self) -> int:
        self.calls.append("count")
        return await self._answer(self.counts, self.real_count)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses cancel_and_verify asks for (not waited for here)."""
    asked: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, *a: Any) -> None:
        asked.append(delay)
        await real(0)

    monkeypatch.setattr(runtime_mod.asyncio, "sleep", sleep)
    return asked


def test_one_cancel_that_the_venue_confirms_is_enough(sleeps):
    venue = _Venue(paper_with_bids(3))
    assert asyncio.run(cancel_and_verify(venue.ex)) == (3, 0, None)
    assert venue.calls == ["cancel_all", "count"] and sleeps == []  # no second round, no wait


def test_a_refused_cancel_is_retried_after_a_pause_and_the_answer_that_follows_is_the_result(sleeps):
    venue = _Venue(paper_with_bids(2), cancels=[ConnectionError("venue 503")])
    cancelled, open_after, err = asyncio.run(cancel_and_verify(venue.ex))
    # the venue confirmed 0 open: a clean KILL (its message used to append the refusal's "(error: ...)")
    assert (cancelled, open_after, err) == (2, 0, None)
    assert venue.calls == ["cancel_all", "cancel_all", "count"] and sleeps == [0.2]


def test_the_result_is_what_the_last_attempt_got(sleeps):
    """A count seen before a later attempt failed is no longer the venue's: unknown, with the error."""
    venue = _Venue(paper_with_bids(2), counts=[2], cancels=[None, ConnectionError("503"), ConnectionError("503")])
    assert asyncio.run(cancel_and_verify(venue.ex)) == (2, -1, "ConnectionError: 503")
    assert venue.calls == ["cancel_all", "count", "cancel_all", "cancel_all"] and sleeps == [0.2, 0.2]


def test_an_order_the_venue_still_shows_is_cancelled_again_up_to_the_attempts(sleeps):
    venue = _Venue(paper_with_bids(2), counts=[1, 1, 1, 1, 1, 1])
    cancelled, open_after, err = asyncio.run(cancel_and_verify(venue.ex))
    assert (cancelled, open_after, err) == (2, 1, None)  # the KILL is not ok: 1 still open
    assert venue.calls == ["cancel_all", "count"] * 3
    assert sleeps == [0.2, 0.2]  # between the attempts, none after the last
    venue = _Venue(paper_with_bids(1), counts=[1, 1, 1, 1])
    assert asyncio.run(cancel_and_verify(venue.ex, attempts=5)) == (1, 0, None)
    assert venue.calls == ["cancel_all", "count"] * 5


def test_a_count_that_never_answers_leaves_the_open_count_unknown(sleeps):
    venue = _Venue(paper_with_bids(2), counts=[TimeoutError("no answer")] * 3)
    assert asyncio.run(cancel_and_verify(venue.ex)) == (2, -1, "TimeoutError: no answer")
    assert venue.calls == ["cancel_all", "count"] * 3 and sleeps == [0.2, 0.2]


def test_a_later_round_reports_the_venues_last_count(sleeps):
    venue = _Venue(paper_with_bids(2), counts=[2, None])
    assert asyncio.run(cancel_and_verify(venue.ex)) == (2, 0, None)
    assert venue.calls == ["cancel_all", "count"] * 2


def test_a_call_still_out_at_the_deadline_is_abandoned_and_the_count_is_unknown(sleeps):
    venue = _Venue(paper_with_bids(2))

    async def never() -> int:
        venue.calls.append("count")
        await asyncio.Event().wait()
        return 0

    venue.ex.count_venue_open_orders = never  # type: ignore[method-assign]
    t0 = time.monotonic()
    got = asyncio.run(cancel_and_verify(venue.ex, deadline_sec=0.1))
    assert got == (2, -1, "the venue's open count not answered within the stop's 0.1 s deadline")
    assert time.monotonic() - t0 < 1.0 and venue.calls == ["cancel_all", "count"]


def test_no_pause_is_begun_that_would_end_past_the_deadline(sleeps):
    """The last attempt's result stands (its refusal), not a deadline that only the pause met."""
    venue = _Venue(paper_with_bids(2), cancels=[ConnectionError("503")] * 3)
    assert asyncio.run(cancel_and_verify(venue.ex, deadline_sec=0.1)) == (0, -1, "ConnectionError: 503")
    assert venue.calls == ["cancel_all"] and sleeps == []


def test_the_default_deadline_is_the_stops_budget(sleeps, monkeypatch):
    monkeypatch.setattr(runtime_mod, "STOP_VERIFY_SEC", 0.1)
    venue = _Venue(paper_with_bids(1), cancels=[ConnectionError("503")] * 3)
    assert asyncio.run(cancel_and_verify(venue.ex)) == (0, -1, "ConnectionError: 503")
    assert venue.calls == ["cancel_all"]


async def test_closing_the_store_closes_its_recorder(tmp_path):
    s = Settings(_env_file=None, db_url=f"sqlite:///{tmp_path / 'r.db'}", record="on",
                 record_dir=str(tmp_path / "rec"))
    before = set(threading.enumerate())
    store = open_store(s, MemorySink())
    assert store.recorder is not None and store.writer is None
    mine = [t for t in threading.enumerate() if t not in before and t.name == "pmm-recorder"]
    assert len(mine) == 1 and mine[0].is_alive()
    assert await store.aclose() is None  # no writer of its own: no spill file
    assert not mine[0].is_alive()  # its files are closed (footers written), its thread ended


async def test_closing_the_store_flushes_its_writer_to_the_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    s = Settings(_env_file=None, db_url=url, writer_flush_sec=1.0)
    store = open_store(s)
    assert store.writer is not None and store.recorder is None
    store.db.event(Event(123.0, Level.WARNING, EventKind.KILL, "KILLED: 2 orders cancelled"))
    assert await store.aclose() is None  # written, nothing spilled
    db = make_engine(url)
    try:
        with db.connect() as conn:
            rows = conn.execute(sa.text("select kind, message from events")).all()
    finally:
        db.dispose()
    assert [tuple(r) for r in rows] == [("kill", "KILLED: 2 orders cancelled")]


async def test_closing_the_runtime_closes_everything_it_opened_last_first_and_never_raises():
    closed: list[str] = []
    stack = contextlib.AsyncExitStack()

    def closer(name: str, fail: bool = False) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            closed.append(name)
            if fail:
                raise ConnectionError(f"{name}: socket already gone")
        return close

    for name in ("endpoints", "gamma", "market data"):
        stack.push_async_callback(closer(name))
    stack.push_async_callback(closer("exchange", fail=True))
    rt = Runtime(*([None] * 10), closing=stack)  # type: ignore[arg-type]  # aclose reads only `closing`
    await rt.aclose()  # a stop never raises
    assert closed == ["exchange", "market data", "gamma", "endpoints"]


async def test_closing_the_store_says_where_rows_the_db_never_took_were_saved(tmp_path):
    path = tmp_path / "gone.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    store = open_store(Settings(_env_file=None, db_url=url))
    assert store.writer is not None
    store.db.event(Event(1.0, Level.INFO, EventKind.ENGINE_STOP, "first"))
    await asyncio.to_thread(store.writer.flush)
    for suffix in ("", "-wal", "-shm"):  # the DB file deleted under the running engine
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")
    store.db.event(Event(2.0, Level.ERROR, EventKind.KILL, "KILLED: 1 order cancelled"))
    spill = await store.aclose()
    assert spill is not None and spill.startswith(str(path))
    with open(spill, encoding="utf-8") as fh:
        assert [json.loads(line)["row"]["message"] for line in fh] == ["KILLED: 1 order cancelled"]
