"""An engine stop whose grace (`stop_grace_sec`) ends while the venue holds the cycle's
POST /orders: the stop must not say "0 open" and leave the orders that POST places resting.

Against the loopback sandbox's trading half (a live engine with a throwaway key, the fast order
path): once the engine quotes, the venue holds every POST 1 s, and the engine is stopped just
after a placement's POST reached the venue. The stop interrupted the cycle, its cancel-all
overtook the held POST, the count read 0 ("engine stopped: ... 0 open"), and the POST was then
applied: its orders rested at the venue after the engine had stopped."""

from __future__ import annotations

import asyncio
import time

import pytest
from venue_arrivals import live_engine, until

from pmm_widgets.config import Settings

pytestmark = pytest.mark.integration

POST_HOLD_SEC = 1.0


async def test_a_stop_that_interrupts_a_held_post_cancels_what_it_places(fast_settings: Settings):
    async with live_engine(fast_settings, stop_grace_sec=0.2, universe_size=2) as run:
        engine, arrived, venue_open = run.engine, run.arrived, run.venue_open
        assert await until(lambda: venue_open() > 0, timeout=10)  # quoting
        run.sb.faults.update(latency_ms=POST_HOLD_SEC * 1000, latency_methods="POST")
        n0 = len(arrived)
        # the next requote's POST reaches the venue (the book moves at 15x: one comes soon)
        assert await until(lambda: any(r == "POST /orders" for _, r in arrived[n0:]), timeout=10)
        at = next(t for t, r in arrived[n0:] if r == "POST /orders")
        await engine.stop()
        stopped = time.monotonic() - at
        left_at_stop = venue_open()
        await asyncio.sleep(max(0.0, at + POST_HOLD_SEC + 0.3 - time.monotonic()))  # every held POST applied
        msgs = [ev.message for ev in engine.events.recent() if ev.kind == "engine_stop"]
        print(f"stop returned {stopped:.3f} s after the POST reached the venue; {msgs[-1:]}")
        assert (left_at_stop, venue_open()) == (0, 0), msgs
        assert msgs and ", 0 open" in msgs[-1], msgs
        assert stopped < POST_HOLD_SEC + 2.0, stopped
