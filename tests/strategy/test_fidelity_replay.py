"""Open-loop fidelity replay: a recorded live run fed to the paper exchange, compared, fitted."""

from __future__ import annotations

from decimal import Decimal

from strategy_helpers import book, fidelity_recording, make_market

from pmm_widgets.analytics.fidelity import (
    Candidate,
    Mids,
    Recording,
    compare,
    fit,
    replay,
    stats,
)
from pmm_widgets.domain import Fill, FillType, Mode, PublicTrade, Quote, Side

D = Decimal


def test_replay_reproduces_the_venue_with_a_queue_model():
    rec = fidelity_recording()
    fills = replay(rec, Candidate("queue"))
    # seen one response (10 ms) after the print that caused it, which itself came 1 ms (the feed) late
    assert [(round(t, 6), f.size) for t, f in fills] == [(3.009, D(5)), (4.009, D(10))]
    mids = Mids(rec)
    live, paper = stats(rec, rec.live_fills, mids), stats(rec, fills, mids)
    c = compare("queue", paper, live)
    assert c.fills_ratio == 1.0 and c.median_market_err == 0.0 and c.pnl_diff == 0.0
    assert abs(live.markout[30.0] - 0.025) < 1e-12  # bought at 0.45, the mid is 0.475 by +30 s
    assert abs(live.pnl - 15 * (0.475 - 0.45)) < 1e-9


def test_fit_ranks_the_matching_model_first_and_reports_an_env_fragment():
    rec = fidelity_recording()
    ranked = fit(rec, [Candidate("intensity", (("paper_fill_intensity", 0.5),)), Candidate("queue")])
    assert ranked[0].label == "queue" and ranked[0].loss < ranked[1].loss
    c = Candidate("prob_queue", (("paper_queue_func", "power"), ("paper_queue_power", 1.0)), latency_ms=20.0)
    assert c.env().splitlines() == ["PMM_PAPER_FILL_MODEL=prob_queue", "PMM_PAPER_QUEUE_FUNC=power",
                                    "PMM_PAPER_QUEUE_POWER=1.0", "PMM_PAPER_LATENCY_MS=20"]


def test_without_own_takes_our_orders_out_of_the_books_and_our_fills_out_of_the_tape():
    """What a paper engine would have seen: the live run's books minus our resting orders (also
    those on the complement token, mirrored) and its prints minus our fills."""
    from pmm_widgets.analytics.fidelity import hidden_fill_share, strip_book, without_own

    m = make_market(0)
    cm = m.condition_id
    b = book("y0", cm, [("0.45", 25), ("0.44", 10)], [("0.48", 100)], ts=5.0)
    # ours in the YES book: a YES bid of 15 at 0.45 and a NO bid of 10 at 0.52 (a YES ask at 0.48)
    own = ((Side.BUY, D("0.45"), D(15)), (Side.SELL, D("0.48"), D(10)))
    s = strip_book(b, own)
    assert [(lv.price, lv.size) for lv in s.bids] == [(D("0.45"), D(10)), (D("0.44"), D(10))]
    assert [(lv.price, lv.size) for lv in s.asks] == [(D("0.48"), D(90))]
    assert strip_book(b, ((Side.BUY, D("0.44"), D(10)),)).bids == (b.bids[0],)  # an emptied level is gone

    rec = Recording([m], seconds=60.0, speed=1.0)
    rec.events += [
        ("book", 5.0, b, own),
        # one taker sold 20 at 0.45: 15 of it was us (our fill), 5 the queue; printed on the NO tape
        ("trade", 6.0, PublicTrade("n0", cm, D("0.55"), D(20), Side.BUY, 6.0, recv_ts=6.0)),
        # a print that was only us
        ("trade", 7.0, PublicTrade("y0", cm, D("0.48"), D(10), Side.BUY, 7.0, recv_ts=7.0)),
        ("trade", 8.0, PublicTrade("y0", cm, D("0.47"), D(3), Side.BUY, 8.0, recv_ts=8.0)),
    ]
    rec.live_fills += [
        (6.0, Fill("a", "L1", cm, "y0", Side.BUY, D("0.45"), D(15), FillType.FILLED, Mode.LIVE, 6.0)),
        (7.0, Fill("b", "L2", cm, "n0", Side.BUY, D("0.52"), D(10), FillType.FILLED, Mode.LIVE, 7.0)),
    ]
    assert without_own(rec, prints="raw", clock="arrival").events[1:] == rec.events[1:]
    v = without_own(rec, prints="continue", clock="arrival")
    assert v.events[0][2] == s and len(v.events[0]) == 3
    trades = [ev[2] for ev in v.events if ev[0] == "trade"]
    assert [(t.token_id, t.price, t.size) for t in trades] == [("n0", D("0.55"), D(5)), ("y0", D("0.47"), D(3))]
    assert v.stripped == {"books": 1, "fills_matched": 2, "fills_moved_through": 0, "fills_unmatched": 0,
                          "hidden_share": 1.0, "fills_restamped_ms": 2}
    # fill a's taker printed nothing through 0.45 (YES) in that second; fill b's (a YES ask at 0.48)
    # neither: both are flow the public tape cannot show a paper model -> all hidden
    assert hidden_fill_share(rec) == 1.0
    # a's taker swept on to 0.44 (YES) in the same second: without us it would have sold our 15 there
    rec.events.insert(2, ("trade", 6.0, PublicTrade("y0", cm, D("0.44"), D(4), Side.SELL, 6.2, recv_ts=6.0)))
    assert hidden_fill_share(rec) == 10 / 25  # only b is hidden now
    v = without_own(rec, prints="continue", clock="arrival")
    assert [(t.price, t.size) for t in (ev[2] for ev in v.events if ev[0] == "trade")] == [
        (D("0.55"), D(5)), (D("0.44"), D(19)), (D("0.47"), D(3))]
    assert v.stripped["fills_moved_through"] == 1
    assert [t.size for t in (ev[2] for ev in without_own(rec, prints="drop", clock="arrival").events
                             if ev[0] == "trade")] == [D(5), D(4), D(3)]
    # "level" (default): without us the taker trades on with the queue behind us. The 0.45 level
    # held 25, 15 ours: 10 without us, so of the print of 20 only 10 could have traded there; the
    # other 10 go to the taker's print through our price (0.44). Fill b's print of 10 at 0.48
    # stays whole: the level held 90 besides our 10.
    lv = without_own(rec, clock="arrival")
    assert [(t.price, t.size) for t in (ev[2] for ev in lv.events if ev[0] == "trade")] == [
        (D("0.55"), D(10)), (D("0.44"), D(14)), (D("0.48"), D(10)), (D("0.47"), D(3))]
    assert lv.stripped["volume_kept_at_level"] == 0.6 and lv.stripped["hidden_share"] == 0.0
    assert v.live_fills == rec.live_fills and rec.events[1][2].size == D(20)  # the original is untouched


