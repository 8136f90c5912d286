"""A page kernel's shutdown cancels the orders promptly, whatever `PMM_QUOTE_REFRESH_SEC`, and
the hook waits for the clean stop no longer than Voilà leaves before its SIGKILL.

Against the loopback sandbox's trading half (a live engine with a throwaway key): the venue
refuses every order placement with 429 (refused, never acted on) once the engine quotes, so the
first quote cycle is still retrying its placement when the kernel's shutdown request comes; the
sandbox notes when each request reaches it, and the test measures from the shutdown request to
the venue's cancel-all. Before the fix the stop waited two refreshes for that cycle: at
`quote_refresh_sec=5` the cancel-all reached the venue 10.0 s after the request."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from venue_arrivals import live_engine, until

from pmm_widgets.config import Settings
from pmm_widgets.engine.core import Engine
from pmm_widgets.engine.runtime import (
    AFTER_VERIFY_SEC,
    KERNEL_STOP_SEC,
    SETTLE_INFLIGHT_SEC,
    STOP_GRACE_SEC,
    STOP_VERIFY_SEC,
)
from pmm_widgets.execution.live import CLOSE_CANCEL_SEC
from pmm_widgets.ui.controls import ControlPanel
from pmm_widgets.ui.lifecycle import (
    KILL_MARGIN_SEC,
    VOILA_SHUTDOWN_WAIT_SEC,
    KernelStopHook,
    kernel_stop_timeout,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_the_kernel_shutdown_cancels_within_the_stop_grace_while_a_cycle_is_stuck_at_qr_5(db_url):
    # a refused placement is retried 10 times, 1 s apart: the cycle is under way for > 10 s
    settings = Settings(_env_file=None, db_url=db_url, venue="sandbox", quote_refresh_sec=5.0, sandbox_speed=15,
                        universe_size=2, lease_ttl_sec=3, writer_flush_sec=0.2, dashboard_refresh_sec=0.2,
                        venue_retries=10, venue_backoff_sec=1.0, venue_backoff_cap_sec=1.0)
    # (a stop grace of 0.3 s: the default, 2 s, would make this test slow; the point is qr's 5 s)
    async with live_engine(settings, stop_grace_sec=0.3) as run:
        engine = run.engine
        panel = ControlPanel(engine)
        run.sb.faults.update(http_error_rate=1.0, http_error_status=429, http_error_methods="POST")
        # (`arrived`: when each request reaches the venue, before any refusal)
        assert await until(lambda: any(r == "POST /orders" for _, r in run.arrived), 5.0)
        await asyncio.sleep(0.1)
        assert engine.owner._ctl.trade_lock.locked()  # the cycle is under way, its placement retrying
        hook = KernelStopHook(panel.close, timeout=kernel_stop_timeout(), loop=asyncio.get_running_loop())
        t0 = time.monotonic()
        shutting = asyncio.ensure_future(hook.on_shutdown_request())
        assert await until(lambda: run.arrived_after("DELETE /cancel-all", t0) is not None, 1.5), \
            "no cancel-all reached the venue within 1.5 s of the shutdown request"
        first_cancel = run.arrived_after("DELETE /cancel-all", t0)
        assert first_cancel is not None
        await shutting
        assert first_cancel < engine.stop_grace_sec + 0.5, first_cancel
        assert not engine.running and engine.owner.shutdown_started is not None
        stopped = [ev.message for ev in engine.events.recent() if ev.kind == "engine_stop"]
        assert stopped and stopped[-1].startswith("engine stopped: ") and stopped[-1].endswith(", 0 open"), stopped


def test_the_hooks_bound_ends_before_voilas_sigkill():
    """jupyter_client's shutdown: the request, SIGTERM at half of `shutdown_wait_time`, SIGKILL at
    all of it. The hook's wait (its stop's bound plus the hand-over to the engine's loop) ends
    `KILL_MARGIN_SEC` before, so its log line and the kernel's own shutdown happen; and the
    constant is voila.json's setting."""
    conf = json.loads((ROOT / "voila.json").read_text())
    assert conf["KernelManager"]["shutdown_wait_time"] == VOILA_SHUTDOWN_WAIT_SEC
    hook = KernelStopHook(_never, timeout=kernel_stop_timeout(), loop=asyncio.new_event_loop())
    try:
        assert hook.timeout + hook.handoff_sec + KILL_MARGIN_SEC <= VOILA_SHUTDOWN_WAIT_SEC
        assert hook.timeout >= Engine.stop_grace_sec + 5.0  # room for the cancel and its verification
        # the stop's budget inside it: the grace, the verification's deadline, the rest of the shutdown
        assert Engine.stop_grace_sec == STOP_GRACE_SEC and KERNEL_STOP_SEC == kernel_stop_timeout()
        assert STOP_GRACE_SEC + STOP_VERIFY_SEC + AFTER_VERIFY_SEC <= hook.timeout
        assert SETTLE_INFLIGHT_SEC < STOP_VERIFY_SEC and CLOSE_CANCEL_SEC < AFTER_VERIFY_SEC
    finally:
        hook.loop.close()


async def _never() -> None:  # pragma: no cover - never awaited
    await asyncio.sleep(3600)
