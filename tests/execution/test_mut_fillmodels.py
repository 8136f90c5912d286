"""fillmodels.py's remaining parts (the knobs read from the settings, the `Params` entry points,
fill sizes, queue arithmetic): behaviours a mutation pass found unpinned (each test failed on a
surviving mutant of pmm_widgets/execution/fillmodels.py)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest
from fill_helpers import ScriptedRng

from pmm_widgets.config import Params
from pmm_widgets.execution.fillmodels import (
    DEFAULT_REF_DEPTH,
    IntensityKnobs,
    QueuePosition,
    draw_fill_size,
    intensity_rate,
)

# every knob a different value, so a knob read from another setting shows
P = Params(paper_fill_intensity=6.0, paper_spread_k=50.0, paper_full_fill_prob=0.25, paper_partial_beta_a=3.0,
           paper_partial_beta_b=7.0, paper_partial_max_frac=0.6)


def test_each_knob_is_read_from_its_own_setting() -> None:
    assert IntensityKnobs.from_params(P) == IntensityKnobs(6.0, 50.0, 0.25, 3.0, 7.0, 0.6, 100.0)
    k = IntensityKnobs.from_params(P, 40.0)
    assert (k.intensity, k.spread_k, k.full_fill_prob, k.beta_a, k.beta_b, k.partial_max_frac, k.ref_depth) == (
        6.0, 50.0, 0.25, 3.0, 7.0, 0.6, 40.0)
    assert DEFAULT_REF_DEPTH == 100.0


def test_intensity_rate_from_the_settings() -> None:
    """6/min = 0.1/s at the touch holding the reference depth; e^−(50 × 0.02) of it two cents
    behind; the reference depth passed on (depth 120 at a reference of 40: factor 2·40/160)."""
    assert intensity_rate(P, 0.0, 100.0) == pytest.approx(0.1)
    assert intensity_rate(P, 0.02, 100.0) == pytest.approx(0.1 * 0.36787944117144233)
    assert intensity_rate(P, 0.0, 0.0) == pytest.approx(0.2)
    assert intensity_rate(P, 0.0, 120.0, 40.0) == pytest.approx(0.05)


class _Beta(ScriptedRng):
    """Records the Beta parameters it is asked for."""

    def __init__(self, randoms: list[float], betas: list[float]) -> None:
        super().__init__(randoms, betas)
        self.asked: list[tuple[float, float]] = []

    def beta(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return super().beta(a, b)


def test_draw_fill_size_from_the_settings() -> None:
    """Full below `paper_full_fill_prob`, else Beta(a, b) capped at `paper_partial_max_frac`."""
    assert draw_fill_size(ScriptedRng([0.24]), P, D(10), D(1)) == D(10)  # type: ignore[arg-type]
    rng = _Beta([0.25], [0.5])
    assert draw_fill_size(rng, P, D(10), D(1)) == D(5)  # type: ignore[arg-type]
    assert rng.asked == [(3.0, 7.0)]
    assert draw_fill_size(ScriptedRng([0.9], [0.7]), P, D(10), D(1)) == D(6)  # type: ignore[arg-type]
    assert draw_fill_size(ScriptedRng([0.9], [0.1]), P, D(10), D(5)) == D(5)  # type: ignore[arg-type]


def test_knobs_are_a_value() -> None:
    """Immutable and hashable: a spec holding them is a value too (`FillModelSpec` is frozen)."""
    k = IntensityKnobs.from_params(P)
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.intensity = 1.0  # type: ignore[misc]
    assert {k: 1, IntensityKnobs.from_params(P): 2} == {k: 2}


def test_an_unchanged_level_leaves_the_queue_as_it_was() -> None:
    """Not even the spelling of what is ahead changes (the fill record shows it as text)."""
    qp = QueuePosition(ahead=D("10"), level=D("30.50"))
    qp.on_level(D("30.50"))
    assert str(qp.ahead) == "10" and qp.level == D("30.50")
