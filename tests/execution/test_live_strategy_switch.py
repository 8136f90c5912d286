"""A strategy switch on a live market (LiveExchange on the loopback sandbox): the venue's own
book never holds orders of two strategies in one market, checked every few milliseconds while
the cycle cancels and requotes."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from live_helpers import active_markets, make_settings

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.live import LiveExchange
from pmm_widgets.store.sink import MemorySink

pytestmark = pytest.mark.integration
D = Decimal


class TaggingLive(LiveExchange):
    """Remembers which strategy placed each venue order (the cycle's strategy for that market)."""

    cycle: QuoteCycle
    tags: dict[str, str]

    def _tag(self, orders) -> None:
        for o in orders:
            if o.venue_order_id:
                self.tags[o.venue_order_id] = self.cycle.strategy_for(o.market).name

    async def place(self, quotes):
        out = await super().place(quotes)
        self._tag(out)
        return out

    async def requote(self, cancel_ids, quotes):
        done, out = await super().requote(cancel_ids, quotes)
        self._tag(out)
        return done, out


async def test_switch_on_a_live_market_never_rests_both_strategies(sb, wallet_key, closers):
    p = Params(quote_size=D(5), alpha=1.0)
    sink = MemorySink()
    ex = TaggingLive(make_settings(sb, wallet_key), sink, sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    await ex.start()
    api_key = ex.broker.creds.api_key.get_secret_value()
    markets = active_markets(sb, 3)
    qc = QuoteCycle(p, sink, Mode.LIVE)
    ex.cycle, ex.tags = qc, {}
    cid = markets[0].condition_id
    by_market: dict[str, str] = {m.yes_token_id: m.condition_id for m in markets}
    by_market.update({m.no_token_id: m.condition_id for m in markets})
    mixed: list[tuple[str, set[str]]] = []
    seen: dict[str, set[str]] = {}
    stop = asyncio.Event()

    async def watch() -> None:  # the venue's view, between every await of the cycle
        while not stop.is_set():
            tags: dict[str, set[str]] = {}
            for so in sb.sim.open_orders(api_key):
                m = by_market.get(so.token_id)
                tag = ex.tags.get(so.order_id) or qc.strategy_for(m).name  # not yet acknowledged: this cycle's
                tags.setdefault(m, set()).add(tag)
            for m, t in tags.items():
                seen.setdefault(m, set()).update(t)
                if len(t) > 1:
                    mixed.append((m, t))
            await asyncio.sleep(0.003)

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        for k in range(18):
            if k == 6:
                qc.set_strategy(cid, "as", as_gamma=0.5)
            if k == 12:
                p.strategy = "microprice"  # every market without an override switches
            await qc.run_once(sb.sim.now(), markets, sb.sim.book_view, ex)
            await asyncio.sleep(0.15)
    finally:
        stop.set()
        await watcher
        await ex.cancel_all()
    assert mixed == []
    assert seen[cid] == {"spread", "as"}  # both rested, never together
    assert all(seen[m.condition_id] >= {"spread", "microprice"} for m in markets[1:])
    switches = [e for e in sink.rows["events"] if e["kind"] == "strategy"]
    assert {(e["market"], e["data_json"]["to"]) for e in switches} == \
        {(cid, "as")} | {(m.condition_id, "microprice") for m in markets[1:]}
    # the book can move between our view and the order's arrival (20x sandbox, loaded host): the
    # venue's post-only refusal is the only rejection allowed; never grid, size or balance
    rejected = [r["reason"] for r in sink.rows.get("orders", []) if r["status"] == "REJECTED"]
    assert all("order crosses book" in (why or "") for why in rejected), rejected
