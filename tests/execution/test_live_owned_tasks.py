"""The tasks a live exchange starts for a caller and owns past it (`execution/live.py`): a
placement's POST and, on the fast requote path, the cycle's DELETE beside it. A caller cancelled
meanwhile (a stop's grace ran out mid-cycle) leaves them running; their error then has nobody to
tell but the log, once; an error the caller hears is not logged on top; `close` ends them.

Around the scripted broker of `live_fakes.py` (faults at exact points of the loop's steps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from live_fakes import M1, YES, D, FakeBroker, add_open, make_ex

from pmm_widgets.domain import Quote, Side
from pmm_widgets.execution.live import LiveExchange
from pmm_widgets.venue.broker import BrokerError

LIVE_LOG = "pmm_widgets.execution.live"


def q(price: str = "0.40") -> Quote:
    return Quote(M1, YES, Side.BUY, D(price), D(10))


def gated(b: FakeBroker, op: str, gate: asyncio.Event, fail: BaseException | None = None) -> None:
    """`b.<op>` waits for `gate`, then raises `fail` (None: answers as the fake does)."""
    real: Callable[..., Any] = getattr(b, op)

    async def call(*a: Any, **kw: Any) -> Any:
        b.calls.append((f"{op}-sent", None))
        await gate.wait()
        if fail is not None:
            raise fail
        return await real(*a, **kw)

    setattr(b, op, call)


def errors(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LIVE_LOG and r.levelno >= logging.ERROR and text in r.getMessage()]


async def _sent(b: FakeBroker, op: str) -> None:
    for _ in range(100):
        if (f"{op}-sent", None) in b.calls:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{op} never sent")


def _pending_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


# ------------------------------------------------------------------ a placement's post
async def test_a_post_whose_caller_was_cancelled_logs_its_error_once(caplog):
    ex, b, _ = make_ex()
    gate = asyncio.Event()
    gated(b, "post_orders", gate, RuntimeError("post exploded"))
    caller = asyncio.ensure_future(ex.place([q()]))
    await _sent(b, "post_orders")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    [post] = ex._posts  # owned by the exchange, still running
    gate.set()
    await asyncio.wait({post})
    await asyncio.sleep(0)
    assert len(errors(caplog, "a placement's post (its caller cancelled) failed: post exploded")) == 1


async def test_a_post_error_the_caller_hears_is_not_logged_as_well(caplog):
    ex, b, _ = make_ex()
    gate = asyncio.Event()
    gated(b, "post_orders", gate, RuntimeError("post exploded"))
    gate.set()
    with pytest.raises(RuntimeError, match="post exploded"):
        await ex.place([q()])
    await asyncio.sleep(0)
    assert errors(caplog, "post exploded") == [] and ex._awaited == {}


async def test_a_post_that_fails_as_its_caller_is_cancelled_logs_its_error_once(caplog):
    """The post fails, spawn passes its error on while the caller still awaits it, and the cancel
    reaches the caller before it resumed: the caller never hears the error, so it is logged."""
    ex, b, _ = make_ex()
    gate = asyncio.Event()
    gated(b, "post_orders", gate, RuntimeError("post exploded"))
    caller = asyncio.ensure_future(ex.place([q()]))
    await _sent(b, "post_orders")
    [post] = ex._posts
    post.add_done_callback(lambda _: caller.cancel())  # runs after spawn's and the shield's callbacks
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0)
    assert len(errors(caplog, "a placement's post (its caller cancelled) failed: post exploded")) == 1
    assert ex._awaited == {}


# ------------------------------------------------------------------ a fast requote's cancel
def _fast_requote(gate_post: asyncio.Event, gate_cancel: asyncio.Event, cancel_fail: BaseException | None
                  ) -> tuple[LiveExchange, FakeBroker, asyncio.Future[Any]]:
    ex, b, _ = make_ex()
    b.fast = True  # type: ignore[misc]
    old = add_open(ex, "0xold")
    gated(b, "post_orders", gate_post)
    gated(b, "cancel", gate_cancel, cancel_fail)
    return ex, b, asyncio.ensure_future(ex.requote([old.client_id], [q("0.41")]))


async def test_a_requote_cancel_whose_caller_was_cancelled_is_owned_and_its_error_logged(caplog):
    """The stop cancels the cycle while its POST and its DELETE are both out: the DELETE's task
    (asyncio.ensure_future) was left with no owner: its error was never logged (at most asyncio's
    "exception was never retrieved" at garbage collection), and close() did not end it."""
    gate_post, gate_cancel = asyncio.Event(), asyncio.Event()
    ex, b, caller = _fast_requote(gate_post, gate_cancel, BrokerError("cancel", "boom", status=503))
    await _sent(b, "post_orders")
    await _sent(b, "cancel")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate_post.set()
    gate_cancel.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(errors(caplog, "a requote's cancel (its caller cancelled) failed: cancel: HTTP 503: boom")) == 1


async def test_close_ends_a_requote_cancel_whose_caller_was_cancelled():
    gate_post, gate_cancel = asyncio.Event(), asyncio.Event()  # the DELETE never answers
    ex, b, caller = _fast_requote(gate_post, gate_cancel, None)
    await _sent(b, "post_orders")
    await _sent(b, "cancel")
    caller.cancel()  # (while it awaits the POST)
    with pytest.raises(asyncio.CancelledError):
        await caller
    gate_post.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert ex._posts == set() and _pending_tasks()  # the POST answered; the DELETE is still out
    await ex.close()
    assert _pending_tasks() == set()  # close ended it (it was left running after the close)


async def test_a_requote_cancel_error_the_caller_hears_is_not_logged_as_well(caplog):
    gate_post, gate_cancel = asyncio.Event(), asyncio.Event()
    ex, b, caller = _fast_requote(gate_post, gate_cancel, BrokerError("cancel", "boom", status=503))
    gate_post.set()
    gate_cancel.set()
    with pytest.raises(BrokerError):
        await caller
    await asyncio.sleep(0)
    assert errors(caplog, "boom") == [] and ex._awaited == {}

