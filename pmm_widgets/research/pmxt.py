"""Import PMXT's hourly Polymarket L2 archive (Parquet) into the recording layout, so `pmm replay`
and sweeps run over real history a researcher downloaded.

Where the files come from: https://archive.pmxt.dev (one `polymarket_orderbook_YYYY-MM-DDTHH.parquet`
per UTC hour; v1 at r2.pmxt.dev, v2 at r2v2.pmxt.dev; 100-900 MB each). Three schema variants
are known and read here:

- **v1** (5 columns): `timestamp_received`, `timestamp_created_at`, `market_id`, `update_type`
  (`book_snapshot` | `price_change`), `data` (a JSON blob with `token_id`, `side` = YES/NO,
  `best_bid`, `best_ask`, `timestamp`, and `bids`/`asks` as `[[price, size], ...]` worst-first,
  or `change_price`/`change_size`/`change_side`).
- **v2, 18 columns** (early v2): `timestamp_received`, `timestamp`, `market`, `event_type`
  (`book` | `price_change` | `last_trade_price` | `tick_size_change`), `asset_id`, typed
  `price`/`size`/`side`/`best_bid`/`best_ask`, tick sizes, and depth as four list columns
  `bid_prices`, `bid_sizes`, `ask_prices`, `ask_sizes`.
- **v2, 16 columns** (current): the same, with depth as JSON strings `bids`/`asks`
  (`[["price","size"], ...]`, worst-first).

Each row becomes the market-channel event the venue sent (so the replay parses it with the
live stream's code), recorded at `timestamp_received` in time order (the files are sorted by
market and asset). The universe is derived from the file: markets with their two tokens (v1's
YES/NO labels order them; v2 by first appearance), the tick size from the prices seen (or a
`tick_size_change`), min size 5. Markets with other than two tokens are left out (counted), and
`markets=N` ranks only markets with two tokens.

What the importer refuses or skips (it never writes what a replay would misread):
- a row it cannot convert (no time, a time outside 2015-2100, a price outside (0, 1) or off the
  market's grid, a negative size, a side other than BUY/SELL, depth that is no list of pairs,
  undecodable text) is skipped and counted; the first few are named (file, row, column, why) in
  `ImportReport.problems`;
- a file it cannot read (no Parquet file, an unknown schema, a corrupt page, a time column that
  holds no times) fails the import with `PmxtError` naming the file, before anything is written;
- the same file twice (same path, or the same bytes under another name) is imported once; two
  files holding the same market over overlapping times (one archive hour in two schema variants)
  fail the import, both named, before anything is written (each event would be replayed twice);
- an import whose time range overlaps recordings of another session in the same directory (the
  engine's own, or another import) is refused: a replay would play both. Re-importing the same
  files replaces their earlier import (the session id is a hash of their contents);
- an import that converts no event, or whose files cannot be written, fails (exit code 1 from
  the CLI); a failed write leaves none of its files behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..domain import Market
from ..errors import PmmError
from ..store.recording import Recorder, hour_key, writable_dir

log = logging.getLogger(__name__)

V1_COLUMNS = frozenset({"timestamp_received", "market_id", "update_type", "data"})
V2_COMMON = frozenset({"timestamp_received", "market", "event_type", "asset_id", "price", "size", "side",
                       "best_bid", "best_ask"})
V2_JSON_DEPTH = frozenset({"bids", "asks"})
V2_LIST_DEPTH = frozenset({"bid_prices", "bid_sizes", "ask_prices", "ask_sizes"})
DEFAULT_MIN_SIZE = Decimal(5)


class PmxtError(PmmError, ValueError):
    """A file this importer cannot read; the message names the file and what is wrong."""


MAX_PROBLEMS_PER_FILE = 3  # skipped rows named in the report (all are counted)
TIME_RANGE_MS = (1_420_070_400_000.0, 4_102_444_800_000.0)  # 2015-01-01 .. 2100-01-01: a plausible venue time
TICKS = frozenset(Decimal(t) for t in ("0.1", "0.01", "0.001", "0.0001"))


@dataclass
class ImportReport:
    files: list[str] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)  # file -> v1 | v2-18 | v2-16
    rows: int = 0
    events: int = 0
    markets: int = 0
    skipped_markets: int = 0  # not two tokens
    skipped_rows: int = 0  # unknown event types, rows that cannot be converted (see `problems`)
    unknown_events: int = 0  # of which: event types this importer does not know
    problems: list[str] = field(default_factory=list)  # the first skipped rows of each file, named
    named: dict[str, int] = field(default_factory=dict, repr=False)  # problems named so far per file
    duplicates: list[str] = field(default_factory=list)  # files given twice (or the same bytes twice): read once
    unknown_markets: list[str] = field(default_factory=list)  # asked-for ids no file holds
    bookless: list[str] = field(default_factory=list)  # imported markets with no book snapshot: a replay cannot build them
    session: str = ""
    first_ts: float = 0.0
    last_ts: float = 0.0


def detect_variant(schema: pa.Schema, name: str = "") -> str:
    cols = set(schema.names)
    if V1_COLUMNS <= cols:
        return "v1"
    if V2_COMMON <= cols and V2_JSON_DEPTH <= cols:
        return "v2-16"
    if V2_COMMON <= cols and V2_LIST_DEPTH <= cols:
        return "v2-18"
    raise PmxtError(f"{name}: unknown PMXT schema (columns: {', '.join(sorted(cols))}); known: v1 "
                    f"({', '.join(sorted(V1_COLUMNS))}), v2 with bids/asks JSON or bid_prices/... lists")


class _BadRow(PmmError, ValueError):
    """A value of one row this importer cannot convert: (column, why)."""

    def __init__(self, column: str, why: str) -> None:
        super().__init__(f"column {column}: {why}")


def _dec(v: Any, column: str) -> Decimal:
    if v is None or isinstance(v, bool):
        raise _BadRow(column, f"{v!r} is no number")
    try:
        d = v if isinstance(v, Decimal) else Decimal(repr(v) if isinstance(v, float) else str(v).strip())
    except (InvalidOperation, ValueError):
        raise _BadRow(column, f"{v!r} is no number") from None
    if not d.is_finite():
        raise _BadRow(column, f"{v!r} is no number")
    return d


def _text(d: Decimal) -> str:
    """A price/size as the venue writes it: the shortest decimal string."""
    return format(d.normalize(), "f")


def _price(v: Any, column: str) -> str:
    d = _dec(v, column)
    if not 0 < d < 1:
        raise _BadRow(column, f"price {_text(d)} outside (0, 1)")
    return _text(d)


def _opt_price(v: Any, column: str) -> str:
    """A best bid/ask: empty when the side is empty."""
    return "" if v is None or v == "" else _price(v, column)


def _size(v: Any, column: str, positive: bool = False) -> str:
    d = _dec(v, column)
    if d < 0 or (positive and d == 0):
        raise _BadRow(column, f"size {_text(d)} {'not positive' if positive else 'negative'}")
    return _text(d)


def _side(v: Any, column: str) -> str:
    side = str(v or "").strip().upper()
    if side not in ("BUY", "SELL"):
        raise _BadRow(column, f"side {v!r} is neither BUY nor SELL")
    return side


def _levels(pairs: Any, column: str) -> list[dict[str, str]]:
    if not isinstance(pairs, (list, tuple)):
        raise _BadRow(column, f"depth {str(pairs)[:40]!r} is no list of [price, size] pairs")
    out = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _BadRow(column, f"level {str(pair)[:40]!r} is no [price, size] pair")
        out.append({"price": _price(pair[0], column), "size": _size(pair[1], column)})
    return out


def _list_pairs(prices: Any, sizes: Any, column: str) -> list[tuple[Any, Any]]:
    """One side of v2-18 depth (a list of prices, a list of sizes) as [price, size] pairs; lists of
    unequal length are no list of pairs (`zip` cut them to the shorter: levels lost, unsaid)."""
    p, s = list(prices or []), list(sizes or [])
    if len(p) != len(s):
        raise _BadRow(column, f"{len(p)} prices but {len(s)} sizes")
    return list(zip(p, s))


def _json_list(v: Any, column: str) -> Any:
    if v is None:
        return []
    if not isinstance(v, str):
        raise _BadRow(column, f"{type(v).__name__} where JSON text was expected")
    try:
        return json.loads(v or "[]")
    except ValueError:
        raise _BadRow(column, "not valid JSON") from None


# (ts_ms, market, token, outcome, wire event, (file, row)): one imported row
_Row = tuple[float, str, str, str | None, dict[str, Any], tuple[str, int]]


def _ms(arr: pa.ChunkedArray | pa.Array, name: str, column: str) -> np.ndarray:
    """Timestamps (any unit / tz) or numbers → epoch milliseconds as float64 (NaN: none). Numbers
    are read by their size: seconds (≈1.7e9), milliseconds (≈1.7e12), micro- (≈1.7e15) or
    nanoseconds (≈1.7e18). PmxtError naming the file when the column holds no times at all."""
    t = arr.type
    if pa.types.is_timestamp(t):
        us: np.ndarray = pc.cast(arr, pa.timestamp("us", tz=t.tz)).cast(pa.int64()).to_numpy(zero_copy_only=False)
        out = np.asarray(us, dtype=np.float64) / 1000.0
        nulls = pc.is_null(arr).to_numpy(zero_copy_only=False)
        out[np.asarray(nulls, dtype=bool)] = np.nan
        return out
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_null(t)):
        raise PmxtError(f"{name}: column {column} holds {t}, not times (a timestamp or epoch number column)")
    v = np.asarray(pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
    finite = v[np.isfinite(v)]
    if not finite.size:
        return v
    med = float(np.median(np.abs(finite)))
    scale = 1000.0 if med < 1e11 else 1.0 if med < 1e14 else 1e-3 if med < 1e17 else 1e-6
    return v * scale


def _market_str(v: Any) -> str:
    m = v.decode("ascii") if isinstance(v, (bytes, bytearray)) else "" if v is None else str(v)
    if not m.strip():
        raise _BadRow("market", "no market id")
    return m


def _time_ok(ms: float) -> bool:
    return math.isfinite(ms) and TIME_RANGE_MS[0] <= ms < TIME_RANGE_MS[1]


def _skip(rep: ImportReport, name: str, row: int, why: str) -> None:
    """A row left out: counted; the first `MAX_PROBLEMS_PER_FILE` of each file named."""
    rep.skipped_rows += 1
    if rep.named.get(name, 0) < MAX_PROBLEMS_PER_FILE:
        rep.named[name] = rep.named.get(name, 0) + 1
        rep.problems.append(f"{name}: row {row}: {why}")


class _Rows:
    """The rows of one file, converted."""

    def __init__(self, name: str, rep: ImportReport) -> None:
        self.name, self.rep = name, rep
        self.out: list[_Row] = []

    def unknown(self) -> None:
        """A row of an event type this importer does not know: skipped, counted."""
        self.rep.unknown_events += 1
        self.rep.skipped_rows += 1

    def failed(self, row: int, exc: Exception) -> None:
        """A row that could not be converted: skipped, counted, and among a file's first few named."""
        _skip(self.rep, self.name, row, str(exc) if isinstance(exc, _BadRow) else f"{type(exc).__name__}: {exc}")


