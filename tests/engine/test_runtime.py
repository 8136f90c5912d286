"""`build_runtime` is all or nothing: a step that fails once the exchange exists cancels its
orders first (the shutdown's `cancel_and_verify`), then closes exchange and market data (LIFO,
through the runtime's exit stack), and the error reaches the engine unchanged."""

from __future__ import annotations

import pytest

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode
from pmm_widgets.engine.runtime import build_runtime, open_store
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.market_data import MarketData
from pmm_widgets.venue.universe import load_universe


async def test_a_failed_build_cancels_then_closes_what_it_opened(fast_settings, db, monkeypatch):
    calls: list[str] = []

    def spy(cls: type, name: str) -> None:
        real = getattr(cls, name)

        async def wrapped(self, *a, **kw):
            calls.append(f"{cls.__name__}.{name}")
            return await real(self, *a, **kw)

        monkeypatch.setattr(cls, name, wrapped)

    spy(PaperExchange, "cancel_all")
    spy(PaperExchange, "close")
    spy(MarketData, "close")

    def broken(_db):
        raise RuntimeError("calibration table unreadable")

    monkeypatch.setattr("pmm_widgets.store.repo.load_calibration", broken)
    store = open_store(fast_settings, MemorySink())
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="calibration table unreadable"):
        await build_runtime(fast_settings, Mode.PAPER, Params(), store, db=db, owner_id="t",
                            first_universe=lambda g: load_universe(g, 4), on_universe=lambda ms: seen.append(len(ms)))
    assert seen == [4]  # it got as far as the universe, market data and the exchange
    assert calls[0] == "PaperExchange.cancel_all", calls  # orders first
    # then the exit stack, LIFO: the exchange (whose close cancels again), then market data
    assert calls.index("PaperExchange.close") < calls.index("MarketData.close") == len(calls) - 1, calls
