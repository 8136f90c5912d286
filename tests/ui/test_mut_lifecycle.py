"""The kernel stop hook as a notebook installs it (ui/lifecycle.py), without Voilà or a browser.

`install_kernel_stop_hook` wraps the kernel's `do_shutdown` and adds a SIGTERM handler to the
engine's loop. The kernel here is a stand-in with the one attribute the hook touches
(`do_shutdown`); `IPython.get_ipython` is pointed at it. SIGTERM ends the process, so those
tests run a child Python."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pmm_widgets.ui.lifecycle import KernelStopHook, install_kernel_stop_hook

ROOT = Path(__file__).resolve().parents[2]


class _Kernel:
    """The ipykernel attribute the hook wraps: `do_shutdown(restart)`, sync or async."""

    def __init__(self, calls: list[str], *, is_async: bool = False) -> None:
        self.calls = calls
        if is_async:
            async def do_shutdown(restart: bool) -> dict[str, Any]:
                await asyncio.sleep(0)
                calls.append(f"original(restart={restart})")
                return {"status": "ok", "restart": restart}
        else:
            def do_shutdown(restart: bool) -> dict[str, Any]:  # type: ignore[misc]
                calls.append(f"original(restart={restart})")
                return {"status": "ok", "restart": restart}
        self.do_shutdown = do_shutdown


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch):
    """Install a stand-in kernel as get_ipython().kernel; returns a factory for it."""

    def make(calls: list[str], *, is_async: bool = False) -> _Kernel:
        k = _Kernel(calls, is_async=is_async)
        monkeypatch.setattr("IPython.get_ipython", lambda: SimpleNamespace(kernel=k))
        return k

    return make


@pytest.fixture
def no_sigterm_handler_left():
    """The hook adds a SIGTERM handler to the test's loop: take it away before the loop moves on."""
    yield
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
    except RuntimeError:
        pass


def test_outside_a_kernel_nothing_is_installed(monkeypatch):
    async def stop() -> None:  # pragma: no cover - never runs
        raise AssertionError

    monkeypatch.setattr("IPython.get_ipython", lambda: None)  # plain Python
    assert asyncio.run(_install(stop)) is None
    monkeypatch.setattr("IPython.get_ipython", lambda: SimpleNamespace())  # a terminal IPython: no kernel
    assert asyncio.run(_install(stop)) is None
    monkeypatch.setitem(sys.modules, "IPython", None)  # IPython not installed at all
    assert asyncio.run(_install(stop)) is None


async def _install(stop, timeout: float = 5.0) -> KernelStopHook | None:
    return install_kernel_stop_hook(stop, timeout=timeout)


@pytest.mark.parametrize("is_async", [False, True])
async def test_the_kernel_shutdown_runs_the_stop_first_then_the_kernels_own(kernel, is_async, no_sigterm_handler_left):
    calls: list[str] = []
    k = kernel(calls, is_async=is_async)
    original = k.do_shutdown

    async def stop() -> None:
        await asyncio.sleep(0.01)
        calls.append("stop")

    hook = install_kernel_stop_hook(stop, timeout=2.0)
    assert hook is not None and hook.ran is None and hook.reason == ""  # nothing ran at install
    assert k.do_shutdown is not original  # ipykernel's shutdown_request now goes through the hook
    assert calls == []
    reply = await k.do_shutdown(True)
    assert reply == {"status": "ok", "restart": True}  # the kernel's own answer goes back unchanged
    assert calls == ["stop", "original(restart=True)"]
    assert hook.reason == "shutdown_request"
    await k.do_shutdown(False)  # a second request does not stop twice
    assert calls == ["stop", "original(restart=True)", "original(restart=False)"]


async def test_a_failing_stop_is_logged_and_the_kernel_still_shuts_down(kernel, caplog, no_sigterm_handler_left):
    calls: list[str] = []
    k = kernel(calls)

    async def stop() -> None:
        raise RuntimeError("venue unreachable")

    assert install_kernel_stop_hook(stop, timeout=2.0) is not None
    with caplog.at_level(logging.ERROR, logger="pmm_widgets.ui.lifecycle"):
        assert await k.do_shutdown(False) == {"status": "ok", "restart": False}
    assert calls == ["original(restart=False)"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "pmm: clean stop at kernel shutdown failed: RuntimeError: venue unreachable"]


async def test_a_stop_slower_than_a_second_but_within_its_bound_completes(kernel, no_sigterm_handler_left):
    """The shutdown request waits for the whole bounded stop (the stop's bound plus a margin)."""
    calls: list[str] = []
    k = kernel(calls)

    async def stop() -> None:
        await asyncio.sleep(0.3)
        calls.append("stop")

    install_kernel_stop_hook(stop, timeout=0.5)
    await k.do_shutdown(False)
    assert calls == ["stop", "original(restart=False)"]


def test_an_engine_loop_that_never_runs_the_stop_does_not_hold_the_kernel_shutdown(kernel, caplog):
    """A wedged engine loop: the shutdown request gives up after the bound, says so, and the
    kernel's own shutdown still runs (the lease then expires; the venue heartbeat cancels)."""
    calls: list[str] = []
    k = kernel(calls)

    async def stop() -> None:
        calls.append("stop")

    engine_loop = asyncio.new_event_loop()
    try:
        hook = engine_loop.run_until_complete(_install(stop, timeout=0.05))
        assert hook is not None
        t0 = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="pmm_widgets.ui.lifecycle"):
            assert asyncio.run(k.do_shutdown(False)) == {"status": "ok", "restart": False}
        assert time.monotonic() - t0 < 5.0
        assert calls == ["original(restart=False)"]  # the engine loop never ran anything
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
            "pmm: clean stop at kernel shutdown: TimeoutError: "]
        engine_loop.run_until_complete(asyncio.sleep(0.05))  # let the scheduled stop drain
    finally:
        engine_loop.close()  # also removes its SIGTERM handler


_CHILD = """
import asyncio, os, signal, sys, types
import IPython
from pmm_widgets.ui.lifecycle import install_kernel_stop_hook

kernel = types.SimpleNamespace(do_shutdown=lambda restart: None)
IPython.get_ipython = lambda: types.SimpleNamespace(kernel=kernel)
STOP = sys.argv[1]

async def stop():
    if STOP == "hang":
        await asyncio.sleep(60)
    await asyncio.sleep(0.05)
    print("stopped", HOOK.reason, flush=True)

async def main():
    global HOOK
    HOOK = install_kernel_stop_hook(stop, timeout=0.3)
    print("installed", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.1)  # a hung stop is still inside its 0.3 s bound here
    print("reason", HOOK.reason, flush=True)
    await asyncio.sleep(20)
    print("survived", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("stop", ["ok", "hang"])
def test_sigterm_runs_the_clean_stop_then_ends_the_process_as_sigterm(stop):
    """The manager's second step (or an operator's `kill`): the stop runs (bounded), then the
    process ends by SIGTERM, as it would have without the hook."""
    t0 = time.monotonic()
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(_CHILD), stop], cwd=ROOT, capture_output=True,
                           text=True, timeout=30, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert child.returncode == -signal.SIGTERM, (child.stdout, child.stderr)
    expected = ["installed", "stopped SIGTERM"] if stop == "ok" else ["installed", "reason SIGTERM"]
    assert child.stdout.split("\n")[:-1] == expected, child.stderr
    assert time.monotonic() - t0 < 15  # never the 20 s the child would otherwise sleep
