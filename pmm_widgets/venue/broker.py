"""Narrow order-entry adapter over the official SDK `py-clob-client-v2` (CLOB V2).

Why it exists:
- Orders must be signed by an official Polymarket SDK, never by hand-rolled EIP-712. The SDK
  is synchronous (one module-global `httpx.Client(http2=True)`; each broker's own, see
  Connections below), so every SDK call here runs in
  ONE dedicated worker thread (`ThreadPoolExecutor(max_workers=1)` via `run_in_executor`):
  nothing blocks the event loop, and calls reach the venue in the order they were made. The
  urgent calls (DELETE /cancel-all, the GET /data/orders reads, the order heartbeat) are the
  exception: on the SDK path (`PMM_FAST_ORDERS=false`) they run on a few urgent threads of
  their own, through the same SDK client (`_call`, why sharing it is safe), so a stop's
  cancel-all and its count, and a heartbeat, never wait behind a long read or a held post.
- The engine must never see SDK types or SDK exceptions: results are our own small dataclasses
  and every failure is a `BrokerError` whose text carries the status and the venue's message but
  never a credential (the SDK's `PolyApiException` only holds the response body, and we scrub
  our own secret values from it anyway).

Facts about the SDK (1.2.1) this relies on, read in its source:
- The module-global httpx client has no base URL: every call passes `f"{host}{path}"`, so
  `ClobClient(host="http://127.0.0.1:PORT")` talks to the sandbox; http:// with `http2=True`
  falls back to HTTP/1.1 (no h2c), which aiohttp serves. Its default timeout is 5 s.
- `create_order` always calls `GET /tick-size` once per token (cached forever) even when
  `PartialCreateOrderOptions.tick_size` is given, and `GET /version` once. After a
  `tick_size_change` to a finer grid the cached tick makes it refuse the new price
  ("invalid tick size"), so we refresh its cache with `get_clob_market_info` and retry once.
- `post_order(s)` polls `GET /data/trades` for up to 30 s when a response carries `tradeIDs`
  without `transactionsHashes`. Our quotes are post-only, which never match at placement, so
  that wait cannot happen here.
- `create_or_derive_api_key` tries `POST /auth/api-key` first, then `GET /auth/derive-api-key`;
  the venue answers the create of an existing key with HTTP 400 `Could not create api key`, which
  the SDK logs as an ERROR before it derives: every restart of a live engine logged one. So
  `derive_creds` derives first and creates only after the venue's 400 to the derive (no key yet).
  Whatever the SDK logs as an ERROR during that step (the expected 400, a refused L1 signature, a
  5xx) is said at DEBUG instead (`RefusedDeriveFilter`): the step's failure is the caller's one line.
  A transient failure of the step (429, 5xx, transport, an answer cut short) is retried as the
  other idempotent calls are, derive first again: a create whose answer was lost is then found by
  the derive, and a create is only ever sent after a derive said the venue has no key.

Fast path (issue 12), used whenever the key can be parsed by `venue.signer.OrderSigner`
(`fast=True`, the default; `PMM_FAST_ORDERS=false` keeps the SDK for everything): orders are
signed by the project's signer (byte-identical to the SDK's, the SDK stays the reference) on the
event loop batch by batch, each batch posted as soon as it is signed, and `post_orders`/`cancel` go through `venue.order_entry.OrderEntry` (async,
batches in flight together, bounded by `max_inflight`, round trips recorded). So do `cancel_all`
(DELETE /cancel-all) and `open_orders` (GET /data/orders, every page), built and signed as the
SDK builds them: a stop's cancel-all and its verifying count never wait behind a heartbeat or a
read in flight on the worker thread (they did: up to the HTTP timeout on a slow venue, past a
page kernel's stop bound). So does the order heartbeat (POST /v1/heartbeats, the SDK's body and
L2 signature, the same id chaining and "Invalid Heartbeat ID" re-chain): a beat held behind a long
paged read on that thread could miss the venue's ~10 s dead-man deadline, and the venue then
cancelled every order. Everything else (credentials, trades, balances, scoring, cancel by market)
stays on the SDK worker thread. With `PMM_FAST_ORDERS=false` those urgent calls go through the
SDK, on the urgent threads: they do not wait behind the worker thread either.

Transient failures (issue 17, M1): a 429, a 5xx or a transport failure (timeout, refused or reset
connection: the SDK turns those into `PolyApiException(status None, "Request exception!")`) is
*transient*; anything else fails at once. Idempotent calls (cancels, heartbeats, reads, the
credential step: `derive_creds`) are retried
with full-jitter backoff (`venue.http.backoff_delay`) within a total deadline (PMM_VENUE_RETRIES,
PMM_VENUE_BACKOFF_SEC, PMM_VENUE_BACKOFF_CAP_SEC, PMM_HTTP_DEADLINE_SEC). A post is never retried
blindly, because a post whose answer was lost may have rested: the same *signed* orders (same salt,
so the same order hashes) are re-posted only after the venue's open orders were checked for their
hashes, and a "Duplicated" answer to a re-post means an earlier attempt landed. Orders whose outcome
is still unknown after the retries come back `uncertain` with their hash, and `LiveExchange` tracks
and cancels them: never a duplicate order, never an order we do not know about. The SDK's
broker's SDK client gets the configured timeout (PMM_HTTP_TIMEOUT_SEC; the SDK's default is 5 s).

Connections: the SDK sends through one module-global `httpx.Client` that nobody may close while
another broker uses it, so its keep-alive connections stayed open until the process ended
(`ResourceWarning: unclosed <socket ...>` at exit). It is routed per thread (`SdkHttp`): a
broker's SDK threads send through the broker's own `httpx.Client`, which its `aclose`/`close`
closes, at once or, when an SDK call still runs, as that call ends (never under it: `_release`).

A second backend (`polymarket-client`, the unified SDK) would implement the same methods: it
offers an async client (no worker thread needed) and deposit-wallet (signature type 3)
accounts, which py-clob-client-v2 fails on (the signer/API-key binding issues). Adopting it
means pinning `websockets<16` (and `eth-abi<6`, `eth-utils<6`) for the whole project, because
it cannot be installed next to websockets 17; hence it is not used today.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import SecretStr

from ..domain import Quote
from ..errors import PmmError
from ..logsetup import mask, register_secret
from ..tasks import wait_set
from .http import backoff_delay
from .order_entry import EntryClosed, EntryError, OrderEntry
from .signer import OrderSigner, SignedOrder, SignerError
from .tls import client_context
from .wire import Trade, VenueOrder, WireError, convert, convert_all

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

MAX_POST_BATCH = 15  # POST /orders limit
MAX_CANCEL_BATCH = 3000
URGENT_WORKERS = 4  # the SDK path's urgent threads: a held beat, a cancel-all, the stop's count and a read at once
T = TypeVar("T")


INITIAL_CURSOR, END_CURSOR = "MA==", "LTE="  # GET /data/orders pages (the SDK's constants)
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
DUPLICATED = "Duplicated"  # the venue's answer to an order hash it has already seen


def is_transient(status: int | None) -> bool:
    """A transport failure (no status), a 429 or a 5xx: worth another attempt."""
    return status is None or status in TRANSIENT_STATUSES


class BrokerError(PmmError):
    """A venue or SDK failure, safe to log and show: never contains a credential. `transient`:
    a 429, a 5xx or a transport failure, worth retrying (for a post: after checking the venue)."""

    def __init__(self, op: str, message: str, status: int | None = None, transient: bool = False):
        self.op = op
        self.status = status
        self.message = message
        self.transient = transient
        super().__init__(f"{op}: " + (f"HTTP {status}: " if status is not None else "") + message)


def said_for(op: str, exc: BrokerError) -> str:
    """`exc` as a log line of the call `op` says it: its text names its own op already (`derive: HTTP
    503: ...`), so `op` only when it differs (a `create` that failed inside the `derive` step)."""
    return str(exc) if exc.op == op else f"{op}: {exc}"


class BrokerClosed(BrokerError):
    """A call on a broker (or its order entry) after `aclose`/`close`: nothing was sent. Not
    transient: no retry, and a post refused so is not uncertain."""

    def __init__(self, op: str) -> None:
        super().__init__(op, "the broker is closed: nothing was sent")


@dataclass(frozen=True)
class Creds:
    """L2 API credentials; values are SecretStr so a repr never shows them."""

    api_key: SecretStr
    api_secret: SecretStr
    api_passphrase: SecretStr


@dataclass
class PlaceResult:
    """Outcome of one quote: `order_id` is the venue's order hash (also computed for dry-run)."""

    quote: Quote
    ok: bool
    order_id: str | None = None
    status: str = ""  # live | matched | delayed | unmatched | signed (dry-run)
    error: str = ""
    payload: dict[str, Any] = field(default_factory=dict, repr=False)  # the POST body's order (dry-run)
    uncertain: bool = False  # no definitive answer (timeout, transport error, 5xx): it may rest at the venue


