"""What retention deletes, pinned where a mutation pass found it unchecked: the cutoff (exactly
`retain_days` before now, strict), the report, batches oldest first, the pause, the stop and the
bound, missing tables, the newest row per group, replay rows, the roll-up of reward estimates
(groups with NULL keys, exact sums with NULLs, never more than a batch), and the sizes `pmm db
status` shows. SQLite only (the PostgreSQL branches need a server: tests/store/test_retention.py)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select, text

from pmm_widgets.store import retention
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.retention import (
    DEFAULT_BATCH,
    LEDGER_TABLES,
    RETAINED_TABLES,
    database_bytes,
    free_bytes,
    oldest_ts,
    prune,
    table_sizes,
)
from pmm_widgets.store.schema import book_snapshots, events, markets, metadata, orders, pnl, reward_estimates, trades

D = Decimal
NOW = 1_800_000_000.0
DAY = 86_400.0
REWARD_AT = RETAINED_TABLES.index("reward_estimates") + 1  # batches up to and including its first one


@pytest.fixture
def eng(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'ret.db'}")
    metadata.create_all(e)
    yield e
    e.dispose()


def add(e: Engine, table, rows: list[dict]) -> None:
    with e.begin() as c:
        c.execute(insert(table), rows)


def col(e: Engine, table, name: str) -> list:
    with e.connect() as c:
        return list(c.execute(select(table.c[name]).order_by(table.c.id)).scalars())


def snaps(ts_list: list[float]) -> list[dict]:
    return [{"token_id": "t", "ts": t} for t in ts_list]


# ---------------------------------------------------------------- the cutoff and the report
def test_the_cutoff_is_retain_days_before_now_and_strict(eng):
    cut = NOW - 7 * DAY
    add(eng, book_snapshots, snaps([cut - 1e-3, cut, cut + 1e-3, NOW]))
    rep = prune(eng, 7, now=NOW, pause_sec=0)
    assert rep.cutoff == cut
    assert col(eng, book_snapshots, "ts") == [cut, cut + 1e-3, NOW]  # a row exactly at the cutoff stays
    assert rep.deleted == {**{t: 0 for t in RETAINED_TABLES}, "book_snapshots": 1} and rep.total == 1
    assert rep.batches == len(RETAINED_TABLES)  # one (short) batch per table
    assert 0 <= rep.seconds < 30


def test_fractional_days_and_the_clock_by_default(eng):
    real = time.time()
    add(eng, book_snapshots, snaps([real - 13 * 3600.0, real - 11 * 3600.0]))
    rep = prune(eng, 0.5, pause_sec=0)  # no `now`: the wall clock
    assert abs(rep.cutoff - (real - 0.5 * DAY)) < 60
    assert col(eng, book_snapshots, "ts") == [real - 11 * 3600.0] and rep.total == 1


@pytest.mark.parametrize("days", [0, 0.0, -1.0])
def test_retention_off_deletes_nothing_and_reports_nothing(eng, days):
    add(eng, book_snapshots, snaps([NOW - 1000 * DAY]))
    rep = prune(eng, days, now=NOW)
    assert rep.deleted == {t: 0 for t in RETAINED_TABLES} and rep.total == 0
    assert (rep.batches, rep.seconds) == (0, 0.0)
    assert col(eng, book_snapshots, "ts") == [NOW - 1000 * DAY]


def test_the_ledger_is_never_a_retained_table_and_is_kept(eng):
    assert LEDGER_TABLES == ("trades", "orders") and not set(LEDGER_TABLES) & set(RETAINED_TABLES)
    old = NOW - 100 * DAY
    add(eng, trades, [{"trade_id": "x", "order_id": "o", "market": "m", "token_id": "t", "side": "BUY", "price": 0.5,
                       "size": 1, "fill_type": "FILLED", "mode": "live", "ts": old}])
    add(eng, orders, [{"client_id": "c", "market": "m", "token_id": "t", "side": "BUY", "price": 0.5, "size": 1,
                       "filled": 0, "status": "CANCELED", "mode": "live", "created_ts": old, "updated_ts": old}])
    prune(eng, 1, now=NOW, pause_sec=0)
    assert col(eng, trades, "trade_id") == ["x"] and col(eng, orders, "client_id") == ["c"]


# ---------------------------------------------------------------- batches
def test_the_default_batch_is_two_thousand_rows(eng):
    assert DEFAULT_BATCH == 2_000
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i * 1e-3 for i in range(2_001)]))
    rep = prune(eng, 7, now=NOW, pause_sec=0, max_batches=1)
    assert rep.deleted["book_snapshots"] == 2_000 and rep.batches == 1
    assert col(eng, book_snapshots, "ts") == [NOW - 10 * DAY + 2_000 * 1e-3]  # oldest first


def test_batches_go_oldest_first_and_a_full_batch_asks_for_another(eng):
    ts = [NOW - 10 * DAY + i for i in range(5)]
    add(eng, book_snapshots, snaps(ts))
    rep = prune(eng, 7, now=NOW, batch=2, pause_sec=0, max_batches=1)
    assert col(eng, book_snapshots, "ts") == ts[2:] and rep.deleted["book_snapshots"] == 2 and rep.batches == 1
    rep = prune(eng, 7, now=NOW, batch=3, pause_sec=0)
    # 3 rows left: one full batch, then one empty one that ends the table
    assert rep.deleted["book_snapshots"] == 3 and rep.batches == 2 + len(RETAINED_TABLES) - 1
    assert col(eng, book_snapshots, "ts") == []


def test_the_pause_comes_after_every_full_batch_and_never_when_zero(eng, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(retention.time, "sleep", slept.append)
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(5)]))
    prune(eng, 7, now=NOW, batch=2)
    assert slept == [0.005, 0.005]  # the default pause, after each of the two full batches
    slept.clear()
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(4)]))
    prune(eng, 7, now=NOW, batch=2, pause_sec=0.25)
    assert slept == [0.25, 0.25]
    slept.clear()
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(4)]))
    prune(eng, 7, now=NOW, batch=2, pause_sec=0)
    assert slept == []


def test_max_batches_bounds_one_call_across_tables(eng):
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(5)]))
    add(eng, events, [{"ts": NOW - 10 * DAY, "level": "INFO", "kind": "k"}])
    rep = prune(eng, 7, now=NOW, batch=1, pause_sec=0, max_batches=3)
    assert rep.batches == 3 and rep.total == 3 and len(col(eng, book_snapshots, "ts")) == 2
    assert col(eng, events, "ts") == [NOW - 10 * DAY]  # its turn did not come
    rep = prune(eng, 7, now=NOW, batch=1, pause_sec=0, max_batches=0)
    assert rep.batches == 0 and rep.total == 0


def test_stop_ends_the_call_before_the_next_batch(eng):
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(5)]))
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2

    rep = prune(eng, 7, now=NOW, batch=1, pause_sec=0, stop=stop)
    assert rep.total == 2 and rep.batches == 2 and len(asked) == 3
    assert len(col(eng, book_snapshots, "ts")) == 3


def test_a_missing_table_is_skipped(eng):
    with eng.begin() as c:
        c.execute(text("DROP TABLE markouts"))
        c.execute(text("DROP TABLE markets"))
    add(eng, book_snapshots, snaps([NOW - 10 * DAY]))
    add(eng, pnl, [{"ts": NOW - 10 * DAY, "market": "m"}, {"ts": NOW - 9 * DAY, "market": "m"}])
    rep = prune(eng, 7, now=NOW, pause_sec=0)
    assert rep.deleted == {**{t: 0 for t in RETAINED_TABLES}, "book_snapshots": 1, "pnl": 1}
    assert rep.batches == len(RETAINED_TABLES) - 2


# ---------------------------------------------------------------- what stays
def test_the_newest_pnl_row_of_every_market_and_mode_stays_even_with_no_mode(eng):
    old = NOW - 10 * DAY
    rows = [{"ts": old + i, "market": m, "mode": mode, "total": i}
            for i, (m, mode) in enumerate([("a", None), ("a", None), ("a", "live"), ("b", None), ("a", None),
                                           ("b", "live"), ("b", "live")])]
    add(eng, pnl, rows)
    add(eng, pnl, [{"ts": old, "market": "r", "mode": "replay", "run_id": "run1"}] * 2)
    rep = prune(eng, 7, now=NOW, pause_sec=0)
    assert rep.deleted["pnl"] == 3
    assert col(eng, pnl, "total") == [2, 3, 4, 6, None, None]  # newest of (a,None) (a,live) (b,None) (b,live)


def test_markets_keep_the_newest_row_of_each_condition(eng):
    def snap(ts: float, cid: str) -> dict:
        return {"snapshot_ts": ts, "rank": 1, "condition_id": cid, "question": "q", "yes_token_id": "y",
                "no_token_id": "n"}

    add(eng, markets, [snap(NOW - 20 * DAY, "a"), snap(NOW - 19 * DAY, "b"), snap(NOW - 18 * DAY, "a"),
                       snap(NOW - 17 * DAY, "b"), snap(NOW - 1, "b")])
    rep = prune(eng, 7, now=NOW, pause_sec=0)
    assert rep.deleted["markets"] == 3
    assert col(eng, markets, "snapshot_ts") == [NOW - 18 * DAY, NOW - 1]


def test_replay_rows_stay_in_every_table_that_has_them(eng):
    old = NOW - 30 * DAY
    add(eng, events, [{"ts": old, "level": "INFO", "kind": "k", "run_id": "r"},
                      {"ts": old, "level": "INFO", "kind": "k", "run_id": None}])
    rep = prune(eng, 7, now=NOW, pause_sec=0)
    assert rep.deleted["events"] == 1 and col(eng, events, "run_id") == ["r"]


# ---------------------------------------------------------------- the roll-up of reward estimates
def est(ts: float, usd, market: str = "m", mode: str | None = "live", day: str | None = "2027-01-01",
        run_id: str | None = None) -> dict:
    return {"ts": ts, "market": market, "mode": mode, "venue_date": day, "usd": usd, "q_min": D("1.5"), "orders": 2,
            "scoring": 1, "mid": D("0.5"), "run_id": run_id}


def rewards(e: Engine) -> list[tuple]:
    with e.connect() as c:
        t = reward_estimates
        return [tuple(r) for r in c.execute(select(t.c.market, t.c.mode, t.c.venue_date, t.c.usd, t.c.ts, t.c.q_min,
                                                   t.c.orders, t.c.mid).order_by(t.c.id))]


def test_rollup_sums_each_group_exactly_nulls_included(eng):
    old = NOW - 10 * DAY
    add(eng, reward_estimates, [
        est(old, D("0.1")), est(old + 1, None), est(old + 2, D("0.2")),  # (m, live, day): None adds nothing
        est(old + 3, D("0.3"), mode=None), est(old + 4, D("0.4"), mode=None),  # (m, NULL, day): exactly two
        est(old + 5, D("0.5"), day=None), est(old + 6, D("0.6"), mode=None, day=None),  # one row each: left alone
        est(old + 7, D("7"), run_id="r"), est(old + 8, D("8"), run_id="r"),  # a replay's: never touched
        est(NOW - 1, D("0.9")), est(NOW, D("1.1")),  # recent: untouched
    ])
    rep = prune(eng, 7, now=NOW, pause_sec=0)
    assert rep.deleted["reward_estimates"] == 2 + 1
    got = rewards(eng)
    assert got[0] == ("m", "live", "2027-01-01", D("0.3"), old + 2, None, None, None)  # the oldest row, folded
    assert got[1] == ("m", None, "2027-01-01", D("0.7"), old + 4, None, None, None)
    assert got[2:] == [("m", "live", None, D("0.5"), old + 5, D("1.5"), 2, D("0.5")),
                       ("m", None, None, D("0.6"), old + 6, D("1.5"), 2, D("0.5")),
                       ("m", "live", "2027-01-01", D("7"), old + 7, D("1.5"), 2, D("0.5")),
                       ("m", "live", "2027-01-01", D("8"), old + 8, D("1.5"), 2, D("0.5")),
                       ("m", "live", "2027-01-01", D("0.9"), NOW - 1, D("1.5"), 2, D("0.5")),
                       ("m", "live", "2027-01-01", D("1.1"), NOW, D("1.5"), 2, D("0.5"))]
    assert prune(eng, 7, now=NOW, pause_sec=0).deleted["reward_estimates"] == 0  # folded groups stay folded


def test_rollup_never_removes_more_than_a_batch(eng):
    old = NOW - 10 * DAY
    add(eng, reward_estimates, [est(old + i, D(i), market="a") for i in range(5)]
        + [est(old + 10 + i, D(10 + i), market="b") for i in range(3)])
    # the tables before reward_estimates take one (empty) batch each: exactly one roll-up batch
    rep = prune(eng, 7, now=NOW, batch=3, pause_sec=0, max_batches=REWARD_AT)
    assert rep.deleted["reward_estimates"] == 3 and rep.batches == REWARD_AT
    assert [r[3] for r in rewards(eng)] == [D(0 + 1 + 2 + 3), D(4), D(10), D(11), D(12)]
    rep = prune(eng, 7, now=NOW, batch=3, pause_sec=0, max_batches=REWARD_AT)
    assert rep.deleted["reward_estimates"] == 3  # a: 2 rows into 1; b: 3 rows into 1 (limit: 3 - 1 + 1)
    assert [r[3] for r in rewards(eng)] == [D(10), D(33)]
    rep = prune(eng, 7, now=NOW, batch=3, pause_sec=0)
    assert rep.deleted["reward_estimates"] == 0
    assert [r[3] for r in rewards(eng)] == [D(10), D(33)] and [r[4] for r in rewards(eng)] == [old + 4, old + 12]


def test_a_two_group_batch_stops_at_the_batch(eng):
    old = NOW - 10 * DAY
    add(eng, reward_estimates, [est(old + i, D(1), market="a") for i in range(3)]
        + [est(old + 10 + i, D(2), market="b") for i in range(3)])
    rep = prune(eng, 7, now=NOW, batch=3, pause_sec=0, max_batches=REWARD_AT)
    assert rep.deleted["reward_estimates"] == 3  # a: 2 removed, b: 1 (two of its rows folded)
    assert [r[3] for r in rewards(eng)] == [D(3), D(4), D(2)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["live", None]),
                          st.integers(0, 10**9).map(lambda n: D(n) / 10**6), st.booleans()), max_size=25),
       st.integers(1, 6))
def test_rollup_keeps_every_groups_sum_to_the_last_digit(tmp_path_factory, rows, batch):
    e = make_engine(f"sqlite:///{tmp_path_factory.mktemp('h') / 'r.db'}")
    try:
        metadata.create_all(e)
        if rows:
            add(e, reward_estimates, [est(NOW - (10 * DAY if is_old else 60) + i, usd, market=m, mode=mode)
                                      for i, (m, mode, usd, is_old) in enumerate(rows)])
        before = rewards(e)
        prune(e, 7, now=NOW, batch=batch, pause_sec=0)
        after = rewards(e)

        def sums(rs):
            out: dict[tuple, Decimal] = {}
            for r in rs:
                out[r[:2]] = out.get(r[:2], D(0)) + r[3]
            return out

        assert sums(after) == sums(before)  # nothing lost, nothing made up
        olds = [r[:2] for r in after if r[4] < NOW - 7 * DAY]
        assert len(olds) == len(set(olds))  # one old row per group
        assert [r for r in after if r[4] >= NOW - 7 * DAY] == [r for r in before if r[4] >= NOW - 7 * DAY]
    finally:
        e.dispose()


# ---------------------------------------------------------------- sizes and ages
def _pragma(e: Engine, name: str) -> int:
    with e.connect() as c:
        return int(c.execute(text(f"PRAGMA {name}")).scalar() or 0)


def test_table_sizes_are_each_tables_pages_with_its_indexes(eng):
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(3_000)]))
    sizes = table_sizes(eng)
    assert set(sizes) == set(metadata.tables)  # every table of the schema, and only those
    page = _pragma(eng, "page_size")
    with eng.connect() as c:
        for name, size in sizes.items():
            want = c.execute(text("SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                                  "(SELECT name FROM sqlite_master WHERE tbl_name = :t)"), {"t": name}).scalar()
            assert size == want and size % page == 0 and size >= page, name
    assert sizes["book_snapshots"] > 10 * page  # the rows and the index on (token_id, ts)
    with eng.begin() as c:
        c.execute(text("DROP TABLE sweep_results"))
    assert "sweep_results" not in table_sizes(eng)


def test_database_and_free_bytes(eng):
    page = _pragma(eng, "page_size")
    assert database_bytes(eng) == _pragma(eng, "page_count") * page > 0
    assert free_bytes(eng) == 0  # a fresh file has no free page
    add(eng, book_snapshots, snaps([NOW - 10 * DAY + i for i in range(5_000)]))
    prune(eng, 7, now=NOW, pause_sec=0)
    free = free_bytes(eng)
    assert free == _pragma(eng, "freelist_count") * page and free is not None and free >= 10 * page
    assert database_bytes(eng) == _pragma(eng, "page_count") * page


def test_sizes_of_a_database_that_cannot_tell(tmp_path):
    class Broken:  # an engine whose connection fails: the sizes are unknown, not an error
        class dialect:  # noqa: N801
            name = "sqlite"

        def connect(self):
            raise OSError("gone")

    assert database_bytes(Broken()) is None  # type: ignore[arg-type]
    assert free_bytes(Broken()) is None  # type: ignore[arg-type]


def test_oldest_ts(eng):
    assert oldest_ts(eng, "book_snapshots") is None
    add(eng, book_snapshots, snaps([NOW, NOW - 5.5, NOW - 2]))
    assert oldest_ts(eng, "book_snapshots") == NOW - 5.5 and isinstance(oldest_ts(eng, "book_snapshots"), float)
