"""Paper exchange: the `Exchange` protocol over simulated fills against live (or sandbox) books.

Why it mimics the venue's refusals: what passes in paper must pass live, so a quote off the
grid, below min size, crossing the book (post-only) or selling shares we do not hold is
REJECTED here exactly as the CLOB would. Accepted orders rest at once (status LIVE) and fill
by the model chosen in `params.paper_fill_model` (see `fillmodels`), re-read on every call so a
notebook can switch models or knobs between cycles. Randomness comes from one seeded numpy
Generator, so a run over the same books and the same call sequence is reproducible.

Every order and each status change is upserted into `orders` (key client_id); every fill is a
`trades` row (PARTIAL or FILLED, mode 'paper', status 'MATCHED', raw_json with the model's
inputs and `book_mid`, the token's mid when the fill happened). Fills are returned by `poll()`; queue-model fills found while observing books and
trades wait there until the next poll.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any, Callable, Sequence

import numpy as np

from ..config import Params
from ..domain import ZERO, BookView, Fill, FillType, Market, Mode, Order, OrderStatus, PublicTrade, Quote, Side
from ..store.sink import Sink
from .exchange import venue_rule_violation
from .fillmodels import (
    DEFAULT_REF_DEPTH,
    QueuePosition,
    draw_fill_size,
    fill_probability,
    intensity_rate,
    touch_depth,
    touch_distance,
)


class PaperExchange:
    mode = Mode.PAPER

    def __init__(
        self,
        params: Params,
        sink: Sink,
        seed: int = 0,
        ref_depth: float = DEFAULT_REF_DEPTH,
        clock: Callable[[], float] = time.time,
        session: str | None = None,
    ) -> None:
        self.params = params
        self.sink = sink
        self.rng = np.random.default_rng(seed)
        self.ref_depth = ref_depth
        self._clock = clock
        self._session = session or uuid.uuid4().hex[:8]  # replays pass their run id: deterministic ids
        self._seq = 0
        self._markets: dict[str, Market] = {}  # token id → market
        self._books: dict[str, BookView] = {}
        self._orders: dict[str, Order] = {}  # open orders, in placement order
        self._by_token: dict[str, dict[str, Order]] = {}  # the same, per token (book updates are per token)
        self._sim_ts: dict[str, float] = {}
        self._queues: dict[str, QueuePosition] = {}
        self._pending: list[Fill] = []
        self._last_now: float | None = None
        self.positions: dict[str, Decimal] = {}  # token id → shares held

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.cancel_all()

    def set_markets(self, markets: Sequence[Market]) -> None:
        self._markets = {t: m for m in markets for t in m.token_ids}

    def _now(self) -> float:
        return self._last_now if self._last_now is not None else self._clock()

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-{self._session}-{self._seq}"

    def _record_order(self, o: Order) -> None:
        self.sink.upsert("orders", {
            "client_id": o.client_id, "venue_order_id": o.venue_order_id, "mode": o.mode.value,
            "market": o.market, "token_id": o.token_id, "side": o.side.value, "price": o.price,
            "size": o.size, "filled": o.filled, "status": o.status.value, "reason": o.reason,
            "created_ts": o.created_ts, "updated_ts": o.updated_ts,
        }, key=["client_id"])

    # -- orders --------------------------------------------------------------------------------
    def _reject_reason(self, q: Quote) -> str | None:
        rule = venue_rule_violation(q, self._markets.get(q.token_id))
        if rule is not None:
            return rule
        book = self._books.get(q.token_id)
        if book is not None:
            if q.side is Side.BUY and book.best_ask is not None and q.price >= book.best_ask:
                return "post-only: would cross the best ask"
            if q.side is Side.SELL and book.best_bid is not None and q.price <= book.best_bid:
                return "post-only: would cross the best bid"
        if q.side is Side.SELL:
            reserved = sum((o.remaining for o in self._by_token.get(q.token_id, {}).values()
                            if o.side is Side.SELL), ZERO)
            if self.positions.get(q.token_id, ZERO) - reserved < q.size:
                return "not enough balance to sell"
        return None

    async def place(self, quotes: Sequence[Quote]) -> list[Order]:
        now = self._now()
        out: list[Order] = []
        for q in quotes:
            o = Order(self._next_id("pp"), q.market, q.token_id, q.side, q.price, q.size, Mode.PAPER,
                      created_ts=now, updated_ts=now)
            o.venue_order_id = o.client_id
            reason = self._reject_reason(q)
            if reason is not None:
                o.status, o.reason = OrderStatus.REJECTED, reason
            else:
                o.status = OrderStatus.LIVE
                self._orders[o.client_id] = o
                self._by_token.setdefault(o.token_id, {})[o.client_id] = o
                self._sim_ts[o.client_id] = now
                book = self._books.get(q.token_id)
                level = book.size_at(q.side, q.price) if book is not None else ZERO
                self._queues[o.client_id] = QueuePosition(ahead=level, level=level)
            self._record_order(o)
            out.append(o)
        return out

    def _close_order(self, o: Order, status: OrderStatus, reason: str = "", ts: float | None = None) -> None:
        o.status, o.reason, o.updated_ts = status, reason, self._now() if ts is None else ts
        self._orders.pop(o.client_id, None)
        self._by_token.get(o.token_id, {}).pop(o.client_id, None)
        self._sim_ts.pop(o.client_id, None)
        self._queues.pop(o.client_id, None)
        self._record_order(o)

    async def cancel(self, client_ids: Sequence[str]) -> list[str]:
        done: list[str] = []
        for cid in client_ids:
            o = self._orders.get(cid)
            if o is not None:
                self._close_order(o, OrderStatus.CANCELED, "cancelled")
                done.append(cid)
        return done

    async def cancel_market(self, market: str) -> int:
        return len(await self.cancel([o.client_id for o in self._orders.values() if o.market == market]))

    async def cancel_all(self) -> int:
        return len(await self.cancel(list(self._orders)))

    async def count_venue_open_orders(self) -> int:
        return len(self._orders)

    def open_orders(self) -> list[Order]:
        return list(self._orders.values())

    # -- fills ---------------------------------------------------------------------------------
    def _fill(self, o: Order, size: Decimal, ts: float, raw: dict[str, Any]) -> None:
        size = min(size, o.remaining)
        if size <= 0:
            return
        o.filled += size
        o.updated_ts = ts
        done = o.remaining <= 0
        o.status = OrderStatus.FILLED if done else OrderStatus.PARTIAL
        ftype = FillType.FILLED if done else FillType.PARTIAL
        delta = size if o.side is Side.BUY else -size
        self.positions[o.token_id] = self.positions.get(o.token_id, ZERO) + delta
        book = self._books.get(o.token_id)
        mid = book.mid if book is not None else None
        raw = {**raw, "source": "paper", "book_mid": None if mid is None else str(mid)}
        fill = Fill(self._next_id("pt"), o.client_id, o.market, o.token_id, o.side, o.price, size,
                    ftype, Mode.PAPER, ts, venue_order_id=o.venue_order_id, raw=raw)
        self.sink.insert("trades", {
            "trade_id": fill.trade_id, "order_id": o.client_id, "venue_order_id": o.venue_order_id,
            "market": o.market, "token_id": o.token_id, "side": o.side.value, "price": o.price,
            "size": size, "fill_type": ftype.value, "mode": Mode.PAPER.value, "status": "MATCHED",
            "ts": ts, "raw_json": raw,
        })
        if done:
            self._close_order(o, OrderStatus.FILLED, ts=ts)
        else:
            self._record_order(o)
        self._pending.append(fill)

    def observe_book(self, book: BookView) -> None:
        self._books[book.token_id] = book
        queue_mode = self.params.paper_fill_model == "queue"
        ts = book.ts or self._now()
        for o in list(self._by_token.get(book.token_id, {}).values()):
            qp = self._queues.get(o.client_id)
            if qp is None:
                continue
            qp.on_level(book.size_at(o.side, o.price))
            through = (book.best_ask is not None and book.best_ask <= o.price) if o.side is Side.BUY \
                else (book.best_bid is not None and book.best_bid >= o.price)
            if queue_mode and through:
                self._fill(o, o.remaining, ts, {"model": "queue", "cause": "book_through"})

    def observe_trade(self, trade: PublicTrade) -> None:
        """A print eats the resting orders it could have met, best price first, once each share."""
        queue_mode = self.params.paper_fill_model == "queue"
        makers = [o for o in self._by_token.get(trade.token_id, {}).values() if o.side is not trade.side]
        makers.sort(key=lambda o: o.price, reverse=trade.side is Side.SELL)  # a seller hits the highest bid first
        left = trade.size
        for o in makers:
            qp = self._queues.get(o.client_id)
            if qp is None or left <= 0:
                continue
            if trade.price == o.price:
                left, cause = qp.on_trade_at_price(left), "trade_at_price"
            elif (trade.price < o.price) if o.side is Side.BUY else (trade.price > o.price):
                cause = "trade_through"
            else:
                continue
            size = min(left, o.remaining)
            left -= size
            if queue_mode and size > 0:
                self._fill(o, size, trade.ts or self._now(), {"model": "queue", "cause": cause, "ahead": str(qp.ahead)})

    async def poll(self, now: float) -> list[Fill]:
        self._last_now = now
        if self.params.paper_fill_model == "intensity":
            self._simulate_intensity(now)
        fills, self._pending = self._pending, []
        return fills

    def _simulate_intensity(self, now: float) -> None:
        p = self.params
        for o in list(self._orders.values()):
            start = self._sim_ts.get(o.client_id, now)
            dt = now - start
            if dt <= 0:
                continue
            self._sim_ts[o.client_id] = now
            book = self._books.get(o.token_id)
            m = self._markets.get(o.token_id)
            if book is None or m is None:
                continue
            dist = touch_distance(book, o.side, o.price)
            depth = touch_depth(book, o.side, o.price)
            rate = intensity_rate(p, dist, depth, self.ref_depth)
            if self.rng.random() >= fill_probability(rate, dt):
                continue
            size = draw_fill_size(self.rng, p, o.remaining, m.min_order_size)
            self._fill(o, size, now, {"model": "intensity", "distance": dist, "touch_depth": depth,
                                      "rate_per_min": rate * 60.0, "dt": dt})