_ROW_ERRORS = (_BadRow, ValueError, TypeError, AttributeError, KeyError, UnicodeDecodeError, OverflowError)


def _rows_v1(t: pa.Table, rows: np.ndarray, name: str, rep: ImportReport) -> list[_Row]:
    """(ts_ms, market, token, outcome, wire event) per row; `rows`: each row's number in its file."""
    ts = _ms(t.column("timestamp_received"), name, "timestamp_received")
    acc = _Rows(name, rep)
    for i, (m, kind, data) in enumerate(zip(t.column("market_id").to_pylist(), t.column("update_type").to_pylist(),
                                            t.column("data").to_pylist())):
        try:
            if not _time_ok(ts[i]):
                raise _BadRow("timestamp_received", f"{float(ts[i])!r} ms is no time between 2015 and 2100")
            try:
                d = json.loads(data) if isinstance(data, str) else data
            except ValueError:
                raise _BadRow("data", "not valid JSON") from None
            if not isinstance(d, dict):
                raise _BadRow("data", f"{type(d).__name__} where a JSON object was expected")
            market, tok = _market_str(m), str(d.get("token_id") or "")
            src = d.get("timestamp")
            src_ms = int(float(src) * 1000) if src not in (None, "") else int(ts[i])
            if not _time_ok(src_ms):
                raise _BadRow("data.timestamp", f"{src!r} is no time between 2015 and 2100")
            if kind == "book_snapshot":
                ev = {"event_type": "book", "market": market, "asset_id": tok, "timestamp": str(src_ms), "hash": "",
                      "bids": _levels(d.get("bids") or [], "data.bids"), "asks": _levels(d.get("asks") or [], "data.asks")}
            elif kind == "price_change":
                ev = {"event_type": "price_change", "market": market, "timestamp": str(src_ms), "price_changes": [{
                    "asset_id": tok, "price": _price(d.get("change_price"), "data.change_price"),
                    "size": _size(d.get("change_size"), "data.change_size"),
                    "side": _side(d.get("change_side"), "data.change_side"),
                    "best_bid": _opt_price(d.get("best_bid"), "data.best_bid"),
                    "best_ask": _opt_price(d.get("best_ask"), "data.best_ask")}]}
            else:
                acc.unknown()
                continue
        except _ROW_ERRORS as exc:
            acc.failed(int(rows[i]), exc)
            continue
        acc.out.append((float(ts[i]), market, tok, d.get("side"), ev, (name, int(rows[i]))))
    return acc.out


