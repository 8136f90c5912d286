"""The typed recorder: every method writes rows whose table and columns exist in `schema.py`
(the contract), events are one row each with `data_json` only when there is data, orders carry
the owner, and migration 0007 moves markouts out of `trades.raw_json` into `markouts`."""

from __future__ import annotations

import ast
import json
from decimal import Decimal as D
from pathlib import Path

from sqlalchemy import insert, select, text

from pmm_widgets.domain import Fill, FillType, Market, Mode, Order, OrderStatus, Side
from pmm_widgets.events import EventKind, Level
from pmm_widgets.store import schema
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.recorder import DbRecorder, MarkoutRow, persisting_bus
from pmm_widgets.store.sink import MemorySink

PKG = Path(__file__).resolve().parents[2] / "pmm_widgets"


def _market() -> Market:
    return Market(condition_id="0xc0", question="Q?", yes_token_id="y0", no_token_id="n0", tick_size=D("0.01"),
                  min_order_size=D(5))


def _everything(rec: DbRecorder) -> None:
    m = _market()
    o = Order("c1", "0xc0", "y0", Side.BUY, D("0.40"), D(10), Mode.PAPER, OrderStatus.LIVE, created_ts=1.0,
              updated_ts=2.0, reason="x" * 600)
    f = Fill("t1", "c1", "0xc0", "y0", Side.BUY, D("0.40"), D(10), FillType.FILLED, Mode.PAPER, 3.0,
             venue_order_id="v1", raw={"model": "intensity"})
    bus = persisting_bus(rec)
    bus.emit(Level.WARNING, EventKind.RISK_BREACH, "limit", "0xc0", data={"rule": "price band"}, ts=4.0)
    bus.emit("INFO", "engine_start", "started", ts=5.0)
    rec.order(o, reason_max=500)
    assert len(rec.sink.rows["orders"][0]["reason"]) == 500 if isinstance(rec.sink, MemorySink) else True
    rec.close_stale_orders("paper", ("LIVE",), "restart", 6.0)
    rec.fill(f)
    rec.fill(f, status="MINED", upsert=True)
    rec.trade_status("t1", "CONFIRMED", {"statuses": ["MATCHED", "CONFIRMED"]})
    rec.fill_economics("t1", D(0), D("0.01"), "MAKER")
    rec.markout(MarkoutRow("t1", "0xc0", "y0", "BUY", "paper", 5.0, 3.0, D("0.40"), D(10), D("0.42"), 0.02, 0.2, 8.0))
    rec.pnl([{"ts": 9.0, "market": "TOTAL", "mode": "paper", "total": D(1)}])
    rec.reward_estimate({"ts": 9.0, "market": "0xc0", "mode": "paper", "usd": D("0.1")})
    rec.settlement(10.0, m, "paper", "y0", D(10), D(0), D(10), D(6), "market_resolved")
    rec.calibration("0xc0", {"mult": 1.2}, 11.0)
    rec.markets([m], 12.0)
    rec.market_override("0xc0", "spread", {"alpha": "2"}, 13.0)
    rec.public_trade("y0", "0xc0", 14.0, D("0.41"), D(3), "SELL")
    rec.book_snapshot("y0", "0xc0", 15.0, best_bid=D("0.40"), best_ask=D("0.42"), mid=D("0.41"), bid_depth=D(100),
                      ask_depth=D(50), depth_ticks=5, bid_levels=3, ask_levels=2, stale=False, crossed=False)


def test_every_row_matches_the_schema_and_events_are_one_row_each():
    sink = MemorySink()
    _everything(DbRecorder(sink, owner="host:1:abc"))
    for table, rows in sink.rows.items():
        cols = {c.name for c in schema.metadata.tables[table].columns}
        for row in rows:
            assert set(row) <= cols, (table, set(row) - cols)
    for table, where, values in sink.updates:
        cols = {c.name for c in schema.metadata.tables[table].columns}
        assert set(where) | set(values) <= cols
    ev = sink.rows["events"]
    assert [(e["kind"], e["level"], e["data_json"]) for e in ev] == [
        ("risk_breach", "WARNING", {"rule": "price band"}), ("engine_start", "INFO", None)]
    [o] = sink.rows["orders"]  # written with the owner, then closed as stale (a restart)
    assert (o["owner"], o["status"], o["reason"], o["updated_ts"]) == ("host:1:abc", "CANCELED", "restart", 6.0)
    assert sink.rows["trades"] == [{**sink.rows["trades"][0], "status": "CONFIRMED"}]
    assert sink.rows["markets"][0]["rank"] == 1 and sink.rows["book_snapshots"][0]["spread"] == D("0.02")


