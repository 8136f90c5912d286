"""Async order entry: signed batches posted concurrently, batch cancels, round trips recorded.

Why our own path beside the SDK: py-clob-client-v2 is synchronous, so `Broker` runs it in one
worker thread and a requote of 100 orders is seven `POST /orders` plus one `DELETE /orders`
one after another (8 round trips, ~360 ms at 30 ms each, plus ~4 ms of signing per order on the
pure-Python path). Here the orders are signed by `venue.signer.OrderSigner` (byte-identical to
the SDK, `tests/venue/test_signer.py`) in a worker thread, each batch of 15 is posted as soon as
it is signed, and all batches and the cancel of one requote are in flight together over one
`httpx.AsyncClient` (HTTP/2 to an https venue: one connection multiplexed; plain http, e.g. the
loopback sandbox: a small keep-alive pool). The request bodies and L2 headers are built exactly
as the SDK builds them (compact `json.dumps`, `ensure_ascii=False`; the SDK's own HMAC helper).
The broker's DELETE /cancel-all and GET /data/orders pages go here too (no body, signed without
one, as the SDK's `cancel_all` and `get_open_orders` send them): a stop's cancel-all and its
verifying read never wait behind a heartbeat or a read in flight on the SDK's one worker thread.
So does the order heartbeat (POST /v1/heartbeats, the body `{"heartbeat_id": ...}` as the SDK's
`post_heartbeat` serializes and signs it): a beat never waits behind a long read on that thread
(the venue cancels every order ~10 s after the last accepted beat).

Limits and guarantees:
- at most `max_inflight` requests are in flight (a semaphore; a cancel-all, a heartbeat and an
  open-order read are never held back by it, nor by the connection pool): the rate-limit budget of one
  process; the per-minute action budget is the risk manager's (`max_actions_per_min`);
- a POST is never retried (the same order could otherwise be placed twice); its outcome is
  per order in the answer. When the answer is lost (timeout, transport error, 5xx) the orders
  may or may not rest at the venue: the caller knows their ids (computed before sending) and
  cancels them (`LiveExchange`), so no order we lost track of is left behind;
- every request's round trip is kept (`rtts`, a bounded ring) with its kind and size: the feed
  for a paper latency model;
- after `aclose` every request raises `EntryClosed` (nothing sent, no client reopened).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ..errors import PmmError
from .tls import client_context

POST_ORDERS = "/orders"
CANCEL_ORDERS = "/orders"
CANCEL_ALL = "/cancel-all"
OPEN_ORDERS = "/data/orders"
HEARTBEAT = "/v1/heartbeats"
RTT_RING = 4096
UNBOUNDED_ROOM = 3  # plain http: connections beyond `max_inflight` for a cancel-all, a heartbeat and a read


@dataclass(frozen=True, slots=True)
class Rtt:
    """One request: wall-clock start (epoch s), kind ("post" | "cancel" | "cancel_all" |
    "open_orders" | "heartbeat"), orders in it (0: not known when it is sent), round trip in seconds, HTTP
    status (None: no answer)."""

    ts: float
    kind: str
    n: int
    rtt: float
    status: int | None


class EntryError(PmmError):
    """A request that got no usable answer: `status` None for transport errors and timeouts.
    Whether the venue may have acted on it is the broker's call (`broker.is_transient(status)`).
    `body`: the refusal's JSON answer (None: none), e.g. the heartbeat id an "Invalid Heartbeat
    ID" names."""

    def __init__(self, op: str, message: str, status: int | None = None, body: Any = None):
        self.op = op
        self.status = status
        self.message = message
        self.body = body
        super().__init__(f"{op}: " + (f"HTTP {status}: " if status is not None else "") + message)


class EntryClosed(EntryError):
    """A request on an order entry after its `aclose`: nothing was sent, and no HTTP client was
    opened for it (one nobody would close). Never worth another attempt (the broker's
    `BrokerClosed`)."""

    def __init__(self, op: str) -> None:
        super().__init__(op, "the order entry is closed: nothing was sent")


