"""A small async JSON client for the venue's public HTTP APIs (Gamma, CLOB REST).

Why our own thin layer over `httpx.AsyncClient`: every caller needs the same failure policy and
none should re-invent it. Transient failures (429, 5xx, timeouts, refused or reset connections)
are retried with exponential backoff and *full jitter* (a random sleep in [0, cap]) so that many
clients recovering at once do not hammer the venue in lockstep; a `Retry-After` header is a
floor the venue asked for and is honoured, up to a small cap (`retry_after_max`, PMM_RETRY_AFTER_MAX_SEC):
a `Retry-After: 1000` must not park the caller for minutes. Every call has a *total* deadline
(`deadline`, PMM_HTTP_DEADLINE_SEC) over all its attempts and sleeps, and every attempt a total
deadline of `timeout` over the whole response (httpx's own timeouts are per read, so a server
that trickles one byte a second would otherwise hold the caller forever). Anything else fails at once with `VenueHTTPError`
carrying the status and the venue's own `{"error": ...}` text, which is what the user needs to
see. Request headers never appear in errors or logs (they may carry credentials).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from .. import safejson
from ..errors import PmmError
from ..tasks import within
from .tls import client_context

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SEC = 5.0  # default cap (PMM_RETRY_AFTER_MAX_SEC)
DEFAULT_DEADLINE_SEC = 30.0  # default total deadline of one call (PMM_HTTP_DEADLINE_SEC)


class VenueHTTPError(PmmError):
    """An HTTP request that failed for good. `status` is None for a transport failure."""

    def __init__(self, method: str, path: str, status: int | None, message: str, attempts: int = 1,
                 base_url: str = ""):
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.attempts = attempts
        self.base_url = base_url  # names the host that failed (issue 11: venue errors name the host)
        where = f"{method} {base_url}{path}"
        what = f"HTTP {status}" if status is not None else "transport error"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{where}: {what}: {message}{tries}")


def backoff_delay(attempt: int, base: float, cap: float, rnd: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)].

    The exponent is clamped: a connection that fails for hours keeps counting attempts, and
    `2**attempt` past ~1000 no longer converts to float."""
    r = rnd or random
    return r.uniform(0.0, min(cap, base * (2 ** min(attempt, 60))))


def parse_retry_after(value: str | None, now: float | None = None,
                      cap: float = MAX_RETRY_AFTER_SEC) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        sec = float(value)
    except ValueError:
        try:
            dt = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if dt is None:
            return None
        sec = dt.timestamp() - (time.time() if now is None else now)
    if sec != sec:  # NaN
        return None
    return min(max(sec, 0.0), cap)


def error_text(resp: httpx.Response) -> str:
    """The venue's `{"error": ...}` message, else the start of the body, on one line."""
    try:
        body = safejson.loads(resp.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        for k in ("error", "errorMsg", "error_msg", "message"):
            if body.get(k):
                return str(body[k])
    text = resp.text.strip().replace("\n", " ")
    return text[:200] or resp.reason_phrase or "no body"


class JsonHttp:
    """JSON over HTTP with retries. `request` returns the decoded body (or raises VenueHTTPError).

    `retries` is the number of *extra* attempts for transient failures; `retry=False` on a call
    disables them (for requests that must not be repeated blindly).
    """

    def __init__(self, base_url: str, timeout: float = 10.0, retries: int = 4, backoff_base: float = 0.25,
                 backoff_cap: float = 8.0, headers: Mapping[str, str] | None = None,
                 client: httpx.AsyncClient | None = None, rnd: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 deadline: float = DEFAULT_DEADLINE_SEC, retry_after_max: float = MAX_RETRY_AFTER_SEC) -> None:
        self.timeout = timeout
        self.deadline = deadline
        self.retry_after_max = retry_after_max
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rnd = rnd or random.Random()
        self._sleep = sleep  # tests observe the chosen delays through it
        self._own = client is None
        self._client = client or httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(timeout), headers=dict(headers or {}),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            verify=client_context(),  # the process's TLS context: not one built per client (venue/tls.py)
        )
        self.requests = 0  # attempts sent, for health / tests
        self.retried = 0

    async def aclose(self) -> None:
        if self._own:
            await self._client.aclose()

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *, retry: bool = True) -> Any:
        return await self.request("GET", path, params=params, retry=retry)

    async def post(self, path: str, json: Any = None, *, retry: bool = True) -> Any:
        return await self.request("POST", path, json=json, retry=retry)

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json: Any = None, retry: bool = True) -> Any:
        max_attempts = 1 + (self.retries if retry else 0)
        loop = asyncio.get_running_loop()
        end = loop.time() + self.deadline
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            wait: float | None = None
            last_status: int | None = None
            left = end - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                # the whole response (headers and body) within the per-attempt and total deadlines
                resp = await within(self._client.request(method, path, params=_params(params), json=json),
                                    min(self.timeout, left))
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError,
                    TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    exc = httpx.TimeoutException(f"no complete response within {min(self.timeout, max(left, 0)):.3g}s")
                if attempt >= max_attempts or loop.time() >= end:
                    raise VenueHTTPError(method, path, None, f"{type(exc).__name__}: {exc}" if str(exc)
                                         else type(exc).__name__, attempt, self.base_url) from None
                last_msg = type(exc).__name__
                log.info("%s %s: %s, retrying", method, path, type(exc).__name__)
            else:
                if resp.status_code < 400:
                    if not resp.content:
                        return None
                    try:
                        return safejson.loads(resp.content)
                    except (ValueError, UnicodeDecodeError):
                        raise VenueHTTPError(method, path, resp.status_code, "response is not JSON", attempt,
                                             self.base_url) from None
                msg = error_text(resp)
                if resp.status_code not in RETRY_STATUSES or attempt >= max_attempts:
                    raise VenueHTTPError(method, path, resp.status_code, msg, attempt, self.base_url)
                wait = parse_retry_after(resp.headers.get("retry-after"), cap=self.retry_after_max)
                last_status, last_msg = resp.status_code, msg
                log.info("%s %s: HTTP %d (%s), retrying", method, path, resp.status_code, msg)
            delay = backoff_delay(attempt - 1, self.backoff_base, self.backoff_cap, self._rnd)
            if wait is not None:
                delay = max(delay, wait)
            if loop.time() + delay >= end:  # no attempt could finish before the deadline
                raise VenueHTTPError(method, path, last_status, f"{last_msg}; deadline reached while retrying", attempt,
                                     self.base_url)
            self.retried += 1
            await self._sleep(delay)


def _params(params: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...] | None:
    """Query parameters as the venue spells them: booleans lower-case, lists repeated."""
    if params is None:
        return None
    out: list[tuple[str, str]] = []
    for k, v in params.items():
        if v is None:
            continue
        for item in v if isinstance(v, (list, tuple)) else (v,):
            out.append((k, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return tuple(out)
