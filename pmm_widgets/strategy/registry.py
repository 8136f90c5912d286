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
