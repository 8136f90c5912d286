"""Gamma's economics fields are decoded once in `venue/` (`Market.terms`); economics reads only
those typed fields, never `Market.raw`; bad data decodes to problems, never an exception."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from pmm_widgets.domain import GammaFeeSchedule, GammaTerms, Market
from pmm_widgets.economics.fees import fee_schedule_of
from pmm_widgets.economics.rewards import program_of
from pmm_widgets.economics.tracker import market_terms
from pmm_widgets.execution.fee_model import ScheduleFeeModel
from pmm_widgets.store.recording import market_to_json, markets_from_json
from pmm_widgets.venue.gamma import parse_market
from pmm_widgets.venue.gamma_terms import decode_terms

D = Decimal
GAMMA = json.loads((Path(__file__).parents[1] / "fixtures" / "venue" / "gamma_markets.json").read_text())


def test_fixture_objects_decode_into_typed_terms() -> None:
    live = parse_market(GAMMA["live"])
    assert live.terms.fees_enabled is True
    assert live.terms.fee_schedule == GammaFeeSchedule(D("0.04"), D(1), True, D("0.25"))
    assert live.terms.reward_daily_rates == (D("0.001"),) and live.terms.rewards_max_spread == 0
    rewarded = parse_market(GAMMA["rewarded"]).terms
    assert (rewarded.rewards_min_size, rewarded.rewards_max_spread, rewarded.reward_daily_rates) == (
        D(50), D("3.5"), (D(25),))
    assert rewarded.fee_problems == rewarded.reward_problems == ()
    # the live object pays a pool with max spread 0: a problem economics reports, nothing scores
    prog, problems = program_of(live.terms)
    assert not prog.active and any("max spread" in p for p in problems)


def test_neg_risk_event_id_and_bad_types_never_raise() -> None:
    obj = {**GAMMA["rewarded"], "negRisk": True, "events": [{"id": 903, "title": "E"}]}
    m = parse_market(obj)
    assert m.terms.event_id == "903" and market_terms(m)[0].event_id == "903"
    not_neg = parse_market({**obj, "negRisk": False})
    assert market_terms(not_neg)[0].event_id is None  # only a neg-risk market belongs to an event for us
    bad = decode_terms({"feesEnabled": "yes", "feeSchedule": {"rate": "x"}, "rewardsMinSize": [1],
                        "clobRewards": [{"rewardsDailyRate": "nan?"}, 7], "events": "e"})
    assert bad.fees_enabled is None and bad.fee_schedule is None and bad.event_id is None
    assert bad.rewards_min_size is None and bad.reward_daily_rates == ()
    assert any("unreadable" in p for p in bad.fee_problems)
    assert len(bad.reward_problems) == 3  # min size unreadable, one unreadable rate, one entry not an object
    sched, probs = fee_schedule_of(bad)
    assert not sched.charges and probs
    assert decode_terms("not an object").fee_problems  # type: ignore[arg-type]


def test_economics_reads_terms_not_raw() -> None:
    """A Market whose raw dict holds a fee schedule but whose decoded terms are empty charges
    nothing: the raw dict is the DB's record, not an input of economics."""
    sched = {"feesEnabled": True, "feeSchedule": {"exponent": 1, "rate": 0.04, "takerOnly": True, "rebateRate": 0.25}}
    only_raw = Market("0x1", "Q", "y", "n", D("0.01"), D(5), raw=sched)
    decoded = Market("0x2", "Q", "y2", "n2", D("0.01"), D(5), terms=decode_terms(sched), raw=sched)
    assert only_raw.terms == GammaTerms()
    assert market_terms(only_raw)[0].fee.rate == 0 and market_terms(decoded)[0].fee.rate == D("0.04")
    fm = ScheduleFeeModel()
    assert fm.schedule(only_raw).rate == 0 and fm.schedule(decoded).rate == D("0.04")


def test_recorded_markets_decode_their_terms_again() -> None:
    """A recording keeps the Gamma object (`raw`), not the decoded terms; reading it back decodes
    them again, so recordings made before `Market.terms` replay with the same fees and rewards."""
    m = parse_market(GAMMA["rewarded"])
    js = market_to_json(m)
    assert "terms" not in js
    [back] = markets_from_json([json.loads(json.dumps(js))])
    assert back.terms == m.terms and market_terms(back) == market_terms(m)
