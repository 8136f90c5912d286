"""`UserStream` against the embedded sandbox's `/ws/user` over real loopback sockets: the auth
subscription (all markets or a sorted list), decoded events, PONG / unknown / malformed frames,
a failing handler, keepalive and staleness, drops and reconnects with backoff, `on_connect`,
health, live (un)subscription, `start(wait=…)` and `close()`.

Orders are posted through the project's broker with L2 credentials derived against the
sandbox, so every event is the venue's own push. Frames the venue never sends (not JSON, a known
event missing a field) go through the sandbox's per-connection queue: its user channel has no
public raw-frame hook (the market hub has `inject`)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account

from pmm_widgets.domain import Quote, Side
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import trading_of
from pmm_widgets.venue import user_stream as us_mod
from pmm_widgets.venue.broker import Broker
from pmm_widgets.venue.user_stream import UserStream
from pmm_widgets.venue.wire import OrderEvent, OrderEventKind, to_builtins

pytestmark = pytest.mark.integration

LOGGER = "pmm_widgets.venue.user_stream"


@dataclasses.dataclass
class Acct:
    broker: Broker
    auth: dict[str, str]
    markets: list[Any]  # simulator markets with a book
    n: int = 0

    async def place(self, m: Any) -> str:
        """A post-only BUY far below the touch (never fills): its PLACEMENT is pushed at once."""
        self.n += 1
        px = m.tick_size * (1 + self.n % 10)
        q = Quote(m.condition_id, m.yes_token_id, Side.BUY, px, m.min_order_size + self.n)
        [r] = await self.broker.post_orders([(q, m.tick_size, m.neg_risk)])
        assert r.ok, r.error
        return r.order_id


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(markets=3, seed=5, speed=1.0)) as s:
        s.paused = True  # a still market: only our own orders make events
        yield s


@pytest.fixture
async def acct(sb: Sandbox) -> AsyncIterator[Acct]:
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    broker = Broker(sb.clob_url, 137, key)
    c = await broker.derive_creds()
    auth = {"apiKey": c.api_key.get_secret_value(), "secret": c.api_secret.get_secret_value(),
            "passphrase": c.api_passphrase.get_secret_value()}
    ms = sorted((m for m in sb.sim.markets if m.has_book), key=lambda m: m.condition_id)
    assert len(ms) >= 3
    yield Acct(broker, auth, ms)
    await asyncio.to_thread(broker.close)


@pytest.fixture
async def streams() -> AsyncIterator[list[UserStream]]:
    made: list[UserStream] = []
    yield made
    for s in made:
        await s.close()


def make(sb: Sandbox, acct: Acct, streams: list[UserStream], events: list, **kw: Any) -> UserStream:
    kw.setdefault("backoff_min", 0.01)
    kw.setdefault("backoff_max", 0.05)
    s = UserStream(sb.ws_url + "/user", lambda: acct.auth, events.append, **kw)
    streams.append(s)
    return s


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def inject(sb: Sandbox, text: str) -> None:
    """One raw text frame, after whatever the venue already queued, on every user connection."""
    conns = list(trading_of(sb)._conns)
    assert conns
    for c in conns:
        c.queue.put_nowait(text)


def ids_of(events: list) -> list[str]:
    return [e.id for e in events]


def our_tasks() -> list[asyncio.Task]:
    """Pending tasks running code of the user stream module."""
    return [t for t in asyncio.all_tasks() if not t.done()
            and getattr(t.get_coro(), "cr_code", None) is not None
            and t.get_coro().cr_code.co_filename == us_mod.__file__]  # type: ignore[union-attr]


def warnings_of(caplog: pytest.LogCaptureFixture, start: str = "") -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno >= logging.WARNING and r.getMessage().startswith(start)]


class BackoffSpy:
    """Records each backoff the stream asks for; `fixed` replaces the jittered delay."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fixed: float | None = None) -> None:
        self.calls: list[tuple[int, float, float]] = []
        real = us_mod.backoff_delay

        def spy(attempt: int, base: float, cap: float) -> float:
            self.calls.append((attempt, base, cap))
            return fixed if fixed is not None else real(attempt, base, cap)

        monkeypatch.setattr(us_mod, "backoff_delay", spy)


