"""What a mutation pass over engine/cycle.py (`QuoteCycle`) found untested: each test pins one
decision of the cycle that the suite let change unseen (what is quoted, when quoting stops, how
fills, settlements, payouts and rewards are booked, what is persisted and what the faces read)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from loop_turns import loop_turns

from pmm_widgets.analytics.markouts import HORIZONS
from pmm_widgets.config import Params
from pmm_widgets.domain import (
    BookView,
    Fill,
    FillType,
    GammaFeeSchedule,
    GammaTerms,
    Level,
    Market,
    Mode,
    Order,
    OrderStatus,
    Quote,
    Side,
)
from pmm_widgets.economics.rewards import QScore
from pmm_widgets.economics.tracker import RewardSample, estimate_market
from pmm_widgets.engine import cycle as cycle_module
from pmm_widgets.engine.cycle import QuoteCycle, requote
from pmm_widgets.engine.snapshot import NO_PNL, SnapshotTotals
from pmm_widgets.events import EventBus, EventKind
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.strategy.base import Decision, Regime

D = Decimal
T0 = 1_796_200_000.0


def mkt(i: int = 0, tick: str = "0.01", **kw: Any) -> Market:
    return Market(condition_id=f"0xc{i}", question=f"Q{i}?", yes_token_id=f"y{i}", no_token_id=f"n{i}",
                  tick_size=D(tick), min_order_size=D("5"), **kw)


def views(m: Market, bid: str, ask: str, size: str = "100", tick: str = "0.01", **kw: Any) -> tuple[BookView, BookView]:
    """The YES book with touch bid/ask and its mirror NO book."""
    b, a = D(bid), D(ask)
    y = BookView(m.yes_token_id, m.condition_id, (Level(b, D(size)),), (Level(a, D(size)),), D(tick), **kw)
    n = BookView(m.no_token_id, m.condition_id, (Level(1 - a, D(size)),), (Level(1 - b, D(size)),), D(tick), **kw)
    return y, n


class Books:
    def __init__(self) -> None:
        self.v: dict[str, BookView] = {}

    def set(self, m: Market, bid: str, ask: str, **kw: Any) -> None:
        y, n = views(m, bid, ask, **kw)
        self.v[y.token_id], self.v[n.token_id] = y, n

    def __call__(self, token: str) -> BookView | None:
        return self.v.get(token)


class FakeEx:
    """An exchange that rests every quote it is given, fills nothing unless told, and records calls."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.fills: list[Fill] = []
        self.calls: list[tuple[str, Any]] = []
        self.n = 0
        self.reject: set[str] = set()  # token ids whose quotes come back REJECTED
        self.stuck: set[str] = set()  # client ids a cancel does not remove
        self.cancels = 0  # orders cancelled (`Exchange.cancels`: the totals' count)

    def set_markets(self, markets: Sequence[Market]) -> None:
        self.calls.append(("set_markets", [m.condition_id for m in markets]))

    def observe_book(self, book: Any) -> None:
        pass

    async def poll(self, now: float) -> list[Fill]:
        out, self.fills = self.fills, []
        return out

    def open_orders(self) -> list[Order]:
        return list(self.orders.values())

    async def place(self, quotes: Sequence[Quote]) -> list[Order]:
        self.calls.append(("place", list(quotes)))
        out = []
        for q in quotes:
            self.n += 1
            st = OrderStatus.REJECTED if q.token_id in self.reject else OrderStatus.LIVE
            o = Order(f"c{self.n}", q.market, q.token_id, q.side, q.price, q.size, Mode.PAPER, st)
            if st is OrderStatus.LIVE:
                self.orders[o.client_id] = o
            out.append(o)
        return out

    async def cancel(self, ids: Sequence[str]) -> list[str]:
        self.calls.append(("cancel", list(ids)))
        done = [i for i in ids if i not in self.stuck and self.orders.pop(i, None) is not None]
        self.cancels += len(done)
        return done

    async def cancel_market(self, market: str) -> int:
        self.calls.append(("cancel_market", market))
        gone = [i for i, o in self.orders.items() if o.market == market]
        for i in gone:
            del self.orders[i]
        self.cancels += len(gone)
        return len(gone)


def fill(m: Market, token: str, side: Side, price: str, size: str, ts: float, mid: str | None = None,
         trade: str = "t1") -> Fill:
    return Fill(trade, "c0", m.condition_id, token, side, D(price), D(size), FillType.FILLED, Mode.PAPER, ts,
                mid=None if mid is None else D(mid))


def cycle(params: Params | None = None, mode: Mode = Mode.PAPER, **kw: Any) -> tuple[QuoteCycle, MemorySink]:
    sink = MemorySink()
    return QuoteCycle(params or Params(), sink, mode, **kw), sink


# ---------------------------------------------------------------- requote
class BatchEx(FakeEx):
    async def requote(self, cancel: list[str], place: list[Quote]) -> tuple[tuple[str, ...], tuple[Order, ...]]:
        done = await FakeEx.cancel(self, cancel)
        orders = await FakeEx.place(self, place)
        self.calls[-2:] = [("requote", (list(cancel), list(place)))]  # one call to the venue
        return tuple(done), tuple(orders)


async def test_requote_sends_cancels_and_places_in_one_call_when_the_exchange_can():
    m = mkt()
    ex = BatchEx()
    q = Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.40"), D("10"))
    done, orders = await requote(ex, [], [q])
    assert ex.calls == [("requote", ([], [q]))] and done == [] and len(orders) == 1 and len(ex.orders) == 1
    assert isinstance(done, list) and isinstance(orders, list)


async def test_requote_never_sends_an_empty_cancel_or_place():
    m = mkt()
    ex = FakeEx()
    q = Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.40"), D("10"))
    done, orders = await requote(ex, [], [q])
    assert [c[0] for c in ex.calls] == ["place"] and done == [] and len(orders) == 1
    ex.calls.clear()
    cid = orders[0].client_id
    done, orders = await requote(ex, [cid], [])
    assert ex.calls == [("cancel", [cid])] and done == [cid] and orders == []


# ---------------------------------------------------------------- run_once
async def test_a_parameter_changed_in_place_is_quoted_at_the_next_incremental_cycle():
    """The incremental cycle's keys hold the parameters as they are each cycle: a size changed in
    place (the engine's `set_params`) is decided at once, not after the book moves."""
    p = Params()
    qc, _ = cycle(p)
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    assert qc.wanted and {q.size for q in qc.wanted} == {p.quote_size}
    p.quote_size = p.quote_size + 7
    rep = await qc.run_once(T0 + 3, [m], books, ex)
    assert rep.reused == 0 and rep.decided == 1
    assert qc.wanted and {q.size for q in qc.wanted} == {p.quote_size}


async def test_a_cycle_takes_the_event_loop_afresh_and_yields_only_after_holding_it_yield_sec(monkeypatch):
    clock = [1_000.0]
    monkeypatch.setattr(cycle_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    qc, _ = cycle(yield_sec=0.5)
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    assert qc.yields == 0  # the cycle started its slice at 1000: no time held yet
    clock[0] = 2_000.0
    await qc.run_once(T0 + 3, [m], books, ex)
    assert qc.yields == 0
    qc.yield_sec = 0.0  # never: whatever the time held
    clock[0] = 1e9
    await qc.run_once(T0 + 6, [m], books, ex)
    assert qc.yields == 0
    qc.yield_sec = 0.5  # held 10 s at every look: a turn before each market of each phase
    tick = iter(range(0, 10_000, 10))
    monkeypatch.setattr(cycle_module, "time", SimpleNamespace(perf_counter=lambda: float(next(tick))))
    m2 = mkt(2)
    books.set(m2, "0.40", "0.50")
    await qc.run_once(T0 + 9, [m, m2], books, ex)
    assert qc.yields == 6  # observe, account, decide: two markets each


@pytest.mark.parametrize("held", [15.0, 20.0])
async def test_a_turn_of_the_loop_starts_a_new_slice(monkeypatch, held):
    """The clock moves 10 s at each look: with `yield_sec` 15 or 20 a turn is due at every
    second look, the slice starting again after each (six markets' checks: three turns)."""
    tick = iter(range(0, 10_000, 10))
    monkeypatch.setattr(cycle_module, "time", SimpleNamespace(perf_counter=lambda: float(next(tick))))
    qc, _ = cycle(yield_sec=held)
    ms, books, ex = [mkt(0), mkt(1)], Books(), FakeEx()
    for m in ms:
        books.set(m, "0.40", "0.50")
    async with loop_turns(started=True) as turns:
        before = turns[0]
        await qc.run_once(T0, ms, books, ex)
        ran = turns[0] - before
    assert qc.yields == 3 and ran == 3  # each a real turn for the loop


async def test_a_resolved_market_is_never_decided_or_quoted_again():
    qc, _ = cycle()
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    await qc.run_once(T0, [m0, m1], books, ex)
    assert {o.market for o in ex.open_orders()} == {m0.condition_id, m1.condition_id}
    assert await qc.resolve_market(T0 + 1, m0.condition_id, m0.yes_token_id, ex, "test")
    assert {o.market for o in ex.open_orders()} == {m1.condition_id}
    rep = await qc.run_once(T0 + 3, [m0, m1], books, ex)
    assert rep.placed == 0 and rep.decided + rep.reused == 1
    assert {q.market for q in qc.wanted} == {m1.condition_id}
    assert {o.market for o in ex.open_orders()} == {m1.condition_id}
    assert qc.snapshot().markets[m0.condition_id].status == "resolved"


async def test_decided_is_called_once_after_every_decision_and_before_any_order_is_sent():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    seen: list[tuple[int, int]] = []
    await qc.run_once(T0, [m], books, ex, decided=lambda: seen.append((len(qc.wanted), len(ex.calls))))
    assert seen == [(2, 1)]  # the wanted quotes known, only `set_markets` sent yet
    assert [c[0] for c in ex.calls] == ["set_markets", "place"]


@pytest.mark.parametrize("incremental", [True, False])
async def test_risk_verdicts_and_breaches_are_those_of_the_cycle(incremental):
    """A rule that bound last cycle and binds no more (a limit raised in place: the quotes are the
    same) leaves no trace on the status or the report."""
    p = Params()
    p.max_inventory_usd = D("10")
    qc, sink = cycle(p, incremental=incremental)
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "20", T0))
    rep = await qc.run_once(T0, [m], books, ex)
    assert qc.inventory(m.condition_id).net == 20  # 9.00 USD at mid: the bid would take it past 10
    assert qc.snapshot().markets[m.condition_id].status == "quoting (risk: inventory usd)"
    assert len(rep.breaches) == 1 and "near limit 10" in rep.breaches[0]
    assert _sides(qc, m) == {("yes", Side.SELL)}
    before = list(qc.wanted)
    p.max_inventory_usd = D("1000")
    rep = await qc.run_once(T0 + 3, [m], books, ex)
    assert rep.breaches == [] and qc.snapshot().markets[m.condition_id].status == "quoting"
    assert _sides(qc, m) == {("yes", Side.SELL), ("yes", Side.BUY)} and set(before) < set(qc.wanted)


# ---------------------------------------------------------------- _account
def _h0_mids(sink: MemorySink) -> dict[str, Decimal]:
    return {r["trade_id"]: r["mid"] for r in sink.rows["markouts"] if r["horizon_sec"] == 0.0}


def _empty_bid_views(m: Market) -> tuple[BookView, BookView]:
    """YES asks and NO bids only: no effective YES bid, so no mid."""
    y, n = views(m, "0.40", "0.50")
    return BookView(y.token_id, y.market, (), y.asks, y.tick_size), BookView(n.token_id, n.market, n.bids, (), n.tick_size)


async def test_a_fills_mid_is_its_own_then_the_cycles_then_the_ledgers_last_mark_per_token():
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")  # mid 0.45
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0, trade="a"))
    await qc.run_once(T0, [m], books, ex)
    y, n = _empty_bid_views(m)
    books.v[y.token_id], books.v[n.token_id] = y, n
    ex.fills += [fill(m, m.no_token_id, Side.BUY, "0.50", "10", T0 + 3, trade="b"),
                 fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0 + 3, trade="c")]
    await qc.run_once(T0 + 3, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].mid is None
    books.set(m, "0.50", "0.60")  # mid 0.55
    ex.fills += [fill(m, m.yes_token_id, Side.BUY, "0.50", "10", T0 + 6, trade="d"),
                 fill(m, m.yes_token_id, Side.SELL, "0.60", "10", T0 + 6, mid="0.70", trade="e")]
    await qc.run_once(T0 + 6, [m], books, ex)
    assert _h0_mids(sink) == {"a": D("0.45"),  # the cycle's mid
                              "b": D("0.55"), "c": D("0.45"),  # no mid now: the ledger's last mark, per token
                              "d": D("0.55"),  # the cycle's mid again (not the older mark)
                              "e": D("0.70")}  # the fill's own


