"""The kill banner while a KILL is under way.

The engine publishes its kill as under way (`KILL_UNDER_WAY`, no venue count yet: -1, not stopped)
before its cancel, so that the kill is on record; the banner said "engine NOT stopped; open orders
now -1" until the result came. It says the kill is under way instead, then the result in its own
format (`tests/ui/test_mut_controls2.py` pins that one)."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given
from hypothesis import strategies as st
from ui_helpers import Stub, until

from pmm_widgets.config import Settings
from pmm_widgets.engine import Engine, owner
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import KILL_UNDER_WAY, EngineState, KillResult
from pmm_widgets.store.db import make_engine
from pmm_widgets.ui.controls import ControlPanel

FINAL_BITS = ("NOT stopped", "open orders now", "-1")


def _sandbox(settings: Settings) -> Settings:
    return Settings(_env_file=None, **{**settings.model_dump(), "venue": "sandbox", "sandbox_markets": 20,
                                       "universe_size": 4, "sandbox_speed": 15.0})


async def test_the_owner_page_says_the_kill_is_under_way_then_shows_its_result(settings, monkeypatch):
    gate = asyncio.Event()
    real = owner.cancel_and_verify

    async def held_cancel(exchange):  # the venue's answer is slow: the kill stays under way till the gate
        await gate.wait()
        return await real(exchange)

    monkeypatch.setattr(owner, "cancel_and_verify", held_cancel)
    engine = Engine(_sandbox(settings))
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.tick >= 2, 20)
        panel = ControlPanel(engine)
        panel.kill.click()
        assert await until(lambda: engine.state.kill is not None, 5), engine.state
        panel.refresh()  # what the page's 1 Hz refresh shows meanwhile
        shown = panel.kill_result.value
        assert "KILL under way: cancelling every order…" in shown, shown
        assert not any(bit in shown for bit in FINAL_BITS), shown
        gate.set()
        assert await until(lambda: "KILLED" in panel.kill_result.value, 10), panel.kill_result.value
        final = panel.kill_result.value
        assert "under way" not in final and "engine stopped;" in final and 'pmm-kill-open">0<' in final, final
        panel.refresh()  # the final state's result, not the under-way one
        assert panel.kill_result.value == final
    finally:
        gate.set()
        await engine.stop()


async def test_an_attached_page_shows_the_owners_kill_under_way_then_its_result(settings, db_url):
    db = make_engine(db_url)
    other = Lease(db, ttl_sec=30, owner="otherhost:9:owner")
    assert other.try_acquire()
    began = KillResult(time.time(), 0, -1, False, KILL_UNDER_WAY)
    other.renew(EngineState(role="owner", running=True, kill=began).to_json())
    engine = Engine(settings)
    engine.start()
    try:
        assert await engine.wait_role() == "attached"
        panel = ControlPanel(engine)
        assert await until(lambda: engine.state.kill is not None, 3)
        panel.refresh()
        assert "KILL under way" in panel.kill_result.value
        assert not any(bit in panel.kill_result.value for bit in FINAL_BITS), panel.kill_result.value
        done = KillResult(time.time(), 5, 0, True, "KILLED: 5 orders cancelled, venue reports 0 open")
        other.renew(EngineState(role="owner", running=True, kill=done).to_json())
        assert await until(lambda: engine.state.kill is not None and engine.state.kill.stopped, 3)
        panel.refresh()
        assert "KILLED: 5 orders cancelled" in panel.kill_result.value
        assert "engine stopped;" in panel.kill_result.value and 'pmm-kill-open">0<' in panel.kill_result.value
    finally:
        await engine.stop()
        db.dispose()


def test_a_kill_whose_engine_ended_before_its_result_says_so(settings):
    """The owner died mid-kill (its last renewal carried the kill under way): not "under way" for ever."""
    panel = ControlPanel(Stub(settings, running=False))
    ts = time.mktime((2026, 1, 2, 13, 4, 5, 0, 0, -1))
    panel.refresh(EngineState(running=False, kill=KillResult(ts, 0, -1, False, KILL_UNDER_WAY)))
    shown = panel.kill_result.value
    assert "KILL begun at 13:04:05: its end was never recorded" in shown and "check the venue" in shown, shown
    assert "under way" not in shown and not any(bit in shown for bit in FINAL_BITS), shown


@given(ts=st.floats(0, 2e9), cancelled=st.integers(0, 10**6), open_after=st.integers(-1, 10**6),
       stopped=st.booleans(), message=st.sampled_from([KILL_UNDER_WAY, "KILLED: 3 orders cancelled", "x", ""]),
       running=st.booleans())
def test_the_banner_is_either_under_way_or_a_result(ts, cancelled, open_after, stopped, message, running):
    k = KillResult(ts, cancelled, open_after, stopped, message)
    out = ControlPanel._kill_html(k, running=running)
    if message == KILL_UNDER_WAY and not stopped:
        assert k.under_way and not any(bit in out for bit in FINAL_BITS)
        assert ("under way" in out) is running
    else:
        assert not k.under_way
        assert f'engine {"stopped" if stopped else "NOT stopped"};' in out
        shown = open_after if open_after >= 0 else "unknown"  # (-1: the venue's count unknown)
        assert f'open orders now <span class="pmm-kill-open">{shown}</span>' in out
