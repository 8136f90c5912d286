"""The dashboard's strategy dropdown: shows the selected market's strategy, sets it through
`engine.set_strategy`, refuses nothing silently, and follows changes made elsewhere."""

from __future__ import annotations

import time

from pmm_widgets.engine import Engine
from pmm_widgets.engine.state import EngineState, MarketRow, Totals
from pmm_widgets.ui.controls import ControlPanel


def _state(strategies: list[str], tick: int = 1) -> EngineState:
    rows = [MarketRow(f"0xc{i}", i + 1, f"Q{i}?", mid=0.5, status="quoting", strategy=s)
            for i, s in enumerate(strategies)]
    return EngineState(role="owner", running=True, tick=tick, ts=time.time(), markets=rows,
                       totals=Totals(), params={"alpha": 1.5})


def test_dropdown_follows_the_selected_market_and_sets_its_strategy(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    st = _state(["spread", "as", "mine"])
    panel.charts.set_markets(st)
    panel.refresh(st)
    assert panel.charts.market.value == "0xc0" and panel.strategy.value == "spread"
    panel.charts.market.value = "0xc1"
    assert panel.strategy.value == "as"
    panel.charts.market.value = "0xc2"  # a user's own strategy shows as an extra option
    assert panel.strategy.value == "mine" and "mine" in panel.strategy.options

    panel.charts.market.value = "0xc0"
    panel.strategy.value = "microprice"
    assert engine._strategy_overrides["0xc0"] == ("microprice", {})
    assert "microprice" in panel.message.value
    panel.refresh(_state(["spread", "as", "mine"], tick=2))  # the engine has not requoted yet: keep the choice
    assert panel.strategy.value == "microprice"
    panel.refresh(_state(["microprice", "as", "mine"], tick=3))
    assert panel.strategy.value == "microprice"
    panel.refresh(_state(["regime", "as", "mine"], tick=4))  # changed elsewhere (notebook, another face)
    assert panel.strategy.value == "regime"
    assert engine._strategy_overrides["0xc0"] == ("microprice", {})  # following is not setting


def test_dropdown_needs_a_selected_market(settings):
    engine = Engine(settings)
    panel = ControlPanel(engine)
    panel.strategy.value = "as"
    assert engine._strategy_overrides == {}
    assert "select a market" in panel.message.value and panel.strategy.value is None
