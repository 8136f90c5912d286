"""The research loop: recordings → deterministic replay through the engine's code → sweeps.

`list_recordings(root)`, `replay(settings, t0, t1, ...)`, `sweep(t0, t1, grid, ...)` (a pandas
DataFrame, one row per grid point) and `import_pmxt(...)` (the PMXT L2 archive format).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: `import pmm_widgets.research` stays cheap
    if name in ("replay", "replay_async", "Replayer", "ReplayResult", "format_summary"):
        from . import replayer as _r

        return getattr(_r, name)
    if name in ("list_recordings", "load_window", "parse_time"):
        from . import recordings as _rec

        return getattr(_rec, name)
    if name in ("sweep", "parse_grid"):
        from . import sweeps as _s

        return getattr(_s, name)
    if name == "import_pmxt":
        from . import pmxt as _p

        return _p.import_pmxt
    raise AttributeError(name)
