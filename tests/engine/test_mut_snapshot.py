"""`engine.snapshot` (mutation-testing round): the snapshot before any cycle shows zeros and a
neutral calibration, the replay/sweep summary's keys and values (a contract: `sweep_points`
columns), a market's own question kept over the universe's, and immutable, slotted values."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, fields
from decimal import Decimal as D

import pytest

from pmm_widgets.analytics.pnl import PnlParts
from pmm_widgets.domain import Market
from pmm_widgets.engine.snapshot import EMPTY, NO_PNL, CycleSnapshot, MarketSnapshot, SnapshotTotals


def market(cid: str, question: str) -> Market:
    return Market(condition_id=cid, question=question, yes_token_id=cid + "y", no_token_id=cid + "n",
                  tick_size=D("0.01"), min_order_size=D(5))


def test_before_any_cycle_everything_reads_zero_and_the_calibration_is_neutral():
    assert EMPTY.ts == 0.0 and dict(EMPTY.markets) == {}
    rows, totals = EMPTY.to_display([market("0xa", "A?")])
    assert [(r.condition_id, r.rank, r.question, r.status) for r in rows] == [("0xa", 1, "A?", "waiting")]
    assert all(getattr(totals, f.name) == 0 for f in fields(totals))
    ms = MarketSnapshot("0xa", "A?", "quoting")
    assert (ms.fills, ms.fills_per_min, ms.placed, ms.calib_mult, ms.pnl) == (0, 0.0, 0, 1.0, NO_PNL)
    assert (ms.inventory_yes, ms.inventory_no, ms.rewards_per_hour) == (D(0), D(0), None)
    t = SnapshotTotals()
    assert (t.fills, t.fills_per_min, t.placed, t.cancels, t.rejected, t.open_orders) == (0, 0.0, 0, 0, 0, 0)
    assert t.rewards_per_hour == D(0) and t.pnl == NO_PNL


def test_the_summary_keys_and_values():
    p = PnlParts(total=D("2.5"), realized=D("1.5"), unrealized=D("-0.25"), spread=D("0.75"), inventory=D("0.5"),
                 inventory_usd=D("12"), fees=D("0.1"), rebates=D("0.2"), rewards=D("0.3"), settlement=D("0.4"))
    t = SnapshotTotals(pnl=p, rewards_per_hour=D("0.05"), cancels=7, rejected=2)
    assert t.summary() == {
        "pnl_total": 2.5, "realized": 1.5, "unrealized": -0.25, "spread_pnl": 0.75, "inventory_pnl": 0.5,
        "inventory_usd": 12.0, "fees": 0.1, "rebates": 0.2, "rewards": 0.3, "settlement": 0.4, "rewards_per_hour": 0.05,
        "cancels": 7, "rejected": 2}
    assert all(type(v) is float for k, v in t.summary().items() if k not in ("cancels", "rejected"))


def test_a_markets_own_question_is_kept_and_an_empty_one_comes_from_the_universe():
    snap = CycleSnapshot(5.0, {"0xa": MarketSnapshot("0xa", "own?", "quoting"),
                               "0xb": MarketSnapshot("0xb", "", "quoting")}, SnapshotTotals())
    rows, _ = snap.to_display([market("0xa", "universe A?"), market("0xb", "universe B?")])
    assert [(r.rank, r.question) for r in rows] == [(1, "own?"), (2, "universe B?")]


@pytest.mark.parametrize(("value", "name"), [(MarketSnapshot("0xa", "A?", "quoting"), "status"),
                                             (SnapshotTotals(), "fills"), (EMPTY, "ts")])
def test_snapshots_are_immutable_slotted_values(value, name):
    with pytest.raises(FrozenInstanceError):
        setattr(value, name, 1)
    assert not hasattr(value, "__dict__")