def _rows_v2(t: pa.Table, rows: np.ndarray, variant: str, name: str, rep: ImportReport) -> list[_Row]:
    ts = _ms(t.column("timestamp_received"), name, "timestamp_received")
    src = _ms(t.column("timestamp"), name, "timestamp") if "timestamp" in t.column_names else ts
    cols = {c: t.column(c).to_pylist() for c in t.column_names if c not in ("timestamp_received", "timestamp")}
    n = t.num_rows

    def get(c: str) -> list[Any]:
        return cols.get(c) or [None] * n

    market, kind, asset = get("market"), get("event_type"), get("asset_id")
    price, size, side, bb, ba = get("price"), get("size"), get("side"), get("best_bid"), get("best_ask")
    old_t, new_t = get("old_tick_size"), get("new_tick_size")
    acc = _Rows(name, rep)
    for i in range(n):
        try:
            if not _time_ok(ts[i]):
                raise _BadRow("timestamp_received", f"{float(ts[i])!r} ms is no time between 2015 and 2100")
            m, k, a = _market_str(market[i]), kind[i], str(asset[i] or "")
            ms = str(int(src[i] if _time_ok(src[i]) else ts[i]))  # no venue time: the receive time
            if k == "book":
                if variant == "v2-16":
                    bids, asks = _json_list(cols["bids"][i], "bids"), _json_list(cols["asks"][i], "asks")
                else:
                    bids = _list_pairs(cols["bid_prices"][i], cols["bid_sizes"][i], "bid_prices/bid_sizes")
                    asks = _list_pairs(cols["ask_prices"][i], cols["ask_sizes"][i], "ask_prices/ask_sizes")
                ev = {"event_type": "book", "market": m, "asset_id": a, "timestamp": ms, "hash": "",
                      "bids": _levels(bids, "bids"), "asks": _levels(asks, "asks")}
            elif k == "price_change":
                ev = {"event_type": "price_change", "market": m, "timestamp": ms, "price_changes": [{
                    "asset_id": a, "price": _price(price[i], "price"), "size": _size(size[i], "size"),
                    "side": _side(side[i], "side"), "best_bid": _opt_price(bb[i], "best_bid"),
                    "best_ask": _opt_price(ba[i], "best_ask")}]}
            elif k == "last_trade_price":
                ev = {"event_type": "last_trade_price", "market": m, "asset_id": a, "price": _price(price[i], "price"),
                      "size": _size(size[i], "size", positive=True), "side": _side(side[i], "side"), "timestamp": ms}
            elif k == "tick_size_change":
                old, new = _dec(old_t[i], "old_tick_size"), _dec(new_t[i], "new_tick_size")
                if old not in TICKS or new not in TICKS:
                    raise _BadRow("old_tick_size/new_tick_size", f"{old_t[i]!r} -> {new_t[i]!r}: not a venue tick size")
                ev = {"event_type": "tick_size_change", "market": m, "asset_id": a, "old_tick_size": _text(old),
                      "new_tick_size": _text(new), "timestamp": ms}
            else:
                acc.unknown()
                continue
        except _ROW_ERRORS as exc:
            acc.failed(int(rows[i]), exc)
            continue
        acc.out.append((float(ts[i]), m, a, None, ev, (name, int(rows[i]))))
    return acc.out


