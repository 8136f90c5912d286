"""The second mutation pass over the recordings reader (`research/recordings.py`): the listing,
the state before a window, the lazy payloads and the rest of the window's read. Files are written
directly (a few rows each, no recorder thread), as in `test_mut_recordings`."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pmm_widgets.research.recordings import _NAME_PROBLEM, _OPEN_NAME_PROBLEM, list_recordings, load_window, parse_time
from pmm_widgets.store.recording import ARROW_SCHEMA, OPEN_SUFFIX, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")
LOOSE = pa.schema([f.with_nullable(True) for f in ARROW_SCHEMA], metadata=ARROW_SCHEMA.metadata)


def write(root: Path, name: str, rows: list[tuple], hour: float = H0, schema: pa.Schema = LOOSE,
          group: int | None = None) -> Path:
    """A recording file `name` in the folder of `hour`, of `rows` (seq, ts, kind, conn, payload)."""
    d = root / hour_key(hour)
    d.mkdir(parents=True, exist_ok=True)
    cols = list(zip(*rows)) if rows else [[] for _ in schema]
    t = pa.table([pa.array(list(c), f.type) for c, f in zip(cols, schema)], schema=schema)
    f = d / name
    pq.write_table(t, f, row_group_size=group)
    return f


def frames(n: int, t0: float = H0 + 10, seq0: int = 1, kind: str = "frame") -> list[tuple]:
    """`n` market rows, one a second from `t0`, seqs from `seq0`."""
    return [(seq0 + i, t0 + i, kind, 0, f'{{"i":{seq0 + i}}}') for i in range(n)]


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
