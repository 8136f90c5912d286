"""OrderBook: exact tick grid, validation, best levels, views, tick changes (pure, hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.book import OrderBook, snapshot_levels
from pmm_widgets.domain import Side
from pmm_widgets.ticks import on_grid
from pmm_widgets.venue.wire import BookSnapshot, PriceChange, convert

TICK = Decimal("0.01")


def wire(levels: dict[int, str], tick: Decimal, reverse: bool) -> list[dict[str, str]]:
    """Wire levels (best last): bids ascending (reverse=False), asks descending (reverse=True)."""
    return [{"price": str(tick * t), "size": s} for t, s in sorted(levels.items(), reverse=reverse)]


def raw_snapshot(bids: dict[int, str], asks: dict[int, str], tick: Decimal = TICK, ts: int = 1, h: str = "h") -> dict:
    return {"market": "0xm", "asset_id": "1", "timestamp": str(ts), "hash": h, "tick_size": str(tick),
            "bids": wire(bids, tick, False), "asks": wire(asks, tick, True)}


def snapshot(bids: dict[int, str], asks: dict[int, str], tick: Decimal = TICK, ts: int = 1, h: str = "h") -> BookSnapshot:
    """A wire book decoded as `venue.wire` does at the edge."""
    return convert(raw_snapshot(bids, asks, tick, ts, h), BookSnapshot)


def changes_of(entries: list[dict[str, str]]) -> list[PriceChange]:
    return [convert({"asset_id": "1", **e}, PriceChange) for e in entries]


ticks = st.integers(min_value=1, max_value=99)
sizes = st.sampled_from(["0", "1", "2.5", "10", "100.25", "3149725.72"])
good_change = st.tuples(ticks, sizes, st.sampled_from(["BUY", "SELL"])).map(
    lambda x: (str(TICK * x[0]), x[1], x[2]))
bad_change = st.sampled_from([
    ("1.5", "10", "BUY"), ("0", "10", "SELL"), ("1", "5", "BUY"), ("-0.2", "5", "SELL"),
    ("0.455", "5", "BUY"), ("0.45", "-5", "SELL"), ("0.45", "abc", "BUY"), ("nan", "1", "BUY"),
    ("0.45", "1", "HOLD"), ("0.45", "NaN", "SELL"), ("", "1", "BUY"),
])
changes = st.lists(st.one_of(good_change, good_change, good_change, bad_change), max_size=80)
side_levels = st.dictionaries(ticks, st.sampled_from(["1", "5", "12.5", "200"]), max_size=20)


@settings(max_examples=150, deadline=None)
@given(changes, side_levels, side_levels)
def test_any_updates_then_snapshot_equals_snapshot(chs, bids, asks):
    b = OrderBook("1", "0xm", TICK)
    b.apply_snapshot(snapshot({40: "5"}, {60: "5"}))
    for i, (p, s, side) in enumerate(chs):
        b.apply_change(p, s, side)
        if i % 17 == 16:  # tick changes in the middle of the updates (finer, then maybe back)
            b.set_tick_size(Decimal("0.001") if b.tick_size == TICK else TICK)
    snap = snapshot(bids, asks, ts=99, h="abc")
    assert b.apply_snapshot(snap)
    assert b.wire_levels() == snapshot_levels(snap)
    assert (b.hash, b.venue_ts_ms, b.tick_size, b.needs_resync) == ("abc", 99, TICK, False)
    assert b.crossed == (bool(bids) and bool(asks) and max(bids) >= min(asks))


@settings(max_examples=150, deadline=None)
@given(changes)
def test_changes_match_a_naive_model_and_bad_ones_change_nothing(chs):
    b = OrderBook("1", "0xm", TICK)
    model: dict[str, dict[Decimal, Decimal]] = {"BUY": {}, "SELL": {}}
    bad = 0
    for p, s, side in chs:
        ok = b.apply_change(p, s, side)
        valid = (side in ("BUY", "SELL") and p not in ("", "nan") and s not in ("abc", "NaN")
                 and 0 < Decimal(p) < 1 and on_grid(Decimal(p), TICK) and Decimal(s) >= 0)
        assert ok == valid
        if not valid:
            bad += 1
            continue
        if Decimal(s):
            model[side][Decimal(p)] = Decimal(s)
        else:
            model[side].pop(Decimal(p), None)
    assert b.rejected == bad
    v = b.view()
    assert [(lv.price, lv.size) for lv in v.bids] == sorted(model["BUY"].items(), reverse=True)
    assert [(lv.price, lv.size) for lv in v.asks] == sorted(model["SELL"].items())
    for lv in v.bids + v.asks:  # views are on-grid, inside (0, 1), positive sizes
        assert on_grid(lv.price, TICK) and 0 < lv.price < 1 and lv.size > 0
    bb = max(model["BUY"], default=None)
    ba = min(model["SELL"], default=None)
    assert (v.best_bid, v.best_ask) == (bb, ba)
    assert v.crossed == (bb is not None and ba is not None and bb >= ba)


@settings(max_examples=100, deadline=None)
@given(side_levels, side_levels)
def test_uncrossed_snapshot_has_bid_below_ask_and_best_first_views(bids, asks):
    asks = {t: s for t, s in asks.items() if not bids or t > max(bids)}
    b = OrderBook("1", "0xm", TICK)
    assert b.apply_snapshot(snapshot(bids, asks))
    v = b.view()
    assert not v.crossed
    if v.bids and v.asks:
        assert v.best_bid < v.best_ask
    assert list(v.bids) == sorted(v.bids, key=lambda lv: -lv.price)
    assert list(v.asks) == sorted(v.asks, key=lambda lv: lv.price)


def test_snapshot_with_a_bad_level_is_refused_whole():
    b = OrderBook("1", "0xm", TICK)
    b.apply_snapshot(snapshot({40: "5"}, {60: "5"}, ts=5, h="x"))
    before = b.wire_levels()
    bad = raw_snapshot({41: "5"}, {59: "5"}, ts=6, h="y")
    bad["bids"].append({"price": "-0.2", "size": "-5"})
    assert not b.apply_snapshot(convert(bad, BookSnapshot))
    assert b.wire_levels() == before and (b.hash, b.venue_ts_ms, b.rejected) == ("x", 5, 1)


def test_wire_order_is_not_relied_upon_and_spellings_share_a_level():
    b = OrderBook("1", "0xm", TICK)
    snap = {"asset_id": "1", "bids": [{"price": ".48", "size": "10"}, {"price": "0.30", "size": "1"}],
            "asks": [{"price": "0.5", "size": "2"}, {"price": "0.90", "size": "3"}], "timestamp": "7"}
    assert b.apply_snapshot(convert(snap, BookSnapshot))
    assert (b.best_bid, b.best_ask) == (Decimal("0.48"), Decimal("0.5"))
    assert b.apply_change("0.480", "4", "BUY")
    assert b.view().bids[0].size == Decimal(4) and len(b.bids) == 2


def test_changes_are_atomic_per_message():
    b = OrderBook("1", "0xm", TICK)
    b.apply_snapshot(snapshot({40: "5"}, {60: "5"}))
    ok = b.apply_changes(changes_of([{"price": "0.41", "size": "3", "side": "BUY"},
                                     {"price": "1.5", "size": "3", "side": "SELL"}]))
    assert not ok and b.best_bid == Decimal("0.4") and b.rejected == 1
    assert b.apply_changes(changes_of([{"price": "0.41", "size": "3", "side": "BUY"},
                                       {"price": "0.6", "size": "0", "side": "SELL"}]))
    assert b.best_bid == Decimal("0.41") and b.best_ask is None


def test_tick_change_rekeys_or_asks_for_resync():
    b = OrderBook("1", "0xm", TICK)
    b.apply_snapshot(snapshot({40: "5", 45: "1"}, {60: "5"}))
    assert b.set_tick_size(Decimal("0.001"))
    assert b.wire_levels()[0] == [(Decimal("0.45"), Decimal(1)), (Decimal("0.4"), Decimal(5))]
    assert b.apply_change("0.451", "2", "BUY") and b.best_bid == Decimal("0.451")
    before = b.wire_levels()
    assert not b.set_tick_size(Decimal("0.01"))  # 0.451 is off the coarser grid
    assert b.needs_resync and b.wire_levels() == before and b.tick_size == Decimal("0.001")


def test_depth_mid_and_cached_views():
    b = OrderBook("1", "0xm", TICK)
    b.apply_snapshot(snapshot({40: "5", 42: "1", 45: "2", 46: "3"}, {50: "1", 53: "4", 54: "9"}))
    assert b.depth(Side.BUY, 3) == Decimal(3 + 2)  # 0.46 and 0.45 lie within 3 ticks of 0.46; 0.42 does not
    assert b.depth(Side.SELL, 3) == Decimal(1 + 4)
    assert b.mid == Decimal("0.48")
    v1 = b.view()
    assert b.view() is v1 and b.view(stale=True).stale and not b.view().stale
    assert [lv.price for lv in b.view(depth=2).bids] == [Decimal("0.46"), Decimal("0.45")]
    b.apply_change("0.47", "1", "BUY")
    assert b.view() is not v1
