"""The control panel (ui/controls.py) where the earlier mutation passes left no test, without a
browser: backing out of live while an engine runs; the hand-over offer's prompt and the lease
watch's decisions; each live-path message's colour and time on the page; the dead-man over an
engine the page did not start; an attached slider's wait for the owner; what the page is built
with (the classes the browser tests and the stylesheet select by, its first state, the heartbeat's
intervals); the loops `show` starts; the price cells of the universe table.

`Stub` (ui_helpers) stands in for an `Engine` where a real one would need a running owner."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as W
import pytest
from eth_account import Account
from pydantic import SecretStr
from ui_helpers import Stub, hand_over, other_owner, until

from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, MarketRow
from pmm_widgets.ui import controls
from pmm_widgets.ui.controls import TABLE_CSS, ControlPanel, render_table

KEY = Account.create()
RED = "#cf222e"


def _with_key(s):
    return s.model_copy(update={"private_key": SecretStr(KEY.key.hex())})


def _other_owner(db_url: str) -> Lease:
    return other_owner(db_url, "live")


# ---------------------------------------------------------------- mode toggle while an engine runs

async def test_backing_out_to_paper_while_a_live_engine_runs_is_refused_in_red_and_the_toggle_stays_live(
        settings, db_url):
    """The mode cannot change under a running engine: a click on `paper` must not leave the
    toggle saying paper while the engine still runs live."""
    lease = _other_owner(db_url)
    engine = Engine(_with_key(settings), Mode.LIVE)
    task = engine.start(attach_only=True)
    try:
        assert await engine.wait_role() == "attached" and engine.running
        panel = ControlPanel(engine)
        assert panel.mode.value == "live"
        panel.mode.value = "paper"
        assert engine.mode is Mode.LIVE and panel.mode.value == "live"
        assert "refused: stop the engine before switching mode" in panel.message.value
        assert RED in panel.message.value
    finally:
        await engine.stop()
        await asyncio.wait_for(task, 5)
        lease.db.dispose()


async def test_a_confirmation_the_engine_refuses_is_refused_in_red_and_the_prompt_closes(settings, db_url):
    """The prompt was confirmed after an engine started on this page (here: it watches another
    owner): the engine refuses the switch, the page says so in red and shows paper again."""
    panel = _toggled(_key_panel(settings), "live")
    panel.live_text.value = "live"
    lease = _other_owner(db_url)
    task = panel.engine.start(attach_only=True)
    try:
        assert await panel.engine.wait_role() == "attached"
        panel.live_confirm.click()
        assert panel.engine.mode is Mode.PAPER and panel.mode.value == "paper"
        assert "refused: stop the engine before switching mode" in panel.message.value
        assert RED in panel.message.value and panel.live_box.layout.display == "none"
    finally:
        await panel.engine.stop()
        await asyncio.wait_for(task, 5)
        lease.db.dispose()


def test_asking_for_live_while_an_engine_runs_is_refused_in_red(settings):
    panel = ControlPanel(Stub(_with_key(settings)))  # owner, running
    panel.mode.value = "live"
    assert panel.mode.value == "paper" and panel.live_box.layout.display == "none"
    assert "refused: stop the engine (KILL) before switching to live" in panel.message.value
    assert RED in panel.message.value


# ---------------------------------------------------------------- the hand-over offer

async def test_a_hand_over_offer_opens_its_prompt_empty_even_over_a_word_typed_before(settings, db_url):
    """The operator opened the live prompt by hand and typed the word without confirming; then a
    live hand-over arrives. Its prompt must ask again: a click must not take the engine over
    with the word typed for the other question."""
    engine = Engine(_with_key(settings))
    panel = ControlPanel(engine)
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    panel.mode.value = "live"
    panel.live_text.value = "live"
    assert not panel.live_confirm.disabled
    hand_over(db_url, "live")
    await panel._watch_lease(now=True)
    assert panel.live_confirm.description == "Take over LIVE" and panel.live_box.layout.display == "flex"
    assert panel.live_text.value == "" and panel.live_confirm.disabled
    panel._on_live_confirm(None)  # a click (forged: the button is disabled)
    assert starts == [] and engine.mode is Mode.PAPER


# ---------------------------------------------------------------- dead-man switch

async def test_the_deadman_covers_an_engine_already_running_when_a_view_asked_and_never_beat(settings):
    """The engine was started before the page's view loaded (from the notebook): a widget
    manager asked for the state, no view ever beat. The dead-man stops it all the same."""
    stub = Stub(settings)  # owner, running; deadman_sec = 1.0
    panel = ControlPanel(stub)
    panel.show()
    try:
        panel._on_view_requested()
        assert await until(lambda: stub.stops, 4.0)
        assert stub.stops == [False] and stub.starts == []  # a clean stop, nothing started
        assert not any(t.done() for t in panel._tasks)  # the watchdog still runs
    finally:
        for t in panel._tasks:
            t.cancel()


# ---------------------------------------------------------------- the universe table

def test_the_table_shows_prices_to_three_decimals_and_a_dash_for_none():
    row = MarketRow("0xc", 1, "q", mid=0.5, spread=0.0125, yes_bid=0.4871, yes_ask=None, no_bid=None, no_ask=0.52)
    out = render_table([row])
    assert "<td>0.500</td><td>0.013</td><td class='ours'>0.487</td><td class='ours'>–</td>" in out
    assert "<td class='ours'>–</td><td class='ours'>0.520</td>" in out


# ---------------------------------------------------------------- watching the lease

async def test_an_autostarted_page_whose_engine_stopped_attaches_to_the_next_owner(settings):
    """The demo page started its engine on the first view (no lease look-up then); the engine
    stopped later (KILL). The refresh loop must go on looking at the lease and watch whoever
    owns the DB now, without a failure in the page log."""
    stub = Stub(settings, running=False)
    panel = ControlPanel(stub, autostart=True)
    panel.show()
    try:
        panel.heartbeat.value = 1
        assert await until(lambda: stub.starts == [False])
        stub.running = False  # killed

        async def holder() -> str:
            return "otherhost:9:owner"

        stub.lease_holder = holder  # type: ignore[method-assign]
        for k in range(2, 12):  # the view keeps beating (deadman_sec = 1.0)
            panel.heartbeat.value = k
            if await until(lambda: len(stub.starts) > 1, 0.25):
                break
        assert stub.starts == [False, True]  # attach-only: it watches, it never takes the lease
        assert "refresh failed" not in "".join(o.get("text", "") for o in panel.log.outputs)
    finally:
        for t in panel._tasks:
            t.cancel()


# ---------------------------------------------------------------- what the page is built with

ROOT = Path(__file__).resolve().parents[2]


def _widgets(w: W.Widget) -> list[W.Widget]:
    out = [w]
    for c in getattr(w, "children", ()):
        out += _widgets(c)
    return out


def _selected_classes() -> set[str]:
    """The classes the browser tests (tests/e2e) and the page's stylesheet select widgets by."""
    text = TABLE_CSS + "".join(p.read_text() for p in sorted((ROOT / "tests" / "e2e").glob("*.py")))
    found = set(re.findall(r"\.(pmm-[a-z-]+)", text))
    return found - {"pmm-universe"}  # the table's own HTML, not a widget


