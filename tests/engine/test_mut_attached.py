"""The attached session alone (engine/attached.py), over a real DB lease and commands table.

An "owner" here is just another `Lease` writing its state (what an owning engine's renewal
writes) and applying commands by hand; the face is an `AttachedSession` whose state slot is a
plain list. What it must do: mirror the owner while one holds the lease; when the lease frees,
end the way its caller asked (killed: stay down; watch only: idle; auto take-over: True; else
say nobody owns it); a KILL waits for the owner's verified answer, long enough for the owner to
give one, and says so plainly when none came."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import pytest

import pmm_widgets.engine.attached as attached_mod
from pmm_widgets.config import Settings
from pmm_widgets.engine.attached import AttachedSession
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, KillResult
from pmm_widgets.events import EventKind, Level

FACE = "host:2:face"
OWNER = "host:1:owner"


class Face:
    """An AttachedSession with its state slot, its events and its commands."""

    def __init__(self, db_url: str, db: Any, **settings: Any) -> None:
        self.settings = Settings(_env_file=None, db_url=db_url, dashboard_refresh_sec=0.02, **settings)
        self.states: list[EngineState] = [EngineState()]
        self.events: list[tuple[Level, EventKind, str]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.commands = CommandQueue(db, FACE)
        self.session = AttachedSession(
            self.settings, Lease(db, self.settings.lease_ttl_sec, owner=FACE), self.commands, FACE,
            publish=self.states.append, state=lambda: self.states[-1],
            emit=lambda lvl, kind, msg: self.events.append((lvl, kind, msg)), tasks=self.tasks)

    @property
    def state(self) -> EngineState:
        return self.states[-1]


@pytest.fixture
def face(db_url, db) -> Face:
    return Face(db_url, db)


@pytest.fixture
def owner(db) -> Lease:
    lease = Lease(db, 15.0, owner=OWNER)
    assert lease.try_acquire()
    return lease


def _owner_state(**kw: Any) -> dict[str, Any]:
    return EngineState(role="owner", running=True, owner=OWNER, **kw).to_json()


async def _mirror(face: Face, **kw: Any) -> tuple[asyncio.Task[bool], asyncio.Event, asyncio.Event]:
    stop, role = asyncio.Event(), asyncio.Event()
    task = asyncio.ensure_future(face.session.mirror(stop, role, **kw))
    return task, stop, role


async def test_the_face_mirrors_the_owner_until_stopped(face, owner):
    owner.renew(_owner_state(tick=7, paused=True, pause_note="pause by alice"))
    task, stop, role = await _mirror(face)
    await asyncio.wait_for(role.wait(), 5)
    s = face.state
    assert (s.role, s.owner, s.running, s.tick, s.paused, s.pause_note) == ("attached", OWNER, True, 7, True,
                                                                            "pause by alice")
    assert face.events[0][:2] == (Level.INFO, EventKind.ATTACHED)
    owner.renew(_owner_state(tick=8))
    for _ in range(250):
        if face.state.tick == 8:
            break
        await asyncio.sleep(0.02)
    assert face.state.tick == 8 and not face.state.paused  # follows each renewal
    stop.set()
    assert await asyncio.wait_for(task, 5) is False
    assert face.state.running is False and face.state.role == "attached"


async def test_a_face_that_finds_the_lease_its_own_does_not_mirror_itself(face, db):
    mine = Lease(db, 15.0, owner=FACE)
    assert mine.try_acquire()
    mine.renew(_owner_state(tick=3))
    task, _stop, role = await _mirror(face)
    assert await asyncio.wait_for(task, 5) is False
    assert not role.is_set() and face.state.tick == 0
    assert face.state.running is False and face.state.last_error == "no engine owns the DB lease: press Start to own it"


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, (False, "attached", False, "no engine owns the DB lease: press Start to own it")),
    ({"watch_only": True}, (False, "idle", False, "the engine stopped: press Start to run one")),
    ({"auto_takeover": True}, (True, "idle", True, None)),
])
async def test_when_the_owner_leaves_the_face_ends_as_asked(face, owner, kw, expected):
    owner.renew(_owner_state(tick=5))
    task, _stop, role = await _mirror(face, **kw)
    await asyncio.wait_for(role.wait(), 5)
    owner.release(_owner_state(tick=6))  # a clean stop, no kill
    took_over = await asyncio.wait_for(task, 5)
    s = face.state
    assert (took_over, s.role, s.running, s.last_error) == expected
    if kw.get("watch_only"):
        assert s.owner == ""  # nobody owns it now


@pytest.mark.parametrize("kw", [{}, {"watch_only": True}, {"auto_takeover": True}])
async def test_a_killed_owner_keeps_every_face_down(face, owner, kw):
    owner.renew(_owner_state(tick=5))
    task, _stop, role = await _mirror(face, **kw)
    await asyncio.wait_for(role.wait(), 5)
    kill = KillResult(1000.0, 3, 0, True, "KILLED: 3 orders cancelled")
    owner.release(_owner_state(tick=6, kill=kill))
    assert await asyncio.wait_for(task, 5) is False  # never a take-over of a killed engine
    s = face.state
    assert (s.role, s.running, s.owner, s.kill) == ("idle", False, "", kill)
    assert s.last_error == "the engine was killed: press Start to run a new one"


async def test_a_kill_returns_the_owners_verified_result(face, db):
    owner_queue = CommandQueue(db, OWNER)
    result = KillResult(1234.0, 2, 0, True, "KILLED: 2 orders cancelled, venue reports 0 open")

    async def owner_applies() -> None:
        while not (pending := owner_queue.pending()):
            await asyncio.sleep(0.02)
        assert [c.kind for c in pending] == ["kill"]
        owner_queue.mark_applied(pending[0].id, json.dumps(asdict(result)))

    applier = asyncio.ensure_future(owner_applies())
    kr, confirmed = await asyncio.wait_for(face.session.kill(), 10)
    await applier
    assert (kr, confirmed) == (result, True)
    assert face.state.kill == result


async def test_an_owner_answer_that_is_not_a_kill_result_is_shown_not_trusted(face, db):
    owner_queue = CommandQueue(db, OWNER)
    pending_id: list[int] = []

    async def owner_applies() -> None:
        while not (pending := owner_queue.pending()):
            await asyncio.sleep(0.02)
        owner_queue.mark_applied(pending[0].id, "error: exchange gone")
        pending_id.append(pending[0].id)

    applier = asyncio.ensure_future(owner_applies())
    kr, confirmed = await asyncio.wait_for(face.session.kill(), 10)
    await applier
    assert confirmed is True
    assert (kr.cancelled, kr.venue_open_after, kr.stopped, kr.ok) == (0, -1, False, False)
    assert kr.message == "owner answered: error: exchange gone"
    answered = owner_queue.result(pending_id[0])
    assert answered is not None and kr.ts == answered[0]  # when the owner answered
    assert face.state.kill == kr


class _Pauses:
    """attached.py's asyncio, with its pauses recorded instead of waited for."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float) -> None:
        self.asked.append(delay)
        await asyncio.sleep(0)


