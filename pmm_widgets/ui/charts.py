"""The four live charts (total PnL, mid + our quotes for one market, fills/min, inventory) as one
Bokeh layout inside one jupyter_bokeh `BokehModel`.

Why this shape: `BokehModel` snapshots the document once and then sends only patches, so the
figures are built once and fed with `ColumnDataSource.stream(..., rollover=N)` (bounded, never
re-rendered). One model for all four figures means one comm and one document in the page.
Per-market history is kept kernel-side (bounded deques) so switching the selected market swaps
the source's data in one message instead of losing the past.

Needs the inline BokehJS cell (`bokeh_resources()`) to have run earlier in the notebook.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import ipywidgets as W
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from jupyter_bokeh.widgets import BokehModel

from ..engine.state import EngineState

NAN = math.nan


def bokeh_resources() -> None:
    """Inline BokehJS into the page (offline; own cell, before any BokehModel is displayed)."""
    from bokeh.io import output_notebook
    from bokeh.resources import Resources

    output_notebook(Resources(mode="inline", components=["bokeh"]), hide_banner=True)


def _n(x: float | None) -> float:
    return NAN if x is None else float(x)


PNL_COMPONENTS = {"spread": "#2ca02c", "inventory": "#ff7f0e", "fees": "#d62728", "rebates": "#17becf",
                  "rewards": "#9467bd", "settlement": "#8c564b"}  # fees drawn as a cost (negative)


class Charts:
    """Streams one point per refresh to each chart; `rollover` bounds every source."""

    MARKET_COLS = ("t", "mid", "bid", "ask", "inv_yes", "inv_no")

    def __init__(self, rollover: int = 3600) -> None:
        self.rollover = rollover
        self.pnl = ColumnDataSource(data={"t": [], "pnl": []})
        self.components = ColumnDataSource(data={"t": [], **{k: [] for k in PNL_COMPONENTS}})
        self.quotes = ColumnDataSource(data={"t": [], "mid": [], "bid": [], "ask": []})
        self.fills = ColumnDataSource(data={"t": [], "fpm": []})
        self.inventory = ColumnDataSource(data={"t": [], "inv_yes": [], "inv_no": []})
        self._history: dict[str, deque[tuple[float, ...]]] = {}
        self.selected: str | None = None
        self._session: float | None = None  # the engine session (`started_ts`) of the last point
        self._last_t: float | None = None  # the latest point's time (ms), streamed or backfilled

        common: dict[str, Any] = dict(height=190, sizing_mode="stretch_width", x_axis_type="datetime",
                                      tools="pan,wheel_zoom,box_zoom,reset", toolbar_location="right")
        f_pnl = figure(title="total PnL (USD)", **common)
        f_pnl.line("t", "pnl", source=self.pnl, line_width=2, color="#1f77b4", legend_label="total")
        for k, color in PNL_COMPONENTS.items():  # the decomposition, from this page's start
            f_pnl.line("t", k, source=self.components, color=color, legend_label=k, line_dash="dashed")
        # seven entries do not fit inside a 190 px plot (the last three were cut off, unreadable):
        # the legend stands beside it, compact, and a click on an entry hides that line
        legend = f_pnl.legend[0]
        f_pnl.center.remove(legend)
        f_pnl.add_layout(legend, "right")
        legend.update(location="top_left", label_text_font_size="8pt", label_height=12, glyph_height=12,
                      spacing=0, padding=4, margin=4, click_policy="hide")
        f_q = figure(title="selected market: mid and our YES bid/ask", **common)
        f_q.line("t", "mid", source=self.quotes, color="#555555", legend_label="mid")
        f_q.line("t", "bid", source=self.quotes, color="#2ca02c", legend_label="our bid")
        f_q.line("t", "ask", source=self.quotes, color="#d62728", legend_label="our ask")
        f_q.legend.location = "top_left"
        f_f = figure(title="fills / min (all markets)", **common)
        f_f.line("t", "fpm", source=self.fills, line_width=2, color="#9467bd")
        f_i = figure(title="selected market: inventory (shares)", **common)
        f_i.line("t", "inv_yes", source=self.inventory, color="#2ca02c", legend_label="YES")
        f_i.line("t", "inv_no", source=self.inventory, color="#d62728", legend_label="NO")
        f_i.legend.location = "top_left"
        for f in (f_pnl, f_q, f_f, f_i):
            f.toolbar.logo = None
        self.layout = gridplot([[f_pnl, f_q], [f_f, f_i]], sizing_mode="stretch_width", merge_tools=False)
        self.layout.toolbar.logo = None  # (the grid's own toolbar: a stray logo above the plots)

        self.market = W.Dropdown(description="market", options=[], layout=W.Layout(width="60%"))
        self.market.add_class("pmm-market")
        self.market.observe(self._on_select, names="value")
        self.model = BokehModel(self.layout)
        self.model.add_class("pmm-plot")
        self.root = W.VBox([self.market, self.model])

    def set_markets(self, state: EngineState) -> None:
        """Keep the dropdown's options in step with the universe (rank order)."""
        opts = [(f"{m.rank}. {m.question[:70]}", m.condition_id) for m in sorted(state.markets, key=lambda r: r.rank)]
        if [v for _, v in opts] != [v for _, v in self.market.options]:
            keep = self.market.value
            self.market.options = opts
            if keep in {v for _, v in opts}:
                self.market.value = keep
            elif opts:
                self.market.value = opts[0][1]

    def update(self, state: EngineState, now: float) -> None:
        """One point per chart (and per-market history). `now` is epoch seconds."""
        t = now * 1000.0
        start = state.started_ts
        if start is not None and start != self._session and self._last_t is not None and self._last_t < start * 1000.0:
            # a new engine session (its PnL starts at 0): the lines break instead of drawing one
            # from the last session's values to this one's first
            b = start * 1000.0
            self.pnl.stream({"t": [b], "pnl": [NAN]}, rollover=self.rollover)
            self.components.stream({"t": [b], **{k: [NAN] for k in PNL_COMPONENTS}}, rollover=self.rollover)
            self.fills.stream({"t": [b], "fpm": [NAN]}, rollover=self.rollover)
        if start is not None:
            self._session = start
        self._last_t = t
        self.pnl.stream({"t": [t], "pnl": [state.totals.pnl]}, rollover=self.rollover)
        tt = state.totals
        self.components.stream({"t": [t], "spread": [tt.spread], "inventory": [tt.inventory], "fees": [-tt.fees],
                                "rebates": [tt.rebates], "rewards": [tt.rewards], "settlement": [tt.settlement]},
                               rollover=self.rollover)
        # a stopped engine (killed, stopped, not started) has no fill rate: the line breaks until a
        # session runs (its last rate drawn flat over the stopped minutes read as trading)
        fpm = state.totals.fills_per_min if state.running else NAN
        self.fills.stream({"t": [t], "fpm": [fpm]}, rollover=self.rollover)
        for m in state.markets:
            h = self._history.get(m.condition_id)
            if h is None:
                h = self._history[m.condition_id] = deque(maxlen=self.rollover)
            h.append((t, _n(m.mid), _n(m.yes_bid), _n(m.yes_ask), m.inv_yes, m.inv_no))
        live = {m.condition_id for m in state.markets}
        # a market that left the universe takes its history along; no universe at all (an engine
        # not started yet, or starting: the page's first refreshes) drops nothing: the history
        # backfilled from the DB stays for the markets the engine is about to quote
        for cid in [c for c in self._history if live and c not in live and c != self.selected]:
            del self._history[cid]
        if self.selected is not None and self._history.get(self.selected):
            _, mid, bid, ask, iy, ino = self._history[self.selected][-1]
            self.quotes.stream({"t": [t], "mid": [mid], "bid": [bid], "ask": [ask]}, rollover=self.rollover)
            self.inventory.stream({"t": [t], "inv_yes": [iy], "inv_no": [ino]}, rollover=self.rollover)

    def backfill(self, hist: dict[str, Any]) -> None:
        """Charts from the DB on page load (`dashboard.load_history`): total PnL and fills/min
        series, and per-market (t, mid, inv_yes, inv_no) history for the market dropdown.
        Call once the browser view exists (changes before that are lost by jupyter_bokeh)."""
        pnl = hist.get("pnl") or []
        if pnl:
            self.pnl.data = {"t": [t * 1000.0 for t, _ in pnl], "pnl": [v for _, v in pnl]}
        fpm = hist.get("fills_per_min") or []
        if fpm:
            self.fills.data = {"t": [t * 1000.0 for t, _ in fpm], "fpm": [v for _, v in fpm]}
        ends = [s[-1][0] * 1000.0 for s in (pnl, fpm) if s]
        if ends and (self._last_t is None or max(ends) > self._last_t):
            self._last_t = max(ends)  # a session started after it breaks the lines (`update`)
        for cid, rows in (hist.get("markets") or {}).items():
            h = self._history.setdefault(cid, deque(maxlen=self.rollover))
            for t, mid, iy, ino in rows:
                h.append((t * 1000.0, _n(mid), NAN, NAN, float(iy or 0.0), float(ino or 0.0)))
        if self.selected is not None:
            self._on_select({"new": self.selected})

    def _on_select(self, change: dict[str, Any]) -> None:
        self.selected = change["new"]
        cols = list(zip(*self._history.get(self.selected, ()))) or [() for _ in self.MARKET_COLS]
        data = dict(zip(self.MARKET_COLS, cols, strict=True))
        # fresh lists per source: stream() extends them in place, so no list may be shared
        self.quotes.data = {k: list(data[k]) for k in ("t", "mid", "bid", "ask")}
        self.inventory.data = {k: list(data[k]) for k in ("t", "inv_yes", "inv_no")}
