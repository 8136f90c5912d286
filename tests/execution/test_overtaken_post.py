"""A stop that interrupts a placement whose POST /orders the venue still holds (the engine's stop
grace ran out mid-cycle) must not report "0 open" while that POST may still place orders.

Against the loopback sandbox's trading half (a throwaway key, the fast order path): the venue
holds every POST for a while; the placement is cancelled once its POST reached the venue, then
the stop's `cancel_and_verify` runs. Its cancel-all reached the venue first, the open count read
0, it returned (0, 0, None), and the held POST was applied afterwards: 4 orders rested at the
venue after a stop that said 0 open (only the venue's heartbeat switch, if on, would pull them).
Now the post runs on (owned by the exchange), the stop waits for it (bounded), cancels what it
placed, and says so when the bound passes first."""

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
from pmm_widgets.venue.broker import BrokerError

pytestmark = pytest.mark.integration


async def _held_placement(sb: Sandbox, arrived: list[tuple[float, str]], closers: list, hold_sec: float,
                          **faults: object) -> tuple[LiveExchange, MemorySink, str, float]:
    """A started exchange whose placement (bids on 2 markets) was cancelled while the venue holds
    its POST for `hold_sec` (and these `faults`): (exchange, sink, api key, when the POST reached
    the venue)."""
    sink = MemorySink()
    ex = LiveExchange(make_settings(sb, "0x" + Account.create().key.hex().removeprefix("0x"), venue_retries=10,
                                    venue_backoff_sec=1.0, venue_backoff_cap_sec=1.0), sink,
                      sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()
    assert ex.broker is not None and ex.broker.creds is not None and ex.broker.fast
    key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 2)
    ex.set_markets(markets)
    sb.paused = True  # a still book: the bids stay post-only
    sb.faults.update(latency_ms=hold_sec * 1000, latency_methods="POST", **faults)
    n0 = len(arrived)
    cycle = asyncio.ensure_future(ex.place(touch_bids(sb, markets)))
    assert await until(lambda: any(r == "POST /orders" for _, r in arrived[n0:]), timeout=2)
    at = next(t for t, r in arrived[n0:] if r == "POST /orders")
    assert not sb.sim.open_orders(key)  # held: not applied yet
    cycle.cancel()  # the stop's grace ran out: the cycle is interrupted
    with pytest.raises(asyncio.CancelledError):
        await cycle
    return ex, sink, key, at


@pytest.fixture
async def sb_arrivals():
    sb = Sandbox(SandboxConfig(markets=12, seed=5, speed=20.0))
    arrived = note_arrivals(sb)
    async with sb:
        yield sb, arrived


async def test_a_stop_waits_for_a_post_the_venue_holds_and_cancels_what_it_placed(sb_arrivals, closers):
    sb, arrived = sb_arrivals
    ex, sink, key, at = await _held_placement(sb, arrived, closers, hold_sec=1.0)
    cancelled, open_after, err = await cancel_and_verify(ex)
    took = time.monotonic() - at
    # the held POST placed 4 bids after the first cancel-all: they were cancelled too
    assert (cancelled, open_after, err) == (4, 0, None), (cancelled, open_after, err, took)
    assert 1.0 <= took < 2.0, took
    assert not sb.sim.open_orders(key)
    await asyncio.sleep(0.3)
    assert not sb.sim.open_orders(key)  # nothing left to land
    rows = sink.rows["orders"]
    assert len(rows) == 4 and all(r["status"] == "CANCELED" and r["venue_order_id"] for r in rows), rows
    assert not ex.open_orders()


