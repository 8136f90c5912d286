"""Pure simulator tests: determinism, YES/NO mirror, book shape, hash rule, account trading."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_clob_client_v2.clob_types import OrderBookSummary, OrderSummary
from py_clob_client_v2.utilities import generate_orderbook_summary_hash

from pmm_widgets.domain import Side
from pmm_widgets.sandbox.simulator import SimReject, Simulator

T0 = 1_780_000_000.0


def stream(seed: int, steps: int, markets: int = 30) -> list[str]:
    sim = Simulator(markets, seed, start_ts=T0)
    out: list[str] = []
    for _ in range(steps):
        out.extend(json.dumps(e.payload, sort_keys=True) for e in sim.step())
    return out


def test_same_seed_same_event_stream() -> None:
    a, b = stream(5, 600), stream(5, 600)
    assert len(a) > 500
    assert a == b


def test_different_seeds_differ() -> None:
    assert stream(5, 200) != stream(6, 200)


def test_markets_are_varied() -> None:
    sim = Simulator(80, 7, start_ts=T0)
    ms = sim.markets
    liq = [m.liquidity_num for m in ms]
    assert max(liq) / min(liq) > 1_000  # orders of magnitude apart
    assert {m.tick_size for m in ms} == {Decimal("0.01"), Decimal("0.001")}
    assert {m.min_order_size for m in ms} == {Decimal(5), Decimal(10), Decimal(15)}
    assert any(m.neg_risk for m in ms) and not all(m.neg_risk for m in ms)
    assert 4 <= sum(1 for m in ms if m.closed or not m.accepting_orders) <= 6
    assert sum(1 for m in ms if not m.has_enable_order_book) == 2
    for m in ms:
        for tok in m.yes_token_id, m.no_token_id:
            assert tok.isdigit() and 76 <= len(tok) <= 78
        assert m.condition_id.startswith("0x") and len(m.condition_id) == 66
    assert len({m.yes_token_id for m in ms} | {m.no_token_id for m in ms}) == 160


def _levels(snap: dict, side: str) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(x["price"]), Decimal(x["size"])) for x in snap[side]]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 300))
def test_yes_no_books_mirror_and_are_well_formed(seed: int, steps: int) -> None:
    sim = Simulator(8, seed, start_ts=T0)
    for _ in range(steps):
        sim.step()
    for m in sim.markets:
        if not m.has_book:
            assert sim.book_snapshot(m.yes_token_id) is None
            continue
        y, n = sim.book_snapshot(m.yes_token_id), sim.book_snapshot(m.no_token_id)
        yb, ya, nb, na = _levels(y, "bids"), _levels(y, "asks"), _levels(n, "bids"), _levels(n, "asks")
        # a NO bid at q is a YES ask at 1 - q (same size), and vice versa
        assert sorted((1 - p, s) for p, s in nb) == sorted(ya)
        assert sorted((1 - p, s) for p, s in na) == sorted(yb)
        tick = Decimal(y["tick_size"])
        for book in (yb, ya, nb, na):
            for p, s in book:
                assert tick <= p <= 1 - tick and (p / tick) % 1 == 0 and s > 0
        # wire order: bids ascending, asks descending, best last; never crossed
        for bids, asks in ((yb, ya), (nb, na)):
            assert [p for p, _ in bids] == sorted(p for p, _ in bids)
            assert [p for p, _ in asks] == sorted((p for p, _ in asks), reverse=True)
            if bids and asks:
                assert bids[-1][0] < asks[-1][0]
        assert len(yb) <= 31 and len(ya) <= 31


def test_hash_matches_sdk_rule() -> None:
    sim = Simulator(6, 3, start_ts=T0)
    for _ in range(100):
        sim.step()
    for m in sim.markets:
        if not m.has_book:
            continue
        for tok in m.yes_token_id, m.no_token_id:
            snap = sim.book_snapshot(tok)
            ob = OrderBookSummary(
                market=snap["market"], asset_id=snap["asset_id"], timestamp=snap["timestamp"],
                bids=[OrderSummary(**x) for x in snap["bids"]], asks=[OrderSummary(**x) for x in snap["asks"]],
                min_order_size=snap["min_order_size"], neg_risk=snap["neg_risk"], tick_size=snap["tick_size"],
                last_trade_price=snap["last_trade_price"], hash="")
            assert generate_orderbook_summary_hash(ob) == snap["hash"]
            assert len(snap["hash"]) == 40


def test_price_change_hash_matches_book_after_step() -> None:
    sim = Simulator(10, 4, start_ts=T0)
    for _ in range(30):
        for ev in sim.step():
            if ev.payload["event_type"] != "price_change":
                continue
            for ch in ev.payload["price_changes"]:
                assert ch["hash"] == sim.book_snapshot(ch["asset_id"])["hash"]
                assert ch["side"] in ("BUY", "SELL")


def _open_market(sim: Simulator, spread_ticks: int = 1):
    for m in sim.markets:
        if not m.has_book or m.tick_size != Decimal("0.01"):
            continue
        bb, ba = sim.best(m.yes_token_id)
        if bb is not None and ba is not None and Decimal("0.2") < bb < Decimal("0.8") and ba - bb >= spread_ticks * m.tick_size:
            return m
    raise AssertionError("no suitable market")


def test_rejections_use_real_error_text() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _open_market(sim)
    bb, ba = sim.best(m.yes_token_id)
    with pytest.raises(SimReject, match=r"order x1 is invalid\. Price \(0\.4005\) breaks minimum tick size rule: 0\.01"):
        sim.place_order("me", "x1", m.yes_token_id, Side.BUY, Decimal("0.4005"), Decimal(50), True)
    with pytest.raises(SimReject, match=rf"order x2 is invalid\. Size \(1\) lower than the minimum: {m.min_order_size}"):
        sim.place_order("me", "x2", m.yes_token_id, Side.BUY, bb, Decimal(1), True)
    with pytest.raises(SimReject, match="invalid post-only order: order crosses book"):
        sim.place_order("me", "x3", m.yes_token_id, Side.BUY, ba, Decimal(50), True)
    with pytest.raises(SimReject, match="invalid post-only order: order crosses book"):
        sim.place_order("me", "x4", m.no_token_id, Side.BUY, 1 - bb, Decimal(50), True)  # NO buy at 1-bb sells YES at bb
    closed = next(x for x in sim.markets if not x.has_book)
    with pytest.raises(SimReject, match="the market is not yet ready to process new orders"):
        sim.place_order("me", "x5", closed.yes_token_id, Side.BUY, Decimal("0.5"), Decimal(50), True)
    sim.place_order("me", "ok", m.yes_token_id, Side.BUY, bb, Decimal(50), True)
    with pytest.raises(SimReject, match=r"order ok is invalid\. Duplicated\."):
        sim.place_order("me", "ok", m.yes_token_id, Side.BUY, bb, Decimal(50), True)


def test_price_time_priority_and_listener() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    events: list[tuple] = []
    sim.add_account_listener(events.append)
    m = _open_market(sim, spread_ticks=2)
    bb, _ = sim.best(m.yes_token_id)
    first = sim.place_order("a", "first", m.yes_token_id, Side.BUY, bb, Decimal(20), True)
    second = sim.place_order("b", "second", m.no_token_id, Side.SELL, 1 - bb, Decimal(20), True)  # same YES level
    better = sim.place_order("c", "better", m.yes_token_id, Side.BUY, bb + m.tick_size, Decimal(20), True)
    level = Decimal(sim.book_snapshot(m.yes_token_id)["bids"][-2]["size"])  # the bb level (better is on top)
    # a taker sells through `better` and the background queue at bb, and 10 of `first`
    taker = sim.place_order("t", "taker", m.yes_token_id, Side.SELL, bb, Decimal(20) + level - 30, False)
    assert better.status == "MATCHED" and better.size_matched == 20
    assert first.size_matched == 10 and first.status == "LIVE"
    assert second.size_matched == 0
    assert taker.status == "MATCHED"
    maker_trades = [e[1] for e in events if e[0] == "trade" and e[1].trader_side == "MAKER"]
    assert [t.order_id for t in maker_trades] == ["better", "first"]
    assert maker_trades[0].price == bb + m.tick_size and maker_trades[0].side is Side.BUY
    assert maker_trades[0].taker_side is Side.SELL
    kinds = [(e[0], e[1].order_id, e[2]) for e in events if e[0] == "order"]
    assert kinds[:3] == [("order", "first", "PLACEMENT"), ("order", "second", "PLACEMENT"), ("order", "better", "PLACEMENT")]
    assert ("order", "first", "UPDATE") in kinds
    assert sum(t.size for t in sim.account_trades("t")) == taker.size_matched
    assert [o.order_id for o in sim.open_orders("a")] == ["first"]
    assert sim.get_order("better").status == "MATCHED"


def test_no_token_fill_is_reported_in_no_terms() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    events: list[tuple] = []
    sim.add_account_listener(events.append)
    m = _open_market(sim, spread_ticks=2)
    nbb, _ = sim.best(m.no_token_id)
    no_bid = sim.place_order("a", "nb", m.no_token_id, Side.BUY, nbb + m.tick_size, Decimal(20), True)
    # buying YES at the mirrored ask hits the NO bid
    sim.place_order("t", "yt", m.yes_token_id, Side.BUY, 1 - (nbb + m.tick_size), Decimal(20), False)
    assert no_bid.status == "MATCHED"
    tr = next(e[1] for e in events if e[0] == "trade" and e[1].order_id == "nb")
    assert tr.token_id == m.no_token_id and tr.side is Side.BUY and tr.price == nbb + m.tick_size
    assert tr.taker_side is Side.SELL  # the taker bought YES, i.e. sold NO


def test_cancels() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    events: list[tuple] = []
    sim.add_account_listener(events.append)
    m = _open_market(sim)
    other = next(x for x in sim.markets if x.has_book and x is not m)
    bb, _ = sim.best(m.yes_token_id)
    obb, _ = sim.best(other.yes_token_id)
    sim.place_order("a", "o1", m.yes_token_id, Side.BUY, bb - m.tick_size, Decimal(20), True)
    sim.place_order("a", "o2", m.no_token_id, Side.BUY, Decimal("0.01"), Decimal(20), True)
    sim.place_order("a", "o3", other.yes_token_id, Side.BUY, obb, Decimal(20), True)
    sim.place_order("b", "o4", m.yes_token_id, Side.BUY, bb, Decimal(20), True)
    before = Decimal(next(x["size"] for x in sim.book_snapshot(m.yes_token_id)["bids"] if Decimal(x["price"]) == bb - m.tick_size))
    assert sim.cancel_order("b", "o1") is False  # not the owner
    assert sim.cancel_order("a", "o1") is True
    assert sim.cancel_order("a", "o1") is False
    after = next((Decimal(x["size"]) for x in sim.book_snapshot(m.yes_token_id)["bids"] if Decimal(x["price"]) == bb - m.tick_size), Decimal(0))
    assert after == before - 20
    assert sim.cancel_market("a", token_id=m.no_token_id) == ["o2"]
    assert sim.cancel_all("a") == ["o3"]
    assert sim.open_orders("a") == [] and [o.order_id for o in sim.open_orders("b")] == ["o4"]
    assert sim.get_order("o1").status == "CANCELED"
    assert [e[2] for e in events if e[0] == "order" and e[2] == "CANCELLATION"] == ["CANCELLATION"] * 3
    evs = sim.flush_account_events()
    assert any(e.payload["event_type"] == "price_change" for e in evs)


def test_background_flow_fills_resting_account_orders() -> None:
    sim = Simulator(10, 9, start_ts=T0)
    fills: list = []
    sim.add_account_listener(lambda e: fills.append(e[1]) if e[0] == "trade" else None)
    for m in sim.markets:
        if m.has_book:
            bb, ba = sim.best(m.yes_token_id)
            sim.place_order("mm", f"b-{m.index}", m.yes_token_id, Side.BUY, bb, m.min_order_size, True)
            sim.place_order("mm", f"a-{m.index}", m.yes_token_id, Side.SELL, ba, m.min_order_size, True)
    for _ in range(3000):
        sim.step()
    assert fills and all(f.trader_side == "MAKER" for f in fills)


def test_tick_size_changes_near_extremes() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _open_market(sim)
    asks = sum(Decimal(x["size"]) for x in sim.book_snapshot(m.yes_token_id)["asks"])
    sim.place_order("whale", "w", m.yes_token_id, Side.BUY, Decimal("0.97"), asks + 50, False)
    evs = [e.payload for e in sim.flush_account_events()]
    ticks = [e for e in evs if e["event_type"] == "tick_size_change"]
    assert {e["asset_id"] for e in ticks} == {m.yes_token_id, m.no_token_id}
    assert all(e["old_tick_size"] == "0.01" and e["new_tick_size"] == "0.001" for e in ticks)
    assert sim.book_snapshot(m.yes_token_id)["tick_size"] == "0.001" and sim.tick_size(m.no_token_id) == Decimal("0.001")
    assert any(e["event_type"] == "last_trade_price" for e in evs)


def test_public_trades_and_history() -> None:
    sim = Simulator(10, 2, start_ts=T0)
    for _ in range(1300):
        sim.step()
    trades = sim.public_trades()
    assert trades and all(t["event_type"] == "last_trade_price" for t in trades)
    assert sim.public_trades(since=sim.now() + 1) == []
    m = next(x for x in sim.markets if x.has_book)
    hist = sim.price_history(m.yes_token_id)
    assert len(hist) >= 3 and all(0 < h["p"] < 1 for h in hist)


def test_adverse_selection_is_real() -> None:
    """Quoting at the touch: the mid moves against our fills afterwards (informed flow)."""
    sim = Simulator(20, 1, start_ts=T0)
    fills: list[list] = []

    def on_event(e: tuple) -> None:
        if e[0] == "trade":
            fills.append([e[1], float(sim.mid(e[1].token_id) or 0), None, sim.now()])

    sim.add_account_listener(on_event)
    n = 0
    for _ in range(120):  # 20 simulated minutes, requoting every 10 s
        sim.cancel_all("mm")
        for m in sim.markets:
            bb, ba = (sim.best(m.yes_token_id) if m.has_book else (None, None))
            if bb is None or ba is None:
                continue
            for side, p in ((Side.BUY, bb), (Side.SELL, ba)):
                n += 1
                sim.place_order("mm", f"o{n}", m.yes_token_id, side, p, m.min_order_size, True)
        for _ in range(100):
            sim.step()
        for f in fills:
            if f[2] is None and sim.now() - f[3] >= 60:
                f[2] = float(sim.mid(f[0].token_id) or 0)
    done = [f for f in fills if f[2] is not None]
    sign = [1 if f[0].side is Side.BUY else -1 for f in done]
    move = sum(s * (f[2] - f[1]) for s, f in zip(sign, done)) / len(done)
    assert len(done) > 300
    assert move < 0


def test_fok_and_fak() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _open_market(sim)
    _, ba = sim.best(m.yes_token_id)
    at_best = Decimal(sim.book_snapshot(m.yes_token_id)["asks"][-1]["size"])
    with pytest.raises(SimReject, match="order couldn't be fully filled. FOK orders are fully filled or killed."):
        sim.place_order("t", "fok1", m.yes_token_id, Side.BUY, ba, at_best + 1, False, order_type="FOK")
    fak = sim.place_order("t", "fak1", m.yes_token_id, Side.BUY, ba, at_best + 1000, False, order_type="FAK")
    assert fak.size_matched == at_best and fak.status == "CANCELED" and sim.open_orders("t") == []
    bb, _ = sim.best(m.yes_token_id)
    with pytest.raises(SimReject, match="no orders found to match with FAK order"):
        sim.place_order("t", "fak2", m.yes_token_id, Side.BUY, bb, Decimal(100), False, order_type="FAK")
    _, ba = sim.best(m.yes_token_id)
    full = sim.place_order("t", "fok3", m.yes_token_id, Side.BUY, ba + 5 * m.tick_size, m.min_order_size, False,
                           order_type="FOK")
    assert full.status == "MATCHED" and full.size_matched == m.min_order_size


def _check_book_invariants(sim: Simulator) -> None:
    for m in sim.markets:
        for book, tot, prices in ((m.bids, m.bid_tot, m.bid_px), (m.asks, m.ask_tot, m.ask_px)):
            assert prices == sorted(book) and set(tot) == set(book)
            for p, level in book.items():
                assert level and tot[p] == sum(o.size for o in level) and all(o.size > 0 for o in level)
        if m.bid_px and m.ask_px:
            assert m.bid_px[-1] < m.ask_px[0]
        assert m.n_bg == sum(1 for lv in (*m.bids.values(), *m.asks.values()) for o in lv if o.acct is None)


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["place", "take", "cancel", "step"]), st.integers(0, 10**6),
                              st.booleans(), st.integers(-6, 6), st.integers(1, 400)), max_size=60))
def test_account_orders_keep_books_and_fills_consistent(ops: list[tuple]) -> None:
    sim = Simulator(6, 2, start_ts=T0)
    trades: list = []
    sim.add_account_listener(lambda e: trades.append(e[1]) if e[0] == "trade" else None)
    live = [m for m in sim.markets if m.has_book]
    n = 0
    for op, r, flag, dticks, size in ops:
        m = live[r % len(live)]
        tok = m.yes_token_id if flag else m.no_token_id
        if op == "step":
            for _ in range(size % 50):
                sim.step()
            continue
        if op == "cancel":
            opens = sim.open_orders("me")
            if opens:
                assert sim.cancel_order("me", opens[r % len(opens)].order_id)
            continue
        bb, ba = sim.best(tok)
        ref = bb if bb is not None else Decimal("0.5")
        price = min(max(ref + dticks * m.tick_size, m.tick_size), 1 - m.tick_size)
        side = Side.BUY if r % 2 else Side.SELL
        n += 1
        try:
            sim.place_order("me" if op == "place" else "taker", f"o{n}", tok, side, price,
                            m.min_order_size + size, post_only=(op == "place"))
        except SimReject as exc:
            assert "post-only" in str(exc)
    _check_book_invariants(sim)
    by_order: dict[str, Decimal] = {}
    for t in trades:
        by_order[t.order_id] = by_order.get(t.order_id, Decimal(0)) + t.size
    for oid, filled in by_order.items():
        o = sim.get_order(oid)
        assert o.size_matched == filled <= o.original_size
    for o in sim.open_orders("me"):
        assert o.status == "LIVE" and o.remaining > 0
        ent = sim._orders[o.order_id]
        assert Decimal(ent[3].size) / 100 == o.remaining


def test_same_seed_same_stream_with_account_flow() -> None:
    def run() -> list[str]:
        sim = Simulator(10, 8, start_ts=T0)
        m = next(x for x in sim.markets if x.has_book)
        out: list[str] = []
        for k in range(300):
            if k % 50 == 0:
                bb, ba = sim.best(m.yes_token_id)
                sim.place_order("a", f"q{k}", m.yes_token_id, Side.BUY, bb, Decimal(50), True)
                sim.place_order("a", f"t{k}", m.yes_token_id, Side.BUY, ba, Decimal(20), False)
            out += [json.dumps(e.payload, sort_keys=True) for e in sim.step()]
        return out

    assert run() == run()


def test_public_trades_polling_never_repeats_a_print() -> None:
    sim = Simulator(10, 2, start_ts=T0)
    seen: list[dict] = []
    t = last = sim.now()
    for _ in range(200):
        t += 1.0
        sim.run_until(t)
        seen += sim.public_trades(since=last)
        last = t
    assert seen == sim.public_trades()
