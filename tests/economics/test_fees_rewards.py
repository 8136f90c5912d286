"""The pure fee / rebate / reward-scoring formulas against worked examples (polymarket-api.md §7)
and their invariants."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import Side
from pmm_widgets.economics.fees import (
    NO_FEES,
    FeeSchedule,
    fee_equivalent,
    fee_from_bps,
    fill_fee,
    parse_fd,
    parse_fee_schedule,
    payout,
    rebate_accrual,
)
from pmm_widgets.economics.rewards import (
    NO_PROGRAM,
    RewardProgram,
    ScoredOrder,
    adjusted_mid,
    book_orders,
    minute_reward,
    order_score,
    parse_program,
    q_min,
    score_orders,
    share,
    to_yes_terms,
)

POLITICS = FeeSchedule(D("0.04"), 1, True, D("0.25"))  # the reference's real sample


# ---------------------------------------------------------------- fees
def test_fee_worked_examples() -> None:
    # 100 shares at 0.50, rate 0.04: 100 × 0.04 × 0.25 = 1.00
    assert fee_equivalent(D(100), D("0.5"), POLITICS) == D("1.00000")
    # 37 shares at 0.23: 37 × 0.04 × 0.23 × 0.77 = 0.262108 → 0.26211 (5 dp, half up)
    assert fee_equivalent(D(37), D("0.23"), POLITICS) == D("0.26211")
    # a tiny fill still pays the minimum 0.00001
    assert fee_equivalent(D("0.01"), D("0.001"), POLITICS) == D("0.00001")
    # crypto 0.07, exponent 2 (the general form)
    crypto2 = FeeSchedule(D("0.07"), 2, True, D("0.20"))
    assert fee_equivalent(D(10), D("0.5"), crypto2) == D("0.04375")


def test_taker_only_and_rebates() -> None:
    assert fill_fee(D(100), D("0.5"), POLITICS, taker=True) == D("1.00000")
    assert fill_fee(D(100), D("0.5"), POLITICS, taker=False) == 0
    both = FeeSchedule(D("0.04"), 1, False, D("0.25"))
    assert fill_fee(D(100), D("0.5"), both, taker=False) == D("1.00000")
    # a maker fill accrues rebateRate × fee-equivalent; takers accrue nothing
    assert rebate_accrual(D(100), D("0.5"), POLITICS, taker=False) == D("0.25")
    assert rebate_accrual(D(100), D("0.5"), POLITICS, taker=True) == 0
    assert rebate_accrual(D(100), D("0.5"), NO_FEES, taker=False) == 0


def test_fee_rate_bps_and_payout() -> None:
    assert POLITICS.rate_bps == 400
    assert fee_from_bps(D(100), D("0.5"), "400") == D("1.00000")
    assert fee_from_bps(D(100), D("0.5"), "nan?") is None
    assert fee_from_bps(D(100), D("0.5"), "-5") is None
    assert payout(D("0.999999")) == 0  # under the $1 minimum
    assert payout(D("1.2345678")) == D("1.234567")


@pytest.mark.parametrize("enabled,raw,problem", [
    (True, None, "missing"),
    (True, {"rate": -0.04, "exponent": 1, "takerOnly": True, "rebateRate": 0.25}, "outside"),
    (True, {"rate": "x", "exponent": 1}, "unreadable"),
    (True, {"rate": 0.04, "exponent": 1.5}, "unreadable"),
    (True, {"rate": 0.04, "exponent": 9}, "exponent"),
    (True, "0.04", "not an object"),
    (True, {"rate": 0.04, "exponent": 1, "takerOnly": "false"}, "takerOnly 'false' is not a boolean"),
    (True, {"rate": 0.04, "exponent": 1, "takerOnly": 0}, "takerOnly 0 is not a boolean"),
])
def test_bad_fee_schedules_charge_nothing(enabled: bool, raw: object, problem: str) -> None:
    sched, problems = parse_fee_schedule(enabled, raw)
    assert sched.rate == 0 and not sched.charges
    assert any(problem in p for p in problems), problems
    assert fee_equivalent(D(100), D("0.5"), sched) == 0


def test_good_and_disabled_schedules() -> None:
    raw = {"exponent": 1, "rate": 0.04, "takerOnly": True, "rebateRate": 0.25}
    assert parse_fee_schedule(True, raw) == (POLITICS, [])
    off, probs = parse_fee_schedule(False, raw)
    assert off.rate == 0 and probs == []
    neg_rebate, probs = parse_fee_schedule(True, {**raw, "rebateRate": -1})
    assert neg_rebate.rate == D("0.04") and neg_rebate.rebate_rate == 0 and probs
    assert parse_fd({"r": 0.04, "e": 1, "to": True})[0].rate == D("0.04")
    assert POLITICS.as_fd() == {"r": 0.04, "e": 1, "to": True}
    assert parse_fee_schedule(True, POLITICS.as_json())[0] == POLITICS
    for absent in ({k: v for k, v in raw.items() if k != "takerOnly"}, {**raw, "takerOnly": None}):
        assert parse_fee_schedule(True, absent) == (POLITICS, [])  # missing or null: the default, taker-only
    both, probs = parse_fee_schedule(True, {**raw, "takerOnly": False})
    assert not both.taker_only and both.rate == D("0.04") and probs == []


@given(st.integers(1, 10**6), st.integers(1, 999), st.sampled_from(["0.03", "0.04", "0.05", "0.07"]))
def test_fee_is_symmetric_on_the_complement_and_bounded(centi: int, mil: int, rate: str) -> None:
    size, p = D(centi) / 100, D(mil) / 1000
    s = FeeSchedule(D(rate), 1, True, D("0.25"))
    f = fee_equivalent(size, p, s)
    assert f == fee_equivalent(size, 1 - p, s)  # a mint/merge match: same fee on either token
    assert D("0.00001") <= f <= size * D(rate) / 4 + D("0.00001")
    assert f == f.quantize(D("0.00001"))
    assert rebate_accrual(size, p, s, taker=False) <= f * D("0.25")


# ---------------------------------------------------------------- rewards
def test_order_score_worked_examples() -> None:
    # v = 3¢: an order 1¢ from the mid scores (2/3)² = 4/9; at the mid 1; at or past v 0
    assert order_score(D(3), D(1)) == (D(2) / D(3)) ** 2
    assert order_score(D(3), D(0)) == 1
    assert order_score(D(3), D(3)) == 0
    assert order_score(D(3), D(4)) == 0
    assert order_score(D(0), D(0)) == 0  # max spread 0: nothing scores, no division by zero
    assert order_score(D("3.5"), D("0.5"), D(2)) == (D(3) / D("3.5")) ** 2 * 2


def test_q_min_two_sided_rule() -> None:
    # inside [0.10, 0.90]: one side alone earns a third (c = 3)
    assert q_min(D(90), D(0), D("0.5")) == D(30)
    assert q_min(D(90), D(60), D("0.5")) == D(60)
    assert q_min(D(90), D(20), D("0.5")) == D(30)
    # outside it both sides are required
    assert q_min(D(90), D(0), D("0.05")) == 0
    assert q_min(D(90), D(20), D("0.95")) == D(20)
    assert q_min(D(90), D(0), D("0.10")) == D(30)  # the bounds are inside


def test_score_orders_yes_and_complement() -> None:
    prog = RewardProgram(min_size=D(20), max_spread_c=D(3), daily_rate=D(144))
    mid = D("0.50")
    # YES bid 0.49 (1¢) size 100 and NO bid 0.49 (= YES ask 0.51, 1¢) size 100: both sides
    yes_bid = to_yes_terms(True, Side.BUY, D("0.49"), D(100))
    no_bid = to_yes_terms(False, Side.BUY, D("0.49"), D(100))
    assert yes_bid.bid and not no_bid.bid and no_bid.price == D("0.51")
    q = score_orders([yes_bid, no_bid], mid, prog)
    four_ninths = (D(2) / D(3)) ** 2
    assert q.q_one == four_ninths * 100 and q.q_two == four_ninths * 100 and q.q_min == q.q_one
    # a NO ask lands on the YES bid side (Q_one)
    no_ask = to_yes_terms(False, Side.SELL, D("0.52"), D(30))
    assert no_ask.bid and no_ask.price == D("0.48")
    # below min size or outside the band: 0
    assert score_orders([to_yes_terms(True, Side.BUY, D("0.49"), D(19))], mid, prog).q_one == 0
    assert score_orders([to_yes_terms(True, Side.BUY, D("0.47"), D(100))], mid, prog).q_one == 0
    assert score_orders([yes_bid], None, prog).q_min == 0
    assert score_orders([yes_bid], mid, NO_PROGRAM).q_min == 0


def test_adjusted_mid_and_book_orders() -> None:
    bids = [(D("0.49"), D(5)), (D("0.48"), D(50))]
    asks = [(D("0.51"), D(100)), (D("0.52"), D(10))]
    assert adjusted_mid(bids, asks, D(0)) == D("0.50")
    assert adjusted_mid(bids, asks, D(20)) == D("0.495")  # a 5-share best bid is skipped
    assert adjusted_mid(bids, asks, D(1000)) is None
    ours = [ScoredOrder(True, D("0.48"), D(20))]
    others = book_orders(bids, asks, minus=ours)
    assert ScoredOrder(True, D("0.48"), D(30)) in others and len(others) == 4


def test_share_and_minute_reward() -> None:
    prog = RewardProgram(D(20), D(3), D(144))  # $144/day = $0.1/minute
    assert share(D(1), D(4)) == D("0.25")
    assert share(D(0), D(0)) == 0
    assert minute_reward(prog, D("0.25")) == D("0.025")
    assert minute_reward(NO_PROGRAM, D(1)) == 0


@pytest.mark.parametrize("raw,ok,problem", [
    ({"rewardsMinSize": 50, "rewardsMaxSpread": 3.5, "clobRewards": [{"rewardsDailyRate": 25}]}, True, None),
    ({"rewardsMinSize": 50, "rewardsMaxSpread": 0, "clobRewards": [{"rewardsDailyRate": 25}]}, False, "max"),
    ({"rewardsMinSize": 50, "rewardsMaxSpread": 3, "clobRewards": [{"rewardsDailyRate": -5}]}, False, "negative"),
    ({"rewardsMinSize": -1, "rewardsMaxSpread": 3, "clobRewards": [{"rewardsDailyRate": 5}]}, False, "negative"),
    ({"rewardsMinSize": 0, "rewardsMaxSpread": 0, "clobRewards": []}, False, None),
    ({"rewardsMinSize": "abc", "rewardsMaxSpread": 3}, False, "unreadable"),
    ({"rewardsMinSize": 5, "rewardsMaxSpread": 3, "clobRewards": "x"}, False, "not a list"),
])
def test_parse_program(raw: dict, ok: bool, problem: str | None) -> None:
    prog, problems = parse_program(raw)
    assert prog.active is ok
    if problem:
        assert any(problem in p for p in problems), problems
    else:
        assert problems == []
    if ok:
        assert prog == RewardProgram(D(50), D("3.5"), D(25))


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 999), st.integers(1, 10_000)), max_size=20),
       st.integers(5, 995))
def test_q_min_bounds(orders: list[tuple[bool, int, int]], mid_mil: int) -> None:
    prog = RewardProgram(D(10), D(4), D(100))
    os_ = [ScoredOrder(b, D(p) / 1000, D(s)) for b, p, s in orders]
    mid = D(mid_mil) / 1000
    q = score_orders(os_, mid, prog)
    assert 0 <= q.q_min <= max(q.q_one, q.q_two)
    assert q.q_min >= min(q.q_one, q.q_two)
    total = sum((o.size for o in os_ if o.size >= prog.min_size), D(0))
    assert q.q_one + q.q_two <= total  # every order scores at most 1 per share
