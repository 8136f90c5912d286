"""What a mutation pass over the recordings reader (`research/recordings.py`) found untested. The
files here are written directly (no recorder thread): a few rows each, so every case is cheap."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from recording_frames import H0, LOOSE, frames, write

from pmm_widgets.research import recordings
from pmm_widgets.research.recordings import (
    _NAME_PROBLEM,
    _OPEN_NAME_PROBLEM,
    Gap,
    RecordingError,
    _describe,
    _lost_at_edges,
    _needed,
    _open,
    list_recordings,
    load_window,
)
from pmm_widgets.store.recording import OPEN_SUFFIX, hour_key


def test_a_file_without_a_column_is_a_problem_naming_the_missing_columns(tmp_path):
    write(tmp_path, "market-a.parquet", frames(5))
    short = pa.schema([f for f in LOOSE if f.name not in ("conn", "kind")], metadata=LOOSE.metadata)
    bad = write(tmp_path, "market-b.parquet", [], schema=short)
    w = load_window(tmp_path, H0, H0 + 3600)
    (p,) = w.problems
    assert p.file == str(bad) and p.message == "columns missing: kind, conn: skipped"
    assert len(w) == 5
    row = next(r for r in list_recordings(tmp_path) if r["file"] == str(bad))
    assert not row["ok"] and row["problem"] == "columns missing: kind, conn"


def test_rows_whose_time_is_nan_or_inf_are_dropped_and_leave_a_gap(tmp_path):
    """No null in the file: only a NaN and an inf `ts` (not finite: no time to order them by)."""
    rows = frames(8)
    rows[3] = (4, float("nan"), "frame", 0, "x")
    rows[5] = (6, float("inf"), "frame", 0, "y")
    f = write(tmp_path, "market-a.parquet", rows)
    w = load_window(tmp_path, H0, H0 + 3600)
    (p,) = w.problems
    assert p.file == str(f)
    assert p.message == "rows without a finite ts (2): 2 of 8 rows dropped, the rest read (a gap where they were)"
    assert w.payload[:] == ['{"i":1}', '{"i":2}', '{"i":3}', '{"i":5}', '{"i":7}', '{"i":8}']
    assert sorted((i, g.missing_rows) for i, g in w.gap_before.items()) == [(3, 1), (4, 1)]
    assert np.all(np.isfinite(w.ts))


def edges(seqs: list[int], kept: list[int], n: int, present: list[int]) -> tuple[int, int]:
    return _lost_at_edges(np.array(seqs, np.int64), np.array(kept, np.int64), n, np.array(sorted(present), np.int64))


def test_rows_dropped_at_a_files_start_before_the_sessions_first_row_read_are_counted_before_it():
    """Two rows dropped before the file's first kept row (seq 10), which is the session's first read."""
    assert edges([10, 11, 12, 13], [2, 3, 4, 5], 6, [10, 11, 12, 13, 14]) == (2, 0)


def test_rows_dropped_at_a_files_start_fill_the_sessions_holes_before_its_next_row_first():
    """The session's rows read before the file's first kept row (seq 10) leave holes: the dropped rows
    are taken to be those holes as far as there are enough of them, the rest lie before the session."""
    mine = [10, 11, 12, 13]
    assert edges(mine, [2, 3, 4, 5], 6, [3, 4, 8, *mine]) == (0, 0)  # 4 holes (5, 6, 7, 9) for 2 rows
    assert edges(mine, [2, 3, 4, 5], 6, [7, 8, *mine]) == (1, 0)  # 1 hole (9) for 2 rows: one before seq 7
    assert edges(mine, [3, 4, 5, 6], 7, [8, *mine]) == (2, 0)  # 1 hole (9) for 3 rows


def test_rows_dropped_at_a_files_end_after_the_sessions_last_row_read_are_counted_after_it():
    mine = [10, 11, 12, 13]
    assert edges(mine, [0, 1, 2, 3], 7, mine) == (0, 3)
    assert edges(mine, [0, 1, 2, 3], 7, [*mine, 15]) == (0, 2)  # one of them is the hole 14
    assert edges(mine, [0, 1, 2, 3], 7, [*mine, 15, 18]) == (0, 0)  # 14, 16, 17: holes enough for the three


def test_rows_dropped_at_both_ends_of_a_file_count_on_each_side_and_a_run_between_kept_rows_is_no_edge():
    assert edges([10, 11], [1, 2], 5, [10, 11]) == (1, 2)
    assert edges([10, 13], [0, 3], 4, [10, 13]) == (0, 0)  # rows 1, 2: the hole 11, 12 between kept rows
    assert edges([10, 13], [0, 5], 6, [10, 13]) == (0, 0)


def test_a_file_every_row_of_which_is_dropped_is_lost_on_both_sides_unless_the_sessions_holes_hold_them():
    assert edges([], [], 3, [5, 6, 9]) == (-1, -1)  # 2 holes (7, 8) for 3 rows
    assert edges([], [], 3, [5, 9]) == (0, 0)  # 3 holes for 3 rows


def test_only_the_holes_between_the_sessions_edge_and_the_files_nearest_kept_row_hold_dropped_rows():
    """The holes looked at are those between the session's first row read and the file's first kept
    row (at the start), or its last kept row and the session's last row (at the end): a hole between
    two kept rows of the file (11, 12) is no place for them."""
    assert edges([12, 13], [2, 3], 4, [10, 11, 12, 13]) == (2, 0)  # no hole before seq 12
    assert edges([10, 13], [2, 3], 4, [10, 13]) == (2, 0)
    assert edges([10, 13], [0, 1], 4, [10, 13]) == (0, 2)


def test_a_gap_says_how_many_rows_and_which_files_only_when_it_knows():
    g = Gap("s1", H0, H0 + 2, 0, ())
    assert str(g) == ("gap in session s1: 0 rows missing between 2026-11-30T10:00:00.000Z and "
                      "2026-11-30T10:00:02.000Z: books reset until their next snapshot")
    u = Gap("s1", H0, H0 + 2, -1, ("a.parquet", "b.parquet"))
    assert str(u) == ("gap in session s1: an unknown number of rows missing between 2026-11-30T10:00:00.000Z and "
                      "2026-11-30T10:00:02.000Z (unreadable rows in: a.parquet, b.parquet): books reset until their "
                      "next snapshot")


def test_an_open_part_nobody_holds_is_read_when_its_footer_was_written_else_lost_after_the_sessions_last_row(
        tmp_path):
    write(tmp_path, "market-a.parquet", frames(3))
    done = write(tmp_path, "market-a-0001.parquet", frames(3, H0 + 20, seq0=4))
    done.rename(str(done) + OPEN_SUFFIX)  # complete, its rename never done: read anyway
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 6 and not w.gaps
    assert [str(p) for p in w.problems] == [f"{done}{OPEN_SUFFIX}: not renamed after its footer was written (its "
                                            "recorder died while closing it): read anyway"]
    lost = write(tmp_path, "market-a-0002.parquet", frames(3, H0 + 30, seq0=7))
    Path(str(lost) + OPEN_SUFFIX).write_bytes(lost.read_bytes()[:40])  # its footer never written
    lost.unlink()
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 6 and not w.gap_before
    (g,) = w.tail_gaps
    assert g.missing_rows == -1 and g.after_ts == H0 + 22 and g.files == (f"{lost}{OPEN_SUFFIX}",)
    assert f"{lost}{OPEN_SUFFIX}: not closed: its recorder stopped without closing it" in "\n".join(map(str, w.problems))


def dead_part(root: Path, name: str) -> Path:
    """An `.open` part its writer died in before writing its footer (nobody holds its lock)."""
    f = root / hour_key(H0) / (name + OPEN_SUFFIX)
    f.write_bytes(b"PAR1 cut short")
    return f


def lost_parts(root: Path, t1: float) -> list[str]:
    w = load_window(root, H0, t1)
    return [p.file for p in w.problems if "not closed" in p.message]


def test_a_dead_part_is_after_the_window_only_when_an_earlier_part_of_its_session_and_channel_ends_after_it(tmp_path):
    """Rows past the window's end in another session's file, in another channel's, or in no earlier
    part (its footer without statistics: how far it went is unknown) say nothing of the dead part:
    it is the window's loss."""
    write(tmp_path, "market-a-0001.parquet", frames(3))  # ends at H0 + 12: before t1
    write(tmp_path, "market-b-0000.parquet", frames(2, H0 + 500, seq0=1))  # another session past t1
    write(tmp_path, "engine-a-0001.parquet", frames(2, H0 + 500, seq0=4, kind="cycle"))  # another channel
    dead = dead_part(tmp_path, "market-a-0002.parquet")
    assert lost_parts(tmp_path, H0 + 100) == [str(dead)]