# ---------------------------------------------------------------------------------- subscription
async def test_all_markets_stream_delivers_decoded_events_of_every_market(sb, acct, streams, caplog) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    events: list = []
    us = make(sb, acct, streams, events)
    t0 = time.time()
    h = us.health()
    assert (h.connected, h.reconnects, h.bad_messages, h.last_message_ts) == (False, 0, 0, 0.0)
    assert h.down_since is not None and h.down_since <= t0 and not us.connected
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.connected = True  # type: ignore[misc]
    await us.start(wait=5.0)
    assert us.connected  # start waited for the subscription
    h = us.health()
    assert h.connected and h.down_since is None and h.last_message_ts >= t0 and h.reconnects == 0
    a, b = acct.markets[0], acct.markets[1]
    oa, ob = await acct.place(a), await acct.place(b)
    await until(lambda: len(events) >= 2)
    assert ids_of(events) == [oa, ob]
    assert all(isinstance(e, OrderEvent) and e.kind is OrderEventKind.PLACEMENT for e in events)
    assert [e.market for e in events] == [a.condition_id, b.condition_id]
    assert us.health().bad_messages == 0
    infos = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert infos == ["user stream connected"]
    assert warnings_of(caplog) == []


async def test_market_list_stream_subscribes_to_sorted_ids_and_sees_only_them(sb, acct, streams) -> None:
    events: list = []
    a, b, c = acct.markets[:3]
    us = make(sb, acct, streams, events, markets=[b.condition_id, a.condition_id])
    frame = json.loads(us._subscription())  # the wire frame: auth, type, sorted condition ids
    assert frame == {"auth": acct.auth, "type": "user", "markets": [a.condition_id, b.condition_id]}
    await us.start(wait=5.0)
    oc = await acct.place(c)
    ob = await acct.place(b)
    await until(lambda: ob in ids_of(events))
    assert oc not in ids_of(events)


async def test_all_markets_frame_names_no_markets(sb, acct, streams) -> None:
    us = make(sb, acct, streams, [])
    assert json.loads(us._subscription()) == {"auth": acct.auth, "type": "user"}


async def test_subscribe_and_unsubscribe_change_a_live_filtered_subscription(sb, acct, streams) -> None:
    events: list = []
    a, b, _ = acct.markets[:3]
    us = make(sb, acct, streams, events, markets=[a.condition_id])
    await us.start(wait=5.0)
    await us.subscribe([b.condition_id])
    placed: set[str] = set()
    async with asyncio.timeout(5.0):  # the operation frame lands soon after: retry until it did
        while not placed & set(ids_of(events)):
            placed.add(await acct.place(b))
            await asyncio.sleep(0.02)
    await us.unsubscribe([a.condition_id])
    async with asyncio.timeout(5.0):
        while True:
            oa, ob = await acct.place(a), await acct.place(b)
            await until(lambda ob=ob: ob in ids_of(events))
            if oa not in ids_of(events):
                break
    # a reconnect subscribes with the current set: b only
    await sb.drop_websockets()
    await until(lambda: us.reconnects == 1 and us.connected)
    await _only_the_second_is_seen(acct, a, b, events)


async def test_changes_while_down_are_carried_by_the_next_subscription(sb, acct, streams) -> None:
    events: list = []
    a, b, _ = acct.markets[:3]
    us = make(sb, acct, streams, events, markets=[a.condition_id])
    await us.subscribe([b.condition_id])  # no socket yet: nothing sent, nothing raised
    await us.unsubscribe([a.condition_id])
    await us.drop()
    assert not us.connected
    await us.start(wait=5.0)
    await _only_the_second_is_seen(acct, a, b, events)


async def _only_the_second_is_seen(acct: Acct, a: Any, b: Any, events: list) -> None:
    """An order in each of markets a and b: b's event arrives, and a's never did by then."""
    oa, ob = await acct.place(a), await acct.place(b)
    await until(lambda: ob in ids_of(events))
    assert oa not in ids_of(events)


async def test_subscribe_calls_on_an_all_markets_stream_send_nothing(sb, acct, streams) -> None:
    events: list = []
    a, b, _ = acct.markets[:3]
    us = make(sb, acct, streams, events)
    await us.start(wait=5.0)
    await us.subscribe([a.condition_id])
    await us.unsubscribe([a.condition_id])  # sent, the venue would stop a's events
    await us.subscribe([])
    await us.unsubscribe([])
    await asyncio.sleep(0.2)  # a frame sent by mistake lands well within this
    oa, ob = await acct.place(a), await acct.place(b)
    await until(lambda: len(events) >= 2)
    assert ids_of(events) == [oa, ob]