class OrderEntry:
    """POST /orders, DELETE /orders, DELETE /cancel-all, GET /data/orders pages and POST
    /v1/heartbeats with L2 auth, async, bounded concurrency."""

    def __init__(self, host: str, address: str, creds: Callable[[], tuple[str, str, str] | None], *,
                 max_inflight: int = 8, timeout: float = 10.0) -> None:
        self.host = host.rstrip("/")
        self.address = address
        self._creds = creds  # () -> (api key, secret, passphrase) or None: read at each request
        self.max_inflight = max(1, max_inflight)
        self._sem = asyncio.Semaphore(self.max_inflight)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._closed = False  # `aclose` was called: every request from now on raises EntryClosed
        self.rtts: deque[Rtt] = deque(maxlen=RTT_RING)
        self.inflight = 0
        self.peak_inflight = 0

    def _http(self) -> httpx.AsyncClient:
        """The HTTP client, opened at the first request; after `aclose`, EntryClosed (a client
        opened then would be closed by nobody). It takes the process's TLS context (venue/tls.py,
        built off the loop by `build_runtime`): opening it mid-trading costs the loop well under
        a millisecond, where a context of its own cost 20-50 ms, a stall at the first quote."""
        if self._closed:
            raise EntryClosed("request")
        if self._client is None:
            h2 = self.host.startswith("https://")
            self._client = httpx.AsyncClient(  # TLS: the process's context, not one built here (tls.py)
                http2=h2, timeout=self._timeout, verify=client_context(http2=h2),
                limits=httpx.Limits(max_connections=1 if h2 else self.max_inflight + UNBOUNDED_ROOM,
                                    max_keepalive_connections=1 if h2 else self.max_inflight + UNBOUNDED_ROOM))
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client (once opened); the entry takes no request after it (EntryClosed)."""
        self._closed = True
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _headers(self, method: str, path: str, body: str) -> dict[str, str]:
        from py_clob_client_v2.signing.hmac import build_hmac_signature

        c = self._creds()
        if c is None:
            raise EntryError(method.lower(), "API credentials are needed")
        key, secret, passphrase = c
        ts = int(datetime.now().timestamp())
        return {
            "POLY_ADDRESS": self.address, "POLY_SIGNATURE": build_hmac_signature(secret, ts, method, path, body),
            "POLY_TIMESTAMP": str(ts), "POLY_API_KEY": key, "POLY_PASSPHRASE": passphrase,
            "User-Agent": "py_clob_client_v2", "Accept": "*/*", "Content-Type": "application/json",
        }

    async def _request(self, kind: str, method: str, path: str, payload: Any, n: int,
                       params: dict[str, str] | None = None, bounded: bool = True) -> Any:
        """One request; `payload` None: no body (signed without one, as the SDK signs a request
        without data); `params`: the query string (never signed: the path is). `bounded` False:
        outside the `max_inflight` bound (a cancel-all, a heartbeat, an open-order page: one
        request at a time each, which must never wait for a slot that posts held at a slow venue
        keep)."""
        if self._closed:
            raise EntryClosed(kind)
        body = "" if payload is None else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        headers = self._headers(method, path, body)
        async with self._sem if bounded else contextlib.nullcontext():
            if self._closed:  # closed while this request waited for its slot
                raise EntryClosed(kind)
            client = self._http()
            self.inflight += 1
            self.peak_inflight = max(self.peak_inflight, self.inflight)
            t0, wall = time.perf_counter(), time.time()
            status: int | None = None
            try:
                resp = await client.request(method, self.host + path, content=body.encode() if body else None,
                                            params=params, headers=headers)
                status = resp.status_code
            except httpx.HTTPError as exc:
                raise EntryError(kind, f"{type(exc).__name__}: {exc}"[:300], None) from None
            finally:
                self.inflight -= 1
                self.rtts.append(Rtt(wall, kind, n, time.perf_counter() - t0, status))
        try:
            data = resp.json()
        except ValueError:
            data = None
        if status != 200:
            msg = data if not isinstance(data, dict) else (
                data.get("error") or data.get("error_msg") or data.get("errorMsg") or data)
            raise EntryError(kind, str(msg if msg is not None else resp.text[:200]), status, data)
        return data

    async def post(self, orders: list[dict[str, Any]], owner: str, post_only: bool = True) -> list[dict[str, Any]]:
        """One POST /orders of ≤ 15 signed orders (`SignedOrder.body`); the venue's per-order answers."""
        payload = [{"order": o, "owner": owner, "orderType": "GTC", "deferExec": False, "postOnly": post_only}
                   for o in orders]
        res = await self._request("post", "POST", POST_ORDERS, payload, len(orders))
        return res if isinstance(res, list) else []

    async def cancel(self, order_ids: list[str]) -> dict[str, Any]:
        """One DELETE /orders: `{"canceled": [...], "not_canceled": {...}}`."""
        res = await self._request("cancel", "DELETE", CANCEL_ORDERS, order_ids, len(order_ids))
        return res if isinstance(res, dict) else {}

    async def cancel_all(self) -> Any:
        """One DELETE /cancel-all (no body, like the SDK's `cancel_all`): the venue's answer,
        `{"canceled": [...], "not_canceled": {...}}` (read by the broker)."""
        return await self._request("cancel_all", "DELETE", CANCEL_ALL, None, 0, bounded=False)

    async def open_orders_page(self, cursor: str, market: str | None = None, asset_id: str | None = None) -> Any:
        """One GET /data/orders page from `cursor` (the SDK's `get_open_orders` query: market and
        asset_id when given, then next_cursor): the venue's answer, `{"data": [...],
        "next_cursor": ...}` (the broker follows the cursors). Outside the `max_inflight` bound
        like a cancel-all: a stop's verifying count (and a post's look at the venue before its
        re-post) must not wait for a slot that posts held at a slow venue keep; a read is one
        page at a time, and its readers are few."""
        params = {k: v for k, v in (("market", market), ("asset_id", asset_id)) if v}
        params["next_cursor"] = cursor
        return await self._request("open_orders", "GET", OPEN_ORDERS, None, 0, params, bounded=False)

    async def heartbeat(self, heartbeat_id: str) -> Any:
        """One POST /v1/heartbeats with `{"heartbeat_id": heartbeat_id}` (the SDK's `post_heartbeat`
        body, serialized and signed as it does): the venue's answer, `{"heartbeat_id": next}`.
        Refused with the id the venue expects: `EntryError(status 400, body {"error_msg":
        "Invalid Heartbeat ID", "heartbeat_id": ...})` (the broker re-chains)."""
        return await self._request("heartbeat", "POST", HEARTBEAT, {"heartbeat_id": heartbeat_id}, 0, bounded=False)

    def rtt_summary(self, since: float = 0.0) -> dict[str, Any]:
        """p50/p99/max (ms) and count per kind of the round trips recorded since `since` (epoch s)."""
        out: dict[str, Any] = {}
        for kind in ("post", "cancel"):
            xs = sorted(r.rtt for r in self.rtts if r.kind == kind and r.ts >= since)
            if xs:
                out[kind] = {"n": len(xs), "p50_ms": round(xs[len(xs) // 2] * 1e3, 2),
                             "p99_ms": round(xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e3, 2),
                             "max_ms": round(xs[-1] * 1e3, 2)}
        return out
