"""A demo page opened after a kill does not start a new engine on its own: it shows the kill and
waits for Start (which clears it).

A demo page (`autostart`) started its engine on its first view whatever the DB said: a page
opened or reloaded after the KILL ran a new engine as if nothing had happened. The kill is on
record in the lease row (`attached.kill_on_record`); the page's own start is `automatic`."""

from __future__ import annotations

import asyncio
import time

from pmm_widgets.config import Venue
from pmm_widgets.engine import Engine
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, KillResult
from pmm_widgets.store.db import make_engine
from pmm_widgets.ui.controls import ControlPanel


def _killed(db_url: str) -> None:
    db = make_engine(db_url)
    old = Lease(db, ttl_sec=3, owner="old-page-kernel")
    assert old.try_acquire()
    old.release(EngineState(role="owner", running=False,
                            kill=KillResult(time.time(), 3, 0, True, "KILLED: 3 orders cancelled")).to_json())
    db.dispose()


async def _settled(engine: Engine, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while engine.task is None or not engine.task.done():
        assert time.monotonic() < end, engine.state
        await asyncio.sleep(0.02)


async def test_a_demo_page_opened_after_a_kill_stays_down_until_start(settings, db_url):
    _killed(db_url)
    engine = Engine(settings.model_copy(update={"venue": Venue.SANDBOX}), auto_takeover=True)
    panel = ControlPanel(engine, autostart=True)
    try:
        await panel._start_or_take_over()  # the page's first view
        await _settled(engine)
        assert engine.role != "owner" and not engine.running
        assert engine.state.last_error == "the engine was killed: press Start to run a new one"
        panel.start_btn.click()  # the operator clears it
        assert await engine.wait_role(timeout=30) == "owner"
        said = [ev.message for ev in engine.events.recent(50)
                if ev.message.startswith("the last engine on this DB was killed (KILLED: 3 orders cancelled at ")]
        assert len(said) == 1, said
    finally:
        await panel.close()
