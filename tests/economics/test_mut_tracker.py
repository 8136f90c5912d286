"""`economics/tracker.py` pinned where mutation testing found it untested: the venue clock, fees
and rebates per fill, the per-minute reward estimate, payouts, settlements and bad venue data.

Every figure is worked by hand (polymarket-api.md §7): fee = C × rate × (p(1−p))^exponent;
a maker's rebate = rebateRate × its fee-equivalent; an order scores ((v − s)/v)² per share; one
side alone earns a third inside mid [0.10, 0.90]; a sample earns share × dailyRate / 1440."""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal as D

import pytest

from pmm_widgets.domain import (
    BUY,
    SELL,
    BookView,
    Fill,
    FillType,
    GammaFeeSchedule,
    GammaTerms,
    Level,
    Market,
    Mode,
    Order,
    OrderStatus,
)
from pmm_widgets.economics.fees import FeeSchedule
from pmm_widgets.economics.rewards import RewardProgram
from pmm_widgets.economics.tracker import (
    NO_TERMS,
    EconomicsTracker,
    MarketTerms,
    VenueClock,
    estimate_market,
    fill_economics,
    market_terms,
)
from pmm_widgets.events import EventBus, EventKind
from pmm_widgets.store.sink import MemorySink

DAY1 = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC
POLITICS = FeeSchedule(D("0.04"), 1, True, D("0.25"))
# min size 10 shares, max spread 4¢, $144 a day = $0.1 a minute
PROG = RewardProgram(D(10), D(4), D(144))


def market(cid: str = "0xm", terms: GammaTerms | None = None, neg_risk: bool = False) -> Market:
    return Market(cid, "q", cid + "y", cid + "n", D("0.01"), D(5), neg_risk=neg_risk,
                  terms=terms if terms is not None else GammaTerms())


def fill(size: str = "100", price: str = "0.5", taker: bool = False, bps: D | None = None, ts: float = DAY1 + 10,
         tid: str = "t1") -> Fill:
    return Fill(tid, "c1", "0xm", "0xmy", BUY, D(price), D(size), FillType.FILLED, Mode.LIVE, ts,
                taker=taker, fee_rate_bps=bps)


def order(cid: str, token: str, side: str, price: str, size: str, filled: str = "0",
          venue_id: str | None = None) -> Order:
    return Order(cid, "0xm", token, BUY if side == "BUY" else SELL, D(price), D(size), Mode.PAPER,
                 OrderStatus.LIVE, D(filled), venue_id)


