"""The second mutation pass over the replayer (`research/replayer.py`): the summary a point
reports (`ReplayPoint.result`), the gap and undecodable-row handlers, the run id's claim
(`RunLease`) and a few argument checks. Built in memory from the objects those read (no file,
no replay), so each case is cheap."""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from types import SimpleNamespace

import numpy as np
import pytest

from pmm_widgets.research import replayer
from pmm_widgets.research.recordings import FileUse, Gap, RecordingError, Window, iso, parse_time
from pmm_widgets.research.replayer import (
    CH_ENGINE,
    CH_REST,
    UNDECODABLE_NAMED,
    Replayer,
    ReplayPoint,
    ReplaySink,
    RunLease,
    parse_markets,
    resume_index,
    rows_from_records,
)

H0 = parse_time("2026-11-30T10:00:00Z")


def window(ts: list[float], **kw) -> Window:
    n = len(ts)
    return Window(H0, H0 + 3600, np.array(ts, np.float64), np.full(n, CH_ENGINE, np.int8), ["x"] * n,
                  np.zeros(n, np.int32), [None] * n, ["s"] * n, **kw)


class Totals:
    def __init__(self, summary: dict) -> None:
        self._summary = summary

    def summary(self) -> dict:
        return dict(self._summary)


def point(cycles: list[float], *, win: Window | None = None, trades=(), orders=(), markouts=(), totals=None,
          known=("m1", "m2"), markets=("m1",), resume_at=0) -> ReplayPoint:
    """A point whose replay did `cycles` and wrote these rows (what `result` reads)."""
    rp = SimpleNamespace(t0=H0, t1=H0 + 600, cycles_mode="grid", known_markets=list(known), markets=list(markets),
                         stream=SimpleNamespace(stats=SimpleNamespace(events=120, bad_messages=2)), frames=9,
                         resume_at=resume_at, window=win if win is not None else window([H0 + 1, H0 + 2, H0 + 7]),
                         skipped=4, restored=False)
    p = ReplayPoint.__new__(ReplayPoint)
    p.rp, p.run_id, p.cycle_times, p.problems = rp, "run1", list(cycles), ["a problem"]
    p.sink = ReplaySink(None, "run1")
    for t in trades:
        p.sink.trades[t["trade_id"]] = t
    for o in orders:
        p.sink.orders[o["client_id"]] = o
    p.sink.markouts.extend(markouts)
    p.max_inventory_usd, p.max_inventory_shares, p.killed = 1.5, 2.0, False
    p.cycle = None if totals is None else SimpleNamespace(snapshot=lambda: SimpleNamespace(totals=Totals(totals)))
    p.cancels_before, p.exchange = 5, SimpleNamespace(cancels=2)  # (two recorded processes' exchanges)
    return p


def trade(tid: str, ts: float, size: str, price: str) -> dict:
    return {"trade_id": tid, "ts": ts, "size": size, "price": price}


def order(cid: str, ts: float, status: str) -> dict:
    return {"client_id": cid, "created_ts": ts, "status": status}


def test_the_summary_counts_orders_fills_volume_and_rates_and_takes_the_cycles_pnl_components():
    trades = [trade("t2", H0 + 9, "10", "0.40"), trade("t1", H0 + 9, "5", "0.60"), trade("t3", H0 + 3, "1", "0.5")]
    orders = [order("c2", H0 + 2, "REJECTED"), order("c1", H0 + 2, "FILLED"), order("c3", H0 + 1, "OPEN")]
    marks = [{"horizon_sec": 0, "markout_usd": 0.25}, {"horizon_sec": 5, "markout_usd": -0.5}]
    totals = {"fills": 99, "fills_per_min": 99.0, "placed": 99, "open_orders": 99, "fees": 0.125, "rewards": 3.0}
    res = point([H0 + 60, H0 + 600, H0 + 1860], trades=trades, orders=orders, markouts=marks, totals=totals,
                resume_at=1).result("done", 4.0, 11)
    s = res.summary
    assert [t["trade_id"] for t in res.trades] == ["t3", "t1", "t2"]
    assert [o["client_id"] for o in res.orders] == ["c3", "c1", "c2"]
    assert (res.run_id, res.status, res.problems, res.cycles) == ("run1", "done", ["a problem"],
                                                                    [H0 + 60, H0 + 600, H0 + 1860])
    assert (s["sim_seconds"], s["wall_seconds"], s["cycles"], s["rows_read"]) == (1800.0, 4.0, 3, 11)
    assert (s["events_per_sec"], s["sim_seconds_per_wall_second"]) == (30.0, 450.0)
    assert (s["placed"], s["rejected"], s["fills"]) == (2, 1, 3)
    assert s["fills_per_min"] == 0.1 and s["volume"] == 7.5
    assert s["markets"] == 2 and s["resumed_from"] == iso(H0 + 2) and s["recorded_until"] == iso(H0 + 7)
    assert (s["fees"], s["realized_spread_usd"], s["markout_5s_usd"]) == (0.125, 0.25, -0.5)
    assert (s["rewards"], s["reward_estimate"], s["rewards_per_hour_avg"]) == (3.0, 3.0, 6.0)
    assert all(k not in s or s[k] != 99 for k in ("fills", "fills_per_min", "placed", "open_orders"))
    assert "open_orders" not in s
    assert (s["frames"], s["warmup_rows_skipped"], s["bad_messages"], s["events"]) == (9, 4, 2, 120)
    assert s["cancels"] == 7  # every recorded process's exchange's, not the last one's


