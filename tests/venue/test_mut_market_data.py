"""`MarketData` as its docstrings state it (mutation testing of pmm_widgets/venue/market_data.py).

- staleness: a book is stale when it is not synced, waits for a resync, has no live connection,
  or nothing confirmed it for more than `stale_sec`; the listeners' inline rule is `is_stale`'s;
- `view`: None before the first snapshot; the `stale` / `crossed` flags (crossed: best bid not
  below best ask);
- `record_now`: one `book_snapshots` row per synced book, depth within `depth_ticks` ticks;
- `checkpoint` and the recording loop: every `record_book_sec` a row per book, a checkpoint
  every 5 minutes (README: "the engine records one every 5 minutes"), a failure logged only;
- the tape (bounded), trade listeners (each guarded), `health`, markets, resolutions, lifecycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.book import BookNote, OrderBook
from pmm_widgets.domain import Market, PublicTrade, Side
from pmm_widgets.research.replayer import ReplayStream
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue import market_data as mdm
from pmm_widgets.venue.market_data import (
    CHECKPOINT_SEC,
    TAPE_KEPT,
    MarketData,
    book_checkpoint,
    checkpoint_books,
    new_book,
)
from pmm_widgets.venue.market_stream import MarketStream, _Conn
from pmm_widgets.venue.wire import MarketResolvedEvent

NOW = 1_796_000_000.0


class _Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class _Stream(MarketStream):
    """The market stream without sockets: what `MarketData` asks of it is logged."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, Any]] = []

    def start(self) -> None:
        self.calls.append(("start", None))

    async def close(self) -> None:
        self.calls.append(("close", None))

    async def set_assets(self, assets: Iterable[str]) -> None:
        self.calls.append(("set_assets", dict(assets)))  # type: ignore[call-overload]


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str, Any]] = []

    def record(self, channel: str, ts: float, kind: str, payload: str | None, conn: int = -1) -> None:
        self.rows.append((channel, ts, kind, json.loads(payload) if payload else payload))


def _md(clock: _Clock | None = None, **kw: Any) -> tuple[MarketData, MemorySink]:
    sink = MemorySink()
    return MarketData(None, "ws://x", sink, clock=clock or _Clock(), stream_cls=_Stream, **kw), sink


def _book(md: MarketData, token: str, bids: Iterable[tuple[str, str]] = (("0.40", "10"),),
          asks: Iterable[tuple[str, str]] = (("0.60", "7"),), *, ts: float = NOW, live: bool = True,
          market: str = "m") -> OrderBook:
    """A synced book of `md` (`ts`: its last update), live on a connection of its own or not."""
    b = md.books[token] = OrderBook(token, market, Decimal("0.01"))
    for p, q in bids:
        b.apply_change(p, q, "BUY")
    for p, q in asks:
        b.apply_change(p, q, "SELL")
    b.synced, b.ts = True, ts
    c = _Conn(0)
    c.ws = object() if live else None  # type: ignore[assignment]
    md.stream._conn_of[token] = c
    return b


def _market(cid: str, yes: str, no: str, tick: str = "0.001", mos: str = "15") -> Market:
    return Market(cid, "q?", yes, no, Decimal(tick), Decimal(mos))


def _trade(i: int, side: Side = Side.BUY) -> PublicTrade:
    return PublicTrade("a", "m", Decimal("0.5"), Decimal(i + 1), side, NOW + i)


