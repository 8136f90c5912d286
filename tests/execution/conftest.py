"""Fixtures of the live tests: a sandbox with its trading half, a throwaway wallet, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_account import Account

from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import TradingVenue, trading_of


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """12 markets at 20x: enough flow that quotes at the touch fill within seconds."""
    async with Sandbox(SandboxConfig(markets=12, seed=5, speed=20.0)) as s:
        yield s


@pytest.fixture
def venue(sb: Sandbox) -> TradingVenue:
    return trading_of(sb)


@pytest.fixture
def wallet_key() -> str:
    return "0x" + Account.create().key.hex().removeprefix("0x")


@pytest.fixture
async def closers() -> AsyncIterator[list]:
    """Things to close at teardown even when a test fails (exchanges, writers): their worker
    threads would otherwise keep the test process alive."""
    items: list = []
    yield items
    for it in reversed(items):
        try:
            r = it.close()
            if hasattr(r, "__await__"):
                await r
        except Exception:
            pass
