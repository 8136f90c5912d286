"""Engine construction: SQLite memory sharing across threads, URL masking, JSON encoding."""

from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy import text

from pmm_widgets.domain import Side
from pmm_widgets.store.db import json_dumps, make_engine, safe_url
from pmm_widgets.store.schema import metadata
from pmm_widgets.store.writer import BatchWriter


def test_memory_sqlite_is_one_database_for_every_thread():
    eng = make_engine("sqlite://")
    metadata.create_all(eng)
    w = BatchWriter("sqlite://", engine=eng).start()
    done = threading.Event()

    def produce() -> None:
        w.insert("events", {"ts": 1.0, "level": "INFO", "kind": "from_thread"})
        done.set()

    threading.Thread(target=produce).start()
    done.wait(10)
    w.close()
    with eng.connect() as conn:
        assert conn.execute(text("SELECT kind FROM events")).scalars().all() == ["from_thread"]
    eng.dispose()


def test_safe_url_hides_password():
    assert safe_url("postgresql+psycopg://u:topsecret@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert safe_url("sqlite:///pmm.db") == "sqlite:///pmm.db"


def test_json_encoding_keeps_decimals_exact():
    assert json_dumps({"p": Decimal("0.123456789"), "s": Side.BUY, "t": (1, 2)}) == '{"p":"0.123456789","s":"BUY","t":[1,2]}'
