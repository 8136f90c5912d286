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
from venue_arrivals import live_engine

from pmm_widgets.config import Settings

pytestmark = pytest.mark.integration


async def test_a_pause_during_the_circuit_probe_is_taken_at_once_and_nothing_is_posted(fast_settings: Settings):
    async with live_engine(fast_settings, circuit_errors=2, circuit_probe_sec=0.2, universe_size=2) as run:
        engine = run.engine
        owner = engine.owner
        await run.probing(recover=True)
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