def _event_prices(ev: dict[str, Any]) -> Iterable[str]:
    kind = ev["event_type"]
    if kind == "book":
        return [lv["price"] for lv in ev["bids"]] + [lv["price"] for lv in ev["asks"]]
    if kind == "price_change":
        return [p for ch in ev["price_changes"] for p in (ch["price"], ch["best_bid"], ch["best_ask"]) if p]
    if kind == "last_trade_price":
        return [ev["price"]]
    return []


TICK_SHARE = 0.995  # the tick the prices show: the coarsest grid this share of them sits on


def _tick_of(places: Mapping[int, int]) -> Decimal:
    """The coarsest venue tick (0.01 .. 0.0001) on which `TICK_SHARE` of a market's prices sit;
    `places`: how many prices (normalized decimal text) have each number of decimal places. A
    few stray finer prices do not make the grid finer: their rows are then off it (left out)."""
    total = sum(places.values())
    k, covered = 2, sum(n for d, n in places.items() if d <= 2)
    while k < 4 and covered < TICK_SHARE * total:
        k += 1
        covered += places.get(k, 0)
    return Decimal(1).scaleb(-k)


def _places(tick: Decimal) -> int:
    """Decimal places of a tick (0.01 -> 2)."""
    exp = tick.normalize().as_tuple().exponent
    return max(0, -exp) if isinstance(exp, int) else 0