def test_the_fitter_scores_markouts_sizes_and_pnl_not_only_fill_counts():
    """Two paper runs with live's fill count: the one whose fills are the wrong size, at the wrong
    time (adverse markouts) and with the wrong PnL ranks below the one that matches."""
    from pmm_widgets.analytics.fidelity import Stats

    def st(fills: int, size: float, mk: float, pnl: float) -> Stats:
        return Stats(fills, fills / 10, {"m": fills}, (size, size, size), {5.0: mk, 30.0: mk}, pnl, {"m": pnl},
                     {5.0: 0.001, 30.0: 0.001}, size)

    live = st(40, 10.0, 0.01, 4.0)
    good = compare("good", st(40, 10.0, 0.0098, 3.9), live)
    bad = compare("bad", st(40, 25.0, -0.02, -8.0), live)
    assert good.fills_ratio == bad.fills_ratio == 1.0
    assert bad.parts["size"] > 0.9 and bad.parts["markout"] > 5 and bad.parts["pnl"] > 1
    assert good.loss < 0.2 < 1.0 < bad.loss
    spec = good.within_spec()
    assert spec["markout_5s_20pct"] and spec["pnl_20pct"] and spec["fills_total"]
    assert not bad.within_spec()["markout_5s"] and not bad.within_spec()["pnl_20pct"]


def one_bid(*later: tuple) -> Recording:
    """A market with a YES bid of 10 at 0.45 sent at t=1 (speed 1, venue time = local time), the
    events after it given."""
    m = make_market(0)
    cm = m.condition_id
    rec = Recording([m], seconds=10.0, speed=1.0, rtt_ms=[20.0])
    rec.events += [
        ("book", 0.0, book("y0", cm, [("0.44", 10)], [("0.48", 100)], ts=0.0, venue_ts_ms=0)),
        ("place", 1.0, [("L1", Quote(cm, "y0", Side.BUY, D("0.45"), D(10)))]),
        *later,
    ]
    return rec


