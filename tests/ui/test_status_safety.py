"""The dashboard's status line says when the engine is halted for safety and shows the DB
writer's health (issue 17: "says so on every face"); everything from the lease row escaped."""

from __future__ import annotations

from pmm_widgets.engine.state import EngineState
from pmm_widgets.ui.controls import render_status


def test_status_shows_halt_and_writer_fault_escaped():
    s = EngineState(role="owner", running=True, writer_lag_sec=4.2,
                    writer="db lag 4.2s queued 1234 FAULT: <b>database or disk is full</b>",
                    halted="writer: DB writer unhealthy", last_error="HALTED (writer): DB writer unhealthy")
    html = render_status(s)
    assert "HALTED</b>" in html and "pmm-halted" in html
    assert "DB lag 4.2s queued 1234 FAULT: &lt;b&gt;database or disk is full&lt;/b&gt;" in html
    assert "HALTED (writer)" in html


def test_healthy_status_unchanged():
    html = render_status(EngineState(role="owner", running=True, writer_lag_sec=0.2, writer="db lag 0.2s"))
    assert "DB lag 0.2s" in html and "HALTED" not in html
