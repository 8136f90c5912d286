"""Open-loop fidelity replay: a recorded live run fed to the paper exchange, compared, fitted."""

from __future__ import annotations

from decimal import Decimal

from strategy_helpers import book, make_market

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


def recording() -> Recording:
    """Two bids rest behind 10 shares; sells of 15 then 20 at the bid fill 5 then 10 of one of
    them live; the mid then rises a cent."""
    m = make_market(0)
    cm = m.condition_id
    rec = Recording([m], seconds=60.0, speed=1.0, rtt_ms=[20.0])
    q = Quote(cm, "y0", Side.BUY, D("0.45"), D(15))
    rec.events += [
        ("book", 0.0, book("y0", cm, [("0.45", 10)], [("0.48", 100)], ts=0.0)),
        ("place", 1.0, [("L1", q)]),
        ("poll", 2.0),
        ("trade", 3.0, PublicTrade("y0", cm, D("0.45"), D(15), Side.SELL, 3.0, recv_ts=3.0)),
        ("book", 3.0, book("y0", cm, [("0.45", 10)], [("0.48", 100)], ts=3.0)),
        ("trade", 4.0, PublicTrade("n0", cm, D("0.55"), D(20), Side.BUY, 4.0, recv_ts=4.0)),  # the NO tape
        ("poll", 4.5),
        ("book", 40.0, book("y0", cm, [("0.46", 10)], [("0.49", 100)], ts=40.0)),
        ("poll", 41.0),
    ]
    for t, size, kind in ((3.0, "5", FillType.PARTIAL), (4.0, "10", FillType.FILLED)):
        rec.live_fills.append((t, Fill(f"t{t}", "L1", cm, "y0", Side.BUY, D("0.45"), D(size), kind, Mode.LIVE, t)))
    return rec


def test_replay_reproduces_the_venue_with_a_queue_model():
    rec = recording()
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
    rec = recording()
    ranked = fit(rec, [Candidate("intensity", (("paper_fill_intensity", 0.5),)), Candidate("queue")])
    assert ranked[0].label == "queue" and ranked[0].loss < ranked[1].loss
    c = Candidate("prob_queue", (("paper_queue_func", "power"), ("paper_queue_power", 1.0)), latency_ms=20.0)
    assert c.env().splitlines() == ["PMM_PAPER_FILL_MODEL=prob_queue", "PMM_PAPER_QUEUE_FUNC=power",
                                    "PMM_PAPER_QUEUE_POWER=1.0", "PMM_PAPER_LATENCY_MS=20"]
