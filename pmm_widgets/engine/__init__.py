"""The engine: wiring, loops, observable state, DB lease and command queue, headless runner.

Imports nothing from ipywidgets, Bokeh, IPython or ipykernel (tests assert it)."""

from .core import Engine, RemoteParams
from .state import EngineEvent, EngineState, KillResult, MarketRow

__all__ = ["Engine", "RemoteParams", "EngineEvent", "EngineState", "KillResult", "MarketRow"]
