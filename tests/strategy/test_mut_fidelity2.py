"""The venue-clock re-timing of a recording (analytics/fidelity.py: `on_venue_clock`,
`own_on_venue_clock`, `_level_room`, `_live_fills_to_ms`, `without_own`, the replay) pinned where
mutation testing found it untested. The recordings here run at speed 2 with the venue's clock far
from the local one (venue = 1000 + 2 × local on the freshest evidence), so a speed used the wrong
way round or a clock offset dropped shows."""

from __future__ import annotations

from decimal import Decimal

import pytest
from strategy_helpers import book, make_market

from pmm_widgets.analytics.fidelity import (
    RecordedVenueClock,
    Recording,
    on_venue_clock,
    own_on_venue_clock,
)
from pmm_widgets.domain import Fill, FillType, Mode, PublicTrade, Quote, Side

D = Decimal
M0 = make_market(0)
CM = M0.condition_id
BUY, SELL = Side.BUY, Side.SELL


def _bk(token: str, local: float, venue: float, *own: tuple) -> tuple:
    b = book(token, CM, [("0.44", 10)], [("0.60", 10)], ts=local, venue_ts_ms=int(round(venue * 1000)))
    return ("book", local, b, *own)


def _tr(local: float, venue: float, price: str = "0.44", size: str = "5") -> tuple:
    return ("trade", local, PublicTrade("y0", CM, D(price), D(size), SELL, venue, recv_ts=local))


def _fill(oid: str, size: str, venue: float, status: str = "MATCHED", token: str = "y0") -> Fill:
    return Fill("t" + oid + size, oid, CM, token, BUY, D("0.45"), D(size), FillType.PARTIAL, Mode.LIVE, venue,
                status=status)


def _lagged() -> Recording:
    """Speed 2; the freshest evidence (the book at local 100, venue 1200) puts venue v at local v/2 − 500:
    a print of venue 1020 arrived at 12 (2 s late), a book of 1040 at 20 (on time), a print and a
    book of 1050 at 29 and 31 (4 s and 6 s late). One order with PLACEMENT/CANCELLATION times, one without."""
    q1 = Quote(CM, "y0", BUY, D("0.45"), D(10))
    q2 = Quote(CM, "n0", BUY, D("0.40"), D(8))
    rec = Recording([M0], seconds=100.0, speed=2.0, rtt_ms=[40.0, 60.0, 200.0])  # half the median: 30 ms
    rec.events += [
        _tr(12.0, 1020.0),
        _bk("y0", 20.0, 1040.0, ((BUY, D("0.45"), D(1)),)),
        ("place", 22.0, [("L1", q1), ("L2", q2)]),
        _tr(29.0, 1050.0),
        _bk("y0", 31.0, 1050.0),
        ("cancel", 50.0, ["L1", "L2"]),
        _bk("y0", 100.0, 1200.0),
        ("poll", 101.0),
    ]
    rec.spans = {"L1": (1034.0, 1090.0)}
    rec.stripped = {"books": 3.0}
    return rec


def test_on_the_venue_clock_at_a_speed_up_and_an_offset() -> None:
    rec = _lagged()
    v = on_venue_clock(rec, feed_s=0.0002)
    got = [(ev[0], round(ev[1], 9)) for ev in v.events]
    assert got == [("trade", 10.0002), ("place", 17.0), ("book", 20.0), ("place", 22.03), ("trade", 25.0002),
                   ("book", 25.0002), ("cancel", 45.0), ("cancel", 50.03), ("book", 100.0), ("poll", 101.0)]
    # one order per event; the print's `recv_ts` and the book's `ts` follow; our resting orders stay
    assert [ev[2] for ev in v.events if ev[0] in ("place", "cancel")] == [
        [rec.events[2][2][0]], [rec.events[2][2][1]], ["L1"], ["L2"]]
    assert v.events[0][2].recv_ts == pytest.approx(10.0002, abs=1e-12) and v.events[0][2].ts == 1020.0
    assert v.events[5][2].ts == pytest.approx(25.0002, abs=1e-12) and v.events[5][2].venue_ts_ms == 1_050_000
    assert v.events[2][3] == ((BUY, D("0.45"), D(1)),) and len(v.events[2]) == 4 and len(v.events[5]) == 3
    assert v.actions_at_venue and not rec.actions_at_venue
    # lags 1.9998, 0, 3.9998, 5.9998, 0 (in event order): the 90th percentile of five is the 4th smallest
    assert v.stripped == {"books": 3.0, "feed_lag_p90_s": 4.0, "feed_lag_max_s": 6.0}
    assert on_venue_clock(rec, feed_s=0.0).stripped["feed_lag_p90_s"] == 4.0
    # rounded to the ms
    assert on_venue_clock(rec, feed_s=0.00025).stripped["feed_lag_max_s"] == round(6.0 - 0.00025, 3)
    # never later than it arrived
    assert [ev[1] for ev in on_venue_clock(rec, feed_s=5.0).events if ev[0] == "trade"] == [12.0, 29.0]


