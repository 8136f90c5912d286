"""The owner session (`engine/owner.py`): its background loops live in one TaskGroup and end
through its one exit path; a failing loop stops the run with every order cancelled first; the one
lease loop keeps renewing while the shutdown runs and stops before the release."""

from __future__ import annotations

import asyncio
import time

import pytest
from engine_helpers import count, open_orders_in_db, until

from pmm_widgets.engine import Engine
from pmm_widgets.engine.owner import OwnerSession

pytestmark = pytest.mark.integration

LOOPS = {"pmm-lease", "pmm-universe", "pmm-prune"}


def _loops_alive() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks() if not t.done()} & LOOPS


async def test_background_loops_are_owned_and_end_with_the_run(fast_settings, db):
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0)
    assert _loops_alive() == LOOPS  # all three run, named, while quoting
    await engine.stop()
    assert _loops_alive() == set()  # the group's exit ended every one of them
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0  # released after the lease loop ended
    with pytest.raises(RuntimeError):
        _ = engine.runtime  # the session's runtime is gone with the run


async def test_a_failing_background_loop_stops_the_run_after_cancelling(fast_settings, db, monkeypatch):
    """A loop that dies proves nothing any more: the run stops (not crashes), orders are cancelled
    first, the reason is on every face, and the other loops end with the group."""
    started = asyncio.Event()

    async def broken_prune(self: OwnerSession) -> None:
        started.set()
        await self._ctl.role.wait()
        await asyncio.sleep(0.6)  # let it quote first
        raise OSError("retention disk gone")

    monkeypatch.setattr(OwnerSession, "_prune_loop", broken_prune)
    engine = Engine(fast_settings)
    seen: list[tuple[str, str]] = []
    engine.events.subscribe(lambda ev: seen.append((ev.kind, ev.message)))
    task = engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(task.done, timeout=20)
    assert task.exception() is None  # a clean stop through the shutdown, not a crash
    assert started.is_set() and _loops_alive() == set()
    assert "background task pmm-prune failed: OSError: retention disk gone" in (engine.state.last_error or "")
    stop_at = next(i for i, (k, _) in enumerate(seen) if k == "engine_stop")
    fail_at = next(i for i, (k, m) in enumerate(seen) if k == "error" and "pmm-prune" in m)
    assert fail_at < stop_at
    assert "0 open" in seen[stop_at][1]  # the shutdown cancelled and verified
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0


async def test_one_lease_loop_renews_through_the_shutdown(fast_settings, db):
    """There is no second renewer for the shutdown: the lease loop that ran while quoting is the
    one that keeps renewing while a slow cancel-all runs, and it has ended when the lease is released."""
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0)
    session = engine.owner
    lease = engine._opened().lease
    exchange = engine.runtime.exchange
    real = exchange.cancel_all
    renewals: list[float] = []
    real_renew = lease.renew

    def counting_renew(*a, **k):
        renewals.append(time.monotonic())  # a worker thread: no event loop here
        return real_renew(*a, **k)

    lease.renew = counting_renew  # type: ignore[method-assign]

    async def slow_cancel_all():
        await asyncio.sleep(fast_settings.lease_ttl_sec * 1.5)
        return await real()

    exchange.cancel_all = slow_cancel_all
    before = {t for t in asyncio.all_tasks() if t.get_name() == "pmm-lease"}
    stopping = asyncio.ensure_future(engine.stop())
    assert await until(lambda: session.stopping, timeout=5)
    n0 = len(renewals)
    await asyncio.sleep(fast_settings.lease_ttl_sec)
    assert len(renewals) - n0 >= 2  # renewed while the cancel was in flight
    assert {t for t in asyncio.all_tasks() if t.get_name() == "pmm-lease" and not t.done()} <= before  # no new renewer
    await asyncio.wait_for(stopping, 30)
    assert all(t.done() for t in before)
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0 and open_orders_in_db(db) == 0
