"""The sandbox simulator's matching (`Simulator._take` and the account paths around it), checked
through what a client of the venue sees: the market channel's level updates, the last trade,
Gamma's volume. The sandbox is the ground truth the paper fill model is measured against, so a
match that leaves these wrong would skew every fidelity figure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from py_clob_client_v2.clob_types import OrderBookSummary, OrderSummary
from py_clob_client_v2.utilities import generate_orderbook_summary_hash

from pmm_widgets.domain import Side
from pmm_widgets.sandbox.gamma import gamma_object
from pmm_widgets.sandbox.simulator import SimMarket, SimReject, Simulator

T0 = 1_780_000_000.0


def _market(sim: Simulator) -> SimMarket:
    for m in sim.markets:
        if m.has_book and m.tick_size == Decimal("0.01"):
            bb, ba = sim.best(m.yes_token_id)
            if bb is not None and ba is not None and Decimal("0.2") < bb < Decimal("0.8") and ba - bb >= 2 * m.tick_size:
                return m
    raise AssertionError("no suitable market")


def _account_events(sim: Simulator) -> list:
    """Every account event the simulator emits from now on, in order."""
    events: list = []
    sim.add_account_listener(events.append)
    return events


def _sizes(snap: dict, side: str) -> dict[Decimal, Decimal]:
    return {Decimal(x["price"]): Decimal(x["size"]) for x in snap[side]}


def _ask_level(sim: Simulator, m: SimMarket) -> tuple[Decimal, Decimal]:
    """The YES token's best ask and the size resting there."""
    _, ba = sim.best(m.yes_token_id)
    assert ba is not None
    return ba, _sizes(sim.book_snapshot(m.yes_token_id), "asks")[ba]


def _apply(book: dict[str, dict[Decimal, Decimal]], asset: str, changes: list[dict]) -> None:
    for ch in changes:
        if ch["asset_id"] != asset:
            continue
        side = book["bids" if ch["side"] == "BUY" else "asks"]
        px, size = Decimal(ch["price"]), Decimal(ch["size"])
        if size == 0:
            side.pop(px, None)
        else:
            side[px] = size


def test_a_match_that_leaves_part_of_a_level_is_sent_as_a_price_change() -> None:
    """With no `book` re-sent after trades, a client that applies the price changes still holds
    the venue's book after a taker consumed part of a level (the level's new total goes out)."""
    sim = Simulator(20, 3, start_ts=T0)
    sim.book_after_trade = False
    m = _market(sim)
    tok = m.yes_token_id
    snap = sim.book_snapshot(tok)
    client = {"bids": _sizes(snap, "bids"), "asks": _sizes(snap, "asks")}
    bb, _ = sim.best(tok)
    level = client["bids"][bb]
    # a taker sells part of the best bid's level: the level stays, smaller
    sim.place_order("t", "taker", tok, Side.SELL, bb, level - m.min_order_size if level > 2 * m.min_order_size
                    else m.min_order_size, False)
    events = sim.flush_account_events()
    changes = [ch for e in events if e.payload.get("event_type") == "price_change" for ch in e.payload["price_changes"]]
    assert not [e for e in events if e.payload.get("event_type") == "book"]
    assert any(ch["asset_id"] == tok and Decimal(ch["price"]) == bb for ch in changes)
    _apply(client, tok, changes)
    after = sim.book_snapshot(tok)
    assert client == {"bids": _sizes(after, "bids"), "asks": _sizes(after, "asks")}


def test_the_last_trade_and_gamma_volume_follow_a_match() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, ba = sim.best(m.yes_token_id)
    assert ba is not None
    volume0 = float(gamma_object(sim, m)["volumeNum"])
    size = Decimal(20)
    taker = sim.place_order("t", "buy", m.yes_token_id, Side.BUY, ba, size, False)
    assert taker.size_matched == size  # within the best ask's level
    assert sim.last_trade(m.yes_token_id) == (str(ba), "BUY")
    assert sim.last_trade(m.no_token_id) == (str(1 - ba), "SELL")  # the same match in NO terms
    assert Decimal(sim.book_snapshot(m.yes_token_id)["last_trade_price"]) == ba
    assert abs(float(gamma_object(sim, m)["volumeNum"]) - volume0 - float(size * ba)) < 1e-9
    # a sell into the bid: the last trade moves there, the taker side with it
    sim.place_order("t", "sell", m.yes_token_id, Side.SELL, bb, Decimal(10), False)
    assert sim.last_trade(m.yes_token_id) == (str(bb), "SELL")


