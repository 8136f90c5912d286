"""Lease and command queue against a real (tmp) SQLite DB: pure SQL, no engine loop."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from pmm_widgets.engine.commands import CommandQueue, default_sender
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


# ---------------------------------------------------------------- the command queue in detail (a mutation pass over engine/commands.py)
def _forge(db, **values) -> int:
    """A row written straight into the table, as any process with the DB's file could."""
    row = {"ts": time.time(), "issuer": "face", "sender": "", "kind": "pause", "payload_json": {}} | values
    with db.begin() as conn:
        return int(conn.execute(sa.insert(commands).values(**row)).inserted_primary_key[0])


def test_a_commands_life_is_judged_at_its_exact_bounds():
    from pmm_widgets.engine.commands import DEFAULT_MAX_AGE_SEC, FUTURE_SKEW_SEC, Command

    assert (FUTURE_SKEW_SEC, DEFAULT_MAX_AGE_SEC) == (5.0, 60.0)  # README and the kill wait rely on these
    q = CommandQueue(None, issuer="owner")  # type: ignore[arg-type]  # verdict needs no DB
    now = 1_000.0
    at = lambda ts: q.verdict(Command(1, ts, "f", "kill", {}), now)  # noqa: E731
    assert at(now + 5.0) is None and at(now - 60.0) is None  # both bounds still alive
    assert at(now + 5.5) == "rejected: dated 6s in the future by the owner's clock (more than 5s of skew)"
    assert at(now - 60.5) == "expired: written 60s ago (commands live 60s)"
    assert CommandQueue(None, issuer="owner", max_age_sec=10).verdict(Command(1, now - 10.5, "f", "kill", {}), now) \
        == "expired: written 10s ago (commands live 10s)"  # type: ignore[arg-type]


def test_pending_closes_what_it_does_not_return_and_reads_forged_rows_safely(db):
    q = CommandQueue(db, issuer="owner")
    now = time.time()
    old = _forge(db, ts=now - 120)
    future = _forge(db, ts=now + 60)
    null_names = _forge(db, issuer=None, sender=None, payload_json=["not", "a", "dict"])
    text_payload = _forge(db, payload_json="kill everything")
    ok = _forge(db, sender="ops@desk pid 1 (dashboard)", payload_json={"alpha": 2})
    got = q.pending(now=now)
    assert [c.id for c in got] == [null_names, text_payload, ok]  # oldest first, the bad two left out
    assert got[0].issuer == "" and got[0].sender == "" and got[0].origin == "unknown sender" and got[0].payload == {}
    assert got[1].payload == {} and got[2].payload == {"alpha": 2} and got[2].origin == "ops@desk pid 1 (dashboard)"
    assert q.result(old)[1].startswith("expired: written 120s ago") and q.result(future)[1].startswith("rejected: dated 60s")
    assert q.result(ok) is None  # returned rows stay open until the owner applies them
    assert [c.id for c in q.pending(now=now + 3600)] == []  # the owner's clock, not the wall clock, judges
    assert q.result(ok)[1].startswith("expired: written 3600s ago")


def test_results_are_cut_and_a_result_less_row_reads_empty(db):
    q = CommandQueue(db, issuer="owner")
    cid = q.send("pause")
    q.mark_applied(cid, "x" * 1500)
    applied, text = q.result(cid)
    assert text == "x" * 1000 and applied <= time.time()
    forged = _forge(db, applied_at=time.time(), result=None)  # closed by a hand without a result
    assert q.result(forged)[1] == ""
    assert q.result(10**9) is None  # no such row


def test_expire_before_counts_both_kinds_at_their_exact_bounds(db):
    q = CommandQueue(db, issuer="owner")
    start = 5_000.0
    before = _forge(db, ts=start - 0.5)
    at_start = _forge(db, ts=start)
    at_skew = _forge(db, ts=start + 5.0)
    beyond = [_forge(db, ts=start + 5.5), _forge(db, ts=start + 900)]
    assert q.expire_before(start) == 3  # one stale + two future-dated
    assert q.result(before)[1] == "expired: no engine was running"
    assert q.result(at_start) is None and q.result(at_skew) is None
    assert {q.result(b)[1] for b in beyond} == {"rejected: dated in the future by the owner's clock"}


def test_commands_are_attributed_and_immutable(db, monkeypatch):
    import getpass

    from pmm_widgets.engine import commands as commands_module
    from pmm_widgets.engine.commands import Command

    q = CommandQueue(db, issuer="owner-1", sender="s" * 300)
    assert q.sender == "s" * 200 and q.issuer == "owner-1"
    assert CommandQueue(db, issuer="owner-1", sender="").sender == ""  # given, even empty: not the default
    host = socket.gethostname()
    assert CommandQueue(db, issuer="x").sender == default_sender() and not default_sender().endswith(")")
    assert default_sender().endswith(f"@{host} pid {os.getpid()}")

    def no_user() -> str:
        raise KeyError("no passwd entry")

    monkeypatch.setattr(getpass, "getuser", no_user)
    assert default_sender("cli") == f"uid{os.getuid()}@{host} pid {os.getpid()} (cli)"
    monkeypatch.delattr(commands_module.os, "getuid")
    assert default_sender() == f"?@{host} pid {os.getpid()}"
    cmd = Command(1, 2.0, "", "kill", {}, sender="")
    assert cmd.origin == "unknown sender" and Command(1, 2.0, "i", "kill", {}).origin == "i"
    assert Command(1, 2.0, "i", "kill", {}, sender="s").origin == "s"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cmd.kind = "resume"  # type: ignore[misc]
    assert not hasattr(cmd, "__dict__")
