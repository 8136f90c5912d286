"""The engine: wiring, loops, observable state, DB lease and command queue, headless runner.

Imports nothing from ipywidgets, Bokeh, IPython or ipykernel (tests assert it).

The names below load on first use (PEP 562): `engine.cycle`, which every replay and sweep worker
imports, must not pull in `engine.core` (the DB lease, SQLAlchemy: ≈ 0.25 s per process start)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Engine, RemoteParams
    from .state import EngineEvent, EngineState, KillResult, MarketRow

_WHERE = {"Engine": "core", "RemoteParams": "core", "EngineEvent": "state", "EngineState": "state",
          "KillResult": "state", "MarketRow": "state"}

__all__ = ["Engine", "RemoteParams", "EngineEvent", "EngineState", "KillResult", "MarketRow"]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value
