"""A window too large to hold at once (`EAGER_PAYLOAD_BYTES`, forced to 0 here) keeps its payloads
in the files (`LazyPayloads`): the same window, field for field, and the same replay, byte for
byte, as one read into memory; only the row groups of the moment are held; a corrupt file is found
before the replay starts, exactly as when the window is read at once."""

from __future__ import annotations

import asyncio
import os
import pickle

import pytest

from pmm_widgets.config import load_settings
from pmm_widgets.research import recordings
from pmm_widgets.research.recordings import LazyPayloads, load_window, parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
A, B = T0 + 40 * 60, T0 + 125 * 60  # across two hour boundaries, with the warm-up of 10:00


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("lazy")
    synth_recording(root, T0, 128 * 60, markets=2, seed=3)
    return root


def _fields(w) -> tuple:
    return (w.t0, w.t1, w.ts.tolist(), w.channel.tolist(), w.kind, w.conn.tolist(), list(w.payload), w.session,
            w.gap_before, w.problems, w.files, w.pending)


def test_a_lazy_window_is_the_same_window_and_holds_only_the_files_of_the_moment(rec_dir, monkeypatch):
    eager = load_window(rec_dir, A, B)
    assert isinstance(eager.payload, recordings.PackedPayloads)
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lazy = load_window(rec_dir, A, B)
    pays = lazy.payload
    assert isinstance(pays, LazyPayloads) and len({fi for fi, _ in pays.groups}) >= 3  # three hours' files
    held = 0
    for i in range(len(pays)):
        assert pays[i] == eager.payload[i]
        held = max(held, len(pays._held))
    assert held <= 3 and 4 * held < len(pays.groups)  # a row group or two at a time, never the window's
    assert _fields(lazy) == _fields(eager)
    again = pickle.loads(pickle.dumps(lazy))  # what a sweep worker gets: the files, not the payloads
    assert len(pickle.dumps(lazy)) < 0.05 * sum(len(p) for p in eager.payload if p)
    assert list(again.payload) == eager.payload and pays[-1] == eager.payload[-1] and pays[1:4] == eager.payload[1:4]
    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=2.0, paper_fill_intensity=20)
    r1 = asyncio.run(Replayer(s, A, B, window=eager).run())
    r2 = asyncio.run(Replayer(s, A, B, window=load_window(rec_dir, A, B)).run())
    assert r1.summary["fills"] > 5 and (r1.run_id, r1.orders, r1.trades) == (r2.run_id, r2.orders, r2.trades)


def test_a_corrupt_file_is_the_same_problem_and_gap_lazily(rec_dir, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "rec"
    shutil.copytree(rec_dir, root)
    mid = next((root / "2026-11-30T11").glob("market-*.parquet"))
    data = bytearray(mid.read_bytes())
    at = len(data) // 2
    data[at:at + 4096] = bytes(4096)  # a corrupt page inside the file; its footer is intact
    mid.write_bytes(bytes(data))
    eager = load_window(root, A, B)
    assert any(str(mid) in str(p) for p in eager.problems) and eager.gaps
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lazy = load_window(root, A, B)
    assert isinstance(lazy.payload, LazyPayloads) and _fields(lazy) == _fields(eager)
    mid.unlink()  # gone after the window was opened (the size budget deleting an old hour, say)
    lazy2 = load_window(root, A, B)
    lazy2.payload.files.append(str(mid))  # (a file the window still maps a row to)
    lazy2.payload.groups.append((len(lazy2.payload.files) - 1, 0))
    lazy2.payload.group_of[-1] = len(lazy2.payload.groups) - 1
    with pytest.raises(recordings.RecordingError, match="unreadable during the replay"):
        lazy2.payload[len(lazy2.payload) - 1]


def test_a_sweep_over_a_lazy_window_gives_the_same_rows(rec_dir, monkeypatch):
    """Its workers (forked or loky) get the file list and read the payloads themselves."""
    from pmm_widgets.research.sweeps import TIMING_COLUMNS, sweep

    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=2.0, paper_fill_intensity=20)
    grid = {"alpha": [1, 2], "paper_spread_k": [50, 100]}

    def rows(df):
        return df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns]).to_dict(orient="records")

    eager = sweep(A, A + 30 * 60, grid, settings=s, n_jobs=2, write=False, per_pass=1)
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lazy = sweep(A, A + 30 * 60, grid, settings=s, n_jobs=2, write=False)
    assert rows(lazy) == rows(eager) and len({r["fills"] for r in rows(eager)}) > 1