async def test_a_fill_found_by_its_token_is_booked_and_one_of_an_unknown_market_is_skipped():
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    f = fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0)
    stray = fill(mkt(9), "y9", Side.BUY, "0.40", "10", T0, trade="t9")
    ex.fills += [replace(f, market=""), stray]
    rep = await qc.run_once(T0, [m], books, ex)
    assert rep.fills == 2
    assert qc.inventory(m.condition_id).yes == 10 and set(qc.pnl.ledgers) == {m.condition_id}
    assert [r["trade_id"] for r in sink.rows["markouts"]] == ["t1"]


async def test_a_no_fill_is_marked_at_the_yes_mid_in_the_ledger():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")  # YES mid 0.45, NO mid 0.55
    ex.fills.append(fill(m, m.no_token_id, Side.BUY, "0.50", "10", T0))  # 0.05 under the NO mid
    await qc.run_once(T0, [m], books, ex)
    assert qc.pnl.ledgers[m.condition_id].spread == D("0.5")
    assert qc.totals.pnl.spread == D("0.5")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0 + 1, trade="t2"))  # 0.05 under the YES mid
    await qc.run_once(T0 + 3, [m], books, ex)
    assert qc.pnl.ledgers[m.condition_id].spread == D("1.0")


async def test_a_fill_with_no_mark_at_all_is_booked_without_a_realized_spread():
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    y, n = _empty_bid_views(m)
    books.v[y.token_id], books.v[n.token_id] = y, n
    ex.fills += [fill(m, m.no_token_id, Side.BUY, "0.50", "10", T0, trade="a"),
                 fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0, trade="b")]
    rep = await qc.run_once(T0, [m], books, ex)
    assert rep.fills == 2 and (qc.inventory(m.condition_id).yes, qc.inventory(m.condition_id).no) == (10, 10)
    assert "markouts" not in sink.rows and qc.pnl.ledgers[m.condition_id].spread == 0


# ---------------------------------------------------------------- _event_limit
def _neg(i: int, event: str | None = "e1") -> Market:
    return mkt(i, neg_risk=True, terms=GammaTerms(event_id=event))


async def _event_run(limit: str, fills: list[tuple[int, str, Side]]) -> tuple[QuoteCycle, list[Market], FakeEx]:
    """Markets 0, 1 (event e1) and 2 (e2), books 0.40/0.50 (YES mid 0.45); `fills`: (market, token kind, side)
    of 20 shares each at the first cycle; the limit applies from the second."""
    p = Params()
    qc, _ = cycle(p)
    ms = [_neg(0), _neg(1), _neg(2, "e2")]
    books, ex = Books(), FakeEx()
    for m in ms:
        books.set(m, "0.40", "0.50")
    for i, kind, side in fills:
        m = ms[i]
        tok = m.yes_token_id if kind == "yes" else m.no_token_id
        ex.fills.append(fill(m, tok, side, "0.40" if kind == "yes" else "0.50", "20", T0, trade=f"t{len(ex.fills)}"))
    await qc.run_once(T0, ms, books, ex)
    p.max_event_usd = D(limit)
    await qc.run_once(T0 + 3, ms, books, ex)
    return qc, ms, ex


def _sides(qc: QuoteCycle, m: Market) -> set[tuple[str, Side]]:
    return {("yes" if q.token_id == m.yes_token_id else "no", q.side) for q in qc.wanted if q.market == m.condition_id}


async def test_an_event_at_its_limit_keeps_only_the_quotes_that_shrink_each_markets_position():
    qc, ms, _ = await _event_run("9", [(0, "yes", Side.BUY)])  # market 0 long 20 YES: 9.00 USD at mid 0.45
    st = qc.snapshot().markets
    assert _sides(qc, ms[0]) == {("yes", Side.SELL)}  # sheds YES-equivalent: kept; the YES bid grows it
    assert st[ms[0].condition_id].status == "quoting (risk: event e1 inventory 9.00 USD at limit 9)"
    assert _sides(qc, ms[1]) == set()  # flat: every quote grows it
    assert st[ms[1].condition_id].status == "risk: event e1 inventory 9.00 USD at limit 9"
    assert _sides(qc, ms[2]) == {("yes", Side.BUY), ("no", Side.BUY)}  # another event
    assert st[ms[2].condition_id].status == "quoting"


async def test_an_event_short_yes_at_its_limit_keeps_the_quote_that_sells_no():
    qc, ms, _ = await _event_run("11", [(0, "no", Side.BUY)])  # long 20 NO: 20 × 0.55 = 11.00 USD
    assert _sides(qc, ms[0]) == {("no", Side.SELL)}  # the NO bid would grow it
    assert _sides(qc, ms[1]) == set()
    qc, ms, _ = await _event_run("11.01", [(0, "no", Side.BUY)])
    assert _sides(qc, ms[0]) == {("no", Side.SELL), ("no", Side.BUY)}


async def test_an_event_under_its_limit_or_a_market_of_no_event_is_not_limited():
    qc, ms, _ = await _event_run("9.01", [(0, "yes", Side.BUY)])
    assert _sides(qc, ms[0]) == {("yes", Side.BUY), ("yes", Side.SELL)}
    assert _sides(qc, ms[1]) == _sides(qc, ms[2]) == {("yes", Side.BUY), ("no", Side.BUY)}
    assert {s.status for s in qc.snapshot().markets.values()} == {"quoting"}
    qc, ms, _ = await _event_run("1", [(2, "yes", Side.BUY)])  # e2 at its limit, e1 holds nothing
    assert _sides(qc, ms[0]) == _sides(qc, ms[1]) == {("yes", Side.BUY), ("no", Side.BUY)}
    assert _sides(qc, ms[2]) == {("yes", Side.SELL)}


async def test_the_events_exposure_sums_its_markets_at_mid():
    qc, ms, _ = await _event_run("18", [(0, "yes", Side.BUY), (1, "yes", Side.BUY)])  # 9.00 + 9.00
    assert _sides(qc, ms[0]) == _sides(qc, ms[1]) == {("yes", Side.SELL)}
    qc, ms, _ = await _event_run("18.01", [(0, "yes", Side.BUY), (1, "yes", Side.BUY)])
    assert _sides(qc, ms[0]) == _sides(qc, ms[1]) == {("yes", Side.BUY), ("yes", Side.SELL)}


# ---------------------------------------------------------------- _fit_two_sided
REWARDS = GammaTerms(rewards_min_size=D("20"), rewards_max_spread=D("3"), reward_daily_rates=(D("50"),))


class OneSided:
    """Quotes one side only: the YES bid (`kind` "bid") or the YES ask as a NO bid ("ask"), at the touch."""

    def __init__(self, kind: str, regime: Regime = Regime.NORMAL) -> None:
        self.name, self.kind, self.regime = f"one_{kind}", kind, regime

    def decide(self, ctx: Any, state: object) -> Decision:
        m, t = ctx.market, ctx.tick
        if self.kind == "bid":
            q = Quote(m.condition_id, m.yes_token_id, Side.BUY, t * ctx.bid_ticks, D(25))
        else:
            q = Quote(m.condition_id, m.no_token_id, Side.BUY, 1 - t * ctx.ask_ticks, D(25))
        return Decision((q,), self.regime, "calm" if self.regime is not Regime.NORMAL else "")


async def _fit(kind: str, bid: str, ask: str, terms: GammaTerms = REWARDS, mode: str = "fit", size: str = "10",
               regime: Regime = Regime.NORMAL, **market: Any) -> set[tuple[str, Side, Decimal, Decimal]]:
    p = Params(rewards_mode=mode, quote_size=D(size))
    qc, _ = cycle(p)
    m, books, ex = mkt(terms=terms), Books(), FakeEx()
    books.set(m, bid, ask)
    qc.set_strategy(m.condition_id, OneSided(kind, regime), **market)
    await qc.run_once(T0, [m], books, ex)
    return {("yes" if q.token_id == m.yes_token_id else "no", q.side, q.price, q.size) for q in qc.wanted}


async def test_fit_joins_the_missing_bid_or_ask_at_the_touch_at_the_programs_size():
    assert await _fit("bid", "0.04", "0.06") == {("yes", Side.BUY, D("0.04"), D(25)), ("no", Side.BUY, D("0.94"), D(20))}
    assert await _fit("ask", "0.04", "0.06") == {("no", Side.BUY, D("0.94"), D(25)), ("yes", Side.BUY, D("0.04"), D(20))}
    assert await _fit("ask", "0.93", "0.95", size="30") == {("no", Side.BUY, D("0.05"), D(25)),
                                                            ("yes", Side.BUY, D("0.93"), D(30))}
    # a market's own quote size (its override) sizes the side added, not the global one
    assert await _fit("ask", "0.93", "0.95", size="30", quote_size=D(40)) == {("no", Side.BUY, D("0.05"), D(25)),
                                                                             ("yes", Side.BUY, D("0.93"), D(40))}


async def test_fit_adds_nothing_where_one_side_scores_or_outside_the_band_or_without_a_program():
    one = {("yes", Side.BUY, D("0.09"), D(25))}
    assert await _fit("bid", "0.09", "0.11") == one  # mid 0.10: one-sided quoting scores
    assert await _fit("bid", "0.09", "0.10") == one | {("no", Side.BUY, D("0.90"), D(20))}  # mid 0.095
    assert await _fit("ask", "0.89", "0.91") == {("no", Side.BUY, D("0.09"), D(25))}  # mid 0.90
    assert len(await _fit("ask", "0.90", "0.91")) == 2  # mid 0.905
    assert await _fit("bid", "0.02", "0.08") == {("yes", Side.BUY, D("0.02"), D(25))}  # the ask 0.03 from mid
    assert len(await _fit("bid", "0.03", "0.07")) == 2  # 0.02 from mid: inside the band
    assert await _fit("bid", "0.04", "0.06", terms=GammaTerms()) == {("yes", Side.BUY, D("0.04"), D(25))}
    assert await _fit("bid", "0.04", "0.06", mode="off") == {("yes", Side.BUY, D("0.04"), D(25))}
    # a strategy out of its normal regime is left as it decided
    assert await _fit("bid", "0.04", "0.06", regime=Regime.WIDE) == {("yes", Side.BUY, D("0.04"), D(25))}


# ---------------------------------------------------------------- resolve_market / _settle
async def _holding(yes: str = "20", no: str = "0") -> tuple[QuoteCycle, MemorySink, Market, Books, FakeEx]:
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    if D(yes):
        ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", yes, T0, trade="ty"))
    if D(no):
        ex.fills.append(fill(m, m.no_token_id, Side.BUY, "0.50", no, T0, trade="tn"))
    await qc.run_once(T0, [m], books, ex)
    return qc, sink, m, books, ex


async def test_a_resolution_cancels_redeems_at_one_and_zero_and_says_so():
    qc, sink, m, books, ex = await _holding("20", "5")
    assert qc.snapshot().markets[m.condition_id].status == "quoting"  # (the snapshot built before)
    assert await qc.resolve_market(T0 + 1, m.condition_id, m.no_token_id, ex, "ws") is True
    assert ex.open_orders() == [] and ("cancel_market", m.condition_id) in ex.calls
    assert qc.resolved == {m.condition_id: m.no_token_id}
    assert qc.snapshot().markets[m.condition_id].status == "resolved"
    lg = qc.pnl.ledgers[m.condition_id]
    assert lg.yes == lg.no == 0
    (row,) = sink.rows["settlements"]
    assert (row["winner_token"], row["winning_outcome"], row["yes_shares"], row["no_shares"], row["payout"],
            row["source"]) == (m.no_token_id, "NO", D(20), D(5), D(5), "ws")
    assert row["pnl"] == D(5) - (20 * D("0.45") + 5 * D("0.55"))  # against the last mark
    (ev,) = [e for e in sink.rows["events"] if e["kind"] == "resolution"]
    assert ev["market"] == m.condition_id and ev["ts"] == T0 + 1
    assert ev["message"] == f"resolved NO: 2 orders cancelled, 20 YES + 5 NO redeemed for 5 (settlement PnL {row['pnl']:.4f})"
    assert ev["data_json"]["cancelled"] == 2 and ev["data_json"]["payout"] == "5"


async def test_a_yes_resolution_pays_the_yes_shares_and_a_second_one_changes_nothing():
    qc, sink, m, books, ex = await _holding("20")
    assert await qc.resolve_market(T0 + 1, m.condition_id, m.yes_token_id, ex, "ws") is True
    (row,) = sink.rows["settlements"]
    assert (row["winning_outcome"], row["payout"]) == ("YES", D(20))
    assert [e["message"][:13] for e in sink.rows["events"] if e["kind"] == "resolution"] == ["resolved YES:"]
    ex.calls.clear()
    assert await qc.resolve_market(T0 + 2, m.condition_id, m.no_token_id, ex, "rest") is False
    assert ex.calls == [] and qc.resolved == {m.condition_id: m.yes_token_id}
    assert len(sink.rows["settlements"]) == 1 and sink.rows["settlements"][0]["payout"] == D(20)


