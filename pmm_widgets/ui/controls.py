"""`ControlPanel`: the operator's widgets over one `Engine` (owner or attached).

Why this shape:
- Every control goes through the engine's `Params` validation (`engine.set_params`), the same
  rules as env vars and code; a refused value snaps the widget back and shows the message.
- The face refreshes on its own task every `dashboard_refresh_sec`, reading `engine.state`;
  the quote loop never waits for a widget.
- A hidden `W.Play` is the browser heartbeat: the first beat starts chart streaming (changes
  made before the view exists are lost by jupyter_bokeh), and silence for `deadman_sec` cancels
  all orders and pauses an engine this page owns (a crashed or closed browser).
- Errors from background tasks go to an `Output` widget: prints after the notebook finished
  would appear nowhere under Voilà.
"""

from __future__ import annotations

import asyncio
import html
import time
from typing import Any, Callable

import ipywidgets as W
from pydantic import ValidationError

from ..config import STRATEGY_NAMES, format_validation_error
from ..domain import Mode
from ..engine.core import Engine, venue_description, wallet_address
from ..engine.state import EngineState, KillResult, MarketRow
from .charts import Charts

COLUMNS = ("rank", "question", "mid", "spread", "YES bid", "YES ask", "NO bid", "NO ask",
           "inv YES", "inv NO", "PnL", "fills/min", "status")