@pytest.mark.parametrize(("refresh", "ttl", "waits"), [(0.5, 3.0, 10.0), (5.0, 3.0, 23.0)])
async def test_an_unanswered_kill_waits_long_enough_then_says_so(db_url, db, monkeypatch, refresh, ttl, waits):
    """The face waits max(10 s, 4 quote refreshes + a lease TTL) of its clock (what an owner needs
    to apply it), polling every 0.2 s, then reports an unconfirmed, not-ok kill. The clock steps
    0.5 s per reading and the pauses are not waited for."""
    step = 0.5
    now = [1_000_000.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    pauses = _Pauses()
    monkeypatch.setattr(attached_mod, "time", SimpleNamespace(time=clock))
    monkeypatch.setattr(attached_mod, "asyncio", pauses)
    face = Face(db_url, db, quote_refresh_sec=refresh, lease_ttl_sec=ttl)
    kr, confirmed = await asyncio.wait_for(face.session.kill(), 10)
    assert confirmed is False and not kr.ok and not kr.stopped
    assert (kr.cancelled, kr.venue_open_after) == (0, -1)  # nothing known to be cancelled, open count unknown
    assert kr.message == "kill sent, but the owner did not confirm in time"
    started = 1_000_000.0 + step  # the clock reading that set the deadline
    assert started + waits <= kr.ts <= started + waits + 2 * step
    assert pauses.asked and set(pauses.asked) == {0.2}  # one poll of the DB every 0.2 s, no busy loop
    assert face.state.kill == kr
    assert [c.kind for c in CommandQueue(db, OWNER).pending()] == ["kill"]  # it was sent


async def test_the_face_says_attached_at_once_and_polls_at_the_dashboard_pace(face, owner):
    """Before the first DB read the face already says attached and running (an old error
    cleared); then it reads the lease once per `dashboard_refresh_sec`, not in a busy loop."""
    face.states.append(EngineState(role="idle", last_error="the engine stopped: press Start to run one"))
    reads: list[float] = []
    real_read = face.session.lease.read

    def read() -> Any:
        reads.append(1.0)
        return real_read()

    face.session.lease.read = read  # type: ignore[method-assign]
    owner.renew(_owner_state(tick=5))
    task, stop, role = await _mirror(face)
    await asyncio.sleep(0)  # the face runs up to its first DB read
    first = face.states[2]
    assert (first.role, first.running, first.last_error) == ("attached", True, None)
    await asyncio.wait_for(role.wait(), 5)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert 2 <= len(reads) <= 40  # 0.3 s at one read per 0.02 s: ~15
