"""A window read at once keeps its payloads in one buffer (`PackedPayloads`): the same values as
the Arrow column's `to_pylist()` of the kept rows, whatever the chunks, type or offsets; a file that
fails half-way gives the window none of its rows; the buffer of a dropped window serves the next
one (`_SpareBuffer`); a pickled window carries only its rows' bytes."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recording_frames import H0, TEXT_TYPES, frames, text_column, write

from pmm_widgets.research import recordings
from pmm_widgets.research.recordings import PackedPayloads, _Packer, _SpareBuffer, load_window


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet="ab\u00e9\U0001f600{}", max_size=5)), max_size=12), st.data())
def test_packed_payloads_are_the_kept_values_in_any_order_whatever_their_chunks_type_or_offset(values, data):
    n = len(values)
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=3)))
    col = text_column(values, data.draw(st.sampled_from(TEXT_TYPES)), cuts, data.draw(st.integers(0, 2)))
    want = col.filter(pa.array(keep)).to_pylist()
    pack = _Packer(data.draw(st.integers(0, 8)))  # (a small buffer grows)
    split = data.draw(st.integers(0, n))  # fed in two calls, as two batches of a file are
    pack.add(col.slice(0, split), keep[:split])
    pack.add(col.slice(split), keep[split:])
    order = data.draw(st.permutations(range(len(want))))
    got = pack.payloads(order)
    assert list(got) == [want[k] for k in order] and len(got) == len(want)
    assert [got[k] for k in range(-len(want), 0)] == [want[k] for k in order]  # (negative indexes too)
    for k in (len(want), -len(want) - 1):
        with pytest.raises(IndexError):
            got[k]
    assert got.nbytes == sum(len(v.encode() if isinstance(v, str) else v) for v in want if v is not None)
    again = pickle.loads(pickle.dumps(got))
    assert list(again) == list(got) and again == got


def test_a_nulls_slot_spanning_bytes_is_none_and_its_neighbours_keep_theirs():
    """Arrow lets a null's slot span bytes of the data buffer (they are no value)."""
    offsets = pa.py_buffer(np.array([0, 2, 5, 6], np.int32).tobytes())
    valid = pa.py_buffer(np.packbits([1, 0, 1], bitorder="little").tobytes())
    col = pa.StringArray.from_buffers(3, offsets, pa.py_buffer(b"abXYZc"), valid)
    pack = _Packer(0)
    pack.add(col, np.ones(3, np.bool_))
    assert list(pack.payloads([0, 1, 2])) == ["ab", None, "c"] and pack.payloads([0, 1, 2]).nbytes == 3


def test_a_file_failing_half_way_gives_the_window_none_of_its_rows_and_the_next_file_its_own(tmp_path, monkeypatch):
    """The payloads a failing file fed before it failed are taken back: a later file's rows are
    not shifted onto them."""
    write(tmp_path, "market-a.parquet", frames(3))
    bad = write(tmp_path, "market-a-0001.parquet", frames(4, H0 + 20, seq0=4))
    write(tmp_path, "market-a-0002.parquet", frames(2, H0 + 40, seq0=8))
    real = pq.ParquetFile.iter_batches

    def short(self, *a, **k):  # the bad file's batch comes one payload short: found after it was fed
        for b in real(self, *a, **k):
            yield b.slice(0, len(b) - 1) if len(b) == 4 else b

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", short)
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert [p.file for p in w.problems] == [str(bad)]
    want = [f'{{"i":{i}}}' for i in (1, 2, 3, 8, 9)]
    assert list(w.payload) == want and isinstance(w.payload, PackedPayloads)


def test_the_spare_buffer_keeps_the_largest_buffer_it_may_and_hands_it_out_once():
    spare = _SpareBuffer()
    small, large = np.empty(10, np.uint8), np.empty(100, np.uint8)
    spare.give(large)
    spare.give(small)  # (smaller than the one kept: not kept)
    assert spare.take(50) is large and spare.take(50) is not large  # once
    spare.give(large)
    assert spare.take(101) is not large and spare.take(100) is large  # too small for 101 bytes: a new one
    spare.give(np.empty(recordings.SPARE_BUFFER_MAX_BYTES + 1, np.uint8))  # too large to keep
    assert spare.take(1) is not large and spare._spare is None


def test_a_dropped_windows_buffer_serves_the_next_window(tmp_path, monkeypatch):
    spare = _SpareBuffer()
    monkeypatch.setattr(recordings, "_SPARE", spare)
    write(tmp_path, "market-a.parquet", frames(50))
    w = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    buf = w.payload._buf
    first = list(w.payload)
    held = load_window(tmp_path, H0, H0 + 3600, warmup=False)  # while `w` lives: a buffer of its own
    assert held.payload._buf is not buf and list(held.payload) == first
    del w
    gc.collect()
    again = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert again.payload._buf is buf and list(again.payload) == first
    # a pickle (a loky or Ray worker's copy) holds the rows' bytes, not the spare's whole buffer
    big = np.zeros(1 << 20, np.uint8)
    spare.give(big)
    w2 = load_window(tmp_path, H0, H0 + 3600, warmup=False)
    assert w2.payload._buf is big and len(pickle.dumps(w2.payload)) < 4 * w2.payload.nbytes < len(big)


def test_a_sweep_pass_lets_go_of_its_window_without_waiting_for_the_collector(tmp_path):
    """The replayer of a pass and its points refer to each other: `run_pass` drops the window, so
    it (and its payload buffer, the next window's) goes with the pass's caller, not at the
    collector's next full pass."""
    import weakref

    from pmm_widgets.config import load_settings
    from pmm_widgets.research.points import run_pass
    from pmm_widgets.research.synth import synth_recording

    synth_recording(tmp_path, H0, 120, markets=2, seed=3)
    s = load_settings(record_dir=str(tmp_path), quote_refresh_sec=2.0)
    w = load_window(tmp_path, H0, H0 + 120)
    gone = weakref.ref(w.payload)
    gc.collect()
    gc.disable()
    try:
        rows = run_pass(s.model_dump(), H0, H0 + 120, [(0, {"alpha": 1.0})], {}, None, None, w)
        del w
        assert gone() is None and rows[0]["point"] == 0 and rows[0]["events"] > 0
    finally:
        gc.enable()
