"""Issue 17 (DB/lease half) fault suite: loopback sandbox, tmp SQLite, bounded, seconds each.

- C1: another connection holds `BEGIN EXCLUSIVE` on the DB longer than the lease TTL while
  engine A quotes; engine B starts on the same DB meanwhile. From the `orders` table (owner id
  per row): at no instant do two engines have orders resting, A stopped quoting and cancelled
  before its lease could expire, and it said so.
- M2: a full disk (SQLite `PRAGMA max_page_count` on every connection to the file, so inserts
  fail with SQLite's real "database or disk is full") pauses quoting and cancels; once space
  returns every fill is in `trades` and no order row is left open.
- DB file deleted mid-run: detected, halted, stopped, rows spilled beside the file.
- Commands: a forged `set_params` with 1e15 limits is rejected; a future-dated `kill` is
  rejected, never kept; a stale one expires.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import sqlite3
import time

import pytest
import sqlalchemy as sa
from engine_helpers import count, open_orders_in_db, until
from sqlalchemy import event

from pmm_widgets.engine import Engine
from pmm_widgets.store import schema

pytestmark = pytest.mark.integration

CLOSED = ("CANCELED", "FILLED", "REJECTED")


def _intervals(db: sa.Engine) -> dict[str, list[tuple[float, float, str]]]:
    """owner → [(created, ended or +inf, client_id)] of every order that rested."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(schema.orders.c.owner, schema.orders.c.client_id, schema.orders.c.status,
                                      schema.orders.c.created_ts, schema.orders.c.updated_ts)).all()
    out: dict[str, list[tuple[float, float, str]]] = {}
    for owner, cid, status, created, updated in rows:
        if status == "REJECTED":
            continue
        out.setdefault(owner or "?", []).append((created, updated if status in CLOSED else float("inf"), cid))
    return out


def _overlaps(iv: dict[str, list[tuple[float, float, str]]]) -> list[tuple[str, str]]:
    owners = list(iv)
    bad = []
    for i, a in enumerate(owners):
        for b in owners[i + 1:]:
            for s1, e1, c1 in iv[a]:
                for s2, e2, c2 in iv[b]:
                    if s1 < e2 and s2 < e1:
                        bad.append((c1, c2))
    return bad


async def test_c1_lock_longer_than_ttl_never_two_engines_quoting(fast_settings, db, db_url, tmp_path):
    ttl = fast_settings.lease_ttl_sec
    a = Engine(fast_settings)
    a_events: list[tuple[float, str, str]] = []
    a.events.subscribe(lambda ev: a_events.append((ev.ts, ev.kind, ev.message)))
    a.start()
    assert await a.wait_role() == "owner"
    assert await until(lambda: a.state.totals.open_orders > 0 and a.state.tick >= 3)

    locker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
    locker.execute("BEGIN EXCLUSIVE")
    lock_start = time.time()
    b = Engine(fast_settings)
    try:
        await asyncio.sleep(0.3)
        b.start()  # B's lease attempt waits behind the lock; it must never quote beside A
        assert await until(lambda: a.state.halted is not None, timeout=ttl)
        assert "lease" in a.state.halted and "HALTED" in (a.state.last_error or "")
        # the halt is shown first, its cancel-all follows at once (after a running cycle, within a
        # budget of 2/3 TTL): done while A still holds the lease
        assert await until(lambda: a.runtime.exchange.open_orders() == [], timeout=ttl)
        halted_at = time.time()
        assert halted_at - lock_start < ttl
        await asyncio.sleep(max(0.0, ttl + 1.5 - (time.time() - lock_start)))  # lock outlives the TTL
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    lock_end = time.time()
    role_b = await b.wait_role(timeout=30)
    # after the lock one of them owns the DB: B took over (A sees it and exits), or A renewed first
    assert await until(lambda: (not a.running) or role_b == "attached", timeout=15)
    if role_b == "attached":  # A renewed first: wait for its halt to lift and its quotes to return
        assert await until(lambda: a.state.halted is None and a.state.totals.open_orders > 0, timeout=20)
    await asyncio.sleep(1.0)
    await b.stop()
    await a.stop()
    iv = _intervals(db)
    assert a.state.owner in iv
    assert _overlaps(iv) == [], "two engines had orders resting at the same time"
    expiry = lock_start + ttl
    covering = [c for s, e, c in iv[a.state.owner] if s <= expiry < e]
    assert covering == [], "A still had orders resting when its lease could expire"
    a_cancel_ends = [e for s, e, c in iv[a.state.owner] if s < lock_start < e]
    assert a_cancel_ends and max(a_cancel_ends) < expiry
    if role_b == "attached":  # A renewed first: its halt lifted and it quoted again
        assert any(k == "lease" and "quoting resumes" in m for _, k, m in a_events)
        assert any(s > lock_end for s, e, c in iv[a.state.owner])
    cancelled = [ts for ts, k, m in a_events if k == "lease" and "orders cancelled" in m]
    assert cancelled and cancelled[0] < expiry  # the cancel finished before the lease could expire
    assert open_orders_in_db(db) == 0
    print(f"C1 figures: lock->halt {halted_at - lock_start:.2f}s, lock->cancel done "
          f"{cancelled[0] - lock_start:.2f}s (TTL {ttl:g}s), lock held {lock_end - lock_start:.1f}s, "
          f"new owner {'B' if role_b == 'owner' else 'A'}, A orders {len(iv[a.state.owner])}, "
          f"B orders {len(iv.get(b.state.owner, []))}")


