"""The live exchange's log lines name their event kind once."""

from __future__ import annotations

import logging

from live_fakes import make_ex

from pmm_widgets.events import EventKind, Level


def test_an_event_names_its_kind_once_in_the_log(caplog):
    """`pmm run live` printed "reconcile: reconcile: 0 open at the venue, …" at every start."""
    ex, _, _ = make_ex()
    with caplog.at_level(logging.INFO, logger="pmm_widgets.execution.live"):
        ex._event(Level.INFO, EventKind.RECONCILE, "reconcile: 0 open at the venue, 0 adopted")
        ex._event(Level.WARNING, EventKind.RECONCILE, "2 orders adopted")
    assert [r.getMessage() for r in caplog.records] == ["reconcile: 0 open at the venue, 0 adopted",
                                                         "reconcile: 2 orders adopted"]
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]
