"""The charts over several engine sessions and beside a replay (seen on the operator app: a page
reloaded into a new session drew a line from the last session's PnL down to 0, fills/min as zeros
over the hour before any engine ran, and the PnL legend cut off after four of its seven lines)."""

from __future__ import annotations

import math
import time
from decimal import Decimal

import sqlalchemy as sa
from bokeh.models import Legend

from pmm_widgets.engine.state import EngineState, Totals
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.schema import events, pnl, trades
from pmm_widgets.ui.charts import PNL_COMPONENTS, Charts
from pmm_widgets.ui.dashboard import load_history


def _fill(i: int, ts: float, run_id: str | None = None, mode: str = "paper") -> dict:
    return {"trade_id": f"t{i}", "token_id": "y0", "side": "BUY", "price": Decimal("0.5"), "size": Decimal(5),
            "fill_type": "full", "mode": mode, "ts": ts, "run_id": run_id}


def _write(db_url: str, now: float) -> None:
    """(Every row of one insert names the same columns: SQLAlchemy takes them from the first.)
    Two paper sessions (45 and 20 min ago; the first stopped) and a replay of the last hour."""
    s1, stop1, s2 = now - 2700, now - 2100, now - 1200
    db = make_engine(db_url)
    with db.begin() as conn:
        conn.execute(sa.insert(events), [
            {"ts": s1, "level": "INFO", "kind": "engine_start", "message": "engine started", "run_id": None},
            {"ts": stop1, "level": "INFO", "kind": "engine_stop", "message": "engine stopped", "run_id": None},
            {"ts": s2, "level": "INFO", "kind": "engine_start", "message": "engine started", "run_id": None},
            {"ts": now - 1800, "level": "INFO", "kind": "engine_start", "message": "replay", "run_id": "r1"}])
        conn.execute(sa.insert(pnl), [{"ts": s1 + 60 * i, "market": "TOTAL", "mode": "paper", "total": Decimal(i),
                                       "run_id": None} for i in range(1, 6)]
                     + [{"ts": s2 + 60 * i, "market": "TOTAL", "mode": "paper", "total": Decimal(i) / 10,
                         "run_id": None} for i in range(1, 4)]
                     + [{"ts": now - 1500 + 60 * i, "market": "TOTAL", "mode": "replay", "total": Decimal(-50),
                         "run_id": "r1"} for i in range(3)])
        conn.execute(sa.insert(trades), [_fill(0, s1 + 100), _fill(1, s2 + 100), _fill(2, s2 + 110)]
                     + [_fill(10 + i, now - 1500 + i, "r1", "replay") for i in range(20)])
    db.dispose()


def test_history_breaks_between_sessions_and_leaves_replays_out(db_url) -> None:
    now = time.time()
    _write(db_url, now)
    hist = load_history(db_url, now=now)
    values = [v for _, v in hist["pnl"]]
    assert [v for v in values if not math.isnan(v)] == [1.0, 2.0, 3.0, 4.0, 5.0, 0.1, 0.2, 0.3]  # no replay's -50
    gap = next(i for i, v in enumerate(values) if math.isnan(v))
    assert gap == 5 and hist["pnl"][gap][0] == now - 1200  # the break stands at the second session's start
    fpm = hist["fills_per_min"]
    times = [t for t, _ in fpm]
    assert times[0] == now - 2700  # from the first session's start, not zeros over the hour before it
    assert not any(now - 2100 < t < now - 1200 for t, v in fpm)  # nothing while no engine ran
    assert sum(1 for _, v in fpm if math.isnan(v)) == 1  # one break, between the two sessions
    assert max(v for _, v in fpm if not math.isnan(v)) == 2.0  # the two fills of the second session; replay's 20 left out
    assert times[-1] <= now and times[-1] > now - 10


def test_history_without_session_events_is_one_session(db_url) -> None:
    """A DB with no `engine_start` rows (written before them): one session from the first row."""
    now = time.time()
    db = make_engine(db_url)
    with db.begin() as conn:
        conn.execute(sa.insert(pnl), [{"ts": now - 300 + 60 * i, "market": "TOTAL", "total": Decimal(i)} for i in range(3)])
        conn.execute(sa.insert(trades), [_fill(0, now - 100)])
    db.dispose()
    hist = load_history(db_url, now=now)
    assert [v for _, v in hist["pnl"]] == [0.0, 1.0, 2.0]
    fpm = hist["fills_per_min"]
    assert fpm[0][0] == now - 300 and not any(math.isnan(v) for _, v in fpm) and max(v for _, v in fpm) == 1.0


