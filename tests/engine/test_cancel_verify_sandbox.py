"""`cancel_and_verify` (the shutdown's and the KILL's last word with the venue) against the
loopback sandbox's trading half, with the venue's own fault knobs: a cancel-all the venue
refuses (503) once, then answers; and one it refuses every time.

A live engine with a throwaway key quotes on the sandbox; `venue_retries=0` so that a refused
cancel reaches `cancel_and_verify` (the broker would otherwise retry it inside one attempt).
The sandbox notes every request's answer (a middleware outside its fault middleware)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from venue_arrivals import LiveRun, live_engine

from pmm_widgets.config import Settings
from pmm_widgets.engine import runtime as runtime_mod
from pmm_widgets.engine.runtime import cancel_and_verify
from pmm_widgets.execution.live import CLOSE_CANCEL_SEC

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def live_engine_quoting(fast_settings: Settings, **update: object) -> AsyncIterator[LiveRun]:
    async with live_engine(fast_settings, **{"venue_retries": 0, "quote_refresh_sec": 5.0, "universe_size": 2,
                                             **update}) as run:
        # the first cycle's placement done, then a still market: no fill, and no requote whose
        # DELETE could take the fault meant for the cancel-all
        await run.quoting_still()
        yield run


def cancel_alls(run: LiveRun) -> list[tuple[float, int]]:
    """(when, HTTP status) of each DELETE /cancel-all the venue answered."""
    return [(t, st) for t, r, st in run.answered if r == "DELETE /cancel-all"]


async def test_a_cancel_refused_once_then_confirmed_is_a_clean_kill(fast_settings):
    """The KILL's message used to append the first attempt's "(error: ...)" although the second
    attempt cancelled everything and the venue confirmed 0 open."""
    async with live_engine_quoting(fast_settings) as run:
        resting = run.venue_open()
        run.sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="DELETE", http_error_count=1)
        kr = await run.engine.kill()
        assert [st for _, st in cancel_alls(run)][:2] == [503, 200]  # refused once, then answered
        assert run.venue_open() == 0
        assert kr.ok and kr.cancelled == resting
        assert kr.message == f"KILLED: {resting} orders cancelled, venue reports 0 open", kr.message  # no "(error: ...)"
        stopped = [ev.message for ev in run.engine.events.recent() if ev.kind == "engine_stop"]
        assert stopped and stopped[-1].startswith(f"engine stopped: {resting} orders cancelled, 0 open"), stopped


async def test_no_pause_after_the_last_refused_attempt(fast_settings):
    """Every attempt refused: the three attempts are 0.2 s apart, and the result comes as soon
    as the last one is answered (it used to wait 0.2 s more for nothing, on every such stop)."""
    async with live_engine_quoting(fast_settings) as run:
        resting = run.venue_open()
        run.sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="DELETE")
        n0 = len(cancel_alls(run))
        cancelled, open_after, err = await cancel_and_verify(run.engine.runtime.exchange)
        returned = time.monotonic()
        refused = cancel_alls(run)[n0:]
        assert [st for _, st in refused] == [503, 503, 503]
        assert all(b - a >= 0.2 for (a, _), (b, _) in zip(refused, refused[1:]))
        assert returned - refused[-1][0] < 0.1, returned - refused[-1][0]
        assert (cancelled, open_after) == (0, -1) and err is not None and "503" in err, err
        assert run.venue_open() == resting  # nothing was cancelled: the venue refused every time


async def test_a_kill_whose_open_count_is_unknown_says_so(fast_settings):
    """Every cancel-all refused: the KILL's message said "venue reports -1 open (error: ...)";
    it says the count is unknown, as the stop's message does; the result keeps -1 (not ok)."""
    async with live_engine_quoting(fast_settings) as run:
        resting = run.venue_open()
        run.sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="DELETE")
        kr = await run.engine.kill()
        assert (kr.cancelled, kr.venue_open_after, kr.ok) == (0, -1, False)
        assert kr.message.startswith("KILLED: 0 orders cancelled, venue open count unknown ("), kr.message
        assert "503" in kr.message and "-1" not in kr.message, kr.message
        stopped = [ev.message for ev in run.engine.events.recent() if ev.kind == "engine_stop"]
        assert stopped and stopped[-1].startswith("engine stopped: 0 orders cancelled, venue open count unknown ("), stopped
        assert run.venue_open() == resting  # (the venue refused every cancel)


async def test_a_stop_at_a_venue_slow_on_every_call_ends_at_its_deadline_saying_the_count_is_unknown(
        fast_settings, monkeypatch):
    """A venue that answers every call late: the stop's cancel and count were each bounded only
    by the HTTP timeout (10 s), so the stop could run past a page kernel's 9 s bound and be
    SIGKILLed mid-way. The verification now ends at its deadline (`STOP_VERIFY_SEC`: 5 s, here
    1 s against answers 0.7 s late) and says the count is unknown; the close after it is bounded
    too (`CLOSE_CANCEL_SEC`)."""
    monkeypatch.setattr(runtime_mod, "STOP_VERIFY_SEC", 1.0, raising=False)
    async with live_engine_quoting(fast_settings) as run:
        resting = run.venue_open()
        run.sb.faults.update(latency_ms=900, latency_methods="")  # every HTTP answer (and stream frame)
        t0, wall0 = time.monotonic(), time.time()
        kr = await run.engine.kill()
        took = time.monotonic() - t0
        said = [ev for ev in run.engine.events.recent() if ev.kind == "engine_stop"]
        # the verification's end (the old code's: 1.8 s, a cancel-all and a count 0.9 s each)
        assert said and said[-1].ts - wall0 < 1.0 + 0.4, said[-1].ts - wall0
        # the cancel-all (0.9 s) cancelled; the count (0.9 s more) was cut at the 1 s deadline
        assert (kr.cancelled, kr.venue_open_after, kr.ok) == (resting, -1, False), kr
        assert kr.message == (f"KILLED: {resting} orders cancelled, venue open count unknown (the venue's open "
                              "count not answered within the stop's 1 s deadline)"), kr.message
        stopped = [ev.message for ev in run.engine.events.recent() if ev.kind == "engine_stop"]
        assert stopped and "venue open count unknown (the venue's open count not answered within the stop's 1 s " \
            "deadline)" in stopped[-1], stopped
        assert took < 1.0 + CLOSE_CANCEL_SEC + 1.0, took  # the verification's deadline, the close's bound, the rest
        assert run.venue_open() == 0
