"""Liquidity-reward scoring pinned where mutation testing found it untested (polymarket-api.md §7,
`economics/rewards.py` docstring). Figures by hand; v = 4¢ keeps the scores exact decimals:
s = 1¢ → (3/4)² = 0.5625, 2¢ → 0.25, 3¢ → 0.0625, 4¢ → 0."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import GammaTerms, Side
from pmm_widgets.economics.rewards import (
    NO_PROGRAM,
    RewardProgram,
    ScoredOrder,
    UsdCarry,
    adjusted_mid,
    book_orders,
    minute_reward,
    order_score,
    parse_program,
    program_of,
    q_min,
    score_book,
    score_orders,
    share,
    to_yes_terms,
)

V4 = RewardProgram(min_size=D(20), max_spread_c=D(4), daily_rate=D(144))
MID = D("0.50")


def test_program_units_and_activity() -> None:
    assert RewardProgram(D(50), D("3.5"), D(25)).max_spread == D("0.035")  # ¢ → price units
    assert RewardProgram(D(50), D(3), D(144)).per_minute() == D("0.1")  # $144 a day over 1440 minutes
    assert RewardProgram(D(0), D(3), D("14.4")).per_minute() == D("0.01")
    assert RewardProgram(D(0), D("0.5"), D("0.01")).active
    assert not RewardProgram(D(0), D(0), D(100)).active
    assert not RewardProgram(D(0), D(3), D(0)).active
    assert not NO_PROGRAM.active
    # a program built from bad numbers never pays
    assert not RewardProgram(D(0), D(3), D(-1)).active
    assert not RewardProgram(D(0), D(-3), D(100)).active


def test_parse_program_sums_pools_and_drops_only_the_bad_entry() -> None:
    prog, problems = parse_program({"rewardsMinSize": 50, "rewardsMaxSpread": 3.5,
                                    "clobRewards": [{"rewardsDailyRate": 25}, {"rewardsDailyRate": 5}]})
    assert prog == RewardProgram(D(50), D("3.5"), D(30)) and problems == []
    prog, problems = parse_program({"rewardsMinSize": 50, "rewardsMaxSpread": 3.5,
                                    "clobRewards": [{"rewardsDailyRate": 25}, {"rewardsDailyRate": -5}]})
    assert prog == RewardProgram(D(50), D("3.5"), D(25)) and len(problems) == 1 and "negative" in problems[0]
    # min size 0 is a program where every size scores
    prog, problems = parse_program({"rewardsMinSize": 0, "rewardsMaxSpread": 3, "clobRewards": [{"rewardsDailyRate": 10}]})
    assert prog == RewardProgram(D(0), D(3), D(10)) and problems == []
    # a bad entry first does not hide the good ones after it
    prog, problems = parse_program({"rewardsMinSize": 50, "rewardsMaxSpread": 3.5,
                                    "clobRewards": [{"rewardsDailyRate": -5}, {"rewardsDailyRate": 25},
                                                    {"rewardsDailyRate": -1}, {"rewardsDailyRate": 5}]})
    assert prog == RewardProgram(D(50), D("3.5"), D(30)) and len(problems) == 2
    # a negative max spread (even a small one): no program, said so
    for bad in (-3, -0.5):
        prog, problems = parse_program({"rewardsMinSize": 5, "rewardsMaxSpread": bad,
                                        "clobRewards": [{"rewardsDailyRate": 10}]})
        assert prog == NO_PROGRAM and any("rewardsMaxSpread" in p and "negative" in p for p in problems), bad
    # a pool (however small) with max spread 0: no order can score, said so
    prog, problems = parse_program({"rewardsMinSize": 5, "rewardsMaxSpread": 0, "clobRewards": [{"rewardsDailyRate": 0.5}]})
    assert prog == NO_PROGRAM and any("max spread" in p for p in problems)
    # no pool: no program, and nothing wrong with that
    prog, problems = parse_program({"rewardsMinSize": 5, "rewardsMaxSpread": 3,
                                    "clobRewards": [{"rewardsDailyRate": 0}]})
    assert prog == NO_PROGRAM and problems == []
    # max spread 0 without a pool is not a problem either
    assert parse_program({"rewardsMinSize": 5, "rewardsMaxSpread": 0, "clobRewards": []}) == (NO_PROGRAM, [])


def test_program_of_with_one_unreadable_field_never_raises() -> None:
    # terms decoded elsewhere may leave one field None (unreadable): no program, no exception
    for ms, sp in ((None, D(3)), (D(5), None), (None, None)):
        terms = GammaTerms(rewards_min_size=ms, rewards_max_spread=sp, reward_daily_rates=(D(10),))
        assert program_of(terms)[0] == NO_PROGRAM, (ms, sp)


def test_order_score_exact_figures_and_bounds() -> None:
    assert order_score(D(4), D(1)) == D("0.5625")
    assert order_score(D(4), D(2)) == D("0.25")
    assert order_score(D(4), D(3)) == D("0.0625")
    assert order_score(D(4), D("3.99")) == D("0.00000625")  # (0.01/4)² just inside v
    assert order_score(D(4), D(4)) == 0
    assert order_score(D(4), D(-1)) == 0  # a negative distance is not a distance
    assert order_score(D(-4), D(-5)) == 0
    assert order_score(D(4), D(2), D(3)) == D("0.75")  # b multiplies


def test_adjusted_mid_boundaries() -> None:
    # the cumulative size reaching the cutoff exactly counts
    bids = [(D("0.49"), D(5)), (D("0.48"), D(15))]
    asks = [(D("0.51"), D(20)), (D("0.52"), D(10))]
    assert adjusted_mid(bids, asks, D(5)) == D("0.50")
    assert adjusted_mid(bids, asks, D(20)) == D("0.495")
    assert adjusted_mid(bids, asks, D(21)) is None  # bids hold 20 only
    # cutoff 0: the first level that holds anything (an empty level is not a price)
    assert adjusted_mid([(D("0.49"), D(0)), (D("0.48"), D(10))], [(D("0.52"), D(10))], D(0)) == D("0.50")
    assert adjusted_mid([(D("0.49"), D("0.5")), (D("0.48"), D(10))], [(D("0.52"), D(10))], D(0)) == D("0.505")
    assert adjusted_mid([], asks, D(0)) is None
    assert adjusted_mid(bids, [], D(0)) is None


def test_to_yes_terms_all_four() -> None:
    assert to_yes_terms(True, Side.BUY, D("0.40"), D(7)) == ScoredOrder(True, D("0.40"), D(7))
    assert to_yes_terms(True, Side.SELL, D("0.60"), D(7)) == ScoredOrder(False, D("0.60"), D(7))
    assert to_yes_terms(False, Side.BUY, D("0.40"), D(7)) == ScoredOrder(False, D("0.60"), D(7))
    assert to_yes_terms(False, Side.SELL, D("0.30"), D(7)) == ScoredOrder(True, D("0.70"), D(7))


def test_q_min_band_edges_and_c() -> None:
    assert q_min(D(90), D(0), D("0.90")) == D(30)  # 0.90 is inside the band
    assert q_min(D(90), D(0), D("0.10")) == D(30)
    assert q_min(D(90), D(0), D("0.901")) == 0
    assert q_min(D(90), D(0), D("0.099")) == 0
    assert q_min(D(0), D(90), D("0.5")) == D(30)  # either side alone earns a third
    assert q_min(D(20), D(90), D("0.5")) == D(30)
    assert q_min(D(0), D(100), D("0.5")) == D(100) / 3  # a third, not a whole-number third
    assert q_min(D(100), D(0), D("0.5")) == D(100) / 3
    assert q_min(D(90), D(0), D("0.5"), c=D(2)) == D(45)
    assert q_min(D(20), D(90), D("0.95")) == D(20)


def test_score_orders_exact_figures() -> None:
    orders = [ScoredOrder(True, D("0.49"), D(100)),  # 1¢: 0.5625 × 100 = 56.25
              ScoredOrder(True, D("0.48"), D(20)),  # 2¢, exactly min size: 0.25 × 20 = 5
              ScoredOrder(True, D("0.48"), D("19.99")),  # under min size: 0
              ScoredOrder(True, D("0.46"), D(500)),  # 4¢ = v: 0
              ScoredOrder(False, D("0.53"), D(40)),  # 3¢: 0.0625 × 40 = 2.5
              ScoredOrder(False, D("0.49"), D(40))]  # an ask below the mid, 1¢: 0.5625 × 40 = 22.5
    q = score_orders(orders, MID, V4)
    assert (q.q_one, q.q_two) == (D("61.25"), D("25.0"))
    assert q.q_min == D("25.0")  # max(min(61.25, 25), 61.25 / 3 = 20.41…)
    assert score_orders(orders[:2], MID, V4).q_min == D("61.25") / 3
    assert score_orders(orders[:2], MID, V4, c=D(5)).q_min == D("12.25")
    # min size 0: a zero-size order adds nothing
    zero_min = RewardProgram(D(0), D(4), D(144))
    assert score_orders([ScoredOrder(True, D("0.49"), D(0))], MID, zero_min).q_one == 0
    # a negative size (no such order) scores nothing rather than taking score away
    for bad in (D(-10), D("-0.5")):
        assert score_orders([ScoredOrder(True, D("0.49"), bad)], MID, zero_min).q_one == 0
    # our orders larger than the level (a stale book): the level scores nothing, never below 0
    over = score_book([(D("0.49"), D(100))], [], MID, zero_min, minus=[ScoredOrder(True, D("0.49"), D(110))])
    assert over.q_one == 0


def test_score_book_exact_figures() -> None:
    bids = [(D("0.49"), D(100)), (D("0.48"), D(50)), (D("0.46"), D(10)), (D("0.45"), D(1000))]
    asks = [(D("0.52"), D(30)), (D("0.53"), D(40)), (D("0.54"), D(70))]
    q = score_book(bids, asks, MID, V4)
    assert q.q_one == D("68.75")  # 56.25 + 0.25 × 50
    assert q.q_two == D("10.0")  # 0.25 × 30 + 0.0625 × 40
    assert q.q_min == D("68.75") / 3
    # our 60 at 0.49 taken out: 0.5625 × 40 + 12.5 = 35
    assert score_book(bids, asks, MID, V4, minus=[ScoredOrder(True, D("0.49"), D(60))]).q_one == D("35.0")
    # our 90 at 0.49 leaves 10 < min size 20: that level no longer scores
    assert score_book(bids, asks, MID, V4, minus=[ScoredOrder(True, D("0.49"), D(90))]).q_one == D("12.5")
    # all of it taken: nothing left at 0.49
    assert score_book(bids, asks, MID, V4, minus=[ScoredOrder(True, D("0.49"), D(100))]).q_one == D("12.5")
    assert score_book(bids, asks, None, V4).q_min == 0
    assert score_book(bids, asks, MID, NO_PROGRAM).q_min == 0
    assert score_book(bids, asks, MID, V4, c=D(2)).q_min == D("34.375")


def test_score_book_spells_a_level_we_take_whole_like_the_general_path() -> None:
    # min size 0: a level our own orders fill entirely adds nothing, not a zero with decimals
    # (`score_book` is documented to give the same Decimals as `score_orders(book_orders(...))`)
    prog = RewardProgram(D(0), D(4), D(144))
    bids, asks = [(D("0.49"), D(100))], [(D("0.51"), D(30))]
    ours = [ScoredOrder(True, D("0.49"), D(100))]
    fast = score_book(bids, asks, MID, prog, minus=ours)
    assert str(fast.q_one) == str(score_orders(book_orders(bids, asks, minus=ours), MID, prog).q_one) == "0"


def _levels_then_stop(levels: list[tuple[D, D]]):
    """The levels, then a failure if the scan reads one more (best first: the far level ends it)."""
    yield from levels
    raise AssertionError("score_book read past a level that cannot score")


def test_score_book_reads_each_side_only_as_far_as_a_level_can_score() -> None:
    # documented: once a bid below the mid (an ask above it) is max spread or further away, the
    # scan of that side stops; a level exactly at v (4c) is already too far
    bids = [(D("0.49"), D(100)), (D("0.46"), D(10))]
    asks = [(D("0.51"), D(30)), (D("0.55"), D(10))]  # 5c: beyond v
    q = score_book(_levels_then_stop(bids), _levels_then_stop(asks), MID, V4)  # type: ignore[arg-type]
    assert (q.q_one, q.q_two) == (D("56.25"), D("16.875"))  # 0.5625 × 100, 0.5625 × 30


def test_a_level_of_exactly_min_size_scores() -> None:
    bids = [(D("0.49"), D(20))]  # V4's min size is 20
    assert score_book(bids, [], MID, V4).q_one == D("11.25")  # 0.5625 × 20
    assert score_book([(D("0.49"), D(50))], [], MID, V4, minus=[ScoredOrder(True, D("0.49"), D(30))]).q_one == D("11.25")


def test_book_orders_drops_levels_we_fill_entirely() -> None:
    bids = [(D("0.49"), D(100))]
    asks = [(D("0.51"), D(30))]
    assert book_orders(bids, asks, minus=[ScoredOrder(True, D("0.49"), D(100))]) == [ScoredOrder(False, D("0.51"), D(30))]
    assert book_orders(bids, asks, minus=[ScoredOrder(False, D("0.51"), D(40))]) == [ScoredOrder(True, D("0.49"), D(100))]
    # two of our orders at one level add up
    two = [ScoredOrder(True, D("0.49"), D(30)), ScoredOrder(True, D("0.49"), D(20))]
    assert book_orders(bids, [], minus=two) == [ScoredOrder(True, D("0.49"), D(50))]


def test_share_bounds() -> None:
    assert share(D(5), D(4)) == 1  # never more than the whole sample
    assert share(D(4), D(4)) == 1
    assert share(D(-1), D(4)) == 0
    assert share(D("-0.5"), D(4)) == 0
    assert share(D("0.25"), D("0.5")) == D("0.5")  # totals below 1 are real totals
    assert share(D(1), D(0)) == 0
    assert share(D(1), D(-4)) == 0


def test_minute_reward_rounds_down_at_1e_12() -> None:
    prog = RewardProgram(D(0), D(3), D(2))  # 2 / 1440 = 0.0013888…
    assert minute_reward(prog, D(1)) == D("0.001388888888")  # down, not …889
    assert minute_reward(prog, D(0)) == 0
    assert minute_reward(prog, D(-1)) == 0
    assert minute_reward(prog, D("-0.5")) == 0
    assert minute_reward(RewardProgram(D(0), D(0), D(2)), D(1)) == 0  # inactive
    assert minute_reward(RewardProgram(D(0), D(3), D(1440)), D("0.5")) == D("0.5")


def test_usd_carry_keeps_keys_apart() -> None:
    carry = UsdCarry()
    assert carry.round("a", D("0.0000007")) == 0
    assert carry.round("b", D("0.0000007")) == 0  # b does not inherit a's remainder
    assert carry.round("a", D("0.0000007")) == D("0.000001")
    assert carry.rest == {"a": D("0.0000004"), "b": D("0.0000007")}


@given(st.integers(0, 400), st.integers(1, 1000), st.integers(0, 1000))
def test_order_score_in_unit_interval_and_falls_with_distance(s_hund: int, v_hund: int, ds: int) -> None:
    v, s = D(v_hund) / 100, D(s_hund) / 100
    a, b = order_score(v, s), order_score(v, s + D(ds) / 100)
    assert 0 <= b <= a <= 1
    assert (a == 0) == (s >= v)


@pytest.mark.parametrize("mid", [D("0.10"), D("0.5"), D("0.90")])
def test_one_sided_quoting_earns_a_third_inside_the_band(mid: D) -> None:
    q = score_orders([ScoredOrder(True, mid - D("0.01"), D(300))], mid, V4)
    assert q.q_one == D("168.75") and q.q_two == 0 and q.q_min == D("56.25")
