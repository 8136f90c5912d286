"""Mutation pass over `venue.market_stream`'s connections and resyncs (the half the frame tests
do not reach): subscriptions over a real websocket on loopback (a tiny venue that records what it
is sent), the universe changes on live sockets, reconnects and their backoff, the PING keepalive,
`close`, and the REST resync loop. A book must never look current while nothing updates it: a
dropped or silent connection distrusts its books and reconnects, and every (re)connect reloads them.

The stream's own `time` is replaced by one whose monotonic clock the test moves (the event loop
keeps the real one), and `backoff_delay` by a recorder that waits nothing: reconnects are
immediate and every wait is a condition, never a fixed sleep."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from stream_time import FakeTime, fake_stream_time
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pmm_widgets.book import OrderBook
from pmm_widgets.errors import PmmError
from pmm_widgets.venue import market_stream as ms
from pmm_widgets.venue.market_stream import MarketStream

NOW = 1_800_000_000.0
NOW_MS = int(NOW * 1000)


# ---------------------------------------------------------------------------- the fakes
class Peer:
    """One connection as the venue sees it."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.path = ws.request.path if ws.request is not None else ""
        self.got: list[str] = []
        self.closed = False

    def messages(self) -> list[Any]:
        """What the stream sent, PINGs left out, decoded."""
        return [json.loads(m) for m in self.got if m != "PING"]

    def pings(self) -> int:
        return sum(m == "PING" for m in self.got)


class Venue:
    """A market channel on loopback: answers `PING` with `PONG` (unless told not to), records the rest."""

    def __init__(self) -> None:
        self.peers: list[Peer] = []
        self.pong = True
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        p = Peer(ws)
        self.peers.append(p)
        try:
            async for m in ws:
                p.got.append(str(m))
                if m == "PING" and self.pong:
                    await ws.send("PONG")
        except ConnectionClosed:
            pass
        finally:
            p.closed = True


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    v = Venue()
    async with serve(v.handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        v.url = f"ws://127.0.0.1:{port}/ws/"
        yield v


class Down(PmmError):
    """The fake REST venue's failure."""


class Rest:
    """`ClobPublic.books`: one synced book per token asked (stamped `ts`), or `Down` while `fail` > 0;
    `gate`, when set, holds every answer until it opens."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail = 0
        self.ts = NOW_MS
        self.gate: asyncio.Event | None = None

    async def books(self, tokens: list[str]) -> list[dict[str, Any]]:
        self.calls.append(list(tokens))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise Down("503")
        return [{"asset_id": t, "market": "0xm", "timestamp": str(self.ts), "hash": "r",
                 "bids": [{"price": "0.40", "size": "10"}], "asks": [{"price": "0.60", "size": "10"}]}
                for t in tokens]

    def asked(self) -> set[str]:
        return {t for call in self.calls for t in call}


class Recorder:
    def __init__(self) -> None:
        self.conns: list[tuple[str, int, list[str]]] = []
        self.rests: list[tuple[float, Any]] = []

    def frame(self, ts: float, conn: int, frame: str) -> None:
        pass

    def conn_event(self, ts: float, kind: str, conn: int, assets: Any) -> None:
        self.conns.append((kind, conn, sorted(assets)))

    def rest(self, ts: float, raw: Any) -> None:
        self.rests.append((ts, raw))


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ft(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return fake_stream_time(monkeypatch)  # (`perf_counter` the real one)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float, float]]:
    """Every `backoff_delay(attempt, base, cap)` the stream asks for; none waits."""
    calls: list[tuple[int, float, float]] = []

    def record(attempt: int, base: float, cap: float, rnd: Any = None) -> float:
        calls.append((attempt, base, cap))
        return 0.0

    monkeypatch.setattr(ms, "backoff_delay", record)
    return calls


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition (the timeout only bounds a failing test)."""
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.002)