def test_the_size_budget_keeps_the_hours_a_lazy_window_reads_until_it_lets_them_go(tmp_path, monkeypatch, caplog):
    """The recorder's size budget (`PMM_RECORD_MAX_GB`, oldest hours first) deleted the hours of a
    lazy window a replay was reading: the replay failed half-way when it reached them. While a
    window (here, or its copy in a sweep worker) may read an hour, the budget keeps it (said once
    per hour) and deletes it in a later round, once every window let it go."""
    import logging

    from pmm_widgets.store.recording import Recorder, is_hour_name

    root = tmp_path / "rec"
    synth_recording(root, T0 + 57 * 60, 6 * 60, markets=1, seed=3)  # 10:57 to 11:03
    a, b = T0 + 59 * 60, T0 + 62 * 60
    eager = load_window(root, a, b)
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    w = load_window(root, a, b)
    assert isinstance(w.payload, LazyPayloads)
    hours = sorted(p.name for p in root.iterdir() if is_hour_name(p.name))
    assert len(hours) == 2  # (10:00 and 11:00: both the window's)
    worker = pickle.loads(pickle.dumps(w.payload))  # (a sweep worker's copy takes the leases again)
    rec = Recorder(root, max_gb=1e-9)  # every hour over the budget
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.store.recording"):
        assert rec.enforce_budget() == []
        assert rec.enforce_budget() == []
    said = [r.getMessage() for r in caplog.records if "kept for now" in r.getMessage()]
    assert len(said) == 2 and all(f"hour {h} " in m for h, m in zip(hours, said)), said  # once per hour
    assert list(w.payload) == list(eager.payload)  # the replay reads every row
    w.payload.close()
    assert rec.enforce_budget() == []  # (the worker's copy still reads them)
    worker.close()
    assert rec.enforce_budget() == hours and not any(is_hour_name(p.name) for p in root.iterdir())


def test_a_lazy_window_lets_an_hour_go_once_the_replay_reads_past_it(tmp_path, monkeypatch):
    """A lazy window held a lease (an fd) on every hour it spans until it was closed: a replay of
    weeks held one fd per hour, and the size budget could delete none of the hours it had read.
    Reading in order, an hour is let go (the budget may take it) once the rows after it are read."""
    from pmm_widgets.store.recording import HourLeased, hour_lease, is_hour_name

    root = tmp_path / "rec"
    synth_recording(root, T0 + 57 * 60, 6 * 60, markets=1, seed=3)  # 10:57 to 11:03
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    w = load_window(root, T0 + 59 * 60, T0 + 62 * 60)
    pays = w.payload
    assert isinstance(pays, LazyPayloads)
    first, second = sorted(p for p in root.iterdir() if is_hour_name(p.name))

    def leased(hour) -> bool:
        try:
            fd = hour_lease(hour, exclusive=True)
        except HourLeased:
            return True
        assert fd is not None
        os.close(fd)
        return False

    assert leased(first) and leased(second)
    at_11 = next(i for i, t in enumerate(w.ts.tolist()) if t >= T0 + 3600)
    for i in range(at_11):
        pays[i]
    assert leased(first) and leased(second)  # (the 10:00 rows are still being read)
    pays[at_11]
    assert not leased(first) and leased(second)
    list(pays)
    assert leased(second)  # the last hour: until the window is closed
    pays.close()
    assert not leased(second)