# ---------------------------------------------------------------------------------- frames
async def test_bad_frames_are_counted_and_logged_at_most_every_10s(sb, acct, streams, caplog, monkeypatch) -> None:
    off = [0.0]
    monkeypatch.setattr(us_mod, "time", SimpleNamespace(time=time.time, monotonic=lambda: time.monotonic() + off[0]))
    events: list = []
    us = make(sb, acct, streams, events, ping_sec=60.0)
    await us.start(wait=5.0)
    o1 = await acct.place(acct.markets[0])
    await until(lambda: len(events) == 1)
    good = json.dumps(to_builtins(events[0]))
    inject(sb, "not json {")
    await until(lambda: us.bad_messages == 1)
    assert warnings_of(caplog, "bad user message") == ["bad user message (1 so far): not JSON: 'not json {'"]
    inject(sb, '{"event_type": "order", "type": "PLACEMENT"}')  # a known type without its id
    await until(lambda: us.bad_messages == 2)
    off[0] = 9.9
    inject(sb, "\x01" * 100)
    await until(lambda: us.bad_messages == 3)
    assert len(warnings_of(caplog, "bad user message")) == 1  # within 10 s of the first: not logged
    off[0] = 10.1
    inject(sb, "\x01" * 100)
    await until(lambda: us.bad_messages == 4)
    logged = warnings_of(caplog, "bad user message")
    assert len(logged) == 2 and logged[1].startswith("bad user message (4 so far): not JSON: ")
    assert len(logged[1]) == len("bad user message (4 so far): ") + 200  # the reason is cut at 200
    # skipped without a count: PONG, an unknown event type, an empty frame; an array keeps its good events
    inject(sb, "PONG")
    inject(sb, '{"event_type": "no_such_event", "x": 1}')
    inject(sb, " ")
    inject(sb, "[" + good + ', {"event_type": "trade"}, {"event_type": "later_feature"}]')
    o2 = await acct.place(acct.markets[1])
    await until(lambda: o2 in ids_of(events))
    assert ids_of(events) == [o1, o1, o2]
    h = us.health()
    assert h.bad_messages == 5 and h.connected and h.reconnects == 0


async def test_a_handler_that_raises_is_counted_and_logged_never_fatal(sb, acct, streams, caplog) -> None:
    seen: list = []

    def on_event(ev: Any) -> None:
        seen.append(ev.id)
        if len(seen) == 1:
            raise RuntimeError("boom")

    us = UserStream(sb.ws_url + "/user", lambda: acct.auth, on_event)
    streams.append(us)
    await us.start(wait=5.0)
    o1 = await acct.place(acct.markets[0])
    o2 = await acct.place(acct.markets[1])
    await until(lambda: len(seen) == 2)
    assert seen == [o1, o2]
    h = us.health()
    assert h.bad_messages == 1 and h.connected and h.reconnects == 0
    [rec] = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert rec.getMessage() == "user stream: event handler failed" and rec.exc_info is not None
    assert isinstance(rec.exc_info[1], RuntimeError)