def test_an_earlier_part_ending_after_the_window_in_any_of_its_row_groups_puts_a_dead_part_after_it(tmp_path):
    rows = frames(2, H0 + 500) + frames(2, H0 + 10, seq0=3)  # its first row group past t1, its last before
    write(tmp_path, "market-a-0001.parquet", rows, group=2)
    dead_part(tmp_path, "market-a-0002.parquet")
    assert lost_parts(tmp_path, H0 + 100) == []


def test_an_earlier_part_without_time_statistics_says_nothing_of_a_dead_part(tmp_path):
    d = tmp_path / hour_key(H0)
    d.mkdir()
    t = pa.table([pa.array(list(c), f.type) for c, f in zip(zip(*frames(3, H0 + 500)), LOOSE)], schema=LOOSE)
    pq.write_table(t, d / "market-a-0001.parquet", write_statistics=False)
    write(tmp_path, "market-a-0000.parquet", frames(3, H0 + 10, seq0=4))  # (rows in the window)
    dead = dead_part(tmp_path, "market-a-0002.parquet")
    assert lost_parts(tmp_path, H0 + 100) == [str(dead)]


def test_an_hourly_file_is_the_part_before_the_numbered_ones(tmp_path):
    """Without rotation the hour's first file has no number (`market-a.parquet`) and a reopened hour's
    parts are numbered from 1: the unnumbered file is the earlier part."""
    write(tmp_path, "market-a.parquet", frames(3, H0 + 50) + frames(2, H0 + 500, seq0=4))
    dead_part(tmp_path, "market-a-0001.parquet")
    assert lost_parts(tmp_path, H0 + 100) == []


