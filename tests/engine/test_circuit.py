"""The circuit breaker's pure decisions (engine/circuit.py)."""

from __future__ import annotations

from pmm_widgets.engine.circuit import Circuit


def test_opens_after_threshold_failures_in_a_row_only():
    c = Circuit(threshold=3, probe_sec=5.0)
    assert not c.record(0.0, "e1") and not c.record(1.0, "e2")
    assert not c.record(2.0, None)  # a good cycle resets the count
    assert not c.record(3.0, "e1") and not c.record(4.0, "e2") and not c.is_open
    assert c.record(5.0, "e3") and c.is_open and c.opened == 1
    assert not c.record(6.0, "e4")  # already open: no second opening
    assert "CIRCUIT OPEN" in c.describe(7.0) and "e4" in c.describe(7.0)


def test_probes_on_schedule_and_closes_on_the_first_good_probe():
    c = Circuit(threshold=1, probe_sec=5.0)
    assert c.record(10.0, "down")
    assert not c.probe_due(12.0) and c.probe_due(15.0)  # the open itself cancelled: first probe later
    assert not c.probe_result(15.0, "still down") and c.is_open and c.probes_failed == 1
    assert not c.probe_due(19.0) and c.probe_due(20.0)
    assert c.probe_result(20.0, None) and not c.is_open and c.failures == 0 and c.describe(21.0) == ""
    assert c.record(30.0, "again") and c.opened == 2 and c.probes_failed == 0