@dataclass
class CancelResult:
    canceled: list[str]
    not_canceled: dict[str, str]

    def add(self, other: CancelResult) -> None:
        self.canceled += other.canceled
        self.not_canceled.update(other.not_canceled)


class CancelError(BrokerError):
    """A cancel in several DELETE /orders batches of which some failed (after their retries):
    `partial` is what the other batches' answers said, so their orders are settled, not left
    open locally; the failed batches' orders are unknown (a later cancel or reconcile settles them)."""

    def __init__(self, failed: BrokerError, partial: CancelResult, batches: int, failures: int):
        super().__init__(failed.op, f"{failures} of {batches} batches failed: {failed.message}", failed.status,
                         failed.transient)
        self.partial = partial


class SdkHttp:
    """Stands in for py-clob-client-v2's module-global `httpx.Client` (`helpers._http_client`:
    SDK 1.2.1 sends every request through its `request` method and uses it for nothing else): a
    request goes through the client bound to the calling thread (a broker's SDK threads: that
    broker's own client, which the broker closes), else through the SDK's own (`default`). One
    process-wide client would keep every broker's keep-alive connections open until the process
    ends (nobody may close it while another broker uses it): the `ResourceWarning: unclosed
    <socket ...>` at exit. SDK 1.2.1 offers no public way to give it a client (its constructor
    takes none, its helpers none); tests/execution/test_sdk_http_contract.py fails, naming what
    changed, when an SDK version stops sending through `_http_client.request`."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self._local = threading.local()

    @property
    def timeout(self) -> Any:
        return self.default.timeout

    @timeout.setter
    def timeout(self, value: Any) -> None:
        self.default.timeout = value

    def bind(self, client: Callable[[], httpx.Client]) -> None:
        """The calling thread's SDK requests go through `client()` (a broker's pool initializer)."""
        self._local.client = client

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:
        source = getattr(self._local, "client", None)
        client = source() if source is not None else self.default
        response: httpx.Response = client.request(*args, **kwargs)
        return response


_SDK_HTTP_LOCK = threading.Lock()


def sdk_http() -> SdkHttp:
    """The SDK's module-global client, routed per thread (`SdkHttp`, installed once)."""
    from py_clob_client_v2.http_helpers import helpers

    with _SDK_HTTP_LOCK:
        current = helpers._http_client
        if not isinstance(current, SdkHttp):
            current = helpers._http_client = SdkHttp(current)
        return current


class RefusedDeriveFilter(logging.Filter):
    """Demotes to DEBUG what the SDK logs as an ERROR during `Broker.derive_creds`, and only on a
    thread inside `expecting()`: the venue's HTTP 400 to `GET /auth/derive-api-key` (this wallet has
    no key yet: it is created next), a refused L1 signature (401), a 5xx, a transport failure. The
    step raises a BrokerError for every failure, which its caller says in one line (the live start,
    `pmm auth derive`): the SDK's own ERROR line was a second one for the same failure. Each record is
    dropped from the SDK's logger and said again on this module's logger at DEBUG (shown with
    `--log-level DEBUG`). Every other line of the SDK passes, and on other threads, or after the step,
    the SDK's ERROR lines stay ERROR lines. SDK 1.2.1 logs a non-200 answer as
    `logger.error("... status=%s url=%s body=%s", status, url, body)` on its `http_helpers.helpers`
    logger; tests/execution/test_broker_api_key_start.py fails when that changes (the ERROR shows)."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        self._local.on = True
        try:
            yield
        finally:
            self._local.on = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(self._local, "on", False) or record.levelno != logging.ERROR:
            return True
        log.debug("broker: credential step: the SDK said: %s", record.getMessage())
        return False


_REFUSED_DERIVE = RefusedDeriveFilter()


def refused_derive_filter() -> RefusedDeriveFilter:
    """The filter, on the SDK's request logger (installed once)."""
    from py_clob_client_v2.http_helpers import helpers

    with _SDK_HTTP_LOCK:
        if _REFUSED_DERIVE not in helpers.logger.filters:
            helpers.logger.addFilter(_REFUSED_DERIVE)
    return _REFUSED_DERIVE


L1_REFUSED = frozenset({401, 403})  # the venue's answers to an L1 signature it does not accept
CHECK_WALLET = ("check that PMM_PRIVATE_KEY, PMM_SIGNATURE_TYPE and PMM_FUNDER are one account's (the key signs "
                "for the funder) and this machine's clock")