def test_an_earlier_part_ending_at_the_windows_end_leaves_a_dead_parts_rows_in_the_window(tmp_path):
    """Its rows may be stamped at t1 too: the window's loss."""
    write(tmp_path, "market-a-0001.parquet", frames(3, H0 + 98))  # its last row at H0 + 100 = t1
    dead = dead_part(tmp_path, "market-a-0002.parquet")
    assert lost_parts(tmp_path, H0 + 100) == [str(dead)]


def test_what_cannot_be_read_is_said_as_truncated_or_corrupt_or_as_unreadable_in_one_line():
    assert _describe(ValueError("Parquet magic bytes not found\nmore")) == (
        "truncated or corrupt Parquet file (Parquet magic bytes not found)")
    assert _describe(OSError("Couldn't read the Footer")) == "truncated or corrupt Parquet file (Couldn't read the Footer)"
    assert _describe(ValueError("Parquet file Size is 0 bytes")) == (
        "truncated or corrupt Parquet file (Parquet file Size is 0 bytes)")
    assert _describe(OSError("Cannot open for reading: a directory")) == (
        "unreadable (OSError: Cannot open for reading: a directory)")


def test_files_that_are_no_parquet_are_each_a_problem_naming_the_file_and_the_rest_is_read(tmp_path):
    write(tmp_path, "market-a.parquet", frames(3))
    d = tmp_path / hour_key(H0)
    (d / "engine-a.parquet").write_bytes(b"garbage" * 10)
    (d / "rest-a.parquet").write_bytes(b"")
    (d / "universe-a.parquet").mkdir()
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert len(w) == 3
    said = {Path(p.file).name: p.message for p in w.problems}
    assert said["engine-a.parquet"].startswith("truncated or corrupt Parquet file (Parquet magic bytes not found")
    assert said["rest-a.parquet"] == "truncated or corrupt Parquet file (Parquet file size is 0 bytes)"
    assert said["universe-a.parquet"].startswith("unreadable (")