# ------------------------------------------------------------------ staleness and views
def test_each_condition_alone_makes_a_book_stale() -> None:
    md, _ = _md(stale_sec=10.0)
    b = _book(md, "a", ts=NOW - 10.0)
    assert md.is_stale(b) is False  # exactly stale_sec old: still confirmed
    assert md.is_stale(b, NOW + 0.5) is True  # older than stale_sec (the time given wins over the clock)
    assert md.is_stale(b, NOW - 5.0) is False
    md.clock.t = NOW + 0.5  # type: ignore[attr-defined]
    assert md.is_stale(b) is True  # the clock's time when none is given
    md.clock.t = NOW  # type: ignore[attr-defined]
    b.needs_resync = True
    assert md.is_stale(b) is True
    b.needs_resync = False
    md.stream._conn_of["a"].ws = None
    assert md.is_stale(b) is True  # its connection is down
    md.stream._conn_of["a"].ws = object()  # type: ignore[assignment]
    del md.stream._conn_of["a"]
    assert md.is_stale(b) is True  # no connection carries it
    md.stream._conn_of["a"] = _Conn(1)
    md.stream._conn_of["a"].ws = object()  # type: ignore[assignment]
    assert md.is_stale(b) is False
    b.synced = False
    assert md.is_stale(b) is True


def test_the_defaults_stale_sec_30_and_the_quiet_time() -> None:
    md, _ = _md()
    b = _book(md, "a", ts=NOW - 30.0)
    assert md.is_stale(b) is False and md.is_stale(b, NOW + 0.01) is True
    assert md.stream.quiet_sec == 15.0  # min(15, 30 / 2)
    assert _md(stale_sec=10.0)[0].stream.quiet_sec == 5.0  # half of a short stale time
    assert _md(stale_sec=100.0)[0].stream.quiet_sec == 15.0  # at most 15 s
    assert _md(stale_sec=10.0, quiet_sec=2.0)[0].stream.quiet_sec == 2.0  # given: kept


def test_view_none_before_the_first_snapshot_then_flags() -> None:
    md, _ = _md(stale_sec=10.0)
    assert md.view("a") is None  # unknown token
    md.books["u"] = OrderBook("u", "m")
    assert md.view("u") is None  # not synced yet
    _book(md, "a", bids=[("0.40", "10"), ("0.39", "5")], asks=[("0.60", "7"), ("0.61", "3")])
    v = md.view("a")
    assert v is not None and v.stale is False and v.crossed is False
    assert [lv.price for lv in v.bids] == [Decimal("0.40"), Decimal("0.39")]
    v1 = md.view("a", 1)
    assert v1 is not None and len(v1.bids) == len(v1.asks) == 1  # depth passed on
    md.clock.t = NOW + 10.5  # type: ignore[attr-defined]
    v = md.view("a")
    assert v is not None and v.stale is True


@pytest.mark.parametrize("bid,ask,crossed", [("0.50", "0.50", True), ("0.55", "0.50", True),
                                             ("0.49", "0.50", False)])
def test_crossed_when_the_best_bid_is_not_below_the_best_ask(bid: str, ask: str, crossed: bool) -> None:
    md, sink = _md()
    _book(md, "a", bids=[(bid, "1")], asks=[(ask, "1")])
    v = md.view("a")
    assert v is not None and v.crossed is crossed
    md.record_now()
    assert sink.rows["book_snapshots"][0]["crossed"] is crossed


# the listeners' inline staleness rule against `is_stale`, with connections tracked or not
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 9.99, 10.0, 10.01, 50.0]), st.booleans(),
                          st.sampled_from(["live", "down", "none"])), min_size=1, max_size=5),
       st.booleans())
def test_listener_staleness_is_is_stale(books: list[tuple[float, bool, str]], tracking: bool) -> None:
    clock = _Clock()
    md = MarketData(None, "ws://x", MemorySink(), stale_sec=10.0, clock=clock, stream_cls=ReplayStream)
    stream: ReplayStream = md.stream  # type: ignore[assignment]
    stream.tracking = tracking
    for i, (age, resync, conn) in enumerate(books):
        b = _book(md, f"t{i}", ts=NOW - age, live=conn == "live")
        b.needs_resync = resync
        if conn == "none":
            del stream._conn_of[f"t{i}"]
    md.books["u"] = OrderBook("u", "m")  # never synced: no note
    got: list[BookNote] = []
    md.add_listener(on_books=got.extend)
    md._on_books(set(md.books) | {"gone"})
    assert sorted(n.token_id for n in got) == sorted(f"t{i}" for i in range(len(books)))
    for n in got:
        assert n.stale is md.is_stale(md.books[n.token_id]), n.token_id
        if not tracking:  # every book counts as live: stale by age or resync only
            age, resync, _ = books[int(n.token_id[1:])]
            assert n.stale is (resync or age > 10.0)


