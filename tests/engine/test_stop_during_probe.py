"""A stop that comes while the circuit breaker's probe runs (`_circuit_probe`: the live
exchange's `probe`, under the trade lock: cancel-all, a wait of up to `PROBE_SETTLE_SEC` (4 s)
for posts in flight, the venue's open count, a reconcile) starts its shutdown at once.

Neither the stop nor the kill takes the trade lock: they wait for the quote loop, where the probe
runs. The probe did not see the stop, so the stop waited its whole grace for a cycle under way
(`Engine.stop`, 2 s), then interrupted it: the shutdown's cancel-all reached the venue 2.0 s
after the stop, with a venue slow on its reads (1.2 s a GET, the reason the circuit was open).
The probe's cancel and count are what the shutdown does next anyway (and its reconcile is no
use to a stop): a stop now ends it at once.

Against the loopback sandbox's trading half (a live engine with a throwaway key)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from engine_helpers import until
from venue_arrivals import live_engine

from pmm_widgets.config import Settings
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.store.db import make_engine

pytestmark = pytest.mark.integration


async def test_a_stop_during_the_circuit_probe_does_not_wait_for_it(fast_settings: Settings):
    async with live_engine(fast_settings, circuit_errors=2, circuit_probe_sec=0.2, universe_size=2) as run:
        engine = run.engine
        owner = engine.owner
        await run.probing(recover=False)
        t0 = time.monotonic()
        stopping = asyncio.ensure_future(engine.stop())
        assert await until(lambda: owner.shutdown_started is not None, timeout=3)
        began = time.monotonic() - t0
        run.sb.faults.update(latency_ms=0)  # (the shutdown's count: not held)
        assert began < 0.3, began  # (it waited the stop's grace, 2 s, for the probe)
        assert await until(lambda: run.arrived_after("DELETE /cancel-all", t0) is not None, timeout=1)
        cancel_all = run.arrived_after("DELETE /cancel-all", t0)
        assert cancel_all is not None and cancel_all < 0.3, cancel_all  # (2.0 s)
        await stopping
        assert not [ev for ev in engine.events.recent(100) if ev.message.startswith("venue probe failed")]
        assert run.venue_open() == 0


async def test_a_kill_sent_by_another_face_during_the_circuit_probe_does_not_wait_for_it(fast_settings: Settings):
    """An attached face's kill is a `commands` row the quote loop reads between two of its turns:
    after the probe (with this venue 3.6 s: its count, then its reconcile's reads), the face waiting
    for the KILL's result meanwhile. The probe now also ends when a kill is sent."""
    async with live_engine(fast_settings, circuit_errors=2, circuit_probe_sec=0.2, universe_size=2) as run:
        engine = run.engine
        owner = engine.owner
        await run.probing(recover=False)
        face = CommandQueue(make_engine(fast_settings.db_url), issuer="face")
        t0 = time.monotonic()
        cid = await asyncio.to_thread(face.send, "kill", {})
        assert await until(lambda: owner.shutdown_started is not None, timeout=5)
        began = time.monotonic() - t0
        run.sb.faults.update(latency_ms=0)
        assert began < 0.6, began
        assert await until(lambda: not engine.running, timeout=5)
        result = await asyncio.to_thread(face.result, cid)
        assert result is not None and json.loads(result[1])["message"].startswith("KILLED: "), result
        assert run.venue_open() == 0
        face.db.dispose()