async def turns(n: int = 10) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def stream(url: str, tokens: list[str], rest: Rest | None = None, **kw: Any) -> MarketStream:
    books = {t: OrderBook(t, "0xm") for t in tokens}
    kw.setdefault("ping_sec", 30.0)
    kw.setdefault("clock", Clock())
    return MarketStream(url, rest or Rest(), books, **kw)  # type: ignore[arg-type]


def tasks_named(prefix: str) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(prefix) and not t.done()]


def sub(tokens: list[str]) -> dict[str, Any]:
    return {"assets_ids": tokens, "type": "market", "custom_feature_enabled": True}


def closed_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


# ---------------------------------------------------------------------------- subscriptions
async def test_assets_go_out_in_chunks_one_connection_each_and_are_loaded_from_rest(venue, backoffs):
    rest, rec = Rest(), Recorder()
    s = stream(venue.url, ["1", "2", "3", "4", "5"], rest, chunk=2, recorder=rec)
    try:
        await s.set_assets(["5", "1", "3", "2", "4"])
        assert [(c.n, sorted(c.assets)) for c in s.conns] == [(0, ["1", "2"]), (1, ["3", "4"]), (2, ["5"])]
        assert s.assets == {"1", "2", "3", "4", "5"} and s._conn_of["3"] is s.conns[1]
        assert rec.conns == [("sub", 0, ["1", "2"]), ("sub", 1, ["3", "4"]), ("sub", 2, ["5"])]
        await until(lambda: len(venue.peers) == 3 and all(p.got for p in venue.peers) and s.connected())
        assert sorted(p.messages()[0]["assets_ids"] for p in venue.peers) == [["1", "2"], ["3", "4"], ["5"]]
        assert all(p.messages() == [sub(p.messages()[0]["assets_ids"])] for p in venue.peers)
        assert {p.path for p in venue.peers} == {"/ws/market"}
        assert sorted(rec.conns[3:]) == [("open", 0, ["1", "2"]), ("open", 1, ["3", "4"]), ("open", 2, ["5"])]
        # every connect asked for its books: the resync loop loads them from REST
        await until(lambda: all(b.synced for b in s.books.values()))
        assert rest.asked() == set(s.books) and all(s.is_live(t) for t in s.books)
        assert all(not b.needs_resync for b in s.books.values())
        assert len(tasks_named("market-resync")) == 1 and backoffs == [] and s.stats.reconnects == 0
    finally:
        await s.close()


