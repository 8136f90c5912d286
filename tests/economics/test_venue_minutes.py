"""Issue 13: reward samples at the venue's own minutes. The market stream calls `on_venue_minute`
with each minute boundary its timestamps reach, on the books as the venue sampled them (every
event stamped before the boundary, none stamped at or after it); timestamps are checked against
the venue's clock when the engine knows it (a sandbox faster than real time is not "the future")."""

from __future__ import annotations

import json
from decimal import Decimal

from pmm_widgets.book import OrderBook
from pmm_widgets.venue.market_stream import FUTURE_SKEW_MS, MarketStream

T0 = 1_800_000_030.0  # 30 s into a minute
B = 1_800_000_060_000  # the next boundary (ms)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stream(now: float = T0) -> tuple[MarketStream, OrderBook]:
    b = OrderBook("7", "0xm", Decimal("0.01"), Decimal(5))
    s = MarketStream("ws://127.0.0.1:9", None, {"7": b}, clock=Clock(now))  # type: ignore[arg-type]
    s.handle_frame(json.dumps({"event_type": "book", "asset_id": "7", "market": "0xm", "timestamp": str(int(now * 1000)),
                               "hash": "a", "bids": [{"price": "0.4", "size": "10"}],
                               "asks": [{"price": "0.6", "size": "10"}]}))
    assert b.synced
    return s, b


def bid(s: MarketStream, ts_ms: int, size: int, local: float | None = None) -> None:
    """A price change stamped `ts_ms` by the venue, received at `local` (default: that instant)."""
    s.clock.now = ts_ms / 1000 if local is None else local  # type: ignore[attr-defined]
    s.handle_frame(json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(ts_ms),
                               "price_changes": [{"asset_id": "7", "price": "0.4", "size": str(size), "side": "BUY",
                                                  "best_bid": "0.4", "best_ask": "0.6"}]}))


def test_the_stream_samples_the_book_of_the_venues_minute() -> None:
    """The venue samples at the boundary: the book as every event stamped before it left it. The
    first event stamped at or after the boundary (the venue's step that reaches it, 50 ms after
    it in the fresh-clone CI failure) hands the boundary over before it applies."""
    s, b = stream()
    seen: list[tuple[int, Decimal]] = []
    s.on_venue_minute = lambda boundary: seen.append((boundary, b.bids[40]))
    guard = 1000
    bid(s, B - 20_000, 11)
    assert not s.venue_minute_pending(guard) and not seen  # mid-minute: a requote is safe
    bid(s, B - 500, 12)
    assert s.venue_minute_pending(guard)  # within the guard of the boundary
    bid(s, B + 50, 13)  # the venue's step that reaches the boundary: after its sample
    assert seen == [(B, Decimal(12))] and b.bids[40] == Decimal(13) and not s.venue_minute_pending(guard)
    bid(s, B + 150, 14)
    assert seen == [(B, Decimal(12))]
    bid(s, B + 3 * 60_000 + 10, 16)  # three minutes without a frame: the books stood still
    assert seen[1:] == [(B + 60_000, Decimal(14)), (B + 120_000, Decimal(14)), (B + 180_000, Decimal(14))]
    bid(s, B + 4 * 60_000, 17)  # stamped the boundary itself: after the sample too
    assert seen[-1] == (B + 240_000, Decimal(16)) and b.bids[40] == Decimal(17)


def test_late_frames_defer_to_the_venue_clock_near_a_boundary() -> None:
    """The requote guard: frames stopped mid-minute (a loaded loop), the venue clock says the
    boundary is near: pending; a clock far past the boundary is the one that is off: ignored."""
    s, _ = stream()
    bid(s, B - 30_000, 11)
    assert not s.venue_minute_pending(2000)
    assert s.venue_minute_pending(2000, venue_now_ms=B - 1000)
    assert s.venue_minute_pending(2000, venue_now_ms=B + 1000)
    assert not s.venue_minute_pending(2000, venue_now_ms=B + 30_000)


def test_a_failing_sampler_costs_no_frame() -> None:
    s, b = stream()

    def boom(_: int) -> None:
        raise RuntimeError("sampler bug")

    s.on_venue_minute = boom
    bid(s, B + 10, 12)
    bid(s, B + 200, 13)
    assert b.bids[40] == Decimal(13) and s.stats.bad_messages == 0 and not b.needs_resync


def test_timestamps_are_checked_against_the_venue_clock() -> None:
    """A sandbox at 20x is ten minutes ahead of us after 30 s: with its clock known, its frames are
    its time, not the future; without it they are clamped and the book distrusted."""
    ahead = 600_000
    s, b = stream()
    s.venue_clock = lambda now: now + ahead / 1000
    bid(s, int(T0 * 1000) + ahead, 12, local=T0)
    assert b.venue_ts_ms == int(T0 * 1000) + ahead and not b.needs_resync
    s2, b2 = stream()
    bid(s2, int(T0 * 1000) + ahead, 12, local=T0)
    assert b2.venue_ts_ms == int(T0 * 1000) + FUTURE_SKEW_MS and b2.needs_resync


