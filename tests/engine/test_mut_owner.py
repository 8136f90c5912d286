"""The owner's stop paths (mutation testing of engine/owner.py, hand-picked mutants of each).

The other engine tests see every order gone *in the end*: a halted or paused engine's next cycle,
a circuit probe, or the shutdown cancels too, so a deleted cancel on one of these paths went
unseen. Here each path is the only one that can act in the window the test looks at: a circuit
whose first probe is a minute away, a halt checked the moment it returns (no cycle has run), a
probe checked the moment it closes the circuit, a deleted DB while the cycle (and its own store
check) hangs. Also: a risk kill ends the run as a kill; a lease silent for LEASE_GIVE_UP_TTLS TTLs
ends it; slow renewals keep the halt on; the halt's cancel budget is the lease left after it.
"""
from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest
from engine_helpers import open_orders_in_db, until

from pmm_widgets.engine import Engine
from pmm_widgets.engine import owner as owner_module
from pmm_widgets.engine.lease import LeaseTimer
from pmm_widgets.engine.owner import OwnerSession
from pmm_widgets.events import EventKind

pytestmark = pytest.mark.integration


async def _quoting(settings):
    engine = Engine(settings)
    seen: list[str] = []
    engine.events.subscribe(lambda ev: seen.append(ev.kind))
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: len(engine.runtime.exchange.open_orders()) > 0)
    return engine, seen


async def _boom(*a, **k):
    raise ValueError("boom")


async def test_the_circuit_cancels_when_it_opens_not_at_its_first_probe(fast_settings, db):
    """The probe (a minute away here) cancels too; the opening alone must already have."""
    settings = fast_settings.model_copy(update={"circuit_errors": 2, "circuit_probe_sec": 60.0})
    engine, seen = await _quoting(settings)
    try:
        engine.runtime.cycle.run_once = _boom
        assert await until(lambda: "circuit_open" in seen)
        assert await until(lambda: engine.runtime.exchange.open_orders() == [], timeout=5)
        assert await until(lambda: open_orders_in_db(db) == 0, timeout=5)
        assert engine.owner._circuit.is_open and engine.owner._circuit.next_probe > engine.state.ts + 30
    finally:
        await engine.stop()


async def test_a_failed_cancel_at_the_opening_is_done_by_the_probe_before_it_closes(fast_settings, db):
    """The opening's cancel-all fails (the venue is down): the circuit may close only after a
    probe that cancelled; at the moment it closes nothing of ours rests."""
    settings = fast_settings.model_copy(update={"circuit_errors": 2, "circuit_probe_sec": 0.3})
    engine, seen = await _quoting(settings)
    ex = engine.runtime.exchange
    real_cancel_all = ex.cancel_all
    calls = {"n": 0}

    async def first_fails():
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("venue down")
        return await real_cancel_all()

    resting_at_close: list[int] = []
    engine.events.subscribe(lambda ev: resting_at_close.append(len(ex.open_orders()))
                            if ev.kind == EventKind.CIRCUIT_CLOSED else None)
    try:
        ex.cancel_all = first_fails
        engine.runtime.cycle.run_once = _boom
        assert await until(lambda: "circuit_closed" in seen)
        assert calls["n"] >= 2
        assert resting_at_close and resting_at_close[0] == 0, resting_at_close
    finally:
        await engine.stop()


async def test_a_halt_cancels_every_order_before_it_returns(fast_settings, db):
    """`_halt`: "stop quoting and cancel every order now" — done when it returns, before any
    held cycle could pull the quotes."""
    engine, seen = await _quoting(fast_settings)
    owner = engine.owner
    try:
        assert len(engine.runtime.exchange.open_orders()) > 0
        await owner._halt(EventKind.WRITER, "a test's halt")
        assert engine.runtime.exchange.open_orders() == []
        assert "a test's halt" in (engine.state.halted or "")
        assert engine.running  # not fatal: the run goes on, halted
        owner._clear_halt(EventKind.WRITER, "test over")
        assert await until(lambda: len(engine.runtime.exchange.open_orders()) > 0)  # quoting resumes
    finally:
        await engine.stop()
    assert open_orders_in_db(db) == 0


