"""RiskManager behaviours that mutation testing found unpinned (each test below failed on at least
one surviving mutant of pmm_widgets/strategy/risk.py): the exposure of a fractional position,
the rolling one-minute action window, the DB writer's edge-triggered block, the anomaly guard at
any clock time, at its threshold and after a jump, the cool-down's length, and the loss limits at
their values (a `max_*` is the largest allowed value: reaching it is allowed, passing it binds,
as with the inventory limits and the "loss > limit" the breach messages say)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market

from pmm_widgets.config import Params
from pmm_widgets.domain import Quote, Side
from pmm_widgets.events import EventBus, EventKind
from pmm_widgets.strategy.inventory import Inventory
from pmm_widgets.strategy.planner import Plan
from pmm_widgets.strategy.risk import WINDOW_SEC, RateLimiter, RiskManager, exposure_usd

D = Decimal
M = make_market(0)
CID = M.condition_id
T0 = 1_764_892_800.0  # 2025-12-05T00:00:00Z: a real epoch clock, not a test's small numbers


def breaches(bus: EventBus) -> list:
    return [e for e in bus.recent(500) if e.kind is EventKind.RISK_BREACH]


# -- exposure ---------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.integers(-100_000, 100_000), st.integers(1, 99))
def test_exposure_is_the_held_sides_value_for_any_position_fractional_included(net_c, mid_c):
    """Long YES is worth `net × mid`, long NO `|net| × (1 − mid)`: never negative, whatever the
    size (fractional share counts included: the venue's size grid is 0.01)."""
    net, mid = D(net_c) / 100, D(mid_c) / 100
    value = exposure_usd(net, mid)
    assert value == (net * mid if net > 0 else -net * (1 - mid))
    assert value >= 0
    assert exposure_usd(D("0.5"), D("0.4")) == D("0.20")


# -- action rate --------------------------------------------------------------------------------

def test_the_action_window_is_one_minute_long():
    """An action counts for WINDOW_SEC seconds: a minute after it, its budget is back."""
    r = RateLimiter()
    r.record(T0, 5)
    assert r.budget(T0 + WINDOW_SEC - 0.001, 5) == 0
    assert r.budget(T0 + WINDOW_SEC, 5) == 5


def test_limit_actions_spends_a_full_budget_again_one_minute_later():
    r = RiskManager(Params(max_actions_per_min=2), EventBus())
    r.begin_cycle()
    pl = Plan(place=[], cancel=["a", "b"])
    assert r.limit_actions(T0, pl, 2, {}).cancel == ["a", "b"]
    assert r.limit_actions(T0 + 59.0, Plan(place=[], cancel=["c"]), 0, {}).cancel == []
    assert r.limit_actions(T0 + 60.0, Plan(place=[], cancel=["c", "d"]), 0, {}).cancel == ["c", "d"]


# -- DB writer -----------------------------------------------------------------------------------

@dataclass
class Health:
    fault: str | None = None
    pending: int = 0


def test_writer_block_pauses_on_a_fault_with_one_breach_per_episode():
    bus = EventBus()
    r = RiskManager(Params(), bus)
    assert r.writer_block(T0, None) is None
    assert r.writer_block(T0, Health()) is None
    assert breaches(bus) == []
    msg = r.writer_block(T0 + 1, Health("disk full", 12))
    assert msg is not None and "disk full" in msg and "12 rows" in msg
    assert len(breaches(bus)) == 1 and breaches(bus)[0].data == {"rule": "writer"}
    assert r.writer_block(T0 + 2, Health("disk full", 13)) is not None  # still blocking
    assert len(breaches(bus)) == 1  # edge-triggered: no second event while it persists
    assert r.writer_block(T0 + 3, Health()) is None  # healthy again
    assert r.writer_block(T0 + 4, Health("db gone", 1)) is not None  # a new episode: a new event
    assert len(breaches(bus)) == 2
    bus2 = EventBus()
    first = RiskManager(Params(), bus2)  # a fault at the very first check is a new episode too
    assert first.writer_block(T0, Health("disk full", 3)) is not None
    assert [e.data for e in breaches(bus2)] == [{"rule": "writer"}]


# -- anomaly guard -------------------------------------------------------------------------------

def _anomaly(jump: str = "0.05", window: float = 10, cooldown: float = 60) -> tuple[RiskManager, EventBus]:
    bus = EventBus()
    return RiskManager(Params(anomaly_jump=D(jump), anomaly_window_sec=window, anomaly_cooldown_sec=cooldown),
                       bus), bus


def test_anomaly_is_detected_at_any_clock_time():
    r, bus = _anomaly()
    r.begin_cycle()
    r.observe_mid(T0, CID, 0.50)
    r.observe_mid(T0 + 3, CID, 0.58)
    assert r.market_block(T0 + 3, CID) == "cooldown"
    assert len(breaches(bus)) == 1
    assert any("anomaly" in m for m in r.end_cycle())  # the cycle report carries it


def test_a_mid_exactly_the_window_old_is_inside_it():
    r, _ = _anomaly()
    r.observe_mid(T0, CID, 0.50)
    r.observe_mid(T0 + 10, CID, 0.58)
    assert r.market_block(T0 + 10, CID) == "cooldown"
    r2, _ = _anomaly()
    r2.observe_mid(T0, CID, 0.50)
    r2.observe_mid(T0 + 10.001, CID, 0.58)
    assert r2.market_block(T0 + 10.001, CID) is None


def test_a_jump_equal_to_the_threshold_is_not_larger_than_it():
    """"a mid jump larger than `anomaly_jump`": values exact in binary, so the float difference
    is the threshold itself."""
    r, bus = _anomaly("0.25")
    r.observe_mid(T0, CID, 0.50)
    r.observe_mid(T0 + 1, CID, 0.75)
    assert r.market_block(T0 + 1, CID) is None and breaches(bus) == []
    r.observe_mid(T0 + 2, CID, 0.2499)
    assert r.market_block(T0 + 2, CID) == "cooldown"


def test_a_jump_of_float_threshold_size_is_not_larger_than_a_decimal_threshold():
    """0.2 - 0.1 is the float nearest 0.1 (a little above the Decimal 0.1): the jump equals the
    threshold as the guard's floats see it, so it does not pull the market."""
    r, bus = _anomaly("0.1")
    r.observe_mid(T0, CID, 0.1)
    r.observe_mid(T0 + 1, CID, 0.2)
    assert r.market_block(T0 + 1, CID) is None and breaches(bus) == []


def test_holding_at_the_new_level_after_a_jump_is_not_another_jump():
    """A jump restarts the history at the new mid: holding there is not another jump (one event,
    the cool-down counted from the jump), though the old mid is still inside the window."""
    r, bus = _anomaly(cooldown=1)
    r.observe_mid(T0, CID, 0.50)
    r.observe_mid(T0 + 6, CID, 0.58)  # the jump
    r.observe_mid(T0 + 7, CID, 0.58)  # holding at the new level, 0.50 still inside the window
    assert r.market_block(T0 + 7, CID) is None  # the cool-down of 1 s from T0 + 6 is over
    assert len(breaches(bus)) == 1


def test_a_jump_from_the_new_level_is_measured_from_the_jumps_mid():
    r, bus = _anomaly(cooldown=1)
    r.observe_mid(T0, CID, 0.50)
    r.observe_mid(T0 + 6, CID, 0.58)  # the jump
    r.observe_mid(T0 + 8, CID, 0.64)  # 0.06 from the mid the jump saw (0.58): another jump
    assert r.market_block(T0 + 8, CID) == "cooldown"
    assert len(breaches(bus)) == 2


def test_the_cooldown_lasts_exactly_its_length():
    r, _ = _anomaly(cooldown=60)
    r.observe_mid(T0, CID, 0.50)
    r.observe_mid(T0 + 6, CID, 0.58)
    assert r.market_block(T0 + 65.999, CID) == "cooldown"
    assert r.market_block(T0 + 66, CID) is None
    r0, bus = _anomaly(cooldown=0)  # no cool-down: the breach is reported, quoting goes on
    r0.observe_mid(T0, CID, 0.50)
    r0.observe_mid(T0 + 6, CID, 0.58)
    assert len(breaches(bus)) == 1 and r0.market_block(T0 + 6, CID) is None


# -- loss limits ---------------------------------------------------------------------------------

def test_a_market_loss_equal_to_its_limit_does_not_stop_it():
    r = RiskManager(Params(max_loss_per_market_usd=D(5), max_daily_loss_usd=D(100)), EventBus())
    r.begin_cycle()
    assert not r.check_losses(T0, {CID: D(0)}, D(0))
    assert not r.check_losses(T0 + 1, {CID: D(-5)}, D(-5))
    assert r.market_block(T0 + 1, CID) is None
    assert not r.check_losses(T0 + 2, {CID: D("-5.01")}, D("-5.01"))
    assert r.market_block(T0 + 2, CID) == "risk: max loss 5.01 > 5 USD"


def test_a_daily_loss_equal_to_its_limit_does_not_kill():
    r = RiskManager(Params(max_loss_per_market_usd=D(100), max_daily_loss_usd=D(8)), EventBus())
    r.begin_cycle()
    assert not r.check_losses(T0, {}, D(20))
    assert not r.check_losses(T0 + 1, {}, D(12))  # lost exactly 8 since the day began
    assert r.kill_reason is None
    assert r.check_losses(T0 + 2, {}, D("11.99"))
    assert r.kill_reason == "daily loss 8.01 > 8 USD"


def test_the_loss_day_is_the_utc_day_at_real_clock_times():
    """The day's base is taken at the first check of each UTC day, not again within it."""
    r = RiskManager(Params(max_loss_per_market_usd=D(5), max_daily_loss_usd=D(8)), EventBus())
    r.begin_cycle()
    assert not r.check_losses(T0 + 3600, {CID: D(0)}, D(0))
    assert not r.check_losses(T0 + 7200, {CID: D(-4)}, D(-4))
    assert not r.check_losses(T0 + 86_399, {CID: D(-6)}, D(-6))  # the same day: 6 lost
    assert r.market_block(T0 + 86_399, CID) is not None
    assert not r.check_losses(T0 + 86_400, {CID: D(-6)}, D(-6))  # a new day: a new base
    assert r.market_block(T0 + 86_400, CID) is None


# -- the quote screen and the action valves ------------------------------------------------------

def test_the_market_usd_limit_keeps_a_quote_that_reaches_it_exactly():
    """`max_inventory_usd` (per market, at mid) is the largest allowed exposure."""
    buy = Quote(CID, M.yes_token_id, Side.BUY, D("0.50"), D(10))  # flat → 10 YES at mid 0.5: 5 USD
    at = RiskManager(Params(max_inventory_usd=D(5)), EventBus())
    at.begin_cycle()
    assert at.filter_quotes(T0, M, [buy], Inventory(), D("0.5"), D(0)) == [buy]
    below = RiskManager(Params(max_inventory_usd=D("4.99")), EventBus())
    below.begin_cycle()
    assert below.filter_quotes(T0, M, [buy], Inventory(), D("0.5"), D(0)) == []
    assert below.dropped == {CID: "inventory usd"}


def test_each_breach_event_carries_its_own_rules_message():
    """The total rule's message names the total (written when the verdict is applied); the other
    rules keep the message the screen wrote."""
    bus = EventBus()
    r = RiskManager(Params(max_total_inventory_usd=D(100), price_band=D("0.05")), bus)
    r.begin_cycle()
    grow = Quote(CID, M.yes_token_id, Side.BUY, D("0.50"), D(10))  # +5 USD on a total of 99
    far = Quote(CID, M.yes_token_id, Side.BUY, D("0.40"), D(10))  # 0.10 from mid: outside the band
    assert r.filter_quotes(T0, M, [grow, far], Inventory(), D("0.5"), D(99)) == []
    r.end_cycle()
    by_rule = {e.data["rule"]: e for e in breaches(bus)}
    assert set(by_rule) == {"total inventory", "price band"}
    assert by_rule["total inventory"].message == "total inventory 99.00 USD near limit 100"
    assert by_rule["total inventory"].market is None
    assert by_rule["price band"].message == "quote 0.40 further than 0.05 from mid 0.5"
    assert by_rule["price band"].market == CID


def test_cancels_sent_first_make_room_under_the_open_order_cap():
    """At the cap, a cancel sent in the same plan frees the room for its replacement."""
    r = RiskManager(Params(max_open_orders=3), EventBus())
    r.begin_cycle()
    rep = Quote(CID, M.yes_token_id, Side.BUY, D("0.45"), D(10))
    out = r.limit_actions(T0, Plan(place=[rep], cancel=["a"]), 3, {"a": M.yes_token_id})
    assert out.cancel == ["a"] and out.place == [rep]
    out = r.limit_actions(T0 + 1, Plan(place=[rep, rep], cancel=["b"]), 3, {"b": M.yes_token_id})
    assert out.cancel == ["b"] and out.place == [rep]  # the second would make 4 open


def test_the_open_order_cap_is_reported_once_while_it_binds():
    bus = EventBus()
    r = RiskManager(Params(max_open_orders=2), bus)
    place = Quote(CID, M.yes_token_id, Side.BUY, D("0.45"), D(10))
    for i in range(2):
        r.begin_cycle()
        assert r.limit_actions(T0 + i, Plan(place=[place], cancel=[]), 2, {}).place == []
        new = r.end_cycle()
        assert new == (["open orders at limit 2"] if i == 0 else [])
    assert [e.data for e in breaches(bus)] == [{"rule": "max_open_orders"}]


def test_the_open_order_cap_admits_places_up_to_it():
    r = RiskManager(Params(max_open_orders=3), EventBus())
    r.begin_cycle()
    places = [Quote(CID, M.yes_token_id, Side.BUY, D(p), D(10)) for p in ("0.41", "0.42", "0.43", "0.44")]
    assert r.limit_actions(T0, Plan(place=places, cancel=[]), 0, {}).place == places[:3]


def test_the_action_rate_breach_counts_the_deferred_actions_and_only_when_some_are():
    bus = EventBus()
    r = RiskManager(Params(max_actions_per_min=2), bus)
    r.begin_cycle()
    one = Quote(CID, M.yes_token_id, Side.BUY, D("0.45"), D(10))
    out = r.limit_actions(T0, Plan(place=[one], cancel=["a"]), 1, {"a": M.no_token_id})
    assert out.cancel == ["a"] and out.place == [one]  # the budget spent exactly: nothing deferred
    assert r.end_cycle() == [] and breaches(bus) == []
    r2 = RiskManager(Params(max_actions_per_min=5), bus)
    r2.begin_cycle()
    places = [Quote(CID, M.yes_token_id, Side.BUY, D(p), D(10)) for p in ("0.41", "0.42", "0.43")]
    out = r2.limit_actions(T0, Plan(place=places, cancel=["a", "b", "c"]), 3, {"a": "x", "b": "x", "c": "x"})
    assert out.cancel == ["a", "b", "c"] and out.place == places[:2]
    assert r2.end_cycle() == ["action rate at 5/min: 1 actions deferred"]


def test_a_cap_that_binds_with_budget_left_is_not_reported_as_the_action_rate():
    r = RiskManager(Params(max_actions_per_min=2, max_open_orders=1), EventBus())
    r.begin_cycle()
    places = [Quote(CID, M.yes_token_id, Side.BUY, D(p), D(10)) for p in ("0.41", "0.42")]
    assert r.limit_actions(T0, Plan(place=places, cancel=[]), 0, {}).place == places[:1]
    assert r.end_cycle() == ["open orders at limit 1"]


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 198), st.integers(1, 30), st.sampled_from((-1, 1)), st.integers(-1, 1))
def test_a_jump_pulls_the_market_exactly_when_larger_than_the_threshold_on_the_tick_grid(i, k, sign, e):
    """The engine observes `float(mid)` of a mid on the half-tick grid; whether a move pulls the
    market is the Decimal rule (|Δmid| > anomaly_jump) at every price level, not the float
    subtraction's rounding (0.45 → 0.55 came out 0.10000000000000003 and pulled at 0.10, while
    0.50 → 0.60 did not). Moves of the threshold ± half a tick, equal to it a third of the time."""
    j = min(max(i + sign * (2 * k + e), 2), 198)
    m1, m2, aj = D(i) / 200, D(j) / 200, D(k) / 100
    r, _ = _anomaly(str(aj))
    r.observe_mid(T0, CID, float(m1))
    r.observe_mid(T0 + 1, CID, float(m2))
    assert (r.market_block(T0 + 1, CID) == "cooldown") is (abs(m2 - m1) > aj)


def test_a_ten_tick_move_is_not_larger_than_a_threshold_of_ten_ticks():
    for lo in ("0.45", "0.50", "0.09", "0.15"):
        r, bus = _anomaly("0.10")
        r.observe_mid(T0, CID, float(D(lo)))
        r.observe_mid(T0 + 1, CID, float(D(lo) + D("0.10")))
        assert r.market_block(T0 + 1, CID) is None and breaches(bus) == [], lo
