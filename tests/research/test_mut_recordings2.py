"""The second mutation pass over the recordings reader (`research/recordings.py`): the listing,
the state before a window, the lazy payloads and the rest of the window's read. Files are written
directly (a few rows each, no recorder thread), as in `test_mut_recordings`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import gc
import hashlib
import os
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recording_frames import H0, LOOSE, TEXT_TYPES, frames, text_column, write

from pmm_widgets.research import recordings
from pmm_widgets.research.recordings import (
    _NAME_PROBLEM,
    _OPEN_NAME_PROBLEM,
    FileUse,
    Gap,
    PayloadDigest,
    Problem,
    RecordingError,
    _unopenable,
    list_recordings,
    load_window,
    parse_time,
)
from pmm_widgets.store.recording import OPEN_SUFFIX, HourLeased, hour_key, hour_lease, publish_lock


def test_a_dead_open_part_whose_name_is_no_recordings_is_said_as_a_closed_one_is_and_still_not_read(tmp_path):
    """Bug: the reader skipped such a part without a word (its closed form is a `Problem`), and the
    listing called one with a footer "read anyway" (it is not)."""
    f = write(tmp_path, "market-a.parquet", frames(3))
    before = load_window(tmp_path, H0, H0 + 3600)
    d = f.parent
    whole = d / ("bogus-a-0001.parquet" + OPEN_SUFFIX)  # a complete footer: a good name's would be read
    whole.write_bytes(f.read_bytes())
    cut = d / ("notes.parquet" + OPEN_SUFFIX)
    cut.write_bytes(b"PAR1 cut short")
    held = d / ("other-b.parquet" + OPEN_SUFFIX)  # a live writer's (someone holds it): nothing to say yet
    held.write_bytes(b"PAR1")
    fd = os.open(held, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        w = load_window(tmp_path, H0, H0 + 3600)
        listed = {Path(r["file"]).name: r for r in list_recordings(tmp_path)}
    finally:
        os.close(fd)
    assert sorted((Path(p.file).name, p.message) for p in w.problems) == [
        (whole.name, _OPEN_NAME_PROBLEM), (cut.name, _OPEN_NAME_PROBLEM)]
    assert str(w.problems[0]) == f"{w.problems[0].file}: {_OPEN_NAME_PROBLEM}"
    assert _OPEN_NAME_PROBLEM == ("not a recording file name (<channel>-<session>[-<part>].parquet.open, channel one "
                                  "of market, rest, universe, engine): a part nobody writes (its writer died), skipped")
    # what is replayed is what it was without them
    assert w.payload[:] == before.payload[:] and w.ts.tolist() == before.ts.tolist() and not w.gaps
    assert w.files == [str(f)] and w.pending == [] and w.sources == before.sources
    # the listing says the same of them
    for name in (whole.name, cut.name):
        r = listed[name]
        assert (r["ok"], r["open"], r["rows"], r["problem"]) == (False, False, None, _OPEN_NAME_PROBLEM)
        assert r["bytes"] == (d / name).stat().st_size and r["hour"] == d.name
    assert (listed[whole.name]["channel"], listed[whole.name]["session"]) == ("bogus", "a")
    assert (listed[cut.name]["channel"], listed[cut.name]["session"]) == ("?", "?")
    assert listed[held.name]["open"] is True and listed[held.name]["ok"] is True
    # a closed file of such a name: said with the closed form's message
    (d / "bogus-a-0001.parquet").write_bytes(f.read_bytes())
    w2 = load_window(tmp_path, H0, H0 + 3600)
    assert ("bogus-a-0001.parquet", _NAME_PROBLEM) in [(Path(p.file).name, p.message) for p in w2.problems]


def test_epoch_seconds_iso_text_and_datetimes_name_the_same_instant_and_a_bad_one_names_what_was_given(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # a naive time is UTC, not the host's zone
    time.tzset()
    try:
        assert parse_time(H0) == parse_time(int(H0)) == parse_time(str(H0)) == H0
        assert parse_time("2026-11-30T10:00:00Z") == parse_time("2026-11-30T10:00:00") == H0
        assert parse_time("2026-11-30T11:00:00+01:00") == parse_time(" 2026-11-30T10:00:00+00:00 ") == H0
        assert parse_time(dt.datetime(2026, 11, 30, 10)) == H0
        assert parse_time(dt.datetime(2026, 11, 30, 11, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == H0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    for bad, said in ((float("nan"), "nan"), (1e20, "1e+20"), ("inf", "'inf'"), ("10:00 tomorrow", "'10:00 tomorrow'")):
        with pytest.raises(RecordingError) as e:
            parse_time(bad)
        assert str(e.value).startswith(f"bad time {said}: expected ISO 8601 UTC such as 2026-12-01T10:00:00Z")


def test_problems_gaps_and_file_uses_are_values():
    p = Problem("f", "m")
    g = Gap("s", H0, H0 + 1, 2, ("f",))
    u = FileUse("f", 1, H0, H0, 1, 1, 3, "d")
    for v, other in ((p, Problem("f", "m")), (g, Gap("s", H0, H0 + 1, 2, ("f",))), (u, FileUse("f", 1, H0, H0, 1, 1, 3, "d"))):
        assert v == other and hash(v) == hash(other) and len({v, other}) == 1
        name = dataclasses.fields(v)[0].name
        with pytest.raises((dataclasses.FrozenInstanceError, TypeError)):  # (3.11: TypeError for frozen slots)
            setattr(v, name, "x")
        assert getattr(v, name) == getattr(other, name)


def test_a_missing_root_lists_nothing_and_a_file_as_root_is_said(tmp_path):
    assert list_recordings(tmp_path / "none") == [] and list_recordings(str(tmp_path / "none")) == []
    with pytest.raises(RecordingError, match="^no readable recordings for "):
        load_window(tmp_path / "none", H0, H0 + 60)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordingError, match=f"^PMM_RECORD_DIR={tmp_path / 'file'}: not a directory$"):
        list_recordings(tmp_path / "file")


def test_only_folders_named_as_hours_are_listed_as_hours(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(2))
    (tmp_path / hour_key(H0 + 3600)).write_text("a file named as an hour")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "market-a.parquet").write_bytes(f.read_bytes())
    assert [r["file"] for r in list_recordings(str(tmp_path))] == [str(f)]
    w = load_window(tmp_path, H0, H0 + 7200)
    assert w.files == [str(f)] and len(w) == 2 and not w.problems


def test_a_listing_shares_the_publish_lock_with_other_readers(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(2))
    got: list = []
    with publish_lock(tmp_path, exclusive=False):  # another reader listing (a recorder would hold it exclusive)
        th = threading.Thread(target=lambda: got.append(list_recordings(tmp_path)), daemon=True)
        th.start()
        th.join(5)
        listed_while_held = bool(got)
    th.join(5)
    assert listed_while_held and [r["file"] for r in got[0]] == [str(f)]


def test_the_listing_of_open_parts_says_what_each_is(tmp_path, monkeypatch):
    f = write(tmp_path, "market-a.parquet", frames(3))
    d = f.parent
    dead = d / ("market-a-0002.parquet" + OPEN_SUFFIX)  # footer written, never renamed
    dead.write_bytes(f.read_bytes())
    cut = d / ("engine-a-0002.parquet" + OPEN_SUFFIX)  # cut short: its rows are lost
    cut.write_bytes(b"PAR1 cut")
    live = d / ("rest-a-0002.parquet" + OPEN_SUFFIX)
    live.write_bytes(f.read_bytes())  # (its footer is no row count yet: the writer may append)
    (d / ("universe-a-0002.parquet" + OPEN_SUFFIX)).mkdir()  # cannot be probed
    (d / ("notes.parquet" + OPEN_SUFFIX)).mkdir()
    odd = d / ("misc.parquet" + OPEN_SUFFIX)  # written by someone, under no recording's name
    odd.write_bytes(b"x")
    held = [os.open(p, os.O_RDONLY) for p in (live, odd)]
    try:
        for fd in held:
            fcntl.flock(fd, fcntl.LOCK_EX)
        rows = {Path(r["file"]).name: r for r in list_recordings(tmp_path)}
    finally:
        for fd in held:
            os.close(fd)
    assert (rows[odd.name]["channel"], rows[odd.name]["session"], rows[odd.name]["open"]) == ("?", "?", True)
    pick = ("bytes", "channel", "session", "rows", "ok", "open", "problem")
    assert {k: rows[dead.name][k] for k in pick} == dict(
        bytes=dead.stat().st_size, channel="market", session="a", rows=3, ok=False, open=False,
        problem="not renamed after its footer was written (its recorder died while closing it): read anyway")
    assert {k: rows[cut.name][k] for k in pick} == dict(
        bytes=8, channel="engine", session="a", rows=None, ok=False, open=False,
        problem="not closed: its recorder stopped without closing it (kill -9 or crash); its rows are lost "
                "(at most one PMM_RECORD_ROTATE_SEC interval, or the hour when rotation is off)")
    assert {k: rows[live.name][k] for k in pick} == dict(
        bytes=live.stat().st_size, channel="rest", session="a", rows=None, ok=True, open=True,
        problem="being written (readable once closed)")
    for name, ch, ses in (("universe-a-0002.parquet" + OPEN_SUFFIX, "universe", "a"), ("notes.parquet" + OPEN_SUFFIX, "?", "?")):
        r = rows[name]
        assert (r["hour"], r["bytes"], r["channel"], r["session"], r["rows"], r["ok"], r["open"]) == (
            d.name, 0, ch, ses, None, False, False)
        assert r["problem"] == _unopenable(IsADirectoryError(21, "not a file")) and "IsADirectoryError: not a file" in r["problem"]
    assert rows["market-a.parquet"]["rows"] == 3 and rows["market-a.parquet"]["ok"] is True
    # a part closed (renamed) between the listing and its probe is left to the next listing
    monkeypatch.setattr(recordings, "being_written", lambda f: None)
    assert sorted(Path(r["file"]).name for r in list_recordings(tmp_path)) == ["market-a.parquet"]
    # and one renamed right after its probe found it dead: no size to read
    for p in (cut, odd, live, dead):
        p.unlink()
    for p in d.glob("*" + OPEN_SUFFIX):
        p.rmdir()
    monkeypatch.setattr(recordings, "being_written", lambda f: f.unlink() is not None)
    gone = d / ("market-a-0003.parquet" + OPEN_SUFFIX)
    gone.write_bytes(f.read_bytes())
    odd_gone = d / ("misc-0003.parquet" + OPEN_SUFFIX)
    odd_gone.write_bytes(f.read_bytes())
    rows = {r["file"]: r for r in list_recordings(tmp_path)}
    assert (rows[str(gone)]["bytes"], rows[str(gone)]["rows"], rows[str(gone)]["ok"]) == (0, None, False)
    assert (rows[str(odd_gone)]["bytes"], rows[str(odd_gone)]["problem"]) == (0, _OPEN_NAME_PROBLEM)


def test_a_part_closed_between_the_listing_and_its_probe_is_left_to_the_next_window(tmp_path, monkeypatch):
    f = write(tmp_path, "market-a.parquet", frames(3))
    for name in ("market-a-0002.parquet", "misc.parquet"):
        (f.parent / (name + OPEN_SUFFIX)).write_bytes(b"PAR1 cut")
    monkeypatch.setattr(recordings, "being_written", lambda f: None)
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 3 and w.problems == [] and w.pending == [] and not w.gaps


def test_the_listing_says_closed_files_of_no_recordings_name_with_what_their_name_tells(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(2))
    for name in ("bogus-b.parquet", "notes.parquet"):
        (f.parent / name).write_bytes(f.read_bytes())
    rows = {Path(r["file"]).name: r for r in list_recordings(tmp_path)}
    pick = ("bytes", "channel", "session", "rows", "ok", "open", "problem")
    assert {k: rows["bogus-b.parquet"][k] for k in pick} == dict(
        bytes=f.stat().st_size, channel="bogus", session="b", rows=None, ok=False, open=False, problem=_NAME_PROBLEM)
    assert (rows["notes.parquet"]["channel"], rows["notes.parquet"]["session"]) == ("?", "?")
    assert {k: rows["market-a.parquet"][k] for k in pick} == dict(
        bytes=f.stat().st_size, channel="market", session="a", rows=2, ok=True, open=False, problem="")


def reference_digest(values: list[str | None], keep: list[bool]) -> str:
    """What `PayloadDigest` hashes, spelled out: the kept payloads' bytes end to end, and apart from
    them each kept payload's length (-1: a null)."""
    kept = [v for v, k in zip(values, keep) if k]
    data = b"".join(v.encode() for v in kept if v is not None)
    sizes = np.array([-1 if v is None else len(v.encode()) for v in kept], np.int64).tobytes()
    return hashlib.sha256(hashlib.sha256(data).digest() + hashlib.sha256(sizes).digest()).hexdigest()[:32]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab\u00e9{}", max_size=4)), max_size=12), st.data())
