"""A pause that comes while a quote cycle is held by a slow venue is taken at once.

`Engine.pause` waited for the trade lock, i.e. for the cycle under way: a cycle whose placement
the venue kept refusing retried up to the HTTP deadline (PMM_HTTP_DEADLINE_SEC), and the pause
button hung that long, its cancel-all reaching the venue only then (the retries went on posting
after the press meanwhile). A pause another face sent (a `commands` row) was read between two
cycles only, as late. Measured on these tests, the pause's return before the change / after: 3.7-3.8
s / 0.03 s (a venue refusing every placement), 1.5 s / 0.003 s (a POST held 1.5 s), 1.2 s / 0.000 s
(paper, a placement held 1.2 s); a face's pause to the cancel-all 3.4 s / 0.26 s.

What a trader gets now: the pause ends the cycle under way where it is (`OwnerSession.cut_cycle`:
it posts nothing more, and the posts it had sent make no new attempt), its cancel-all goes to
the venue at once, and what a post already at the venue places when its answer lands is
cancelled by the next (paused) cycle: nothing rests. A face's pause is seen by the cycle's command
watch (the kill's) and ends the cycle the same way; the quote loop then applies it at once.

Against the loopback sandbox: its trading half for live (a throwaway key; the sandbox's fault
injection holds or refuses the POSTs), its market half for paper (the paper exchange's
placement held by the test: the paper venue lives in the process and answers at once)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from engine_helpers import until
from venue_arrivals import LiveRun, live_engine

from pmm_widgets.config import Settings
from pmm_widgets.domain import Order, Quote
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.core import Engine
from pmm_widgets.store.db import make_engine

pytestmark = pytest.mark.integration

# a venue that refuses every placement (503 after 0.3 s): the cycle retries up to this deadline
RETRYING = {"http_deadline_sec": 4.0, "venue_retries": 10, "venue_backoff_sec": 0.2, "venue_backoff_cap_sec": 0.4}
HOLD_SEC = 1.5  # a POST the venue holds this long, then applies


async def _held_at_venue(run: LiveRun, **faults: Any) -> int:
    """Set the venue's `faults` on the POSTs; returns once a cycle's placement (POST /orders)
    reached the venue with the cycle under way (the trade lock held): the index in `arrived`
    from which to look."""
    await run.quoting_still()
    run.sb.paused = False  # the books move again: the next cycles requote
    n0 = len(run.arrived)
    run.sb.faults.update(latency_methods="POST", **faults)
    assert await until(lambda: any(r == "POST /orders" for _, r in run.arrived[n0:]), timeout=10), "no requote"
    assert run.engine.owner._ctl.trade_lock.locked()
    return n0


def _posts_after(run: LiveRun, t: float) -> list[float]:
    return [round(a - t, 3) for a, r in run.arrived if r == "POST /orders" and a > t]


async def test_a_pause_during_a_cycle_retrying_at_the_venue_is_taken_at_once(fast_settings: Settings):
    async with live_engine(fast_settings, universe_size=2, **RETRYING) as run:
        engine = run.engine
        n0 = await _held_at_venue(run, latency_ms=300, http_error_rate=1.0, http_error_methods="POST")
        # the placement is being retried (a second attempt reached the venue)
        assert await until(lambda: sum(r == "POST /orders" for _, r in run.arrived[n0:]) >= 2, timeout=3)
        t0 = time.monotonic()
        await engine.pause(reason="pause button", by="test")
        took = time.monotonic() - t0
        cancel_all = run.arrived_after("DELETE /cancel-all", t0)
        print(f"retrying venue: pause returned after {took:.3f} s, DELETE /cancel-all {cancel_all} s after it")
        assert took < 0.5, took  # (3.7-3.8 s: the rest of the retries, up to the deadline)
        assert cancel_all is not None and cancel_all < 0.3, cancel_all
        assert engine.state.paused
        await asyncio.sleep(1.0)  # (the retries' next attempts were due every ~0.5 s)
        assert _posts_after(run, t0) == []  # no attempt after the press
        run.sb.faults.update(latency_ms=0, http_error_rate=0.0)
        assert await until(lambda: run.venue_open() == 0, timeout=3)
        assert run.venue_open() == 0 and _posts_after(run, t0) == []
        await engine.resume(by="test")
        assert await until(lambda: run.venue_open() > 0, timeout=5)  # Resume quotes again


async def test_a_pause_during_a_held_post_cancels_what_it_places_when_it_lands(fast_settings: Settings):
    async with live_engine(fast_settings, universe_size=2) as run:
        engine = run.engine
        await _held_at_venue(run, latency_ms=HOLD_SEC * 1000)
        t0 = time.monotonic()
        await engine.pause(reason="pause button", by="test")
        took = time.monotonic() - t0
        cancel_all = run.arrived_after("DELETE /cancel-all", t0)
        print(f"held POST: pause returned after {took:.3f} s, DELETE /cancel-all {cancel_all} s after it")
        assert took < 0.5, took  # (1.5 s: the held POST's answer)
        assert cancel_all is not None and cancel_all < 0.3, cancel_all
        # the held POST is applied at the venue after the cancel-all: its orders rest there, then the
        # paused cycle cancels them (the exchange recorded them LIVE when the POST's answer came)
        assert await until(lambda: any(r == "POST /orders" and t > t0 for t, r, _ in run.answered), timeout=HOLD_SEC + 1)
        landed = next(t for t, r, _ in run.answered if r == "POST /orders" and t > t0) - t0
        assert landed > cancel_all
        assert await until(lambda: run.venue_open() == 0 and not engine.runtime.exchange.open_orders(), timeout=3)
        await asyncio.sleep(0.5)  # (cycles run meanwhile, paused)
        assert run.venue_open() == 0 and _posts_after(run, t0) == []
        run.sb.faults.update(latency_ms=0)
        await engine.resume(by="test")
        assert await until(lambda: run.venue_open() > 0, timeout=5)


async def test_a_pause_another_face_sends_during_a_held_cycle_does_not_wait_for_it(fast_settings: Settings):
    # (the default refresh, 3 s: the quote loop applies the pause at once after the cycle it cut, not a refresh later)
    async with live_engine(fast_settings, universe_size=2, quote_refresh_sec=3.0, **RETRYING) as run:
        engine = run.engine
        n0 = await _held_at_venue(run, latency_ms=300, http_error_rate=1.0, http_error_methods="POST")
        assert await until(lambda: sum(r == "POST /orders" for _, r in run.arrived[n0:]) >= 2, timeout=3)
        face = CommandQueue(make_engine(fast_settings.db_url), issuer="face")
        try:
            t0 = time.monotonic()
            cid = await asyncio.to_thread(face.send, "pause", {})
            assert await until(lambda: run.arrived_after("DELETE /cancel-all", t0) is not None, timeout=6)
            cancel_all = run.arrived_after("DELETE /cancel-all", t0)
            print(f"a face's pause: DELETE /cancel-all {cancel_all:.3f} s after it was sent")
            assert cancel_all < 1.0, cancel_all  # (3.4 s: after the cycle's retries)
            assert await until(lambda: engine.state.paused, timeout=1)
            result = await asyncio.to_thread(face.result, cid)
            assert result is not None and result[1] == "ok", result
            assert any(ev.message.startswith("pause from ") and ev.message.endswith(": ending the quote cycle")
                       for ev in engine.events.recent(100))
            await asyncio.sleep(1.0)
            assert _posts_after(run, t0 + cancel_all) == []
            run.sb.faults.update(latency_ms=0, http_error_rate=0.0)
            assert await until(lambda: run.venue_open() == 0, timeout=3)
        finally:
            face.db.dispose()


async def test_a_paper_pause_lets_the_cycle_under_way_end_then_cancels_everything(fast_settings: Settings):
    """Paper: no cut (a replay of the session runs the whole cycle, then the pause's cancel-all:
    a cycle cut where it is would not be reproduced). The paper venue answers in the process;
    here its placement is held to show the pause waits for the cycle, then leaves nothing open
    and lets nothing be posted after it."""
    engine = Engine(fast_settings.model_copy(update={"universe_size": 2}))
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        ex = engine.runtime.exchange
        assert await until(lambda: len(ex.open_orders()) > 0, timeout=10)
        real = ex.place
        calls: list[float] = []

        async def held_place(quotes: list[Quote]) -> list[Order]:
            calls.append(time.monotonic())
            await asyncio.sleep(1.2)
            return await real(quotes)

        ex.place = held_place  # type: ignore[method-assign]
        assert await until(lambda: bool(calls) and engine.owner._ctl.trade_lock.locked(), timeout=10)
        held_since = calls[-1]
        await engine.pause(reason="pause button", by="test")
        done = time.monotonic()
        print(f"paper, held placement: pause returned {done - held_since:.3f} s after the placement began")
        assert done - held_since >= 1.0  # it waited for the cycle's placement (not cut)
        assert not ex.open_orders()  # what that placement placed was cancelled by the pause
        await asyncio.sleep(0.5)
        assert not ex.open_orders() and [c for c in calls if c > done] == []
        ex.place = real  # type: ignore[method-assign]
        await engine.resume(by="test")
        assert await until(lambda: len(ex.open_orders()) > 0, timeout=5)
    finally:
        await engine.stop()
