"""The engine against the embedded loopback sandbox, paper mode, tmp SQLite DB, fast settings."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from engine_helpers import count, open_orders_in_db, until

from pmm_widgets.engine import Engine
from pmm_widgets.engine.lease import Lease
from pmm_widgets.store import schema

pytestmark = pytest.mark.integration


async def test_paper_engine_quotes_records_and_stops_clean(fast_settings, db):
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.tick >= 5 and engine.state.totals.open_orders > 0)
    s = engine.state
    assert len(s.markets) == fast_settings.universe_size
    assert any(m.yes_bid is not None for m in s.markets)
    assert await until(lambda: count(db, "SELECT COUNT(*) FROM orders") > 0)
    await engine.stop()
    assert not engine.running and engine.state.last_error is None
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'engine_stop'") == 1
    assert count(db, "SELECT COUNT(*) FROM markets") == fast_settings.universe_size


async def test_the_stop_writes_the_sessions_last_pnl_rows(fast_settings, db):
    """`pnl` rows come on a fixed grid (PMM_PNL_SEC); the stop writes the session's last ones, so
    the fills since the grid's last row are in the table `pmm report` reads (here one grid row at
    the first cycle, an hour's grid: everything else is the stop's)."""
    engine = Engine(fast_settings.model_copy(update={"pnl_sec": 3600.0}))
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: count(db, "SELECT COUNT(*) FROM trades") >= 2)
    await engine.stop()
    with db.connect() as c:
        rows = c.execute(sa.text("SELECT ts, fills FROM pnl WHERE market = 'TOTAL' ORDER BY ts")).all()
        last_fill = c.execute(sa.text("SELECT MAX(ts) FROM trades")).scalar()
    fills = count(db, "SELECT COUNT(*) FROM trades")
    assert len(rows) == 2 and rows[-1].fills == fills and rows[-1].ts >= last_fill, (rows, fills)


async def test_failing_cycles_are_events_then_the_circuit_pauses_cancels_and_resumes(fast_settings, db):
    """Issue 17 M1: a cycle that raises is an `events` row and a status, not a crash; failures in a
    row open the circuit (quoting paused, every order cancelled); a good probe closes it."""
    settings = fast_settings.model_copy(update={"circuit_errors": 2, "circuit_probe_sec": 0.3})
    engine = Engine(settings)
    seen: list[str] = []
    engine.events.subscribe(lambda ev: seen.append(ev.kind))
    task = engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0)
    real = engine.runtime.cycle.run_once

    async def boom(*a, **k):
        raise ValueError("boom")

    engine.runtime.cycle.run_once = boom
    assert await until(lambda: "circuit_open" in seen)
    assert not task.done() and engine.running
    assert "boom" in (engine.state.last_error or "") and "CIRCUIT OPEN" in engine.state.venue_health
    assert await until(lambda: open_orders_in_db(db) == 0)  # paused quoting holds nothing
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'cycle_error'") >= 2
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'error'") == 0
    engine.runtime.cycle.run_once = real  # the venue recovers: the next probe closes the circuit
    assert await until(lambda: "circuit_closed" in seen)
    assert await until(lambda: engine.state.totals.open_orders > 0)  # quoting resumed
    assert engine.state.venue_health == "" and engine.state.last_error is None
    await engine.stop()
    assert open_orders_in_db(db) == 0


async def test_crash_is_surfaced_and_leaves_no_open_orders(fast_settings, db):
    """Beyond the per-cycle guard (here: the guard's own handler fails), a crash is still surfaced
    and the shutdown still cancels everything."""
    engine = Engine(fast_settings)
    seen: list[str] = []
    engine.events.subscribe(lambda ev: seen.append(ev.kind))
    task = engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0)

    async def boom(*a, **k):
        raise ValueError("boom")

    engine.owner._cycle_failed = boom
    engine.runtime.cycle.run_once = boom
    assert await until(task.done)
    assert isinstance(task.exception(), ValueError)
    assert "boom" in engine.state.last_error and not engine.state.running
    assert "error" in seen
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'error'") == 1
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0


async def test_second_engine_attaches_and_its_commands_apply(fast_settings, db):
    owner = Engine(fast_settings)
    owner.start()
    assert await owner.wait_role() == "owner"
    assert await until(lambda: owner.state.tick >= 2)

    face = Engine(fast_settings)
    face.start()
    assert await face.wait_role() == "attached"
    with pytest.raises(RuntimeError):  # an attached engine never has a runtime (no exchange): it cannot place
        _ = face.runtime
    assert await until(lambda: face.state.tick >= 3 and face.state.markets)

    face.params.alpha = 3.5
    assert await until(lambda: owner.params.alpha == 3.5, timeout=5)
    assert await until(lambda: face.params.alpha == 3.5, timeout=5)  # mirrored back through the lease row
    await face.pause()
    assert await until(lambda: owner.params.quoting_paused, timeout=5)
    await face.resume()
    assert await until(lambda: not owner.params.quoting_paused, timeout=5)

    result = await face.kill()
    assert result.ok and result.stopped, result
    assert await until(lambda: not owner.running, timeout=5)
    assert owner.state.kill is not None
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'kill'") == 1
    assert count(db, "SELECT COUNT(*) FROM commands WHERE applied_at IS NULL") == 0
    await face.stop()


async def test_expired_lease_is_taken_over(fast_settings, db):
    dead = Lease(db, ttl_sec=3, owner="otherhost:1:dead")
    assert dead.try_acquire(now=0.0)  # expired long ago
    with db.begin() as conn:  # the dead owner's paper order, left 'LIVE' when its process was killed
        conn.execute(sa.insert(schema.orders).values(
            client_id="dead-1", mode="paper", token_id="t", side="BUY", price=0.5, size=10, status="LIVE",
            created_ts=0.0, updated_ts=0.0))
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert Lease(db, ttl_sec=3).read().owner == engine.state.owner
    result = await engine.kill()
    assert result.ok and result.venue_open_after == 0
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM orders WHERE client_id = 'dead-1' AND status = 'CANCELED'") == 1


async def test_live_mode_on_sandbox_kill_leaves_the_venue_empty(fast_settings, db):
    """Live trading path (signed orders, user stream) against the sandbox's trading half, with a
    throwaway key; the sandbox's ground truth, not our own books, checks the kill."""
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.domain import Mode
    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
    from pmm_widgets.venue.endpoints import Endpoints

    settings = fast_settings.model_copy(update={"private_key": SecretStr(Account.create().key.hex())})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15)) as sb:
        owners: set[str] = set()
        sb.sim.add_account_listener(lambda ev: owners.add(ev[1].owner))

        def venue_open() -> int:
            return sum(len(sb.sim.open_orders(o)) for o in owners)

        engine = Engine(settings, Mode.LIVE, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        engine.start()
        assert await engine.wait_role() == "owner"
        assert await until(lambda: venue_open() > 0)
        # the live exchange's venue checks reach the faces (paper has none: venue_health "")
        assert await until(lambda: "user stream up" in engine.state.venue_health), engine.state.venue_health
        result = await engine.kill()
        assert result.ok and result.cancelled > 0, result
        assert venue_open() == 0
        assert open_orders_in_db(db) == 0


async def test_a_slow_universe_refresh_never_delays_a_cycle(fast_settings, db):
    """Issue 17 M3: the refresh runs in its own task; while Gamma takes 3 s, cycles go on; a
    failing refresh is an event and the old universe stays."""
    import asyncio
    import time

    engine = Engine(fast_settings)
    seen: list[str] = []
    engine.events.subscribe(lambda ev: seen.append(ev.message))
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.tick >= 2)
    real = engine.owner.load_universe
    calls: list[float] = []

    async def slow(gamma, n):
        calls.append(time.time())
        await asyncio.sleep(3.0)
        if len(calls) > 1:
            raise RuntimeError("gamma down")
        return await real(gamma, n)

    engine.owner.load_universe = slow
    engine.owner.universe_ts = 0.0  # due now
    assert await until(lambda: len(calls) == 1, timeout=5)
    tick0 = engine.state.tick
    await asyncio.sleep(2.0)  # mid-refresh
    assert engine.state.tick - tick0 >= 4, engine.state.tick - tick0  # 0.2 s cycles kept running
    assert await until(lambda: engine.owner.universe_ts > calls[0], timeout=5)
    engine.owner.universe_ts = 0.0
    assert await until(lambda: any("universe refresh failed: RuntimeError: gamma down" in m for m in seen), timeout=8)
    assert engine.running and len(engine.owner.markets) == fast_settings.universe_size
    await engine.stop()
    assert open_orders_in_db(db) == 0


async def test_a_failing_universe_at_start_delays_the_start_not_ends_it(fast_settings, db, monkeypatch):
    """Issue 17 (soak finding): a restart during a 503 burst must wait for Gamma, not exit."""
    import pmm_widgets.venue.universe as universe

    real = universe.load_universe
    calls: list[int] = []

    async def flaky(*a, **k):
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("GET /markets: HTTP 503")
        return await real(*a, **k)

    monkeypatch.setattr(universe, "load_universe", flaky)
    engine = Engine(fast_settings)
    seen: list[str] = []
    engine.events.subscribe(lambda ev: seen.append(ev.message))
    task = engine.start()
    assert await until(lambda: engine.state.totals.open_orders > 0, timeout=30)
    assert not task.done() and len(calls) >= 3
    assert sum("universe load failed" in m for m in seen) == 2 and engine.state.last_error is None
    await engine.stop()
    assert open_orders_in_db(db) == 0
