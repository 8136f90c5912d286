"""Shared helpers of the engine tests (a plain module: conftest cannot be imported by name)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

FAST_ENV = {
    "PMM_VENUE": "sandbox",
    "PMM_QUOTE_REFRESH_SEC": "0.2",
    "PMM_DASHBOARD_REFRESH_SEC": "0.2",
    "PMM_SANDBOX_SPEED": "15",
    "PMM_SANDBOX_MARKETS": "20",
    "PMM_UNIVERSE_SIZE": "6",
    "PMM_LEASE_TTL_SEC": "3",
    "PMM_WRITER_FLUSH_SEC": "0.2",
    "PMM_PAPER_FILL_INTENSITY": "120",
}


def count(db: sa.Engine, sql: str, **params) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.text(sql), params).scalar() or 0)


def param_rows(db: sa.Engine) -> list[tuple[str, str]]:
    """The `param_changes` rows as (name, changed_by), oldest first."""
    with db.connect() as c:
        return [(r.name, r.changed_by) for r in c.execute(sa.text("SELECT name, changed_by FROM param_changes ORDER BY id"))]


class Joiner:
    """A user's strategy object the test hands over but whose decisions it never asks for."""

    name = "joiner"

    def decide(self, ctx: Any, state: Any) -> Any:
        raise AssertionError("never called here")


def open_orders_in_db(db: sa.Engine) -> int:
    return count(db, "SELECT COUNT(*) FROM orders WHERE status IN ('PENDING','LIVE','PARTIAL')")


async def until(pred, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Poll `pred()` until true (returns True) or the timeout (returns False)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())


def subprocess_env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update(FAST_ENV)
    env["PMM_DB_URL"] = db_url
    return env


@contextlib.contextmanager
def full_collections() -> Iterator[list[int]]:
    """A list that gets one item per full (generation 2) collection while the block runs."""
    full: list[int] = []

    def cb(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(cb)
    try:
        yield full
    finally:
        gc.callbacks.remove(cb)


async def start_with_a_flaky_lease(eng: Any, fail: Callable[[], BaseException | None]) -> tuple[Any, list[Any]]:
    """Open `eng`'s DB, make its lease's acquire raise what `fail()` returns (None: acquire for
    real), record every state it publishes, and start it: (the lease, the states)."""
    await eng._open_db()
    lease = eng._opened().lease
    real = lease.try_acquire

    def flaky(now: float | None = None) -> bool:
        exc = fail()
        if exc is not None:
            raise exc
        return bool(real(now))

    lease.try_acquire = flaky
    states: list[Any] = []
    eng.add_state_listener(states.append)
    eng.start()
    return lease, states


def paper_with_bids(n: int) -> Any:
    """A paper exchange (its clock still at 100 s) with `n` bids resting on one market."""
    from decimal import Decimal

    from pmm_widgets.config import Params
    from pmm_widgets.domain import BUY, Market, OrderStatus, Quote
    from pmm_widgets.execution.paper import PaperExchange
    from pmm_widgets.store.sink import MemorySink

    ex = PaperExchange(Params(), MemorySink(), clock=lambda: 100.0, session="s")
    market = Market(condition_id="0xc0", question="Q?", yes_token_id="y0", no_token_id="n0",
                    tick_size=Decimal("0.01"), min_order_size=Decimal(5))
    ex.set_markets([market])
    placed = asyncio.run(ex.place([Quote("0xc0", "y0", BUY, Decimal("0.4") - Decimal("0.01") * i, Decimal(10))
                                   for i in range(n)]))
    assert all(o.status is OrderStatus.LIVE for o in placed)
    return ex