def test_the_recorder_writes_through_the_real_writer(tmp_path):
    from pmm_widgets.store.db import make_engine
    from pmm_widgets.store.writer import BatchWriter

    url = f"sqlite:///{tmp_path / 'rec.db'}"
    upgrade(url)
    w = BatchWriter(url, flush_sec=0.05)
    w.start()
    _everything(DbRecorder(w))
    w.close()
    assert w.stats().quarantined == 0
    eng = make_engine(url)
    with eng.connect() as c:
        assert c.execute(text("SELECT COUNT(*) FROM events")).scalar() == 2
        assert c.execute(text("SELECT COUNT(*) FROM markouts WHERE horizon_sec = 5")).scalar() == 1
        assert c.execute(text("SELECT status FROM trades")).scalars().all() == ["CONFIRMED"]
    eng.dispose()


def test_no_table_name_strings_outside_store():
    """Producers use the recorder only: no `.insert/.upsert/.update("<table>", ...)` outside `store/`."""
    tables = set(schema.metadata.tables)
    offenders = []
    for path in PKG.rglob("*.py"):
        if "store" in path.relative_to(PKG).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("insert", "upsert", "update") and node.args
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in tables):
                offenders.append(f"{path.relative_to(PKG)}:{node.lineno} {node.func.attr}({node.args[0].value!r})")
    assert offenders == []


def test_bus_persists_once_and_refuses_unknown_kinds():
    sink = MemorySink()
    bus = persisting_bus(DbRecorder(sink))
    seen = []
    bus.subscribe(seen.append)
    bus.subscribe(lambda ev: 1 / 0)  # a broken face hurts nobody
    bus.emit(Level.ERROR, EventKind.KILL, "k", data={"cancelled": 2}, ts=1.0)
    assert len(sink.rows["events"]) == 1 and len(seen) == 1 and bus.recent() == seen
    try:
        bus.emit("INFO", "no_such_kind", "x")
    except ValueError:
        pass
    else:
        raise AssertionError("an unknown kind must be refused")
    assert len(sink.rows["events"]) == 1


def test_migration_0007_moves_markouts_out_of_raw_json(db_url, engine_of):
    upgrade(db_url, "0006_economics")
    eng = engine_of(db_url)
    raw = {"model": "intensity", "mid_at_fill": "0.42", "realized_spread": 0.02, "realized_spread_usd": 0.2,
           "markouts": {"5s": {"px": 0.04, "usd": 0.4, "mid": "0.44", "ts": 105.0},
                        "30s": {"px": -0.02, "usd": -0.2, "mid": "0.38", "ts": 131.0}}}
    with eng.begin() as c:
        c.execute(insert(schema.trades).values(trade_id="t1", market="0xc0", token_id="y0", side="BUY", price=D("0.4"),
                                               size=D(10), fill_type="FILLED", mode="paper", ts=100.0, raw_json=raw))
        c.execute(insert(schema.trades).values(trade_id="t2", market="0xc0", token_id="y0", side="SELL", price=D("0.5"),
                                               size=D(1), fill_type="FILLED", mode="paper", ts=101.0,
                                               raw_json={"source": "ws"}))
    upgrade(db_url)
    eng.dispose()
    with eng.connect() as c:
        rows = c.execute(select(schema.markouts).order_by(schema.markouts.c.horizon_sec)).mappings().all()
        trades = {r.trade_id: r.raw_json for r in c.execute(select(schema.trades.c.trade_id, schema.trades.c.raw_json))}
    assert [(r["trade_id"], r["horizon_sec"], r["markout"], r["markout_usd"]) for r in rows] == [
        ("t1", 0.0, 0.02, 0.2), ("t1", 5.0, 0.04, 0.4), ("t1", 30.0, -0.02, -0.2)]
    assert rows[1]["mid"] == D("0.44") and rows[1]["ts"] == 105.0 and rows[0]["mid"] == D("0.42")
    got = {k: (json.loads(v) if isinstance(v, str) else v) for k, v in trades.items()}
    assert got == {"t1": {"model": "intensity"}, "t2": {"source": "ws"}}


def test_order_rows_carry_each_enums_value():
    """`order` reads the enums' `_value_` (not the `.value` property, per order row inside the
    quote cycle): every member's row holds exactly what `.value` gives, the same str object."""
    for mode in Mode:
        for side in Side:
            for status in OrderStatus:
                sink = MemorySink()
                DbRecorder(sink).order(Order("c1", "0xc0", "y0", side, D("0.40"), D(10), mode, status))
                row = sink.rows["orders"][0]
                assert (row["mode"], row["side"], row["status"]) == (mode.value, side.value, status.value)
                assert row["mode"] is mode.value and row["side"] is side.value and row["status"] is status.value
