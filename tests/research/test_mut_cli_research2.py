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


# ----------------------------------------------------------------------------- pmm recordings import-pmxt
def test_import_pmxt_warns_of_a_repeated_file_and_a_market_in_none_of_them(tmp_path, monkeypatch, capsys):
    from test_pmxt_import import _events, write_v2_16

    f = tmp_path / "v2.parquet"
    write_v2_16(f, _events(30))
    root = tmp_path / "rec"
    monkeypatch.setenv("PMM_RECORD_DIR", str(root))
    missing = "0x" + "c" * 64
    assert main(["recordings", "import-pmxt", str(f), str(f), "--markets", f"0x{'a' * 64},{missing}"]) == ExitCode.OK
    out, err = capsys.readouterr()
    said = [ln for ln in err.splitlines() if ln.startswith("pmm")]  # (not the log records)
    assert said == [f"pmm recordings import-pmxt: warning: {f}: the same file again, read once",
                                f"pmm recordings import-pmxt: warning: market {missing} is in none of the files"]
    assert out.startswith("imported ") and " events of 1 markets (" in out
    assert f"from {f} [v2-16] into {root} (session pmxt" in out and "): replay --from 2026-11-30T10:00:00" in out


@pytest.mark.parametrize("markets,shown", [("0", "0"), ("-3", "-3"), (",", "','")])
def test_import_pmxt_refuses_a_bad_market_selection_in_one_line(tmp_path, monkeypatch, capsys, markets, shown):
    monkeypatch.setenv("PMM_RECORD_DIR", str(tmp_path / "rec"))
    assert main(["recordings", "import-pmxt", str(tmp_path / "x.parquet"), "--markets", markets]) == ExitCode.CONFIG
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"pmm: --markets {shown}: ") and err.count("\n") == 1
    assert "expected a positive count or comma-separated condition ids/slugs" in err
    assert not (tmp_path / "rec").exists()


def test_a_sweep_interrupted_as_its_third_pass_starts_counts_the_points_done(rec_dir, tmp_path, monkeypatch, capsys):
    """Ctrl-C as the third of four one-point passes starts (sent from there, deterministically): the
    pass stops at its first check with no row; exit 130, the two points done in the table (with
    their status) and the line: 2 of 4 done, none stopped part-way, where the rows went."""
    import signal

    real = sweeps.run_pass
    calls = []

    def third_is_interrupted(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # as a terminal's Ctrl-C, as this pass starts
        return real(*a, **kw)

    monkeypatch.setattr(sweeps, "run_pass", third_is_interrupted)
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    out_file = tmp_path / "o.parquet"
    code = main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--grid", "alpha=1,2,3,4",
                 "--set", "quote_refresh_sec=1", "--per-pass", "1", "--jobs", "1",
                 "--db-url", f"sqlite:///{tmp_path / 's.db'}", "--out", str(out_file)])
    out, err = capsys.readouterr()
    assert code == ExitCode.INTERRUPTED, err
    said = [ln for ln in err.splitlines() if ln.startswith("pmm sweep: ")]
    assert len(said) == 1 and said[0].startswith(
        "pmm sweep: interrupted: 2 of 4 points done, 0 stopped part-way (status interrupted); their rows -> "
        "sweep_results (sweep_id "), err
    assert said[0].endswith(f"), {out_file}")
    table = out.splitlines()
    assert "status" in table[0].split() and [ln.split()[0] for ln in table[1:]] == ["0", "1"], out
