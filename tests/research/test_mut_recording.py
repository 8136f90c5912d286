"""What a mutation pass over the recorder (`store/recording.py`) found untested: the queue's bound
counts the bytes waiting, not every byte ever queued (a recorder that drops nothing today must not
start dropping everything after 20 MB in all); a clean session's close says nothing and returns "";
a close that gives up on a stalled writer says how many rows are still queued and leaves them to
the writer; the losses line is said once however often close is called; and rows recorded after
the writer thread's last drain are still written by the close."""

from __future__ import annotations

import logging
import threading

import pytest
from recording_frames import stall_first_write

import pmm_widgets.store.recording as recording
from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.store.recording import OPEN_SUFFIX, ROW_BYTES, Recorder

H0 = parse_time("2026-11-30T10:00:00Z")
LOGGER = "pmm_widgets.store.recording"


def test_the_queue_bound_counts_what_waits_not_what_was_ever_queued(tmp_path):
    """40 batches, each well under the bound and written before the next: 20 times the bound in
    all, and not one row dropped (the count of bytes taken off the queue is what keeps it so)."""
    batch = 50
    size = 100
    bound = 2 * batch * (ROW_BYTES + size)
    rec = Recorder(tmp_path, session="b1", flush_sec=0.05, max_queue_bytes=bound).start()
    try:
        for b in range(40):
            for i in range(batch):
                rec.frame(H0 + b + i * 0.01, 0, "x" * size)
            rec.flush()
        assert rec.stats.overflow == 0
        assert rec._in_bytes - rec._out_bytes == 0  # nothing waits: the two counts meet again
    finally:
        rec.close()
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) == 40 * batch and not w.gaps


def test_a_clean_session_closes_without_a_word_and_returns_nothing(tmp_path, caplog):
    rec = Recorder(tmp_path, session="c1", flush_sec=0.05).start()
    for i in range(20):
        rec.frame(H0 + i, 0, f"r{i}")
    rec.engine(H0 + 21, "stop")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert rec.close() == ""
    assert rec.health() == "" and rec.losses() == ""
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(load_window(tmp_path, H0, H0 + 3600)) == 21


def test_a_close_that_gives_up_says_the_rows_still_queued_and_leaves_them_to_the_writer(tmp_path, monkeypatch,
                                                                                         caplog):
    monkeypatch.setattr(recording, "CLOSE_WAIT_SEC", 0.1)
    rec = Recorder(tmp_path, session="g1", rotate_sec=60, flush_sec=0.05).start()
    entered, release = stall_first_write(rec)
    rec.frame(H0, 0, "a")
    assert entered.wait(30)  # the writer holds "a" and hangs in its write
    for i in range(5):
        rec.frame(H0 + 1 + i, 0, f"q{i}")
    thread = rec._thread
    assert thread is not None
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        said = rec.close()
    assert said == "recording: nothing lost so far; 5 rows still queued (lost if the process exits first)"
    assert rec.health() == said
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{said} under PMM_RECORD_DIR={tmp_path}"]
    release.set()  # the disk answers again: the writer writes them all and closes its own parts
    thread.join(30)
    assert not thread.is_alive() and not list(tmp_path.rglob("*" + OPEN_SUFFIX))
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == ["a", "q0", "q1", "q2", "q3", "q4"] and not w.problems and not w.gaps


def test_the_losses_are_said_once_however_often_close_is_called(tmp_path, caplog):
    rec = Recorder(tmp_path, session="l1", rotate_sec=60, flush_sec=0.05, max_queue_bytes=2_000).start()
    entered, release = stall_first_write(rec)
    rec.frame(H0, 0, "first")
    assert entered.wait(30)
    for i in range(1, 101):
        rec.frame(H0 + i * 0.1, 0, "x" * 100)  # beyond the bound: dropped
    assert rec.stats.overflow > 0
    release.set()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        first = rec.close()
        again = rec.close()
    assert first.startswith(f"recording LOST {rec.stats.overflow:,} rows of session l1 (market {rec.stats.overflow:,})")
    assert again == first
    assert len([r for r in caplog.records if "recording LOST" in r.getMessage()]) == 1


