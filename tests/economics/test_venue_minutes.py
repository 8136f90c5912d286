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