@pytest.fixture
def disk(db_url):
    """Caps the DB file's pages on every connection to it at each transaction: {"pages": 0} = no cap."""
    path = db_url.removeprefix("sqlite:///")
    cap = {"pages": 0}

    def on_begin(conn):
        if conn.engine.url.database == path:
            conn.exec_driver_sql(f"PRAGMA max_page_count={cap['pages'] or 1073741823}")

    event.listen(sa.engine.Engine, "begin", on_begin)
    try:
        yield cap
    finally:
        event.remove(sa.engine.Engine, "begin", on_begin)


async def test_m2_full_disk_pauses_quoting_and_loses_no_fill(fast_settings, db, db_url, disk):
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: count(db, "SELECT COUNT(*) FROM trades") > 0, timeout=30)
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as c:
        disk["pages"] = c.execute("PRAGMA page_count").fetchone()[0]  # the disk is full now
    full_at = time.time()
    # the writer's halt (a loaded machine may see a lease renewal fail on the full disk first:
    # another correct halt, shown beside it; every active halt is in the one line)
    assert await until(lambda: "writer" in (engine.state.halted or ""), timeout=15), engine.state.halted
    halted_in = time.time() - full_at
    assert "full" in (engine.state.halted or "")
    # the halt shows first, its cancel-all follows (after a running cycle; CI once looked between
    # the two); the writer's status line follows at the next publish
    assert await until(lambda: engine.runtime.exchange.open_orders() == [], timeout=fast_settings.lease_ttl_sec)
    assert await until(lambda: "FAULT" in engine.state.writer, timeout=10), engine.state.writer
    fills_when_full = engine.state.totals.fills
    queued = engine.owner.store.writer.stats().pending
    assert queued > 0 and engine.owner.store.writer.stats().dropped == 0
    await asyncio.sleep(1.0)
    assert engine.runtime.exchange.open_orders() == []  # still paused: the fault is still there
    disk["pages"] = 0  # space returns
    assert await until(lambda: engine.state.halted is None, timeout=15)
    assert await until(lambda: engine.state.totals.open_orders > 0, timeout=15)  # quoting resumed
    await engine.stop()
    fills = engine.state.totals.fills
    assert fills >= fills_when_full
    assert count(db, "SELECT COUNT(*) FROM trades") == fills  # 0 fills lost
    assert open_orders_in_db(db) == 0  # no row left LIVE that the venue does not hold
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'writer' AND message LIKE 'HALTED%'") >= 1
    print(f"M2 figures: disk full -> halted {halted_in:.2f}s, {queued} rows retained, "
          f"{fills} fills all recorded")


