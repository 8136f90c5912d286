"""`analytics.markouts` on hand-computed cases and against a naive model (mutation-testing round):
the sign per side, the horizon boundaries, the mid asked once per token with the last seen mid as
fallback, the rows written, and the running statistics with their JSON round trip."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.analytics.markouts import (
    HORIZONS,
    Markout,
    MarkoutStats,
    MarkoutTracker,
    horizon_key,
    realized_spread,
)
from pmm_widgets.domain import Fill, FillType, Mode, Side
from pmm_widgets.store.sink import MemorySink

D = Decimal


def fill(token: str, side: Side, price: str, size: str, ts: float, tid: str = "t1") -> Fill:
    return Fill(tid, "o1", "0xc0", token, side, D(price), D(size), FillType.FILLED, Mode.LIVE, ts)


def test_horizon_keys_and_the_default_horizons():
    assert [horizon_key(h) for h in (5.0, 30.0, 120.0, 0.5, 0.0)] == ["5s", "30s", "120s", "0.5s", "0s"]
    assert HORIZONS == (5.0, 30.0, 120.0)


def test_realized_spread_is_signed_by_side():
    assert realized_spread(fill("y", Side.BUY, "0.40", "1", 0.0), D("0.43")) == 0.03
    assert realized_spread(fill("y", Side.SELL, "0.40", "1", 0.0), D("0.43")) == -0.03


def test_a_horizon_is_due_exactly_at_fill_time_plus_horizon_and_rows_carry_the_fill():
    sink = MemorySink()
    tr = MarkoutTracker(sink, horizons=(30.0, 5.0))  # sorted by the tracker
    assert tr.horizons == (5.0, 30.0)
    assert tr.on_fill(fill("y", Side.SELL, "0.60", "4", 10.0), D("0.55")) == float(D("0.05"))
    rs_row = sink.rows["markouts"][0]
    assert rs_row == {"trade_id": "t1", "market": "0xc0", "token_id": "y", "side": "SELL", "mode": "live",
                      "horizon_sec": 0.0, "fill_ts": 10.0, "fill_price": D("0.60"), "size": D("4"), "mid": D("0.55"),
                      "markout": float(D("0.05")), "markout_usd": float(D("0.05")) * 4.0, "ts": 10.0}
    assert tr.advance(14.999, {"y": D("0.50")}.get) == []
    [m] = tr.advance(15.0, {"y": D("0.50")}.get)  # due at exactly 10 + 5
    assert (m.trade_id, m.market, m.horizon, m.px, m.usd) == ("t1", "0xc0", 5.0, float(D("0.10")),
                                                              float(D("0.10")) * 4.0)
    assert tr.pending == 1
    row = sink.rows["markouts"][-1]
    assert (row["horizon_sec"], row["ts"], row["mid"], row["fill_ts"]) == (5.0, 15.0, D("0.50"), 10.0)
    [m30] = tr.advance(40.0, {"y": D("0.70")}.get)
    assert (m30.horizon, m30.px) == (30.0, float(D("-0.10")))
    assert tr.pending == 0 and len(sink.rows["markouts"]) == 3


def test_a_late_advance_completes_every_due_horizon_at_once():
    sink = MemorySink()
    tr = MarkoutTracker(sink)
    assert tr.on_fill(fill("y", Side.BUY, "0.40", "10", 0.0), None) is None  # no mid known: no horizon-0 row
    assert "markouts" not in sink.rows
    done = tr.advance(30.0, {"y": D("0.45")}.get)
    assert [(m.horizon, m.px) for m in done] == [(5.0, float(D("0.05"))), (30.0, float(D("0.05")))]
    assert tr.pending == 1
    done = tr.advance(500.0, {"y": D("0.41")}.get)
    assert [m.horizon for m in done] == [120.0] and tr.pending == 0


def test_the_last_mid_seen_stands_in_at_the_fill_and_later_and_no_mid_at_all_skips_the_horizon():
    sink = MemorySink()
    tr = MarkoutTracker(sink, horizons=(5.0, 10.0, 20.0))
    tr.on_fill(fill("y", Side.BUY, "0.40", "1", 0.0, "a"), None)
    assert tr.advance(5.0, lambda t: None) == []  # never a mid: the horizon passes without a row
    assert tr.pending == 1
    [m] = tr.advance(10.0, {"y": D("0.44")}.get)
    assert m.horizon == 10.0
    rs = tr.on_fill(fill("y", Side.SELL, "0.50", "2", 11.0, "b"), None)  # the last mid seen: 0.44
    assert rs == float(D("0.06"))
    assert sink.rows["markouts"][-1]["mid"] == D("0.44")
    done = tr.advance(30.0, lambda t: None)  # the book gone: the last mid for both
    assert [(m.trade_id, m.horizon, m.px) for m in done] == [("a", 20.0, float(D("0.04"))),
                                                              ("b", 5.0, float(D("0.06"))),
                                                              ("b", 10.0, float(D("0.06")))]
    assert tr.pending == 1


def test_the_fills_own_mid_is_the_last_seen_unless_a_later_one_was():
    """A mid given with a fill stands in at a horizon whose book is gone (it was skipped when no
    advance had seen a mid); a fill reported late does not replace a later mid already seen."""
    sink = MemorySink()
    tr = MarkoutTracker(sink, horizons=(5.0,))
    assert tr.on_fill(fill("y", Side.BUY, "0.40", "2", 0.0, "a"), D("0.43")) == float(D("0.03"))
    [m] = tr.advance(5.0, lambda t: None)  # the book gone: the mid at the fill
    assert (m.trade_id, m.px, m.usd) == ("a", float(D("0.03")), float(D("0.03")) * 2)
    assert sink.rows["markouts"][-1]["mid"] == D("0.43")
    tr.on_fill(fill("y", Side.BUY, "0.40", "1", 6.0, "b"), None)
    tr.advance(8.0, {"y": D("0.50")}.get)  # seen at 8
    tr.on_fill(fill("y", Side.SELL, "0.45", "1", 7.0, "c"), D("0.41"))  # a fill of 7, reported after 8
    done = tr.advance(20.0, lambda t: None)
    assert [(m.trade_id, m.px) for m in done] == [("b", float(D("0.10"))), ("c", float(D("-0.05")))]
    assert tr.on_fill(fill("y", Side.BUY, "0.40", "1", 8.0, "d"), D("0.42")) == float(D("0.02"))
    assert tr.on_fill(fill("y", Side.BUY, "0.40", "1", 9.0, "e"), None) == float(D("0.02"))  # 8 is not before 8


def test_each_tokens_mid_is_asked_once_per_advance_and_tokens_do_not_mix():
    tr = MarkoutTracker(MemorySink(), horizons=(5.0,))
    tr.on_fill(fill("y", Side.BUY, "0.40", "1", 0.0, "a"), D("0.40"))
    tr.on_fill(fill("n", Side.BUY, "0.55", "1", 0.0, "b"), D("0.55"))
    tr.on_fill(fill("y", Side.BUY, "0.41", "1", 0.0, "c"), D("0.40"))
    asked: list[str] = []

    def mid_of(tok: str) -> Decimal | None:
        asked.append(tok)
        return {"y": D("0.45"), "n": D("0.50")}[tok]

    done = tr.advance(5.0, mid_of)
    assert sorted(asked) == ["n", "y"]
    assert [(m.trade_id, m.px) for m in done] == [("a", float(D("0.05"))), ("b", float(D("-0.05"))),
                                                  ("c", float(D("0.04")))]
    tr2 = MarkoutTracker(MemorySink(), horizons=(5.0,))
    tr2.advance(0.0, mid_of)  # nothing pending: nothing asked, nothing remembered
    assert len(asked) == 2
    tr2.on_fill(fill("n", Side.BUY, "0.55", "1", 0.0), None)
    tr2.advance(1.0, {"y": D("0.3")}.get)  # another token's mid is not this token's
    assert tr2.on_fill(fill("n", Side.BUY, "0.55", "1", 2.0), None) is None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["y", "n"]), st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 99),
                          st.integers(1, 9), st.one_of(st.none(), st.integers(1, 99))), max_size=6),
       st.lists(st.tuples(st.integers(0, 200), st.one_of(st.none(), st.integers(1, 99))), max_size=8))
def test_the_tracker_equals_a_naive_model(fills, steps):
    """Fills all at t = 0; each advance at an increasing time with one mid for every token (or none).
    The last mid seen is remembered from the fills given one and from the advances, for the tokens
    with a fill pending."""
    tr = MarkoutTracker(MemorySink(), horizons=(30.0, 5.0, 120.0))
    last: dict[str, Decimal] = {}
    for i, (tok, side, px, sz, mid) in enumerate(fills):
        f = fill(tok, side, str(D(px) / 100), str(sz), 0.0, f"t{i}")
        m = D(mid) / 100 if mid is not None else last.get(tok)
        s = 1 if side is Side.BUY else -1
        assert tr.on_fill(f, None if mid is None else D(mid) / 100) == (None if m is None else float(s * (m - f.price)))
        if mid is not None:
            last[tok] = m
    seen_h = [0] * len(fills)
    now = 0
    for dt, mid in steps:
        now += dt
        want = []
        for tok in {f[0] for f, k in zip(fills, seen_h, strict=True) if k < 3}:  # the tokens asked: those pending
            if mid is not None:
                last[tok] = D(mid) / 100
        for i, (tok, side, px, sz, _) in enumerate(fills):
            while seen_h[i] < 3 and now >= (5.0, 30.0, 120.0)[seen_h[i]]:
                h = (5.0, 30.0, 120.0)[seen_h[i]]
                seen_h[i] += 1
                if tok in last:
                    s = 1 if side is Side.BUY else -1
                    px_ = float(s * (last[tok] - D(px) / 100))
                    want.append((f"t{i}", h, px_, px_ * sz))
        got = tr.advance(float(now), lambda t, m=mid: None if m is None else D(m) / 100)
        assert [(m.trade_id, m.horizon, m.px, m.usd) for m in got] == want
        assert tr.pending == sum(1 for k in seen_h if k < 3)


def test_stats_means_and_their_json_round_trip():
    s = MarkoutStats()
    assert s.mean(5.0) is None and s.realized_spread_mean is None
    assert s.to_json() == {"count": {}, "sum": {}, "mean": {}, "realized_spread_count": 0, "realized_spread_sum": 0.0,
                           "realized_spread_mean": None}
    s.add_markout(5.0, 0.25)
    s.add_markout(5.0, -0.75)
    s.add_markout(30.0, 0.5)
    s.add_realized_spread(0.5)
    s.add_realized_spread(0.25)
    assert (s.mean(5.0), s.mean(30.0), s.mean(120.0), s.realized_spread_mean) == (-0.25, 0.5, None, 0.375)
    j = s.to_json()
    assert j == {"count": {"5s": 2, "30s": 1}, "sum": {"5s": -0.5, "30s": 0.5}, "mean": {"5s": -0.25, "30s": 0.5},
                 "realized_spread_count": 2, "realized_spread_sum": 0.75, "realized_spread_mean": 0.375}
    back = MarkoutStats.from_json(json.loads(json.dumps(j)))
    assert (back.count, back.total, back.rs_count, back.rs_total) == (s.count, s.total, 2, 0.75)
    assert MarkoutStats.from_json(None) == MarkoutStats() == MarkoutStats.from_json({"count": None, "sum": None})
    assert s.count is not j["count"]  # a copy: later adds do not change what was written
    z = MarkoutStats(count={"5s": 0}, total={"5s": 0.0})
    assert z.mean(5.0) is None and z.to_json()["mean"] == {}


def test_a_markout_is_an_immutable_value():
    m = Markout("t", "0xc0", 5.0, 0.01, 0.1)
    with pytest.raises(FrozenInstanceError):
        m.px = 0.02  # type: ignore[misc]
    assert m == Markout("t", "0xc0", 5.0, 0.01, 0.1)
