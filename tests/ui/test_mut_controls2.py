"""The control panel's money path beyond the live prompt (ui/controls.py), without a browser:
closing the page (hand-over, quiet), Start on a running or watching engine, KILL's banner,
pause/resume, what a slider sends, the dead-man switch and the heartbeat, and what the first
view does (start or take over, chart history).

`_Stub` stands in for an `Engine` where a real one would need a running owner; it records
what the panel asked of it."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from ui_helpers import Stub as _Stub
from ui_helpers import hand_over
from ui_helpers import until as _until

from pmm_widgets.engine import Engine
from pmm_widgets.engine.state import EngineState, KillResult, Totals
from pmm_widgets.events import EventKind
from pmm_widgets.ui import controls
from pmm_widgets.ui.controls import ControlPanel, fmt_num


def _logged(panel: ControlPanel) -> str:
    return "".join(o.get("text", "") for o in panel.log.outputs)


def _stop_loops(panel: ControlPanel) -> None:
    for t in panel._tasks:
        t.cancel()


# ---------------------------------------------------------------- closing the page

async def test_closing_the_page_hands_its_owned_engine_over_and_goes_quiet(settings):
    stub = _Stub(settings)
    panel = ControlPanel(stub, autostart=True)
    panel.show()
    await panel.close()
    assert stub.stops == [True]  # the next page may take it over in the same mode
    await asyncio.sleep(0)
    assert panel._tasks and all(t.done() for t in panel._tasks)  # no refresh, no watchdog after the end
    assert panel._on_view_requested not in controls._view_listeners  # no longer told about views
    # nothing starts any more: not on a view's load, not for a hand-over waiting in the DB
    await panel._start_or_take_over()
    assert stub.starts == []


async def test_closing_an_attached_page_hands_nothing_over(settings):
    stub = _Stub(settings, role="attached")
    panel = ControlPanel(stub)
    await panel.close()
    assert stub.stops == [False]


async def test_a_closed_page_never_takes_over_a_handed_over_engine(settings, db_url):
    hand_over(db_url, "paper")
    engine = Engine(settings)
    panel = ControlPanel(engine)
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    await panel.close()
    await panel._watch_lease(now=True)
    assert starts == [] and not engine.running


# ---------------------------------------------------------------- Start

async def test_start_on_a_running_owner_is_refused_and_on_a_watcher_becomes_an_owner(settings):
    stub = _Stub(settings)
    panel = ControlPanel(stub)
    panel.start_btn.click()
    assert stub.starts == [] and stub.stops == [] and "engine already running" in panel.message.value
    stub.role = "attached"  # this page only watches another engine that stopped since
    panel.start_btn.click()
    assert await _until(lambda: stub.starts)
    assert stub.stops == [False] and stub.starts == [False] and "starting" in panel.message.value


async def test_start_shows_a_failed_engine_task_on_the_page(settings):
    gate = asyncio.Event()

    async def run() -> None:
        await gate.wait()
        raise OSError("disk gone")

    stub = _Stub(settings, running=False)
    stub.start = lambda attach_only=False: asyncio.get_running_loop().create_task(  # type: ignore[method-assign]
        run(), name="pmm-engine")
    panel = ControlPanel(stub)
    panel.start_engine()
    assert "starting" in panel.message.value
    gate.set()
    assert await _until(lambda: "disk gone" in _logged(panel))
    assert "the engine could not start or stopped" in panel.message.value and "press Start" in panel.message.value
    ok = _Stub(settings, running=False)

    async def ends() -> None:
        return None

    ok.start = lambda attach_only=False: asyncio.get_running_loop().create_task(  # type: ignore[method-assign]
        ends(), name="pmm-engine")
    quiet = ControlPanel(ok)
    quiet.start_engine()
    await asyncio.sleep(0.02)  # an engine task that ended without an error reports nothing
    assert _logged(quiet) == "" and "starting" in quiet.message.value


async def test_a_start_after_the_deadman_fired_is_guarded_by_it_again(settings):
    s = settings.model_copy(update={"deadman_sec": 0.3})
    stub = _Stub(s, running=True)
    panel = ControlPanel(stub)
    panel.show()
    try:
        panel.heartbeat.value = 1  # one beat, then the browser is gone
        assert await _until(lambda: stub.stops, 2.5)
        panel.start_engine()  # started again (from the notebook) while nobody watches
        assert stub.starts == [False]
        assert await _until(lambda: len(stub.stops) == 2, 2.5)  # the switch fires again
    finally:
        _stop_loops(panel)


# ---------------------------------------------------------------- KILL

async def test_kill_shows_killing_then_the_result_and_refreshes_the_page(settings):
    stub = _Stub(settings)
    stub.kill_result = KillResult(time.time(), 3, 2, False, "KILL incomplete: 2 still open")
    panel = ControlPanel(stub)
    panel.kill.click()
    await asyncio.sleep(0.01)
    assert "killing" in panel.kill_result.value
    stub.state = EngineState(role="owner", running=False, tick=42)
    stub.kill_gate.set()
    assert await _until(lambda: "KILL incomplete" in panel.kill_result.value)
    out = panel.kill_result.value
    assert "engine NOT stopped" in out and 'pmm-kill-open">2<' in out and "#cf222e" in out
    assert 'pmm-tick">42<' in panel.status.value  # the page shows the state after the kill at once


def test_a_clean_kill_is_green_and_says_stopped():
    ts = time.mktime((2026, 1, 2, 13, 4, 5, 0, 0, -1))
    out = ControlPanel._kill_html(KillResult(ts, 3, 0, True, "KILLED: 3 <orders> cancelled"))
    assert "#1a7f37" in out and "#cf222e" not in out and "engine stopped;" in out
    assert "at 13:04:05;" in out and "&lt;orders&gt;" in out
    half = ControlPanel._kill_html(KillResult(ts, 3, 0, False, "x"))  # none open but not stopped: not ok
    assert "#cf222e" in half and "engine NOT stopped" in half


# ---------------------------------------------------------------- pause / resume

async def test_the_pause_button_pauses_saying_who_and_resumes(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.pause_btn.value = True
    assert await _until(lambda: engine.state.paused)
    assert panel.pause_btn.description == "Resume quoting"
    assert engine.state.pause_note.startswith(f"pause button by {panel.face_id} at ")
    assert [e.kind for e in engine.events.recent()][-1] is EventKind.PAUSE_BUTTON
    panel.pause_btn.value = False
    assert await _until(lambda: not engine.state.paused)
    assert panel.pause_btn.description == "Pause quoting"
    assert [e.kind for e in engine.events.recent()][-1] is EventKind.RESUME


async def test_the_pause_button_cancels_the_resting_orders_at_once(settings):
    """Pausing from the page must not leave orders resting on the book until some later cycle."""
    stub = _Stub(settings)
    panel = ControlPanel(stub)
    panel.pause_btn.value = True
    assert await _until(lambda: stub.paused)
    assert stub.paused == [(True, "pause button", panel.face_id)]


def test_a_pause_set_elsewhere_moves_the_button_without_sending_anything(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.refresh(EngineState(paused=True, params={"alpha": 1.5}))
    assert panel.pause_btn.value is True and panel.pause_btn.description == "Resume quoting"
    assert not engine.state.paused and not panel._actions  # nothing was sent to the engine


# ---------------------------------------------------------------- sliders

def test_a_slider_sends_its_readout_precision_and_says_what_was_set(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.sliders["alpha"].value = 2.3456  # 2 decimals
    assert engine.params.alpha == 2.35 and "alpha = 2.35" in panel.message.value
    panel.sliders["paper_spread_k"].value = 12.34  # 1 decimal
    assert engine.params.paper_spread_k == 12.3
    assert "sent to the owner" not in panel.message.value and "#444" in panel.message.value
    sl = panel.sliders["alpha"]
    sl.max = 50.0  # the widget allows it; Params (alpha <= 20) refuses it
    sl.value = 30.0
    assert sl.value == 2.3456 and engine.params.alpha == 2.35  # back where it was
    assert "refused" in panel.message.value and "alpha" in panel.message.value and "#cf222e" in panel.message.value


def test_an_attached_slider_says_it_was_sent_and_a_failed_send_snaps_back(settings):
    stub = _Stub(settings, role="attached")
    panel = ControlPanel(stub)
    panel.sliders["alpha"].value = 2.5
    assert stub.sent == [{"alpha": 2.5}] and "alpha = 2.5 (sent to the owner)" in panel.message.value
    stub.refuse = RuntimeError("owner's DB unreachable")
    panel.sliders["alpha"].value = 3.0
    assert panel.sliders["alpha"].value == 2.5
    assert "refused: owner&#x27;s DB unreachable" in panel.message.value and "#cf222e" in panel.message.value


# ---------------------------------------------------------------- dead-man switch, heartbeat

async def test_the_deadman_never_stops_an_engine_this_page_does_not_own_or_that_is_stopped(settings):
    watcher = _Stub(settings, role="attached")
    stopped = _Stub(settings, running=False)
    panels = [ControlPanel(watcher), ControlPanel(stopped)]
    for p in panels:
        p.show()
        p.heartbeat.value = 1
    await asyncio.sleep(1.5)  # > deadman_sec (1 s) of silence, one watchdog turn
    for p in panels:
        _stop_loops(p)
    assert watcher.stops == [] and stopped.stops == []


async def test_the_deadman_never_stops_an_engine_whose_view_keeps_beating(settings):
    stub = _Stub(settings)  # owner, running; deadman_sec = 1.0
    panel = ControlPanel(stub)
    panel.show()
    try:
        for k in range(1, 10):  # 2.25 s of a live view beating every 250 ms
            panel.heartbeat.value = k
            await asyncio.sleep(0.25)
        assert stub.stops == [] and not any(t.done() for t in panel._tasks)
    finally:
        _stop_loops(panel)


async def test_the_deadman_says_why_in_the_page_log(settings):
    stub = _Stub(settings)
    panel = ControlPanel(stub)
    panel.show()
    try:
        panel.heartbeat.value = 1
        assert await _until(lambda: stub.stops, 3.0)
        assert "no browser heartbeat for 1s: stopping the engine cleanly" in _logged(panel)
    finally:
        _stop_loops(panel)


def _toggles(panel: ControlPanel) -> list[bool]:
    seen: list[bool] = []
    panel.heartbeat.observe(lambda ch: seen.append(ch["new"]), names="playing")
    return seen


async def test_the_heartbeat_is_nudged_only_while_a_view_may_be_loading(settings, monkeypatch):
    """Toggling `playing` sends messages: a kernel that no browser opened must stay silent."""
    fresh = ControlPanel(_Stub(settings, running=False))  # just built: a frontend may be connected
    seen_fresh = _toggles(fresh)
    fresh.show()
    await _until(lambda: len(seen_fresh) >= 2)  # the watchdog's first turn is 0.6 s after the start
    _stop_loops(fresh)
    assert seen_fresh[:2] == [False, True]  # Play only starts on a False→True change
    monkeypatch.setattr(controls, "NUDGE_AT_START_SEC", 0.0)  # from now on: built long ago
    idle = ControlPanel(_Stub(settings, running=False))
    seen_idle = _toggles(idle)
    asked = ControlPanel(_Stub(settings, running=False))
    seen_asked = _toggles(asked)
    asked._on_view_requested()  # a widget manager asked for the state: a view is loading
    for p in (idle, asked):
        p.show()
    await _until(lambda: len(seen_asked) >= 2)  # both watchdogs have had their first turn
    await asyncio.sleep(0.05)
    assert not any(t.done() for p in (idle, asked) for t in p._tasks)  # both loops still run
    for p in (idle, asked):
        _stop_loops(p)
    assert seen_asked[:2] == [False, True]
    assert seen_idle == []


async def test_the_first_beat_relaxes_the_heartbeat_and_opens_the_view_once(settings):
    s = settings.model_copy(update={"deadman_sec": 10.0})
    loads: list[int] = []
    stub = _Stub(s, running=False)
    panel = ControlPanel(stub, history=lambda: loads.append(1) or {})
    assert panel.heartbeat.interval == 300  # the first beat comes fast
    panel.heartbeat.value = 1
    assert panel.heartbeat.interval == 2500  # then a quarter of the dead-man's time
    assert await _until(lambda: panel._streaming)
    panel.heartbeat.value = 2
    await asyncio.sleep(0.05)
    assert loads == [1]


async def test_the_first_view_shows_the_db_history_and_the_current_state_at_once(settings):
    t0 = time.time() - 600
    hist = {"pnl": [(t0, 1.0), (t0 + 60, 2.0), (t0 + 120, 1.5)], "fills_per_min": [(t0, 0.5)], "markets": {}}
    stub = _Stub(settings, running=False)
    panel = ControlPanel(stub, history=lambda: hist)
    stub.state = EngineState(tick=5, totals=Totals(pnl=1.5, open_orders=3))
    panel.heartbeat.value = 1
    assert await _until(lambda: panel._streaming)
    assert list(panel.charts.pnl.data["pnl"])[:3] == [1.0, 2.0, 1.5]
    assert 'pmm-tick">5<' in panel.status.value and 'pmm-open">3<' in panel.totals.value


async def test_after_the_first_view_a_later_state_request_never_starts_a_stopped_engine_again(settings):
    """Autostart starts once, on the first view; a KILLed (stopped) engine is not restarted when
    a widget manager asks for the state again (a reconnect, a second tab)."""
    stub = _Stub(settings, running=False)
    panel = ControlPanel(stub, autostart=True)
    panel.heartbeat.value = 1  # the first view signal is a beat
    assert await _until(lambda: panel._streaming)
    assert stub.starts == [False]
    stub.running = False  # KILLed since
    panel._on_view_requested()
    await asyncio.sleep(0.05)
    assert stub.starts == [False]


async def test_a_watched_page_takes_over_an_engine_handed_over_after_it_opened(settings, db_url):
    """The refresh loop keeps looking at the lease while this page's engine is not running: a
    paper engine handed over later (its page reloaded) is taken over without a new view."""
    engine = Engine(settings)
    panel = ControlPanel(engine)
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    panel.show()
    try:
        panel.heartbeat.value = 1  # the view: nothing to take over yet
        await asyncio.sleep(0.1)
        assert starts == []
        hand_over(db_url, "paper")
        for k in range(2, 14):  # the view keeps beating (deadman_sec = 1.0); the lease is polled each second
            panel.heartbeat.value = k
            if await _until(lambda: starts, 0.25):
                break
        assert starts == [True]
    finally:
        _stop_loops(panel)


async def test_chart_history_that_fails_to_load_is_said_and_the_charts_still_stream(settings):
    def broken() -> dict[str, Any]:
        raise OSError("db file gone")

    panel = ControlPanel(_Stub(settings, running=False), history=broken)
    panel.heartbeat.value = 1
    assert await _until(lambda: panel._streaming)
    assert "chart history not loaded: OSError: db file gone" in _logged(panel)


async def test_the_first_view_takes_over_a_handed_over_paper_engine_without_autostart(settings, db_url):
    hand_over(db_url, "paper")
    engine = Engine(settings)
    panel = ControlPanel(engine)  # no autostart: only a hand-over starts anything
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    panel._on_view_requested()
    assert await _until(lambda: starts)
    assert "took over the paper engine" in panel.message.value


def test_a_view_request_without_a_running_loop_is_tried_again_later(settings):
    stub = _Stub(settings, running=False)
    panel = ControlPanel(stub, autostart=True)
    with pytest.warns(RuntimeWarning):  # the coroutine that could not be scheduled
        panel._on_view_requested()  # (a synchronous caller: nothing can start here)

    async def later() -> None:
        panel._on_view_requested()
        assert await _until(lambda: stub.starts)

    asyncio.run(later())
    assert stub.starts == [False]


# ---------------------------------------------------------------- the face: refresh, table, messages, log

def test_start_is_disabled_only_while_this_page_owns_a_running_engine(settings):
    stub = _Stub(settings)
    panel = ControlPanel(stub)
    panel.refresh(EngineState())
    assert panel.start_btn.disabled
    stub.role = "attached"  # watching another engine: Start makes this page the owner
    panel.refresh(EngineState())
    assert not panel.start_btn.disabled
    panel.refresh(EngineState(running=True))  # ... not while that engine runs (it would attach again)
    assert panel.start_btn.disabled
    stub.role, stub.running = "owner", False
    panel.refresh(EngineState())
    assert not panel.start_btn.disabled


def test_the_kill_banner_stays_until_a_new_engine_runs(settings):
    panel = ControlPanel(_Stub(settings, running=False))
    kr = KillResult(time.time(), 2, 0, True, "KILLED: 2 orders cancelled")
    panel.refresh(EngineState(running=False, kill=kr))
    assert "KILLED: 2 orders cancelled" in panel.kill_result.value
    panel.refresh(EngineState(running=False))  # stopped, the result no longer in the state: kept
    assert "KILLED: 2 orders cancelled" in panel.kill_result.value
    panel.refresh(EngineState(running=True))  # a new engine runs: the banner is history
    assert panel.kill_result.value == ""


def test_messages_expire_after_their_own_time(settings):
    panel = ControlPanel(_Stub(settings, running=False))
    now = time.time()
    panel._msg("refused: no", error=True)  # refusals stay twice as long (20 s)
    panel.refresh(EngineState(), now=now + 15)
    assert "refused: no" in panel.message.value and "#cf222e" in panel.message.value
    panel.refresh(EngineState(), now=now + 21)
    assert panel.message.value == ""
    panel._msg("pending hand-over", ttl=3600.0)
    panel.refresh(EngineState(), now=now + 600)
    assert "pending hand-over" in panel.message.value and "#444" in panel.message.value
    panel.refresh(EngineState(), now=now + 3601)
    assert panel.message.value == ""
    panel._msg("<b>x</b>")  # a plain message: 10 s
    assert "&lt;b&gt;x&lt;/b&gt;" in panel.message.value
    panel.refresh(EngineState(), now=time.time() + 9)
    assert "x" in panel.message.value
    panel.refresh(EngineState(), now=time.time() + 11)
    assert panel.message.value == ""


def _rows(statuses: list[str], pnls: list[float]) -> list[Any]:
    from pmm_widgets.engine.state import MarketRow

    return [MarketRow(f"0xc{i}", i + 1, f"Q{i}", pnl=p, status=st) for i, (st, p) in enumerate(zip(statuses, pnls))]


def test_the_table_follows_status_changes_of_a_stopped_engine_and_the_sort(settings):
    stub = _Stub(settings, running=False)
    panel = ControlPanel(stub)
    s1 = EngineState(tick=5, ts=100.0, markets=_rows(["quoting", "quoting"], [1.0, -1.0]))
    panel.refresh(s1)
    assert panel.table.value.count(">quoting<") == 2
    s2 = EngineState(tick=5, ts=100.0, markets=_rows(["stopped", "stopped"], [1.0, -1.0]))  # same tick and time
    stub.state = s2
    panel.refresh(s2)
    assert panel.table.value.count(">stopped<") == 2
    assert panel.table.value.index('"0xc0"') < panel.table.value.index('"0xc1"')  # by rank
    panel.sort.value = "PnL (worst first)"  # re-rendered at once, the snapshot unchanged
    assert panel.table.value.index('"0xc1"') < panel.table.value.index('"0xc0"')


def test_a_parameter_set_elsewhere_below_the_slider_widens_it(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    sl = panel.sliders["alpha"]  # usual range 0.1 .. 10
    panel.refresh(EngineState(params={"alpha": 0.05}))
    assert sl.value == 0.05 and sl.min == 0.05 and sl.max == 10.0
    assert engine.params.alpha == 1.5  # syncing never writes back
    panel.refresh(EngineState(params={"alpha": 0.05, "paper_spread_k": 250.0}))
    assert panel.sliders["paper_spread_k"].value == 250.0 and sl.value == 0.05
    panel.refresh(EngineState())  # a snapshot without parameters (a mirror's first): sliders stay
    assert sl.value == 0.05 and panel.sliders["paper_spread_k"].value == 250.0


def test_a_slider_the_user_moved_is_not_moved_back_by_an_unchanged_state(settings):
    stub = _Stub(settings, role="attached")
    panel = ControlPanel(stub)
    panel.refresh(EngineState(params={"alpha": 1.5}))
    panel.sliders["alpha"].value = 2.5  # sent to the owner
    panel.refresh(EngineState(params={"alpha": 2.5}))  # the owner applied it
    panel.sliders["alpha"].value = 3.0
    stub.refuse = RuntimeError("x")  # any further send would be refused: nothing may send
    panel.refresh(EngineState(params={"alpha": 3.0}))
    assert panel.sliders["alpha"].value == 3.0 and stub.sent == [{"alpha": 2.5}, {"alpha": 3.0}]


def test_errors_of_background_tasks_stay_on_the_page_for_an_hour(settings):
    async def main() -> ControlPanel:
        panel = ControlPanel(_Stub(settings, running=False))

        async def fail() -> None:
            raise ValueError("bad thing\nsecond line")

        panel._spawn(fail(), "pause")
        await asyncio.sleep(0.01)
        return panel

    panel = asyncio.run(main())
    assert "pmm-ui-pause: ValueError: bad thing" in panel.message.value
    assert "ValueError: bad thing\nsecond line" in _logged(panel)
    assert "#cf222e" in panel.message.value
    panel.refresh(EngineState(), now=time.time() + 1800)
    assert "pmm-ui-pause" in panel.message.value
    panel.refresh(EngineState(), now=time.time() + 3601)
    assert panel.message.value == ""


def test_the_log_shows_warnings_and_life_cycle_and_stays_bounded(settings):
    from pmm_widgets.events import Level

    engine = Engine(settings)
    panel = ControlPanel(engine)
    engine.events.emit(Level.INFO, EventKind.PAUSE, "info chatter")
    engine.events.emit(Level.INFO, EventKind.ENGINE_START, "engine started")
    engine.events.emit(Level.WARNING, EventKind.PAUSE, "quoting paused")
    text = _logged(panel)
    assert "info chatter" not in text and "engine started" in text and "quoting paused" in text
    for i in range(60):
        engine.events.emit(Level.WARNING, EventKind.PAUSE, f"w{i}")
    # 62 lines logged: at the 61st it keeps the last 40, then one more came
    assert len(panel.log.outputs) == 41 and "w59" in _logged(panel) and "w18" not in _logged(panel)


async def test_the_face_refreshes_only_while_a_view_beats_and_survives_a_bad_snapshot(settings):
    stub = _Stub(settings, running=False)
    panel = ControlPanel(stub)
    stub.state = EngineState(tick=7)
    panel.show()
    try:
        await asyncio.sleep(0.2)  # several refresh periods (50 ms)
        assert 'pmm-tick">7<' not in panel.status.value  # nobody watching: nothing is sent
        panel.heartbeat.value = 1
        assert await _until(lambda: 'pmm-tick">7<' in panel.status.value)
        stub.state = None  # a broken snapshot
        assert await _until(lambda: "refresh failed: AttributeError" in _logged(panel))
        stub.state = EngineState(tick=8)
        assert await _until(lambda: 'pmm-tick">8<' in panel.status.value)  # still refreshing
    finally:
        _stop_loops(panel)


def test_the_status_line_says_role_mode_run_state_feed_and_lags():
    from pmm_widgets.engine.state import FeedState
    from pmm_widgets.ui.controls import render_status

    idle = render_status(EngineState())
    assert "idle (press Start)" in idle and "mode <b>paper</b> · stopped · tick" in idle
    assert "feed down lag n/a · DB lag n/a" in idle and "PAUSED" not in idle and "HALTED" not in idle
    assert "error" not in idle and "pmm-recording" not in idle and 'pmm-alpha-value">?<' in idle
    owner = render_status(EngineState(role="owner", mode="live", running=True, tick=12,
                                      feed=FeedState(connected=True, lag_sec=0.25), writer_lag_sec=1.26,
                                      params={"alpha": 2.5}, venue_health="user stream up"))
    assert "OWNER (this page trades)" in owner and "mode <b>live</b> · running · tick" in owner
    assert "feed up lag 0.2s · DB lag 1.3s · user stream up" in owner and 'pmm-alpha-value">2.5<' in owner
    writer = render_status(EngineState(writer="db lag 0.4s, 120 rows queued", writer_lag_sec=9.0))
    assert "DB lag 0.4s, 120 rows queued" in writer
    odd = render_status(EngineState(role="stranger", paused=True, halted="lease unproven",
                                    last_error="boom", recording="recording PAUSED (disk)"))
    assert '<span class="pmm-role">stranger</span>' in odd and " · <b>PAUSED</b> · " in odd
    assert "pmm-pause-note" not in odd and "HALTED" in odd and "error: boom" in odd
    assert "recording PAUSED (disk)" in odd


async def test_view_alive_means_a_beat_within_the_deadman_time(settings):
    panel = ControlPanel(_Stub(settings, running=False))  # deadman_sec = 1.0
    assert not panel.view_alive  # never beat
    panel.heartbeat.value = 1
    assert panel.view_alive
    panel._last_beat = time.time() - 1.5
    assert not panel.view_alive


@hsettings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
                 st.integers(min_value=-10**12, max_value=10**12)))
def test_a_number_is_shown_plainly_to_ten_significant_digits(v):
    out = fmt_num(v)
    assert "e" not in out.lower() and out == out.strip()
    assert Decimal(out) == Decimal(format(float(v), ".10g"))
    assert not ("." in out and out.endswith("0"))  # no trailing zeros
    assert fmt_num(str(v)) == fmt_num(Decimal(str(v)))


def test_non_numbers_and_non_finite_values_are_shown_as_they_are():
    assert [fmt_num(x) for x in (float("inf"), float("-inf"), float("nan"))] == ["inf", "-inf", "nan"]
    assert fmt_num(None) == "None" and fmt_num(False) == "False" and fmt_num("n/a") == "n/a"
    assert fmt_num([1]) == "[1]"


async def test_a_frontends_state_request_is_answered_and_starts_the_page(settings, monkeypatch):
    """The hook on ipywidgets' control comm: the widget protocol still answers, then the panel
    hears of the view (a broken listener does not stop it); other messages tell no panel."""
    import ipywidgets as W

    sent: list[str] = []

    class _Comm:
        def send(self, data: dict[str, Any], buffers: Any = None) -> None:
            sent.append(data["method"])

    monkeypatch.setattr(W.Widget, "_control_comm", _Comm())
    monkeypatch.setattr(controls, "_view_listeners", [])

    def broken() -> None:
        raise RuntimeError("a broken panel")

    controls._view_listeners.append(broken)
    stub = _Stub(settings, running=False)
    panel = ControlPanel(stub, autostart=True)
    with pytest.raises(RuntimeError, match="Unknown"):  # any other method: the original's answer only
        W.Widget._handle_control_comm_msg({"content": {"data": {"method": "other"}}})
    await asyncio.sleep(0.02)
    assert stub.starts == [] and panel._view_requested is None
    heard: list[int] = []
    controls._view_listeners.append(lambda: heard.append(1))
    ControlPanel(_Stub(settings, running=False))  # a second panel installs no second hook
    W.Widget._handle_control_comm_msg({"content": {"data": {"method": "request_states"}}})
    assert sent == ["update_states"] and heard == [1]  # answered once, each listener told once
    assert await _until(lambda: stub.starts)
    assert stub.starts == [False]


def test_a_strategy_the_engine_refuses_snaps_the_dropdown_back(settings):
    from pmm_widgets.engine.state import MarketRow

    engine = Engine(settings)
    panel = ControlPanel(engine)
    s = EngineState(running=True, tick=1, markets=[MarketRow("0xc0", 1, "Q0", strategy="spread"),
                                                   MarketRow("0xc1", 2, "Q1", strategy="mine")])
    panel.charts.set_markets(s)
    panel.refresh(s)
    panel.charts.market.value = "0xc1"  # a user's own strategy: an extra option
    assert panel.strategy.value == "mine" and "mine" in panel.strategy.options
    panel.charts.market.value = "0xc0"
    assert panel.strategy.value == "spread"
    panel.strategy.value = "mine"  # not a built-in name: this engine cannot build it
    assert "strategy refused" in panel.message.value and panel.strategy.value == "spread"
    assert "#cf222e" in panel.message.value
    assert "0xc0" not in engine._strategy_overrides
    panel.refresh(s)
    assert panel.strategy.value == "spread"
    panel.charts.market.value = None  # no market selected: a choice is refused, in red
    panel.strategy.value = "as"
    assert "select a market" in panel.message.value and "#cf222e" in panel.message.value
    assert panel.strategy.value is None and engine._strategy_overrides == {}


def test_table_and_totals_colour_pnl_by_sign_and_cut_long_questions():
    from pmm_widgets.engine.state import MarketRow
    from pmm_widgets.ui.controls import render_table, render_totals

    rows = [MarketRow("0xa", 1, "Q" * 80, pnl=0.5), MarketRow("0xb", 2, "short", pnl=-0.5),
            MarketRow("0xc", 3, "z", pnl=0.0)]
    out = render_table(rows)
    assert out.endswith("</tbody></table>")
    assert "<td class='pos'>+0.50</td>" in out and "<td class='neg'>-0.50</td>" in out
    assert "<td class=''>+0.00</td>" in out
    assert f">{'Q' * 60}</td>" in out and f'title="{"Q" * 80}"' in out  # cut to 60, the whole in the tooltip
    assert [render_totals(EngineState(totals=Totals(pnl=p))).split('"')[1] for p in (0.5, -0.5, 0.0)] == [
        "pmm-pnl pos", "pmm-pnl neg", "pmm-pnl "]


def test_an_attached_slider_keeps_the_sent_value_until_the_owner_applies_it(settings, monkeypatch):
    """The owner applies a command once a cycle: until its state shows the value, the page's
    refreshes must not move the slider back (2.5 -> 1.5 -> 2.5 was seen); a value the owner
    never applies is given back to the owner's after the wait, and the page says so."""
    now = [1_000.0]
    monkeypatch.setattr(controls.time, "time", lambda: now[0])
    stub = _Stub(settings, role="attached")
    panel = ControlPanel(stub)
    old = float(settings.params().alpha)
    state = lambda alpha: EngineState(role="attached", running=True, params={"alpha": alpha})  # noqa: E731
    panel._sync_from_state(state(old))
    panel.sliders["alpha"].value = 2.5
    now[0] += 1.0
    panel._sync_from_state(state(old))  # the owner has not applied it yet
    assert panel.sliders["alpha"].value == 2.5 and stub.sent == [{"alpha": 2.5}]
    now[0] += 1.0
    panel._sync_from_state(state(2.5))  # applied
    assert panel.sliders["alpha"].value == 2.5 and panel._pending_params == {}
    panel._sync_from_state(state(1.75))  # later changed by another face: the slider follows
    assert panel.sliders["alpha"].value == 1.75
    # a value the owner never applies (it refused it): back to the owner's value after the wait
    panel.sliders["alpha"].value = 3.0
    now[0] += panel._apply_wait() - 0.5
    panel._sync_from_state(state(1.75))
    assert panel.sliders["alpha"].value == 3.0
    now[0] += 1.0
    panel._sync_from_state(state(1.75))
    assert panel.sliders["alpha"].value == 1.75 and stub.sent == [{"alpha": 2.5}, {"alpha": 3.0}]
    assert "was not applied by the owner" in panel.message.value and "#cf222e" in panel.message.value
