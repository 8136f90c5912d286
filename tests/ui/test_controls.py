"""Widget bindings without a browser: ipywidgets 8 runs on a dummy comm, so observers and
clicks fire in-process. The attached-mode tests stand in for the owner with a lease row and
apply its commands by hand, which keeps these tests independent of the trading stack."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from decimal import Decimal

from ui_helpers import hand_over

from pmm_widgets.engine import Engine
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, KillResult, MarketRow, Totals
from pmm_widgets.store.db import make_engine
from pmm_widgets.ui.controls import ControlPanel, fmt_num, render_status, render_table


def _state(n: int = 3, tick: int = 1, alpha: float = 1.5) -> EngineState:
    rows = [MarketRow(f"0xc{i}", i + 1, f"Will thing {i} & <co> happen?", mid=0.5, spread=0.02, yes_bid=0.48,
                      yes_ask=0.52, no_bid=0.48, no_ask=0.52, pnl=0.1 * i, fills_per_min=0.5, status="quoting")
            for i in range(n)]
    return EngineState(role="owner", running=True, tick=tick, ts=time.time(), markets=list(reversed(rows)),
                       totals=Totals(pnl=1.25, fills=4, open_orders=4 * n), params={"alpha": alpha})


def test_table_orders_by_rank_and_escapes():
    html = render_table(_state(3).markets)
    assert html.index('data-cid="0xc0"') < html.index('data-cid="0xc1"') < html.index('data-cid="0xc2"')
    assert "&amp; &lt;co&gt;" in html and "<co>" not in html


def test_refresh_renders_rows_and_status(settings):
    panel = ControlPanel(Engine(settings))
    panel.refresh(_state(5, tick=7))
    assert panel.table.value.count("<tr data-cid=") == 5
    assert 'class="pmm-tick">7<' in panel.status.value


def test_slider_sets_live_params(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.sliders["alpha"].value = 3.0
    panel.sliders["paper_full_fill_prob"].value = 0.7
    assert engine.params.alpha == 3.0 and engine.params.paper_full_fill_prob == 0.7
    assert engine.state.params["alpha"] == 3.0


def test_slider_ranges_lie_inside_the_parameter_bounds():
    from pmm_widgets.config import Params, field_bounds
    from pmm_widgets.ui.controls import SLIDERS

    for name, _label, lo, hi, _step, _dec in SLIDERS:
        f_lo, f_hi = field_bounds(name)
        assert name in Params.model_fields and Params.model_fields[name].description
        assert (f_lo is None or lo >= f_lo) and (f_hi is None or hi <= f_hi), (name, lo, hi, f_lo, f_hi)


def test_slider_shows_a_value_outside_its_usual_range_without_clamping(settings):
    engine = Engine(settings.model_copy(update={"alpha": 15.0}))  # PMM_ALPHA=15: valid (<= 20), slider max 10
    panel = ControlPanel(engine)
    assert panel.sliders["alpha"].value == 15.0 and engine.params.alpha == 15.0
    assert panel.sliders["alpha"].tooltip == type(engine.params).model_fields["alpha"].description
    panel.refresh(_state(alpha=18.0))  # set elsewhere (code, another face)
    assert panel.sliders["alpha"].value == 18.0 and panel.sliders["alpha"].max >= 18.0
    assert engine.params.alpha == 15.0  # syncing the widget never writes the parameter back


def test_invalid_value_snaps_back_with_message(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    sl = panel.sliders["alpha"]
    sl.max = 50.0  # the widget allows it; Params (alpha <= 20) refuses it
    sl.value = 30.0
    assert sl.value == 1.5 and engine.params.alpha == 1.5
    assert "refused" in panel.message.value and "alpha" in panel.message.value


def test_live_mode_without_credentials_is_refused(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    assert panel.mode.value == "paper" and engine.mode.value == "paper"
    assert "credentials" in panel.message.value


def test_chart_sources_stream_bounded(settings):
    panel = ControlPanel(Engine(settings), rollover=5)
    panel._streaming = True
    for k in range(8):
        panel.refresh(_state(3, tick=k), now=1000.0 + k)
    assert len(panel.charts.pnl.data["t"]) == 5
    assert panel.charts.selected == "0xc0" and len(panel.charts.quotes.data["mid"]) == 5
    panel.charts.market.value = "0xc2"
    assert len(panel.charts.quotes.data["t"]) == 5  # history of the newly selected market


async def test_attached_panel_shows_owner_state_sends_params_and_kill(settings, db_url):
    db = make_engine(db_url)
    owner = Lease(db, ttl_sec=30, owner="fake-owner")
    assert owner.try_acquire()
    owner.renew(_state(4, tick=9).to_json())
    queue = CommandQueue(db, "fake-owner")

    engine = Engine(settings)
    engine.start()
    assert await engine.wait_role() == "attached"
    panel = ControlPanel(engine)
    panel.refresh()
    assert panel.table.value.count("<tr data-cid=") == 4 and "ATTACHED" in panel.status.value

    panel.sliders["alpha"].value = 2.5
    for _ in range(50):
        pending = queue.pending()
        if pending:
            break
        await asyncio.sleep(0.02)
    assert [(c.kind, c.payload) for c in pending] == [("set_params", {"alpha": 2.5})]
    queue.mark_applied(pending[0].id, "ok")

    async def fake_owner_applies_kill():
        while True:
            for c in queue.pending():
                if c.kind == "kill":
                    kr = KillResult(time.time(), 8, 0, True, "KILLED: 8 orders cancelled, venue reports 0 open")
                    queue.mark_applied(c.id, json.dumps(asdict(kr)))
                    return
            await asyncio.sleep(0.02)

    applier = asyncio.create_task(fake_owner_applies_kill())
    panel.kill.click()
    for _ in range(100):
        if "KILLED" in panel.kill_result.value:
            break
        await asyncio.sleep(0.05)
    await applier
    assert "KILLED: 8 orders cancelled" in panel.kill_result.value
    assert 'class="pmm-kill-open">0<' in panel.kill_result.value
    await engine.stop()
    assert not engine.running
    db.dispose()


class _OwnerStub:
    """Just enough of an owning Engine for the dead-man watchdog: records clean stops."""

    def __init__(self, settings):
        from pmm_widgets.domain import Mode
        from pmm_widgets.engine.state import EventLog

        self.settings, self.mode, self.role, self.running = settings, Mode.PAPER, "owner", True
        self._owner_id = "stub-owner"
        self.params = settings.params()
        self.events = EventLog()
        self.state = EngineState(role="owner", running=True)
        self.stops = 0
        self.starts: list[bool] = []

    async def stop(self):
        self.stops += 1
        self.running = False

    def start(self, attach_only=False, automatic=False):
        self.starts.append(attach_only)
        self.running = True
        return asyncio.get_running_loop().create_future()

    async def lease_holder(self):
        return None


async def test_deadman_stops_owned_engine_cleanly_without_heartbeat(settings):
    stub = _OwnerStub(settings)  # deadman_sec = 1.0 in the fixture
    panel = ControlPanel(stub)
    panel.show()
    panel.heartbeat.value = 1  # the browser beats once, then goes silent
    await asyncio.sleep(0.5)
    assert stub.stops == 0
    for _ in range(40):
        if stub.stops:
            break
        await asyncio.sleep(0.1)
    assert stub.stops == 1  # the clean stop (cancel all, flush, release the lease), not a pause
    assert any(ev.kind == "deadman" for ev in stub.events.recent())
    await asyncio.sleep(1.5)
    assert stub.stops == 1  # once per silence
    panel.heartbeat.value = 2  # the browser is back: the switch re-arms
    assert panel._deadman_fired is False
    for t in panel._tasks:
        t.cancel()


async def test_autostart_waits_for_the_first_browser_heartbeat(settings):
    """Voilà executes the notebook for any GET: nothing may start before a view beats."""
    stub = _OwnerStub(settings)
    stub.running = False
    panel = ControlPanel(stub, autostart=True)
    panel.show()
    await asyncio.sleep(1.3)
    assert stub.starts == [] and not panel._streaming
    panel.heartbeat.value = 1
    for _ in range(40):
        if stub.starts:
            break
        await asyncio.sleep(0.05)
    assert stub.starts == [False] and panel._streaming
    for t in panel._tasks:
        t.cancel()


def test_status_escapes_everything_from_the_lease_row():
    """Stored XSS (issue 17): owner, mode, params, pause note, errors come from the DB."""
    evil = "<img src=x onerror=alert(1)>"
    s = EngineState(role="attached", owner=evil, mode=evil, paused=True, pause_note=evil, last_error=evil,
                    venue_health=evil, params={"alpha": evil}, recording=evil)
    out = render_status(s)
    assert "<img" not in out and out.count("&lt;img") == 7
    m = _state(1).markets
    m[0].status = evil
    m[0].condition_id = '"><script>x</script>'
    t = render_table(m)
    assert "<img" not in t and "<script" not in t


def test_params_display_without_float_noise(settings):
    assert fmt_num(2.0000000000000004) == "2" and fmt_num(0.1 + 0.2) == "0.3"
    assert fmt_num(Decimal("0.10")) == "0.1" and fmt_num("1.50") == "1.5" and fmt_num(True) == "True"
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.sliders["alpha"].value = 2.0000000000000004
    assert engine.params.alpha == 2.0
    panel.refresh()
    assert 'pmm-alpha-value">2<' in panel.status.value


def test_pause_button_label_follows_state(settings):
    panel = ControlPanel(Engine(settings))
    panel.refresh(EngineState(paused=True, pause_note="deadman by page-1 at 10:00:00"))
    assert panel.pause_btn.description == "Resume quoting" and panel.pause_btn.value is True
    assert "deadman by page-1" in panel.status.value
    panel.refresh(EngineState(paused=False))
    assert panel.pause_btn.description == "Pause quoting"


def test_transient_messages_expire(settings):
    panel = ControlPanel(Engine(settings))
    panel._msg("alpha = 2")
    assert "alpha" in panel.message.value
    panel.refresh(now=time.time() + 5)
    assert "alpha" in panel.message.value
    panel.refresh(now=time.time() + 60)
    assert panel.message.value == ""


def test_live_mode_needs_a_typed_confirmation(settings):
    from eth_account import Account
    from pydantic import SecretStr

    key = Account.create()
    engine = Engine(settings.model_copy(update={"private_key": SecretStr(key.key.hex())}))
    panel = ControlPanel(engine)
    panel.mode.value = "live"
    assert engine.mode.value == "paper"  # not yet: a confirmation is pending
    assert panel.live_box.layout.display == "flex" and key.address in panel.live_box.children[0].value
    assert key.key.hex() not in panel.live_box.children[0].value
    assert panel.live_confirm.disabled
    panel._on_live_confirm(None)  # a forged click without the word: refused
    assert engine.mode.value == "paper" and "refused" in panel.message.value
    panel.live_text.value = "yes"
    assert panel.live_confirm.disabled
    panel.live_text.value = "live"
    assert not panel.live_confirm.disabled
    panel.live_confirm.click()
    assert engine.mode.value == "live" and panel.live_box.layout.display == "none"
    panel.mode.value = "paper"
    assert engine.mode.value == "paper"
    panel.mode.value = "live"
    panel.live_text.value = key.address[-4:].upper()  # or the wallet's last 4 hex digits
    assert not panel.live_confirm.disabled
    panel.live_confirm.click()
    assert engine.mode.value == "live"


async def test_parameters_persist_with_who_and_when_and_restore(settings):
    first = Engine(settings, persist_params=True)
    first.set_params(alpha=2.5, changed_by="dashboard tester")  # idle, DB not open yet: kept
    await first._open_db()
    await first._restore_params()  # what an owner start does: records the idle change
    first.set_params(skew=1.25, changed_by="dashboard tester")
    for _ in range(50):
        if not first._sending:
            break
        await asyncio.sleep(0.02)
    second = Engine(settings, persist_params=True)
    assert second.params.alpha == 1.5  # env default until restored
    await second._open_db()
    await second._restore_params()
    assert second.params.alpha == 2.5 and second.params.skew == 1.25
    msgs = [ev.message for ev in second.events.recent() if ev.kind == "params"]
    assert msgs and "alpha=2.5 (by dashboard tester at" in msgs[0]
    from pmm_widgets.engine.param_log import latest

    rows = latest(second._db)
    assert rows["alpha"].changed_by == "dashboard tester" and rows["alpha"].ts > 0


async def test_unreachable_venue_at_start_is_one_clear_line_on_the_page(settings):
    """An unreachable venue at start is retried with backoff (issue 17: a restart inside a 5xx burst
    must not end the engine), and the page says so in one line naming the host while it waits; a
    Stop then ends the wait and the message says the engine could not start, naming the host."""
    s = settings.model_copy(update={"gamma_url": "http://127.0.0.1:9", "clob_url": "http://127.0.0.1:9",
                                    "clob_ws_url": "ws://127.0.0.1:9/ws", "http_timeout_sec": 0.5})
    engine = Engine(s)
    panel = ControlPanel(engine)
    panel.start_engine()
    for _ in range(600):
        if "127.0.0.1:9" in (engine.state.last_error or "") or (engine.task is not None and engine.task.done()):
            break
        await asyncio.sleep(0.05)
    panel.refresh()
    status = panel.status.value
    assert "127.0.0.1:9" in status and "retrying" in status and "\n" not in status, status
    assert engine.state.totals.open_orders == 0  # nothing is quoted while the universe cannot load
    await engine.stop()
    for _ in range(300):
        if engine.task is not None and engine.task.done():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.05)
    text = panel.message.value
    assert "could not start" in text and "127.0.0.1:9" in text and "\n" not in text, text


async def test_a_frontend_state_request_starts_at_once_and_the_deadman_covers_it(settings):
    """Voilà's widget manager asks for the widgets' state before rendering them: that already
    proves a browser (a curl never does), so start/take over then; if that view never beats,
    the dead-man still stops the engine."""
    stub = _OwnerStub(settings)
    stub.running = False
    panel = ControlPanel(stub, autostart=True)
    panel.show()
    panel._on_view_requested()
    for _ in range(40):
        if stub.starts:
            break
        await asyncio.sleep(0.05)
    assert stub.starts == [False] and not panel._streaming
    for _ in range(60):  # deadman_sec = 1.0 in the fixture; no beat ever comes
        if stub.stops:
            break
        await asyncio.sleep(0.1)
    assert stub.stops == 1
    panel.heartbeat.value = 1  # a late first beat does not start a second time
    await asyncio.sleep(0.3)
    assert stub.starts == [False]
    for t in panel._tasks:
        t.cancel()


def test_charts_backfill_from_the_db(settings, db_url):
    """Page load: total PnL, fills/min and the selected market's mid/inventory from the DB."""
    import sqlalchemy as sa

    from pmm_widgets.store.schema import book_snapshots, markets, pnl, trades
    from pmm_widgets.ui.dashboard import load_history

    now = time.time()
    db = make_engine(db_url)
    with db.begin() as conn:
        conn.execute(sa.insert(markets), [{"snapshot_ts": now - 900, "rank": 1, "condition_id": "0xc0",
                                           "question": "q", "yes_token_id": "y0", "no_token_id": "n0"}])
        conn.execute(sa.insert(pnl), [{"ts": now - 600 + 60 * i, "market": m, "total": Decimal(i),
                                       "inventory_yes": Decimal(5 * i), "inventory_no": Decimal(0)}
                                      for i in range(5) for m in ("TOTAL", "0xc0")])
        conn.execute(sa.insert(trades), [{"trade_id": f"t{i}", "token_id": "y0", "side": "BUY", "price": Decimal("0.5"),
                                          "size": Decimal(5), "fill_type": "full", "mode": "paper", "ts": now - 100 + i}
                                         for i in range(3)])
        conn.execute(sa.insert(book_snapshots), [{"token_id": "y0", "market": "0xc0", "ts": now - 500 + 100 * i,
                                                  "mid": Decimal("0.4") + Decimal(i) / 100} for i in range(4)])
        conn.execute(sa.insert(pnl), [{"ts": now - 7200, "market": "TOTAL", "total": Decimal(-9)}])  # too old
    db.dispose()
    hist = load_history(db_url, now=now)
    assert [v for _, v in hist["pnl"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert max(v for _, v in hist["fills_per_min"]) == 3.0  # three fills within one minute
    mids = hist["markets"]["0xc0"]
    assert [round(m, 2) for _, m, _, _ in mids] == [0.4, 0.41, 0.42, 0.43]
    assert mids[-1][2] == 20.0 and mids[0][2] == 5.0  # inventory of the last pnl row before each mid
    panel = ControlPanel(Engine(settings))
    panel.charts.selected = "0xc0"
    panel.charts.backfill(hist)
    assert len(panel.charts.pnl.data["t"]) == 5 and len(panel.charts.quotes.data["mid"]) == 4
    assert panel.charts.inventory.data["inv_yes"][-1] == 20.0


def test_headless_status_line_says_why_and_who_paused():
    from pmm_widgets.engine.runner import status_line

    line = status_line(EngineState(mode="paper", paused=True, pause_note="deadman by page-1 at 10:00:00"))
    assert line.startswith("[paper PAUSED (deadman by page-1 at 10:00:00)]")


async def test_button_actions_are_owned_reported_and_awaited_on_close(settings):
    """`_spawn` (the Kill button's path) holds its task until it ends, shows a failure on the page
    at once, and `close()` waits for an action under way instead of dropping it."""
    panel = ControlPanel(Engine(settings))
    gate = asyncio.Event()
    done: list[str] = []

    async def slow_kill() -> None:
        await gate.wait()
        done.append("kill")

    async def broken() -> None:
        raise RuntimeError("venue said no")

    panel._spawn(slow_kill(), "kill")
    panel._spawn(broken(), "pause")
    assert len(panel._actions) == 2  # strong references: the loop keeps only weak ones
    await asyncio.sleep(0.05)
    assert "venue said no" in panel.message.value and len(panel._actions) == 1
    closing = asyncio.ensure_future(panel.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # the kill under way is awaited
    gate.set()
    await asyncio.wait_for(closing, 5)
    assert done == ["kill"] and not panel._actions


async def test_a_live_hand_over_waits_for_the_typed_confirmation(settings, db_url):
    """Issue 11: a page opened after a live page closed shows the pending hand-over and takes it
    over only after `live` (or the wallet's last 4 hex digits) is typed; paper takes over at once."""
    from eth_account import Account
    from pydantic import SecretStr

    key = Account.create()
    hand_over(db_url, "live")
    engine = Engine(settings.model_copy(update={"private_key": SecretStr(key.key.hex())}))
    panel = ControlPanel(engine)
    started: list[bool] = []
    panel.start_engine = lambda: started.append(True)  # type: ignore[method-assign]
    await panel._watch_lease(now=True)
    assert not started and engine.mode.value == "paper"  # nothing starts without the confirmation
    assert panel.live_box.layout.display == "flex" and "handed over" in panel.live_box.children[0].value
    assert key.address in panel.live_box.children[0].value and panel.live_confirm.description == "Take over LIVE"
    assert "pending hand-over" in panel.message.value
    await panel._watch_lease(now=True)  # polled again: offered once, still waiting
    assert not started
    panel._on_live_confirm(None)  # a forged click without the word: refused
    assert not started and engine.mode.value == "paper" and "refused" in panel.message.value
    panel.live_text.value = key.address[-4:]
    assert not panel.live_confirm.disabled
    panel.live_confirm.click()
    assert started == [True] and engine.mode.value == "live" and panel.mode.value == "live"
    assert panel.live_box.layout.display == "none"

    # declined: nothing starts, and the offer is not shown again
    engine2 = Engine(settings.model_copy(update={"private_key": SecretStr(key.key.hex())}))
    panel2 = ControlPanel(engine2)
    panel2.start_engine = lambda: started.append(False)  # type: ignore[method-assign]
    await panel2._watch_lease(now=True)
    panel2.live_cancel.click()
    assert "declined" in panel2.message.value and panel2.live_box.layout.display == "none"
    await panel2._watch_lease(now=True)
    assert panel2.live_box.layout.display == "none" and started == [True] and engine2.mode.value == "paper"

    # paper: automatic, as before
    hand_over(db_url, "paper")
    panel3 = ControlPanel(Engine(settings))
    panel3.start_engine = lambda: started.append(True)  # type: ignore[method-assign]
    await panel3._watch_lease(now=True)
    assert started == [True, True] and panel3.live_box.layout.display == "none"