# (params field, label, min, max, step)
SLIDERS = (
    ("alpha", "α (spread ×)", 0.1, 10.0, 0.1),
    ("paper_fill_intensity", "fill intensity", 0.0, 20.0, 0.1),
    ("paper_spread_k", "spread k", 0.0, 1000.0, 5.0),
    ("paper_full_fill_prob", "full-fill prob", 0.0, 1.0, 0.01),
)


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def render_table(rows: list[MarketRow]) -> str:
    """The universe table as HTML (rank order). Hand-built: 50 rows cost well under a millisecond."""
    out = ['<table class="pmm-universe"><thead><tr>', *(f"<th>{c}</th>" for c in COLUMNS), "</tr></thead><tbody>"]
    for m in sorted(rows, key=lambda r: r.rank):
        pnl_cls = "pos" if m.pnl > 0 else "neg" if m.pnl < 0 else ""
        out.append(
            f'<tr data-cid="{html.escape(m.condition_id)}"><td>{m.rank}</td>'
            f'<td class="q" title="{html.escape(m.question)}">{html.escape(m.question[:60])}</td>'
            f"<td>{_p(m.mid)}</td><td>{_p(m.spread)}</td><td class='ours'>{_p(m.yes_bid)}</td>"
            f"<td class='ours'>{_p(m.yes_ask)}</td><td class='ours'>{_p(m.no_bid)}</td>"
            f"<td class='ours'>{_p(m.no_ask)}</td><td>{m.inv_yes:.0f}</td><td>{m.inv_no:.0f}</td>"
            f"<td class='{pnl_cls}'>{m.pnl:+.2f}</td><td>{m.fills_per_min:.2f}</td>"
            f"<td class='st'>{html.escape(m.status)}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


TABLE_CSS = """<style>
.pmm-universe{border-collapse:collapse;font:12px monospace;width:100%}
.pmm-universe th,.pmm-universe td{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
.pmm-universe td.q,.pmm-universe th:nth-child(2){text-align:left;max-width:28em;overflow:hidden;text-overflow:ellipsis}
.pmm-universe td.ours{background:#f3f8ff}.pmm-universe td.pos{color:#1a7f37}.pmm-universe td.neg{color:#cf222e}
.pmm-kill button,.pmm-kill{font-weight:bold}
</style>"""


def render_status(s: EngineState) -> str:
    lag = "n/a" if s.feed.lag_sec is None else f"{s.feed.lag_sec:.1f}s"
    db = "n/a" if s.writer_lag_sec is None else f"{s.writer_lag_sec:.1f}s"
    role = {"owner": "OWNER (this page trades)", "attached": f"ATTACHED to {html.escape(s.owner)}",
            "idle": "idle (press Start)"}.get(s.role, s.role)
    run = "running" if s.running else "stopped"
    paused = " · <b>PAUSED</b>" if s.paused else ""
    alpha = s.params.get("alpha", "?")
    err = f' · <span class="pmm-error" style="color:#cf222e">error: {html.escape(s.last_error)}</span>' if s.last_error else ""
    return (f'<span class="pmm-role">{role}</span> · mode <b>{s.mode}</b> · {run}{paused} · tick '
            f'<span class="pmm-tick">{s.tick}</span> · α=<span class="pmm-alpha-value">{alpha}</span> · open orders '
            f'<span class="pmm-open">{s.totals.open_orders}</span> · fills {s.totals.fills} · PnL {s.totals.pnl:+.2f}'
            f" · feed {'up' if s.feed.connected else 'down'} lag {lag} · DB lag {db}"
            + (f" · {html.escape(s.venue_health)}" if s.venue_health else "") + err)


class ControlPanel:
    def __init__(self, engine: Engine, *, rollover: int = 3600) -> None:
        self.engine = engine
        self.settings = engine.settings
        self._syncing = False
        self._seen_params: dict[str, Any] = {}
        self._last_beat: float | None = None
        self._watch_since = time.time()
        self._deadman_fired = False
        self._streaming = False
        self._tasks: list[asyncio.Task] = []
        self._rendered_table: tuple[int, float] | None = None
        self._strategy_seen: tuple[str | None, str | None] = (None, None)

        self.title = W.HTML("<h3>pmm-widgets · market-making control</h3>" + TABLE_CSS)
        self.mode = W.ToggleButtons(options=["paper", "live"], value="paper" if engine.mode is Mode.PAPER else "live")
        self.mode.add_class("pmm-mode")
        self.mode.observe(self._on_mode, names="value")
        self.live_confirm = W.Button(description="Confirm LIVE", button_style="warning")
        self.live_confirm.add_class("pmm-live-confirm")
        self.live_confirm.on_click(self._on_live_confirm)
        self.live_cancel = W.Button(description="Cancel")
        self.live_cancel.on_click(lambda _: self._snap_mode())
        self.live_box = W.HBox([W.HTML(), self.live_confirm, self.live_cancel], layout=W.Layout(display="none"))

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
        for name, label, lo, hi, step in SLIDERS:
            sl = W.FloatSlider(value=float(getattr(engine.params, name)), min=lo, max=hi, step=step, description=label,
                               continuous_update=False, style={"description_width": "110px"},
                               layout=W.Layout(width="420px"))
            sl.add_class(f"pmm-{name.replace('_', '-')}")
            sl.observe(self._slider_handler(name), names="value")
            self.sliders[name] = sl
        self.message = W.HTML()
        self.message.add_class("pmm-message")
        self.status = W.HTML(render_status(engine.state))
        self.status.add_class("pmm-status")
        self.table = W.HTML()
        self.table.add_class("pmm-table")
        self.log = W.Output(layout=W.Layout(max_height="160px", overflow="auto"))
        self.log.add_class("pmm-log")
        # each beat is a message into the kernel (with busy/idle status traffic): measured as the
        # dashboard's largest kernel cost at 1 Hz, so beat only as often as the dead-man needs
        beat_ms = int(max(250, min(5000, self.settings.deadman_sec * 1000 / 4)))
        self.heartbeat = W.Play(value=0, min=0, max=10**9, interval=beat_ms, playing=True,
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

        self.root = W.VBox([
            self.title,
            W.HBox([self.mode, self.start_btn, self.pause_btn, self.kill]),
            self.live_box, self.kill_result, self.status, self.message,
            W.HBox([W.VBox(list(self.sliders.values())[:2]), W.VBox(list(self.sliders.values())[2:])]),
            self.table, self.strategy, self.charts.root, self.log, self.heartbeat,
        ])
        self.root.add_class("pmm-app")

    # ------------------------------------------------------------------ lifecycle
    def show(self) -> W.VBox:
        """Start the face's loops (refresh + dead-man watchdog) on the running loop; return the root."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._ui_loop(), name="pmm-ui"),
                           loop.create_task(self._watchdog(), name="pmm-deadman")]
            for t in self._tasks:
                t.add_done_callback(self._report_task)
        return self.root

    def start_engine(self) -> None:
        if self.engine.running:
            self._msg("engine already running")
            return
        self._deadman_fired = False
        self._watch_since = time.time()
        task = self.engine.start()
        task.add_done_callback(self._report_task)
        self._msg("starting…")

    def refresh(self, state: EngineState | None = None, now: float | None = None) -> None:
        """One face refresh: status, table (when the snapshot changed), sliders, charts."""
        s = self.engine.state if state is None else state
        now = time.time() if now is None else now
        self.status.value = render_status(s)
        key = (s.tick, s.ts)
        if key != self._rendered_table:
            self.table.value = render_table(s.markets)
            self._rendered_table = key
        self._sync_from_state(s)
        self._last_state = s
        self._sync_strategy(s)
        self.start_btn.disabled = self.engine.running
        if s.role != "idle" and "starting" in self.message.value:
            self.message.value = ""
        if s.kill is not None:
            self.kill_result.value = self._kill_html(s.kill)
        if self._streaming:
            self.charts.set_markets(s)
            self.charts.update(s, now)

    # ------------------------------------------------------------------ controls
    def _slider_handler(self, name: str) -> Callable[[dict[str, Any]], None]:
        def on_change(change: dict[str, Any]) -> None:
            if self._syncing:
                return
            try:
                self.engine.set_params(**{name: change["new"]})
            except ValidationError as exc:
                self._msg(f"refused: {format_validation_error(exc)}", error=True)
                self._set_widget(self.sliders[name], change["old"])
                return
            except Exception as exc:
                self._msg(f"refused: {exc}", error=True)
                self._set_widget(self.sliders[name], change["old"])
                return
            self._seen_params[name] = change["new"]
            self._msg(f"{name} = {change['new']}" + (" (sent to the owner)" if self.engine.role == "attached" else ""))
        return on_change

    def _on_pause(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self._spawn(self.engine.pause(cancel=True, reason="pause") if change["new"] else self.engine.resume(), "pause")

    def _on_mode(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        if change["new"] == "paper":
            try:
                self.engine.set_mode(Mode.PAPER)
                self.live_box.layout.display = "none"
                self._msg("paper mode")
            except Exception as exc:
                self._msg(f"refused: {exc}", error=True)
                self._snap_mode()
            return
        # live: refuse early, else ask for an explicit confirmation click
        if self.engine.running:
            self._msg("refused: stop the engine (KILL) before switching to live", error=True)
            return self._snap_mode()
        if not (self.settings.has_private_key or self.settings.has_l2_creds):
            self._msg("refused: live needs credentials (PMM_PRIVATE_KEY); staying in paper", error=True)
            return self._snap_mode()
        addr = wallet_address(self.settings) or "API-key account"
        self.live_box.children[0].value = (f"<b>Trade real money</b> on {html.escape(venue_description(self.settings))} "
                                           f"as {html.escape(addr)}?")
        self.live_box.layout.display = "flex"

    def _on_live_confirm(self, _: Any) -> None:
        try:
            self.engine.set_mode(Mode.LIVE)
        except Exception as exc:
            self._msg(f"refused: {exc}", error=True)
            return self._snap_mode()
        self.live_box.layout.display = "none"
        self._msg("LIVE mode armed: press Start to trade", error=True)

    def _snap_mode(self) -> None:
        self.live_box.layout.display = "none"
        self._set_widget(self.mode, "paper" if self.engine.mode is Mode.PAPER else "live")

    async def _do_kill(self) -> None:
        self.kill_result.value = "<b>killing…</b>"
        result = await self.engine.kill()
        self.kill_result.value = self._kill_html(result)
        self.refresh()

    @staticmethod
    def _kill_html(k: KillResult) -> str:
        color = "#1a7f37" if k.ok else "#cf222e"
        when = time.strftime("%H:%M:%S", time.localtime(k.ts))
        return (f'<span style="color:{color}"><b>{html.escape(k.message)}</b> at {when}; '
                f'engine {"stopped" if k.stopped else "NOT stopped"}; '
                f'open orders now <span class="pmm-kill-open">{k.venue_open_after}</span></span>')

    # ------------------------------------------------------------------ loops
    async def _ui_loop(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as exc:  # keep refreshing; show why
                self.log.append_stderr(f"refresh failed: {type(exc).__name__}: {exc}\n")
            await asyncio.sleep(self.settings.dashboard_refresh_sec)

    async def _watchdog(self) -> None:
        """Dead-man's switch for an engine owned by this page (see module doc)."""
        while True:
            await asyncio.sleep(1.0)
            if self._last_beat is None:  # Play only starts on a False→True change
                self.heartbeat.playing = False
                self.heartbeat.playing = True
            silent_since = self._last_beat if self._last_beat is not None else self._watch_since
            if (self.engine.role == "owner" and self.engine.running and not self._deadman_fired
                    and time.time() - silent_since > self.settings.deadman_sec):
                self._deadman_fired = True
                n = await self.engine.pause(cancel=True, reason="deadman")
                self.log.append_stderr(f"no browser heartbeat for {self.settings.deadman_sec:.0f}s: "
                                       f"paused and cancelled {n} orders\n")

    def _on_beat(self, _: dict[str, Any]) -> None:
        if self._last_beat is None:
            self._streaming = True  # the view exists: chart points sent from now on are kept
        self._last_beat = time.time()
        self._deadman_fired = False

    # ------------------------------------------------------------------ helpers
    def _sync_from_state(self, s: EngineState) -> None:
        """Move sliders to values changed elsewhere (code, another face), never fighting the user."""
        for name, sl in self.sliders.items():
            v = s.params.get(name)
            if v is None or self._seen_params.get(name) == v:
                continue
            self._seen_params[name] = v
            if abs(float(v) - sl.value) > 1e-12:
                self._set_widget(sl, float(v))
        if self.pause_btn.value != s.paused:
            self._set_widget(self.pause_btn, s.paused)

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

    def _msg(self, text: str, error: bool = False) -> None:
        color = "#cf222e" if error else "#444"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"pmm-ui-{what}")
        task.add_done_callback(self._report_task)

    def _report_task(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.log.append_stderr(f"{task.get_name()} failed: {type(exc).__name__}: {exc}\n")
            self._msg(f"{task.get_name()} failed: {exc}", error=True)

    def _on_event(self, ev: Any) -> None:
        if ev.level != "INFO" or ev.kind in ("engine_start", "engine_stop", "attached", "command"):
            stamp = time.strftime("%H:%M:%S", time.localtime(ev.ts))
            self.log.append_stdout(f"{stamp} {ev.level} {ev.kind}: {ev.message}\n")
            if len(self.log.outputs) > 60:  # bounded, like everything the page keeps
                self.log.outputs = self.log.outputs[-40:]
