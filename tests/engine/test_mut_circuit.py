"""The circuit breaker (engine/circuit.py): what a mutation pass found untested beside
tests/engine/test_circuit.py (defaults, a fresh circuit, the state a probe leaves, the status phrase)."""

from __future__ import annotations

from pmm_widgets.config import Settings
from pmm_widgets.engine.circuit import Circuit


def test_defaults_are_the_settings_defaults():
    """`Circuit()` behaves as the engine's `Circuit(settings.circuit_errors, settings.circuit_probe_sec)`
    with default settings: opens on the third failure in a row, probes every 5 s."""
    fields = Settings.model_fields
    c = Circuit()
    assert (c.threshold, c.probe_sec) == (fields["circuit_errors"].default, fields["circuit_probe_sec"].default)
    assert not c.record(0.0, "a") and not c.record(1.0, "b") and c.record(2.0, "c")
    assert not c.probe_due(6.9) and c.probe_due(7.0)


def test_a_fresh_circuit_is_closed_with_no_history():
    c = Circuit(threshold=2, probe_sec=1.0)
    assert not c.is_open and c.open_since is None
    assert (c.failures, c.opened, c.probes_failed, c.last_error) == (0, 0, 0, "")
    assert not c.probe_due(0.0) and not c.probe_due(1e9)
    assert c.describe(5.0) == ""


def test_a_failed_probe_reports_its_own_error_and_a_closed_circuit_is_never_due():
    c = Circuit(threshold=1, probe_sec=2.0)
    assert c.record(10.0, "cycle failed")
    assert not c.probe_result(12.0, "probe: timeout")
    assert c.last_error == "probe: timeout" and "probe: timeout" in c.describe(13.0)
    assert not c.probe_result(14.0, "probe: 503") and c.probes_failed == 2
    assert c.probe_result(16.0, None) and not c.is_open
    assert c.probes_failed == 0 and c.failures == 0  # no open period: no failed probes in it
    # closed: never a probe, however late (next_probe is left from the open period)
    assert not c.probe_due(16.0) and not c.probe_due(1e9)
    assert c.describe(17.0) == ""


def test_status_phrase_counts_seconds_open_and_cuts_a_long_error():
    c = Circuit(threshold=1, probe_sec=5.0)
    c.record(100.0, "x" * 200)
    text = c.describe(107.4)
    assert text.startswith("CIRCUIT OPEN 7s: quoting paused, orders cancelled (")
    assert text.endswith("(" + "x" * 80 + ")")
    assert c.describe(100.0).startswith("CIRCUIT OPEN 0s")