def test_the_row_groups_needed_are_those_holding_a_row_of_the_span_bounds_included(tmp_path):
    f = write(tmp_path, "market-a.parquet", [(i + 1, H0 + i, "frame", 0, "x") for i in range(6)], group=2)
    pf = pq.ParquetFile(f)
    ts = H0 + np.arange(6.0)
    assert _needed(pf, ts, H0 + 2, H0 + 3) == [False, True, False]
    assert _needed(pf, ts, H0 + 1, H0 + 1) == [True, False, False]
    assert _needed(pf, ts, H0 + 4.5, H0 + 9) == [False, False, True]
    assert _needed(pf, ts, H0 + 9, H0 + 10) == [False, False, False]
    rows = np.array([0, 1, 3, 4, 5])  # row 2 dropped: the 4th ts is the file's row 4
    assert _needed(pf, np.delete(ts, 2), H0 + 4, H0 + 4) == [False, True, False]
    assert _needed(pf, np.delete(ts, 2), H0 + 4, H0 + 4, rows) == [False, False, True]


def test_a_gap_after_a_sessions_last_row_read_ends_where_its_lost_rows_may_end(tmp_path):
    """No row after it: it ends at a dead part's last write (its mtime), or a closed file's hour's end."""
    write(tmp_path, "market-a.parquet", frames(3))
    dead = dead_part(tmp_path, "market-a-0001.parquet")
    os.utime(dead, (H0 + 1234, H0 + 1234))
    (g,) = load_window(tmp_path, H0, H0 + 3600).tail_gaps
    assert (g.after_ts, g.before_ts) == (H0 + 12, H0 + 1234)
    dead.unlink()
    rows = frames(5)
    rows[-1] = (5, None, "frame", 0, "x")
    write(tmp_path, "market-a.parquet", rows)
    (g,) = load_window(tmp_path, H0, H0 + 3600).tail_gaps
    assert (g.after_ts, g.before_ts, g.missing_rows) == (H0 + 13, H0 + 3600, 1)


def test_a_file_read_for_the_warm_up_and_for_the_state_before_it_is_said_once(tmp_path):
    """No checkpoint in t0's hour before t0: the warm-up starts at the hour before's last one, and
    that hour's engine file is read for the window and for the state recorded before it."""
    write(tmp_path, "rest-a.parquet", [(1, H0 - 600, "checkpoint", 0, "[]")], hour=H0 - 3600)
    f = write(tmp_path, "engine-a.parquet", [(2, H0 - 500, "start", 0, "{}"), (3, None, "cycle", 0, ""),
                                             (4, H0 - 400, "cycle", 0, "")], hour=H0 - 3600)
    write(tmp_path, "market-a.parquet", frames(3, seq0=5))
    w = load_window(tmp_path, H0 + 5, H0 + 60)
    assert w.ts[0] == H0 - 600 and [p.file for p in w.problems] == [str(f)]


def test_a_files_rows_are_first_read_without_their_payloads(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(4))
    got = _open(f, [], H0, H0 + 3600)
    assert got is not None and got[1].column_names == ["seq", "ts", "kind", "conn"] and got[2] == [True]


def test_a_window_inside_a_file_holds_its_rows_of_the_span_only_with_their_own_payloads(tmp_path):
    write(tmp_path, "market-a.parquet", frames(10))
    w = load_window(tmp_path, H0 + 13, H0 + 15, warmup=False)
    assert w.ts.tolist() == [H0 + 13, H0 + 14, H0 + 15]
    assert w.payload[:] == ['{"i":4}', '{"i":5}', '{"i":6}']
    (u,) = w.sources
    assert (u.rows, u.first_seq, u.last_seq, u.payload_bytes) == (3, 4, 6, 21)


def test_a_file_whose_row_groups_cannot_be_planned_is_a_problem_and_a_gap(tmp_path, monkeypatch):
    write(tmp_path, "market-a.parquet", frames(3))
    bad = write(tmp_path, "market-a-0001.parquet", frames(3, H0 + 20, seq0=4))
    write(tmp_path, "market-a-0002.parquet", frames(3, H0 + 30, seq0=7))
    real = recordings._needed

    calls = []

    def flaky(pf, ts, lo, hi, rows=None):
        calls.append(1)
        if len(calls) == 1:  # the first file read (by name): the part between the two others
            raise ValueError("row group footer unreadable")
        return real(pf, ts, lo, hi, rows)

    monkeypatch.setattr(recordings, "_needed", flaky)
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert [str(p) for p in w.problems] == [f"{bad}: truncated or corrupt Parquet file (row group footer unreadable)"]
    assert len(w) == 6 and [g.missing_rows for g in w.gap_before.values()] == [3]


