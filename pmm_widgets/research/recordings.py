"""Reading recordings back: list what is there, load a time window as one ordered event stream,
and say exactly what is wrong with it (a corrupt or truncated file, an unknown schema, a gap).

Why problems are data, not exceptions: a researcher replaying a week must not lose the week to
one bad hour. Every file that cannot be used becomes a `Problem` naming the file; every hole in
a session's sequence numbers becomes a `Gap` (from, to, rows missing), and the replayer resets
the books at a gap so that no delta is ever applied across it.

Files still being written (`<name>.parquet.open`, locked by a live recorder) are not readable
yet: they are listed in `Window.pending` and skipped (the recording is readable up to the last
closed part, within `PMM_RECORD_ROTATE_SEC` of now). An `.open` file nobody holds is what a
recorder that died (kill -9, crash) left behind: its rows are lost, reported as a `Problem` and as
a `Gap` after the session's last readable row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import PmmError
from ..store.recording import CHANNELS, OPEN_SUFFIX, SCHEMA_VERSION, being_written, hour_lease, hour_start, publish_lock

# `<channel>-<session>.parquet` (hourly) or `<channel>-<session>-<part>.parquet` (rotated parts)
_FILE_RE = re.compile(r"^(?P<channel>[a-z]+)-(?P<session>[A-Za-z0-9_.]+?)(?:-(?P<part>\d+))?\.parquet$")
COLUMNS = ("seq", "ts", "kind", "conn", "payload")
_NAME_PROBLEM = f"not a recording file name (<channel>-<session>[-<part>].parquet, channel one of {', '.join(CHANNELS)}): skipped"
# a dead writer's `.open` part of such a name: not read (as its closed form would not be), said as that is
_OPEN_NAME_PROBLEM = (f"not a recording file name (<channel>-<session>[-<part>].parquet{OPEN_SUFFIX}, channel one of "
                      f"{', '.join(CHANNELS)}): a part nobody writes (its writer died), skipped")


class RecordingError(PmmError, ValueError):
    """A request that cannot be served (no recordings in the window, bad time)."""


def _text(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or (pa.types.is_dictionary(t) and _text(t.value_type)))


# what the reader relies on in each column (the recorder writes int64, float64, string, int32, string)
_COLUMN_TYPES = {"seq": (pa.types.is_integer, "an integer"), "ts": (pa.types.is_floating, "a float"),
                 "kind": (_text, "text"), "conn": (pa.types.is_integer, "an integer"), "payload": (_text, "text")}
_NOT_NULL = ("seq", "ts", "kind", "conn")  # (the recorder's schema: only a payload may be null)


def _schema_problem(schema: pa.Schema) -> str | None:
    """Why a file of this Arrow schema is no recording this version reads (another `pmm_schema`,
    a column missing, a column of another type: its values compared as numbers used to end the
    replay in a TypeError); None when it is one."""
    version = (schema.metadata or {}).get(b"pmm_schema", b"").decode()
    if version != SCHEMA_VERSION:
        return f"unknown schema {version or '(none)'!r} (this version reads {SCHEMA_VERSION!r})"
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        return f"columns missing: {', '.join(missing)}"
    wrong = [f"{c} is {schema.field(c).type}, not {want}" for c, (ok, want) in _COLUMN_TYPES.items()
             if not ok(schema.field(c).type)]
    return f"column {'; '.join(wrong)}" if wrong else None


def _usable_rows(t: pa.Table) -> tuple[np.ndarray | None, str | None]:
    """The rows of `t` that have a `seq`, a finite `ts`, a `kind` and a `conn` (the recorder never
    writes one without: they cannot be ordered or filed in the window), as their positions (None:
    every row), and what was dropped (one line: the columns and how many rows), or None. Only those
    rows are dropped: one null `ts` used to skip its whole file (an hour of a channel). Their `seq`
    is missing from the session's sequence then (a null `seq`'s too: its neighbours' seqs are one
    apart no more), so the window reports a `Gap` there and the replay resets the books, as for a
    lost file: no delta is applied across the rows dropped. Rows dropped before the session's first
    row read or after its last leave no hole between two rows read: `_lost_at_edges` counts them,
    and the window puts their gap at that edge."""
    bad: np.ndarray | None = None
    said = []
    for c in _NOT_NULL:
        col = t.column(c)
        n = col.null_count
        if c == "ts":  # NaN, inf (a null is null here too: counted once)
            n += int(pc.sum(pc.invert(pc.is_finite(col))).as_py() or 0)
        if not n:
            continue
        miss = pc.invert(pc.is_finite(col)) if c == "ts" else pc.is_null(col)
        m = np.asarray(pc.fill_null(miss, True).to_numpy(zero_copy_only=False), np.bool_)
        bad = m if bad is None else bad | m
        said.append(f"a finite ts ({n})" if c == "ts" else f"a {c} ({n})")
    if bad is None:
        return None, None
    return (np.nonzero(~bad)[0], f"rows without {', '.join(said)}: {int(bad.sum())} of {t.num_rows} rows "
            f"dropped, the rest read (a gap where they were)")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The runs of True in a boolean array, as [start, end) pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _lost_at_edges(seqs: np.ndarray, kept: np.ndarray, n: int, present: np.ndarray) -> tuple[int, int]:
    """How many of a file's dropped rows (`_usable_rows`: its `n` rows but those at `kept`, whose
    seqs are `seqs`) lie before the first row read of their session, and how many after its last
    (`present`: the session's seqs read, sorted); -1: some, how many unknown (a run of dropped rows
    with no kept row of its file on either side). A run between two kept rows of its file is a hole
    in the session's sequence between their seqs: a `Gap` already. A run at the file's start lies
    before its next kept row's seq (at its end, after its last's), maybe before the session's first
    row read (after its last): its rows are taken to be the holes the session shows on that side of
    that seq as far as there are enough of them (a dropped row's seq may be null: where it was is not
    known closer than that); the rest are counted here."""
    drop = np.ones(n, np.bool_)
    drop[kept] = False
    lo, hi = (int(present[0]), int(present[-1])) if len(present) else (0, -1)

    def holes(a: int, b: int) -> int:  # seqs in [a, b] no row read has
        if b < a:
            return 0
        there = int(np.searchsorted(present, b, side="right") - np.searchsorted(present, a, side="left"))
        return max(0, b - a + 1 - there)

    before = after = 0
    for a, b in _runs(drop):  # runs of dropped rows: [a, b)
        j = int(np.searchsorted(kept, a))
        prev = int(seqs[j - 1]) if j > 0 else None
        nxt = int(seqs[j]) if j < len(kept) else None
        if prev is not None and nxt is not None:
            continue
        rest = (b - a) - holes(lo if prev is None else prev + 1, hi if nxt is None else nxt - 1)
        if rest <= 0:
            continue
        if prev is None and nxt is None:
            before = after = -1
        elif prev is None:
            before = -1 if before < 0 else before + rest
        else:
            after = -1 if after < 0 else after + rest
    return before, after


def parse_time(text: str | float | dt.datetime) -> float:
    """ISO 8601 UTC (`2026-12-01T10:00:00Z`, or with an offset) or epoch seconds → epoch seconds."""
    if isinstance(text, (int, float)):
        return _a_time(float(text), text)
    if isinstance(text, dt.datetime):
        d = text if text.tzinfo else text.replace(tzinfo=dt.UTC)
        return d.timestamp()
    s = str(text).strip()
    try:
        return _a_time(float(s), s)
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
    except ValueError:
        raise RecordingError(f"bad time {s!r}: expected ISO 8601 UTC such as 2026-12-01T10:00:00Z") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.timestamp()


def _a_time(ts: float, given: object) -> float:
    """Epoch seconds that name a time (`nan`, `inf` and 1e20 parse as floats: they used to end the
    replay in "ValueError: Invalid value NaN" / "OverflowError", without the flag's name)."""
    try:
        iso(ts)
    except (ValueError, OverflowError, OSError):
        raise RecordingError(f"bad time {given!r}: expected ISO 8601 UTC such as 2026-12-01T10:00:00Z "
                             f"(or epoch seconds)") from None
    return ts


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass(frozen=True, slots=True)
class Gap:
    session: str
    after_ts: float  # last event before the hole
    before_ts: float  # first event after it
    missing_rows: int  # -1: unknown (the rows of a part its writer never closed)
    files: tuple[str, ...]  # files that could not be read (or rows of which could not) around it (may be empty)

    def __str__(self) -> str:
        where = f" (unreadable rows in: {', '.join(self.files)})" if self.files else ""
        n = "an unknown number of" if self.missing_rows < 0 else str(self.missing_rows)
        return (f"gap in session {self.session}: {n} rows missing between {iso(self.after_ts)} "
                f"and {iso(self.before_ts)}{where}: books reset until their next snapshot")


@dataclass(frozen=True, slots=True)
class FileUse:
    """What a window took from one file: its rows in the window's span (warm-up included), their
    first and last `ts` and `seq`, the sum of their payloads' lengths in bytes, and a digest of
    those payloads (`PayloadDigest`: their bytes, lengths and nulls): the replay's run id hashes
    them (`replayer.files_key`)."""

    file: str
    rows: int
    first_ts: float
    last_ts: float
    first_seq: int
    last_seq: int
    payload_bytes: int
    payload_digest: str


@dataclass
class Window:
    """Events of [t0, t1] (plus the warm-up before t0 in the same hour), ordered as they happened."""

    t0: float
    t1: float
    ts: np.ndarray  # float64
    channel: np.ndarray  # int8 index into CHANNELS
    kind: list[str]
    conn: np.ndarray  # int32
    payload: Sequence[str | None]  # a list, or `LazyPayloads` for a window too large to hold at once
    session: list[str]
    gap_before: dict[int, Gap] = field(default_factory=dict)  # event index -> the gap just before it
    problems: list[Problem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # parts a live recorder is still writing (not read)
    # the state recorded before the window's first row that a replay applies first (`state_before`):
    # (ts, channel index, kind, payload) of the last universe and of the engine's start, parameter
    # changes, strategies and venue clock since that start
    preamble: list[tuple[float, int, str, str | None]] = field(default_factory=list)
    # rows lost after the last row read (a dead writer's, rows dropped), or at a row another gap is before
    tail_gaps: list[Gap] = field(default_factory=list)
    # per file that gave the window rows (the preamble's not included: it is in `preamble`), what it gave;
    # a file read whose rows all lie outside the span (a later session's part in the same hour) is not here
    sources: list[FileUse] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def gaps(self) -> list[Gap]:
        """Every gap: before an event (`gap_before`: the books reset there) or at the end."""
        return list(self.gap_before.values()) + self.tail_gaps


def _hours(root: Path) -> list[Path]:
    if not root.exists():
        return []
    if not root.is_dir():
        raise RecordingError(f"PMM_RECORD_DIR={root}: not a directory")
    return sorted((p for p in root.iterdir() if p.is_dir() and hour_start(p.name) is not None), key=lambda p: p.name)


def _unopenable(exc: OSError) -> str:
    """Why an `.open` part `being_written` could not probe is skipped."""
    return (f"cannot be opened ({type(exc).__name__}: {exc.strerror or exc}): skipped (whether a recorder "
            f"still writes it is unknown; its rows are not read)")


def _listing(root: Path, hours: list[Path]) -> dict[Path, tuple[list[Path], list[Path]]]:
    """(closed `.parquet` files, `.open` parts) of each hour directory, listed under the publish
    lock: recorders rename a rotation's parts all at once under it, so the closed files seen are
    a prefix of each session's sequence (an `.open` part renamed after this is read next time)."""
    out: dict[Path, tuple[list[Path], list[Path]]] = {}
    with publish_lock(root, exclusive=False):
        for h in hours:
            names = sorted(p.name for p in h.iterdir())
            out[h] = ([h / n for n in names if n.endswith(".parquet")],
                      [h / n for n in names if n.endswith(".parquet" + OPEN_SUFFIX)])
    return out


def _unclosed_message(readable: bool) -> str:
    if readable:
        return "not renamed after its footer was written (its recorder died while closing it): read anyway"
    return ("not closed: its recorder stopped without closing it (kill -9 or crash); its rows are lost "
            "(at most one PMM_RECORD_ROTATE_SEC interval, or the hour when rotation is off)")


def _file_row(hour: Path, f: Path, m: re.Match[str] | None, size: int, ok: bool, problem: str, *,
              rows: int | None = None, opened: bool = False) -> dict[str, Any]:
    """One `list_recordings` row (`m`: the file name's match, None for a name that is none)."""
    return {"hour": hour.name, "file": str(f), "bytes": size, "channel": m["channel"] if m else "?",
            "session": m["session"] if m else "?", "rows": rows, "ok": ok, "open": opened, "problem": problem}


def list_recordings(root: str | Path) -> list[dict[str, Any]]:
    """One dict per file: hour, channel, session, rows, bytes, first/last ts (footer only: cheap)."""
    out: list[dict[str, Any]] = []
    root = Path(root)
    for h, (done, opened) in _listing(root, _hours(root)).items():
        for f in opened:
            m = _FILE_RE.match(f.name.removesuffix(OPEN_SUFFIX))
            try:
                live = being_written(f)
            except OSError as exc:
                out.append(_file_row(h, f, m, 0, False, _unopenable(exc)))
                continue
            if live is None:
                continue
            size = f.stat().st_size if f.exists() else 0
            if not live and (m is None or m["channel"] not in CHANNELS):  # what a replay says of it (`load_window`)
                out.append(_file_row(h, f, m, size, False, _OPEN_NAME_PROBLEM))
                continue
            rows = None if live else _footer_rows(f)
            out.append(_file_row(h, f, m, size, live, "being written (readable once closed)" if live
                                 else _unclosed_message(rows is not None), rows=rows, opened=live))
        for f in done:
            m = _FILE_RE.match(f.name)
            row = _file_row(h, f, m, f.stat().st_size, True, "")
            if m is None or m["channel"] not in CHANNELS:  # what a replay skips (`load_window`), said the same
                row.update(ok=False, problem=_NAME_PROBLEM)
                out.append(row)
                continue
            try:
                md = pq.read_metadata(f)
                row["rows"] = md.num_rows
                why = _schema_problem(md.schema.to_arrow_schema())
                if why is not None:
                    row.update(ok=False, problem=why)
            except (OSError, ValueError, pa.ArrowException) as exc:
                row.update(ok=False, problem=_describe(exc))
            out.append(row)
    return out


def _ts_statistics(md: pq.FileMetaData, g: int, ti: int) -> Any:
    """Row group `g`'s statistics of the `ts` column (index `ti`), or None; None also for a
    footer whose types disagree (a flipped bit): pyarrow aborts the whole process (C++ terminate,
    no Python exception) when asked for the statistics of such a column."""
    col = md.row_group(g).column(ti)
    if md.schema.column(ti).physical_type != "DOUBLE" or col.physical_type != "DOUBLE":
        return None
    return col.statistics


def _last_ts(f: Path) -> float | None:
    """The latest `ts` of a closed part, from its footer's statistics (None when it has none)."""
    try:
        md = pq.read_metadata(f)
        col = md.schema.to_arrow_schema().get_field_index("ts")
        out = None
        for g in range(md.num_row_groups):
            st = _ts_statistics(md, g, col)
            if st is not None and st.has_min_max:
                out = float(st.max) if out is None else max(out, float(st.max))
        return out
    except (OSError, ValueError, pa.ArrowException):
        return None


def _lost_after(f: Path, m: re.Match[str], done: Sequence[Path], t1: float) -> bool:
    """Whether an unclosed part's lost rows all come after `t1`: an earlier part of its session and
    channel already holds rows past `t1` (a crash after the window is no problem of the window's;
    a replay of it used to report that session's gap, minutes after its end)."""
    part = int(m["part"] or 0)
    for g in done:
        gm = _FILE_RE.match(g.name)
        if gm and gm["session"] == m["session"] and gm["channel"] == m["channel"] and int(gm["part"] or 0) < part:
            last = _last_ts(g)
            if last is not None and last > t1:
                return True
    return False


def _file_start(f: str) -> float:
    """The earliest time a row of file `f` may have: its hour's start."""
    return hour_start(Path(f).parent.name) or 0.0


def _file_end(f: str) -> float:
    """The latest time a lost row of file `f` may have: an unclosed part's last write (its mtime),
    a closed file's hour's end."""
    if f.endswith(OPEN_SUFFIX):
        return os.path.getmtime(f)
    return _file_start(f) + 3600.0


def _footer_rows(f: Path) -> int | None:
    try:
        return int(pq.read_metadata(f).num_rows)
    except (OSError, ValueError, pa.ArrowException):
        return None


def _describe(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    if "magic bytes" in text or "footer" in text.lower() or "size" in text.lower():
        return f"truncated or corrupt Parquet file ({text})"
    return f"unreadable ({type(exc).__name__}: {text})"


def _needed(pf: pq.ParquetFile, ts: np.ndarray, lo: float, hi: float, rows: np.ndarray | None = None) -> list[bool]:
    """Per row group: whether it holds a row with lo <= ts <= hi (a row the window keeps); `rows`:
    the file's row of each of `ts` (None: `ts` is every row)."""
    md = pf.metadata
    starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
    pos = np.arange(len(ts)) if rows is None else rows
    group = np.searchsorted(starts, pos[(ts >= lo) & (ts <= hi)], side="right") - 1
    return [bool(x) for x in np.bincount(group, minlength=md.num_row_groups) > 0]


WINDOW_BATCH_BYTES = 4 << 20  # a window's kept payloads are decompressed this many bytes at a time (`_read`),
WINDOW_BATCH_ROWS = 64  # and at least this many rows (small payloads: fewer batches, each a few Python calls)


def _read_checked(f: Path, columns: list[str]) -> tuple[pq.ParquetFile, pa.Table, np.ndarray | None, str | None] | str:
    """A recording file's `columns` (a file written with page checksums: verified) without the
    rows that lack a seq/ts/kind/conn, the file's row of each row kept (None: every row), and what
    was dropped (`_usable_rows`: a `Problem` to say, the rest of the file is used); or why the file
    cannot be used at all: unreadable, another schema or column type (`_schema_problem`: "...: skipped")."""
    try:
        pf = pq.ParquetFile(f, page_checksum_verification=True)
        why = _schema_problem(pf.schema_arrow)
        if why is not None:
            return f"{why}: skipped"
        t = pf.read(columns=columns)
        rows, dropped = _usable_rows(t)
        if rows is not None:
            t = t.take(pa.array(rows))
    except (OSError, ValueError, pa.ArrowException) as exc:
        return _describe(exc)
    return pf, t, rows, dropped


def _say(problems: list[Problem], f: Path, message: str) -> None:
    """A file's problem, said once (a file read for the window and for the state before it)."""
    p = Problem(str(f), message)
    if p not in problems:
        problems.append(p)


def _open(f: Path, problems: list[Problem], lo: float,
          hi: float) -> tuple[pq.ParquetFile, pa.Table, list[bool], np.ndarray | None] | None:
    """A recording file's usable rows without the payloads, which row groups the window needs, and
    the file's row of each row (None: every row); None (and a `Problem`) for a file that cannot be used."""
    got = _read_checked(f, [c for c in COLUMNS if c != "payload"])
    if isinstance(got, str):
        _say(problems, f, got)
        return None
    pf, t, rows, dropped = got
    if dropped is not None:
        _say(problems, f, dropped)
    try:
        return pf, t, _needed(pf, t.column("ts").to_numpy(), lo, hi, rows), rows
    except (OSError, ValueError, pa.ArrowException) as exc:
        _say(problems, f, _describe(exc))
        return None


@dataclass(frozen=True, slots=True)
class _ChunkView:
    """One Arrow chunk of a text column, as `PayloadDigest` and `_Packer` read it: its data buffer,
    its values' offsets into it (one more than its values), each value's size in bytes (-1: a
    null), which values a window keeps, and whether they are bytes (a binary column) or text."""

    data: memoryview
    offs: np.ndarray
    sizes: np.ndarray
    kept: np.ndarray
    binary: bool


def _chunk_views(col: pa.ChunkedArray | pa.Array, keep: np.ndarray) -> list[_ChunkView]:
    """The chunks of `col` holding a value `keep` (a bool per value) keeps, straight over their
    Arrow buffers (no copy, no Python value per row)."""
    out: list[_ChunkView] = []
    at = 0
    for c in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        n = len(c)
        kept = keep[at:at + n]
        at += n
        if not n or not kept.any():
            continue
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        binary = pa.types.is_binary(c.type) or pa.types.is_large_binary(c.type)
        if c.null_count == n:
            out.append(_ChunkView(memoryview(b""), np.zeros(n + 1, np.int64), np.full(n, -1, np.int64), kept, binary))
            continue
        large = pa.types.is_large_string(c.type) or pa.types.is_large_binary(c.type)
        bufs = c.buffers()
        offs = np.frombuffer(bufs[1], np.int64 if large else np.int32, count=c.offset + n + 1)[c.offset:]
        sizes = np.diff(offs).astype(np.int64)
        if c.null_count:
            sizes[~np.asarray(c.is_valid().to_numpy(zero_copy_only=False), np.bool_)] = -1
        data = memoryview(bufs[2]) if bufs[2] is not None else memoryview(b"")
        out.append(_ChunkView(data, offs.astype(np.int64), sizes, kept, binary))
    return out


class PayloadDigest:
    """A digest of the payloads of a file's rows a window keeps, fed while they are read (eager or
    lazy: the same rows give the same digest, whatever chunks they come in): the bytes of each run
    of kept payloads, hashed straight from the slice of its Arrow data buffer (no copy, no str),
    and apart from them each kept payload's length (-1: a null), so that where one ends counts.
    Why: the run id hashed only the payloads' total length, and two recordings whose payloads
    differ in their bytes, not their lengths, got one run id (a re-run of one replaced the
    other's rows). SHA-256 (SHA-NI): ≈ 1 GB/s, the hour of 50 markets ≈ 0.75 GB."""

    def __init__(self) -> None:
        self._bytes = hashlib.sha256()
        self._sizes = hashlib.sha256()

    def add(self, col: pa.ChunkedArray | pa.Array, keep: np.ndarray) -> None:
        """Feed the values of `col` where `keep` (a bool per value), in order."""
        for view in _chunk_views(col, keep):
            self.feed(view)

    def feed(self, view: _ChunkView) -> None:
        """Feed the kept values of one chunk (`_chunk_views`), in order."""
        self._sizes.update(view.sizes[view.kept].tobytes())
        for a, b in _runs(view.kept & (view.sizes >= 0)):  # runs of kept values not null
            self._bytes.update(view.data[int(view.offs[a]):int(view.offs[b])])

    def hexdigest(self) -> str:
        return hashlib.sha256(self._bytes.digest() + self._sizes.digest()).hexdigest()[:32]


def _byte_lengths(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Each payload's length in bytes (0 for a null): the cheap content digest `Window.sources` sums."""
    return np.asarray(pc.fill_null(pc.binary_length(col), 0).to_numpy(zero_copy_only=False), np.int64)


def _read(f: Path, problems: list[Problem], lo: float = -np.inf, hi: float = np.inf, pack: _Packer | None = None,
          ) -> tuple[pa.Table, list[int], np.ndarray, np.ndarray | None, str] | None:
    """A recording file's usable rows (`_read_checked`, without their payloads), the number of
    rows of each of its row groups, each row's payload length in bytes (0 in the row groups not
    read), the file's row of each row (None: every row) and the `PayloadDigest` of the rows in
    [lo, hi] (the rows a window keeps); with `pack`, those rows' payloads are added to it in the
    file's order (without: a `LazyPayloads` window reads them again). Only the row
    groups holding a row in [lo, hi] are decompressed (`_needed`: the payloads are nearly all of a
    file's bytes, and a window shorter than the hour, a sweep's points, a replay of a few minutes,
    needs a fraction of them; `seq`/`ts`/`conn`/`kind` are still read for every row, so ordering,
    gaps and duplicates are found over the whole file), `WINDOW_BATCH_BYTES` at a time: each
    batch's bytes are hashed, measured and its kept rows copied into `pack`, then it is dropped (a
    corrupt page is found here, kept or not). Why batches: the window holds its own buffer, not Arrow
    columns; decompressing a window's row groups whole (≈ 40 MB each at 50 markets) into fresh
    memory, then a filtered copy of them, cost more than the decompression itself (on this VM a
    page the OS hands out first costs ≈ 20 µs of system time: a 5-minute window's read 0.15 s warm,
    0.5-0.8 s in a fresh process, serial time before any sweep point starts); a batch's memory is
    reused by the next."""
    opened = _open(f, problems, lo, hi)
    if opened is None:
        return None
    pf, t, need, rows = opened
    md = pf.metadata
    sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
    ts = t.column("ts").to_numpy()
    span = (ts >= lo) & (ts <= hi)
    digest = PayloadDigest()
    mark = pack.mark() if pack is not None else (0, 0)
    try:
        lengths = np.zeros(md.num_rows, np.int64)
        if rows is not None:  # (`span` over the file's rows: the dropped ones are not kept)
            span, usable = np.zeros(md.num_rows, np.bool_), span
            span[rows] = usable
        starts = np.cumsum([0, *sizes])
        pi = pf.schema_arrow.get_field_index("payload")
        for g in (g for g, n in enumerate(need) if n):
            at = int(starts[g])
            big = md.row_group(g).column(pi).total_uncompressed_size if pi >= 0 else 0
            step = max(WINDOW_BATCH_ROWS, int(WINDOW_BATCH_BYTES * sizes[g] / big) if big > 0 else sizes[g])
            for batch in pf.iter_batches(batch_size=step, row_groups=[g], columns=["payload"], use_threads=False):
                col = batch.column(0)
                n = len(col)
                lengths[at:at + n] = _byte_lengths(col)
                for view in _chunk_views(col, span[at:at + n]):  # (read once for both)
                    digest.feed(view)
                    if pack is not None:
                        pack.feed(view)
                at += n
            if at != starts[g + 1]:
                raise ValueError(f"row group {g}: {at - starts[g]} payloads read of {sizes[g]} rows")
        if pack is None:
            pa.default_memory_pool().release_unused()
        if rows is not None:
            lengths = lengths[rows]
    except (OSError, ValueError, pa.ArrowException) as exc:
        problems.append(Problem(str(f), _describe(exc)))
        if pack is not None:
            pack.rollback(mark)  # (a file that fails gives the window none of its rows)
        return None
    return t, sizes, lengths, rows, digest.hexdigest()


def _estimated_payload_bytes(files: list[Path], lo: float, hi: float) -> int:
    """The uncompressed payload bytes a window over these files needs, from the footers alone
    (row groups whose `ts` statistics overlap [lo, hi]; all of a file whose footer says less)."""
    total = 0
    for f in files:
        try:
            md = pq.read_metadata(f)
            if _schema_problem(md.schema.to_arrow_schema()) is not None:
                continue  # the read reports it (a `ts` of text: its statistics are no times)
            names = [md.schema.column(i).name for i in range(md.num_columns)]
            ti, pi = names.index("ts"), names.index("payload")
        except (OSError, ValueError, pa.ArrowException):
            continue  # the read reports it
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            st = _ts_statistics(md, g, ti)
            if st is None or not st.has_min_max or (st.max >= lo and st.min <= hi):
                total += rg.column(pi).total_uncompressed_size
    return total


EAGER_PAYLOAD_BYTES = 1 << 30  # a window's payloads up to this (uncompressed) are read at once; beyond, lazily


class _SpareBuffer:
    """The payload buffer of the last eager window this process dropped, kept for the next one
    (one at a time, up to `SPARE_BUFFER_MAX_BYTES`). Why: on this project's VMs a page the OS hands
    out for the first time costs 20-85 µs of system time, and memory a process frees goes back to
    the host within seconds; a sweep reads its window in the parent before any point starts (the
    serial part of its 2-vs-1 speed-up), and a notebook or the bench sweeps one window after
    another: re-using the pages of the last window's buffer, they are not handed out again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: np.ndarray | None = None

    def take(self, size: int) -> np.ndarray:
        """A buffer of at least `size` bytes (the spare when it is that large, else a new one)."""
        with self._lock:
            spare = self._spare
            if spare is not None and len(spare) >= size:
                self._spare = None
                return spare
        return np.empty(max(size, 1), np.uint8)

    def give(self, buf: np.ndarray) -> None:
        """`buf` is no window's any more: kept when it is the largest seen and not too large."""
        with self._lock:
            if len(buf) <= SPARE_BUFFER_MAX_BYTES and (self._spare is None or len(buf) > len(self._spare)):
                self._spare = buf


SPARE_BUFFER_MAX_BYTES = 1 << 28  # a larger buffer is not kept for the next window (256 MiB)
_SPARE = _SpareBuffer()


class _Payloads(Sequence[str | None]):
    """A window's payloads held other than as a list (`PackedPayloads`, `LazyPayloads`): `_one`
    gives row `i` (0 <= i < len); a negative index counts from the end, a slice is a list."""

    __slots__ = ()

    def _one(self, i: int) -> str | None:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> str | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[str | None]: ...

    def __getitem__(self, i: int | slice) -> str | None | list[str | None]:
        if isinstance(i, slice):
            return [self._one(k) for k in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"payload index {i} out of range ({n} rows)")
        return self._one(i)


class PackedPayloads(_Payloads):
    """The payloads of a window read at once (`load_window` below `EAGER_PAYLOAD_BYTES`): their
    bytes end to end in one buffer, and per row where its payload starts and ends in it (start -1:
    a null). A payload is made a Python value when read, `str` (bytes for a row of a binary
    column), as `to_pylist()` made it: the replay reads each row once. Why not a list of strings:
    the buffer's pages are re-used by the next window (`_SpareBuffer`) where thousands of strings
    were memory handed out afresh at every read, and a forked sweep worker reading it copies no
    page (a string's reference count is written when it is read: each page holding one was copied
    into each worker). It pickles as the bytes it holds (a loky or Ray worker's copy)."""

    __slots__ = ("_buf", "_view", "_start", "_end", "_binary", "nbytes", "__weakref__")

    def __init__(self, buf: np.ndarray, start: np.ndarray, end: np.ndarray, binary: np.ndarray | None,
                 spare: bool = False) -> None:
        self._buf = buf
        self._view = memoryview(buf.data)
        self._start = start
        self._end = end
        self._binary = binary  # per row: a binary column's (None: every row is text)
        self.nbytes = int((end - start)[start >= 0].sum())  # (the bytes of its rows: nulls have none)
        if spare:  # the buffer goes to the next window once this one is dropped
            weakref.finalize(self, _SPARE.give, buf)

    def __len__(self) -> int:
        return len(self._start)

    def _one(self, i: int) -> str | None:
        a = int(self._start[i])
        if a < 0:
            return None
        got = self._view[a:int(self._end[i])]
        if self._binary is not None and self._binary[i]:
            return bytes(got)  # type: ignore[return-value]  # (a binary column's value, as to_pylist gives it)
        return str(got, "utf-8")

    def raw(self, i: int) -> bytes | None:
        """Row `i`'s payload as its bytes (None: a null), not made a `str`: what the replay hands a
        market frame's decoder (`MarketStream.handle_frame` reads bytes as it reads text, and the
        decoding into a str and its encoding back for `safejson.brackets` were ≈ 2 % of a replay)."""
        a = int(self._start[i])
        return None if a < 0 else bytes(self._view[a:int(self._end[i])])

    def __iter__(self) -> Iterator[str | None]:
        for k in range(len(self)):
            yield self._one(k)

    def __eq__(self, other: object) -> bool:
        """Equal to a sequence of the same payloads (a list of them, another window's)."""
        if isinstance(other, (PackedPayloads, LazyPayloads, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # the rows' bytes only (the buffer may be a larger spare): a worker's own copy
        used = int(self._end.max()) if len(self._end) else 0
        return (PackedPayloads, (np.array(self._buf[:used]), self._start, self._end, self._binary))


class _Packer:
    """`_read`'s kept payloads, file after file, into one buffer (`PackedPayloads`): the bytes of
    each run of kept values copied straight from the Arrow data buffer, no Python value per row."""

    def __init__(self, capacity: int) -> None:
        self.buf = _SPARE.take(capacity)
        self.used = 0
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []
        self.binary: list[bool] = []  # per `feed`: whether its values are bytes (a binary column)

    def add(self, col: pa.ChunkedArray | pa.Array, keep: np.ndarray) -> None:
        """Append the values of `col` where `keep` (a bool per value), in order."""
        for view in _chunk_views(col, keep):
            self.feed(view)

    def feed(self, view: _ChunkView) -> None:
        """Append the kept values of one chunk (`_chunk_views`), in order."""
        idx = np.flatnonzero(view.kept)
        start = np.full(len(idx), -1, np.int64)
        for a, b in _runs(view.kept):  # runs of kept values: their bytes, nulls' (none) included
            lo, hi = int(view.offs[a]), int(view.offs[b])
            self._reserve(hi - lo)
            self.buf[self.used:self.used + hi - lo] = np.frombuffer(view.data[lo:hi], np.uint8)
            at = np.searchsorted(idx, a)
            start[at:at + b - a] = view.offs[a:b] - lo + self.used
            self.used += hi - lo
        sizes = view.sizes[idx]
        end = start + np.maximum(sizes, 0)
        start[sizes < 0] = -1
        self.starts.append(start)
        self.ends.append(end)
        self.binary.append(view.binary)

    def _reserve(self, n: int) -> None:
        if self.used + n > len(self.buf):
            bigger = np.empty(max(2 * len(self.buf), self.used + n), np.uint8)
            bigger[:self.used] = self.buf[:self.used]
            self.buf = bigger

    def mark(self) -> tuple[int, int]:
        """Where the next file's rows start (`rollback` forgets them all when that file fails)."""
        return self.used, len(self.starts)

    def rollback(self, mark: tuple[int, int]) -> None:
        self.used, n = mark
        del self.starts[n:], self.ends[n:], self.binary[n:]

    def payloads(self, pos: np.ndarray | list[int]) -> PackedPayloads:
        """The payloads of the kept rows at `pos` (positions among the rows added, in order)."""
        pos = np.asarray(pos, np.int64)
        start = np.concatenate(self.starts)[pos] if self.starts else np.zeros(0, np.int64)
        end = np.concatenate(self.ends)[pos] if self.ends else np.zeros(0, np.int64)
        binary = np.repeat(self.binary, [len(s) for s in self.starts])[pos] if any(self.binary) else None
        return PackedPayloads(self.buf, start, end, binary, spare=True)


class LazyPayloads(_Payloads):
    """The payloads of a window too large to hold at once (`load_window` picks it beyond
    `EAGER_PAYLOAD_BYTES`: an hour of 50 markets is ≈ 0.75 GB, a week would not fit): a row
    group's payloads are read when the replay first reaches one of its rows, and dropped once it
    is past the group's last kept row, so memory holds the row groups of the moment (a few MB),
    not the window. The window's reader already decompressed every needed payload once to check
    it (a corrupt file is a `Problem` and a gap before the replay starts, as for a window read at
    once). It holds a shared lease on each hour folder of its files (`hour_lease`) until it reads past that hour,
    which the recorder's size budget respects (it used to delete an old hour a replay was about to
    read, failing it half-way); a file gone or changed all the same (by hand, or before the lease
    was taken: then at once) fails the replay with a `RecordingError` naming it. Indexing in order
    is what it is for; it pickles as its file list and row map (a sweep worker reads the files
    itself, and takes the leases again)."""

    def __init__(self, files: list[str], groups: list[tuple[int, int]], group_of: np.ndarray,
                 row_of: np.ndarray) -> None:
        self.files = files
        self.groups = groups  # (index into `files`, row group)
        self.group_of = group_of  # per kept row: index into `groups`
        self.row_of = row_of  # per kept row: its row in that row group
        last = np.full(len(groups), -1, np.int64)
        np.maximum.at(last, group_of, np.arange(len(group_of)))
        self.last_row = last  # per row group: the last kept row that reads it
        self._held: dict[int, list[str | None]] = {}
        self._pf: tuple[int, pq.ParquetFile] | None = None  # the file read last (its footer parsed once)
        self._leases: dict[str, int] = {}  # hour folder -> fd holding its shared lease (`close` lets them go)
        hour_of = [str(Path(f).parent) for f in files]
        done_at: dict[str, int] = {h: -1 for h in hour_of}  # per hour: the last kept row that reads it
        for (fi, _), last_k in zip(groups, last.tolist()):
            done_at[hour_of[fi]] = max(done_at[hour_of[fi]], last_k)
        self._done_at = done_at  # (an hour is let go once the replay reads past it: `_let_go_before`)
        for hour in sorted(done_at):
            with contextlib.suppress(OSError):  # (a disk without flock: no lease, read as before)
                fd = hour_lease(Path(hour), exclusive=False)
                if fd is not None:
                    self._leases[hour] = fd
        for f in files:  # (deleted between the window's read and the leases)
            if not os.path.exists(f):
                self.close()
                raise RecordingError(f"{f}: deleted after the window was read (the size budget, PMM_RECORD_MAX_GB?)")

    def close(self) -> None:
        """Let the hours' leases go (the size budget may delete them); reading again is undefined."""
        leases, self._leases = getattr(self, "_leases", {}), {}  # (also from `__del__` of a half-made one)
        for fd in leases.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.group_of)

    def _one(self, i: int) -> str | None:
        k = int(self.group_of[i])
        rows = self._held.get(k)
        if rows is None:
            for old in [j for j in self._held if self.last_row[j] < i]:
                del self._held[old]
            self._let_go_before(i)
            rows = self._held[k] = self._load(k)
        return rows[int(self.row_of[i])]

    def _let_go_before(self, i: int) -> None:
        """The leases of the hours no row from `i` on reads: a replay of weeks held one fd per hour
        to its end, and the size budget could delete none of the hours it had already read."""
        for hour in [h for h in self._leases if self._done_at[h] < i]:
            with contextlib.suppress(OSError):
                os.close(self._leases.pop(hour))

    def _load(self, k: int) -> list[str | None]:
        fi, g = self.groups[k]
        f = self.files[fi]
        try:
            if self._pf is None or self._pf[0] != fi:
                self._pf = (fi, pq.ParquetFile(f, page_checksum_verification=True))
            rows: list[str | None] = self._pf[1].read_row_group(g, columns=["payload"]).column("payload").to_pylist()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise RecordingError(f"{f}: unreadable during the replay ({_describe(exc)}): it changed or was "
                                 f"deleted after the window was opened") from None
        return rows

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "groups": self.groups, "group_of": self.group_of, "row_of": self.row_of}

    def __setstate__(self, st: dict[str, Any]) -> None:
        self.__init__(st["files"], st["groups"], st["group_of"], st["row_of"])  # type: ignore[misc]


def _column(chunks: list[pa.Array]) -> pa.ChunkedArray:
    """The files' chunks of one text column as one column (cast to large strings only when the
    files disagree on the type)."""
    if len({c.type for c in chunks}) > 1:
        chunks = [c.cast(pa.large_string()) for c in chunks]
    return pa.chunked_array(chunks, chunks[0].type if chunks else pa.string())


STATE_KINDS = frozenset({"start", "params", "strategy", "venue_clock", "rows"})  # rows: a session's fills, ...
STATE_HOURS = 48  # how many hours before a window its recorded state (universe, engine start) is looked for


def _rows_before(f: Path, before: float, problems: list[Problem],
                 payload: bool = True) -> list[tuple[float, int, str, str | None]]:
    """(ts, seq, kind, payload) of a file's rows stamped before `before` (payload None unless asked)."""
    got = _read_checked(f, ["ts", "seq", "kind", "conn", "payload"] if payload else ["ts", "seq", "kind", "conn"])
    if isinstance(got, str):  # (the window's read of the same file says it too: said once)
        _say(problems, f, got)
        return []
    t, dropped = got[1], got[3]
    if dropped is not None:
        _say(problems, f, dropped)
    ts = t.column("ts").to_numpy()
    idx = np.nonzero(ts < before)[0]
    if not len(idx):
        return []
    sub = t.take(pa.array(idx))
    pays = sub.column("payload").to_pylist() if payload else [None] * len(idx)
    return list(zip(sub.column("ts").to_pylist(), sub.column("seq").to_pylist(), sub.column("kind").to_pylist(), pays))


def _closed(h: Path, channel: str) -> list[Path]:
    return sorted(p for p in h.glob(f"{channel}-*.parquet") if _FILE_RE.match(p.name))


def _last_checkpoint(hours: list[Path], t0: float, since: float, problems: list[Problem]) -> float | None:
    """The time of the last checkpoint recorded in [since, t0) (in `hours`' rest files), or None."""
    best: float | None = None
    for h in hours:
        for f in _closed(h, "rest"):
            for ts, _, kind, _ in _rows_before(f, t0, problems, payload=False):
                if kind == "checkpoint" and ts >= since and (best is None or ts > best):
                    best = ts
    return best


def state_before(root: Path, lo: float, problems: list[Problem]) -> tuple[list[tuple[float, int, str, str | None]],
                                                                        list[str]]:
    """What a replay starting at `lo` must know from before it, and the files it came from: the
    last universe recorded before `lo` (the engine records one at every refresh, 5 minutes by
    default), and the engine's last `start` before `lo` with the parameter changes, strategies and
    venue clock recorded since (the engine records them when they happen, not every hour).
    Looked for up to `STATE_HOURS` hours back, newest hour first, until both are found."""
    earlier = [h for h in _hours(root) if (hour_start(h.name) or 0) < lo][::-1][:STATE_HOURS]
    universe: tuple[float, int, str, str | None] | None = None
    engine: list[tuple[float, int, str, str | None]] = []
    start: float | None = None
    files: list[str] = []
    for h in earlier:
        for f in _closed(h, "universe"):
            for r in _rows_before(f, lo, problems):
                files.append(str(f))
                if universe is None or r[:2] > universe[:2]:
                    universe = r
        for f in _closed(h, "engine"):
            rows = [r for r in _rows_before(f, lo, problems) if r[2] in STATE_KINDS]
            if rows:
                files.append(str(f))
            engine.extend(rows)
            starts = [r[0] for r in rows if r[2] == "start"]
            if starts:
                start = max(starts) if start is None else max(start, *starts)
        if universe is not None and start is not None:
            break
    if start is not None:
        engine = [r for r in engine if r[0] >= start]
    clocks = [r for r in engine if r[2] == "venue_clock"]
    engine = [r for r in engine if r[2] != "venue_clock"] + sorted(clocks)[-1:]
    out = [(ts, CHANNELS.index("engine"), kind, pay) for ts, seq, kind, pay in sorted(engine)]
    if universe is not None:
        out.append((universe[0], CHANNELS.index("universe"), universe[2], universe[3]))
    out.sort(key=lambda r: r[0])
    return out, sorted(set(files))


def _refuse_overlaps(sessions: list[str], ts: np.ndarray, ses: np.ndarray, market: np.ndarray) -> None:
    """Sessions' market data must follow each other in time: two engines recording into one
    PMM_RECORD_DIR at once (each with its own DB) made sessions whose frames overlap, and the
    replay played one after the other, its clock going back at the switch, their universes and
    fills mixed. Refused, naming both (`import-pmxt` refuses such an import for the same reason).
    A session without market frames (engine events alone) is not checked."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for k in range(len(sessions)):
        t = ts[(ses == k) & market]
        if len(t):
            first[k], last[k] = float(t.min()), float(t.max())
    ranked = sorted(first, key=lambda k: first[k])
    for a, b in zip(ranked, ranked[1:]):
        if last[a] > first[b]:
            raise RecordingError(
                f"recording sessions {sessions[a]} ({iso(first[a])} .. {iso(last[a])}) and {sessions[b]} "
                f"({iso(first[b])} .. {iso(last[b])}) overlap in time: two engines recorded into one PMM_RECORD_DIR; "
                f"a replay plays one engine's record: move one session's files (*-{sessions[b]}*.parquet) elsewhere")


def _sources(files: list[str], lengths: list[np.ndarray], digests: list[str], ts: np.ndarray, seq: np.ndarray,
             wanted: np.ndarray) -> list[FileUse]:
    """`FileUse` of each file that gave kept rows; `ts`, `seq` and `wanted` (kept) are over the
    files' rows end to end, in `files`' order; `digests`: each file's kept payloads' (`_read`)."""
    out: list[FileUse] = []
    at = 0
    for f, ln, dg in zip(files, lengths, digests):
        end = at + len(ln)
        k = wanted[at:end]
        n = int(k.sum())
        if n:
            t, s = ts[at:end][k], seq[at:end][k]
            out.append(FileUse(f, n, float(t.min()), float(t.max()), int(s.min()), int(s.max()), int(ln[k].sum()),
                               dg))
        at = end
    return out


def load_window(root: str | Path, t0: float | str, t1: float | str, *, warmup: bool = True) -> Window:
    """Every event in [t0, t1] of every channel, plus (with `warmup`) the events of t0's hour before
    t0, so books can be rebuilt from that hour's snapshots and checkpoints before trading starts;
    when that part of the hour holds no checkpoint (a window in its first minutes), from the last
    checkpoint of the hour before. With `warmup`, the window's `preamble` holds the universe and
    engine state recorded before its first row (`state_before`)."""
    root = Path(root)
    t0, t1 = parse_time(t0), parse_time(t1)  # ISO text too, as everywhere in the API
    if t1 <= t0:
        raise RecordingError(f"empty window: --to ({iso(t1)}) must be after --from ({iso(t0)})")
    start_h = t0 - (t0 % 3600) if warmup else t0
    early: list[Problem] = []
    if warmup:
        this_and_before = [h for h in _hours(root) if start_h - 3600 <= (hour_start(h.name) or 0) <= start_h]
        if _last_checkpoint([h for h in this_and_before if hour_start(h.name) == start_h], t0, start_h, early) is None:
            ck = _last_checkpoint(this_and_before, start_h, start_h - 3600, early)
            if ck is not None:
                start_h = ck  # (the name stays: the warm-up's start)
    hours = [h for h in _hours(root) if start_h - 3600 < (hour_start(h.name) or 0) <= t1]
    problems: list[Problem] = []
    listing = _listing(root, hours)
    lo = start_h if warmup else t0
    need = _estimated_payload_bytes([f for done, _ in listing.values() for f in done], lo, t1)
    pack = None if need > EAGER_PAYLOAD_BYTES else _Packer(need)
    try:
        w = _load(root, t0, t1, warmup, start_h, lo, listing, pack, problems)
    except BaseException:
        if pack is not None:
            _SPARE.give(pack.buf)  # (no window holds it)
        raise
    # The window holds Python objects only: the Arrow tables are garbage now, but Arrow's memory
    # pool keeps what they freed (mimalloc: ≈ 2 GB after reading the bench's hour of 50 markets,
    # RSS 2.85 GB → 0.88 GB once given back); give it back to the OS now, not at some later
    # allocation, so a replay (and every forked sweep worker) runs in what the window needs.
    pa.default_memory_pool().release_unused()
    return w


def _load(root: Path, t0: float, t1: float, warmup: bool, start_h: float, lo: float,
          listing: dict[Path, tuple[list[Path], list[Path]]], pack: _Packer | None, problems: list[Problem]) -> Window:
    """`load_window`'s read of the files `listing` holds (the Arrow memory it used is garbage when it returns)."""
    parts: list[tuple[str, int, pa.Table]] = []  # session, channel index, table
    bad_by_session: dict[str, list[str]] = {}
    files: list[str] = []
    pending: list[str] = []
    unclosed: dict[str, list[str]] = {}  # session -> parts its dead writer never closed
    part_files: list[str] = []  # the file of each of `parts`
    group_rows: list[list[int]] = []  # and the rows of each of its row groups
    lengths: list[np.ndarray] = []  # and each of its rows' payload length (the window's `sources`)
    file_rows: list[np.ndarray | None] = []  # and the file's row of each of its rows (None: every row)
    digests: list[str] = []  # and its kept rows' `PayloadDigest`
    for done, opened in listing.values():
        for f in opened:
            try:
                live = being_written(f)
            except OSError as exc:
                problems.append(Problem(str(f), _unopenable(exc)))
                continue
            m = _FILE_RE.match(f.name.removesuffix(OPEN_SUFFIX))
            if live is None:
                continue  # closed since the listing: read next time (this listing stays a prefix)
            if m is None or m["channel"] not in CHANNELS:  # not read, as its closed form is not
                if not live:  # (a dead writer's: said, as a closed file of that name is; it used to go unsaid)
                    problems.append(Problem(str(f), _OPEN_NAME_PROBLEM))
                continue
            if live:
                pending.append(str(f))
                continue
            if _footer_rows(f) is not None:  # complete but never renamed: its writer died while closing
                problems.append(Problem(str(f), _unclosed_message(True)))
                done = [*done, f]
                continue
            if _lost_after(f, m, done, t1):
                continue
            problems.append(Problem(str(f), _unclosed_message(False)))
            bad_by_session.setdefault(m["session"], []).append(str(f))
            unclosed.setdefault(m["session"], []).append(str(f))
        for f in done:
            m = _FILE_RE.match(f.name.removesuffix(OPEN_SUFFIX))
            if m is None or m["channel"] not in CHANNELS:
                problems.append(Problem(str(f), _NAME_PROBLEM))
                continue
            files.append(str(f))
            got = _read(f, problems, lo, t1, pack)  # only the kept rows' payloads (None: a lazy window)
            if got is None:
                bad_by_session.setdefault(m["session"], []).append(str(f))
                continue
            if got[3] is not None:  # rows dropped: the gap they leave names the file
                bad_by_session.setdefault(m["session"], []).append(str(f))
            parts.append((m["session"], CHANNELS.index(m["channel"]), got[0]))
            part_files.append(str(f))
            group_rows.append(got[1])
            lengths.append(got[2])
            file_rows.append(got[3])
            digests.append(got[4])
    if not parts:
        where = f"{iso(t0)} .. {iso(t1)} under {root}"
        raise RecordingError(f"no readable recordings for {where}" +
                             (f" ({'; '.join(str(p) for p in problems)})" if problems else ""))
    sessions: list[str] = []
    seq_l, ts_l, ch_l, conn_l, ses_l = [], [], [], [], []
    kind_c: list[pa.Array] = []  # the text column stays Arrow chunks: only the rows kept become str
    for ses, ch, t in parts:
        n = t.num_rows
        if n and ses not in sessions:  # (a file every row of which was dropped gives its session none)
            sessions.append(ses)
        seq_l.append(t.column("seq").to_numpy())
        ts_l.append(t.column("ts").to_numpy())
        ch_l.append(np.full(n, ch, np.int8))
        conn_l.append(t.column("conn").to_numpy())
        kind_c.extend(t.column("kind").chunks)
        ses_l.append(np.full(n, sessions.index(ses) if n else -1, np.int32))
    seq = np.concatenate(seq_l)
    ts = np.concatenate(ts_l)
    ch_a = np.concatenate(ch_l)
    conn = np.concatenate(conn_l)
    ses_a = np.concatenate(ses_l)
    file_seq, file_ts = seq, ts  # (the files' order: `sources` reads them so)
    # order: sessions by their first event, then each session by its own sequence (the loop's order)
    first_ts = {s: float(ts[ses_a == s].min()) for s in range(len(sessions))}
    _refuse_overlaps(sessions, ts, ses_a, ch_a == CHANNELS.index("market"))
    ses_rank = np.array([first_ts[s] for s in range(len(sessions))])[ses_a]
    order = np.lexsort((seq, ses_rank))
    seq, ts, ch_a, conn, ses_a = seq[order], ts[order], ch_a[order], conn[order], ses_a[order]
    # gaps: holes in a session's sequence (a lost/unreadable file, deleted hours)
    gap_at: dict[int, Gap] = {}
    same = ses_a[1:] == ses_a[:-1]
    jump = np.nonzero(same & (np.diff(seq) > 1))[0]
    market = CHANNELS.index("market")
    last_at = -1
    for i in jump.tolist():
        s = sessions[int(ses_a[i])]
        missing = int(seq[i + 1] - seq[i] - 1)
        prev = gap_at.get(last_at)
        if prev is not None and prev.session == s and not (ch_a[last_at:i + 1] == market).any():
            # holes separated only by other channels' rows (cycles): one gap in the market data
            gap_at[last_at] = Gap(s, prev.after_ts, float(ts[i + 1]), prev.missing_rows + missing, prev.files)
            continue
        last_at = i + 1
        gap_at[last_at] = Gap(s, float(ts[i]), float(ts[i + 1]), missing, tuple(bad_by_session.get(s, ())))
    # rows lost at a session's edges, where no hole between two rows read shows them: a dead writer's
    # unclosed parts (after its last row read), rows dropped (`_usable_rows`) before its first or after
    # its last: their gap is before the session's first row, or before the row after its last
    edge: dict[tuple[str, bool], tuple[int, list[str]]] = {}  # (session, after its last?) -> rows (-1: unknown), files

    def lose(s: str, at_end: bool, rows: int, f: str) -> None:
        n, fs = edge.get((s, at_end), (0, []))
        edge[(s, at_end)] = (-1 if rows < 0 or n < 0 else n + rows, [*fs, f])

    for s, lost in unclosed.items():
        for name in lost:
            lose(s, True, -1, name)
    for (s, _, t), name, kept, sizes in zip(parts, part_files, file_rows, group_rows):
        if kept is not None and s in sessions:
            n_before, n_after = _lost_at_edges(t.column("seq").to_numpy(), kept, sum(sizes),
                                               seq[ses_a == sessions.index(s)])
            for at_end, n_lost in ((False, n_before), (True, n_after)):
                if n_lost:
                    lose(s, at_end, n_lost, name)
    tail_gaps: list[Gap] = []
    for (s, at_end), (n_lost, lost) in edge.items():
        if s not in sessions:
            continue
        mine = np.nonzero(ses_a == sessions.index(s))[0]
        if at_end:
            nxt = int(mine[-1]) + 1
            after = float(ts[nxt - 1])
            before = float(ts[nxt]) if nxt < len(ts) else max(after, max(_file_end(f) for f in lost))
        else:
            nxt = int(mine[0])
            before = float(ts[nxt])
            after = min(before, max([min(_file_start(f) for f in lost)] + ([float(ts[nxt - 1])] if nxt else [])))
        g = Gap(s, after, before, n_lost, tuple(bad_by_session.get(s, ())))
        problems.append(Problem(lost[0], str(g)))  # (said with its file: the replay's reset says it once)
        if nxt < len(ts) and nxt not in gap_at:
            gap_at[nxt] = g
        else:  # no row after it, or another gap already before that row (the books reset there all the same)
            tail_gaps.append(g)
    dup = np.nonzero(same & (np.diff(seq) == 0))[0]
    if len(dup):
        problems.append(Problem(str(root), f"{len(dup)} duplicate sequence numbers (two copies of a file?): "
                                           "kept both"))
    # cut: warm-up from the start of t0's hour, nothing after t1 (the bounds `_read` got)
    keep = (ts <= t1) & (ts >= (start_h if warmup else t0))
    idx = np.nonzero(keep)[0]
    remap = {int(j): k for k, j in enumerate(idx)}
    gaps = {remap[j]: g for j, g in gap_at.items() if j in remap}
    src = order[idx]  # the kept rows, in the loop's order, as positions in the files' rows
    wanted = np.zeros(len(order), np.bool_)
    wanted[src] = True
    at = np.cumsum(wanted) - 1  # a kept file row's position among the kept rows (file order)
    mask = pa.array(wanted)
    every = bool(wanted.all())
    kind_kept = (_column(kind_c) if every else _column(kind_c).filter(mask)).to_pylist()
    pos = at[src].tolist()
    kinds = [kind_kept[i] for i in pos]
    pays: Sequence[str | None]
    if pack is None:  # lazy: per kept row, which row group of which file, which row of it
        groups = [(fi, g) for fi, rows in enumerate(group_rows) for g in range(len(rows))]
        starts = np.cumsum([0] + [n for rows in group_rows for n in rows])  # the files' row groups, end to end
        if any(r is not None for r in file_rows):  # rows dropped: the kept rows' rows in their files
            first = np.cumsum([0] + [sum(rows) for rows in group_rows])
            row = np.concatenate([first[i] + (np.arange(len(ln)) if r is None else r)
                                  for i, (r, ln) in enumerate(zip(file_rows, lengths))])[src]
        else:
            row = src
        group_of = (np.searchsorted(starts, row, side="right") - 1).astype(np.int32)
        pays = LazyPayloads(part_files, groups, group_of, (row - starts[group_of]).astype(np.int64))
    else:
        pays = pack.payloads(pos)  # (`_read` kept each file's rows in [lo, t1]: `wanted`, file by file)
    sources = _sources(part_files, lengths, digests, file_ts, file_seq, wanted)
    preamble: list[tuple[float, int, str, str | None]] = []
    if warmup:
        preamble, state_files = state_before(root, float(ts[idx[0]]) if len(idx) else start_h, problems)
        wts = ts[idx]
        if "start" in kinds and any(k == "start" and wts[j] < t0 for j, k in enumerate(kinds)):
            # the session trading at t0 started inside the warm-up: an earlier one's engine state is not its own
            preamble = [r for r in preamble if r[1] != CHANNELS.index("engine")]
        files.extend(f for f in state_files if f not in files)
    w = Window(
        t0=t0, t1=t1, ts=ts[idx], channel=ch_a[idx], kind=kinds, conn=conn[idx],
        payload=pays, session=[sessions[int(s)] for s in ses_a[idx]],
        gap_before=gaps, problems=problems, files=files, pending=pending, preamble=preamble, tail_gaps=tail_gaps,
        sources=sources)
    return w
