"""Read helpers over rows written by the BatchWriter (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pmm_widgets.domain import Mode
from pmm_widgets.store import repo
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.writer import BatchWriter


@pytest.fixture
def filled(db_url, engine_of):
    upgrade(db_url)
    with BatchWriter(db_url) as w:
        for snap in (100.0, 200.0):
            for rank in (2, 1):
                w.insert("markets", {"snapshot_ts": snap, "rank": rank, "condition_id": f"c{rank}@{snap}",
                                     "question": "Q", "yes_token_id": "y", "no_token_id": "n",
                                     "raw_json": {"rank": rank}})
        w.upsert("market_calibration", {"market": "c1", "state_json": {"mult": 1.5}, "updated_at": 1.0}, key=["market"])
        for i, status in enumerate(["LIVE", "FILLED", "PARTIAL", "CANCELED", "PENDING"]):
            w.upsert("orders", {"client_id": f"o{i}", "mode": "live" if i == 4 else "paper", "token_id": "y",
                                "side": "BUY", "price": Decimal("0.4"), "size": 5, "status": status,
                                "created_ts": float(i), "updated_ts": float(i)}, key=["client_id"])
        for i in range(3):
            w.insert("trades", {"trade_id": f"t{i}", "order_id": "o1", "token_id": "y", "side": "BUY",
                                "price": Decimal("0.41"), "size": Decimal("2.5"), "fill_type": "PARTIAL",
                                "mode": "paper", "ts": 10.0 + i})
            w.insert("events", {"ts": float(i), "level": ["INFO", "WARNING", "ERROR"][i], "kind": f"k{i}"})
            w.insert("pnl", {"ts": float(i), "market": "TOTAL", "mode": "paper", "total": Decimal(i)})
            w.insert("pnl", {"ts": float(i) + 0.5, "market": "TOTAL", "mode": "replay", "total": Decimal(-i)})
    return engine_of(db_url)


def test_latest_universe_is_newest_snapshot_by_rank(filled):
    rows = repo.latest_universe(filled)
    assert [r["condition_id"] for r in rows] == ["c1@200.0", "c2@200.0"]
    assert rows[0]["raw_json"] == {"rank": 1}
    assert repo.universe_snapshots(filled) == [200.0, 100.0]


def test_calibration_events_orders(filled):
    assert repo.load_calibration(filled) == {"c1": {"mult": 1.5}}
    assert [e["kind"] for e in repo.recent_events(filled, 2)] == ["k2", "k1"]
    assert [e["kind"] for e in repo.recent_events(filled, 10, min_level="WARNING")] == ["k2", "k1"]
    assert [o["client_id"] for o in repo.open_orders(filled)] == ["o0", "o2", "o4"]
    assert [o["client_id"] for o in repo.open_orders(filled, mode=Mode.PAPER)] == ["o0", "o2"]


def test_frames(filled):
    df = repo.trades_frame(filled, mode="paper")
    assert list(df["trade_id"]) == ["t0", "t1", "t2"] and df["price"].dtype == "float64"
    assert df["size"].sum() == 7.5
    assert len(repo.trades_frame(filled, since=11.0)) == 2
    pnl = repo.pnl_frame(filled, mode="paper")
    assert list(pnl["total"]) == [0.0, 1.0, 2.0]
    assert list(repo.pnl_frame(filled, mode="replay")["total"]) == [0.0, -1.0, -2.0]
    assert list(repo.pnl_frame(filled)["mode"]) == ["paper", "replay"] * 3  # no mode: every series, by time
    counts = repo.table_counts(filled)
    assert counts["markets"] == 4 and counts["orders"] == 5


def test_empty_database(db_url, engine_of):
    upgrade(db_url)
    eng = engine_of(db_url)
    assert repo.latest_universe(eng) == [] and repo.load_calibration(eng) == {}
    assert repo.trades_frame(eng).empty and "price" in repo.trades_frame(eng).columns