def test_the_payload_digest_is_that_of_the_kept_values_whatever_their_chunks_type_or_offset(values, data):
    n = len(values)
    keep = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    typ = data.draw(st.sampled_from(TEXT_TYPES))
    col = text_column(values, typ, cuts, data.draw(st.integers(0, 2)))
    d = PayloadDigest()
    d.add(col if col.num_chunks > 1 else col.chunk(0), np.array(keep, np.bool_))
    assert d.hexdigest() == reference_digest(values, keep)


def test_the_payload_digest_tells_a_null_from_an_empty_payload_and_where_one_ends():
    def digest(values: list[str | None]) -> str:
        d = PayloadDigest()
        d.add(pa.array(values, pa.string()), np.ones(len(values), np.bool_))
        return d.hexdigest()

    assert len({digest([None]), digest([""]), digest(["ab", "c"]), digest(["a", "bc"]), digest([None, None]),
                digest([])}) == 6


def test_the_payload_digest_hashes_no_bytes_under_a_null():
    """Arrow lets a null's slot span bytes of the data buffer (they are no value): not hashed."""
    offsets = pa.py_buffer(np.array([0, 2, 5, 6], np.int32).tobytes())
    valid = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    col = pa.StringArray.from_buffers(3, offsets, pa.py_buffer(b"abXYZc"), valid)
    assert col.to_pylist() == ["ab", None, "c"]
    d = PayloadDigest()
    d.add(col, np.ones(3, np.bool_))
    assert d.hexdigest() == reference_digest(["ab", None, "c"], [True, True, True])