def test_a_match_counts_in_the_24_hour_volume_by_the_minute() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    _, ba = sim.best(m.yes_token_id)
    assert ba is not None
    before = sim.volume_24h(m)
    sim.place_order("t", "a", m.yes_token_id, Side.BUY, ba, Decimal(10), False)
    sim.place_order("t", "b", m.yes_token_id, Side.BUY, ba, Decimal(10), False)  # the same minute: one bucket
    assert abs(sim.volume_24h(m) - before - float(20 * ba)) < 1e-9
    assert len(m.trades_24h) == 1 and m.trades_24h[0][0] == int(sim.now() * 1000) // 60_000
    assert float(gamma_object(sim, m)["volume24hr"]) == round(sim.volume_24h(m), 6)


def test_a_taker_is_filled_to_the_last_hundredth() -> None:
    """A taker that empties the best level with one hundredth left takes it from the next level."""
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    ba, level = _ask_level(sim, m)
    size = level + Decimal("0.01")
    taker = sim.place_order("t", "odd", m.yes_token_id, Side.BUY, ba + m.tick_size, size, False)
    assert taker.size_matched == size and taker.status == "MATCHED"
    assert [t.price for t in sim.account_trades("t")][-1] == ba + m.tick_size  # the hundredth, a level up


def test_a_maker_filled_in_full_is_no_longer_open() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    maker = sim.place_order("mk", "bid", m.yes_token_id, Side.BUY, bb + m.tick_size, Decimal(20), True)  # alone on top
    assert [o.order_id for o in sim.open_orders("mk")] == ["bid"]
    sim.place_order("t", "hit", m.yes_token_id, Side.SELL, bb + m.tick_size, Decimal(20), False)
    assert maker.status == "MATCHED" and maker.size_matched == 20
    assert sim.open_orders("mk") == [] and sim.cancel_all("mk") == []
    assert not sim.cancel_order("mk", "bid")  # a matched order cannot be cancelled


def test_post_only_is_refused_for_fok_and_fak() -> None:
    """The venue takes post-only only with GTC/GTD (the SDK raises before sending it)."""
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    for kind in ("FOK", "FAK"):
        with pytest.raises(SimReject, match="only GTC and GTD orders can be post-only"):
            sim.place_order("me", f"po-{kind}", m.yes_token_id, Side.BUY, bb, Decimal(20), True, kind)
        assert sim.get_order(f"po-{kind}") is None
    assert sim.place_order("me", "po-gtd", m.yes_token_id, Side.BUY, bb, Decimal(20), True, "GTD").status == "LIVE"


def _sdk_hash(snap: dict) -> str:
    ob = OrderBookSummary(
        market=snap["market"], asset_id=snap["asset_id"], timestamp=snap["timestamp"],
        bids=[OrderSummary(**x) for x in snap["bids"]], asks=[OrderSummary(**x) for x in snap["asks"]],
        min_order_size=snap["min_order_size"], neg_risk=snap["neg_risk"], tick_size=snap["tick_size"],
        last_trade_price=snap["last_trade_price"], hash="")
    return generate_orderbook_summary_hash(ob)


def test_a_resting_placement_changes_the_book_hash_at_once() -> None:
    """The hash a client checks its book against follows a placement made between two steps."""
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    before = sim.book_snapshot(m.yes_token_id)["hash"]
    sim.place_order("mk", "bid", m.yes_token_id, Side.BUY, bb + m.tick_size, Decimal(20), True)
    snap = sim.book_snapshot(m.yes_token_id)
    assert snap["hash"] != before and snap["hash"] == _sdk_hash(snap)
    changes = [ch for e in sim.flush_account_events() if e.payload.get("event_type") == "price_change"
               for ch in e.payload["price_changes"] if ch["asset_id"] == m.yes_token_id]
    assert changes and {ch["hash"] for ch in changes} == {snap["hash"]}