def test_the_widgets_carry_the_classes_the_browser_tests_and_the_stylesheet_select_by(settings):
    panel = ControlPanel(Engine(settings))
    widgets = _widgets(panel.root)
    classes = {c for w in widgets for c in w._dom_classes}
    shown = "".join(str(w.value) for w in widgets if isinstance(w, W.HTML))  # the status line's spans
    wanted = _selected_classes()
    assert {"pmm-kill", "pmm-live-confirm", "pmm-start", "pmm-alpha", "pmm-status"} <= wanted  # the scan works
    later = {"pmm-kill-open", "pmm-fatal"}  # in the kill banner, in the page that could not start
    missing = {c for c in wanted - later if c not in classes and f'class="{c}"' not in shown}
    assert not missing, missing
    # and every control an operator uses can be selected by a class of its own
    controls = [w for w in widgets if isinstance(w, (W.Button, W.ToggleButton, W.ToggleButtons, W.Text,
                                                     W.FloatSlider, W.Dropdown))]
    own = [next((c for c in w._dom_classes if c.startswith("pmm-")), None) for w in controls]
    assert None not in own and len(set(own)) == len(own), own


# ---------------------------------------------------------------- what the live path says, in which colour, how long

def _lasts(panel: ControlPanel, t0: float, t1: float, ttl: float) -> bool:
    """The message said between `t0` and `t1` is still shown just before `ttl` seconds after
    `t0` and gone just after `ttl` seconds after `t1`."""
    panel.refresh(now=t0 + ttl - 0.5)
    kept = panel.message.value != ""
    panel.refresh(now=t1 + ttl + 0.5)
    return kept and panel.message.value == ""