def test_on_the_venue_clock_uses_the_clock_it_is_given() -> None:
    rec = _lagged()
    other = RecordedVenueClock(Recording([M0], 1.0, 2.0, events=[_bk("y0", 0.0, 1100.0)]))  # venue v at v/2 − 550
    v = on_venue_clock(rec, feed_s=0.0, clock=other)
    assert v.events[0][0] == "trade" and v.events[0][1] == -40.0
    assert [ev[1] for ev in v.events if ev[0] == "place"] == [-33.0, 22.03]


def test_without_venue_evidence_the_recording_is_left_as_it_is() -> None:
    rec = Recording([M0], 1.0, 2.0, events=[("poll", 1.0), _bk("y0", 2.0, 0.0)], spans={"L1": (5.0, None)})
    assert on_venue_clock(rec) is rec
    assert not rec.actions_at_venue and rec.stripped == {}


def _resting() -> Recording:
    """Speed 2, venue = 1000 + 2 × local on every event; orders:
    L3 YES bid 0.44 × 5, venue PLACEMENT 1004 and CANCELLATION 1030 (its cancel sent at 10 is not used);
    L1 YES bid 0.45 × 10 sent at 5 (resting from venue 1010.1: +50 ms half round trip), cancel sent at 20
    (gone at 1040.1), 4 filled at 1020 (a FAILED 3 never happened);
    L2 NO bid 0.40 × 8 (a YES ask at 0.60), PLACEMENT 1012, cancel sent at 30 (gone 1060.1), 7.5 filled at
    1025 and 0.5 at 1030."""
    q3 = Quote(CM, "y0", BUY, D("0.44"), D(5))
    q1 = Quote(CM, "y0", BUY, D("0.45"), D(10))
    q2 = Quote(CM, "n0", BUY, D("0.40"), D(8))
    rec = Recording([M0], seconds=40.0, speed=2.0, rtt_ms=[100.0])
    rec.events += [
        _bk("y0", 0.0, 1000.0),
        ("place", 1.0, [("L3", q3)]),
        _bk("y0", 2.0, 1004.0),
        ("place", 5.0, [("L1", q1), ("L2", q2)]),
        _bk("y0", 5.0, 1010.0),
        _bk("y0", 5.5, 1011.0),
        _bk("y0", 6.0, 1012.0),
        _bk("n0", 6.0, 1012.0),
        ("cancel", 10.0, ["L3"]),
        _bk("y0", 10.0, 1020.0),
        _bk("y0", 12.5, 1025.0),
        _bk("y0", 15.0, 1030.0),
        _bk("y0", 16.0, 1008.0),  # a book that arrived 12 s late
        _bk("y0", 20.0, 1040.0),
        ("cancel", 20.0, ["L1"]),
        ("cancel", 30.0, ["L2"]),
        _bk("y0", 35.0, 1070.0),
    ]
    rec.live_fills += [(10.0, _fill("L1", "4", 1020.0)), (10.0, _fill("L1", "3", 1020.0, status="FAILED")),
                       (12.5, _fill("L2", "7.5", 1025.0, token="n0")), (15.0, _fill("L2", "0.5", 1030.0, token="n0")),
                       (15.0, _fill("LX", "2", 1030.0))]  # not one of the recorded orders
    rec.spans = {"L3": (1004.0, 1030.0), "L2": (1012.0, None)}
    return rec