def test_a_lazy_windows_read_keeps_no_payload(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(4))
    pack = recordings._Packer(0)
    eager, lazy = recordings._read(f, [], pack=pack), recordings._read(f, [], pack=None)
    assert eager is not None and lazy is not None and eager[4] == lazy[4]
    assert list(pack.payloads(range(4))) == [f'{{"i":{i}}}' for i in range(1, 5)]


def test_a_row_group_whose_payloads_are_fewer_than_its_rows_is_a_problem_not_a_shifted_window(tmp_path, monkeypatch):
    write(tmp_path, "market-a.parquet", frames(3))
    bad = write(tmp_path, "market-a-0001.parquet", frames(4, H0 + 20, seq0=4))
    real = pq.ParquetFile.iter_batches

    def short(self, *a, **k):
        for b in real(self, *a, **k):
            yield b.slice(0, len(b) - 1) if len(b) == 4 else b

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", short)
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert [str(p) for p in w.problems] == [f"{bad}: unreadable (ValueError: row group 0: 3 payloads read of 4 rows)"]
    assert w.payload[:] == ['{"i":1}', '{"i":2}', '{"i":3}']  # (no row after it: no hole between rows read)


def test_the_payload_digest_is_that_of_the_kept_rows_whatever_the_rows_around_them(tmp_path):
    """Two files holding the same rows of the span, one with other rows outside it: the same digest;
    a kept payload of other bytes (same length): another."""
    a = write(tmp_path, "market-a.parquet", frames(6))
    b = write(tmp_path / "b", "market-a.parquet", frames(3) + [(i, H0 + 20 + i, "frame", 0, "other") for i in range(4, 9)])
    c = write(tmp_path / "c", "market-a.parquet", [(1, H0 + 10, "frame", 0, '{"i":9}')] + frames(6)[1:])

    def digest(f: Path) -> str:
        got = recordings._read(f, [], H0 + 10, H0 + 12)
        assert got is not None
        return got[4]

    assert digest(a) == digest(b) != digest(c)


def test_a_lazy_window_whose_file_is_corrupted_after_the_read_fails_naming_it(tmp_path, monkeypatch):
    """The window's read verified the page checksums; its lazy re-read verifies them again."""
    rows = [(i + 1, H0 + i, "frame", 0, f'{{"price":"0.{i:03d}"}}') for i in range(200)]
    f = write(tmp_path, "market-a.parquet", rows)
    pq.write_table(pq.read_table(f), f, write_page_checksum=True, compression="zstd")
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert isinstance(w.payload, recordings.LazyPayloads) and not w.problems
    md = pq.read_metadata(f)
    col = md.row_group(0).column(4)
    data = bytearray(f.read_bytes())
    data[(col.dictionary_page_offset or col.data_page_offset) + col.total_compressed_size - 8] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=f"{f}: unreadable during the replay"):
        w.payload[0]
    w.payload.close()


def test_sessions_whose_market_data_overlap_are_refused_naming_both_and_other_channels_never_count(tmp_path):
    write(tmp_path, "market-a.parquet", frames(10))  # H0 + 10 .. 19
    write(tmp_path, "engine-b.parquet", frames(3, H0 + 5, kind="start"))  # b's engine rows inside a's: no matter
    write(tmp_path, "market-b.parquet", frames(3, H0 + 19, seq0=4))  # from a's last frame's time on
    write(tmp_path, "market-c.parquet", frames(3, H0 + 30))
    write(tmp_path, "engine-d.parquet", frames(2, H0 + 12, kind="cycle"))  # engine rows alone: not checked
    assert len(load_window(tmp_path, H0, H0 + 3600, warmup=False)) == 21
    write(tmp_path, "market-c.parquet", frames(3, H0 + 20.5))  # c's first frame before b's last
    with pytest.raises(RecordingError) as e:
        load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert str(e.value).startswith("recording sessions b (2026-11-30T10:00:19.000Z .. 2026-11-30T10:00:21.000Z) and c "
                                   "(2026-11-30T10:00:20.500Z .. 2026-11-30T10:00:22.500Z) overlap in time")