def test_no_listener_or_no_synced_book_no_call() -> None:
    md, _ = _md()
    md._on_books({"a"})  # no listener: nothing read
    calls: list[list[BookNote]] = []
    md.add_listener(on_books=calls.append)
    md.books["u"] = OrderBook("u", "m")
    md._on_books({"u", "x"})
    assert calls == []


def test_a_registration_adds_only_the_forms_it_gives(caplog: pytest.LogCaptureFixture) -> None:
    md, _ = _md()
    _book(md, "a")
    trades: list[PublicTrade] = []
    one: list[BookNote] = []
    frames: list[list[BookNote]] = []
    md.add_listener(on_trade=trades.append)  # a trade listener only: no book listener
    md._on_books({"a"})
    md.add_listener(on_book=one.append)  # a book listener only: no trade listener (nor an `on_books` one)
    md.add_listener(on_books=frames.append)  # (nor an `on_book` one)
    md._on_books({"a"})
    md._on_trade(_trade(0))
    assert trades == [_trade(0)] and len(one) == 1 and frames == [one]
    assert "listener failed" not in caplog.text  # nothing was called that is not a listener


# ------------------------------------------------------------------ recording
def test_record_now_one_row_per_synced_book() -> None:
    md, sink = _md(stale_sec=10.0)
    # bids at 0.40 (best), 0.38, 0.37 (3 ticks: in), 0.36 (4 ticks: out); asks 0.60, 0.63 (in), 0.64 (out)
    _book(md, "a", bids=[("0.40", "1"), ("0.38", "2"), ("0.37", "4"), ("0.36", "8")],
          asks=[("0.60", "16"), ("0.63", "32"), ("0.64", "64")], market="m1")
    _book(md, "b", bids=[], asks=[("0.70", "5")], ts=NOW - 11.0, market="m2")
    md.books["u"] = OrderBook("u", "m")  # not synced: no row
    assert md.record_now() == 2
    rows = {r["token_id"]: r for r in sink.rows["book_snapshots"]}
    assert set(rows) == {"a", "b"}
    a, b = rows["a"], rows["b"]
    assert a == {"token_id": "a", "market": "m1", "ts": NOW, "best_bid": Decimal("0.40"),
                 "best_ask": Decimal("0.60"), "mid": Decimal("0.50"), "spread": Decimal("0.20"),
                 "bid_depth": Decimal(7), "ask_depth": Decimal(48), "depth_ticks": 3, "bid_levels": 4,
                 "ask_levels": 3, "stale": False, "crossed": False}
    assert b["stale"] is True and b["best_bid"] is None and b["bid_depth"] == 0 and b["bid_levels"] == 0
    assert b["market"] == "m2" and b["ask_depth"] == Decimal(5)
    assert md.rows_recorded == 2
    assert md.record_now(NOW - 100.0) == 2  # at the time given: then "b" was fresh
    later = sink.rows["book_snapshots"][2:]
    assert [r["ts"] for r in later] == [NOW - 100.0] * 2 and not any(r["stale"] for r in later)
    assert md.rows_recorded == 4


def test_record_now_with_other_depth_ticks() -> None:
    md, sink = _md(depth_ticks=1)
    _book(md, "a", bids=[("0.40", "1"), ("0.39", "2"), ("0.38", "4")], asks=[("0.60", "16"), ("0.62", "32")])
    md.record_now()
    r = sink.rows["book_snapshots"][0]
    assert (r["bid_depth"], r["ask_depth"], r["depth_ticks"]) == (Decimal(3), Decimal(16), 1)


def test_checkpoint_without_a_recorder_is_nothing() -> None:
    md, _ = _md()
    _book(md, "a")
    assert md.checkpoint() == 0
    assert md._next_checkpoint == 0.0


