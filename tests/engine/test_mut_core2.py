"""What a second mutation pass on engine/core.py (the `Engine` facade) found untested: a pause of
the running owner cancels its orders at once (recorded first), an attached face's pause/resume are
one command each and change nothing locally, who resumed is kept and the pause note goes with
the pause, each run starts from fresh controls and a clean published state (direct runs too),
`max_seconds` ends a headless run, an attach-only start never takes the lease (not even with
`auto_takeover`) while a plain one does once the owner leaves, and a cancelled task's end is
quiet."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from engine_helpers import Joiner, param_rows, start_with_a_flaky_lease, until

from pmm_widgets.engine import Engine
from pmm_widgets.engine.core import EngineStateError
from pmm_widgets.engine.state import EngineState
from pmm_widgets.events import Event, EventKind, Level


def _command_kinds(db) -> list[str]:
    with db.connect() as c:
        return [r.kind for r in c.execute(sa.text("SELECT kind FROM commands ORDER BY id"))]


# ---------------------------------------------------------------- pause / resume of the owner
@contextlib.asynccontextmanager
async def _owner_quoting(settings: Any) -> AsyncIterator[Engine]:
    """An owner engine with orders resting; stopped after."""
    eng = Engine(settings)
    eng.start()
    try:
        assert await eng.wait_role() == "owner"
        assert await until(lambda: len(eng.runtime.exchange.open_orders()) > 0)
        yield eng
    finally:
        await eng.stop()


async def test_a_pause_of_the_running_owner_cancels_its_orders_at_once_recorded_first(fast_settings):
    async with _owner_quoting(fast_settings) as eng:
        ex = eng.runtime.exchange
        steps: list[Any] = []
        cancel_all = ex.cancel_all

        async def spy_cancel_all() -> int:
            steps.append(("resting", len(ex.open_orders())))
            n = await cancel_all()
            steps.append(("cancelled", n))
            return n

        ex.cancel_all = spy_cancel_all  # type: ignore[method-assign]
        eng.owner.record_cancel_all = lambda now, reason: steps.append(("recorded", reason))  # type: ignore[method-assign]
        events: list[Event] = []
        eng.events.subscribe(events.append)
        n = await eng.pause()  # the default: cancel now, not at the next cycle
        assert ex.open_orders() == []
        assert steps[0] == ("recorded", "pause") and [s[0] for s in steps] == ["recorded", "resting", "cancelled"]
        assert n == steps[2][1] == steps[1][1] > 0
        assert eng.state.paused and eng.params.quoting_paused
        pauses = [(e.level, e.message) for e in events if e.kind is EventKind.PAUSE]
        assert pauses == [(Level.WARNING, f"quoting paused (pause); {n} orders cancelled")]


async def test_a_pause_without_cancel_leaves_the_orders_to_the_cycle(fast_settings):
    async with _owner_quoting(fast_settings) as eng:
        ex = eng.runtime.exchange
        steps: list[str] = []

        async def spy_cancel_all() -> int:
            steps.append("cancel_all")
            return 0

        ex.cancel_all = spy_cancel_all  # type: ignore[method-assign]
        eng.owner.record_cancel_all = lambda now, reason: steps.append("recorded")  # type: ignore[method-assign]
        assert await eng.pause(cancel=False, reason="pause button") == 0
        assert steps == [] and eng.state.paused
        assert [e.message for e in eng.events.recent() if e.kind is EventKind.PAUSE_BUTTON] == [
            "quoting paused (pause button); 0 orders cancelled"]


async def test_resume_records_who_resumed_and_the_pause_note_goes_with_the_pause(fast_settings, db):
    eng = Engine(fast_settings, persist_params=True)
    await eng._open_db()
    assert await eng.pause(by="alice") == 0  # idle: nothing to cancel
    assert eng.state.paused and eng.state.pause_note.startswith("pause by alice at ")
    assert await until(lambda: len(param_rows(db)) == 1, timeout=5)  # (each record is a thread: keep their order)
    await eng.resume(by="bob")
    assert not eng.params.quoting_paused and not eng.state.paused and eng.state.pause_note == ""
    assert [e.message for e in eng.events.recent() if e.kind is EventKind.RESUME] == ["quoting resumed"]
    assert await until(lambda: len(param_rows(db)) == 2, timeout=5)
    assert param_rows(db) == [("quoting_paused", "alice"), ("quoting_paused", "bob")]
    eng.set_params(quoting_paused=True)  # paused another way (a parameter): nobody's old note is shown
    assert eng.state.paused and eng.state.pause_note == ""


@contextlib.asynccontextmanager
async def _owner_and_face(settings: Any) -> AsyncIterator[tuple[Engine, Engine]]:
    """An owner engine and a face attached to it; both stopped after."""
    owner = Engine(settings)
    owner.start()
    face = Engine(settings)
    try:
        assert await owner.wait_role() == "owner"
        face.start()
        assert await face.wait_role() == "attached"
        yield owner, face
    finally:
        await face.stop()
        await owner.stop()


async def test_an_attached_faces_pause_and_resume_are_one_command_each_and_change_nothing_here(fast_settings, db):
    async with _owner_and_face(fast_settings) as (owner, face):
        sent: list[str] = []
        face.events.subscribe(lambda ev: sent.append(ev.message) if ev.kind is EventKind.COMMAND else None)
        assert await face.pause() == 0
        assert await until(lambda: owner.params.quoting_paused, timeout=5)
        await face.resume()
        assert await until(lambda: not owner.params.quoting_paused, timeout=5)
        assert [m.split()[1] for m in sent] == ["pause", "resume"]
        assert _command_kinds(db) == ["pause", "resume"]
        assert not face._params.quoting_paused and face._pause_note == ""
        assert not [e for e in face.events.recent() if e.kind in (EventKind.PAUSE, EventKind.RESUME)]


async def test_an_attached_faces_strategy_choice_is_one_command_and_kept_only_by_the_owner(fast_settings, db):
    """The face sends `set_strategy` and keeps nothing of its own: no override of its own to hand
    a later start of its own, no strategy event of its own (the owner's is the one)."""
    async with _owner_and_face(fast_settings) as (owner, face):
        face.set_strategy("0xfar", "as", as_gamma=0.5)
        assert await until(lambda: "0xfar" in owner.runtime.cycle.overrides, timeout=5)
        assert _command_kinds(db) == ["set_strategy"]
        assert face._strategy_overrides == {}
        assert not [e for e in face.events.recent() if e.kind is EventKind.STRATEGY]


# ---------------------------------------------------------------- run(): fresh controls, clean state
async def test_max_seconds_ends_a_direct_run_and_each_direct_run_has_fresh_controls(fast_settings):
    eng = Engine(fast_settings)
    seen: list[tuple[str, bool]] = []
    eng.add_state_listener(lambda s: seen.append((s.role, s.running)))
    owners: list[Any] = []
    for _ in range(2):  # the second run is not ended at once by the first one's stop
        seen.clear()
        await asyncio.wait_for(eng.run(max_seconds=0.6), 15)
        assert ("owner", True) in seen and not eng.running and eng.state.running is False
        owners.append(eng._owner)
    assert owners[0] is not owners[1]
    eng.start()  # a start, then a direct run again
    assert await eng.wait_role() == "owner"
    await eng.stop()
    seen.clear()
    await asyncio.wait_for(eng.run(max_seconds=0.6), 15)
    assert ("owner", True) in seen


async def test_a_new_run_clears_the_last_error_and_kill_and_reports_its_own_crash(fast_settings):
    eng = Engine(fast_settings)
    await eng.kill()  # idle kill: published
    eng._publish(replace(eng.state, last_error="old trouble"))
    assert eng.state.kill is not None
    eng._crash_reported = True  # what the previous run's owner left: it had reported its own crash
    seen: list[EngineState] = []
    errors: list[Event] = []
    eng.events.subscribe(lambda ev: errors.append(ev) if ev.level is Level.ERROR else None)

    async def broken_db() -> Any:
        seen.append(eng.state)
        raise OSError("disk gone")

    eng._open_db = broken_db  # type: ignore[method-assign]
    task = eng.start()
    await asyncio.wait({task})
    assert seen[0].kill is None and seen[0].last_error is None
    assert [e.message for e in errors] == ["engine crashed: OSError: disk gone"]


# ---------------------------------------------------------------- attach-only / take-over
@pytest.mark.parametrize(("auto_takeover", "attach_only", "said"), [
    (True, True, "the engine stopped: press Start to run one"),  # attach-only: even a face that would take over
    (False, False, "no engine owns the DB lease: press Start to own it"),  # a face started while another owned
], ids=["attach-only", "plain"])
async def test_a_face_that_may_not_take_over_mirrors_the_owner_and_ends_when_it_leaves(
        fast_settings, db, auto_takeover, attach_only, said):
    owner = Engine(fast_settings)
    owner.start()
    face = Engine(fast_settings, auto_takeover=auto_takeover)
    try:
        assert await owner.wait_role() == "owner"
        task = face.start(attach_only=attach_only)
        assert await face.wait_role() == "attached"
        assert await until(lambda: face.state.tick >= 1, timeout=5)
        assert face.running
        await owner.stop()
        await asyncio.wait_for(task, 10)
        assert face._owner is None and face.role != "owner" and not face.running
        assert face.role == "idle" or not attach_only
        assert face.state.last_error == said
    finally:
        await face.stop()
        await owner.stop()


async def test_an_auto_takeover_face_owns_once_the_owner_stops_and_its_old_role_is_gone(fast_settings, db):
    first = Engine(fast_settings)
    first.start()
    assert await first.wait_role() == "owner"
    await first.stop()  # it owned once: a later run that attaches must not keep that runtime
    owner = Engine(fast_settings)
    owner.start()
    face = first
    face.auto_takeover = True
    try:
        assert await owner.wait_role() == "owner"
        face.start()
        assert await face.wait_role() == "attached"
        with pytest.raises(EngineStateError):
            _ = face.runtime
        await owner.stop()
        assert await until(lambda: face.role == "owner" and face.state.tick >= 1, timeout=15)
        assert face.running and face.runtime.exchange is not None
    finally:
        await face.stop()
        await owner.stop()


# ---------------------------------------------------------------- _on_done
async def test_a_cancelled_runs_end_is_quiet(fast_settings):
    eng = Engine(fast_settings)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        started = asyncio.Event()

        async def hangs() -> None:
            started.set()
            await asyncio.Event().wait()

        eng.run = hangs  # type: ignore[method-assign]
        task = eng.start()
        await started.wait()
        task.cancel()
        await asyncio.wait({task})
        await asyncio.sleep(0)
        assert reported == [] and not eng.state.running
        assert not [e for e in eng.events.recent() if e.level is Level.ERROR]
    finally:
        loop.set_exception_handler(old)


# ---------------------------------------------------------------- set_strategy
async def test_set_strategy_for_every_market_of_a_running_owner_name_object_then_default(
        fast_settings, tmp_path, monkeypatch):
    from pmm_widgets.store.recorder import DbRecorder
    from pmm_widgets.store.recording import Recorder

    recorded: list[Any] = []
    saved: list[Any] = []
    engine_rec = Recorder.engine

    def spy_engine(self: Recorder, ts: float, kind: str, payload: Any = None) -> None:
        if kind == "strategy":
            recorded.append(payload)
        engine_rec(self, ts, kind, payload)

    monkeypatch.setattr(Recorder, "engine", spy_engine)
    monkeypatch.setattr(DbRecorder, "market_override", lambda self, cid, s, p, ts: saved.append((cid, s, p)))
    eng = Engine(fast_settings.model_copy(update={"record": "on", "record_dir": str(tmp_path)}))
    eng.start()
    try:
        assert await eng.wait_role() == "owner"
        assert await until(lambda: len(eng.owner.markets) >= 2)
        cids = [m.condition_id for m in eng.owner.markets]
        cycle = eng.runtime.cycle
        seen: list[Event] = []
        eng.events.subscribe(lambda ev: seen.append(ev) if ev.kind is EventKind.STRATEGY else None)

        eng.set_strategy("*", "as", as_gamma=0.5)  # a name: every market, kept
        assert recorded == [{"market": c, "strategy": "as", "params": {"as_gamma": 0.5}} for c in cids]
        assert saved == [(c, "as", {"as_gamma": 0.5}) for c in cids]
        assert eng._strategy_overrides == {c: ("as", {"as_gamma": 0.5}) for c in cids}
        assert all(cycle.overrides[c].name == "as" for c in cids)
        assert cycle.default_strategy is None and eng._default_strategy is None
        assert [(e.message, e.market) for e in seen] == [("strategy of *: as {'as_gamma': 0.5}", None)]

        recorded.clear()
        saved.clear()
        seen.clear()
        mine = Joiner()
        eng.set_strategy("*", mine)  # an object: this process only, and markets that join later
        assert cycle.default_strategy is mine and eng._default_strategy is mine
        assert recorded == [] and saved == []
        assert eng._strategy_overrides == {c: (mine, {}) for c in cids}
        assert all(cycle.overrides[c].strategy is mine for c in cids)
        assert [(e.message, e.market) for e in seen] == [("strategy of *: joiner", None)]

        seen.clear()
        eng.set_strategy("*")  # back to the default everywhere: the reset is kept as NULL rows
        assert cycle.default_strategy is None and eng._default_strategy is None
        assert eng._strategy_overrides == {} and not any(c in cycle.overrides for c in cids)
        assert saved == [(c, None, {}) for c in cids]
        assert recorded == [{"market": c, "strategy": None, "params": {}} for c in cids]
        assert [(e.message, e.market) for e in seen] == [("strategy of *: default", None)]

        seen.clear()
        saved.clear()
        eng.set_strategy(cids[0], "spread", alpha=3)  # one market
        assert saved == [(cids[0], "spread", {"alpha": 3})] and list(eng._strategy_overrides) == [cids[0]]
        assert cycle.overrides[cids[0]].name == "spread" and cids[1] not in cycle.overrides
        assert [(e.message, e.market) for e in seen] == [("strategy of " + cids[0] + ": spread {'alpha': 3}", cids[0])]
    finally:
        await eng.stop()


async def test_an_idle_engines_object_for_every_market_is_the_next_runs_default(fast_settings):
    eng = Engine(fast_settings)
    mine = Joiner()
    eng.set_strategy("*", mine)
    assert eng._default_strategy is mine and eng._strategy_overrides == {}  # no universe yet: no market
    eng.set_strategy("c1")  # idle: a reset is kept for the start
    assert eng._strategy_overrides == {"c1": (None, {})}
    assert [e.message for e in eng.events.recent() if e.kind is EventKind.STRATEGY] == [
        "strategy of *: joiner", "strategy of c1: default"]


# ---------------------------------------------------------------- lease checks of a face
async def test_lease_holder_names_only_another_live_owner(fast_settings, db):
    from pmm_widgets.engine.lease import Lease

    eng = Engine(fast_settings)
    assert await eng.lease_holder() is None  # no row
    other = Lease(db, ttl_sec=3, owner="otherhost:1:a")
    assert other.try_acquire()
    assert await eng.lease_holder() == "otherhost:1:a"
    other.release(final_state=EngineState().to_json())  # its row kept, expired
    assert await eng.lease_holder() is None
    mine = Lease(db, ttl_sec=3, owner=eng.state.owner)
    assert mine.try_acquire()
    assert await eng.lease_holder() is None  # this engine itself


async def test_handover_pending_only_for_a_recent_hand_over_of_a_free_lease(fast_settings, db):
    import time

    from pmm_widgets.domain import Mode
    from pmm_widgets.engine.lease import Lease
    from pmm_widgets.engine.state import KillResult

    eng = Engine(fast_settings)
    assert await eng.handover_pending() is None  # no row
    page = Lease(db, ttl_sec=3, owner="page:1")

    def left(**kw: Any) -> None:
        assert page.try_acquire()
        page.release(final_state=EngineState(**kw).to_json())

    assert page.try_acquire()
    assert page.renew(EngineState(mode="live", handover_ts=time.time()).to_json())
    assert await eng.handover_pending() is None  # still owned: nothing to take over
    left(mode="live", handover_ts=time.time())
    assert await eng.handover_pending() is Mode.LIVE
    left(mode="dry_run", handover_ts=time.time() - 30)
    assert await eng.handover_pending() is Mode.DRY_RUN
    assert await eng.handover_pending(max_age=10) is None
    left(mode="paper", handover_ts=time.time() - 60.5)  # past HANDOVER_SEC
    assert await eng.handover_pending() is None
    left(mode="live", handover_ts=None)  # a plain stop, not a hand-over
    assert await eng.handover_pending() is None
    left(mode="live", handover_ts=time.time(), kill=KillResult(time.time(), 1, 0, True, "killed"))
    assert await eng.handover_pending() is None  # killed: stays down
    left(mode="bogus", handover_ts=time.time())
    assert await eng.handover_pending() is None


async def test_a_lease_the_db_cannot_give_is_retried_quoting_nothing_and_said_once(fast_settings):
    eng = Engine(fast_settings)
    calls: list[int] = []
    fail = {"on": True}

    def failing() -> BaseException | None:
        calls.append(1)
        return OSError("database is locked\nsecond line") if fail["on"] else None

    _, states = await start_with_a_flaky_lease(eng, failing)
    try:
        assert await until(lambda: len(calls) >= 2, timeout=5)
        assert eng.role != "owner" and eng._owner is None and eng.running
        warned = [(e.level, e.message) for e in eng.events.recent() if e.kind is EventKind.LEASE]
        assert warned == [(Level.WARNING, "cannot take the DB lease (database is locked): not quoting, retrying")]
        said = [s.last_error for s in states if s.last_error]
        assert said == ["cannot take the DB lease: database is locked: retrying"]
        fail["on"] = False
        assert await eng.wait_role(timeout=10) == "owner"
    finally:
        await eng.stop()


async def test_a_stop_while_the_lease_is_retried_ends_the_run_without_owning(fast_settings):
    eng = Engine(fast_settings)
    await eng._open_db()
    lease = eng._opened().lease
    calls: list[int] = []

    def broken(now: float | None = None) -> bool:
        calls.append(1)
        raise OSError("unreachable")

    lease.try_acquire = broken  # type: ignore[method-assign]
    task = eng.start()
    assert await until(lambda: len(calls) >= 1, timeout=5)
    await eng.stop()
    assert task.done() and task.exception() is None and eng._owner is None and eng.role == "idle"
    assert not [e for e in eng.events.recent() if e.kind is EventKind.ATTACHED]  # stopped: it does not attach either


# ---------------------------------------------------------------- _restore_params (an owner's start)
async def test_restore_params_newest_values_idle_changes_win_and_a_bad_one_is_said_and_skipped(fast_settings, db):
    import time

    from pmm_widgets.engine.param_log import latest, record

    record(db, {"alpha": 2.0, "skew": 0.4}, "zed", ts=900.0)  # older values: the newest win
    record(db, {"alpha": 2.5, "skew": 0.3, "not_a_param": 1, "regime_base": "regime"}, "alice", ts=1000.0)
    record(db, {"quoting_paused": True}, "bob", ts=1001.0)
    eng = Engine(fast_settings, persist_params=True)
    eng.set_params(skew=0.1, changed_by="carol")  # idle, the DB not open: kept, and it wins over the stored value
    default_base = eng.params.regime_base
    await eng._open_db()
    await eng._restore_params()
    assert eng.params.alpha == 2.5 and eng.params.skew == 0.1 and eng.params.quoting_paused
    assert eng.params.regime_base == default_base
    assert eng._unsaved_params == {}
    rows = latest(db)
    assert (rows["skew"].value, rows["skew"].changed_by) == (0.1, "carol")
    assert eng._pause_note == "paused before the restart (restored from the DB)"

    def hms(ts: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(ts))

    said = [(e.level, e.message) for e in eng.events.recent() if e.kind is EventKind.PARAMS]
    assert len(said) == 2
    assert said[0][0] is Level.WARNING and said[0][1].startswith("stored regime_base='regime' not restored: ")
    assert said[1] == (Level.INFO, f"restored from the DB: alpha=2.5 (by alice at {hms(1000.0)}), "
                                   f"quoting_paused=True (by bob at {hms(1001.0)})")


async def test_restore_params_with_nothing_stored_says_nothing_and_keeps_a_pause_note(fast_settings, db):
    from pmm_widgets.engine.param_log import latest

    eng = Engine(fast_settings, persist_params=True)
    await eng.pause(by="alice")  # idle: a pause kept for the start, with its note
    note = eng._pause_note
    eng.set_params(alpha=3.0, changed_by="bob")
    await eng._open_db()
    await eng._restore_params()
    assert eng._pause_note == note and eng.params.alpha == 3.0
    assert not [e for e in eng.events.recent() if e.kind is EventKind.PARAMS]
    rows = latest(db)
    assert {k: (v.value, v.changed_by) for k, v in rows.items()} == {"quoting_paused": (True, "alice"),
                                                                       "alpha": (3.0, "bob")}


async def test_a_runs_kill_result_is_its_own(fast_settings, db):
    eng = Engine(fast_settings)
    first = await eng.kill()  # idle: nothing to cancel
    task = eng.start(attach_only=True)  # nobody owns: ends at once, and nothing was killed in it
    await asyncio.wait_for(task, 10)
    assert eng.state.kill is None
    again = await eng.kill()
    assert again is not first and eng.state.kill is again


# ---------------------------------------------------------------- bug: "*" with a name before any universe was lost
def test_every_market_by_name_before_any_universe_is_refused_not_lost(fast_settings):
    """An engine that never ran knows no market: "*" with a name (or parameters) applied to none,
    was kept nowhere, and the event said it was set. Refused now, changing nothing."""
    eng = Engine(fast_settings)
    for strategy, params in (("as", {}), ("spread", {"alpha": 2}), (None, {"alpha": 2})):
        with pytest.raises(EngineStateError, match="no market is known yet"):
            eng.set_strategy("*", strategy, **params)
    assert eng._strategy_overrides == {} and eng._default_strategy is None
    assert not [e for e in eng.events.recent() if e.kind is EventKind.STRATEGY]
    mine = Joiner()
    eng.set_strategy("*", mine)  # an object is kept for the start (the default of every market)
    eng.set_strategy("*")  # and so is its reset
    assert eng._default_strategy is None