def test_the_replay_runs_on_the_venue_clock_not_on_a_lagging_feed():
    """A print that happened at the venue before our order was there, but reached the live run's
    engine late (a loaded host's feed lagged), must not fill the paper order: on the venue clock
    it comes before the order; by arrival it would come after."""
    from pmm_widgets.analytics.fidelity import on_venue_clock, without_own

    cm = make_market(0).condition_id
    rec = one_bid(
        ("book", 2.0, book("y0", cm, [("0.45", 10), ("0.44", 10)], [("0.48", 100)], ts=2.0, venue_ts_ms=2000),
         ((Side.BUY, D("0.45"), D(10)),)),
        # a seller at 0.44 that the venue matched at 0.5 s (before our bid), seen at 3.0 s
        ("trade", 3.0, PublicTrade("y0", cm, D("0.44"), D(5), Side.SELL, 0.5, recv_ts=3.0)),
        ("poll", 4.0),
    )
    by_arrival = without_own(rec, clock="arrival")
    assert [f.size for _, f in replay(by_arrival, Candidate("queue"))] == [D(5)]  # a trade-through, wrongly
    v = on_venue_clock(by_arrival)
    tr = next(ev for ev in v.events if ev[0] == "trade")
    assert abs(tr[1] - 0.501) < 1e-9 and tr[2].recv_ts == tr[1]  # 2.0 − (2.0 − 0.5) / speed + the 1 ms feed
    assert [ev[0] for ev in v.events] == ["book", "trade", "place", "book", "poll"]
    assert v.stripped["feed_lag_max_s"] == 2.499
    assert replay(without_own(rec), Candidate("queue")) == []


def test_live_fills_in_whole_seconds_get_their_print_ms():
    """The user channel stamps a match in whole seconds; a paper fill carries its print's ms. The
    markout of both must start at the match: a live fill is re-stamped with its print's time."""
    from pmm_widgets.analytics.fidelity import without_own

    m = make_market(0)
    cm = m.condition_id
    rec = Recording([m], seconds=60.0, speed=1.0)
    rec.events += [("trade", 6.7, PublicTrade("y0", cm, D("0.45"), D(20), Side.SELL, 6.6, recv_ts=6.7))]
    rec.live_fills += [
        (6.7, Fill("a", "L1", cm, "y0", Side.BUY, D("0.45"), D(5), FillType.FILLED, Mode.LIVE, 6.0)),
        (6.7, Fill("b", "L2", cm, "y0", Side.BUY, D("0.45"), D(5), FillType.FILLED, Mode.LIVE, 6.25)),  # has ms
    ]
    v = without_own(rec, clock="arrival")
    assert [f.ts for _, f in v.live_fills] == [6.6, 6.25] and v.stripped["fills_restamped_ms"] == 1


def test_orders_rest_when_the_venue_says_they_did():
    """The user channel's PLACEMENT/CANCELLATION timestamps (`Recording.spans`) time our orders at
    the venue: a print before the venue placed the order does not fill it, one after its
    cancellation neither; the books are stripped of what rested at their own venue time."""
    from pmm_widgets.analytics.fidelity import RecordedVenueClock, own_on_venue_clock, without_own

    cm = make_market(0).condition_id
    rec = one_bid(
        ("trade", 2.0, PublicTrade("y0", cm, D("0.44"), D(5), Side.SELL, 2.0, recv_ts=2.0)),  # before the venue had it
        ("book", 4.0, book("y0", cm, [("0.45", 10), ("0.44", 5)], [("0.48", 100)], ts=4.0, venue_ts_ms=4000)),
        ("cancel", 5.0, ["L1"]),
        ("trade", 6.0, PublicTrade("y0", cm, D("0.43"), D(5), Side.SELL, 6.0, recv_ts=6.0)),  # after it was gone
        ("book", 7.0, book("y0", cm, [("0.43", 5)], [("0.48", 100)], ts=7.0, venue_ts_ms=7000)),
        ("poll", 8.0),
    )
    assert [f.size for _, f in replay(without_own(rec, clock="arrival"), Candidate("queue"))] == [D(5)]
    rec.spans = {"L1": (3.0, 5.8)}
    own = own_on_venue_clock(rec, RecordedVenueClock(rec))
    assert own == {3: ((Side.BUY, D("0.45"), D(10)),)}  # in the book at venue 4.0, not in the one at 7.0
    v = without_own(rec)
    assert v.actions_at_venue and [ev[1] for ev in v.events if ev[0] in ("place", "cancel")] == [3.0, 5.8]
    assert [(lv.price, lv.size) for lv in v.events[3][2].bids] == [(D("0.44"), D(5))]  # ours stripped
    assert replay(v, Candidate("queue")) == []
    rec.spans = {"L1": (1.5, 6.5)}  # resting at both prints: both fill it
    assert [f.size for _, f in replay(without_own(rec), Candidate("queue"))] == [D(5), D(5)]


def test_a_recording_pickled_before_a_field_existed_still_loads():
    import pickle

    from pmm_widgets.analytics.fidelity import without_own

    rec = fidelity_recording()
    state = dict(rec.__dict__)
    del state["spans"], state["actions_at_venue"]  # as saved by an older recorder
    old = Recording.__new__(Recording)
    old.__setstate__(state)
    back = pickle.loads(pickle.dumps(old))
    assert back.spans == {} and back.actions_at_venue is False
    fills = [(t, f.size) for t, f in replay(without_own(back), Candidate("queue"))]
    assert fills and fills == [(t, f.size) for t, f in replay(without_own(rec), Candidate("queue"))]