def test_fok_and_fak_filled_exactly_in_full() -> None:
    """A FOK for exactly what rests up to its limit fills; a FAK filled in full is matched, not cancelled."""
    sim = Simulator(20, 3, start_ts=T0)
    events = _account_events(sim)
    m = _market(sim)
    ba, level = _ask_level(sim, m)
    fok = sim.place_order("t", "fok", m.yes_token_id, Side.BUY, ba, level, False, "FOK")
    assert fok.status == "MATCHED" and fok.size_matched == level
    _, ba = sim.best(m.yes_token_id)
    assert ba is not None
    fak = sim.place_order("t", "fak", m.yes_token_id, Side.BUY, ba, Decimal(10), False, "FAK")
    assert fak.status == "MATCHED" and fak.size_matched == 10
    assert ("fak", "CANCELLATION") not in [(e[1].order_id, e[2]) for e in events if e[0] == "order"]


def test_a_gtc_taker_rests_what_it_could_not_take() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    ba, level = _ask_level(sim, m)
    o = sim.place_order("t", "gtc", m.yes_token_id, Side.BUY, ba, level + 7, False)
    assert o.size_matched == level and o.remaining == 7 and o.status == "LIVE"
    assert _sizes(sim.book_snapshot(m.yes_token_id), "bids")[ba] == 7  # the rest bids at the old ask
    assert [x.order_id for x in sim.open_orders("t")] == ["gtc"]


def test_fok_sells_see_what_rests_down_to_their_limit() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    level = _sizes(sim.book_snapshot(m.yes_token_id), "bids")[bb]
    with pytest.raises(SimReject, match="FOK orders are fully filled or killed"):
        sim.place_order("t", "big", m.yes_token_id, Side.SELL, bb, level + 1, False, "FOK")
    fok = sim.place_order("t", "fok", m.yes_token_id, Side.SELL, bb, level, False, "FOK")
    assert fok.status == "MATCHED" and fok.size_matched == level


def test_a_cancel_between_steps_goes_out_with_a_fresh_hash_and_time() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    px = bb + m.tick_size
    sim.place_order("mk", "bid", m.yes_token_id, Side.BUY, px, Decimal(20), True)
    sim.flush_account_events()
    placed = sim.book_snapshot(m.yes_token_id)
    assert sim.cancel_order("mk", "bid")
    snap = sim.book_snapshot(m.yes_token_id)
    assert px not in _sizes(snap, "bids") and snap["hash"] != placed["hash"] and snap["hash"] == _sdk_hash(snap)
    assert int(snap["timestamp"]) == round(sim.now() * 1000)
    changes = [ch for e in sim.flush_account_events() if e.payload.get("event_type") == "price_change"
               for ch in e.payload["price_changes"] if ch["asset_id"] == m.yes_token_id]
    assert [(Decimal(ch["price"]), ch["size"], ch["hash"]) for ch in changes] == [(px, "0", snap["hash"])]


def test_resolution_cancels_account_orders_takes_the_given_winner_and_stops_the_market() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    events = _account_events(sim)
    m = next(x for x in sim.markets if x.has_book and x.event_id is None and x.fair > 0.5)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    o = sim.place_order("mk", "bid", m.yes_token_id, Side.BUY, bb, Decimal(20), True)
    sim.resolve_market(m.condition_id, winner_yes=False)  # the given winner, not a draw
    assert m.resolved and m.winner_yes is False
    assert o.status == "CANCELED_MARKET_RESOLVED" and sim.open_orders("mk") == []
    assert ("order", "bid", "CANCELLATION") in [(e[0], e[1].order_id, e[2]) for e in events if e[0] == "order"]
    assert sim.book_snapshot(m.yes_token_id) is None
    assert sim.best(m.yes_token_id) == (None, None) and sim.mid(m.no_token_id) is None  # /price, /midpoint: none
    flushed = sim.flush_account_events()  # the placement's level change was pending: it never goes out now
    assert [e.payload["event_type"] for e in flushed if set(e.assets) & {m.yes_token_id, m.no_token_id}] \
        == ["market_resolved"]
    assert flushed[-1].payload["winning_asset_id"] == m.no_token_id
    assert flushed[-1].payload["timestamp"] == str(round(sim.now() * 1000))
    assert flushed[-1].payload["event_message"]["id"] == m.gamma_id  # a market of no neg-risk event: its own id
    for _ in range(200):  # the market's flow has ended: nothing more on its tokens
        assert not [e for e in sim.step() if set(e.assets) & {m.yes_token_id, m.no_token_id}]


