"""`economics/rewards.py`: what the mutation pass over `economics/tracker.py` found still untested
in the scoring it calls (everything else there, and in `fees.py` / `payouts.py`, is pinned by
test_mut_rewards.py, test_mut_fees.py, test_mut_payouts.py and the other economics tests).

Figures worked by hand (polymarket-api.md §7): an order `s`¢ from the mid with max spread `v`¢
scores ((v − s)/v)² per share; inside mid [0.10, 0.90] Q_min = max(min(Q_one, Q_two), max/3)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest

from pmm_widgets.economics.rewards import QScore, RewardProgram, ScoredOrder, book_orders, score_book, score_orders

ANY_SIZE = RewardProgram(D(0), D(4), D(144))  # no minimum size, 4¢, $144 a day


def test_scored_orders_and_scores_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ScoredOrder(True, D("0.5"), D(1)).size = D(2)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        QScore().q_min = D(1)  # type: ignore[misc]


def test_without_a_min_size_a_fraction_of_a_share_scores() -> None:
    # half a share 2¢ off each side: 0.25 × 0.5 = 0.125 a side
    half = [ScoredOrder(True, D("0.48"), D("0.5")), ScoredOrder(False, D("0.52"), D("0.5"))]
    assert score_orders(half, D("0.5"), ANY_SIZE) == QScore(D("0.125"), D("0.125"), D("0.125"))
    assert score_book([(D("0.48"), D("0.5"))], [(D("0.52"), D("0.5"))], D("0.5"), ANY_SIZE) == \
        QScore(D("0.125"), D("0.125"), D("0.125"))
    # a level of the book with a share or less left after ours is still a competitor's order
    assert score_book([(D("0.48"), D(3))], [(D("0.52"), D(1))], D("0.5"), ANY_SIZE,
                      minus=[ScoredOrder(True, D("0.48"), D(2))]) == QScore(D("0.25"), D("0.25"), D("0.25"))
    assert book_orders([(D("0.48"), D("0.5"))], [(D("0.52"), D(3))], minus=[ScoredOrder(False, D("0.52"), D(2))]) == \
        [ScoredOrder(True, D("0.48"), D("0.5")), ScoredOrder(False, D("0.52"), D(1))]
