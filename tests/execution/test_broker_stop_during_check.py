"""`Broker.stop_posting` while a retrying post reads the venue's open orders (the check before its
re-post, `_already_at_venue`): the post sends no new attempt. It used to re-post after that read,
so a stop (or a pause) that came during it was followed by one more POST of the same orders."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_broker_retries import Script, _orders

from pmm_widgets.venue import broker as broker_module
from pmm_widgets.venue.broker import Broker, BrokerError


@pytest.fixture
def broker(monkeypatch):
    """A broker with no venue behind it; its backoffs 1 ms (as `test_broker_retries.py`'s)."""
    monkeypatch.setattr(broker_module, "backoff_delay", lambda attempt, base, cap: min(cap, base * 2 ** attempt))
    b = Broker("http://127.0.0.1:9/", 137, None, retries=3, backoff_base=0.001, backoff_cap=0.004, deadline=5.0)
    yield b
    b.close()


async def test_a_stop_during_the_check_before_a_re_post_sends_no_new_attempt(broker, monkeypatch):
    reading = asyncio.Event()

    async def slow_read(retry: bool = True) -> list[Any]:
        reading.set()
        await asyncio.sleep(0.05)  # the venue's open orders, read before the re-post
        return []

    monkeypatch.setattr(broker, "open_orders", slow_read)
    post = Script(BrokerError("post_orders", "down", 503, transient=True))
    under_way = asyncio.ensure_future(broker._post_idempotent(_orders(2), post))
    await asyncio.wait_for(reading.wait(), 2)
    broker.stop_posting()
    out = await asyncio.wait_for(under_way, 2)
    assert post.calls == [2]  # (two before the fix: the re-post went after the read)
    assert [(r.ok, r.uncertain, r.order_id) for r in out.values()] == [(False, True, "0xhash0"), (False, True, "0xhash1")]
    assert broker.failures == 1
