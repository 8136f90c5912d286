"""Full-fidelity recording of what the venue sent: market-channel frames as received, the REST
snapshots used for resyncs, the universe with each market's metadata, and the engine's own clock
(cycle times, parameter changes) with the venue's answers a replay cannot rebuild from market data
(a market settled from `GET /markets/{cid}`), as Parquet files (zstd) under `PMM_RECORD_DIR`.

Why this shape:
- One schema for every channel (`seq, ts, kind, conn, payload`): `payload` is the raw frame text
  (or JSON for the other channels), so nothing is lost to a parser and one reader serves all.
- `seq` is one counter per recording session across all channels, taken on the event loop in
  the order things happened there; the replayer merges channels by it, so a replay sees frames,
  resyncs and cycles in exactly the order the live loop did, and any missing row (a lost or
  truncated file) shows up as a hole in the sequence: a *gap*.
- `ts` is the local receive time (the same float the stream and the cycle used as `now`).
- Layout `ROOT/YYYY-MM-DDTHH/<channel>-<session>-<part>.parquet` (UTC hour of `ts`): per hour
  and channel (and session, so a restart in the same hour never overwrites anything) a numbered
  part file per `PMM_RECORD_ROTATE_SEC` of wall time (0: one `<channel>-<session>.parquet` per
  hour). The size budget deletes whole hours, oldest first.
- Why parts: a Parquet file is readable only once its footer is written, at close. Closing a part
  every `rotate_sec` makes everything but the last interval replayable while the engine still
  records, and a crash (kill -9) loses at most that interval. A file being written is named
  `<name>.parquet.open` and holds an exclusive `flock` while its writer lives; it is renamed to
  `<name>.parquet` after its footer is written, so a reader never sees half a file under the
  final name, and an `.open` file nobody locks is the remains of a writer that died (reported
  by the reader as lost rows, never read).
- The event loop only appends a tuple to a deque (bounded: `MAX_QUEUE_BYTES`, beyond which
  market rows are dropped, counted and said); a writer thread turns batches into Parquet row
  groups, rotates parts and hours, enforces `PMM_RECORD_MAX_GB`, and writes the rows of a part a
  failed write broke again into a new part (`Recorder._abandon`), and closes its parts itself last.
- Page checksums are written and verified by the reader: a damaged file is named, not misread.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pmm_widgets.errors import PmmError
from pmm_widgets.store.recorder import SESSION_COLUMNS

log = logging.getLogger(__name__)

SCHEMA_VERSION = "pmm-recording/1"
CHANNELS = ("market", "rest", "universe", "engine")
HOUR_FMT = "%Y-%m-%dT%H"
FAILURE_LOG_SEC = 60.0  # write failures: one line, then at most one a minute
HOLD_BYTES = 64 << 20  # the rows of the open parts kept in memory to write again when a part breaks
STALL_SEC = 30.0  # a writer thread's drain lasting longer shows as "recording STALLED" on the status line
CLOSE_WAIT_SEC = 60.0  # `close` waits this long for the writer thread's last drain and closes
PUBLISH_WAIT_SEC = 10.0  # a recorder's publish waits at most this for readers' listings, then goes on
MAX_QUEUE_BYTES = 512 << 20  # rows waiting for the writer thread beyond this are dropped (counted, said)
ROW_BYTES = 200  # a queued row's memory besides its payload (tuple, floats, kind)
OPEN_SUFFIX = ".open"  # a part still being written: `<name>.parquet.open`
ARROW_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("ts", pa.float64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("conn", pa.int32(), nullable=False),
        pa.field("payload", pa.string()),
    ],
    metadata={b"pmm_schema": SCHEMA_VERSION.encode()},
)

Row = tuple[str, int, float, str, int, str | None]  # channel, seq, ts, kind, conn, payload


def hour_start(name: str) -> float | None:
    """The epoch second an hour folder's name (`HOUR_FMT`) starts at; None for another name."""
    try:
        return float(calendar.timegm(datetime.datetime.strptime(name, HOUR_FMT).timetuple()))
    except ValueError:
        return None


def is_hour_name(name: str) -> bool:
    """A folder name a recorder writes (`HOUR_FMT`, zero-padded, e.g. 2026-12-01T10)."""
    return len(name) == 13 and hour_start(name) is not None


def writable_dir(path: Path) -> None:
    """Make `path` (and its parents) and write a file there: OSError when it cannot be used.
    Each caller turns it into its own one-line error before any work starts."""
    import tempfile

    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".pmm-probe-"):
        pass


def hour_key(ts: float) -> str:
    return time.strftime(HOUR_FMT, time.gmtime(ts))


def _json_default(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    if hasattr(v, "value"):
        return v.value
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, separators=(",", ":"), sort_keys=True)


def market_to_json(m: Any) -> dict[str, Any]:
    """A `Market` as plain JSON (Decimal as str); `markets_from_json` reverses it (its `terms`
    decoded again from `raw`, so recordings made before `Market.terms` replay the same)."""
    d = asdict(m)
    d.pop("terms", None)  # decoded from `raw` again on the way back (markets_from_json)
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in d.items()}


_MARKET_STR = ("question", "slug", "gamma_id")
_MARKET_BOOL = ("neg_risk", "active", "closed", "accepting_orders", "enable_order_book")
_MARKET_FLOAT = ("liquidity_num", "volume_24h")
_MARKET_PRICE = ("best_bid", "best_ask")  # floats too, None when Gamma gave none