async def test_a_resolution_of_an_unknown_market_changes_nothing():
    qc, sink, m, books, ex = await _holding("20")
    ex.calls.clear()
    before = qc.econ.bad_venue_data
    assert await qc.resolve_market(T0 + 1, "0xother", "y0", ex, "ws") is False
    assert ex.calls == [] and qc.resolved == {} and qc.econ.bad_venue_data == before + 1
    assert "settlements" not in sink.rows and ex.open_orders()


async def test_an_unknown_winner_stops_quoting_and_leaves_the_inventory_unsettled():
    qc, sink, m, books, ex = await _holding("20")
    qc.snapshot()
    before = qc.econ.bad_venue_data
    assert await qc.resolve_market(T0 + 1, m.condition_id, "y-who", ex, "ws") is False
    assert ex.open_orders() == [] and qc.econ.bad_venue_data == before + 1
    assert qc.snapshot().markets[m.condition_id].status == "closed: winner unknown"
    assert qc.pnl.ledgers[m.condition_id].yes == 20 and "settlements" not in sink.rows
    rep = await qc.run_once(T0 + 3, [m], books, ex)
    assert rep.placed == 0 and ex.open_orders() == []
    # a fill reported late is booked, and with no known winner nothing is redeemed
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "5", T0 + 2, trade="late"))
    await qc.run_once(T0 + 6, [m], books, ex)
    assert qc.pnl.ledgers[m.condition_id].yes == 25 and "settlements" not in sink.rows


async def test_a_fill_reported_after_the_resolution_is_redeemed_into_the_same_settlement():
    qc, sink, m, books, ex = await _holding("20")
    await qc.resolve_market(T0 + 1, m.condition_id, m.yes_token_id, ex, "ws")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "5", T0 + 0.5, trade="late"))
    await qc.run_once(T0 + 3, [m], books, ex)
    lg = qc.pnl.ledgers[m.condition_id]
    assert lg.yes == 0 and lg.cash == -25 * D("0.40") + 25
    (row,) = sink.rows["settlements"]
    assert (row["yes_shares"], row["payout"], row["source"]) == (D(25), D(25), "ws")


async def test_fees_and_rebates_of_fills_reach_the_ledger_and_the_pnl():
    fees = GammaTerms(fees_enabled=True, fee_schedule=GammaFeeSchedule(D("0.02"), D(1), True, D("0.25")))
    qc, _ = cycle()
    m, books, ex = mkt(terms=fees), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    ex.fills += [replace(fill(m, m.yes_token_id, Side.BUY, "0.50", "10", T0, trade="take"), taker=True),
                 fill(m, m.no_token_id, Side.BUY, "0.50", "10", T0, trade="make")]
    await qc.run_once(T0, [m], books, ex)
    lg, cid = qc.pnl.ledgers[m.condition_id], m.condition_id
    assert lg.fees == qc.econ.fees[cid] > 0 and lg.rebates == qc.econ.rebates[cid] > 0
    pp = qc.totals.pnl
    assert (pp.fees, pp.rebates) == (lg.fees, lg.rebates)


# ---------------------------------------------------------------- _decide_all
def _ends_at(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


async def test_quoting_stops_stop_before_end_min_before_the_markets_end():
    qc, _ = cycle()  # stop_before_end_min 10
    m, books, ex = mkt(end_date=_ends_at(T0 + 600)), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    rep = await qc.run_once(T0 - 1, [m], books, ex)  # 601 s before the end
    assert rep.quoted_markets == 1 and len(ex.open_orders()) == 2
    assert qc.snapshot().markets[m.condition_id].status == "quoting"
    rep = await qc.run_once(T0, [m], books, ex)  # 600 s
    assert rep.quoted_markets == 0 and ex.open_orders() == [] and rep.cancelled == 2
    assert qc.snapshot().markets[m.condition_id].status == "ending: stopped quoting"
    rep = await qc.run_once(T0 + 3, [replace(m, end_date=_ends_at(T0 + 3_600))], books, ex)  # the end moved
    assert rep.quoted_markets == 1 and qc.snapshot().markets[m.condition_id].status == "quoting"
    # a market without an end date, or one whose date has no zone, is quoted to the end
    qc, _ = cycle()
    m1, m2 = mkt(1, end_date="2026-12-02T07:55:00"), mkt(2, end_date="soon")
    books.set(m1, "0.40", "0.50")
    books.set(m2, "0.40", "0.50")
    rep = await qc.run_once(T0, [m1, m2], books, FakeEx())
    assert rep.quoted_markets == 2


async def test_a_hold_pulls_every_quote_and_a_kill_says_so_first():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    rep = await qc.run_once(T0 + 3, [m], books, ex, hold="lease unproven")
    assert ex.open_orders() == [] and rep.cancelled == 2 and rep.placed == 0 and rep.quoted_markets == 0
    assert qc.snapshot().markets[m.condition_id].status == "halted"
    rep = await qc.run_once(T0 + 6, [m], books, ex)
    assert rep.placed == 2 and qc.snapshot().markets[m.condition_id].status == "quoting"
    qc._killed = True
    await qc.run_once(T0 + 9, [m], books, ex, hold="lease unproven")
    assert qc.snapshot().markets[m.condition_id].status == "risk: killed" and ex.open_orders() == []


async def test_a_mid_jump_cools_the_market_down_and_an_empty_side_is_stale():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    books.set(m, "0.60", "0.70")  # the mid jumps 0.20 in 3 s
    rep = await qc.run_once(T0 + 3, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].status == "cooldown"
    assert rep.quoted_markets == 0 and ex.open_orders() == []
    qc, _ = cycle()
    y, n = _empty_bid_views(m)
    books.v[y.token_id], books.v[n.token_id] = y, n
    rep = await qc.run_once(T0, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].status == "stale" and rep.decided == 0


class Scripted:
    """Returns the decision it is given; records the open orders it was shown."""

    def __init__(self, name: str, d: Decision) -> None:
        self.name, self.d, self.seen = name, d, []

    def decide(self, ctx: Any, state: object) -> Decision:
        self.seen.append(ctx.open_orders)
        return self.d


def _bid(m: Market, price: str = "0.40") -> Quote:
    return Quote(m.condition_id, m.yes_token_id, Side.BUY, D(price), D(10))


async def test_the_status_says_the_regime_and_its_reason():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    for d, want, quoted in (
            (Decision((_bid(m),), Regime.WIDE, "vol"), "wide (vol): quoting", 1),
            (Decision((_bid(m),), Regime.REDUCE_ONLY), "reduce-only: quoting", 0),  # the guard: nothing to reduce
            (Decision((), Regime.HALTED, "news"), "halted (news)", 0),
            (Decision((), Regime.NORMAL), "quoting", 0)):
        qc.set_strategy(m.condition_id, Scripted("s", d))
        rep = await qc.run_once(T0, [m], books, ex)
        assert qc.snapshot().markets[m.condition_id].status == want and rep.quoted_markets == quoted


async def test_a_halted_strategy_without_a_reason_says_halted():
    class Halts:
        name = "halts"

        def decide(self, ctx: Any, state: object) -> Decision:
            return Decision((), Regime.HALTED)

    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    qc.set_strategy(m.condition_id, Halts())
    await qc.run_once(T0, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].status == "halted"


async def test_a_strategy_sees_its_markets_open_orders_once_it_decided_there_before():
    qc, _ = cycle()
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    s = Scripted("s", Decision((_bid(m0),)))
    qc.set_strategy(m0.condition_id, s)
    await qc.run_once(T0, [m0, m1], books, ex)
    assert s.seen == [()]  # new to the market: nothing of its own rests there
    await qc.run_once(T0 + 3, [m0, m1], books, ex)
    assert len(s.seen) == 2 and [(o.market, o.price) for o in s.seen[1]] == [(m0.condition_id, D("0.40"))]
    t = Scripted("t", Decision((_bid(m0),)))
    qc.set_strategy(m0.condition_id, t)
    await qc.run_once(T0 + 6, [m0, m1], books, ex)
    assert t.seen == [()]  # a switch: the orders resting are the old strategy's, cancelled first


# ---------------------------------------------------------------- _risk_filter
async def test_a_markets_unchanged_quotes_are_judged_again_when_the_total_exposure_passes_its_limit():
    for incremental in (True, False):
        p = Params()
        p.max_total_inventory_usd = D("10")
        qc, _ = cycle(p, incremental=incremental)
        a, b, books, ex = mkt(0), mkt(1), Books(), FakeEx()
        books.set(a, "0.40", "0.50")
        books.set(b, "0.40", "0.50")
        await qc.run_once(T0, [a, b], books, ex)
        assert _sides(qc, a) == _sides(qc, b) == {("yes", Side.BUY), ("no", Side.BUY)}
        ex.fills.append(fill(b, b.yes_token_id, Side.BUY, "0.40", "30", T0 + 1))  # 13.50 USD at mid 0.45
        rep = await qc.run_once(T0 + 3, [a, b], books, ex)
        assert _sides(qc, a) == set()  # every quote of a flat market grows the total
        assert qc.snapshot().markets[a.condition_id].status == "risk: total inventory"
        assert _sides(qc, b) == {("yes", Side.SELL)}
        assert any("total inventory 13.50 USD near limit 10" in br for br in rep.breaches)


# ---------------------------------------------------------------- _account: the toxicity the strategies read
class Seen:
    name = "seen"

    def __init__(self) -> None:
        self.tox: list[tuple[float | None, int]] = []
        self.fpm: list[float] = []

    def decide(self, ctx: Any, state: object) -> Decision:
        self.tox.append((ctx.markout_short, ctx.markout_count))
        self.fpm.append(ctx.fills_per_min)
        m = ctx.market  # a bid at the touch: resting, the calibrator counts the time
        return Decision((Quote(m.condition_id, m.yes_token_id, Side.BUY, ctx.tick * ctx.bid_ticks, D(10)),))


async def test_the_strategy_reads_the_mean_then_the_ewma_of_the_shortest_horizons_markouts():
    qc, _ = cycle(markout_horizons=(30.0, 5.0))
    m, books, ex = mkt(), Books(), FakeEx()
    s = Seen()
    qc.set_strategy(m.condition_id, s)
    books.set(m, "0.40", "0.50")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0, trade="f1"))
    await qc.run_once(T0, [m], books, ex)
    books.set(m, "0.45", "0.55")  # mid 0.50
    ex.fills.append(fill(m, m.no_token_id, Side.SELL, "0.50", "10", T0 + 6, trade="f2"))  # NO mid 0.50
    await qc.run_once(T0 + 6, [m], books, ex)  # f1 at 5 s: +0.10
    await qc.run_once(T0 + 12, [m], books, ex)  # f2 at 5 s: 0.00, a plain mean of two
    books.set(m, "0.55", "0.65")
    await qc.run_once(T0 + 36, [m], books, ex)  # 30 s markouts only: the EWMA stays
    assert s.tox[0] == (None, 0)
    assert s.tox[1][0] == pytest.approx(0.10) and s.tox[1][1] == 1
    assert s.tox[2][0] == pytest.approx(0.05) and s.tox[2][1] == 2
    assert s.tox[3][0] == pytest.approx(0.05) and s.tox[3][1] == 2
    st = qc.calibrator.states[m.condition_id]  # the calibrator saw both fills, their spreads and markouts
    assert (st.fills, st.markouts.rs_count) == (2, 2)
    assert st.markouts.mean(5.0) == pytest.approx(0.05) and st.markouts.mean(30.0) == pytest.approx(0.15)  # +0.20, +0.10
    for k in range(3, 7):  # more fills at +0.10: weights 1/3, 1/4, then 0.2, 0.2
        ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.50", "10", T0 + 30 * k, trade=f"g{k}"))
        await qc.run_once(T0 + 30 * k, [m], books, ex)
        await qc.run_once(T0 + 30 * k + 5, [m], books, ex)
    ew = 0.05
    for w in (1 / 3, 1 / 4, 0.2, 0.2):
        ew = (1 - w) * ew + w * 0.10
    assert s.tox[-1][0] == pytest.approx(ew) and s.tox[-1][1] == 6
    fpm = qc.calibrator.states[m.condition_id].fills_per_min  # as of the calibrator's last update
    assert fpm > 0 and s.fpm[-1] == fpm and s.fpm[0] == 0.0
    now = T0 + 30 * 6 + 5
    assert qc.snapshot().markets[m.condition_id].fills_per_min == qc.calibrator.fills_per_min(m.condition_id, now) > 0


