"""What the fill-model tests share: a book view from price/size texts and a scripted random generator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal as D

from pmm_widgets.domain import BookView, Level

CM = "0xc0"


def bk(bids: list[tuple[str, str]], asks: list[tuple[str, str]], token: str = "y0") -> BookView:
    return BookView(token, CM, tuple(Level(D(p), D(s)) for p, s in bids),
                    tuple(Level(D(p), D(s)) for p, s in asks), D("0.01"))


class ScriptedRng:
    """`random()` and `beta()` return the next scripted value (running out is an error)."""

    def __init__(self, randoms: Sequence[float], betas: Sequence[float] = ()) -> None:
        self._r: Iterator[float] = iter(randoms)
        self._b: Iterator[float] = iter(betas)

    def random(self) -> float:
        return next(self._r)

    def beta(self, a: float, b: float) -> float:
        return next(self._b)
