"""Retention: old rows of book_snapshots, public_trades, events and pnl go in small batches;
trades and orders stay; `pmm db prune` and `pmm db status` (sizes) over SQLite and PostgreSQL."""

from __future__ import annotations

import time

from sqlalchemy import func, insert, select

from pmm_widgets import cli
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.retention import (
    RETAINED_TABLES,
    database_bytes,
    prune,
    table_sizes,
)
from pmm_widgets.store.schema import (
    book_snapshots,
    events,
    orders,
    pnl,
    public_trades,
    trades,
)

NOW = float(int(time.time()))
DAY = 86_400.0


def _fill(eng, old: int, new: int) -> None:
    """`old` rows 10 days old and `new` rows 1 hour old in every table that has a ts."""
    def rows(n: int, ts: float) -> list[float]:
        return [ts + i * 1e-3 for i in range(n)]

    with eng.begin() as c:
        for ts_list in (rows(old, NOW - 10 * DAY), rows(new, NOW - 3600)):
            if not ts_list:
                continue
            c.execute(insert(book_snapshots), [{"token_id": "t", "ts": t} for t in ts_list])
            c.execute(insert(public_trades), [{"token_id": "t", "ts": t, "price": 0.5, "size": 1} for t in ts_list])
            c.execute(insert(events), [{"ts": t, "level": "INFO", "kind": "k"} for t in ts_list])
            c.execute(insert(pnl), [{"ts": t, "market": "m"} for t in ts_list])
            c.execute(insert(trades), [{"trade_id": f"x{t}", "order_id": "o", "market": "m", "token_id": "t",
                                        "side": "BUY", "price": 0.5, "size": 1, "fill_type": "FILLED",
                                        "mode": "live", "ts": t} for t in ts_list])
            c.execute(insert(orders), [{"client_id": f"c{t}", "market": "m", "token_id": "t", "side": "BUY",
                                        "price": 0.5, "size": 1, "filled": 0, "status": "CANCELED", "mode": "live",
                                        "created_ts": t, "updated_ts": t} for t in ts_list])


def _count(eng, table) -> int:
    with eng.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar() or 0)


def test_prune_deletes_only_old_derived_rows_in_batches(db_url):
    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        _fill(eng, old=1_050, new=30)
        rep = prune(eng, 7, now=NOW, batch=200, pause_sec=0)
        assert rep.deleted == {t: 1_050 for t in RETAINED_TABLES}
        assert rep.batches == 4 * 6  # 5 full batches of 200 + one of 50 per table
        for t in (book_snapshots, public_trades, events, pnl):
            assert _count(eng, t) == 30
        assert _count(eng, trades) == _count(eng, orders) == 1_080  # the ledger is kept
        assert prune(eng, 7, now=NOW).total == 0  # idempotent
        assert prune(eng, 0, now=NOW + 100 * DAY).total == 0  # 0 = keep everything
        bounded = prune(eng, 1e-9, now=NOW, batch=10, max_batches=2)
        assert bounded.total == 20 and bounded.batches == 2  # one call is bounded
        stopped = prune(eng, 1e-9, now=NOW, batch=1, stop=lambda: True)
        assert stopped.total == 0
    finally:
        eng.dispose()


def test_db_size_stays_flat_under_retention(tmp_path):
    """Append a day's worth of rows per round, prune to one day: the SQLite file stops growing."""
    url = f"sqlite:///{tmp_path / 'flat.db'}"
    upgrade(url)
    eng = make_engine(url)
    sizes = []
    try:
        with eng.begin() as c:
            pass
        for day in range(6):
            ts0 = NOW + day * DAY
            with eng.begin() as c:
                c.execute(insert(book_snapshots), [{"token_id": "tok" * 20, "market": "m" * 66, "ts": ts0 + i}
                                                   for i in range(3_000)])
            prune(eng, 1.0, now=ts0 + 3_000, pause_sec=0)
            sizes.append(database_bytes(eng))
    finally:
        eng.dispose()
    assert sizes[-1] == sizes[2], sizes  # after two rounds the freed pages are reused: flat
    assert sizes[-1] < sizes[0] * 3


def test_cli_db_prune_and_status_sizes(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    eng = make_engine(url)
    _fill(eng, old=120, new=5)
    sizes = table_sizes(eng)
    eng.dispose()
    assert sizes["book_snapshots"] is None or sizes["book_snapshots"] > 0
    assert cli.main(["db", "prune", "--db-url", url, "--days", "7"]) == 0
    out = capsys.readouterr().out
    assert "pruned 480 rows older than 7 days" in out and "trades and orders kept" in out
    assert cli.main(["db", "status", "--db-url", url]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("book_snapshots"))
    assert line.split()[1] == "5"  # rows: only the recent ones
    assert "retention:" in out and "database" in out
    assert cli.main(["db", "prune", "--db-url", url, "--days", "0"]) == 0
    assert "retention is off" in capsys.readouterr().out