async def test_a_cycle_without_markout_horizons_runs():
    qc, sink = cycle(markout_horizons=())
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0))
    rep = await qc.run_once(T0, [m], books, ex)
    assert rep.fills == 1 and rep.placed == 2


# ---------------------------------------------------------------- _execute
async def test_a_switch_cancels_the_markets_orders_first_and_counts_them_with_the_cycles_cancels():
    qc, sink = cycle()
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    await qc.run_once(T0, [m0, m1], books, ex)
    assert len(ex.open_orders()) == 4
    ex.calls.clear()
    qc.set_strategy(m0.condition_id, Scripted("s", Decision((_bid(m0, "0.41"),))))
    books.set(m1, "0.45", "0.55")  # market 1 requotes too: 2 cancels, 2 places
    rep = await qc.run_once(T0 + 3, [m0, m1], books, ex)
    assert ex.calls[0] == ("cancel_market", m0.condition_id)
    assert rep.cancelled == 4 and rep.placed == 3 and rep.deferred == 0
    assert qc.totals.cancels == 4 and qc.totals.placed == 7
    (ev,) = [e for e in sink.rows["events"] if e["kind"] == "strategy"]
    assert ev["message"] == "strategy spread -> s: 2 orders cancelled before requoting"
    assert ev["data_json"] == {"from": "spread", "to": "s", "cancelled": 2}
    assert rep.strategy_events == [f"{m0.condition_id}: strategy spread -> s: 2 orders cancelled before requoting"]


async def test_a_switchs_cancels_take_from_the_action_budget():
    p = Params()
    p.max_actions_per_min = 4
    qc, _ = cycle(p)
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    rep = await qc.run_once(T0, [m], books, ex)
    assert rep.placed == 2
    qc.set_strategy(m.condition_id, Scripted("s", Decision((_bid(m, "0.41"),))))
    rep = await qc.run_once(T0 + 3, [m], books, ex)  # 2 places + 2 cancels: the minute's budget is spent
    assert rep.cancelled == 2 and rep.placed == 0 and rep.deferred == 1 and ex.open_orders() == []
    rep = await qc.run_once(T0 + 61, [m], books, ex)
    assert rep.placed == 1 and rep.deferred == 0


async def test_a_rejected_place_is_counted_apart_and_not_as_the_markets_placed():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    ex.reject.add(m.no_token_id)
    rep = await qc.run_once(T0, [m], books, ex)
    assert (rep.placed, rep.rejected) == (1, 1)
    snap = qc.snapshot()
    assert (snap.totals.placed, snap.totals.rejected, snap.totals.open_orders) == (1, 1, 1)
    assert snap.markets[m.condition_id].placed == 1
    assert rep.requote_sec > 0
    rep = await qc.run_once(T0 + 3, [m], books, FakeEx())  # (a fresh exchange: nothing rests, all placed)
    assert rep.requote_sec > 0 and qc.totals.placed == 3 and qc.totals.rejected == 1


# ---------------------------------------------------------------- _publish / final_pnl
def _total_ts(sink: MemorySink) -> list[float]:
    return [r["ts"] for r in sink.rows.get("pnl", []) if r["market"] == "TOTAL"]


async def test_pnl_rows_are_written_on_a_fixed_grid_from_the_first_cycle():
    for incremental in (True, False):
        qc, sink = cycle(pnl_sec=10.0, incremental=incremental)
        m, books, ex = mkt(), Books(), FakeEx()
        books.set(m, "0.40", "0.50")
        ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0))
        for dt in (0, 3, 9.99, 10, 12, 19, 25, 31, 40, 41):
            await qc.run_once(T0 + dt, [m], books, ex)
        assert _total_ts(sink) == [T0, T0 + 10, T0 + 25, T0 + 31, T0 + 40]  # no drift: 25 keeps the grid at 30
        rows = [r for r in sink.rows["pnl"] if r["ts"] == T0 + 40]
        assert {r["market"] for r in rows} == {m.condition_id, "TOTAL"}
        assert {r["mode"] for r in rows} == {"paper"}
        assert next(r for r in rows if r["market"] == "TOTAL")["total"] == qc.totals.pnl.total


async def test_final_pnl_writes_the_sessions_last_rows_once_and_brings_the_totals_to_them():
    qc, sink = cycle(pnl_sec=10.0)
    qc.final_pnl(T0)
    assert "pnl" not in sink.rows  # no cycle ever ran
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0))
    await qc.run_once(T0, [m], books, ex)
    await qc.run_once(T0 + 3, [m], books, ex)
    snap = qc.snapshot()
    qc.pnl.ledger(m.condition_id).rewards += D("0.25")  # booked after the last cycle
    qc.final_pnl(T0 + 4)
    assert _total_ts(sink) == [T0, T0 + 4]
    assert qc.totals.pnl.rewards == D("0.25") and qc.snapshot() is not snap
    assert qc.snapshot().totals.pnl.rewards == D("0.25")
    qc.final_pnl(T0 + 5)  # nothing since: nothing again
    assert _total_ts(sink) == [T0, T0 + 4]
    await qc.run_once(T0 + 6, [m], books, ex)
    qc.final_pnl(T0 + 7)
    assert _total_ts(sink) == [T0, T0 + 4, T0 + 7]
    await qc.run_once(T0 + 7, [m], books, ex)  # a cycle at the very time of the last rows, nothing moved
    qc.final_pnl(T0 + 7)
    assert _total_ts(sink) == [T0, T0 + 4, T0 + 7]


async def test_final_pnl_after_a_cycle_that_wrote_these_very_rows_writes_none():
    qc, sink = cycle(pnl_sec=10.0)
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0))
    await qc.run_once(T0, [m], books, ex)
    await qc.run_once(T0 + 10, [m], books, ex)
    qc.final_pnl(T0 + 10)
    assert _total_ts(sink) == [T0, T0 + 10]


# ---------------------------------------------------------------- _venue_payouts
NOW_PAY = 1_796_200_000.0  # 2026-12-02 07:46 UTC: the venue's payouts of 2026-12-01 are due
PAY_DAY = "2026-12-01"


class Payer(FakeEx):
    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer, self.asked = answer, []
        self.go = asyncio.Event()

    async def venue_payouts(self, day: str) -> Any:
        self.asked.append(day)
        await self.go.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def _pay_settled(qc: QuoteCycle) -> None:
    assert qc._payouts is not None
    await asyncio.wait([qc._payouts[1]], timeout=5)


async def test_paid_rewards_and_rebates_replace_the_estimate_and_the_accrual_in_the_ledger():
    qc, _ = cycle(mode=Mode.LIVE)
    qc.econ.rebates_by_day[("0xa", PAY_DAY)] = D("0.10")
    qc.pnl.ledger("0xa").rebates += D("0.10")
    qc.econ.rewards_by_day[("0xa", PAY_DAY)] = D("0.75")
    qc.pnl.ledger("0xa").rewards += D("0.75")
    venue = Payer(([{"condition_id": "0xa", "earnings": 2.5}], [{"condition_id": "0xa", "rebated_fees_usdc": 0.30}]))
    venue.go.set()
    await qc._venue_payouts(NOW_PAY, venue)
    await _pay_settled(qc)
    await qc._venue_payouts(NOW_PAY + 1, venue)
    assert qc.pnl.ledger("0xa").rebates == D("0.30") and qc.pnl.ledger("0xa").rewards == D("2.5")
    assert qc.econ.bad_venue_data == 0


async def test_a_dry_run_answer_marks_the_day_read_and_books_nothing():
    qc, _ = cycle(mode=Mode.LIVE)
    qc.pnl.ledger("0xa").rewards += D("0.75")
    venue = Payer(None)
    venue.go.set()
    await qc._venue_payouts(NOW_PAY, venue)
    await _pay_settled(qc)
    await qc._venue_payouts(NOW_PAY + 1, venue)
    assert PAY_DAY in qc.econ.payouts.done and qc._payouts is None
    assert qc.pnl.ledger("0xa").rewards == D("0.75") and qc.econ.bad_venue_data == 0
    await qc._venue_payouts(NOW_PAY + 2, venue)  # read: not asked again
    await asyncio.sleep(0)
    assert venue.asked == [PAY_DAY] and qc._payouts is None


async def test_a_read_still_out_at_the_next_cycle_is_waited_for_not_failed():
    qc, _ = cycle(mode=Mode.LIVE)
    venue = Payer(([], []))
    await qc._venue_payouts(NOW_PAY, venue)
    await asyncio.sleep(0)
    out = qc._payouts
    await qc._venue_payouts(NOW_PAY + 3, venue)
    assert qc._payouts is out and out is not None and not out[1].done()
    assert qc.econ.bad_venue_data == 0 and venue.asked == [PAY_DAY]
    await qc.aclose()


async def test_a_read_cancelled_under_the_cycle_is_a_failure_asked_again_later():
    qc, sink = cycle(mode=Mode.LIVE)
    venue = Payer(([], []))
    await qc._venue_payouts(NOW_PAY, venue)
    assert qc._payouts is not None
    task = qc._payouts[1]
    await asyncio.sleep(0)  # (the read starts)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    await qc._venue_payouts(NOW_PAY + 1, venue)
    assert qc._payouts is None and PAY_DAY not in qc.econ.payouts.done and qc.econ.bad_venue_data == 1
    assert any(e["message"] == f"venue payouts for {PAY_DAY} failed: TimeoutError: the read was cancelled"
               for e in sink.rows["events"])
    await qc._venue_payouts(NOW_PAY + 2, venue)
    await asyncio.sleep(0)
    assert venue.asked == [PAY_DAY] and qc._payouts is None  # not before the retry time


async def test_only_a_live_cycle_asks_the_venue_for_payouts():
    for mode, asked in ((Mode.PAPER, []), (Mode.LIVE, [PAY_DAY])):
        qc, _ = cycle(mode=mode)
        m, books = mkt(), Books()
        books.set(m, "0.40", "0.50")
        venue = Payer(([], []))
        await qc.run_once(NOW_PAY, [m], books, venue)
        await asyncio.sleep(0)  # (the read starts)
        assert venue.asked == asked
        await qc.aclose()
    qc, _ = cycle(mode=Mode.LIVE)
    rep = await qc.run_once(NOW_PAY, [m], books, FakeEx())  # an exchange without the read
    assert rep.placed == 2 and qc._payouts is None


# ---------------------------------------------------------------- _record_rewards
def _sample(market: str, usd: str, ids: list[str], scoring: list[str]) -> RewardSample:
    return RewardSample(market, D("0.45"), QScore(), D(0), D(0), D(usd), D(usd) * 60, len(ids), len(scoring),
                        scoring, ids)


class Scorer(FakeEx):
    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer, self.asked = answer, []

    async def orders_scoring(self, ids: list[str]) -> dict[str, bool]:
        self.asked.append(list(ids))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_live_asks_the_venue_which_orders_score_and_counts_where_it_disagrees():
    qc, sink = cycle(mode=Mode.LIVE)
    ex = Scorer({"a1": True, "a2": True, "b1": False})
    await qc._record_rewards(T0, [_sample("0xa", "0.0000015", ["a1", "a2"], ["a1"]),
                                  _sample("0xb", "0.000002", ["b1"], ["b1"])], ex)
    assert ex.asked == [["a1", "a2", "b1"]]
    rows = sink.rows["reward_estimates"]
    assert [(r["market"], r["venue_scoring"], r["disagreements"]) for r in rows] == [("0xa", 2, 1), ("0xb", 0, 1)]
    # the rows hold 6 dp, the remainder carried to the market's next row; the ledger adds the rows
    assert [r["usd"] for r in rows] == [D("0.000001"), D("0.000002")]
    await qc._record_rewards(T0 + 60, [_sample("0xa", "0.0000015", [], [])], ex)
    assert sink.rows["reward_estimates"][-1]["usd"] == D("0.000002") and ex.asked == [["a1", "a2", "b1"]]
    assert qc.pnl.ledger("0xa").rewards == D("0.000003") and qc.pnl.ledger("0xb").rewards == D("0.000002")


async def test_a_failed_scoring_read_keeps_the_estimate_and_paper_never_asks():
    qc, sink = cycle(mode=Mode.LIVE)
    ex = Scorer(RuntimeError("boom"))
    await qc._record_rewards(T0, [_sample("0xa", "0.25", ["a1"], ["a1"])], ex)
    (row,) = sink.rows["reward_estimates"]
    assert row["venue_scoring"] is None and row["usd"] == D("0.25") and qc.pnl.ledger("0xa").rewards == D("0.25")
    assert qc.econ.bad_venue_data == 1
    assert any(e["message"] == "/orders-scoring failed: RuntimeError: boom" for e in sink.rows["events"])
    qc, sink = cycle(mode=Mode.PAPER)
    ex = Scorer({"a1": True})
    await qc._record_rewards(T0, [_sample("0xa", "0.25", ["a1"], ["a1"])], ex)
    assert ex.asked == [] and sink.rows["reward_estimates"][0]["venue_scoring"] is None


