"""`OwnerSession.cut_cycle` (a pause ends the quote cycle under way where it is) sends the run's
task a cancel and takes it back when the cycle has ended: the run goes on, whether the cycle
ended with the cancel or swallowed it (a library that drops a cancel); a stop's cancel that comes
with it still ends the run. `tests/engine/test_pause_during_slow_cycle.py` runs it end to end."""
from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

import pytest
from owner_fakes import Target, owner_session

from pmm_widgets.domain import Mode


def _owner(fast_settings: Any, db: Any, body: Any, mode: Mode = Mode.LIVE) -> Any:
    owner = owner_session(fast_settings, db, Target())
    owner.mode = mode  # (a cut is live's only)
    owner._one_cycle = body  # type: ignore[method-assign]
    return owner


async def _run(owner: Any) -> tuple[Any, int, bool]:
    """`_watched_cycle` in a task of its own, as the quote loop runs it: (its result, the task's
    cancels outstanding after it, whether an await after it still ran)."""
    report = await owner._watched_cycle()
    left = asyncio.current_task().cancelling()  # type: ignore[union-attr]
    await asyncio.sleep(0.01)
    return report, left, True


async def test_a_cut_ends_the_cycle_where_it_is_and_the_run_goes_on(fast_settings, db):
    steps: list[str] = []
    entered = asyncio.Event()

    async def body() -> Any:
        steps.append("posting")
        entered.set()
        try:
            await asyncio.sleep(30)  # a placement held at the venue
        except asyncio.CancelledError:
            steps.append("cut")
            raise
        steps.append("posted more")
        return SimpleNamespace(kill_requested=False)

    owner = _owner(fast_settings, db, body)
    assert not owner.cut_cycle()  # no cycle under way
    task = asyncio.create_task(_run(owner))
    await asyncio.wait_for(entered.wait(), 2)
    assert owner.cut_cycle() and not owner.cut_cycle()  # once
    assert await asyncio.wait_for(task, 2) == (None, 0, True)
    assert steps == ["posting", "cut"] and not owner.cut_cycle()


async def test_a_cut_the_cycle_swallowed_is_taken_back_all_the_same(fast_settings, db):
    entered = asyncio.Event()
    done = SimpleNamespace(kill_requested=False)

    async def body() -> Any:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        return done

    owner = _owner(fast_settings, db, body)
    task = asyncio.create_task(_run(owner))
    await asyncio.wait_for(entered.wait(), 2)
    assert owner.cut_cycle()
    assert await asyncio.wait_for(task, 2) == (done, 0, True)  # not seen cancelled: the loop goes on


async def test_a_stop_that_comes_with_a_cut_still_ends_the_run(fast_settings, db):
    entered = asyncio.Event()

    async def body() -> Any:
        entered.set()
        await asyncio.sleep(30)
        return SimpleNamespace(kill_requested=False)

    owner = _owner(fast_settings, db, body)
    task = asyncio.create_task(_run(owner))
    await asyncio.wait_for(entered.wait(), 2)
    assert owner.cut_cycle()
    task.cancel()  # `Engine.stop` cancels the run
    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task} and task.cancelled()


async def test_no_cut_once_the_shutdown_has_begun(fast_settings, db):
    entered = asyncio.Event()

    async def body() -> Any:
        entered.set()
        await asyncio.sleep(0.05)
        return "ended"

    owner = _owner(fast_settings, db, body)
    task = asyncio.create_task(_run(owner))
    await asyncio.wait_for(entered.wait(), 2)
    owner.stopping = True  # the shutdown cancels every order already: it must not be interrupted
    assert not owner.cut_cycle()
    assert (await asyncio.wait_for(task, 2))[0] == "ended"


@pytest.mark.parametrize("mode", [Mode.PAPER, Mode.DRY_RUN])
async def test_no_cut_in_paper_or_dry_run(fast_settings, db, mode):
    """No venue holds their cycles, and a paper cycle cut where it is would not be what a replay
    of the session runs: their pause waits for the cycle under way (milliseconds)."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def body() -> Any:
        entered.set()
        await release.wait()
        return SimpleNamespace(kill_requested=False)

    owner = _owner(fast_settings, db, body, mode)
    task = asyncio.create_task(_run(owner))
    await asyncio.wait_for(entered.wait(), 2)
    assert not owner.cut_cycle()
    release.set()
    report, left, _ = await asyncio.wait_for(task, 2)
    assert report is not None and left == 0  # the cycle ran to its end
