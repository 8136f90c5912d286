"""A bit flipped in a recording file on disk (bad sector, bad RAM on a copy) was read back as a
different frame or time with no problem named: Parquet stores no checksum unless asked. The
recorder now writes page checksums and the reader verifies them, so such a file is named."""

from __future__ import annotations

import pyarrow.parquet as pq

from pmm_widgets.research.recordings import RecordingError, load_window, parse_time
from pmm_widgets.store.recording import Recorder

H0 = parse_time("2026-11-30T10:00:00Z")


def test_a_bit_flipped_in_a_payload_page_is_named_not_replayed_as_another_frame(tmp_path):
    rec = Recorder(tmp_path, session="k1", rotate_sec=0)
    for i in range(200):
        rec.frame(H0 + i, 0, f'{{"event_type":"price_change","price":"0.{i:03d}"}}')
    rec.close()
    (f,) = tmp_path.rglob("market-*.parquet")
    md = pq.read_metadata(f)
    col = md.row_group(0).column(md.schema.to_arrow_schema().get_field_index("payload"))
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(f.read_bytes())
    k = start + col.total_compressed_size - 8  # inside the payload column's last page (its data, not its header)
    data[k] ^= 0x01
    f.write_bytes(bytes(data))
    try:
        w = load_window(tmp_path, H0, H0 + 3600)
    except RecordingError as exc:  # no rows left at all: the error names the file
        assert str(f) in str(exc)
        return
    assert [p.file for p in w.problems] == [str(f)], [str(p) for p in w.problems]


_LOAD = """
import sys
from pmm_widgets.research.recordings import RecordingError, load_window
try:
    w = load_window(sys.argv[1], float(sys.argv[2]), float(sys.argv[2]) + 3600)
    print(len(w), *[p.file for p in w.problems], sep="\\n")
except RecordingError as exc:
    print("error", exc)
"""


def test_a_footer_whose_column_type_is_flipped_does_not_abort_the_reader(tmp_path):
    """A bit flipped in a footer's column type (`ts`: DOUBLE) made pyarrow abort the reading
    process (a C++ terminate, no exception: a sweep or a notebook killed) when the reader looked
    at that column's statistics to plan the window. Those statistics are no longer asked for."""
    import subprocess
    import sys

    rec = Recorder(tmp_path, session="t1", rotate_sec=0)
    for i in range(30):
        rec.engine(H0 + i, "cycle")
        if i % 10 == 9:
            rec.flush()  # one row group per flush
    rec.close()
    (f,) = tmp_path.rglob("engine-*.parquet")
    data = bytearray(f.read_bytes())
    k = data.rfind(b"\x02ts")  # the last row group's `ts` ColumnMetaData: type DOUBLE (5) is 0x15 0x0a
    at = data.rfind(b"\x15\x0a", k - 16, k)
    assert at > 0
    data[at + 1] = 0x1A  # type 13: no Parquet type
    f.write_bytes(bytes(data))
    p = subprocess.run([sys.executable, "-c", _LOAD, str(tmp_path), repr(H0)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-500:]
    out = p.stdout.splitlines()
    assert out[0] == "30" or str(f) in p.stdout, p.stdout  # read in full, or the file named
