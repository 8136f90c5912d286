"""A kill another face sends while a quote cycle is held (a venue slow on its posts, retrying up to
the HTTP deadline) is taken within a poll, not after the cycle.

An attached face's KILL is a `commands` row the quote loop reads between two of its turns: the
whole cycle held it (measured: the shutdown began 6.0 s after the kill with a cycle held 6 s), the
face waiting for the result meanwhile. Now the cycle is watched (`OwnerSession._watched_cycle`):
a kill is taken within `KILL_POLL_SEC` of the cycle's first `KILL_POLL_SEC`, the cycle gets the
stop's grace (as a local kill's stop gives it), then the shutdown cancels and verifies."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from engine_helpers import until
from venue_arrivals import live_engine

from pmm_widgets.config import Settings
from pmm_widgets.engine import runtime
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.cycle import CycleReport
from pmm_widgets.store.db import make_engine

pytestmark = pytest.mark.integration

HELD_SEC = 6.0


async def test_a_kill_sent_by_another_face_during_a_held_cycle_does_not_wait_for_it(fast_settings: Settings):
    async with live_engine(fast_settings, universe_size=2) as run:
        engine = run.engine
        owner = engine.owner
        await run.quoting_still()
        held = asyncio.Event()

        async def slow(*a: object, **k: object) -> CycleReport:
            held.set()
            await asyncio.sleep(HELD_SEC)
            return CycleReport()

        engine.runtime.cycle.run_once = slow  # type: ignore[method-assign]  # a cycle held at the venue
        await held.wait()
        face = CommandQueue(make_engine(fast_settings.db_url), issuer="face")
        t0 = time.monotonic()
        cid = await asyncio.to_thread(face.send, "kill", {})
        assert await until(lambda: owner.shutdown_started is not None, timeout=HELD_SEC + 2)
        began = time.monotonic() - t0
        assert began < runtime.STOP_GRACE_SEC + 1.0, began  # (6.0 s: the cycle's end)
        assert await until(lambda: not engine.running, timeout=10)
        result = await asyncio.to_thread(face.result, cid)
        assert result is not None and json.loads(result[1])["message"].startswith("KILLED: "), result
        assert run.venue_open() == 0
        assert any(ev.message.startswith("kill from ") and ev.message.endswith(": ending the quote cycle")
                   for ev in engine.events.recent(100))
        face.db.dispose()