async def test_m2_a_cancel_as_the_halt_takes_the_trade_lock_still_ends_the_engine(fast_settings, db, db_url, disk):
    """CI found it: a test failing just after the writer's halt showed, its teardown cancelled the
    engine while the halt was taking the trade lock; 3.11's `asyncio.wait_for` dropped that cancel,
    the engine went on (halted, the disk still full) and the teardown waited 33 minutes. Polling
    at every loop step puts the cancel in that window (the old code hung here 2 runs of 2); the
    run must end, through its shutdown: nothing left open, the rows it could not write spilled."""
    engine = Engine(fast_settings)
    task = engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0 and engine.state.tick >= 2, timeout=30)
    path = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as c:
        disk["pages"] = c.execute("PRAGMA page_count").fetchone()[0]
    exchange = engine.runtime.exchange
    assert await until(lambda: "writer" in (engine.state.halted or ""), timeout=15, step=0), engine.state.halted
    task.cancel()  # what a teardown, a kernel shutdown or Ctrl-C does
    done, _ = await asyncio.wait({task}, timeout=30)
    assert done, "the cancelled engine is still running"
    assert not engine.running
    assert exchange.open_orders() == [] and engine.state.totals.open_orders == 0
    assert glob.glob(path + ".unwritten-*.jsonl"), "the rows the full disk refused were not spilled"


async def test_deleted_db_is_detected_halts_and_spills(fast_settings, db, db_url, tmp_path):
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0 and engine.state.tick >= 3)
    path = db_url.removeprefix("sqlite:///")
    deleted_at = time.time()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    assert await until(lambda: not engine.running, timeout=10)
    took = time.time() - deleted_at
    assert "deleted" in (engine.state.last_error or "")
    assert engine.state.totals.open_orders == 0
    spills = glob.glob(path + ".unwritten-*.jsonl")
    assert len(spills) == 1
    with open(spills[0], encoding="utf-8") as fh:
        tables = {json.loads(line)["table"] for line in fh}
    assert "events" in tables  # at least the halt and stop events, kept rather than lost
    print(f"DB deleted -> engine stopped in {took:.2f}s; spill {os.path.basename(spills[0])}")


async def test_forged_commands_are_refused(fast_settings, db):
    now = time.time()
    with db.begin() as conn:  # written before the engine starts, dated an hour ahead
        conn.execute(sa.insert(schema.commands).values(ts=now + 3600, issuer="forger", kind="kill", payload_json={}))
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    before = engine.params.max_inventory_usd
    with db.begin() as conn:
        now = time.time()
        conn.execute(sa.insert(schema.commands).values(
            ts=now, issuer="forger", kind="set_params",
            payload_json={"max_inventory_usd": 1e15, "max_daily_loss_usd": 1e15, "max_open_orders": 10**15}))
        conn.execute(sa.insert(schema.commands).values(ts=now + 3600, issuer="forger", kind="kill", payload_json={}))
        conn.execute(sa.insert(schema.commands).values(ts=now - 3600, issuer="forger", kind="kill", payload_json={}))
    assert await until(lambda: count(db, "SELECT COUNT(*) FROM commands WHERE applied_at IS NULL") == 0, timeout=10)
    with db.connect() as conn:
        results = conn.execute(sa.select(schema.commands.c.kind, schema.commands.c.ts, schema.commands.c.result)
                               .order_by(schema.commands.c.id)).all()
    pre_kill, forged, future_kill, stale_kill = results
    assert pre_kill.result.startswith("rejected") and "future" in pre_kill.result
    assert forged.result.startswith("rejected") and "max_" in forged.result
    assert future_kill.result.startswith("rejected") and "future" in future_kill.result
    assert stale_kill.result.startswith("expired")
    await asyncio.sleep(0.5)
    assert engine.running and engine.state.kill is None
    assert engine.params.max_inventory_usd == before
    face = Engine(fast_settings)  # a legitimate face: its rows carry who sent them
    face.start()
    assert await face.wait_role() == "attached"
    face.params.alpha = 2.5
    assert await until(lambda: engine.params.alpha == 2.5, timeout=5)
    with db.connect() as conn:
        sender = conn.execute(sa.select(schema.commands.c.sender).where(schema.commands.c.kind == "set_params")
                              .order_by(schema.commands.c.id.desc())).scalars().first()
    assert sender and "@" in sender and "pid" in sender
    await face.stop()
    await engine.stop()


