"""`rewards.score_book` (the engine's per-minute estimate of the other makers' score) equals the
general path it replaces, `score_orders(book_orders(bids, asks, minus), mid, prog)`, Decimal for
Decimal (value and spelling: `reward_estimates` rows print them), on books ordered as a
`BookView`'s (bids descending, asks ascending), at any mid — the size-cutoff-adjusted mid can lie
below the best bid or above the best ask, where a far level does not end the scan — with our
own orders taken out or not, levels emptied by them, sizes under the program's min size."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.economics.rewards import (
    NO_PROGRAM,
    RewardProgram,
    ScoredOrder,
    adjusted_mid,
    book_orders,
    score_book,
    score_orders,
)

TICK_STEPS = st.sampled_from([(D("0.01"), 100), (D("0.001"), 1000)])
SIZES = st.one_of(st.integers(1, 400).map(D), st.sampled_from([D("0.5"), D("10.00"), D("1E+2"), D("19.99"), D("20")]))


@st.composite
def books(draw):
    tick, n = draw(TICK_STEPS)
    ticks = sorted(draw(st.sets(st.integers(1, n - 1), min_size=0, max_size=40)))
    cut = draw(st.integers(0, len(ticks)))  # bids below, asks from there (a crossed split now and then)
    if draw(st.booleans()) and ticks:
        cut = draw(st.integers(0, len(ticks)))
    bids = [(tick * t, draw(SIZES)) for t in reversed(ticks[:cut])]  # best first: descending
    asks = [(tick * t, draw(SIZES)) for t in ticks[cut:]]  # ascending
    return tick, n, bids, asks


@st.composite
def cases(draw):
    tick, n, bids, asks = draw(books())
    prog = draw(st.one_of(
        st.just(NO_PROGRAM),
        st.builds(RewardProgram, st.sampled_from([D(0), D(5), D(20), D("50")]),
                  st.sampled_from([D("0.5"), D("1"), D("3.5"), D("4.5"), D("10")]),
                  st.sampled_from([D(0), D(100), D("2500.5")]))))
    kind = draw(st.sampled_from(["adjusted", "grid", "none"]))
    if kind == "adjusted":
        mid = adjusted_mid(bids, asks, prog.min_size)
    elif kind == "grid":
        mid = tick * draw(st.integers(1, 2 * n - 1)) / 2  # anywhere, also far from the touch
    else:
        mid = None
    levels = [(True, p, s) for p, s in bids] + [(False, p, s) for p, s in asks]
    minus = []
    if levels:  # our own orders, resting at book levels (whole, partly, twice) and elsewhere
        for _ in range(draw(st.integers(0, 6))):
            if draw(st.booleans()):
                bid, p, s = draw(st.sampled_from(levels))
                size = draw(st.sampled_from([s, s / 2, D(1)]))
            else:
                bid, p, size = draw(st.booleans()), tick * draw(st.integers(1, n - 1)), draw(SIZES)
            minus.append(ScoredOrder(bid, p, size))
    return bids, asks, mid, prog, minus


def _same(a, b):
    return [(str(x), str(y)) for x, y in zip((a.q_one, a.q_two, a.q_min), (b.q_one, b.q_two, b.q_min), strict=True)]


@settings(max_examples=600, deadline=None)
@given(cases())
def test_score_book_equals_scoring_every_level(case):
    bids, asks, mid, prog, minus = case
    fast = score_book(bids, asks, mid, prog, minus=minus)
    full = score_orders(book_orders(bids, asks, minus=minus), mid, prog)
    assert fast == full
    assert all(x == y for x, y in _same(fast, full)), (_same(fast, full), mid)


def test_a_far_level_on_the_wrong_side_of_the_mid_does_not_end_the_scan():
    """A bid above the mid (an ask below it) is far from it, yet the next levels come nearer and
    score: only a far level beyond the mid ends a side's scan. (Against the size-cutoff-adjusted
    mid such a level is smaller than the cutoff; `score_book` takes any mid.)"""
    prog = RewardProgram(D(20), D("3.5"), D(100))
    bids = [(D("0.70"), D(30)), (D("0.60"), D(30)), (D("0.40"), D(30))]
    asks = [(D("0.55"), D(30)), (D("0.63"), D(30)), (D("0.90"), D(30))]  # (crossed: any levels score alike)
    mid = D("0.62")
    full = score_orders(book_orders(bids, asks), mid, prog)
    assert full.q_one > 0 and full.q_two > 0  # the 0.60 bid and the 0.63 ask, after the far 0.70 / 0.55
    assert score_book(bids, asks, mid, prog) == full
