"""Retry policy of venue/http.py against real servers: the sandbox's fault knobs (429 with
Retry-After, 5xx) and a tiny aiohttp server on loopback for timeouts and refused connections."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from pmm_widgets.venue.http import JsonHttp, VenueHTTPError, backoff_delay, parse_retry_after


class Sleeps:
    """Records the delays the client chose, without waiting them out."""

    def __init__(self, on_call=None):
        self.delays: list[float] = []
        self.on_call = on_call

    async def __call__(self, d: float) -> None:
        self.delays.append(d)
        if self.on_call is not None:
            self.on_call(len(self.delays))
        await asyncio.sleep(0)


def test_backoff_is_full_jitter_and_capped():
    rnd = random.Random(1)
    for attempt in range(12):
        d = [backoff_delay(attempt, 0.25, 8.0, rnd) for _ in range(200)]
        assert all(0 <= x <= min(8.0, 0.25 * 2 ** attempt) for x in d)
        assert max(d) > 0.5 * min(8.0, 0.25 * 2 ** attempt)  # spread over the whole window
    # a connection failing for hours keeps counting: 2**attempt past ~1000 no longer fits a float
    d = [backoff_delay(attempt, 0.25, 8.0, rnd) for attempt in (1_030, 10**6)]
    assert all(0 <= x <= 8.0 for x in d)


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000") == 5.0  # capped (PMM_RETRY_AFTER_MAX_SEC default)
    assert parse_retry_after("100000", cap=0.5) == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=5), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(5.0)


@pytest.mark.integration
async def test_429_honours_retry_after_then_fails_with_venue_text(sandbox):
    sandbox.faults.update(http_error_rate=1.0, http_error_status=429)
    sleeps = Sleeps()
    http = JsonHttp(sandbox.clob_url, retries=3, sleep=sleeps)
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/time")
    finally:
        await http.aclose()
    e = ei.value
    assert (e.status, e.message, e.attempts) == (429, "Too Many Requests", 4)
    assert len(sleeps.delays) == 3 and all(d >= 1.0 for d in sleeps.delays)  # the sandbox says Retry-After: 1
    assert f"GET {sandbox.clob_url}/time: HTTP 429: Too Many Requests after 4 attempts" == str(e)


@pytest.mark.integration
async def test_5xx_is_retried_until_the_venue_recovers(sandbox):
    sandbox.faults.update(http_error_rate=1.0, http_error_status=503)
    sleeps = Sleeps(on_call=lambda n: n == 2 and sandbox.faults.update(http_error_rate=0.0))
    http = JsonHttp(sandbox.clob_url, retries=4, backoff_base=0.5, sleep=sleeps)
    tok = sandbox.sim.markets[0].yes_token_id if sandbox.sim.markets[0].has_book else sandbox.sim.markets[1].yes_token_id
    try:
        book = await http.get("/book", {"token_id": tok})
    finally:
        await http.aclose()
    assert book["asset_id"] == tok
    assert http.retried == 2 and sleeps.delays[0] <= 0.5 and sleeps.delays[1] <= 1.0


@pytest.mark.integration
async def test_4xx_fails_at_once_with_the_error_text(sandbox):
    http = JsonHttp(sandbox.clob_url, retries=4, sleep=Sleeps())
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/book", {"token_id": "123"})
    finally:
        await http.aclose()
    assert ei.value.status == 404 and ei.value.attempts == 1
    assert ei.value.message == "No orderbook exists for the requested token id"


@contextlib.asynccontextmanager
async def serve(routes):
    """A tiny aiohttp server on loopback with these GET handlers; yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def slow_server():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2.0)
        return web.json_response({"ok": True})

    async with serve({"/slow": slow}) as url:
        yield url


@pytest.mark.integration
async def test_timeouts_are_retried_then_reported(slow_server):
    sleeps = Sleeps()
    http = JsonHttp(slow_server, timeout=0.1, retries=2, sleep=sleeps)
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/slow")
    finally:
        await http.aclose()
    assert ei.value.status is None and ei.value.attempts == 3 and "Timeout" in ei.value.message
    assert len(sleeps.delays) == 2


@pytest.mark.integration
async def test_refused_connection_is_retried_then_reported():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    http = JsonHttp(f"http://127.0.0.1:{port}", retries=2, sleep=sleeps)
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/book", {"token_id": "1"}, retry=True)
        with pytest.raises(VenueHTTPError) as once:
            await http.get("/book", retry=False)
    finally:
        await http.aclose()
    assert ei.value.status is None and ei.value.attempts == 3 and "ConnectError" in ei.value.message
    assert once.value.attempts == 1


@pytest.fixture
async def trickle_server():
    """Answers 200 at once, then sends its body one byte every 0.3 s (a Gamma that trickles), and a
    429 with `Retry-After: 1000` on /limited."""
    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for b in b'{"ok": true, "pad": "' + b"x" * 100 + b'"}':
            await resp.write(bytes([b]))
            await asyncio.sleep(0.3)
        return resp

    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1000"})

    async with serve({"/trickle": trickle, "/limited": limited}) as url:
        yield url


@pytest.mark.integration
async def test_a_trickling_response_hits_the_total_deadline(trickle_server):
    """httpx's read timeout restarts at every byte: only a total deadline bounds a trickle (M3)."""
    http = JsonHttp(trickle_server, timeout=0.5, retries=10, deadline=1.5, backoff_base=0.05, backoff_cap=0.1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/trickle")
    finally:
        await http.aclose()
    took = loop.time() - t0
    assert took < 2.5, took  # the body alone would take 30 s
    assert ei.value.status is None and "Timeout" in ei.value.message and ei.value.attempts >= 2


@pytest.mark.integration
async def test_retry_after_is_capped_and_the_deadline_holds(trickle_server):
    sleeps = Sleeps()
    http = JsonHttp(trickle_server, retries=3, retry_after_max=0.2, sleep=sleeps)
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/limited")
    finally:
        await http.aclose()
    assert ei.value.status == 429 and ei.value.attempts == 4
    assert sleeps.delays and all(0.2 <= d <= 0.2 + 8.0 for d in sleeps.delays)
    assert max(sleeps.delays) < 1000
    # a deadline shorter than the next wait ends the call at once instead of sleeping past it
    http = JsonHttp(trickle_server, retries=3, retry_after_max=5.0, deadline=1.0, sleep=Sleeps())
    try:
        with pytest.raises(VenueHTTPError) as ei:
            await http.get("/limited")
    finally:
        await http.aclose()
    assert ei.value.status == 429 and "deadline" in ei.value.message and ei.value.attempts == 1