# ---------------------------------------------------------------- the faces: snapshot, totals
async def test_the_snapshot_shows_our_best_resting_quote_per_side_in_yes_space():
    qc, _ = cycle()
    m, other, books, ex = mkt(), mkt(7), Books(), FakeEx()
    books.set(m, "0.30", "0.60")
    qs = (_bid(m, "0.38"), _bid(m, "0.40"), _bid(m, "0.39"),
          Quote(m.condition_id, m.no_token_id, Side.BUY, D("0.50"), D(10)),  # YES ask 0.50
          Quote(m.condition_id, m.no_token_id, Side.BUY, D("0.52"), D(10)),  # YES ask 0.48
          Quote(m.condition_id, m.no_token_id, Side.BUY, D("0.45"), D(10)))  # YES ask 0.55
    qc.set_strategy(m.condition_id, Scripted("s", Decision(qs)))
    (stray,) = await ex.place([Quote(other.condition_id, other.yes_token_id, Side.BUY, D("0.45"), D(10))])
    ex.stuck.add(stray.client_id)  # an order of a market the cycle never knew, that will not cancel
    await qc.run_once(T0, [m], books, ex)
    st = qc.snapshot().markets[m.condition_id]
    assert (st.yes_bid, st.yes_ask) == (D("0.40"), D("0.48"))
    assert set(qc.snapshot().markets) == {m.condition_id}
    qc.final_pnl(T0 + 1)  # a snapshot built again (new totals): the same quotes of the cycle's end
    st2 = qc.snapshot().markets[m.condition_id]
    assert st2 is not st and (st2.yes_bid, st2.yes_ask) == (D("0.40"), D("0.48"))
    assert qc.totals.open_orders == 7
    # a market with only bids resting shows no ask
    qc.set_strategy(m.condition_id, Scripted("t", Decision((_bid(m, "0.41"),))))
    await qc.run_once(T0 + 3, [m], books, ex)
    st = qc.snapshot().markets[m.condition_id]
    assert (st.yes_bid, st.yes_ask) == (D("0.41"), None)


async def test_the_snapshot_rows_carry_each_markets_figures():
    qc, _ = cycle()
    m, m2, books, ex = mkt(terms=REWARDS), mkt(2), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    books.set(m2, "0.40", "0.60")
    ex.fills += [fill(m, m.yes_token_id, Side.BUY, "0.40", "20", T0, trade="a"),
                 fill(m, m.no_token_id, Side.BUY, "0.50", "5", T0, trade="b")]
    qc.set_strategy(m2.condition_id, "as")
    m3 = mkt(3)
    books.set(m3, "0.40", "0.50", stale=True)
    await qc.run_once(T0, [m, m2, m3], books, ex)
    snap = qc.snapshot()
    assert (snap.markets[m3.condition_id].placed, snap.markets[m3.condition_id].status) == (0, "stale")
    assert qc.snapshot() is snap  # built once per cycle
    st, st2 = snap.markets[m.condition_id], snap.markets[m2.condition_id]
    assert (st.question, st.status, st.mid, st.spread) == ("Q0?", "quoting", D("0.45"), D("0.10"))
    assert (st.inventory_yes, st.inventory_no, st.fills, st.placed) == (D(20), D(5), 2, 2)
    assert st.pnl == qc.pnl.ledgers[m.condition_id].parts(D("0.45"))
    assert (st.strategy, st.regime, st2.strategy, st2.regime) == ("spread", "normal", "as", "normal")
    assert st.fills_per_min == qc.calibrator.fills_per_min(m.condition_id, T0)
    assert st.calib_mult == qc.calibrator.mult(m.condition_id)
    assert (st2.inventory_yes, st2.inventory_no, st2.fills, st2.pnl, st2.mid, st2.spread) == (
        D(0), D(0), 0, NO_PNL, D("0.50"), D("0.20"))
    assert snap.totals.fills == 2 and snap.totals.placed == 4 and snap.totals.open_orders == 4
    assert snap.totals.fills_per_min == qc.calibrator.total_fills_per_min(
        [m.condition_id, m2.condition_id, m3.condition_id], T0)
    assert snap.ts == T0


async def test_the_minutes_reward_samples_reach_the_ledgers_and_the_faces():
    qc, sink = cycle(Params(quote_size=D(25)))
    m, m2, m3, books, ex = mkt(terms=REWARDS), mkt(2, terms=REWARDS), mkt(3), Books(), FakeEx()
    books.set(m, "0.44", "0.47")
    books.set(m2, "0.40", "0.42")
    books.set(m3, "0.40", "0.42")
    for k in range(3):
        await qc.run_once(T0 + 60 * k, [m, m2, m3], books, ex)
    rows = sink.rows["reward_estimates"]
    for x in (m, m2):
        usd = [r["usd"] for r in rows if r["market"] == x.condition_id]
        assert len(usd) == 2 and qc.pnl.ledgers[x.condition_id].rewards == sum(usd) > 0
    per_hour = {x.condition_id: qc.econ.usd_per_hour(x.condition_id) for x in (m, m2)}
    assert all(v is not None and v > 0 for v in per_hour.values())
    snap = qc.snapshot()
    assert {cid: snap.markets[cid].rewards_per_hour for cid in per_hour} == per_hour
    assert snap.totals.rewards_per_hour == sum(per_hour.values()) == qc.totals.rewards_per_hour
    assert snap.totals.pnl.rewards == sum(qc.pnl.ledgers[x.condition_id].rewards for x in (m, m2))


