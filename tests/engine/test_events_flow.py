"""Issue 10, one event flow: every event is emitted once on the engine's bus, persisted once (one
`events` row, with its data), and shown to the faces, wherever it comes from (risk, the live
exchange). Integration over the loopback sandbox and a tmp SQLite DB."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from engine_helpers import until

from pmm_widgets.engine import Engine
from pmm_widgets.events import Event, EventKind

pytestmark = pytest.mark.integration


def _rows(db: sa.Engine, kind: str) -> list[tuple[float, str | None, str, dict | None]]:
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT ts, market, message, data_json FROM events WHERE kind = :k ORDER BY id"),
                            {"k": kind}).all()
    out = []
    for ts, market, message, data in rows:
        out.append((float(ts), market, message, json.loads(data) if isinstance(data, str) else data))
    return out


async def test_each_risk_breach_is_one_events_row_with_its_data(fast_settings, db):
    engine = Engine(fast_settings)
    engine.set_params(max_open_orders=1)  # 6 markets want ~12 quotes: the open-order cap binds
    seen: list[Event] = []
    engine.events.subscribe(seen.append)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: any(e.kind is EventKind.RISK_BREACH for e in seen) and engine.state.tick >= 5)
    await engine.stop()
    emitted = [e for e in seen if e.kind is EventKind.RISK_BREACH]
    rows = _rows(db, "risk_breach")
    assert len(rows) == len(emitted) >= 1, (rows, emitted)
    assert sorted((r[0], r[1], r[2]) for r in rows) == sorted((e.ts, e.market, e.message) for e in emitted)
    assert all(r[3] is not None and r[3].get("rule") for r in rows), rows
    assert any(r[3] is not None and r[3]["rule"] == "max_open_orders" for r in rows), rows


async def test_a_live_exchange_event_reaches_the_dashboard_log_and_one_row(fast_settings, db):
    """The live exchange emits on the engine's bus: its reconcile at start is in the engine's
    event log, in the dashboard's log widget, and in `events` exactly once with its data."""
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.domain import Mode
    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
    from pmm_widgets.ui.controls import ControlPanel
    from pmm_widgets.venue.endpoints import Endpoints

    settings = fast_settings.model_copy(update={"private_key": SecretStr(Account.create().key.hex())})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15)) as sb:
        engine = Engine(settings, Mode.LIVE, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        panel = ControlPanel(engine)

        def logged() -> str:
            return "".join(o.get("text", "") for o in panel.log.outputs)

        engine.start()
        assert await engine.wait_role() == "owner"
        assert await until(lambda: any(e.kind is EventKind.RECONCILE for e in engine.events.recent(500)))
        assert await until(lambda: "reconcile: " in logged()), logged()
        await engine.stop()
    emitted = [e for e in engine.events.recent(500) if e.kind is EventKind.RECONCILE]
    rows = _rows(db, "reconcile")
    assert len(rows) == len(emitted) >= 1
    assert all(r[3] is not None and "venue_open" in r[3] for r in rows), rows


async def test_pause_with_a_callers_own_reason_is_a_pause_event(fast_settings):
    """`pause(reason=...)` is public: a reason that is not a kind is said in the message (kind `pause`)."""
    engine = Engine(fast_settings)
    assert await engine.pause(reason="lunch break") == 0
    await engine.pause(reason="pause button")
    got = [(e.kind, e.message) for e in engine.events.recent()]
    assert got == [(EventKind.PAUSE, "quoting paused (lunch break); 0 orders cancelled"),
                   (EventKind.PAUSE_BUTTON, "quoting paused (pause button); 0 orders cancelled")]
