"""Fixtures of the strategy area; builders live in strategy_helpers."""

from __future__ import annotations

import pytest

from pmm_widgets.config import Params


@pytest.fixture
def params() -> Params:
    return Params()


@pytest.fixture(scope="module")
def synth_rec(tmp_path_factory):
    """4 simulated minutes of 2 markets from 2026-11-30T10:00:00Z (`research.synth`), per module."""
    from pmm_widgets.research.recordings import parse_time
    from pmm_widgets.research.synth import synth_recording

    root = tmp_path_factory.mktemp("rec")
    synth_recording(root, parse_time("2026-11-30T10:00:00Z"), 240, markets=2, seed=7)
    return root
