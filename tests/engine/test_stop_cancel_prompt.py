"""A stop's cancel-all and its verifying open-order count reach the venue at once, even while a
slow venue holds a heartbeat (or any other call of the broker's SDK worker thread) in flight.

Against the loopback sandbox's trading half (a live engine with a throwaway key, the fast order
path, the default): the venue delays every POST 3 s, the market is held still (no requote), and
the engine (its stop grace for a cycle under way 0.3 s) is stopped just after an order heartbeat (POST /v1/heartbeats) reached the venue. The
sandbox notes when each request arrives. The cancel-all and the open-order read used to run on
the SDK's one worker thread, behind that heartbeat: the DELETE /cancel-all reached the venue
2.9-3.0 s after the stop (the heartbeat's delay less the 10 ms it took to notice it); the HTTP
timeout (10 s) bounds that wait on a slow venue, past a page kernel's 9 s stop bound. And the
stop then closed the broker by waiting for that heartbeat's answer (the stop returned after 3.0 s;
its DB flush and lease release came after it)."""

from __future__ import annotations

import time

import pytest
from engine_helpers import until
from venue_arrivals import live_engine

from pmm_widgets.config import Settings

pytestmark = pytest.mark.integration

POST_DELAY_SEC = 3.0


async def test_a_stop_cancels_and_verifies_at_once_while_a_heartbeat_is_held_at_the_venue(fast_settings: Settings):
    assert fast_settings.fast_orders
    # a cycle may still be under way at the stop (a reward sample's scoring read, a POST held 3 s
    # too): it gets a grace of 0.3 s, then it is interrupted (the default, 2 s, would loosen the bound)
    async with live_engine(fast_settings, stop_grace_sec=0.3, quote_refresh_sec=30.0, universe_size=2) as run:
        engine, arrived, venue_open = run.engine, run.arrived, run.venue_open
        # the first placement done, then a still market
        await run.quoting_still()
        run.sb.faults.update(latency_ms=POST_DELAY_SEC * 1000, latency_methods="POST")
        n0 = len(arrived)

        def quiet_beat() -> bool:
            """A heartbeat reached the venue while no placement is held there (see below)."""
            beats = [t for t, r in arrived[n0:] if r == "POST /v1/heartbeats"]
            posts = [t for t, r in arrived[n0:] if r == "POST /orders"]
            return bool(beats) and not engine.owner._ctl.trade_lock.locked() and \
                time.monotonic() - beats[-1] < 0.05 and all(beats[-1] - t > POST_DELAY_SEC + 0.2 for t in posts)

        # (our own first quotes move the touch, so a requote may follow: a stop that interrupts
        # one whose POST the venue holds lets it land after the cancel-all, which is another matter)
        assert await until(quiet_beat, timeout=25, step=0.005), "no heartbeat without a placement held in 25 s"
        t0 = time.monotonic()  # the heartbeat is held at the venue for 3 s from here on
        resting = venue_open()
        await engine.stop()
        stopped = time.monotonic() - t0
        cancel_all = run.arrived_after("DELETE /cancel-all", t0)
        count = run.arrived_after("GET /data/orders", t0)
        print(f"stop -> DELETE /cancel-all {cancel_all:.3f} s, -> GET /data/orders {count:.3f} s, "
              f"stop returned after {stopped:.3f} s")
        bound = engine.stop_grace_sec + 0.5  # the SDK thread is busy until ~3 s
        assert cancel_all is not None and cancel_all < bound, cancel_all
        assert count is not None and count < bound, count
        assert stopped < bound + 1.0, stopped  # the close never waits for the heartbeat's answer either
        assert venue_open() == 0
        msgs = [ev.message for ev in engine.events.recent() if ev.kind == "engine_stop"]
        assert msgs and msgs[-1].startswith(f"engine stopped: {resting} orders cancelled, 0 open"), msgs
