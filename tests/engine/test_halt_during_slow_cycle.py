"""A safety halt that comes while a live quote cycle is held by a slow venue cancels at once.

The halt's cancel (`OwnerSession._cancel_now`: a lost lease, a DB that stopped answering, a writer
that cannot keep up) waited up to half its budget for the cycle under way (the trade lock), and
its cancel-all then queued behind the placement the cycle held at the venue: with a POST held
1.5 s, the DELETE /cancel-all reached the venue ~1.5 s after the halt, while the orders rested
with quoting meant to be off. It now cuts the cycle as a pause does (`cut_cycle`), and what the
held POST places when it lands is cancelled by the next cycle (quoting off)."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_pause_during_slow_cycle import HOLD_SEC, _held_at_venue, _posts_after
from venue_arrivals import live_engine

from pmm_widgets.config import Settings
from pmm_widgets.events import EventKind

pytestmark = pytest.mark.integration


async def test_a_halt_during_a_held_post_cancels_at_once_and_leaves_nothing_resting(fast_settings: Settings):
    async with live_engine(fast_settings, universe_size=2) as run:
        engine = run.engine
        owner = engine.owner
        async def writer_still_behind() -> None:  # (the halt stands: the next cycles' check would clear it)
            return None

        owner._check_store = writer_still_behind  # type: ignore[method-assign]
        await _held_at_venue(run, latency_ms=HOLD_SEC * 1000)
        t0 = time.monotonic()
        halting = asyncio.ensure_future(owner._halt(EventKind.WRITER, "the DB writer cannot keep up (test)"))
        await asyncio.wait_for(halting, 5)
        cancel_all = run.arrived_after("DELETE /cancel-all", t0)
        print(f"held POST: halt's DELETE /cancel-all {cancel_all} s after it, halt returned {time.monotonic() - t0:.3f} s")
        assert cancel_all is not None and cancel_all < 0.3, cancel_all  # (~1.5 s: behind the held POST)
        # the held POST lands after the cancel-all; the next cycle (quoting off) cancels what it placed
        assert await until_open_zero(run, engine, HOLD_SEC + 3)
        await asyncio.sleep(0.5)
        assert run.venue_open() == 0 and _posts_after(run, t0) == []
        run.sb.faults.update(latency_ms=0)
        owner._clear_halt(EventKind.WRITER, "test over")


async def until_open_zero(run, engine, timeout: float) -> bool:  # noqa: ANN001
    from engine_helpers import until

    return await until(lambda: run.venue_open() == 0 and not engine.runtime.exchange.open_orders(), timeout=timeout)
