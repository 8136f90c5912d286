"""Fixtures of the market-data tests: in-process sandboxes on loopback (no extensions)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pmm_widgets.sandbox.server import Sandbox, SandboxConfig

START_TS = 1_780_000_000.0


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """80 markets (a few closed / not accepting / without an order book), as the default venue."""
    async with Sandbox(SandboxConfig(markets=80, seed=7, speed=1.0, start_ts=START_TS), extensions=[]) as sb:
        yield sb


@pytest.fixture
async def fast_sandbox() -> AsyncIterator[Sandbox]:
    """A small, busy sandbox: 12 markets at 40x, for churn tests."""
    async with Sandbox(SandboxConfig(markets=12, seed=3, speed=40.0, start_ts=START_TS), extensions=[]) as sb:
        yield sb