def payload_sizes(f: Path) -> list[int]:
    md = pq.read_metadata(f)
    return [md.row_group(g).column(4).total_uncompressed_size for g in range(md.num_row_groups)]


def test_the_payload_bytes_a_window_needs_are_its_row_groups_overlapping_the_span_bounds_included(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(20), group=10)  # ts H0+10..19, H0+20..29
    a, b = payload_sizes(f)
    est = recordings._estimated_payload_bytes
    assert est([f], H0 + 19, H0 + 19) == a and est([f], H0 + 20, H0 + 20) == b  # a group's last / first row
    assert est([f], H0 + 15, H0 + 25) == a + b and est([f], H0, H0 + 9) == 0 and est([f], H0 + 30, H0 + 99) == 0
    assert est([], H0, H0 + 99) == 0
    other = pa.schema(list(LOOSE), metadata={b"pmm_schema": b"999"})
    g = write(tmp_path, "market-b.parquet", frames(3), schema=other)  # read as a problem, not estimated
    junk = f.parent / "market-c.parquet"
    junk.write_bytes(b"PAR1 no footer")
    assert est([f, g, junk], H0, H0 + 99) == a + b


def test_a_lazy_window_whose_file_is_gone_when_it_takes_its_leases_fails_naming_it_and_holds_none(tmp_path):
    f = write(tmp_path, "market-a.parquet", frames(3))
    gone = f.parent / "market-a-0002.parquet"
    missing = tmp_path / hour_key(H0 + 3600) / "market-a.parquet"  # its hour folder deleted too
    for files in ([str(f), str(gone)], [str(missing)]):
        with pytest.raises(RecordingError) as e:
            recordings.LazyPayloads(files, [(0, 0)], np.zeros(3, np.int32), np.arange(3))
        assert str(e.value) == (f"{files[-1]}: deleted after the window was read (the size budget, "
                                "PMM_RECORD_MAX_GB?)")
        fd = hour_lease(f.parent, exclusive=True)  # (the failed window's leases let go, its traceback still held)
        assert fd is not None
        os.close(fd)


