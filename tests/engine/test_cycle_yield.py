"""Issue 12: a quote cycle that yields to the event loop (`QuoteCycle(yield_sec=...)`, engine runs
only) decides exactly what a cycle that holds the loop throughout decides, and the market stream
it reads holds its books still while it runs: a frame arriving mid-cycle is applied after it."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from engine_helpers import full_collections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_incremental_cycle import STEP, Books, Side, drive, markets

from pmm_widgets.book import OrderBook
from pmm_widgets.config import Params
from pmm_widgets.domain import Market, Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.clob_rest import ClobPublic
from pmm_widgets.venue.market_stream import MarketStream


def run_yield_pair(steps: list[dict], incremental: bool) -> int:
    ms = markets()
    whole, sliced = Side(incremental, ms), Side(incremental, ms)
    sliced.qc.yield_sec = 1e-9  # a turn for the loop before every market of every phase
    others = last = 0

    async def bystander() -> None:  # proves the loop ran inside the sliced cycles
        nonlocal others
        while True:
            await asyncio.sleep(0)
            others += 1

    def turns() -> None:  # the unyielding cycle gives none: every step's turns came from the sliced one
        nonlocal last
        assert others > last
        last = others

    async def go() -> None:
        task = asyncio.create_task(bystander())
        await drive(steps, whole, sliced, [Books(ms), Books(ms)], turns)
        task.cancel()

    asyncio.run(go())
    assert whole.qc.yields == 0
    return sliced.qc.yields


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=3, max_size=15), st.booleans())
def test_a_cycle_that_yields_decides_what_an_unyielding_one_decides(steps, incremental):
    assert run_yield_pair(steps, incremental) >= 3 * len(steps) * len(markets())


def test_a_frame_arriving_mid_cycle_is_applied_after_it_in_order():
    """The engine's path (`OwnerSession._held_cycle`): hold the stream, run a yielding cycle, release.
    Frames received during the cycle (here: injected at its first yields) change no book the cycle
    reads; after the release the books hold all of them, in arrival order; the cycle decided on
    the books as they were when it started (equal to an unyielding cycle on the untouched books)."""
    m = Market(condition_id="0xm", question="Q?", yes_token_id="111", no_token_id="222", tick_size=Decimal("0.01"),
               min_order_size=Decimal(5))

    clock = [1000.0]

    def stream() -> MarketStream:
        books = {t: OrderBook(t, "0xm") for t in m.token_ids}
        s = MarketStream("ws://127.0.0.1:9/ws", ClobPublic("http://127.0.0.1:9"), books, clock=lambda: clock[0])
        s.handle_frame(json.dumps([
            {"event_type": "book", "market": "0xm", "asset_id": "111", "timestamp": "1000000", "hash": "a",
             "bids": [{"price": "0.40", "size": "100"}], "asks": [{"price": "0.50", "size": "100"}]},
            {"event_type": "book", "market": "0xm", "asset_id": "222", "timestamp": "1000000", "hash": "b",
             "bids": [{"price": "0.50", "size": "100"}], "asks": [{"price": "0.60", "size": "100"}]}]))
        return s

    def moves(k: int) -> str:  # the YES touch moves up a tick per frame (and its mirror on NO)
        p, q = f"0.{41 + k:02d}", f"0.{59 - k:02d}"
        return json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(1000001 + k),
                           "price_changes": [{"asset_id": "111", "price": p, "size": "50", "side": "BUY"},
                                             {"asset_id": "222", "price": q, "size": "50", "side": "SELL"}]})

    def cycle(yield_sec: float) -> tuple[QuoteCycle, PaperExchange]:
        params = Params()
        sink = MemorySink()
        ex = PaperExchange(params, sink, seed=3, clock=lambda: 1000.0, session="s")
        return QuoteCycle(params, sink, Mode.PAPER, yield_sec=yield_sec), ex

    async def go() -> None:
        ref_stream, s = stream(), stream()
        ref_qc, ref_ex = cycle(0.0)
        await ref_qc.run_once(1000.0, [m], lambda t: ref_stream.books[t].view(), ref_ex)

        qc, ex = cycle(1e-9)
        sent = 0
        running = False

        async def venue() -> None:  # a frame at each turn the cycle gives the loop (three: one per phase)
            nonlocal sent
            while sent < 3:
                if running:
                    clock[0] += 0.001  # received after the cycle's time
                    s.handle_frame(moves(sent))
                    sent += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(venue())
        try:
            await s.hold(1000.0)
            running = True
            await qc.run_once(1000.0, [m], lambda t: s.books[t].view(), ex)
            assert s.books["111"].best_bid == Decimal("0.40")  # received, held
        finally:
            running = False
            held = s.backlog
            s.release()
        await s.settle()
        assert sent == 3 and held == 3 and qc.yields == 3 and s.backlog == 0
        await task
        assert qc.wanted == ref_qc.wanted and qc.wanted  # decided on the books as the cycle found them
        assert qc.snapshot().markets["0xm"].mid == ref_qc.snapshot().markets["0xm"].mid == Decimal("0.45")
        y, n = s.books["111"], s.books["222"]
        assert (y.best_bid, n.best_ask, y.venue_ts_ms) == (Decimal("0.43"), Decimal("0.57"), 1000003)
        bids, _ = y.wire_levels()  # every frame applied, none lost: each left its level
        assert bids == [(Decimal("0.43"), 50), (Decimal("0.42"), 50), (Decimal("0.41"), 50), (Decimal("0.40"), 100)]

    asyncio.run(go())


def test_full_collections_are_paced_between_cycles_and_the_thresholds_restored():
    import gc

    from pmm_widgets.engine import owner as owner_mod

    before = gc.get_threshold()
    pacer = owner_mod.FullCollections()
    pacer.start()
    try:
        assert gc.get_threshold()[2] == owner_mod.GC_NO_AUTO_FULL and gc.get_threshold()[:2] == before[:2]
        with full_collections() as full:
            junk = [[[] for _ in range(50)] for _ in range(20_000)]  # many middle collections, no full one
            del junk
            assert full == []
            pacer.between_cycles()  # not due yet
            assert full == []
            pacer.last -= owner_mod.GC_FULL_SEC
            pacer.between_cycles()
            assert full == [1]
    finally:
        pacer.stop()
    assert gc.get_threshold() == before


def test_a_stopped_engine_gives_back_what_it_froze():
    """`freeze_heap` at set-up, `FullCollections.stop` at the end of the quote loop: the process
    goes on (a notebook kernel) with nothing left in the permanent generation."""
    import gc

    from pmm_widgets.engine import owner as owner_mod

    pacer = owner_mod.FullCollections()
    assert owner_mod.freeze_heap() > 0
    pacer.start()
    pacer.stop()
    assert gc.get_freeze_count() == 0


def test_decided_is_called_after_every_decision_and_before_the_requote():
    """`run_once(decided=...)`: the live engine releases the market stream's hold there, so the
    requote's round trips do not hold the books still; it must come after the decisions (they read
    the held books) and before the execute phase (which waits on the venue)."""
    ms = markets()
    side = Side(False, ms)
    books = Books(ms)
    seen: list[tuple[int, int]] = []

    def decided() -> None:
        seen.append((len(side.qc.wanted), len(side.ex.open_orders())))

    async def go() -> None:
        await side.qc.run_once(side.now, ms, books.view, side.ex, decided=decided)

    asyncio.run(go())
    assert len(seen) == 1
    wanted, open_then = seen[0]
    assert wanted > 0 and open_then == 0  # decided, nothing placed yet
    assert len(side.ex.open_orders()) > 0  # the execute phase placed them after