@pytest.mark.parametrize("ttl", [6.0, 15.0, 30.0, 120.0])
def test_a_halts_cancel_may_take_all_the_lease_left_after_the_halt_threshold(fast_settings, ttl):
    """The halt comes `halt_after` (a third of the TTL) after the last renewal; its cancel-all may
    take what is left of the lease, less half a second, and no more: done before another engine
    can take over, and not cut short while the lease still holds."""
    settings = fast_settings.model_copy(update={"lease_ttl_sec": ttl})
    budget = OwnerSession._cancel_budget(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    halt_after = LeaseTimer(ttl, proven_at=0.0).halt_after
    assert halt_after + budget == pytest.approx(ttl - 0.5)


async def test_a_risk_kill_cancels_everything_and_ends_the_run_as_killed(fast_settings, db):
    """The daily loss limit asks for a kill: the run ends (no restart by itself), every order is
    cancelled and verified, and every face sees "killed" with the kill's result."""
    engine, seen = await _quoting(fast_settings)
    task = engine.task
    assert task is not None
    risk = engine.runtime.cycle.risk
    risk.check_losses = lambda *a, **k: True  # the day's loss passed max_daily_loss_usd
    assert await until(task.done, timeout=20)
    assert "risk_kill" in seen and "kill" in seen
    s = engine.state
    assert not s.running and s.kill is not None and s.kill.ok and s.kill.venue_open_after == 0
    assert s.markets and all(m.status == "killed" for m in s.markets)
    assert open_orders_in_db(db) == 0


async def test_a_lease_that_cannot_be_renewed_for_long_ends_the_run(fast_settings, db, monkeypatch):
    """Renewals keep failing (the DB answers nothing): first a halt (orders cancelled), and once
    the silence lasts LEASE_GIVE_UP_TTLS TTLs the run ends as a safety halt, not a wait forever.
    (The limit is lowered to 2 TTLs here: the production 20 would make this test a minute long.)"""
    monkeypatch.setattr(owner_module, "LEASE_GIVE_UP_TTLS", 2)
    engine, seen = await _quoting(fast_settings)
    lease = engine.owner._dbh.lease

    def no_answer(*a, **k):
        raise OSError("the DB does not answer")

    lease.renew = no_answer
    assert await until(lambda: "lease" in (engine.state.halted or ""), timeout=10)
    assert await until(lambda: not engine.running, timeout=4 * fast_settings.lease_ttl_sec)
    assert "giving up" in (engine.fatal_halt or ""), engine.fatal_halt
    assert engine.state.totals.open_orders == 0


async def test_a_deleted_db_ends_the_run_even_while_a_cycle_is_stuck(fast_settings, db, db_url):
    """The cycle's own store check cannot run while the cycle hangs at the venue; the lease loop
    sees the deleted file, cancels (past the stuck cycle's trade lock) and makes the halt fatal."""
    engine, seen = await _quoting(fast_settings)
    gate = asyncio.Event()

    async def stuck(*a, **k):
        await gate.wait()
        raise ValueError("the venue never answered")

    engine.runtime.cycle.run_once = stuck
    await asyncio.sleep(0.5)  # the quote loop is inside the stuck cycle now
    path = db_url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    try:
        assert await until(lambda: engine.fatal_halt is not None, timeout=10), engine.state.halted
        assert "deleted" in (engine.fatal_halt or "")
        assert engine.runtime.exchange.open_orders() == []  # cancelled with the cycle still stuck
    finally:
        gate.set()
        assert await until(lambda: not engine.running, timeout=15)


async def test_a_renewal_that_waited_behind_a_lock_does_not_lift_the_halt(fast_settings, db):
    """Each renewal takes longer than the halt threshold (a DB busy behind a lock): a renewal
    proves the lease only from when it started, so the halt stays on while they are slow (no
    flapping halt, cancel, resume, quote), and lifts once a quick renewal lands."""
    engine, seen = await _quoting(fast_settings)
    lease = engine.owner._dbh.lease
    real_renew = lease.renew
    halt_after = LeaseTimer(fast_settings.lease_ttl_sec, proven_at=0.0).halt_after
    messages: list[str] = []
    engine.events.subscribe(lambda ev: messages.append(ev.message) if ev.kind == EventKind.LEASE else None)

    def slow(*a, **k):  # the renewal is timed from its start; its answer comes back late
        ok = real_renew(*a, **k)
        time.sleep(halt_after * 1.6)
        return ok

    lease.renew = slow
    try:
        assert await until(lambda: "lease" in (engine.state.halted or ""), timeout=10)
        await asyncio.sleep(4 * halt_after * 1.6)  # several slow renewals land meanwhile
        assert "lease" in (engine.state.halted or "")
        assert not any("quoting resumes" in m for m in messages), messages
        assert engine.runtime.exchange.open_orders() == []
    finally:
        lease.renew = real_renew
    assert await until(lambda: engine.state.halted is None, timeout=10)  # a quick renewal lifts it
    await engine.stop()


def test_the_default_lease_leaves_the_halts_cancel_a_whole_venue_call():
    """With the defaults, every live start warned "PMM_LEASE_TTL_SEC=15 leaves 9.5s for a cancel …
    less than PMM_HTTP_TIMEOUT_SEC=10": the defaults themselves broke the rule the warning checks."""
    from pmm_widgets.config import Settings

    settings = Settings(_env_file=None)
    assert OwnerSession._cancel_budget(SimpleNamespace(settings=settings)) >= settings.http_timeout_sec  # type: ignore[arg-type]