# the venue's answer to L2 headers (API key, secret, passphrase) it does not accept: `401 Unauthorized/Invalid
# api key`; not a 403, which is the CLOB's geo-block (shared/polymarket-api.md), no fault of the credentials
L2_REFUSED = frozenset({401})
CHECK_API_CREDS = ("check that PMM_API_KEY, PMM_API_SECRET and PMM_API_PASSPHRASE belong to this wallet ({wallet}), "
                   "or unset all three to derive them from PMM_PRIVATE_KEY; and this machine's clock")


def api_creds_refused(exc: BrokerError, host: str, wallet: str | None, given: bool) -> str | None:
    """What a live start says when the venue refused its L2 API credentials at their first use (the
    reconcile's `open_orders`): one line naming the host and what to check (None: `exc` is no such
    refusal). `given`: the credentials came from PMM_API_KEY/SECRET/PASSPHRASE (else the credential
    step had just derived them). Never a secret: the BrokerError's text is scrubbed, the hint names
    settings, and the wallet's address (the signer's, whom the credentials belong to) is public."""
    if exc.status not in L2_REFUSED:
        return None
    head = f"cannot start live at {host}: the venue refused the API credentials"
    if given:
        return f"{head} ({exc}); {CHECK_API_CREDS.format(wallet=wallet or 'no wallet')}"
    return (f"{head} it had just derived for wallet {wallet} ({exc}); check this machine's clock, "
            "PMM_SIGNATURE_TYPE and PMM_FUNDER, and start again")


def creds_failure(exc: BrokerError) -> str:
    """What a failed credential step (`Broker.derive_creds`: the live start, `pmm auth derive`, the
    app's Start) says after the venue's host: the venue's answer, and what to check when it refused
    the wallet's signature (a wrong key or funder pairing, a wrong signature type, a skewed clock).
    Never a secret: the BrokerError's text is scrubbed, and the hint names settings, not values."""
    if exc.status in L1_REFUSED:
        return f"the venue refused the wallet's signature ({exc}); {CHECK_WALLET}"
    return str(exc)


def call_options(settings: Settings) -> dict[str, Any]:
    """The `Broker` arguments every venue call's timeout and retries come from (`PMM_HTTP_TIMEOUT_SEC`,
    `PMM_VENUE_RETRIES`, the backoff, `PMM_HTTP_DEADLINE_SEC`): the live exchange's broker and
    `pmm auth derive`'s take the same ones."""
    s = settings
    return {"timeout": s.http_timeout_sec, "retries": s.venue_retries, "backoff_base": s.venue_backoff_sec,
            "backoff_cap": s.venue_backoff_cap_sec, "deadline": s.http_deadline_sec}


def _secret(v: SecretStr | str | None) -> str | None:
    if v is None:
        return None
    return v.get_secret_value() if isinstance(v, SecretStr) else v


def tick_str(tick: Decimal) -> str:
    """The SDK's TickSize literal for a Decimal tick ("0.01", "0.001", ...)."""
    return format(tick.normalize(), "f")


