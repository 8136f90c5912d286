"""A killed engine stays killed until an operator clears it, also when the DB did not answer its
stop in time.

The kill is on record in the lease row: the final release writes the engine's state with its
`kill` result (`expires_at` 0), and a face that finds it stays down ("the engine was killed:
press Start to run a new one"). When the DB did not answer that release within the stop's
budget, the row kept the running state of the last renewal: once it expired, a demo page's
engine (attached, `auto_takeover`) took the lease over and quoted again, as if nothing had
happened. Now:

- the kill is in the state from before its cancel (a `kill` not `stopped` yet), so every lease
  renewal that lands carries it;
- a final release that did not land is tried again, while the process runs, until the DB takes
  it (fenced: never over a row another run took since);
- an automatic start (a page's, a take-over) does not take a row that records a kill; an explicit
  start (Start, `pmm run`, `engine.start()`) takes it and says once what it clears.

The DB does not answer: a test connection holds SQLite's write lock, and the engine's lease
connections give up after 0.6 s (their busy timeout; 10 s by default): the release, cut by the
stop's deadline (0.6 s here), fails before the DB answers again (1.5 s after the kill), and the
row (TTL 3 s) expires after that."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sqlite3
import time

import pytest
from engine_helpers import until

import pmm_widgets.engine.runtime as runtime_mod
import pmm_widgets.store.db as db_mod
from pmm_widgets.config import Settings
from pmm_widgets.engine import Engine
from pmm_widgets.engine.lease import Lease
from pmm_widgets.events import EventKind
from pmm_widgets.store.db import make_engine

pytestmark = pytest.mark.integration


class _Lock:
    """SQLite's write lock held by another connection: no writer gets an answer meanwhile."""

    def __init__(self, path: str) -> None:
        self.con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)

    async def take(self) -> None:
        await asyncio.to_thread(self.con.execute, "BEGIN EXCLUSIVE")

    async def give(self) -> None:
        await asyncio.to_thread(self.con.execute, "ROLLBACK")


@pytest.fixture
def quick_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stop's budget 0.6 s; the engine's DB connections answer 'locked' after 0.6 s."""
    # (the modules that bind `make_engine` at their import, imported first: the patch must not outlive the test)
    importlib.import_module("pmm_widgets.store.writer")
    importlib.import_module("pmm_widgets.store.migrate")
    monkeypatch.setattr(runtime_mod, "STOP_VERIFY_SEC", 0.3)
    monkeypatch.setattr(runtime_mod, "AFTER_VERIFY_SEC", 0.3)
    real = db_mod.make_engine
    monkeypatch.setattr(db_mod, "make_engine", lambda url, **kw: real(url, **{**kw, "busy_timeout_ms": 600}))


async def test_a_kill_whose_release_the_db_did_not_answer_keeps_a_demo_page_down(fast_settings: Settings,
                                                                                  quick_stop: None):
    path = fast_settings.db_url.removeprefix("sqlite:///")
    a = Engine(fast_settings)
    a.stop_grace_sec = 0.3
    a.start()
    demo = Engine(fast_settings, auto_takeover=True)  # a demo tab beside it: attached, takes over a freed lease
    lock = _Lock(path)
    db = make_engine(fast_settings.db_url)
    try:
        assert await a.wait_role() == "owner"
        demo.start()
        assert await demo.wait_role() == "attached"
        assert await until(lambda: a.state.totals.open_orders > 0, timeout=10)
        await lock.take()
        t0 = time.monotonic()
        kr = await a.kill()
        assert kr.stopped and kr.message.startswith("KILLED: "), kr
        assert time.monotonic() - t0 < 2.0  # (the stop's 0.6 s, the grace)
        assert not a.running
        await asyncio.sleep(max(0.0, t0 + 1.5 - time.monotonic()))  # the DB answers again 1.5 s after the kill
        await lock.give()
        row_expires = Lease(db, fast_settings.lease_ttl_sec).read()
        assert row_expires is not None
        # past the row's expiry (the last renewal + 3 s) and the demo page's next looks: it stays down
        wait = max(1.5, row_expires.expires_at - time.time() + 1.5)
        became_owner = await until(lambda: demo.role == "owner", timeout=wait)
        assert not became_owner, "a demo page started a new engine over a killed one"
        row = Lease(db, fast_settings.lease_ttl_sec).read()
        assert row is not None and row.state_json is not None and row.state_json.get("kill"), row
        assert await until(lambda: not demo.running, timeout=2)
        assert demo.state.last_error == "the engine was killed: press Start to run a new one"
        # an explicit start clears it, and says so once
        b = Engine(fast_settings)
        b.start()
        try:
            assert await b.wait_role() == "owner"
            said = [ev.message for ev in b.events.recent(50) if ev.kind == EventKind.ENGINE_START]
            assert any(m.startswith("the last engine on this DB was killed") for m in said), said
        finally:
            await b.stop()
    finally:
        with contextlib.suppress(sqlite3.OperationalError):  # (given back already, unless the test failed first)
            lock.con.execute("ROLLBACK")
        lock.con.close()
        await demo.stop()
        await a.stop()
        db.dispose()