def test_checkpoint_writes_the_trusted_books() -> None:
    rec = _Recorder()
    md, _ = _md(recorder=rec)
    a = _book(md, "a", bids=[("0.40", "10"), ("0.39", "5")], asks=[("0.60", "7")], ts=NOW - 3.0)
    a.hash, a.venue_ts_ms = "h1", 1_796_000_000_123
    _book(md, "r").needs_resync = True  # waits for a resync: not in it
    md.books["u"] = OrderBook("u", "m")  # not synced: not in it
    assert md.checkpoint() == 1
    assert md._next_checkpoint == NOW + CHECKPOINT_SEC
    assert rec.rows == [("rest", NOW, "checkpoint", [book_checkpoint(a)])]
    assert md.checkpoint(NOW + 7.0) == 1 and rec.rows[-1][1] == NOW + 7.0  # at the time given
    assert md._next_checkpoint == NOW + 7.0 + CHECKPOINT_SEC
    for t in list(md.books):
        md.books[t].synced = False
    assert md.checkpoint(NOW + 9.0) == 0
    assert len(rec.rows) == 2  # no empty checkpoint row
    assert md._next_checkpoint == NOW + 9.0 + CHECKPOINT_SEC  # the next one is due all the same


def test_book_checkpoint_is_a_wire_snapshot_best_level_last() -> None:
    md, _ = _md()
    b = _book(md, "a", bids=[("0.41", "10"), ("0.39", "5")], asks=[("0.61", "7"), ("0.62", "1.5")], ts=NOW - 2.5)
    b.hash, b.venue_ts_ms, b.min_order_size = "h", 123, Decimal("20")
    assert book_checkpoint(b) == {
        "asset_id": "a", "market": "m", "tick_size": "0.01", "min_order_size": "20", "timestamp": "123",
        "hash": "h", "local_ts": NOW - 2.5,
        "bids": [{"price": "0.39", "size": "5"}, {"price": "0.41", "size": "10"}],
        "asks": [{"price": "0.62", "size": "1.5"}, {"price": "0.61", "size": "7"}]}
    c = _book(md, "c")
    c.needs_resync = True
    u = OrderBook("u", "m")
    assert checkpoint_books([u, b, c]) == [book_checkpoint(b)]


async def _run_loop(md: MarketData, sleeps: int, monkeypatch: pytest.MonkeyPatch,
                    tick: Any = None) -> list[float]:
    """`md`'s recording loop for `sleeps` sleeps (each: `tick()` first), then cancelled."""
    slept: list[float] = []

    async def sleep(sec: float) -> None:
        slept.append(sec)
        if len(slept) > sleeps:
            raise asyncio.CancelledError
        if tick is not None:
            tick()

    inner = md.record_now
    recorded: list[int] = []

    def record_now(now: float | None = None) -> int:
        if len(recorded) >= sleeps:  # a loop that records without sleeping: ended here, not hung
            raise asyncio.CancelledError
        recorded.append(1)
        return inner(now)

    monkeypatch.setattr(mdm.asyncio, "sleep", sleep)
    monkeypatch.setattr(md, "record_now", record_now)
    with pytest.raises(asyncio.CancelledError):
        await md._record_loop()
    return slept


async def test_the_loop_records_every_record_book_sec_and_checkpoints_every_5_minutes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    rec = _Recorder()
    md, sink = _md(clock, recorder=rec)
    _book(md, "a")

    def tick() -> None:
        clock.t += 100.0

    slept = await _run_loop(md, 8, monkeypatch, tick)
    assert slept == [5.0] * 9  # the default record_book_sec
    assert len(sink.rows["book_snapshots"]) == 8
    # the first at once, then every 5 minutes: due at the 300th second, not a moment later
    assert [ts - NOW for _, ts, _, _ in rec.rows] == [100.0, 400.0, 700.0]
    assert 5 * 60 == CHECKPOINT_SEC