async def test_a_universe_change_goes_out_on_the_live_sockets(venue, backoffs, monkeypatch):
    rest, rec = Rest(), Recorder()
    s = stream(venue.url, ["1", "2", "3", "4", "5", "6", "7"], rest, chunk=2, recorder=rec)
    try:
        await s.set_assets(["1", "2", "3", "4", "5"])
        await until(lambda: len(venue.peers) == 3 and all(p.got for p in venue.peers) and s.connected())
        await until(lambda: all(s.books[t].synced for t in "12345"))
        peer = {p.messages()[0]["assets_ids"][0]: p for p in venue.peers}
        c0, c1, c2 = s.conns
        monkeypatch.setattr(s, "start", lambda: None)  # (one more resync loop would be a bug of its own)
        resync_task = s._resync_task
        assert resync_task is not None
        resync_task.cancel()  # the resync loop stands still: what is asked for stays in `_pending`
        await asyncio.wait([resync_task])
        s._pending.update({"2", "4"})
        del rec.conns[:]
        await s.set_assets(["1", "3", "4", "5", "6", "7"])  # "2" leaves, "6" and "7" join
        # the leaver is unsubscribed on its socket; the newcomers fill the connections with room
        assert [(c.n, sorted(c.assets)) for c in s.conns] == [(0, ["1", "6"]), (1, ["3", "4"]), (2, ["5", "7"])]
        assert s._conn_of["6"] is c0 and s._conn_of["7"] is c2 and "2" not in s._conn_of
        assert rec.conns == [("unsub", 0, ["2"]), ("sub", 0, ["6"]), ("sub", 2, ["7"])]
        assert s._retired == {"2"} and s._pending == {"4", "6", "7"}  # the newcomers are loaded, the leaver not
        await until(lambda: len(peer["1"].got) == 3 and len(peer["5"].got) == 2)
        # (a subscription on a live socket asks for the custom events too: `market_resolved` is one)
        assert peer["1"].messages()[1:] == [{"operation": "unsubscribe", "assets_ids": ["2"]},
                                            {"operation": "subscribe", "assets_ids": ["6"], "custom_feature_enabled": True}]
        assert peer["5"].messages()[1:] == [{"operation": "subscribe", "assets_ids": ["7"], "custom_feature_enabled": True}]
        assert peer["3"].messages() == [sub(["3", "4"])] and len(venue.peers) == 3
        # a late frame of the leaver (its book gone, as `MarketData.set_markets` drops it) is no error
        del s.books["2"]
        s.handle_frame(json.dumps({"event_type": "book", "market": "0xm", "asset_id": "2", "timestamp": str(NOW_MS),
                                   "bids": [], "asks": []}))
        assert s.stats.bad_messages == 0
        # a connection left without assets is stopped: its socket closed, never reopened
        del rec.conns[:]
        await s.set_assets(["6", "7"])
        assert [(c.n, sorted(c.assets)) for c in s.conns] == [(0, ["6"]), (2, ["7"])] and c1.task is not None
        assert c1.task.done() and c1.stopping and s._retired == {"1", "3", "4", "5"}
        assert rec.conns == [("unsub", 0, ["1"]), ("unsub", 1, ["3", "4"]), ("unsub", 2, ["5"]), ("close", 1, [])]
        await until(lambda: peer["3"].closed)
        assert peer["3"].messages()[1:] == [{"operation": "unsubscribe", "assets_ids": ["3", "4"]}]
        assert s._pending == {"6", "7"}  # "4", asked for before it left, is forgotten
        await turns(20)
        assert len(venue.peers) == 3 and s.stats.reconnects == 0 and backoffs == []
        # a newcomer beyond the room left opens a connection of its own, numbered on
        await s.set_assets(["6", "7", "8", "9"])
        assert [(c.n, sorted(c.assets)) for c in s.conns] == [(0, ["6", "8"]), (2, ["7", "9"])]
        await s.set_assets(["6", "7", "8", "9", "10"])
        assert [(c.n, sorted(c.assets)) for c in s.conns][2] == (3, ["10"])
        await until(lambda: len(venue.peers) == 4 and bool(venue.peers[3].got))
        assert venue.peers[3].messages() == [sub(["10"])]
    finally:
        await s.close()


async def test_an_asset_added_while_its_connection_is_down_is_subscribed_on_connect(venue, backoffs):
    s = stream(venue.url, ["1", "2", "3"], chunk=5)
    try:
        await s.set_assets(["1", "2"])  # the connection is not open yet (its task has not run)
        assert s.conns[0].ws is None and not s.connected() and not s.is_live("1")
        await s.set_assets(["1", "3"])  # nothing to send on: the connect subscribes what it has then
        await until(lambda: len(venue.peers) == 1 and bool(venue.peers[0].got))
        await turns(20)
        assert venue.peers[0].messages() == [sub(["1", "3"])] and s.connected()
    finally:
        await s.close()


async def test_start_runs_one_resync_loop_whatever_the_calls(venue, backoffs):
    s = stream(venue.url, ["1", "2"], chunk=1)
    try:
        s.start()
        first = s._resync_task
        await s.set_assets(["1"])
        await s.set_assets(["1", "2"])
        s.start()
        assert s._resync_task is first and first is not None and not first.done()
        assert tasks_named("market-resync") == [first]
    finally:
        await s.close()
    assert first is not None and first.done()


