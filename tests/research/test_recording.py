"""Recorder (Parquet per hour and channel, writer thread, rotation, budget) and the reader's
problem reports: truncated / corrupt files, unknown schema, gaps in a session's sequence."""

from __future__ import annotations

import logging
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pmm_widgets.research.recordings import RecordingError, list_recordings, load_window, parse_time
from pmm_widgets.store.recording import SCHEMA_VERSION, Recorder, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")


def _fill(rec: Recorder, hours: int, per_hour: int = 50) -> None:
    for h in range(hours):
        for i in range(per_hour):
            ts = H0 + h * 3600 + i * 10.0
            rec.frame(ts, 0, f'{{"event_type":"price_change","i":{i}}}')
            if i % 10 == 0:
                rec.engine(ts, "cycle")


def test_one_file_per_hour_and_channel_zstd_with_contiguous_sequence(tmp_path):
    rec = Recorder(tmp_path, session="s1", flush_sec=0.05).start()
    _fill(rec, 3)
    rec.rest(H0 + 5, [{"asset_id": "1", "bids": [], "asks": []}])
    rec.close()
    files = list_recordings(tmp_path)
    assert {(f["hour"], f["channel"]) for f in files} == {
        (hour_key(H0 + h * 3600), c) for h in range(3) for c in ("market", "engine")} | {(hour_key(H0), "rest")}
    assert all(f["ok"] for f in files)
    meta = pq.ParquetFile(files[0]["file"]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    w = load_window(tmp_path, H0, H0 + 3 * 3600)
    assert len(w) == 3 * 55 + 1 and not w.gaps and not w.problems
    assert list(w.ts[:-1]) == sorted(w.ts[:-1])
    assert w.kind[-1] == "books" and w.ts[-1] == H0 + 5  # recorded last: replayed last (loop order, not ts)
    assert rec.stats.rows == len(w) and rec.stats.errors == 0


def test_budget_deletes_oldest_hours_first_and_logs(tmp_path, caplog):
    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 4)
    rec.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert len(before) == 4
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
        rec.max_bytes = sum(f.stat().st_size for f in (tmp_path / before[-1]).glob("*")) + 1
        deleted = rec.enforce_budget()
    assert deleted == before[:3]  # oldest first, until the rest fits
    assert sorted(p.name for p in tmp_path.iterdir()) == before[3:]
    assert "deleted hour " + before[0] in caplog.text
    # while recording, the writer enforces the budget itself: a 1-byte budget keeps the open hour only
    auto = Recorder(tmp_path / "auto", session="s2", max_gb=1e-9)
    _fill(auto, 3)
    auto.close()
    assert sorted(p.name for p in (tmp_path / "auto").iterdir()) == [hour_key(H0 + 2 * 3600)]
    assert auto.stats.hours_deleted == 2


def test_writing_never_blocks_the_caller(tmp_path):
    rec = Recorder(tmp_path, session="s1", flush_sec=0.2).start()
    t = time.perf_counter()
    for i in range(20_000):
        rec.frame(H0 + i * 0.01, 1, '{"event_type":"book"}')
    per_call = (time.perf_counter() - t) / 20_000
    rec.close()
    assert per_call < 50e-6  # an append to a deque; the thread does the Parquet work
    assert load_window(tmp_path, H0, H0 + 300).ts.size == 20_000


def test_truncated_file_and_gap_are_named(tmp_path):
    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 3)
    rec.close()
    mid = tmp_path / hour_key(H0 + 3600) / "market-s1.parquet"
    mid.write_bytes(mid.read_bytes()[: mid.stat().st_size // 2])  # a crash mid-write
    w = load_window(tmp_path, H0, H0 + 3 * 3600)
    assert any(str(mid) in str(p) and "truncated or corrupt" in str(p) for p in w.problems)
    (gap,) = w.gaps
    assert gap.missing_rows == 50 and str(mid) in str(gap)
    assert gap.after_ts < H0 + 2 * 3600 <= gap.before_ts
    assert "books reset until their next snapshot" in str(gap)
    rows = {r["file"]: r for r in list_recordings(tmp_path)}
    assert not rows[str(mid)]["ok"]


def test_unknown_schema_is_reported_and_skipped(tmp_path):
    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 1)
    rec.close()
    d = tmp_path / hour_key(H0)
    other = pa.table({"seq": [1], "ts": [H0], "kind": ["frame"], "conn": pa.array([0], pa.int32()),
                      "payload": ["x"]}).replace_schema_metadata({b"pmm_schema": b"pmm-recording/99"})
    pq.write_table(other, d / "market-s2.parquet")
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 55
    (p,) = w.problems
    assert "market-s2.parquet" in p.file and "unknown schema 'pmm-recording/99'" in p.message
    assert SCHEMA_VERSION in p.message


def test_the_listing_and_the_replay_judge_file_names_alike(tmp_path):
    """A copy under a name no channel has: the replay skips it; the listing used to call it ok."""
    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 1)
    rec.close()
    d = tmp_path / hour_key(H0)
    (d / "bogus-s1-0000.parquet").write_bytes((d / "market-s1.parquet").read_bytes())
    listed = {r["file"].rsplit("/", 1)[1]: r for r in list_recordings(tmp_path)}
    assert listed["market-s1.parquet"]["ok"] and not listed["bogus-s1-0000.parquet"]["ok"]
    (p,) = load_window(tmp_path, H0, H0 + 3600).problems
    assert p.file.endswith("bogus-s1-0000.parquet") and p.message == listed["bogus-s1-0000.parquet"]["problem"]


def test_empty_or_bad_window_is_a_clear_error(tmp_path):
    with pytest.raises(RecordingError, match="no readable recordings"):
        load_window(tmp_path, H0, H0 + 60)
    with pytest.raises(RecordingError, match="must be after"):
        load_window(tmp_path, H0, H0)
    with pytest.raises(RecordingError, match="ISO 8601"):
        parse_time("yesterday")
    assert parse_time("2026-11-30T10:00:00Z") == parse_time("2026-11-30T11:00:00+01:00") == H0


def test_a_row_whose_time_is_no_timestamp_costs_only_that_row(tmp_path, caplog):
    """A row with a time `hour_key` cannot file used to raise out of the writer thread's drain:
    every row of that batch was lost and the thread died (later rows queued in memory forever).
    Now that row is dropped, logged and counted; the rest is written (its sequence gap named)."""
    rec = Recorder(tmp_path, session="s1", flush_sec=0.05).start()
    rec.frame(H0, 0, '{"event_type":"price_change","i":0}')
    rec.engine(float("nan"), "stop")
    rec.frame(H0 + 1, 0, '{"event_type":"price_change","i":1}')
    time.sleep(0.3)
    rec.frame(H0 + 2, 0, '{"event_type":"price_change","i":2}')  # the thread still writes
    with caplog.at_level(logging.ERROR):
        rec.close()
    assert rec.stats.errors == 1 and "time nan is no timestamp" in caplog.text
    w = load_window(tmp_path, H0, H0 + 60)
    assert len(w) == 3
