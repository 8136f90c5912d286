"""What a mutation pass on engine/core.py (the `Engine` facade) found untested: the mode switch
(live never by accident: credentials, never while running), a kill of an idle engine, the task's
end (crash and cancel surfaced), the published state's listeners, parameter changes (applied,
validated, persisted with who) and the start's no-op when already running."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from engine_helpers import Joiner, count, param_rows, until
from pydantic import SecretStr, ValidationError

from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.engine.core import EngineStateError
from pmm_widgets.engine.state import EngineState
from pmm_widgets.errors import PmmError
from pmm_widgets.events import Event, EventKind, Level

KEY = "0x" + "11" * 32  # a throwaway private key (never funded)


# ---------------------------------------------------------------- set_mode: live is guarded
@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRY_RUN, "live", "dry_run"])
def test_set_mode_refuses_a_mode_that_trades_without_credentials(fast_settings, mode):
    eng = Engine(fast_settings)
    seen: list[EngineState] = []
    eng.add_state_listener(seen.append)
    with pytest.raises(EngineStateError, match=f"{Mode(mode).value} mode needs credentials") as got:
        eng.set_mode(mode)
    assert isinstance(got.value, PmmError) and isinstance(got.value, RuntimeError)  # (what callers caught before)
    assert eng.mode is Mode.PAPER and eng.state.mode == "paper" and seen == []


@pytest.mark.parametrize("creds", [{"private_key": SecretStr(KEY)},
                                   {"api_key": SecretStr("k"), "api_secret": SecretStr("s"),
                                    "api_passphrase": SecretStr("p")}], ids=["key", "l2"])
def test_set_mode_with_credentials_switches_and_publishes(fast_settings, creds):
    eng = Engine(fast_settings.model_copy(update=creds))
    seen: list[str] = []
    eng.add_state_listener(lambda s: seen.append(s.mode))
    eng.set_mode("live")
    assert eng.mode is Mode.LIVE and eng.state.mode == "live"
    eng.set_mode(Mode.DRY_RUN)
    eng.set_mode(Mode.PAPER)
    assert eng.mode is Mode.PAPER and seen == ["live", "dry_run", "paper"]


def test_paper_needs_no_credentials(fast_settings):
    eng = Engine(fast_settings, Mode.PAPER)
    eng.set_mode("paper")
    assert eng.mode is Mode.PAPER and eng.state.mode == "paper"


async def test_set_mode_is_refused_while_running_even_to_paper(fast_settings):
    eng = Engine(fast_settings.model_copy(update={"private_key": SecretStr(KEY)}))
    eng.start()
    try:
        assert await eng.wait_role() == "owner"
        for mode in (Mode.LIVE, Mode.PAPER):
            with pytest.raises(RuntimeError, match="stop the engine before switching mode"):
                eng.set_mode(mode)
        assert eng.mode is Mode.PAPER and eng.state.mode == "paper"
    finally:
        await eng.stop()
    eng.set_mode(Mode.LIVE)  # stopped: allowed again
    assert eng.mode is Mode.LIVE


# ---------------------------------------------------------------- start / kill / the task's end
async def test_a_second_start_while_running_is_a_no_op(fast_settings, db):
    eng = Engine(fast_settings)
    task = eng.start()
    try:
        assert await eng.wait_role() == "owner"
        ctl = eng._ctl
        assert eng.start() is task and eng._ctl is ctl and eng.task is task and eng.running
    finally:
        await eng.stop()
    assert not eng.running and task.done()
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0


async def test_attach_only_never_takes_a_free_lease(fast_settings, db):
    eng = Engine(fast_settings)
    task = eng.start(attach_only=True)
    await asyncio.wait_for(task, 10)
    assert eng.role != "owner" and eng._owner is None
    assert count(db, "SELECT COUNT(*) FROM orders") == 0
    # a later plain start owns it again (the flag is the start's, not the engine's for ever)
    eng.start()
    try:
        assert await eng.wait_role() == "owner"
    finally:
        await eng.stop()


async def test_kill_of_an_idle_engine_says_nothing_to_cancel_and_publishes_it(fast_settings):
    eng = Engine(fast_settings)
    seen: list[Any] = []
    eng.add_state_listener(lambda s: seen.append(s.kill))
    kr = await eng.kill()
    assert (kr.cancelled, kr.venue_open_after, kr.stopped) == (0, 0, True)
    assert kr.message == "engine was not running: nothing to cancel"
    assert eng.state.kill is kr and seen == [kr]
    assert await eng.kill() is kr and seen == [kr]  # the same result, not published again


@pytest.mark.integration
async def test_the_owner_kills_in_its_own_process_not_through_the_command_table(fast_settings, db):
    """The running owner's kill cancels here and stops: a kill sent as a `commands` row (an
    attached face's way) waits for the owner's command loop and its DB, the very things that may
    be failing when a trader presses kill."""
    eng = Engine(fast_settings)
    eng.start()
    assert await eng.wait_role() == "owner"
    assert await until(lambda: eng.state.totals.open_orders > 0)
    kr = await eng.kill()
    assert kr.stopped and kr.venue_open_after == 0 and not eng.running
    assert count(db, "SELECT COUNT(*) FROM commands WHERE kind = 'kill'") == 0


async def test_a_crash_of_the_run_is_surfaced_once_with_its_message(fast_settings):
    eng = Engine(fast_settings)
    errors: list[Event] = []
    eng.events.subscribe(lambda ev: errors.append(ev) if ev.level is Level.ERROR else None)

    async def broken_db() -> Any:
        eng._publish(EngineState(running=True))
        raise OSError("disk gone")

    eng._open_db = broken_db  # type: ignore[method-assign]
    task = eng.start()
    with pytest.raises(OSError, match="disk gone"):
        await eng.wait_role(timeout=5)
    assert task.done()
    assert eng.state.running is False and eng.state.last_error == "OSError: disk gone"
    assert [(e.kind, e.message) for e in errors] == [(EventKind.ERROR, "engine crashed: OSError: disk gone")]
    assert eng._ctl.role.is_set()


async def test_a_crash_the_owner_already_reported_is_not_reported_twice(fast_settings):
    eng = Engine(fast_settings)
    errors: list[Event] = []
    eng.events.subscribe(lambda ev: errors.append(ev) if ev.level is Level.ERROR else None)

    async def broken_db() -> Any:
        eng._crash_reported = True  # what an owner session that reported its crash leaves
        raise OSError("disk gone")

    async def run() -> None:
        await broken_db()

    eng.run = run  # type: ignore[method-assign]
    task = eng.start()
    await asyncio.wait({task})
    assert eng.state.last_error == "OSError: disk gone" and errors == []


async def test_a_cancelled_run_is_published_as_not_running(fast_settings):
    eng = Engine(fast_settings)
    started = asyncio.Event()

    async def hangs() -> None:
        eng._publish(EngineState(running=True, role="owner"))
        started.set()
        await asyncio.Event().wait()

    eng.run = hangs  # type: ignore[method-assign]
    task = eng.start()
    await started.wait()
    assert eng.state.running
    task.cancel()
    await asyncio.wait({task})
    assert eng.state.running is False and eng.state.last_error is None


async def test_a_clean_end_sets_the_role_known(fast_settings):
    eng = Engine(fast_settings)

    async def ends() -> None:
        await asyncio.sleep(0)

    eng.run = ends  # type: ignore[method-assign]
    task = eng.start()
    await asyncio.wait({task})
    assert eng._ctl.role.is_set() and eng.state.last_error is None
    assert await eng.wait_role(timeout=0.1) == "idle"


# ---------------------------------------------------------------- listeners
def test_a_broken_listener_never_stops_the_others_and_removal_is_idempotent(fast_settings):
    eng = Engine(fast_settings)
    got: list[int] = []

    def broken(_s: EngineState) -> None:
        raise ValueError("face bug")

    eng.add_state_listener(broken)
    remove = eng.add_state_listener(lambda s: got.append(s.tick))
    eng._publish(EngineState(tick=1))
    remove()
    remove()
    eng._publish(EngineState(tick=2))
    assert got == [1] and eng.state.tick == 2


# ---------------------------------------------------------------- parameters
def test_set_params_idle_applies_publishes_and_refuses_a_bad_value_whole(fast_settings):
    eng = Engine(fast_settings)
    seen: list[EngineState] = []
    eng.add_state_listener(seen.append)
    eng.set_params(alpha=2.0)
    assert eng.params.alpha == 2.0 and eng.state.params["alpha"] == 2.0 and len(seen) == 1
    with pytest.raises(ValidationError):
        eng.set_params(skew=0.25, alpha=-1)
    assert eng.params.alpha == 2.0 and eng.params.skew == fast_settings.skew and len(seen) == 1
    eng.params = {"skew": 0.25}
    assert eng.state.params["skew"] == 0.25


async def test_a_pause_note_is_published_only_while_paused(fast_settings):
    eng = Engine(fast_settings)
    await eng.pause(reason="pause", by="tester")
    assert eng.state.paused and eng.state.pause_note.startswith("pause by tester at ")
    eng._pause_note = "stale"
    eng.set_params(quoting_paused=False)
    assert not eng.state.paused and eng.state.pause_note == ""


def test_persisted_changes_before_the_db_opens_wait_then_are_written_at_once_without_a_loop(fast_settings, db):
    eng = Engine(fast_settings, persist_params=True)
    eng.set_params(alpha=2.0, changed_by="early")
    assert eng._unsaved_params == {"alpha": (2.0, "early")} and param_rows(db) == []
    asyncio.run(eng._open_db())
    eng.set_params(skew=0.25)  # no loop: recorded here, by this engine
    assert param_rows(db) == [("skew", eng.state.owner)]
    assert eng._unsaved_params == {"alpha": (2.0, "early")}


async def test_persisted_changes_with_a_loop_go_through_a_thread(fast_settings, db):
    eng = Engine(fast_settings, persist_params=True)
    await eng._open_db()
    eng.set_params(alpha=3.0, skew=0.5, changed_by="page-1")
    assert await until(lambda: len(param_rows(db)) == 2, timeout=5)
    assert sorted(param_rows(db)) == [("alpha", "page-1"), ("skew", "page-1")]


async def test_without_persist_params_nothing_is_recorded(fast_settings, db):
    eng = Engine(fast_settings)
    await eng._open_db()
    eng.set_params(alpha=3.0, changed_by="page-1")
    await asyncio.sleep(0.1)
    assert param_rows(db) == [] and eng._unsaved_params == {}


def test_assigning_a_params_object_applies_its_values(fast_settings):
    from pmm_widgets.config import Params

    eng = Engine(fast_settings)
    eng.params = Params.model_validate({**eng.params.model_dump(), "alpha": 3.0})
    assert eng.params.alpha == 3.0 and eng.state.params["alpha"] == 3.0


# ---------------------------------------------------------------- stop: never interrupt a clean shutdown
class StuckOwner:
    """What `stop` reads of an owner session: when its clean shutdown began."""

    def __init__(self, shutdown_started: float | None) -> None:
        self.shutdown_started = shutdown_started
        self.fatal_halt = None
        self.store = None
        self.has_runtime = False


async def test_stop_waits_for_a_clean_shutdown_under_way_past_its_grace(fast_settings):
    """A shutdown that takes longer than the stop's grace (cancels answered slowly) is waited
    for, never cancelled: interrupting it would leave orders resting."""
    eng = Engine(fast_settings)
    eng.stop_grace_sec = grace = 0.4  # (2 s by default)
    cancelled: list[bool] = []

    async def shutting_down() -> None:
        await eng._ctl.stop.wait()
        eng._owner = StuckOwner(time.time())  # type: ignore[assignment]
        try:
            await asyncio.sleep(grace + 0.3)  # the cancel-all's answers are slow
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    eng.run = shutting_down  # type: ignore[method-assign]
    errors: list[Event] = []
    eng.events.subscribe(lambda ev: errors.append(ev) if ev.level is Level.ERROR else None)
    task = eng.start()
    await asyncio.sleep(0.01)
    await eng.stop()
    assert task.done() and not task.cancelled() and cancelled == [] and errors == []


@pytest.mark.parametrize("refresh", [0.2, 5.0])
async def test_stop_cancels_a_run_stuck_before_its_shutdown_after_the_grace(fast_settings, refresh):
    """The grace is `stop_grace_sec` whatever the quote refresh (it was two refreshes, at least
    2 s: at 5 s a stuck cycle held the shutdown's cancel-all back 10 s)."""
    eng = Engine(fast_settings.model_copy(update={"quote_refresh_sec": refresh}))
    eng.stop_grace_sec = grace = 0.4  # (2 s by default)

    async def stuck() -> None:  # a cycle stuck in the venue: ignores the stop event
        await asyncio.Event().wait()

    eng.run = stuck  # type: ignore[method-assign]
    task = eng.start()
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    await eng.stop()
    took = time.monotonic() - t0
    assert task.cancelled() and grace - 0.1 <= took < grace + 1.2


@pytest.mark.parametrize("ttl,http,backstop", [(3.0, 1.0, 30.0), (15.0, 1.0, 45.0), (3.0, 10.0, 40.0)])
async def test_stop_interrupts_a_shutdown_only_after_its_backstop(fast_settings, ttl, http, backstop):
    """The backstop: 30 s, or three lease TTLs, or four HTTP deadlines, whichever is longest."""
    eng = Engine(fast_settings.model_copy(update={"lease_ttl_sec": ttl, "http_deadline_sec": http}))

    async def never_ends() -> None:
        await eng._ctl.stop.wait()
        eng._owner = StuckOwner(time.time() - backstop + 0.5)  # type: ignore[assignment]  # began long ago
        await asyncio.Event().wait()

    eng.run = never_ends  # type: ignore[method-assign]
    errors: list[str] = []
    eng.events.subscribe(lambda ev: errors.append(ev.message) if ev.level is Level.ERROR else None)
    task = eng.start()
    await asyncio.sleep(0.01)
    await eng.stop()
    assert task.cancelled()
    assert errors == [f"clean shutdown still running after {backstop:g}s: interrupted"]


async def test_stop_of_an_engine_not_running_returns_at_once(fast_settings):
    eng = Engine(fast_settings)
    await asyncio.wait_for(eng.stop(), 0.5)
    assert not eng.running and eng._ctl.stop.is_set() is False


async def test_a_parameter_change_of_a_running_owner_goes_to_its_recording(fast_settings):
    eng = Engine(fast_settings)
    eng.start()
    recorded: list[float] = []
    try:
        assert await eng.wait_role() == "owner"
        eng.owner.record_params = recorded.append  # type: ignore[method-assign]
        t0 = time.time()
        eng.set_params(alpha=2.0)
        assert len(recorded) == 1 and t0 <= recorded[0] <= time.time()
    finally:
        await eng.stop()
    assert eng._store is None
    eng.set_params(alpha=2.5)  # the run is over: nothing to record to
    assert len(recorded) == 1 and eng.params.alpha == 2.5


async def test_an_attached_face_validates_strategy_parameters_against_the_owners_values(fast_settings, db):
    """The owner's regime vols are wider than this face's own settings: a per-market override
    valid for the owner is accepted (and applied there), not judged by the face's defaults."""
    owner = Engine(fast_settings.model_copy(update={"regime_reduce_vol": 0.5, "regime_halt_vol": 0.6}))
    owner.start()
    face = Engine(fast_settings)
    try:
        assert await owner.wait_role() == "owner"
        assert await until(lambda: bool(owner.state.markets))
        face.start()
        assert await face.wait_role() == "attached"
        assert await until(lambda: face.state.params.get("regime_reduce_vol") == 0.5)
        cid = owner.state.markets[0].condition_id
        face.set_strategy(cid, "regime", regime_wide_vol=0.2)  # > the face's own 0.06, < the owner's 0.5
        assert await until(lambda: owner._strategy_overrides.get(cid) == ("regime", {"regime_wide_vol": 0.2}),
                           timeout=5)
        with pytest.raises(ValueError):
            face.set_strategy(cid, "regime", regime_wide_vol=0.55)  # above the owner's reduce vol
        with pytest.raises(ValueError, match="only be handed to the engine that owns the lease"):
            face.set_strategy(cid, Joiner())
    finally:
        await face.stop()
        await owner.stop()


def test_set_strategy_refuses_an_unknown_name_or_a_non_strategy_and_changes_nothing(fast_settings):
    eng = Engine(fast_settings)
    seen: list[Event] = []
    eng.events.subscribe(seen.append)
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        eng.set_strategy("c1", "nope")
    with pytest.raises(ValueError, match="is not a strategy"):
        eng.set_strategy("c1", object())
    with pytest.raises(ValueError, match="not a strategy parameter"):
        eng.set_strategy("c1", "spread", bogus=1)
    assert eng._strategy_overrides == {} and seen == []
    eng.set_strategy("c1", "spread", alpha=2)
    assert eng._strategy_overrides == {"c1": ("spread", {"alpha": 2})}
    assert [e.message for e in seen] == ["strategy of c1: spread {'alpha': 2}"]


async def test_a_restart_after_a_stop_runs_with_fresh_controls(fast_settings, db):
    eng = Engine(fast_settings)
    eng.start()
    assert await eng.wait_role() == "owner"
    await eng.stop()
    first_ctl = eng._ctl
    eng.start()
    try:
        assert eng._ctl is not first_ctl and not eng._ctl.stop.is_set()
        assert await eng.wait_role() == "owner"
        assert await until(lambda: eng.state.tick >= 2, timeout=10) and eng.running
    finally:
        await eng.stop()


async def test_wait_role_before_start_says_so():
    from pmm_widgets.config import Settings

    eng = Engine(Settings(_env_file=None, db_url="sqlite:///unused.db"))
    with pytest.raises(AssertionError, match="call start"):
        await eng.wait_role(timeout=0.1)


@pytest.mark.parametrize("handover", [None, False, True])
async def test_stop_tells_the_run_whether_it_is_a_hand_over(fast_settings, handover):
    eng = Engine(fast_settings)
    seen: list[bool] = []

    async def run() -> None:
        await eng._ctl.stop.wait()
        seen.append(eng._ctl.handover)

    eng.run = run  # type: ignore[method-assign]
    eng.start()
    await asyncio.sleep(0.01)
    await (eng.stop() if handover is None else eng.stop(handover=handover))
    assert seen == [bool(handover)]


async def test_wait_role_leaves_no_waiter_behind(fast_settings):
    eng = Engine(fast_settings)

    async def hangs() -> None:
        await asyncio.Event().wait()

    eng.run = hangs  # type: ignore[method-assign]
    task = eng.start()
    try:
        assert await eng.wait_role(timeout=0.05) == "idle"
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task(), task}
    finally:
        task.cancel()
        await asyncio.wait({task})