async def _watched(settings, db_url: str, mode: str) -> ControlPanel:
    """A page that found an engine of `mode` handed over (its start recorded, not run)."""
    hand_over(db_url, mode)
    panel = ControlPanel(Engine(settings))
    panel.start_engine = lambda: None  # type: ignore[method-assign]
    await panel._watch_lease(now=True)
    return panel


def _confirmed(panel: ControlPanel, text: str = "live") -> ControlPanel:
    panel.live_text.value = text
    panel._on_live_confirm(None)
    return panel


def _toggled(panel: ControlPanel, *values: str) -> ControlPanel:
    for v in values:
        panel.mode.value = v
    return panel


def _key_panel(settings) -> ControlPanel:
    return ControlPanel(Engine(_with_key(settings)))


# (what the operator did, the message, red, seconds shown)
ASKED: dict[str, tuple[Callable[[Any], ControlPanel], str, bool, float]] = {
    "no credentials": (lambda s: _toggled(ControlPanel(Engine(s)), "live"),
                       "refused: live needs credentials", True, 20),
    "a bad key": (lambda s: _toggled(ControlPanel(Engine(s.model_copy(update={"private_key": SecretStr("0xbad")}))),
                                     "live"), "refused: PMM_PRIVATE_KEY is not a valid key", True, 20),
    "a wrong word": (lambda s: _confirmed(_toggled(_key_panel(s), "live"), "nope"), "refused: type 'live'", True, 20),
    "a hidden prompt": (lambda s: _confirmed(_key_panel(s)), "refused: open the live prompt", True, 20),
    "armed": (lambda s: _confirmed(_toggled(_key_panel(s), "live")), "LIVE mode armed", True, 60),
    "back to paper": (lambda s: _toggled(_confirmed(_toggled(_key_panel(s), "live")), "paper"), "paper mode", False, 10),
}

# after a page that closed handed its engine over: (then, its mode, the message, red, seconds shown)
OFFERED: dict[str, tuple[Callable[[ControlPanel], object], str, str, bool, float]] = {
    "live offered": (lambda p: None, "live", "pending hand-over of a LIVE engine", True, 3600),
    "live taken": (_confirmed, "live", "took over the live engine", True, 30),
    "live declined": (lambda p: p.live_cancel.click(), "live", "live hand-over declined", False, 60),
    "paper taken": (lambda p: None, "paper", "took over the paper engine", False, 30),
    "dry_run refused": (lambda p: None, "dry_run", "cannot take over the dry_run engine", True, 3600),  # no keys here
}


@pytest.mark.parametrize("case", list(ASKED))
def test_each_live_prompt_message_has_its_colour_and_its_time_on_the_page(settings, case):
    """Warnings about real money and refusals are red; an armed live mode says so for a minute;
    plain news is grey and short."""
    make, text, red, ttl = ASKED[case]
    t0 = time.time()
    panel = make(settings)
    t1 = time.time()
    assert text in html.unescape(panel.message.value), panel.message.value
    assert (RED in panel.message.value) is red
    assert _lasts(panel, t0, t1, ttl)


@pytest.mark.parametrize("case", list(OFFERED))
async def test_each_hand_over_message_has_its_colour_and_its_time_on_the_page(settings, db_url, case):
    """A live engine waiting for a confirmation is said in red for an hour (nothing trades until
    someone answers); taking it over is red; a declined offer or a paper take-over is news."""
    then, mode, text, red, ttl = OFFERED[case]
    t0 = time.time()
    panel = await _watched(_with_key(settings) if mode == "live" else settings, db_url, mode)
    then(panel)
    t1 = time.time()
    assert text in panel.message.value, panel.message.value
    assert (RED in panel.message.value) is red
    assert _lasts(panel, t0, t1, ttl)


# ---------------------------------------------------------------- an attached page's slider