def test_our_orders_in_each_book_by_the_venue_clock() -> None:
    rec = _resting()
    vc = RecordedVenueClock(rec)
    assert [vc.venue(t) for t in (1.0, 5.0, 20.0, 30.0)] == [1002.0, 1010.0, 1040.0, 1060.0]
    l3, l1 = (BUY, D("0.44"), D(5)), (BUY, D("0.45"), D(10))
    l2 = (SELL, D("0.60"), D(8))  # the NO bid at 0.40 in the YES book
    assert own_on_venue_clock(rec, vc) == {
        2: (l3,),  # placed at 1004: resting at 1004
        4: (l3,),  # L1 from 1010.1
        5: (l3, l1),
        6: (l3, l1, l2),  # L2 placed at 1012
        7: ((SELL, D("0.56"), D(5)), (SELL, D("0.55"), D(10)), (BUY, D("0.40"), D(8))),  # the NO book
        9: (l3, (BUY, D("0.45"), D(6)), l2),  # 4 filled at 1020 (the FAILED 3 not)
        10: (l3, (BUY, D("0.45"), D(6)), (SELL, D("0.60"), D("0.5"))),
        11: ((BUY, D("0.45"), D(6)),),  # L3 gone at 1030, L2 filled
        12: (l3,),  # the late book, at its venue time
        13: ((BUY, D("0.45"), D(6)),),  # L1 gone at 1040.1
    }


def test_a_clock_from_our_fills_alone_moves_no_market_data() -> None:
    rec = Recording([M0], 10.0, 2.0, events=[("poll", 1.0), ("poll", 3.0)], live_fills=[(3.0, _fill("L1", "1", 1006.0))])
    v = on_venue_clock(rec)
    assert v is not rec and v.events == rec.events and not v.actions_at_venue
    assert v.stripped == {"feed_lag_p90_s": 0.0, "feed_lag_max_s": 0.0}


def _f(tid: str, side: Side, price: str, size: str, venue: float) -> tuple[float, Fill]:
    return (venue + 0.5, Fill(tid, "L" + tid, CM, "y0", side, D(price), D(size), FillType.FILLED, Mode.LIVE, venue))


def _ptr(local: float, venue: float, price: str, size: str, side: Side = SELL) -> tuple:
    return ("trade", local, PublicTrade("y0", CM, D(price), D(size), side, venue, recv_ts=local))


def _at_levels() -> Recording:
    """Our fills in whole venue seconds: in second 6 a YES bid at 0.45 (10) and a YES ask at 0.47 (4),
    the last book there the NO book; in second 8 a YES bid at 0.45 (6), the last book the YES one
    (no resting orders noted); in second 9 a YES bid at 0.40 (1) with no print of it."""
    no_book = book("n0", CM, [("0.53", 30)], [("0.55", 11), ("0.56", 40)], ts=5.0)
    # ours in the NO book: the YES bid at 0.45 is a NO ask at 0.55, the YES ask at 0.47 a NO bid at 0.53
    own = ((SELL, D("0.55"), D(10)), (SELL, D("0.56"), D(5)), (BUY, D("0.53"), D(4)))
    rec = Recording([M0], seconds=20.0, speed=1.0)
    rec.events += [
        ("book", 5.0, no_book, own),
        _ptr(6.5, 6.2, "0.45", "10"),
        _ptr(6.6, 6.3, "0.47", "6", BUY),
        ("book", 7.0, book("y0", CM, [("0.45", 20)], [("0.50", 10)], ts=7.0)),
        _ptr(8.2, 8.1, "0.45", "6"),
        ("book", 9.5, book("y0", CM, [("0.45", 20)], [("0.50", 10)], ts=9.5), ()),  # none of ours rested
    ]
    rec.live_fills += [_f("a", BUY, "0.45", "10", 6.0), _f("b", SELL, "0.47", "4", 6.0), _f("c", BUY, "0.45", "6", 8.0),
                       _f("d", BUY, "0.40", "1", 9.0)]
    return rec


def _trades(rec: Recording) -> list[tuple[float, Decimal, Decimal]]:
    return sorted((ev[2].ts, ev[2].price, ev[2].size) for ev in rec.events if ev[0] == "trade")