def test_a_lazy_window_lets_an_hour_go_once_no_row_left_reads_it(tmp_path, monkeypatch):
    write(tmp_path, "market-a.parquet", frames(3))
    write(tmp_path, "market-a-0002.parquet", frames(2, t0=H0 + 3590, seq0=4))
    write(tmp_path, "market-a.parquet", frames(3, t0=H0 + 3605, seq0=6), hour=H0 + 3600)  # past t1: no row kept
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    lp = w.payload
    assert isinstance(lp, recordings.LazyPayloads) and len(lp) == 5
    later, this = tmp_path / hour_key(H0 + 3600), tmp_path / hour_key(H0)
    try:
        for h in (this, later):
            with pytest.raises(HourLeased):
                hour_lease(h, exclusive=True)
        assert lp[0] == '{"i":1}'  # the first read lets the later hour go: none of its rows is kept
        os.close(hour_lease(later, exclusive=True))
        with pytest.raises(HourLeased):
            hour_lease(this, exclusive=True)
        assert lp[-1] == '{"i":5}' and lp[1:3] == ['{"i":2}', '{"i":3}']
        other = pickle.loads(pickle.dumps(lp))  # a sweep worker's copy: it leases the hours too, shared
        try:
            assert other[:] == lp[:] == ['{"i":1}', '{"i":2}', '{"i":3}', '{"i":4}', '{"i":5}']
        finally:
            other.close()
    finally:
        lp.close()
    os.close(hour_lease(this, exclusive=True))