@pytest.mark.parametrize("late_rows", [1, 3])
def test_rows_recorded_after_the_writers_last_drain_are_written_by_the_close(tmp_path, late_rows):
    """The event loop can record a row after the writer thread's last drain (the thread is
    closing its parts): `close` writes what is still queued once the thread has ended."""
    rec = Recorder(tmp_path, session="z1", flush_sec=0.05).start()
    rec.frame(H0, 0, "early")
    real = rec._finish
    calls: list[str] = []

    def finish_after_a_late_row() -> None:
        if threading.current_thread() is rec._thread and not calls:
            calls.append("thread")
            for i in range(late_rows):
                rec.frame(H0 + 1 + i, 0, f"late{i}")  # as if from the loop, just after the last drain
        real()

    rec._finish = finish_after_a_late_row  # type: ignore[method-assign]
    assert rec.close() == ""
    assert calls == ["thread"]
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == ["early"] + [f"late{i}" for i in range(late_rows)] and not w.gaps


def test_a_row_whose_time_is_no_timestamp_is_named_in_the_losses_of_its_channel(tmp_path):
    rec = Recorder(tmp_path, session="t1", flush_sec=0.05).start()
    rec.frame(H0, 0, "a")
    rec.rest(float("nan"), [])
    rec.frame(H0 + 1, 0, "b")
    said = rec.close()
    assert said == "recording LOST 1 rows of session t1 (rest 1): 1 lost to failed writes (gaps in a replay of it)"
    assert rec.stats.unwritten == {"rest": 1} and rec.stats.queued == 0


def test_a_drain_that_ended_long_ago_is_no_stall(tmp_path, monkeypatch):
    """The writer marks when its current drain began and clears it when the drain ends: the
    status line says STALLED only while one drain lasts, never minutes after the last one."""
    rec = Recorder(tmp_path, session="s2", flush_sec=30).start()  # (the thread wakes on `flush` only)
    try:
        rec.frame(H0, 0, "a")
        rec.flush()
        assert rec.stats.queued == 0 and rec._drain_began is None
        later = recording.time.monotonic() + 10 * recording.STALL_SEC
        monkeypatch.setattr(recording.time, "monotonic", lambda: later)
        assert rec.health() == ""
    finally:
        monkeypatch.undo()
        rec.close()


def test_a_drain_that_fails_unexpectedly_is_counted_and_on_the_status_line_and_the_writer_goes_on(tmp_path, caplog):
    rec = Recorder(tmp_path, session="u1", flush_sec=0.05).start()
    real = rec._drain
    failures = [RuntimeError("boom")]

    def drain() -> None:
        if failures:
            raise failures.pop()
        real()

    rec._drain = drain  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        rec.flush()
        assert rec.stats.errors == 1
        assert rec.health() == "recording FAILING (a write cycle failed: RuntimeError; 1 errors)"
        rec.frame(H0, 0, "after")
        rec.close()
    assert "a write cycle failed" in caplog.text
    assert load_window(tmp_path, H0, H0 + 60).payload[:] == ["after"]


