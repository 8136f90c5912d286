"""Issue 13, live path over the sandbox: the venue's `/orders-scoring` answer through the SDK and
the tape's fee fields on our fills."""

from __future__ import annotations

import asyncio
import time

import pytest
from live_helpers import start_quoting, wait_for

pytestmark = pytest.mark.integration


async def test_orders_scoring_and_fee_fields(sb, venue, wallet_key, closers):
    ex, key, _ = await start_quoting(sb, wallet_key, closers, 3)
    assert await wait_for(lambda: len(ex.open_orders()) > 0, 10)
    ids = [o.venue_order_id for o in ex.open_orders() if o.venue_order_id]
    sb.paused = True  # the book stands still while both sides look at it
    got = await ex.orders_scoring(ids)
    assert got is not None and set(got) == set(ids)
    for oid, scoring in got.items():
        assert scoring == sb.sim.econ.order_scoring(oid)  # the sandbox's own view of each order
    sb.paused = False
    assert await wait_for(lambda: bool(venue.account_fills(key)), 30), "a fill at the touch"

    def placed_before(f) -> bool:  # by the venue's own record (fills are stamped in whole seconds)
        so = sb.sim.get_order(f.venue_order_id)
        return so is not None and so.created_ts < f.ts

    # A fill of an order the venue placed before the fill's instant: the instant is the match's
    # whole second, so an order placed and filled within one second did not rest at it, and
    # `orders_at` rightly leaves it out (a fill of such an order made this test fail once).
    fills: list = []
    for _ in range(300):  # the tape reaches the exchange a moment after the venue's ground truth
        fills += await ex.poll(time.time())
        if any(placed_before(f) for f in fills):
            break
        await asyncio.sleep(0.1)
    assert fills and all(f.raw.get("trader_side") == "MAKER" and f.raw.get("fee_rate_bps") == "0" for f in fills)
    # the reward sample of a venue minute just before a fill sees the order as it rested then
    f = next(f for f in fills if placed_before(f))
    before = {o.venue_order_id: o for o in ex.orders_at(f.ts)}
    after = {o.venue_order_id: o for o in ex.orders_at(f.ts + 1)}
    assert before[f.venue_order_id].remaining >= f.size
    assert f.venue_order_id not in after or after[f.venue_order_id].remaining <= before[f.venue_order_id].remaining - f.size


async def test_canceled_market_resolved_closes_the_orders_rows(sb, wallet_key, closers):
    from pmm_widgets.store.sink import MemorySink

    sink = MemorySink()
    ex, _, _ = await start_quoting(sb, wallet_key, closers, 2, sink=sink)
    assert await wait_for(lambda: len(ex.open_orders()) > 0, 10)
    cid = next(o.market for o in ex.open_orders())
    assert sb.sim.resolve_market(cid) is not None
    assert await wait_for(lambda: not [o for o in ex.open_orders() if o.market == cid], 10)
    rows = [r for r in sink.rows["orders"] if r["market"] == cid]
    assert rows and all(r["status"] in ("CANCELED", "FILLED") for r in rows)
    assert any("canceled_market_resolved" in (r["reason"] or "") for r in rows)


