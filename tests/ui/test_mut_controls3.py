"""The control panel (ui/controls.py) where the earlier passes left no test, without a browser:
backing out of live while an engine runs, the hand-over offer's prompt, the dead-man over an
engine the page did not start, what the widgets are built with (the CSS classes the page's
stylesheet and the browser tests select by, the live prompt's safe defaults, the slider ranges),
and the price cells of the universe table."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import ipywidgets as W
from eth_account import Account
from pydantic import SecretStr
from ui_helpers import Stub, hand_over, until

from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, MarketRow
from pmm_widgets.store.db import make_engine
from pmm_widgets.ui.controls import TABLE_CSS, ControlPanel, render_table

KEY = Account.create()
RED = "#cf222e"


def _with_key(s):
    return s.model_copy(update={"private_key": SecretStr(KEY.key.hex())})


def _other_owner(db_url: str) -> Lease:
    db = make_engine(db_url)
    lease = Lease(db, ttl_sec=30, owner="otherhost:9:owner")
    assert lease.try_acquire()
    lease.renew(EngineState(role="owner", running=True, mode="live").to_json())
    return lease


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
