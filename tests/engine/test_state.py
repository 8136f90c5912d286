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


def test_the_kill_result_is_ok_only_when_stopped_with_nothing_left_at_the_venue():
    assert KillResult(1.0, 3, 0, True, "").ok
    assert not KillResult(1.0, 3, 1, True, "").ok  # an order still open at the venue
    assert not KillResult(1.0, 3, 0, False, "").ok  # not stopped
    assert not KillResult(1.0, 3, -1, True, "").ok  # the venue's count unknown


def test_the_state_before_an_owner_and_its_params_as_json():
    s = EngineState()
    assert (s.role, s.mode, s.running, s.paused, s.tick, s.ts, s.markets, s.kill, s.halted) == (
        "idle", "paper", False, False, 0, 0.0, [], None, None)
    assert (s.feed.connected, s.feed.reconnects, s.totals.pnl, s.totals.fills_per_min) == (False, 0, 0.0, 0.0)
    j = params_to_json(Params(alpha=2.5, quote_size=Decimal("12.5"), quoting_paused=True))
    assert (j["alpha"], j["quote_size"], j["quoting_paused"], j["requote_ticks"]) == (2.5, "12.5", True, 1)
    from pmm_widgets.engine.state import EngineEvent, EventLog  # the old names stay importable
    from pmm_widgets.events import Event, EventBus

    assert (EngineEvent, EventLog) == (Event, EventBus)


STATE_JSON_KEYS = {  # what an attached tab reads from the lease's state_json (a newer owner may add keys)
    "EngineState": {"role", "mode", "running", "paused", "pause_note", "owner", "venue", "tick", "ts", "started_ts",
                    "markets", "totals", "feed", "writer_lag_sec", "writer", "halted", "venue_health", "recording",
                    "last_error", "params", "kill", "handover_ts"},
    "MarketRow": {"condition_id", "rank", "question", "mid", "spread", "yes_bid", "yes_ask", "no_bid", "no_ask",
                  "inv_yes", "inv_no", "pnl", "fills", "fills_per_min", "status", "strategy", "rewards_per_hour"},
    "Totals": {"pnl", "realized", "unrealized", "spread", "inventory", "fees", "rebates", "rewards", "settlement",
               "rewards_per_hour", "fills", "fills_per_min", "placed", "cancels", "open_orders"},
    "FeedState": {"connected", "lag_sec", "reconnects", "stale_tokens"},
    "KillResult": {"ts", "cancelled", "venue_open_after", "stopped", "message"},
}


def test_the_state_json_keys_and_every_default_is_empty():
    s = EngineState(markets=[MarketRow("0xa", 1, "A?")], kill=KillResult(1.0, 0, 0, True, "done"))
    j = s.to_json()
    got = {"EngineState": set(j), "MarketRow": set(j["markets"][0]), "Totals": set(j["totals"]),
           "FeedState": set(j["feed"]), "KillResult": set(j["kill"])}
    assert got == STATE_JSON_KEYS
    blank = {**j, "markets": [], "kill": None}
    empty = {k: v for k, v in blank.items() if k not in ("role", "mode", "totals", "feed", "params")}
    assert all(v in (None, "", 0, False, []) for v in empty.values()), empty
    assert all(v == 0 and v is not False for v in j["totals"].values())
    row = j["markets"][0]
    assert {k: v for k, v in row.items() if k not in ("condition_id", "rank", "question")} == {
        "mid": None, "spread": None, "yes_bid": None, "yes_ask": None, "no_bid": None, "no_ask": None,
        "inv_yes": 0.0, "inv_no": 0.0, "pnl": 0.0, "fills": 0, "fills_per_min": 0.0, "status": "", "strategy": "",
        "rewards_per_hour": None}
    assert j["feed"] == {"connected": False, "lag_sec": None, "reconnects": 0, "stale_tokens": 0}
    assert EngineState.from_json(json.loads(json.dumps(j))) == s
    for v in (s, s.markets[0], s.totals, s.feed, s.kill):  # slots: a state is built every second
        assert not hasattr(v, "__dict__"), type(v)
