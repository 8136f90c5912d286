"""OrderBook against a naive model (mutation testing of book.py).

`Naive` keeps each side as a plain dict price -> size (Decimal values, the wire's spellings) and
decides each input's validity by the book's documented rules, written out the slow way: a price
strictly inside (0, 1) on the tick grid, a size finite in [0, MAX_SIZE], a known side, one of the
venue's ticks. Random sequences of single and grouped price changes (valid and junk, several
spellings), snapshots (resent ones too, the fast `_holds` path), tick changes, views, depths and
notes are fed to both; after every step the book's dicts, its sorted tick lists and the parallel
`Level` lists must equal the model's, and a refused input must leave the book exactly as it was.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.book import (
    _PRICES,
    _SIZES,
    BookError,
    BookNote,
    LatestBooks,
    OrderBook,
    _price,
    as_view,
    parse_ts_ms,
    short,
    snapshot_levels,
)
from pmm_widgets.domain import Level, Side
from pmm_widgets.ticks import MAX_SIZE, sane_min_size, venue_tick
from pmm_widgets.venue.wire import BookSnapshot, convert

TICKS = ["0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001"]
BID = {"BUY": True, "buy": True, "BID": True, "bid": True, "SELL": False, "sell": False, "ASK": False, "ask": False}


class E:
    """One price_change entry (what `apply_event` reads)."""

    def __init__(self, price: Any, size: Any, side: Any, best_bid: str | None = None,
                 best_ask: str | None = None) -> None:
        self.price, self.size, self.side, self.best_bid, self.best_ask = price, size, side, best_bid, best_ask


def dec(x: Any) -> Decimal | None:
    """A wire value as a finite Decimal, else None (the model's own parse)."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        d = Decimal(repr(x)) if isinstance(x, float) else Decimal(x) if isinstance(x, (int, Decimal)) else Decimal(str(x))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return d if d.is_finite() else None


class Naive:
    def __init__(self, tick: Decimal) -> None:
        self.tick = tick
        self.sides: dict[bool, dict[Decimal, Decimal]] = {True: {}, False: {}}
        self.hash, self.vts, self.ts, self.market, self.mos = "", 0, 0.0, "0xm", Decimal(5)
        self.synced = self.needs_resync = False
        self.rejected = self.version = 0

    def price(self, p: Any, tick: Decimal) -> Decimal | None:
        if isinstance(p, str) and len(p) > 32:
            return None
        d = dec(p)
        if d is None or not 0 < d < 1 or d < tick or (d / tick) % 1 != 0:
            return None
        return d

    @staticmethod
    def size(s: Any) -> Decimal | None:
        if isinstance(s, str) and len(s) > 40:
            return None
        d = dec(s)
        return d if d is not None and 0 <= d <= MAX_SIZE else None

    def best(self, bid: bool) -> Decimal | None:
        side = self.sides[bid]
        return (max(side) if bid else min(side)) if side else None

    def crossed(self) -> bool:
        b, a = self.best(True), self.best(False)
        return b is not None and a is not None and b >= a


def state(b: OrderBook) -> tuple:
    """Everything a reader of the book sees, spellings included."""
    return (dict(b.bids), dict(b.asks), list(b._bid_ticks), list(b._ask_ticks),
            [(str(lv.price), str(lv.size)) for lv in b._bid_lv], [(str(lv.price), str(lv.size)) for lv in b._ask_lv],
            str(b.tick_size), b.hash, b.venue_ts_ms, b.ts, b.synced, b.needs_resync, b.version, b.market,
            str(b.min_order_size))


def check(b: OrderBook, m: Naive, depths: list[int | None]) -> None:
    assert (str(b.tick_size), b.hash, b.venue_ts_ms, b.ts, b.market) == (str(m.tick), m.hash, m.vts, m.ts, m.market)
    assert (b.synced, b.needs_resync, b.rejected, b.version, str(b.min_order_size)) == (
        m.synced, m.needs_resync, m.rejected, m.version, str(m.mos))
    for bid, levels, ticks, lvs in ((True, b.bids, b._bid_ticks, b._bid_lv), (False, b.asks, b._ask_ticks, b._ask_lv)):
        side = m.sides[bid]
        assert {t: str(s) for t, s in levels.items()} == {int(p / m.tick): str(s) for p, s in side.items()}
        assert ticks == sorted(int(p / m.tick) for p in side)
        assert all(type(lv) is Level for lv in lvs)
        assert [(str(lv.price), str(lv.size)) for lv in lvs] == [(str(p.normalize()), str(s)) for p, s in sorted(side.items())]
        assert [str(b.price_of(t)) for t in ticks] == [str(p.normalize()) for p in sorted(side)]
    bb, ba = m.best(True), m.best(False)
    assert (b.best_bid, b.best_ask) == (bb, ba)
    assert b.best_bid_tick == (None if bb is None else int(bb / m.tick))
    assert b.best_ask_tick == (None if ba is None else int(ba / m.tick))
    assert b.mid == (None if bb is None or ba is None else (bb + ba) / 2)
    assert b.crossed is m.crossed()
    assert b.levels == (len(m.sides[True]), len(m.sides[False]))
    for n in (-1, 0, 1, 3, 250):
        want_b = sum((s for p, s in m.sides[True].items() if bb is not None and p >= bb - n * m.tick), Decimal(0))
        want_a = sum((s for p, s in m.sides[False].items() if ba is not None and p <= ba + n * m.tick), Decimal(0))
        assert (b.depth(Side.BUY, n), b.depth(Side.SELL, n)) == (want_b, want_a)
    bids = [(p.normalize(), s) for p, s in sorted(m.sides[True].items(), reverse=True)]
    asks = [(p.normalize(), s) for p, s in sorted(m.sides[False].items())]
    assert b.wire_levels() == (bids, asks)
    for d in depths:
        for stale in (False, True):
            v = b.view(d, stale)
            k = None if d is None else max(d, 0)
            assert [(lv.price, lv.size) for lv in v.bids] == bids[:k]
            assert [(lv.price, lv.size) for lv in v.asks] == asks[:k]
            assert (v.token_id, v.market, v.tick_size, v.min_order_size, v.ts, v.venue_ts_ms, v.stale, v.crossed) == (
                "1", m.market, m.tick, m.mos, m.ts, m.vts, stale, m.crossed())


# ------------------------------------------------------------------ strategies
def spellings(units: int) -> list[str]:
    """Spellings of the price units * 0.0001."""
    d = Decimal(units) / 10000
    f = format(d.normalize(), "f")
    out = [f, f + "0"]
    if f.startswith("0."):
        out.append(f[1:])
    return out


near = st.integers(40, 60).map(lambda x: x * 100)  # on every grid but 0.1, close enough to cross
units = st.one_of(near, near, near, near, near, near, st.integers(1, 9).map(lambda x: x * 1000),
                  st.integers(1, 99).map(lambda x: x * 100), st.integers(1, 399).map(lambda x: x * 25), st.integers(0, 10001))
good_price = st.builds(lambda u, i: spellings(u)[i % len(spellings(u))], units, st.integers(0, 2))
junk_price = st.sampled_from(["0", "1", "1.0", "-0.2", "1.5", "nan", "inf", "", "abc", "1e-999999999", "0." + "0" * 29 + "1",
                              "0.5" + "0" * 30, "0.5" + "0" * 29, None, True, 0.5, Decimal("0.25"), Decimal("0.123")])
price = st.one_of(good_price, good_price, good_price, good_price, good_price, junk_price)
good_size = st.sampled_from(["0", "0", "1", "2.5", "10.00", "3149725.72", "0.000001", "1000000000000", "-0", "0" * 39 + "7",
                             3, Decimal("4.5")])
junk_size = st.sampled_from(["1000000000000.5", "-1", "abc", "NaN", "Infinity", "0" * 40 + "7", "", None])
size = st.one_of(good_size, good_size, good_size, good_size, good_size, junk_size)
good_side = st.sampled_from(["BUY", "SELL", "BUY", "SELL", "buy", "sell", "BID", "bid", "ASK", "ask"])
side = st.one_of(good_side, good_side, good_side, good_side, good_side, st.sampled_from(["HOLD", "", None]))
bbo = st.sampled_from([None, "", "agree", "agree", "agree", "0", "1", "abc", "0.5", "0.45"])
good_entry = st.tuples(good_price, good_size, good_side, bbo, bbo)
entry = st.one_of(good_entry, good_entry, good_entry, good_entry, st.tuples(price, size, side, bbo, bbo))
ts_text = st.sampled_from([None, "", "0", "17", "1796033289800", "99999999999999", "100000000000000", "100000000000001",
                           "abc", "-5", "1e3"])
snap_level = st.tuples(good_price, st.sampled_from(["0", "1", "5", "12.5", "200", "0.000001"]))
snapshot = st.fixed_dictionaries({
    "bids": st.lists(snap_level, max_size=8), "asks": st.lists(snap_level, max_size=8),
    "tick_size": st.sampled_from([None, "", "0.01", "0.01", "0.001", "0.1", "0.0025", "0.05", "abc"]),
    "timestamp": ts_text, "hash": st.sampled_from(["", "h1", "h2", "x" * 101]),
    "market": st.sampled_from(["", "0xm", "0xn", "m" * 120]),
    "min_order_size": st.sampled_from([None, "", "5", "15", "0", "100001", "abc"]),
    "junk": st.sampled_from([None, None, None, None, ("0.455", "1"), ("0.45", "-1"), ("1", "1"), ("0.45", "abc")]),
    "vts": st.sampled_from([None, None, None, 0, 42]),
})
op = st.one_of(
    st.tuples(st.just("one"), entry, st.sampled_from([None, "hh", "z" * 150, "y" * 100, 12345]), st.sampled_from([None, 7, 0])),
    st.tuples(st.just("many"), st.lists(entry, max_size=4), st.sampled_from([None, "hm", "z" * 150, "y" * 100, 12345]),
              st.sampled_from([None, 9, 0])),
    st.tuples(st.just("change"), entry),
    st.tuples(st.just("snap"), snapshot),
    st.tuples(st.just("resend"), st.just(0)),
    st.tuples(st.just("tick"), st.sampled_from(TICKS + ["0.05", "0", "-0.01"])),
)


def bbo_text(flag: str | None, best: Decimal | None, empty: str) -> str | None:
    if flag == "agree":
        return empty if best is None else format(best, "f")
    return flag


def apply_changes_model(m: Naive, raw: list[tuple], hash_: Any, vts: Any, ts: float) -> tuple[int, list[E]]:
    parsed = []
    for p, s, sd, _, _ in raw:
        pv, sv = m.price(p, m.tick), m.size(s)
        if pv is None or sv is None or not isinstance(sd, str) or sd not in BID:
            parsed = None
            break
        parsed.append((BID[sd], pv, sv))
    if parsed is None:
        m.rejected += 1
        return -1, [E(p, s, sd, bbo_text(fb, None, "0"), bbo_text(fa, None, "1")) for p, s, sd, fb, fa in raw]
    for bid, pv, sv in parsed:
        if sv:
            m.sides[bid][pv] = sv
        else:
            m.sides[bid].pop(pv, None)
    m.version += 1
    if hash_ is not None:
        m.hash = str(hash_)[:100]
    if vts is not None:
        m.vts = vts
    m.ts = ts
    bb, ba = m.best(True), m.best(False)
    entries = [E(p, s, sd, bbo_text(fb, bb, "0"), bbo_text(fa, ba, "1")) for p, s, sd, fb, fa in raw]
    if m.crossed():
        return 1, entries
    if not entries or not entries[-1].best_bid or not entries[-1].best_ask:
        return 0, entries
    vb, va = dec(entries[-1].best_bid), dec(entries[-1].best_ask)
    if vb is None or va is None:
        return 0, entries
    return (0 if vb == (bb or 0) and va == (ba if ba is not None else 1) else 1), entries


def snapshot_model(m: Naive, d: dict, ts: float) -> tuple[bool, BookSnapshot]:
    bids, asks = list(d["bids"]), list(d["asks"])
    if d["junk"] is not None:
        bids.insert(len(bids) // 2, d["junk"])
    raw = {"asset_id": "1", "market": d["market"], "hash": d["hash"],
           "bids": [{"price": p, "size": s} for p, s in bids], "asks": [{"price": p, "size": s} for p, s in asks]}
    for k in ("tick_size", "timestamp", "min_order_size"):
        if d[k] is not None:
            raw[k] = d[k]
    snap = convert(raw, BookSnapshot)
    tick = m.tick
    ok = True
    if d["tick_size"] not in (None, ""):
        vt = venue_tick(d["tick_size"])
        ok = vt is not None
        tick = vt if vt is not None else tick
    ts_ms = d["vts"]
    if ts_ms is None:
        tv = d["timestamp"]
        if tv in (None, ""):
            ts_ms = 0
        else:
            dv = dec(tv)
            ok = ok and dv is not None and 0 <= dv <= 10**14
            ts_ms = int(dv) if ok and dv is not None else 0
    sides: list[dict[Decimal, Decimal]] = []
    for levels in (bids, asks):
        out: dict[Decimal, Decimal] = {}
        for p, s in levels:
            pv, sv = m.price(p, tick), m.size(s)
            if pv is None or sv is None:
                ok = False
                break
            if sv:
                out[pv] = sv
            else:
                out.pop(pv, None)
        sides.append(out)
    if not ok:
        m.rejected += 1
        return False, snap
    m.tick = tick
    m.sides = {True: sides[0], False: sides[1]}
    m.hash = d["hash"][:100]
    if ts_ms:
        m.vts = ts_ms
    if d["market"]:
        m.market = d["market"][:100]
    mos = sane_min_size(d["min_order_size"]) if d["min_order_size"] not in (None, "") else None
    if mos is not None:
        m.mos = mos
    m.ts = ts
    m.synced, m.needs_resync = True, False
    m.version += 1
    return True, snap


def tick_model(m: Naive, text: str) -> bool:
    vt = venue_tick(Decimal(text))
    if vt is None:
        m.rejected += 1
        m.needs_resync = True
        return False
    if vt == m.tick:
        return True
    if any((p / vt) % 1 for side in m.sides.values() for p in side):
        m.needs_resync = True
        return False
    m.tick = vt
    m.version += 1
    return True


@settings(max_examples=200, deadline=None)
@given(st.lists(op, min_size=1, max_size=25), st.lists(st.sampled_from([None, -1, 0, 1, 2, 30]), min_size=1, max_size=3))
def test_the_book_equals_a_naive_model_and_refusals_change_nothing(ops, depths):
    b = OrderBook("1", "0xm", Decimal("0.01"))
    m = Naive(Decimal("0.01"))
    notes = []
    last_snap = None
    for i, (kind, *args) in enumerate(ops):
        ts = float(i + 1)
        before = state(b)
        if kind in ("one", "many", "change"):
            raw = [args[0]] if kind != "many" else args[0]
            hash_, vts = (args[1], args[2]) if kind != "change" else (None, None)
            want, entries = apply_changes_model(m, raw, hash_, vts, ts if kind != "change" else m.ts)
            if kind == "one":
                got = b.apply_one(entries[0], hash_, vts, ts)
            elif kind == "many":
                got = b.apply_event(entries, hash_, vts, ts)
            else:
                got = 0 if b.apply_change(*raw[0][:3]) else -1
                want = min(want, 0)
            assert got == want
        elif kind == "snap":
            want_ok, last_snap = snapshot_model(m, args[0], ts)
            assert b.apply_snapshot(last_snap, ts, args[0]["vts"]) is want_ok
            want = 0 if want_ok else -1
        elif kind == "resend":
            if last_snap is None:
                continue
            want_ok, _ = snapshot_model(m, {"bids": [(lv.price, lv.size) for lv in last_snap.bids],
                                            "asks": [(lv.price, lv.size) for lv in last_snap.asks],
                                            "tick_size": last_snap.tick_size, "timestamp": last_snap.timestamp,
                                            "hash": last_snap.hash, "market": last_snap.market,
                                            "min_order_size": last_snap.min_order_size, "junk": None, "vts": None}, ts)
            assert b.apply_snapshot(last_snap, ts) is want_ok
            want = 0 if want_ok else -1
        else:
            ok = tick_model(m, args[0])
            assert b.set_tick_size(Decimal(args[0])) is ok
            if not ok:  # refused: the book as it was, marked for a resync
                assert b.needs_resync and state(b)[:11] + state(b)[12:] == before[:11] + before[12:]
            want = 0
        if want == -1:  # refused: the book is exactly as it was (only the count moved)
            assert state(b) == before
        check(b, m, depths)
        n = b.note(i % 2 == 0)
        notes.append((n, b.view(stale=i % 2 == 0)))
    for n, v in notes:  # what a listener was handed does not move with the book
        assert n.view() == v and n.view() is n.view()


# ------------------------------------------------------------------ boundaries
def test_price_and_size_text_lengths_are_bounded_at_32_and_40():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.apply_change("0.5" + "0" * 29, "1", "BUY")  # 32 characters
    assert not b.apply_change("0.5" + "0" * 30, "1", "BUY")  # 33
    assert b.apply_change("0.6", "0" * 39 + "2", "SELL")  # 40 characters
    assert not b.apply_change("0.6", "0" * 40 + "2", "SELL")  # 41
    assert b.rejected == 2 and b.levels == (1, 1)


def test_sizes_up_to_max_size_and_prices_strictly_inside_the_unit_interval():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.apply_change("0.01", str(MAX_SIZE), "BUY") and b.apply_change("0.99", "0", "SELL")
    assert not b.apply_change("0.02", str(MAX_SIZE + Decimal("0.01")), "BUY")
    assert not b.apply_change("0", "1", "BUY") and not b.apply_change("1", "1", "SELL")
    assert not b.apply_change("1.00", "1", "SELL") and not b.apply_change("0.00", "1", "BUY")
    assert b.best_bid == Decimal("0.01") and b.depth(Side.BUY, 0) == MAX_SIZE


def test_a_new_book_refuses_a_non_positive_tick():
    with pytest.raises(BookError):
        OrderBook("1", tick_size=Decimal(0))
    with pytest.raises(BookError):
        OrderBook("1", tick_size=Decimal("-0.01"))
    assert OrderBook("1", tick_size=Decimal("0.0001")).tick_size == Decimal("0.0001")


def test_timestamps_are_bounded_at_max_ts_ms():
    assert parse_ts_ms("99999999999999") == 99999999999999  # 14 digits
    assert parse_ts_ms("100000000000000") == 10**14
    with pytest.raises(BookError):
        parse_ts_ms("100000000000001")  # 15 digits, beyond the bound
    with pytest.raises(BookError):
        parse_ts_ms(10**14 + 1)
    assert parse_ts_ms(0) == 0 and parse_ts_ms("0") == 0 and parse_ts_ms(None) == 0 and parse_ts_ms("") == 0
    with pytest.raises(BookError):
        parse_ts_ms(-1)
    with pytest.raises(BookError):
        parse_ts_ms(True)
    with pytest.raises(BookError):
        parse_ts_ms("1" * 33)
    assert parse_ts_ms("0" * 29 + "123") == 123  # 32 characters
    with pytest.raises(BookError, match="too long"):
        parse_ts_ms("0" * 30 + "123")  # 33: refused before it is parsed
    assert parse_ts_ms(Decimal("0.5")) == 0 and parse_ts_ms(12.0) == 12


def test_a_timestamp_of_another_type_is_refused_even_when_its_text_is_a_number():
    with pytest.raises(BookError, match="not a number"):
        parse_ts_ms(Fraction(5))  # str() gives "5"
    with pytest.raises(BookError, match="not a number"):
        parse_ts_ms(False)


def test_short_cuts_any_value_to_a_text_of_at_most_n_characters():
    assert short(12345) == "12345" and short(12345, 3) == "123"
    assert short("abcdef", 6) == "abcdef" and short("abcdefg", 6) == "abcdef"
    assert short("x" * 100) == "x" * 100 and short("x" * 101) == "x" * 100


def raw_book(bids: dict[str, str], asks: dict[str, str], tick: str | None = None) -> BookSnapshot:
    raw: dict[str, Any] = {"asset_id": "1", "bids": [{"price": p, "size": s} for p, s in sorted(bids.items())],
                           "asks": [{"price": p, "size": s} for p, s in sorted(asks.items(), reverse=True)]}
    if tick is not None:
        raw["tick_size"] = tick
    return convert(raw, BookSnapshot)


def test_a_level_a_snapshot_repeats_keeps_its_level_object():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.apply_snapshot(raw_book({"0.4": "5", "0.41": "7"}, {"0.6": "3"}))
    (b40, b41), (a60,) = b._bid_lv, b._ask_lv
    assert b.apply_snapshot(raw_book({"0.4": "5", "0.41": "8"}, {"0.6": "3"}))  # the same ticks, one size new
    assert b._bid_lv[0] is b40 and b._ask_lv[0] is a60
    assert b._bid_lv[1] is not b41 and b._bid_lv[1] == Level(Decimal("0.41"), Decimal(8)) and type(b._bid_lv[1]) is Level
    n41 = b._bid_lv[1]
    assert b.apply_snapshot(raw_book({"0.39": "1", "0.4": "5", "0.41": "8"}, {"0.6": "3", "0.7": "2"}))  # other ticks
    assert b._bid_lv[1] is b40 and b._bid_lv[2] is n41 and b._ask_lv[0] is a60
    assert [type(lv) for lv in b._bid_lv + b._ask_lv] == [Level] * 5
    assert b._bid_lv[0] == Level(Decimal("0.39"), Decimal(1)) and b._ask_lv[1] == Level(Decimal("0.7"), Decimal(2))
    assert b.apply_snapshot(raw_book({"0.39": "1", "0.4": "5", "0.41": "8"}, {"0.6": "3", "0.7": "2"}, "0.001"))
    assert b._bid_lv[1] is not b40 and b._bid_lv[1] == b40  # another grid: new Levels, the same values


def test_a_locked_book_is_crossed_in_its_view_and_in_its_note():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.apply_change("0.5", "1", "BUY") and not b.crossed and not b.note(False).view().crossed
    assert b.apply_change("0.5", "2", "SELL")  # bid == ask: locked, read as crossed
    assert b.crossed and b.view().crossed and b.note(False).view().crossed
    assert b.apply_change("0.51", "2", "SELL") and b.apply_change("0.5", "0", "SELL")
    assert not b.crossed and not b.view().crossed and not b.note(True).view().crossed


def test_latest_books_reads_notes_and_views_as_views():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    b.apply_change("0.4", "3", "BUY")
    n = b.note(True)
    other = OrderBook("2", "0xm", Decimal("0.01")).view()
    lb = LatestBooks()
    assert len(lb) == 0 and "1" not in lb and lb.get("1") is None and lb.get("1", 7) == 7
    lb.put(n)
    lb.put(other)
    assert isinstance(lb.latest["1"], BookNote) and lb.latest["2"] is other
    assert lb["1"] == n.view() and lb.get("1") is n.view() and lb["2"] is other and lb.get("2", 7) is other
    assert "1" in lb and "3" not in lb and sorted(lb) == ["1", "2"] and len(lb) == 2
    assert lb["1"].stale and lb["1"].best_bid == Decimal("0.4") and as_view(other) is other and as_view(n) is n.view()
    with pytest.raises(KeyError):
        lb["3"]


def test_a_grid_too_fine_for_a_price_list_prices_levels_one_by_one():
    b = OrderBook("1", "0xm", Decimal("0.00001"))  # 100,001 prices: no grid list
    assert b.apply_change("0.12345", "2", "BUY") and b.apply_changes([E("0.2", "1", "SELL"), E("0.12346", "1", "SELL")])
    assert [(str(lv.price), lv.size) for lv in b.view().bids] == [("0.12345", Decimal(2))]
    assert [str(lv.price) for lv in b.view().asks] == ["0.12346", "0.2"]
    assert b.apply_snapshot(raw_book({"0.00001": "1", "0.5": "3"}, {"0.99999": "4"}))
    assert b.wire_levels() == ([(Decimal("0.5"), Decimal(3)), (Decimal("0.00001"), Decimal(1))],
                               [(Decimal("0.99999"), Decimal(4))])
    assert [type(lv) for lv in b._bid_lv] == [Level, Level]


def test_the_price_cache_is_bounded():
    b = OrderBook("1", "0xm", Decimal("0.0001"))
    for t in range(1, 5001):
        assert b.apply_change(format(Decimal(t) / 10000, "f"), "1", "BUY")
        assert len(b._px) <= 4096
    assert b.levels == (5000, 0) and b.best_bid == Decimal("0.5")
    assert b.apply_change("0.0001", "0", "BUY") and b.levels == (4999, 0)  # a text the cache dropped


def test_the_size_cache_is_bounded():
    most = 0
    for i in range(70_000):
        assert OrderBook._size_of(f"{i}.5") == Decimal(i) + Decimal("0.5")
        most = max(most, len(_SIZES))
    assert most == 65_536


def test_a_price_that_overflows_the_tick_grid_is_refused():
    b = OrderBook("1", "0xm", Decimal("1e-999999999"))
    assert not b.apply_change("0.5", "1", "BUY") and b.rejected == 1 and b.levels == (0, 0)
    assert b.apply_event([E("0.5", "1", "BUY"), E("0.6", "1", "SELL")], None, None, 1.0) == -1 and b.rejected == 2


def test_agrees_bbo_by_tick_and_by_value():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.agrees_bbo("0", "1") and not b.agrees_bbo("0.4", "1") and not b.agrees_bbo("0", "0.6")
    assert b.apply_change("0.4", "1", "BUY") and b.apply_change("0.6", "1", "SELL")  # both texts now cached
    assert b.agrees_bbo("0.4", "0.6") and b.agrees_bbo("0.40", "0.600")  # by tick, then by value
    assert not b.agrees_bbo("0.6", "0.4") and not b.agrees_bbo("0.4", "0.4") and not b.agrees_bbo("0.6", "0.6")
    assert not b.agrees_bbo("0", "0.6") and not b.agrees_bbo("0.4", "1")
    assert b.apply_change("0.6", "0", "SELL")  # one side empty: a cached text cannot agree with it
    assert not b.agrees_bbo("0.4", "0.6") and b.agrees_bbo("0.4", "1")
    assert b.apply_change("0.4", "0", "BUY") and b.apply_change("0.6", "1", "SELL")
    assert not b.agrees_bbo("0.4", "0.6") and b.agrees_bbo("0", "0.6")
    with pytest.raises(InvalidOperation):
        b.agrees_bbo("0.4", "abc")


def test_a_snapshot_without_a_local_time_stamps_zero():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.apply_change("0.4", "1", "BUY") and b.ts == 0.0
    b.ts = 5.0
    assert b.apply_snapshot(raw_book({"0.4": "5"}, {})) and b.ts == 0.0 and b.synced


def snap_lists(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookSnapshot:
    return convert({"asset_id": "1", "bids": [{"price": p, "size": s} for p, s in bids],
                    "asks": [{"price": p, "size": s} for p, s in asks]}, BookSnapshot)


def test_a_snapshot_that_differs_from_the_book_in_one_field_of_one_level_is_applied():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    for p, sz in (("0.42", "8"), ("0.62", "4")):  # every text below known to the caches (the `_holds` path)
        assert b.apply_change(p, sz, "BUY") and b.apply_change(p, "0", "BUY")
    bids, asks = [("0.4", "5"), ("0.41", "7")], [("0.61", "2"), ("0.6", "3")]  # the wire's order: best last
    steps = [
        (bids, asks),  # the book's own levels: kept
        ([("0.4", "5"), ("0.41", "8")], asks),  # a bid's size
        ([("0.4", "5"), ("0.42", "8")], asks),  # a bid's price, the same size text
        ([("0.4", "5"), ("0.42", "8")], [("0.61", "2"), ("0.6", "4")]),  # an ask's size
        ([("0.4", "5"), ("0.42", "8")], [("0.62", "2"), ("0.6", "4")]),  # an ask's price
        ([("0.42", "8"), ("0.4", "5")], [("0.6", "4"), ("0.62", "2")]),  # the same levels, in another order
        ([("0.4", "5"), ("0.42", "0")], [("0.62", "2"), ("0.6", "4")]),  # a zero size: the level goes
        ([("0.4", "5"), ("0.4", "6")], [("0.6", "4"), ("0.6", "4")]),  # duplicates: the last one wins
        ([("0.4", "5"), ("0.4", "0")], [("0.6", "4"), ("0.6", "0")]),  # a level, then its zero: gone
    ]
    for i, (wb, wa) in enumerate(steps):
        assert b.apply_snapshot(snap_lists(wb, wa)) and b.version == i + 5
        want_b = sorted(dict((Decimal(p), Decimal(s)) for p, s in wb).items(), reverse=True)
        want_b = [(p, s) for p, s in want_b if s]
        want_a = sorted((p, s) for p, s in dict((Decimal(p), Decimal(s)) for p, s in wa).items() if s)
        assert b.wire_levels() == (want_b, want_a)
        assert [(lv.price, lv.size) for lv in b._bid_lv] == want_b[::-1] and b._bid_ticks == sorted(b.bids)
        assert [(lv.price, lv.size) for lv in b._ask_lv] == want_a and b._ask_ticks == sorted(b.asks)


def test_the_price_memo_is_bounded():
    tick, most = Decimal("0.000001"), 0
    for t in range(1, 100_003):
        assert _price(tick, t) == tick * t
        most = max(most, len(_PRICES))
    assert most == 100_001
    assert str(_price(Decimal("0.01"), 40)) == "0.4" and _price(Decimal("0.01"), 0) == 0


@pytest.mark.parametrize("many", [False, True])
def test_the_answer_of_an_event_crossed_agreeing_or_not_through_both_paths(many: bool) -> None:
    b = OrderBook("1", "0xm", Decimal("0.01"))

    def ev(price: str, size: str, side: str, bb: str | None = None, ba: str | None = None) -> int:
        e = E(price, size, side, bb, ba)
        if many:  # the loop: a no-op entry first (a zero size where there is no level)
            return b.apply_event([E("0.01", "0", "SELL"), e], "h", 5, 1.0)
        return b.apply_one(e, "h", 5, 1.0)

    assert ev("0.4", "1", "buy") == 0 and b.best_bid == Decimal("0.4")  # no best bid/ask given: agreeing
    assert ev("0.6", "1", "ask", "0.4", "0.6") == 0 and b.best_ask == Decimal("0.6")
    assert ev("0.41", "1", "bid", "0.41", "0.7") == 1  # the venue's ask differs
    assert ev("0.42", "1", "BUY", "0.43", "0.6") == 1  # its bid differs
    assert ev("0.42", "2", "BUY", "0.42", "") == 0 and ev("0.42", "3", "BUY", "", "0.6") == 0
    assert ev("0.42", "4", "BUY", "0.42", "abc") == 0  # a text that is no number counts as agreeing
    assert ev("0.61", "1", "sell", "0.420", "0.60") == 0  # other spellings: by value
    assert ev("0.6", "1", "BUY", "0.6", "0.6") == 1 and b.crossed  # locked: crossed whatever the venue says
    assert ev("0.6", "0", "BUY", "0.42", "0.6") == 0 and not b.crossed
    assert ev("0.7", "1", "BID") == 1 and b.crossed and ev("0.7", "0", "BID") == 0
    assert ev("0.5", "1", "SELL", "0.42", "0.5") == 0 and b.best_ask == Decimal("0.5") and b.asks[50] == 1
    assert ev("0.5", "1", "HOLD") == -1 and ev("0.5", "abc", "SELL") == -1 and ev("0.5", "NaN", "SELL") == -1
    assert (b.hash, b.venue_ts_ms, b.ts) == ("h", 5, 1.0)


def test_a_price_text_seen_before_a_tick_change_is_read_on_the_new_grid():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    assert b.apply_change("0.45", "1", "BUY") and b._bid_ticks == [45]
    assert b.set_tick_size(Decimal("0.001")) and b._bid_ticks == [450]
    assert b.apply_change("0.45", "2", "BUY") and b._bid_ticks == [450] and b.bids == {450: Decimal(2)}
    assert b.apply_change("0.46", "1", "SELL") and b._ask_ticks == [460] and b.best_ask == Decimal("0.46")


def test_a_snapshot_without_a_timestamp_market_or_minimum_keeps_the_books_own():
    b = OrderBook("1", "0xm", Decimal("0.01"))
    full = convert({"asset_id": "1", "market": "0xa", "timestamp": "17", "min_order_size": "15",
                    "bids": [{"price": "0.4", "size": "1"}]}, BookSnapshot)
    assert b.apply_snapshot(full) and (b.market, b.venue_ts_ms, b.min_order_size) == ("0xa", 17, Decimal(15))
    bare = convert({"asset_id": "1", "timestamp": "0", "bids": [{"price": "0.4", "size": "2"}]}, BookSnapshot)
    assert b.apply_snapshot(bare) and (b.market, b.venue_ts_ms, b.min_order_size) == ("0xa", 17, Decimal(15))
    junk = convert({"asset_id": "1", "min_order_size": "0", "bids": []}, BookSnapshot)
    assert b.apply_snapshot(junk) and b.min_order_size == Decimal(15) and b.levels == (0, 0)
    other = convert({"asset_id": "1", "min_order_size": "5", "market": "0xb", "timestamp": "18"}, BookSnapshot)
    assert b.apply_snapshot(other) and (b.market, b.venue_ts_ms, b.min_order_size) == ("0xb", 18, Decimal(5))


def test_snapshot_levels_last_level_wins_zero_removes_best_first():
    snap = snap_lists([("0.4", "5"), ("0.41", "1"), ("0.41", "0"), ("0.39", "2"), ("0.4", "6")],
                      [("0.7", "1"), ("0.6", "3"), ("0.7", "0"), ("0.65", "2")])
    assert snapshot_levels(snap) == ([(Decimal("0.4"), Decimal(6)), (Decimal("0.39"), Decimal(2))],
                                     [(Decimal("0.6"), Decimal(3)), (Decimal("0.65"), Decimal(2))])