def test_a_summary_without_cycles_or_wall_time_or_rows_says_zero_rates_not_a_division_by_zero():
    s = point([], win=window([]), known=(), markets=("m1", "m2", "m3"),
              totals={"rewards": 2.0}).result("interrupted", 0.0, 0).summary
    assert (s["sim_seconds"], s["cycles"], s["events_per_sec"], s["sim_seconds_per_wall_second"]) == (0.0, 0, 0.0, 0.0)
    assert (s["fills_per_min"], s["rewards_per_hour_avg"], s["reward_estimate"]) == (0.0, 0.0, 2.0)
    assert (s["markets"], s["recorded_until"], s["resumed_from"], s["volume"]) == (3, None, None, 0.0)
    assert s["realized_spread_usd"] is None and s["gaps"] == 0 and s["pending_files"] == 0
    # one cycle: no simulated time either
    s = point([H0 + 5]).result("done", 1.0, 0).summary
    assert (s["sim_seconds"], s["fills_per_min"]) == (0.0, 0.0) and "rewards" not in s and s["reward_estimate"] is None


def test_rates_over_less_than_a_simulated_second_are_rates_still():
    trades = [trade("t1", H0 + 1, "2", "0.5")]
    s = point([H0, H0 + 0.5], trades=trades, totals={"rewards": 1.0}).result("done", 0.25, 0).summary
    assert s["sim_seconds"] == 0.5 and s["fills_per_min"] == 120.0 and s["rewards_per_hour_avg"] == 7200.0
    assert s["sim_seconds_per_wall_second"] == 2.0 and s["events_per_sec"] == 480.0 and s["volume"] == 1.0
    # rewards that are no float (absent, or another type): no average of them
    s = point([H0, H0 + 60], totals={"rewards": Decimal("1")}).result("done", 1.0, 0).summary
    assert s["reward_estimate"] == Decimal("1") and "rewards_per_hour_avg" not in s


class Stream:
    def __init__(self) -> None:
        self.forgot = 0

    def forget_connections(self) -> None:
        self.forgot += 1


def bare_replayer(sources: list[FileUse] = ()) -> Replayer:
    """A replayer with two points and two synced books (what `_gap` and `_undecodable` touch)."""
    r = Replayer.__new__(Replayer)
    r.points = [SimpleNamespace(problems=[]), SimpleNamespace(problems=[])]
    r.md = SimpleNamespace(books={k: SimpleNamespace(synced=True, needs_resync=False) for k in ("a", "b")})
    r.stream = Stream()
    r.window = window([], sources=list(sources))
    r.undecodable = 0
    return r


def test_a_gap_resets_every_book_forgets_the_connections_and_is_said_once_per_point(caplog):
    r = bare_replayer()
    g = Gap("s1", H0 + 1, H0 + 5, 3, ())
    r.points[0].problems.append(f"/rec/market-s1-0002.parquet.open: {g}")  # the window named it, with its file
    with caplog.at_level(logging.WARNING, logger=replayer.log.name):
        r._gap(g)
    assert r.points[0].problems == [f"/rec/market-s1-0002.parquet.open: {g}"] and r.points[1].problems == [str(g)]
    assert all(not b.synced and b.needs_resync for b in r.md.books.values()) and r.stream.forgot == 1
    assert [m.getMessage() for m in caplog.records] == [f"replay: {g}"]