def test_each_file_that_gave_rows_is_a_source_with_its_own_rows_times_seqs_and_bytes(tmp_path):
    a = write(tmp_path, "market-a.parquet", frames(4))  # H0 + 10 .. 13, seqs 1 .. 4
    b = write(tmp_path, "market-a-0001.parquet", [(5, H0 + 20, "frame", 0, "xy"), (6, H0 + 21, "frame", 0, None),
                                                  (7, H0 + 22, "frame", 0, "abcd")])
    write(tmp_path, "engine-a.parquet", frames(2, H0 + 30, seq0=8, kind="cycle"))  # after the window
    w = load_window(tmp_path, H0 + 11, H0 + 25, warmup=False)
    got = [(Path(u.file).name, u.rows, u.first_ts, u.last_ts, u.first_seq, u.last_seq, u.payload_bytes)
           for u in w.sources]
    assert got == [(b.name, 3, H0 + 20, H0 + 22, 5, 7, 6), (a.name, 3, H0 + 11, H0 + 13, 2, 4, 21)]


def two_hours(root: Path) -> None:
    """The hour before H0 (a universe at H0 - 900, a checkpoint at H0 - 600) and H0's (a checkpoint at
    H0 + 100), market rows in both."""
    write(root, "universe-a.parquet", [(0, H0 - 900, "universe", 0, "[]")], hour=H0 - 3600)
    write(root, "rest-a.parquet", [(1, H0 - 600, "checkpoint", 0, "[]")], hour=H0 - 3600)
    write(root, "market-a.parquet", frames(3, H0 - 500, seq0=2), hour=H0 - 3600)
    write(root, "rest-a.parquet", [(8, H0 + 100, "checkpoint", 0, "[]")])
    write(root, "market-a.parquet", frames(3, H0 + 50, seq0=5) + frames(3, H0 + 700, seq0=9))


def test_the_warm_up_starts_at_the_hours_start_when_the_hour_holds_a_checkpoint_before_t0(tmp_path):
    two_hours(tmp_path)
    w = load_window(str(tmp_path), "2026-11-30T10:10:00Z", "2026-11-30T10:20:00Z")  # text too, as the CLI's
    assert (w.t0, w.t1) == (H0 + 600, H0 + 1200)
    assert w.ts[0] == H0 + 50 and len(w) == 7  # H0's rows from its start (not from its checkpoint), none before
    early = load_window(tmp_path, H0 + 60, H0 + 1200)  # no checkpoint in H0's hour before t0: the hour before's last
    assert early.ts[0] == H0 - 600 and len(early) == 11


def test_a_window_without_warm_up_reads_no_hour_before_its_own(tmp_path):
    two_hours(tmp_path)
    w = load_window(tmp_path, H0, H0 + 1200, warmup=False)  # (with a warm-up: from the hour before's checkpoint)
    assert w.ts[0] == H0 + 50 and len(w) == 7 and not w.preamble
    assert sorted(Path(f).parent.name for f in w.files) == [hour_key(H0)] * 2


def test_rows_stamped_at_the_windows_end_in_the_next_hours_folder_are_in_the_window(tmp_path):
    write(tmp_path, "market-a.parquet", frames(2, H0 + 3000))
    write(tmp_path, "market-a.parquet", [(3, H0 + 3600, "frame", 0, "x"), (4, H0 + 3601, "frame", 0, "y")],
          hour=H0 + 3600)
    w = load_window(tmp_path, H0 + 3000, H0 + 3600)
    assert w.ts.tolist() == [H0 + 3000, H0 + 3001, H0 + 3600]


def test_files_whose_names_are_no_recordings_are_skipped_and_said_closed_or_dead_open_ones(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(3))
    d = f.parent
    for name in ("bogus-a.parquet", "notes.parquet"):
        (d / name).write_bytes(f.read_bytes())
    (d / ("bogus-a-0001.parquet" + OPEN_SUFFIX)).write_bytes(b"PAR1 cut short")
    (d / ("notes.parquet" + OPEN_SUFFIX)).write_bytes(b"PAR1 cut short")
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 3 and not w.gaps and w.files == [str(f)]
    assert sorted((Path(p.file).name, p.message) for p in w.problems) == [
        ("bogus-a-0001.parquet" + OPEN_SUFFIX, _OPEN_NAME_PROBLEM), ("bogus-a.parquet", _NAME_PROBLEM),
        ("notes.parquet", _NAME_PROBLEM), ("notes.parquet" + OPEN_SUFFIX, _OPEN_NAME_PROBLEM)]


