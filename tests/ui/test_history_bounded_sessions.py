"""The charts' backfill (`dashboard.load_history`, every page load) reads the engine's
`engine_start` / `engine_stop` events of the charted hour and the last one before it, not every
session of the DB's life: after months of restarts that was thousands of rows read for an hour's
chart. The charts are the same as from the whole history (the session running at the hour's
start, and every start and stop inside it, are all they depend on)."""

from __future__ import annotations

import math
import re
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.schema import events, pnl, trades
from pmm_widgets.ui import dashboard
from pmm_widgets.ui.dashboard import load_history

NOW = 1_796_083_200.0
HOUR = 3600.0
SINCE = NOW - HOUR
KINDS = ("engine_start", "engine_stop")


def _write(url: str, life: list[tuple[float, str, str | None]], pnl_ts: list[float], fill_ts: list[float]) -> None:
    db = make_engine(url)
    with db.begin() as conn:
        if life:
            conn.execute(sa.insert(events), [{"ts": t, "level": "INFO", "kind": k, "message": k, "run_id": r}
                                             for t, k, r in life])
        if pnl_ts:
            conn.execute(sa.insert(pnl), [{"ts": t, "market": "TOTAL", "mode": "paper", "total": Decimal(i),
                                           "run_id": None} for i, t in enumerate(pnl_ts)])
        if fill_ts:
            conn.execute(sa.insert(trades), [{"trade_id": f"t{i}", "token_id": "y0", "side": "BUY",
                                              "price": Decimal("0.5"), "size": Decimal(5), "fill_type": "full",
                                              "mode": "paper", "ts": t, "run_id": None} for i, t in enumerate(fill_ts)])
    db.dispose()


def _from_the_whole_history(life: list[tuple[float, str, str | None]], pnl_ts: list[float],
                            fill_ts: list[float]) -> dict[str, list[tuple[float, float]]]:
    """The charts as computed from every session event up to now (what load_history read before)."""
    own = sorted((t, k) for t, k, r in life if r is None and t <= NOW)
    rows = [(t, float(i)) for i, t in enumerate(pnl_ts) if SINCE <= t <= NOW]
    fills = sorted(t for t in fill_ts if SINCE - 60 <= t <= NOW)
    out = {"pnl": dashboard._broken_at([t for t, k in own if k == "engine_start"], sorted(rows)), "fills_per_min": []}
    if fills:
        first = min(fills[0], min(t for t, _ in rows) if rows else fills[0])
        out["fills_per_min"] = dashboard._fills_per_min(fills, dashboard._sessions(own, first, NOW), SINCE, NOW)
    return out


def _same(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return len(a) == len(b) and all(ta == tb and (va == vb or (math.isnan(va) and math.isnan(vb)))
                                    for (ta, va), (tb, vb) in zip(a, b, strict=True))


def _rows_read_from_events(url: str, monkeypatch) -> list[int]:
    """Rows each SELECT on `events` returns, counted by running the same statement again."""
    from pmm_widgets.store import db as store_db  # (load_history imports make_engine from there when it runs)

    counts: list[int] = []

    made = store_db.make_engine

    def counting(u: str, *a, **kw):
        eng = made(u, *a, **kw)

        @sa.event.listens_for(eng, "after_cursor_execute")
        def after(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
            if re.match(r"\s*SELECT\b", statement) and re.search(r"\bFROM events\b", statement):
                with sqlite3.connect(url.removeprefix("sqlite:///")) as raw:
                    counts.append(len(raw.execute(statement, parameters).fetchall()))

        return eng

    monkeypatch.setattr(store_db, "make_engine", counting)
    return counts


def test_many_old_sessions_are_not_read_and_change_nothing(tmp_path: Path, monkeypatch) -> None:
    """2,000 sessions over the month before (the last one still running at the hour's start, a
    replay's events beside them), two restarts inside the hour: the charts are those of the whole
    history, and 3 session rows are read (the last before the hour, the two inside it)."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    life: list[tuple[float, str, str | None]] = []
    t = NOW - 30 * 86_400
    for _ in range(2000):
        life += [(t, "engine_start", None), (t + 600, "engine_stop", None), (t + 700, "engine_start", "replay-1")]
        t += 1200
    life += [(SINCE - 500, "engine_start", None), (SINCE + 900, "engine_stop", None), (SINCE + 1500, "engine_start", None)]
    pnl_ts = [SINCE + 60 * i for i in range(1, 60) if not SINCE + 900 < SINCE + 60 * i < SINCE + 1500]
    fill_ts = [SINCE - 30, SINCE + 100, SINCE + 110, SINCE + 2000, SINCE + 2005, SINCE + 2010]
    _write(url, life, pnl_ts, fill_ts)
    counts = _rows_read_from_events(url, monkeypatch)
    hist = load_history(url, now=NOW)
    assert sum(counts) == 3, counts  # was 4,003: every session of the month
    want = _from_the_whole_history(life, pnl_ts, fill_ts)
    assert _same(hist["pnl"], want["pnl"]) and _same(hist["fills_per_min"], want["fills_per_min"])
    fpm = hist["fills_per_min"]
    assert fpm[0][0] == SINCE and sum(math.isnan(v) for _, v in fpm) == 1  # running at the hour's start; one gap
    assert sum(math.isnan(v) for _, v in hist["pnl"]) == 1  # one break: the restart inside the hour


EVENT = st.tuples(st.floats(NOW - 5 * HOUR, NOW + 600), st.sampled_from(KINDS), st.sampled_from([None, None, None, "r1"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(life=st.lists(EVENT, max_size=40, unique_by=lambda e: e[0]),
       pnl_ts=st.lists(st.floats(SINCE - 600, NOW + 60), max_size=20, unique=True),
       fill_ts=st.lists(st.floats(SINCE - 200, NOW + 60), max_size=20, unique=True))
def test_the_charts_are_those_of_the_whole_history(monkeypatch, life, pnl_ts, fill_ts) -> None:
    """Any sequence of starts and stops (a start without a stop, a stop first, a replay's events),
    before and inside the hour: the same PnL breaks and fills/min sessions as from every event,
    reading at most the hour's session rows and one before it."""
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/h.db"
        upgrade(url)
        _write(url, life, pnl_ts, fill_ts)
        with monkeypatch.context() as m:
            counts = _rows_read_from_events(url, m)
            hist = load_history(url, now=NOW)
    want = _from_the_whole_history(life, pnl_ts, fill_ts)
    assert _same(hist["pnl"], want["pnl"]), (hist["pnl"], want["pnl"])
    assert _same(hist["fills_per_min"], want["fills_per_min"]), (hist["fills_per_min"], want["fills_per_min"])
    inside = sum(1 for t, _, r in life if r is None and SINCE <= t <= NOW)
    assert counts and sum(counts) <= inside + 1  # (the session queries were seen, and read no more)
