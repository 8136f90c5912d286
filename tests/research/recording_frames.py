"""Helpers of the tests that craft recording files: market-channel frames as the venue sends them,
rows nulled in a written file (what a damaged recording holds), and a recorder whose writer
hangs in its first write (a disk that stalls); recording files written row by row (`write`, `frames`)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pmm_widgets.research.recordings import parse_time
from pmm_widgets.store.recording import ARROW_SCHEMA, hour_key

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


def book_frame(market: str, tok: str, bid: str, ask: str, ts: float) -> str:
    """A `book` frame of one level a side (size 100), the venue's ms timestamp `ts`."""
    return json.dumps({"event_type": "book", "market": market, "asset_id": tok, "timestamp": str(int(ts * 1000)),
                       "hash": "h", "bids": [{"price": bid, "size": "100"}], "asks": [{"price": ask, "size": "100"}]})


def change_frame(market: str, tok: str, price: str, side: str, ts: float) -> str:
    """A `price_change` frame setting one level of `tok` to size 50."""
    return json.dumps({"event_type": "price_change", "market": market, "timestamp": str(int(ts * 1000)),
                       "price_changes": [{"asset_id": tok, "price": price, "size": "50", "side": side}]})


def null_rows(f, at: dict[str, list[int]]) -> list[tuple[float, int]]:
    """Null the `column`s of a recording file at the rows `at` names (negative: from the end); the
    (ts, seq) those rows had."""
    t = pq.read_table(f)
    at = {c: [r % t.num_rows for r in rows] for c, rows in at.items()}
    was = list(zip(t.column("ts").to_pylist(), t.column("seq").to_pylist()))
    for column, rows in at.items():
        vals = t.column(column).to_pylist()
        for i in rows:
            vals[i] = None
        i = t.schema.get_field_index(column)
        t = t.set_column(i, t.schema.field(i).with_nullable(True), pa.array(vals, t.schema.field(i).type))
    pq.write_table(t, f)
    return [was[i] for rows in at.values() for i in rows]


def stall_first_write(rec: Any) -> tuple[threading.Event, threading.Event]:
    """Make `rec`'s writer wait for `release` in its first write (`entered` is set when it does;
    the write then goes on): (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    real = rec._write

    def stalled(*a: Any, **k: Any) -> None:
        entered.set()
        release.wait(30)
        real(*a, **k)

    rec._write = stalled
    return entered, release


TEXT_TYPES = [pa.string(), pa.large_string(), pa.binary(), pa.large_binary(), pa.dictionary(pa.int32(), pa.string())]


def text_column(values: list[str | None], typ: pa.DataType, cuts: list[int], lead: int) -> pa.ChunkedArray:
    """`values` as a column of `typ` (one of `TEXT_TYPES`: bytes for a binary type) in chunks cut
    at `cuts`, each chunk a slice `lead` values into its array (a chunk with an offset)."""
    chunks = []
    for a, b in zip([0, *cuts], [*cuts, len(values)]):
        raw = [None] * lead + values[a:b]
        if typ == pa.dictionary(pa.int32(), pa.string()):
            arr = pa.array(raw, pa.string()).dictionary_encode()
        else:
            binary = pa.types.is_binary(typ) or pa.types.is_large_binary(typ)
            arr = pa.array([v.encode() if binary and v is not None else v for v in raw], typ)
        chunks.append(arr.slice(lead))
    return pa.chunked_array(chunks, chunks[0].type)