def test_a_lazy_window_dropped_without_close_lets_its_hours_go(tmp_path, monkeypatch):
    write(tmp_path, "market-a.parquet", frames(3))
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert isinstance(w.payload, recordings.LazyPayloads)
    with pytest.raises(HourLeased):
        hour_lease(tmp_path / hour_key(H0), exclusive=True)
    del w
    gc.collect()
    os.close(hour_lease(tmp_path / hour_key(H0), exclusive=True))


def test_a_lazy_windows_last_row_read_first_lets_the_hours_before_it_go(tmp_path, monkeypatch):
    write(tmp_path, "market-a.parquet", frames(2, t0=H0 + 3590))
    write(tmp_path, "market-a.parquet", frames(2, t0=H0 + 3610, seq0=3), hour=H0 + 3600)
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lp = load_window(tmp_path, H0, H0 + 3700, warmup=False).payload
    assert isinstance(lp, recordings.LazyPayloads)
    try:
        assert lp[1] == '{"i":2}'  # the first hour's last row: it is still leased
        with pytest.raises(HourLeased):
            hour_lease(tmp_path / hour_key(H0), exclusive=True)
        assert len(lp) == 4 and lp[-1] == '{"i":4}'  # (row 3: past the first hour's rows)
        os.close(hour_lease(tmp_path / hour_key(H0), exclusive=True))
        with pytest.raises(HourLeased):
            hour_lease(tmp_path / hour_key(H0 + 3600), exclusive=True)
    finally:
        lp.close()


