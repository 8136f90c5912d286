"""Rows dropped at a session's edges (issue 15). The reader drops a row without a seq, a finite ts,
a kind or a conn (`recordings._usable_rows`) and relied on the hole that leaves in the session's
sequence for the window's `Gap` and the replay's reset of the books. A row dropped at the very start
or end of a session's rows read leaves no hole between two rows read: the window reported no gap,
and a replay applied the next session's deltas to books that missed it. Such rows now mark the gap
themselves, before the session's first row read or after its last, naming the file."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from recording_frames import book_frame, change_frame, null_rows

from pmm_widgets.config import load_settings
from pmm_widgets.research import recordings
from pmm_widgets.research.recordings import iso, load_window, parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.store.recording import Recorder, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")


def _null(f, column: str, rows: list[int]) -> list[tuple[float, int]]:
    """Null `column` of a recording file at `rows` (negative: from the end); the (ts, seq) they had."""
    return null_rows(f, {column: rows})


def _session(root, name: str, t0: float, n: int = 20) -> None:
    """A session of `n` market frames, one a second from `t0`, an engine row every fifth."""
    rec = Recorder(root, session=name)
    for i in range(n):
        rec.frame(t0 + i, 0, f'{{"i":{i}}}')
        if i % 5 == 2:
            rec.engine(t0 + i + 0.5, "cycle")
    rec.close()


def _market(root, name: str):
    return root / hour_key(H0) / f"market-{name}.parquet"


def _windows(root, monkeypatch):
    """The window of the hour read at once, and read lazily (`LazyPayloads`): the same gaps."""
    eager = load_window(root, H0, H0 + 3600)
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lazy = load_window(root, H0, H0 + 3600)
    monkeypatch.undo()
    assert isinstance(lazy.payload, recordings.LazyPayloads) and isinstance(eager.payload, recordings.PackedPayloads)
    assert list(lazy.payload) == eager.payload and lazy.gap_before == eager.gap_before
    assert lazy.tail_gaps == eager.tail_gaps and lazy.problems == eager.problems and lazy.sources == eager.sources
    return eager


@pytest.mark.parametrize("column", ["ts", "seq"])
def test_a_row_dropped_at_a_sessions_start_is_a_gap_before_its_first_row_read(tmp_path, monkeypatch, column):
    _session(tmp_path, "a", H0 + 10)
    f = _market(tmp_path, "a")
    ((lost_ts, lost_seq),) = _null(f, column, [0])
    assert lost_seq == 1  # the session's first row
    w = _windows(tmp_path, monkeypatch)
    assert lost_ts not in w.ts.tolist() and w.ts[0] == H0 + 11
    (g,) = w.gaps
    assert w.gap_before == {0: g}  # the books reset before the first row read: no delta applied across it
    assert g.session == "a" and g.missing_rows == 1 and g.files == (str(f),)
    assert g.after_ts <= lost_ts <= g.before_ts == H0 + 11
    assert str(f) in str(g) and iso(g.before_ts) in str(g)
    dropped, gap = [p.message for p in w.problems if p.file == str(f)]  # each one line, naming the file
    assert "1 of 20 rows dropped" in dropped and gap == str(g)


@pytest.mark.parametrize("column", ["ts", "seq"])
def test_a_row_dropped_at_a_sessions_end_is_a_gap_after_its_last_row_read(tmp_path, monkeypatch, column):
    _session(tmp_path, "a", H0 + 10)
    f = _market(tmp_path, "a")
    ((lost_ts, _),) = _null(f, column, [-1])  # the session's last row (its last engine row came before)
    w = _windows(tmp_path, monkeypatch)
    assert lost_ts not in w.ts.tolist() and len(w) == 20 + 4 - 1
    (g,) = w.gaps
    assert not w.gap_before and w.tail_gaps == [g]  # no row after it to reset the books before: said
    assert g.session == "a" and g.missing_rows == 1 and g.files == (str(f),)
    assert g.after_ts == w.ts[-1] <= lost_ts <= g.before_ts
    assert any(p.file == str(f) and p.message == str(g) for p in w.problems)


@pytest.mark.parametrize("column", ["ts", "seq"])
def test_a_row_dropped_in_a_sessions_middle_is_one_gap_where_it_was(tmp_path, monkeypatch, column):
    _session(tmp_path, "a", H0 + 10)
    f = _market(tmp_path, "a")
    ((lost_ts, _),) = _null(f, column, [9])
    w = _windows(tmp_path, monkeypatch)
    (g,) = w.gaps
    (at,) = w.gap_before
    assert w.ts[at] == lost_ts + 1 and g.after_ts < lost_ts < g.before_ts  # (no second gap at the file's edges)
    assert g.missing_rows == 1 and g.files == (str(f),)


def test_rows_dropped_where_one_session_ends_and_the_next_starts_are_each_a_gap(tmp_path, monkeypatch):
    _session(tmp_path, "a", H0 + 10)
    _session(tmp_path, "b", H0 + 100)
    fa, fb = _market(tmp_path, "a"), _market(tmp_path, "b")
    _null(fa, "ts", [-1])
    _null(fb, "seq", [0])
    w = _windows(tmp_path, monkeypatch)
    first_b = w.session.index("b")
    assert w.ts[first_b] == H0 + 101
    assert {(g.session, g.missing_rows) for g in w.gaps} == {("a", 1), ("b", 1)}
    assert set(w.gap_before) == {first_b}  # one reset before b's first row read, for both
    placed = w.gap_before[first_b]
    (other,) = w.tail_gaps
    assert {placed.files, other.files} == {(str(fa),), (str(fb),)}
    assert any(p.message == str(other) for p in w.problems)  # the one with no row of its own: said


def test_a_gap_at_the_windows_first_hour_edge_names_the_file(tmp_path, monkeypatch):
    """A session over two hours, read from the second: the second hour's first market row dropped
    (its seq follows the first hour's, not read) leaves no hole among the rows read."""
    rec = Recorder(tmp_path, session="h")
    for i in range(10):
        rec.frame(H0 - 5 + i, 0, f'{{"i":{i}}}')
    rec.close()
    f = _market(tmp_path, "h")
    ((lost_ts, _),) = _null(f, "ts", [0])
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert lost_ts == H0 and w.ts[0] == H0 + 1
    (g,) = w.gaps
    assert w.gap_before == {0: g} and g.files == (str(f),) and g.after_ts == H0


@pytest.mark.parametrize("column", ["ts", "seq"])
def test_a_row_dropped_at_a_files_end_inside_a_session_is_one_gap_where_it_was(tmp_path, column):
    """The next hour's file follows on (the session's seqs are one counter over its channels and
    hours): the row's seq is a hole between two rows read, one gap, not a second at the file's edge."""
    rec = Recorder(tmp_path, session="h")
    for i in range(10):
        rec.frame(H0 - 5 + i, 0, f'{{"i":{i}}}')
    rec.close()
    f = tmp_path / hour_key(H0 - 3600) / "market-h.parquet"
    ((lost_ts, _),) = _null(f, column, [-1])
    w = load_window(tmp_path, H0 - 3600, H0 + 3600, warmup=False)
    (g,) = w.gaps
    (at,) = w.gap_before
    assert lost_ts == H0 - 1 and w.ts[at] == H0 and g.missing_rows == 1 and g.files == (str(f),)


def test_a_file_every_row_of_which_is_dropped_is_a_gap_not_a_crash(tmp_path, monkeypatch):
    _session(tmp_path, "a", H0 + 10, n=3)
    _session(tmp_path, "b", H0 + 100)
    fa = _market(tmp_path, "a")
    _null(fa, "ts", [0, 1, 2])
    (tmp_path / hour_key(H0) / "engine-a.parquet").unlink()  # session a: nothing left but its dropped rows
    w = _windows(tmp_path, monkeypatch)
    assert set(w.session) == {"b"} and len(w) == 24
    (said,) = [p for p in w.problems if p.file == str(fa)]
    assert "3 of 3 rows dropped" in said.message


def test_a_channels_file_every_row_of_which_is_dropped_is_a_gap_on_both_sides_of_what_is_left(tmp_path, monkeypatch):
    """Session a's market rows all dropped (seqs 1, 2, 4), its engine row (seq 3) read: the rows lost
    before and after it are not holes between two rows read; where each was is unknown (no kept row
    of their file): a gap before the session's row and one after it, each of an unknown number."""
    _session(tmp_path, "a", H0 + 10, n=3)
    _session(tmp_path, "b", H0 + 100)
    fa = _market(tmp_path, "a")
    _null(fa, "ts", [0, 1, 2])
    w = _windows(tmp_path, monkeypatch)
    assert w.session[:2] == ["a", "b"] and w.kind[0] == "cycle"
    assert {k: (g.session, g.missing_rows, g.files) for k, g in w.gap_before.items()} == {
        0: ("a", -1, (str(fa),)), 1: ("a", -1, (str(fa),))}  # before a's row, and before b's first
    assert sum(p.file == str(fa) and "an unknown number of rows missing" in p.message for p in w.problems) == 2


@pytest.mark.parametrize("lazy", [False, True])
def test_no_delta_of_the_next_session_is_applied_across_a_row_dropped_at_a_sessions_end(tmp_path, monkeypatch, lazy):
    """Two sessions of one feed (an import's; no engine `start`: the books carry over from one to
    the next); the first's last row, a price change, is dropped. The second's price change must not
    land on the book that missed it: the book waits for its next snapshot. The same with the
    window's payloads read lazily (`LazyPayloads`)."""
    if lazy:
        monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    from pmm_widgets.domain import Market

    m = Market("0xc1", "Q?", "111", "222", Decimal("0.01"), Decimal("5"))

    def book(tok: str, bid: str, ask: str, ts: float) -> str:
        return book_frame("0xc1", tok, bid, ask, ts)

    def change(tok: str, price: str, side: str, ts: float) -> str:
        return change_frame("0xc1", tok, price, side, ts)

    a = Recorder(tmp_path, session="a")
    a.universe(H0, [m])
    a.frame(H0 + 1, 0, book("111", "0.40", "0.60", H0 + 1))
    a.frame(H0 + 1, 0, book("222", "0.40", "0.60", H0 + 1))
    a.frame(H0 + 5, 0, change("111", "0.42", "BUY", H0 + 5))  # dropped below
    a.close()
    b = Recorder(tmp_path, session="b")
    b.frame(H0 + 20, 0, change("111", "0.45", "BUY", H0 + 20))
    b.frame(H0 + 30, 0, book("111", "0.30", "0.70", H0 + 30))
    b.frame(H0 + 40, 0, book("222", "0.30", "0.70", H0 + 40))
    b.close()
    _null(_market(tmp_path, "a"), "ts", [-1])
    seen: list[tuple[float, bool]] = []
    r = Replayer(load_settings(record_dir=str(tmp_path)), H0, H0 + 60, cycles="grid")
    real = r._gap

    def gap(g):
        real(g)
        seen.append((g.before_ts, r.md.books["111"].synced))

    r._gap = gap  # type: ignore[method-assign]
    assert isinstance(r.window.payload, recordings.LazyPayloads) == lazy
    res = asyncio.run(r.run())
    assert seen == [(H0 + 20, False)], seen  # reset before b's first row: its 0.45 change waits for a snapshot
    assert any("gap in session a: 1 rows missing" in p and "market-a.parquet" in p for p in res.problems)
    assert not [o for o in res.orders if H0 + 20 <= o["created_ts"] < H0 + 40]  # unsynced: not quoted
    assert [o for o in res.orders if o["created_ts"] >= H0 + 40]
    assert r.md.books["111"].synced and r.md.books["111"].best_bid == Decimal("0.30")
