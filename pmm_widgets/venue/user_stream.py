"""Authenticated user websocket (`/ws/user`): our order and trade tape.

Why our own client (websockets 17) and not an SDK's: the wire format is small and stable, and
the project's SDK has no websocket support (the unified SDK's would pin websockets<16). What
matters here is robustness:
- keepalive: the text frame `PING` every 10 s; the server answers `PONG` (not JSON). No frame at
  all for `stale_sec` → the socket is treated as dead and replaced;
- reconnect with exponential backoff and full jitter, re-sending the auth/subscription frame;
  `on_connect(reconnected)` lets the owner reconcile over REST after every reconnect, since
  events sent while we were away are lost (sync, or a coroutine run alongside; its failure is
  logged, never the end of the tape);
- frames may hold one JSON object or an array; they are decoded once (`venue.wire`) into
  `OrderEvent` / `TradeEvent`, which is all the owner's `on_event` ever sees. Unknown event types
  are skipped; malformed frames and events (a required field missing: the log names it) are
  counted in `bad_messages` and skipped, never fatal.

The subscription frame carries the raw L2 credentials (the real protocol: no HMAC here), so
they are read from a callable at connect time and never stored in logs or exceptions.
`markets=None` subscribes to every market of the account (recommended for a market maker: a
fill in a market that just left the universe must still be seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from ..tasks import cancel_and_wait, spawn, wait_set
from .http import backoff_delay
from .tls import ws_context
from .wire import Refused, UserEvent, decode_user_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserStreamHealth:
    connected: bool
    reconnects: int
    bad_messages: int
    last_message_ts: float  # wall epoch s of the last frame (0: none yet)
    down_since: float | None  # wall epoch s the stream went down (None while connected)


_LOG_EVERY_SEC = 10.0


def parse_frame(text: str | bytes) -> list[UserEvent | Refused] | None:
    """Decoded events of one frame (object or array), a `Refused` for each event that is not
    one (unknown type, or a known one missing a required field); [] for PONG; None when the
    frame is not JSON."""
    s = text.strip()
    if s in ("PONG", b"PONG") or not s:
        return []
    decoded = decode_user_frame(s)
    return None if decoded.error is not None else list(decoded.events)


class UserStream:
    def __init__(
        self,
        url: str,
        auth: Callable[[], dict[str, str]],
        on_event: Callable[[UserEvent], None],
        on_connect: Callable[[bool], Awaitable[None] | None] | None = None,
        markets: Iterable[str] | None = None,
        ping_sec: float = 10.0,
        stale_sec: float = 30.0,
        backoff_min: float = 0.25,
        backoff_max: float = 10.0,
        close_wait_sec: float = 5.0,
    ) -> None:
        """`close_wait_sec`: how long `close()` waits for the `on_connect` tasks it cancels."""
        self.url = url
        self._auth = auth
        self._on_event = on_event
        self._on_connect = on_connect
        self._markets: set[str] | None = None if markets is None else set(markets)
        self.ping_sec = ping_sec
        self.stale_sec = stale_sec
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.close_wait_sec = close_wait_sec
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self.reconnects = 0
        self.bad_messages = 0
        self.last_message_ts = 0.0
        self.down_since: float | None = time.time()
        self._connects = 0
        self._side_tasks: set[asyncio.Task[Any]] = set()  # reconciles on (re)connect: owned, errors logged
        self._last_log = 0.0

    # ------------------------------------------------------------------ public
    async def start(self, wait: float | None = 10.0) -> None:
        """Start the connection task; wait (up to `wait` s) for the first subscription."""
        self._task = asyncio.create_task(self._run(), name="user-stream")
        if wait:
            if not await wait_set(self._connected, wait):
                log.warning("user stream not connected after %.0fs; still trying", wait)

    async def close(self) -> None:
        """Close the socket and end the connection task; cancel the `on_connect` tasks (a
        reconcile still running dies with the stream) and wait for them, at most
        `close_wait_sec`. One that ignores its cancel past that is said (a warning) and left to
        end on its own: it stays in the stream's task set, whose owner logs its failure when it
        ends (`tasks.spawn`), so it is never an unowned task or an unretrieved exception."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await self._ws.close()
        task, self._task = self._task, None
        await cancel_and_wait(task)  # a cancel of whoever closes still raises
        for t in list(self._side_tasks):
            t.cancel()
        if self._side_tasks:
            _, left = await asyncio.wait(set(self._side_tasks), timeout=self.close_wait_sec)
            if left:
                log.warning("user stream closed with %d on_connect task(s) still running %.1fs after their cancel "
                            "(%s): left to end on their own, a failure is logged", len(left), self.close_wait_sec,
                            ", ".join(sorted(t.get_name() for t in left)))
        self._ws = None

    def health(self) -> UserStreamHealth:
        return UserStreamHealth(self._connected.is_set(), self.reconnects, self.bad_messages,
                                self.last_message_ts, self.down_since)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def subscribe(self, markets: Iterable[str]) -> None:
        """Add condition ids to a filtered subscription (no-op when subscribed to all)."""
        ids = [str(m) for m in markets]
        if self._markets is None or not ids:
            return
        self._markets.update(ids)
        await self._send({"operation": "subscribe", "markets": ids})

    async def unsubscribe(self, markets: Iterable[str]) -> None:
        ids = [str(m) for m in markets]
        if self._markets is None or not ids:
            return
        self._markets.difference_update(ids)
        await self._send({"operation": "unsubscribe", "markets": ids})

    async def drop(self) -> None:
        """Close the current socket (tests, or a caller that saw it stall); it reconnects."""
        if self._ws is not None:
            await self._ws.close()

    # ------------------------------------------------------------------ internals
    async def _send(self, msg: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or not self._connected.is_set():
            return  # the next (re)connect subscribes with the current set
        try:
            await ws.send(json.dumps(msg, separators=(",", ":")))
        except WebSocketException:
            pass

    def _subscription(self) -> str:
        msg: dict[str, Any] = {"auth": self._auth(), "type": "user"}
        if self._markets is not None:
            msg["markets"] = sorted(self._markets)
        return json.dumps(msg, separators=(",", ":"))

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                # wss: the process's TLS context (websockets built one per connect, on the loop)
                async with connect(self.url, ping_interval=None, open_timeout=10, close_timeout=2,
                                   max_size=8 * 1024 * 1024, ssl=ws_context(self.url)) as ws:
                    self._ws = ws
                    await ws.send(self._subscription())
                    reconnected = self._connects > 0
                    self._connects += 1
                    if reconnected:
                        self.reconnects += 1
                    self.down_since = None
                    self.last_message_ts = time.time()
                    self._connected.set()
                    attempt = 0
                    log.info("user stream %s", "reconnected" if reconnected else "connected")
                    if self._on_connect is not None:
                        try:
                            r = self._on_connect(reconnected)
                        except Exception:  # as a coroutine's failure: logged, never the end of the tape
                            log.exception("user stream: on_connect failed")
                            r = None
                        if asyncio.iscoroutine(r):
                            # reconcile alongside (events keep flowing), owned and observed
                            spawn(r, "user-stream-reconcile", self._side_tasks)
                    await self._pump(ws)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, WebSocketException) as exc:
                if not self._closing:
                    log.warning("user stream: %s", type(exc).__name__)
            finally:
                if self._connected.is_set():
                    self.down_since = time.time()
                self._connected.clear()
                self._ws = None
            # a cancel that a library swallowed while connecting must still end the loop
            task = asyncio.current_task()
            if self._closing or (task is not None and task.cancelling()):
                return
            attempt += 1
            await asyncio.sleep(backoff_delay(attempt, self.backoff_min, self.backoff_max))

    async def _pump(self, ws: ClientConnection) -> None:
        # recv() is awaited directly (never under wait_for, whose cancellation waits for the
        # receive to finish): staleness is the keepalive task's job, which closes the socket
        keeper = asyncio.create_task(self._keepalive(ws))
        try:
            while True:
                text = await ws.recv()
                self.last_message_ts = time.time()
                events = parse_frame(text)
                if events is None:
                    self._bad(f"not JSON: {text[:60]!r}")
                    continue
                for ev in events:
                    if isinstance(ev, Refused):
                        if not ev.unknown:
                            self._bad(ev.reason)
                        continue
                    try:
                        self._on_event(ev)
                    except Exception:  # one bad event never kills the tape
                        self.bad_messages += 1
                        log.exception("user stream: event handler failed")
        finally:
            keeper.cancel()

    def _bad(self, reason: str) -> None:
        """Count a refused frame or event; log its reason (at most once per `_LOG_EVERY_SEC`)."""
        self.bad_messages += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_SEC:
            self._last_log = now
            log.warning("bad user message (%d so far): %s", self.bad_messages, reason[:200])

    async def _keepalive(self, ws: ClientConnection) -> None:
        """PING every `ping_sec`; close the socket when nothing arrived for `stale_sec`."""
        next_ping = time.monotonic() + self.ping_sec
        try:
            while True:
                await asyncio.sleep(min(1.0, self.ping_sec))
                if time.time() - self.last_message_ts > self.stale_sec:
                    log.warning("user stream stale for %.0fs: reconnecting", self.stale_sec)
                    await ws.close()
                    return
                if time.monotonic() >= next_ping:
                    next_ping += self.ping_sec
                    await ws.send("PING")
        except (WebSocketException, asyncio.CancelledError):
            pass