def _number(what: str, k: str, v: Any) -> str | int | float:
    """A recorded number (as `market_to_json` writes it: a number, or Decimal's text)."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise ValueError(f"{what}: {k} is no number")
    return v


def markets_from_json(items: Any) -> list[Any]:
    """`market_to_json`'s list back as `Market`s. ValueError naming the market and field when the
    list is not what that writes (a damaged recording, a writer of another version): a tick off
    [0, 1), a size, number or flag of another type, an id that is no text; a replay names such a
    row and keeps the universe it had."""
    from ..domain import Market
    from ..venue.gamma_terms import decode_terms

    if not isinstance(items, list):
        raise ValueError(f"a universe is a list of markets, not {type(items).__name__}")
    fields = set(Market.__dataclass_fields__)
    out = []
    for n, d in enumerate(items):
        if not isinstance(d, dict):
            raise ValueError(f"market {n}: not an object")
        kw = {k: v for k, v in d.items() if k in fields}
        cid = kw.get("condition_id")
        what = f"market {n} ({str(cid)[:20]})"
        if not isinstance(cid, str) or not cid:
            raise ValueError(f"{what}: condition_id is no id")
        for k in ("yes_token_id", "no_token_id"):  # (empty: a market Gamma named no tokens of, never quoted)
            if not isinstance(kw.get(k), str):
                raise ValueError(f"{what}: {k} is no id")
        for k in _MARKET_STR:
            if k in kw and not isinstance(kw[k], str):
                raise ValueError(f"{what}: {k} is no text")
        for k in _MARKET_BOOL:
            if k in kw and not isinstance(kw[k], bool):
                raise ValueError(f"{what}: {k} is no true/false")
        for k in ("tick_size", "min_order_size"):
            v = _number(what, k, kw.get(k))
            try:
                kw[k] = Decimal(str(v))
            except ArithmeticError:
                raise ValueError(f"{what}: {k} is no number: {str(v)[:20]!r}") from None
        if not (kw["tick_size"].is_finite() and 0 <= kw["tick_size"] < 1):  # (0: Gamma named none, never quoted)
            raise ValueError(f"{what}: tick_size {kw['tick_size']} is not in [0, 1)")
        if not (kw["min_order_size"].is_finite() and kw["min_order_size"] >= 0):
            raise ValueError(f"{what}: min_order_size {kw['min_order_size']} is no size")
        for k in (*_MARKET_FLOAT, *_MARKET_PRICE):
            if k not in kw or (kw[k] is None and k in _MARKET_PRICE):
                continue
            v = _number(what, k, kw[k])
            try:
                kw[k] = float(v)
            except (ValueError, OverflowError):
                raise ValueError(f"{what}: {k} is no number: {str(v)[:20]!r}") from None
        if kw.get("end_date") is not None and not isinstance(kw["end_date"], str):
            raise ValueError(f"{what}: end_date is no text")
        raw = kw.get("raw")
        if raw is not None and not isinstance(raw, dict):
            raise ValueError(f"{what}: raw is no object")
        kw.pop("terms", None)
        out.append(Market(**kw, terms=decode_terms(raw or {})))
    return out


@dataclass(slots=True)
class RecorderStats:
    rows: int = 0  # rows written to files
    queued: int = 0  # rows waiting for the writer thread
    bytes_written: int = 0  # size of the closed files
    files: int = 0
    hours_deleted: int = 0
    errors: int = 0
    dropped: int = 0  # rows not written while the disk was below PMM_RECORD_MIN_FREE_GB
    lost: int = 0  # rows a failed write cost (written again once when held: `Recorder.hold_bytes`), or a bad time
    overflow: int = 0  # rows dropped because the writer thread was `max_queue_bytes` behind
    unwritten: dict[str, int] = field(default_factory=dict)  # the writer's dropped and lost rows, by channel
    # (the loop's `overflow` rows by channel: `Recorder._overflow_by`; both in `Recorder.losses`)


class Recorder:
    """Append on the event loop (`frame`, `rest`, `universe`, `engine`); a thread writes Parquet."""

    def __init__(self, root: str | os.PathLike[str], *, max_gb: float = 0.0, flush_sec: float = 5.0,
                 session: str | None = None, budget_every_sec: float = 30.0, rotate_sec: float = 0.0,
                 min_free_gb: float = 0.0, hold_bytes: int = HOLD_BYTES,
                 max_queue_bytes: int = MAX_QUEUE_BYTES) -> None:
        """`rotate_sec` > 0: a new part file per channel every `rotate_sec` of wall time (the
        writer wakes at least 4 times per interval); 0: one file per hour and channel.
        `min_free_gb` > 0: the disk's floor (`_check_disk`): below it writing pauses (rows dropped:
        a gap a replay reports) until the disk has room again; nothing is deleted for it.
        `hold_bytes`: the rows written into the open parts are also held in memory up to this many
        bytes in all (a minute's rotation of 50 markets is ≈ 13 MB), so that a part broken by a
        failed write (a disk full for a moment: its Parquet writer is unusable, the file has no
        footer) is dropped and its rows written again, once, into a new part (`_abandon`).
        `max_queue_bytes`: the memory the rows waiting for the writer thread may take (a burst, a
        stalled disk); beyond it a market, REST or universe row is dropped on the event loop (its
        sequence number taken: a gap the replay reports), counted (`stats.overflow`), said once a minute and on the status
        line, instead of growing the engine's memory without bound. Only with the writer thread
        running (`start`): a recorder its caller drains (`flush`: the PMXT import) drops nothing."""
        self.root = Path(root)
        self.max_bytes = int(max_gb * 1e9) if max_gb and max_gb > 0 else 0
        self.min_free = int(min_free_gb * 1e9) if min_free_gb and min_free_gb > 0 else 0
        self._low_disk = False  # paused below `min_free`: rows are dropped, not written
        self.rotate_sec = max(0.0, rotate_sec)
        self.flush_sec = min(flush_sec, self.rotate_sec / 4) if self.rotate_sec else flush_sec
        self.budget_every_sec = budget_every_sec
        self.session = session or uuid.uuid4().hex[:8]
        self._q: deque[Row] = deque()
        self.max_queue_bytes = max_queue_bytes
        self._in_bytes = 0  # bytes queued so far (the event loop's count) ...
        self._out_bytes = 0  # ... and taken off the queue (the writer's): each written by one thread
        self._overflow_said = -2 * FAILURE_LOG_SEC  # (monotonic) when the loop last said it drops rows
        self._overflow_at = -2 * FAILURE_LOG_SEC  # and when it last dropped one
        self._overflow_by: dict[str, int] = {}  # the loop's dropped rows by channel (written by the loop only)
        self._leased_said: set[str] = set()  # the hours the budget said it kept (a replay reading them, a writer)
        self._closed = ""  # after `close`: what it said (`losses`), which `health` says from then on
        self._close_said = False
        self._seq = 0
        self._writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self._paths: dict[tuple[str, str], Path] = {}  # the final name; written as name + OPEN_SUFFIX
        self._locks: dict[tuple[str, str], int] = {}  # fd holding the flock of the open file
        self._slot: dict[tuple[str, str], int] = {}  # rotation slot the open file belongs to
        self._parts: dict[tuple[str, str], int] = {}  # parts opened so far per (hour, channel)
        self._hour_leases: dict[str, int] = {}  # hour -> fd of its shared lease while written into (`_lease_hour`)
        self.hold_bytes = hold_bytes
        self._held: dict[tuple[str, str], list[pa.Table] | None] = {}  # what each open part holds (None: too much)
        self._held_bytes = 0
        self._part_rows: dict[tuple[str, str], int] = {}  # rows written into each open part
        self._retry: list[tuple[tuple[str, str], pa.Table]] = []  # a broken part's rows, for the next drain
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._drains = threading.Condition()  # `flush` waits on it for a drain started after its call
        self._started = self._finished = 0  # drains the writer thread started / finished
        self._drain_began: float | None = None  # (monotonic) when the writer thread's current drain began
        self._thread: threading.Thread | None = None
        self._last_budget = self._last_disk = 0.0
        self._said_at = -2 * FAILURE_LOG_SEC  # `_failed`: when a failure was last said, and how many since
        self._unsaid = 0
        self._last_failure: tuple[float, str] | None = None  # (monotonic time, what) of the latest failure
        self.stats = RecorderStats()

    # ---------------------------------------------------------------- event-loop side (cheap)
    def record(self, channel: str, ts: float, kind: str, payload: str | None, conn: int = -1) -> None:
        self._seq += 1
        if (self._in_bytes - self._out_bytes > self.max_queue_bytes and channel != "engine"
                and self._thread is not None):  # (never started: its caller drains it, `flush`; nothing dropped)
            self._overflowed(channel)  # (the engine's rows are small and few, and a replay needs them: its
            return  # fills, its `stop`, which also makes a hole at the recording's end a gap the replay sees)
        self._in_bytes += ROW_BYTES + (len(payload) if payload else 0)
        self._q.append((channel, self._seq, ts, kind, conn, payload))

    def _overflowed(self, channel: str) -> None:
        """A row dropped on the event loop: the writer thread is `max_queue_bytes` behind."""
        self.stats.overflow += 1
        self._overflow_by[channel] = self._overflow_by.get(channel, 0) + 1
        self._overflow_at = now = time.monotonic()
        if now - self._overflow_said >= FAILURE_LOG_SEC:
            self._overflow_said = now
            log.error("recording: the writer is %.0f MB behind under PMM_RECORD_DIR=%s: rows are dropped (a gap "
                      "in the recording; %d so far) until it catches up; trading goes on",
                      (self._in_bytes - self._out_bytes) / 1e6, self.root, self.stats.overflow)

    def _popleft(self) -> Row:
        row = self._q.popleft()
        self._out_bytes += ROW_BYTES + (len(row[5]) if row[5] else 0)
        return row

    def frame(self, ts: float, conn: int, frame: str) -> None:
        self.record("market", ts, "frame", frame, conn)

    def conn_event(self, ts: float, kind: str, conn: int, assets: Iterable[str]) -> None:
        """`open` (with the assets subscribed on connect), `close`, `sub`, `unsub`."""
        self.record("market", ts, kind, dumps(sorted(assets)), conn)

    def rest(self, ts: float, snapshots: Sequence[Any]) -> None:
        self.record("rest", ts, "books", dumps(list(snapshots)))

    def universe(self, ts: float, markets: Sequence[Any]) -> None:
        self.record("universe", ts, "universe", dumps([market_to_json(m) for m in markets]))

    def engine(self, ts: float, kind: str, payload: Any = None) -> None:
        self.record("engine", ts, kind, None if payload is None else dumps(payload))

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Recorder:
        if self._thread is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="pmm-recorder", daemon=True)
            self._thread.start()
        return self

    def close(self, wait_sec: float | None = None) -> str:
        """Write what is queued, close every file (their footers make them readable): the writer
        thread does it as its last act; a thread still writing after `wait_sec` (None:
        `CLOSE_WAIT_SEC`; the engine's stop passes what is left of its budget: a disk that hangs)
        is left to finish on its own, said, and its files are never touched from here (they used
        to be, while the thread still wrote into them, leaving its last parts `.open`).
        Returns `losses()` (said in one WARNING line when not ""), which `health` says from then on:
        the rows of the session that were never written (the last ones dropped or lost while it
        closed were seen by no status line)."""
        t = self._thread
        if t is not None:
            self._stop.set()
            self._wake.set()
            wait_sec = CLOSE_WAIT_SEC if wait_sec is None else wait_sec
            t.join(timeout=wait_sec)
            if t.is_alive():
                log.error("recording: the writer under PMM_RECORD_DIR=%s is still writing after %g s; its last "
                          "parts are closed when it is done (lost if the process exits first)", self.root, wait_sec)
                return self._say_losses(f"; {len(self._q):,} rows still queued (lost if the process exits first)")
            self._thread = None
            if not self._q:
                return self._say_losses()  # (rows recorded after the thread's last drain are written here)
        self._drain()
        self._finish()
        return self._say_losses()

    def losses(self) -> str:
        """"" when no row of this session was dropped or lost; else one line: how many rows of
        which channel were never written (a replay of the recording sees them as gaps), and why."""
        by = dict(self.stats.unwritten)
        for ch, n in list(self._overflow_by.items()):
            by[ch] = by.get(ch, 0) + n
        total = sum(by.values())
        if not total:
            return ""
        order = {c: i for i, c in enumerate(CHANNELS)}
        chans = ", ".join(f"{ch} {n:,}" for ch, n in sorted(by.items(), key=lambda kv: (order.get(kv[0], 99), kv[0])))
        why = [f"{n:,} {what}" for n, what in ((self.stats.overflow, "dropped while the writer was behind"),
                                               (self.stats.dropped, "dropped below PMM_RECORD_MIN_FREE_GB"),
                                               (self.stats.lost, "lost to failed writes")) if n]
        return (f"recording LOST {total:,} rows of session {self.session} ({chans}): {'; '.join(why)} "
                f"(gaps in a replay of it)")

    def _say_losses(self, more: str = "") -> str:
        """`losses()` (and `more`) in one WARNING line, once; kept for `health`."""
        said = self.losses()
        said = (said or ("recording: nothing lost so far" if more else "")) + more
        self._closed = said
        if said and not self._close_said:
            self._close_said = True
            log.warning("%s under PMM_RECORD_DIR=%s", said, self.root)
        return said

    def _unwritten(self, channel: str, n: int, dropped: bool = False) -> None:
        """`n` rows of `channel` the writer will never write: `stats.dropped` (below the disk's
        floor) or `stats.lost`, and by channel (`losses`). The writer thread's only."""
        if n <= 0:
            return
        if dropped:
            self.stats.dropped += n
        else:
            self.stats.lost += n
        self.stats.unwritten[channel] = self.stats.unwritten.get(channel, 0) + n

    def _finish(self) -> None:
        """Close every file (the writer thread's last act, or `close` without a thread)."""
        self._close_writers(lambda _h: True)
        if self._retry:  # a part whose footer failed: its rows get their one more try
            self._drain()
            self._close_writers(lambda _h: True)
        if self._retry:  # (below the disk's floor: not tried)
            n = sum(t.num_rows for _k, t in self._retry)
            for key, t in self._retry:
                self._unwritten(key[1], t.num_rows)
            self._retry.clear()
            log.error("recording: %d rows of a part that could not be written lost at close", n)

    def flush(self) -> None:
        """Write the queued rows now (tests, benches): returns once a drain started after the call
        has written them (it used to return once they were off the queue, before they were written;
        at most 30 s); files stay open (`.open`, unreadable) until their rotation interval or hour
        ends, or `close()`."""
        if self._thread is None:
            self._drain()
            return
        with self._drains:  # a drain that starts after this takes every row queued before it
            target = self._started + 1
        self._wake.set()
        with self._drains:
            self._drains.wait_for(lambda: self._finished >= target or self._thread is None, timeout=30)

    # ---------------------------------------------------------------- writer thread
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_sec)
            self._wake.clear()
            self._counted_drain()
        self._counted_drain()
        try:
            self._finish()
        except Exception as exc:
            self._failed("closing the last parts failed", exc)

    def _counted_drain(self) -> None:
        with self._drains:
            self._started += 1
        self._drain_began = time.monotonic()
        try:
            self._safe_drain()
        finally:
            self._drain_began = None
            with self._drains:
                self._finished += 1
                self._drains.notify_all()

    def _safe_drain(self) -> None:
        """A drain that fails in a way `_drain` does not expect is logged and counted; the thread
        goes on (a dead writer thread would leave every later row queued in memory, unwritten)."""
        try:
            self._drain()
        except Exception as exc:
            self._failed("a write cycle failed", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        """A write failure: counted; said in one line (no traceback: `--log-level DEBUG` has it)
        the first time, then at most once a minute with the count since. A full disk or a
        vanished directory fails every drain; a traceback per drain flooded the terminal."""
        self.stats.errors += 1
        now = time.monotonic()
        self._last_failure = (now, f"{what}: {type(exc).__name__}")
        self._unsaid += 1
        if now - self._said_at < FAILURE_LOG_SEC:
            return
        more = f" ({self._unsaid} failures since the last message)" if self._said_at > -FAILURE_LOG_SEC else ""
        log.error("recording: %s under PMM_RECORD_DIR=%s: %s: %s%s (trading goes on; rows are lost until it "
                  "can write)", what, self.root, type(exc).__name__, exc, more)
        log.debug("recording failure", exc_info=exc)
        self._said_at, self._unsaid = now, 0

    def health(self) -> str:
        """"" while writing works; after `close`, what it said (`losses`: the rows never written);
        "recording FAILING (…)" while a write failed within the last
        `FAILURE_LOG_SEC`, "recording DROPPING (…)" while the writer was too far behind within it,
        "recording PAUSED (…)" below the disk's floor, "recording STALLED (…)" while one drain of the
        writer thread has lasted more than `STALL_SEC` (the engine's status line and the dashboard
        show it: rows are being lost, or will be)."""
        if self._closed:
            return self._closed
        if self._low_disk:
            return (f"recording PAUSED (disk below PMM_RECORD_MIN_FREE_GB={self.min_free / 1e9:g}; "
                    f"{self.stats.dropped} rows dropped)")
        behind = self._in_bytes - self._out_bytes
        began = self._drain_began  # (read once: the writer thread sets it to None between drains)
        busy = time.monotonic() - began if began is not None else 0.0
        if busy > STALL_SEC and self._thread is not None:  # e.g. a disk that hangs: nothing fails, nothing is written
            return f"recording STALLED (one write for {busy:.0f} s; {behind / 1e6:.0f} MB waiting)"
        if time.monotonic() - self._overflow_at <= FAILURE_LOG_SEC:
            return (f"recording DROPPING (writer {behind / 1e6:.0f} MB behind; "
                    f"{self.stats.overflow} rows dropped)")
        last = self._last_failure
        if last is None or time.monotonic() - last[0] > FAILURE_LOG_SEC:
            return ""
        return f"recording FAILING ({last[1]}; {self.stats.errors} errors)"

    def _rotation_slot(self) -> int:
        return int(time.time() // self.rotate_sec) if self.rotate_sec else 0

    def _drain(self) -> None:
        n = len(self._q)
        self.stats.queued = n
        slot = self._rotation_slot()  # one slot per drain: the files a drain opens close together
        if self.rotate_sec:  # parts whose interval ended are closed even when nothing new came
            self._close_writers(lambda _h: False, slot_now=slot)
        if self._retry and not self._low_disk:
            self._write_retries(slot)
        if not n:
            return
        now = time.monotonic()
        if self.min_free and now - self._last_disk >= self.budget_every_sec:
            self._last_disk = now
            self._check_disk()
        if self._low_disk:  # their sequence numbers are taken: the replay sees a gap, not a silent hole
            by: dict[str, int] = {}
            for _ in range(n):
                ch = self._popleft()[0]
                by[ch] = by.get(ch, 0) + 1
            for ch, k in by.items():
                self._unwritten(ch, k, dropped=True)
            self.stats.queued = len(self._q)
            return
        groups: dict[tuple[str, str], list[Row]] = {}
        for _ in range(n):
            row = self._popleft()
            try:
                hour = hour_key(row[2])
            except (TypeError, ValueError, OverflowError, OSError):  # one bad row must not cost the batch
                self.stats.errors += 1
                self._unwritten(row[0], 1)
                log.error("recording: a %s row (%s) dropped: its time %r is no timestamp", row[0], row[3], row[2])
                continue
            groups.setdefault((hour, row[0]), []).append(row)
        if not groups:
            return
        newest = max(h for h, _ in groups)
        for (hour, channel), rows in sorted(groups.items()):
            retries = len(self._retry)
            try:
                self._write(hour, channel, rows, slot)
            except Exception as exc:  # a full disk must not take the engine down; say so
                if len(self._retry) == retries:  # (not kept for a retry: lost)
                    self._unwritten(channel, len(rows))
                self._failed(f"could not write {len(rows)} {channel} rows for {hour}", exc)
        self.stats.queued = len(self._q)
        self._close_writers(lambda h: h < newest)  # rotation: an hour is complete once a later one starts
        if self.max_bytes and now - self._last_budget >= self.budget_every_sec:
            self._last_budget = now
            self.enforce_budget()

    def _write_retries(self, slot: int) -> None:
        """Write the rows of parts broken in an earlier drain into new parts: their one retry."""
        retry, self._retry = self._retry, []
        by_key: dict[tuple[str, str], list[pa.Table]] = {}
        for key, table in retry:
            by_key.setdefault(key, []).append(table)
        for (hour, channel), tables in sorted(by_key.items()):
            table = pa.concat_tables(tables)
            lost = self.stats.lost
            try:
                self._write_table(hour, channel, table, slot, retry=True)
            except Exception as exc:
                if self.stats.lost == lost:  # (its part could not even be opened: `_abandon` did not count them)
                    self._unwritten(channel, table.num_rows)
                self._failed(f"could not write {table.num_rows} {channel} rows for {hour} again", exc)

    def _write(self, hour: str, channel: str, rows: list[Row], slot: int = 0) -> None:
        table = pa.Table.from_arrays(
            [pa.array([r[1] for r in rows], pa.int64()), pa.array([r[2] for r in rows], pa.float64()),
             pa.array([r[3] for r in rows], pa.string()), pa.array([r[4] for r in rows], pa.int32()),
             pa.array([r[5] for r in rows], pa.string())],
            schema=ARROW_SCHEMA)
        self._write_table(hour, channel, table, slot)

    def _write_table(self, hour: str, channel: str, table: pa.Table, slot: int, retry: bool = False) -> None:
        key = (hour, channel)
        w = self._writers.get(key)
        if w is None:
            d = self.root / hour
            self._lease_hour(hour, d)
            part = self._parts.get(key, 0)
            if self.rotate_sec or part:  # hourly files: a part number when the hour's file was closed
                path = d / f"{channel}-{self.session}-{part:04d}.parquet"  # before (a pause, a late row)
            else:
                path = d / f"{channel}-{self.session}.parquet"
            meta = dict(ARROW_SCHEMA.metadata or {})
            meta.update({b"pmm_channel": channel.encode(), b"pmm_session": self.session.encode()})
            tmp = path.with_name(path.name + OPEN_SUFFIX)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o644)  # locked before anything is written:
            fcntl.flock(fd, fcntl.LOCK_EX)  # readers: held = being written, free = its writer died
            try:
                w = pq.ParquetWriter(tmp, ARROW_SCHEMA.with_metadata(meta), compression="zstd",
                                     write_page_checksum=True)  # the reader verifies them: a flipped bit is named
            except Exception:
                os.close(fd)
                with contextlib.suppress(OSError):  # no writer, no file: an empty `.open` would read as a crash
                    tmp.unlink()
                raise
            self._parts[key] = part + 1  # (a part whose writer failed is not skipped)
            self._writers[key], self._paths[key], self._locks[key] = w, path, fd
            self._slot[key] = slot
            self._held[key], self._part_rows[key] = [], 0
            self.stats.files += 1
        try:
            w.write_table(table.replace_schema_metadata(w.schema.metadata))
        except Exception:
            self._abandon(key, table, retry)
            raise
        self.stats.rows += table.num_rows
        self._part_rows[key] += table.num_rows
        held = self._held.get(key)
        if held is not None:
            if self._held_bytes + table.nbytes <= self.hold_bytes:
                held.append(table)
                self._held_bytes += table.nbytes
            else:  # too much to hold: a failure of this part costs its rows so far
                self._held[key] = None
                self._held_bytes -= sum(t.nbytes for t in held)

    def _lease_hour(self, hour: str, d: Path) -> None:
        """Make the hour's folder `d` if need be and hold its lease shared (`hour_lease`) from the
        first part this recorder opens in the hour until the hour is complete (`_close_writers`),
        between its rotation's parts too. Why: another recorder's size budget takes the lease
        exclusive before it deletes an hour, and used to see no `.open` part of this recorder in it
        between two parts (a rotation), or before the part it was about to open: it deleted the
        hour's closed parts while this recorder went on writing into it (a gap at its newest rows);
        a lease held is an hour kept. The lease waits while such a budget deletes (milliseconds);
        a folder removed meanwhile is made again."""
        for _ in range(3):
            fd = self._hour_leases.get(hour)
            if fd is not None:
                try:
                    if os.path.samestat(os.fstat(fd), os.stat(d)):
                        return
                except OSError:
                    pass
                del self._hour_leases[hour]  # (its folder removed: by hand, or by a budget while the lease waited)
                os.close(fd)
            d.mkdir(parents=True, exist_ok=True)
            try:
                fd = hour_lease(d, exclusive=False)
            except OSError:  # (a disk without flock: written unleased, as before)
                return
            if fd is not None:
                self._hour_leases[hour] = fd
        d.mkdir(parents=True, exist_ok=True)

    def _release_hours(self, which: Callable[[str], bool]) -> None:
        """Let the leases of the hours `which` selects go (complete: no part of this recorder open there)."""
        for hour in [h for h in self._hour_leases if which(h) and not any(k[0] == h for k in self._writers)]:
            os.close(self._hour_leases.pop(hour))

    def _release(self, key: tuple[str, str]) -> list[pa.Table] | None:
        """Forget what an open part holds (it is closed or dropped): its held tables, None if not held."""
        held = self._held.pop(key, None)
        self._part_rows.pop(key, None)
        if held:
            self._held_bytes -= sum(t.nbytes for t in held)
        return held

    def _abandon(self, key: tuple[str, str], failed: pa.Table | None, retry: bool) -> None:
        """A part whose write (or footer) failed: its Parquet writer is unusable and its file has
        no footer, so every row in it would be lost, and so would every later row written into it.
        The part is dropped (its `.open` file removed: a reader would misread it as a crashed
        writer's) and its rows, held since it opened, wait for the next drain to be written again
        into a new part, once (`retry`: this was that once); rows that cannot be, are counted lost."""
        n_written = self._part_rows.get(key, 0)
        held = self._release(key)
        w = self._writers.pop(key, None)
        path = self._paths.pop(key, None)
        fd = self._locks.pop(key, None)
        self._slot.pop(key, None)
        if w is not None:
            with contextlib.suppress(Exception):
                w.close()
        if path is not None:
            with contextlib.suppress(OSError):
                path.with_name(path.name + OPEN_SUFFIX).unlink()
        if fd is not None:
            os.close(fd)
        self.stats.rows -= n_written
        tables = [*(held or []), *([failed] if failed is not None else [])]
        if retry or (held is None and n_written):
            lost = sum(t.num_rows for t in tables) if retry else n_written
            self._unwritten(key[1], lost)
            log.error("recording: %d %s rows for %s lost (a part could not be written%s)", lost, key[1], key[0],
                      " again" if retry else ", and it was too large to hold for a retry")
            if retry:
                return
            tables = [failed] if failed is not None else []
        self._retry.extend((key, t) for t in tables)

    def _close_writers(self, which: Callable[[str], bool], slot_now: int | None = None) -> None:
        """Close the files of the hours `which` selects (and with `slot_now`, those opened in
        another rotation slot: an earlier one, or a later one when the wall clock stepped back, whose
        part would otherwise stay open, unreadable and lost to a kill -9, until the clock caught
        up again): every footer first, then all renames at once under the publish lock (a
        reader lists under it, so it sees the closed files as a prefix of the sequence, never
        one channel's part without the other channels' parts of the same interval), then unlock;
        then the leases of the hours `which` selects (`_lease_hour`: a rotation keeps its hour's)."""
        try:
            self._close_parts(which, slot_now)
        finally:
            self._release_hours(which)

    def _close_parts(self, which: Callable[[str], bool], slot_now: int | None) -> None:
        keys = [k for k in self._writers
                if which(k[0]) or (slot_now is not None and self._slot.get(k, 0) != slot_now)]
        if not keys:
            return
        done: list[tuple[tuple[str, str], Path, int | None, list[pa.Table] | None, int]] = []
        for key in keys:
            w = self._writers[key]
            try:
                w.close()
            except Exception as exc:  # no footer: the part is unreadable; its rows get written again
                self._failed(f"could not close {self._paths[key].name}", exc)
                self._abandon(key, None, False)
                continue
            n = self._part_rows.get(key, 0)
            held = self._release(key)
            self._writers.pop(key)
            path = self._paths.pop(key)
            fd = self._locks.pop(key, None)
            self._slot.pop(key, None)
            done.append((key, path, fd, held, n))
        if not done:
            return
        published = 0
        try:
            with publish_lock(self.root, exclusive=True):
                for key, path, _fd, held, n in done:
                    try:
                        os.replace(path.with_name(path.name + OPEN_SUFFIX), path)
                        self.stats.bytes_written += path.stat().st_size
                    except OSError as exc:  # (its folder deleted under it: the rows are held, written again)
                        self._failed(f"could not publish {path.name}", exc)
                        self._requeue(key, held, n)
                    published += 1
        except OSError as exc:  # the lock: PMM_RECORD_DIR cannot be made again
            self._failed("could not take the publish lock", exc)
            for key, _path, _fd, held, n in done[published:]:
                self._requeue(key, held, n)
        finally:
            for _key, _path, fd, _held, _n in done:
                if fd is not None:
                    os.close(fd)  # after the rename: an unlocked `.open` file means a dead writer

    def _requeue(self, key: tuple[str, str], held: list[pa.Table] | None, n: int) -> None:
        """A closed part that could not be published: its held rows are written again (next drain)."""
        self.stats.rows -= n
        if held is None:
            self._unwritten(key[1], n)
            return
        self._retry.extend((key, t) for t in held)

    def enforce_budget(self) -> list[str]:
        """Delete whole hours, oldest first, until the recordings fit `max_bytes`; returns them.
        Only what a recorder wrote: folders named as an hour (`HOUR_FMT`) and their closed
        `.parquet` files; a folder of anything else under PMM_RECORD_DIR is never touched (it
        used to be deleted as an "hour"), nor an hour that is a symlink (its files were deleted on
        the disk it points to), and an hour holding other files keeps them. The `.open` parts a
        dead writer left (kill -9) count and go with their hour (they were never deleted: the hour's
        folder stayed, and every replay over it reported their rows lost); a live one never does.
        Nor an hour a replay is reading (`hour_lease`: a lazy window's files, read as the replay
        gets there, failed it half-way when deleted): skipped, said once, deleted by a later
        round once the replay let it go; the next oldest goes instead. A recorder holds the lease
        of the hour it writes into too (`_lease_hour`), and the hour's files are listed again under
        the exclusive lease: the `.open` probe above ran before it, and a part another recorder
        opened between the two (its next part, at a rotation) used to see its hour's closed parts
        deleted while it went on writing there."""
        if not self.max_bytes or not self.root.exists():
            return []
        open_hours = {h for h, _ in self._writers} | set(self._hour_leases)
        # (an hour linked in from elsewhere is not the recorder's: its files live outside PMM_RECORD_DIR)
        hours = sorted((p for p in self.root.iterdir() if p.is_dir() and not p.is_symlink() and is_hour_name(p.name)),
                       key=lambda p: p.name)
        found = {p.name: _budget_files(p) for p in hours}
        files = {name: fs for name, (fs, _) in found.items()}
        sizes = {name: sum(_size(f) for f in fs) for name, fs in files.items()}
        total = sum(sizes.values())
        deleted: list[str] = []

        def kept(name: str, why: str) -> None:
            """Said once per hour: the budget skips it this round, a later round deletes it."""
            if name not in self._leased_said:
                self._leased_said.add(name)
                log.warning("recording budget PMM_RECORD_MAX_GB=%.3g: hour %s (%.1f MB) kept for now: %s",
                            self.max_bytes / 1e9, name, sizes[name] / 1e6, why)

        def written(name: str, busy: Path) -> None:  # another recorder's open hour (two engines, one PMM_RECORD_DIR)
            kept(name, f"{busy.name} is being written (another recorder in this folder); deleted once it is closed")

        for p in hours:
            if total <= self.max_bytes:
                break
            if p.name in open_hours:
                continue
            busy = found[p.name][1]
            if busy is not None:
                written(p.name, busy)
                continue
            try:
                lease = hour_lease(p, exclusive=True)
            except HourLeased:
                kept(p.name, "a replay is reading it (or a recorder writing it); deleted once it is done")
                continue
            except OSError:
                lease = None  # (not lockable: deleted as before)
            try:
                # what is there now, under the lease: a part opened since the listing above (by a
                # recorder that takes no lease: an older version) keeps the hour, and what was
                # published since goes with it
                files[p.name], busy = _budget_files(p)
                if busy is not None:
                    written(p.name, busy)
                    continue
                size = sum(_size(f) for f in files[p.name])
                total, sizes[p.name] = total + size - sizes[p.name], size
                for f in files[p.name]:
                    with contextlib.suppress(OSError):
                        f.unlink()
                with contextlib.suppress(OSError):
                    p.rmdir()  # empty now, unless something else lives there
            finally:
                if lease is not None:
                    os.close(lease)
            total -= sizes[p.name]
            deleted.append(p.name)
            self.stats.hours_deleted += 1
            log.warning("recording budget PMM_RECORD_MAX_GB=%.3g: deleted hour %s (%.1f MB); %.1f MB left",
                        self.max_bytes / 1e9, p.name, sizes[p.name] / 1e6, total / 1e6)
        return deleted

    def _check_disk(self) -> None:
        """Below `min_free` bytes free on its disk, writing pauses (rows dropped: a gap a replay
        reports) until there is room again; said once each way. A disk filled by recordings
        would stop the trading DB beside them (the writer's fault halts quoting). Nothing is
        deleted for it: `PMM_RECORD_MAX_GB` is what deletes recordings, and the disk may have been
        filled by something else."""
        if not self.min_free:
            return
        try:
            free = free_bytes(self.root)
        except OSError:  # no directory yet (or gone): the write says why, as before
            return
        low = free < self.min_free
        if low and not self._low_disk:
            log.error("recording PAUSED: %.2f GB free on the disk of PMM_RECORD_DIR=%s, below "
                      "PMM_RECORD_MIN_FREE_GB=%.3g: rows are dropped (a gap in the recording) until there is "
                      "room; trading goes on", free / 1e9, self.root, self.min_free / 1e9)
            self._close_writers(lambda _h: True)  # what was written stays readable
        elif self._low_disk and not low:
            log.warning("recording resumes: %.2f GB free on the disk of PMM_RECORD_DIR=%s (%d rows were dropped)",
                        free / 1e9, self.root, self.stats.dropped)
        self._low_disk = low


def _size(f: Path) -> int:
    try:
        return f.stat().st_size
    except OSError:  # (gone since the listing: another recorder's budget)
        return 0


def being_written(f: Path) -> bool | None:
    """For an `.open` part: True while its recorder lives (it holds the flock: this process's or
    another's), False when the writer died without closing it, None when it was closed (renamed)
    since the listing. An `OSError` when it cannot be opened (permissions) or is no file (a
    directory of its name): the reader says it (it used to end the listing and the replay in a
    PermissionError), the budget keeps its hour. The one probe of a part's writer: the reader's
    (`research.recordings`) and the budget's (`_budget_files`)."""
    try:
        fd = os.open(f, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a file", str(f))
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases our probe lock
    return False


def _budget_files(hour: Path) -> tuple[list[Path], Path | None]:
    """What the budget may delete in an hour folder: its closed parts, and the `.open` parts whose
    writer is dead (nobody holds their lock); and an `.open` part a live recorder is writing (or
    that cannot be probed), if any: then the hour is kept whole. Why: two engines recording into
    one PMM_RECORD_DIR each protected only its own open hours, and one's budget deleted the hour
    the other was writing (its closed parts of the hour: a gap in its session, at its newest rows)."""
    out = list(hour.glob("*.parquet"))
    busy = None
    for f in hour.glob("*.parquet" + OPEN_SUFFIX):
        try:
            live = being_written(f)
        except OSError:
            live = True
        if live:
            busy = busy or f
        elif live is False:
            out.append(f)
    return out, busy


def free_bytes(path: Path) -> int:
    """Free bytes on the disk holding `path` (for this user)."""
    return shutil.disk_usage(path).free


@contextlib.contextmanager
def publish_lock(root: Path, *, exclusive: bool) -> Iterator[None]:
    """The recorders' renames of closed parts (exclusive) and the readers' listings (shared)
    exclude each other, so a listing never sees half of a rotation (a recorder waits at most
    `PUBLISH_WAIT_SEC` for a listing, then publishes anyway, said). The lock is a `flock` on the
    recording root directory itself (no lock file among the hours)."""
    if exclusive:
        root.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        if exclusive:
            raise
        yield  # a reader of a missing tree: nobody is publishing there
        return
    try:
        if not exclusive:
            fcntl.flock(fd, fcntl.LOCK_SH)
        elif not _lock_within(fd, PUBLISH_WAIT_SEC):
            log.warning("recording: a reader has held the publish lock of PMM_RECORD_DIR=%s for %.0f s (a listing "
                        "stopped half-way?): publishing without it (that reader may see part of a rotation)",
                        root, PUBLISH_WAIT_SEC)
        yield
    finally:
        os.close(fd)


class HourLeased(PmmError):
    """`hour_lease(..., exclusive=True)`: a reader holds the hour (internal: the budget skips it)."""


def hour_lease(hour: Path, *, exclusive: bool) -> int | None:
    """A lease on an hour folder: a `flock` on the folder itself (no lock file among the parts),
    released when the returned fd is closed. A reader that reads the hour's files later than it
    listed them (a lazy window: `recordings.LazyPayloads`, in this process or another) holds it
    shared for as long as it may read them; the size budget takes it exclusive, without waiting,
    before it deletes the hour (`HourLeased`: a reader holds it, the hour is skipped), and holds it
    while it deletes (a reader's shared lease waits those milliseconds). None: no such folder."""
    try:
        fd = os.open(hour, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
    except BlockingIOError:
        os.close(fd)
        raise HourLeased(str(hour)) from None
    except OSError:
        os.close(fd)
        raise
    return fd


def _lock_within(fd: int, wait_sec: float) -> bool:
    """Take `fd`'s exclusive flock within `wait_sec`: a reader's listing holds it shared for a
    moment, but one stopped while listing (Ctrl-Z, a debugger) would hold it for ever, and a
    blocking wait stopped the writer thread (its queue growing) and hung the engine's stop."""
    deadline = time.monotonic() + wait_sec
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def check_record_dir(settings: Any) -> None:
    """With recording on, the directory can be made and written: ConfigError (one line naming
    PMM_RECORD_DIR) before the engine starts, instead of its crash at start ("engine crashed:
    FileExistsError ...") or, later, a write failure per drain."""
    if getattr(settings, "record", "off") != "on":
        return
    from ..config import ConfigError

    try:
        writable_dir(Path(settings.record_dir))
    except OSError as exc:
        raise ConfigError(f"PMM_RECORD_DIR={settings.record_dir}: cannot record there ({exc.strerror or exc}); "
                          "give a writable directory, or PMM_RECORD=off to trade without recording") from None


def recorder_from_settings(settings: Any) -> Recorder | None:
    """The engine's recorder when `PMM_RECORD=on`, else None."""
    if getattr(settings, "record", "off") != "on":
        return None
    return Recorder(settings.record_dir, max_gb=settings.record_max_gb, rotate_sec=settings.record_rotate_sec,
                    min_free_gb=settings.record_min_free_gb)


TRADE_UPDATES = "trade_updates"  # the `rows` record key of a fill row's later updates (`RestoreRowsTee.update`)

# the rows a restarted engine continues from, with the columns it reads (`recorder.SESSION_COLUMNS`),
# each row's time, and a fill's `trade_id` (its fee, rebate and status are later updates of its row,
# recorded by that id); `raw_json` is cut to what restoring reads of it (`_restore_raw`)
RESTORE_COLUMNS = {
    "trades": ("trade_id", *(c for c in SESSION_COLUMNS["trades"] if c != "raw_json")),
    "reward_estimates": (*SESSION_COLUMNS["reward_estimates"], "ts"),
    "settlements": (*SESSION_COLUMNS["settlements"], "ts"),
}


def _restore_raw(raw: Any) -> dict[str, Any]:
    """The part of a fill's `raw_json` that restoring reads (the book's mid at the fill)."""
    return {"book_mid": raw.get("book_mid")} if isinstance(raw, dict) else {}


class RestoreRowsTee:
    """The engine's sink when it records: every row goes on to `inner`, and the rows a restarted
    engine continues from (fills, reward estimates, settlements: `RESTORE_COLUMNS`) are also
    recorded, as they are written, in the engine channel (`rows`: {table: [row]}), and so are the
    later updates of a fill's row that restoring reads (its fee and rebate, written when the
    economics see the fill; its status, when the venue's settlement moves on: `trade_updates`:
    [{trade_id, the changed columns}]). A replay whose window opens inside a session continues from
    that session's start rows plus these, recorded before its window (`Replayer`), instead of from flat."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def _record(self, table: str, row: Any) -> None:
        cols = RESTORE_COLUMNS.get(table)
        if cols is None:
            return
        out = {k: row.get(k) for k in cols}
        if table == "trades":
            out["raw_json"] = _restore_raw(row.get("raw_json"))
        self.recorder.engine(time.time(), "rows", {table: [out]})

    def insert(self, table: str, row: Any) -> None:
        self.inner.insert(table, row)
        self._record(table, row)

    def upsert(self, table: str, row: Any, key: Sequence[str]) -> None:
        self.inner.upsert(table, row, key)
        self._record(table, row)

    def update(self, table: str, where: Any, values: Any) -> None:
        self.inner.update(table, where, values)
        if table != "trades" or set(where) != {"trade_id"}:
            return  # (orders' statuses and the rest: restoring reads none of them)
        out = {k: v for k, v in values.items() if k in RESTORE_COLUMNS["trades"]}
        if "raw_json" in values:
            out["raw_json"] = _restore_raw(values["raw_json"])
        if out:
            self.recorder.engine(time.time(), "rows", {TRADE_UPDATES: [{"trade_id": where["trade_id"], **out}]})

    def __getattr__(self, name: str) -> Any:  # the inner sink's other methods (a writer's health, flush)
        return getattr(self.inner, name)