async def test_paid_rewards_and_rebates_are_read_back_from_the_venue(sb, wallet_key, closers):
    """`GET /rewards/user` (SDK `get_earnings_for_user_for_day`) and `GET /rebates/current` (no
    SDK call) answer what the sandbox paid at its midnight; the live cycle reads them once per
    venue day, writes `venue_payouts` and turns that day's estimated rewards into the paid ones."""
    from decimal import Decimal as D

    import aiohttp

    from pmm_widgets.config import Params
    from pmm_widgets.domain import Mode
    from pmm_widgets.economics.payouts import parse_paid
    from pmm_widgets.economics.tracker import VenueClock
    from pmm_widgets.engine.cycle import QuoteCycle
    from pmm_widgets.store.sink import MemorySink

    ex, key, markets = await start_quoting(sb, wallet_key, closers, 2)
    assert await wait_for(lambda: len(ex.open_orders()) > 0, 10)
    econ = sb.sim.econ
    date = time.strftime("%Y-%m-%d", time.gmtime(econ.day * 86400))
    assert await ex.venue_payouts(date) == ([], [])  # nothing is paid before the day ends
    sb.paused = True
    rew = markets[0].condition_id
    fee_m = next(m for m in sb.sim.markets if m.fees_enabled)
    cid = fee_m.condition_id
    # the day's earnings (set here: a few minutes of real accrual are cents, under the $1 minimum)
    econ._ledger(key, rew).rewards_today += D("2.5")
    ours = econ.day_equiv_units.get(cid, 0) + 1000  # at least half of the day's maker volume
    econ._ledger(key, cid).maker_equiv_units += ours
    econ.day_equiv_units[cid] = econ.day_equiv_units.get(cid, 0) + ours
    econ.day_fee_units[cid] = econ.day_fee_units.get(cid, 0) + 4_000_000  # 40 pUSD of taker fees
    econ.midnight()  # the simulated 00:00 UTC: pays the day
    truth = {(p.condition_id, "rewards"): p.rewards for p in econ.paid_on({key}, date) if p.rewards} | {
        (p.condition_id, "rebates"): p.rebates for p in econ.paid_on({key}, date) if p.rebates}
    assert truth[(rew, "rewards")] >= D("2.5") and truth[(cid, "rebates")] >= D(1)
    got = await ex.venue_payouts(date)
    assert got is not None
    rewards, p1 = parse_paid(got[0], "earnings")
    rebates, p2 = parse_paid(got[1], "rebated_fees_usdc")
    assert not p1 and not p2
    assert {(c, "rewards"): v for c, v in rewards.items()} | {(c, "rebates"): v for c, v in rebates.items()} == truth
    assert got[0][0]["date"] == f"{date}T00:00:00Z" and isinstance(got[0][0]["earnings"], float)
    assert isinstance(got[1][0]["rebated_fees_usdc"], str)
    async with aiohttp.ClientSession() as http:  # documented errors: both parameters are required
        async with http.get(f"{sb.clob_url}/rebates/current", params={"date": date}) as r:
            assert r.status == 400
        async with http.get(f"{sb.clob_url}/rewards/user", params={"date": date}) as r:
            assert r.status == 401  # L2 authentication

    # the live cycle: an estimate for that day, then the venue's answer replaces it
    sink = MemorySink()
    qc = QuoteCycle(Params(), sink, Mode.LIVE)
    qc.econ.rewards_by_day[(rew, date)] = D("0.75")
    qc.pnl.ledger(rew).rewards += D("0.75")
    qc.econ.clock = VenueClock(time.time(), (econ.day + 1) * 86400 + 600, 1.0)  # the venue's next day
    await qc._venue_payouts(time.time(), ex)  # asks the venue in the cycle's task
    assert qc._payouts is not None
    await asyncio.wait_for(asyncio.shield(qc._payouts[1]), 10)
    await qc._venue_payouts(time.time(), ex)  # the next cycle books the answer
    assert qc.pnl.ledger(rew).rewards == truth[(rew, "rewards")]
    assert qc.econ.payouts.due(qc.econ.clock.to_venue(time.time())) is None  # read once per day
    rows = {(r["kind"], r["market"]): r["amount"] for r in sink.rows["venue_payouts"]}
    assert rows[("rewards", rew)] == truth[(rew, "rewards")] and rows[("rebates", cid)] == truth[(cid, "rebates")]
    assert rows[("rewards", "TOTAL")] == sum(rewards.values())


async def test_orders_at_counts_what_the_venue_held_at_that_instant(sb, wallet_key, closers):
    """The reward sample of a venue minute reaches the engine a moment after the minute: an
    order cancelled since still counts, one posted since does not, by the venue's times of the
    user channel's PLACEMENT and CANCELLATION events (issue 13's sampling race: a requote around
    the minute counted both the order and its replacement)."""
    from live_helpers import touch_bids

    from pmm_widgets.domain import OrderStatus

    ex, _, markets = await start_quoting(sb, wallet_key, closers, 2)
    assert await wait_for(lambda: len(ex.open_orders()) >= 2, 10)
    first = {o.client_id for o in ex.open_orders()}
    assert await wait_for(lambda: all(ex._spans.get(c) and ex._spans[c].placed for c in first), 10)
    # the sandbox stamps an account event with its last step's time; an event stamped at or after
    # the sampled instant is after it. The instant: a step's time (in ms on the wire) later than
    # every first placement, and the requote is stamped at or after it
    def venue_now() -> float:
        return round(sb.sim.now() * 1000) / 1000

    last_placed = venue_now()
    assert await wait_for(lambda: venue_now() > last_placed, 10)
    instant = venue_now()
    cancel = set(sorted(first)[: len(first) // 2])
    _, new = await ex.requote(sorted(cancel), touch_bids(sb, markets[:1]))
    placed = {o.client_id for o in new if o.status.is_open}
    assert placed, [o.reason for o in new]

    def filled() -> set[str]:  # an order the book's flow filled whole may be gone from either side
        return {o.client_id for o in ex._by_venue.values() if o.status is OrderStatus.FILLED}

    def told(c: str, what: str) -> bool:  # the user channel told the venue's time
        sp = ex._spans.get(c)
        return sp is not None and getattr(sp, what) is not None

    assert await wait_for(lambda: all(told(c, "gone") or c in filled() for c in cancel)
                          and all(told(c, "placed") for c in placed), 10)
    then = {o.client_id for o in ex.orders_at(instant)}
    assert first - filled() <= then <= first  # the cancelled ones rested then, the new ones did not exist yet
    now = {o.client_id for o in ex.orders_at(venue_now() + 0.01)}
    assert placed - filled() <= now and not cancel & now

