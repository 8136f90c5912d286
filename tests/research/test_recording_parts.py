"""Rotated part files (`PMM_RECORD_ROTATE_SEC`): the recording is readable while it is being
written, up to the last closed part, and a recorder killed without closing (kill -9) loses at
most its open part, which the reader reports as a problem and a gap, never as a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from pmm_widgets.research.recordings import list_recordings, load_window, parse_time
from pmm_widgets.store.recording import OPEN_SUFFIX, Recorder, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")


def _rows(rec: Recorder, n: int, t0: float = H0) -> None:
    for i in range(n):
        rec.frame(t0 + i, 0, f'{{"event_type":"price_change","i":{i}}}')
        if i % 5 == 0:
            rec.engine(t0 + i, "cycle")


def _wait(cond, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.05)


def test_parts_rotate_on_wall_time_and_are_readable_while_recording(tmp_path):
    rec = Recorder(tmp_path, session="p1", rotate_sec=0.3, flush_sec=0.05).start()
    _rows(rec, 20)
    hour = tmp_path / hour_key(H0)
    _wait(lambda: hour.exists() and any(f.name.endswith(".parquet") for f in hour.iterdir()))  # first parts closed
    _rows(rec, 20, H0 + 20)  # written into new parts; these may still be open
    frozen = rec._rotation_slot()  # no rotation while the listings are compared (on a loaded machine
    rec._rotation_slot = lambda: frozen  # type: ignore[method-assign]  # a part closed between them)
    rec.flush()  # (the drain it waits for started after the freeze: no drain closes a part from here)
    opened = [f for f in hour.iterdir() if f.name.endswith(OPEN_SUFFIX)]
    w = load_window(tmp_path, H0, H0 + 3600)
    assert not w.problems and not w.gaps  # open parts are pending, not problems
    assert sorted(w.pending) == sorted(str(f) for f in opened)
    assert list(w.ts) == sorted(w.ts) and len(w) >= 24  # at least the first 20 frames + 4 cycles
    listed = list_recordings(tmp_path)
    assert {r["file"] for r in listed if r.get("open")} == {str(f) for f in opened}
    del rec._rotation_slot  # wall time again
    _wait(lambda: not any(f.name.endswith(OPEN_SUFFIX) for f in hour.iterdir()))  # rotation closes idle parts
    rec.close()
    names = sorted(f.name for f in hour.iterdir())
    assert not [n for n in names if n.endswith(OPEN_SUFFIX)]
    assert "market-p1-0000.parquet" in names and "market-p1-0001.parquet" in names and "engine-p1-0000.parquet" in names
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 48 and not w.gaps and not w.problems and not w.pending  # every row, contiguous sequence


_WRITER = """
import os, signal, sys, time
from pmm_widgets.store.recording import Recorder
H0 = float(sys.argv[2])
rec = Recorder(sys.argv[1], session="k1", rotate_sec=0.4, flush_sec=0.05).start()
for i in range(40):
    rec.frame(H0 + i, 0, '{"event_type":"price_change"}')
    if i % 5 == 0:
        rec.engine(H0 + i, "cycle")
    time.sleep(0.05)
rec.flush()
os.kill(os.getpid(), signal.SIGKILL)  # a crash: no close, parts of the last interval still open
"""


def test_kill_9_loses_at_most_the_open_part_and_is_reported_as_a_gap(tmp_path):
    p = subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path), repr(H0)], timeout=60)
    assert p.returncode == -signal.SIGKILL
    w = load_window(tmp_path, H0, H0 + 3600)  # must not raise
    unclosed = [f for f in (tmp_path / hour_key(H0)).iterdir() if f.name.endswith(OPEN_SUFFIX)]
    closed_rows = len(w)
    assert 0 < closed_rows <= 48
    if unclosed:  # killed with parts open: their rows are lost, named, and a gap is reported
        assert not w.pending
        named = [pr for pr in w.problems if "not closed" in pr.message]
        assert {pr.file for pr in named} == {str(f) for f in unclosed}
        gap = [pr for pr in w.problems if "gap in session k1" in pr.message]
        assert gap and "unknown number of rows missing" in gap[0].message
        assert len(w.gaps) == 1 and str(w.gaps[0]) == gap[0].message  # counted (the summary's "gaps" said 0)
        rows = {r["file"]: r for r in list_recordings(tmp_path)}
        assert all(not rows[str(f)]["ok"] and "not closed" in rows[str(f)]["problem"] for f in unclosed)
    else:  # every part had been closed by rotation before the kill: nothing lost
        assert closed_rows == 48 and not w.problems
    # what was lost is at most the last rotation interval: 0.4 s of writing = ~8 frames + 2 cycles
    assert closed_rows >= 48 - 12, closed_rows
    print(f"kill -9: {closed_rows} of 48 rows readable, {len(unclosed)} unclosed part(s)")


@pytest.mark.parametrize("how", ["permission", "directory"])
def test_an_open_part_the_reader_cannot_open_is_one_problem_line(tmp_path, monkeypatch, how):
    """An `.open` part the reader may not open (another user's recorder, its mode 0600) ended the
    listing and the replay in a PermissionError (the probe of its writer's lock opens it); a
    directory of its name was called a dead writer's lost part. Now: one problem line naming it,
    and the rest of the window reads."""
    rec = Recorder(tmp_path, session="p1")
    _rows(rec, 30)
    rec.close()
    part = tmp_path / hour_key(H0) / f"market-p2-0001.parquet{OPEN_SUFFIX}"
    if how == "directory":
        part.mkdir()
    else:
        part.write_bytes(b"PAR1")
        real = os.open

        def refuse(path, *a, **kw):  # (the tests run as root: a chmod would not refuse it)
            if str(path) == str(part):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *a, **kw)

        monkeypatch.setattr(os, "open", refuse)
    w = load_window(tmp_path, H0, H0 + 60)
    assert len(w) == 30 + 6 and not w.gaps
    (p,) = w.problems
    assert p.file == str(part) and p.message.startswith("cannot be opened (") and "\n" not in p.message
    assert ("PermissionError" if how == "permission" else "IsADirectoryError") in p.message
    (row,) = [r for r in list_recordings(tmp_path) if r["file"] == str(part)]
    assert not row["ok"] and row["problem"] == p.message
