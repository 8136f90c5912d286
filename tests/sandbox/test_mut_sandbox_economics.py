"""The sandbox's money logic against the reference (polymarket-api.md §7 fees, rebates, rewards;
§8 resolution), on hand-built books and hand-computed amounts: fee units at their edges, who pays
and accrues at a match, the rebate pool's split, the minute sample's shares, order scoring at the
band and size edges, the midnight payout (≥ $1), the clock, settlement and the account report."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import ROUND_DOWN
from decimal import Decimal as D

import pytest
from sandbox_helpers import blank_book

from pmm_widgets.domain import Side
from pmm_widgets.economics.fees import FeeSchedule
from pmm_widgets.economics.rewards import NO_PROGRAM, RewardProgram
from pmm_widgets.sandbox.economics import BACKGROUND, Payout, fee_units
from pmm_widgets.sandbox.simulator import SimMarket, SimOrder, Simulator

START = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
FEE = FeeSchedule(D("0.04"), 1, True, D("0.25"))


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def _sim() -> Simulator:
    return Simulator(markets=10, seed=4, start_ts=START)


def _plain(sim: Simulator, k: int = 0) -> SimMarket:
    """The k-th open, non-neg-risk market on the cent grid."""
    return [m for m in sim.markets if m.has_book and m.tick_mil == 10 and m.event_id is None][k]


def _order(owner: str, m: SimMarket) -> SimOrder:
    return SimOrder(f"{owner}-o", owner, m.yes_token_id, m.condition_id, Side.BUY, D("0.5"), D(100))


def _fee_market(sim: Simulator, sched: FeeSchedule = FEE) -> SimMarket:
    m = _plain(sim)
    m.fee, m.fee_bps, m.fees_enabled = sched, sched.rate_bps, True
    return m


# ---------------------------------------------------------------------- fee units


def test_fee_units_hand_computed_values() -> None:
    # 100 shares at 0.50, rate 0.04: 100 × 0.04 × 0.25 = 1 pUSD = 100 000 units (exponent 1 by default)
    assert fee_units(10_000, 500, 400) == 100_000
    assert fee_units(10_000, 500, 400, 2) == 25_000  # (p(1−p))² = 0.0625
    assert fee_units(10_000, 300, 400) == 84_000  # p(1−p) = 0.21
    # 1 share at the grid's ends: 0.04 × 0.000999 = 0.00003996 → 4 units (5 dp, half up)
    assert fee_units(100, 1, 400) == 4
    assert fee_units(100, 999, 400) == 4
    assert fee_units(100, 500, 1) == 3  # 0.000025 exactly: half up
    assert fee_units(100, 500, 3) == 8  # 0.000075: half up
    assert fee_units(1, 500, 1) == 1  # 2.5e-7: the minimum charge 0.00001


@pytest.mark.parametrize("centi,mil,bps", [(0, 500, 400), (-100, 500, 400), (100, 500, 0), (100, 500, -400),
                                           (100, 0, 400), (100, 1000, 400), (100, 1001, 400), (100, -1, 400)])
def test_fee_units_charge_nothing_outside_the_market(centi: int, mil: int, bps: int) -> None:
    assert fee_units(centi, mil, bps) == 0
    assert fee_units(centi, mil, bps, 2) == 0


# ---------------------------------------------------------------------- fees and rebates at match


def test_taker_pays_maker_accrues_fee_equivalent() -> None:
    sim = _sim()
    m = _fee_market(sim)
    econ, cid = sim.econ, m.condition_id
    mk, tk = _order("mk", m), _order("tk", m)
    econ.on_match(m, 500, 10_000, mk, tk)  # 1 pUSD
    lt, lm = econ.ledgers[("tk", cid)], econ.ledgers[("mk", cid)]
    assert (lt.fees, lt.maker_equiv_units) == (D(1), 0)
    assert (lm.fees, lm.maker_equiv_units) == (D(0), 100_000)  # taker-only: the maker pays nothing
    assert econ.day_fee_units[cid] == econ.day_equiv_units[cid] == 100_000
    econ.on_match(m, 300, 10_000, None, tk)  # a background maker: 0.84 pUSD
    assert lt.fees == D("1.84") and econ.ledgers[(BACKGROUND, cid)].maker_equiv_units == 84_000
    econ.on_match(m, 500, 10_000, mk, None)  # a background taker
    assert econ.ledgers[(BACKGROUND, cid)].fees == D(1) and lm.maker_equiv_units == 200_000
    assert econ.day_fee_units[cid] == econ.day_equiv_units[cid] == 284_000
    assert lt.fees == D("1.84") and lm.fees == 0
    m.fee = FeeSchedule(D("0.04"), 1, False, D("0.25"))  # not taker-only: both sides pay
    econ.on_match(m, 500, 10_000, mk, tk)
    assert lm.fees == D(1) and lt.fees == D("2.84")


def test_rebate_pool_is_shared_by_fee_equivalent() -> None:
    sim = _sim()
    m = _fee_market(sim)
    econ, cid = sim.econ, m.condition_id
    a, b, tk = _order("a", m), _order("b", m), _order("tk", m)
    econ.on_match(m, 500, 10_000, a, tk)  # 1 pUSD of fees, a's fee-equivalent 100 000 units
    econ.on_match(m, 500, 30_000, b, tk)  # 3 pUSD, b's 300 000
    # pool = 0.25 × 4 pUSD = 1: a gets 1/4, b 3/4
    assert econ.rebate_today("a", cid) == D("0.25")
    assert econ.rebate_today("b", cid) == D("0.75")
    assert econ.rebate_today("tk", cid) == 0  # a taker has no maker volume
    assert econ.rebate_today("nobody", cid) == 0


def test_rebate_of_the_smallest_match_rounds_down() -> None:
    sim = _sim()
    m = _fee_market(sim, FeeSchedule(D("0.0001"), 1, True, D("0.25")))
    econ, cid = sim.econ, m.condition_id
    econ.on_match(m, 500, 1, _order("a", m), _order("tk", m))  # 2.5e-7: the 1-unit minimum fee
    assert econ.day_equiv_units[cid] == 1
    assert econ.rebate_today("a", cid) == D("0.000002")  # 0.25 × 0.00001 = 0.0000025, 6 dp down


# ---------------------------------------------------------------------- midnight payout


def test_midnight_pays_one_dollar_or_more_and_starts_a_new_day() -> None:
    sim = _sim()
    m = _fee_market(sim)
    econ, cid = sim.econ, m.condition_id
    day = _day(START)
    econ.on_match(m, 500, 40_000, _order("mk", m), _order("tk", m))  # 4 pUSD of fees: a 1 pUSD pool
    for owner, amount in (("rw", "1.5"), ("small", "0.999999"), (BACKGROUND, "3")):
        econ._ledger(owner, cid).rewards_today = D(amount)
    assert econ.rebate_today("mk", cid) == D(1)
    econ.midnight()
    assert econ.paid == [Payout("mk", cid, day, D(0), D(1)), Payout("rw", cid, day, D("1.5"), D(0))]
    assert econ.paid_on({"mk", "rw"}, day) == econ.paid
    assert econ.paid_on({"rw"}, day) == [econ.paid[1]]
    assert econ.paid_on({"mk"}, "2026-05-29") == [] and econ.paid_on({"other"}, day) == []
    led = econ.ledgers
    assert (led[("mk", cid)].rebates_paid, led[("mk", cid)].rebates_accrued_past) == (D(1), D(1))
    assert led[("mk", cid)].maker_equiv_units == 0
    assert (led[("rw", cid)].rewards_paid, led[("rw", cid)].rewards_accrued_past) == (D("1.5"), D("1.5"))
    assert (led[("small", cid)].rewards_paid, led[("small", cid)].rewards_accrued_past) == (D(0), D("0.999999"))
    assert led[(BACKGROUND, cid)].rewards_paid == D(3)  # paid, but never reported as an account's payout
    assert all(led_.rewards_today == 0 for led_ in led.values())
    assert econ.day_fee_units == {} and econ.day_equiv_units == {}
    assert econ.payouts == 1 and econ.rebate_today("mk", cid) == 0
    # the next day starts from nothing: a new maker takes the whole new pool, the old one none
    econ.on_match(m, 500, 40_000, _order("mk2", m), _order("tk", m))
    assert econ.rebate_today("mk2", cid) == D(1) and econ.rebate_today("mk", cid) == 0
    econ._ledger("mk2", cid).maker_equiv_units = 0  # (no rebate tomorrow: only the rewards matter)
    econ.midnight()  # nothing earned again: nothing paid again
    assert len(econ.paid) == 2 and econ.payouts == 2
    assert led[("rw", cid)].rewards_paid == D("1.5") and led[(BACKGROUND, cid)].rewards_paid == D(3)


def test_clock_samples_every_minute_boundary_and_pays_at_utc_midnight() -> None:
    sim = _sim()
    econ = sim.econ
    first = (START // 60 + 1) * 60
    assert econ.next_sample == first and econ.day == int(START // 86400)
    sim._t = first - 1
    econ.on_step()
    assert econ.minutes_sampled == 0
    sim._t = first  # the boundary itself is sampled
    econ.on_step()
    assert econ.minutes_sampled == 1 and econ.next_sample == first + 60
    sim._t = first + 150
    econ.on_step()
    assert econ.minutes_sampled == 3 and econ.next_sample == first + 180
    assert econ.payouts == 0
    midnight = (int(START // 86400) + 1) * 86400
    sim._t = midnight - 1
    econ.on_step()
    assert econ.payouts == 0
    sim._t = midnight + 5
    econ.on_step()
    assert econ.payouts == 1 and econ.day == int(midnight // 86400)
    assert econ.minutes_sampled == 3 + (midnight - first - 180) // 60 + 1
    econ.on_step()
    assert econ.payouts == 1


def test_midnight_payout_carries_the_day_earned() -> None:
    sim = _sim()
    m = _plain(sim)
    econ = sim.econ
    econ._ledger("rw", m.condition_id).rewards_today = D(2)
    sim._t = (int(START // 86400) + 1) * 86400 + 1
    econ.on_step()
    assert [(p.owner, p.date, p.rewards) for p in econ.paid] == [("rw", _day(START), D(2))]
    assert econ.account("rw")["day"] == _day(sim.now())


# ---------------------------------------------------------------------- reward sampling


def _reward_setup(sim: Simulator) -> tuple[SimMarket, SimMarket]:
    """Market m: background bid 0.48 x50 and ask 0.52 x50; A quotes 0.49/0.51 x20, B bids 0.49
    x30, C bids 0.45 x20 (out of band). Program: min 10, v = 3¢, 1 440 pUSD a day (1 a minute).
    Market m2 (no program): A also rests there."""
    m, m2 = _plain(sim), _plain(sim, 1)
    blank_book(sim, m, {480: 5000}, {520: 5000})
    blank_book(sim, m2, {480: 5000}, {520: 5000})
    m.program = RewardProgram(D(10), D(3), D(1440))
    m2.program = NO_PROGRAM
    sim.place_order("A", "a1", m.yes_token_id, Side.BUY, D("0.49"), D(20), True)
    sim.place_order("A", "a2", m.yes_token_id, Side.SELL, D("0.51"), D(20), True)
    sim.place_order("B", "b1", m.yes_token_id, Side.BUY, D("0.49"), D(30), True)
    sim.place_order("C", "c1", m.yes_token_id, Side.BUY, D("0.45"), D(20), True)
    sim.place_order("A", "a3", m2.yes_token_id, Side.BUY, D("0.50"), D(40), True)
    return m, m2


def _minute(share: D) -> D:
    return share.quantize(D("1e-12"), rounding=ROUND_DOWN)


def test_minute_sample_shares_the_pool_by_q_min() -> None:
    sim = _sim()
    m, m2 = _reward_setup(sim)
    econ, cid = sim.econ, m.condition_id
    econ.sample()
    # mid (cutoff 10) = (0.49 + 0.51)/2 = 0.50. S = ((3 − s)/3)²: s = 1 → 4/9, s = 2 → 1/9, s = 5 → 0.
    # A: Q_one = Q_two = 20·4/9 → Q_min 80/9; B: Q_one 30·4/9, one-sided → a third: 40/9;
    # background: 50·1/9 per side → 50/9; C: 0. Total 170/9.
    led = econ.ledgers
    assert econ.minutes_sampled == 1
    assert led[("A", cid)].rewards_today == _minute(D(8) / 17)
    assert led[("B", cid)].rewards_today == _minute(D(4) / 17)
    assert led[(BACKGROUND, cid)].rewards_today == _minute(D(5) / 17)
    assert (led[("C", cid)].rewards_today, led[("C", cid)].samples) == (D(0), 1)
    assert [led[(o, cid)].samples for o in ("A", "B", BACKGROUND)] == [1, 1, 1]
    last = led[("A", cid)].last
    assert last["ts"] == sim.now() and D(last["mid"]) == D("0.5")
    assert abs(D(last["q_min"]) - D(80) / 9) < D("1e-20") and D(last["q_one"]) == D(last["q_two"])
    assert ("A", m2.condition_id) not in led  # no program there: not sampled
    econ.sample()
    assert led[("A", cid)].rewards_today == 2 * _minute(D(8) / 17) and led[("A", cid)].samples == 2


def test_background_out_of_band_is_not_a_maker_and_no_mid_pays_nothing() -> None:
    sim = _sim()
    m, _ = _reward_setup(sim)
    econ, cid = sim.econ, m.condition_id
    m.program = RewardProgram(D(10), D("1.5"), D(1440))  # the background (2¢ away) is out of band now
    econ.sample()
    assert (BACKGROUND, cid) not in econ.ledgers
    # A: 20·(1/3)² per side = 20/9; B: 30/9 one-sided → 10/9: A gets 2/3
    assert econ.ledgers[("A", cid)].rewards_today == _minute(D(2) / 3)
    # no ask side: no mid, every account order's minute is sampled and earns nothing
    sim.cancel_order("A", "a2")
    for px in list(m.ask_px):
        for r in list(m.asks[px]):
            sim._remove_rest(m, False, px, r)
    before = econ.ledgers[("A", cid)].rewards_today
    assert econ.market_scores(m)[:2] == (None, {})  # nobody scores without a mid
    econ.sample()
    assert D(econ.ledgers[("A", cid)].last["mid"]) == D("0.5")  # the last scored minute is kept
    assert econ.ledgers[("A", cid)].samples == 2 and econ.ledgers[("B", cid)].samples == 2
    assert econ.ledgers[("A", cid)].rewards_today == before


# ---------------------------------------------------------------------- order scoring


def test_order_scoring_band_and_size_edges() -> None:
    sim = _sim()
    m = _plain(sim)
    blank_book(sim, m, {480: 5000}, {520: 5000})  # mid 0.50 at cutoff 10
    m.program = RewardProgram(D(10), D(3), D(100))
    place = {
        "min": (Side.BUY, m.yes_token_id, "0.48", 10),  # s = 2¢, exactly the min size
        "small": (Side.BUY, m.yes_token_id, "0.48", 9),  # under the min size
        "edge": (Side.BUY, m.yes_token_id, "0.47", 20),  # s = 3¢ = v: scores 0
        "no_in": (Side.BUY, m.no_token_id, "0.48", 20),  # a YES ask at 0.52: s = 2¢
        "no_edge": (Side.BUY, m.no_token_id, "0.47", 20),  # a YES ask at 0.53: s = 3¢
    }
    for oid, (side, tok, px, size) in place.items():
        sim.place_order("k", oid, tok, side, D(px), D(size), True)
    sc = sim.econ.order_scoring
    assert {oid: sc(oid) for oid in place} == {"min": True, "small": False, "edge": False, "no_in": True,
                                                "no_edge": False}
    assert sc("unknown") is False
    m.program = RewardProgram(D(10), D("3.01"), D(100))  # s = 3 is now inside
    assert sc("edge") is True and sc("no_edge") is True
    m.program = RewardProgram(D(10), D("2.01"), D(100))
    assert sc("min") is True and sc("edge") is False
    m.program = RewardProgram(D(10), D(3), D(0))  # no pool: nothing scores
    assert sc("min") is False
    m.program = RewardProgram(D(10), D(3), D(100))
    m.accepting_orders = False
    assert sc("min") is False
    m.accepting_orders = True
    for px in list(m.ask_px):  # no ask side: no mid
        for r in list(m.asks[px]):
            if r.acct is None:
                sim._remove_rest(m, False, px, r)
    sim.cancel_order("k", "no_in")
    sim.cancel_order("k", "no_edge")
    assert sc("min") is False


# ---------------------------------------------------------------------- settlement, winners, report


@pytest.mark.parametrize("winner_yes", [True, False])
def test_settlement_redeems_winning_shares_at_one(winner_yes: bool) -> None:
    sim = _sim()
    m, other = _plain(sim), _plain(sim, 1)
    m.winner_yes = winner_yes
    pos = {("a", m.yes_token_id): D(30), ("a", m.no_token_id): D(12), ("b", m.no_token_id): D(5),
           ("c", other.yes_token_id): D(7)}
    out = sim.econ.settle(m, pos)
    win = m.yes_token_id if winner_yes else m.no_token_id
    assert [(s.owner, s.winner_token, s.yes_shares, s.no_shares, s.payout) for s in out] == [
        ("a", win, D(30), D(12), D(30) if winner_yes else D(12)),
        ("b", win, D(0), D(5), D(0) if winner_yes else D(5))]
    assert all(s.ts == sim.now() and s.condition_id == m.condition_id for s in out)
    assert sim.econ.settlements == out


def test_draw_winner_by_event_or_fair_value() -> None:
    sim = _sim()
    econ = sim.econ
    assert econ.events
    for eid, group in econ.events.items():
        assert [econ.draw_winner(m) for m in group] == [m.condition_id == econ.event_winner[eid] for m in group]
    m = _plain(sim)
    m.fair = 1.0
    assert all(econ.draw_winner(m) for _ in range(50))
    m.fair = 0.0
    assert not any(econ.draw_winner(m) for _ in range(50))


def test_account_report_sums_per_market_rows() -> None:
    sim = _sim()
    m, m2 = _fee_market(sim), _plain(sim, 1)
    econ = sim.econ
    econ.on_match(m, 500, 40_000, _order("mk", m), _order("acct", m))  # acct pays 4
    econ.on_match(m, 500, 10_000, _order("acct", m), _order("tk", m))  # acct makes 1/5 of a 1.25 pool: 0.25
    led = econ.ledgers[("acct", m.condition_id)]
    led.rewards_accrued_past, led.rewards_today = D(2), D("0.5")
    led.rebates_accrued_past, led.rebates_paid, led.rewards_paid = D(3), D(3), D(2)
    econ._ledger("acct", m2.condition_id).rewards_today = D("0.25")
    econ._ledger("other", m2.condition_id).rewards_today = D(7)
    m2.winner_yes = False
    econ.settle(m2, {("acct", m2.no_token_id): D(6), ("other", m2.no_token_id): D(9)})
    rep = econ.account("acct")
    assert econ.rebate_today("acct", m.condition_id) == D("0.25")
    rows = {r["condition_id"]: r for r in rep["markets"]}
    assert set(rows) == {m.condition_id, m2.condition_id}
    assert rows[m.condition_id]["fees"] == D(4) and rows[m.condition_id]["rebates_accrued"] == D("3.25")
    assert rows[m.condition_id]["rewards_accrued"] == D("2.5")
    assert rep["totals"] == {"fees": D(4), "rebates_accrued": D("3.25"), "rebates_paid": D(3),
                             "rewards_accrued": D("2.75"), "rewards_paid": D(2), "settlement": D(6)}
    assert [s["payout"] for s in rep["settlements"]] == [D(6)]
    assert rep["owner"] == "acct" and rep["day"] == _day(START)


# ---------------------------------------------------------------------- terms


@pytest.mark.parametrize("seed", [1, 4, 7])
def test_terms_follow_the_reference_categories(seed: int) -> None:
    """Fees: taker-only, exponent 1, the reference's category rates with rebateRate 0.20 for
    crypto (0.07) and 0.25 elsewhere; fees off means no schedule. Neg-risk markets form events
    of two or more with exactly one winner each."""
    sim = Simulator(markets=80, seed=seed, start_ts=START)
    ms = sim.markets
    pairs = {(D("0.07"), D("0.20")), (D("0.04"), D("0.25")), (D("0.05"), D("0.25")), (D("0.03"), D("0.25"))}
    for m in ms:
        assert m.fees_enabled == m.fee.charges and m.fee_bps == m.fee.rate_bps
        if m.fees_enabled:
            assert (m.fee.rate, m.fee.rebate_rate) in pairs and m.fee.exponent == 1 and m.fee.taker_only
        if m.program.active:
            assert m.program.min_size > 0 and m.program.daily_rate > 0
    assert {m.fees_enabled for m in ms} == {True, False} and {m.program.active for m in ms} == {True, False}
    econ = sim.econ
    grouped = [m for g in econ.events.values() for m in g]
    assert sorted(m.index for m in grouped) == [m.index for m in ms if m.neg_risk]
    for eid, group in econ.events.items():
        assert len(group) >= 2 and all(m.event_id == eid for m in group)
        assert econ.event_winner[eid] in {m.condition_id for m in group}
    assert len(econ.events) >= 2 and len(set(econ.events)) == len(econ.events)


def test_day_of_a_start_early_in_the_utc_day() -> None:
    ts = (int(START // 86400) + 1) * 86400 + 3 * 3600.0  # 03:00 UTC
    econ = Simulator(markets=10, seed=4, start_ts=ts).econ
    assert econ.day == (datetime.fromtimestamp(ts, tz=UTC).date() - date(1970, 1, 1)).days
    assert econ.account("x")["day"] == _day(ts)


def test_jsonable_and_frozen_payouts() -> None:
    from pmm_widgets.sandbox.economics import jsonable

    assert jsonable({"a": D("1.50"), "b": [D(0), (D("2E+3"), D("-0.00"))], "c": 5, "d": None}) == {
        "a": "1.5", "b": ["0", ["2000", "0"]], "c": 5, "d": None}
    p = Payout("o", "c", "2026-05-28", D(1), D(0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rewards = D(2)  # type: ignore[misc]
