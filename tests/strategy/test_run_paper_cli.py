"""`pmm run paper` on the embedded sandbox, as a user runs it, then `pmm report` and a restart.

A separate process with real sockets: the sandbox at 20x runs a few simulated minutes. The
trades, markouts and calibration it records are read back from the DB; a second run must resume
the calibration the first one stored; the report must agree with the DB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration


def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_VENUE": "sandbox", "PMM_DB_URL": db_url, "PMM_SANDBOX_SPEED": "20",
                "PMM_SANDBOX_MARKETS": "20", "PMM_UNIVERSE_SIZE": "6", "PMM_QUOTE_REFRESH_SEC": "0.5",
                "PMM_WRITER_FLUSH_SEC": "0.2", "PMM_PAPER_FILL_INTENSITY": "20",
                "PMM_RECORD": "off"})
    return env


def _pmm(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pmm_widgets.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _rows(db: sa.Engine, sql: str) -> list[dict]:
    with db.connect() as c:
        return [dict(r) for r in c.execute(sa.text(sql)).mappings()]


def _calibration(db: sa.Engine) -> dict[str, dict]:
    return {r["market"]: (json.loads(r["state_json"]) if isinstance(r["state_json"], str) else r["state_json"])
            for r in _rows(db, "SELECT market, state_json FROM market_calibration")}


def test_run_paper_records_fills_markouts_calibration_and_resumes(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'paper.db'}"
    env = _env(db_url)
    db = sa.create_engine(db_url)

    out = _pmm(env, "run", "paper", "--max-seconds", "15")
    assert out.returncode == 0, out.stderr[-3000:]
    trades = _rows(db, "SELECT * FROM trades")
    assert {t["mode"] for t in trades} == {"paper"}
    assert {t["fill_type"] for t in trades} == {"PARTIAL", "FILLED"}
    # both tokens of the markets are quoted: YES and NO token ids both have orders (their fills are
    # checked after the second run: a NO token's fills in one 15 s run, 4-17 in 13 runs here, were
    # once none on a loaded CI host)
    yes_no = {(r["yes_token_id"], r["no_token_id"]) for r in _rows(db, "SELECT yes_token_id, no_token_id FROM markets")}
    yes, no = {y for y, _ in yes_no}, {n for _, n in yes_no}
    quoted = {r["token_id"] for r in _rows(db, "SELECT DISTINCT token_id FROM orders")}
    assert quoted & yes and quoted & no
    assert {t["token_id"] for t in trades} & yes
    # markouts and realized spread per fill (the 5 s horizon has passed for the early fills)
    markouts = _rows(db, "SELECT trade_id, horizon_sec, markout FROM markouts")
    assert any(m["horizon_sec"] == 5.0 for m in markouts)
    assert any(m["horizon_sec"] == 0.0 and m["markout"] is not None for m in markouts)  # realized spread
    assert {m["trade_id"] for m in markouts} <= {t["trade_id"] for t in trades}
    raws = [json.loads(t["raw_json"]) if isinstance(t["raw_json"], str) else t["raw_json"] for t in trades]
    assert not any("markouts" in (r or {}) for r in raws)  # raw_json keeps the fill model's payload only
    # placed (quote changes) is not fills
    placed = _rows(db, "SELECT COUNT(*) AS n FROM orders WHERE status != 'REJECTED'")[0]["n"]
    assert placed > len(trades) > 0
    # nothing is left open after a clean stop
    assert _rows(db, "SELECT client_id FROM orders WHERE status IN ('PENDING','LIVE','PARTIAL')") == []

    first = _calibration(db)
    assert first and sum(s["fills"] for s in first.values()) > 0

    out = _pmm(env, "run", "paper", "--max-seconds", "8")
    assert out.returncode == 0, out.stderr[-3000:]
    second = _calibration(db)
    # the second run started from the stored state: per-market fill counters keep counting
    # across the restart, so each equals that market's fills over both runs
    by_market: dict[str, int] = {}
    for t in _rows(db, "SELECT market FROM trades"):
        by_market[t["market"]] = by_market.get(t["market"], 0) + 1
    resumed = [m for m, s in first.items() if s["fills"] > 0 and m in second]
    assert resumed
    # over both runs, YES and NO tokens both filled
    filled_tokens = {t["token_id"] for t in _rows(db, "SELECT token_id FROM trades")}
    assert filled_tokens & yes and filled_tokens & no
    for m in resumed:
        assert second[m]["fills"] == by_market[m], (m, first[m]["fills"], second[m]["fills"], by_market[m])

    # `pmm report` agrees with the DB
    rep = _pmm(env, "report")
    assert rep.returncode == 0, rep.stderr[-2000:]
    n_trades = len(_rows(db, "SELECT id FROM trades"))
    n_placed = _rows(db, "SELECT COUNT(*) AS n FROM orders WHERE status != 'REJECTED'")[0]["n"]
    assert f"placed {n_placed} orders" in rep.stdout and f"{n_trades} fills" in rep.stdout, rep.stdout[-1500:]
    db.dispose()