async def test_a_post_still_unanswered_when_the_wait_ends_is_reported_not_0_open(sb_arrivals, closers):
    sb, arrived = sb_arrivals
    ex, _sink, key, _at = await _held_placement(sb, arrived, closers, hold_sec=1.0)
    cancelled, open_after, err = await cancel_and_verify(ex, settle_sec=0.2)
    assert (cancelled, open_after) == (0, -1)  # the open count is unknown: 4 orders may still come
    assert err is not None and err.startswith("4 orders posted and not answered after 0.2 s"), err
    # the close waits a little longer for them (CLOSE_SETTLE_SEC) and cancels what they placed
    await ex.close()
    assert not sb.sim.open_orders(key)
    await asyncio.sleep(0.3)
    assert not sb.sim.open_orders(key)


async def test_a_close_that_cannot_wait_for_a_held_post_says_so(sb_arrivals, closers):
    sb, arrived = sb_arrivals
    ex, _sink, key, _at = await _held_placement(sb, arrived, closers, hold_sec=2.0)
    t0 = time.monotonic()
    await ex.close()
    assert time.monotonic() - t0 < 1.5  # bounded by CLOSE_SETTLE_SEC, not the venue's hold
    said = [ev.message for ev in ex.events.recent() if ev.kind == "error"]
    assert said and said[-1].startswith("closing with 4 orders posted and not answered by the venue"), said


async def test_a_post_retrying_after_a_refusal_sends_nothing_more_once_the_stop_comes(sb_arrivals, closers):
    """The post runs on after its caller was cancelled, but a stop ends its retries: a placement
    the venue refused (429: not acted on) is not posted again after the stop's cancel-all."""
    sb, arrived = sb_arrivals
    ex, sink, key, _at = await _held_placement(sb, arrived, closers, hold_sec=0.0, http_error_rate=1.0,
                                               http_error_status=429, http_error_methods="POST")
    t0 = time.monotonic()
    assert await cancel_and_verify(ex) == (0, 0, None)
    assert time.monotonic() - t0 < 0.5  # not the retry's 1 s pause
    await asyncio.sleep(1.2)
    assert [r for t, r in arrived if t > t0 and r == "POST /orders"] == []
    assert not sb.sim.open_orders(key)
    rows = sink.rows["orders"]
    assert len(rows) == 4 and all(r["status"] == "REJECTED" for r in rows), rows


async def test_the_circuit_probe_waits_for_a_post_the_venue_holds_and_cancels_what_it_placed(sb_arrivals, closers):
    """The circuit breaker's probe (cancel all, then the venue's count) while a placement's POST
    is still held: it read 0 open before the POST was applied, the circuit closed, and the 4 bids
    rested at the venue unknown to the probe. It now runs the stop's sequence: wait for the post,
    cancel what it placed, then count."""
    sb, arrived = sb_arrivals
    ex, sink, key, at = await _held_placement(sb, arrived, closers, hold_sec=1.0)
    cancelled = await ex.probe()
    took = time.monotonic() - at
    await asyncio.sleep(max(0.0, at + 1.3 - time.monotonic()))  # the held POST applied by now
    # (it used to return 0 in ~20 ms, and then the 4 bids rested at the venue)
    assert (cancelled, len(sb.sim.open_orders(key))) == (4, 0), (cancelled, took)
    assert took >= 1.0, took  # it waited for the held POST
    rows = sink.rows["orders"]
    assert len(rows) == 4 and all(r["status"] == "CANCELED" and r["venue_order_id"] for r in rows), rows


async def test_a_probe_with_a_post_still_unanswered_fails(sb_arrivals, closers, monkeypatch):
    """A post the venue holds past the probe's wait: the probe cannot say nothing rests (the
    circuit stays open; the next probe cancels what the post placed)."""
    import pmm_widgets.execution.live as live_mod

    monkeypatch.setattr(live_mod, "PROBE_SETTLE_SEC", 0.2)
    sb, arrived = sb_arrivals
    ex, _sink, key, _at = await _held_placement(sb, arrived, closers, hold_sec=1.0)
    with pytest.raises(BrokerError, match="4 orders posted and not answered"):
        await ex.probe()
    await asyncio.sleep(1.0)
    assert await ex.probe() == 4  # the next probe: what the post placed is cancelled
    assert not sb.sim.open_orders(key)
