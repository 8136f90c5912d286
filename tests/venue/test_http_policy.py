"""venue/http.py's failure policy in detail, over httpx's in-process transport (no sockets).

`test_http.py` runs the policy against the sandbox and real loopback servers (429 with
Retry-After, 5xx, timeouts, refused connections, a trickle). Here, what those cannot pin one by
one: the exact set of statuses retried, each backoff delay, the error messages a trader reads,
the answers that are not JSON, the query spelling, the counters, the defaults, and who closes
the client. The transport stands in for HTTP only; the venue's own answers are the sandbox's.
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from pmm_widgets.venue import http as http_module
from pmm_widgets.venue.http import JsonHttp, VenueHTTPError, backoff_delay, error_text, parse_retry_after

BASE = "http://venue.test"


class Top:
    """A Random whose uniform(a, b) is b: each delay is its window's upper bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


def client(handler: Callable[[httpx.Request], Any], **kw: Any) -> tuple[JsonHttp, list[float], list[httpx.Request]]:
    seen: list[httpx.Request] = []
    delays: list[float] = []

    async def record(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        out = handler(req)
        return await out if asyncio.iscoroutine(out) else out

    async def sleep(d: float) -> None:
        delays.append(d)

    kw.setdefault("rnd", Top())
    c = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(record))
    return JsonHttp(BASE + "/", client=c, sleep=sleep, **kw), delays, seen


