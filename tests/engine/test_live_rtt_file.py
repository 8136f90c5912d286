"""A live engine writes its measured order round trips when it stops (PMM_LIVE_RTT_FILE), in
the form PMM_PAPER_LATENCY_FILE reads: live on the loopback sandbox, then paper from that file."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from engine_helpers import count, until

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.execution.latency_model import SampledLatency, latency_from_settings, save_round_trips

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _signing_engine(fast_settings, tmp_path, mode: Mode) -> AsyncIterator[tuple[Engine, Settings]]:
    """An engine of `mode` (live or dry run) owning the DB on a loopback sandbox, with a wallet and
    PMM_LIVE_RTT_FILE under `tmp_path`; stopped at the latest on the way out, then the sandbox closed."""
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
    from pmm_widgets.venue.endpoints import Endpoints

    settings = fast_settings.model_copy(update={"private_key": SecretStr(Account.create().key.hex()),
                                                "live_rtt_file": str(tmp_path / "rtt-{venue}.txt")})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15)) as sb:
        engine = Engine(settings, mode, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
            yield engine, settings
        finally:
            await engine.stop()  # (a no-op after the test's own stop)


async def test_live_stop_writes_the_round_trips_paper_latency_reads(fast_settings, db, tmp_path):
    async with _signing_engine(fast_settings, tmp_path, Mode.LIVE) as (engine, settings):
        assert await until(lambda: len(getattr(engine.runtime.exchange, "order_rtt_ms", ())) >= 3)
        await engine.stop()
    path = tmp_path / "rtt-sandbox.txt"  # {venue} → the venue's name
    lat = SampledLatency.from_file(path)
    assert len(lat.samples_ms) >= 3 and all(0 < x < 60_000 for x in lat.samples_ms)
    assert path.read_text().startswith("# order round trips (ms) of a live run")
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'engine_stop' AND message LIKE :m",
                 m=f"%order round trips (median % ms) saved to {path}%") == 1
    paper = latency_from_settings(settings.model_copy(update={"paper_latency_file": str(path)}))
    assert isinstance(paper, SampledLatency) and list(paper.samples_ms) == list(lat.samples_ms)


async def test_a_dry_run_measures_no_round_trip_and_writes_no_file(fast_settings, db, tmp_path):
    """A dry run signs orders and sends none: it saved its signing times (≈ 5 ms) as "order round
    trips" over the live run's file, and paper runs drew their latency from them."""
    path = tmp_path / "rtt-sandbox.txt"
    path.write_text("# order round trips (ms) of a live run\n41.5\n")  # the last live run's
    async with _signing_engine(fast_settings, tmp_path, Mode.DRY_RUN) as (engine, _):
        assert await until(lambda: count(db, "SELECT COUNT(*) FROM orders WHERE mode = 'dry_run'") >= 3)
        assert not engine.runtime.exchange.order_rtt_ms
        # (the status line: a dry run's user stream is off, not "down", which read as an alarm)
        assert engine.state.venue_health.startswith("user stream off (dry run), heartbeat off"), engine.state.venue_health
        await engine.stop()
    assert list(SampledLatency.from_file(path).samples_ms) == [41.5]  # kept
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'engine_stop' AND message LIKE '%round trips%'") == 0


def test_nothing_is_written_without_samples_or_path(tmp_path):
    class Paper:  # no order_rtt_ms: a paper exchange
        pass

    class Live:
        order_rtt_ms = [12.5, 30.0, 18.0]

    assert save_round_trips(Paper(), tmp_path / "a.txt") is None
    assert save_round_trips(Live(), "") is None
    assert not (tmp_path / "a.txt").exists()
    path, n, med = save_round_trips(Live(), tmp_path / "b.txt")
    assert (n, med) == (3, 18.0) and list(SampledLatency.from_file(path).samples_ms) == [12.5, 30.0, 18.0]
