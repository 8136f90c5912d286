"""What the paper exchange's book-path tests share (tests/execution/test_paper_fastpath.py,
test_paper_batch.py): two exchanges driven through one random sequence of frames, prints,
placements, cancels, polls, fill-model switches and knob changes (`run_pair`), their state
compared after every step and their rows at the end; only how a frame's books reach each
exchange (`one_by_one`, `at_once`) and the exchange's class differ between the tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from hypothesis import strategies as st

from pmm_widgets.book import BookNote, as_view
from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Market, PublicTrade, Quote, Side
from pmm_widgets.execution.latency_model import ConstantLatency
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink

D = Decimal
MARKETS = [Market(condition_id=f"0xc{i}", question=f"Q{i}?", yes_token_id=f"y{i}", no_token_id=f"n{i}",
                  tick_size=D("0.01"), min_order_size=D(5)) for i in range(2)]
TOKENS = [t for m in MARKETS for t in m.token_ids]
MODELS = ("intensity", "queue", "prob_queue")


class FullPath(PaperExchange):
    """Every book update through the full path (the code before the fast path)."""

    def observe_book(self, book: BookView | BookNote) -> None:
        self._books.put(book)
        self._observe_book(as_view(book))


def market_of(token: str) -> Market:
    return next(m for m in MARKETS if token in m.token_ids)


def view(i: int, bid: int, spread: int, s1: int, s2: int, ts: float) -> BookView:
    """Token `i`'s book: 3 levels a side from `bid` (cents), `spread` ticks wide, sizes from `s1` / `s2`."""
    token = TOKENS[i]
    return BookView(token_id=token, market=market_of(token).condition_id,
                    bids=tuple(Level(D(bid - k) / 100, D(s1 + 10 * k)) for k in range(3) if s1 + k),
                    asks=tuple(Level(D(bid + spread + k) / 100, D(s2 + 5 * k)) for k in range(3) if s2 + k),
                    tick_size=D("0.01"), min_order_size=D(5), ts=ts)


def fills(got: list) -> list:
    """Fills as comparable tuples: ids, sizes, times and the model's inputs (`raw`)."""
    return [(f.trade_id, f.order_client_id, f.token_id, f.side, f.price, f.size, f.fill_type, f.ts, f.fee, f.mid,
             sorted(f.raw.items())) for f in got]


tok = st.sampled_from([0, 0, 0, 1, 2])  # y0 most often: our orders meet the books and prints there
side = st.sampled_from([Side.BUY, Side.SELL])
UPDATE = st.tuples(tok, st.integers(20, 60), st.integers(1, 4), st.integers(0, 200), st.integers(0, 200))
OPS = st.one_of(
    st.tuples(st.just("trade"), tok, st.integers(15, 85), st.integers(1, 80), side),
    st.tuples(st.just("place"), tok, side, st.integers(20, 65), st.integers(5, 40)),
    st.tuples(st.just("cancel"), st.integers(0, 7)),
    st.tuples(st.just("poll")),
    st.tuples(st.just("model"), st.sampled_from(MODELS)),
    st.tuples(st.just("knobs"), st.sampled_from([20.0, 50.0, 200.0]), st.sampled_from([0.0, 60.0, 600.0])),
    st.tuples(st.just("wait"), st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0])),
)
FRAME = st.tuples(st.just("frame"), st.lists(UPDATE, min_size=1, max_size=5))
ONE_BOOK = st.tuples(st.just("frame"), st.lists(UPDATE, min_size=1, max_size=1))
# placements (bids, on y0 mostly) and waits past the latencies, among everything else
PLACE = st.tuples(st.just("place"), st.just(0), st.just(Side.BUY), st.integers(35, 50), st.integers(5, 40))
WAIT = st.tuples(st.just("wait"), st.sampled_from([0.1, 0.4]))

Feed = Callable[[PaperExchange, Sequence[BookView]], None]


def one_by_one(ex: PaperExchange, views: Sequence[BookView]) -> None:
    for v in views:
        ex.observe_book(v)


def at_once(ex: PaperExchange, views: Sequence[BookView]) -> None:
    ex.observe_books(views)


async def run_pair(model: str, latency_ms: float, ops: list[tuple],
                   a: tuple[type[PaperExchange], Feed], b: tuple[type[PaperExchange], Feed]) -> None:
    """`ops` through two exchanges (`a`, `b`: the class and how a frame's books reach it); their
    state compared after every step, their rows at the end."""
    now = [100.0]
    exes = []
    for cls, _ in (a, b):
        lat = ConstantLatency(latency_ms, feed_ms=latency_ms / 4) if latency_ms else None
        ex = cls(Params(paper_fill_model=model, paper_fill_intensity=600.0, paper_spread_k=20.0), MemorySink(),
                 seed=5, clock=lambda: now[0], latency=lat, session="s", infer_side=True)
        ex.set_markets(MARKETS)
        exes.append(ex)
    ea, eb = exes
    for op in ops:
        kind = op[0]
        if kind == "wait":
            now[0] += op[1]
            continue
        if kind == "frame":
            views = [view(*u, ts=now[0] + 0.3 * j) for j, u in enumerate(op[1])]  # (a frame: the books of one time, or
            # stored ones of earlier times: later ones in it may deliver what an earlier one caused)
            a[1](ea, views)
            b[1](eb, views)
        for ex in exes:
            if kind == "trade":
                _, i, px, size, sd = op
                ex.observe_trade(PublicTrade(TOKENS[i], market_of(TOKENS[i]).condition_id, D(px) / 100, D(size), sd,
                                             now[0], now[0]))
            elif kind == "place":
                _, i, sd, px, size = op
                await ex.place([Quote(market_of(TOKENS[i]).condition_id, TOKENS[i], sd, D(px) / 100, D(size))])
            elif kind == "cancel":
                open_ = ex.open_orders()
                if open_:
                    await ex.cancel([open_[op[1] % len(open_)].client_id])
            elif kind == "model":
                ex.params.paper_fill_model = op[1]
            elif kind == "knobs":
                ex.params.update(paper_spread_k=op[1], paper_latent_intensity=op[2])
        if kind == "poll":
            assert fills(await ea.poll(now[0])) == fills(await eb.poll(now[0]))
        assert ea.positions == eb.positions
        assert fills(ea._pending) == fills(eb._pending)  # delivered, not yet polled
        assert list(ea.venue_orders) == list(eb.venue_orders)
        assert [(o.client_id, o.status, o.filled) for o in ea.open_orders()] == \
            [(o.client_id, o.status, o.filled) for o in eb.open_orders()]
        assert ea._latest == eb._latest
    assert fills(await ea.poll(now[0] + 5)) == fills(await eb.poll(now[0] + 5))
    assert ea.rec.sink.rows == eb.rec.sink.rows  # type: ignore[attr-defined]
