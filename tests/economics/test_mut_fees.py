"""Fee, rebate and payout arithmetic pinned where mutation testing found it untested
(polymarket-api.md §7; `economics/fees.py` and `execution/fee_model.py` docstrings).

Every figure is worked by hand from `fee = C × rate × (p(1−p))^exponent`, 5 dp half up with a
0.00001 minimum; rebate = rebateRate × fee-equivalent, 6 dp rounded down; payouts whole 6-dp
units, nothing under $1."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import BUY, SELL, GammaFeeSchedule, GammaTerms, Market
from pmm_widgets.economics.fees import (
    NO_FEES,
    FeeSchedule,
    fee_equivalent,
    fee_from_bps,
    fee_schedule_of,
    fill_fee,
    parse_fd,
    parse_fee_schedule,
    payout,
    rebate_accrual,
)
from pmm_widgets.execution.fee_model import ScheduleFeeModel, ZeroFeeModel

POLITICS = FeeSchedule(D("0.04"), 1, True, D("0.25"))
RAW = {"exponent": 1, "rate": 0.04, "takerOnly": True, "rebateRate": 0.25}


# ---------------------------------------------------------------- the fee formula at its edges
def test_no_fee_on_an_empty_fill_or_a_price_off_the_open_interval() -> None:
    # no fee applies, so no minimum charge either (a minimum would make these 0.00001)
    assert fee_equivalent(D(0), D("0.5"), POLITICS) == 0
    assert fee_equivalent(D(-5), D("0.5"), POLITICS) == 0
    assert fee_equivalent(D("-0.5"), D("0.5"), POLITICS) == 0
    assert fee_equivalent(D(100), D(0), POLITICS) == 0
    assert fee_equivalent(D(100), D(1), POLITICS) == 0
    assert fee_equivalent(D(100), D("-0.1"), POLITICS) == 0
    assert fee_equivalent(D(100), D("1.1"), POLITICS) == 0


def test_fee_near_the_price_bounds_and_at_the_minimum_size() -> None:
    # 100 × 0.04 × 0.01 × 0.99 = 0.0396; the same on the complement (p = 0.99)
    assert fee_equivalent(D(100), D("0.01"), POLITICS) == D("0.03960")
    assert fee_equivalent(D(100), D("0.99"), POLITICS) == D("0.03960")
    # tick 0.001: 100 × 0.04 × 0.001 × 0.999 = 0.003996 → 0.00400
    assert fee_equivalent(D(100), D("0.001"), POLITICS) == D("0.00400")
    # the usual minimum order (5 shares) at 0.5: 5 × 0.04 × 0.25 = 0.05
    assert fee_equivalent(D(5), D("0.5"), POLITICS) == D("0.05000")


def test_fee_rounds_half_up_to_5_dp() -> None:
    r = FeeSchedule(D("0.0001"), 1, True, D(0))
    # 1 × 0.0001 × 0.25 = 0.000025: half up → 0.00003 (half-even would give 0.00002)
    assert fee_equivalent(D(1), D("0.5"), r) == D("0.00003")
    # 0.996 × 0.0001 × 0.25 = 0.0000249 → 0.00002 (not rounded up)
    assert fee_equivalent(D("0.996"), D("0.5"), r) == D("0.00002")
    # 0.000004 → below the minimum → the minimum 0.00001
    assert fee_equivalent(D("0.16"), D("0.5"), r) == D("0.00001")


def test_fee_exponent_zero_and_four() -> None:
    # exponent 0: C × rate = 10 × 0.04 = 0.4 at any price inside (0, 1)
    e0 = FeeSchedule(D("0.04"), 0, True, D(0))
    assert fee_equivalent(D(10), D("0.1"), e0) == D("0.40000")
    # exponent 4: 10 × 0.07 × 0.25⁴ = 0.002734375 → 0.00273
    e4 = FeeSchedule(D("0.07"), 4, True, D(0))
    assert fee_equivalent(D(10), D("0.5"), e4) == D("0.00273")


def test_rate_zero_charges_nothing_and_no_minimum() -> None:
    zero = FeeSchedule(D(0), 1, False, D("0.25"))
    assert not zero.charges
    assert fill_fee(D(100), D("0.5"), zero, taker=True) == 0
    assert fill_fee(D(100), D("0.5"), zero, taker=False) == 0
    assert rebate_accrual(D(100), D("0.5"), zero, taker=False) == 0
    assert FeeSchedule(D("0.0001"), 1).charges


def test_a_bad_schedule_built_in_code_never_charges_or_pays_a_negative_rebate() -> None:
    # bad data never charges and never pays (module doc): a negative rate or rebate rate
    neg_rate = FeeSchedule(D("-0.04"), 1, True, D("0.25"))
    assert not neg_rate.charges
    assert fee_equivalent(D(100), D("0.5"), neg_rate) == 0
    neg_rebate = FeeSchedule(D("0.04"), 1, True, D("-0.25"))
    assert rebate_accrual(D(100), D("0.5"), neg_rebate, taker=False) == 0
    neg_rebate_big = FeeSchedule(D("0.04"), 1, True, D("-1.5"))
    assert rebate_accrual(D(100), D("0.5"), neg_rebate_big, taker=False) == 0


def test_a_schedule_given_only_a_rate_is_the_published_kind() -> None:
    # every published market: exponent 1, takers only (polymarket-api.md §7)
    s = FeeSchedule(D("0.04"))
    assert fill_fee(D(100), D("0.5"), s, taker=True) == D("1.00000")  # 100 × 0.04 × 0.25
    assert fill_fee(D(100), D("0.5"), s, taker=False) == 0


# ---------------------------------------------------------------- rebates
def test_rebate_is_rebate_rate_times_the_rounded_fee_rounded_down_to_6_dp() -> None:
    # fee-equivalent of 37 @ 0.23 is 0.26211; × 0.25 = 0.0655275 → 0.065527 (down, not 0.065528)
    assert rebate_accrual(D(37), D("0.23"), POLITICS, taker=False) == D("0.065527")
    # rebateRate 1: the whole fee-equivalent
    full = FeeSchedule(D("0.04"), 1, True, D(1))
    assert rebate_accrual(D(37), D("0.23"), full, taker=False) == D("0.26211")
    # a schedule that charges makers too still credits their rebate
    both = FeeSchedule(D("0.04"), 1, False, D("0.25"))
    assert rebate_accrual(D(100), D("0.5"), both, taker=False) == D("0.25")
    assert rebate_accrual(D(100), D("0.5"), both, taker=True) == 0
    # no rebate on an empty fill (no minimum-fee rebate)
    assert rebate_accrual(D(0), D("0.5"), POLITICS, taker=False) == 0


# ---------------------------------------------------------------- payouts and bps
def test_payout_at_exactly_one_dollar_is_paid() -> None:
    assert payout(D(1)) == D(1)
    assert payout(D("1.0000009")) == D("1.000000")
    assert payout(D("0.9999999")) == 0
    assert payout(D(0)) == 0


def test_rate_bps_rounds_half_up() -> None:
    assert FeeSchedule(D("0.5")).rate_bps == 5000
    assert FeeSchedule(D("0.99")).rate_bps == 9900
    assert FeeSchedule(D("0.00005")).rate_bps == 1  # 0.5 bp → 1 (half up)
    assert FeeSchedule(D("0.000049")).rate_bps == 0
    assert NO_FEES.rate_bps == 0


def test_fee_from_bps_zero_and_exponent() -> None:
    assert fee_from_bps(D(100), D("0.5"), 0) == 0  # zero bps is a readable zero fee, not None
    assert fee_from_bps(D(100), D("0.5"), "0") == 0
    # 700 bps, exponent 2: 10 × 0.07 × 0.0625 = 0.04375
    assert fee_from_bps(D(10), D("0.5"), 700, exponent=2) == D("0.04375")
    # 250 bps at 0.2: 50 × 0.025 × 0.16 = 0.2
    assert fee_from_bps(D(50), D("0.2"), 250) == D("0.20000")
    assert fee_from_bps(D(100), D("0.5"), None) is None
    assert fee_from_bps(D(100), D("0.5"), True) is None
    assert fee_from_bps(D(100), D("0.5"), "-0.5") is None  # any negative bps is unreadable


# ---------------------------------------------------------------- reading a schedule: the bounds
def test_schedule_rate_bounds() -> None:
    s, p = parse_fee_schedule(True, {**RAW, "rate": 1})
    assert s == NO_FEES and any("outside [0, 1)" in x for x in p)
    s, p = parse_fee_schedule(True, {**RAW, "rate": 1.5})
    assert s == NO_FEES and any("outside [0, 1)" in x for x in p)
    s, p = parse_fee_schedule(True, {**RAW, "rate": 0.999})
    assert s.rate == D("0.999") and p == []
    s, p = parse_fee_schedule(True, {**RAW, "rate": 0})
    assert s == FeeSchedule(D(0), 1, True, D("0.25")) and p == []


def test_schedule_exponent_bounds() -> None:
    for e in (0, 4):
        s, p = parse_fee_schedule(True, {**RAW, "exponent": e})
        assert (s.rate, s.exponent, p) == (D("0.04"), e, []), e
    for e in (5, -1):
        s, p = parse_fee_schedule(True, {**RAW, "exponent": e})
        assert s == NO_FEES and any("exponent" in x for x in p), e
    for e in (1.4, 2.5):  # not integers (whichever way they would round)
        s, p = parse_fee_schedule(True, {**RAW, "exponent": e})
        assert s == NO_FEES and any("not an integer" in x for x in p), e
    # an integral Decimal exponent (2.0) is an integer
    s, p = parse_fee_schedule(True, {**RAW, "exponent": 2.0})
    assert s.exponent == 2 and p == []


def test_schedule_rebate_bounds() -> None:
    s, p = parse_fee_schedule(True, {**RAW, "rebateRate": 1})
    assert s.rebate_rate == 1 and p == []
    s, p = parse_fee_schedule(True, {**RAW, "rebateRate": 1.01})
    assert s.rate == D("0.04") and s.rebate_rate == 0 and any("rebateRate" in x for x in p)
    s, p = parse_fee_schedule(True, {**RAW, "rebateRate": 0})
    assert s.rebate_rate == 0 and p == []


def test_fees_disabled_keeps_the_shape_but_charges_and_rebates_nothing() -> None:
    s, p = parse_fee_schedule(False, {"exponent": 2, "rate": 0.07, "takerOnly": False, "rebateRate": 0.2})
    assert s == FeeSchedule(D(0), 2, False, D(0)) and p == []
    # feesEnabled missing (not a bool): the schedule is the truth
    s, p = parse_fee_schedule(None, RAW)
    assert s == POLITICS and p == []
    # feesEnabled false without a schedule: no problem reported
    assert parse_fee_schedule(False, None) == (NO_FEES, [])
    assert parse_fee_schedule(None, None) == (NO_FEES, [])


def test_decoding_problems_win_over_a_schedule() -> None:
    terms = GammaTerms(fees_enabled=True, fee_schedule=GammaFeeSchedule(D("0.04"), D(1), True, D("0.25")),
                       fee_problems=("something upstream",))
    assert fee_schedule_of(terms) == (NO_FEES, ["something upstream"])


def test_parse_fd_defaults() -> None:
    s, p = parse_fd({"r": 0.04})  # exponent 1, taker-only, no rebate when absent
    assert s == FeeSchedule(D("0.04"), 1, True, D(0)) and p == []
    assert fill_fee(D(100), D("0.5"), s, taker=False) == 0
    assert parse_fd({}) == (NO_FEES, [])
    assert parse_fd(None) == (NO_FEES, [])
    assert parse_fd({"r": 0.04, "e": 2, "to": False})[0] == FeeSchedule(D("0.04"), 2, False, D(0))


def test_schedule_defaults_and_json_shapes() -> None:
    assert NO_FEES == FeeSchedule(D(0), 1, True, D(0))
    assert FeeSchedule(D("0.07"), 2, False, D("0.2")).as_json() == {
        "exponent": 2, "rate": 0.07, "takerOnly": False, "rebateRate": 0.2}


# ---------------------------------------------------------------- the paper exchange's fee model
def _market(cid: str, terms: GammaTerms) -> Market:
    return Market(cid, "q", "y", "n", D("0.01"), D(5), terms=terms)


def test_schedule_fee_model_per_market() -> None:
    pol = GammaTerms(fees_enabled=True, fee_schedule=GammaFeeSchedule(D("0.04"), D(1), True, D("0.25")))
    both = GammaTerms(fees_enabled=True, fee_schedule=GammaFeeSchedule(D("0.05"), D(1), False, D("0.25")))
    m1, m2 = _market("0x1", pol), _market("0x2", both)
    fm = ScheduleFeeModel()
    assert fm.schedule(None) == NO_FEES
    assert fm.fee(None, BUY, D("0.5"), D(100), maker=False) == 0
    assert fm.schedule(m1) == POLITICS
    # taker-only: a maker pays 0 and accrues 0.25 × 1.00; a taker pays 1.00, accrues nothing
    assert fm.fee(m1, BUY, D("0.5"), D(100), maker=True) == 0
    assert fm.fee(m1, SELL, D("0.5"), D(100), maker=False) == D("1.00000")
    assert fm.rebate(m1, D("0.5"), D(100), maker=True) == D("0.25")
    assert fm.rebate(m1, D("0.5"), D(100), maker=False) == 0
    # makers pay too: 100 × 0.05 × 0.25 = 1.25
    assert fm.fee(m2, BUY, D("0.5"), D(100), maker=True) == D("1.25000")
    assert fm.rebate(m2, D("0.5"), D(100), maker=True) == D("0.3125")
    assert fm.rebate(None, D("0.5"), D(100), maker=True) == 0
    assert ZeroFeeModel().fee(m2, BUY, D("0.5"), D(100), maker=False) == 0


# ---------------------------------------------------------------- invariants
@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 1000),
       st.sampled_from(["0", "0.0001", "0.03", "0.04", "0.07", "0.5"]), st.integers(0, 4))
def test_fee_never_negative_monotone_in_size_and_zero_off_the_interval(
        c1: int, c2: int, mil: int, rate: str, e: int) -> None:
    s = FeeSchedule(D(rate), e, True, D("0.25"))
    p = D(mil) / 1000
    lo, hi = sorted((D(c1) / 100, D(c2) / 100))
    f_lo, f_hi = fee_equivalent(lo, p, s), fee_equivalent(hi, p, s)
    assert 0 <= f_lo <= f_hi
    assert f_hi == f_hi.quantize(D("0.00001"))
    if hi == 0 or mil in (0, 1000) or rate == "0":
        assert f_hi == 0
    else:
        assert f_hi >= D("0.00001")
    r = rebate_accrual(hi, p, s, taker=False)
    assert 0 <= r <= f_hi * D("0.25") and r == r.quantize(D("0.000001"))


@pytest.mark.parametrize("size", [D(5), D("5.5"), D(100)])
def test_maker_fee_is_zero_on_every_published_market(size: D) -> None:
    for p in (D("0.01"), D("0.5"), D("0.99")):
        assert fill_fee(size, p, POLITICS, taker=False) == 0
        assert fill_fee(size, p, POLITICS, taker=True) > 0
