"""The one event flow: kinds are an enum whose values are the `events.kind` contract, and every
kind the code emits by value is a member (an unknown one would raise at emit time)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pmm_widgets.events import Event, EventBus, EventKind, Level

PKG = Path(__file__).resolve().parents[2] / "pmm_widgets"
EMITTERS = {"emit": 2, "_event": 2, "_halt": 1, "_clear_halt": 1}  # how many leading args may be a level/kind


def test_kinds_compare_as_their_column_strings():
    bus = EventBus(maxlen=2, clock=lambda: 7.0)
    ev = bus.emit("WARNING", "risk_breach", "m", "0xc", data={"rule": "x"})
    assert ev == Event(7.0, Level.WARNING, EventKind.RISK_BREACH, "m", "0xc", {"rule": "x"})
    assert ev.kind == "risk_breach" and f"{ev.kind}" == "risk_breach" and ev.level == "WARNING"
    with pytest.raises(ValueError):
        bus.emit("INFO", "risk-breach", "typo")
    bus.emit(Level.INFO, EventKind.UNIVERSE, "a")
    bus.emit(Level.INFO, EventKind.UNIVERSE, "b")
    assert [e.message for e in bus.recent()] == ["a", "b"]  # bounded


def test_every_kind_emitted_by_value_is_an_event_kind():
    """A kind passed as a string literal (`emit("INFO", "restore", ...)`) must be a member."""
    known = {k.value for k in EventKind}
    unknown = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name not in EMITTERS:
                continue
            for a in node.args[:EMITTERS[name]]:
                if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value not in known \
                        and a.value not in {lv.value for lv in Level}:
                    unknown.append(f"{path.relative_to(PKG)}:{node.lineno} {a.value!r}")
    assert unknown == []