async def test_the_loop_sleeps_record_book_sec_and_without_a_recorder_never_checkpoints(
        monkeypatch: pytest.MonkeyPatch) -> None:
    md, sink = _md(record_book_sec=0.25)
    _book(md, "a")
    called: list[float | None] = []
    monkeypatch.setattr(md, "checkpoint", lambda now=None: called.append(now) or 0)
    assert await _run_loop(md, 2, monkeypatch) == [0.25] * 3
    assert len(sink.rows["book_snapshots"]) == 2 and called == []


async def test_a_recording_failure_is_logged_and_the_loop_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    md, _ = _md(recorder=_Recorder())
    n: list[int] = []

    def record_now(now: float | None = None) -> int:
        n.append(1)
        raise RuntimeError("disk")

    monkeypatch.setattr(md, "record_now", record_now)
    await _run_loop(md, 3, monkeypatch)
    assert len(n) == 3 and caplog.text.count("book recording failed") == 3


# ------------------------------------------------------------------ tape and trade listeners
def test_the_tape_is_bounded_and_recorded(caplog: pytest.LogCaptureFixture) -> None:
    md, sink = _md()
    assert md.tape.maxlen == TAPE_KEPT == 20_000
    got: list[PublicTrade] = []

    def bad(t: PublicTrade) -> None:
        raise RuntimeError("bug")

    md.add_listener(on_trade=bad)
    md.add_listener(on_trade=got.append)
    md._on_trade(_trade(0, Side.SELL))
    md._on_trade(_trade(1))
    assert list(md.tape) == got == [_trade(0, Side.SELL), _trade(1)]  # the one after the failing one hears them
    assert caplog.text.count("trade listener failed") == 2
    assert sink.rows["public_trades"] == [
        {"token_id": "a", "market": "m", "ts": NOW, "price": Decimal("0.5"), "size": Decimal(1), "side": "SELL"},
        {"token_id": "a", "market": "m", "ts": NOW + 1, "price": Decimal("0.5"), "size": Decimal(2), "side": "BUY"}]


def test_replace_listener_swaps_only_the_old_one() -> None:
    md, _ = _md()
    _book(md, "a")
    old: list[Any] = []
    other: list[Any] = []
    new: list[Any] = []
    md.add_listener(on_book=old.append, on_trade=old.append)
    md.add_listener(on_book=other.append, on_trade=other.append)
    md.replace_listener(old.append, new.append)
    md._on_books({"a"})
    md._on_trade(_trade(0))
    assert old == [] and len(new) == 2 and len(other) == 2
    assert [type(x) for x in new] == [BookNote, PublicTrade] == [type(x) for x in other]


# ------------------------------------------------------------------ health
def test_health() -> None:
    clock = _Clock()
    md, _ = _md(clock, stale_sec=10.0)
    assert md.markets == {} and md.books == {}  # before `set_markets`: no market
    h = md.health()
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.connected = True  # type: ignore[misc]  # a reading, not a state to change
    assert (h.connected, h.lag_sec, h.stale_tokens, h.last_message_ts) == (False, 0.0, 0, 0.0)  # no frame yet
    _book(md, "a")
    _book(md, "b", ts=NOW - 11.0)
    _book(md, "c", live=False)
    c = _Conn(0)
    c.assets.add("a")
    c.ws = object()  # type: ignore[assignment]
    md.stream.conns.append(c)
    st_ = md.stream.stats
    st_.last_message_ts, st_.reconnects, st_.bad_messages = NOW - 2.5, 3, 4
    h = md.health()
    assert (h.connected, h.lag_sec, h.reconnects, h.bad_messages, h.stale_tokens, h.last_message_ts) == \
        (True, 2.5, 3, 4, 2, NOW - 2.5)
    st_.last_message_ts = NOW + 1.0  # a frame stamped after the clock's now: no negative lag
    assert md.health().lag_sec == 0.0
    c.ws = None
    assert md.health().connected is False