def test_failures_are_said_once_a_minute_with_how_many_came_since(tmp_path, monkeypatch, caplog):
    clock = {"now": 1000.0}
    monkeypatch.setattr(recording.time, "monotonic", lambda: clock["now"])
    rec = Recorder(tmp_path, session="f1")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        rec._failed("w", OSError("disk full"))  # said
        clock["now"] += recording.FAILURE_LOG_SEC - 1
        rec._failed("w", OSError("disk full"))  # within the minute: counted, not said
        rec._failed("w", OSError("disk full"))
        clock["now"] += 1
        rec._failed("w", OSError("disk full"))  # a minute after the first: said, with the count since
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and rec.stats.errors == 4
    assert said[0].endswith("OSError: disk full (trading goes on; rows are lost until it can write)")  # no count
    assert said[1].endswith("OSError: disk full (3 failures since the last message) (trading goes on; rows are "
                            "lost until it can write)")


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("when", ["first write", "its retry"])
def test_rows_whose_part_cannot_even_be_opened_are_counted_lost_by_channel_and_leak_no_file(tmp_path, monkeypatch,
                                                                                             caplog, when):
    """A part that cannot be opened (the writer's constructor fails: a read-only or vanished
    disk) costs its rows: counted as lost under their channel, said, and neither its lock's file
    descriptor nor an empty `.open` file is left behind. Either at the batch's first write, or
    at the one retry of a batch whose part broke."""
    real = recording.pq.ParquetWriter
    made = {"n": 0}

    class Broken:
        def __init__(self, *a, **k):
            made["n"] += 1
            if when == "first write" or made["n"] > 1:
                raise OSError(30, "Read-only file system")
            self.w = real(*a, **k)
            self.schema = self.w.schema

        def write_table(self, t):
            raise OSError(5, "Input/output error")  # (the first part breaks: its rows wait for their retry)

        def close(self):
            self.w.close()

    monkeypatch.setattr(recording.pq, "ParquetWriter", Broken)
    fds = _open_fds()
    rec = Recorder(tmp_path, session="p1", rotate_sec=60)
    rec.frame(H0, 0, "a")
    rec.frame(H0 + 1, 0, "b")
    rec.rest(H0 + 2, [])
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        rec.flush()
        if when == "its retry":
            rec.flush()  # the retry's part cannot be opened
    last = rec._last_failure
    said = rec.close()
    assert _open_fds() == fds  # no part's lock left open (nor the hour's lease, after the close)
    assert rec.stats.unwritten == {"market": 2, "rest": 1} and rec.stats.lost == 3
    assert said == ("recording LOST 3 rows of session p1 (market 2, rest 1): 3 lost to failed writes "
                    "(gaps in a replay of it)")
    hour = recording.hour_key(H0)
    assert f"could not write 2 market rows for {hour}" in caplog.text  # said (the rest once a minute)
    assert last is not None and last[1] == (f"could not write 2 market rows for {hour} again: OSError"
                                            if when == "its retry" else f"could not write 1 rest rows for {hour}: OSError")
    assert not list(tmp_path.rglob("*" + OPEN_SUFFIX)) and not list(tmp_path.rglob("*.parquet"))


def test_a_part_carries_its_channel_and_session_and_is_counted(tmp_path):
    import os
    import stat

    import pyarrow.parquet as pq

    rec = Recorder(tmp_path, session="m1", rotate_sec=60)
    rec.frame(H0, 0, "a")
    rec.universe(H0 + 1, [])
    rec.close()
    files = sorted(tmp_path.rglob("*.parquet"))
    assert rec.stats.files == len(files) == 2
    umask = os.umask(0)
    os.umask(umask)
    for f in files:
        meta = pq.ParquetFile(f).schema_arrow.metadata
        channel = f.name.split("-")[0]
        assert meta[b"pmm_channel"] == channel.encode() and meta[b"pmm_session"] == b"m1"
        assert stat.S_IMODE(f.stat().st_mode) == 0o644 & ~umask


