"""A replay whose window starts inside an hour rebuilds its books from the last checkpoint
before the start (the engine records one every 5 minutes) instead of replaying every frame from
the hour's start: the same orders and trades, byte for byte, for a fraction of the warm-up."""

from __future__ import annotations

import asyncio
import json

import pytest

from pmm_widgets.cli import main
from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    synth_recording(root, T0, 8 * 60, markets=4, seed=11, checkpoint_sec=60)  # checkpoints at 10:01, 10:02, ...
    return root


def _both(rec_dir, a: float, b: float, **kw):
    s = load_settings(record_dir=str(rec_dir), paper_fill_intensity=20, **kw)
    full = asyncio.run(Replayer(s, T0 + a, T0 + b, resume=False).run())
    fast = asyncio.run(Replayer(s, T0 + a, T0 + b).run())
    return full, fast


@pytest.mark.parametrize(("a", "b", "kw", "resumed"), [
    (450.0, 480.0, {"quote_refresh_sec": 1.0}, "2026-11-30T10:07:00.000Z"),
    # a start on a checkpoint's instant: the one before (the cycle at t0 runs before t0's rows)
    (300.0, 330.0, {"quote_refresh_sec": 1.0}, "2026-11-30T10:04:00.000Z"),
    # books stale after 0.5 s, cycles 10 ms after the checkpoint: staleness must count from each
    # book's last update (the checkpoint's `local_ts`), not from the checkpoint (fails without it)
    (300.01, 320.0, {"quote_refresh_sec": 0.1, "stale_sec": 0.5}, "2026-11-30T10:05:00.000Z"),
])
def test_a_replay_from_the_checkpoint_trades_as_the_full_warm_up(rec_dir, a, b, kw, resumed):
    full, fast = _both(rec_dir, a, b, **kw)
    assert full.run_id == fast.run_id and len(full.orders) > 20 and full.trades
    assert fast.orders == full.orders and fast.trades == full.trades  # ids, prices, sizes, times
    assert fast.cycles == full.cycles
    for k in ("pnl_total", "realized", "unrealized", "fills", "placed", "max_inventory_usd"):
        assert fast.summary[k] == full.summary[k], k
    assert full.summary["resumed_from"] is None and full.summary["warmup_rows_skipped"] == 0
    assert fast.summary["resumed_from"] == resumed and fast.summary["warmup_rows_skipped"] > 1000
    assert fast.summary["events"] < full.summary["events"] / 2


def test_no_checkpoint_before_the_start_replays_the_whole_warm_up(rec_dir, capsys, monkeypatch, tmp_path):
    full, fast = _both(rec_dir, 50.0, 70.0, quote_refresh_sec=1.0)
    assert fast.summary["resumed_from"] is None and fast.summary["events"] == full.summary["events"]
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    assert main(["replay", "--from", "2026-11-30T10:06:30Z", "--to", "2026-11-30T10:07:00Z",
                 "--db-url", f"sqlite:///{tmp_path / 'r.db'}"]) == 0
    assert "warm-up from the checkpoint of 2026-11-30T10:06:00.000Z (" in capsys.readouterr().out


def test_a_checkpoint_without_local_times_is_not_started_from(tmp_path):
    """Recordings made before checkpoints carried `local_ts`: the full warm-up, as before."""
    from pmm_widgets.research.recordings import load_window
    from pmm_widgets.research.replayer import resume_index

    root = tmp_path / "old"
    synth_recording(root, T0, 150, markets=2, seed=3, checkpoint_sec=60)
    w = load_window(root, T0 + 130, T0 + 140)
    assert resume_index(w, T0 + 130) > 0
    w.payload = [p.replace('"local_ts"', '"old_ts"') if p else p for p in w.payload]
    assert resume_index(w, T0 + 130) == 0


def _keys(res):
    """Orders and fills without their ids (a run id hashes the window, so two windows differ there)."""
    return ([(o["token_id"], o["side"], str(o["price"]), str(o["size"]), o["created_ts"], o["status"]) for o in res.orders],
            [(t["token_id"], t["side"], str(t["price"]), str(t["size"]), t["ts"]) for t in res.trades])


