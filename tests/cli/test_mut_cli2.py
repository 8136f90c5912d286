"""`pmm` details the second mutation pass over pmm_widgets/cli.py found untested: what `pmm
fidelity` prints (its table, the fit's summary, the progress of a ground-truth run, the saved
recordings), ..."""

from __future__ import annotations

import pytest

from pmm_widgets import cli
from pmm_widgets.errors import ExitCode


# ----------------------------------------------------------------------------- pmm fidelity
@pytest.mark.integration
def test_a_ground_truth_run_too_short_for_the_engine_to_start_is_one_line(env, tmp_path, capsys):
    """A run whose time is up before the engine has its markets (30 ms here; a loaded host's start
    takes seconds) has nothing to score: one line saying so and what to change, exit 1, nothing
    saved. It ended in "pmm: TypeError: 'NoneType' object is not iterable" (no exchange built
    yet) or "EngineStateError: this engine has not owned the DB" (no database taken yet)."""
    save = tmp_path / "recs"
    code = cli.main(["fidelity", "--markets", "1", "--sim-minutes", "0.0005", "--speed", "1", "--save", str(save)])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln[:4].isdigit()]  # (not the log records)
    assert code == ExitCode.ERROR and len(lines) == 1, err
    assert lines[0].startswith("pmm fidelity: live run seed 7: the engine had no market yet when the run ended ")
    assert lines[0].endswith("ask for a longer run (more --sim-minutes or a lower --speed)")
    assert "Traceback" not in out + err and not save.exists()
