"""What a third mutation pass on engine/core.py (the lease, the hand-over check, the restore of
persisted parameters, `set_strategy`, the owner role) found: a stopped engine never asks for the
lease; a lease the DB cannot give is asked for again each second, waiting on the stop, and once
taken the status no longer says it cannot be (it did, for the whole owned run); a face that takes
the lease over publishes its own id, mode and venue and no error of the old owner's (it kept the
old owner's); a headless owner keeps its values and its own end is no hand-over; a kill returns
the session's verified result; a crash is said once; a market's strategy parameters are checked
against the values in force, not the last published ones; and persisted parameters bounded by
one another (regime vols wide <= reduce <= halt, trade-through rates, the before-end times) are
restored whole whatever their order (one at a time in name order, a consistent set lost some: a
tightened regime machine came back loosened after a restart)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from engine_helpers import start_with_a_flaky_lease, until
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from owner_fakes import instant_waits
from pydantic import ValidationError

from pmm_widgets.config import Params
from pmm_widgets.engine import Engine
from pmm_widgets.engine import core as core_module
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.owner import StartAborted
from pmm_widgets.engine.param_log import latest, record
from pmm_widgets.engine.runtime import open_db
from pmm_widgets.engine.state import EngineState
from pmm_widgets.events import EventKind, Level
from pmm_widgets.store.schema import param_changes


# ---------------------------------------------------------------- _try_acquire
async def test_a_stopped_engine_never_asks_for_the_lease(fast_settings):
    eng = Engine(fast_settings)
    await eng._open_db()
    lease = eng._opened().lease
    asked: list[int] = []
    lease.try_acquire = lambda now=None: asked.append(1) or True  # type: ignore[method-assign]
    eng._ctl.stop.set()
    assert await eng._try_acquire() is False
    assert asked == [] and lease.read() is None


async def test_a_lease_retried_each_second_is_owned_without_the_retry_error_left_on_the_status(
        fast_settings, monkeypatch):
    waits = instant_waits(monkeypatch, core_module)
    eng = Engine(fast_settings)
    failures = [OSError("database is locked"), OSError("database is locked")]
    lease, states = await start_with_a_flaky_lease(eng, lambda: failures.pop() if failures else None)
    try:
        assert await eng.wait_role(timeout=10) == "owner"
        assert waits == [1.0, 1.0]  # each failure waits a second (or the stop) before asking again
        assert [s.last_error for s in states if s.last_error] == [
            "cannot take the DB lease: database is locked: retrying"]  # said once
        assert eng.state.last_error is None  # the owner's status no longer says it cannot take the lease
        row = lease.read()
        assert row is not None and row.owner == eng.state.owner
    finally:
        await eng.stop()


async def test_a_stop_that_cancels_the_run_while_the_lease_thread_runs_leaves_no_lease_behind(fast_settings):
    """The DB thread that asks for the lease cannot be stopped: it used to take the lease after
    `stop()` had cancelled the run, and nobody renewed or released it: every other engine then
    waited a whole lease TTL. Now the cancelled run waits for that thread and gives the lease back."""
    gate, entered, taken = threading.Event(), threading.Event(), threading.Event()
    eng = Engine(fast_settings)
    await eng._open_db()
    lease = eng._opened().lease
    real = lease.try_acquire

    def slow(now: float | None = None) -> bool:  # a DB that answers late (locked by a backup, say)
        entered.set()
        gate.wait(20)
        got = real(now)
        taken.set()
        return got

    lease.try_acquire = slow  # type: ignore[method-assign]
    eng.start()
    assert await asyncio.to_thread(entered.wait, 10)
    stopping = asyncio.ensure_future(eng.stop())
    assert await until(lambda: eng._task is not None and eng._task.cancelling() > 0, timeout=15)  # grace over
    gate.set()  # the thread now takes the lease
    await asyncio.wait({stopping}, timeout=30)
    assert stopping.done() and not eng.running
    assert await asyncio.to_thread(taken.wait, 10)  # the thread did take it
    assert lease.read() is None  # given back: the next engine owns at once
    assert not lease.held
    nxt = Lease(lease.db, ttl_sec=fast_settings.lease_ttl_sec)
    assert nxt.try_acquire()


async def test_a_face_that_takes_over_publishes_its_own_identity_not_the_old_owners(fast_settings, db):
    old = Lease(db, ttl_sec=3, owner="otherhost:1:old")  # another engine: live on Polymarket, its venue failing
    assert old.try_acquire()
    assert old.renew(EngineState(role="owner", mode="live", venue="polymarket", owner="otherhost:1:old",
                                 last_error="universe load failed (ConnectError: down); retrying in 2.0s").to_json())
    face = Engine(fast_settings, auto_takeover=True)
    seen: list[EngineState] = []
    face.add_state_listener(seen.append)
    face.start()
    try:
        assert await face.wait_role() == "attached"
        assert (face.state.mode, face.state.venue, face.state.last_error) == (
            "live", "polymarket", "universe load failed (ConnectError: down); retrying in 2.0s")  # mirrored
        old.release()  # it stopped
        assert await until(lambda: face.role == "owner" and face.state.tick >= 1, timeout=15)
        owned = [(s.owner, s.mode, s.venue, s.last_error) for s in seen if s.role == "owner"]
        assert set(owned) == {(face._owner_id, "paper", "sandbox", None)}  # from its first snapshot as owner
    finally:
        await face.stop()


# ---------------------------------------------------------------- _run_owner
async def test_a_headless_owner_run_keeps_its_values_and_its_own_end_is_no_hand_over(fast_settings, db):
    record(db, {"alpha": 2.5}, "alice", ts=1000.0)  # a dashboard's change, in the DB
    eng = Engine(fast_settings)  # headless: no persist_params, the values as given
    alpha = eng.params.alpha
    await asyncio.wait_for(eng.run(max_seconds=0.6), 15)  # ended by itself, not by a stop(handover=...)
    assert eng._owner is not None and eng.fatal_halt is None
    assert eng.params.alpha == alpha != 2.5
    assert not [e for e in eng.events.recent() if e.kind is EventKind.PARAMS]
    assert eng._opened().lease.read() is None and await eng.handover_pending() is None  # released, no mark


async def test_a_kill_of_the_running_owner_returns_its_sessions_verified_result(fast_settings):
    eng = Engine(fast_settings)
    eng.start()
    try:
        assert await eng.wait_role() == "owner"
        assert await until(lambda: eng.state.totals.open_orders > 0)
        kr = await eng.kill()
    finally:
        await eng.stop()
    assert kr is eng.owner.kill_result and kr.cancelled > 0 and kr.message.startswith("KILLED: ")
    assert eng.state.kill == kr  # not an idle engine's "nothing to cancel"


async def test_an_owner_crash_is_said_once_by_its_session_not_again_by_the_task(fast_settings):
    eng = Engine(fast_settings)
    crashes: list[str] = []
    eng.events.subscribe(lambda ev: crashes.append(ev.message) if ev.kind is EventKind.ERROR else None)
    task = eng.start()
    assert await eng.wait_role() == "owner"

    async def fails(*_a: Any, **_k: Any) -> Any:
        raise ValueError("cycle and its guard both fail")

    eng.owner._cycle_failed = fails  # type: ignore[method-assign]
    eng.runtime.cycle.run_once = fails  # type: ignore[method-assign]
    await asyncio.wait({task}, timeout=15)
    assert task.done() and isinstance(task.exception(), ValueError)
    assert crashes == ["engine crashed: ValueError: cycle and its guard both fail"]


# ---------------------------------------------------------------- _restore_params: bounded values
LOWERED_VOLS = {"regime_wide_vol": 0.01, "regime_reduce_vol": 0.02, "regime_halt_vol": 0.04}


@pytest.mark.parametrize("stored", [
    LOWERED_VOLS,  # halt (first by name) is below the default wide..reduce until they are restored
    {"regime_wide_tt_per_min": 0.5, "regime_reduce_tt_per_min": 0.8},  # reduce first: below the default wide
    {"regime_halt_before_end_min": 90.0, "regime_reduce_before_end_min": 120.0},  # halt first: above the default reduce
], ids=["vols", "trade-throughs", "before-end"])
async def test_stored_values_bounded_by_one_another_are_restored_whole(fast_settings, db, stored):
    record(db, stored, "alice", ts=1000.0)
    eng = Engine(fast_settings, persist_params=True)
    assert not all(getattr(eng.params, k) == v for k, v in stored.items())  # (a change to restore)
    await eng._open_db()
    await eng._restore_params()
    assert {k: getattr(eng.params, k) for k in stored} == stored
    said = [(e.level, e.message) for e in eng.events.recent() if e.kind is EventKind.PARAMS]
    assert [lvl for lvl, _ in said] == [Level.INFO]
    assert all(f"{k}={v} (by alice at " in said[0][1] for k, v in stored.items())


async def test_a_stored_value_against_an_idle_change_is_said_and_skipped_the_rest_restored(fast_settings, db):
    record(db, {**LOWERED_VOLS, "alpha": 2.5}, "alice", ts=1000.0)
    eng = Engine(fast_settings, persist_params=True)
    eng.set_params(regime_reduce_vol=0.05, changed_by="bob")  # idle, before the DB is open: it wins
    await eng._open_db()
    await eng._restore_params()
    p = eng.params
    assert (p.regime_wide_vol, p.regime_reduce_vol, p.regime_halt_vol, p.alpha) == (0.01, 0.05, 0.1, 2.5)
    said = [(e.level, e.message) for e in eng.events.recent() if e.kind is EventKind.PARAMS]
    assert len(said) == 2 and said[0][0] is Level.WARNING
    assert said[0][1] == ("stored regime_halt_vol=0.04 not restored: regime vols must satisfy wide <= reduce <= halt "
                          "(regime_wide_vol=0.01, regime_reduce_vol=0.05, regime_halt_vol=0.04)")
    assert said[1][0] is Level.INFO and "regime_halt_vol" not in said[1][1]
    assert said[1][1].startswith("restored from the DB: alpha=2.5 (by alice at ")
    assert "regime_wide_vol=0.01" in said[1][1] and "regime_reduce_vol" not in said[1][1]
    assert (latest(db)["regime_reduce_vol"].value, latest(db)["regime_reduce_vol"].changed_by) == (0.05, "bob")


_BOUNDED = ("calib_min_mult", "calib_max_mult", "regime_wide_vol", "regime_reduce_vol", "regime_halt_vol",
            "regime_wide_tt_per_min", "regime_reduce_tt_per_min", "regime_halt_before_end_min",
            "regime_reduce_before_end_min")


def _pair(lo: float, hi: float) -> Any:
    return st.lists(st.floats(min_value=lo, max_value=hi), min_size=2, max_size=2).map(sorted)


_VALUES = st.tuples(
    st.floats(min_value=0.01, max_value=1.0), st.floats(min_value=1.0, max_value=100.0),  # calib min <= 1 <= max
    st.lists(st.floats(min_value=0.001, max_value=1.0), min_size=3, max_size=3).map(sorted),
    _pair(0.01, 1000.0), _pair(0.0, 525_600.0),
).map(lambda t: dict(zip(_BOUNDED, (t[0], t[1], *t[2], t[3][0], t[3][1], t[4][0], t[4][1]), strict=True)))


def test_any_consistent_stored_values_are_restored_exactly_over_any_consistent_start(fast_settings):
    handles = open_db(fast_settings, "test")
    try:
        @settings(max_examples=100, deadline=None)
        @given(start=_VALUES, stored=_VALUES, keep=st.sets(st.sampled_from(_BOUNDED), min_size=1))
        def check(start: dict[str, float], stored: dict[str, float], keep: set[str]) -> None:
            changed = {k: v for k, v in stored.items() if k in keep}
            try:  # what the DB holds was valid when recorded (over this start)
                Params.model_validate({**Params().model_dump(), **start, **changed})
            except ValidationError:
                assume(False)
            with handles.db.begin() as conn:
                conn.execute(sa.delete(param_changes))
            record(handles.db, changed, "alice", ts=1000.0)
            eng = Engine(fast_settings.model_copy(update=start), persist_params=True)
            eng._dbh = handles
            asyncio.run(eng._restore_params())
            assert {k: getattr(eng.params, k) for k in _BOUNDED} == {**start, **changed}
            assert not [e for e in eng.events.recent() if e.level is Level.WARNING]

        check()
    finally:
        handles.db.dispose()


# ---------------------------------------------------------------- set_strategy: against the values in force
def test_strategy_parameters_are_checked_against_the_values_in_force_not_the_last_published(fast_settings):
    eng = Engine(fast_settings)
    eng.params.regime_wide_vol = 0.05  # a notebook's direct assignment: validated, published at the next cycle
    assert eng.state.params["regime_wide_vol"] != 0.05
    with pytest.raises(ValidationError, match="wide <= reduce <= halt"):
        eng.set_strategy("c1", "regime", regime_reduce_vol=0.04)  # fine by the published values, not by these
    assert eng._strategy_overrides == {}
    eng.set_strategy("c1", "regime", regime_reduce_vol=0.06)
    assert eng._strategy_overrides == {"c1": ("regime", {"regime_reduce_vol": 0.06})}


async def test_a_hand_over_stop_that_lands_as_the_lease_is_taken_is_kept(fast_settings, db):
    """A page reload's `stop(handover=True)` between the lease's acquire and the owner role: the
    final lease row still says hand-over, so the reloaded page is offered to go on (the owner role
    used to reset the mark it had just been given)."""
    eng = Engine(fast_settings)
    real = eng._try_acquire

    async def taken_then_stopped() -> bool:
        got = await real()
        eng._ctl.handover = True  # what stop(handover=True) sets, then the stop itself
        eng._ctl.stop.set()
        return got

    eng._try_acquire = taken_then_stopped  # type: ignore[method-assign]
    with pytest.raises(StartAborted):  # stopped before its first universe attempt: it never started
        await asyncio.wait_for(eng.run(), 30)
    assert await eng.handover_pending() is eng.mode
    row = Lease(db, ttl_sec=3).read()
    assert row is not None and row.state_json is not None and row.state_json["handover_ts"] is not None