class Broker:
    """Order entry through py-clob-client-v2 in one worker thread."""

    def __init__(
        self,
        host: str,
        chain_id: int,
        private_key: SecretStr | str | None,
        creds: Creds | None = None,
        signature_type: int = 0,
        funder: str | None = None,
        *,
        fast: bool = True,
        max_inflight: int = 8,
        timeout: float = 10.0,
        retries: int = 3,
        backoff_base: float = 0.2,
        backoff_cap: float = 2.0,
        deadline: float = 30.0,
    ) -> None:
        from py_clob_client_v2 import ApiCreds, ClobClient

        self.host = host.rstrip("/")
        self._pk = _secret(private_key)
        register_secret(self._pk)
        # the broker's own HTTP client for its SDK calls (as the SDK's: HTTP/2 when https), bound to
        # its threads, opened by the first of them (`_sdk_client`: its TLS setup stays off the event
        # loop), closed by the last call out after `aclose`/`close` (`_release`)
        self._http: httpx.Client | None = None
        self._timeout = timeout
        self._calls_lock = threading.Lock()
        self._calls = 0  # SDK calls running on the broker's threads
        bind = functools.partial(sdk_http().bind, self._sdk_client)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pmm-broker", initializer=bind)
        # the SDK path's cancel-all, open-order reads and heartbeats: never behind the worker's call
        self._urgent = ThreadPoolExecutor(max_workers=URGENT_WORKERS, thread_name_prefix="pmm-broker-urgent",
                                          initializer=bind)
        api = None
        if creds is not None:
            self._register(creds)
            api = ApiCreds(_secret(creds.api_key), _secret(creds.api_secret), _secret(creds.api_passphrase))
        self._client = ClobClient(self.host, chain_id, key=self._pk, creds=api,
                                  signature_type=signature_type, funder=funder)
        self.creds = creds
        self.chain_id = chain_id
        self.signature_type = signature_type
        self._hb_id = ""
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.deadline = deadline
        self.retried = 0  # attempts repeated after a transient failure
        self.failures = 0  # calls that failed for good (after their retries)
        self.dedup_hits = 0  # re-posts avoided or refused because the order was already at the venue
        self._closed = False  # `aclose`/`close` called: every call from now on raises BrokerClosed
        self._no_more_posts = asyncio.Event()  # `stop_posting`: a post under way sends no new attempt
        set_sdk_timeout(timeout)
        self._signer: OrderSigner | None = None
        self._entry: OrderEntry | None = None
        if fast and self._pk:
            try:
                self._signer = OrderSigner(self._pk, chain_id, signature_type, funder)
            except SignerError as exc:  # the SDK path reports the problem at the first order
                log.warning("broker: project signer unavailable (%s); signing through the SDK", exc)
        if self._signer is not None:
            self._entry = OrderEntry(self.host, self._signer.address, self._entry_creds,
                                     max_inflight=max_inflight, timeout=timeout)

    # ------------------------------------------------------------------ plumbing
    @property
    def address(self) -> str | None:
        """The signer EOA (None without a private key)."""
        return self._client.signer.address() if self._client.signer is not None else None

    @property
    def funder(self) -> str | None:
        funder: str | None = self._client.builder.funder
        return funder

    @property
    def can_sign(self) -> bool:
        return self._client.signer is not None

    @property
    def has_creds(self) -> bool:
        return self._client.creds is not None

    def _register(self, creds: Creds) -> None:
        for v in (creds.api_key, creds.api_secret, creds.api_passphrase):
            register_secret(_secret(v))

    def _scrub(self, text: str) -> str:
        text = mask(text)
        c = self._client.creds if hasattr(self, "_client") else None
        for s in (self._pk, *((c.api_secret, c.api_passphrase, c.api_key) if c else ())):
            if s and len(s) >= 4:
                text = text.replace(s, "***")
        return text

    def _error(self, op: str, exc: BaseException) -> BrokerError:
        from py_clob_client_v2.exceptions import PolyApiException, PolyException

        if isinstance(exc, PolyApiException):
            msg = exc.error_msg
            if isinstance(msg, dict):
                msg = msg.get("error") or msg.get("error_msg") or msg.get("errorMsg") or str(msg)
            st = exc.status_code
            return BrokerError(op, self._scrub(str(msg)), st, transient=is_transient(st))
        if isinstance(exc, PolyException):
            return BrokerError(op, self._scrub(str(exc.msg)))
        return BrokerError(op, self._scrub(f"{type(exc).__name__}: {exc}"),
                           transient=isinstance(exc, (httpx.TransportError, TimeoutError)))

    def _entry_error(self, op: str, exc: EntryError) -> BrokerError:
        """An order-entry failure as the broker's: a closed entry's BrokerClosed, else the status
        and the venue's (scrubbed) text, transient as `is_transient` says."""
        if isinstance(exc, EntryClosed):
            return BrokerClosed(op)
        return BrokerError(op, self._scrub(exc.message), exc.status, transient=is_transient(exc.status))

    async def _run(self, op: str, fn: Callable[[], T], urgent: bool = False) -> T:
        """`fn()` (SDK calls) on the worker thread, or on an urgent thread (`urgent`: see `_call`)."""
        if self._closed:
            raise BrokerClosed(op)

        def counted() -> T:
            with self._calls_lock:
                if self._closed:  # closed after it was queued: nothing sent
                    raise BrokerClosed(op)
                self._calls += 1
            try:
                return fn()
            finally:
                self._left()

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._urgent if urgent else self._pool, counted)
        except BrokerError:
            raise
        except Exception as exc:
            raise self._error(op, exc) from None

    async def _retrying(self, op: str, fn: Callable[[], Awaitable[T]], retry: bool = True,
                        within: float | None = None) -> T:
        """`await fn()` with retries of transient failures (idempotent calls only), full-jitter
        backoff and a total deadline over all attempts (`within` seconds when shorter)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.deadline if within is None else min(self.deadline, within))
        attempt = 0
        while True:
            try:
                return await fn()
            except BrokerError as exc:
                attempt += 1
                delay = self._retry_delay(exc, attempt) if retry else None
                if delay is None or loop.time() + delay >= end:
                    self.failures += 1
                    raise
                self.retried += 1
                log.info("%s; retry %d in %.2fs", said_for(op, exc), attempt, delay)
                await asyncio.sleep(delay)

    async def _entry_call(self, op: str, fn: Callable[[], Awaitable[T]], retry: bool = True,
                          within: float | None = None) -> T:
        """An idempotent order-entry request, its `EntryError` a BrokerError, retried (see `_retrying`)."""
        async def attempt() -> T:
            try:
                return await fn()
            except EntryError as exc:
                raise self._entry_error(op, exc) from None
        return await self._retrying(op, attempt, retry, within)

    @property
    def _entry_ready(self) -> OrderEntry | None:
        """The order entry when it can send an L2 request now (the fast path and credentials)."""
        return self._entry if self._entry is not None and self.has_creds else None

    async def _call(self, op: str, fn: Callable[[], T], retry: bool = True, within: float | None = None,
                    urgent: bool = False) -> T:
        """An idempotent SDK call in the worker thread, retried (see `_retrying`). `urgent` (the SDK
        path's cancel-all, open-order reads and heartbeats): on one of the urgent threads instead,
        never queued behind the worker thread's call in flight (a long paged read, a post a slow
        venue holds). They share the one `ClobClient`: its `cancel_all`, `get_open_orders` and
        `post_heartbeat` only read what it was built with (host, signer, creds; `use_server_time`
        off), none touches its caches (tick sizes, neg risk, fees, version: `create_order`'s), and
        they send through one `httpx.Client` (the broker's, `SdkHttp`), which "can be shared between
        threads" (httpx's own docstring; httpcore locks its pool and each HTTP/2 connection). A second
        `ClobClient` would send through that same client anyway (the SDK's is module-global)."""
        return await self._retrying(op, lambda: self._run(op, fn, urgent), retry, within)

    def _retry_delay(self, exc: BrokerError, attempt: int) -> float | None:
        """Seconds before attempt `attempt + 1`, or None when `exc` must not be retried. A 429
        waits at least one backoff step (the SDK hides the Retry-After header from us)."""
        if not exc.transient or attempt > self.retries:
            return None
        delay = backoff_delay(attempt - 1, self.backoff_base, self.backoff_cap)
        return max(delay, self.backoff_base) if exc.status == 429 else delay

    async def _already_at_venue(self, ids: Sequence[str]) -> set[str]:
        """Which of these order hashes the venue holds open (one open-orders read, no retry; an
        empty set when it fails: the re-post is still safe, the venue refuses a hash it has seen)."""
        try:
            venue = {vo.id for vo in await self.open_orders(retry=False)}
        except BrokerError:
            return set()
        return {i for i in ids if i in venue}

    def _sdk_client(self) -> httpx.Client:
        """The broker's SDK client, opened at its first request (on one of the broker's threads;
        after the close only for a call already under way, whose end closes it)."""
        with self._calls_lock:
            if self._http is None:
                if self._closed and not self._calls:
                    raise BrokerClosed("request")
                # the process's HTTP/2 TLS context (venue/tls.py), as every other client of ours
                self._http = httpx.Client(http2=True, timeout=httpx.Timeout(self._timeout),
                                          verify=client_context(http2=True))
            return self._http

    def _close_http(self) -> None:
        with self._calls_lock:
            client, self._http = self._http, None
        if client is not None:
            client.close()

    def _left(self) -> None:
        """An SDK call ended: the last one out after the close closes the broker's HTTP client."""
        with self._calls_lock:
            self._calls -= 1
            last = self._closed and self._calls == 0
        if last:
            self._close_http()

    def _release(self) -> None:
        """The one exit path of the broker's SDK connections: closed now when no SDK call runs,
        else by the last one when it ends (`_left`), never under a call: closing its socket from
        another thread would not wake a thread blocked reading it (Linux), and the call may be a
        post whose answer alone tells whether its orders rest."""
        with self._calls_lock:
            self._closed = True
            idle = self._calls == 0
        if idle:
            self._close_http()

    def close(self) -> None:
        """Stop the worker threads (pending calls finish first) and close the connections."""
        for pool in (self._pool, self._urgent):
            pool.shutdown(wait=True, cancel_futures=False)
        self._release()

    async def aclose(self) -> None:
        """Close the async order-entry client, then the worker thread, without waiting for a call
        in flight on it: nobody awaits it any more (its caller was cancelled), and a slow venue
        holding it (a heartbeat) held the stop's DB flush and lease release until its answer or
        the HTTP timeout. The thread ends once that call does, and closes the broker's SDK
        connections then (`_release`). Any call after it raises BrokerClosed (the order entry's
        too: it never reopens an HTTP client)."""
        self._closed = True
        if self._entry is not None:
            await self._entry.aclose()
        for pool in (self._pool, self._urgent):
            pool.shutdown(wait=False, cancel_futures=True)
        self._release()

    @property
    def fast(self) -> bool:
        """Orders are signed by the project's signer and sent by the async order entry."""
        return self._entry is not None

    @property
    def order_entry(self) -> OrderEntry | None:
        return self._entry

    def _entry_creds(self) -> tuple[str, str, str] | None:
        c = self._client.creds
        return None if c is None else (c.api_key, c.api_secret, c.api_passphrase)

    # ------------------------------------------------------------------ credentials
    async def derive_creds(self) -> Creds:
        """Derive the L2 credentials of the private key (L1), or create them when the venue has none
        yet, and use them from now on. The one path of `pmm auth derive` and the live start.

        Derive first: the venue refuses the create of an existing key (HTTP 400 `Could not create
        api key`), which the SDK's `create_or_derive_api_key` (create first) logs as an ERROR on every
        restart. A first-ever start gets the derive's 400 (`Could not derive api key!`), logged here
        at INFO, and creates the key; a create refused with a 400 (another client created it
        meanwhile) derives once more. Any other failure (401 L1 refused, 5xx, transport) is a
        BrokerError: op `derive`, or `create` when the create failed; the SDK's ERROR line for it is
        said at DEBUG only (`RefusedDeriveFilter`): the caller says the failure in one line.

        Retries: a transient failure (429, 5xx, transport, an answer cut short) repeats the whole
        step, derive first, as `_call` repeats the other idempotent calls (PMM_VENUE_RETRIES, the
        backoff, PMM_HTTP_DEADLINE_SEC). That is what makes the create safe to repeat: a create whose
        answer was lost may have made the key, and the next attempt's derive then finds it; only when
        that derive says "no key" is a create sent again (and a duplicate create would be the venue's
        400, which derives). A refused signature (401) or any other answer is not retried."""
        from py_clob_client_v2.exceptions import PolyApiException

        if not self.can_sign:
            raise BrokerError("derive", "a private key is needed to derive API credentials")
        quiet = refused_derive_filter()

        def ask(op: str, fn: Callable[[], Any]) -> Any:
            """One SDK call of the step; an answer it could not read is a transient BrokerError."""
            try:
                return fn()
            except TypeError as exc:  # a body cut short is not JSON: the SDK indexed its text
                raise BrokerError(op, self._scrub(f"the venue's answer could not be read ({exc})"),
                                  transient=True) from None

        def work() -> Creds:
            with quiet.expecting():
                try:
                    api = ask("derive", self._client.derive_api_key)
                except PolyApiException as exc:
                    if exc.status_code != 400:
                        raise
                    log.info("broker: no API key of %s at %s yet (%s): creating one", self.address, self.host,
                             self._error("derive", exc))
                    try:
                        api = ask("create", self._client.create_api_key)
                    except BrokerError:
                        raise
                    except PolyApiException as cexc:
                        if cexc.status_code != 400:
                            raise self._error("create", cexc) from None
                        api = ask("derive", self._client.derive_api_key)  # created by another client since
                    except Exception as cexc:  # noqa: BLE001 - said as the create's failure
                        raise self._error("create", cexc) from None
            if not api.api_key:
                raise BrokerError("derive", "the venue answered an empty API key")
            creds = Creds(SecretStr(api.api_key), SecretStr(api.api_secret), SecretStr(api.api_passphrase))
            self._register(creds)
            self._client.set_api_creds(api)
            return creds

        self.creds = await self._call("derive", work)
        return self.creds

    # ------------------------------------------------------------------ orders
    def _build(self, quote: Quote, tick: Decimal, neg_risk: bool) -> Any:
        from py_clob_client_v2 import OrderArgs, PartialCreateOrderOptions
        from py_clob_client_v2.exceptions import PolyException

        args = OrderArgs(token_id=quote.token_id, price=float(quote.price), size=float(quote.size),
                         side=quote.side.value)
        opts = PartialCreateOrderOptions(tick_size=tick_str(tick), neg_risk=neg_risk)
        try:
            return self._client.create_order(args, opts)
        except PolyException as exc:
            if "invalid tick size" not in str(getattr(exc, "msg", "")):
                raise
            self._client.get_clob_market_info(quote.market)  # refresh the SDK's cached tick
            return self._client.create_order(args, opts)

    def _order_id(self, order: Any, neg_risk: bool) -> str:
        """The order hash the venue will answer with (the SDK's own EIP-712 hashing)."""
        from py_clob_client_v2.config import get_contract_config
        from py_clob_client_v2.order_utils.exchange_order_builder_v2 import ExchangeOrderBuilderV2

        cfg = get_contract_config(self.chain_id)
        exchange = cfg.neg_risk_exchange_v2 if neg_risk else cfg.exchange_v2
        b = ExchangeOrderBuilderV2(exchange, self.chain_id, self._client.signer)
        order_hash: str = b.build_order_hash(b.build_order_typed_data(order))
        return order_hash

    async def post_orders(self, items: Sequence[tuple[Quote, Decimal, bool]], dry_run: bool = False) -> list[PlaceResult]:
        """Sign each (quote, tick size, neg-risk) as a post-only GTC limit order and post them in
        batches of at most 15. One result per item, in order; a failure of one order (or of a
        whole batch request) never raises. `dry_run`: build and sign only, post nothing."""
        from py_clob_client_v2 import OrderType, PostOrdersV2Args
        from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2

        if not self.can_sign:
            raise BrokerError("post_orders", "a private key is needed to sign orders")
        if not dry_run and not self.has_creds:
            raise BrokerError("post_orders", "API credentials are needed to post orders")
        if self._signer is not None:
            return await self._post_fast(items, dry_run)
        results: list[PlaceResult] = []
        for i in range(0, len(items), MAX_POST_BATCH):
            chunk = list(items[i:i + MAX_POST_BATCH])

            def sign(chunk: list[tuple[Quote, Decimal, bool]] = chunk) -> list[PlaceResult | tuple[Quote, Any, str]]:
                out: list[PlaceResult | tuple[Quote, Any, str]] = []
                for q, tick, neg in chunk:
                    try:
                        order = self._build(q, tick, neg)
                    except Exception as exc:  # noqa: BLE001 - one bad order must not sink the batch
                        err = self._error("sign", exc)
                        if err.transient:  # the SDK's GET /tick-size failed: sign the chunk again
                            raise err from None
                        out.append(PlaceResult(q, False, error=err.message))
                        continue
                    if dry_run:
                        owner = self._client.creds.api_key if self._client.creds else ""
                        payload = order_to_json_v2(order, owner, OrderType.GTC, True, False)
                        payload.pop("owner", None)
                        out.append(PlaceResult(q, True, self._order_id(order, neg), "signed", payload=payload["order"]))
                    else:
                        out.append((q, order, self._order_id(order, neg)))
                return out

            try:
                signed = await self._call("sign", sign)  # nothing of this batch was posted yet: safe to retry
            except BrokerError as exc:  # this batch fails alone: the batches already posted keep their results
                results.extend(PlaceResult(q, False, error=exc.message) for q, _, _ in chunk)
                continue
            pending = {k: v for k, v in enumerate(signed) if not isinstance(v, PlaceResult)}
            if pending:

                async def post(orders: list[Any]) -> list[dict[str, Any]]:
                    def work() -> Any:
                        return self._client.post_orders(
                            [PostOrdersV2Args(order=o, orderType=OrderType.GTC) for o in orders], post_only=True)
                    resp = await self._run("post_orders", work)
                    return resp if isinstance(resp, list) else []

                done = await self._post_idempotent(pending, post)
                for k, r in done.items():
                    signed[k] = r
            results.extend(r for r in signed if isinstance(r, PlaceResult))
        return results

    def stop_posting(self) -> None:
        """A stop (or the circuit's probe, which waits as a stop does, or a pause): the posts under way send no
        new attempt (their retry ends at once, with what they have: a refused batch refused, a lost
        answer uncertain under the orders' hashes). A request already sent is still waited for:
        only its answer tells whether orders rest. Posts started later retry as usual: the probe's
        call used to end every retry of the session (a post after the circuit closed gave up at
        its first 429 or lost answer)."""
        self._no_more_posts.set()
        self._no_more_posts = asyncio.Event()  # (each post holds the one of its start)

    async def _post_idempotent(self, orders: dict[int, tuple[Quote, Any, str]],
                               post: Callable[[list[Any]], Awaitable[list[dict[str, Any]]]]) -> dict[int, PlaceResult]:
        """Post signed orders keyed by position ((quote, signed order, its hash)). A transient
        failure is retried with the *same* signed orders, after checking the venue's open orders
        for their hashes; "Duplicated" on a re-post means an earlier attempt landed. What is still
        unanswered after the retries comes back `uncertain` with its hash."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.deadline
        stop = self._no_more_posts  # set by `stop_posting` while this post runs
        out: dict[int, PlaceResult] = {}
        left = dict(orders)
        attempt = 0
        while left:
            keys = list(left)
            try:
                resp = await post([left[k][1] for k in keys])
            except BrokerError as exc:
                attempt += 1
                delay = self._retry_delay(exc, attempt)

                def give_up(exc: BrokerError = exc, keys: list[int] = keys) -> dict[int, PlaceResult]:
                    self.failures += 1
                    for k in keys:
                        q, _, oid = left[k]
                        unsure = exc.transient and exc.status != 429  # a 429 was refused, not lost
                        out[k] = PlaceResult(q, False, oid if unsure else None, error=exc.message, uncertain=unsure)
                    return out

                if delay is None or loop.time() + delay >= end or stop.is_set():
                    return give_up()
                self.retried += 1
                log.info("%s; checking the venue for %d order(s), retry %d in %.2fs",
                         said_for("post_orders", exc), len(keys), attempt, delay)
                if await wait_set(stop, delay):
                    return give_up()  # a stop came during the pause: no new attempt
                there = await self._already_at_venue([left[k][2] for k in keys])
                for k in keys:
                    if left[k][2] in there:
                        q, _, oid = left.pop(k)
                        out[k] = PlaceResult(q, True, oid, "live")
                        self.dedup_hits += 1
                if stop.is_set() and left:  # a stop during that read: no new attempt either
                    return give_up(keys=[k for k in keys if k in left])
                continue
            for n, k in enumerate(keys):
                q, _, oid = left.pop(k)
                r = resp[n] if n < len(resp) and isinstance(resp[n], dict) else None
                if r is None or (r.get("success") and not r.get("orderID")):
                    # the venue took the request but its answer says nothing definite of this order
                    # (an answer cut short or not JSON, a success without an id): it may rest, so
                    # it is uncertain under its hash, tracked and cancelled, never called refused
                    out[k] = PlaceResult(q, False, oid, error="the venue's answer says nothing definite of this order",
                                         uncertain=True)
                    continue
                ok = bool(r.get("success")) and bool(r.get("orderID"))
                err = "" if ok else self._scrub(str(r.get("errorMsg") or "no response"))
                if not ok and attempt and DUPLICATED in err:  # an earlier attempt landed
                    out[k] = PlaceResult(q, True, oid, "live")
                    self.dedup_hits += 1
                    continue
                out[k] = PlaceResult(q, ok, r.get("orderID") or None, str(r.get("status") or ""), err)
        return out

    def _sign_chunk(self, chunk: Sequence[tuple[Quote, Decimal, bool]]) -> list[SignedOrder | str]:
        assert self._signer is not None
        out: list[SignedOrder | str] = []
        for q, tick, neg in chunk:
            try:
                out.append(self._signer.sign(q.token_id, q.side, q.price, q.size, tick, neg))
            except (ValueError, TypeError, KeyError, ArithmeticError) as exc:  # SignerError is a ValueError
                out.append(self._error("sign", exc).message)
        return out

    async def _post_fast(self, items: Sequence[tuple[Quote, Decimal, bool]], dry_run: bool) -> list[PlaceResult]:
        """Sign each batch of 15 on the event loop and post it at once: batch k is on the wire while
        batch k+1 is signed; all batches are in flight together (bounded by the order entry's
        semaphore). Signing is ~50 µs an order (0.8 ms a batch), less than a hop to a signing
        thread costs on a busy host (the GIL hand-over measured 1-4 ms a hop under load; the
        signing is mostly Python, so a thread never freed the loop anyway)."""
        assert self._entry is not None
        owner = self._client.creds.api_key if self._client.creds else ""
        entry = self._entry

        async def post(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
            try:
                return await entry.post(bodies, owner)
            except EntryError as exc:
                raise self._entry_error("post_orders", exc) from None

        async def send(out: list[PlaceResult], todo: dict[int, tuple[Quote, Any, str]]) -> list[PlaceResult]:
            for idx, r in (await self._post_idempotent(todo, post)).items():
                out[idx] = r
            return out

        parts: list[asyncio.Future[list[PlaceResult]]] = []
        try:
            for i in range(0, len(items), MAX_POST_BATCH):
                chunk = list(items[i:i + MAX_POST_BATCH])
                out: list[PlaceResult] = []
                todo: dict[int, tuple[Quote, Any, str]] = {}
                for (q, _, _), so in zip(chunk, self._sign_chunk(chunk)):
                    if isinstance(so, str):
                        out.append(PlaceResult(q, False, error=so))
                        continue
                    out.append(PlaceResult(q, True, so.order_id, "signed", payload=so.body))
                    todo[len(out) - 1] = (q, so.body, so.order_id)
                if dry_run or not todo:
                    parts.append(asyncio.get_running_loop().create_future())
                    parts[-1].set_result(out)
                    continue
                parts.append(asyncio.ensure_future(send(out, todo)))
                await asyncio.sleep(0)  # the batch's request starts before the next batch is signed
            done = await asyncio.gather(*parts)
        except BaseException:
            for f in parts:
                f.cancel()
            raise
        return [r for part in done for r in part]

    # ------------------------------------------------------------------ cancels
    @staticmethod
    def _cancel_result(resp: Any) -> CancelResult:
        """The venue's cancel answer; what it does not say in the documented shape (`canceled` a
        list of ids, `not_canceled` an object id -> reason) is not known cancelled or gone: those
        orders stay tracked (a later cancel or reconcile settles them), never a crash past the
        callers' `except BrokerError` (a `not_canceled` list raised AttributeError)."""
        if not isinstance(resp, dict):
            return CancelResult([], {})
        done, gone = resp.get("canceled"), resp.get("not_canceled")
        if not isinstance(done, list | None) or not isinstance(gone, dict | None):
            log.warning("venue cancel: an answer of another shape (canceled: %s, not_canceled: %s) read as nothing "
                        "known cancelled", type(done).__name__, type(gone).__name__)
        return CancelResult([str(x) for x in done] if isinstance(done, list) else [],
                            {str(k): str(v) for k, v in gone.items()} if isinstance(gone, dict) else {})

    async def cancel(self, order_ids: Sequence[str]) -> CancelResult:
        """Cancel by venue order id: one DELETE /order, or DELETE /orders batches."""
        from py_clob_client_v2 import OrderPayload

        ids = list(order_ids)
        if not ids:
            return CancelResult([], {})
        chunks = [ids[i:i + MAX_CANCEL_BATCH] for i in range(0, len(ids), MAX_CANCEL_BATCH)]
        if self._entry is not None and self.has_creds:
            return await self._cancel_fast(chunks)
        if len(ids) == 1:
            return self._cancel_result(await self._call("cancel", lambda: self._client.cancel_order(OrderPayload(orderID=ids[0]))))
        answers: list[Any] = []
        for chunk in chunks:
            try:
                answers.append(await self._call("cancel", functools.partial(self._client.cancel_orders, chunk)))
            except BrokerError as exc:
                answers.append(exc)
        return self._cancel_results(answers)

    async def _cancel_fast(self, chunks: list[list[str]]) -> CancelResult:
        """DELETE /orders batches of ≤ 3000, all in flight together."""
        assert self._entry is not None
        entry = self._entry

        async def one(chunk: list[str]) -> Any:
            return await self._entry_call("cancel", lambda: entry.cancel(chunk))  # a cancel is idempotent

        answers = await asyncio.gather(*(one(c) for c in chunks), return_exceptions=True)
        return self._cancel_results(answers)

    def _cancel_results(self, answers: Sequence[Any]) -> CancelResult:
        """The batches' answers in one result; a failed batch (its BrokerError in `answers`)
        raises CancelError carrying the other batches' result, so one failure never hides what
        the others cancelled. Any other exception is re-raised as it is."""
        total = CancelResult([], {})
        failed: list[BrokerError] = []
        for a in answers:
            if isinstance(a, BrokerError):
                failed.append(a)
            elif isinstance(a, BaseException):
                raise a
            else:
                total.add(self._cancel_result(a))
        if failed:
            if len(answers) == 1:
                raise failed[0]
            raise CancelError(failed[0], total, len(answers), len(failed))
        return total

    async def cancel_market(self, market: str | None = None, asset_id: str | None = None) -> CancelResult:
        from py_clob_client_v2 import OrderMarketCancelParams

        p = OrderMarketCancelParams(market=market, asset_id=asset_id)
        return self._cancel_result(await self._call("cancel_market", lambda: self._client.cancel_market_orders(p)))

    async def cancel_all(self) -> CancelResult:
        """DELETE /cancel-all, retried like every cancel: through the order entry on the fast path,
        else the SDK's `cancel_all` on an urgent thread; never behind a call in flight on the SDK
        worker thread."""
        entry = self._entry_ready
        if entry is not None:
            return self._cancel_result(await self._entry_call("cancel_all", entry.cancel_all))
        return self._cancel_result(await self._call("cancel_all", self._client.cancel_all, urgent=True))

    # ------------------------------------------------------------------ account data
    def _decoded(self, op: str, rows: Any, typ: type[T], whole: bool = False) -> list[T]:
        """The SDK's rows (dicts) as typed venue objects; a row without the documented shape is
        logged (the field named) and skipped, never taken for something else. `whole`: such a row
        fails the read instead (BrokerError), for a list whose every row must be known."""
        if not isinstance(rows, list):
            raise BrokerError(op, f"the venue answered {type(rows).__name__}, not a list")
        out, errors = convert_all(rows, typ, op)
        if errors and whole:
            raise BrokerError(op, f"{len(errors)} of {len(rows)} rows unreadable ({errors[0].removeprefix(op + ': ')}): "
                                  f"the {op.replace('_', ' ')} are unknown")
        for e in errors[:5]:
            log.warning("venue %s: %s", op, e)
        return out

    async def open_orders(self, market: str | None = None, asset_id: str | None = None,
                          retry: bool = True) -> list[VenueOrder]:
        """Every open order (the cursor pages MA== ... LTE=, all followed). A row that cannot be
        read fails the whole read: an order left out of the list would be taken for one the venue
        no longer holds (reconcile would stop tracking it while it rests, the circuit breaker's
        probe would count the venue clean). Through the order entry on the fast path, else the
        SDK's `get_open_orders` on an urgent thread: never behind the worker thread's call."""
        entry = self._entry_ready
        if entry is not None:
            rows = await self._entry_call("open_orders", lambda: self._open_order_pages(entry, market, asset_id),
                                          retry=retry)
        else:
            from py_clob_client_v2 import OpenOrderParams

            p = OpenOrderParams(market=market, asset_id=asset_id)
            rows = await self._call("open_orders", lambda: self._client.get_open_orders(p), retry=retry, urgent=True)
        return self._decoded("open_orders", rows, VenueOrder, whole=True)

    @staticmethod
    async def _open_order_pages(entry: OrderEntry, market: str | None, asset_id: str | None) -> list[Any]:
        """Every GET /data/orders page's rows, cursor MA== to LTE= (the SDK's `get_open_orders`
        loop). A page without `data` (a list) and `next_cursor` fails the read, not retried (the
        SDK's own KeyError)."""
        rows: list[Any] = []
        cursor = INITIAL_CURSOR
        while cursor != END_CURSOR:
            page = await entry.open_orders_page(cursor, market, asset_id)
            data = page.get("data") if isinstance(page, dict) else None
            nxt = page.get("next_cursor") if isinstance(page, dict) else None
            if not isinstance(data, list) or not isinstance(nxt, str):
                raise BrokerError("open_orders", f"a page of the venue's answer without data and next_cursor "
                                                 f"({type(page).__name__})")
            rows.extend(data)
            cursor = nxt
        return rows

    async def trades(self, after: int | None = None, market: str | None = None) -> list[Trade]:
        """Every trade of the account since `after` (epoch s), all pages."""
        from py_clob_client_v2 import TradeParams

        p = TradeParams(after=after, market=market)
        return self._decoded("trades", await self._call("trades", lambda: self._client.get_trades(p)), Trade)

    async def token_balance(self, token_id: str) -> Decimal:
        """The wallet's shares of one outcome token (`GET /balance-allowance?asset_type=CONDITIONAL`,
        6-decimal base units). An answer without a readable balance is a BrokerError, never 0 shares."""
        from py_clob_client_v2.clob_types import AssetType, BalanceAllowanceParams

        p = BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id=token_id)
        resp = await self._call("balance_allowance", lambda: self._client.get_balance_allowance(p))
        raw = resp.get("balance") if isinstance(resp, dict) else None
        if raw is None:
            raise BrokerError("balance_allowance", f"no balance in the venue's answer ({type(resp).__name__})")
        try:
            shares = Decimal(str(raw)) / 1_000_000
        except ArithmeticError:  # decimal.InvalidOperation
            shares = Decimal("NaN")
        if not shares.is_finite():
            raise BrokerError("balance_allowance", f"the venue's balance {raw!r} is not a number")
        return shares

    async def orders_scoring(self, order_ids: Sequence[str]) -> dict[str, bool]:
        """POST /orders-scoring: which of these orders earn liquidity rewards now. One attempt, not
        retried: the quote cycle awaits it at each reward sample, and the answer is only a check of
        our own estimate (a retry loop would hold the quotes still for up to the broker's deadline).
        Only a JSON boolean is an answer: an order whose value is anything else (null, the text
        "false") is left out, as unknown, never taken for scoring."""
        from py_clob_client_v2.clob_types import OrdersScoringParams

        p = OrdersScoringParams(orderIds=list(order_ids))
        resp = await self._call("orders_scoring", lambda: self._client.are_orders_scoring(p), retry=False)
        if not isinstance(resp, dict):
            return {}
        odd = [k for k, v in resp.items() if not isinstance(v, bool)]
        if odd:
            log.warning("venue orders_scoring: %d value(s) not a boolean (first %r: %r) left out as unknown",
                        len(odd), odd[0], resp[odd[0]])
        return {str(k): v for k, v in resp.items() if isinstance(v, bool)}

    async def rewards_paid(self, date: str) -> Any:
        """GET /rewards/user?date= (the SDK's `get_earnings_for_user_for_day`, every page): the
        liquidity rewards paid for one day, rows per market (`economics.payouts.parse_paid`)."""
        return await self._call("rewards_user", lambda: self._client.get_earnings_for_user_for_day(date))

    async def rebates_paid(self, date: str) -> Any:
        """GET /rebates/current?date=&maker_address= (no authentication; Polymarket's API reference
        documents it, py-clob-client-v2 1.2.1 has no call for it): the maker rebates paid for one
        day, rows per market. The maker is the funder (proxy wallet) when there is one."""
        from py_clob_client_v2.http_helpers.helpers import get

        maker = self.funder or self.address
        if not maker:
            raise BrokerError("rebates_current", "no maker address (no private key)")
        url = f"{self._client.host}/rebates/current"
        return await self._call("rebates_current", lambda: get(url, params={"date": date, "maker_address": maker}))

    async def get_order(self, order_id: str) -> VenueOrder:
        body = await self._call("get_order", lambda: self._client.get_order(order_id))
        try:
            return convert(body, VenueOrder, "get_order")
        except WireError as exc:
            raise BrokerError("get_order", str(exc)) from None

    async def heartbeat(self, within: float | None = None) -> str:
        """One order heartbeat (POST /v1/heartbeats) chaining the id the venue returned; on
        "Invalid Heartbeat ID" (e.g. after a restart) resync to the id the venue expects.
        `within`: retries end after that many seconds (the beat period: the venue's dead-man
        timer cancels everything 10 s after the last accepted beat, so a retry after that is
        late, and the next beat is due anyway). On the fast path with credentials it goes through
        the order entry, else through the SDK on an urgent thread: never behind a call in flight
        on the SDK worker thread."""
        from py_clob_client_v2.exceptions import PolyApiException

        def chained(r: Any) -> str:
            self._hb_id = str((r or {}).get("heartbeat_id") or "") if isinstance(r, dict) else ""
            return self._hb_id

        entry = self._entry_ready
        if entry is not None:
            async def beat() -> str:
                try:
                    r = await entry.heartbeat(self._hb_id)
                except EntryError as exc:
                    expected = exc.body.get("heartbeat_id") if isinstance(exc.body, dict) else None
                    if exc.status != 400 or not expected:
                        raise
                    r = await entry.heartbeat(str(expected))
                return chained(r)

            return await self._entry_call("heartbeat", beat, within=within)

        def work() -> str:
            try:
                r = self._client.post_heartbeat(self._hb_id)
            except PolyApiException as exc:
                body = exc.error_msg if isinstance(exc.error_msg, dict) else {}
                expected = body.get("heartbeat_id")
                if exc.status_code != 400 or not expected:
                    raise
                r = self._client.post_heartbeat(str(expected))
            return chained(r)

        return await self._call("heartbeat", work, within=within, urgent=True)


def set_sdk_timeout(seconds: float) -> None:
    """The SDK's own module-global `httpx.Client` (default timeout 5 s) gets ours: what a thread
    no broker bound sends through (`SdkHttp`; a broker's own client has its timeout)."""
    sdk_http().timeout = httpx.Timeout(seconds)