def test_undecodable_rows_are_named_with_their_file_or_channel_the_first_ten_and_all_counted(caplog):
    src = [FileUse("/rec/h/engine-s1-0002.parquet", 5, H0 + 10, H0 + 20, 1, 5, 10, "d"),
           FileUse("/rec/h/engine-s1.parquet", 5, H0, H0 + 9, 1, 5, 10, "d"),
           FileUse("/rec/h/rest-s1.parquet", 5, H0 + 10, H0 + 20, 1, 5, 10, "d")]
    r = bare_replayer(src)
    exc = ValueError("Expecting value")
    with caplog.at_level(logging.WARNING, logger=replayer.log.name):
        r._undecodable(H0 + 10, CH_ENGINE, "cycle", "s1", exc)  # (a file's first and last row: its own)
        r._undecodable(H0 + 9, CH_ENGINE, "cycle", "s1", exc)
        r._undecodable(H0 + 30, CH_ENGINE, "params", "s1", exc)
        r._undecodable(H0 - 5, CH_REST, "start", None, exc)
    said = [f"/rec/h/engine-s1-0002.parquet: the cycle row at {iso(H0 + 10)} is no JSON (Expecting value): skipped",
            f"/rec/h/engine-s1.parquet: the cycle row at {iso(H0 + 9)} is no JSON (Expecting value): skipped",
            f"engine channel of session s1: the params row at {iso(H0 + 30)} is no JSON (Expecting value): skipped",
            f"the rest row recorded before the window: the start row at {iso(H0 - 5)} is no JSON (Expecting value): "
            "skipped"]
    assert r.points[0].problems == r.points[1].problems == said and r.undecodable == 4
    assert [m.getMessage() for m in caplog.records] == [f"replay: {m}" for m in said]
    for _ in range(UNDECODABLE_NAMED + 3):
        r._undecodable(H0 + 12, CH_ENGINE, "cycle", "s1", exc)
    assert r.undecodable == UNDECODABLE_NAMED + 7 and len(r.points[0].problems) == UNDECODABLE_NAMED


@pytest.fixture
def db_url(tmp_path):
    """A DB holding the lease table (what `upgrade` makes before a replay claims its run id)."""
    import sqlalchemy as sa

    from pmm_widgets.store.schema import engine_lease

    url = f"sqlite:///{tmp_path / 'lease.db'}"
    db = sa.create_engine(url)
    engine_lease.create(db)
    db.dispose()
    return url


def test_a_run_id_is_claimed_by_one_replay_at_a_time_and_free_again_once_released(db_url):
    a, b, c = RunLease(db_url, "run1"), RunLease(db_url, "run1"), RunLease(db_url, "run2")
    a.acquire()
    try:
        owner = a.lease.read().owner
        assert owner == a.lease.owner
        with pytest.raises(RecordingError) as e:
            b.acquire()
        host_pid = owner.rsplit(":", 1)[0]
        assert host_pid.count(":") == 1 and str(e.value) == (
            f"replay run1 is being written into this DB by another replay (host:pid {host_pid}): the same inputs twice "
            "would mix their rows; wait for it to end, or write to another DB (--db-url)")
        c.acquire()  # another run id: its own claim
        assert c.lease.read().owner == c.lease.owner
        assert a._thread is not None and a._thread.daemon and a._thread.is_alive()  # (renewing; never holds the process)
    finally:
        a.release()
        c.release()
    assert a.db.pool.checkedin() == 0  # its connections closed
    assert not a._thread.is_alive() and a.lease.read() is None and c.lease.read() is None
    b2 = RunLease(db_url, "run1")
    b2.acquire()
    try:
        assert b2.lease.read().owner == b2.lease.owner
    finally:
        b2.release()
    assert b2.lease.read() is None


def test_a_claim_released_before_it_was_taken_takes_nothing_and_a_vanished_claimant_is_another_process(db_url):
    a = RunLease(db_url, "run1")
    a.release()  # (Ctrl-C before the acquire ran): safe, and the acquire then claims nothing
    a.acquire()
    assert a._thread is None and a.lease.read() is None
    b, c = RunLease(db_url, "run1"), RunLease(db_url, "run1")
    b.acquire()
    try:
        c.lease.read = lambda: None  # the claim ended between the two looks
        with pytest.raises(RecordingError, match=r"\(host:pid another process\)"):
            c.acquire()
    finally:
        b.release()
        c.release()