# ---------------------------------------------------------------------------- connections
async def test_a_dropped_connection_distrusts_its_books_reconnects_and_reloads_them(venue, backoffs, ft):
    rest, rec = Rest(), Recorder()
    changed: list[set[str]] = []
    s = stream(venue.url, ["1", "2", "3"], rest, recorder=rec, on_books=changed.append, backoff_base=0.25,
               backoff_cap=8.0)
    try:
        await s.set_assets(["1", "2"])
        await until(lambda: s.connected() and all(s.books[t].synced for t in "12"))
        assert rest.calls == [["1", "2"]] and s._last_rest == {"1": 1000.0, "2": 1000.0}
        # a frame the venue sends is applied to its book
        p0 = venue.peers[0]
        await p0.ws.send(json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(NOW_MS + 5),
                                     "price_changes": [{"asset_id": "1", "price": "0.45", "size": "3", "side": "BUY"}]}))
        await until(lambda: s.books["1"].best_bid == Decimal("0.45"))
        assert changed[-1] == {"1"} and s.conns[0].last_pong == 1000.0
        rest.gate = asyncio.Event()  # the reload after the reconnect waits: the books are seen distrusted
        ft.mono = 1001.0
        p0.ws.transport.abort()  # the venue drops the connection
        await until(lambda: len(venue.peers) == 2 and bool(venue.peers[1].got) and len(rest.calls) == 2)
        assert all(s.books[t].needs_resync for t in "12") and not s.books["3"].needs_resync
        assert venue.peers[1].messages() == [sub(["1", "2"])] and s.is_live("1")
        assert s.stats.reconnects == 1 and backoffs == [(0, 0.25, 8.0)]
        assert [k for k, _, _ in rec.conns] == ["sub", "open", "close", "open"] and rec.conns[2] == ("close", 0, [])
        assert rest.calls[1] == ["1", "2"]
        rest.ts = NOW_MS + 10  # (the venue's snapshot, newer than the last update)
        rest.gate.set()
        await until(lambda: not any(s.books[t].needs_resync for t in "12"))
        assert s.books["1"].best_bid == Decimal("0.40")  # the venue's word now
    finally:
        await s.close()


async def test_a_closed_connection_is_not_live_until_it_reconnects(venue, monkeypatch, ft):
    gate = asyncio.Event()
    waits: list[int] = []

    async def slow_sleep(sec: float) -> None:  # the backoff of `_run_conn`: waits for the test
        waits.append(1)
        await gate.wait()

    monkeypatch.setattr(ms, "backoff_delay", lambda *a, **k: -1.0)
    s = stream(venue.url, ["1"])
    real_sleep = asyncio.sleep

    async def sleep(sec: float) -> None:
        if sec == -1.0:
            await slow_sleep(sec)
        else:
            await real_sleep(sec)

    monkeypatch.setattr(ms.asyncio, "sleep", sleep)
    try:
        await s.set_assets(["1"])
        await until(lambda: s.connected() and s.books["1"].synced)
        await venue.peers[0].ws.close()  # a clean close by the venue ends the connection too
        await until(lambda: bool(waits))
        assert not s.connected() and not s.is_live("1") and s.conns[0].ws is None and s.books["1"].needs_resync
        assert s.stats.reconnects == 1
        gate.set()
        await until(lambda: s.connected() and len(venue.peers) == 2)
    finally:
        await s.close()


async def test_backoff_grows_with_each_failed_attempt_up_to_its_cap(backoffs, ft, caplog):
    caplog.set_level(logging.INFO, logger=ms.__name__)
    rec = Recorder()
    s = stream(f"ws://127.0.0.1:{closed_port()}", ["1"], recorder=rec, backoff_base=0.5, backoff_cap=3.0)
    try:
        await s.set_assets(["1"])
        await until(lambda: len(backoffs) >= 20)
        assert [a for a, _, _ in backoffs[:20]] == [*range(17), 16, 16, 16]
        assert {(b, c) for _, b, c in backoffs} == {(0.5, 3.0)} and s.stats.reconnects >= 20
        assert rec.conns == [("sub", 0, ["1"])]  # never opened: never closed either
        assert not s.books["1"].needs_resync and not s.connected()
        assert "market websocket 0: ConnectionRefusedError" in caplog.text
    finally:
        await s.close()


