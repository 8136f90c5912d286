"""The first broker of a process is built off the event loop. Building it imports the official SDK
and builds its client: about 0.4 s of CPU (0.38 s measured on this host). On the loop, that
stalls the page, the feed and every task at a live start (`LiveExchange.start`) and at
`pmm auth derive` (whose embedded sandbox answers on the same loop).

Checked in a fresh interpreter, where the SDK is not imported yet: an import hook records the
thread that first imports `py_clob_client_v2`, and the loop runs on the main thread."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import asyncio, json, sys, threading

    seen = []

    class Spy:
        def find_spec(self, name, path=None, target=None):
            if name == "py_clob_client_v2":
                seen.append(threading.current_thread() is threading.main_thread())
            return None

    sys.meta_path.insert(0, Spy())
    from pydantic import SecretStr
    from pmm_widgets.config import Settings
    from pmm_widgets.execution.live import LiveExchange
    from pmm_widgets.store.sink import MemorySink
    from pmm_widgets.venue import auth

    assert "py_clob_client_v2" not in sys.modules, "the SDK is imported before any broker is built"
    KEY = SecretStr("0x" + "11" * 32)
    which = sys.argv[1]

    async def main():
        on_loop = threading.current_thread() is threading.main_thread()
        if which == "live":
            settings = Settings(_env_file=None, private_key=KEY)
            ex = LiveExchange(settings, MemorySink(), "http://127.0.0.1:9", "ws://127.0.0.1:9", dry_run=True)
            await ex.start()
            await ex.close()
        else:  # `pmm auth derive`'s broker; nothing listens at the port: the derive itself fails
            settings = Settings(_env_file=None, private_key=KEY, http_timeout_sec=0.5, venue_retries=0)
            try:
                await auth.derive(settings, "http://127.0.0.1:9")
            except Exception:
                pass
        return on_loop

    loop_on_main = asyncio.run(main())
    print(json.dumps({"loop_on_main": loop_on_main, "imports_on_main": seen}))
""")


@pytest.mark.parametrize("which", ["live", "auth"])
def test_the_sdk_is_imported_and_the_broker_built_off_the_loop(which: str) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT, which], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loop_on_main"] is True  # the loop runs on the main thread: an import there is on the loop
    assert got["imports_on_main"] and not any(got["imports_on_main"]), got


async def test_a_start_cancelled_while_the_broker_is_built_closes_that_broker(monkeypatch) -> None:
    """The thread goes on after its caller was cancelled (a stop during the start): the broker it
    built is closed (its threads, its HTTP client), never left behind with no owner."""
    import asyncio
    import threading

    from pydantic import SecretStr

    from pmm_widgets.config import Settings
    from pmm_widgets.execution.live import LiveExchange
    from pmm_widgets.store.sink import MemorySink

    ex = LiveExchange(Settings(_env_file=None, private_key=SecretStr("0x" + "11" * 32)), MemorySink(),
                      "http://127.0.0.1:9", "ws://127.0.0.1:9", dry_run=True)
    built: list = []
    go_on = threading.Event()
    make = ex._make_broker

    def slow_make():
        go_on.wait(5)  # the caller is cancelled meanwhile
        built.append(make())
        return built[-1]

    monkeypatch.setattr(ex, "_make_broker", slow_make)
    start = asyncio.ensure_future(ex.start())
    await asyncio.sleep(0.05)
    start.cancel()
    await asyncio.sleep(0.05)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert len(built) == 1 and built[0]._closed  # closed by the cancelled start
    assert ex.broker is None  # and not kept: a later start builds its own
