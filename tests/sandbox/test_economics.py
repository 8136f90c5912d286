"""The sandbox as the ground truth of venue economics: terms on the wire, taker fees at match,
rebate pools, per-minute reward sampling, midnight payouts, resolution and neg-risk events."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.domain import Side
from pmm_widgets.economics.fees import FeeSchedule, fee_equivalent, rebate_accrual
from pmm_widgets.economics.rewards import parse_program, share
from pmm_widgets.sandbox.economics import BACKGROUND, fee_units
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.simulator import Simulator

START = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC


@given(st.integers(1, 10**8), st.integers(1, 999), st.sampled_from([300, 400, 500, 700, 1]), st.integers(1, 2))
def test_fee_units_equal_the_decimal_formula(centi: int, mil: int, bps: int, e: int) -> None:
    sched = FeeSchedule(D(bps) / 10000, e, True, D("0.25"))
    assert fee_units(centi, mil, bps, e) * D("0.00001") == fee_equivalent(D(centi) / 100, D(mil) / 1000, sched)


def test_realistic_mix_of_terms_and_events() -> None:
    sim = Simulator(markets=60, seed=3, start_ts=START)
    ms = sim.markets
    assert any(not m.fees_enabled for m in ms) and any(m.fees_enabled for m in ms)
    assert len({m.fee_bps for m in ms if m.fees_enabled}) >= 2
    assert any(not m.program.active for m in ms) and any(m.program.active for m in ms)
    assert len({m.program.daily_rate for m in ms if m.program.active}) >= 2
    assert sim.econ.events, "some neg-risk markets are grouped into events"
    for eid, group in sim.econ.events.items():
        assert len(group) >= 2 and all(m.neg_risk and m.event_id == eid for m in group)
        assert sum(sim.econ.draw_winner(m) for m in group) == 1  # exactly one winner per event
    # the Gamma object carries them with the real names and types, and parses back
    from pmm_widgets.sandbox.gamma import gamma_object

    m = next(m for m in ms if m.program.active and m.fees_enabled)
    g = gamma_object(sim, m)
    assert g["feesEnabled"] is True and g["feeSchedule"]["rate"] == float(m.fee.rate)
    assert parse_program(g)[0] == m.program
    assert isinstance(g["clobRewards"][0]["rewardsDailyRate"], float)


def _band_orders(sim: Simulator, owner: str, m, size: D, two_sided: bool = True, behind: int = 0,
                 tag: str = "") -> list[str]:
    """Post-only bids on YES and NO (a NO bid rests on the YES ask side): one tick inside the
    spread (behind=0), or `behind` ticks behind the best bid."""
    tick = m.tick_size
    ids = []
    for tok in (m.yes_token_id, m.no_token_id) if two_sided else (m.yes_token_id,):
        bb, ba = sim.best(tok)
        px = (bb if bb + tick >= ba else bb + tick) if behind == 0 else bb - behind * tick
        ids.append(sim.place_order(owner, f"{owner}-{tag}{len(ids)}", tok, Side.BUY, px, size, True).order_id)
    return ids


def _reward_market(sim: Simulator, quiet: bool = False):
    ok = [m for m in sim.markets if m.has_book and m.program.active and m.best_bid_mil and m.best_ask_mil
          and 150 < m.best_bid_mil < 850 and m.best_ask_mil - m.best_bid_mil <= 3 * m.tick_mil]
    return (min if quiet else max)(ok, key=lambda m: m.activity)


def test_reward_sampling_is_a_competition_and_two_sided_wins() -> None:
    sim = Simulator(markets=30, seed=5, start_ts=START)
    m = _reward_market(sim, quiet=True)
    size = max(m.program.min_size, m.min_order_size) * 2
    for minute in range(10):  # ten sampled minutes, quotes refreshed each minute like an engine
        for owner, two_sided in (("two", True), ("one", False)):
            sim.cancel_all(owner)
            _band_orders(sim, owner, m, size, two_sided=two_sided, behind=1, tag=str(minute))
        sim.run_until(START + 60 * (minute + 1))
    two = sim.econ.ledgers[("two", m.condition_id)]
    one = sim.econ.ledgers[("one", m.condition_id)]
    bg = sim.econ.ledgers[(BACKGROUND, m.condition_id)]
    assert sim.econ.minutes_sampled == 10
    assert 5 <= two.samples <= 10  # sampled each minute while its orders rest (fills end them)
    assert two.rewards_today > 0 and bg.rewards_today > 0  # the background competes for the pool
    day_so_far = m.program.daily_rate * 10 / 1440
    total = two.rewards_today + one.rewards_today + bg.rewards_today
    assert day_so_far - D("0.0001") <= total <= day_so_far  # the pool is shared, 6-dp rounding down
    assert 0 < two.rewards_today < day_so_far * two.samples / 10  # a share, never the whole pool
    if one.samples == two.samples:  # same size per order: both sides score more than one
        assert two.rewards_today > one.rewards_today


def test_the_minute_sample_is_the_book_at_the_boundary() -> None:
    """The venue samples each minute at the boundary: every event stamped before it is in the
    sample, none stamped at or after it. The step that reaches the boundary is stamped after it
    (here 50 ms, as in the fresh-clone CI failure: a background taker filled our order in that
    step's flow, the sandbox scored the book after the fill, while the fill's match time is the
    minute's second and every client counts it after the sample), so the sample is the book as
    the previous step left it, and that step's flow comes after it."""
    sim = Simulator(markets=30, seed=5, start_ts=START + 0.05)
    m = _reward_market(sim)
    size = max(m.program.min_size, m.min_order_size) * 2
    moved = 0
    for minute in range(1, 9):
        boundary = (START // 60 + minute) * 60
        sim.run_until(boundary - 1)
        sim.cancel_all("k")
        _band_orders(sim, "k", m, size, tag=str(minute))  # at the touch: the flow's takers hit them
        while sim.now() + 0.1 < boundary:
            sim.step()
        _, before, _ = sim.econ.market_scores(m)  # the book every event stamped before the boundary left
        total = sum((q.q_min for q in before.values()), D(0))
        sim.step()  # reaches the boundary: stamped 50 ms after it
        assert sim.econ.minutes_sampled == minute and sim.now() > boundary
        led = sim.econ.ledgers[("k", m.condition_id)]
        assert led.last["ts"] == sim.now()
        assert D(led.last["q_min"]) == before["k"].q_min and D(led.last["share"]) == share(before["k"].q_min, total)
        _, after, _ = sim.econ.market_scores(m)
        moved += after.get("k") != before["k"] or after.get(BACKGROUND) != before.get(BACKGROUND)
    assert moved, "no crossing step changed the book: the test would not tell the two instants apart"


def test_fees_and_rebates_at_match_and_midnight_payout() -> None:
    sim = Simulator(markets=10, seed=9, start_ts=START - (START % 86400) + 86400 - 900)  # 23:45 UTC
    m = max((m for m in sim.markets if m.has_book and m.fee_bps and m.best_ask_mil), key=lambda m: m.activity)
    # a taker BUY crossing the ask pays the fee; a resting maker accrues rebates from the pool
    _, ba = sim.best(m.yes_token_id)
    so = sim.place_order("taker", "t-1", m.yes_token_id, Side.BUY, ba, D(50), False, "FAK")
    fills = [t for t in sim.account_trades("taker")]
    assert fills and so.size_matched > 0
    want_fee = sum((fee_equivalent(t.size, t.price, m.fee) for t in fills), D(0))
    led = sim.econ.ledgers[("taker", m.condition_id)]
    assert led.fees == want_fee > 0
    _band_orders(sim, "maker", m, max(m.min_order_size, D(20)) * 5)
    sim.run_until(sim.now() + 840)
    mk = [t for t in sim.account_trades("maker")]
    acc = sim.econ.account("maker")["totals"]
    want = sum((rebate_accrual(t.size, t.price, m.fee, taker=False) for t in mk), D(0))
    assert abs(acc["rebates_accrued"] - want) < D("0.01")  # pool share == rate × fee-equivalent
    assert acc["fees"] == 0  # taker-only: makers pay nothing
    assert mk, "the maker was filled"
    sim.run_until(sim.now() + 120)  # past midnight
    assert sim.econ.payouts == 1
    acc = sim.econ.account("maker")["totals"]
    for k in ("rewards", "rebates"):
        acc_k, paid = acc[f"{k}_accrued"], acc[f"{k}_paid"]
        assert paid == 0 if acc_k < 1 else paid <= acc_k < paid + D("0.01") * 100


async def test_resolution_wire_and_settlement() -> None:
    async with Sandbox(SandboxConfig(markets=20, seed=11, speed=10.0, start_ts=START)) as sb:
        from pmm_widgets.sandbox.trading import trading_of

        venue = trading_of(sb)
        sim = sb.sim
        m = _reward_market(sim)
        events: list = []
        sim.add_account_listener(lambda e: events.append(e) if e[0] == "order" else None)
        ids = _band_orders(sim, "acct", m, max(m.min_order_size, D(10)))
        venue._positions[("acct", m.yes_token_id)] = D(30)  # inventory to redeem
        venue._positions[("acct", m.no_token_id)] = D(12)
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{sb.clob_url}/_sandbox/resolve",
                              data=json.dumps({"condition_id": m.condition_id, "winner": "NO"})) as r:
                body = await r.json()
            assert r.status == 200
            winner_yes = body["winner"] == "YES"
            assert m.event_id is not None or not winner_yes
            async with s.get(f"{sb.clob_url}/book", params={"token_id": m.yes_token_id}) as r:
                assert r.status == 404
            async with s.get(f"{sb.clob_url}/markets/{m.condition_id}") as r:
                clob = await r.json()
            async with s.get(f"{sb.gamma_url}/markets/{m.gamma_id}") as r:
                gamma = await r.json()
            async with s.post(f"{sb.clob_url}/_sandbox/resolve", data=json.dumps({"condition_id": "0xdead"})) as r:
                assert r.status == 404
            async with s.get(f"{sb.clob_url}/_sandbox/economics", params={"owner": "acct"}) as r:
                truth = await r.json()
        assert sim.bad_venue_data == 1
        assert [t["winner"] for t in clob["tokens"]] == [winner_yes, not winner_yes]
        assert clob["accepting_orders"] is False and clob["closed"] is True
        assert gamma["closed"] is True and gamma["umaResolutionStatus"] == "resolved"
        assert gamma["acceptingOrders"] is False
        assert all(sim.get_order(i).status == "CANCELED_MARKET_RESOLVED" for i in ids)
        assert {e[1].order_id for e in events if e[2] == "CANCELLATION"} == set(ids)
        assert sim.open_orders("acct") == []
        st_ = truth["settlements"][0]
        assert D(st_["payout"]) == (D(30) if winner_yes else D(12))
        assert ("acct", m.yes_token_id) not in venue._positions


def test_resolve_knob_and_market_resolved_event() -> None:
    sim = Simulator(markets=15, seed=2, start_ts=START)
    sim.resolve_every = 30.0
    first = sim.next_to_resolve()
    evs = sim.run_until(START + 31)
    res = [e for e in evs if e.payload.get("event_type") == "market_resolved"]
    assert len(res) == 1 and res[0].custom and first.resolved
    p = res[0].payload
    assert p["market"] == first.condition_id
    assert p["winning_asset_id"] in (first.yes_token_id, first.no_token_id)
    assert sim.book_snapshot(first.yes_token_id) is None
    sim.run_until(START + 61)
    assert sum(m.resolved for m in sim.markets) == 2  # one market at a time


async def test_order_scoring_endpoints_with_the_sdk(tmp_path) -> None:
    from eth_account import Account
    from py_clob_client_v2 import ClobClient
    from py_clob_client_v2.clob_types import OrderScoringParams, OrdersScoringParams

    async with Sandbox(SandboxConfig(markets=20, seed=11, speed=1.0, start_ts=START)) as sb:
        sb.paused = True
        key = "0x" + Account.create().key.hex().removeprefix("0x")

        def session() -> tuple:
            c = ClobClient(sb.clob_url, chain_id=137, key=key)
            c.set_api_creds(c.create_or_derive_api_key())
            api_key = c.creds.api_key
            m = _reward_market(sb.sim)
            ids = _band_orders(sb.sim, api_key, m, max(m.program.min_size, m.min_order_size))
            far = sb.sim.place_order(api_key, "far", m.yes_token_id, Side.BUY, m.tick_size, max(
                m.program.min_size, m.min_order_size), True).order_id
            one = c.is_order_scoring(OrderScoringParams(orderId=ids[0]))
            many = c.are_orders_scoring(OrdersScoringParams(orderIds=[*ids, far, "nope"]))
            return ids, far, one, many

        ids, far, one, many = await asyncio.to_thread(session)
        assert one == {"scoring": True}
        assert many == {ids[0]: True, ids[1]: True, far: False, "nope": False}