async def test_lease_taken_by_another_engine_stops_the_old_owner_after_cancelling(fast_settings, db):
    from pmm_widgets.engine.lease import Lease

    a = Engine(fast_settings)
    a.start()
    assert await a.wait_role() == "owner"
    assert await until(lambda: a.state.totals.open_orders > 0)
    with db.begin() as conn:  # B won the lease (as if A's had expired while the DB was locked)
        conn.execute(sa.update(schema.engine_lease).values(expires_at=0.0))
    assert Lease(db, ttl_sec=fast_settings.lease_ttl_sec, owner="otherhost:2:b").try_acquire()
    assert await until(lambda: not a.running, timeout=5)
    assert "lease lost to another engine" in (a.state.last_error or "")
    assert open_orders_in_db(db) == 0


def test_c1_two_pmm_run_processes_never_quote_at_once(db_url, db, tmp_path):
    """The issue's repro with real processes: `pmm run paper` A; a lock held past the TTL; a
    second `pmm run paper` B on the same DB meanwhile; then SIGTERM. Checked from `orders`."""
    import signal
    import subprocess
    import sys

    from engine_helpers import FAST_ENV, subprocess_env

    ttl = float(FAST_ENV["PMM_LEASE_TTL_SEC"])
    env = subprocess_env(db_url)
    cmd = [sys.executable, "-m", "pmm_widgets.cli", "run", "paper"]
    out_a, out_b = open(tmp_path / "a.out", "w+"), open(tmp_path / "b.out", "w+")
    a = subprocess.Popen(cmd, env=env, stdout=out_a, stderr=subprocess.STDOUT, text=True)
    b = None
    try:
        deadline = time.time() + 60
        while time.time() < deadline and count(db, "SELECT COUNT(*) FROM orders WHERE status = 'LIVE'") == 0:
            time.sleep(0.1)
        time.sleep(1.0)
        locker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, timeout=10)
        locker.execute("BEGIN EXCLUSIVE")
        lock_start = time.time()
        try:
            time.sleep(0.3)
            b = subprocess.Popen(cmd, env=env, stdout=out_b, stderr=subprocess.STDOUT, text=True)
            time.sleep(ttl + 1.5 - (time.time() - lock_start))
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        end = time.time() + 8.0  # let the survivor quote again (B after its setup, or A after renewing)
        while time.time() < end and count(db, f"SELECT COUNT(*) FROM orders WHERE created_ts > {time.time() - 0.5}") == 0:
            time.sleep(0.2)
        time.sleep(0.5)
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (a, b):
            if p is not None:
                p.wait(timeout=30)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    out_a.seek(0)
    out_b.seek(0)
    text_a, text_b = out_a.read(), out_b.read()
    iv = _intervals(db)
    assert len(iv) >= 1 and "?" not in iv, iv.keys()
    assert _overlaps(iv) == [], "two engines had orders resting at the same time"
    expiry = lock_start + ttl
    assert [c for ivs in iv.values() for s, e, c in ivs if s <= expiry < e] == [], "orders resting at lease expiry"
    assert "HALTED" in text_a and "orders cancelled" in text_a, text_a[-3000:]
    assert open_orders_in_db(db) == 0
    # After the lock, either A renewed first (B found a live owner: exit 3, never quoted) or B took
    # the expired lease (A saw "lease lost", exited 1 after cancelling; B quoted only after that).
    assert b is not None and b.returncode in (0, 3), (b.returncode, text_b[-2000:])
    if b.returncode == 3:
        assert len(iv) == 1 and a.returncode == 0, text_a[-2000:]
    else:
        assert "lease lost to another engine" in text_a and a.returncode == 1, text_a[-2000:]
    print(f"C1 processes: B exit {b.returncode}, owners with orders {len(iv)}; A said: "
          + " | ".join(ln for ln in text_a.splitlines() if "HALTED" in ln or "lease" in ln)[:600])


