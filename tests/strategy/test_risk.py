"""Risk limits, valves and the kill decision."""

from __future__ import annotations

from decimal import Decimal

from strategy_helpers import make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import Quote, Side
from pmm_widgets.events import EventBus, EventKind
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.planner import Plan
from pmm_widgets.strategy.risk import RiskManager, exposure_usd

D = Decimal
M = make_market(0)
CID = M.condition_id


def q(token, side, price, size="10"):
    return Quote(CID, token, side, D(price), D(size))


def events(bus):
    return [e for e in bus.recent(500) if e.kind is EventKind.RISK_BREACH]


def test_inventory_limit_blocks_growth_but_allows_shedding():
    sink = EventBus()
    r = RiskManager(Params(max_inventory_shares=D(100), max_inventory_usd=D(1000)), sink)
    quotes = [q("y0", Side.BUY, "0.45"), q("y0", Side.SELL, "0.50")]
    r.begin_cycle()
    kept = r.filter_quotes(0.0, M, quotes, Inventory(D(95), D(0)), D("0.47"), D(0))
    assert kept == [quotes[1]]
    assert len(r.end_cycle()) == 1 and len(events(sink)) == 1
    r.begin_cycle()  # still binding next cycle: no new event (edge-triggered)
    r.filter_quotes(1.0, M, quotes, Inventory(D(95), D(0)), D("0.47"), D(0))
    assert r.end_cycle() == [] and len(events(sink)) == 1
    # long NO: buying NO grows the short-YES exposure
    r.begin_cycle()
    assert r.filter_quotes(2.0, M, [q("n0", Side.BUY, "0.50"), q("y0", Side.BUY, "0.45")],
                           Inventory(D(0), D(95)), D("0.47"), D(0)) == [q("y0", Side.BUY, "0.45")]


def test_usd_limits_and_global_limit():
    r = RiskManager(Params(max_inventory_usd=D(20), max_total_inventory_usd=D(100)), EventBus())
    r.begin_cycle()
    buy = q("y0", Side.BUY, "0.45")
    assert r.filter_quotes(0.0, M, [buy], Inventory(D(40), D(0)), D("0.47"), D(0)) == []  # 50 × 0.47 > 20
    assert r.filter_quotes(0.0, M, [buy], Inventory(D(20), D(0)), D("0.47"), D(0)) == [buy]
    assert r.filter_quotes(0.0, M, [buy], Inventory(D(0), D(0)), D("0.47"), D(99)) == []  # global
    assert exposure_usd(D(-10), D("0.3")) == D("7.0")


def test_price_band_drops_far_quotes():
    r = RiskManager(Params(price_band=D("0.05")), EventBus())
    r.begin_cycle()
    near, far, far_no = q("y0", Side.BUY, "0.44"), q("y0", Side.BUY, "0.40"), q("n0", Side.BUY, "0.45")
    # NO bid 0.45 is a YES ask at 0.55: 0.08 from mid 0.47
    assert r.filter_quotes(0.0, M, [near, far, far_no], Inventory(), D("0.47"), D(0)) == [near]


def test_action_rate_defers_and_cancels_go_first():
    sink = EventBus()
    r = RiskManager(Params(max_actions_per_min=5), sink)
    r.begin_cycle()
    pl = Plan(place=[q("y0", Side.BUY, "0.4"), q("n0", Side.BUY, "0.5"), q("y0", Side.SELL, "0.6")],
              cancel=["a", "b", "c"])
    out = r.limit_actions(0.0, pl, 3, {"a": "y0", "b": "x", "c": "z"})
    assert out.cancel == ["a", "b", "c"] and out.place == pl.place[:2]
    out2 = r.limit_actions(30.0, Plan(place=[q("y0", Side.BUY, "0.4")], cancel=["d"]), 2, {"d": "y0"})
    assert out2.cancel == [] and out2.place == []  # budget used up within the minute
    out3 = r.limit_actions(61.0, Plan(place=[q("y0", Side.BUY, "0.4")], cancel=["d"]), 2, {"d": "y0"})
    assert out3.cancel == ["d"] and len(out3.place) == 1
    assert any("action rate" in m for m in r.end_cycle())


def test_deferred_cancel_blocks_its_replacement():
    r = RiskManager(Params(max_actions_per_min=1), EventBus())
    r.begin_cycle()
    out = r.limit_actions(0.0, Plan(place=[q("y0", Side.BUY, "0.4")], cancel=["a", "b"]), 2, {"a": "n0", "b": "y0"})
    assert out.cancel == ["a"] and out.place == []


def test_max_open_orders():
    r = RiskManager(Params(max_open_orders=3), EventBus())
    r.begin_cycle()
    out = r.limit_actions(0.0, Plan(place=[q("y0", Side.BUY, "0.4"), q("n0", Side.BUY, "0.5")], cancel=[]), 2, {})
    assert len(out.place) == 1


def test_anomaly_cooldown():
    sink = EventBus()
    r = RiskManager(Params(anomaly_jump=D("0.05"), anomaly_window_sec=10, anomaly_cooldown_sec=60), sink)
    r.begin_cycle()
    r.observe_mid(0.0, CID, 0.50)
    r.observe_mid(3.0, CID, 0.52)
    assert r.market_block(3.0, CID) is None
    r.observe_mid(6.0, CID, 0.58)
    assert r.market_block(6.0, CID) == "cooldown"
    assert r.market_block(65.0, CID) == "cooldown" and r.market_block(67.0, CID) is None
    assert len(events(sink)) == 1
    r.observe_mid(100.0, CID, 0.50)
    r.observe_mid(120.0, CID, 0.60)  # outside the window: a drift, not a jump
    assert r.market_block(120.0, CID) is None


def test_loss_limits_stop_market_and_kill():
    sink = EventBus()
    r = RiskManager(Params(max_loss_per_market_usd=D(5), max_daily_loss_usd=D(8)), sink)
    r.begin_cycle()
    assert not r.check_losses(0.0, {CID: D(0), "b": D(0)}, D(0))
    assert not r.check_losses(10.0, {CID: D(-6), "b": D(0)}, D(-6))
    assert r.market_block(10.0, CID).startswith("risk: max loss")
    assert r.market_block(10.0, "b") is None
    assert r.check_losses(20.0, {CID: D(-6), "b": D(-3)}, D(-9))
    assert "daily loss" in r.kill_reason
    r.end_cycle()
    assert {e.message.split()[0] for e in events(sink)} == {"max", "daily"}
    r.begin_cycle()  # a new UTC day resets the per-market stop
    assert not r.check_losses(86_400.0 + 5, {CID: D(-6), "b": D(-3)}, D(-9))
    assert r.market_block(86_400.0 + 5, CID) is None
