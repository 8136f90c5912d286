"""What the fill-model tests share: a book view from price/size texts, a touch book and intensity
knobs, and a scripted random generator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal as D

from pmm_widgets.domain import BookView, Level
from pmm_widgets.execution.fillmodels import IntensityKnobs

CM = "0xc0"


def bk(bids: list[tuple[str, str]], asks: list[tuple[str, str]], token: str = "y0") -> BookView:
    return BookView(token, CM, tuple(Level(D(p), D(s)) for p, s in bids),
                    tuple(Level(D(p), D(s)) for p, s in asks), D("0.01"))


BOOK = bk([("0.45", "100")], [("0.48", "100")])
# 6 fills/min at a touch holding the reference depth (100): λ = 0.1/s; over 10 s p = 1 − e^−1 ≈ 0.632;
# always a full fill
K6 = IntensityKnobs(intensity=6.0, spread_k=100.0, full_fill_prob=1.0)


class ScriptedRng:
    """`random()` and `beta()` return the next scripted value (running out is an error)."""

    def __init__(self, randoms: Sequence[float], betas: Sequence[float] = ()) -> None:
        self._r: Iterator[float] = iter(randoms)
        self._b: Iterator[float] = iter(betas)

    def random(self) -> float:
        return next(self._r)

    def beta(self, a: float, b: float) -> float:
        return next(self._b)
