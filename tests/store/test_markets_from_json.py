"""`markets_from_json`: a recorded universe back as `Market`s, and a clear ValueError naming the
market and the field for anything `market_to_json` never writes (a replay names such a row and
keeps the universe it had: `test_replay_offline`, `test_replay_rows_fuzz`)."""

from __future__ import annotations

import json
from decimal import Decimal as D
from typing import Any

import pytest

from pmm_widgets.domain import Market
from pmm_widgets.store.recording import market_to_json, markets_from_json

M = Market("0xc1", "Q?", "111", "222", D("0.01"), D("5"), best_bid=0.4, best_ask=None, end_date="2027-01-01")


def _js(**kw: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(market_to_json(M))), **kw}


def test_what_market_to_json_writes_comes_back_equal() -> None:
    untradable = Market("0xu", "", "", "", D(0), D(0))  # Gamma named no tokens nor tick: kept, never quoted
    assert markets_from_json([_js(), json.loads(json.dumps(market_to_json(untradable)))]) == [M, untradable]
    assert markets_from_json([_js(best_bid="0.4", liquidity_num=3)])[0].best_bid == 0.4  # numbers as text too
    assert markets_from_json([]) == []


@pytest.mark.parametrize(("items", "said"), [
    ({"condition_id": "0xc1"}, "a universe is a list of markets, not dict"),
    ("[]", "a universe is a list of markets, not str"),
    ([5], "market 0: not an object"),
    ([_js(), _js(condition_id="")], "market 1 (): condition_id is no id"),
    ([_js(condition_id=7)], "market 0 (7): condition_id is no id"),
    ([_js(yes_token_id=None)], "market 0 (0xc1): yes_token_id is no id"),
    ([_js(question=3)], "market 0 (0xc1): question is no text"),
    ([_js(neg_risk="false")], "market 0 (0xc1): neg_risk is no true/false"),
    ([_js(tick_size=None)], "market 0 (0xc1): tick_size is no number"),
    ([_js(tick_size=True)], "market 0 (0xc1): tick_size is no number"),
    ([_js(tick_size="x")], "market 0 (0xc1): tick_size is no number: 'x'"),
    ([_js(tick_size="NaN")], "market 0 (0xc1): tick_size NaN is not in [0, 1)"),
    ([_js(tick_size="1")], "market 0 (0xc1): tick_size 1 is not in [0, 1)"),
    ([_js(tick_size=-0.01)], "market 0 (0xc1): tick_size -0.01 is not in [0, 1)"),
    ([_js(min_order_size="-1")], "market 0 (0xc1): min_order_size -1 is no size"),
    ([_js(min_order_size="Infinity")], "market 0 (0xc1): min_order_size Infinity is no size"),
    ([_js(best_ask=[1])], "market 0 (0xc1): best_ask is no number"),
    ([_js(liquidity_num=None)], "market 0 (0xc1): liquidity_num is no number"),
    ([_js(volume_24h="x")], "market 0 (0xc1): volume_24h is no number: 'x'"),
    ([_js(best_bid=10**400)], "market 0 (0xc1): best_bid is no number: '10000000000000000000'"),
    ([_js(end_date=5)], "market 0 (0xc1): end_date is no text"),
    ([_js(raw=[1])], "market 0 (0xc1): raw is no object"),
])
def test_a_universe_that_is_not_what_market_to_json_writes_is_refused_naming_the_market(items: Any, said: str) -> None:
    with pytest.raises(ValueError) as ei:
        markets_from_json(items)
    assert str(ei.value) == said