@pytest.mark.parametrize(("quote_refresh", "wait"), [(0.2, 5.4), (3.0, 11.0)])
def test_a_value_sent_to_the_owner_waits_two_quote_cycles_and_five_seconds(settings, monkeypatch, quote_refresh,
                                                                            wait):
    """The owner applies commands once a cycle and publishes after it: the slider keeps the sent
    value for 2 x quote_refresh_sec + 5 s, then shows the owner's value and says so."""
    now = [1_000.0]
    monkeypatch.setattr(controls.time, "time", lambda: now[0])
    stub = Stub(settings.model_copy(update={"quote_refresh_sec": quote_refresh}), role="attached")
    panel = ControlPanel(stub)
    old = float(stub.params.alpha)
    owner = EngineState(role="attached", running=True, params={"alpha": old})
    panel._sync_from_state(owner)
    panel.sliders["alpha"].value = 2.5
    now[0] += wait - 0.1
    panel._sync_from_state(owner)
    assert panel.sliders["alpha"].value == 2.5
    now[0] += 0.2
    panel._sync_from_state(owner)
    assert panel.sliders["alpha"].value == old
    assert f"alpha = 2.5 was not applied by the owner within {wait:g} s" in panel.message.value
    now[0] += 30.0  # said once: the message expires like any other, the slider stays
    panel.refresh(owner, now=now[0])
    assert panel.message.value == "" and panel.sliders["alpha"].value == old


def test_the_page_as_first_shown(settings):
    """Before any refresh: the toggle says the engine's mode, the pause button is not pressed,
    the live prompt is hidden with its Confirm disabled; the text box sends each keystroke (the
    button enables as the operator types) and a slider sends only where it is released (each
    value is a command to the engine, not a stream of them)."""
    panel = ControlPanel(Engine(settings))
    assert panel.mode.value == "paper" and panel.pause_btn.value is False
    assert panel.pause_btn.description == "Pause quoting"
    assert panel.live_box.layout.display == "none" and panel.live_confirm.disabled
    assert panel.live_text.continuous_update is True
    assert all(sl.continuous_update is False for sl in panel.sliders.values())
    assert panel.message.value == "" and not panel.start_btn.disabled


async def test_a_default_page_keeps_the_chart_points_an_hour_long(settings):
    panel = ControlPanel(Engine(settings))
    panel._streaming = True
    for k in range(3):
        panel.refresh(EngineState(role="owner", running=True, tick=k), now=1000.0 + k)
    assert len(panel.charts.pnl.data["t"]) == 3
    assert panel.charts.rollover == 3600


@pytest.mark.parametrize(("deadman", "first", "then"), [(0.3, 250, 250), (1.0, 250, 250), (8.0, 300, 2000),
                                                        (120.0, 300, 5000)])
async def test_the_heartbeat_beats_fast_first_then_four_times_per_deadman_within_a_quarter_to_five_seconds(
        settings, deadman, first, then):
    """The first beat comes fast (it starts the engine or takes a reloaded page's over); then the
    view beats four times per dead-man period, never faster than 4 Hz (each beat is kernel
    traffic) nor slower than every 5 s."""
    panel = ControlPanel(Stub(settings.model_copy(update={"deadman_sec": deadman}), running=False))
    assert panel.heartbeat.playing is True and panel.heartbeat.interval == first
    panel.heartbeat.value = 1
    assert panel.heartbeat.interval == then
    panel.heartbeat.value = 2
    assert panel.heartbeat.interval == then
    assert await until(lambda: not panel._actions)  # the first view's look at the lease ended


def test_the_heartbeat_never_runs_out_in_a_view_open_for_a_month(settings):
    """The frontend's Play stops at its max: a view that beats no more is taken for a closed
    browser and the dead-man stops the engine."""
    panel = ControlPanel(Stub(settings, running=False))
    fastest_ms = 250
    assert panel.heartbeat.max - panel.heartbeat.value >= 31 * 86_400 * 1000 // fastest_ms


# ---------------------------------------------------------------- show(): the page's loops

async def test_show_starts_the_loops_once_and_a_dead_loop_is_said_on_the_page(settings):
    """Showing the page again (a re-run cell) reuses its loops; a loop that dies (here the
    dead-man's stop fails) is said in red on the page, not lost in a log no one reads."""
    stub = Stub(settings)  # owner, running; deadman_sec = 1.0

    async def stop(handover: bool = False) -> None:
        raise OSError("database is locked")

    stub.stop = stop  # type: ignore[method-assign]
    panel = ControlPanel(stub)
    try:
        assert panel.show() is panel.root
        loops = list(panel._tasks)
        assert panel.show() is panel.root and panel._tasks == loops and len(loops) == 2
        panel.heartbeat.value = 1  # one beat, then silence: the dead-man fires and its stop fails
        assert await until(lambda: "database is locked" in panel.message.value, 4.0)
        assert "pmm-deadman" in panel.message.value and RED in panel.message.value
    finally:
        for t in panel._tasks:
            t.cancel()


