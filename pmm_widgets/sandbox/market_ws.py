"""Market websocket channel (`/ws/market`) of the sandbox.

Why it is shaped like this: the simulator produces each event once; the hub serializes it once
and batches everything a connection should see from one clock tick into a single frame (a JSON
array), which is what keeps thousands of events per second cheap. Each connection has its own
send queue and writer task, so a slow client never stalls the clock; one that falls too far
behind is disconnected, as the real venue does. Fault knobs act here: per-frame latency,
malformed frames, random drops.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .faults import Faults
    from .simulator import SimEvent, Simulator

MAX_QUEUED_FRAMES = 5_000
MAX_FRAME_CHARS = 256 * 1024
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class _Conn:
    __slots__ = ("ws", "transport", "subs", "custom", "queue", "wake", "task", "closed")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None):
        self.ws = ws
        self.transport = transport
        self.subs: set[str] = set()
        self.custom = False
        self.queue: deque[tuple[float, str]] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def push(self, frame: str) -> None:
        self.queue.append((time.monotonic(), frame))
        self.wake.set()


class MarketHub:
    """All market-channel connections; `broadcast(events)` is called by the clock each tick."""

    def __init__(self, sim: Simulator, faults: Faults):
        self.sim = sim
        self.faults = faults
        self.conns: set[_Conn] = set()
        self.events_sent = 0
        self.frames_sent = 0
        # closes started from sync code (the clock tick): held here so none is garbage-collected
        # mid-close, and `close_all` can wait for them
        self._closing: set[asyncio.Task[None]] = set()
        sim.watched = set()

    # ------------------------------------------------------------------ connection
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # no permessage-deflate: on loopback it only costs CPU on both sides (the engine's core too)
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=4 * 1024 * 1024)
        await ws.prepare(request)
        c = _Conn(ws, request.transport)
        self.conns.add(c)
        c.task = asyncio.create_task(self._writer(c))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(c, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            c.closed = True
            self.conns.discard(c)
            self._update_watched()
            c.wake.set()
            if c.task is not None:
                c.task.cancel()
        return ws

    def _on_text(self, c: _Conn, data: str) -> None:
        if data.strip() == "PING":
            c.push("PONG")
            return
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        assets = msg.get("assets_ids")
        if not isinstance(assets, list):
            return
        assets = [str(a) for a in assets]
        op = msg.get("operation")
        if op == "unsubscribe":
            c.subs.difference_update(assets)
            self._update_watched()
            return
        if op not in (None, "subscribe"):
            return
        if op is None and str(msg.get("type", "market")).lower() != "market":
            return
        if msg.get("custom_feature_enabled") is not None:
            c.custom = bool(msg.get("custom_feature_enabled"))
        fresh = [a for a in assets if a not in c.subs]
        c.subs.update(assets)
        self._update_watched()
        if msg.get("initial_dump", True) is not False:
            snaps = [s for s in (self.sim.book_event(a) for a in fresh) if s is not None]
            if snaps:
                c.push(_dumps(snaps))

    def _update_watched(self) -> None:
        w: set[str] = set()
        for c in self.conns:
            w |= c.subs
        self.sim.watched = w

    async def _writer(self, c: _Conn) -> None:
        ws = c.ws
        try:
            while not c.closed:
                if not c.queue:
                    c.wake.clear()
                    await c.wake.wait()
                    continue
                t, frame = c.queue[0]
                lat = self.faults.latency_ms / 1000.0
                if lat > 0:
                    due = t + lat - time.monotonic()
                    if due > 0:
                        await asyncio.sleep(due)
                c.queue.popleft()
                await ws.send_str(self.faults.maybe_malform(frame))
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    def inject(self, frame: str) -> int:
        """Send one raw text frame, exactly as given, to every market connection (fault tests:
        hostile or malformed frames over the real socket). Returns how many connections got it."""
        n = 0
        for c in list(self.conns):
            if not c.closed:
                c.push(frame)
                n += 1
        return n

    # ------------------------------------------------------------------ clock side
    def broadcast(self, events: Iterable[SimEvent]) -> None:
        events = list(events)
        if not events or not self.conns:
            return
        cache: dict[int, str] = {}
        for c in list(self.conns):
            if c.closed or not c.subs:
                continue
            subs = c.subs
            parts: list[str] = []
            for ev in events:
                if ev.custom and not c.custom:
                    continue
                a = ev.assets
                if len(a) == 1:
                    if a[0] not in subs:
                        continue
                else:
                    inside = [x in subs for x in a]
                    if not any(inside):
                        continue
                    if not all(inside) and "price_changes" in ev.payload:
                        p = dict(ev.payload)  # a `price_change`: the subscribed tokens' entries
                        p["price_changes"] = [x for x in p["price_changes"] if x["asset_id"] in subs]
                        parts.append(_dumps(p))
                        continue
                # whole: the connection holds every token it names, or it is a market's event
                # (`market_resolved`), sent whole to a connection holding either token
                s = cache.get(id(ev))
                if s is None:
                    s = cache[id(ev)] = _dumps(ev.payload)
                parts.append(s)
            if not parts:
                continue
            if len(c.queue) > MAX_QUEUED_FRAMES:
                self._close_later(c, abort=False, code=1013, reason=b"slow consumer")
                continue
            self._push_batched(c, parts)

    def _push_batched(self, c: _Conn, parts: list[str]) -> None:
        """One frame per tick, split so that no frame exceeds MAX_FRAME_CHARS (clients keep the
        websockets default 1 MiB message limit)."""
        start, size = 0, 0
        for i, p in enumerate(parts):
            if size and size + len(p) > MAX_FRAME_CHARS:
                self._push_frame(c, parts[start:i])
                start, size = i, 0
            size += len(p) + 1
        self._push_frame(c, parts[start:])

    def _push_frame(self, c: _Conn, parts: list[str]) -> None:
        c.push(parts[0] if len(parts) == 1 else "[" + ",".join(parts) + "]")
        self.events_sent += len(parts)
        self.frames_sent += 1

    def apply_drops(self, dt_sec: float) -> None:
        for c in list(self.conns):
            if self.faults.drop_now(dt_sec):
                self._close_later(c, abort=True)

    def _close_later(self, c: _Conn, abort: bool, code: int = 1001, reason: bytes = b"") -> None:
        task = asyncio.ensure_future(self._close(c, abort, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, c: _Conn, abort: bool, code: int = 1001, reason: bytes = b"") -> None:
        """Abort = a network drop (no close frame, the client sees an abnormal closure);
        otherwise a clean close with `code`."""
        c.closed = True
        c.wake.set()
        self.conns.discard(c)
        self._update_watched()
        if abort and c.transport is not None:
            c.transport.abort()
            return
        try:
            await c.ws.close(code=code, message=reason)
        except (ConnectionError, RuntimeError):
            pass

    async def drop_all(self) -> None:
        """Drop every connection now, as a network failure would."""
        await asyncio.gather(*(self._close(c, abort=True) for c in list(self.conns)))

    async def close_all(self) -> None:
        """Clean shutdown: close frames with 1001 (going away)."""
        await asyncio.gather(*(self._close(c, abort=False, code=1001, reason=b"sandbox stopping") for c in list(self.conns)))
