"""Recorder (Parquet per hour and channel, writer thread, rotation, budget) and the reader's
problem reports: truncated / corrupt files, unknown schema, gaps in a session's sequence."""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from recording_frames import null_rows

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


def test_the_budget_deletes_only_what_a_recorder_wrote(tmp_path):
    """A folder of the user's under PMM_RECORD_DIR (`./data` holds more than recordings) used to be
    deleted as an "hour" by the budget; now only hour folders' `.parquet` files go."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("precious")
    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 3)
    rec.close()
    first = tmp_path / hour_key(H0)
    (first / "mine.csv").write_text("kept")  # not a recording: the hour keeps it
    rec.max_bytes = 1
    assert rec.enforce_budget() == [hour_key(H0), hour_key(H0 + 3600), hour_key(H0 + 7200)]
    assert (tmp_path / "notes" / "README.txt").read_text() == "precious"
    assert [f.name for f in first.iterdir()] == ["mine.csv"]
    assert not (tmp_path / hour_key(H0 + 3600)).exists()


def test_write_failures_are_one_line_a_minute_and_leave_no_open_file(tmp_path, caplog):
    """A vanished recording directory (or a full disk) failed every drain with a traceback each
    (hundreds of lines a minute) and left an empty `.open` file per attempt, which readers then
    called a crashed recorder. Now one line (then one a minute), no traceback, no file."""
    root = tmp_path / "rec"
    rec = Recorder(root, session="s1", rotate_sec=5)
    root.mkdir()
    (root / hour_key(H0)).write_text("")  # where the hour's folder must go
    assert rec.health() == ""
    with caplog.at_level(logging.DEBUG, logger="pmm_widgets.store.recording"):
        for i in range(5):
            rec.frame(H0 + i, 0, "{}")
            rec.flush()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None, [r.getMessage() for r in errors]
    assert "could not write 1 market rows" in errors[0].getMessage() and "PMM_RECORD_DIR=" in errors[0].getMessage()
    assert rec.stats.errors == 5
    # the engine's status line and the dashboard show it while it lasts (it said nothing there before)
    assert rec.health().startswith("recording FAILING (could not write 1 market rows for ") and \
        rec.health().endswith("FileExistsError; 5 errors)"), rec.health()
    (root / hour_key(H0)).unlink()

    def full(*a, **k):  # the disk full when the part's writer starts
        raise OSError(28, "No space left on device")

    import pmm_widgets.store.recording as recording

    real = recording.pq.ParquetWriter
    recording.pq.ParquetWriter = full
    try:
        rec.frame(H0 + 8, 0, "{}")
        rec.flush()
    finally:
        recording.pq.ParquetWriter = real
    assert not list(root.rglob("*.open"))  # the failed part's file removed, not left for readers to misread
    rec.frame(H0 + 9, 0, "{}")
    rec._last_failure = (time.monotonic() - recording.FAILURE_LOG_SEC - 1, "old")  # a minute without failures
    assert rec.health() == ""
    rec.close()
    assert not list(root.rglob("*.open"))
    assert [f.name for f in root.rglob("*.parquet")] == ["market-s1-0000.parquet"]  # its first part after all


def test_below_the_disks_floor_recording_pauses_with_a_gap_and_resumes(tmp_path, caplog, monkeypatch):
    """An unattended engine recorded until its disk was full (no budget by default), and the
    trading DB on that disk then failed. Below PMM_RECORD_MIN_FREE_GB free, the recorder now stops
    writing (said once, on the status line too), drops the rows as a gap the replay reports, and
    resumes when there is room; it deletes nothing for it."""
    import pmm_widgets.store.recording as recording

    free = {"bytes": 50 * 10**9}
    monkeypatch.setattr(recording, "free_bytes", lambda _p: free["bytes"])
    rec = Recorder(tmp_path, session="s1", min_free_gb=2, budget_every_sec=0)
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
        for i in range(3):
            rec.frame(H0 + i, 0, "{}")
        rec.flush()
        free["bytes"] = 1.5e9
        for i in range(3, 10):
            rec.frame(H0 + i, 0, "{}")
            rec.flush()
        assert rec.stats.dropped == 7 and rec.health() == \
            "recording PAUSED (disk below PMM_RECORD_MIN_FREE_GB=2; 7 rows dropped)"
        assert list(tmp_path.rglob("*.parquet"))  # what it had written was closed: readable
        free["bytes"] = 3e9
        for i in range(10, 12):
            rec.frame(H0 + i, 0, "{}")
            rec.flush()
    rec.close()
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "recording PAUSED" in m]) == 1 and "PMM_RECORD_MIN_FREE_GB=2" in said[0]
    assert any("recording resumes" in m and "7 rows were dropped" in m for m in said)
    assert rec.stats.hours_deleted == 0  # (after the close, the status says what the session lost)
    assert rec.health() == ("recording LOST 7 rows of session s1 (market 7): 7 dropped below PMM_RECORD_MIN_FREE_GB "
                            "(gaps in a replay of it)")
    w = load_window(tmp_path, H0, H0 + 60)
    assert len(w) == 3 + 2
    assert [(g.missing_rows, g.after_ts - H0, g.before_ts - H0) for g in w.gaps] == [(7, 2.0, 10.0)]


def test_an_hourly_file_opened_again_gets_a_part_number_instead_of_replacing_the_first(tmp_path):
    """With PMM_RECORD_ROTATE_SEC=0 (one file per hour and channel), a row for an hour whose file
    was already closed (a late row; a pause below the disk's floor) opened the same name again and
    replaced the file: its rows were lost without a word."""
    rec = Recorder(tmp_path, session="s1")
    rec.frame(H0 + 10, 0, "{}")
    rec.frame(H0 + 3600, 0, "{}")  # the next hour: the first hour's file is closed
    rec.flush()
    rec.frame(H0 + 20, 0, "{}")  # late, for the first hour
    rec.close()
    assert sorted(f.name for f in (tmp_path / hour_key(H0)).iterdir()) == ["market-s1-0001.parquet",
                                                                             "market-s1.parquet"]
    w = load_window(tmp_path, H0, H0 + 7200)
    assert len(w) == 3 and not w.problems and not w.gaps


def test_a_crash_after_the_window_is_no_problem_of_the_window(tmp_path):
    """A session killed minutes after a window's end left an unclosed part: a replay of the
    window reported it (and a gap in that session) among its problems; now only a window its lost
    rows may belong to does."""
    rec = Recorder(tmp_path, session="s1", rotate_sec=60)
    for i in range(0, 300, 5):
        rec.frame(H0 + i, 0, "{}")
    rec.close()
    parts = sorted((tmp_path / hour_key(H0)).glob("market-s1-*.parquet"))
    assert len(parts) >= 1
    (tmp_path / hour_key(H0) / "market-s1-0099.parquet.open").write_bytes(b"PAR1 cut short")  # killed at ~H0+300
    early = load_window(tmp_path, H0 + 10, H0 + 60)
    assert not early.problems and not early.gaps
    late = load_window(tmp_path, H0 + 200, H0 + 400)
    assert any("not closed" in p.message for p in late.problems) and late.gaps


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


def _rewrite(f, column, values, typ):
    t = pq.read_table(f)
    meta = t.schema.metadata
    i = t.schema.get_field_index(column)
    t = t.set_column(i, pa.field(column, typ), pa.array(values, typ)).replace_schema_metadata(meta)
    pq.write_table(t, f)


@pytest.mark.parametrize("column, change, said", [
    ("ts", lambda v: [str(x) for x in v], "column ts is string, not a float"),
    ("seq", lambda v: [str(x) for x in v], "column seq is string, not an integer"),
    ("kind", lambda v: [1] * len(v), "column kind is int64, not text"),
])
def test_a_column_of_another_type_is_a_problem_naming_the_file(tmp_path, column, change, said):
    """A file of the right schema name whose column holds another type used to end the replay in a
    TypeError ('<' not supported between 'str' and 'int'); now it is skipped like a corrupt file: a
    problem naming it and the column, the gap it leaves, and the listing says the same."""
    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 3)
    rec.close()
    typ = {"ts": pa.float64(), "seq": pa.int64(), "kind": pa.string()}[column]
    # the window's market file of the second hour, and an engine file of the hour before the window
    # (read for the state recorded before it: `state_before`)
    bad, before = tmp_path / hour_key(H0 + 3600) / "market-s1.parquet", tmp_path / hour_key(H0) / "engine-s1.parquet"
    for f in (bad, before):
        vals = change(pq.read_table(f).column(column).to_pylist())
        _rewrite(f, column, vals, pa.string() if isinstance(vals[-1], str) else pa.int64() if column == "kind" else typ)
    w = load_window(tmp_path, H0 + 3600 + 5, H0 + 3 * 3600)
    for f in (bad, before):
        mine = [p for p in w.problems if p.file == str(f)]
        assert len(mine) == 1 and said in mine[0].message and mine[0].message.endswith("skipped"), w.problems
    assert len(w) == 5 + 55  # the second hour's engine rows (its market rows skipped), the third hour's
    assert any(str(bad) in str(g) for g in w.gaps)
    row = next(r for r in list_recordings(tmp_path) if r["file"] == str(bad))
    assert not row["ok"] and said in row["problem"]


def test_rows_with_nulls_are_dropped_alone_and_leave_a_gap(tmp_path, monkeypatch):
    """Rows without a ts or a kind (or a seq, a conn: the recorder writes none) used to skip their
    whole file, an hour of a channel for one null. Only those rows are dropped now: one problem
    line names the file, the columns and how many rows; the rest of the file replays, eager or
    lazy alike; and each hole they leave in the session's sequence is a gap before the next row
    (the replay resets the books there: no delta applied across it)."""
    from pmm_widgets.research import recordings

    rec = Recorder(tmp_path, session="s1")
    _fill(rec, 3)
    rec.close()
    bad, before = tmp_path / hour_key(H0 + 3600) / "market-s1.parquet", tmp_path / hour_key(H0) / "engine-s1.parquet"
    lost = null_rows(bad, {"ts": [7], "kind": [31, 32]})
    null_rows(before, {"seq": [2]})  # (read for the state before the window: said once too)
    w = load_window(tmp_path, H0 + 3600 + 5, H0 + 3 * 3600)
    mine = [p for p in w.problems if p.file == str(bad)]
    assert len(mine) == 1 and "without a finite ts (1), a kind (2)" in mine[0].message, w.problems
    assert "3 of 50 rows dropped" in mine[0].message
    (pre,) = [p for p in w.problems if p.file == str(before)]
    assert "without a seq (1): 1 of 5 rows dropped" in pre.message
    assert len(w) == 2 * 55 - 3  # the rest of the file is read
    kept_ts = set(w.ts.tolist())
    assert not {ts for ts, _ in lost} & kept_ts
    for ts, _ in lost:  # a gap just before the row after each hole, naming the file
        nxt = int(np.searchsorted(w.ts, ts))
        g = w.gap_before[nxt]
        assert g.after_ts < ts < g.before_ts == w.ts[nxt] and str(bad) in str(g)
    assert sorted(g.missing_rows for g in w.gaps) == [1, 2]
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lazy = load_window(tmp_path, H0 + 3600 + 5, H0 + 3 * 3600)
    assert isinstance(lazy.payload, recordings.LazyPayloads)
    assert list(lazy.payload) == list(w.payload) and lazy.kind == w.kind and lazy.problems == w.problems
    assert lazy.sources == w.sources


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


def test_a_number_that_names_no_time_is_a_bad_time(tmp_path, monkeypatch, capsys):
    """`nan`, `inf` and 1e20 parse as floats: `pmm replay --from nan` ended in "pmm: ValueError:
    Invalid value NaN", `--from 1e20` in "OverflowError: timestamp out of range" (exit 1, no flag
    named); now a bad time like any other: the flag named, exit 2."""
    from pmm_widgets.cli import main

    for bad in ("nan", "inf", "-inf", "1e20", float("nan"), 1e300):
        with pytest.raises(RecordingError, match="bad time"):
            parse_time(bad)
    assert parse_time("1796036400") == parse_time(1796036400) == 1796036400.0
    monkeypatch.setenv("PMM_RECORD_DIR", str(tmp_path))
    for cmd in ("replay", "sweep"):
        assert main([cmd, "--from", "nan", "--to", "inf", "--db-url", f"sqlite:///{tmp_path / 'r.db'}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pmm: --from: bad time 'nan'") and err.count("\n") == 1, err


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


def test_a_recording_directory_it_cannot_use_is_one_line_before_the_engine_starts(tmp_path, capsys, monkeypatch):
    """It used to start, then crash ("engine crashed: FileExistsError: ...", exit 1); a headless
    run records unless PMM_RECORD=off (`python -m pmm_widgets.engine` too: it used not to)."""
    from pmm_widgets.cli import main
    from pmm_widgets.config import load_settings
    from pmm_widgets.domain import Mode
    from pmm_widgets.engine.runner import run_main

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    s = load_settings(record_dir=str(blocker / "rec"), db_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert s.record is None or s.record == "off"
    unset = s.model_copy(update={"record": None})  # as `python -m pmm_widgets.engine` gets it
    assert run_main(unset, Mode.PAPER, max_seconds=1) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"PMM_RECORD_DIR={blocker / 'rec'}: cannot record there"), err
    from pmm_widgets.store.recording import check_record_dir

    check_record_dir(s.model_copy(update={"record": "off"}))  # off: not checked, nothing made
    assert not (blocker.parent / "rec").exists()
    monkeypatch.setenv("PMM_RECORD_DIR", str(blocker))
    assert main(["recordings", "list"]) == 1
    assert capsys.readouterr().err.strip() == f"pmm recordings list: PMM_RECORD_DIR={blocker}: not a directory"


def test_sessions_that_overlap_in_time_are_refused_and_consecutive_ones_replay(tmp_path):
    """Two engines recording into one directory at once: the replay used to play one session after
    the other (the clock going back, universes and fills mixed). A restart (one session after the
    other) is what a directory of one engine holds: read as before."""
    for name, start in (("a", H0), ("b", H0 + 600)):
        rec = Recorder(tmp_path / "seq", session=name)
        for i in range(50):
            rec.frame(start + i * 10.0, 0, "{}")
        rec.close()
    assert len(load_window(tmp_path / "seq", H0, H0 + 3600)) == 100
    for name, start in (("a", H0), ("b", H0 + 250)):
        rec = Recorder(tmp_path / "both", session=name)
        for i in range(50):
            rec.frame(start + i * 10.0, 0, "{}")
        rec.close()
    with pytest.raises(RecordingError, match=r"recording sessions a \(2026-11-30T10:00:00.000Z .. "
                                             r"2026-11-30T10:08:10.000Z\) and b .* overlap in time"):
        load_window(tmp_path / "both", H0, H0 + 3600)