def _open(path: Path) -> tuple[pq.ParquetFile, str]:
    """The file and its schema variant; PmxtError naming the file when it is no Parquet file or
    not one of the known variants."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise PmxtError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    return pf, detect_variant(pf.schema_arrow, str(path))


def _read_table(pf: pq.ParquetFile, path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pf.read(columns=columns)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise PmxtError(f"{path}: cannot read its data, the file is corrupt ({str(exc).splitlines()[0]})") from None


def _market_col(t: pa.Table, variant: str) -> pa.ChunkedArray:
    col = t.column("market_id" if variant == "v1" else "market")
    if pa.types.is_fixed_size_binary(col.type) or pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        col = pc.cast(col, pa.binary())
    elif not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = pc.cast(col, pa.string())
    return col


def _read(path: Path, markets: set[str] | None, rep: ImportReport) -> list[_Row]:
    pf, variant = _open(path)
    rep.variants[str(path)] = variant
    t = _read_table(pf, path)
    rep.rows += t.num_rows
    t = t.append_column("__row", pa.array(np.arange(t.num_rows, dtype=np.int64)))
    if markets is not None:
        col = _market_col(t, variant)
        values = pa.array(sorted(markets), pa.string())
        if pa.types.is_binary(col.type):
            values = pc.cast(values, pa.binary())
        t = t.filter(pc.is_in(col, value_set=values))
    rows = t.column("__row").to_numpy()
    if variant == "v1":
        return _rows_v1(t, rows, str(path), rep)
    return _rows_v2(t, rows, variant, str(path), rep)


def _decoded(v: Any) -> str | None:
    try:
        return _market_str(v)
    except (UnicodeDecodeError, _BadRow):
        return None


def market_tokens(paths: Sequence[str | Path]) -> dict[str, tuple[int, set[str]]]:
    """Per market across the files: (rows, its token ids), from two columns (v1: the token id
    is read out of the JSON text without parsing it)."""
    found: dict[str, tuple[int, set[str]]] = {}
    for p in paths:
        path = Path(p)
        pf, variant = _open(path)
        if variant == "v1":
            t = _read_table(pf, path, ["market_id", "data"])
            data = t.column("data")
            if pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
                tok = pc.struct_field(pc.extract_regex(data, r'"token_id"\s*:\s*"(?P<t>[^"]*)"'), [0])
            else:
                tok = pa.nulls(t.num_rows, pa.string())
        else:
            t = _read_table(pf, path, ["market", "asset_id"])
            tok = pc.cast(t.column("asset_id"), pa.string())
        g = pa.table({"m": _market_col(t, variant), "t": tok}).group_by(["m", "t"]).aggregate([([], "count_all")])
        for m, tk, n in zip(g.column("m").to_pylist(), g.column("t").to_pylist(), g.column("count_all").to_pylist()):
            name = _decoded(m)
            if name is None:
                continue
            rows, toks = found.get(name, (0, set()))
            if tk:
                toks.add(str(tk))
            found[name] = (rows + int(n), toks)
    return found


def top_markets(paths: Sequence[str | Path], n: int) -> list[str]:
    """The `n` markets with two tokens that have the most rows across the files."""
    found = market_tokens(paths)
    two = [(rows, m) for m, (rows, toks) in found.items() if len(toks) == 2]
    return [m for _, m in sorted(two, key=lambda x: (-x[0], x[1]))[:n]]


def _fingerprint(path: Path) -> str:
    """The file's bytes (size, the first and last MiB: the footer holds every page's checksum and
    offsets, so another file of the same name or size differs there)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 1 << 20:
            f.seek(max(1 << 20, size - (1 << 20)))
            h.update(f.read())
    return h.hexdigest()