# ---------------------------------------------------------------- the lease watch's decisions

async def test_a_declined_hand_over_is_not_offered_again_and_a_plain_cancel_declines_nothing(settings, db_url):
    panel = await _watched(_with_key(settings), db_url, "live")
    panel.live_cancel.click()
    assert "declined" in panel.message.value and panel.live_box.layout.display == "none"
    await panel._watch_lease(now=True)  # the same offer is still in the DB: not asked again
    assert panel.live_box.layout.display == "none"
    plain = _toggled(_key_panel(settings), "live")  # a prompt opened by hand, no hand-over
    plain.live_cancel.click()
    assert plain.message.value == "" and plain.mode.value == "paper"


async def test_a_paper_hand_over_to_a_page_armed_live_is_taken_over_in_paper(settings, db_url):
    hand_over(db_url, "paper")
    engine = Engine(_with_key(settings), Mode.LIVE)
    panel = ControlPanel(engine)
    starts: list[bool] = []
    panel.start_engine = lambda: starts.append(True)  # type: ignore[method-assign]
    assert panel.mode.value == "live"
    await panel._watch_lease(now=True)
    assert starts == [True] and engine.mode is Mode.PAPER and panel.mode.value == "paper"


@pytest.mark.parametrize("meanwhile", ["started", "closed"])
async def test_a_hand_over_found_after_the_page_started_or_closed_meanwhile_is_left_alone(settings, meanwhile):
    """The DB is read off the loop: whatever happened while it was read wins."""
    stub = Stub(settings, running=False)
    panel = ControlPanel(stub)

    async def pending() -> Mode:
        if meanwhile == "started":
            stub.running = True
        else:
            panel.closed = True
        return Mode.PAPER

    stub.handover_pending = pending  # type: ignore[method-assign]
    await panel._watch_lease(now=True)
    assert stub.starts == [] and panel.message.value == ""


async def test_the_refresh_loop_reads_the_lease_at_most_once_a_second(settings, monkeypatch):
    now = [1_000.0]
    monkeypatch.setattr(controls.time, "time", lambda: now[0])
    stub = Stub(settings, running=False)
    reads: list[float] = []

    async def holder() -> None:
        reads.append(now[0])

    stub.lease_holder = holder  # type: ignore[method-assign]
    panel = ControlPanel(stub)
    for dt in (0.0, 0.5, 0.4, 0.2, 0.9, 0.2):  # refreshes at 1000, 1000.5, 1000.9, 1001.1, 1002.0, 1002.2
        now[0] += dt
        await panel._watch_lease()
    assert reads == pytest.approx([1_000.0, 1_001.1, 1_002.2])
    await panel._watch_lease(now=True)  # a view's load looks at once
    assert len(reads) == 4


async def test_after_taking_a_live_engine_over_the_next_live_hand_over_is_offered_again(settings, db_url):
    """The offer answered is over: when this page's engine has stopped since and another page's
    live engine is handed over later, that one is offered too (not silently ignored)."""
    panel = _confirmed(await _watched(_with_key(settings), db_url, "live"))  # taken over (its start recorded)
    assert "took over the live engine" in panel.message.value and panel.live_box.layout.display == "none"
    hand_over(db_url, "live")  # later: another page's live engine, handed over
    await panel._watch_lease(now=True)
    assert panel.live_box.layout.display == "flex" and panel.live_confirm.description == "Take over LIVE"


async def test_a_withdrawn_live_hand_over_offer_does_not_hide_a_later_one(settings, db_url):
    """An offered live hand-over is withdrawn when another engine takes the lease first; when
    that engine is handed over live later, the new hand-over is offered too (the offer flag was
    left set by the withdrawal: the later one would have been silently ignored)."""
    panel = await _watched(_with_key(settings), db_url, "live")
    assert panel.live_box.layout.display == "flex" and panel.live_confirm.description == "Take over LIVE"
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    panel.engine.start = lambda attach_only=False: done  # type: ignore[method-assign,assignment]  # (no real attach)
    other = _other_owner(db_url)  # another page took it over first: the offer is withdrawn
    await panel._watch_lease(now=True)
    assert panel.live_box.layout.display == "none"
    other.release(None)
    hand_over(db_url, "live")  # later: that engine's page closed, live handed over again
    await panel._watch_lease(now=True)
    assert panel.live_box.layout.display == "flex" and panel.live_confirm.description == "Take over LIVE"