# ---------------------------------------------------------------- sample_on_venue_minutes
class AtEx(FakeEx):
    """Live: the orders that rested at a past time (`orders_at`)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []
        self.then: list[Order] = []

    def orders_at(self, ts: float) -> list[Order]:
        self.at.append(ts)
        return list(self.then)


async def test_venue_minutes_from_the_stream_are_sampled_then_and_recorded_by_the_next_cycle():
    qc, sink = cycle(Params(quote_size=D(25)))
    m, m2, books, ex = mkt(terms=REWARDS), mkt(2, terms=REWARDS), Books(), FakeEx()
    books.set(m, "0.44", "0.47")
    books.set(m2, "0.40", "0.42")
    stream = SimpleNamespace(clock=lambda: T0 + 30, venue_clock=None, on_venue_minute=None)
    qc.sample_on_venue_minutes(stream, books, ex)  # type: ignore[arg-type]
    assert qc.econ.stream_sampling and stream.venue_clock(T0) == qc.econ.clock.to_venue(T0)
    stream.on_venue_minute(int(T0 * 1000))  # before any cycle: the universe is empty, nothing sampled
    assert qc._venue_samples == [] and qc.econ.sample_count == 0
    for k in range(3):
        await qc.run_once(T0 + 60 * k, [m, m2], books, ex)
    assert "reward_estimates" not in sink.rows  # the cycle's own clock no longer samples
    await qc.resolve_market(T0 + 121, m2.condition_id, m2.yes_token_id, ex, "ws")
    boundary = 1_796_256_000  # 2026-12-03 00:00 UTC: the sample closes 2026-12-02
    stream.on_venue_minute(boundary * 1000)
    assert "reward_estimates" not in sink.rows  # recorded by the next cycle
    await qc.run_once(T0 + 180, [m, m2], books, ex)
    (row,) = sink.rows["reward_estimates"]
    assert (row["market"], row["ts"], row["venue_date"], row["orders"]) == (m.condition_id, T0 + 180, "2026-12-02", 2)
    assert qc.pnl.ledgers[m.condition_id].rewards == row["usd"] > 0
    await qc.run_once(T0 + 183, [m, m2], books, ex)
    assert len(sink.rows["reward_estimates"]) == 1  # recorded once


async def test_a_live_venue_minute_scores_the_orders_that_rested_at_it():
    qc, sink = cycle(Params(quote_size=D(25)), mode=Mode.LIVE)
    m, books, ex = mkt(terms=REWARDS), Books(), AtEx()
    books.set(m, "0.44", "0.47")
    stream = SimpleNamespace(clock=lambda: T0 + 30, venue_clock=None, on_venue_minute=None)
    qc.sample_on_venue_minutes(stream, books, ex)  # type: ignore[arg-type]
    await qc.run_once(T0, [m], books, ex)
    assert len(ex.open_orders()) == 2
    stream.on_venue_minute(1_796_256_000_000)
    assert ex.at == [1_796_256_000.0]
    await qc.run_once(T0 + 3, [m], books, ex)
    (row,) = sink.rows["reward_estimates"]
    assert row["orders"] == 0 and row["usd"] == 0  # nothing rested then


# ---------------------------------------------------------------- _observe
class Watching(FakeEx):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def observe_book(self, book: Any) -> None:
        self.seen.append(book.token_id)


async def test_every_book_the_cycle_reads_is_shown_to_the_exchange():
    qc, _ = cycle()
    m, m2, books, ex = mkt(), mkt(2), Books(), Watching()
    books.set(m, "0.40", "0.50")
    books.v["y2"] = views(m2, "0.40", "0.50")[0]  # m2's NO book missing
    await qc.run_once(T0, [m, m2], books, ex)
    assert ex.seen == ["y0", "n0", "y2"]
    assert qc.snapshot().markets[m2.condition_id].status == "stale"


async def test_a_stale_or_crossed_book_has_no_mid_and_the_same_book_back_is_quoted_again():
    for incremental in (True, False):
        qc, _ = cycle(incremental=incremental)
        m, books, ex = mkt(), Books(), FakeEx()
        books.set(m, "0.40", "0.50")
        await qc.run_once(T0, [m], books, ex)
        for flag, status in (("stale", "stale"), ("crossed", "crossed")):
            books.set(m, "0.40", "0.50", **{flag: True})
            await qc.run_once(T0 + 3, [m], books, ex)
            st = qc.snapshot().markets[m.condition_id]
            assert (st.status, st.mid, st.spread) == (status, None, None) and ex.open_orders() == []
            books.set(m, "0.40", "0.50")
            await qc.run_once(T0 + 6, [m], books, ex)
            st = qc.snapshot().markets[m.condition_id]
            assert (st.status, st.mid, st.spread) == ("quoting", D("0.45"), D("0.10")) and len(ex.open_orders()) == 2


async def test_an_unmoved_mid_still_counts_each_cycle_in_the_jump_window_and_the_volatility():
    sig = {}
    for incremental in (True, False):
        qc, _ = cycle(incremental=incremental)  # anomaly: a jump over 0.10 within 10 s
        m, books, ex = mkt(), Books(), FakeEx()
        for dt, bid in ((0, "0.40"), (3, "0.42"), (6, "0.40"), (9, "0.40"), (12, "0.40"), (15, "0.40")):
            books.set(m, bid, str(D(bid) + D("0.10")))
            await qc.run_once(T0 + dt, [m], books, ex)
        sig[incremental] = (qc.vol.sigma(m.yes_token_id, 30.0), qc.vol.sigma(m.no_token_id, 30.0))
        assert sig[incremental][0] > 0 and sig[incremental][1] == pytest.approx(sig[incremental][0])  # NO: 1 - YES
        books.set(m, "0.55", "0.65")  # 0.15 above the mid of 3 s ago (the last move is 12 s old)
        await qc.run_once(T0 + 18, [m], books, ex)
        assert qc.snapshot().markets[m.condition_id].status == "cooldown"
    assert sig[True] == sig[False]


async def test_the_calibrator_steps_each_market_at_its_tick_counting_only_time_with_quotes_resting():
    qc, _ = cycle()
    steps: list[tuple[str, float, float, bool]] = []
    qc.calibrator.step = lambda cid, now, tick, quoted=True: steps.append((cid, now, tick, quoted)) or False  # type: ignore[method-assign]
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50", stale=True)
    await qc.run_once(T0, [m0, m1], books, ex)
    await qc.run_once(T0 + 3, [m0, m1], books, ex)
    m0b = replace(m0, tick_size=D("0.001"))  # the venue refined the tick
    await qc.run_once(T0 + 6, [m0b, m1], books, ex)
    await qc.run_once(T0 + 9, [m0b, m1], books, ex)
    assert steps == [("0xc0", T0, 0.01, False), ("0xc1", T0, 0.01, False),
                     ("0xc0", T0 + 3, 0.01, True), ("0xc1", T0 + 3, 0.01, False),
                     ("0xc0", T0 + 6, 0.001, True), ("0xc1", T0 + 6, 0.01, False),
                     ("0xc0", T0 + 9, 0.001, True), ("0xc1", T0 + 9, 0.01, False)]


# ---------------------------------------------------------------- strategies per market
async def test_a_markets_strategy_parameters_are_quoted_there_only_and_none_returns_it_to_the_default():
    qc, _ = cycle()
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    qc.set_strategy(m0.condition_id, None, quote_size=D(33))
    assert qc.strategy_for(m0.condition_id).name == "spread"
    await qc.run_once(T0, [m0, m1], books, ex)
    assert {q.market: q.size for q in qc.wanted} == {m0.condition_id: D(33), m1.condition_id: D(10)}
    qc.set_strategy(m0.condition_id, None)
    assert qc.overrides == {}
    await qc.run_once(T0 + 3, [m0, m1], books, ex)
    assert {q.size for q in qc.wanted} == {D(10)}


def test_set_strategy_refuses_what_is_not_a_strategy_or_parameter_and_changes_nothing():
    qc, _ = cycle()
    qc.set_strategy("0xa", "as", quote_size=D(20))
    before = dict(qc.overrides)
    with pytest.raises(ValueError, match="is not a strategy"):
        qc.set_strategy("0xa", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a strategy parameter: max_inventory_usd"):
        qc.set_strategy("0xa", "spread", max_inventory_usd=D(1))
    with pytest.raises(ValueError):
        qc.set_strategy("0xa", "spread", quote_size=D(-1))
    with pytest.raises(ValueError, match="unknown strategy"):
        qc.set_strategy("0xa", "nope")
    assert qc.overrides == before and qc.overrides["0xa"].name == "as"
    assert qc._market_params("0xa").quote_size == D(20)
    s = Scripted("mine", Decision())
    qc.set_strategy("0xa", s)
    assert qc.strategy_for("0xa") is s and qc.overrides["0xa"].name == "mine" and qc.overrides["0xa"].params == {}
    assert qc._market_params("0xa") is qc.params
    qc.set_strategy("0xb", None, skew=1.0)
    assert qc.overrides["0xb"].strategy is None and qc.overrides["0xb"].name == ""


def test_the_default_strategy_is_the_objects_then_the_parameters_and_fit_quotes_the_rewards_seed():
    p = Params()
    qc, _ = cycle(p)
    assert qc.strategy_for("0xa").name == "spread"
    p.rewards_mode = "fit"
    assert qc.strategy_for("0xa").name == "rewards"
    p.strategy = "as"
    assert qc.strategy_for("0xa").name == "as"  # fit pulls the seed's quotes only
    s = Scripted("mine", Decision())
    qc.default_strategy = s
    assert qc.strategy_for("0xa") is s
    t = Scripted("own", Decision())
    qc.set_strategy("0xa", t)
    assert qc.strategy_for("0xa") is t and qc.strategy_for("0xb") is s
    qc.set_strategy("0xa", None, skew=1.0)  # parameters only: the default strategy
    assert qc.strategy_for("0xa") is s


def test_a_markets_parameters_follow_the_global_ones_and_yield_when_they_no_longer_fit():
    p = Params()
    qc, _ = cycle(p)
    assert qc._market_params("0xa") is p
    qc.set_strategy("0xa", None, regime_wide_vol=0.05)
    mp = qc._market_params("0xa")
    assert (mp.regime_wide_vol, mp.alpha) == (0.05, p.alpha) and qc._market_params("0xa") is mp  # kept
    p.alpha = 2.5
    mp = qc._market_params("0xa")
    assert (mp.regime_wide_vol, mp.alpha) == (0.05, 2.5)
    p.regime_wide_vol = 0.02
    p.regime_reduce_vol = 0.04  # the override's 0.05 no longer fits under it
    assert qc._market_params("0xa") is p
    p.regime_reduce_vol = 0.06
    assert qc._market_params("0xa").regime_wide_vol == 0.05
    qc.set_strategy("0xa", None, regime_wide_vol=0.04)  # the parameters in force unchanged: a new override
    assert qc._market_params("0xa").regime_wide_vol == 0.04


async def test_a_resolved_market_earns_no_more_rewards_on_the_faces():
    """Its orders are cancelled and it is never sampled again: its last sample's USD/h is no longer
    the estimate (the replay keeps resolved markets in its universe: the total kept counting it)."""
    for winner in ("y2", "y-who"):
        qc, _ = cycle(Params(quote_size=D(25)))
        m, m2, books, ex = mkt(terms=REWARDS), mkt(2, terms=REWARDS), Books(), FakeEx()
        books.set(m, "0.44", "0.47")
        books.set(m2, "0.40", "0.42")
        for k in range(2):
            await qc.run_once(T0 + 60 * k, [m, m2], books, ex)
        alone = qc.econ.usd_per_hour(m.condition_id)
        assert alone is not None and alone > 0 and qc.totals.rewards_per_hour > alone
        await qc.resolve_market(T0 + 61, m2.condition_id, winner, ex, "ws")
        for k in range(2, 4):
            await qc.run_once(T0 + 60 * k, [m, m2], books, ex)
        snap = qc.snapshot()
        assert snap.markets[m2.condition_id].rewards_per_hour is None
        assert snap.totals.rewards_per_hour == qc.econ.usd_per_hour(m.condition_id) > 0


# ---------------------------------------------------------------- _decide: user strategies' failures, events, guard
class Flaky:
    """Decides what `out` holds at each call: a Decision, an exception to raise, or anything else."""

    name = "flaky"

    def __init__(self, *out: Any) -> None:
        self.out = list(out)

    def decide(self, ctx: Any, state: object) -> Any:
        o = self.out.pop(0) if len(self.out) > 1 else self.out[0]
        if isinstance(o, Exception):
            raise o
        return o


def _guard_events(sink: MemorySink) -> list[tuple[str, str]]:
    return [(e["level"], e["message"]) for e in sink.rows.get("events", []) if e["kind"] == "strategy_guard"]


async def test_a_failing_strategy_quotes_nothing_and_is_said_once_until_it_changes():
    for incremental in (True, False):
        qc, sink = cycle(incremental=incremental)
        m, books, ex = mkt(), Books(), FakeEx()
        books.set(m, "0.40", "0.50")
        ok = Decision((_bid(m),))
        s = Flaky(ok, ValueError("boom"), ValueError("boom"), "no", ok, ok)
        qc.set_strategy(m.condition_id, s)
        await qc.run_once(T0, [m], books, ex)
        assert len(ex.open_orders()) == 1
        for k in (1, 2):
            rep = await qc.run_once(T0 + 3 * k, [m], books, ex)
            assert ex.open_orders() == [] and rep.quoted_markets == 0
            assert qc.snapshot().markets[m.condition_id].status == "strategy error: ValueError: boom"
        await qc.run_once(T0 + 9, [m], books, ex)
        assert qc.snapshot().markets[m.condition_id].status == "strategy error: TypeError: decide() returned str, not a Decision"
        await qc.run_once(T0 + 12, [m], books, ex)
        assert qc.snapshot().markets[m.condition_id].status == "quoting" and len(ex.open_orders()) == 1
        assert _guard_events(sink) == [
            ("ERROR", "flaky: strategy error: ValueError: boom"),
            ("ERROR", "flaky: strategy error: TypeError: decide() returned str, not a Decision")]


async def test_a_strategys_events_regime_by_value_and_guard_drops_are_recorded_edge_triggered():
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    crossing = Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.50"), D(10))  # at the ask
    s = Flaky(Decision((_bid(m),), "wide", "vol up", None, ("widened",)),  # type: ignore[arg-type]
              Decision((_bid(m), crossing)), Decision((_bid(m), crossing)), Decision((_bid(m),)),
              Decision((_bid(m), crossing)), Decision((crossing,), Regime.HALTED, "stop"))
    qc.set_strategy(m.condition_id, s)
    rep = await qc.run_once(T0, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].regime == "wide"
    assert qc.snapshot().markets[m.condition_id].status == "wide (vol up): quoting"
    (ev,) = [e for e in sink.rows["events"] if e["kind"] == "strategy_regime"]
    assert (ev["message"], ev["data_json"]) == ("flaky: widened", {"strategy": "flaky", "regime": "wide", "reason": "vol up"})
    assert rep.strategy_events == [f"{m.condition_id}: flaky: widened"]
    for k in range(1, 6):
        await qc.run_once(T0 + 3 * k, [m], books, ex)
    drop = "flaky: guard dropped a quote: bid 0.50 would cross the ask 0.50"
    assert _guard_events(sink) == [("WARNING", drop), ("WARNING", drop)]  # said when it starts, again after a clean cycle
    assert qc.snapshot().markets[m.condition_id].status == "halted (stop)"  # a halt drops quotes unsaid


# ---------------------------------------------------------------- _decide: the incremental reuse
class Keyed:
    """A strategy with a `decision_key` (`key` as set); counts its decisions."""

    name = "keyed"

    def __init__(self, d: Decision) -> None:
        self.d, self.key, self.calls = d, 1, 0

    def decision_key(self, ctx: Any) -> object:
        if self.key == "raise":
            raise RuntimeError("key failed")
        return self.key

    def decide(self, ctx: Any, state: object) -> Decision:
        self.calls += 1
        if isinstance(self.d, Exception):
            raise self.d
        return replace(self.d, state=(self.calls,)) if self.d.state == "count" else self.d


async def _keyed_cycle(d: Decision) -> tuple[QuoteCycle, MemorySink, Market, Books, FakeEx, Keyed]:
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    s = Keyed(d)
    qc.set_strategy(m.condition_id, s)
    return qc, sink, m, books, ex, s


async def test_an_unchanged_keyed_decision_is_kept_and_any_input_it_depends_on_decides_again():
    m0 = mkt()
    qc, sink, m, books, ex, s = await _keyed_cycle(Decision((_bid(m0),), Regime.WIDE, "w"))
    r = [await qc.run_once(T0 + 3 * k, [m], books, ex) for k in range(2)]
    assert s.calls == 1 and (r[0].decided, r[0].reused, r[1].decided, r[1].reused) == (1, 0, 0, 1)
    st = qc.snapshot().markets[m.condition_id]
    assert (st.status, st.regime) == ("wide (w): quoting", "wide") and qc.wanted == [_bid(m)]
    s.key = 2  # the strategy's own inputs
    await qc.run_once(T0 + 6, [m], books, ex)
    assert s.calls == 2
    books.set(m, "0.41", "0.50")  # the touch
    await qc.run_once(T0 + 9, [m], books, ex)
    assert s.calls == 3
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "5", T0 + 10))  # the inventory
    await qc.run_once(T0 + 12, [m], books, ex)
    assert s.calls == 4
    qc.params.quote_size = D(11)  # the parameters
    await qc.run_once(T0 + 15, [m], books, ex)
    assert s.calls == 5
    qc.set_strategy(m.condition_id, s, alpha=2.0)  # the market's own parameters
    await qc.run_once(T0 + 18, [m], books, ex)
    assert s.calls == 6
    await qc.run_once(T0 + 21, [m], books, ex)
    assert s.calls == 6
    s.key = "raise"  # a key that fails: decided every cycle
    await qc.run_once(T0 + 24, [m], books, ex)
    await qc.run_once(T0 + 27, [m], books, ex)
    assert s.calls == 8 and qc.wanted == [_bid(m)]


async def test_a_full_cycle_decides_every_market_every_cycle():
    m0 = mkt()
    qc, sink = cycle(incremental=False)
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    s = Keyed(Decision((_bid(m0),)))
    qc.set_strategy(m.condition_id, s)
    reps = [await qc.run_once(T0 + 3 * k, [m], books, ex) for k in range(3)]
    assert s.calls == 3 and [(r.decided, r.reused) for r in reps] == [(1, 0)] * 3


async def test_a_decision_is_not_kept_past_a_strategy_error():
    m0 = mkt()
    qc, sink, m, books, ex, s = await _keyed_cycle(Decision((_bid(m0),)))
    await qc.run_once(T0, [m], books, ex)
    good = s.d
    s.key, s.d = 2, ValueError("boom")  # type: ignore[assignment]
    await qc.run_once(T0 + 3, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].status.startswith("strategy error")
    s.key, s.d = 1, good  # the first inputs again: decided again, not the decision of before the error
    await qc.run_once(T0 + 6, [m], books, ex)
    assert s.calls == 3 and qc.snapshot().markets[m.condition_id].status == "quoting"


async def test_a_decision_kept_across_a_switch_back_shows_its_regime():
    m0 = mkt()
    qc, sink, m, books, ex, a = await _keyed_cycle(Decision((_bid(m0),), Regime.WIDE, "w"))
    await qc.run_once(T0, [m], books, ex)
    qc.set_strategy(m.condition_id, Stateful("b"))
    books.set(m, "0.40", "0.50", stale=True)
    await qc.run_once(T0 + 3, [m], books, ex)  # b not decided: the book is stale
    qc.set_strategy(m.condition_id, a)
    books.set(m, "0.40", "0.50")
    rep = await qc.run_once(T0 + 6, [m], books, ex)
    assert rep.reused == 1 and a.calls == 1
    st = qc.snapshot().markets[m.condition_id]
    assert (st.regime, st.status) == ("wide", "wide (w): quoting")


async def test_a_decision_with_events_or_a_new_state_is_never_kept():
    m0 = mkt()
    for d in (Decision((_bid(m0),), events=("hello",)), Decision((_bid(m0),), state="count")):
        qc, sink, m, books, ex, s = await _keyed_cycle(d)
        for k in range(3):
            await qc.run_once(T0 + 3 * k, [m], books, ex)
        assert s.calls == 3


async def test_a_kept_decision_keeps_its_guard_flag_and_a_halt_clears_it():
    m0 = mkt()
    crossing = Quote(m0.condition_id, m0.yes_token_id, Side.BUY, D("0.50"), D(10))
    qc, sink, m, books, ex, s = await _keyed_cycle(Decision((_bid(m0), crossing)))
    for k in range(3):
        await qc.run_once(T0 + 3 * k, [m], books, ex)
    assert s.calls == 1 and len(_guard_events(sink)) == 1  # not said again by the reused decision
    assert qc._guard_flag == {m.condition_id: "guard dropped a quote: bid 0.50 would cross the ask 0.50"}
    s.d, s.key = Decision((crossing,), Regime.HALTED), 2
    for k in range(3, 5):
        await qc.run_once(T0 + 3 * k, [m], books, ex)
    assert s.calls == 2 and qc._guard_flag == {} and qc.snapshot().markets[m.condition_id].status == "halted"


# ---------------------------------------------------------------- the universe, marks and holdings
async def test_the_exchange_learns_every_market_ever_seen_and_only_when_the_universe_changes():
    qc, _ = cycle()
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    for k in range(3):
        await qc.run_once(T0 + 3 * k, [m0, m1], books, ex)
    m0b = replace(m0, tick_size=D("0.001"))
    await qc.run_once(T0 + 9, [m0b, m1], books, ex)  # the same ids, a new object
    await qc.run_once(T0 + 12, [m1], books, ex)  # market 0 left: its fills may still come
    await qc.run_once(T0 + 15, [m1], books, ex)
    assert [c for c in ex.calls if c[0] == "set_markets"] == [
        ("set_markets", ["0xc0", "0xc1"]), ("set_markets", ["0xc0", "0xc1"]), ("set_markets", ["0xc0", "0xc1"])]
    assert qc._tick_of("y0") == D("0.001") and qc._tick_of("n1") == D("0.01") and qc._tick_of("zz") == D("0.01")
    ex.fills.append(fill(m0, m0.yes_token_id, Side.BUY, "0.40", "10", T0 + 16))
    await qc.run_once(T0 + 18, [m1], books, ex)
    assert qc.inventory(m0.condition_id).yes == 10


async def test_token_marks_are_the_yes_mid_and_its_complement():
    qc, _ = cycle()
    m, m2, books, ex = mkt(), mkt(2), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    books.set(m2, "0.40", "0.50", stale=True)
    await qc.run_once(T0, [m, m2], books, ex)
    assert (qc.token_mid("y0"), qc.token_mid("n0")) == (D("0.45"), D("0.55"))
    assert qc.token_mid("y2") is None and qc.token_mid("n2") is None and qc.token_mid("zz") is None


async def test_the_inventory_is_handed_out_again_until_the_ledger_moves():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    assert qc.inventory(m.condition_id).net == 0 and qc.inventory(m.condition_id) is qc.inventory("0xnone")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "10", T0))
    await qc.run_once(T0, [m], books, ex)
    a = qc.inventory(m.condition_id)
    assert (a.yes, a.no) == (D(10), D(0)) and qc.inventory(m.condition_id) is a
    ex.fills.append(fill(m, m.no_token_id, Side.BUY, "0.50", "4", T0 + 1, trade="t2"))
    await qc.run_once(T0 + 3, [m], books, ex)
    b = qc.inventory(m.condition_id)
    assert (b.yes, b.no) == (D(10), D(4)) and b is not a
    ex.fills.append(fill(m, m.yes_token_id, Side.SELL, "0.45", "3", T0 + 4, trade="t3"))
    await qc.run_once(T0 + 6, [m], books, ex)
    assert (qc.inventory(m.condition_id).yes, qc.inventory(m.condition_id).no) == (D(7), D(4))


def test_the_defaults_the_engine_and_the_replay_run_with():
    """The engine and the replay leave these to the cycle (the replay's trades depend on them)."""
    qc, _ = cycle()
    assert (qc.pnl_sec, qc.vol_horizon_sec, qc.incremental, qc.yield_sec) == (10.0, 30.0, True, 0.0)
    assert qc.markouts.horizons == tuple(sorted(HORIZONS))
    assert (qc.calibrator.update_sec, qc.calibrator.window_sec) == (30.0, 300.0)


def _book(token: str, market: str, bid: str | None, ask: str | None, tick: str = "0.01") -> BookView:
    return BookView(token, market, (Level(D(bid), D(100)),) if bid else (), (Level(D(ask), D(100)),) if ask else (),
                    D(tick))


async def test_the_incremental_touch_follows_each_best_price_and_tick_on_its_own():
    """Each of the four best prices (and each book's tick) moves alone: the incremental cycle's
    mid, spread and quotes are the full cycle's."""
    steps = [("0.40", "0.55", "0.45", "0.60", "0.01"),  # YES bid/ask, NO bid/ask, the NO book's tick
             ("0.41", "0.55", "0.45", "0.60", "0.01"),  # the effective bid: the YES bid
             ("0.41", "0.53", "0.45", "0.60", "0.01"),  # the effective ask: the YES ask
             ("0.41", "0.53", "0.48", "0.60", "0.01"),  # the effective ask: 1 - the NO bid
             ("0.41", "0.53", "0.48", "0.57", "0.01"),  # the effective bid: 1 - the NO ask
             ("0.41", "0.53", "0.48", "0.57", "0.05"),  # a coarser NO tick: the grid's
             ("0.41", "0.53", "0.48", "0.57", "0.01"),
             ("0.41", None, "0.48", "0.57", "0.01"),
             ("0.41", "0.53", "0.48", "0.57", "0.01"),
             ("0.41", "0.53", None, "0.57", "0.01"),  # no NO bid: the YES ask alone
             ("0.45", "0.45", "0.55", "0.55", "0.01"),  # locked: no mid
             ("0.45", "0.45", "0.55", "0.55", "0.01"),  # (and again, unchanged)
             (None, "0.53", "0.48", None, "0.01")]
    m = mkt()
    got: dict[bool, list[Any]] = {}
    for incremental in (True, False):
        qc, _ = cycle(incremental=incremental)
        ex, out = FakeEx(), []
        for k, (yb, ya, nb, na, ntick) in enumerate(steps):
            v = {"y0": _book("y0", m.condition_id, yb, ya), "n0": _book("n0", m.condition_id, nb, na, ntick)}
            await qc.run_once(T0 + 20 * k, [m], v.get, ex)
            st = qc.snapshot().markets[m.condition_id]
            out.append((st.mid, st.spread, st.status, sorted((q.token_id, q.price) for q in qc.wanted)))
        got[incremental] = out
    assert got[True] == got[False]
    assert [(o[0], o[1]) for o in got[False]] == [
        (D("0.475"), D("0.15")), (D("0.48"), D("0.14")), (D("0.47"), D("0.12")), (D("0.465"), D("0.11")),
        (D("0.475"), D("0.09")), (D("0.475"), D("0.05")), (D("0.475"), D("0.09")), (D("0.475"), D("0.09")),
        (D("0.475"), D("0.09")), (D("0.48"), D("0.10")), (None, None), (None, None), (None, None)]


async def test_aclose_ends_a_payouts_read_still_out_and_the_day_stays_unread():
    qc, _ = cycle(mode=Mode.LIVE)
    venue = Payer(([], []))
    await qc._venue_payouts(NOW_PAY, venue)
    assert qc._payouts is not None
    task = qc._payouts[1]
    await asyncio.wait_for(qc.aclose(), 5)
    assert task.cancelled() and qc._payouts is None and PAY_DAY not in qc.econ.payouts.done
    await qc.aclose()


# ---------------------------------------------------------------- _decide_all: between markets, switches
def _hook_paces(qc: QuoteCycle, at: dict[int, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `at[n]()` right after the cycle's n-th turn given to the loop (1-based, over the cycle's life);
    the cycle's clock moves a second at each look: with `yield_sec` 1e-9 a turn before every market."""
    tick = iter(range(10_000))
    monkeypatch.setattr(cycle_module, "time", SimpleNamespace(perf_counter=lambda: float(next(tick))))
    orig, n = qc._pace, [0]

    async def pace() -> None:
        await orig()
        n[0] += 1
        if n[0] in at:
            at[n[0]]()

    qc._pace = pace  # type: ignore[method-assign]


async def test_a_parameter_changed_during_a_turn_of_the_loop_applies_from_the_next_market(monkeypatch):
    """Turns 1-2 observe, 3-4 account, 5-6 decide (two markets): the change at turn 5 is in
    force for both markets' decisions, the one at turn 6 for the second market's only."""
    for change, want in (("strategy", ["as", "as"]), ("strategy6", ["spread", "as"])):
        p = Params()
        qc, _ = cycle(p, yield_sec=1e-9)
        m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
        books.set(m0, "0.40", "0.50")
        books.set(m1, "0.40", "0.50")
        _hook_paces(qc, {5 if change == "strategy" else 6: lambda p=p: setattr(p, "strategy", "as")}, monkeypatch)
        await qc.run_once(T0, [m0, m1], books, ex)
        assert [qc._active[m.condition_id].name for m in (m0, m1)] == want
    p = Params()
    qc, _ = cycle(p, yield_sec=1e-9)
    m0, m1, books, ex = mkt(0, terms=REWARDS), mkt(1, terms=REWARDS), Books(), FakeEx()
    books.set(m0, "0.04", "0.06")
    books.set(m1, "0.04", "0.06")
    for m in (m0, m1):
        qc.set_strategy(m.condition_id, OneSided("bid"))
    _hook_paces(qc, {6: lambda: setattr(p, "rewards_mode", "fit")}, monkeypatch)
    await qc.run_once(T0, [m0, m1], books, ex)
    assert len(_sides(qc, m0)) == 1 and _sides(qc, m1) == {("yes", Side.BUY), ("no", Side.BUY)}


async def test_the_orders_a_strategy_sees_are_those_resting_when_the_decisions_began(monkeypatch):
    qc, _ = cycle(yield_sec=1e-9)
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    s = Scripted("s", Decision((_bid(m1),)))
    qc.set_strategy(m1.condition_id, s)
    await qc.run_once(T0, [m0, m1], books, ex)
    assert s.seen == [()]
    late = Order("late", m1.condition_id, m1.yes_token_id, Side.BUY, D("0.30"), D(10), Mode.PAPER, OrderStatus.LIVE)
    _hook_paces(qc, {5: lambda: ex.orders.__setitem__("late", late)}, monkeypatch)  # (the decisions' first turn)
    await qc.run_once(T0 + 3, [m0, m1], books, ex)
    assert [o.price for o in s.seen[1]] == [D("0.40")]


class Stateful:
    def __init__(self, name: str, regime: Regime = Regime.NORMAL) -> None:
        self.name, self.regime, self.states = name, regime, []

    def decide(self, ctx: Any, state: object) -> Decision:
        self.states.append(state)
        return Decision((), self.regime, state=f"{self.name}{len(self.states)}")


async def test_a_switched_strategy_starts_from_no_state_and_no_regime():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    a, b = Stateful("a", Regime.WIDE), Stateful("b")
    qc.set_strategy(m.condition_id, a)
    for k in range(2):
        await qc.run_once(T0 + 3 * k, [m], books, ex)
    assert a.states == [None, "a1"] and qc.snapshot().markets[m.condition_id].regime == "wide"
    qc.set_strategy(m.condition_id, b)
    books.set(m, "0.40", "0.50", stale=True)  # not decided this cycle
    await qc.run_once(T0 + 6, [m], books, ex)
    assert qc.snapshot().markets[m.condition_id].regime == ""
    books.set(m, "0.40", "0.50")
    for k in range(3, 5):
        await qc.run_once(T0 + 3 * k, [m], books, ex)
    assert b.states == [None, "b1"]
    qc.set_strategy(m.condition_id, a)
    await qc.run_once(T0 + 15, [m], books, ex)
    assert a.states == [None, "a1", None]


async def test_a_daily_loss_past_the_limit_kills_quoting_for_good_and_a_market_loss_stops_that_market():
    p = Params()
    p.max_daily_loss_usd = D("5")
    p.max_loss_per_market_usd = D("2")
    qc, _ = cycle(p)
    m0, m1, books, ex = mkt(0), mkt(1), Books(), FakeEx()
    books.set(m0, "0.40", "0.50")
    books.set(m1, "0.40", "0.50")
    ex.fills.append(fill(m0, m0.yes_token_id, Side.BUY, "0.45", "100", T0))
    rep = await qc.run_once(T0, [m0, m1], books, ex)
    assert not rep.kill_requested
    books.set(m0, "0.41", "0.45")  # 100 YES marked 0.02 lower: a 2.00 loss, at the market's limit
    rep = await qc.run_once(T0 + 3, [m0, m1], books, ex)
    assert not rep.kill_requested and qc.snapshot().markets[m0.condition_id].status == "quoting"
    books.set(m0, "0.40", "0.45")  # 2.50 lost: the market stops, the day goes on
    rep = await qc.run_once(T0 + 6, [m0, m1], books, ex)
    assert not rep.kill_requested
    assert qc.snapshot().markets[m0.condition_id].status == "risk: max loss 2.50 > 2 USD"
    assert qc.snapshot().markets[m1.condition_id].status == "quoting"
    books.set(m0, "0.35", "0.37")  # 9.00 lost: the day's limit
    rep = await qc.run_once(T0 + 9, [m0, m1], books, ex)
    assert rep.kill_requested and ex.open_orders() == [] and any("daily loss" in b for b in rep.breaches)
    books.set(m0, "0.44", "0.46")  # back up: still killed
    rep = await qc.run_once(T0 + 12, [m0, m1], books, ex)
    assert rep.kill_requested and rep.placed == 0
    assert {s.status for s in qc.snapshot().markets.values()} == {"risk: killed"}


async def test_the_requote_time_is_the_round_trip_of_the_cycles_sends_and_zero_without_any(monkeypatch):
    clock = [100.0]

    def perf_counter() -> float:  # a second passes at each look, and a quarter in each place
        clock[0] += 1.0
        return clock[0]

    monkeypatch.setattr(cycle_module, "time", SimpleNamespace(perf_counter=perf_counter))

    class Slow(FakeEx):
        async def place(self, quotes: Sequence[Quote]) -> list[Order]:
            clock[0] += 0.25
            return await super().place(quotes)

    qc, _ = cycle()
    m, books, ex = mkt(), Books(), Slow()
    books.set(m, "0.40", "0.50")
    rep = await qc.run_once(T0, [m], books, ex)
    assert rep.placed == 2 and rep.requote_sec == 1.25
    rep = await qc.run_once(T0 + 3, [m], books, ex)  # nothing to change
    assert (rep.placed, rep.cancelled, rep.requote_sec) == (0, 0, 0.0) and [c[0] for c in ex.calls] == [
        "set_markets", "place"]


async def test_an_event_limit_reads_a_fractional_position_by_its_sign_and_notes_only_real_drops():
    qc, ms, _ = await _event_run("0.2", [])  # (no fills: set up the markets, then hold half a share)
    m = ms[0]
    books, ex = Books(), FakeEx()
    for x in ms:
        books.set(x, "0.40", "0.50")
    ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "0.5", T0 + 4, trade="half"))
    await qc.run_once(T0 + 6, ms, books, ex)  # long 0.5 YES: 0.225 USD at mid, past 0.2
    assert qc.inventory(m.condition_id).net == D("0.5")
    assert _sides(qc, m) == {("no", Side.BUY)}  # the NO bid sheds it; the YES bid would grow it
    # at the limit, a market whose every quote sheds is quoted with no risk note
    qc, ms, _ = await _event_run("9", [(0, "yes", Side.BUY)])
    m = ms[0]
    qc.set_strategy(m.condition_id, Scripted("s", Decision((Quote(m.condition_id, m.yes_token_id, Side.SELL,
                                                                    D("0.52"), D(10)),))))
    books = Books()
    for x in ms:
        books.set(x, "0.40", "0.50")
    await qc.run_once(T0 + 9, ms, books, FakeEx())
    assert qc.snapshot().markets[m.condition_id].status == "quoting" and _sides(qc, m) == {("yes", Side.SELL)}