async def test_a_connection_that_worked_more_than_2_s_comes_back_at_the_first_attempt(venue, backoffs, ft):
    s = stream(venue.url, ["1"])
    try:
        await s.set_assets(["1"])
        for k, (opened, lived) in enumerate([(1000.0, 2.0), (1002.0, 2.0), (1004.0, 2.5), (1006.5, 1.0)]):
            await until(lambda k=k: len(venue.peers) == k + 1 and bool(venue.peers[k].got))
            assert s.conns[0].last_pong == opened
            ft.mono = opened + lived
            venue.peers[k].ws.transport.abort()
            await until(lambda k=k: len(backoffs) == k + 1)
        # 2.0 s is not "more than 2 s": the attempts go on counting; 2.5 s is, they start over
        assert [a for a, _, _ in backoffs] == [0, 1, 0, 1] and s.stats.reconnects == 4
    finally:
        await s.close()


async def test_a_cancel_of_a_connection_ends_it_and_distrusts_its_books(venue, backoffs):
    s = stream(venue.url, ["1"])
    await s.set_assets(["1"])
    c = s.conns[0]
    try:
        await until(lambda: s.connected() and s.books["1"].synced)
        assert c.task is not None
        c.task.cancel()  # not stopping, not closed: a cancel from outside (a loop shutting down)
        await asyncio.wait([c.task], timeout=5.0)
        assert c.task.cancelled() and c.ws is None and s.books["1"].needs_resync
        await turns(20)
        assert len(venue.peers) == 1 and s.stats.reconnects == 0 and backoffs == []
    finally:
        await s.close()


async def test_a_bug_in_a_frame_costs_one_reconnect_not_the_feed(venue, backoffs, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=ms.__name__)
    s = stream(venue.url, ["1"])
    seen: list[str] = []

    def buggy(frame: Any, conn: Any = None) -> set[str]:
        seen.append(str(frame))
        if len(seen) == 1:
            raise RuntimeError("a bug")
        return set()

    monkeypatch.setattr(s, "handle_frame", buggy)
    try:
        await s.set_assets(["1"])
        await until(lambda: s.connected())
        await venue.peers[0].ws.send("hello")
        await until(lambda: len(venue.peers) == 2 and s.connected())
        assert "market websocket 0 failed" in caplog.text and "RuntimeError: a bug" in caplog.text
        await venue.peers[1].ws.send("again")
        await until(lambda: len(seen) == 2)
        assert s.stats.reconnects == 1 and s.is_live("1")
    finally:
        await s.close()


async def test_a_connection_left_without_assets_is_not_reopened(venue, backoffs):
    s = stream(venue.url, ["1"])
    try:
        await s.set_assets(["1"])
        await until(lambda: s.connected())
        c = s.conns[0]
        c.assets.clear()  # (`set_assets` between its unsubscribe and the stop: the socket drops then)
        venue.peers[0].ws.transport.abort()
        assert c.task is not None
        await asyncio.wait([c.task], timeout=5.0)
        assert c.task.done() and not c.task.cancelled() and s.stats.reconnects == 0 and backoffs == []
        assert len(venue.peers) == 1
    finally:
        await s.close()


# ---------------------------------------------------------------------------- keepalive
async def test_keepalive_pings_as_text_and_drops_a_connection_silent_for_pong_timeout(venue, backoffs, ft, caplog):
    caplog.set_level(logging.INFO, logger=ms.__name__)
    s = stream(venue.url, ["1"], ping_sec=0.01, pong_timeout_sec=4.0)
    try:
        await s.set_assets(["1"])
        await until(lambda: s.connected() and s.books["1"].synced)
        p0, c = venue.peers[0], s.conns[0]
        await until(lambda: p0.pings() >= 3)  # every ping_sec, the text PING (answered: alive)
        assert all(m == "PING" for m in p0.got[1:]) and len(venue.peers) == 1
        ft.mono = 1003.0  # answered pongs keep it alive as the clock moves
        await until(lambda: c.last_pong == 1003.0)
        venue.pong = False  # the venue goes silent
        n = p0.pings()
        await until(lambda: p0.pings() >= n + 3)
        ft.mono = c.last_pong + 4.0  # silent for exactly pong_timeout_sec: not yet dead
        n = p0.pings()
        await until(lambda: p0.pings() >= n + 3)
        assert not p0.closed and len(venue.peers) == 1 and not s.books["1"].needs_resync
        ft.mono += 0.5  # longer: dead, dropped, its books distrusted, reconnected
        await until(lambda: p0.closed and len(venue.peers) == 2 and bool(venue.peers[1].got))
        assert s.stats.reconnects == 1 and "market websocket 0: no frame for 4 s, reconnecting" in caplog.text
        assert venue.peers[1].messages() == [sub(["1"])]
    finally:
        await s.close()
    assert tasks_named("market-ping") == []


