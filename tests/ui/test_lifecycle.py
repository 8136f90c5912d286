"""The page kernel's stop hook and the Voilà access guard, without a browser.

The hook must run the engine's clean stop on the engine's loop when ipykernel's shutdown
request arrives on its control thread (another loop in another thread), exactly once."""

from __future__ import annotations

import asyncio
import threading

from pmm_widgets.ui.lifecycle import KernelStopHook
from pmm_widgets.ui.voila_guard import is_loopback_host


async def test_shutdown_request_from_another_thread_runs_the_stop_once_on_the_engine_loop():
    loop = asyncio.get_running_loop()
    ran: list[int] = []

    async def stop() -> None:
        assert asyncio.get_running_loop() is loop
        await asyncio.sleep(0.05)
        ran.append(threading.get_ident())

    hook = KernelStopHook(stop, timeout=5.0, loop=loop)
    errors: list[BaseException] = []

    def control_thread() -> None:  # ipykernel's control channel runs its own loop in a thread
        try:
            asyncio.run(hook.on_shutdown_request())
            asyncio.run(hook.on_shutdown_request())  # a second request shares the first stop
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=control_thread)
    t.start()
    while t.is_alive():
        await asyncio.sleep(0.02)
    assert errors == []
    assert ran == [threading.get_ident()] and hook.reason == "shutdown_request"


async def test_a_stop_that_hangs_is_bounded():
    async def stop() -> None:
        await asyncio.sleep(30)

    hook = KernelStopHook(stop, timeout=0.2, loop=asyncio.get_running_loop())
    await asyncio.wait_for(hook._run_once("test"), timeout=2.0)  # returns after the bound


def test_loopback_host_names():
    for ok in ("127.0.0.1:8866", "localhost:8866", "localhost", "[::1]:8866", "127.1.2.3", "LOCALHOST."):
        assert is_loopback_host(ok), ok
    for bad in ("rebind.evil.example:8866", "evil.example", "10.0.0.1:8866", "0.0.0.0:8866", "",
                "localhost.evil.example", "127.0.0.1.evil.example:8866", "[::2]:8866"):
        assert not is_loopback_host(bad), bad
