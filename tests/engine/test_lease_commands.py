"""Lease and command queue against a real (tmp) SQLite DB: pure SQL, no engine loop."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.lease import LEASE_NAME, Lease, LeaseTimer, new_owner_id
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.schema import commands, engine_lease


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    """The same atomicity claims on SQLite and PostgreSQL (skipped without PMM_TEST_PG_URL)."""
    url = f"sqlite:///{tmp_path / 'lease.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    upgrade(url)
    eng = make_engine(url)
    with eng.begin() as conn:  # the PostgreSQL DB is shared by the session
        conn.execute(sa.delete(engine_lease))
        conn.execute(sa.delete(commands))
    yield eng
    eng.dispose()


def test_second_contender_is_refused_while_held(db):
    a, b = Lease(db, ttl_sec=10, owner="a"), Lease(db, ttl_sec=10, owner="b")
    assert a.try_acquire(now=100.0)
    assert not b.try_acquire(now=101.0)
    assert a.try_acquire(now=102.0)  # re-entrant for the holder
    assert a.read().owner == "a"


def test_expired_lease_is_taken_over_and_old_owner_loses_renew(db):
    a, b = Lease(db, ttl_sec=10, owner="a"), Lease(db, ttl_sec=10, owner="b")
    assert a.try_acquire(now=100.0)
    assert b.try_acquire(now=111.0)
    assert not a.renew(now=112.0)
    assert b.renew({"tick": 3}, now=112.0)
    row = b.read()
    assert row.owner == "b" and row.state_json == {"tick": 3} and row.expires_at == 122.0


def test_release_frees_only_own_lease(db):
    a, b = Lease(db, ttl_sec=10, owner="a"), Lease(db, ttl_sec=10, owner="b")
    assert a.try_acquire()
    b.release()
    assert a.read().owner == "a"
    a.release()
    assert a.read() is None
    assert b.try_acquire()


def test_concurrent_acquire_has_exactly_one_winner(db):
    leases = [Lease(db, ttl_sec=10, owner=f"o{i}") for i in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def go(lease):
        barrier.wait()
        results.append(lease.try_acquire())

    threads = [threading.Thread(target=go, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_commands_roundtrip_and_expiry(db):
    q = CommandQueue(db, issuer="face")
    old = q.send("pause")
    assert q.expire_before(ts=1e12) == 1
    assert q.result(old)[1].startswith("expired")
    cid = q.send("set_params", {"alpha": 2.5})
    [cmd] = q.pending()
    assert (cmd.id, cmd.kind, cmd.payload) == (cid, "set_params", {"alpha": 2.5})
    assert q.result(cid) is None
    q.mark_applied(cid, "ok")
    assert q.pending() == [] and q.result(cid)[1] == "ok"
    with pytest.raises(ValueError):
        q.send("launch_missiles")


# ---------------------------------------------------------------- the lease in detail (a mutation pass over engine/lease.py)
def test_a_lease_is_taken_over_only_after_its_expiry_instant(db):
    a, b = Lease(db, ttl_sec=10, owner="a"), Lease(db, ttl_sec=10, owner="b")
    assert a.try_acquire(now=100.0)
    row = a.read()
    assert (row.name, row.owner, row.expires_at, row.heartbeat_at, row.state_json) == ("engine", "a", 110.0, 100.0, None)
    assert not row.expired(110.0) and row.expired(110.001)  # the same instant as the takeover below
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.owner = "b"  # type: ignore[misc]  # a read is a snapshot: faces share it
    assert not hasattr(row, "__dict__")  # slots
    assert not b.try_acquire(now=110.0)  # at its very expiry instant the lease is still a's
    assert b.read().owner == "a" and not b.held and b.renewed_at is None
    assert b.try_acquire(now=110.001)
    assert (b.held, b.renewed_at) == (True, 110.001) and b.read().expires_at == pytest.approx(120.001)


def test_expired_reads_the_clock_when_no_instant_is_given(db):
    a = Lease(db, ttl_sec=10, owner="a")
    assert a.try_acquire()  # now: the wall clock
    row = a.read()
    assert not row.expired() and row.expired(row.expires_at + 1)
    assert Lease(db, ttl_sec=10, owner="b").try_acquire() is False  # held: a live lease is never taken
    assert a.try_acquire(now=1.0)  # the holder's own early clock rewrites its row
    assert a.read().expired()


def test_held_and_renewed_at_follow_what_the_db_says(db):
    a, b = Lease(db, ttl_sec=10, owner="a"), Lease(db, ttl_sec=10, owner="b")
    assert (a.held, a.renewed_at) == (False, None)
    assert a.try_acquire(now=100.0)  # the INSERT path (no row yet)
    assert (a.held, a.renewed_at) == (True, 100.0)
    assert a.try_acquire(now=103.0)  # the UPDATE path (its own row)
    assert (a.held, a.renewed_at) == (True, 103.0)
    assert a.renew({"tick": 1}, now=105.0)
    assert (a.held, a.renewed_at) == (True, 105.0)
    assert b.try_acquire(now=200.0)  # expired: taken over by b (UPDATE path for b)
    assert (b.held, b.renewed_at) == (True, 200.0)
    assert b.read().state_json is None  # a's state is not b's
    assert a.renew({"tick": 2}, now=201.0) is False
    assert (a.held, a.renewed_at) == (False, 105.0)  # lost: the last proof stays the one that succeeded
    assert b.read().state_json is None  # a's renewal wrote nothing


def test_renew_extends_from_its_instant_and_keeps_the_state_unless_given(db):
    a = Lease(db, ttl_sec=10, owner="a")
    assert a.try_acquire(now=100.0)
    assert a.renew({"tick": 1}, now=104.0)
    assert a.renew(now=106.0)  # no state: the last one stays
    row = a.read()
    assert (row.expires_at, row.heartbeat_at, row.state_json) == (116.0, 106.0, {"tick": 1})
    before = time.time()
    assert a.renew({"tick": 2})  # the wall clock when no instant is given
    row = a.read()
    assert row.heartbeat_at >= before and row.expires_at == pytest.approx(row.heartbeat_at + 10)
    assert a.renewed_at == row.heartbeat_at and row.state_json == {"tick": 2}


def test_release_with_a_final_state_keeps_the_row_expired_and_frees_the_lease(db):
    a, b = Lease(db, ttl_sec=10, owner="a"), Lease(db, ttl_sec=10, owner="b")
    assert a.try_acquire(now=100.0)
    a.release({"kill": "killed by face"})
    assert a.held is False
    row = a.read()
    assert (row.owner, row.expires_at, row.state_json) == ("a", 0.0, {"kill": "killed by face"})
    assert row.expired(0.5)  # expired at once, whatever the clock
    assert b.try_acquire(now=0.5)  # the next face owns immediately
    a.release({"kill": "late"})  # no longer a's: b's row is untouched
    assert (b.read().owner, b.read().expires_at, b.read().state_json) == ("b", 10.5, None)


def test_release_clears_held_even_when_the_row_was_already_gone(db):
    a = Lease(db, ttl_sec=10, owner="a")
    assert a.try_acquire(now=100.0)
    a.release()
    assert a.held is False and a.read() is None


def test_owner_ids_name_the_host_and_process_and_differ():
    a, b = new_owner_id(), new_owner_id()
    host, pid, tag = a.rsplit(":", 2)
    assert (host, pid) == (socket.gethostname(), str(os.getpid())) and len(tag) == 12 and int(tag, 16) >= 0
    assert a != b
    assert LEASE_NAME == "engine"  # the row's name is a contract: every face looks it up
    assert Lease(None, 1).owner.startswith(f"{socket.gethostname()}:{os.getpid()}:")  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [3.0, 6.0, 12.0, 30.0])
def test_lease_timer_periods_and_halt(ttl):
    now = [1000.0]
    timer = LeaseTimer(ttl, proven_at=1000.0, clock=lambda: now[0])
    assert timer.ttl_sec == ttl and timer.period == min(1.0, ttl / 6) and timer.halt_after == ttl / 3
    assert timer.silent() == 0.0 and timer.left() == ttl and not timer.must_halt()
    now[0] = 1000.0 + ttl / 3 - 0.01
    assert not timer.must_halt() and timer.left() == pytest.approx(ttl - ttl / 3 + 0.01)
    now[0] = 1000.0 + ttl / 3
    assert timer.must_halt()  # halts at exactly a third of the TTL silent
    timer.proven(1000.0 + ttl / 4)
    assert timer.silent() == pytest.approx(ttl / 3 - ttl / 4) and not timer.must_halt()
    timer.proven(1000.0)  # an older proof (a renewal that started earlier, answered later) never moves it back
    assert timer.silent() == pytest.approx(ttl / 3 - ttl / 4)
    now[0] = 1000.0 + 2 * ttl
    assert timer.left() == pytest.approx(ttl / 4 - ttl) and timer.left() < 0


def test_lease_timer_reads_the_wall_clock_by_default():
    timer = LeaseTimer(6.0, proven_at=time.time() - 1.0)
    assert 1.0 <= timer.silent() < 5.0 and not timer.must_halt()