def _unique_files(paths: Sequence[str | Path], rep: ImportReport) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    prints: list[str] = []
    for p in map(Path, paths):
        if not p.exists():
            raise PmxtError(f"{p}: no such file")
        if not p.is_file():
            raise PmxtError(f"{p}: not a file")
        fp = _fingerprint(p)
        if fp in prints:
            rep.duplicates.append(str(p))
            continue
        files.append(p)
        prints.append(fp)
    return files, prints


def _check_target(root: Path) -> None:
    """The directory can be written to (made if missing): a one-line error before any work."""
    try:
        writable_dir(root)
    except OSError as exc:
        raise PmxtError(f"{root}: cannot write recordings there ({exc.strerror or exc})") from None


def _hours_between(first: float, last: float) -> list[str]:
    out, t = [], first - first % 3600
    while t <= last:
        out.append(hour_key(t))
        t += 3600
    return out


def _overlapping(root: Path, session: str, first: float, last: float) -> list[str]:
    """Recordings of other sessions in the hours [first, last] touches whose time range meets it."""
    from .recordings import iso, list_recordings

    hours = set(_hours_between(first, last))
    spans: dict[tuple[str, str], list[float]] = {}
    for r in list_recordings(root):
        if r["hour"] not in hours or r["session"] == session:
            continue
        key = (r["hour"], r["session"])
        if r["open"]:
            spans[key] = [-math.inf, math.inf]  # an engine is writing it now: its range is not known yet
            continue
        try:
            ts = pq.read_table(r["file"], columns=["ts"]).column("ts")
        except (OSError, pa.ArrowException):
            continue  # unreadable: the replay names it itself
        if len(ts):
            lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
            span = spans.setdefault(key, [lo, hi])
            span[0], span[1] = min(span[0], lo), max(span[1], hi)
    out = []
    for (hour, other), (lo, hi) in sorted(spans.items()):
        if lo <= last and hi >= first:
            when = "being written now" if math.isinf(lo) else f"{iso(lo)} to {iso(hi)}"
            out.append(f"{root / hour}: session {other} ({when})")
    return out


