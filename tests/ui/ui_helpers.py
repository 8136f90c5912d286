"""Helpers the control-panel tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pmm_widgets.domain import Mode
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, EventLog, KillResult
from pmm_widgets.store.db import make_engine


def hand_over(db_url: str, mode: str) -> None:
    """What a page kernel's clean stop leaves: an expired lease row with its final state marked
    for hand-over (`Engine.stop(handover=True)`)."""
    db = make_engine(db_url)
    old = Lease(db, ttl_sec=30, owner="old-page-kernel")
    assert old.try_acquire()
    old.release(EngineState(role="owner", mode=mode, running=False, handover_ts=time.time()).to_json())
    db.dispose()


def other_owner(db_url: str, mode: str = "paper") -> Lease:
    """Another process's engine owning the DB (a live lease, its state running in `mode`)."""
    db = make_engine(db_url)
    lease = Lease(db, ttl_sec=30, owner="otherhost:9:owner")
    assert lease.try_acquire()
    lease.renew(EngineState(role="owner", running=True, mode=mode).to_json())
    return lease


class Stub:
    """Just enough of an Engine for the panel; records starts, stops (their `handover`) and params."""

    def __init__(self, settings: Any, role: str = "owner", running: bool = True) -> None:
        self.settings, self.mode, self.role, self.running = settings, Mode.PAPER, role, running
        self._owner_id = "stub"
        self.params = settings.params()
        self.events = EventLog()
        self.state = EngineState(role=role, running=running)
        self.starts: list[bool] = []
        self.stops: list[bool] = []
        self.sent: list[dict[str, Any]] = []
        self.kill_gate = asyncio.Event()
        self.kill_result = KillResult(time.time(), 0, 0, True, "KILLED")
        self.refuse: Exception | None = None
        self.paused: list[tuple[bool, str, str | None]] = []

    async def stop(self, handover: bool = False) -> None:
        self.stops.append(handover)
        self.running = False

    def start(self, attach_only: bool = False, automatic: bool = False) -> asyncio.Future[None]:
        self.starts.append(attach_only)
        self.running = True
        return asyncio.get_running_loop().create_future()

    async def lease_holder(self) -> str | None:
        return None

    async def handover_pending(self) -> Mode | None:
        return None

    async def kill(self) -> KillResult:
        await self.kill_gate.wait()
        return self.kill_result

    async def pause(self, cancel: bool = True, reason: str = "pause", by: str | None = None) -> int:
        self.paused.append((cancel, reason, by))
        return 0

    def set_params(self, *, changed_by: str | None = None, **changes: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(changes)


async def until(cond: Callable[[], object], timeout: float = 3.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return bool(cond())


async def start_refused_in_one_line(settings: Any, line: str, secrets: tuple[str, ...]) -> None:
    """The operator app's live Start with `settings` (a venue that refuses the start): the page
    says `line` as `pmm run live` does (an expected failure: the host, what to check), never
    "engine crashed" nor an exception's type name, on its message line, in its log and on its
    status line, and none of `secrets` anywhere."""
    import html

    from pmm_widgets.engine import Engine
    from pmm_widgets.ui.controls import ControlPanel, render_status

    engine = Engine(settings, Mode.LIVE)
    panel = ControlPanel(engine)
    try:
        panel.start_engine()
        assert await until(lambda: "could not start" in panel.message.value, timeout=30), panel.message.value
        assert html.escape(line) in panel.message.value
        logged = "".join(o.get("text", "") for o in panel.log.outputs)
        assert f"ERROR error: {line}\n" in logged and f"the engine could not start or stopped: {line}\n" in logged
        assert engine.state.last_error == line
        status = render_status(engine.state)  # what the page's refresh shows
        assert f"error: {html.escape(line)}</span>" in status
        page = panel.message.value + logged + status
        assert "crashed" not in page and "LiveError" not in page and "CredentialsFailed" not in page
        for secret in secrets:
            assert secret not in page
    finally:
        await panel.close()
        await asyncio.sleep(0)
