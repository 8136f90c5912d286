"""`build_runtime` (engine/runtime.py) against the embedded sandbox: what a built runtime can do,
and what a failed build leaves behind.

A built paper runtime is ready to quote: its exchange knows the start-up universe (an order on
it rests) and sees the market data's books (an order that would cross is refused as post-only),
the market data records book snapshots, the feed applies large frames in slices of
`cycle_yield_ms`, and paper orders an earlier (killed) engine left open are closed. Closing it
closes cycle, exchange, market data, Gamma and the embedded sandbox, last opened first. A build
that fails before the exchange exists raises the step's own error and closes what it opened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from engine_helpers import until

from pmm_widgets.config import Params, Settings
from pmm_widgets.domain import BUY, Mode, OrderStatus, Quote
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.engine.runtime import Runtime, build_runtime, open_store
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.gamma import GammaClient
from pmm_widgets.venue.market_data import MarketData
from pmm_widgets.venue.universe import load_universe


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The closes, in order, of everything a runtime opens."""
    calls: list[str] = []
    for cls, name in ((QuoteCycle, "aclose"), (PaperExchange, "close"), (MarketData, "close"),
                      (GammaClient, "aclose"), (Sandbox, "stop")):
        real = getattr(cls, name)

        def wrap(real: Callable[..., Any], label: str) -> Callable[..., Any]:
            async def wrapped(self: Any, *a: Any, **kw: Any) -> Any:
                calls.append(label)
                return await real(self, *a, **kw)
            return wrapped

        monkeypatch.setattr(cls, name, wrap(real, f"{cls.__name__}.{name}"))
    return calls


async def _build(settings: Settings, sink: MemorySink, db: Any) -> Runtime:
    store = open_store(settings, sink)
    return await build_runtime(settings, Mode.PAPER, Params(), store, db=db, owner_id="host:1:t",
                               first_universe=lambda g: load_universe(g, 4), on_universe=lambda ms: None)


async def test_a_failure_before_the_exchange_exists_is_raised_as_is_and_closes_what_was_opened(
        fast_settings, db, closes, monkeypatch):
    async def refused(self: MarketData) -> None:
        raise ConnectionRefusedError("market feed refused")

    monkeypatch.setattr(MarketData, "start", refused)
    with pytest.raises(ConnectionRefusedError, match="market feed refused"):
        await _build(fast_settings, MemorySink(), db)
    assert closes == ["MarketData.close", "GammaClient.aclose", "Sandbox.stop"]


async def test_a_built_paper_runtime_is_ready_to_quote_and_closes_all_it_opened(fast_settings, db, closes):
    s = fast_settings.model_copy(update={"record_book_sec": 0.05, "cycle_yield_ms": 7})
    sink = MemorySink()
    left = [{"client_id": f"{mode}-{st}", "mode": mode, "status": st}
            for mode in ("paper", "live") for st in ("PENDING", "LIVE", "PARTIAL", "FILLED")]
    sink.rows["orders"] = [dict(r) for r in left]  # what an engine killed mid-session left open
    rt = await _build(s, sink, db)
    try:
        # a paper order dies with its process: the open ones are closed, with the reason; live and done ones stay
        after = {r["client_id"]: (r["status"], r.get("reason")) for r in sink.rows["orders"]}
        why = "engine restarted: paper orders die with their process"
        assert after == {**{f"paper-{st}": ("CANCELED", why) for st in ("PENDING", "LIVE", "PARTIAL")},
                         "paper-FILLED": ("FILLED", None),
                         **{f"live-{st}": (st, None) for st in ("PENDING", "LIVE", "PARTIAL", "FILLED")}}
        assert len(rt.markets) == 4
        # cycle_yield_ms: the feed applies large frames, and the cycle decides markets, in slices this long
        assert rt.md.stream.apply_budget_sec == pytest.approx(0.007) and rt.cycle.yield_sec == pytest.approx(0.007)
        m = rt.markets[0]
        tok = m.yes_token_id
        assert await until(lambda: rt.md.view(tok) is not None and rt.md.view(tok).best_ask is not None)
        ask = rt.md.view(tok).best_ask
        assert ask is not None
        resting, crossing = await rt.exchange.place([Quote(m.condition_id, tok, BUY, m.tick_size, m.min_order_size),
                                                     Quote(m.condition_id, tok, BUY, ask, m.min_order_size)])
        assert resting.status is OrderStatus.LIVE, resting.reason  # a start-up market: the exchange knows it
        assert (crossing.status, crossing.reason) == (OrderStatus.REJECTED, "post-only: would cross the best ask")
        # the market data records the books it follows
        assert await until(lambda: any(r["token_id"] == tok for r in sink.rows.get("book_snapshots", ())))
    finally:
        await rt.aclose()
    assert closes == ["QuoteCycle.aclose", "PaperExchange.close", "MarketData.close", "GammaClient.aclose",
                      "Sandbox.stop"]
