"""The recorder under faults the earlier rounds did not cover: the wall clock stepping back (NTP,
a VM resumed), a writer thread that falls behind (a burst, a stalled disk), and a write that
fails half-way through a part (a disk full for a moment)."""

from __future__ import annotations

import subprocess
import sys
import threading

from recording_frames import stall_first_write

from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.store.recording import OPEN_SUFFIX, Recorder, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")


def test_a_part_closes_when_its_interval_ends_even_after_the_clock_stepped_back(tmp_path):
    """The part open when the wall clock stepped back stayed open (unreadable, and lost to a
    kill -9) until the clock caught up again: an hour back kept one part open for an hour. A
    part now closes whenever the rotation interval differs from the one it was opened in."""
    slot = {"now": 100}
    rec = Recorder(tmp_path, session="c1", rotate_sec=60)
    rec._rotation_slot = lambda: slot["now"]  # type: ignore[method-assign]
    rec.frame(H0, 0, "a")
    rec.flush()  # part 0 opened in interval 100
    slot["now"] = 40  # the clock steps back an hour
    rec.frame(H0 + 1, 0, "b")
    rec.flush()
    slot["now"] = 41  # one interval later
    rec.frame(H0 + 2, 0, "c")
    rec.flush()
    hour = tmp_path / hour_key(H0)
    assert not (hour / f"market-c1-0000.parquet{OPEN_SUFFIX}").exists(), sorted(f.name for f in hour.iterdir())
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) >= 2 and not w.problems and not w.gaps  # what came before this interval is readable
    rec.close()
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == ["a", "b", "c"] and not w.gaps


_FULL_DISK = """
import logging, random, resource, signal, string, sys
from pmm_widgets.store.recording import Recorder
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as ENOSPC on a full disk
root, H0, rotate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rec = Recorder(root, session="f1", rotate_sec=rotate)
rnd = random.Random(1)
def rows(i0, n):
    for i in range(i0, i0 + n):
        rec.frame(H0 + i * 0.01, 0, "".join(rnd.choice(string.ascii_letters) for _ in range(2000)))
    rec.flush()
rows(0, 50)  # written
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY))
rows(50, 100)  # the disk is full half-way through this batch
assert rec.stats.errors == 1, rec.stats
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
rows(150, 50)  # room again
rec.close()
print(rec.stats.errors, rec.stats.rows)
"""