def test_a_fill_in_the_step_that_reaches_the_minute_comes_after_the_sample() -> None:
    """The fresh-clone CI failure (one market: engine 0.002371, venue 0.001624): a background taker
    filled our order in the sandbox's step that reached the minute, 44 ms after it. The engine saw
    the book before that step (the stream's hook runs before the first event stamped at or after the
    boundary) and our order whole (`LiveExchange.orders_at` gives back the fills matched at or after
    the minute: the match time has whole seconds); the sandbox scored the book after that step's
    flow, our order filled: the engine credited itself a minute the venue did not pay. Both sides
    now take the boundary's instant, and the engine's estimate of that minute is the venue's."""
    from pmm_widgets.domain import Market, Mode, Order, OrderStatus, Side
    from pmm_widgets.economics.tracker import estimate_market, market_terms
    from pmm_widgets.sandbox.gamma import gamma_object
    from pmm_widgets.sandbox.simulator import Simulator
    from pmm_widgets.venue.gamma_terms import decode_terms

    start = 1_780_000_000.044  # the steps fall 44 ms after each boundary, as in the failing run
    sim = Simulator(markets=30, seed=5, start_ts=start)
    sm = max((m for m in sim.markets if m.has_book and m.program.active and m.best_bid_mil and m.best_ask_mil
              and 150 < m.best_bid_mil < 850 and m.best_ask_mil - m.best_bid_mil >= 2 * m.tick_mil),
             key=lambda m: m.activity)
    market = Market(sm.condition_id, sm.question, sm.yes_token_id, sm.no_token_id, sm.tick_size, sm.min_order_size,
                    neg_risk=sm.neg_risk, terms=decode_terms(gamma_object(sim, sm)))
    prog = market_terms(market)[0].program
    sim.watched = {sm.yes_token_id, sm.no_token_id}
    books = {t: OrderBook(t, sm.condition_id, sm.tick_size, sm.min_order_size) for t in sim.watched}
    s = MarketStream("ws://127.0.0.1:9", None, books, clock=Clock(sim.now()))  # type: ignore[arg-type]

    def feed(events: list) -> None:
        s.clock.now = sim.now()  # type: ignore[attr-defined]
        for ev in events:
            s.handle_frame(json.dumps(ev.payload))

    feed([type("E", (), {"payload": sim.book_event(t)})() for t in sim.watched])
    seen: dict[int, object] = {}
    s.on_venue_minute = lambda b: seen.setdefault(b, books[sm.yes_token_id].view())
    boundary = (start // 60 + 1) * 60
    feed(sim.run_until(boundary - 1))
    bb, ba = sim.best(sm.yes_token_id)
    so = sim.place_order("k", "k-1", sm.yes_token_id, Side.BUY, bb + sm.tick_size, max(prog.min_size, sm.min_order_size) * 2,
                         True)  # alone at the best bid: the first a selling taker hits
    while sim.now() + 0.1 < boundary:
        feed(sim.step())
    act = sim._act[sm.index]
    sim._act[sm.index] = act * 400  # a burst of flow in the step that reaches the minute
    events = sim.step()
    sim._act[sm.index] = act
    feed(events + sim.flush_account_events())
    crossing = [t for t in sim.account_trades("k") if t.ts == sim.now()]
    assert sim.now() > boundary and crossing, "the premise: our order filled in the step that reaches the minute"
    feed(sim.step())  # a later step: the boundary was handed over by now, whatever the rule
    view = seen[int(boundary * 1000)]
    # the engine's orders at the minute: the fills matched at or after it (whole seconds) given back
    before = sum((t.size for t in sim.account_trades("k") if int(t.ts) < boundary), Decimal(0))
    ours = Order(so.order_id, sm.condition_id, sm.yes_token_id, Side.BUY, so.price, so.original_size, Mode.LIVE,
                 OrderStatus.LIVE, before, venue_order_id=so.order_id)
    est = estimate_market(market, prog, view, [ours], ours_in_book=True)  # type: ignore[arg-type]
    led = sim.econ.ledgers.get(("k", sm.condition_id))
    last = led.last if led is not None and led.last.get("ts", 0) >= boundary else None  # None: we were not in the sample
    venue = None if last is None else (Decimal(last["mid"]), Decimal(last["q_min"]), Decimal(last["usd"]))
    assert est.usd > 0 and (est.mid, est.ours.q_min, est.usd) == venue