def test_a_resolution_without_a_winner_draws_one_and_a_neg_risk_market_takes_its_events() -> None:
    sim = Simulator(40, 3, start_ts=T0)
    plain = next(x for x in sim.markets if x.has_book and x.event_id is None)
    sim.resolve_market(plain.condition_id)
    assert plain.winner_yes in (True, False)
    neg = [x for x in sim.markets if x.has_book and x.event_id is not None]
    assert neg
    for m in neg:  # the event's one winner decides, whatever the caller says
        sim.resolve_market(m.condition_id, winner_yes=True)
        assert m.winner_yes is (sim.econ.event_winner[m.event_id] == m.condition_id)
    assert not all(m.winner_yes for m in neg)


def test_a_cancel_stamps_the_book_with_its_own_time() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    sim.place_order("mk", "bid", m.yes_token_id, Side.BUY, bb, Decimal(20), True)
    for _ in range(500):  # until a step leaves this book as it was (its time stays behind the clock)
        sim.step()
        if int(sim.book_snapshot(m.yes_token_id)["timestamp"]) < round(sim.now() * 1000):
            break
    else:
        raise AssertionError("the book changed at every step")
    assert sim.cancel_order("mk", "bid")
    assert int(sim.book_snapshot(m.yes_token_id)["timestamp"]) == round(sim.now() * 1000)


def test_the_24_hour_volume_adds_a_match_to_its_own_minute() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)

    def buy(oid: str) -> float:
        _, ba = sim.best(m.yes_token_id)
        assert ba is not None
        sim.place_order("t", oid, m.yes_token_id, Side.BUY, ba, Decimal(10), False)
        return float(10 * ba)

    buy("a")
    sim.run_until(sim.now() + 61)  # a later minute (the background may trade meanwhile)
    buy("b")
    first, last, buckets = list(m.trades_24h[0]), list(m.trades_24h[-1]), len(m.trades_24h)
    assert buckets >= 2 and last[0] == int(sim.now() * 1000) // 60_000
    n = buy("c")  # the same minute as "b": its bucket grows, no other
    assert m.trades_24h[0] == first and len(m.trades_24h) == buckets
    assert m.trades_24h[-1][0] == last[0] and abs(m.trades_24h[-1][1] - last[1] - n) < 1e-9


def test_placement_refusals_for_a_bad_type_token_or_price() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    with pytest.raises(SimReject, match="invalid order type: IOC"):
        sim.place_order("me", "x1", m.yes_token_id, Side.BUY, bb, Decimal(20), False, "ioc")
    with pytest.raises(SimReject, match="Invalid token id"):
        sim.place_order("me", "x2", "123", Side.BUY, bb, Decimal(20), True)
    for price in (Decimal(1), Decimal(0)):  # on the grid, outside (0, 1)
        with pytest.raises(SimReject, match=r"breaks minimum tick size rule"):
            sim.place_order("me", f"x{price}", m.yes_token_id, Side.SELL, price, Decimal(20), True)
    assert sim.open_orders("me") == [] and sim.get_order("x1") is None
    # the order type is read without regard to case, as the venue's enum names are upper case
    gtd = sim.place_order("me", "ok", m.yes_token_id, Side.BUY, bb, Decimal(20), True, "gtd")
    assert gtd.order_type == "GTD" and gtd.status == "LIVE"


def test_a_fak_partly_filled_is_cancelled_and_says_so() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    events = _account_events(sim)
    m = _market(sim)
    ba, level = _ask_level(sim, m)
    fak = sim.place_order("t", "fak", m.yes_token_id, Side.BUY, ba, level + 5, False, "FAK")
    assert fak.status == "CANCELED" and fak.size_matched == level and sim.open_orders("t") == []
    assert [e[2] for e in events if e[0] == "order" and e[1].order_id == "fak"] == ["PLACEMENT", "CANCELLATION"]


def test_a_placement_stamps_the_book_with_its_own_time() -> None:
    sim = Simulator(20, 3, start_ts=T0)
    m = _market(sim)
    for _ in range(500):  # until a step leaves this book as it was (its time stays behind the clock)
        sim.step()
        if int(sim.book_snapshot(m.yes_token_id)["timestamp"]) < round(sim.now() * 1000):
            break
    else:
        raise AssertionError("the book changed at every step")
    bb, _ = sim.best(m.yes_token_id)
    assert bb is not None
    sim.place_order("mk", "bid", m.yes_token_id, Side.BUY, bb, Decimal(20), True)
    assert int(sim.book_snapshot(m.yes_token_id)["timestamp"]) == round(sim.now() * 1000)
