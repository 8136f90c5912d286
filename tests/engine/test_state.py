"""EngineState survives the lease row (JSON) unchanged; the event log is bounded and robust."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.config import Params
from pmm_widgets.engine.state import (
    EngineState,
    EventLog,
    FeedState,
    KillResult,
    MarketRow,
    Totals,
    params_to_json,
    row_from_market_state,
)

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
rows = st.builds(MarketRow, condition_id=st.text(min_size=1, max_size=10), rank=st.integers(1, 500),
                 question=st.text(max_size=30), mid=st.none() | finite, yes_bid=st.none() | finite,
                 inv_yes=finite, pnl=finite, fills=st.integers(0, 10**6), status=st.text(max_size=10))


@given(markets=st.lists(rows, max_size=5), tick=st.integers(0, 10**9), err=st.none() | st.text(max_size=20),
       killed=st.booleans())
def test_state_json_roundtrip(markets, tick, err, killed):
    s = EngineState(role="owner", tick=tick, markets=markets, totals=Totals(pnl=1.5, fills=3),
                    feed=FeedState(True, 0.2, 1, 0), last_error=err, params=params_to_json(Params()),
                    kill=KillResult(1.0, 4, 0, True, "KILLED") if killed else None)
    back = EngineState.from_json(json.loads(json.dumps(s.to_json())))
    assert back == s


def test_params_json_is_exact_and_valid():
    p = Params(quote_size=Decimal("12.5"))
    data = json.loads(json.dumps(params_to_json(p)))
    assert Params.model_validate(data) == p


def test_market_state_adapter_drops_non_finite():
    ms = SimpleNamespace(question="q", mid=Decimal("0.5"), yes_bid=Decimal("0.48"), yes_ask=Decimal("0.52"),
                         no_bid=None, no_ask=None, inventory_yes=Decimal(3), inventory_no=Decimal(0),
                         pnl_total=Decimal("NaN"), fills=2, fills_per_min=float("inf"), status="quoting")
    row = row_from_market_state(1, "0xc", ms)
    assert (row.mid, row.spread, row.inv_yes, row.pnl, row.fills_per_min) == (0.5, 0.52 - 0.48, 3.0, 0.0, 0.0)


def test_event_log_bounded_and_isolates_bad_subscribers():
    log = EventLog(maxlen=3)
    got = []
    log.subscribe(lambda ev: 1 / 0)
    unsubscribe = log.subscribe(got.append)
    for i in range(5):
        log.emit("INFO", "universe", str(i))
    assert [e.message for e in log.recent()] == ["2", "3", "4"] and len(got) == 5
    unsubscribe()
    log.emit("INFO", "universe", "5")
    assert len(got) == 5