def test_a_write_that_fails_half_way_costs_no_row_the_disk_can_take_again(tmp_path):
    """A write that failed half-way (the disk full for a moment) left its part's Parquet writer
    broken: every later row of the part went into it, the part was published without a footer,
    and the replay lost all of it, the rows written before the failure and after the disk had room
    again alike (with hourly files, the hour). Now the broken part is dropped and its rows, held
    while the part is open, are written again into a new part at the next drain."""
    for rotate in (0.0, 3600.0):  # hourly files and parts
        root = tmp_path / f"r{rotate:g}"
        p = subprocess.run([sys.executable, "-c", _FULL_DISK, str(root), repr(H0), repr(rotate)],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "could not write 100 market rows" in p.stderr  # said, once
        w = load_window(root, H0, H0 + 3600)
        assert len(w) == 200 and not w.problems and not w.gaps, ([str(x) for x in w.problems], w.gaps)
        assert p.stdout.split() == ["1", "200"]  # one failure; 200 rows in the files


def test_a_part_whose_footer_cannot_be_written_is_written_again_not_published_corrupt(tmp_path, monkeypatch):
    """A failed close (the footer written on a full disk) used to publish the part under its final
    name without a footer: all its rows lost, the replay naming a corrupt file. Its rows are now
    written again into a new part, and nothing unreadable is published."""
    import pmm_widgets.store.recording as recording

    real = recording.pq.ParquetWriter
    fail = {"closes": 1}

    class FooterFails:
        def __init__(self, *a, **k):
            self.w = real(*a, **k)
            self.schema = self.w.schema

        def write_table(self, t):
            self.w.write_table(t)

        def close(self):
            if fail["closes"]:
                fail["closes"] -= 1
                raise OSError(28, "No space left on device")
            self.w.close()

    monkeypatch.setattr(recording.pq, "ParquetWriter", FooterFails)
    rec = Recorder(tmp_path, session="z1", rotate_sec=60)
    for i in range(10):
        rec.frame(H0 + i, 0, f"r{i}")
    rec.close()
    assert rec.stats.errors == 1 and rec.stats.lost == 0 and rec.stats.rows == 10
    assert sorted(f.name for f in (tmp_path / hour_key(H0)).iterdir()) == ["market-z1-0001.parquet"]
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == [f"r{i}" for i in range(10)] and not w.problems and not w.gaps


def stalled_recorder(tmp_path, session):
    """A recorder (queue bound 20 kB) whose writer, at its first write, waits for `release`
    (`entered` set when it does): the rows after it queue up to the bound."""
    rec = Recorder(tmp_path, session=session, rotate_sec=60, flush_sec=0.05, max_queue_bytes=20_000).start()
    entered, release = stall_first_write(rec)
    return rec, entered, release


def test_a_writer_behind_drops_rows_counted_said_and_replayed_as_a_gap_not_memory_without_bound(tmp_path, caplog):
    """The rows waiting for the writer thread had no bound: a writer stalled (a disk that hangs,
    a reader stopped while holding the publish lock) grew the engine's memory until it died.
    Beyond `max_queue_bytes` a row is now dropped on the loop, counted, said once and on the
    status line, and the replay reports the hole as a gap."""
    import logging

    rec, entered, release = stalled_recorder(tmp_path, "q1")
    rec.frame(H0, 0, "first")
    assert entered.wait(30)  # the writer took it, and stalls in its write
    assert rec.health() == ""  # (a write may take a moment)
    rec._drain_began -= 31  # ... but not 31 s: the status line says so before any row is dropped
    assert rec.health() == "recording STALLED (one write for 31 s; 0 MB waiting)"
    rec._drain_began += 31
    with caplog.at_level(logging.ERROR, logger="pmm_widgets.store.recording"):
        for i in range(1, 1001):
            rec.frame(H0 + i * 0.1, 0, "x" * 100)
    queued = len(rec._q)
    assert 0 < queued <= 100 and rec.stats.overflow == 1000 - queued  # bounded: 1000 rows are 300 KB
    said = [r.getMessage() for r in caplog.records if "behind" in r.getMessage()]
    assert len(said) == 1 and "rows are dropped" in said[0], said
    assert rec.health() == f"recording DROPPING (writer 0 MB behind; {rec.stats.overflow} rows dropped)"
    rec.engine(H0 + 101, "stop")  # the engine's rows are never dropped: the session's end is known
    release.set()
    rec.close()
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 1 + queued + 1 and w.kind[-1] == "stop"
    assert [g.missing_rows for g in w.gaps] == [rec.stats.overflow]  # the dropped rows: one gap, before `stop`


def test_a_recorder_its_caller_drains_never_drops_for_the_queue_bound(tmp_path):
    """The bound is for the writer thread falling behind the event loop: an import that drains
    the recorder itself (`flush` every so many rows, no thread) must keep every row."""
    rec = Recorder(tmp_path, session="i1", max_queue_bytes=1_000)
    for i in range(100):
        rec.frame(H0 + i, 0, "x" * 100)
    rec.close()
    assert rec.stats.overflow == 0 and len(load_window(tmp_path, H0, H0 + 3600)) == 100


def test_flush_returns_once_the_rows_are_written_not_once_the_queue_is_empty(tmp_path):
    """`flush` returned as soon as the writer had taken the rows off its queue, before it had
    written them: a bench or the PMXT-style caller reading `stats` (or the files) after it saw
    none of them."""
    rec = Recorder(tmp_path, session="w1", rotate_sec=60, flush_sec=60).start()
    taken = threading.Event()
    real = rec._write

    def slow(*a, **k):
        taken.set()  # the rows are off the queue now
        real(*a, **k)

    rec._write = slow  # type: ignore[method-assign]
    gate = threading.Lock()
    gate.acquire()
    real_popleft = rec._popleft

    def popleft():
        row = real_popleft()
        if not rec._q:  # the last row taken: the write has not started; hold it until flush is watched
            gate.acquire(timeout=5)
        return row

    rec._popleft = popleft  # type: ignore[method-assign]
    for i in range(10):
        rec.frame(H0 + i, 0, "r")
    done = threading.Event()

    def flusher():
        rec.flush()
        done.set()

    t = threading.Thread(target=flusher)
    t.start()
    returned_early = done.wait(1)  # with the queue empty but nothing written yet
    gate.release()
    t.join(30)
    assert not returned_early
    assert taken.is_set() and rec.stats.rows == 10
    rec.close()


def test_a_reader_stuck_holding_the_listing_lock_cannot_hang_the_recorder_or_the_engines_stop(tmp_path, monkeypatch, caplog):
    """A reader holds the recording root's lock (shared) while it lists; one stopped there (Ctrl-Z,
    a debugger) blocked the recorder's publish forever: the writer thread stopped (memory grew), and
    the engine's stop hung in `close()`. The publish now waits a bounded time, then goes on without
    the lock, said in one line."""
    import fcntl
    import logging
    import os

    import pmm_widgets.store.recording as recording

    monkeypatch.setattr(recording, "PUBLISH_WAIT_SEC", 0.2)
    rec = Recorder(tmp_path, session="l1", rotate_sec=60)
    rec.frame(H0, 0, "a")
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # the stuck reader
    try:
        with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
            t = threading.Thread(target=rec.close, daemon=True)
            t.start()
            t.join(30)
            assert not t.is_alive(), "close() hung on the publish lock"
    finally:
        os.close(fd)
    assert any("publish lock" in r.getMessage() for r in caplog.records), caplog.text
    assert load_window(tmp_path, H0, H0 + 3600).payload[:] == ["a"]


def test_a_close_that_gives_up_waiting_leaves_the_writer_to_close_its_own_parts(tmp_path, monkeypatch, caplog):
    """`close()` waited 60 s for the writer thread, then closed the files itself while the thread
    was still writing: the part the thread opened afterwards stayed `.open` for ever (read back as
    a crashed recorder's lost rows). Now the thread closes its own parts as its last act, and a
    close that gives up says so."""
    import logging

    import pmm_widgets.store.recording as recording

    monkeypatch.setattr(recording, "CLOSE_WAIT_SEC", 0.1)
    rec = Recorder(tmp_path, session="x1", rotate_sec=60, flush_sec=0.05).start()
    entered, release = stall_first_write(rec)  # a disk that hangs for a while
    rec.frame(H0, 0, "a")
    assert entered.wait(30)
    thread = rec._thread
    assert thread is not None
    with caplog.at_level(logging.ERROR, logger="pmm_widgets.store.recording"):
        rec.close()  # gives up waiting
    assert "still writing" in caplog.text
    release.set()
    thread.join(30)
    assert not list(tmp_path.rglob("*" + OPEN_SUFFIX))
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == ["a"] and not w.problems


def test_the_budget_never_deletes_through_a_symlinked_hour(tmp_path):
    """An hour moved to another disk and linked back under PMM_RECORD_DIR (the replay reads it
    there) was counted in the budget and its files deleted on the other disk, outside
    PMM_RECORD_DIR. A linked hour is neither counted nor deleted; the hours the recorder wrote are."""
    root, archive = tmp_path / "rec", tmp_path / "archive"
    rec = Recorder(root, session="b1")
    for h in range(2):
        rec.frame(H0 + h * 3600, 0, "x")
    rec.close()
    first = hour_key(H0)
    (root / first).rename(archive)
    (root / first).symlink_to(archive, target_is_directory=True)
    assert len(load_window(root, H0, H0 + 7200)) == 2  # the replay reads through the link
    rec.max_bytes = 1
    assert rec.enforce_budget() == [hour_key(H0 + 3600)]
    assert [f.name for f in archive.iterdir()] == ["market-b1.parquet"]


def test_the_recording_folder_deleted_while_parts_are_open_loses_no_row_held(tmp_path):
    """PMM_RECORD_DIR removed under a running recorder (a clean-up script, `rm -r data`): its open
    parts went with it, the publish failed and their rows were lost although the recorder still
    held them. They are now written again into new parts."""
    import shutil

    rec = Recorder(tmp_path / "rec", session="d1", rotate_sec=60)
    for i in range(5):
        rec.frame(H0 + i, 0, f"r{i}")
    rec.flush()  # an open part, under the folder
    shutil.rmtree(tmp_path / "rec")
    for i in range(5, 8):
        rec.frame(H0 + i, 0, f"r{i}")
    rec.close()
    w = load_window(tmp_path / "rec", H0, H0 + 3600)
    assert w.payload[:] == [f"r{i}" for i in range(8)] and not w.gaps and not w.problems
    assert rec.stats.lost == 0 and rec.stats.rows == 8


def test_rows_a_disk_that_stays_full_costs_are_counted_once_and_leave_no_file(tmp_path, monkeypatch):
    """While every write fails, each batch gets its one retry, then counts as lost (`stats.lost`,
    the status line saying FAILING); no half-written part is left for a reader to misread."""
    import pmm_widgets.store.recording as recording

    real = recording.pq.ParquetWriter

    class Full:
        def __init__(self, *a, **k):
            self.w = real(*a, **k)
            self.schema = self.w.schema

        def write_table(self, t):
            raise OSError(28, "No space left on device")

        def close(self):
            self.w.close()

    monkeypatch.setattr(recording.pq, "ParquetWriter", Full)
    rec = Recorder(tmp_path, session="n1", rotate_sec=60)
    for batch in range(3):
        for i in range(5):
            rec.frame(H0 + batch * 5 + i, 0, "x")
        rec.flush()
    assert rec.health().startswith("recording FAILING (")
    rec.close()
    assert rec.stats.lost == 15 and rec.stats.rows == 0
    assert rec.health() == "recording LOST 15 rows of session n1 (market 15): 15 lost to failed writes (gaps in a replay of it)"
    assert not list(tmp_path.rglob("*" + OPEN_SUFFIX)) and not list(tmp_path.rglob("*.parquet"))


def test_the_budget_takes_a_dead_writers_open_parts_with_their_hour_but_never_a_live_ones(tmp_path, caplog):
    """The `.open` parts a killed recorder left were never deleted by the budget: their hour's
    folder stayed for ever, and every replay over it reported their rows lost. They now go with
    their hour. An hour another live recorder is writing into (two engines recording into one
    PMM_RECORD_DIR) is kept whole: each recorder's budget protected only its own open hours, and
    deleted the other's closed parts of the hour it was writing (a gap at its newest rows)."""
    import logging

    rec = Recorder(tmp_path, session="g1")
    for h in range(3):
        rec.frame(H0 + h * 3600, 0, "x")
    rec.close()
    first, second = tmp_path / hour_key(H0), tmp_path / hour_key(H0 + 3600)
    (first / f"market-dead-0003.parquet{OPEN_SUFFIX}").write_bytes(b"PAR1 half a part")  # kill -9 leftover
    live = Recorder(tmp_path, session="live1", rotate_sec=60)
    live.frame(H0 + 3600 + 1, 0, "y")
    live.rest(H0 + 3600 + 2, [])
    live.flush()  # its parts in the second hour: open, locked
    live._close_writers(lambda h: True)  # (as at a rotation: the closed parts of the hour it goes on writing)
    live.frame(H0 + 3600 + 3, 0, "z")
    live.flush()
    theirs = sorted(f.name for f in second.iterdir())
    assert f"market-live1-0001.parquet{OPEN_SUFFIX}" in theirs and "market-live1-0000.parquet" in theirs
    rec.max_bytes = 1
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
        assert rec.enforce_budget() == [hour_key(H0), hour_key(H0 + 7200)]
        assert rec.enforce_budget() == []
    assert not first.exists()
    assert sorted(f.name for f in second.iterdir()) == theirs  # kept whole, g1's file too
    (said,) = [r.getMessage() for r in caplog.records if hour_key(H0 + 3600) in r.getMessage()]
    assert "kept for now" in said and "another recorder" in said
    live.close()
    assert rec.enforce_budget() == [hour_key(H0 + 3600)]  # closed: the budget's like any other hour


def test_rows_lost_at_the_end_of_a_session_are_said_by_channel_when_it_closes(tmp_path, monkeypatch, caplog):
    """A session ending while its writer is behind (market and REST rows dropped at the queue bound)
    and with a part that cannot be closed (the universe's footer fails every time: its rows lost at
    close): no status line comes after the close, so the rows were lost unseen. The close now says
    how many rows of which channel were never written, and why, in one WARNING line, returns it,
    and the status (`health`) says it from then on; the counts are those missing from the files."""
    import collections
    import logging

    import pyarrow.parquet as pq

    import pmm_widgets.store.recording as recording

    real = recording.pq.ParquetWriter

    class UniverseFooterFails:
        def __init__(self, path, *a, **k):
            self.universe = "universe-" in str(path)
            self.w = real(path, *a, **k)
            self.schema = self.w.schema

        def write_table(self, t):
            self.w.write_table(t)

        def close(self):
            self.w.close()
            if self.universe:
                raise OSError(5, "Input/output error")

    monkeypatch.setattr(recording.pq, "ParquetWriter", UniverseFooterFails)
    rec, entered, release = stalled_recorder(tmp_path, "e1")
    rec.frame(H0, 0, "first")
    assert entered.wait(30)  # the writer stalls in its write: the rows below queue up to the bound
    sent = collections.Counter({"market": 1})
    rec.universe(H0 + 0.5, [])
    sent["universe"] += 1
    for i in range(1, 301):
        rec.frame(H0 + i * 0.1, 0, "x" * 100)
        rec.rest(H0 + i * 0.1, [{"asset_id": "a", "bids": [], "asks": []}] * 2)
        sent.update(["market", "rest"])
    rec.engine(H0 + 31, "stop")
    sent["engine"] += 1
    assert rec.stats.overflow > 0
    release.set()
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
        said = rec.close()
    written = collections.Counter()
    for f in tmp_path.rglob("*.parquet"):
        written[f.name.split("-", 1)[0]] += pq.read_table(f).num_rows
    missing = sent - written
    assert set(missing) == {"market", "rest", "universe"} and missing["universe"] == 1, (sent, written)
    assert sum(missing.values()) == rec.stats.overflow + rec.stats.lost
    assert said == (f"recording LOST {sum(missing.values()):,} rows of session e1 (market {missing['market']:,}, "
                    f"rest {missing['rest']:,}, universe 1): {rec.stats.overflow:,} dropped while the writer was "
                    f"behind; 1 lost to failed writes (gaps in a replay of it)")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"{said} under PMM_RECORD_DIR={tmp_path}"], warned
    assert rec.health() == said
