"""A kill the DB records stays in force until an operator clears it (`attached.kill_on_record`).

What records it: the lease row's final state (`kill`), the state of its renewals once a kill was
under way (its `kill` not `stopped` yet: the final release never landed), or a face's `kill`
command that no engine confirmed. An automatic start (a demo page's first view, a take-over) does not run over it and
shows it; an explicit start takes the lease and says once what it clears. The rows are written
here as the engines write them (`Lease`, `CommandQueue`)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from engine_helpers import until

from pmm_widgets.config import Settings
from pmm_widgets.engine import Engine
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.owner import KILL_UNDER_WAY
from pmm_widgets.engine.state import EngineState, KillResult
from pmm_widgets.events import EventKind

OLD = "oldhost:1:killed"


def _killed_row(db: sa.Engine, **state: object) -> Lease:
    old = Lease(db, ttl_sec=3, owner=OLD)
    assert old.try_acquire()
    assert old.release(EngineState(role="owner", running=False, **state).to_json())  # type: ignore[arg-type]
    return old


def _expired_running_row(db: sa.Engine, **state: object) -> None:
    """A row whose owner's renewals stopped landing (the last one carried `state`): expired."""
    old = Lease(db, ttl_sec=3, owner=OLD)
    assert old.try_acquire(now=time.time() - 10)
    assert old.renew(EngineState(role="owner", running=True, **state).to_json(), now=time.time() - 10)  # type: ignore[arg-type]


async def _automatic_start_stays_down(settings: Settings) -> Engine:
    eng = Engine(settings, auto_takeover=True)
    task = eng.start(automatic=True)
    assert await until(lambda: task.done(), timeout=5), eng.state
    assert eng.role != "owner" and not eng.running
    return eng


@pytest.mark.parametrize("how", ["final", "under way", "command"])
async def test_an_automatic_start_does_not_run_over_a_kill_on_record(fast_settings: Settings, db: sa.Engine,
                                                                     how: str):
    if how == "final":
        _killed_row(db, kill=KillResult(time.time(), 4, 0, True, "KILLED: 4 orders cancelled, venue reports 0 open"))
    elif how == "under way":  # the renewals carried the kill begun; its final release never landed
        _expired_running_row(db, kill=KillResult(time.time() - 11, 0, -1, False, KILL_UNDER_WAY))
    else:  # a face's KILL that the owner never confirmed (it ended, its result not written)
        _expired_running_row(db)
        CommandQueue(db, "face:1:x").send("kill", {})
    eng = await _automatic_start_stays_down(fast_settings)
    err = eng.state.last_error or ""
    assert err.startswith("the engine was killed") and err.endswith("press Start to run a new one"), err
    if how == "under way":
        assert err == f"the engine was killed ({KILL_UNDER_WAY} at {err.split(' at ')[1][:8]}, its end never " \
                      "recorded): press Start to run a new one", err
    assert Lease(db, 3).read().owner == OLD  # type: ignore[union-attr]  # nothing taken


async def test_an_automatic_start_takes_an_expired_lease_without_a_kill(fast_settings: Settings, db: sa.Engine):
    _expired_running_row(db)  # a crash (no kill): as before, a demo page starts
    CommandQueue(db, "face:1:x").send("pause", {})
    eng = Engine(fast_settings)
    eng.start(automatic=True)
    try:
        assert await eng.wait_role() == "owner"
        assert not [ev for ev in eng.events.recent(50) if ev.message.startswith("the last engine on this DB was killed")]
    finally:
        await eng.stop()


async def test_an_explicit_start_clears_the_kill_and_says_so_once(fast_settings: Settings, db: sa.Engine):
    _expired_running_row(db)
    face = CommandQueue(db, "face:1:x", sender="ops@desk pid 7 (dashboard)")
    cid = face.send("kill", {})
    eng = Engine(fast_settings)
    eng.start()
    try:
        assert await eng.wait_role() == "owner"
        said = [ev.message for ev in eng.events.recent(50) if ev.kind == EventKind.ENGINE_START
                and ev.message.startswith("the last engine on this DB was killed")]
        assert len(said) == 1 and "a KILL sent by ops@desk pid 7 (dashboard) at " in said[0], said
        assert said[0].endswith("never confirmed by an engine); this start clears it")
        result = face.result(cid)
        assert result is not None and result[1].startswith("expired")  # closed by the owner's start
        assert face.unconfirmed_kill() is None
    finally:
        await eng.stop()
    # cleared: the next automatic start runs (the stop released the lease without a kill)
    again = Engine(fast_settings)
    again.start(automatic=True)
    try:
        assert await again.wait_role() == "owner"
    finally:
        await again.stop()


def test_a_release_left_waiting_does_not_land_on_the_lease_the_same_engine_took_again(db: sa.Engine):
    """The same engine (one owner id) killed, then started again: the first run's release, held by
    a DB that did not answer, lands after the second run took the lease. It used to delete (or
    expire) that run's row: its next renewal failed, "lease lost to another engine"."""
    first = Lease(db, ttl_sec=3, owner="page:1:same")
    assert first.try_acquire(now=time.time() - 5)
    second = Lease(db, ttl_sec=3, owner="page:1:same")
    assert second.try_acquire(now=time.time() + 1)  # (a second later than the release's call below)
    assert first.release({"kill": {"ts": 1.0, "message": "KILLED"}}) is False
    assert second.renew(now=time.time() + 1.5)


def test_a_kill_recorded_between_an_automatic_starts_look_and_its_take_is_not_taken_over(db: sa.Engine):
    _expired_running_row(db)
    old = Lease(db, ttl_sec=3, owner=OLD)
    page = Lease(db, ttl_sec=3, owner="page:2")

    def refuse(row: object) -> bool:  # the page looked: no kill yet; the killed engine's record lands now
        assert old.release(EngineState(kill=KillResult(1.0, 0, 0, True, "KILLED")).to_json())
        return False

    assert page.try_acquire(refuse=refuse) is False
    row = page.read()
    assert row is not None and row.owner == OLD and row.kill() is not None