def test_the_claim_is_renewed_while_the_replay_runs_and_a_failed_renewal_is_said(db_url, monkeypatch, caplog):
    monkeypatch.setattr(replayer, "RUN_LEASE_TTL_SEC", 0.3)
    a = RunLease(db_url, "run1")
    renewed = threading.Event()
    calls: list[float] = []
    real = a.lease.renew

    def renew(*args, **kw):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OSError("the DB hiccuped")
        ok = real(*args, **kw)
        renewed.set()
        return ok

    a.lease.renew = renew
    first = None
    with caplog.at_level(logging.WARNING, logger=replayer.log.name):
        a.acquire()
        try:
            first = a.lease.read().expires_at
            assert renewed.wait(1.0)  # (every TTL/3: the second renewal 0.2 s in)
            assert a.lease.read().expires_at > first
        finally:
            t = time.monotonic()
            a.release()
            assert time.monotonic() - t < 2 and not a._thread.is_alive()
    assert 2 <= len(calls) <= 20  # every TTL/3 (0.1 s): not a busy loop
    (rec,) = [r for r in caplog.records if "could not renew" in r.getMessage()]
    assert rec.getMessage() == "replay run1: could not renew its claim on the run id" and rec.exc_info and rec.exc_info[0] is OSError


def test_a_release_waits_for_a_renewal_under_way(db_url, monkeypatch):
    monkeypatch.setattr(replayer, "RUN_LEASE_TTL_SEC", 0.3)
    a = RunLease(db_url, "run1")
    started = threading.Event()
    real = a.lease.renew

    def slow_renew(*args, **kw):
        started.set()
        time.sleep(0.3)
        return real(*args, **kw)

    a.lease.renew = slow_renew
    a.acquire()
    try:
        assert started.wait(2)
    finally:
        a.release()
    assert not a._thread.is_alive() and a.lease.read() is None


def test_an_update_of_a_fill_not_restored_is_left_out():
    """A fill at or after t0 is not restored (the replay makes it again): its later update has no row to go to."""
    from pmm_widgets.research.replayer import TRADE_UPDATES

    fill = {"trade_id": "t1", "market": "m", "token_id": "y", "side": "BUY", "price": "0.4", "size": "10",
            "ts": H0 - 9, "fee": "0"}
    recs = [json.dumps({"trades": [fill, {**fill, "trade_id": "t2", "ts": H0 + 1}]}),
            json.dumps({TRADE_UPDATES: [{"trade_id": "t2", "fee": "5"}, {"trade_id": "t1", "fee": "1"}]})]
    got = rows_from_records(recs, H0)
    assert [(t.ts, str(t.fee)) for t in got.trades] == [(H0 - 9, "1")]


def test_a_market_list_is_ids_unless_it_is_a_signed_count():
    assert parse_markets("X5") == ["X5"] and parse_markets("+3") == 3
    with pytest.raises(ValueError, match="--markets -2: expected a positive count"):
        parse_markets("-2")


def test_a_replay_resumes_from_the_last_checkpoint_before_t0_not_the_last_rest_row():
    ts = [H0 + 1, H0 + 2, H0 + 3, H0 + 9]
    w = Window(H0, H0 + 60, np.array(ts), np.full(4, CH_REST, np.int8), ["books", "checkpoint", "books", "checkpoint"],
               np.zeros(4, np.int32), ['[{"local_ts": 1}]', '[{"local_ts": 1}]', '[{"local_ts": 1}]', '[]'],
               ["s"] * 4)
    assert resume_index(w, H0 + 5) == 1


@pytest.mark.parametrize("payload", ["5", '{"asset_id": "a"}', '"x"'])
def test_a_starting_checkpoint_that_is_no_list_is_said_and_syncs_nothing(payload):
    """The checkpoint a replay starts from, JSON but no list of books (a damaged file): said
    (`checkpoint: REST books: not a list`), no book touched; a number used to end the replay in
    a TypeError as its local times were read."""
    r = bare_replayer()
    r._checkpoint(payload, H0, start=True)
    assert r.points[0].problems == r.points[1].problems == ["checkpoint: REST books: not a list"]
    assert all(b.synced for b in r.md.books.values())


def test_a_recorded_cycles_hold_is_its_text_and_a_payload_without_one_is_said():
    r = bare_replayer()
    assert r._hold_of('{"hold": "paused by the operator"}', H0, "s1") == "paused by the operator"
    assert r._hold_of(None, H0, "s1") is None and r._hold_of("null", H0, "s1") is None
    assert r._hold_of("{}", H0, "s1") is None and r.points[0].problems == []
    for bad in ('{"hold": 5}', "[1]", "7"):  # the cycle runs, without a hold; the row is named
        assert r._hold_of(bad, H0 + 1, "s1") is None
    said = (f"engine channel of session s1: the cycle row at {iso(H0 + 1)} is no valid record (TypeError: its hold "
            "is no text): the cycle runs without a hold")
    assert r.points[0].problems == r.points[1].problems == [said] * 3 and r.undecodable == 3
