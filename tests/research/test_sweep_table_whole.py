"""`pmm sweep`'s table is printed whole: every point, every swept value and figure, one line a
point however wide. (A `pd.option_context("display.width", 200, "display.max_columns", 30)`
around the print looked as if it cut the table at 200 characters or 30 columns; `to_string`
reads neither option, so it did nothing and is gone. This pins what the table does.)
The sweep itself is replaced by its result frame: the printing is what is tested."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmm_widgets.cli import main
from pmm_widgets.errors import ExitCode
from pmm_widgets.research import sweeps

FIGURES = ["fills", "fills_per_min", "pnl_total", "spread_pnl", "inventory_pnl", "fees", "rebates", "rewards",
           "markout_5s_usd", "max_inventory_usd"]
PARAMS = ["alpha", "paper_spread_k", "paper_fill_intensity", "calib_max_mult", "paper_queue_power", "paper_latency_ms"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=st.integers(1, 120), n_params=st.integers(1, len(PARAMS)))
def test_the_sweep_table_shows_every_point_and_column_on_one_line(tmp_path, monkeypatch, capsys, points, n_params):
    grid = PARAMS[:n_params]
    df = pd.DataFrame([{"point": i, **{p: 1.0 + i / 7 for p in grid},
                        **{f: (i * 0.123456 if f != "fills" else i) for f in FIGURES}, "extra": "not shown"}
                       for i in range(points)])
    df.attrs.update({"sweep_id": "swtest", "parquet": str(tmp_path / "o.parquet"), "status": "done"})
    monkeypatch.setattr(sweeps, "sweep", lambda *a, **kw: df)
    monkeypatch.setenv("PMM_RECORD_DIR", str(tmp_path / "rec"))
    # (the grid's values are not checked against the frame: a frame stands for the sweep's result)
    argv = ["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z",
            *(a for p in grid for a in ("--grid", f"{p}=1,2")), "--jobs", "1", "--db-url", f"sqlite:///{tmp_path / 's.db'}"]
    assert main(argv) == ExitCode.OK
    out = capsys.readouterr().out.splitlines()
    head, rows, last = out[0], out[1:-1], out[-1]
    assert head.split() == ["point", *grid, *FIGURES]  # every column, in order, on the one header line
    assert len(rows) == points and [r.split()[0] for r in rows] == [str(i) for i in range(points)]
    assert all(len(r.split()) == 1 + n_params + len(FIGURES) for r in rows)
    assert "..." not in "\n".join(out) and "extra" not in head
    assert len({len(r) for r in [head, *rows]}) == 1  # aligned columns, however wide (no wrap at 200)
    assert last == f"sweep swtest: {points} point{'' if points == 1 else 's'} -> sweep_results, {tmp_path / 'o.parquet'}"
