"""The paper-vs-venue fidelity measurement (analytics/fidelity.py) pinned where mutation testing
found it untested: the statistics of a run's fills (counts, fills/min over the venue minutes,
size-weighted markouts on the venue clock, their standard errors, PnL marked at the last mid),
the comparison and the fitter's loss term by term, the spec's two-way targets at their bounds,
the candidates and their settings, and the share of fill volume the public tape cannot show."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from strategy_helpers import book, fidelity_recording, make_market

from pmm_widgets.analytics import fidelity
from pmm_widgets.analytics.fidelity import (
    LATENT_GRID,
    LOSS_WEIGHTS,
    Candidate,
    Mids,
    Recording,
    Stats,
    compare,
    default_grid,
    fit,
    hidden_fill_share,
    latency_for,
    stats,
    with_latent,
)
from pmm_widgets.domain import Fill, FillType, Mode, PublicTrade, Quote, Side
from pmm_widgets.execution.latency_model import ConstantLatency, SampledLatency

D = Decimal
M0, M1 = make_market(0), make_market(1)


def _bk(token: str, market: str, bid: str, ask: str, local: float, venue: float | None = None):
    return ("book", local, book(token, market, [(bid, 10)], [(ask, 10)] if ask else [], ts=local,
                                venue_ts_ms=int(round((local if venue is None else venue) * 1000))))


def _fill(tid: str, m, token: str, side: Side, price: str, size: str, ts: float, fee: str = "0",
          status: str = "MATCHED", raw: dict | None = None) -> Fill:
    return Fill(tid, "L" + tid, m.condition_id, token, side, D(price), D(size), FillType.FILLED, Mode.LIVE, ts,
                status=status, raw=raw or {}, fee=D(fee))


def _run() -> Recording:
    """YES mids of market 0: 0.50 at venue 1 s, 0.52 at 10 s, 0.55 at 40 s; of market 1: 0.31 at 5 s."""
    rec = Recording([M0, M1], seconds=600.0, speed=1.0)
    rec.events += [_bk("y0", M0.condition_id, "0.49", "0.51", 1.0), _bk("y1", M1.condition_id, "0.30", "0.32", 5.0),
                   _bk("y0", M0.condition_id, "0.51", "0.53", 10.0), _bk("y0", M0.condition_id, "0.54", "0.56", 40.0)]
    return rec


FILLS = [(2.0, _fill("1", M0, "y0", Side.BUY, "0.49", "10", 2.0, fee="0.01")),
         (12.0, _fill("2", M0, "y0", Side.SELL, "0.53", "30", 12.0)),
         (6.0, _fill("3", M1, "y1", Side.BUY, "0.30", "20", 6.0)),
         (7.0, _fill("4", M0, "y0", Side.BUY, "0.10", "1000", 7.0, status="FAILED"))]  # never happened


def test_a_runs_statistics() -> None:
    rec = _run()
    s = stats(rec, FILLS, Mids(rec))
    assert s.fills == 3 and s.per_market == {M0.condition_id: 2, M1.condition_id: 1}
    assert s.fills_per_min == pytest.approx(3 / (39 / 60))  # the books' venue span: 1 s to 40 s
    assert s.size_q == (10.0, 20.0, 30.0) and s.size_mean == 20.0
    # +5 s: bought 10 at 0.49 (mid 0.52 at 10 s: +0.03), sold 30 at 0.53 (0.55: −0.02), bought 20
    # at 0.30 (no later mid: the last, 0.31: +0.01); size-weighted
    assert s.markout[5.0] == pytest.approx((0.3 - 0.6 + 0.2) / 60, abs=1e-15)
    assert s.markout[30.0] == pytest.approx((0.6 - 0.6 + 0.2) / 60, abs=1e-15)
    assert s.markout_se[5.0] == pytest.approx(fidelity._weighted_se([(0.03, 10), (-0.02, 30), (0.01, 20)], -0.1 / 60))
    assert s.markout_se[5.0] == pytest.approx(0.0155620, rel=1e-5)
    # cash (fees paid) plus the shares held at the last mid
    assert s.pnl_by_market[M0.condition_id] == pytest.approx(-4.9 - 0.01 + 15.9 - 20 * 0.55, abs=1e-12)
    assert s.pnl_by_market[M1.condition_id] == pytest.approx(-6.0 + 20 * 0.31, abs=1e-12)
    assert s.pnl == pytest.approx(0.19, abs=1e-12)


def test_no_fills_no_figures() -> None:
    rec = _run()
    s = stats(rec, [], Mids(rec))
    assert (s.fills, s.fills_per_min, s.size_q, s.size_mean, s.pnl) == (0, 0.0, (0.0, 0.0, 0.0), 0.0, 0)
    assert s.markout == {5.0: 0.0, 30.0: 0.0} and s.markout_se == {5.0: math.inf, 30.0: math.inf}


def test_the_weighted_standard_error_and_the_quantile() -> None:
    se = fidelity._weighted_se
    assert se([(1.0, 1.0), (3.0, 1.0)], 2.0) == 1.0
    assert se([(1.0, 2.0), (3.0, 2.0)], 2.0) == 1.0  # the weights' scale does not matter
    assert se([(0.0, 1.0), (0.0, 1.0), (2.0, 1.0), (2.0, 1.0)], 1.0) == pytest.approx(math.sqrt(1 / 3))
    # weights 1 and 3: Kish's n_eff is 16/10, below 2: divided by 1, not by 0.6
    assert se([(1.0, 1.0), (3.0, 3.0)], 2.5) == pytest.approx(math.sqrt(0.75))
    assert se([(1.0, 1.0)], 1.0) == math.inf and se([(1.0, 0.0), (3.0, 0.0)], 2.0) == math.inf
    q = fidelity._quantile
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (q(xs, 0.1), q(xs, 0.5), q(xs, 0.9), q(xs, 1.0), q([7.0], 0.9)) == (1.0, 3.0, 5.0, 5.0, 7.0)


def test_mids_on_the_venue_clock() -> None:
    cm = M0.condition_id
    rec = Recording([M0], seconds=60.0, speed=1.0)
    rec.events += [_bk("y0", cm, "0.49", "0.51", 1.0, venue=101.0), _bk("y0", cm, "0.51", "0.53", 5.0, venue=103.0),
                   _bk("y0", cm, "0.40", "", 7.0, venue=104.0),  # one-sided: no mid, still a clock reading
                   _bk("y0", cm, "0.30", "0.32", 8.0, venue=102.0),  # the venue went back: neither
                   _bk("y0", cm, "0.53", "0.55", 10.0, venue=110.0)]
    mids = Mids(rec)
    assert mids.at("y0", 103.0) == D("0.52")  # at or after
    assert mids.at("y0", 103.5) == D("0.54") and mids.at("y0", 0.0) == D("0.50") and mids.at("y0", 999.0) == D("0.54")
    assert mids.last("y0") == D("0.54") and mids.at("n0", 1.0) is None and mids.last("n0") is None
    assert [mids.venue_time(t) for t in (0.5, 1.0, 4.9, 5.0, 7.5, 9.0, 50.0)] == [101.0, 101.0, 101.0, 103.0, 104.0,
                                                                                  104.0, 110.0]
    f = _fill("1", M0, "y0", Side.BUY, "0.5", "1", 3.0)
    assert mids.fill_time(5.0, f) == 3.0  # a venue fill: its own time
    assert mids.fill_time(5.0, _fill("2", M0, "y0", Side.BUY, "0.5", "1", 3.0, raw={"model": "intensity"})) == 103.0
    assert mids.fill_time(7.0, _fill("3", M0, "y0", Side.BUY, "0.5", "1", 3.0, raw={"cause": "latent"})) == 104.0
    assert mids.fill_time(7.0, _fill("4", M0, "y0", Side.BUY, "0.5", "1", 3.0, raw={"model": "queue"})) == 3.0
    assert Mids(Recording([M0], 1.0, 1.0)).venue_time(42.0) == 42.0
    # a book without a venue stamp is on the local clock
    rec2 = Recording([M0], seconds=60.0, speed=1.0, events=[_bk("y0", cm, "0.49", "0.51", 1.0, venue=0.0)])
    assert Mids(rec2).venue_time(2.0) == 1.0 and Mids(rec2).at("y0", 1.0) == D("0.50")


def test_the_venue_minutes_a_run_covered() -> None:
    rec = Recording([M0], seconds=120.0, speed=10.0)
    assert rec.sim_minutes == 20.0  # no venue stamps: wall seconds × speed
    rec = Recording([M0], seconds=120.0, speed=10.0, events=[_bk("y0", M0.condition_id, "0.4", "0.6", 1.0, venue=0.0),
                                                              _bk("y0", M0.condition_id, "0.4", "0.6", 2.0, venue=5.0)])
    assert rec.sim_minutes == 20.0  # one stamped book: no span either
    rec.events.append(_bk("y0", M0.condition_id, "0.4", "0.6", 3.0, venue=95.0))
    rec._sim_minutes = None
    assert rec.sim_minutes == 1.5
    rec.events.append(_bk("y0", M0.condition_id, "0.4", "0.6", 4.0, venue=605.0))
    assert rec.sim_minutes == 1.5  # measured once


def _st(fills: int, per: dict[str, int], mk: dict[float, float], se: dict[float, float], pnl_by: dict[str, float],
        size: float) -> Stats:
    return Stats(fills, float(fills), per, (size, size, size), mk, sum(pnl_by.values()), pnl_by, se, size)


def test_the_comparison_term_by_term() -> None:
    live = _st(10, {"a": 6, "b": 4}, {5.0: 0.5, 30.0: -0.25}, {5.0: 0.0625, 30.0: 0.5}, {"a": 1.5, "b": 0.5}, 10.0)
    paper = _st(12, {"a": 9, "b": 3}, {5.0: 0.625, 30.0: -0.5}, {}, {"a": 1.25, "b": -0.25, "c": 0.0}, 5.0)
    c = compare("x", paper, live)
    assert c.label == "x" and c.paper is paper and c.live is live
    assert c.fills_ratio == 1.2 and c.median_market_err == 0.375  # |9/6 − 1| = 0.5, |3/4 − 1| = 0.25
    assert c.pnl_diff == -1.0
    assert c.pnl_se == pytest.approx(math.sqrt(7 / 6))  # live's per-market PnL 1.5, 0.5, 0 (c): spread × √3
    assert c.markout_diff == {5.0: 0.125, 30.0: -0.25} and c.markout_err == {5.0: 0.25, 30.0: -1.0}
    assert c.size_err == pytest.approx(math.log(2))
    # markouts in units of max(20 % of live, live's SE): 0.125 / 0.1 and 0.25 / 0.5
    assert c.parts == pytest.approx({"fills": math.log(1.2), "median_market": 0.375, "size": math.log(2),
                                     "markout": (1.25 + 0.5) / 2, "pnl": 1.0 / math.sqrt(7 / 6)})
    assert c.loss == pytest.approx(sum(LOSS_WEIGHTS[k] * v for k, v in c.parts.items()))
    assert LOSS_WEIGHTS == {"fills": 1.0, "median_market": 0.5, "size": 0.5, "markout": 0.25, "pnl": 0.25}
    assert c.within_spec() == {"fills_total": False, "fills_median_market": False, "pnl_20pct": False,
                               "pnl_1se": True, "pnl": True, "markout_5s_20pct": False, "markout_5s_1se": False,
                               "markout_5s": False, "markout_30s_20pct": False, "markout_30s_1se": True,
                               "markout_30s": True}


def test_the_spec_at_its_bounds() -> None:
    live = _st(8, {"a": 4, "b": 4}, {5.0: 5.0, 30.0: 0.5}, {5.0: 0.0, 30.0: 0.25}, {"a": 5.0}, 4.0)
    paper = _st(8, {"a": 3, "b": 4}, {5.0: 6.0, 30.0: 0.75}, {}, {"a": 6.0}, 4.0)
    c = compare("edge", paper, live)
    assert c.median_market_err == 0.125 and c.pnl_se == 5.0  # one market: |live PnL|
    spec = c.within_spec()
    assert spec["fills_total"] and spec["pnl_20pct"] and spec["pnl_1se"]  # 1.0 ≤ 20 % of 5.0, ≤ 5.0
    assert spec["markout_5s_20pct"] and not spec["markout_5s_1se"]  # 1/5 is 20 %; the SE is 0
    assert spec["markout_30s_1se"] and not spec["markout_30s_20pct"]  # 0.25 ≤ SE 0.25; 50 %
    assert c.parts["size"] == 0.0 and c.parts["fills"] == 0.0
    wide = compare("wide", _st(8, {"a": 2, "b": 4}, {5.0: 5.0, 30.0: 0.5}, {}, {"a": 5.0}, 4.0), live)
    assert wide.median_market_err == 0.25 and wide.within_spec()["fills_median_market"]
    live0 = _st(8, {"a": 4}, {5.0: 0.0, 30.0: 0.0}, {5.0: 0.5, 30.0: math.inf}, {"a": 0.0}, 4.0)
    z = compare("zero", _st(8, {"a": 4}, {5.0: 0.5, 30.0: 0.0}, {}, {"a": 0.0}, 4.0), live0)
    assert z.markout_err == {5.0: math.inf, 30.0: math.inf}
    assert z.within_spec()["markout_5s_1se"] and not z.within_spec()["markout_5s_20pct"]
    assert z.within_spec()["markout_30s_1se"] and z.pnl_se == 0.0 and z.within_spec()["pnl_1se"]
    # markout 5 s: 0.5 in units of live's SE 0.5 = 1; 30 s: nothing off where nothing is allowed
    assert z.parts["markout"] == 0.5 and z.parts["pnl"] == 0.0


def test_the_loss_when_a_side_has_nothing() -> None:
    live = _st(10, {"a": 10}, {5.0: 0.01, 30.0: 0.01}, {5.0: 0.001, 30.0: 0.001}, {"a": 1.0}, 10.0)
    none = compare("none", _st(0, {}, {5.0: 0.0, 30.0: 0.0}, {}, {}, 0.0), live)
    assert none.fills_ratio == 0.0 and none.median_market_err == 1.0
    assert none.parts["fills"] == 10.0 and none.size_err == 10.0 and none.parts["size"] == 10.0
    empty = _st(0, {}, {5.0: 0.0, 30.0: 0.0}, {5.0: math.inf, 30.0: math.inf}, {}, 0.0)
    c = compare("vs nothing", _st(3, {"a": 3}, {5.0: 0.0, 30.0: 0.0}, {}, {"a": 0.0}, 2.0), empty)
    assert c.fills_ratio == math.inf and c.parts["fills"] == 10.0 and c.median_market_err == math.inf
    assert c.parts["median_market"] == 10.0 and c.size_err == 10.0
    both = compare("both", _st(0, {}, {5.0: 0.0, 30.0: 0.0}, {}, {}, 0.0), empty)
    assert both.size_err == 0.0 and both.parts["markout"] == 0.0 and both.parts["pnl"] == 0.0
    far = compare("far", _st(10, {"a": 10}, {5.0: 9.0, 30.0: 0.01}, {}, {"a": 1.0}, 10.0), live)
    assert far.parts["markout"] == (10.0 + 0.0) / 2  # capped at 10 units


def test_tolerance_units() -> None:
    tu = fidelity._tol_units
    assert tu(0.3, 1.0, 0.5) == pytest.approx(0.6)  # the SE is the wider tolerance
    assert tu(0.3, 1.0, 0.1) == pytest.approx(1.5)  # 20 % of live
    assert tu(0.3, 1.0, math.inf) == pytest.approx(1.5)
    assert tu(-0.3, -1.0, 0.1) == pytest.approx(1.5)
    assert tu(5.0, 1.0, 0.0) == 10.0 and tu(0.0, 0.0, 0.0) == 0.0 and tu(1e-9, 0.0, 0.0) == 10.0


def test_candidates_and_their_settings() -> None:
    c = Candidate("prob_queue", (("paper_queue_func", "power"), ("paper_queue_power", 2.0), ("paper_min_x", 3)))
    assert c.label == "prob_queue(queue_func=power,queue_power=2,min_x=3)"
    assert Candidate("queue").label == "queue"
    assert Candidate("queue").settings() == [("paper_fill_model", "queue")]
    lat = Candidate("intensity", (("paper_fill_intensity", 0.5),), latency_ms=12.5)
    assert lat.settings() == [("paper_fill_model", "intensity"), ("paper_fill_intensity", "0.5"),
                              ("paper_latency_ms", "12.5")]
    assert lat.set_args() == ["paper_fill_model=intensity", "paper_fill_intensity=0.5", "paper_latency_ms=12.5"]
    assert lat.env() == "PMM_PAPER_FILL_MODEL=intensity\nPMM_PAPER_FILL_INTENSITY=0.5\nPMM_PAPER_LATENCY_MS=12.5"
    p = lat.params()
    assert p.paper_fill_model == "intensity" and p.paper_fill_intensity == 0.5
    assert [g.label for g in default_grid()] == [
        "queue", "prob_queue(queue_func=power,queue_power=1)", "prob_queue(queue_func=power,queue_power=2)",
        "prob_queue(queue_func=power,queue_power=3)", "prob_queue(queue_func=log)",
        *[f"intensity(fill_intensity={i:g},spread_k={k:g})" for i in (0.5, 2.0, 8.0) for k in (30.0, 100.0, 300.0)]]
    w = with_latent(with_latent(lat, 1.0), 4.0)
    assert w.knobs == (("paper_fill_intensity", 0.5), ("paper_latent_intensity", 4.0)) and w.latency_ms == 12.5
    assert w.model == "intensity"


def test_the_latency_a_replay_uses() -> None:
    rec = Recording([M0], seconds=1.0, speed=1.0, rtt_ms=[30.0, 30.0])
    const = latency_for(rec, Candidate("queue", latency_ms=40.0))
    assert isinstance(const, ConstantLatency) and const.entry() == 0.02 and const.feed() == 0.001
    assert latency_for(rec, Candidate("queue", latency_ms=0.0)).feed() == 0.0  # no latency at all: no feed delay
    sampled = latency_for(rec, Candidate("queue"))
    assert isinstance(sampled, SampledLatency) and sampled.entry() == 0.015 and sampled.feed() == 0.001
    bare = latency_for(Recording([M0], seconds=1.0, speed=1.0), Candidate("queue"))
    assert isinstance(bare, ConstantLatency) and bare.entry() == 0.0 and bare.feed() == 0.0
    rec.actions_at_venue = True
    at = latency_for(rec, Candidate("queue", latency_ms=40.0))
    assert (at.entry(), at.cancel(), at.response(), at.feed()) == (0.0, 0.0, 0.02, 0.001)
    slow_feed = latency_for(rec, Candidate("queue", latency_ms=0.0))
    assert slow_feed.response() == 0.0
    assert fidelity._AtVenue(ConstantLatency(2.0, feed_ms=5.0)).response() == 0.005  # the feed's delay, the larger


def test_the_default_fit_tries_the_latent_flow_on_the_best_queue_candidate() -> None:
    out = fit(fidelity_recording())
    assert len(out) == len(default_grid()) + len(LATENT_GRID)
    assert [c.loss for c in out] == sorted(c.loss for c in out)
    grid = {g.label for g in default_grid()}
    latent = [c.candidate for c in out if c.label not in grid]
    best_queue = min((c for c in out if c.label in grid and c.candidate is not None
                      and c.candidate.model != "intensity"), key=lambda c: c.loss)
    assert best_queue.candidate is not None and best_queue.label == "queue"  # it reproduces live exactly
    assert sorted(dict(c.knobs)["paper_latent_intensity"] for c in latent if c is not None) == list(LATENT_GRID)
    assert {c.model for c in latent if c is not None} == {best_queue.candidate.model}
    assert all(c.candidate is not None for c in out)
    given = fit(fidelity_recording(), [Candidate("queue")])
    assert [c.label for c in given] == ["queue"] and given[0].loss == 0.0


def test_the_share_the_tape_cannot_show() -> None:
    cm = M0.condition_id
    rec = Recording([M0], seconds=60.0, speed=1.0)
    rec.events += [
        ("trade", 3.5, PublicTrade("y0", cm, D("0.61"), D(4), Side.BUY, 3.5)),  # through our YES ask at 0.60
        ("trade", 5.5, PublicTrade("y0", cm, D("0.60"), D(4), Side.BUY, 5.5)),  # at it, not through
        ("trade", 6.5, PublicTrade("n0", cm, D("0.38"), D(4), Side.SELL, 6.5)),  # YES 0.62: through, next second
        ("trade", 7.1, PublicTrade("y9", cm, D("0.99"), D(4), Side.BUY, 7.1)),  # another market's token
    ]
    rec.live_fills += [
        (3.6, _fill("1", M0, "y0", Side.SELL, "0.60", "10", 3.2)),  # sold YES at 0.60: an ask
        (5.6, _fill("2", M0, "n0", Side.BUY, "0.40", "5", 5.2)),  # bought NO at 0.40: a YES ask at 0.60
        (5.6, _fill("3", M0, "n0", Side.BUY, "0.40", "50", 5.3, status="FAILED")),
        (7.6, _fill("4", M0, "y9", Side.BUY, "0.40", "50", 7.3)),  # no market of the recording
    ]
    assert hidden_fill_share(rec) == pytest.approx(5 / 15)
    rec.live_fills.append((3.7, _fill("5", M0, "n0", Side.SELL, "0.35", "15", 3.4)))  # a YES bid at 0.65: 0.61 is through
    assert hidden_fill_share(rec) == pytest.approx(5 / 30)
    assert hidden_fill_share(Recording([M0], 1.0, 1.0)) == 0.0


def test_a_fill_without_a_mid_has_no_markout_rather_than_a_zero_one() -> None:
    """A token whose book never had a mid (one side empty all run): its fills' markouts are
    unknown; the size-weighted mean is over the fills that have one (it used to divide by their
    size too, pulling the mean toward 0 — and the SE was taken around that diluted mean)."""
    cm = M0.condition_id
    rec = Recording([M0], seconds=60.0, speed=1.0)
    rec.events += [_bk("y0", cm, "0.49", "0.51", 1.0), _bk("y0", cm, "0.51", "0.53", 10.0),
                   _bk("n0", cm, "0.40", "", 1.0)]  # the NO book: bids only, no mid
    fills = [(2.0, _fill("1", M0, "y0", Side.BUY, "0.49", "10", 2.0)),
             (3.0, _fill("2", M0, "y0", Side.BUY, "0.51", "10", 3.0)),
             (4.0, _fill("3", M0, "n0", Side.BUY, "0.40", "80", 4.0))]
    s = stats(rec, fills, Mids(rec))
    assert s.fills == 3 and s.size_mean == pytest.approx(100 / 3)
    assert s.markout[5.0] == pytest.approx((0.03 + 0.01) / 2, abs=1e-15)  # not (0.3 + 0.1) / 100
    assert s.markout_se[5.0] == pytest.approx(0.01)


def test_size_quantiles_rates_and_small_weights() -> None:
    cm = M0.condition_id
    rec = Recording([M0], seconds=0.0, speed=1.0, events=[_bk("y0", cm, "0.49", "0.51", 1.0)])
    fills = [(2.0, _fill(str(k), M0, "y0", Side.BUY, "0.50", str(k), 2.0)) for k in range(1, 21)]
    s = stats(rec, fills, Mids(rec))
    assert s.size_q == (3.0, 11.0, 19.0)  # sizes 1..20: the 3rd, 11th and 19th
    assert s.fills == 20 and s.fills_per_min == 0.0  # no venue minutes measured: no rate
    # fractional shares: a total weight below 1 is still a weight
    assert fidelity._weighted_se([(1.0, 0.25), (3.0, 0.25)], 2.0) == 1.0


def test_the_comparison_of_markets_with_few_fills() -> None:
    live = _st(5, {"a": 1, "b": 4, "z": 0}, {5.0: 0.5, 30.0: 0.5}, {}, {"a": 1.0, "b": 3.0}, 1.0)
    paper = _st(6, {"a": 2, "b": 4}, {5.0: 1.0, 30.0: 0.5}, {}, {"a": 1.0, "b": 3.0}, 1.0)
    c = compare("few", paper, live)
    assert c.median_market_err == 0.5  # a: |2/1 − 1| = 1, b: 0; z had no live fill: not a market to match
    assert c.pnl_se == pytest.approx(math.sqrt(2))  # two markets: their spread (1) × √2, not |live PnL| (4)
    # live without a markout SE: within one SE only if equal
    assert not c.within_spec()["markout_5s_1se"] and c.within_spec()["markout_30s_1se"]


def test_the_size_term_with_fractional_and_far_off_sizes() -> None:
    def sized(size: float) -> Stats:
        return _st(4, {"a": 4}, {5.0: 0.0, 30.0: 0.0}, {}, {"a": 0.0}, size)

    assert compare("half", sized(0.5), sized(1.0)).size_err == pytest.approx(math.log(2))
    assert compare("double", sized(1.0), sized(0.5)).size_err == pytest.approx(math.log(2))
    far = compare("far", sized(1e6), sized(0.01))
    assert far.size_err == pytest.approx(math.log(1e8)) and far.parts["size"] == 10.0  # capped


def test_any_venue_stamp_counts_toward_the_minutes() -> None:
    cm = M0.condition_id
    rec = Recording([M0], seconds=600.0, speed=1.0, events=[_bk("y0", cm, "0.4", "0.6", 1.0, venue=0.001),
                                                          _bk("y0", cm, "0.4", "0.6", 2.0, venue=60.001)])
    assert rec.sim_minutes == 1.0  # 1 ms after the epoch is a stamp; 0 is none


def test_the_sampled_latency_defaults_to_seed_0() -> None:
    rec = Recording([M0], seconds=1.0, speed=1.0, rtt_ms=[10.0, 20.0, 30.0, 40.0, 50.0])
    draws = [[lat.entry() for _ in range(20)] for lat in (latency_for(rec, Candidate("queue")),
                                                          latency_for(rec, Candidate("queue"), 0),
                                                          latency_for(rec, Candidate("queue"), 1))]
    assert draws[0] == draws[1] != draws[2]


def test_the_latent_stage_builds_on_the_best_queue_candidate_even_when_intensity_leads() -> None:
    """No public print at all, yet live was filled: no queue-family model fills anything, an
    intensity model does and ranks first; the latent flow is still tried on a queue model."""
    cm = M0.condition_id
    rec = Recording([M0], seconds=60.0, speed=1.0, rtt_ms=[20.0])
    rec.events += [("book", 0.0, book("y0", cm, [("0.45", 10)], [("0.48", 100)], ts=0.0)),
                   ("place", 1.0, [("L1", Quote(cm, "y0", Side.BUY, D("0.46"), D(30)))])]
    for k in range(2, 60):
        rec.events += [("book", float(k), book("y0", cm, [("0.46", 30), ("0.45", 10)], [("0.48", 100)], ts=float(k))),
                       ("poll", k + 0.5)]
    for t in (10.0, 20.0, 30.0):
        rec.live_fills.append((t, Fill(f"t{t}", "L1", cm, "y0", Side.BUY, D("0.46"), D(5), FillType.PARTIAL,
                                       Mode.LIVE, t)))
    out = fit(rec)
    grid = {g.label for g in default_grid()}
    lead = next(c for c in out if c.label in grid)
    assert lead.candidate is not None and lead.candidate.model == "intensity" and lead.paper.fills > 0
    assert {c.candidate.model for c in out if c.label not in grid and c.candidate is not None} == {"queue"}


def test_the_recorded_venue_clock_at_a_speed_up() -> None:
    """Speed 2: the venue's clock read v no later than t_i − (v_i − v) / 2 for every event i."""
    from pmm_widgets.analytics.fidelity import RecordedVenueClock

    cm = M0.condition_id
    rec = Recording([M0], seconds=60.0, speed=2.0, events=[
        _bk("y0", cm, "0.4", "0.6", 10.0, venue=4.0),
        ("trade", 20.0, PublicTrade("y0", cm, D("0.5"), D(1), Side.BUY, 10.0, recv_ts=20.0)),  # a late print
        ("poll", 13.0), _bk("y0", cm, "0.4", "0.6", 14.0, venue=0.0),  # no venue time: no evidence
        ("trade", 15.0, PublicTrade("y0", cm, D("0.5"), D(1), Side.BUY, 0.0, recv_ts=15.0))])
    rec.live_fills.append((11.0, _fill("1", M0, "y0", Side.BUY, "0.5", "1", 8.0)))
    vc = RecordedVenueClock(rec)
    assert vc and vc.speed == 2.0 and vc.vs == [4.0, 8.0, 10.0]
    assert [vc.local(v) for v in (4.0, 6.0, 10.0, 100.0)] == [9.0, 10.0, 20.0, 65.0]
    # before the first evidence: back from it at the speed; after: forward, never past the next
    assert [vc.venue(t) for t in (8.0, 9.0, 10.0, 11.5, 15.0, 20.0, 25.0)] == [2.0, 4.0, 6.0, 9.0, 10.0, 10.0, 20.0]
    assert not RecordedVenueClock(Recording([M0], seconds=1.0, speed=0.0))
    assert RecordedVenueClock(Recording([M0], seconds=1.0, speed=0.0)).speed == 1.0


def test_a_fractional_level_left_after_ours_stays() -> None:
    from pmm_widgets.analytics.fidelity import strip_book

    b = book("y0", M0.condition_id, [("0.45", "10.5")], [("0.48", 100)])
    assert [(lv.price, lv.size) for lv in strip_book(b, ((Side.BUY, D("0.45"), D(10)),)).bids] == [(D("0.45"), D("0.5"))]


def test_books_at_the_same_time_both_count() -> None:
    cm = M0.condition_id
    rec = Recording([M0], seconds=60.0, speed=1.0)
    rec.events += [_bk("y0", cm, "0.49", "0.51", 1.0, venue=101.0), _bk("y0", cm, "0.51", "0.53", 1.0, venue=102.0),
                   _bk("y0", cm, "0.53", "0.55", 2.0, venue=102.0)]
    mids = Mids(rec)
    assert mids.venue_time(1.5) == 102.0  # the second book at local 1.0 is seen by then
    assert mids.venue_time(2.5) == 102.0 and mids.last("y0") == D("0.54")  # same venue time: the newer mid