def test_a_window_with_nothing_readable_says_so_with_its_problems_if_any(tmp_path):
    (tmp_path / hour_key(H0)).mkdir()
    with pytest.raises(RecordingError) as e:
        load_window(tmp_path, H0, H0 + 60)
    assert str(e.value) == f"no readable recordings for 2026-11-30T10:00:00.000Z .. 2026-11-30T10:01:00.000Z under {tmp_path}"
    (tmp_path / hour_key(H0) / "market-a.parquet").write_bytes(b"")
    with pytest.raises(RecordingError) as e:
        load_window(tmp_path, H0, H0 + 60)
    assert str(e.value).endswith(f"under {tmp_path} ({tmp_path / hour_key(H0) / 'market-a.parquet'}: truncated or "
                                 "corrupt Parquet file (Parquet file size is 0 bytes))")


def test_a_sessions_only_file_every_row_of_which_is_dropped_costs_only_that_file(tmp_path):
    write(tmp_path, "market-a.parquet", frames(3))
    f = write(tmp_path, "market-b.parquet", [(1, None, "frame", 0, "x"), (2, float("nan"), "frame", 0, "y")])
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 3 and set(w.session) == {"a"}
    assert [str(p) for p in w.problems] == [f"{f}: rows without a finite ts (2): 2 of 2 rows dropped, the rest read "
                                            "(a gap where they were)"]


def test_holes_separated_only_by_other_channels_rows_are_one_gap_of_their_session(tmp_path):
    m = [(1, H0 + 10, "frame", 0, "m1"), (2, H0 + 11, "frame", 0, "m2"), (7, H0 + 13, "frame", 0, "m7"),
         (9, H0 + 14, "frame", 0, "m9")]
    write(tmp_path, "market-a.parquet", m)
    write(tmp_path, "engine-a.parquet", [(4, H0 + 12, "cycle", 0, "e4"), (11, H0 + 15, "cycle", 0, "e11")])
    write(tmp_path, "engine-b.parquet", [(1, H0 + 16, "cycle", 0, "b1")])
    write(tmp_path, "market-b.parquet", [(3, H0 + 17, "frame", 0, "b3")])
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == ["m1", "m2", "e4", "m7", "m9", "e11", "b1", "b3"]
    got = {i: (g.session, g.after_ts, g.before_ts, g.missing_rows) for i, g in w.gap_before.items()}
    assert got == {2: ("a", H0 + 11, H0 + 13, 3),  # holes 3 and 5-6 around the engine row: one gap
                   4: ("a", H0 + 13, H0 + 14, 1),  # a market row between: another
                   5: ("a", H0 + 14, H0 + 15, 1),
                   7: ("b", H0 + 16, H0 + 17, 1)}  # (no market row since a's last gap: b's own all the same)


def test_two_copies_of_a_sessions_rows_are_said_and_both_kept(tmp_path):
    write(tmp_path, "market-a.parquet", frames(3))
    write(tmp_path, "market-a-0001.parquet", frames(2))  # seqs 1, 2 again
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 5 and not w.gaps
    assert [str(p) for p in w.problems] == [f"{tmp_path}: 2 duplicate sequence numbers (two copies of a file?): kept both"]


def test_a_session_started_inside_the_warm_up_takes_no_engine_state_of_an_earlier_one(tmp_path):
    """The preamble (`state_before`) holds the universe and the last engine start before the window's
    first row; an engine `start` inside the warm-up (before t0) is the session trading at t0: the
    earlier session's engine state is dropped from the preamble, its universe kept."""
    write(tmp_path, "universe-old.parquet", [(1, H0 - 900, "universe", 0, "[]")], hour=H0 - 3600)
    write(tmp_path, "engine-old.parquet", [(2, H0 - 800, "start", 0, "{}"), (3, H0 - 700, "params", 0, "{}")],
          hour=H0 - 3600)
    write(tmp_path, "rest-new.parquet", [(1, H0 + 5, "checkpoint", 0, "[]")])
    write(tmp_path, "engine-new.parquet", [(2, H0 + 10, "start", 0, "{}")])
    write(tmp_path, "market-new.parquet", frames(3, H0 + 20, seq0=3))
    kinds = [(r[2], r[1]) for r in load_window(tmp_path, H0 + 60, H0 + 120).preamble]
    assert kinds == [("universe", 2)]
    kinds = [(r[2], r[1]) for r in load_window(tmp_path, H0 + 15, H0 + 120).preamble]  # t0 after it too
    assert kinds == [("universe", 2)]
    w = load_window(tmp_path, H0 + 8, H0 + 120)  # the start after t0
    assert [(r[2], r[1]) for r in w.preamble] == [("universe", 2), ("start", 3), ("params", 3)]
    assert {"universe-old.parquet", "engine-old.parquet"} <= {Path(f).name for f in w.files}  # (the run id's)
    kinds = [(r[2], r[1]) for r in load_window(tmp_path, H0 + 10, H0 + 120).preamble]  # at t0: not before it
    assert kinds == [("universe", 2), ("start", 3), ("params", 3)]


