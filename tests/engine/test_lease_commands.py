"""Lease and command queue against a real (tmp) SQLite DB: pure SQL, no engine loop."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.lease import Lease
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
