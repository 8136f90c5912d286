"""Synthetic markets and books for the strategy / paper / analytics tests (pure, no sockets)."""

from __future__ import annotations

from decimal import Decimal

from pmm_widgets.analytics.fidelity import Recording
from pmm_widgets.domain import BookView, Fill, FillType, Level, Market, Mode, PublicTrade, Quote, Side

D = Decimal


def make_market(i: int = 0, tick: str = "0.01", min_size: str = "5", **kw) -> Market:
    return Market(condition_id=f"0xc{i}", question=f"Q{i}?", yes_token_id=f"y{i}", no_token_id=f"n{i}",
                  tick_size=D(tick), min_order_size=D(min_size), **kw)


def book(token: str, market: str, bids, asks, tick: str = "0.01", ts: float = 0.0, **kw) -> BookView:
    return BookView(token_id=token, market=market,
                    bids=tuple(Level(D(str(p)), D(str(s))) for p, s in bids),
                    asks=tuple(Level(D(str(p)), D(str(s))) for p, s in asks),
                    tick_size=D(tick), min_order_size=D("5"), ts=ts, **kw)


def mirror_books(m: Market, bid: str, ask: str, size: str = "100", depth: int = 3, ts: float = 0.0):
    """YES book with touch bid/ask and `depth` levels, and its mirror NO book (NO bid = 1 − YES ask)."""
    t = m.tick_size
    b, a = D(bid), D(ask)
    ybids = [(b - i * t, size) for i in range(depth) if b - i * t > 0]
    yasks = [(a + i * t, size) for i in range(depth) if a + i * t < 1]
    nbids = [(1 - p, s) for p, s in yasks]
    nasks = [(1 - p, s) for p, s in ybids]
    return (book(m.yes_token_id, m.condition_id, ybids, yasks, str(t), ts),
            book(m.no_token_id, m.condition_id, nbids, nasks, str(t), ts))


class WalkingBooks:
    """Mirrored YES/NO books whose touch random-walks by whole ticks (seeded), for cycle runs."""

    def __init__(self, markets: list[Market], seed: int = 0, spread_ticks: int = 2, size: str = "100") -> None:
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self.markets = markets
        self.spread_ticks = spread_ticks
        self.size = size
        self.bid_ticks = {m.condition_id: int(self.rng.integers(30, 70)) for m in markets}
        self.views: dict[str, BookView] = {}
        self.stale: set[str] = set()

    def step(self, ts: float) -> None:
        for m in self.markets:
            n = int(1 / m.tick_size)
            b = self.bid_ticks[m.condition_id] + int(self.rng.choice([-1, 0, 0, 0, 1]))
            b = min(max(b, 5), n - 5 - self.spread_ticks)
            self.bid_ticks[m.condition_id] = b
            y, no = mirror_books(m, str(m.tick_size * b), str(m.tick_size * (b + self.spread_ticks)), self.size, ts=ts)
            if m.condition_id in self.stale:
                y = BookView(**{**{f: getattr(y, f) for f in y.__slots__}, "stale": True})
            self.views[y.token_id], self.views[no.token_id] = y, no

    def view(self, token_id: str) -> BookView | None:
        return self.views.get(token_id)


def fidelity_recording() -> Recording:
    """(`analytics.fidelity`) Two bids rest behind 10 shares; sells of 15 then 20 at the bid fill 5 then 10 of one of
    them live; the mid then rises a cent."""
    m = make_market(0)
    cm = m.condition_id
    rec = Recording([m], seconds=60.0, speed=1.0, rtt_ms=[20.0])
    q = Quote(cm, "y0", Side.BUY, D("0.45"), D(15))
    rec.events += [
        ("book", 0.0, book("y0", cm, [("0.45", 10)], [("0.48", 100)], ts=0.0)),
        ("place", 1.0, [("L1", q)]),
        ("poll", 2.0),
        ("trade", 3.0, PublicTrade("y0", cm, D("0.45"), D(15), Side.SELL, 3.0, recv_ts=3.0)),
        ("book", 3.0, book("y0", cm, [("0.45", 10)], [("0.48", 100)], ts=3.0)),
        ("trade", 4.0, PublicTrade("n0", cm, D("0.55"), D(20), Side.BUY, 4.0, recv_ts=4.0)),  # the NO tape
        ("poll", 4.5),
        ("book", 40.0, book("y0", cm, [("0.46", 10)], [("0.49", 100)], ts=40.0)),
        ("poll", 41.0),
    ]
    for t, size, kind in ((3.0, "5", FillType.PARTIAL), (4.0, "10", FillType.FILLED)):
        rec.live_fills.append((t, Fill(f"t{t}", "L1", cm, "y0", Side.BUY, D("0.45"), D(size), kind, Mode.LIVE, t)))
    return rec
