"""Fakes for the owner session's tests (tests/engine/test_mut_owner2.py, test_mut_owner3.py): a
command target that records its calls, an `OwnerSession` on them, a runtime of fakes (cycle,
REST), a market, and `wait_set` made instant."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode
from pmm_widgets.engine import owner as owner_module
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.owner import OwnerSession, RunControl
from pmm_widgets.engine.state import EngineState
from pmm_widgets.events import EventBus


class Target:
    """A `CommandTarget` that records each call (and raises what a test asks it to)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.raise_on: dict[str, Exception] = {}

    def _maybe_raise(self, name: str) -> None:
        if name in self.raise_on:
            raise self.raise_on[name]

    def set_params(self, *, changed_by: str | None = None, **changes: Any) -> None:
        self.calls.append(("set_params", changed_by, changes))
        self._maybe_raise("set_params")

    def set_strategy(self, market: str, strategy: Any = None, **params: Any) -> None:
        self.calls.append(("set_strategy", market, strategy, params))
        self._maybe_raise("set_strategy")

    async def pause(self, cancel: bool = True, reason: str = "pause", by: str | None = None) -> int:
        self.calls.append(("pause", cancel, reason, by))
        return 0

    async def resume(self, by: str | None = None) -> None:
        self.calls.append(("resume", by))


def owner_session(settings, db, target, *, events: EventBus | None = None, **kw: Any) -> OwnerSession:
    holder = {"state": EngineState()}
    dbh = SimpleNamespace(db=db, commands=CommandQueue(db, issuer="owner"))
    return OwnerSession(
        settings, Mode.PAPER, Params(), dbh, "owner", ctl=RunControl(), events=events or EventBus(),  # type: ignore[arg-type]
        publish=lambda s: holder.__setitem__("state", s), state=lambda: holder["state"], param_state=dict,
        commands=target, load_universe=kw.pop("load_universe", None), overrides={},  # type: ignore[arg-type]
        default_strategy=lambda: None, **kw)


def instant_waits(monkeypatch, module: Any = owner_module) -> list[float]:
    """`wait_set` in the owner module (or `module`) returns at once (its timeouts are recorded)."""
    waits: list[float] = []

    async def instant(event: asyncio.Event, timeout: float) -> bool:
        waits.append(timeout)
        await asyncio.sleep(0)
        return event.is_set()

    monkeypatch.setattr(module, "wait_set", instant)
    return waits


class FakeCycle:
    def __init__(self, ledgers: dict[str, Any], resolved: set[str], settles: bool = True) -> None:
        self.pnl = SimpleNamespace(ledgers=ledgers)
        self.resolved = {cid: f"{cid}-y" for cid in resolved}  # market -> winner, as `QuoteCycle.resolved`
        self.known: dict[str, Any] = {}
        self.settles = settles
        self.calls: list[tuple[Any, ...]] = []
        self.econ = SimpleNamespace(clock=None)

    async def resolve_market(self, ts, cid, winner, exchange, source, *, known=None) -> bool:
        self.calls.append((cid, winner, exchange, source))
        self.known_passed = known
        return self.settles

    def known_market(self, cid: str) -> Any:
        return self.known.get(cid)


class FakeRest:
    def __init__(self, info: Any = None, exc: Exception | None = None, server_time: Any = 1000) -> None:
        self.info, self.exc, self.asked, self.time = info, exc, [], server_time

    async def market(self, cid: str) -> Any:
        self.asked.append(cid)
        if self.exc is not None:
            raise self.exc
        return self.info

    async def server_time(self) -> Any:
        if isinstance(self.time, Exception):
            raise self.time
        return self.time


def with_runtime(owner: OwnerSession, cycle: FakeCycle, rest: FakeRest | None,
                 tokens: dict[str, tuple[str, str]] | None = None, **md: Any) -> Any:
    """`tokens`: the token pairs the last session's DB rows named (`SessionRows.tokens`)."""
    exchange = object()
    owner._rt = SimpleNamespace(cycle=cycle, md=SimpleNamespace(rest=rest, **md), exchange=exchange,  # type: ignore[assignment]
                                session_rows=SimpleNamespace(tokens=tokens or {}))
    return exchange


def make_market(cid: str) -> Any:
    return SimpleNamespace(condition_id=cid, question=f"question {cid}", token_ids=(f"{cid}-y", f"{cid}-n"),
                           yes_token_id=f"{cid}-y", no_token_id=f"{cid}-n")


def record_waits(monkeypatch) -> list[float]:
    """`wait_set` in the owner module waits as usual; each timeout it is given is recorded."""
    waits: list[float] = []
    real = owner_module.wait_set

    async def wait(event: asyncio.Event, timeout: float) -> bool:
        waits.append(timeout)
        return await real(event, timeout)

    monkeypatch.setattr(owner_module, "wait_set", wait)
    return waits
