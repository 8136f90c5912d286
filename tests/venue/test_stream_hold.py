"""Issue 12: while a quote cycle yields to the event loop, the market stream holds the books still
(`MarketStream.hold`): frames and REST answers are received (recorded, decoded) but applied only at
`release`, oldest first, each with its receive time: what a replay of the recording does (it
applies every frame at its receive time, after the cycle recorded before it). Nothing is lost,
the order is kept, and the books end exactly as if nothing had been held."""

from __future__ import annotations

import asyncio
import json

from loop_turns import loop_turns

from pmm_widgets.book import OrderBook
from pmm_widgets.venue.clob_rest import ClobPublic
from pmm_widgets.venue.market_stream import MarketStream

YES, NO = "111", "222"


def book_ev(asset: str, bids, asks, ts: int) -> dict:
    return {"event_type": "book", "market": "0xm", "asset_id": asset, "timestamp": str(ts), "hash": f"h{ts}",
            "tick_size": "0.01", "bids": [{"price": p, "size": s} for p, s in bids],
            "asks": [{"price": p, "size": s} for p, s in asks]}


def pc(asset: str, price: str, size: str, side: str, ts: int) -> str:
    return json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(ts), "price_changes": [
        {"asset_id": asset, "price": price, "size": size, "side": side, "hash": f"p{ts}"}]})


def trade(asset: str, ts: int) -> str:
    return json.dumps({"event_type": "last_trade_price", "market": "0xm", "asset_id": asset, "price": "0.45",
                       "size": "1", "side": "BUY", "fee_rate_bps": "0", "timestamp": str(ts)})


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[MarketStream, Clock, list[set[str]], list[str]]:
    clock = Clock()
    books = {YES: OrderBook(YES, "0xm"), NO: OrderBook(NO, "0xm")}
    changed: list[set[str]] = []
    prints: list[str] = []
    s = MarketStream("ws://127.0.0.1:9/ws", ClobPublic("http://127.0.0.1:9"), books, on_books=changed.append,
                     on_trade=lambda t: prints.append(f"{t.token_id}@{t.ts}"), clock=clock)
    s.handle_frame(json.dumps([book_ev(YES, [("0.40", "10"), ("0.45", "5")], [("0.55", "7")], 1000),
                               book_ev(NO, [("0.45", "7")], [("0.55", "5"), ("0.60", "10")], 1000)]))
    return s, clock, changed, prints


def state(s: MarketStream) -> dict:
    return {t: (b.wire_levels(), b.hash, b.venue_ts_ms, b.ts, b.synced) for t, b in s.books.items()}


# what arrives while a cycle holds the books: frames and a REST answer, in this order, 10 ms apart;
# two updates of the same level (order matters) and a REST snapshot newer than the first frames
SEQUENCE: list[tuple[str, str]] = [
    ("frame", pc(YES, "0.45", "8", "BUY", 2000)),
    ("frame", trade(YES, 2001)),
    ("rest", json.dumps([book_ev(NO, [("0.46", "4")], [("0.55", "5")], 2500)])),
    ("frame", pc(YES, "0.45", "9", "BUY", 3000)),
    ("frame", pc(NO, "0.47", "2", "BUY", 3100)),
    ("frame", "{not json"),  # a bad frame held is still a bad frame (counted once, at release)
    ("frame", pc(YES, "0.46", "1", "BUY", 3200)),
]


def feed(s: MarketStream, clock: Clock, items: list[tuple[str, str]]) -> list[set[str]]:
    out = []
    for kind, payload in items:
        clock.now += 0.01
        out.append(s.handle_frame(payload) if kind == "frame" else s.apply_rest_raw(payload, clock.now))
    return out


def test_held_frames_apply_at_release_in_order_with_their_receive_times():
    ref, rclock, _, ref_prints = make()
    feed(ref, rclock, SEQUENCE)  # nothing held: applied as received

    async def go() -> None:
        s, clock, changed, prints = make()
        before = state(s)
        await s.hold()
        touched = feed(s, clock, SEQUENCE)
        assert s.holding and s.backlog == len(SEQUENCE) and touched == [set()] * len(SEQUENCE)
        assert state(s) == before and prints == [] and len(changed) == 1  # nothing applied, no listener called
        assert s.stats.frames == ref.stats.frames and s.stats.bad_messages == 0  # received, not yet judged
        await asyncio.sleep(0.01)
        assert state(s) == before  # the applier leaves held items alone
        clock.now += 5.0  # released much later: each item still applies with its own receive time
        s.release()
        await s.settle()
        assert s.backlog == 0 and not s.holding
        assert state(s) == state(ref)
        assert abs(s.books[YES].ts - 5000.07) < 1e-6 and abs(s.books[NO].ts - 5000.05) < 1e-6
        assert prints == ref_prints == [f"{YES}@2.001"] and s.stats.bad_messages == ref.stats.bad_messages == 1
        assert changed[1:] == [{YES}, {NO}, {YES}, {NO}, {YES}]  # one listener call per applied item, in order
        assert s.handle_frame(pc(YES, "0.47", "1", "BUY", 4000)) == {YES}  # applied as received again

    asyncio.run(go())


def test_hold_applies_what_came_before_its_time_whole_and_keeps_what_came_after():
    """`hold(until)` (the engine: the cycle's time): items received up to `until` are applied
    first, whole (a large frame sliced by the applier is finished), later ones wait."""
    big = json.dumps([json.loads(pc(YES, f"0.{10 + k % 30:02d}", str(1 + k), "BUY", 1100 + k)) for k in range(200)])
    first = [("frame", big), *SEQUENCE[:3]]
    ref_first, c1, _, _ = make()
    feed(ref_first, c1, first)
    ref_all, c2, _, _ = make()
    feed(ref_all, c2, first + SEQUENCE[3:])

    async def go() -> None:
        s, clock, changed, _ = make()
        s.apply_budget_sec = 1e-9  # slices of SLICE_EVENTS events, a turn for the loop between them
        feed(s, clock, first)
        until = clock.now
        assert s.backlog == len(first) and state(s) != state(ref_first)  # the big frame went to the applier
        feed(s, clock, SEQUENCE[3:])
        await s.hold(until)
        assert state(s) == state(ref_first) and s.backlog == len(SEQUENCE) - 3
        assert changed[1] == {YES}  # the big frame's listeners heard once, when it was complete
        s.release()
        await s.settle()
        assert state(s) == state(ref_all) and s.backlog == 0

    asyncio.run(go())


def test_a_large_frame_is_applied_in_slices_with_turns_for_the_loop():
    ref, rclock, ref_changed, _ = make()
    big = json.dumps([json.loads(pc(YES if k % 2 else NO, f"0.{10 + k % 30:02d}", str(1 + k), "BUY", 1100 + k))
                      for k in range(400)])
    after = pc(YES, "0.45", "77", "BUY", 9000)
    feed(ref, rclock, [("frame", big), ("frame", after)])

    async def go() -> None:
        s, clock, changed, _ = make()
        s.apply_budget_sec = 1e-9
        async with loop_turns() as turns:
            feed(s, clock, [("frame", big)])
            await asyncio.sleep(0)
            feed(s, clock, [("frame", after)])  # arrives mid-frame: behind it
            await s.settle()
        assert turns[0] >= 400 // 32 - 1  # the loop ran between the slices
        assert state(s) == state(ref) and changed == ref_changed  # same listener calls (one per frame)

    asyncio.run(go())