def test_the_preamble_is_the_state_recorded_before_the_windows_first_row(tmp_path):
    write(tmp_path, "universe-a.parquet", [(1, H0 - 900, "universe", 0, "old")], hour=H0 - 3600)
    write(tmp_path, "universe-a.parquet", [(2, H0 + 50, "universe", 0, "new")])
    write(tmp_path, "market-a.parquet", frames(3, H0 + 60, seq0=3))
    w = load_window(tmp_path, H0 + 70, H0 + 120)
    assert w.payload[0] == "new" and [r[3] for r in w.preamble] == ["old"]
    empty = load_window(tmp_path, H0 + 1, H0 + 5)  # no row in it: the state before its warm-up's start
    assert len(empty) == 0 and [r[3] for r in empty.preamble] == ["old"]


def test_rows_dropped_at_session_edges_are_gaps_at_the_edge_naming_their_file(tmp_path):
    a_rows = frames(4)  # H0 + 10 .. 13
    a_rows[-1] = (4, None, "frame", 0, "x")  # a's last row: dropped
    fa = write(tmp_path, "market-a.parquet", a_rows)
    b_rows = frames(4, H0 + 20)  # H0 + 20 .. 23
    b_rows[0] = (None, H0 + 20, "frame", 0, "x")  # b's first row: dropped
    fb = write(tmp_path, "market-b.parquet", b_rows)
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.ts.tolist() == [H0 + 10, H0 + 11, H0 + 12, H0 + 21, H0 + 22, H0 + 23]
    gaps = sorted((g.session, g.after_ts, g.before_ts, g.missing_rows, g.files) for g in w.gaps)
    assert gaps == [("a", H0 + 12, H0 + 21, 1, (str(fa),)), ("b", H0 + 12, H0 + 21, 1, (str(fb),))]
    assert list(w.gap_before) == [3] and len(w.tail_gaps) == 1  # both before b's first row: the books reset once
    assert sorted(p.file for p in w.problems if p.message.startswith("gap in session")) == [str(fa), str(fb)]


def test_rows_dropped_before_the_first_row_of_the_window_start_their_gap_at_their_hour(tmp_path):
    rows = frames(4, H0 + 20)
    rows[0] = (1, float("nan"), "frame", 0, "x")
    write(tmp_path, "market-a.parquet", rows)
    w = load_window(tmp_path, H0, H0 + 3600)
    (g,) = w.gaps
    assert w.gap_before == {0: g} and (g.after_ts, g.before_ts, g.missing_rows) == (H0, H0 + 21, 1)


def test_rows_lost_at_a_sessions_end_from_several_files_add_up_unless_one_count_is_unknown(tmp_path):
    m = [*frames(3), (5, None, "frame", 0, "x")]  # seqs 5 and 6, after the session's last row read (4): dropped
    e = [(4, H0 + 13, "cycle", 0, "c"), (6, float("inf"), "cycle", 0, "x")]
    write(tmp_path, "market-a.parquet", m)
    write(tmp_path, "engine-a.parquet", e)
    (g,) = load_window(tmp_path, H0, H0 + 3600).gaps
    assert g.missing_rows == 2 and g.after_ts == H0 + 13
    dead = dead_part(tmp_path, "market-a-0001.parquet")  # and a dead part: how many is unknown
    (g,) = load_window(tmp_path, H0, H0 + 3600).gaps
    assert g.missing_rows == -1 and str(dead) in g.files


def test_a_session_of_dead_parts_alone_is_said_and_costs_no_other_session(tmp_path):
    write(tmp_path, "market-a.parquet", frames(3))
    dead = dead_part(tmp_path, "market-b-0001.parquet")
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 3 and not w.gaps and [p.file for p in w.problems] == [str(dead)]