async def test_a_frame_above_the_websocket_default_limit_is_read(sb, acct, streams) -> None:
    events: list = []
    us = make(sb, acct, streams, events)
    await us.start(wait=5.0)
    o1 = await acct.place(acct.markets[0])
    await until(lambda: len(events) == 1)
    one = json.dumps(to_builtins(events[0]))
    inject(sb, "[" + ",".join([one] * (2 * 1024 * 1024 // len(one) + 1)) + "]")  # > 2 MiB
    await until(lambda: len(events) > 1, timeout=10.0)
    assert set(ids_of(events)) == {o1} and us.reconnects == 0 and us.bad_messages == 0


async def test_a_frame_above_8_mib_drops_the_socket_and_it_comes_back(sb, acct, streams) -> None:
    events: list = []
    us = make(sb, acct, streams, events)
    await us.start(wait=5.0)
    await acct.place(acct.markets[0])
    await until(lambda: len(events) == 1)
    one = json.dumps(to_builtins(events[0]))
    body = ",".join([one] * (8 * 1024 * 1024 // (len(one) + 1)))
    inject(sb, "[" + body + " " * (8 * 1024 * 1024 - len(body) - 1) + "]")  # 8 MiB + 1 byte
    await until(lambda: us.reconnects == 1 and us.connected, timeout=10.0)
    assert len(events) == 1 and us.bad_messages == 0


# ---------------------------------------------------------------------------------- keepalive
async def test_pings_keep_a_quiet_socket_fresh(sb, acct, streams) -> None:
    events: list = []
    us = make(sb, acct, streams, events, ping_sec=0.1, stale_sec=0.5)
    await us.start(wait=5.0)
    seen = {us.last_message_ts}
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        seen.add(us.last_message_ts)
        await asyncio.sleep(0.01)
    assert len(seen) >= 5  # PONGs, about one per 0.1 s
    h = us.health()
    assert h.connected and h.reconnects == 0 and h.bad_messages == 0 and events == []


async def test_the_first_ping_waits_ping_sec_and_pings_follow_every_ping_sec(sb, acct, streams) -> None:
    us = make(sb, acct, streams, [], ping_sec=1.9)
    await us.start(wait=5.0)
    t0 = us.last_message_ts
    changes: list[float] = []
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        if us.last_message_ts != (changes[-1] if changes else t0):
            changes.append(us.last_message_ts)
        await asyncio.sleep(0.01)
    assert len(changes) == 1 and changes[0] - t0 >= 1.9, [c - t0 for c in changes]


async def test_a_silent_socket_is_replaced_after_stale_sec(sb, acct, streams, caplog) -> None:
    calls: list[bool] = []
    events: list = []
    us = make(sb, acct, streams, events, ping_sec=5.0, stale_sec=0.2, on_connect=calls.append)
    await us.start(wait=5.0)
    t0 = time.monotonic()
    await until(lambda: us.reconnects >= 1 and us.connected, timeout=2.5)  # checked at least every 1 s
    assert time.monotonic() - t0 >= 0.2
    assert calls[:2] == [False, True]
    assert warnings_of(caplog, "user stream stale for")
    o = await acct.place(acct.markets[0])  # the new socket is subscribed
    await until(lambda: o in ids_of(events))


# ---------------------------------------------------------------------------------- reconnects
async def test_a_drop_reconnects_with_backoff_and_on_connect(sb, acct, streams, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    spy = BackoffSpy(monkeypatch)
    venue = trading_of(sb)
    calls: list[bool] = []
    events: list = []
    us = make(sb, acct, streams, events, on_connect=calls.append, backoff_min=0.01, backoff_max=0.04)
    await us.start(wait=5.0)
    assert calls == [False] and spy.calls == []
    venue.user_ws_enabled = False  # the channel answers 503 until it is back
    t0 = time.time()
    await sb.drop_websockets()
    await until(lambda: not us.connected)
    down = us.down_since
    assert down is not None and t0 <= down <= time.time()
    await until(lambda: len(spy.calls) >= 3)
    h = us.health()
    assert not h.connected and h.reconnects == 0 and h.down_since == down  # still down since the drop
    assert spy.calls[:3] == [(1, 0.01, 0.04), (2, 0.01, 0.04), (3, 0.01, 0.04)]
    assert warnings_of(caplog, "user stream: ")
    venue.user_ws_enabled = True
    await until(lambda: us.connected)
    h = us.health()
    assert h.reconnects == 1 and h.down_since is None and calls == [False, True]
    n = len(spy.calls)
    assert [a for a, _, _ in spy.calls] == list(range(1, n + 1))
    o = await acct.place(acct.markets[0])
    await until(lambda: o in ids_of(events))
    await sb.drop_websockets()  # a second drop starts the backoff over
    await until(lambda: us.reconnects == 2 and us.connected)
    assert spy.calls[n][0] == 1 and calls == [False, True, True]
    infos = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.INFO]
    assert infos == ["user stream connected", "user stream reconnected", "user stream reconnected"]


async def test_ws_drop_rate_drops_are_survived(sb, acct, streams) -> None:
    events: list = []
    calls: list[bool] = []
    us = make(sb, acct, streams, events, on_connect=calls.append)
    await us.start(wait=5.0)
    sb.faults.update(ws_drop_rate=50.0)
    await until(lambda: us.reconnects >= 2)
    sb.faults.update(ws_drop_rate=0.0)
    await until(lambda: us.connected)
    assert calls == [False] + [True] * us.reconnects
    o = await acct.place(acct.markets[0])
    await until(lambda: o in ids_of(events))


async def test_drop_closes_the_socket_and_it_comes_back(sb, acct, streams) -> None:
    calls: list[bool] = []
    us = make(sb, acct, streams, [], on_connect=calls.append)
    await us.start(wait=5.0)
    await us.drop()
    await until(lambda: us.reconnects == 1 and us.connected)
    assert calls == [False, True]


async def test_a_coroutine_on_connect_runs_alongside_and_close_ends_it(sb, acct, streams) -> None:
    events: list = []
    runs: list[tuple[bool, asyncio.Task]] = []

    async def on_connect(reconnected: bool) -> None:
        runs.append((reconnected, asyncio.current_task()))  # type: ignore[arg-type]
        await asyncio.sleep(3600)  # a reconcile that is still running

    us = make(sb, acct, streams, events, on_connect=on_connect)
    await us.start(wait=5.0)
    await until(lambda: len(runs) == 1)
    o = await acct.place(acct.markets[0])  # events flow while it runs
    await until(lambda: o in ids_of(events))
    await us.drop()
    await until(lambda: len(runs) == 2)
    assert [r for r, _ in runs] == [False, True]
    assert all(not t.done() for _, t in runs)
    await us.close()
    assert all(t.cancelled() for _, t in runs)
    assert our_tasks() == []


async def test_a_sync_on_connect_that_raises_is_logged_never_fatal(sb, acct, streams, caplog) -> None:
    calls: list[bool] = []
    events: list = []

    def on_connect(reconnected: bool) -> None:
        calls.append(reconnected)
        raise RuntimeError("reconcile failed")

    us = make(sb, acct, streams, events, on_connect=on_connect)
    await us.start(wait=5.0)
    o = await acct.place(acct.markets[0])
    await until(lambda: o in ids_of(events))
    await us.drop()
    await until(lambda: us.reconnects == 1 and us.connected)
    assert calls == [False, True]
    failed = [r for r in caplog.records if r.name == LOGGER and r.getMessage() == "user stream: on_connect failed"]
    assert len(failed) == 2 and all(r.exc_info is not None for r in failed)


# ---------------------------------------------------------------------------------- start / close
async def test_start_warns_when_not_connected_in_time_and_keeps_trying(sb, acct, streams, caplog, monkeypatch) -> None:
    spy = BackoffSpy(monkeypatch)
    venue = trading_of(sb)
    venue.user_ws_enabled = False
    calls: list[bool] = []
    us = make(sb, acct, streams, [], on_connect=calls.append)
    down = us.down_since
    t0 = time.monotonic()
    await us.start(wait=0.3)
    assert time.monotonic() - t0 >= 0.3 and not us.connected
    assert warnings_of(caplog, "user stream not connected after") == ["user stream not connected after 0s; still trying"]
    assert us.down_since == down  # down since it was made, failed attempts move nothing
    assert [a for a, _, _ in spy.calls[:2]] == [1, 2]
    venue.user_ws_enabled = True
    await until(lambda: us.connected)
    assert calls == [False] and us.reconnects == 0  # the first connection is no reconnect


async def test_start_without_wait_returns_at_once(sb, acct, streams, caplog) -> None:
    us = make(sb, acct, streams, [])
    await us.start(wait=0)
    assert not us.connected
    await until(lambda: us.connected)
    assert warnings_of(caplog) == []


async def test_close_ends_everything_and_says_nothing(sb, acct, streams, caplog) -> None:
    venue = trading_of(sb)
    us = make(sb, acct, streams, [])
    await us.start(wait=5.0)
    assert venue.user_connections == 1 and our_tasks()
    await us.close()
    assert our_tasks() == [] and not us.connected
    await until(lambda: venue.user_connections == 0)
    assert warnings_of(caplog) == []
    await us.close()  # twice is harmless


async def test_close_while_waiting_to_reconnect_is_prompt(sb, acct, streams, monkeypatch) -> None:
    spy = BackoffSpy(monkeypatch, fixed=30.0)
    venue = trading_of(sb)
    us = make(sb, acct, streams, [])
    await us.start(wait=5.0)
    venue.user_ws_enabled = False
    await sb.drop_websockets()
    await until(lambda: len(spy.calls) == 1)  # now sleeping 30 s before the next attempt
    closing = asyncio.create_task(us.close())
    try:
        await until(closing.done, timeout=2.0)
    finally:
        closing.cancel()
    assert our_tasks() == []


async def test_a_cancelled_run_task_ends_without_reconnecting(sb, acct, streams) -> None:
    venue = trading_of(sb)
    calls: list[bool] = []
    us = make(sb, acct, streams, [], on_connect=calls.append)
    await us.start(wait=5.0)
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "user-stream"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not us.connected and us.down_since is not None
    await until(lambda: venue.user_connections == 0)
    await asyncio.sleep(0.3)  # several backoff windows: a reconnect would show here
    assert venue.user_connections == 0 and calls == [False] and our_tasks() == []


def test_defaults_follow_the_venue_keepalive() -> None:
    us = UserStream("ws://127.0.0.1:9/ws/user", auth=dict, on_event=lambda ev: None)
    # PING every 10 s; stale after 30 s without a frame (the venue's SDK); backoff 0.25 s .. 10 s
    assert (us.ping_sec, us.stale_sec, us.backoff_min, us.backoff_max) == (10.0, 30.0, 0.25, 10.0)


