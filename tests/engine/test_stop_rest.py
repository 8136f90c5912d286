"""The stop's budget, all of it: what the shutdown does after its cancel and verification (save
the round trips, close the venue side, flush the writer, answer a kill command, release the
lease) ends within the stop's budget (`runtime.STOP_VERIFY_SEC + AFTER_VERIFY_SEC`, shortened
here), whatever hangs. Before, only the verification was bounded: a DB that held its lock kept
the stop for its busy timeouts (10 s each: 12 s with the DB held 12 s, 20.6 s with it held 40 s,
the lease then never released), a market data close that hung held it as long as it hung (60 s
measured; `Engine.stop`'s backstop is 120 s with the default PMM_HTTP_DEADLINE_SEC); a page
kernel is SIGKILLed at 9 s, mid-way (no flush, no release). Now a step still
running at the deadline is cut, named once, and the steps after it run: the flush spills what the
DB did not take, the lease is released (or said not to be, with what the next start sees)."""

from __future__ import annotations

import asyncio
import glob
import json
import sqlite3
import time

import pytest
import sqlalchemy as sa
from engine_helpers import count, until

from pmm_widgets.engine import Engine
from pmm_widgets.engine import runtime as runtime_mod
from pmm_widgets.engine.lease import Lease
from pmm_widgets.venue.market_data import MarketData

pytestmark = pytest.mark.integration

BUDGET = 1.0  # the shortened stop's budget after its start: verification 0.3 s, the rest 0.7 s


@pytest.fixture
def short_stop(monkeypatch):
    monkeypatch.setattr(runtime_mod, "STOP_VERIFY_SEC", 0.3)
    monkeypatch.setattr(runtime_mod, "AFTER_VERIFY_SEC", BUDGET - 0.3)


def _stop_events(engine: Engine) -> list[str]:
    return [ev.message for ev in engine.events.recent(100) if "not finished within the stop's" in ev.message]


async def _owning(engine: Engine) -> None:
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.tick >= 1, timeout=10)  # quoting


async def _timed_stop(engine: Engine, limit: float) -> float:
    """Stop; its duration, or the test fails at `limit` (the stop goes on: awaited by the caller)."""
    t0 = time.monotonic()
    stopping = asyncio.ensure_future(engine.stop())
    done, _ = await asyncio.wait({stopping}, timeout=limit)
    assert done, f"the stop still runs after {limit:g} s"
    return time.monotonic() - t0


async def test_a_db_holding_its_lock_at_the_stop_cuts_the_flush_and_the_release_and_loses_no_row(
        fast_settings, db, db_url, short_stop):
    engine = Engine(fast_settings)
    await _owning(engine)
    path = db_url.removeprefix("sqlite:///")
    hold = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    stopping = None
    try:
        hold.execute("BEGIN EXCLUSIVE")  # another process holds the DB: every write waits 10 s
        t0 = time.monotonic()
        stopping = asyncio.ensure_future(engine.stop())
        done, _ = await asyncio.wait({stopping}, timeout=BUDGET + 0.8)
        took = time.monotonic() - t0
        assert done, f"the stop still runs after {took:.1f} s (the DB's busy timeout is 10 s)"
        said = _stop_events(engine)
        writer = [m for m in said if m.startswith("the DB writer's flush not finished within the stop's 1 s")]
        release = [m for m in said if m.startswith("the lease's release not finished within the stop's 1 s")]
        assert len(writer) == 1 and len(release) == 1, said  # each named once
        assert "up to 3 s" in release[0] and "attaches to this stopped one" in release[0], release
    finally:
        if hold.in_transaction:
            hold.execute("COMMIT")  # the DB answers again
        hold.close()
        if stopping is not None:
            await stopping
    # the release the budget left running lands once the DB answers; the write left to the
    # writer's worker commits; what was queued behind it was spilled at the deadline
    assert await until(lambda: count(db, "SELECT COUNT(*) FROM engine_lease") == 0, timeout=2)
    with db.connect() as conn:
        in_db = {r[0] for r in conn.execute(sa.text("SELECT message FROM events"))}
    spilled = set()
    for name in glob.glob(path + ".unwritten-*.jsonl"):
        with open(name, encoding="utf-8") as fh:
            spilled |= {d["row"]["message"] for d in map(json.loads, fh) if d["table"] == "events"}
    assert any(m.startswith("engine stopped: ") for m in in_db | spilled), "the stop's own event was lost"


async def test_a_venue_side_that_hangs_at_the_stop_is_cut_and_the_writer_and_lease_still_close(
        fast_settings, db, short_stop, monkeypatch):
    real_close = MarketData.close

    async def hanging_close(self: MarketData) -> None:
        try:
            await asyncio.sleep(60)  # a websocket close the peer never answers
        finally:
            await real_close(self)  # (cut: it ends in the background)

    monkeypatch.setattr(MarketData, "close", hanging_close)
    engine = Engine(fast_settings)
    await _owning(engine)
    took = await _timed_stop(engine, BUDGET + 0.8)  # (it waited as long as the close hung)
    said = _stop_events(engine)
    assert said == ["closing the venue side (exchange, market data, Gamma) not finished within the stop's 1 s: "
                    "left to end on its own"], said
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0  # released in the same stop
    assert count(db, "SELECT COUNT(*) FROM events WHERE message LIKE 'engine stopped: %'") == 1  # flushed
    assert count(db, "SELECT COUNT(*) FROM events WHERE message LIKE 'closing the venue side%'") == 1
    assert took < BUDGET + 0.5, took


def test_a_renewal_that_lands_after_a_release_with_a_final_state_does_not_revive_the_lease(db):
    """The stop's budget may release the lease while a renewal's thread still waits on the DB:
    that renewal must not make the stopped owner's row live again (its final state, a kill, would
    be shown as a running owner for a TTL, and the next engine would wait for it)."""
    mine = Lease(db, ttl_sec=3.0, owner="host:1:a")
    assert mine.try_acquire()
    mine.release({"kill": {"message": "KILLED"}})
    assert not mine.renew({"running": True})  # (it used to extend the row for another TTL)
    row = mine.read()
    assert row is not None and row.expired() and row.state_json == {"kill": {"message": "KILLED"}}
    other = Lease(db, ttl_sec=3.0, owner="host:2:b")
    assert other.try_acquire()  # the next engine owns at once
