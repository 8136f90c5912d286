"""What the venue paid, pinned where mutation testing found it untested (`economics/payouts.py`
docstring: amounts are finite numbers ≥ 0, rows of one market add up; a day is asked for once its
payouts are `SETTLE_SEC` old, again `retry_sec` after a failure)."""

from __future__ import annotations

from decimal import Decimal as D

from pmm_widgets.economics.payouts import SETTLE_SEC, PayoutSchedule, parse_paid, venue_date

DAY1 = 1_796_083_200.0  # 2026-12-01 00:00 UTC
DAY2 = DAY1 + 86_400


def test_amounts_are_read_exactly() -> None:
    rows = [{"condition_id": "0xa", "earnings": 0.1},  # a float by its repr: 0.1, not 0.1000000000000000055…
            {"condition_id": "0xa", "earnings": 0.2},
            {"condition_id": "0xb", "earnings": " 2.500000 "},
            {"condition_id": "0xc", "earnings": 0},  # a zero payout is a payout, not a problem
            {"condition_id": "0xd", "earnings": "-0"}]
    paid, problems = parse_paid(rows, "earnings")
    assert paid == {"0xa": D("0.3"), "0xb": D("2.5"), "0xc": D(0), "0xd": D(0)} and problems == []
    assert str(paid["0xa"]) == "0.3"


def test_unreadable_amounts_pay_nothing() -> None:
    rows = [{"condition_id": "0xa", "earnings": "Infinity"}, {"condition_id": "0xa", "earnings": "-0.000001"},
            {"condition_id": "0xa", "earnings": "abc"}, {"condition_id": "", "earnings": 1},
            {"condition_id": 7, "earnings": 1}, {"condition_id": "0xa", "earnings": False}]
    paid, problems = parse_paid(rows, "earnings")
    assert paid == {} and len(problems) == 6
    assert parse_paid([], "earnings") == ({}, [])
    assert parse_paid(None, "earnings") == ({}, ["payouts: answer is NoneType, not a list"])


def test_a_day_is_due_only_once_its_payouts_are_settle_sec_old() -> None:
    assert SETTLE_SEC == 120.0  # two venue minutes after midnight
    s = PayoutSchedule(retry_sec=300)
    s.answered("2026-11-30")
    assert s.due(DAY2 + 119) is None  # Dec 1 not settled yet; Nov 30 done
    assert s.due(DAY2 + 120) == "2026-12-01"  # exactly settled
    fresh = PayoutSchedule()
    assert fresh.due(DAY2 + 119) == "2026-11-30"
    assert fresh.due(DAY2 + 86_400 + 119) == "2026-12-01"
    assert fresh.due(DAY2 + 86_400 + 120) == "2026-12-02"
    assert venue_date(DAY2 - 1) == "2026-12-01" and venue_date(DAY2) == "2026-12-02"


def test_after_a_failure_the_retry_waits_exactly_retry_sec() -> None:
    s = PayoutSchedule(retry_sec=300)
    now = DAY2 + 600
    s.failed(now)
    assert s.due(now + 299.999) is None
    assert s.due(now + 300) == "2026-12-01"
    assert PayoutSchedule().retry_sec == 300.0