async def test_fit_leaves_no_quotes_and_two_sided_quotes_as_they_are():
    class Both:
        name = "both"

        def decide(self, ctx: Any, state: object) -> Decision:
            m = ctx.market
            return Decision((Quote(m.condition_id, m.yes_token_id, Side.BUY, D("0.04"), D(25)),
                             Quote(m.condition_id, m.no_token_id, Side.BUY, D("0.94"), D(25))))

    for strat, want in ((Scripted("none", Decision()), set()),
                        (Both(), {("yes", Side.BUY, D("0.04"), D(25)), ("no", Side.BUY, D("0.94"), D(25))})):
        qc, _ = cycle(Params(rewards_mode="fit"))
        m, books, ex = mkt(terms=REWARDS), Books(), FakeEx()
        books.set(m, "0.04", "0.06")
        qc.set_strategy(m.condition_id, strat)
        await qc.run_once(T0, [m], books, ex)
        assert {("yes" if q.token_id == m.yes_token_id else "no", q.side, q.price, q.size) for q in qc.wanted} == want


async def test_a_paper_sample_scores_the_book_as_it_is_our_orders_being_no_part_of_it():
    qc, sink = cycle(Params(quote_size=D(25)))
    m, books, ex = mkt(terms=REWARDS), Books(), FakeEx()
    books.set(m, "0.44", "0.47")
    qc.set_strategy(m.condition_id, Scripted("join", Decision((_bid(m, "0.44"),))))  # at the touch, in its level
    for k in range(3):
        await qc.run_once(T0 + 60 * k, [m], books, ex)
    row = sink.rows["reward_estimates"][-1]
    prog, v = qc.econ.terms_of(m.condition_id).program, books(m.yes_token_id)
    assert v is not None
    paper = estimate_market(m, prog, v, ex.open_orders(), False).total_q_min
    assert row["q_min_total"] == paper != estimate_market(m, prog, v, ex.open_orders(), True).total_q_min