def answers(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A transport that answers these in turn (an exception is raised), the last one forever."""
    it = list(responses)

    def handler(req: httpx.Request) -> httpx.Response:
        r = it.pop(0) if len(it) > 1 else it[0]
        if isinstance(r, Exception):
            raise r
        return r

    return handler


# ---------------------------------------------------------------- defaults and the error's text
def test_defaults_are_the_documented_ones():
    assert http_module.RETRY_STATUSES == {429, 500, 502, 503, 504}
    assert (http_module.MAX_RETRY_AFTER_SEC, http_module.DEFAULT_DEADLINE_SEC) == (5.0, 30.0)
    h = JsonHttp(BASE + "//")
    assert (h.timeout, h.retries, h.backoff_base, h.backoff_cap, h.deadline, h.retry_after_max) == (10.0, 4, 0.25, 8.0, 30.0, 5.0)
    assert h.base_url == BASE and (h.requests, h.retried) == (0, 0)
    asyncio.run(h.aclose())
    assert JsonHttp("http://gammaX/").base_url == "http://gammaX"  # only slashes are cut


def test_the_error_names_the_call_the_host_what_failed_and_the_attempts():
    one = VenueHTTPError("GET", "/book", 404, "no book", base_url=BASE)
    assert str(one) == f"GET {BASE}/book: HTTP 404: no book"  # one attempt: not said
    assert (one.method, one.path, one.status, one.message, one.attempts, one.base_url) == ("GET", "/book", 404, "no book", 1, BASE)
    two = VenueHTTPError("POST", "/order", None, "ConnectError", attempts=2)
    assert str(two) == "POST /order: transport error: ConnectError after 2 attempts"


# ---------------------------------------------------------------- backoff and Retry-After
def test_backoff_windows_grow_from_the_base_and_the_exponent_is_clamped():
    assert [backoff_delay(a, 0.25, 8.0, Top()) for a in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]  # type: ignore[arg-type]
    assert backoff_delay(500, 1.0, math.inf, Top()) == 2.0 ** 60  # type: ignore[arg-type]
    a, b = random.Random(7), random.Random(7)
    assert [backoff_delay(3, 1.0, 8.0, a) for _ in range(5)] == [backoff_delay(3, 1.0, 8.0, b) for _ in range(5)]
    random.seed(11)
    first = [backoff_delay(3, 1.0, 8.0) for _ in range(3)]  # no generator given: the module's
    random.seed(11)
    assert first == [backoff_delay(3, 1.0, 8.0) for _ in range(3)]


def test_retry_after_dates_nan_negative_and_spaces():
    now = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    in_20 = format_datetime(now + timedelta(seconds=20), usegmt=True)
    assert parse_retry_after(in_20, now=now.timestamp(), cap=100) == pytest.approx(20.0)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=20), usegmt=True), now=now.timestamp()) == 0.0
    real = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < parse_retry_after(f"  {real}  ", cap=100) <= 30  # type: ignore[operator]  # the clock when none is given
    assert parse_retry_after("nan") is None and parse_retry_after("") is None
    assert parse_retry_after("-5") == 0.0 and parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("Mon, 99 Foo 2026 99:99:99 GMT") is None


# ---------------------------------------------------------------- the venue's error text
@pytest.mark.parametrize(("body", "text"), [
    (b'{"error": "not enough balance"}', "not enough balance"),
    (b'{"errorMsg": "order crosses"}', "order crosses"),
    (b'{"error_msg": "bad tick"}', "bad tick"),
    (b'{"message": "Unauthorized"}', "Unauthorized"),
    (b'{"error": "", "message": "the second key"}', "the second key"),  # an empty field is skipped
    (b'["a", "list"]', '["a", "list"]'),
    (b"<html>\nBad\ngateway</html>", "<html> Bad gateway</html>"),
    (b"x" * 300, "x" * 200),
    (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
])
def test_error_text_prefers_the_venues_message(body, text):
    assert error_text(httpx.Response(502, content=body)) == text


def test_error_text_of_an_empty_body():
    assert error_text(httpx.Response(503, content=b"")) == "Service Unavailable"
    assert error_text(httpx.Response(599, content=b"  \n")) == "no body"  # no reason phrase known


# ---------------------------------------------------------------- what is retried, and how long
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_each_transient_status_is_retried_with_growing_delays(status):
    h, delays, seen = client(answers(httpx.Response(status, json={"error": "busy"}), httpx.Response(status, json={"error": "busy"}),
                                     httpx.Response(status, json={"error": "busy"}), httpx.Response(200, json={"ok": 1})))
    assert await h.get("/x") == {"ok": 1}
    assert delays == [0.25, 0.5, 1.0] and len(seen) == 4 and (h.requests, h.retried) == (4, 3)


@pytest.mark.parametrize("status", [400, 401, 404, 409, 501, 505])
async def test_other_errors_fail_at_once(status):
    h, delays, seen = client(answers(httpx.Response(status, json={"error": "no"})))
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert (ei.value.status, ei.value.attempts, ei.value.message) == (status, 1, "no")
    assert delays == [] and len(seen) == 1


async def test_success_below_400_empty_is_none_and_not_json_is_an_error():
    h, _, _ = client(answers(httpx.Response(399, json={"a": 1})))
    assert await h.get("/x") == {"a": 1}
    h, _, _ = client(answers(httpx.Response(200, content=b"")))
    assert await h.get("/x") is None
    h, delays, _ = client(answers(httpx.Response(200, content=b"<html>maintenance</html>")))
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert (ei.value.status, ei.value.message, ei.value.attempts) == (200, "response is not JSON", 1) and delays == []


async def test_a_retry_after_longer_than_the_backoff_is_waited():
    h, delays, _ = client(answers(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json=1)))
    assert await h.get("/x") == 1
    assert delays == [3.0]
    h, delays, _ = client(answers(httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json=1)))
    assert await h.get("/x") == 1 and delays == [0.25]  # the backoff when it is longer


async def test_the_last_attempt_reports_the_status_and_the_attempts(caplog):
    h, delays, _ = client(answers(httpx.Response(503, json={"error": "down"})), retries=2)
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.http"), pytest.raises(VenueHTTPError) as ei:
        await h.get("/book")
    assert str(ei.value) == f"GET {BASE}/book: HTTP 503: down after 3 attempts" and delays == [0.25, 0.5]
    assert [r.getMessage() for r in caplog.records] == ["GET /book: HTTP 503 (down), retrying"] * 2


async def test_transport_failures_are_retried_and_named(caplog):
    h, delays, _ = client(answers(httpx.ConnectError("refused"), httpx.ReadError(""), httpx.Response(200, json=2)))
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.http"):
        assert await h.get("/x") == 2
    assert delays == [0.25, 0.5]
    assert [r.getMessage() for r in caplog.records] == ["GET /x: ConnectError, retrying", "GET /x: ReadError, retrying"]
    h, _, _ = client(answers(httpx.ReadError("")), retries=0)
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert (ei.value.status, ei.value.message) == (None, "ReadError")  # an empty text: the name alone
    h, _, _ = client(answers(httpx.RemoteProtocolError("peer closed")), retries=0)
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert ei.value.message == "RemoteProtocolError: peer closed"


async def test_a_slow_answer_is_a_timeout_of_the_attempt():
    async def slow(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=1)

    h, delays, seen = client(slow, timeout=0.05, retries=1)
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert ei.value.status is None and ei.value.attempts == 2 and len(seen) == 2 and delays == [0.25]
    assert ei.value.message == "TimeoutException: no complete response within 0.05s"


async def test_no_time_left_means_no_request_and_a_deadline_named_with_the_last_failure():
    h, delays, seen = client(answers(httpx.Response(200, json=1)), deadline=0.0)
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert seen == [] and h.requests == 1 and ei.value.status is None
    assert ei.value.message == "TimeoutException: no complete response within 0s"
    # the next wait would end past the deadline: fail now, naming the last answer
    h, delays, _ = client(answers(httpx.Response(502, json={"error": "bad gateway"})), deadline=2.0, backoff_base=4.0)
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert (ei.value.status, ei.value.message, ei.value.attempts) == (502, "bad gateway; deadline reached while retrying", 1)
    assert delays == [] and h.retried == 0
    h, delays, _ = client(answers(httpx.ConnectError("refused")), deadline=2.0, backoff_base=4.0)
    with pytest.raises(VenueHTTPError) as ei:
        await h.get("/x")
    assert (ei.value.status, ei.value.message) == (None, "ConnectError; deadline reached while retrying")


async def test_request_retries_by_default():
    h, delays, _ = client(answers(httpx.Response(500), httpx.Response(200, json=3)))
    assert await h.request("GET", "/x") == 3 and delays == [0.25]


async def test_retry_false_and_post_bodies():
    h, delays, seen = client(answers(httpx.Response(503, json={"error": "down"})))
    with pytest.raises(VenueHTTPError) as ei:
        await h.post("/order", json={"x": 1}, retry=False)
    assert ei.value.attempts == 1 and delays == [] and seen[0].method == "POST" and seen[0].content == b'{"x":1}'
    h, delays, seen = client(answers(httpx.Response(503), httpx.Response(200, json={"id": 7})))
    assert await h.post("/order", json={"x": 1}) == {"id": 7}  # retried by default
    assert [r.method for r in seen] == ["POST", "POST"] and delays == [0.25]


async def test_query_parameters_as_the_venue_spells_them():
    h, _, seen = client(answers(httpx.Response(200, json=[])))
    await h.get("/markets", {"closed": False, "active": True, "id": ["a", "b"], "tags": ("x",), "skip": None, "limit": 5})
    assert seen[0].url.query == b"closed=false&active=true&id=a&id=b&tags=x&limit=5"
    await h.get("/markets")
    assert seen[1].url.query == b""


async def test_a_client_passed_in_is_the_callers_to_close():
    c = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    await JsonHttp(BASE, client=c).aclose()
    assert not c.is_closed
    await c.aclose()
    own = JsonHttp(BASE)
    await own.aclose()
    assert own._client.is_closed