def test_a_lazy_window_holds_only_the_row_group_of_the_moment(tmp_path, monkeypatch):
    write(tmp_path, "market-a.parquet", frames(6), group=2)
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lp = load_window(tmp_path, H0, H0 + 3600, warmup=False).payload
    assert isinstance(lp, recordings.LazyPayloads)
    try:
        for i in range(6):
            assert lp[i] == f'{{"i":{i + 1}}}' and list(lp._held) == [i // 2]
    finally:
        lp.close()


def test_files_whose_kind_columns_differ_in_type_read_as_one_window(tmp_path):
    large = pa.schema([f.with_type(pa.large_string()) if f.name == "kind" else f for f in LOOSE], metadata=LOOSE.metadata)
    write(tmp_path, "market-a.parquet", frames(2))
    write(tmp_path, "market-a-0002.parquet", frames(2, t0=H0 + 20, seq0=3, kind="snapshot"), schema=large)
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.kind == ["frame", "frame", "snapshot", "snapshot"] and not w.problems


def test_a_window_of_files_without_rows_is_empty(tmp_path):
    write(tmp_path, "market-a.parquet", [])
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 0 and w.kind == [] and w.payload == [] and w.sources == [] and not w.problems


def test_the_state_before_a_window_is_looked_for_in_the_48_hour_folders_before_it(tmp_path):
    for k in range(-1, 49):  # (and the hour after the window's: no hour from the window's first row on counts)
        if k:
            (tmp_path / hour_key(H0 - 3600 * k)).mkdir()
    write(tmp_path, "market-a.parquet", frames(2))
    write(tmp_path, "universe-a.parquet", [(1, H0 - 3600 * 47, "universe", 0, "47h")], hour=H0 - 3600 * 47)
    write(tmp_path, "universe-b.parquet", [(1, H0 - 3600 * 48, "universe", 0, "48h")], hour=H0 - 3600 * 48)
    w = load_window(tmp_path, H0, H0 + 60)
    assert [r[3] for r in w.preamble] == ["47h"]  # H0's folder and the 47 before it: 48
    (tmp_path / hour_key(H0 - 3600 * 47) / "universe-a.parquet").unlink()
    assert load_window(tmp_path, H0, H0 + 60).preamble == []


def test_a_window_starting_on_the_hour_looks_for_its_state_in_the_48_folders_before_that_hour(tmp_path):
    for k in range(1, 49):
        (tmp_path / hour_key(H0 - 3600 * k)).mkdir()
    write(tmp_path, "market-a.parquet", frames(2, t0=H0))  # its first row at the hour's start
    write(tmp_path, "universe-b.parquet", [(1, H0 - 3600 * 48, "universe", 0, "48h")], hour=H0 - 3600 * 48)
    assert [r[3] for r in load_window(tmp_path, H0, H0 + 60).preamble] == ["48h"]


def test_the_preamble_holds_the_latest_universe_before_the_window(tmp_path):
    write(tmp_path, "universe-a.parquet", [(1, H0 - 7000, "universe", 0, "oldest")], hour=H0 - 7200)
    write(tmp_path, "universe-a.parquet", [(2, H0 - 900, "universe", 0, "old"), (3, H0 - 800, "universe", 0, "new")],
          hour=H0 - 3600)
    write(tmp_path, "market-a.parquet", frames(2, t0=H0 + 10, seq0=4))
    w = load_window(tmp_path, H0 + 30, H0 + 60)  # (no engine start: every hour before is looked at)
    assert [(r[0], r[3]) for r in w.preamble] == [(H0 - 800, "new")]


def test_an_earlier_engine_file_is_one_of_the_windows_files_only_when_it_gave_state(tmp_path):
    write(tmp_path, "engine-a.parquet", [(1, H0 - 900, "cycle", 0, "{}")], hour=H0 - 3600)
    write(tmp_path, "engine-a-0002.parquet", [(2, H0 - 800, "params", 0, "{}")], hour=H0 - 3600)
    write(tmp_path, "market-a.parquet", frames(2, t0=H0 + 10, seq0=3))
    w = load_window(tmp_path, H0 + 30, H0 + 60)
    assert [r[2] for r in w.preamble] == ["params"]
    assert [Path(f).name for f in w.files] == ["market-a.parquet", "engine-a-0002.parquet"]


def test_the_warm_up_starts_at_the_last_checkpoint_of_the_hour_before_its_start_included(tmp_path):
    h1 = H0 + 3600
    rest = [(1, H0, "checkpoint", 0, "[]"), (2, H0 + 100, "checkpoint", 0, "[]"), (3, H0 + 200, "books", 0, "{}")]
    write(tmp_path, "rest-a.parquet", rest)
    write(tmp_path, "market-a.parquet", frames(3, t0=h1 + 10, seq0=4), hour=h1)
    w = load_window(tmp_path, h1 + 30, h1 + 60)  # no checkpoint in its hour before t0: the hour before's last
    assert w.ts[0] == H0 + 100 and w.kind[:2] == ["checkpoint", "books"]
    write(tmp_path, "rest-a.parquet", rest[:1])
    w = load_window(tmp_path, h1 + 30, h1 + 60)
    assert w.ts[0] == H0 and w.kind[0] == "checkpoint"


def test_the_preamble_holds_the_last_engine_start_before_the_window_and_what_followed_it(tmp_path):
    write(tmp_path, "engine-a.parquet", [(1, H0 - 7000, "start", 0, "a"), (2, H0 - 6900, "params", 0, "a1"),
                                         (3, H0 - 6800, "venue_clock", 0, "a2")], hour=H0 - 7200)
    write(tmp_path, "engine-b.parquet", [(1, H0 - 900, "start", 0, "b"), (2, H0 - 800, "params", 0, "b1"),
                                         (3, H0 - 700, "cycle", 0, "b2"), (4, H0 - 600, "strategy", 0, "b3")],
          hour=H0 - 3600)
    write(tmp_path, "market-b.parquet", frames(2, t0=H0 + 10, seq0=5))
    w = load_window(tmp_path, H0 + 30, H0 + 60)
    assert [(r[0], r[2], r[3]) for r in w.preamble] == [(H0 - 900, "start", "b"), (H0 - 800, "params", "b1"),
                                                        (H0 - 600, "strategy", "b3")]


def test_the_state_search_stops_at_the_newest_hour_holding_both_a_universe_and_a_start(tmp_path):
    old = [write(tmp_path, "universe-a.parquet", [(1, H0 - 7000, "universe", 0, "u0")], hour=H0 - 7200),
           write(tmp_path, "engine-a.parquet", [(1, H0 - 7100, "start", 0, "a")], hour=H0 - 7200)]
    write(tmp_path, "universe-b.parquet", [(1, H0 - 950, "universe", 0, "u1")], hour=H0 - 3600)
    write(tmp_path, "engine-b.parquet", [(1, H0 - 900, "start", 0, "b"), (2, H0 - 850, "venue_clock", 0, "c1"),
                                         (3, H0 - 800, "params", 0, "b1"), (4, H0 - 650, "venue_clock", 0, "c2")],
          hour=H0 - 3600)
    write(tmp_path, "market-b.parquet", frames(2, t0=H0 + 10, seq0=5))
    w = load_window(tmp_path, H0 + 30, H0 + 60)
    assert [(r[2], r[3]) for r in w.preamble] == [("universe", "u1"), ("start", "b"), ("params", "b1"),
                                                  ("venue_clock", "c2")]  # (the last venue clock only)
    assert not {str(f) for f in old} & set(w.files)


def test_the_state_search_goes_on_until_it_found_a_start_too_and_without_one_keeps_every_state_row(tmp_path):
    write(tmp_path, "universe-b.parquet", [(1, H0 - 950, "universe", 0, "u1")], hour=H0 - 3600)
    write(tmp_path, "engine-b.parquet", [(1, H0 - 900, "params", 0, "b1")], hour=H0 - 3600)
    write(tmp_path, "market-b.parquet", frames(2, t0=H0 + 10, seq0=5))
    w = load_window(tmp_path, H0 + 30, H0 + 60)
    assert [(r[2], r[3]) for r in w.preamble] == [("universe", "u1"), ("params", "b1")]  # no start anywhere
    write(tmp_path, "engine-a.parquet", [(1, H0 - 7100, "start", 0, "a"), (2, H0 - 7000, "params", 0, "a1")],
          hour=H0 - 7200)
    w = load_window(tmp_path, H0 + 30, H0 + 60)
    assert [(r[2], r[3]) for r in w.preamble] == [("start", "a"), ("params", "a1"), ("universe", "u1"),
                                                  ("params", "b1")]


def test_a_window_without_warm_up_keeps_the_kinds_of_its_own_rows(tmp_path):
    write(tmp_path, "market-a.parquet", [(1, H0 + 10, "a", 0, "1"), (2, H0 + 20, "b", 0, "2"), (3, H0 + 30, "c", 0, "3")])
    w = load_window(tmp_path, H0 + 15, H0 + 3600, warmup=False)
    assert (w.kind, w.payload) == (["b", "c"], ["2", "3"]) and isinstance(w.payload, recordings.PackedPayloads)  # (small: read at once)


def test_a_lazy_window_of_files_with_rows_dropped_reads_each_kept_rows_own_payload(tmp_path, monkeypatch):
    rows = frames(6)
    rows[2] = (3, None, "frame", 0, "dropped")
    write(tmp_path, "market-a.parquet", rows, group=2)
    write(tmp_path, "engine-a.parquet", [(7, H0 + 40, "cycle", 0, "e7"), (8, float("nan"), "cycle", 0, "gone")])
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    w = load_window(tmp_path, H0, H0 + 3600)
    assert isinstance(w.payload, recordings.LazyPayloads)
    try:
        assert w.payload[:] == ['{"i":1}', '{"i":2}', '{"i":4}', '{"i":5}', '{"i":6}', "e7"]
    finally:
        w.payload.close()