# ---------------------------------------------------------------- _decide_spread: the seed's fast decision
async def test_the_seeds_fast_decision_follows_inventory_limit_tick_and_overrides_as_the_full_cycle_does():
    """The incremental cycle decides the seed's strategy without a `MarketContext`, keeping floats
    of Decimals that did not change: every input moving alone changes its quotes as it changes
    the full cycle's (`SpreadStrategy.decide`)."""
    got: dict[bool, list[Any]] = {}
    for incremental in (True, False):
        p = Params(skew=5.0, max_inventory_shares=D(100), alpha=1.0, price_band=D("0.5"))
        qc, _ = cycle(p, incremental=incremental)
        m, books, ex = mkt(), Books(), FakeEx()
        books.set(m, "0.40", "0.60")
        out = []

        async def step(k: int, mk: Market = m, qc: QuoteCycle = qc, ex: FakeEx = ex, books: Books = books,
                       out: list[Any] = out) -> None:
            await qc.run_once(T0 + 3 * k, [mk], books, ex)
            out.append(sorted((q.token_id, q.side.value, q.price, q.size) for q in qc.wanted))

        await step(0)
        ex.fills.append(fill(m, m.yes_token_id, Side.BUY, "0.40", "60", T0 + 1))  # inventory: skewed
        await step(1)
        p.max_inventory_shares = D(400)  # the limit
        await step(2)
        await step(3, replace(m, tick_size=D("0.001")))  # the market's tick (the books' stays)
        qc.set_strategy(m.condition_id, None, alpha=3.0)  # the market's own parameters
        await step(4)
        qc.set_strategy(m.condition_id, None, alpha=3.0, skew=0.0)
        await step(5)
        ex.fills.append(fill(m, m.yes_token_id, Side.SELL, "0.50", "60", T0 + 16, trade="t2"))  # flat again
        await step(6)
        got[incremental] = out
    assert got[True] == got[False]
    assert len({tuple(x) for x in got[False]}) == 6  # each input moved the quotes (the tick: not on the books grid)


async def test_the_seeds_fast_decision_falls_back_to_the_strategy_when_its_ticks_fail(monkeypatch):
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    want = list(qc.wanted)

    def boom(*a: Any, **k: Any) -> Any:
        raise ArithmeticError("no ticks")

    monkeypatch.setattr(cycle_module, "ticks_at", boom)
    qc2, _ = cycle()
    rep = await qc2.run_once(T0, [m], books, FakeEx())
    assert qc2.wanted == want and rep.decided == 1
    assert qc2.snapshot().markets[m.condition_id].status == "quoting"


async def test_the_seeds_kept_decision_is_redone_for_a_new_market_object_and_keeps_its_regime_on_a_switch_back():
    qc, _ = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    assert {q.size for q in qc.wanted} == {D(10)}
    big = replace(m, min_order_size=D(20))  # the venue raised the market's minimum
    rep = await qc.run_once(T0 + 3, [big], books, ex)
    assert rep.decided == 1 and {q.size for q in qc.wanted} == {D(20)}
    qc.set_strategy(m.condition_id, Stateful("b"))
    books.set(m, "0.40", "0.50", stale=True)
    await qc.run_once(T0 + 6, [big], books, ex)
    qc.set_strategy(m.condition_id, None)
    books.set(m, "0.40", "0.50")
    rep = await qc.run_once(T0 + 9, [big], books, ex)
    assert rep.reused == 1 and qc.snapshot().markets[m.condition_id].regime == "normal"


async def test_the_seeds_failure_is_said_quotes_nothing_and_is_decided_again_then_cleared(monkeypatch):
    qc, sink = cycle()
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    real = cycle_module.token_quotes

    def boom(*a: Any, **k: Any) -> Any:
        raise ValueError("no quotes")

    monkeypatch.setattr(cycle_module, "token_quotes", boom)
    qc.params.quote_size = D(12)  # (a new key: decided again)
    rep = await qc.run_once(T0 + 3, [m], books, ex)
    st = qc.snapshot().markets[m.condition_id]
    assert (st.status, rep.quoted_markets, ex.open_orders()) == ("strategy error: ValueError: no quotes", 0, [])
    assert _guard_events(sink) == [("ERROR", "spread: strategy error: ValueError: no quotes")]
    monkeypatch.setattr(cycle_module, "token_quotes", real)
    qc.params.quote_size = D(10)  # the first cycle's inputs again: decided again, not its decision kept
    rep = await qc.run_once(T0 + 6, [m], books, ex)
    assert rep.decided == 1 and qc.snapshot().markets[m.condition_id].status == "quoting" and qc._guard_flag == {}
    monkeypatch.setattr(cycle_module, "token_quotes", boom)
    qc.params.quote_size = D(13)
    await qc.run_once(T0 + 9, [m], books, ex)
    assert len(_guard_events(sink)) == 2  # said again: the clean decision between cleared it


async def test_a_paper_venue_minute_scores_the_book_as_it_is_our_orders_being_no_part_of_it():
    qc, sink = cycle(Params(quote_size=D(25)))
    m, books, ex = mkt(terms=REWARDS), Books(), FakeEx()
    books.set(m, "0.44", "0.47")
    qc.set_strategy(m.condition_id, Scripted("join", Decision((_bid(m, "0.44"),))))
    stream = SimpleNamespace(clock=lambda: T0 + 30, venue_clock=None, on_venue_minute=None)
    qc.sample_on_venue_minutes(stream, books, ex)  # type: ignore[arg-type]
    await qc.run_once(T0, [m], books, ex)
    stream.on_venue_minute(1_796_256_000_000)
    await qc.run_once(T0 + 3, [m], books, ex)
    (row,) = sink.rows["reward_estimates"]
    prog, v = qc.econ.terms_of(m.condition_id).program, books(m.yes_token_id)
    assert v is not None
    paper = estimate_market(m, prog, v, ex.open_orders(), False).total_q_min
    assert row["q_min_total"] == paper != estimate_market(m, prog, v, ex.open_orders(), True).total_q_min


async def test_a_fresh_cycle_has_an_empty_snapshot_and_speaks_on_the_bus_it_is_given():
    sink = MemorySink()
    bus = EventBus()
    qc = QuoteCycle(Params(), sink, Mode.PAPER, events=bus)
    snap = qc.snapshot()
    assert (snap.ts, snap.markets, snap.totals, qc.wanted) == (0.0, {}, SnapshotTotals(), [])
    m, books, ex = mkt(), Books(), FakeEx()
    books.set(m, "0.40", "0.50")
    await qc.run_once(T0, [m], books, ex)
    await qc.resolve_market(T0 + 1, m.condition_id, m.yes_token_id, ex, "ws")
    assert [e.kind for e in bus.recent()][-1] == EventKind.RESOLUTION
    assert "events" not in sink.rows  # the engine's bus persists them, not the cycle