# ---------------------------------------------------------------------------- close
async def test_close_ends_every_task_and_a_closed_stream_connects_nothing(venue, backoffs):
    s = stream(venue.url, ["1", "2", "3"], chunk=1, ping_sec=0.01)
    await s.set_assets(["1", "2"])
    await until(lambda: s.connected() and all(s.books[t].synced for t in "12"))
    await s.hold()
    s.handle_frame("[]")  # held: the applier exists
    conns = list(s.conns)
    tasks = [c.task for c in conns] + [s._resync_task, s._applier]
    assert all(t is not None and not t.done() for t in tasks) and len(tasks_named("market-ping")) == 2
    await s.close()
    assert all(t is not None and t.done() for t in tasks) and tasks_named("market-ping") == []
    assert s.conns == [] and s.assets == set() and not s.connected()
    await until(lambda: all(p.closed for p in venue.peers))
    await s.set_assets(["3"])  # closed: kept, never connected
    assert [sorted(c.assets) for c in s.conns] == [["3"]] and s.conns[0].task is None
    await turns(20)
    assert len(venue.peers) == 2 and s.stats.reconnects == 0 and backoffs == []
    assert s._resync_task is not None and s._resync_task.done()


async def test_a_stream_closed_before_it_started_leaves_no_task_running(venue, backoffs):
    s = stream(venue.url, ["1"])
    await s.close()
    await s.set_assets(["1"])
    assert s._resync_task is not None
    await asyncio.wait([s._resync_task], timeout=5.0)
    assert s._resync_task.done() and not s._resync_task.cancelled() and venue.peers == []