def test_the_rows_held_for_a_retry_never_take_more_than_hold_bytes(tmp_path):
    """`hold_bytes` bounds the memory the open parts' rows take: a part past it stops being held
    (a failure of it then costs its rows, said) and gives back what it held; the count of held
    bytes is always what the held tables take."""
    rec = Recorder(tmp_path, session="h1", rotate_sec=3600, hold_bytes=60_000)

    def held_now() -> int:
        return sum(t.nbytes for h in rec._held.values() if h for t in h)

    sizes = []
    for b in range(8):
        for i in range(20):
            rec.frame(H0 + b * 20 + i, 0, "x" * 1000)  # a batch is ≈ 20 kB
        rec.rest(H0 + b * 20, [])
        rec.flush()
        assert rec._held_bytes == held_now() <= rec.hold_bytes
        sizes.append(rec._held_bytes)
    market = (recording.hour_key(H0), "market")
    assert rec._held[market] is None  # past the bound: no longer held ...
    assert rec._held[(recording.hour_key(H0), "rest")]  # ... while the small part still is
    assert 0 < sizes[-1] < 10_000 and max(sizes) > 40_000
    rec.close()
    assert rec._held_bytes == 0 and len(load_window(tmp_path, H0, H0 + 3600)) == 8 * 21
    assert rec.stats.errors == 0 and rec.stats.lost == 0 and rec.losses() == ""


def test_a_part_too_large_to_hold_that_breaks_costs_its_written_rows_said_and_counted_and_no_more(
        tmp_path, monkeypatch, caplog):
    """A part past `hold_bytes` breaks (a write fails): the rows already written into it cannot be
    written again, so they are lost, counted under their channel and said; the batch whose write
    failed is still held, and written into a new part at the next drain. The broken part's
    writer, lock and `.open` file are all let go."""
    real = recording.pq.ParquetWriter
    writes = {"n": 0}

    class FailsOnce:
        def __init__(self, path, *a, **k):
            self.market = "market-" in str(path)
            self.w = real(path, *a, **k)
            self.schema = self.w.schema
            self.closed = False

        def write_table(self, t):
            writes["n"] += 1
            if writes["n"] == 3:  # (the engine's part, the first market batch, then this)
                raise OSError(28, "No space left on device")
            self.w.write_table(t)

        def close(self):
            self.closed = True
            self.w.close()

    made: list[FailsOnce] = []

    def make(*a, **k):
        made.append(FailsOnce(*a, **k))
        return made[-1]

    monkeypatch.setattr(recording.pq, "ParquetWriter", make)
    fds = _open_fds()
    rec = Recorder(tmp_path, session="k1", rotate_sec=3600, hold_bytes=10_000)
    rec.engine(H0, "start")  # (its own part: the hole after it is a gap the replay sees)
    for i in range(20):
        rec.frame(H0 + i, 0, "x" * 1000)  # ≈ 20 kB: written, too large to hold
    rec.flush()
    assert rec._held[(recording.hour_key(H0), "market")] is None
    for i in range(20, 25):
        rec.frame(H0 + i, 0, f"y{i}")  # this batch's write fails: the part breaks
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        rec.flush()
    assert [m.closed for m in made if m.market] == [True] and not list(tmp_path.rglob("market-*" + OPEN_SUFFIX))  # the broken part is gone
    assert rec.stats.lost == 20 and rec.stats.unwritten == {"market": 20}
    assert (f"20 market rows for {recording.hour_key(H0)} lost (a part could not be written, and it was too "
            "large to hold for a retry)") in caplog.text
    said = rec.close()
    assert said == "recording LOST 20 rows of session k1 (market 20): 20 lost to failed writes (gaps in a replay of it)"
    assert _open_fds() == fds
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[1:] == [f"y{i}" for i in range(20, 25)]  # the failed batch, written again
    assert [g.missing_rows for g in w.gaps] == [20]


def test_each_part_closed_lets_its_lock_go_and_counts_its_bytes(tmp_path):
    """A rotation closes a part a minute per channel: each one's lock file descriptor is closed
    once it is published (kept, a day of recording ran out of descriptors), and its size counts."""
    fds = _open_fds()
    rec = Recorder(tmp_path, session="r1", rotate_sec=60)
    slot = {"now": 0}
    rec._rotation_slot = lambda: slot["now"]  # type: ignore[method-assign]
    for part in range(6):
        slot["now"] = part
        rec.frame(H0 + part, 0, f"m{part}")
        rec.rest(H0 + part, [])
        rec.flush()
    assert _open_fds() <= fds + 5  # the two open parts (a lock and a file each) and the hour lease, not the parts before
    rec.close()
    assert _open_fds() == fds
    files = sorted(tmp_path.rglob("*.parquet"))
    assert len(files) == rec.stats.files == 12
    assert rec.stats.bytes_written == sum(f.stat().st_size for f in files)


