"""Fixtures of the sandbox tests: an in-process sandbox on loopback, and helpers to read frames."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pmm_widgets.sandbox.server import Sandbox, SandboxConfig

START_TS = 1_780_000_000.0


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A small, fast sandbox (20 markets at 30x) without extensions."""
    async with Sandbox(SandboxConfig(markets=20, seed=11, speed=30.0, start_ts=START_TS), extensions=[]) as sb:
        yield sb
