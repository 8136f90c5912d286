"""EngineState survives the lease row (JSON) unchanged; the event log is bounded and robust."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.analytics.pnl import PnlParts
from pmm_widgets.config import Params
from pmm_widgets.domain import Market
from pmm_widgets.engine.snapshot import CycleSnapshot, MarketSnapshot, SnapshotTotals
from pmm_widgets.engine.state import (
    EngineState,
    EventLog,
    FeedState,
    KillResult,
    MarketRow,
    Totals,
    params_to_json,
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


def test_snapshot_display_drops_non_finite_and_derives_no_side():
    D = Decimal
    nan = PnlParts(D("NaN"), D(0), D(0), D(0), D(0), D(0))
    ms = MarketSnapshot("0xc", "q", "quoting", mid=D("0.5"), yes_bid=D("0.48"), yes_ask=D("0.52"),
                        inventory_yes=D(3), pnl=nan, fills=2, fills_per_min=float("inf"))
    row = ms.to_display(1)
    assert (row.mid, row.spread, row.inv_yes, row.pnl, row.fills_per_min) == (0.5, 0.04, 3.0, 0.0, 0.0)  # exact, then float
    assert (row.no_bid, row.no_ask) == (float(1 - D("0.52")), float(1 - D("0.48")))


def test_snapshot_to_display_ranks_by_universe_and_keeps_state_json_keys():
    D = Decimal
    a, b = (Market(f"0x{i}", f"Q{i}?", f"y{i}", f"n{i}", D("0.01"), D(5)) for i in "ab")
    parts = PnlParts(D("1.25"), D("1"), D("0.25"), D("2"), D("-0.75"), D(3))
    snap = CycleSnapshot(5.0, {b.condition_id: MarketSnapshot(b.condition_id, "", "quoting", pnl=parts, fills=4)},
                         SnapshotTotals(pnl=parts, fills=4, placed=7, open_orders=2))
    rows, tot = snap.to_display([a, b])
    assert [(r.rank, r.condition_id, r.status, r.question) for r in rows] == [
        (1, "0xa", "waiting", "Qa?"), (2, "0xb", "quoting", "Qb?")]
    assert (rows[1].pnl, rows[1].fills) == (1.25, 4)
    assert (tot.pnl, tot.realized, tot.spread, tot.inventory, tot.placed, tot.open_orders) == (1.25, 1.0, 2.0, -0.75, 7, 2)
    back = json.loads(json.dumps(EngineState(markets=rows, totals=tot).to_json()))
    assert set(back["totals"]) >= {"pnl", "realized", "spread", "inventory", "fees", "open_orders"}
    assert set(back["markets"][0]) >= {"condition_id", "inv_yes", "inv_no", "pnl", "yes_bid", "no_ask"}


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
