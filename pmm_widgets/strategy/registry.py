"""Strategy names → instances (`PMM_STRATEGY`, `engine.set_strategy(market, name)`, the dashboard)."""

from __future__ import annotations

from collections.abc import Callable

from ..config import STRATEGY_NAMES
from .avellaneda import AvellanedaStoikov
from .base import Strategy
from .microprice import Microprice
from .regime import RegimeAware
from .rewards_band import RewardsBand
from .spread import SpreadStrategy

BUILDERS: dict[str, Callable[[], Strategy]] = {
    "spread": SpreadStrategy,
    "as": AvellanedaStoikov,
    "microprice": Microprice,
    "regime": RegimeAware,
    "rewards": RewardsBand,
}
assert tuple(BUILDERS) == STRATEGY_NAMES


def build_strategy(name: str) -> Strategy:
    try:
        return BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}: expected one of {', '.join(BUILDERS)}") from None


class Builtins:
    """One instance per built-in name, built on first use (a strategy keeps no per-market state)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Strategy] = {}

    def get(self, name: str) -> Strategy:
        st = self._by_name.get(name)
        if st is None:
            st = self._by_name[name] = build_strategy(name)
        return st
