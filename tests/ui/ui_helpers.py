"""Helpers the control-panel tests share."""

from __future__ import annotations

import time

from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState
from pmm_widgets.store.db import make_engine


def hand_over(db_url: str, mode: str) -> None:
    """What a page kernel's clean stop leaves: an expired lease row with its final state marked
    for hand-over (`Engine.stop(handover=True)`)."""
    db = make_engine(db_url)
    old = Lease(db, ttl_sec=30, owner="old-page-kernel")
    assert old.try_acquire()
    old.release(EngineState(role="owner", mode=mode, running=False, handover_ts=time.time()).to_json())
    db.dispose()
