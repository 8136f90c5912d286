"""Issue 13 faces: the universe table's rewards column ($/h), the totals line's PnL components and
the PnL chart's component lines."""

from __future__ import annotations

from decimal import Decimal

from pmm_widgets.analytics.pnl import PnlParts
from pmm_widgets.engine.snapshot import MarketSnapshot, SnapshotTotals
from pmm_widgets.engine.state import EngineState, MarketRow, Totals
from pmm_widgets.ui.charts import PNL_COMPONENTS, Charts
from pmm_widgets.ui.controls import COLUMNS, render_table, render_totals


def test_rewards_column_and_components() -> None:
    assert "rewards $/h" in COLUMNS
    ms = MarketSnapshot("0xa", question="Q?", status="quoting", rewards_per_hour=Decimal("0.1234"))
    row = ms.to_display(1)
    assert row.rewards_per_hour == 0.1234
    html = render_table([row, MarketRow("0xb", 2, "no program")])
    assert "<td class='rw'>0.123</td>" in html and "<td class='rw'>–</td>" in html
    D = Decimal
    parts = PnlParts(D("3.2"), D(0), D(0), spread=D("1.5"), inventory=D("-0.5"), inventory_usd=D(0), fees=D("0.25"),
                     rebates=D("0.05"), rewards=D("0.4"), settlement=D(2))
    t = SnapshotTotals(pnl=parts, rewards_per_hour=D("0.8")).to_display()
    assert (t.spread, t.inventory, t.fees, t.rebates, t.rewards, t.settlement) == (1.5, -0.5, 0.25, 0.05, 0.4, 2.0)
    line = render_totals(EngineState(totals=t))
    assert "fees -0.25" in line and "rewards +0.40 (0.80/h)" in line and "settlement +2.00" in line
    ch = Charts(rollover=10)
    ch.update(EngineState(totals=Totals(pnl=3.2, spread=1.5, fees=0.25)), 1000.0)
    assert ch.components.data["spread"] == [1.5] and ch.components.data["fees"] == [-0.25]
    assert set(ch.components.data) == {"t", *PNL_COMPONENTS}