def view(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> BookView:
    return BookView("0xmy", "0xm", tuple(Level(D(p), D(s)) for p, s in bids),
                    tuple(Level(D(p), D(s)) for p, s in asks), D("0.01"))


def tracker(sink: MemorySink | None = None, mode: str = "paper") -> EconomicsTracker:
    return EconomicsTracker(sink if sink is not None else MemorySink(), mode)


# ---------------------------------------------------------------- terms
def test_terms_clock_and_fill_economics_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NO_TERMS.fee = POLITICS  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        VenueClock().speed = 2.0  # type: ignore[misc]
    ec = fill_economics(fill(), NO_TERMS)  # what `on_fill` added to the sums is what the trades row says
    with pytest.raises(dataclasses.FrozenInstanceError):
        ec.fee = D(1)  # type: ignore[misc]


def test_market_terms_reads_fees_rewards_and_the_neg_risk_event() -> None:
    t = GammaTerms(fees_enabled=True, fee_schedule=GammaFeeSchedule(D("0.04"), D(1), True, D("0.25")),
                   rewards_min_size=D(10), rewards_max_spread=D(4), reward_daily_rates=(D(100), D(44)),
                   event_id="ev1")
    terms, problems = market_terms(market(terms=t, neg_risk=True))
    assert terms == MarketTerms(POLITICS, PROG, "ev1") and problems == []
    terms, _ = market_terms(market(terms=t, neg_risk=False))
    assert terms.event_id is None  # only a neg-risk market belongs to an event


def test_market_terms_reports_fee_problems_then_reward_problems() -> None:
    t = GammaTerms(fees_enabled=True, fee_schedule=None, rewards_min_size=D(10), rewards_max_spread=D(4),
                   reward_daily_rates=(D(-1), D(144)))
    terms, problems = market_terms(market(terms=t))
    assert terms.fee == FeeSchedule() and terms.program == PROG
    assert problems == ["feesEnabled but feeSchedule missing: no fee assumed",
                        "clobRewards rewardsDailyRate -1 negative: ignored"]


def test_set_markets_decodes_each_market_once_and_reports_its_problems() -> None:
    sink = MemorySink()
    ec = tracker(sink)
    bad = GammaTerms(fees_enabled=True, fee_schedule=None)
    ec.set_markets([market("0xa", bad), market("0xb")], DAY1)
    assert ec.bad_venue_data == 1 and set(ec.terms) == {"0xa", "0xb"}
    ec.set_markets([market("0xa", bad)], DAY1 + 1)  # known: not decoded (nor counted) again
    assert ec.bad_venue_data == 1
    (ev,) = sink.rows["events"]
    assert (ev["ts"], ev["level"], ev["kind"], ev["market"]) == (DAY1, "WARNING", "venue_data", "0xa")
    assert ev["message"] == "feesEnabled but feeSchedule missing: no fee assumed" and ev["data_json"] == {"count": 1}
    assert ec.terms_of("0xunknown") is NO_TERMS


def test_bad_data_counts_every_time_and_logs_once_per_market_and_problem(caplog: pytest.LogCaptureFixture) -> None:
    sink = MemorySink()
    ec = tracker(sink)
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.economics.tracker"):
        ec.bad_data(1.0, "0xa", "p")
        ec.bad_data(2.0, "0xa", "p")
        ec.bad_data(3.0, "0xb", "p")
        ec.bad_data(4.0, None, "p")
        ec.bad_data(5.0, None, "p")
        ec.bad_data(6.0, "0xa", "q")
    assert ec.bad_venue_data == 6
    evs = sink.rows["events"]
    assert [(e["ts"], e["market"], e["message"], e["data_json"]["count"]) for e in evs] == [
        (1.0, "0xa", "p", 1), (3.0, "0xb", "p", 3), (4.0, None, "p", 4), (6.0, "0xa", "q", 6)]
    logged = [r.getMessage() for r in caplog.records if r.name == "pmm_widgets.economics.tracker"]
    assert logged == ["bad venue data for 0xa: p", "bad venue data for 0xb: p", "bad venue data for None: p",
                      "bad venue data for 0xa: q"]


def test_an_engines_bus_gets_the_events_and_persists_them_itself() -> None:
    sink = MemorySink()
    bus = EventBus()
    ec = EconomicsTracker(sink, "live", events=bus)
    ec.bad_data(7.0, "0xa", "p")
    (ev,) = bus.recent()
    assert (ev.ts, ev.market, ev.message, ev.kind) == (7.0, "0xa", "p", EventKind.VENUE_DATA)
    assert "events" not in sink.rows  # the engine's one subscriber writes the row, not this tracker


# ---------------------------------------------------------------- the venue clock
def test_the_default_clock_is_the_wall_clock() -> None:
    c = VenueClock()
    assert c.to_venue(DAY1 + 12.5) == DAY1 + 12.5 and c.to_wall(DAY1 + 12.5) == DAY1 + 12.5
    assert c.next_boundary_wall(DAY1 + 12.5) == DAY1 + 60
    assert c.next_boundary_wall(DAY1) == DAY1 + 60  # on a boundary: the next one


def test_a_fast_clock_maps_both_ways_and_finds_the_venues_next_minute() -> None:
    c = VenueClock(1000.0, DAY1, 10.0)  # wall 1000 = venue DAY1, 10 venue seconds per wall second
    assert c.to_venue(1003.0) == DAY1 + 30 and c.to_wall(DAY1 + 30) == 1003.0
    assert c.next_boundary_wall(1003.0) == 1006.0  # venue DAY1 + 60
    assert c.next_boundary_wall(1003.0, 20.0) == 1004.0  # venue DAY1 + 40


def test_the_clock_round_trips_through_json_and_rejects_bad_fields() -> None:
    c = VenueClock(1.5, 2.5, 3.0)
    assert c.to_json() == {"w0": 1.5, "v0": 2.5, "speed": 3.0}
    assert VenueClock.from_json(c.to_json()) == c
    assert VenueClock.from_json({"w0": 1, "v0": "2.5", "speed": "4"}) == VenueClock(1.0, 2.5, 4.0)
    assert VenueClock.from_json({"w0": 0, "v0": 0, "speed": 0.5}).speed == 0.5  # slower than real time
    for bad, field in (({"v0": 0, "speed": 1}, "w0"), ({"w0": True, "v0": 0, "speed": 1}, "w0"),
                       ({"w0": 0, "v0": [1], "speed": 1}, "v0"), ({"w0": 0, "v0": 0, "speed": "x"}, "speed")):
        with pytest.raises(ValueError, match=repr(field)):
            VenueClock.from_json(bad)
    for speed in (0, -1):
        with pytest.raises(ValueError, match="speed must be > 0"):
            VenueClock.from_json({"w0": 0, "v0": 0, "speed": speed})


@pytest.mark.parametrize("field", ["w0", "v0", "speed"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", float("nan"), float("inf"), 10**400, "1e999"])
def test_a_clock_field_that_is_no_finite_number_is_refused(field: str, bad: object) -> None:
    """A NaN or infinite time (a corrupt `venue_clock` record) would stop the reward samples and
    break the venue day: refused, naming the field (a huge integer used to raise OverflowError)."""
    data: dict[str, object] = {"w0": 1.0, "v0": 2.0, "speed": 1.0, field: bad}
    with pytest.raises(ValueError, match=f"venue_clock: field {field!r} is not a finite number"):
        VenueClock.from_json(data)


# ---------------------------------------------------------------- fees and rebates per fill
def test_a_maker_fill_pays_no_fee_and_accrues_its_rebate() -> None:
    # 100 × 0.04 × 0.25 = 1.00 fee-equivalent; rebate 0.25 × 1.00
    ec = fill_economics(fill(), MarketTerms(POLITICS))
    assert (ec.fee, ec.rebate, ec.liquidity) == (D(0), D("0.25"), "MAKER")


def test_a_taker_fill_pays_the_schedule_or_the_tapes_rate() -> None:
    t = MarketTerms(POLITICS)
    got = fill_economics(fill(taker=True), t)
    assert (got.fee, got.rebate, got.liquidity) == (D("1.00"), D(0), "TAKER")
    got = fill_economics(fill(taker=True, bps=D(200)), t)  # the tape's 2 % wins: 100 × 0.02 × 0.25
    assert (got.fee, got.rebate, got.liquidity) == (D("0.5"), D(0), "TAKER")
    sq = MarketTerms(FeeSchedule(D("0.04"), 2, True, D(0)))  # the schedule's exponent with the tape's rate
    assert fill_economics(fill(taker=True, bps=D(200)), sq).fee == D("0.125")  # 100 × 0.02 × 0.0625
    assert fill_economics(fill(taker=True, bps=D(-5)), t).fee == D("1.00")  # unreadable rate: the schedule
    assert fill_economics(fill(taker=False, bps=D(200)), t).fee == 0  # a maker ignores the tape's rate


def test_on_fill_adds_to_the_market_sums_the_day_and_the_trades_row() -> None:
    sink = MemorySink()
    ec = tracker(sink)
    m = market(terms=GammaTerms(fees_enabled=True, fee_schedule=GammaFeeSchedule(D("0.04"), D(1), True, D("0.25"))))
    ec.set_markets([m], DAY1)
    ec.on_fill(fill(tid="a"), m)  # maker, day 1
    ec.on_fill(fill(tid="b", ts=DAY1 + 86_399), m)  # maker, still day 1
    ec.on_fill(fill(tid="c", ts=DAY1 + 86_400), m)  # maker, day 2
    got = ec.on_fill(fill(tid="d", taker=True, ts=DAY1 + 86_400), m)  # taker: a fee, no rebate
    assert (got.fee, got.rebate) == (D(1), D(0))
    assert ec.fees == {"0xm": D(1)} and ec.rebates == {"0xm": D("0.75")}
    assert ec.rebates_by_day == {("0xm", "2026-12-01"): D("0.5"), ("0xm", "2026-12-02"): D("0.25")}
    assert [(w["trade_id"], v["fee"], v["rebate"], v["liquidity"]) for _, w, v in sink.updates] == [
        ("a", 0, D("0.25"), "MAKER"), ("b", 0, D("0.25"), "MAKER"), ("c", 0, D("0.25"), "MAKER"),
        ("d", D(1), 0, "TAKER")]


def test_a_fill_without_rebate_leaves_the_days_accruals_alone() -> None:
    ec = tracker()
    m = market()
    ec.on_fill(fill(), m)  # no terms known: no fee, no rebate
    assert ec.fees == {"0xm": 0} and ec.rebates == {"0xm": 0} and ec.rebates_by_day == {}


# ---------------------------------------------------------------- the reward estimate
def _orders() -> list[Order]:
    return [order("c1", "0xmy", "BUY", "0.48", "20", venue_id="v1"),  # YES bid 2¢ off: 0.25 × 20
            order("c2", "0xmn", "BUY", "0.48", "25", filled="5"),  # a NO bid at 0.48 = a YES ask at 0.52
            order("c3", "0xmy", "BUY", "0.47", "5"),  # under the min size: counted, not scoring
            order("c4", "0xmy", "SELL", "0.60", "50"),  # 10¢ off: not scoring
            order("c5", "0xmy", "BUY", "0.49", "30", filled="30"),  # filled: not ours any more
            order("c6", "0xzz", "BUY", "0.49", "30")]  # another market's token


def test_estimate_market_scores_our_orders_against_the_rest_of_the_book() -> None:
    # the book without us: 60 each side 2¢ off → Q 15 a side; us: 5 a side → share 5 / 20
    s = estimate_market(market(), PROG, view([("0.48", "60")], [("0.52", "60")]), _orders(), ours_in_book=False)
    assert s.market == "0xm" and s.mid == D("0.5")
    assert (s.ours.q_one, s.ours.q_two, s.ours.q_min) == (D(5), D(5), D(5))
    assert s.total_q_min == D(20) and s.share == D("0.25")
    assert s.usd == D("0.025") and s.usd_per_hour == D("1.5")  # 0.1 × 0.25; 144 × 0.25 / 24
    assert (s.orders, s.scoring) == (4, 2)
    assert s.scoring_ids == ["v1", "c2"] and s.ids == ["v1", "c2", "c3", "c4"]


def test_live_our_orders_rest_in_the_book_and_are_taken_out_of_the_competition() -> None:
    book = view([("0.48", "80"), ("0.47", "5")], [("0.52", "80"), ("0.60", "50")])
    s = estimate_market(market(), PROG, book, _orders(), ours_in_book=True)
    assert s.total_q_min == D(20) and s.share == D("0.25")
    s = estimate_market(market(), PROG, book, _orders(), ours_in_book=False)  # counted twice
    assert s.share == D(5) / D(25)


def test_no_mid_or_no_program_scores_nothing() -> None:
    s = estimate_market(market(), PROG, view([("0.48", "5")], [("0.52", "60")]), _orders(), False)
    assert s.mid is None and s.scoring_ids == [] and s.share == 0 and s.usd == 0 and s.orders == 4
    s = estimate_market(market(), RewardProgram(D(10), D(4), D(0)), view([("0.48", "60")], [("0.52", "60")]),
                        _orders(), False)
    assert s.mid == D("0.5") and s.scoring == 0 and s.usd == 0 and s.usd_per_hour == 0


def test_an_order_exactly_at_the_min_size_scores_and_one_at_the_max_spread_does_not() -> None:
    book = view([("0.48", "60")], [("0.52", "60")])
    at_min = [order("a", "0xmy", "BUY", "0.48", "10"), order("b", "0xmy", "BUY", "0.46", "40"),
              order("c", "0xmy", "BUY", "0.4603", "10"),  # 3.97¢ off: just inside 4¢
              order("d", "0xmy", "BUY", "0.48", "10", filled="9.5")]  # half a share left: ours, too small
    s = estimate_market(market(), PROG, book, at_min, False)
    assert s.scoring_ids == ["a", "c"] and s.ids == ["a", "b", "c", "d"] and s.orders == 4


def test_a_no_bid_rests_on_the_yes_ask_side() -> None:
    book = view([("0.48", "60")], [("0.52", "60")])
    s = estimate_market(market(), PROG, book, [order("n", "0xmn", "BUY", "0.48", "20")], False)
    assert (s.ours.q_one, s.ours.q_two) == (D(0), D(5))  # a YES ask at 0.52
    s = estimate_market(market(), PROG, book, [order("y", "0xmy", "SELL", "0.52", "20")], False)
    assert (s.ours.q_one, s.ours.q_two) == (D(0), D(5))


def rewarded(cid: str = "0xm") -> Market:
    return market(cid, GammaTerms(rewards_min_size=D(10), rewards_max_spread=D(4), reward_daily_rates=(D(144),)))


def test_sample_due_arms_then_fires_at_the_venues_minute() -> None:
    ec = tracker()
    assert ec.sample_due(DAY1 + 30) is False  # arms the boundary at DAY1 + 60
    assert ec._next_sample == DAY1 + 60
    assert ec.sample_due(DAY1 + 59.9) is False
    assert ec.sample_due(DAY1 + 60) is True
    ec.sample(DAY1 + 60, [], {}, [], False)  # sampled on the boundary: the next one is a minute on
    assert ec._next_sample == DAY1 + 120 and ec.sample_due(DAY1 + 60) is False
    ec.sample(DAY1 + 125, [], {}, [], False)  # a late sample moves the boundary past now
    assert ec._next_sample == DAY1 + 180 and ec.sample_due(DAY1 + 179) is False
    ec.stream_sampling = True  # the stream samples at its own minutes: never due by the clock
    assert ec.sample_due(DAY1 + 1000) is False
    ec2 = tracker()
    ec2.clock = VenueClock(0.0, DAY1, 2.0)
    assert ec2.sample_due(10.0) is False and ec2._next_sample == DAY1 + 60
    assert ec2.sample_due(29.9) is False and ec2.sample_due(30.0) is True


def test_sample_without_an_armed_boundary_leaves_it_unarmed() -> None:
    ec = tracker()
    ec.sample(DAY1 + 125, [], {}, [], False)
    assert ec._next_sample is None and ec.sample_count == 1


def test_sample_adds_each_active_markets_estimate_to_its_day() -> None:
    sink = MemorySink()
    ec = tracker(sink)
    markets = [rewarded("0xm"), rewarded("0xq"), rewarded("0xs"), market("0xp")]
    ec.set_markets(markets, DAY1)
    v = view([("0.48", "60")], [("0.52", "60")])
    views = {"0xm": v, "0xq": None, "0xs": v, "0xp": v}
    ec.record_settlement(DAY1, markets[2], "0xsy", D(0), D(0), D(0), D(0), "gamma")  # settled: not sampled
    orders = _orders()
    got = ec.sample(DAY1 + 30, markets, views, orders, False)  # the minute DAY1 + 0: closes the day before
    assert [s.market for s in got] == ["0xm"] and got[0].venue_date == "2026-11-30" and got[0].usd == D("0.025")
    got = ec.sample(DAY1 + 60, markets, views, orders, False)
    assert got[0].venue_date == "2026-12-01"
    got = ec.sample(DAY1 + 200, markets, views, orders, False, venue_ts=DAY1 + 86_400)  # the stream's minute
    assert got[0].venue_date == "2026-12-01"
    got = ec.sample(DAY1 + 200, markets, views, orders, False, venue_ts=DAY1 + 86_460)
    assert got[0].venue_date == "2026-12-02"
    got = ec.sample(DAY1 + 200, markets, views, orders, False, venue_ts=DAY1 + 86_400.5)  # only 00:00 itself closes
    assert got[0].venue_date == "2026-12-02"  # the day before
    assert ec.sample_count == 5 and ec.rewards == {"0xm": D("0.125")} and ec.last == {"0xm": got[0]}
    assert ec.rewards_by_day == {("0xm", "2026-11-30"): D("0.025"), ("0xm", "2026-12-01"): D("0.05"),
                                 ("0xm", "2026-12-02"): D("0.05")}
    assert ec.usd_per_hour("0xm") == D("1.5") and ec.usd_per_hour("0xq") is None


def test_record_samples_writes_rows_and_counts_disagreements_with_the_venue(caplog: pytest.LogCaptureFixture) -> None:
    sink = MemorySink()
    ec = tracker(sink, "live")
    m = rewarded()
    ec.set_markets([m], DAY1)
    (s,) = ec.sample(DAY1 + 90, [m], {"0xm": view([("0.48", "60")], [("0.52", "60")])}, _orders(), False)
    ec.record_samples(DAY1 + 91, [s])
    with caplog.at_level(logging.INFO, logger="pmm_widgets.economics.tracker"):
        # venue: v1 scores (agrees), c2 does not (we say it does), c3 scores (we say not), c4 unasked
        ec.record_samples(DAY1 + 92, [s], {"v1": True, "c2": False, "c3": True, "zz": True})
        ec.record_samples(DAY1 + 93, [s], {"v1": True, "c2": True, "c3": False, "c4": False})
    r0, r1, r2 = sink.rows["reward_estimates"]
    assert r0 == {"ts": DAY1 + 91, "market": "0xm", "mode": "live", "mid": D("0.5"), "q_one": D(5), "q_two": D(5),
                  "q_min": D(5), "q_min_total": D(20), "share": D("0.25"), "usd": D("0.025"),
                  "usd_per_hour": D("1.5"), "daily_rate": D(144), "orders": 4, "scoring": 2,
                  "venue_scoring": None, "disagreements": None, "venue_date": "2026-12-01"}
    assert (r1["venue_scoring"], r1["disagreements"]) == (2, 2)
    assert (r2["venue_scoring"], r2["disagreements"]) == (2, 0)
    msgs = [r.getMessage() for r in caplog.records if r.name == "pmm_widgets.economics.tracker"]
    assert msgs == ["reward scoring: 2 of 3 orders disagree with the venue in 0xm"]


def test_a_sample_without_a_venue_day_stores_none() -> None:
    sink = MemorySink()
    ec = tracker(sink)
    s = estimate_market(market(), PROG, view([("0.48", "60")], [("0.52", "60")]), [], False)
    ec.record_samples(1.0, [s])
    assert sink.rows["reward_estimates"][0]["venue_date"] is None


# ---------------------------------------------------------------- payouts
def test_record_payouts_books_paid_amounts_and_returns_their_change_to_the_estimates() -> None:
    sink = MemorySink()
    ec = tracker(sink, "live")
    ec.rewards_by_day = {("0xa", "2026-12-01"): D("0.8"), ("0xb", "2026-12-01"): D("0.3"),
                         ("0xa", "2026-12-02"): D("9")}
    ec.rebates_by_day = {("0xa", "2026-12-01"): D("0.9")}
    rewards = [{"condition_id": "0xa", "earnings": 1.25}, {"condition_id": "0xc", "earnings": "2"},
               {"condition_id": "0xa", "earnings": "0.25"}, {"earnings": 5}]
    rebates = [{"condition_id": "0xa", "rebated_fees_usdc": "1.5"}]
    out = ec.record_payouts(DAY1 + 86_520, "2026-12-01", rewards, rebates)
    assert out == {"rewards": {"0xa": D("0.7"), "0xb": D("-0.3"), "0xc": D(2)}, "rebates": {"0xa": D("0.6")}}
    assert ec.paid == {("rewards", "0xa", "2026-12-01"): D("1.5"), ("rewards", "0xc", "2026-12-01"): D(2),
                       ("rebates", "0xa", "2026-12-01"): D("1.5")}
    rows = {(r["kind"], r["market"]): r["amount"] for r in sink.rows["venue_payouts"]}
    assert rows == {("rewards", "0xa"): D("1.5"), ("rewards", "0xc"): D(2), ("rewards", "TOTAL"): D("3.5"),
                    ("rebates", "0xa"): D("1.5"), ("rebates", "TOTAL"): D("1.5")}
    assert all(r["mode"] == "live" and r["date"] == "2026-12-01" and r["ts"] == DAY1 + 86_520
               for r in sink.rows["venue_payouts"])
    assert ec.bad_venue_data == 1 and sink.rows["events"][0]["message"] == "payouts: a row without condition_id"
    assert "2026-12-01" in ec.payouts.done


def test_an_empty_payout_day_is_read_and_reverses_that_days_estimates() -> None:
    sink = MemorySink()
    ec = tracker(sink, "live")
    ec.rewards_by_day = {("0xa", "2026-12-01"): D("0.8")}
    out = ec.record_payouts(1.0, "2026-12-01", [], "oops")
    assert out == {"rewards": {"0xa": D("-0.8")}, "rebates": {}}
    rows = {(r["kind"], r["market"]): r["amount"] for r in sink.rows["venue_payouts"]}
    assert rows == {("rewards", "TOTAL"): 0, ("rebates", "TOTAL"): 0}
    assert ec.bad_venue_data == 1


# ---------------------------------------------------------------- settlements
def test_record_settlement_adds_later_redemptions_and_keeps_the_first_source() -> None:
    sink = MemorySink()
    ec = tracker(sink, "paper")
    m = market()
    ec.record_settlement(10.0, m, "0xmy", D(10), D(2), D(10), D(3), "gamma")
    ec.record_settlement(20.0, m, "0xmy", D(5), D(1), D(5), D("-1"), "fill")
    assert ec.settled == {"0xm": "0xmy"}
    (row,) = sink.rows["settlements"]
    assert row == {"ts": 20.0, "market": "0xm", "mode": "paper", "winner_token": "0xmy", "winning_outcome": "YES",
                   "yes_shares": D(15), "no_shares": D(3), "payout": D(15), "pnl": D(2), "source": "gamma",
                   "run_id": ""}
