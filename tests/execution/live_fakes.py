"""A scripted in-memory stand-in for the broker and the wire builders of the fast live-exchange
tests (`test_mut_live.py`, `test_mut_live2.py`; imported by module name, like `live_helpers`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from pmm_widgets.config import Settings
from pmm_widgets.domain import Market, Order, OrderStatus, Quote, Side
from pmm_widgets.events import EventBus
from pmm_widgets.execution.live import LiveExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.broker import BrokerError, CancelResult, Creds, PlaceResult
from pmm_widgets.venue.wire import Trade, TradeEvent, VenueOrder, convert

KEY = "11111111-2222-4333-8444-555555555555"
ADDR = "0xabcdef0000000000000000000000000000000001"
YES, NO, YES2, NO2 = "111", "222", "333", "444"
M1, M2 = "0xm1", "0xm2"
D = Decimal


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class FakeBroker:
    """The broker calls LiveExchange makes, scripted: `resting` is what the venue holds (venue id
    -> market), `refuse` the ids a cancel answers as not cancelled (id -> reason), `fail` the ops
    that raise BrokerError (op -> HTTP status or None)."""

    fast = False
    failures = 0
    address = ADDR
    funder = None

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.resting: dict[str, str] = {}
        self.refuse: dict[str, str] = {}
        self.fail: dict[str, int | None] = {}
        self.fail_once: set[str] = set()
        self.open: list[VenueOrder] = []
        self.tape: list[Trade] = []
        self.beats: list[int | None] = []  # heartbeat outcomes in turn: None ok, else the error status
        self.beat_log: list[tuple[float, str]] = []
        self.beat_within: list[float | None] = []  # each beat's bound on its retries
        self.place_results: list[PlaceResult] | None = None
        self.posted: list[tuple[list[tuple[Quote, Decimal, bool]], bool]] = []  # (items, dry_run) per POST
        self.on_post: Callable[[], None] | None = None  # runs while a POST is out (before its answer)
        self.n = 0
        self.closed = False
        self.creds = Creds(SecretStr(KEY), SecretStr("s"), SecretStr("p"))
        self.has_creds = True

    def _op(self, op: str, arg: Any = None) -> None:
        self.calls.append((op, arg))
        if op in self.fail:
            if op in self.fail_once:
                del self.fail[op]
            raise BrokerError(op, "boom", status=self.fail.get(op, 500))

    def ops(self, op: str) -> list[Any]:
        return [a for o, a in self.calls if o == op]

    def _result(self, ids: list[str]) -> CancelResult:
        for i in ids:
            self.resting.pop(i, None)
        return CancelResult([i for i in ids if i not in self.refuse], {i: self.refuse[i] for i in ids if i in self.refuse})

    async def cancel(self, ids: list[str]) -> CancelResult:
        self._op("cancel", list(ids))
        return self._result(list(ids))

    async def cancel_all(self) -> CancelResult:
        self._op("cancel_all")
        return self._result(list(self.resting) + [i for i in self.refuse if i not in self.resting])

    async def cancel_market(self, market: str | None = None, asset_id: str | None = None) -> CancelResult:
        self._op("cancel_market", market)
        return self._result([v for v, m in self.resting.items() if m == market])

    async def open_orders(self) -> list[VenueOrder]:
        self._op("open_orders")
        return list(self.open)

    async def trades(self, after: int | None = None) -> list[Trade]:
        self._op("trades", after)
        return list(self.tape)

    def stop_posting(self) -> None:
        self.calls.append(("stop_posting", None))

    async def post_orders(self, items: list[tuple[Quote, Decimal, bool]], dry_run: bool = False) -> list[PlaceResult]:
        self._op("post_orders", [q for q, _, _ in items])
        self.posted.append((list(items), dry_run))
        if self.on_post is not None:
            self.on_post()
        if self.place_results is not None:
            return self.place_results
        out = []
        for q, _, _ in items:
            self.n += 1
            vid = f"0xv{self.n}"
            self.resting[vid] = q.market
            out.append(PlaceResult(q, True, order_id=vid, status="live"))
        return out

    async def heartbeat(self, within: float | None = None) -> str:
        self.beat_log.append((time.monotonic(), self._hb_seen()))
        self.beat_within.append(within)
        st = self.beats.pop(0) if self.beats else None
        if st is not None:
            raise BrokerError("heartbeat", "no", status=st)
        return "ok"

    def _hb_seen(self) -> str:
        return self.ex._hb_state if hasattr(self, "ex") else ""

    async def aclose(self) -> None:
        self.closed = True


class FakeStream:
    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.closed = False

    def health(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True


def market(cid: str = M1, yes: str = YES, no: str = NO) -> Market:
    return Market(cid, "q", yes, no, D("0.01"), D("5"))


def make_ex(dry_run: bool = False, clock: Clock | None = None, started: bool = True, **kw: Any):
    s = Settings(_env_file=None, **{"db_url": "sqlite:////nonexistent/pmm-mut-live.db", **kw})
    sink = MemorySink()
    b = FakeBroker()
    ex = LiveExchange(s, sink, "http://clob", "ws://ws", dry_run=dry_run, broker=b, heartbeat_sec=0,
                      clock=clock or Clock(), events=EventBus())
    b.ex = ex  # type: ignore[attr-defined]
    ex._started = started
    ex._api_key = KEY
    ex._addresses = {ADDR}
    ex.set_markets([market(), market(M2, YES2, NO2)])
    return ex, b, sink


def add_open(ex: LiveExchange, vid: str, *, mkt: str = M1, token: str = YES, side: Side = Side.BUY,
             price: str = "0.40", size: str = "10", filled: str = "0", cid: str | None = None) -> Order:
    o = Order(cid or f"c-{vid}", mkt, token, side, D(price), D(size), ex.mode, status=OrderStatus.LIVE,
              filled=D(filled), venue_order_id=vid, created_ts=1.0, updated_ts=1.0)
    ex._open[o.client_id] = o
    ex._by_venue[vid] = o
    if isinstance(ex._broker, FakeBroker):
        ex._broker.resting[vid] = mkt
    return o


def row(sink: MemorySink, cid: str) -> dict[str, Any]:
    [r] = [r for r in sink.rows.get("orders", []) if r["client_id"] == cid]
    return r


# someone else's taker BUY of YES at 0.52 against makers: the fields a tape frame and a REST row share
TRADE = {"id": "t1", "taker_order_id": "0xtaker", "asset_id": YES, "side": "BUY", "price": "0.52", "size": "10",
         "owner": "someone", "trader_side": "MAKER", "market": M1}


def tr(**kw: Any) -> TradeEvent:
    return convert({"event_type": "trade", **TRADE, "status": "MATCHED", **kw}, TradeEvent)


def maker(oid: str, amount: str = "4", price: str = "0.40", asset: str = YES, **kw: Any) -> dict[str, Any]:
    return {"order_id": oid, "owner": KEY, "maker_address": "0x9", "matched_amount": amount, "price": price,
            "asset_id": asset, **kw}


def none_known(_: str) -> bool:
    return False


def pending_row(cid: str, price: str = "0.40", size: str = "10", side: str = "BUY", token: str = YES) -> dict[str, Any]:
    return {"client_id": cid, "market": M1, "token_id": token, "side": side, "price": price, "size": size,
            "status": "PENDING", "filled": 0, "venue_order_id": None, "created_ts": 1.0, "updated_ts": 1.0}


def vo(vid: str, price: str = "0.40", size: str = "10", side: str = "BUY", token: str = YES, matched: str = "0",
       mkt: str = M1, **kw: Any) -> VenueOrder:
    return convert({"id": vid, "market": mkt, "asset_id": token, "side": side, "price": price, "original_size": size,
                    "size_matched": matched, **kw}, VenueOrder)


def rest_trade(tid: str, vid: str, match_time: str, amount: str = "4") -> Trade:
    return convert({**TRADE, "id": tid, "status": "CONFIRMED", "match_time": match_time,
                    "maker_orders": [maker(vid, amount=amount)]}, Trade)


