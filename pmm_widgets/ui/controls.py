"""`ControlPanel`: the operator's widgets over one `Engine` (owner or attached).

Why this shape:
- Every control goes through the engine's `Params` validation (`engine.set_params`), the same
  rules as env vars and code; a refused value snaps the widget back and shows the message.
- The face refreshes on its own task every `dashboard_refresh_sec`, reading `engine.state`;
  the quote loop never waits for a widget.
- A hidden `W.Play` is the browser heartbeat. Nothing happens before its first beat: Voilà
  executes the notebook for any GET (a curl, a link preview), so the engine starts (demo) and
  the charts stream only once a browser view exists. Silence for `deadman_sec` afterwards (a
  crashed or closed browser whose unload beacon never arrived) stops an engine this page owns
  cleanly (cancel all, flush, release the lease) and quiets the page, so the culler ends it.
- Everything shown that came from the DB (the lease row's state: owner, mode, params, errors,
  market questions) is HTML-escaped: DB write access must not become script in the page.
- Errors from background tasks go to an `Output` widget: prints after the notebook finished
  would appear nowhere under Voilà.
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import ipywidgets as W
from pydantic import ValidationError

from ..config import STRATEGY_NAMES, Params, format_validation_error
from ..domain import Mode
from ..engine.core import Engine, venue_description, wallet_address
from ..engine.state import EngineState, KillResult, MarketRow
from ..events import Event, EventKind, Level
from ..tasks import spawn
from .charts import Charts

COLUMNS = ("rank", "question", "mid", "spread", "YES bid", "YES ask", "NO bid", "NO ask",
           "inv YES", "inv NO", "PnL", "rewards $/h", "fills/min", "status")

# (params field, label, min, max, step, decimals): the slider's usual range, inside the parameter's
# bounds (ParamFields, a test checks); it widens to show a valid value set elsewhere (PMM_*, code)
SLIDERS = (
    ("alpha", "α (spread ×)", 0.1, 10.0, 0.1, 2),
    ("paper_fill_intensity", "fill intensity", 0.0, 20.0, 0.1, 2),
    ("paper_spread_k", "spread k", 0.0, 1000.0, 5.0, 1),
    ("paper_full_fill_prob", "full-fill prob", 0.0, 1.0, 0.01, 3),
)

SORT_KEYS: dict[str, Callable[[MarketRow], Any]] = {
    "rank": lambda r: r.rank,
    "PnL (worst first)": lambda r: r.pnl,
    "PnL (best first)": lambda r: -r.pnl,
    "fills/min": lambda r: -r.fills_per_min,
    "inventory": lambda r: -(abs(r.inv_yes) + abs(r.inv_no)),
    "spread": lambda r: -(r.spread or 0.0),
}

WAIT_FOR_VIEW_SEC = 30.0  # after a frontend asked for the widgets' state, nudge the heartbeat this long
NUDGE_AT_START_SEC = 8.0  # and this long after the panel is built (a frontend already connected: JupyterLab)
MESSAGE_TTL_SEC = 10.0  # transient messages (and refusals) expire
LEASE_POLL_SEC = 1.0  # a page whose engine is not running looks for another owner this often
LIVE_WORD = "live"
# INFO events the log shows too (every WARNING and ERROR is shown): life cycle, commands, and the
# live exchange's reconcile summary (orders adopted or cancelled, fills backfilled)
LOGGED_INFO = frozenset({EventKind.ENGINE_START, EventKind.ENGINE_STOP, EventKind.ATTACHED, EventKind.COMMAND,
                         EventKind.PARAMS, EventKind.RECONCILE})


_view_listeners: list[Callable[[], None]] = []


def _install_view_hook() -> None:
    """Tell panels when a browser's widget manager asks for the widgets' state.

    Why: `W.Play` only starts ticking on a False→True change made while its view exists, so the
    kernel must toggle it; toggling sends messages, and messages count as kernel activity for
    Voilà's culler. Toggling only after a frontend's `request_states` (ipywidgets' control comm,
    which Voilà's widget manager uses on load) keeps a kernel that no browser ever opened (a
    curl, a health check) silent, so the culler ends it."""
    if getattr(W.Widget, "_pmm_view_hook", False):
        return
    original = W.Widget._handle_control_comm_msg.__func__

    def handle(cls: type, msg: dict[str, Any]) -> None:
        original(cls, msg)
        if (msg.get("content") or {}).get("data", {}).get("method") == "request_states":
            for cb in list(_view_listeners):
                try:
                    cb()
                except Exception:  # noqa: BLE001 - a broken panel must not break the widget protocol
                    pass

    W.Widget._handle_control_comm_msg = classmethod(handle)
    W.Widget._pmm_view_hook = True


def fmt_num(v: Any) -> str:
    """A parameter for display: exact Decimal as given, floats without binary noise (2, not 2.0000000000000004)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        d = Decimal(format(float(v), ".10g")).normalize()
        return format(d, "f")
    if isinstance(v, str):
        try:
            return fmt_num(Decimal(v))
        except ArithmeticError:
            return v
    return str(v)


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def render_table(rows: list[MarketRow], sort: str = "rank") -> str:
    """The universe table as HTML. Hand-built: 50 rows cost well under a millisecond. All text escaped."""
    key = SORT_KEYS.get(sort, SORT_KEYS["rank"])
    out = ['<table class="pmm-universe"><thead><tr>', *(f"<th>{html.escape(c)}</th>" for c in COLUMNS),
           "</tr></thead><tbody>"]
    for m in sorted(rows, key=key):
        pnl_cls = "pos" if m.pnl > 0 else "neg" if m.pnl < 0 else ""
        out.append(
            f'<tr data-cid="{html.escape(str(m.condition_id))}"><td>{int(m.rank)}</td>'
            f'<td class="q" title="{html.escape(str(m.question))}">{html.escape(str(m.question)[:60])}</td>'
            f"<td>{_p(m.mid)}</td><td>{_p(m.spread)}</td><td class='ours'>{_p(m.yes_bid)}</td>"
            f"<td class='ours'>{_p(m.yes_ask)}</td><td class='ours'>{_p(m.no_bid)}</td>"
            f"<td class='ours'>{_p(m.no_ask)}</td><td>{float(m.inv_yes):.0f}</td><td>{float(m.inv_no):.0f}</td>"
            f"<td class='{pnl_cls}'>{float(m.pnl):+.2f}</td>"
            f"<td class='rw'>{'–' if m.rewards_per_hour is None else f'{float(m.rewards_per_hour):.3f}'}</td>"
            f"<td>{float(m.fills_per_min):.2f}</td>"
            f"<td class='st'>{html.escape(str(m.status))}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


TABLE_CSS = """<style>
.pmm-universe{border-collapse:collapse;font:12px monospace;width:100%}
.pmm-universe th{position:sticky;top:0;background:#fff}
.pmm-universe th,.pmm-universe td{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
.pmm-universe td.q,.pmm-universe th:nth-child(2){text-align:left;max-width:28em;overflow:hidden;text-overflow:ellipsis}
.pmm-universe td.ours{background:#f3f8ff}.pmm-universe td.pos{color:#1a7f37}.pmm-universe td.neg{color:#cf222e}
.pmm-kill button,.pmm-kill{font-weight:bold}
.pmm-app h3{margin:0 0 4px 0}
.pmm-status{font:13px sans-serif}
.pmm-totals{font:15px sans-serif}
.pmm-fatal{color:#cf222e;font:15px sans-serif}
</style>"""


def render_status(s: EngineState) -> str:
    """The status line. Every field that can come from the lease row is escaped (stored XSS)."""
    e = html.escape
    lag = "n/a" if s.feed.lag_sec is None else f"{float(s.feed.lag_sec):.1f}s"
    db = "n/a" if s.writer_lag_sec is None else f"{float(s.writer_lag_sec):.1f}s"
    if s.writer:  # the writer's own phrase: lag, plus queued rows and a fault when unhealthy
        db = e(str(s.writer)).removeprefix("db lag ")
    role = {"owner": "OWNER (this page trades)", "attached": f"ATTACHED to {e(str(s.owner))}",
            "idle": "idle (press Start)"}.get(s.role, e(str(s.role)))
    run = "running" if s.running else "stopped"
    paused = ""
    if s.paused:
        paused = " · <b>PAUSED</b>" + (f' <span class="pmm-pause-note">({e(str(s.pause_note))})</span>'
                                       if s.pause_note else "")
    alpha = fmt_num(s.params.get("alpha", "?"))
    err = (f' · <span class="pmm-error" style="color:#cf222e">error: {e(str(s.last_error))}</span>'
           if s.last_error else "")
    if s.halted:  # a safety halt (lease unproven, DB file lost, writer fault): quoting is off
        paused += ' · <b class="pmm-halted" style="color:#cf222e">HALTED</b>'
    return (f'<span class="pmm-role">{role}</span> · mode <b>{e(str(s.mode))}</b> · {run}{paused} · tick '
            f'<span class="pmm-tick">{int(s.tick)}</span> · α=<span class="pmm-alpha-value">{e(alpha)}</span>'
            f" · feed {'up' if s.feed.connected else 'down'} lag {lag} · DB lag {db}"
            + (f" · {e(str(s.venue_health))}" if s.venue_health else "")
            + (f' · <span class="pmm-recording" style="color:#cf222e">{e(str(s.recording))}</span>'
               if s.recording else "") + err)


def render_totals(s: EngineState) -> str:
    t = s.totals
    cls = "pos" if t.pnl > 0 else "neg" if t.pnl < 0 else ""
    return (f'<b>PnL</b> <span class="pmm-pnl {cls}">{float(t.pnl):+.2f}</span> USD '
            f"(realized {float(t.realized):+.2f}, unrealized {float(t.unrealized):+.2f}; spread "
            f"{float(t.spread):+.2f}, inventory {float(t.inventory):+.2f}, fees {-float(t.fees):+.2f}, rebates "
            f"{float(t.rebates):+.2f}, rewards {float(t.rewards):+.2f} ({float(t.rewards_per_hour):.2f}/h), "
            f"settlement {float(t.settlement):+.2f}) · "
            f"<b>fills</b> {int(t.fills)} ({float(t.fills_per_min):.2f}/min) · "
            f'<b>open orders</b> <span class="pmm-open">{int(t.open_orders)}</span> · '
            f"placed {int(t.placed)} · cancels {int(t.cancels)}")


class ControlPanel:
    def __init__(self, engine: Engine, *, rollover: int = 3600, autostart: bool = False,
                 history: Callable[[], dict[str, Any]] | None = None) -> None:
        """`autostart`: start the engine (own or attach) on the first browser heartbeat.
        `history`: blocking loader of the charts' backfill from the DB (run in a thread)."""
        self.engine = engine
        self.settings = engine.settings
        self.autostart = autostart
        self._automatic_start = False  # the next `start_engine` is the page's own (`_start_automatically`)
        self._history = history
        self._syncing = False
        self._seen_params: dict[str, Any] = {}
        # an attached page's slider values sent to the owner and not seen applied yet: name ->
        # (value, until when the owner's older value does not move the slider back)
        self._pending_params: dict[str, tuple[float, float]] = {}
        self._last_beat: float | None = None
        self._created = time.time()
        self._view_requested: float | None = None
        self._start_checked = False  # the first view signal (state request or beat) started/took over
        self._deadman_fired = False
        self._streaming = False
        self._tasks: list[asyncio.Task[None]] = []
        self._actions: set[asyncio.Task[Any]] = set()  # button actions under way (see _spawn)
        self._rendered_table: tuple[object, ...] | None = None
        self._strategy_seen: tuple[str | None, str | None] = (None, None)
        self._msg_expires: float | None = None
        self._last_lease_poll = 0.0
        self._wallet_suffix = ""
        # a live engine handed over by a page that closed or reloaded: offered once, taken over only
        # after the same typed confirmation as arming live (None: no offer shown or pending)
        self._handover_offer: Mode | None = None
        self.closed = False
        self.face_id = f"dashboard {engine._owner_id}"

        self.title = W.HTML("<h3>pmm-widgets · market-making control</h3>" + TABLE_CSS)
        self.mode = W.ToggleButtons(options=["paper", "live"], value="paper" if engine.mode is Mode.PAPER else "live")
        self.mode.add_class("pmm-mode")
        self.mode.observe(self._on_mode, names="value")
        self.live_text = W.Text(placeholder="type live", layout=W.Layout(width="150px"), continuous_update=True)
        self.live_text.add_class("pmm-live-text")
        self.live_text.observe(self._on_live_text, names="value")
        self.live_confirm = W.Button(description="Confirm LIVE", button_style="warning", disabled=True)
        self.live_confirm.add_class("pmm-live-confirm")
        self.live_confirm.on_click(self._on_live_confirm)
        self.live_cancel = W.Button(description="Cancel")
        self.live_cancel.add_class("pmm-live-cancel")
        self.live_cancel.on_click(self._on_live_cancel)
        self.live_box = W.HBox([W.HTML(), self.live_text, self.live_confirm, self.live_cancel],
                               layout=W.Layout(display="none"))

        self.start_btn = W.Button(description="Start", button_style="success")
        self.start_btn.add_class("pmm-start")
        self.start_btn.on_click(lambda _: self.start_engine())
        self.pause_btn = W.ToggleButton(description="Pause quoting", value=False)
        self.pause_btn.add_class("pmm-pause")
        self.pause_btn.observe(self._on_pause, names="value")
        self.kill = W.Button(description="KILL", button_style="danger", tooltip="cancel all orders and stop")
        self.kill.add_class("pmm-kill")
        self.kill.on_click(lambda _: self._spawn(self._do_kill(), "kill"))
        self.kill_result = W.HTML()
        self.kill_result.add_class("pmm-kill-result")

        self.sliders: dict[str, W.FloatSlider] = {}
        self._decimals: dict[str, int] = {}
        for name, label, lo, hi, step, decimals in SLIDERS:
            value = float(getattr(engine.params, name))  # PMM_* may start it outside the slider's usual range
            sl = W.FloatSlider(value=value, min=min(lo, value), max=max(hi, value), step=step, description=label,
                               continuous_update=False, readout_format=f".{decimals}f",
                               tooltip=Params.model_fields[name].description,
                               style={"description_width": "110px"}, layout=W.Layout(width="340px"))
            sl.add_class(f"pmm-{name.replace('_', '-')}")
            sl.observe(self._slider_handler(name), names="value")
            self.sliders[name] = sl
            self._decimals[name] = decimals
        self.message = W.HTML()
        self.message.add_class("pmm-message")
        self.status = W.HTML(render_status(engine.state))
        self.status.add_class("pmm-status")
        self.totals = W.HTML(render_totals(engine.state))
        self.totals.add_class("pmm-totals")
        self.sort = W.Dropdown(description="sort by", options=list(SORT_KEYS), value="rank",
                               layout=W.Layout(width="260px"))
        self.sort.add_class("pmm-sort")
        self.sort.observe(lambda _: self._render_table(self.engine.state, force=True), names="value")
        self.table = W.HTML()
        self.table.add_class("pmm-table")
        self.table_box = W.Box([self.table], layout=W.Layout(max_height="420px", overflow="auto", width="100%"))
        self.log = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
        self.log.add_class("pmm-log")
        # each beat is a message into the kernel (with busy/idle status traffic): measured as the
        # dashboard's largest kernel cost at 1 Hz, so beat only as often as the dead-man needs
        self._beat_ms = int(max(250, min(5000, self.settings.deadman_sec * 1000 / 4)))
        # the first beat comes fast (it starts the engine / takes over a reloaded page's engine),
        # then the interval relaxes to what the dead-man needs
        self.heartbeat = W.Play(value=0, min=0, max=10**9, interval=min(300, self._beat_ms), playing=True,
                                layout=W.Layout(display="none"))
        self.heartbeat.add_class("pmm-heartbeat")
        self.heartbeat.observe(self._on_beat, names="value")
        self.charts = Charts(rollover=rollover)
        # the selected market's strategy (the chart's market dropdown chooses the market)
        self.strategy = W.Dropdown(description="strategy", options=list(STRATEGY_NAMES), value=None,
                                   tooltip="quoting strategy of the selected market (its orders are requoted)",
                                   layout=W.Layout(width="260px"))
        self.strategy.add_class("pmm-strategy")
        self.strategy.observe(self._on_strategy, names="value")
        self._last_state: EngineState = engine.state
        self.charts.market.observe(lambda _: self._sync_strategy(self._last_state), names="value")
        engine.events.subscribe(self._on_event)
        _install_view_hook()
        _view_listeners.append(self._on_view_requested)

        self.root = W.VBox([
            self.title,
            W.HBox([self.mode, self.start_btn, self.pause_btn, self.kill, self.kill_result]),
            self.live_box, self.status, self.totals, self.message,
            W.HBox([W.VBox(list(self.sliders.values())[:2]), W.VBox(list(self.sliders.values())[2:])]),
            self.charts.root, self.strategy, self.sort, self.table_box, self.log, self.heartbeat,
        ])
        self.root.add_class("pmm-app")

    # ------------------------------------------------------------------ lifecycle
    def show(self) -> W.VBox:
        """Start the face's loops (refresh + heartbeat watchdog) on the running loop; return the root."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._ui_loop(), name="pmm-ui"),
                           loop.create_task(self._watchdog(), name="pmm-deadman")]
            for t in self._tasks:
                t.add_done_callback(self._report_task)
        return self.root

    def start_engine(self) -> None:
        """Start (own, or attach to the owner): the Start button's. The page's own start (demo
        mode's first view, a hand-over: `_start_automatically`) does not run over a kill the DB
        records (`Engine.start(automatic=True)`); the page then shows the kill and waits for Start."""
        automatic, self._automatic_start = self._automatic_start, False
        if self.engine.running:
            if self.engine.role != "attached":
                self._msg("engine already running")
                return
            self._spawn(self._restart_owning(automatic), "start")  # attach-only watcher → a real start
            return
        self._deadman_fired = False
        task = self.engine.start(automatic=True) if automatic else self.engine.start()
        task.add_done_callback(self._report_task)
        self._msg("starting…")

    def _start_automatically(self) -> None:
        """`start_engine`, as nobody's explicit start (see there)."""
        self._automatic_start = True
        self.start_engine()

    async def _restart_owning(self, automatic: bool = False) -> None:
        await self.engine.stop()
        self._automatic_start = automatic
        self.start_engine()

    async def close(self) -> None:
        """The page's end (kernel shutdown, SIGTERM): the engine's clean stop, then quiet."""
        self.closed = True
        if self._on_view_requested in _view_listeners:
            _view_listeners.remove(self._on_view_requested)
        for t in self._tasks:
            t.cancel()
        await self.engine.stop(handover=self.engine.role == "owner")
        if self._actions:  # a kill or pause under way finishes (it ends with the engine's stop)
            await asyncio.wait(set(self._actions), timeout=max(5.0, 2 * self.settings.lease_ttl_sec))

    @property
    def view_alive(self) -> bool:
        """A browser view beat within `deadman_sec`."""
        return self._last_beat is not None and time.time() - self._last_beat <= self.settings.deadman_sec

    def refresh(self, state: EngineState | None = None, now: float | None = None) -> None:
        """One face refresh: status, totals, table (when the snapshot changed), sliders, charts."""
        s = self.engine.state if state is None else state
        now = time.time() if now is None else now
        self.status.value = render_status(s)
        self.totals.value = render_totals(s)
        self._render_table(s)
        self._sync_from_state(s)
        self._last_state = s
        self._sync_strategy(s)
        # this page's engine runs; or it watches another that runs (Start would only attach again:
        # it was enabled there, and a press said "starting…" and changed nothing)
        attached = self.engine.role == "attached"
        self.start_btn.disabled = self.engine.running and (not attached or s.running)
        if self._msg_expires is not None and now > self._msg_expires:
            self.message.value = ""
            self._msg_expires = None
        if s.kill is not None:
            self.kill_result.value = self._kill_html(s.kill, running=s.running)
        elif s.running:  # a new engine runs: an old KILLED banner is history
            self.kill_result.value = ""
        if self._streaming:
            self.charts.set_markets(s)
            self.charts.update(s, now)

    def _render_table(self, s: EngineState, force: bool = False) -> None:
        # the statuses too: the final snapshot of a stopped engine keeps its last tick and time
        key = (s.tick, s.ts, self.sort.value, s.running, tuple(m.status for m in s.markets))
        if force or key != self._rendered_table:
            self.table.value = render_table(s.markets, self.sort.value)
            self._rendered_table = key

    # ------------------------------------------------------------------ controls
    def _slider_handler(self, name: str) -> Callable[[dict[str, Any]], None]:
        def on_change(change: dict[str, Any]) -> None:
            if self._syncing:
                return
            value = round(float(change["new"]), self._decimals[name])  # the readout's precision, no float noise
            try:
                self.engine.set_params(**{name: value}, changed_by=self.face_id)
            except ValidationError as exc:
                self._msg(f"refused: {format_validation_error(exc)}", error=True)
                self._set_widget(self.sliders[name], change["old"])
                return
            except Exception as exc:
                self._msg(f"refused: {exc}", error=True)
                self._set_widget(self.sliders[name], change["old"])
                return
            self._seen_params[name] = value
            attached = self.engine.role == "attached"
            if attached:
                self._pending_params[name] = (value, time.time() + self._apply_wait())
            self._msg(f"{name} = {fmt_num(value)}" + (" (sent to the owner)" if attached else ""))
        return on_change

    def _on_pause(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.pause_btn.description = "Resume quoting" if change["new"] else "Pause quoting"
        self._spawn(self.engine.pause(cancel=True, reason="pause button", by=self.face_id) if change["new"]
                    else self.engine.resume(by=self.face_id), "pause")

    def _on_mode(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        if change["new"] == "paper":
            try:
                self.engine.set_mode(Mode.PAPER)
                self._close_live_prompt()  # (a confirmation typed before backing out must not stay armed)
                self._msg("paper mode")
            except Exception as exc:
                self._msg(f"refused: {exc}", error=True)
                self._snap_mode()
            return
        # live: refuse early, else ask for a typed confirmation (like the CLI's 'yes')
        if self.engine.running:
            self._msg("refused: stop the engine (KILL) before switching to live", error=True)
            return self._snap_mode()
        self._handover_offer = None  # arming by hand replaces an offered hand-over
        if not self._ask_live("<b>Trade real money</b>", "Confirm LIVE"):
            self._snap_mode()

    def _ask_live(self, lead: str, button: str) -> bool:
        """Show the typed live confirmation (`live` or the wallet's last 4 hex digits); False
        (with the reason on the page) when live cannot run here."""
        if not (self.settings.has_private_key or self.settings.has_l2_creds):
            self._msg("refused: live needs credentials (PMM_PRIVATE_KEY); staying in paper", error=True)
            return False
        try:
            addr = wallet_address(self.settings)
        except Exception as exc:
            self._msg(f"refused: PMM_PRIVATE_KEY is not a valid key ({type(exc).__name__})", error=True)
            return False
        self._wallet_suffix = addr[-4:].lower() if addr else ""
        hint = f"type <b>{LIVE_WORD}</b>" + (" or the wallet's last 4 hex digits" if addr else "")
        self.live_box.children[0].value = (
            f"{lead} on {html.escape(venue_description(self.settings))} as "
            f"{html.escape(addr or 'API-key account')}? {hint}:")
        self.live_text.value = ""
        self.live_confirm.description = button
        self.live_confirm.disabled = True
        self.live_box.layout.display = "flex"
        return True

    def _offer_live_handover(self) -> None:
        """A live engine was handed over (its page closed or reloaded; its orders were cancelled
        at its stop): nothing trades until someone here types the live confirmation again."""
        if self._handover_offer is not None:
            return  # shown (or declined) already
        self._handover_offer = Mode.LIVE
        if not self._ask_live("A <b>live</b> engine was handed over by a page that closed or reloaded (its "
                              "orders were cancelled when it stopped). <b>Take it over and trade real money</b>",
                              "Take over LIVE"):
            return
        self._msg("pending hand-over of a LIVE engine: type the confirmation to take it over", error=True,
                  ttl=3600.0)

    def _on_live_cancel(self, _: Any) -> None:
        if self._handover_offer is not None:
            self._msg("live hand-over declined: nothing is trading; press Start for paper or arm live by hand",
                      ttl=60.0)
        self._snap_mode()

    def _live_word_ok(self, text: str) -> bool:
        t = text.strip().lower()
        return t == LIVE_WORD or (bool(self._wallet_suffix) and t == self._wallet_suffix)

    def _on_live_text(self, change: dict[str, Any]) -> None:
        self.live_confirm.disabled = not self._live_word_ok(str(change["new"]))

    def _on_live_confirm(self, _: Any) -> None:
        if self.live_box.layout.display == "none":  # a click on the hidden prompt's button: no confirmation
            self._msg("refused: open the live prompt (mode: live) and type the confirmation there", error=True)
            return
        if not self._live_word_ok(self.live_text.value):  # the button is disabled too; check again here
            self._msg(f"refused: type '{LIVE_WORD}' to confirm live trading", error=True)
            return
        takeover = self._handover_offer is Mode.LIVE
        self._handover_offer = None
        try:
            self.engine.set_mode(Mode.LIVE)
        except Exception as exc:
            self._msg(f"refused: {exc}", error=True)
            return self._snap_mode()
        self._close_live_prompt()
        self._set_widget(self.mode, "live")
        if takeover:
            self.start_engine()
            self._msg("took over the live engine of a page that closed or reloaded (typed confirmation)",
                      error=True, ttl=30.0)
            return
        self._msg("LIVE mode armed: press Start to trade", error=True, ttl=60.0)

    def _close_live_prompt(self) -> None:
        """Hide the live prompt and clear what was typed in it (which disables its button): a hidden
        prompt never holds a confirmation that a later click could still use."""
        self.live_box.layout.display = "none"
        self.live_text.value = ""

    def _snap_mode(self) -> None:
        self._close_live_prompt()
        self._set_widget(self.mode, "paper" if self.engine.mode is Mode.PAPER else "live")

    async def _do_kill(self) -> None:
        self.kill_result.value = "<b>killing…</b>"
        result = await self.engine.kill()
        self.kill_result.value = self._kill_html(result)
        self.refresh()

    @staticmethod
    def _kill_html(k: KillResult, running: bool = True) -> str:
        """The kill banner: the result (cancelled, stopped or not, what the venue still reports), or, while
        the engine's cancel runs (`KillResult.under_way`: no result yet, no count), that it is under way;
        a kill begun whose engine ended without its result (`running` False) says so and what to check."""
        when = time.strftime("%H:%M:%S", time.localtime(float(k.ts)))
        if k.under_way:
            if running:
                return (f'<span class="pmm-kill-under-way" style="color:#9a6700"><b>{html.escape(k.message)}…</b> '
                        f'(since {when}): the result follows when the venue has answered</span>')
            return (f'<span style="color:#cf222e"><b>KILL begun at {when}: its end was never recorded</b> (the '
                    'engine ended first); check the venue for open orders</span>')
        color = "#1a7f37" if k.ok else "#cf222e"
        # (a count the venue did not give, -1: "unknown", never a negative number of orders)
        open_now = int(k.venue_open_after)
        return (f'<span style="color:{color}"><b>{html.escape(str(k.message))}</b> at {when}; '
                f'engine {"stopped" if k.stopped else "NOT stopped"}; '
                f'open orders now <span class="pmm-kill-open">{open_now if open_now >= 0 else "unknown"}</span></span>')

    # ------------------------------------------------------------------ loops
    async def _ui_loop(self) -> None:
        while True:
            try:
                if self.view_alive:  # nobody watching: send nothing (the culler sees an idle kernel)
                    self.refresh()
                    await self._watch_lease()
            except Exception as exc:  # keep refreshing; show why
                self.log.append_stderr(f"refresh failed: {type(exc).__name__}: {exc}\n")
            await asyncio.sleep(self.settings.dashboard_refresh_sec)

    async def _watch_lease(self, now: bool = False) -> None:
        """Not running: attach (watch only) as soon as another engine owns the DB; take over an
        engine handed over by a page kernel that just stopped (the owning tab reloaded)."""
        if self.engine.running or self.closed or (not now and time.time() - self._last_lease_poll < LEASE_POLL_SEC):
            return
        self._last_lease_poll = time.time()
        if await self.engine.lease_holder() is not None:
            if not self.engine.running:
                if self._handover_offer is not None:  # someone else took it over: nothing to offer
                    self._handover_offer = None
                    self._snap_mode()
                self.engine.start(attach_only=True).add_done_callback(self._report_task)
            return
        mode = await self.engine.handover_pending()
        if mode is None or self.engine.running or self.closed:
            return
        if mode is Mode.LIVE:  # real money: the same typed confirmation as arming live, never automatic
            self._offer_live_handover()
            return
        try:
            if mode is not self.engine.mode:
                self.engine.set_mode(mode)
        except Exception as exc:  # noqa: BLE001 - e.g. live handed over but no credentials here
            self._msg(f"cannot take over the {mode.value} engine: {exc}", error=True, ttl=3600.0)
            return
        self._snap_mode()
        self._start_automatically()
        self._msg(f"took over the {mode.value} engine of a page that closed or reloaded", ttl=30.0)

    async def _watchdog(self) -> None:
        """Dead-man's switch for an engine owned by this page (see module doc)."""
        while True:
            await asyncio.sleep(1.0 if self._last_beat is not None else 0.6)  # > the first beat's 300 ms
            silent_since: float | None = self._last_beat
            if self._last_beat is None:
                now = time.time()
                if (now - self._created < NUDGE_AT_START_SEC or (
                        self._view_requested is not None and now - self._view_requested < WAIT_FOR_VIEW_SEC)):
                    self.heartbeat.playing = False  # Play only starts on a False→True change
                    self.heartbeat.playing = True
                if self._view_requested is None:
                    continue
                silent_since = self._view_requested  # started on the state request, never beat since
            if (silent_since is not None and self.engine.role == "owner" and self.engine.running
                    and not self._deadman_fired and time.time() - silent_since > self.settings.deadman_sec):
                self._deadman_fired = True
                self.log.append_stderr(f"no browser heartbeat for {self.settings.deadman_sec:.0f}s: stopping "
                                       "the engine cleanly (cancel all, flush, release the lease)\n")
                self.engine.events.emit(Level.WARNING, EventKind.DEADMAN, f"no browser heartbeat for "
                                        f"{self.settings.deadman_sec:.0f}s: stopping cleanly")
                await self.engine.stop()

    def _on_view_requested(self) -> None:
        """A browser's widget manager is loading this page's widgets: start or take over now
        (the reload case) instead of after the view has rendered and beaten once."""
        self._view_requested = time.time()
        if not self._start_checked:
            self._start_checked = True
            try:
                self._spawn(self._start_or_take_over(), "view")
            except RuntimeError:  # no running loop (tests driving the panel synchronously)
                self._start_checked = False

    async def _start_or_take_over(self) -> None:
        if self.autostart and not self.engine.running and not self.closed:
            self._start_automatically()
        else:
            await self._watch_lease(now=True)

    def _on_beat(self, _: dict[str, Any]) -> None:
        first = self._last_beat is None
        self._last_beat = time.time()
        self._deadman_fired = False
        if first:
            self.heartbeat.interval = self._beat_ms
            self._spawn(self._view_opened(), "view")

    async def _view_opened(self) -> None:
        """The first beat: a browser view exists. Start (demo) or take over/attach first unless
        the widget manager's state request did already, then backfill the charts and stream."""
        if not self._start_checked:
            self._start_checked = True
            await self._start_or_take_over()
        if self._history is not None:
            try:
                hist = await asyncio.to_thread(self._history)
                self.charts.backfill(hist)
            except Exception as exc:  # noqa: BLE001 - history is a nicety; say why it is missing
                self.log.append_stderr(f"chart history not loaded: {type(exc).__name__}: {exc}\n")
        self._streaming = True  # the view exists: chart points sent from now on are kept
        self.refresh()

    # ------------------------------------------------------------------ helpers
    def _apply_wait(self) -> float:
        """How long an attached page's sent value may wait for the owner's state to show it: the
        owner applies commands once a cycle and publishes its state after the cycle."""
        return 2 * self.settings.quote_refresh_sec + 5.0

    def _sync_from_state(self, s: EngineState) -> None:
        """Move sliders to values changed elsewhere (code, another face), never fighting the user:
        on an attached page a value sent to the owner stays on its slider until the owner's state
        shows it, or, if the owner has not applied it within `_apply_wait` (it refused it, or
        it is stuck), the slider returns to the owner's value and the page says so."""
        now = time.time()
        for name, sl in self.sliders.items():
            v = s.params.get(name)
            pending = self._pending_params.get(name)
            if pending is not None:
                if v is not None and abs(float(v) - pending[0]) <= 1e-12:
                    del self._pending_params[name]  # applied
                elif now < pending[1]:
                    continue  # not applied yet: the owner's older value does not move the slider back
                else:
                    del self._pending_params[name]
                    self._msg(f"{name} = {fmt_num(pending[0])} was not applied by the owner within "
                              f"{self._apply_wait():g} s; the slider shows the owner's value", error=True)
                    self._seen_params.pop(name, None)
            if v is None or self._seen_params.get(name) == v:
                continue
            self._seen_params[name] = v
            if abs(float(v) - sl.value) > 1e-12:
                # widen the range to a valid value set elsewhere, never clamp it (a clamped slider
                # would show a value the engine does not use)
                sl.max, sl.min = max(sl.max, float(v)), min(sl.min, float(v))
                self._set_widget(sl, float(v))
        if self.pause_btn.value != s.paused:
            self._set_widget(self.pause_btn, s.paused)
        want = "Resume quoting" if s.paused else "Pause quoting"
        if self.pause_btn.description != want:
            self.pause_btn.description = want

    def _on_strategy(self, change: dict[str, Any]) -> None:
        name, cid = change["new"], self.charts.market.value
        if self._syncing or name is None:
            return
        if not cid:
            self._msg("select a market (chart dropdown) before choosing its strategy", error=True)
            self._set_widget(self.strategy, None)
            return
        try:
            self.engine.set_strategy(cid, name)
        except ValueError as exc:
            self._msg(f"strategy refused: {exc}", error=True)
            self._sync_strategy(self._last_state, force=True)
            return
        self._msg(f"strategy of the selected market: {name} (its orders are cancelled and requoted)")

    def _sync_strategy(self, s: EngineState, force: bool = False) -> None:
        """Show the selected market's strategy (a user's own strategy appears as an extra option)."""
        cid = self.charts.market.value
        row = next((m for m in s.markets if m.condition_id == cid), None)
        name = row.strategy if row is not None and row.strategy else None
        if not force and (cid, name) == self._strategy_seen:  # only what changed elsewhere: never fight the user
            return
        self._strategy_seen = (cid, name)
        if name is not None and name not in self.strategy.options:
            self._set_widget(self.strategy, None)
            self._syncing = True
            try:
                self.strategy.options = [*STRATEGY_NAMES, name]
            finally:
                self._syncing = False
        if self.strategy.value != name:
            self._set_widget(self.strategy, name)

    def _set_widget(self, widget: W.Widget, value: Any) -> None:
        self._syncing = True
        try:
            widget.value = value
        finally:
            self._syncing = False

    def _msg(self, text: str, error: bool = False, ttl: float | None = None) -> None:
        color = "#cf222e" if error else "#444"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'
        self._msg_expires = time.time() + (ttl if ttl is not None else MESSAGE_TTL_SEC * (2 if error else 1))

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run a button's action (kill, pause, start, ...) as a task this panel owns: held until it
        ends (the loop keeps only weak references), its failure shown at once, awaited by `close`."""
        spawn(coro, f"pmm-ui-{what}", self._actions, self._report_error)

    def _report_task(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._report_error(task, task.exception())  # type: ignore[arg-type]

    def _report_error(self, task: asyncio.Task[Any], exc: BaseException) -> None:
        from ..errors import crash_text, describe

        what = "the engine could not start or stopped" if task.get_name() == "pmm-engine" else task.get_name()
        line = describe(exc, self.settings.db_url)
        self.log.append_stderr(f"{what}: {crash_text(exc)}\n")  # (an expected failure: its own line, no crash)
        self._msg(f"{what}: {line} — fix it (env.example lists every setting) and press Start", error=True,
                  ttl=3600.0)

    def _on_event(self, ev: Event) -> None:
        if ev.level is not Level.INFO or ev.kind in LOGGED_INFO:
            stamp = time.strftime("%H:%M:%S", time.localtime(ev.ts))
            self.log.append_stdout(f"{stamp} {ev.level} {ev.kind}: {ev.message}\n")
            if len(self.log.outputs) > 60:  # bounded, like everything the page keeps
                self.log.outputs = self.log.outputs[-40:]