def _remove_session(root: Path, session: str) -> None:
    for f in root.glob(f"*/*-{session}.parquet*"):
        f.unlink(missing_ok=True)
    for f in root.glob(f"*/*-{session}-[0-9]*.parquet*"):
        f.unlink(missing_ok=True)


def _held_twice(rows: Sequence[_Row]) -> str | None:
    """Why an import would replay some market's events twice, or None: two of its files hold the
    same market over overlapping times (the same hour in two schema variants, say: the byte-equal
    duplicates `_unique_files` drops are not the only way; an archive has one file per hour, so no
    two of its files share a market's minutes). It used to import both, every event doubled."""
    spans: dict[tuple[str, str], list[float]] = {}  # (market, file) -> [first, last] ms
    for ts, m, _tok, _out, _ev, (name, _row) in rows:
        sp = spans.get((m, name))
        if sp is None:
            spans[(m, name)] = [ts, ts]
        elif ts < sp[0]:
            sp[0] = ts
        elif ts > sp[1]:
            sp[1] = ts
    by_market: dict[str, list[tuple[float, float, str]]] = {}
    for (m, name), (a, b) in spans.items():
        by_market.setdefault(m, []).append((a, b, name))
    for m, got in by_market.items():
        got.sort()
        for (_a1, b1, n1), (a2, b2, n2) in zip(got, got[1:]):  # (sorted by start: an overlap shows between neighbours)
            if a2 < b1:
                return (f"{n1} and {n2} both hold market {m[:16]}... from {iso_range(a2 / 1000.0, min(b1, b2) / 1000.0)}: "
                        "the same hours twice (two schema variants of one archive hour?), every event would be "
                        "replayed twice; import one of them")
    return None


