"""The sandbox simulator's matching (`Simulator._take` and the account paths around it), checked
through what a client of the venue sees: the market channel's level updates, the last trade,
Gamma's volume. The sandbox is the ground truth the paper fill model is measured against, so a
match that leaves these wrong would skew every fidelity figure."""

from __future__ import annotations

from decimal import Decimal

from pmm_widgets.domain import Side
from pmm_widgets.sandbox.gamma import gamma_object
from pmm_widgets.sandbox.simulator import SimMarket, Simulator

T0 = 1_780_000_000.0


def _market(sim: Simulator) -> SimMarket:
    for m in sim.markets:
        if m.has_book and m.tick_size == Decimal("0.01"):
            bb, ba = sim.best(m.yes_token_id)
            if bb is not None and ba is not None and Decimal("0.2") < bb < Decimal("0.8") and ba - bb >= 2 * m.tick_size:
                return m
    raise AssertionError("no suitable market")


def _sizes(snap: dict, side: str) -> dict[Decimal, Decimal]:
    return {Decimal(x["price"]): Decimal(x["size"]) for x in snap[side]}


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
