"""A quote cycle cut while the venue's scoring read of the minute's reward sample is under way
(a pause cuts the cycle where it is, `OwnerSession.cut_cycle`; the run goes on) keeps that
minute's estimate: recorded without the venue's answer, as when the read fails. It was lost (no
`reward_estimates` row, nothing in the ledger) when the cycle ended at that read."""
from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal as D

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode
from pmm_widgets.economics.rewards import QScore
from pmm_widgets.economics.tracker import RewardSample
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.store.sink import MemorySink

T0 = 1_796_200_000.0


class HeldScoring:
    """A venue whose scoring read does not answer."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def orders_scoring(self, ids: list[str]) -> dict[str, bool]:
        self.asked.set()
        await asyncio.sleep(30)
        return {}


async def test_a_cut_during_the_scoring_read_keeps_the_minutes_estimate():
    sink = MemorySink()
    qc = QuoteCycle(Params(), sink, Mode.LIVE)
    sample = RewardSample("0xa", D("0.45"), QScore(), D(0), D(0), D("0.25"), D("0.25") * 60, 1, 1, ["a1"], ["a1"])
    venue = HeldScoring()
    read = asyncio.create_task(qc._record_rewards(T0, [sample], venue))  # type: ignore[arg-type]
    await asyncio.wait_for(venue.asked.wait(), 2)
    read.cancel()  # the cut
    with contextlib.suppress(asyncio.CancelledError):
        await read
    assert read.cancelled()  # (the cut still ends the cycle there)
    (row,) = sink.rows["reward_estimates"]
    assert row["venue_scoring"] is None and row["usd"] == D("0.25")
    assert qc.pnl.ledger("0xa").rewards == D("0.25")