def import_pmxt(paths: Sequence[str | Path], root: str | Path, *, markets: int | Sequence[str] | None = 50,
                session: str | None = None) -> ImportReport:
    """Convert PMXT archive files into recordings under `root` (one session per import; see the
    module's doc for what is skipped or refused)."""
    rep = ImportReport()
    files, prints = _unique_files(paths, rep)
    rep.files = [str(p) for p in files]
    root = Path(root)
    _check_target(root)  # before reading hundreds of MB
    want: set[str] | None
    if markets is None:
        want = None
    elif isinstance(markets, int):
        want = set(top_markets(files, markets))
        if not want:
            raise PmxtError(f"{', '.join(rep.files)}: no market with two tokens (YES and NO) in the file(s)")
    else:
        want = set(markets)
        known = market_tokens(files)
        rep.unknown_markets = sorted(want - set(known))
        if len(rep.unknown_markets) == len(want):
            raise PmxtError(f"{', '.join(rep.files)}: none of the selected markets is in the file(s) "
                            f"({', '.join(rep.unknown_markets[:3])}{' ...' if len(want) > 3 else ''})")
    rows: list[_Row] = []
    for p in files:
        rows.extend(_read(p, want, rep))
    twice = _held_twice(rows)
    if twice:
        raise PmxtError(twice)
    if not rows:
        why = (f"no event this importer knows ({rep.unknown_events:,} rows of unknown event types)"
               if rep.unknown_events == rep.skipped_rows and rep.unknown_events
               else f"no row could be converted ({rep.skipped_rows:,} skipped; first: "
                    f"{rep.problems[0] if rep.problems else 'none'})" if rep.skipped_rows
               else "no rows for the selected markets")
        raise PmxtError(f"{', '.join(rep.files)}: {why}")
    rows.sort(key=lambda r: r[0])  # files are sorted by market/asset; the replay needs time order
    # universe: two tokens per market, YES first when v1 says so, else by first appearance
    tokens: dict[str, dict[str, str | None]] = {}
    places: dict[str, Counter[int]] = {}
    tick_change: dict[str, Decimal] = {}
    finest: dict[str, Decimal] = {}  # the finest tick a market's tick_size_change events name
    booked: set[str] = set()  # markets with a book snapshot
    for _, m, tok, outcome, ev, _where in rows:
        if tok:
            labels = tokens.setdefault(m, {})
            if labels.get(tok) is None:  # (a token's first row may have no YES/NO label, a later one has)
                labels[tok] = outcome
        if ev["event_type"] == "book":
            booked.add(m)
        if ev["event_type"] == "tick_size_change":
            old, new = Decimal(ev["old_tick_size"]), Decimal(ev["new_tick_size"])
            tick_change.setdefault(m, old)
            finest[m] = min(finest.get(m, old), old, new)
        else:
            places.setdefault(m, Counter()).update(len(p.partition(".")[2]) for p in _event_prices(ev))
    universe: list[Market] = []
    for m, toks in tokens.items():
        if len(toks) != 2:
            rep.skipped_markets += 1
            continue
        # YES first, NO last; a token with no label goes between (the other one of a YES, or of a NO)
        order = sorted(toks, key=lambda t: 0 if toks[t] == "YES" else 2 if toks[t] == "NO" else 1)
        tick = tick_change.get(m) or _tick_of(places.get(m, Counter()))
        universe.append(Market(condition_id=m, question=f"PMXT {m[:12]}", yes_token_id=order[0], no_token_id=order[1],
                               tick_size=tick, min_order_size=DEFAULT_MIN_SIZE, slug=m))
    # a price off its market's grid (the tick named by a tick_size_change, else the one the prices
    # show, at most 4 places) would be refused by the replay's books: the row is left out here
    grid = {m.condition_id: _places(min(m.tick_size, finest.get(m.condition_id, m.tick_size))) for m in universe}
    kept: list[_Row] = []
    for r in rows:
        k = grid.get(r[1])
        if k is None:
            continue
        off = next((p for p in _event_prices(r[4]) if len(p.partition(".")[2]) > k), None)
        if off is not None:
            _skip(rep, r[5][0], r[5][1], f"price {off} off the market's grid (tick {Decimal(1).scaleb(-k)})")
            continue
        kept.append(r)
    if not kept:
        raise PmxtError(f"{', '.join(rep.files)}: no market with two tokens (YES and NO) among the "
                        f"{rep.skipped_markets} selected")
    rep.session = session or "pmxt" + hashlib.sha256("|".join(sorted(prints)).encode()).hexdigest()[:8]
    first, last = kept[0][0] / 1000.0, kept[-1][0] / 1000.0
    clash = _overlapping(root, rep.session, first, last)
    if clash:
        raise PmxtError(f"{root}: this import ({iso_range(first, last)}) overlaps recordings already there, which a "
                        f"replay would play with it: {'; '.join(clash[:3])}; import into another PMM_RECORD_DIR "
                        "or remove those files")
    _remove_session(root, rep.session)  # the same files imported before: replaced, not doubled
    rec = Recorder(root, session=rep.session)
    rec.universe(first, universe)
    n = 0
    for ts_ms, _, _, _, ev, _where in kept:
        rec.frame(ts_ms / 1000.0, 0, json.dumps(ev, separators=(",", ":")))
        n += 1
        if n % 200_000 == 0:
            rec.flush()
    rec.close()
    if rec.stats.errors:
        _remove_session(root, rep.session)
        raise PmxtError(f"{root}: {rec.stats.errors} write error(s) (the log above names them); nothing of this "
                        "import was kept")
    rep.events, rep.markets = n, len(universe)
    rep.bookless = sorted(m.condition_id for m in universe if m.condition_id not in booked)
    rep.first_ts, rep.last_ts = first, last
    log.info("pmxt import: %d events of %d markets from %s", n, len(universe), ", ".join(rep.files))
    return rep


def iso_range(first: float, last: float) -> str:
    from .recordings import iso

    return f"{iso(first)} to {iso(last)}"
