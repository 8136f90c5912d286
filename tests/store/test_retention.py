"""Retention: old rows of book_snapshots, public_trades, events, pnl, markouts and reward_estimates
go in small batches; trades and orders stay; the newest pnl row per market stays; old reward
estimates are rolled up with their sums exact; replay rows stay; `pmm db prune` and `pmm db status`
(sizes) over SQLite and PostgreSQL."""

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
    markouts,
    orders,
    pnl,
    public_trades,
    reward_estimates,
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
            c.execute(insert(markouts), [{"trade_id": f"x{t}", "horizon_sec": 5.0, "ts": t} for t in ts_list])
            c.execute(insert(reward_estimates), [{"ts": t, "market": f"r{i}", "usd": 0.5}
                                                 for i, t in enumerate(ts_list)])  # one row per group
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
        assert rep.deleted == {**{t: 1_050 for t in RETAINED_TABLES}, "reward_estimates": 0, "markets": 0}
        assert rep.batches == 5 * 6 + 2  # 5 full batches of 200 + one of 50 per table; nothing to roll up or drop
        for t in (book_snapshots, public_trades, events, pnl, markouts):
            assert _count(eng, t) == 30
        assert _count(eng, reward_estimates) == 1_080  # one row per (market, mode): already rolled up
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
    assert "pruned 600 rows older than 7 days" in out and "trades and orders kept" in out
    assert cli.main(["db", "status", "--db-url", url]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("book_snapshots"))
    assert line.split()[1] == "5"  # rows: only the recent ones
    assert "retention:" in out and "database" in out
    assert cli.main(["db", "prune", "--db-url", url, "--days", "0"]) == 0
    assert "retention is off" in capsys.readouterr().out


def _rows(eng, table, *cols):
    with eng.connect() as c:
        return [tuple(r) for r in c.execute(select(*(table.c[k] for k in cols)).order_by(table.c.id))]


def test_latest_pnl_row_per_market_and_replay_rows_are_kept(db_url):
    """`pmm report` reads the newest pnl row of each market: a market last quoted 10 days ago keeps
    it; rows of a replay run (stamped with the replayed, old time) are never pruned."""
    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        with eng.begin() as c:
            c.execute(insert(pnl), [{"ts": NOW - 10 * DAY + i, "market": m, "mode": "live", "total": i}
                                    for m in ("gone", "TOTAL") for i in range(5)])
            c.execute(insert(pnl), [{"ts": NOW - 10 * DAY + i, "market": "gone", "mode": "paper", "total": 9}
                                    for i in range(3)])
            c.execute(insert(pnl), [{"ts": NOW - 60 + i, "market": "TOTAL", "mode": "live", "total": 7}
                                    for i in range(2)])
            c.execute(insert(pnl), [{"ts": NOW - 30 * DAY + i, "market": "gone", "mode": "replay", "run_id": "r1"}
                                    for i in range(4)])
            c.execute(insert(markouts), [{"trade_id": "t", "horizon_sec": 5.0, "ts": NOW - 30 * DAY, "run_id": "r1"},
                                         {"trade_id": "u", "horizon_sec": 5.0, "ts": NOW - 30 * DAY, "run_id": None}])
        rep = prune(eng, 7, now=NOW, batch=2, pause_sec=0)
        assert rep.deleted["pnl"] == 4 + 5 + 2 and rep.deleted["markouts"] == 1
        left = _rows(eng, pnl, "market", "mode", "total", "run_id")
        assert (("gone", "live", 4, None) in left and ("gone", "paper", 9, None) in left
                and sum(1 for r in left if r[0] == "TOTAL") == 2)  # the recent TOTAL rows only
        assert sum(1 for r in left if r[3] == "r1") == 4
        assert _rows(eng, markouts, "trade_id") == [("t",)]
        assert prune(eng, 7, now=NOW).total == 0  # idempotent
    finally:
        eng.dispose()


def test_old_reward_estimates_roll_up_with_exact_sums(db_url):
    """Report and restore sum `reward_estimates.usd` per market: after retention the sums are the
    same to the last stored digit, old rows are one per (market, mode), recent rows untouched."""
    from decimal import Decimal

    from pmm_widgets.analytics.report import economics

    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        vals = [Decimal(f"0.{i:06d}") + Decimal(i % 7) / 1000 for i in range(1, 900)]
        with eng.begin() as c:
            c.execute(insert(reward_estimates), [
                {"ts": NOW - (10 if i < 800 else 0) * DAY - 900 + i, "market": m, "mode": mode, "usd": v,
                 "q_min": 1, "orders": 2} for i, v in enumerate(vals) for m, mode in (("a", "live"), ("b", None))])
        before = economics(eng, "live")["totals"]["rewards"]
        with eng.connect() as c:
            sums0 = dict(c.execute(select(reward_estimates.c.market, func.sum(reward_estimates.c.usd))
                                   .group_by(reward_estimates.c.market)).all())
        rep = prune(eng, 7, now=NOW, batch=300, pause_sec=0)
        assert rep.deleted["reward_estimates"] == 2 * 799
        rows = _rows(eng, reward_estimates, "market", "mode", "usd", "q_min", "orders", "ts")
        old = [r for r in rows if r[5] < NOW - 7 * DAY]
        assert len(old) == 2 and all(r[3] is None and r[4] is None for r in old)
        assert len(rows) == 2 + 2 * 99  # the recent rows stay as they were
        assert old[0][2] == sum(vals[:800]) and old[0][5] == NOW - 10 * DAY - 900 + 799
        assert economics(eng, "live")["totals"]["rewards"] == before == sum(vals)
        with eng.connect() as c:
            sums1 = dict(c.execute(select(reward_estimates.c.market, func.sum(reward_estimates.c.usd))
                                   .group_by(reward_estimates.c.market)).all())
        assert {k: round(float(v), 6) for k, v in sums1.items()} == {k: round(float(v), 6) for k, v in sums0.items()}
        assert prune(eng, 7, now=NOW).total == 0  # a rolled-up group is left alone
    finally:
        eng.dispose()


def test_markets_keep_the_newest_row_of_every_market(db_url):
    """Old universe snapshots go, except the newest row of each condition id: the newest snapshot
    stays whole, and a market that left the universe long ago still maps its tokens (restore)."""
    from pmm_widgets.store import repo
    from pmm_widgets.store.schema import markets

    def snap(ts: float, cids: list[str]) -> list[dict]:
        return [{"snapshot_ts": ts, "rank": i + 1, "condition_id": c, "question": f"q {c}",
                 "yes_token_id": f"{c}-y", "no_token_id": f"{c}-n", "raw_json": {"x": "y" * 100}}
                for i, c in enumerate(cids)]

    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        with eng.begin() as c:
            for k in range(3):
                c.execute(insert(markets), snap(NOW - 10 * DAY + k, ["a", "gone"]))
            c.execute(insert(markets), snap(NOW - 60, ["a", "b"]))
        latest = repo.latest_universe(eng)
        rep = prune(eng, 7, now=NOW, batch=2, pause_sec=0)
        assert rep.deleted["markets"] == 2 * 3 - 1  # all old rows but the newest of "gone"
        assert repo.latest_universe(eng) == latest
        left = _rows(eng, markets, "condition_id", "snapshot_ts")
        assert sorted(left) == sorted([("gone", NOW - 10 * DAY + 2), ("a", NOW - 60), ("b", NOW - 60)])
        tokens = {r["condition_id"] for r in repo.load_session_rows(eng, "live")["tokens"]}
        assert tokens == {"a", "b", "gone"}
    finally:
        eng.dispose()