# ---------------------------------------------------------------------------- the resync loop
@pytest.fixture
def loop_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The resync loop's `wait_set` timeouts; it waits at most 10 ms (a test's turn is short)."""
    waits: list[float] = []
    real = ms.wait_set

    async def fast(evt: asyncio.Event, timeout: float) -> bool:
        waits.append(timeout)
        return await real(evt, min(timeout, 0.01))

    monkeypatch.setattr(ms, "wait_set", fast)
    return waits


def rest_only(tokens: list[str], rest: Rest, **kw: Any) -> MarketStream:
    """A stream without connections: its books synced at NOW_MS, the resync loop started."""
    s = stream("ws://127.0.0.1:9", tokens, rest, **kw)
    s.apply_rest_raw([{"asset_id": t, "timestamp": str(NOW_MS), "bids": [{"price": "0.40", "size": "10"}]}
                      for t in tokens], NOW)
    return s


async def test_the_resync_loop_reloads_what_is_asked_together_exactly_once(loop_waits, backoffs, ft):
    rest, rec = Rest(), Recorder()
    s = rest_only(["a", "b", "c", "d"], rest, recorder=rec, resync_pause_sec=0.5)
    try:
        s.start()
        rest.ts = NOW_MS + 1
        s.request_resync(["c"])
        await turns(10)  # the loop woke and waits for more (the pause)
        s.request_resync(["a", "zz"])
        await until(lambda: bool(rest.calls))
        await until(lambda: s.books["a"].venue_ts_ms == NOW_MS + 1)
        s.resync_pause_sec = 0.0  # (the later turns, quickly)
        n = len(loop_waits)
        await until(lambda: len(loop_waits) >= n + 5)
        assert rest.calls == [["a", "c"]] and s.books["b"].venue_ts_ms == NOW_MS
        assert set(loop_waits) == {1.0} and not s._resync_evt.is_set() and s._pending == set()
        assert [raw for _, raw in rec.rests] == [rest_books(rest, ["a", "c"])] and rec.rests[0][0] == NOW
        assert s._last_rest == {"a": 1000.0, "c": 1000.0}
    finally:
        await s.close()


def rest_books(rest: Rest, tokens: list[str]) -> list[dict[str, Any]]:
    return [{"asset_id": t, "market": "0xm", "timestamp": str(rest.ts), "hash": "r",
             "bids": [{"price": "0.40", "size": "10"}], "asks": [{"price": "0.60", "size": "10"}]} for t in tokens]


async def test_a_failed_reload_is_counted_logged_and_retried_with_backoff(loop_waits, backoffs, ft, caplog):
    caplog.set_level(logging.INFO, logger=ms.__name__)
    rest = Rest()
    s = rest_only(["a", "b"], rest, resync_pause_sec=0.0)
    try:
        s.start()
        rest.fail = 2
        rest.ts = NOW_MS + 1
        s.request_resync(["b"])
        await until(lambda: s.books["b"].venue_ts_ms == NOW_MS + 1)
        assert rest.calls == [["b"], ["b"], ["b"]] and s.stats.rest_errors == 2
        assert backoffs == [(0, 0.5, 10.0), (1, 0.5, 10.0)] and "book resync failed: Down: 503" in caplog.text
        rest.fail = 1  # a success started the count over
        rest.ts = NOW_MS + 2
        s.request_resync(["a"])
        await until(lambda: s.books["a"].venue_ts_ms == NOW_MS + 2)
        assert backoffs[2:] == [(0, 0.5, 10.0)] and s.stats.rest_errors == 3 and rest.calls[3:] == [["a"], ["a"]]
    finally:
        await s.close()


async def test_the_resync_loop_reloads_quiet_live_books_and_pays_owed_connection_reloads(loop_waits, backoffs, ft):
    rest, clock = Rest(), Clock()
    s = rest_only(["a", "b", "c"], rest, clock=clock, quiet_sec=15.0, resync_pause_sec=0.0)
    c = ms._Conn(0)
    c.assets = {"a", "b"}
    c.ws = object()  # type: ignore[assignment]
    s.conns = [c]
    s._conn_of = {"a": c, "b": c}
    try:
        clock.t = NOW + 16.0  # every book quiet; "c" is not live (no connection)
        s._last_rest["b"] = ft.mono - 10.0  # reloaded 10 s ago: not quiet yet
        s.start()
        await until(lambda: bool(rest.calls))
        assert rest.calls == [["a"]]
        # a bad frame on the connection within CONN_RESYNC_MIN_SEC of the last: owed, paid by the loop
        c.last_resync, c.resync_owed = ft.mono - 0.5, True
        await until(lambda: len(loop_waits) >= 8)
        assert rest.calls == [["a"]] and c.resync_owed
        ft.mono += 0.5
        await until(lambda: len(rest.calls) == 2)
        assert rest.calls[1] == ["a", "b"] and not c.resync_owed and c.last_resync == ft.mono
    finally:
        await s.close()


async def test_resync_now_asks_for_known_books_only_and_returns_the_replaced(ft):
    rest, rec = Rest(), Recorder()
    s = rest_only(["a", "b"], rest, recorder=rec)
    s.books["b"].needs_resync = True
    rest.ts = NOW_MS - 1  # older than the books: "b" needs it and asks again, "a" is left alone
    assert await s.resync_now(["a", "zz", "b"]) == set()
    assert rest.calls == [["a", "b"]] and s._pending == {"b"}
    rest.ts = NOW_MS + 1
    assert await s.resync_now(["b"]) == {"b"} and not s.books["b"].needs_resync
    assert await s.resync_now(["zz"]) == set() and await s.resync_now([]) == set()
    assert len(rest.calls) == 2 and len(rec.rests) == 2 and s._last_rest == {"a": 1000.0, "b": 1000.0}