def test_the_level_each_print_would_have_met_without_us() -> None:
    from pmm_widgets.analytics.fidelity import without_own

    rec = _at_levels()
    v = without_own(rec, prints="level", clock="arrival")
    # the NO ask at 0.55 held 11, 10 of them ours: the print of 10 keeps 1; the NO bid at 0.53 held 30,
    # 4 ours: the print of 6 keeps all 6; the YES bid of 20 keeps the print of 6
    assert _trades(v) == [(6.2, D("0.45"), D(1)), (6.3, D("0.47"), D(6)), (8.1, D("0.45"), D(6))]
    assert v.events[0][2].asks == (book("n0", CM, [], [("0.55", 1), ("0.56", 35)]).asks)
    assert v.events[0][2].bids == (book("n0", CM, [("0.53", 26)], []).bids)
    assert [len(ev) for ev in v.events if ev[0] == "book"] == [3, 3, 3]
    assert v.stripped == {"books": 1, "fills_matched": 3, "fills_moved_through": 0, "fills_unmatched": 1,
                          "volume_kept_at_level": round(11 / 21, 3), "hidden_share": round(9 / 21, 3),
                          "fills_restamped_ms": 3}
    assert [f.ts for _, f in v.live_fills] == [6.2, 6.3, 8.1, 9.0]  # no print of the fill at 0.40: its second
    # by the venue clock none of ours rested (no orders recorded): the levels keep their whole size
    w = without_own(rec, prints="level")
    assert _trades(w) == [(6.2, D("0.45"), D(10)), (6.3, D("0.47"), D(6)), (8.1, D("0.45"), D(6))]
    assert w.stripped["books"] == 0 and [len(ev) for ev in w.events if ev[0] == "book"] == [3, 3, 3]
    r = without_own(rec, prints="raw", clock="arrival")
    assert r.stripped == {"books": 1, "fills_restamped_ms": 3} and _trades(r) == _trades(rec)


def test_nothing_to_strip() -> None:
    from pmm_widgets.analytics.fidelity import without_own

    rec = Recording([M0], seconds=20.0, speed=1.0, events=[_bk("y0", 1.0, 1.0), _ptr(2.0, 2.0, "0.45", "3")])
    v = without_own(rec, clock="arrival")
    assert v.events == rec.events
    assert v.stripped == {"books": 0, "fills_matched": 0, "fills_moved_through": 0, "fills_unmatched": 0,
                          "volume_kept_at_level": 0.0, "hidden_share": 0.0}


def test_our_part_moves_to_the_takers_nearest_print_through_our_price() -> None:
    from pmm_widgets.analytics.fidelity import without_own

    rec = Recording([M0], seconds=20.0, speed=1.0)
    rec.events += [
        # second 6: a buyer took our YES ask at 0.47 (4) and went on up to 0.49; a seller printed at 0.44
        _ptr(6.1, 6.1, "0.47", "4", BUY), _ptr(6.2, 6.2, "0.48", "3", BUY), _ptr(6.3, 6.3, "0.49", "2", BUY),
        _ptr(6.4, 6.4, "0.44", "1"),
        # second 7: a seller took our YES bid at 0.45 (1) and went on down to 0.43
        _ptr(7.1, 7.1, "0.45", "1"), _ptr(7.2, 7.2, "0.44", "1"), _ptr(7.3, 7.3, "0.43", "1"),
        # second 8: our bid at 0.46 filled 2 with no print at 0.46
        _ptr(8.1, 8.1, "0.44", "1"),
        # second 9: one print of 5 at 0.47 stands for our bid's 4 and our ask's 3 (only 1 left for it)
        _ptr(9.1, 9.1, "0.47", "5"),
    ]
    rec.live_fills += [_f("a", SELL, "0.47", "4", 6.0), _f("b", BUY, "0.45", "1", 7.0), _f("c", BUY, "0.46", "2", 8.0),
                       _f("d", BUY, "0.47", "4", 9.0), _f("e", SELL, "0.47", "3", 9.0)]
    v = without_own(rec, prints="continue", clock="arrival")
    assert _trades(v) == [(6.2, D("0.48"), D(7)), (6.3, D("0.49"), D(2)), (6.4, D("0.44"), D(1)),
                          (7.2, D("0.44"), D(2)), (7.3, D("0.43"), D(1)), (8.1, D("0.44"), D(1))]
    assert v.stripped == {"books": 0, "fills_matched": 4, "fills_moved_through": 2, "fills_unmatched": 2,
                          "hidden_share": round(5 / 14, 3), "fills_restamped_ms": 4}
    d = without_own(rec, prints="drop", clock="arrival")
    assert _trades(d) == [(6.2, D("0.48"), D(3)), (6.3, D("0.49"), D(2)), (6.4, D("0.44"), D(1)),
                          (7.2, D("0.44"), D(1)), (7.3, D("0.43"), D(1)), (8.1, D("0.44"), D(1))]
    assert d.stripped["fills_moved_through"] == 0 and d.stripped["hidden_share"] == round(10 / 14, 3)


