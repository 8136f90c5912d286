"""`UserStream` beyond `test_user_stream.py`: a connect that swallows the cancel of its task (a
library turning it into a transport error, which the sandbox cannot produce: the fake is only the
`connect` call) must still end the reconnect loop; and the staleness check runs every second
whatever `ping_sec` is (against the sandbox)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from eth_account import Account

from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue import user_stream as us_mod
from pmm_widgets.venue.broker import Broker
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


async def test_a_silent_socket_is_found_stale_within_a_second_whatever_ping_sec() -> None:
    """The keepalive looks at the socket at least once a second (not once per `ping_sec`): with
    the default 10 s PING and a 0.2 s staleness limit, a silent venue socket is replaced after
    about 1 s, long before the first PING would have gone out."""
    async with Sandbox(SandboxConfig(markets=3, seed=5, speed=1.0)) as sb:
        sb.paused = True  # a quiet account on a still market: the user channel sends nothing
        broker = Broker(sb.clob_url, 137, "0x" + Account.create().key.hex().removeprefix("0x"))
        try:
            c = await broker.derive_creds()
        finally:
            await asyncio.to_thread(broker.close)
        auth = {"apiKey": c.api_key.get_secret_value(), "secret": c.api_secret.get_secret_value(),
                "passphrase": c.api_passphrase.get_secret_value()}
        us = UserStream(sb.ws_url + "/user", lambda: auth, on_event=lambda ev: None,
                        stale_sec=0.2, backoff_min=0.01, backoff_max=0.02)
        assert us.ping_sec == 10.0
        try:
            await us.start(wait=5.0)
            assert us.connected
            t0 = time.monotonic()
            async with asyncio.timeout(1.9):  # a 2 s look would first see the staleness at 2 s
                while us.reconnects < 1:
                    await asyncio.sleep(0.01)
            assert time.monotonic() - t0 >= 0.2
        finally:
            await us.close()


def test_a_new_stream_reports_down_since_it_was_made_and_no_frame_yet() -> None:
    t0 = time.time()
    h = UserStream("ws://127.0.0.1:9/ws/user", auth=dict, on_event=lambda ev: None).health()
    assert (h.connected, h.reconnects, h.bad_messages, h.last_message_ts) == (False, 0, 0, 0.0)  # 0: none yet
    assert h.down_since is not None and t0 <= h.down_since <= time.time()
