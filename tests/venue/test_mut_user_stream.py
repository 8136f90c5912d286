"""`UserStream` paths the sandbox cannot produce: a connect that swallows the cancel of its task
(a library turning it into a transport error) must still end the reconnect loop, never dial
again. The fake is only the `connect` call; everything else is the stream's own code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pmm_widgets.venue import user_stream as us_mod
from pmm_widgets.venue.user_stream import UserStream


async def test_a_cancel_swallowed_while_connecting_still_ends_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    dials: list[str] = []
    entered = asyncio.Event()

    class SwallowingConnect:
        def __init__(self, url: str, **kw: Any) -> None:
            dials.append(url)

        async def __aenter__(self) -> Any:
            entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise OSError("connect aborted") from None  # the cancel is consumed here

        async def __aexit__(self, *exc: object) -> bool:
            return False

    monkeypatch.setattr(us_mod, "connect", SwallowingConnect)
    us = UserStream("ws://127.0.0.1:9/ws/user", auth=dict, on_event=lambda ev: None,
                    backoff_min=0.001, backoff_max=0.002)
    await us.start(wait=0)
    task = us._task
    assert task is not None
    await asyncio.wait_for(entered.wait(), 2)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1.0)
    try:
        assert done == {task}, "the run loop kept going after its task was cancelled"
        assert dials == ["ws://127.0.0.1:9/ws/user"]  # no second dial after the cancel
        assert not us.connected and us.down_since is not None
    finally:
        await asyncio.wait_for(us.close(), 5)
