"""Issue 13: the engine (paper) on a sandbox that resolves a market it quotes: `market_resolved`
arrives, its orders are cancelled, its inventory settles at 1/0 into `settlements`, it leaves the
universe and is never quoted again; fees/rebates/reward estimates reach the DB."""

from __future__ import annotations

import pytest
from engine_helpers import count, until

from pmm_widgets.engine import Engine
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.endpoints import Endpoints

pytestmark = pytest.mark.integration


async def test_engine_settles_a_resolved_market_and_drops_it(fast_settings, db):
    settings = fast_settings.model_copy(update={"sandbox_speed": 15.0})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15.0)) as sb:
        engine = Engine(settings, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        engine.start()
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.totals.open_orders > 0)
        cyc = engine.runtime.cycle
        held = lambda: [cid for cid, lg in cyc.pnl.ledgers.items() if lg.yes or lg.no]
        assert await until(lambda: bool(held()), timeout=30), "paper fills built inventory"
        cid = held()[0]
        lg = cyc.pnl.ledgers[cid]
        sm = sb.sim.by_condition[cid]
        m = sb.sim.resolve_market(cid, winner_yes=True)
        assert m is not None
        assert await until(lambda: cid in cyc.resolved, timeout=10)
        win_yes = m.winner_yes
        assert lg.yes == lg.no == 0 and lg.settled
        assert cid not in [x.condition_id for x in engine.owner.markets]
        assert not [o for o in engine.runtime.exchange.open_orders() if o.market == cid]
        await engine.stop()
    assert count(db, "SELECT COUNT(*) FROM settlements WHERE market = :m", m=cid) == 1
    winner = sm.yes_token_id if win_yes else sm.no_token_id
    assert count(db, "SELECT COUNT(*) FROM settlements WHERE winner_token = :w", w=winner) == 1
    assert count(db, "SELECT COUNT(*) FROM orders WHERE market = :m AND status IN ('LIVE','PARTIAL','PENDING')",
                 m=cid) == 0
    assert count(db, "SELECT COUNT(*) FROM trades WHERE liquidity = 'MAKER'") > 0
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'resolution'") >= 1


async def test_a_closed_market_without_the_event_is_settled_from_the_venue(fast_settings, db):
    """No `market_resolved` reaches the engine (a dropped frame): the next universe refresh sees the
    market gone, asks the CLOB whether it closed and who won, and settles it the same way."""
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15.0)) as sb:
        engine = Engine(fast_settings, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        engine.start()
        assert await engine.wait_role() == "owner"
        cyc = engine.runtime.cycle
        held = lambda: [cid for cid, lg in cyc.pnl.ledgers.items() if lg.yes or lg.no]
        assert await until(lambda: bool(held()), timeout=30)
        engine.runtime.md.pop_resolutions = list  # the event is lost
        cid = held()[0]
        assert sb.sim.resolve_market(cid, winner_yes=False) is not None
        await engine.owner.refresh_universe()
        assert cid in cyc.resolved and cyc.pnl.ledgers[cid].settled
        assert cid not in [m.condition_id for m in engine.owner.markets]
        await engine.stop()
    assert count(db, "SELECT COUNT(*) FROM settlements WHERE market = :m AND source = 'closed'", m=cid) == 1
