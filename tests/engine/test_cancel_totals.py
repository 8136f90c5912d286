"""The totals' `cancels` count every order the engine cancelled, not only its requotes'.

Seen on the operator app after a pause: "open orders 0 · placed 336 · cancels 227" with 12 fills:
the pause's cancel-all of 100 orders was in no count, and a kill or stop's neither."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from engine_helpers import until

from pmm_widgets.engine import Engine

pytestmark = pytest.mark.integration


async def test_a_pause_and_the_stop_count_their_cancels(fast_settings, db):
    engine = Engine(fast_settings)
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.totals.open_orders >= 4)
        before = engine.runtime.cycle.totals.cancels
        n = await engine.pause(reason="pause button", by="test")
        assert n >= 4
        assert await until(lambda: engine.state.totals.cancels >= before + n), (engine.state.totals, before, n)
        await engine.resume(by="test")
        assert await until(lambda: engine.state.totals.open_orders >= 4)
        shown = engine.state.totals.cancels
    finally:
        await engine.stop()
    final = engine.state.totals
    with db.connect() as conn:
        msg = conn.execute(sa.text("SELECT message FROM events WHERE kind = 'engine_stop'")).scalar_one()
    stopped = int(re.match(r"engine stopped: (\d+) orders cancelled", msg).group(1))
    assert stopped >= 4 and final.open_orders == 0
    assert final.cancels >= shown + stopped  # (the cycles after `shown` may have requoted too)
