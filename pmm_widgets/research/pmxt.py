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
`tick_size_change`), min size 5. Markets with other than two tokens are left out (counted).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..domain import Market
from ..errors import PmmError
from ..store.recording import Recorder

log = logging.getLogger(__name__)

V1_COLUMNS = frozenset({"timestamp_received", "market_id", "update_type", "data"})
V2_COMMON = frozenset({"timestamp_received", "market", "event_type", "asset_id", "price", "size", "side",
                       "best_bid", "best_ask"})
V2_JSON_DEPTH = frozenset({"bids", "asks"})
V2_LIST_DEPTH = frozenset({"bid_prices", "bid_sizes", "ask_prices", "ask_sizes"})
DEFAULT_MIN_SIZE = Decimal(5)


class PmxtError(PmmError, ValueError):
    """A file this importer cannot read; the message names the file and what is wrong."""


@dataclass
class ImportReport:
    files: list[str] = field(default_factory=list)
    variants: dict[str, str] = field(default_factory=dict)  # file -> v1 | v2-18 | v2-16
    rows: int = 0
    events: int = 0
    markets: int = 0
    skipped_markets: int = 0  # not two tokens
    skipped_rows: int = 0  # unknown event types, bad JSON
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


def _s(v: Any) -> str:
    """A price/size as the venue writes it: shortest decimal string."""
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _levels(pairs: Iterable[Sequence[Any]]) -> list[dict[str, str]]:
    return [{"price": _s(p), "size": _s(q)} for p, q in pairs]


# (ts_ms, market, token, outcome, wire event): one imported row
_Row = tuple[float, str, str, str | None, dict[str, Any]]


