"""Market data against the loopback sandbox over real sockets: universe, books under churn and
forced disconnects, bad frames, dynamic subscriptions, recording, keepalive."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import pytest
import sqlalchemy as sa
from aiohttp import web

from pmm_widgets.book import OrderBook
from pmm_widgets.config import Settings, Venue
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.sandbox.simulator import Simulator
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.clob_rest import ClobPublic
from pmm_widgets.venue.gamma import GammaClient
from pmm_widgets.venue.http import JsonHttp
from pmm_widgets.venue.market_data import MarketData
from pmm_widgets.venue.market_stream import MarketStream, book_matches
from pmm_widgets.venue.universe import load_universe, refresh_universe

pytestmark = pytest.mark.integration


def expected_top(sim: Simulator, n: int) -> list[str]:
    ok = [m for m in sim.markets if not m.closed and m.accepting_orders and m.has_enable_order_book]
    return [m.condition_id for m in sorted(ok, key=lambda m: -m.liquidity_num)[:n]]


async def universe(sb: Sandbox, n: int) -> list:
    g = GammaClient(sb.gamma_url)
    try:
        return await load_universe(g, n)
    finally:
        await g.aclose()


async def wait_for(cond, timeout: float = 10.0, step: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)


async def settle(md: MarketData, sb: Sandbox) -> None:
    """Stop the simulated market, let frames in flight and pending reloads drain."""
    sb.paused = True
    await asyncio.sleep(0.4)
    await wait_for(lambda: md.stream.connected() and not md.stream._pending
                   and not any(c.resync_owed for c in md.stream.conns)  # throttled resyncs paid
                   and all(b.synced and not b.needs_resync for b in md.books.values()))
    await asyncio.sleep(0.3)


def mismatches(md: MarketData, sb: Sandbox) -> list[str]:
    return [t for t, b in md.books.items() if not book_matches(b, sb.sim.book_snapshot(t))]


async def test_refresh_universe_stores_the_sandbox_top_50_in_order(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'u.db'}"
    settings = Settings(venue=Venue.SANDBOX, db_url=db_url, sandbox_markets=80, sandbox_seed=7,
                        universe_size=50, _env_file=None)
    markets = await refresh_universe(settings)
    want = expected_top(Simulator(80, 7), 50)
    assert [m.condition_id for m in markets] == want
    eng = sa.create_engine(db_url)
    with eng.connect() as c:
        rows = c.execute(sa.text("select rank, condition_id, tick_size from markets order by rank")).all()
    eng.dispose()
    assert [r[0] for r in rows] == list(range(1, 51)) and [r[1] for r in rows] == want
    assert all(m.tradable for m in markets)


async def test_keyset_fallback_gives_the_same_universe(sandbox):
    legacy = GammaClient(sandbox.gamma_url)
    keyset = GammaClient(sandbox.gamma_url)
    try:
        a = await load_universe(legacy, 50)
        sandbox.faults.update(legacy_markets_enabled=False)
        b = await load_universe(keyset, 50)
        c = await load_universe(keyset, 50)
    finally:
        await legacy.aclose()
        await keyset.aclose()
    assert not legacy.used_keyset and keyset.used_keyset and keyset.legacy_off
    assert [m.condition_id for m in a] == [m.condition_id for m in b] == [m.condition_id for m in c]
    assert [m.condition_id for m in a] == expected_top(sandbox.sim, 50)


@pytest.mark.parametrize("legacy", [True, False])
async def test_more_pages_while_short_of_tradable_markets(sandbox, legacy):
    listed = sorted((m for m in sandbox.sim.markets if not m.closed), key=lambda m: -m.liquidity_num)
    n = next(i + 1 for i, m in enumerate(listed) if not (m.accepting_orders and m.has_enable_order_book))
    sandbox.faults.update(legacy_markets_enabled=legacy)
    g = GammaClient(sandbox.gamma_url)
    try:
        got = await load_universe(g, n)  # the first page of n holds an untradable market
    finally:
        await g.aclose()
    assert [m.condition_id for m in got] == expected_top(sandbox.sim, n)
    assert g.http.requests >= 2 + (0 if legacy else 1) and g.used_keyset == (not legacy)


async def test_gamma_retries_through_a_flaky_venue(sandbox):
    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    sandbox.faults.update(http_error_rate=0.5, http_error_status=503)
    http = JsonHttp(sandbox.gamma_url, retries=8, sleep=no_wait)
    g = GammaClient(sandbox.gamma_url, http=http)
    try:
        got = await load_universe(g, 50)
    finally:
        await g.aclose()
    assert [m.condition_id for m in got] == expected_top(sandbox.sim, 50) and http.retried > 0


async def test_rest_outage_during_bootstrap_heals(fast_sandbox):
    sb = fast_sandbox
    markets = await universe(sb, 3)
    sb.faults.update(http_error_rate=1.0, http_error_status=500)
    md = MarketData(sb.clob_url, sb.ws_url, MemorySink())
    await md.start()
    try:
        await md.set_markets(markets)
        await wait_for(lambda: md.stream.stats.rest_errors >= 1)
        sb.faults.update(http_error_rate=0.0)
        await settle(md, sb)
        assert mismatches(md, sb) == []
    finally:
        await md.close()


async def test_books_equal_the_venue_after_churn_and_forced_disconnects(fast_sandbox):
    sb = fast_sandbox
    markets = await universe(sb, 50)
    sink = MemorySink()
    md = MarketData(sb.clob_url, sb.ws_url, sink, record_book_sec=0.5, chunk=8)
    await md.start()
    try:
        await md.set_markets(markets)
        assert len(md.stream.conns) == math.ceil(2 * len(markets) / 8)
        await wait_for(lambda: all(md.view(t) is not None for t in md.books))
        for _ in range(4):  # ~ 4 x 1.2 s of simulated churn at 40x, then a forced drop
            await asyncio.sleep(1.2)
            await sb.drop_websockets()
        await wait_for(lambda: md.health().reconnects >= 4 * len(md.stream.conns))
        await asyncio.sleep(2.0)  # more churn on incremental updates alone, since the last reload
        await settle(md, sb)
        assert mismatches(md, sb) == []
        assert md.health().bad_messages == 0 and md.health().stale_tokens == 0
        for t in md.books:  # views agree with the venue's own best levels and mid
            v = md.view(t)
            assert (v.best_bid, v.best_ask) == sb.sim.best(t) and v.mid == sb.sim.mid(t) and not v.crossed
        n0 = len(sink.rows["book_snapshots"])  # the recorder's next pass (every 0.5 s) sees the settled books
        await wait_for(lambda: len(sink.rows["book_snapshots"]) >= n0 + len(md.books))
        rows = sink.rows["book_snapshots"][n0:n0 + len(md.books)]
        assert {r["token_id"] for r in rows} == set(md.books)
        assert all(r["mid"] == sb.sim.mid(r["token_id"]) and not r["stale"] and not r["crossed"] for r in rows)
        assert len(sink.rows["public_trades"]) > 0 and all(0 < r["price"] < 1 for r in sink.rows["public_trades"])
    finally:
        await md.close()


async def test_malformed_frames_are_counted_and_books_recover(fast_sandbox):
    sb = fast_sandbox
    markets = await universe(sb, 50)
    md = MarketData(sb.clob_url, sb.ws_url, MemorySink())
    await md.start()
    try:
        await md.set_markets(markets)
        await wait_for(lambda: all(md.view(t) is not None for t in md.books))
        sb.faults.update(malformed_rate=0.3)
        await wait_for(lambda: md.health().bad_messages >= 5)
        sb.faults.update(malformed_rate=0.0)
        await settle(md, sb)
        assert mismatches(md, sb) == []
        assert all(b.rejected == 0 for b in md.books.values())  # bad frames never reached a book
    finally:
        await md.close()


async def test_universe_change_resubscribes_on_live_sockets(fast_sandbox):
    sb = fast_sandbox
    markets = await universe(sb, 50)
    md = MarketData(sb.clob_url, sb.ws_url, MemorySink(), chunk=6)
    seen: list[str] = []
    md.add_listener(on_book=lambda v: seen.append(v.token_id))
    await md.start()
    try:
        await md.set_markets(markets[:3])
        await wait_for(lambda: all(md.view(t) is not None for t in md.books))
        await md.set_markets(markets[2:6])
        want = {t for m in markets[2:6] for t in m.token_ids}
        assert set(md.books) == want
        await wait_for(lambda: set().union(*(c.subs for c in sb.hub.conns)) == want)
        assert md.health().reconnects == 0
        await settle(md, sb)
        assert mismatches(md, sb) == [] and set(seen) >= want
        assert md.view(markets[0].yes_token_id) is None
    finally:
        await md.close()


async def test_stale_when_the_connection_is_down(fast_sandbox):
    sb = fast_sandbox
    markets = await universe(sb, 2)
    md = MarketData(sb.clob_url, sb.ws_url, MemorySink(), backoff_base=5.0, backoff_cap=5.0)
    await md.start()
    try:
        await md.set_markets(markets[:1])
        tok = markets[0].yes_token_id
        await wait_for(lambda: md.view(tok) is not None and not md.view(tok).stale)
        # What a reader sees while the connection is down, taken the moment it goes down: the
        # reconnect's full-jitter backoff may be a few ms, too short a window to poll for.
        seen: list[tuple[bool, bool, int]] = []
        closed = md.stream.conn_closed

        def conn_closed(c):
            closed(c)
            h = md.health()
            seen.append((h.connected, md.view(tok).stale, h.stale_tokens))

        md.stream.conn_closed = conn_closed  # type: ignore[method-assign]
        await sb.drop_websockets()
        await wait_for(lambda: bool(seen))
        assert seen[0] == (False, True, 2)
    finally:
        await md.close()


async def test_recording_through_the_batch_writer(fast_sandbox, tmp_path):
    from pmm_widgets.store.migrate import upgrade
    from pmm_widgets.store.writer import BatchWriter

    sb = fast_sandbox
    db_url = f"sqlite:///{tmp_path / 'md.db'}"
    upgrade(db_url)
    writer = BatchWriter(db_url, flush_sec=0.2)
    writer.start()
    markets = await universe(sb, 2)
    md = MarketData(sb.clob_url, sb.ws_url, writer, record_book_sec=0.3)
    await md.start()
    try:
        await md.set_markets(markets)
        await wait_for(lambda: len(md.tape) > 0 and md.rows_recorded >= 8)
        await settle(md, sb)
        n = md.rows_recorded
        await wait_for(lambda: md.rows_recorded >= n + 4)
    finally:
        await md.close()
        await asyncio.to_thread(writer.close)
    eng = sa.create_engine(db_url)
    with eng.connect() as c:
        last_ts = c.execute(sa.text("select max(ts) from book_snapshots")).scalar()
        rows = c.execute(sa.text("select token_id, mid, bid_depth, depth_ticks from book_snapshots where ts = :t"),
                         {"t": last_ts}).all()
        trades = c.execute(sa.text("select count(*) from public_trades")).scalar()
    eng.dispose()
    assert len(rows) == 4 and trades == len(md.tape)
    for tok, mid, depth, k in rows:
        assert Decimal(str(mid)) == sb.sim.mid(tok) and Decimal(str(depth)) > 0 and k == 3


async def test_quiet_books_turn_stale_unless_the_venue_confirms_them(fast_sandbox):
    sb = fast_sandbox
    markets = await universe(sb, 1)
    tok = markets[0].yes_token_id
    unconfirmed = MarketData(sb.clob_url, sb.ws_url, MemorySink(), stale_sec=0.5, quiet_sec=1_000.0)
    confirmed = MarketData(sb.clob_url, sb.ws_url, MemorySink(), stale_sec=3.0, quiet_sec=0.3)
    try:
        for md in (unconfirmed, confirmed):
            await md.start()
            await md.set_markets(markets)
        await wait_for(lambda: all(md.view(tok) is not None and not md.view(tok).stale
                                   for md in (unconfirmed, confirmed)))
        sb.paused = True  # the market goes quiet: no more frames
        await wait_for(lambda: unconfirmed.view(tok).stale)
        assert unconfirmed.health().stale_tokens == 2 and unconfirmed.health().connected
        n = confirmed.stream.stats.snapshots_applied
        await wait_for(lambda: confirmed.stream.stats.snapshots_applied >= n + 4)  # REST reloads of quiet books
        assert not confirmed.view(tok).stale and confirmed.health().stale_tokens == 0
    finally:
        await unconfirmed.close()
        await confirmed.close()


@pytest.fixture
async def silent_ws_server():
    """A websocket server that accepts subscriptions and never answers PING."""
    conns: list[int] = []

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conns.append(1)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws/market", handle)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"ws://127.0.0.1:{runner.addresses[0][1]}/ws", conns
    await runner.cleanup()


async def test_missing_pong_means_a_dead_connection(silent_ws_server):
    url, conns = silent_ws_server
    books = {"1": OrderBook("1")}
    s = MarketStream(url, ClobPublic("http://127.0.0.1:9", retries=0), books, ping_sec=0.05,
                     pong_timeout_sec=0.2, backoff_base=0.01, backoff_cap=0.05)
    try:
        await s.set_assets(["1"])
        await wait_for(lambda: s.stats.reconnects >= 2 and len(conns) >= 3)
    finally:
        await s.close()