def test_status_line_shows_writer_health_and_the_halt():
    from pmm_widgets.engine.runner import status_line
    from pmm_widgets.engine.state import EngineState
    from pmm_widgets.store.writer import WriterStats

    ws = WriterStats(rows_written=5, pending=1234, last_flush_ts=0.0, lag_sec=4.2, errors=3,
                     last_error="OperationalError: database or disk is full",
                     fault="OperationalError: database or disk is full")
    line = status_line(EngineState(role="owner", running=True, tick=7, writer=ws.line(),
                                   halted="writer: DB writer unhealthy (1234 rows queued): disk full"))
    assert "[paper HALTED]" in line and "db lag 4.2s queued 1234 FAULT: OperationalError: database or disk is full" in line
    assert "| HALTED: writer: DB writer unhealthy" in line
    healthy = WriterStats(rows_written=5, pending=0, last_flush_ts=0.0, lag_sec=0.2, errors=0)
    assert status_line(EngineState(writer=healthy.line())).endswith("db lag 0.2s")
    failing = "recording FAILING (could not write 3 market rows for 2026120110: OSError; 4 errors)"
    assert status_line(EngineState(writer=healthy.line(), recording=failing)).endswith("db lag 0.2s | " + failing)


async def test_slow_shutdown_keeps_the_lease_until_its_cancels_are_done(fast_settings, db, monkeypatch):
    """A stop whose cancel-all outlasts the TTL (slow venue, loaded machine) keeps renewing the
    lease: no other engine can own the DB while our cancels are in flight, and an attached face
    then reads the final (killed) state instead of an owner that vanished without one."""
    from pmm_widgets.engine import runtime as runtime_mod
    from pmm_widgets.engine.lease import Lease

    slow = 2 * fast_settings.lease_ttl_sec
    # (the stop's deadline, 5 s, would cut a cancel-all of 6 s: the point here is the lease)
    monkeypatch.setattr(runtime_mod, "STOP_VERIFY_SEC", slow + 10.0)
    a = Engine(fast_settings)
    a.start()
    assert await a.wait_role() == "owner"
    assert await until(lambda: a.state.totals.open_orders > 0)
    exchange = a.runtime.exchange
    real_cancel_all = exchange.cancel_all
    started = asyncio.Event()

    async def slow_cancel_all():
        started.set()
        await asyncio.sleep(slow)
        return await real_cancel_all()

    exchange.cancel_all = slow_cancel_all
    contender = Lease(db, ttl_sec=fast_settings.lease_ttl_sec, owner="otherhost:2:b")
    kill = asyncio.ensure_future(a.kill())
    await asyncio.wait_for(started.wait(), 10)
    t_end = time.time() + slow - 0.5
    tries = 0
    while time.time() < t_end:
        assert not await asyncio.to_thread(contender.try_acquire), "another engine took the lease mid-shutdown"
        tries += 1
        await asyncio.sleep(0.25)
    result = await asyncio.wait_for(kill, 30)
    assert tries > 10 and result.ok and result.venue_open_after == 0
    row = Lease(db, ttl_sec=fast_settings.lease_ttl_sec).read()
    assert row is not None and row.expired() and row.state_json and row.state_json.get("kill")
    assert open_orders_in_db(db) == 0


async def test_rows_the_recording_never_wrote_are_said_when_the_engine_stops(db_url, tmp_path):
    """A session whose recorder dropped rows (its writer behind: every market row past the queue
    bound, set to nothing here) until it stopped: the stop says how many rows of which channel were
    never written, as a WARNING `writer` event (which `pmm run` prints as it exits), once."""
    from engine_helpers import FAST_ENV

    from pmm_widgets.config import Settings
    from pmm_widgets.events import EventKind, Level

    kw = {k.removeprefix("PMM_").lower(): v for k, v in FAST_ENV.items()}
    a = Engine(Settings(_env_file=None, db_url=db_url, record="on", record_dir=str(tmp_path / "rec"), **kw))
    seen = []
    a.events.subscribe(seen.append)
    a.start()
    try:
        assert await a.wait_role() == "owner"
        rec = a.runtime.store.recorder
        assert rec is not None
        rec.max_queue_bytes = -1  # the writer "behind" from now on: each market, REST or universe row dropped
        assert await until(lambda: rec.stats.overflow > 0, 20)
    finally:
        await a.stop()
    lost = [e for e in seen if e.message.startswith("recording LOST")]
    assert len(lost) == 1 and (lost[0].level, lost[0].kind) == (Level.WARNING, EventKind.WRITER), lost
    assert lost[0].message == rec.health() and f"market {rec._overflow_by['market']:,}" in lost[0].message, lost
    assert f"{rec.stats.overflow:,} dropped while the writer was behind" in lost[0].message
