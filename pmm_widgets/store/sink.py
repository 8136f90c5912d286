"""The write-side contract every producer of rows uses.

Why a protocol: the strategy, exchanges and market-data recorder produce rows on the event loop;
the only implementation that touches the database (`store.writer.BatchWriter`) batches them to a
worker thread. Producers call these methods and never wait for I/O. Row dicts use the column
names of `store.schema` (the table contract). Values may be Decimal, enums, dicts (for *_json
columns) or floats (timestamps are epoch seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class Sink(Protocol):
    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        """Append a row (e.g. `book_snapshots`, `events`, `pnl`)."""

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> None:
        """Insert, or update the existing row with the same `key` columns (e.g. `orders` by client_id)."""

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """Update rows matching `where` equality (e.g. a trade's raw_json once markouts are known)."""


class NullSink:
    """A sink that drops everything: for pure tests and benchmarks."""

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        pass

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> None:
        pass

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        pass


class MemorySink:
    """Keeps rows in lists per table: for unit tests that check what would be written."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.updates: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        self.rows.setdefault(table, []).append(dict(row))

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> None:
        rows = self.rows.setdefault(table, [])
        for existing in rows:
            if all(existing.get(k) == row.get(k) for k in key):
                existing.update(row)
                return
        rows.append(dict(row))

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        self.updates.append((table, dict(where), dict(values)))
        for existing in self.rows.get(table, []):
            if all(existing.get(k) == v for k, v in where.items()):
                existing.update(values)
