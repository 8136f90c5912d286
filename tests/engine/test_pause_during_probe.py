"""A pause that comes while the circuit breaker's probe runs is taken at once.

The probe (`OwnerSession._circuit_probe`: the live exchange's `probe`, under the trade lock:
cancel-all, a wait of up to 4 s for posts in flight, the venue's open count, a reconcile) posts
nothing. `Engine.pause` waited for the trade lock before its cancel-all: the pause button hung
for the rest of the probe (3.1 s here, with a venue whose reads take 1.2 s: the count, then the
reconcile's reads), its cancel-all reaching the venue only then.

What a trader gets now: the pause is in force at once (state and event), its cancel-all goes to
the venue beside the probe (the exchange serialises its own calls; the probe's wait for posts in
flight still cancels what they place), and when the probe then finds the venue healthy the
circuit closes with quoting still paused: nothing is posted until Resume.

Against the loopback sandbox's trading half (a live engine with a throwaway key)."""

from __future__ import annotations

import time

import pytest
from engine_helpers import until
from venue_arrivals import LiveRun, live_engine

from pmm_widgets.config import Settings

pytestmark = pytest.mark.integration


async def _probing(run: LiveRun) -> None:
    """The circuit open (failing cycles), and a probe under way, held by a venue slow on its reads;
    the cycles work again (the circuit closes at the first probe that gets through)."""
    engine = run.engine
    owner = engine.owner
    await run.quoting_still()

    async def boom(*a: object, **k: object) -> None:
        raise ValueError("the venue fails")

    engine.runtime.cycle.run_once = boom  # type: ignore[method-assign]  # failing cycles open the circuit
    assert await until(lambda: owner._circuit.is_open, timeout=5)
    del engine.runtime.cycle.run_once  # (the class's again: what runs once the circuit closes)
    run.sb.faults.update(latency_ms=1200, latency_methods="GET")  # a venue slow on its reads
    n0 = len(run.arrived)
    # the probe's count (GET /data/orders, held 1.2 s) reached the venue: the probe holds the trade lock
    assert await until(lambda: any(r == "GET /data/orders" for _, r in run.arrived[n0:]), timeout=3)
    assert owner._ctl.trade_lock.locked() and owner.probing


async def test_a_pause_during_the_circuit_probe_is_taken_at_once_and_nothing_is_posted(fast_settings: Settings):
    async with live_engine(fast_settings, circuit_errors=2, circuit_probe_sec=0.2, universe_size=2) as run:
        engine = run.engine
        owner = engine.owner
        await _probing(run)
        t0 = time.monotonic()
        await engine.pause(reason="pause button", by="test")
        took = time.monotonic() - t0
        assert took < 0.5, took  # (3.1 s: the rest of the probe)
        assert engine.state.paused and engine.params.quoting_paused
        cancel_all = run.arrived_after("DELETE /cancel-all", t0)
        assert cancel_all is not None and cancel_all < 0.3, cancel_all
        assert any(ev.message.startswith("quoting paused (pause button)") for ev in engine.events.recent(50))
        run.sb.faults.update(latency_ms=0)
        # the probe ends (the venue answers): the circuit closes, quoting stays paused
        assert await until(lambda: not owner._circuit.is_open, timeout=8)
        tick = engine.state.tick
        assert await until(lambda: engine.state.tick >= tick + 3, timeout=5)  # cycles run, paused
        closed = [ev.message for ev in engine.events.recent(100) if ev.kind == "circuit_closed"]
        assert closed and "quoting stays paused" in closed[-1], closed
        assert not [r for t, r in run.arrived if t > t0 and r.startswith("POST /order")]
        assert run.venue_open() == 0
        await engine.resume(by="test")
        assert await until(lambda: run.venue_open() > 0, timeout=5)  # Resume quotes again
