"""Issue 13, end to end: the real Engine in live mode on a sped-up loopback sandbox estimates each
market's liquidity reward as the venue accrues it (within ±10 % per market; the bench
`bench/bench_reward_estimate.py` runs the 30 simulated minutes on two seeds)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from eth_account import Account
from pydantic import SecretStr

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.venue.endpoints import Endpoints

pytestmark = pytest.mark.integration

SPEED = 10.0  # at 20x (a venue minute every 3 s beside a 1 s refresh) it failed once in 8 runs: see issue 13's note
MINUTES = 4


async def test_the_live_engines_reward_estimate_follows_the_venue(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    upgrade(url)
    s = Settings(_env_file=None, db_url=url, venue="sandbox", sandbox_speed=SPEED, sandbox_markets=30, sandbox_seed=7,
                 universe_size=6, universe_rank="rewards", rewards_mode="fit", quote_refresh_sec=1.0, lease_ttl_sec=5,
                 writer_flush_sec=0.2, private_key=SecretStr(Account.create().key.hex()))
    async with Sandbox(SandboxConfig(markets=30, seed=7, speed=SPEED)) as sb:
        eng = Engine(s, Mode.LIVE, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        eng.start()
        try:
            assert await eng.wait_role() == "owner"
            econ = eng.runtime.cycle.econ
            assert econ.stream_sampling
            await asyncio.sleep(MINUTES * 60 / SPEED)
            stream = eng.runtime.md.stream
            for _ in range(200):  # read both sides mid-minute, once the engine sampled the last boundary
                if 15 <= sb.sim.now() % 60 <= 45 and not stream.venue_minute_pending(0):
                    sb.paused = True
                    await asyncio.sleep(0.2)  # frames already sent arrive; no venue minute passes
                    if not stream.venue_minute_pending(0):
                        break
                    sb.paused = False
                await asyncio.sleep(0.05)
            assert sb.paused
            key = eng.runtime.exchange.broker.creds.api_key.get_secret_value()
            est = dict(econ.rewards)
            truth = {r["condition_id"]: r["rewards_accrued"] for r in sb.sim.econ.account(key)["markets"]}
        finally:
            await eng.stop()
    assert econ.sample_count >= MINUTES - 1
    earning = {cid: t for cid, t in truth.items() if t >= Decimal("0.0005")}
    assert earning, f"nothing earned: {truth}"
    for cid, t in earning.items():
        e = est.get(cid, Decimal(0))
        assert abs(e - t) <= t / 10, (cid, t, e)
