"""The done-criterion: `pmm run paper` on the sandbox records a session; `pmm replay` with the
same parameters and seed reproduces it: the same orders (token, side, price, size) cycle for
cycle and the same fills. And two replays are byte-identical.

Why exact equality is the right bound here: the recording holds every input of the paper
engine's decisions in the order the event loop saw them (frames, REST resyncs, connection
events, the cycle times, parameter changes), and the paper exchange's randomness is seeded, so
nothing is left to chance. The divergence figures (share of cycles with identical quotes,
fills/min and PnL difference) are computed anyway and printed, so a regression shows how far
off it is, not only that it is.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict

import pytest
from sandbox_rows import dec, placed, pmm_cmd, rows, sandbox_env

pytestmark = pytest.mark.integration


def _env(tmp_path, db: str) -> dict[str, str]:
    return sandbox_env(tmp_path, db)


def _pmm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(pmm_cmd(*args), env=env, capture_output=True, text=True, timeout=180)


_rows, _d, _placed = rows, dec, placed


def _fill(t: dict) -> tuple:
    return (round(t["ts"], 6), t["token_id"], t["side"], _d(t["price"]), _d(t["size"]), t["fill_type"])


def _by_cycle(orders: list[dict]) -> dict[float, Counter]:
    out: dict[float, Counter] = defaultdict(Counter)
    for o in orders:
        out[round(o["created_ts"], 6)][_placed(o)] += 1
    return out


def test_replay_reproduces_the_recorded_paper_session(tmp_path):
    env = _env(tmp_path, "paper.db")
    env.pop("PMM_RECORD", None)  # `pmm run` records by default
    # issue 12: the paper cycle yields to the event loop before every market (the market stream
    # holds the books meanwhile, applying what arrived after the cycle); the replay never yields
    env["PMM_CYCLE_YIELD_MS"] = "0.001"
    run = _pmm(env, "run", "paper", "--max-seconds", "20")
    assert run.returncode == 0, run.stderr[-3000:]
    assert list((tmp_path / "rec").glob("*/market-*.parquet")), "pmm run did not record"
    paper_url = env["PMM_DB_URL"]
    p_orders = _rows(paper_url, "SELECT * FROM orders WHERE mode = 'paper' ORDER BY id")
    p_trades = _rows(paper_url, "SELECT * FROM trades WHERE mode = 'paper' ORDER BY id")
    p_pnl = _rows(paper_url, "SELECT * FROM pnl WHERE market = 'TOTAL' ORDER BY ts")
    assert len(p_orders) > 20 and len(p_trades) > 3

    t0 = min(o["created_ts"] for o in p_orders) - 5
    t1 = max(o["updated_ts"] for o in p_orders) + 5
    from pmm_widgets.research.recordings import iso

    renv = _env(tmp_path, "replay.db")
    args = ("replay", "--from", iso(t0), "--to", iso(t1), "--json")
    out = _pmm(renv, *args)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)["summary"]
    r_orders = _rows(renv["PMM_DB_URL"], "SELECT * FROM orders WHERE mode = 'replay' ORDER BY id")
    r_trades = _rows(renv["PMM_DB_URL"], "SELECT * FROM trades WHERE mode = 'replay' ORDER BY id")
    r_pnl = _rows(renv["PMM_DB_URL"], "SELECT * FROM pnl WHERE market = 'TOTAL' ORDER BY ts")

    # divergence figures (printed with -s; all must be perfect)
    pc, rc = _by_cycle(p_orders), _by_cycle(r_orders)
    cycles = sorted(set(pc) | set(rc))
    same = sum(1 for c in cycles if pc.get(c) == rc.get(c)) / len(cycles)
    minutes = summary["sim_seconds"] / 60
    fpm_p, fpm_r = len(p_trades) / minutes, len(r_trades) / minutes
    pnl_diff = abs(_d(p_pnl[-1]["total"]) - _d(r_pnl[-1]["total"])) if p_pnl and r_pnl else None
    print(f"cycles with identical quotes {same:.3f} of {len(cycles)}; fills/min paper {fpm_p:.2f} replay {fpm_r:.2f}; "
          f"last TOTAL pnl difference {pnl_diff}")
    assert summary["cycles_mode"] == "recorded" and summary["problems"] == 0
    assert same == 1.0
    assert [_fill(t) for t in p_trades] == [_fill(t) for t in r_trades]
    assert [(_d(a["total"]), _d(a["rewards"]), a["ts"]) for a in p_pnl] == \
        [(_d(b["total"]), _d(b["rewards"]), b["ts"]) for b in r_pnl]

    # determinism: a second replay into another DB gives byte-identical trade rows
    renv2 = _env(tmp_path, "replay2.db")
    out2 = _pmm(renv2, *args)
    assert out2.returncode == 0, out2.stderr[-3000:]
    again = _rows(renv2["PMM_DB_URL"], "SELECT * FROM trades WHERE mode = 'replay' ORDER BY id")
    assert json.dumps(again, default=str, sort_keys=True) == json.dumps(r_trades, default=str, sort_keys=True)

    # several parameter sets in one pass over this recording (recorded cycles, venue minutes and
    # their reward samples, recorded parameter changes): each point's rows are its own replay's
    import asyncio

    from pmm_widgets.config import load_settings
    from pmm_widgets.research.replayer import Replayer

    s = load_settings(record_dir=str(tmp_path / "rec"), quote_refresh_sec=0.5, paper_fill_intensity=20)
    pts = [{}, {"strategy": "rewards"}, {"strategy": "rewards", "rewards_band_frac": 0.2}]
    alone = [asyncio.run(Replayer(s, t0, t1, params=p).run()) for p in pts]
    together = asyncio.run(Replayer(s, t0, t1, points=pts).run_all())
    assert len(alone[0].trades) == len(r_trades) and alone[0].summary["cycles"] == summary["cycles"]
    assert alone[0].trades != alone[1].trades != alone[2].trades
    assert 0 < alone[1].summary["rewards"] != alone[2].summary["rewards"]  # sampled at venue minutes, per point
    for a, b in zip(alone, together):
        assert (a.run_id, a.orders, a.trades, a.cycles) == (b.run_id, b.orders, b.trades, b.cycles)
        assert a.summary.get("rewards") == b.summary.get("rewards") and a.summary["pnl_total"] == b.summary["pnl_total"]

    # a window starting mid-session rebuilds its books from the engine's own checkpoint (the
    # first is written ≈ 5 s after the start) and trades exactly as the full warm-up would
    from pmm_widgets.research.recordings import load_window

    w = load_window(s.record_dir, t0, t1)
    checkpoints = [float(w.ts[i]) for i in range(len(w)) if w.kind[i] == "checkpoint"]
    assert checkpoints and checkpoints[0] + 3 < t1 - 5, "the engine recorded no checkpoint early in the session"
    mid = checkpoints[0] + 3
    full = asyncio.run(Replayer(s, mid, t1, resume=False).run())
    fast = asyncio.run(Replayer(s, mid, t1).run())
    print(f"from {fast.summary['resumed_from']}: {fast.summary['warmup_rows_skipped']} warm-up rows not replayed, "
          f"{len(full.orders)} orders, {len(full.trades)} fills, {len(full.cycles)} cycles")
    assert full.summary["resumed_from"] is None and fast.summary["resumed_from"] is not None
    assert fast.summary["warmup_rows_skipped"] > 0 and full.orders
    assert (fast.orders, fast.trades, fast.cycles) == (full.orders, full.trades, full.cycles)
    assert fast.summary["pnl_total"] == full.summary["pnl_total"]
