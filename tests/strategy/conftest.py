"""Fixtures of the strategy area; builders live in strategy_helpers."""

from __future__ import annotations

import pytest

from pmm_widgets.config import Params


@pytest.fixture
def params() -> Params:
    return Params()
