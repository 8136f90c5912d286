"""The live cycle reads a venue day's payouts in a task of its own and books the answer at the
first cycle after it (`QuoteCycle._venue_payouts`): two reads with retries can take the broker's
deadline twice over, and are asked again every few minutes while they fail; the quote loop used
to wait for them inline."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.store.sink import MemorySink

NOW = 1_796_200_000.0  # 2026-12-02 07:46 UTC: the venue's payouts of 2026-12-01 are due
DAY = "2026-12-01"


class SlowVenue:
    """`venue_payouts` answering only when `answer` is set (a list of answers or exceptions)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.go = asyncio.Event()
        self.asked: list[str] = []

    async def venue_payouts(self, date: str) -> Any:
        self.asked.append(date)
        await self.go.wait()
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a


def _cycle() -> QuoteCycle:
    qc = QuoteCycle(Params(), MemorySink(), Mode.LIVE)
    qc.econ.rewards_by_day[("0xa", DAY)] = D("0.75")
    qc.pnl.ledger("0xa").rewards += D("0.75")
    return qc


async def _settled(qc: QuoteCycle) -> None:
    assert qc._payouts is not None
    await asyncio.wait([qc._payouts[1]], timeout=5)


async def test_the_cycle_never_waits_for_the_venue_and_books_the_answer_at_the_next_cycle():
    qc, venue = _cycle(), SlowVenue(([{"condition_id": "0xa", "earnings": 2.5}], []))
    await asyncio.wait_for(qc._venue_payouts(NOW, venue), 1)  # asks, does not wait
    await asyncio.wait_for(qc._venue_payouts(NOW + 3, venue), 1)  # still out: nothing, no second ask
    assert venue.asked == [DAY] and qc.pnl.ledger("0xa").rewards == D("0.75")
    venue.go.set()
    await _settled(qc)
    await qc._venue_payouts(NOW + 6, venue)
    assert qc.pnl.ledger("0xa").rewards == D("2.5") and qc._payouts is None
    assert DAY in qc.econ.payouts.done
    await qc._venue_payouts(NOW + 9, venue)
    assert venue.asked == [DAY]  # read once per day


async def test_a_failed_read_keeps_the_estimate_and_is_asked_again_later():
    qc, venue = _cycle(), SlowVenue(RuntimeError("venue down"), ([{"condition_id": "0xa", "earnings": 2.0}], []))
    venue.go.set()
    await qc._venue_payouts(NOW, venue)
    await _settled(qc)
    await qc._venue_payouts(NOW + 1, venue)
    assert qc.pnl.ledger("0xa").rewards == D("0.75") and DAY not in qc.econ.payouts.done
    assert any("venue payouts for 2026-12-01 failed: RuntimeError: venue down" in str(r.get("message"))
               for r in qc.rec.sink.rows.get("events", []))  # type: ignore[attr-defined]
    await qc._venue_payouts(NOW + 2, venue)
    assert venue.asked == [DAY]  # not before retry_sec
    await qc._venue_payouts(NOW + qc.econ.payouts.retry_sec + 2, venue)
    await _settled(qc)
    await qc._venue_payouts(NOW + qc.econ.payouts.retry_sec + 3, venue)
    assert venue.asked == [DAY, DAY] and qc.pnl.ledger("0xa").rewards == D("2.0")


async def test_aclose_ends_a_read_still_out_and_leaves_the_day_unread():
    qc, venue = _cycle(), SlowVenue(([], []))
    await qc._venue_payouts(NOW, venue)
    assert qc._payouts is not None
    task = qc._payouts[1]
    await asyncio.wait_for(qc.aclose(), 1)
    assert task.cancelled() and qc._payouts is None and DAY not in qc.econ.payouts.done
    await qc.aclose()  # nothing out: nothing to do