def test_a_recorder_without_a_budget_deletes_nothing_even_when_asked(tmp_path):
    rec = Recorder(tmp_path, session="n1")  # PMM_RECORD_MAX_GB=0: no budget
    for h in range(3):
        rec.frame(H0 + h * 3600, 0, "x")
    rec.close()
    assert rec.enforce_budget() == [] and len(list(tmp_path.iterdir())) == 3
    assert rec.stats.hours_deleted == 0


def test_the_budget_never_names_the_hour_its_own_recorder_writes(tmp_path, caplog):
    """The open hour is skipped without a word (it is no other recorder's), the closed ones go
    oldest first, and an hour kept for a replay is said once with the budget and its size."""
    rec = Recorder(tmp_path, session="o1", rotate_sec=60)
    for h in range(3):
        rec.frame(H0 + h * 3600, 0, "x" * 2000)
        rec.flush()
    rec.max_bytes = 1
    reading = recording.hour_lease(tmp_path / recording.hour_key(H0), exclusive=False)  # a replay reads it
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert rec.enforce_budget() == [recording.hour_key(H0 + 3600)]
            assert rec.enforce_budget() == []  # said once
    finally:
        import os

        assert reading is not None
        os.close(reading)
    open_hour = recording.hour_key(H0 + 2 * 3600)
    assert (tmp_path / open_hour).exists()
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if open_hour in m], said
    size = sum(f.stat().st_size for f in (tmp_path / recording.hour_key(H0)).glob("*.parquet"))
    assert said[0] == (f"recording budget PMM_RECORD_MAX_GB=1e-09: hour {recording.hour_key(H0)} ({size / 1e6:.1f} MB) "
                       "kept for now: a replay is reading it (or a recorder writing it); deleted once it is done")
    assert len([m for m in said if "kept for now" in m]) == 1
    rec.close()


def test_an_open_part_that_cannot_be_probed_keeps_its_hour_from_the_budget(tmp_path, caplog):
    """An `.open` part the budget cannot probe (here a directory of that name; a file it may not
    open alike) counts as being written: its hour is kept, said, and the budget goes on."""
    rec = Recorder(tmp_path, session="v1")
    for h in range(2):
        rec.frame(H0 + h * 3600, 0, "x")
    rec.close()
    odd = tmp_path / recording.hour_key(H0) / f"market-zz-0000.parquet{OPEN_SUFFIX}"
    odd.mkdir()
    rec.max_bytes = 1
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert rec.enforce_budget() == [recording.hour_key(H0 + 3600)]
    assert (tmp_path / recording.hour_key(H0)).exists() and odd.exists()
    assert f"{odd.name} is being written" in caplog.text


def test_probes_and_leases_that_fail_leave_no_descriptor_open(tmp_path):
    import os

    hour = tmp_path / recording.hour_key(H0)
    hour.mkdir()
    part = hour / f"market-s-0000.parquet{OPEN_SUFFIX}"
    part.write_bytes(b"")
    held = os.open(part, os.O_RDONLY)
    reader = recording.hour_lease(hour, exclusive=False)  # a replay reads the hour
    try:
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)  # its writer lives
        fds = _open_fds()
        for _ in range(5):
            assert recording.being_written(part) is True
            with pytest.raises(recording.HourLeased):
                recording.hour_lease(hour, exclusive=True)
        assert _open_fds() == fds
    finally:
        os.close(held)
        assert reader is not None
        os.close(reader)
    assert recording.being_written(part) is False  # its writer died: no lock held
