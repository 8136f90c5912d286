"""The size budget (`PMM_RECORD_MAX_GB`) against another recorder writing into the hour it deletes
(issue 15). The budget probed every hour's `.open` parts once, before it took an hour's exclusive
lease (`hour_lease`), and writers took no lease: a part opened between the probe and the lease (the
other recorder's next part, at a rotation: between two parts it has none open) saw the hour's
closed parts deleted while it went on writing there, a gap at its newest rows. The interleavings
are driven by hooks, not by timing."""

from __future__ import annotations

import fcntl
import logging
import os

import pmm_widgets.store.recording as recording
from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.store.recording import OPEN_SUFFIX, Recorder, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")


def _three_hours(root) -> Recorder:
    rec = Recorder(root, session="g1")
    for h in range(3):
        rec.frame(H0 + h * 3600, 0, "x")
    rec.close()
    return rec


def _just_before_the_lease(monkeypatch, hour, act) -> list[bool]:
    """Run `act` when the budget is about to take `hour`'s exclusive lease (after its probe)."""
    real = recording.hour_lease
    ran: list[bool] = []

    def hooked(path, *, exclusive):
        if exclusive and path == hour and not ran:
            ran.append(True)
            act()
        return real(path, exclusive=exclusive)

    monkeypatch.setattr(recording, "hour_lease", hooked)
    return ran


def test_a_recorder_between_two_parts_keeps_the_hour_it_writes_into(tmp_path, caplog):
    """The other recorder has closed its part (a rotation) and not opened its next one yet: no
    `.open` part in its hour, which the budget deleted (its closed parts: a gap before the rows it
    went on writing there). Its lease on the hour (`Recorder._lease_hour`) keeps the hour whole
    until the hour is complete."""
    rec = _three_hours(tmp_path)
    second = tmp_path / hour_key(H0 + 3600)
    live = Recorder(tmp_path, session="live1", rotate_sec=60)
    live.frame(H0 + 3600 + 1, 0, "y")
    live.flush()
    live._close_writers(lambda _h: False, slot_now=-1)  # a rotation: its part closed, the next not opened yet
    assert not list(second.glob("*" + OPEN_SUFFIX))
    before = sorted(f.name for f in second.iterdir())
    assert before == ["market-g1.parquet", "market-live1-0000.parquet"]
    rec.max_bytes = 1
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
        assert rec.enforce_budget() == [hour_key(H0), hour_key(H0 + 7200)]
    assert sorted(f.name for f in second.iterdir()) == before
    (said,) = [r.getMessage() for r in caplog.records if hour_key(H0 + 3600) in r.getMessage()]
    assert "kept for now" in said and "a recorder writing it" in said
    live.frame(H0 + 3600 + 2, 0, "z")  # its next part, in the same hour
    live.close()
    assert load_window(tmp_path, H0 + 3600, H0 + 7200).payload[:] == ["x", "y", "z"]  # no gap
    assert rec.enforce_budget() == [hour_key(H0 + 3600)]  # its hour complete: the budget's like any other


def test_a_part_opened_between_the_probe_and_the_lease_is_seen_under_the_lease(tmp_path, monkeypatch, caplog):
    """A writer that takes no hour lease (a recorder of an earlier version, or another tool) opens
    a part after the budget's probe: the budget lists the hour again under its exclusive lease,
    sees the live part, and keeps the hour whole."""
    rec = _three_hours(tmp_path)
    second = tmp_path / hour_key(H0 + 3600)
    part = second / f"market-old1-0000.parquet{OPEN_SUFFIX}"
    fds: list[int] = []

    def open_part():
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # (as `Recorder._write_table` locks its part)
        fds.append(fd)

    ran = _just_before_the_lease(monkeypatch, second, open_part)
    rec.max_bytes = 1
    try:
        with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
            assert rec.enforce_budget() == [hour_key(H0), hour_key(H0 + 7200)]
        assert ran
        assert sorted(f.name for f in second.iterdir()) == ["market-g1.parquet", part.name]
        (said,) = [r.getMessage() for r in caplog.records if hour_key(H0 + 3600) in r.getMessage()]
        assert "kept for now" in said and part.name in said and "another recorder" in said
    finally:
        for fd in fds:
            os.close(fd)  # the writer dies: its part is a dead writer's now
    assert rec.enforce_budget() == [hour_key(H0 + 3600)] and not second.exists()


def test_a_writer_whose_hour_was_deleted_while_its_lease_waited_makes_it_again(tmp_path, monkeypatch):
    """A writer's shared lease waits while a budget deletes the hour; the budget removes the
    folder (empty) before the lease is granted: the writer makes the folder again and writes its
    part there, no write failed (it used to fail: the part's `open` found no folder)."""
    real = recording.hour_lease
    calls: list[bool] = []

    def granted_on_a_removed_folder(path, *, exclusive):
        fd = real(path, exclusive=exclusive)
        calls.append(exclusive)
        if len(calls) == 1:
            os.rmdir(path)  # what the budget did while the lease waited
        return fd

    monkeypatch.setattr(recording, "hour_lease", granted_on_a_removed_folder)
    rec = Recorder(tmp_path, session="w1", rotate_sec=60)
    rec.frame(H0 + 1, 0, "a")
    rec.close()
    assert calls == [False, False]  # the second, on the folder made again
    assert rec.stats.errors == 0 and rec.stats.rows == 1
    assert load_window(tmp_path, H0, H0 + 3600).payload[:] == ["a"]