def test_the_replay_times_orders_and_cancels_when_they_were_sent_and_reports_every_fill() -> None:
    from pmm_widgets.analytics.fidelity import Candidate, replay

    def pr(t: float, price: str, size: str, side: Side = SELL) -> tuple:
        return ("trade", t, PublicTrade("y0", CM, D(price), D(size), side, t, recv_ts=t))

    rec = Recording([M0], seconds=10.0, speed=1.0, rtt_ms=[20.0])  # 10 ms each way
    rec.events += [
        ("book", 0.0, book("y0", CM, [("0.45", 10)], [("0.48", 100)], ts=0.0)),
        ("poll", 2.0),
        ("place", 5.0, [("L1", Quote(CM, "y0", BUY, D("0.46"), D(10))), ("L0", Quote(CM, "y0", BUY, D("0.46"), D(1)))]),
        pr(5.005, "0.46", "3"),  # before the bid reached the venue (5.01)
        pr(5.5, "0.46", "4"),
        pr(6.5, "0.45", "2", BUY),  # at the best bid: a seller, whatever the feed's side says
        ("poll", 6.505),  # the first fill; the second is seen at 6.509
        ("book", 7.0, book("y0", CM, [("0.45", 8)], [("0.48", 100)], ts=7.0)),
        ("cancel", 8.0, ["L1"]),
        pr(8.005, "0.46", "1"),  # before the cancel reached the venue (8.01)
        ("book", 9.0, book("y0", CM, [("0.45", 10)], [("0.48", 100)], ts=9.0)),
    ]  # no poll after the last fill: reported all the same
    ids: dict[str, str] = {}
    fills = replay(rec, Candidate("queue"), ids=ids)
    assert [f.size for _, f in fills] == [D(4), D(2), D(1)]
    assert [round(t, 3) for t, _ in fills] == [5.509, 6.509, 8.014]
    assert list(ids) == ["L1"] and ids["L1"] == fills[0][1].order_client_id  # the order below the minimum: refused
    assert [(t, f.size) for t, f in replay(rec, Candidate("queue"))] == [(t, f.size) for t, f in fills]


def test_the_replay_lets_paper_sell_what_the_live_run_held() -> None:
    from pmm_widgets.analytics.fidelity import Candidate, replay

    rec = Recording([M0], seconds=10.0, speed=1.0, rtt_ms=[20.0])
    rec.events += [
        ("book", 0.0, book("y0", CM, [("0.45", 10)], [("0.55", 100)], ts=0.0)),
        ("book", 0.0, book("n0", CM, [("0.45", 100)], [("0.55", 10)], ts=0.0)),
        ("place", 1.0, [("N1", Quote(CM, "n0", SELL, D("0.56"), D(5)))]),
        ("place", 1.5, [("B0", Quote(CM, "y0", BUY, D("0.40"), D(5)))]),
        ("place", 2.0, [("S1", Quote(CM, "y0", SELL, D("0.56"), D(6)))]),
        ("place", 2.5, [("S2", Quote(CM, "y0", SELL, D("0.57"), D(6)))]),  # S1's 6 reserved: 6 more
        ("trade", 3.0, PublicTrade("y0", CM, D("0.57"), D(20), BUY, 3.0, recv_ts=3.0)),
        ("poll", 4.0),
    ]
    ids: dict[str, str] = {}
    fills = replay(rec, Candidate("queue"), ids=ids)
    assert list(ids) == ["N1", "B0", "S1", "S2"]
    assert sorted((f.order_client_id, f.size) for _, f in fills) == [(ids["S1"], D(6)), (ids["S2"], D(6))]


def test_the_replay_draws_its_round_trips_with_seed_0_by_default() -> None:
    from strategy_helpers import fidelity_recording

    from pmm_widgets.analytics.fidelity import Candidate, replay

    rec = fidelity_recording()
    rec.rtt_ms = [10.0, 20.0, 40.0, 80.0, 160.0, 320.0]

    def seen(**kw: int) -> list[float]:
        return [round(t, 4) for t, _ in replay(rec, Candidate("queue"), **kw)]

    assert seen() == seen(seed=0) != seen(seed=1)
