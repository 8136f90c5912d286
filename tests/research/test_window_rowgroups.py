"""`load_window` decompresses only the payloads of the row groups its window keeps; the window it
returns is the same as reading every payload (ordering, gaps, problems, every field)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pmm_widgets.research import recordings
from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rowgroups") / "recordings"
    synth_recording(root, T0, 300, markets=2, seed=3, drain_every=40)  # many small row groups
    return root


def _fields(w: recordings.Window) -> tuple:
    return (w.t0, w.t1, w.ts.tolist(), w.channel.tolist(), w.kind, w.conn.tolist(), w.payload, w.session,
            sorted((k, str(g)) for k, g in w.gap_before.items()), [str(p) for p in w.problems], w.files, w.pending)


@pytest.mark.parametrize(("a", "b", "warmup"), [(0, 60, True), (120, 180, False), (120, 180, True), (0, 400, True),
                                                (290, 300, False)])
def test_partial_payload_read_gives_the_same_window(rec_dir, monkeypatch, a, b, warmup):
    files = sorted(rec_dir.rglob("market-*.parquet"))
    assert max(pq.ParquetFile(f).metadata.num_row_groups for f in files) >= 4
    reads: list[int] = []  # the payload row groups read (one at a time)
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, row_groups=None, columns=None, **kw):
        if columns == ["payload"]:
            assert len(row_groups) == 1
            reads.extend(row_groups)
        return real(self, *args, row_groups=row_groups, columns=columns, **kw)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    fast = load_window(rec_dir, T0 + a, T0 + b, warmup=warmup)
    read = len(reads)
    with monkeypatch.context() as m:  # the reference: every payload read
        m.setattr(recordings, "_needed", lambda pf, *rest: [True] * pf.metadata.num_row_groups)
        ref = load_window(rec_dir, T0 + a, T0 + b, warmup=warmup)
    assert len(fast) > 0
    assert _fields(fast) == _fields(ref) and fast.sources == ref.sources
    if b - a < 300 and not (a == 0 and warmup):
        assert read < len(reads) - read, "a window of part of the file must read only some row groups"


def test_a_gap_inside_the_skipped_groups_still_counts(tmp_path):
    """The sequence numbers of every row are still read: a hole after the window's end is found
    (and cut away with the rows after t1) exactly as before."""
    root = tmp_path / "rec"
    synth_recording(root, T0, 120, markets=2, seed=4, drain_every=30)
    f = next(root.rglob("market-*.parquet"))
    t = pq.read_table(f)
    keep = [i for i in range(t.num_rows) if i != t.num_rows - 5]  # one row lost near the end
    pq.write_table(t.take(keep), f, row_group_size=200)
    w_fast = load_window(root, T0, T0 + 30)
    w_all = load_window(root, T0, T0 + 200)
    assert len(w_all.gap_before) == 1 and not w_fast.gap_before
    assert w_fast.payload == w_all.payload[:len(w_fast)]


@pytest.mark.parametrize(("a", "b", "warmup"), [(0, 60, True), (120, 180, False), (0, 400, True), (290, 300, False)])
def test_the_payloads_read_batch_by_batch_give_the_same_window(rec_dir, monkeypatch, a, b, warmup):
    """The kept payloads are decompressed a batch at a time (`WINDOW_BATCH_BYTES`), each batch
    hashed, measured and made strings, then dropped: batches of one to a few rows, or a whole row
    group at once, give the same window, field for field and source for source (the payloads'
    digests: the run ids)."""
    monkeypatch.setattr(recordings, "WINDOW_BATCH_ROWS", 1)
    monkeypatch.setattr(recordings, "WINDOW_BATCH_BYTES", 1)
    small = load_window(rec_dir, T0 + a, T0 + b, warmup=warmup)
    monkeypatch.setattr(recordings, "WINDOW_BATCH_ROWS", 1 << 30)
    whole = load_window(rec_dir, T0 + a, T0 + b, warmup=warmup)
    assert len(small) > 0 and any(small.payload)
    assert _fields(small) == _fields(whole) and small.sources == whole.sources and small.preamble == whole.preamble


def test_kept_values_packed_from_slices_are_the_filtered_values():
    import numpy as np
    import pyarrow as pa

    col = pa.chunked_array([pa.array(["a", None, "c"]), pa.array(["d", "e"]), pa.array([], pa.string()),
                            pa.array(["g", "h", None, "j"])])
    rng = np.random.default_rng(5)
    for mask in [np.ones(9, bool), np.zeros(9, bool), np.arange(9) % 2 == 0, np.arange(9) >= 4,
                 *(rng.random(9) < 0.5 for _ in range(20))]:
        pack = recordings._Packer(4)  # (smaller than some: it grows)
        pack.add(col, mask)
        assert list(pack.payloads(range(int(mask.sum())))) == col.filter(pa.array(mask)).to_pylist()