@pytest.fixture(scope="module")
def across_hours(tmp_path_factory):
    """A session that started at 09:50 (universe, snapshots) and runs past 10:00, checkpoints
    every 5 minutes (09:55, 10:00, 10:05), and an engine that changed alpha at 09:52."""
    from pmm_widgets.store.recording import Recorder

    root = tmp_path_factory.mktemp("hours")
    synth_recording(root, T0 - 600, 1200, markets=4, seed=11, checkpoint_sec=300)
    rec = Recorder(root, session="eng")
    rec.engine(T0 - 590, "start", {"mode": "paper", "calibration": None, "strategies": {}})
    rec.engine(T0 - 480, "params", {"alpha": 3.0})
    rec.close()
    return root


def test_a_window_in_the_first_minutes_of_an_hour_has_its_universe_books_and_parameters(across_hours):
    """The hour's files alone hold neither the universe (recorded at the session's start and at
    each refresh), nor a snapshot of every book (deltas only, until the hour's first checkpoint),
    nor the parameters changed before the hour: a replay of 10:00-10:05 used to quote nothing at
    all. Now it starts from the 09:55 checkpoint, the last universe and the engine state since its
    start: the same orders and fills as a replay of the same window that applies every frame from
    the session's start (with the recorded alpha pinned, as the engine changed it)."""
    from pmm_widgets.research.recordings import load_window

    s = load_settings(record_dir=str(across_hours), quote_refresh_sec=1.0, paper_fill_intensity=20)
    w = load_window(across_hours, T0, T0 + 300)
    assert [(r[2], r[0] - T0) for r in w.preamble] == [("universe", -600.0), ("start", -590.0), ("params", -480.0)]
    rp = Replayer(s, T0, T0 + 300)
    fast = asyncio.run(rp.run())
    assert fast.summary["resumed_from"] == "2026-11-30T09:55:00.000Z" and fast.cycles[0] == T0
    assert rp.params.alpha == 3.0 and len(fast.orders) > 100 and fast.trades
    gold = asyncio.run(Replayer(s, T0, T0 + 300, window=load_window(across_hours, T0 - 600, T0 + 300),
                                resume=False, params={"alpha": 3.0}).run())
    assert _keys(fast) == _keys(gold) and fast.summary["pnl_total"] == gold.summary["pnl_total"]
    without = asyncio.run(Replayer(s, T0, T0 + 300, params={"alpha": 1.5}).run())
    assert _keys(without) != _keys(fast)  # the recorded parameter change matters here
    # `--markets` ids are checked against that universe too (the hour's files hold none)
    from pmm_widgets.research.recordings import RecordingError

    slug = json.loads(w.preamble[0][3])[0]["slug"]
    one = asyncio.run(Replayer(s, T0, T0 + 60, markets=[slug]).run())
    assert one.summary["markets"] == 1 and one.orders
    with pytest.raises(RecordingError, match="markets nope: not in the universe recorded"):
        Replayer(s, T0, T0 + 60, markets=["nope"])


def test_an_engine_restarted_in_the_warm_up_does_not_inherit_the_earlier_sessions_state(across_hours, tmp_path):
    """The engine state before the window belongs to the session trading at the window's start:
    a `start` recorded inside the warm-up (before t0) replaces it; one after t0 does not."""
    import shutil

    from pmm_widgets.research.recordings import load_window
    from pmm_widgets.store.recording import Recorder

    root = tmp_path / "rec"
    shutil.copytree(across_hours, root)
    rec = Recorder(root, session="eng2")
    rec.engine(T0 + 30, "start", {"mode": "paper", "calibration": None, "strategies": {}})
    rec.close()
    after = load_window(root, T0 + 60, T0 + 120)  # the restart at 10:00:30 is in its warm-up
    assert [r[2] for r in after.preamble] == ["universe"]
    before = load_window(root, T0 + 10, T0 + 120)  # the restart comes after its start
    assert [r[2] for r in before.preamble] == ["universe", "start", "params"]