def _ms(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps (any unit / tz) or numbers (seconds) → epoch milliseconds as float64."""
    t = arr.type
    if pa.types.is_timestamp(t):
        us: np.ndarray = pc.cast(arr, pa.timestamp("us", tz=t.tz)).cast(pa.int64()).to_numpy()
        return us.astype(np.float64) / 1000.0
    v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
    return v * 1000.0 if v.size and np.nanmedian(v) < 1e11 else v


def _market_str(v: Any) -> str:
    return v.decode("ascii") if isinstance(v, (bytes, bytearray)) else str(v)


def _rows_v1(t: pa.Table, name: str, rep: ImportReport) -> list[_Row]:
    """(ts_ms, market, token, outcome, wire event) per row."""
    ts = _ms(t.column("timestamp_received"))
    out: list[_Row] = []
    for i, (m, kind, data) in enumerate(zip(t.column("market_id").to_pylist(), t.column("update_type").to_pylist(),
                                            t.column("data").to_pylist())):
        try:
            d = json.loads(data) if isinstance(data, str) else dict(data or {})
        except ValueError:
            rep.skipped_rows += 1
            continue
        market, tok = _market_str(m), str(d.get("token_id") or "")
        src_ms = int(float(d.get("timestamp") or ts[i] / 1000.0) * 1000)
        if kind == "book_snapshot":
            ev = {"event_type": "book", "market": market, "asset_id": tok, "timestamp": str(src_ms), "hash": "",
                  "bids": _levels(d.get("bids") or []), "asks": _levels(d.get("asks") or [])}
        elif kind == "price_change":
            ev = {"event_type": "price_change", "market": market, "timestamp": str(src_ms), "price_changes": [{
                "asset_id": tok, "price": _s(d.get("change_price")), "size": _s(d.get("change_size")),
                "side": d.get("change_side"), "best_bid": _s(d.get("best_bid")), "best_ask": _s(d.get("best_ask"))}]}
        else:
            rep.skipped_rows += 1
            continue
        out.append((float(ts[i]), market, tok, d.get("side"), ev))
    return out


def _rows_v2(t: pa.Table, variant: str, name: str, rep: ImportReport) -> list[_Row]:
    ts = _ms(t.column("timestamp_received"))
    src = _ms(t.column("timestamp")) if "timestamp" in t.column_names else ts
    cols = {c: t.column(c).to_pylist() for c in t.column_names if c not in ("timestamp_received", "timestamp")}
    n = t.num_rows
    def get(c: str) -> list[Any]:
        return cols.get(c) or [None] * n

    market, kind, asset = get("market"), get("event_type"), get("asset_id")
    price, size, side, bb, ba = get("price"), get("size"), get("side"), get("best_bid"), get("best_ask")
    old_t, new_t = get("old_tick_size"), get("new_tick_size")
    out: list[_Row] = []
    for i in range(n):
        m, k, a = _market_str(market[i]), kind[i], str(asset[i] or "")
        ms = str(int(src[i]))
        if k == "book":
            if variant == "v2-16":
                try:
                    bids = json.loads(cols["bids"][i] or "[]")
                    asks = json.loads(cols["asks"][i] or "[]")
                except ValueError:
                    rep.skipped_rows += 1
                    continue
            else:
                bids = list(zip(cols["bid_prices"][i] or [], cols["bid_sizes"][i] or []))
                asks = list(zip(cols["ask_prices"][i] or [], cols["ask_sizes"][i] or []))
            ev = {"event_type": "book", "market": m, "asset_id": a, "timestamp": ms, "hash": "",
                  "bids": _levels(bids), "asks": _levels(asks)}
        elif k == "price_change":
            ev = {"event_type": "price_change", "market": m, "timestamp": ms, "price_changes": [{
                "asset_id": a, "price": _s(price[i]), "size": _s(size[i]), "side": side[i],
                "best_bid": _s(bb[i]), "best_ask": _s(ba[i])}]}
        elif k == "last_trade_price":
            ev = {"event_type": "last_trade_price", "market": m, "asset_id": a, "price": _s(price[i]),
                  "size": _s(size[i]), "side": side[i], "timestamp": ms}
        elif k == "tick_size_change":
            ev = {"event_type": "tick_size_change", "market": m, "asset_id": a, "old_tick_size": _s(old_t[i]),
                  "new_tick_size": _s(new_t[i]), "timestamp": ms}
        else:
            rep.skipped_rows += 1
            continue
        out.append((float(ts[i]), m, a, None, ev))
    return out


def _tick_of(prices: Iterable[str]) -> Decimal:
    fine = any(len(p.partition(".")[2]) >= 3 for p in prices if p)
    return Decimal("0.001") if fine else Decimal("0.01")


def _open(path: Path) -> tuple[pq.ParquetFile, str]:
    """The file and its schema variant; PmxtError naming the file when it is no Parquet file or
    not one of the known variants."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise PmxtError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    return pf, detect_variant(pf.schema_arrow, str(path))


def _read(path: Path, markets: set[str] | None, rep: ImportReport) -> list[_Row]:
    pf, variant = _open(path)
    rep.variants[str(path)] = variant
    t = pf.read()
    rep.rows += t.num_rows
    mcol = "market_id" if variant == "v1" else "market"
    if markets is not None:
        col = t.column(mcol)
        if pa.types.is_fixed_size_binary(col.type) or pa.types.is_binary(col.type):
            col = pc.cast(col, pa.binary()).cast(pa.string())
        t = t.filter(pc.is_in(col, value_set=pa.array(sorted(markets), pa.string())))
    return _rows_v1(t, str(path), rep) if variant == "v1" else _rows_v2(t, variant, str(path), rep)


def top_markets(paths: Sequence[str | Path], n: int) -> list[str]:
    """The `n` markets with the most rows across the files (cheap: one column)."""
    counts: Counter[str] = Counter()
    for p in paths:
        pf, variant = _open(Path(p))
        col = pf.read(columns=["market_id" if variant == "v1" else "market"]).column(0)
        vc = pc.value_counts(col)
        for item in vc.to_pylist():
            counts[_market_str(item["values"])] += item["counts"]
    return [m for m, _ in counts.most_common(n)]


def import_pmxt(paths: Sequence[str | Path], root: str | Path, *, markets: int | Sequence[str] | None = 50,
                session: str | None = None) -> ImportReport:
    """Convert PMXT archive files into recordings under `root` (one session per import)."""
    files = [Path(p) for p in paths]
    for p in files:
        if not p.exists():
            raise PmxtError(f"{p}: no such file")
    rep = ImportReport(files=[str(p) for p in files])
    want: set[str] | None
    if markets is None:
        want = None
    elif isinstance(markets, int):
        want = set(top_markets(files, markets))
    else:
        want = set(markets)
    rows: list[_Row] = []
    for p in files:
        rows.extend(_read(p, want, rep))
    if not rows:
        raise PmxtError(f"{', '.join(rep.files)}: no rows for the selected markets")
    rows.sort(key=lambda r: r[0])  # files are sorted by market/asset; the replay needs time order
    # universe: two tokens per market, YES first when v1 says so, else by first appearance
    tokens: dict[str, dict[str, str | None]] = {}
    prices: dict[str, list[str]] = {}
    tick_change: dict[str, str] = {}
    for _, m, tok, outcome, ev in rows:
        if tok:
            tokens.setdefault(m, {}).setdefault(tok, outcome)
        if ev["event_type"] == "price_change":
            prices.setdefault(m, []).extend(ch["price"] for ch in ev["price_changes"])
        elif ev["event_type"] == "tick_size_change" and ev.get("old_tick_size"):
            tick_change.setdefault(m, ev["old_tick_size"])
    universe: list[Market] = []
    for m, toks in tokens.items():
        if len(toks) != 2:
            rep.skipped_markets += 1
            continue
        order = sorted(toks, key=lambda t: 0 if toks[t] == "YES" else 1 if toks[t] == "NO" else 2)
        tick = Decimal(tick_change[m]) if m in tick_change else _tick_of(prices.get(m, [])[:2000])
        universe.append(Market(condition_id=m, question=f"PMXT {m[:12]}", yes_token_id=order[0], no_token_id=order[1],
                               tick_size=tick, min_order_size=DEFAULT_MIN_SIZE, slug=m))
    keep = {m.condition_id for m in universe}
    rep.session = session or "pmxt" + hashlib.sha256("|".join(p.name for p in files).encode()).hexdigest()[:8]
    rec = Recorder(root, session=rep.session)
    first = rows[0][0] / 1000.0
    rec.universe(first, universe)
    n = 0
    for ts_ms, m, _, _, ev in rows:
        if m not in keep:
            continue
        rec.frame(ts_ms / 1000.0, 0, json.dumps(ev, separators=(",", ":")))
        n += 1
        if n % 200_000 == 0:
            rec.flush()
    rec.close()
    rep.events, rep.markets = n, len(universe)
    rep.first_ts, rep.last_ts = first, rows[-1][0] / 1000.0
    log.info("pmxt import: %d events of %d markets from %s", n, len(universe), ", ".join(rep.files))
    return rep
