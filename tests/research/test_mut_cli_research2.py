"""`pmm sweep` details the second mutation pass over pmm_widgets/cli.py found untested: what an
interrupted sweep says when Ctrl-C came before any point had replayed."""

from __future__ import annotations

import pytest
from sweep_helpers import recording

from pmm_widgets.cli import main
from pmm_widgets.errors import ExitCode
from pmm_widgets.research import sweeps


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    return recording(tmp_path_factory, "sweepcli2")


def test_a_sweep_interrupted_before_any_point_says_nothing_was_written(rec_dir, tmp_path, monkeypatch, capsys):
    """Ctrl-C during the first pass, before any point has a row: exit 130 and one line, `0 of 2
    points done, 0 stopped part-way ...; nothing written`; no table, no Parquet file."""
    def ctrl_c(*_a, **_kw):  # where the workers run: the Ctrl-C lands before a pass ends
        raise KeyboardInterrupt

    monkeypatch.setattr(sweeps, "_joblib_rows", ctrl_c)
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    out_file = tmp_path / "o.parquet"
    code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", "--grid", "alpha=1,3",
                 "--jobs", "1", "--db-url", f"sqlite:///{tmp_path / 's.db'}", "--out", str(out_file)])
    out, err = capsys.readouterr()
    assert code == ExitCode.INTERRUPTED and out == ""
    said = [ln for ln in err.splitlines() if ln.startswith("pmm sweep: ")]
    assert said == ["pmm sweep: interrupted: 0 of 2 points done, 0 stopped part-way (status interrupted); "
                    "nothing written"], err
    assert not out_file.exists()


def test_a_one_point_sweep_prints_its_row_and_says_point(rec_dir, tmp_path, monkeypatch, capsys):
    """The table (the swept value and the figures, no index column) and the closing line, in the
    singular for one point: `sweep <id>: 1 point -> sweep_results, <parquet>`."""
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    out_file = tmp_path / "o.parquet"
    code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--grid", "alpha=3",
                 "--set", "quote_refresh_sec=1", "--jobs", "1", "--db-url", f"sqlite:///{tmp_path / 's.db'}",
                 "--out", str(out_file)])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    head, row, last = out.splitlines()
    assert head.split()[:3] == ["point", "alpha", "fills"] and row.split()[:2] == ["0", "3.0"]
    assert last.startswith("sweep sw") and last.endswith(f": 1 point -> sweep_results, {out_file}")
    assert out_file.exists()
