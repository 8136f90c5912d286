"""What the sweep test modules share (test_sweeps.py, test_sweep_interrupt.py, test_sweep_ray.py):
the window, the grid, a 3-market recording of it, the settings, and how the stored rows are read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from pmm_widgets.config import Settings, load_settings
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.sweeps import TIMING_COLUMNS
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
T1 = T0 + 180
GRID = {"alpha": [1, 2], "paper_spread_k": [50, 100]}


def recording(tmp_path_factory: Any, name: str) -> Path:
    """3 markets over [T0, T1], synthetic (seed 5), in a fresh folder of the session's."""
    root = tmp_path_factory.mktemp(name) / "recordings"
    synth_recording(root, T0, 180, markets=3, seed=5)
    return root


def settings(rec_dir: Path, tmp_path: Path) -> Settings:
    return load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20,
                         db_url=f"sqlite:///{tmp_path / 's.db'}")


def comparable(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A sweep's rows without their timings (which differ from run to run)."""
    return df.drop(columns=[c for c in TIMING_COLUMNS if c in df.columns]).to_dict(orient="records")


def stored(db_url: str, sweep_id: str) -> list[tuple[int, str, int]]:
    """(point, status, fills) of a sweep's rows in `sweep_results`."""
    eng = sa.create_engine(db_url)
    try:
        with eng.connect() as c:
            rows = c.execute(sa.text("SELECT point, summary_json, fills FROM sweep_results WHERE sweep_id = :i "
                                     "ORDER BY point"), {"i": sweep_id}).all()
    finally:
        eng.dispose()
    out = []
    for point, summary, fills in rows:
        s = summary if isinstance(summary, dict) else json.loads(summary)
        out.append((point, s["status"], fills))
    return out