def test_a_new_session_breaks_the_streamed_lines() -> None:
    ch = Charts(rollover=100)
    ch.backfill({"pnl": [(1000.0, 7.0), (1010.0, 7.5)], "fills_per_min": [(1010.0, 3.0)]})
    # a page attached to the session the backfill ends in: no break
    ch.update(EngineState(running=True, started_ts=900.0, totals=Totals(pnl=7.6)), 1011.0)
    assert not any(math.isnan(v) for v in ch.pnl.data["pnl"])
    # that engine stops and a new one starts: its PnL starts at 0, the lines break first
    ch.update(EngineState(running=True, started_ts=1020.0, totals=Totals(pnl=0.1)), 1021.0)
    assert ch.pnl.data["t"][-2:] == [1020_000.0, 1021_000.0]
    assert math.isnan(ch.pnl.data["pnl"][-2]) and ch.pnl.data["pnl"][-1] == 0.1
    assert math.isnan(ch.fills.data["fpm"][-2]) and all(math.isnan(ch.components.data[k][-2]) for k in PNL_COMPONENTS)
    ch.update(EngineState(running=True, started_ts=1020.0, totals=Totals(pnl=0.2)), 1022.0)
    assert not math.isnan(ch.pnl.data["pnl"][-2])  # one break per session


def test_pnl_legend_stands_beside_the_plot_whole() -> None:
    """Seven entries: inside the 190 px plot the last three were cut off."""
    f = Charts().layout.children[0][0]
    legends = [r for r in f.right if isinstance(r, Legend)]
    assert len(legends) == 1 and not any(isinstance(r, Legend) for r in f.center)
    assert [i.label.value for i in legends[0].items] == ["total", *PNL_COMPONENTS]
    assert legends[0].click_policy == "hide"


def test_backfilled_market_history_survives_refreshes_before_the_universe() -> None:
    """Autostart: the page's first refreshes come before the engine has a universe; they dropped
    every market's backfilled mid/inventory history (the chart showed this session only)."""
    from pmm_widgets.engine.state import MarketRow

    ch = Charts(rollover=100)
    ch.backfill({"markets": {"0xa": [(1000.0, 0.4, 0.0, 0.0), (1010.0, 0.41, 5.0, 0.0)], "0xb": [(1000.0, 0.7, 0.0, 0.0)]}})
    ch.update(EngineState(running=True, started_ts=1015.0), 1016.0)  # no markets yet
    ch.update(EngineState(running=True, started_ts=1015.0, markets=[MarketRow("0xa", 1, "q", mid=0.42)]), 1017.0)
    ch.set_markets(EngineState(markets=[MarketRow("0xa", 1, "q", mid=0.42)]))
    assert ch.selected == "0xa" and ch.quotes.data["mid"] == [0.4, 0.41, 0.42]


def test_fills_per_min_is_drawn_only_while_an_engine_runs() -> None:
    """Seen after a KILL on the operator app: its last rate (25 fills/min) drawn flat over the
    minutes the engine stood killed, as if it still traded; the history already left them out."""
    ch = Charts(rollover=100)
    ch.update(EngineState(running=True, started_ts=1000.0, totals=Totals(pnl=0.5, fills_per_min=25.0)), 1001.0)
    ch.update(EngineState(running=False, started_ts=1000.0, totals=Totals(pnl=0.5, fills_per_min=25.0)), 1002.0)
    ch.update(EngineState(running=False, started_ts=1000.0, totals=Totals(pnl=0.5, fills_per_min=25.0)), 1003.0)
    assert ch.fills.data["fpm"][0] == 25.0 and all(math.isnan(v) for v in ch.fills.data["fpm"][1:])
    assert ch.pnl.data["pnl"] == [0.5, 0.5, 0.5]  # the PnL stands: it is held, not a rate
