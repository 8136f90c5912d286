"""Building the operator app (`apps/control.ipynb`) and the research notebook's engine.

Why a module and not notebook code: the notebooks stay three short cells (stripped in git), and
the same wiring is tested without a browser.

The DB path: the default `sqlite:///pmm.db` is relative, and a Voilà/Jupyter kernel runs in the
notebook's folder (`apps/`), so a relative SQLite path is resolved against the repository root
(the folder holding `pyproject.toml`, searched upwards from the cwd). The operator app, the
research notebook and `python -m pmm_widgets.engine` run from the root then share one DB, and
therefore one lease.
"""

from __future__ import annotations

import bisect
import html
import math
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from ..config import ConfigError, Settings, Venue, load_settings
from ..domain import Mode
from ..engine.core import Engine
from ..events import EventKind
from ..store.db import check_shared_db
from ..store.recording import check_record_dir
from .controls import ControlPanel
from .lifecycle import install_kernel_stop_hook, kernel_stop_timeout


def project_root(start: Path | None = None) -> Path:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file():
            return d
    return here


def resolve_db_url(db_url: str, root: Path) -> str:
    """A relative SQLite file path becomes absolute under `root`; any other URL is unchanged."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return db_url
    if Path(url.database).is_absolute():
        return db_url
    return url.set(database=str(root / url.database)).render_as_string(hide_password=False)


def app_settings(**overrides: Any) -> Settings:
    """`load_settings()` with the SQLite path and the relative file paths (the recordings'
    directory, the order round-trip files) resolved against the repository root: a notebook's
    kernel runs in its own folder (apps/, notebooks/), and the operator app, the research notebook
    and `pmm` run from the root must share one DB and one recording (a recording made by
    `pmm run paper` was "no recordings under ./data/recordings" to the research notebook)."""
    root = project_root()
    env_file = root / ".env"
    if env_file.is_file() and not Path(".env").is_file():
        overrides.setdefault("_env_file", str(env_file))
    settings = load_settings(**overrides)
    paths = {k: str(root / v) for k in ("record_dir", "live_rtt_file", "paper_latency_file")
             if (v := getattr(settings, k)) and not Path(v).is_absolute()}
    return settings.model_copy(update={"db_url": resolve_db_url(settings.db_url, root), **paths})


def demo_mode(settings: Settings) -> bool:
    """PMM_DEMO=1, or the embedded sandbox: start quoting (paper) as soon as a browser view opens."""
    return os.environ.get("PMM_DEMO", "") == "1" or settings.venue is Venue.SANDBOX


def load_history(db_url: str, since_sec: float = 3600.0, now: float | None = None) -> dict[str, Any]:
    """The charts' backfill from the DB (blocking; the page runs it in a thread): total PnL and
    per-market mid/inventory from `pnl` and `book_snapshots`, fills/min from `trades`, last hour.

    The engine's own rows only (a replay's rows carry a `run_id` and the recorded times: a replay of
    the last hour into this DB must not draw on the operator's charts). Each engine session starts
    its PnL at 0: the series break (a NaN point) where a session starts (`events` rows of kind
    `engine_start`), instead of a line from one session's last value to the next one's first, and
    fills/min is drawn only while a session ran (from its start to its `engine_stop`), not as zeros
    over the hour when none did."""
    import sqlalchemy as sa

    from ..store.db import make_engine
    from ..store.schema import book_snapshots, events, markets, pnl, trades

    now = time.time() if now is None else now
    since = now - since_sec
    db = make_engine(db_url)
    out: dict[str, Any] = {"pnl": [], "fills_per_min": [], "markets": {}}
    try:
        if not all(sa.inspect(db).has_table(t.name) for t in (pnl, trades, markets, book_snapshots, events)):
            return out  # a fresh DB the engine has not migrated yet: no history
        with db.connect() as conn:
            rows = conn.execute(sa.select(pnl.c.ts, pnl.c.total)
                                .where(pnl.c.market == "TOTAL", pnl.c.ts >= since, pnl.c.ts <= now,
                                       pnl.c.run_id.is_(None)).order_by(pnl.c.ts)).all()
            life = _life_events(conn, events, since, now)
            fills = [float(t) for (t,) in conn.execute(
                sa.select(trades.c.ts).where(trades.c.ts >= since - 60, trades.c.ts <= now, trades.c.run_id.is_(None))
                .order_by(trades.c.ts))]
            inv = conn.execute(sa.select(pnl.c.market, pnl.c.ts, pnl.c.inventory_yes, pnl.c.inventory_no)
                               .where(pnl.c.market != "TOTAL", pnl.c.ts >= since, pnl.c.ts <= now,
                                      pnl.c.run_id.is_(None)).order_by(pnl.c.ts)).all()
            yes_of = dict(conn.execute(sa.select(markets.c.yes_token_id, markets.c.condition_id)).all())
            mids: dict[str, list[tuple[float, float | None]]] = {}
            for tok, ts, mid in conn.execute(sa.select(book_snapshots.c.token_id, book_snapshots.c.ts,
                                                       book_snapshots.c.mid)
                                             .where(book_snapshots.c.ts >= since).order_by(book_snapshots.c.ts)):
                cid = yes_of.get(tok)
                if cid is not None:
                    mids.setdefault(cid, []).append((float(ts), None if mid is None else float(mid)))
        starts = [t for t, k in life if k == EventKind.ENGINE_START.value]
        out["pnl"] = _broken_at(starts, [(float(t), float(v or 0)) for t, v in rows])
        if fills:
            first = min(fills[0], float(rows[0][0]) if rows else fills[0])
            out["fills_per_min"] = _fills_per_min(fills, _sessions(life, first, now), since, now)
        per: dict[str, list[tuple[float, float | None, float, float]]] = {}
        for cid, series_m in mids.items():
            per[cid] = [(ts, mid, 0.0, 0.0) for ts, mid in series_m]
        for cid, ts, iy, ino in inv:
            per.setdefault(cid, []).append((float(ts), None, float(iy or 0), float(ino or 0)))
        merged: dict[str, list[tuple[float, float | None, float, float]]] = {}
        for cid, rows_m in per.items():
            last_inv = (0.0, 0.0)
            filled: list[tuple[float, float | None, float, float]] = []
            for ts, mid, iy, ino in sorted(rows_m, key=lambda r: r[0]):  # inventory carried forward
                if mid is None:
                    last_inv = (iy, ino)
                    continue
                filled.append((ts, mid, *last_inv))
            merged[cid] = filled
        out["markets"] = merged
    finally:
        db.dispose()
    return out


def _life_events(conn: Any, events: Any, since: float, now: float) -> list[tuple[float, str]]:
    """The engine's `engine_start` / `engine_stop` events the charts need: those of the window
    [since, now] and the last one before it (whether a session was running at `since`, and since
    when). Every older one (all the sessions of the DB's life: thousands of rows after months)
    changes nothing the window shows, and was read at every page load."""
    import sqlalchemy as sa

    kinds = (EventKind.ENGINE_START.value, EventKind.ENGINE_STOP.value)
    own = (events.c.kind.in_(kinds), events.c.run_id.is_(None))
    before = conn.execute(sa.select(events.c.ts, events.c.kind).where(*own, events.c.ts < since)
                          .order_by(events.c.ts.desc(), events.c.id.desc()).limit(1)).all()
    inside = conn.execute(sa.select(events.c.ts, events.c.kind).where(*own, events.c.ts >= since, events.c.ts <= now)
                          .order_by(events.c.ts, events.c.id)).all()
    return [(float(t), str(k)) for t, k in [*before, *inside]]


def _broken_at(starts: list[float], series: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """`series` with a (start, NaN) point wherever a session start falls between two of its points
    (a chart's line breaks there)."""
    out: list[tuple[float, float]] = []
    for t, v in series:
        if out and bisect.bisect_right(starts, out[-1][0]) != bisect.bisect_right(starts, t):
            out.append((starts[bisect.bisect_right(starts, t) - 1], math.nan))
        out.append((t, v))
    return out


def _sessions(life: list[tuple[float, str]], first: float, now: float) -> list[tuple[float, float]]:
    """(start, end) of each engine session from its `engine_start` / `engine_stop` events (one still
    running ends `now`); no event at all (a DB written before the events were): one session from
    `first` (the first row) to `now`."""
    if not life:
        return [(first, now)]
    out: list[tuple[float, float]] = []
    start: float | None = None if life[0][1] == EventKind.ENGINE_START.value else first  # (one begun before)
    for ts, kind in life:
        if kind == EventKind.ENGINE_START.value:
            if start is not None:
                out.append((start, ts))  # (a start with no stop before it: the last one ended unrecorded)
            start = ts
        elif start is not None:
            out.append((start, ts))
            start = None
    if start is not None:
        out.append((start, now))
    return out


def _fills_per_min(fills: list[float], sessions: list[tuple[float, float]], since: float, now: float,
                   step: float = 10.0) -> list[tuple[float, float]]:
    """Fills in the trailing minute, every `step` s while a session ran, a NaN point between sessions."""
    series: list[tuple[float, float]] = []
    for a, b in sessions:
        a, b = max(a, since), min(b, now)
        if b <= a:
            continue
        if series:
            series.append((a, math.nan))
        for hi_t in [a + step * i for i in range(int((b - a) // step) + 1)]:
            lo = bisect.bisect_left(fills, hi_t - 60)
            series.append((hi_t, float(bisect.bisect_right(fills, hi_t) - lo)))
    return series


class FatalPanel:
    """What the page shows when the app cannot even be built (a bad setting): one clear line."""

    def __init__(self, message: str) -> None:
        import ipywidgets as W

        from .controls import TABLE_CSS

        self.message = message
        self.root = W.HTML(f"<h3>pmm-widgets · market-making control</h3>{TABLE_CSS}"
                           f'<div class="pmm-fatal"><b>cannot start:</b> {html.escape(message)}</div>'
                           "<div>Fix the setting (environment or <code>.env</code>; every setting is listed in "
                           "<code>env.example</code>) and restart Voilà.</div>")
        self.root.add_class("pmm-app")

    def show(self) -> Any:
        return self.root


def launch(settings: Settings | None = None) -> ControlPanel | FatalPanel:
    """Build engine + panel for `apps/control.ipynb`.

    Nothing starts here (Voilà runs this for any GET): in demo mode the engine starts on the
    page's first browser heartbeat. The kernel's shutdown (tab closed or reloaded, culled, Voilà
    stopped) runs the engine's clean stop (`lifecycle.install_kernel_stop_hook`). A bad setting
    returns a `FatalPanel` showing the one-line error instead of a blank page.
    """
    unrecorded = ""
    try:
        settings = settings or app_settings()
        check_shared_db(settings)
        if settings.record is None:  # the operator's sessions record, as `pmm run`'s do (PMM_RECORD=off: not)
            try:
                on = settings.model_copy(update={"record": "on"})
                check_record_dir(on)
                settings = on
            except ConfigError as exc:  # a default must never keep the page (and its KILL) from opening
                settings = settings.model_copy(update={"record": "off"})
                unrecorded = f"{exc}: this page's engine runs without recording"
        else:
            check_record_dir(settings)  # PMM_RECORD=on asked for: a directory it cannot write is the page's one line
    except ConfigError as exc:
        return FatalPanel(str(exc))
    demo = demo_mode(settings)
    engine = Engine(settings, Mode.PAPER, auto_takeover=demo, persist_params=True)
    panel = ControlPanel(engine, autostart=demo, history=lambda: load_history(settings.db_url))
    from ..errors import unknown_env_warnings

    for warning in [*unknown_env_warnings(env_file=project_root() / ".env"), *([unrecorded] if unrecorded else [])]:
        panel.log.append_stderr(f"warning: {warning}\n")
        panel._msg(f"warning: {warning}", error=True, ttl=120.0)
    try:
        install_kernel_stop_hook(panel.close, timeout=kernel_stop_timeout())  # ends before Voilà's SIGKILL
    except RuntimeError:  # no running loop (plain Python): nothing to hook
        pass
    return panel
