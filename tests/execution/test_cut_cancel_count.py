"""The stop's deadline cutting `cancel_settled` (the cancel-all answered, the wait for a post the
venue still holds not over yet) lost the orders already cancelled: `cancel_and_verify` returned
0 cancelled, and said the venue had not answered its cancel-all, which it had. The KILL read
"KILLED: 0 orders cancelled" after 4 were. Now the count reached is kept, and the message says
what was still awaited (the posts in flight).

Against the loopback sandbox's trading half (a throwaway key, the fast order path)."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account
from live_helpers import active_markets, make_settings, touch_bids
from venue_arrivals import note_arrivals, until

from pmm_widgets.engine.runtime import cancel_and_verify
from pmm_widgets.execution.live import LiveExchange
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.store.sink import MemorySink

pytestmark = pytest.mark.integration


async def test_a_deadline_that_cuts_the_wait_for_a_held_post_keeps_the_orders_already_cancelled(closers):
    sb = Sandbox(SandboxConfig(markets=12, seed=5, speed=20.0))
    arrived = note_arrivals(sb)
    async with sb:
        ex = LiveExchange(make_settings(sb, "0x" + Account.create().key.hex().removeprefix("0x")), MemorySink(),
                          sb.clob_url, sb.ws_url, heartbeat_sec=0)
        closers.append(ex)
        await ex.start()
        assert ex.broker is not None and ex.broker.creds is not None
        key = ex.broker.creds.api_key.get_secret_value()
        markets = active_markets(sb, 4)
        ex.set_markets(markets)
        sb.paused = True  # a still book: the bids rest
        resting = await ex.place(touch_bids(sb, markets[:2]))
        assert len(sb.sim.open_orders(key)) == len(resting) == 4
        # the next cycle's POST is held by the venue (2 s), its caller cancelled (the stop's grace ran out)
        sb.faults.update(latency_ms=2000, latency_methods="POST")
        n0 = len(arrived)
        cycle = asyncio.ensure_future(ex.place(touch_bids(sb, markets[2:])))
        assert await until(lambda: any(r == "POST /orders" for _, r in arrived[n0:]), timeout=2)
        cycle.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cycle
        t0 = time.monotonic()
        cancelled, open_after, err = await cancel_and_verify(ex, deadline_sec=0.5)
        assert time.monotonic() - t0 < 0.8
        assert not sb.sim.open_orders(key)  # the cancel-all took the 4 resting bids (the held POST: not applied yet)
        # the deadline cut the wait for the held POST: the 4 are still counted (it said 0), and
        # what was awaited is said (it said the venue had not answered its cancel-all)
        assert (cancelled, open_after) == (4, -1), (cancelled, open_after, err)
        assert err == "4 orders posted and not answered within the stop's 0.5 s deadline: they may still come to rest", err
        sb.faults.update(latency_ms=0)
        await ex.close()  # (the held POST lands: the close cancels what it placed)
