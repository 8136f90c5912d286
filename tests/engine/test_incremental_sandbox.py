"""On the sandbox: `pmm run paper` with the venue in a child process (`PMM_SANDBOX_PROCESS=on`),
the child gone when the run ends; and the incremental cycle decides exactly as the full cycle on
that real session: its recording replayed with the incremental cycle and with the full cycle
gives the same orders, fills and PnL rows, and both the paper session's own orders (the live
engine ran incremental).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
from decimal import Decimal

import psutil
import pytest
import sqlalchemy as sa

from pmm_widgets.config import Settings
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.research import replayer

pytestmark = pytest.mark.integration

FIELDS = {"venue": "sandbox", "sandbox_speed": "20", "sandbox_markets": "20", "universe_size": "6",
          "quote_refresh_sec": "0.5", "writer_flush_sec": "0.2", "paper_fill_intensity": "20"}


def _rows(url: str, sql: str) -> list[tuple]:
    eng = sa.create_engine(url)
    with eng.connect() as c:
        out = [tuple(r) for r in c.execute(sa.text(sql))]
    eng.dispose()
    return out


def _norm(rows: list[tuple]) -> list[tuple]:
    return [tuple(Decimal(str(v)).normalize() if isinstance(v, (float, Decimal)) else v for v in r) for r in rows]


ORDERS = "SELECT token_id, side, price, size, created_ts, status FROM orders WHERE mode = '{m}' ORDER BY created_ts, id"
TRADES = "SELECT ts, token_id, side, price, size, fill_type FROM trades WHERE mode = '{m}' ORDER BY ts, id"
PNL = "SELECT ts, market, total, inventory_yes, inventory_no FROM pnl WHERE mode = '{m}' ORDER BY ts, market"


def test_child_sandbox_run_and_incremental_replay_equals_full(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({f"PMM_{k.upper()}": v for k, v in FIELDS.items()})
    env.update({"PMM_DB_URL": f"sqlite:///{tmp_path / 'paper.db'}", "PMM_RECORD_DIR": str(tmp_path / "rec"),
                "PMM_SANDBOX_PROCESS": "on", "PMM_LOG_LEVEL": "INFO"})
    run = subprocess.run([sys.executable, "-m", "pmm_widgets.cli", "run", "paper", "--max-seconds", "15"],
                         env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    m = re.search(r"sandbox child process (\d+)", run.stderr)
    assert m, run.stderr[-3000:]
    pid = int(m.group(1))
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, "child sandbox left running"

    paper = env["PMM_DB_URL"]
    p_orders = _norm(_rows(paper, ORDERS.format(m="paper")))
    assert len(p_orders) > 20
    t0 = min(o[4] for o in p_orders) - 5
    t1 = float(max(o[4] for o in p_orders)) + 5

    settings = Settings(_env_file=None, record_dir=str(tmp_path / "rec"), **FIELDS)  # type: ignore[arg-type]
    inc_url, full_url = f"sqlite:///{tmp_path / 'inc.db'}", f"sqlite:///{tmp_path / 'full.db'}"
    replayer.replay(settings, float(t0), t1, db_url=inc_url)
    monkeypatch.setattr(replayer, "QuoteCycle", functools.partial(QuoteCycle, incremental=False))
    replayer.replay(settings, float(t0), t1, db_url=full_url)

    for sql in (ORDERS, TRADES, PNL):
        inc, full = _norm(_rows(inc_url, sql.format(m="replay"))), _norm(_rows(full_url, sql.format(m="replay")))
        assert inc == full
        assert inc
    r_orders = _norm(_rows(inc_url, ORDERS.format(m="replay")))
    assert [o[:5] for o in r_orders] == [o[:5] for o in p_orders]