# ------------------------------------------------------------------ markets, resolutions, lifecycle
async def test_set_markets_follows_exactly_these_markets() -> None:
    md, _ = _md()
    kept = _book(md, "y1")
    _book(md, "old")
    m1 = _market("c1", "y1", "n1")
    m2 = _market("c2", "y2", "", tick="0")  # a missing token; a tick not known yet
    await md.set_markets([m1, m2])
    assert md.markets == {"c1": m1, "c2": m2}
    assert set(md.books) == {"y1", "n1", "y2"} and md.books["y1"] is kept  # the old book dropped, this one kept
    n1, y2 = md.books["n1"], md.books["y2"]
    assert (n1.market, n1.tick_size, n1.min_order_size, n1.synced) == ("c1", Decimal("0.001"), Decimal(15), False)
    assert (y2.market, y2.tick_size) == ("c2", Decimal("0.01"))  # the default tick
    stream: _Stream = md.stream  # type: ignore[assignment]
    assert stream.calls == [("set_assets", {"y1": m1, "n1": m1, "y2": m2})]
    assert new_book("n1", m1).tick_size == Decimal("0.001")


def test_resolutions_pop_and_unpop_in_order() -> None:
    md, _ = _md()
    e = [MarketResolvedEvent(market=f"c{i}", winning_asset_id=f"w{i}") for i in range(4)]  # type: ignore[call-arg]
    md.stream.resolutions.extend(e[:2])
    assert md.pop_resolutions() == e[:2] and md.pop_resolutions() == []
    md.stream.resolutions.append(e[2])
    md.unpop_resolutions(e[:2])
    assert md.pop_resolutions() == [e[0], e[1], e[2]]


async def test_start_once_close_ends_what_it_owns() -> None:
    md, _ = _md()
    stream: _Stream = md.stream  # type: ignore[assignment]
    await md.start()
    task = md._record_task
    assert task is not None and not task.done()
    await md.start()
    assert md._record_task is task  # one recording task
    assert stream.calls == [("start", None), ("start", None)]
    await md.close()
    assert task.cancelled() and md._record_task is None and stream.calls[-1] == ("close", None)
    await md.close()  # twice: nothing left to end


async def test_close_closes_its_rest_client(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = MemorySink()
    md = MarketData("http://clob.invalid", "ws://x", sink, clock=_Clock(), stream_cls=_Stream)
    assert md.rest is not None and md.stream.rest is md.rest
    closed: list[int] = []

    async def aclose() -> None:
        closed.append(1)

    monkeypatch.setattr(md.rest, "aclose", aclose)
    await md.close()
    assert closed == [1]


async def test_a_cancel_of_close_still_closes_the_stream_and_the_rest_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel of `close` while it waits for the recording task to end (the engine's shutdown
    cancelled) still raises, but only once the stream and the REST client are closed as well:
    they are `MarketData`'s (`MarketStream.close` closes what it owns the same way)."""
    md = MarketData("http://clob.invalid", "ws://x", MemorySink(), clock=_Clock(), stream_cls=_Stream)
    assert md.rest is not None
    closed: list[int] = []

    async def aclose() -> None:
        closed.append(1)

    monkeypatch.setattr(md.rest, "aclose", aclose)
    await md.start()
    closer = asyncio.create_task(md.close())
    while md._record_task is not None:  # the closer is in its wait for the recording task
        await asyncio.sleep(0)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    stream: _Stream = md.stream  # type: ignore[assignment]
    assert stream.calls[-1] == ("close", None) and closed == [1]


async def test_a_failing_stream_close_still_closes_the_rest_client(monkeypatch: pytest.MonkeyPatch) -> None:
    md = MarketData("http://clob.invalid", "ws://x", MemorySink(), clock=_Clock(), stream_cls=_Stream)
    assert md.rest is not None
    closed: list[int] = []

    async def aclose() -> None:
        closed.append(1)

    async def broken() -> None:
        raise RuntimeError("socket")

    monkeypatch.setattr(md.rest, "aclose", aclose)
    monkeypatch.setattr(md.stream, "close", broken)
    with pytest.raises(RuntimeError, match="socket"):
        await md.close()
    assert closed == [1]
