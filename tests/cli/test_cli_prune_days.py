"""`pmm db prune --days` is validated as PMM_RETAIN_DAYS is: a negative, NaN or infinite value is
refused with one line naming the flag (exit 2), and the database is not touched. Before, `--days nan`
and `--days inf` printed "pruned 0 rows older than nan days" and a negative value was taken for
"retention off"."""

from __future__ import annotations

import pytest

from pmm_widgets import cli
from pmm_widgets.errors import ExitCode


@pytest.mark.parametrize("days,said", [("nan", "Input should be a finite number"),
                                       ("inf", "Input should be a finite number"),
                                       ("-1", "Input should be greater than or equal to 0")])
def test_a_bad_days_value_is_refused_naming_the_flag(env, capsys, days, said):
    assert cli.main(["db", "init"]) == 0
    capsys.readouterr()
    assert cli.main(["db", "prune", f"--days={days}"]) == ExitCode.CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert err.strip().splitlines() == [f"pmm: --days={float(days)}: {said}"]


def test_an_infinite_retain_days_setting_is_refused(env, capsys):
    env.setenv("PMM_RETAIN_DAYS", "inf")
    assert cli.main(["db", "prune"]) == ExitCode.CONFIG
    assert "PMM_RETAIN_DAYS=inf: Input should be a finite number" in capsys.readouterr().err


def test_days_zero_is_retention_off_and_a_number_prunes(env, capsys):
    assert cli.main(["db", "init"]) == 0
    capsys.readouterr()
    assert cli.main(["db", "prune", "--days", "0"]) == ExitCode.OK
    assert "retention is off" in capsys.readouterr().out
    assert cli.main(["db", "prune", "--days", "2.5"]) == ExitCode.OK
    assert "older than 2.5 days" in capsys.readouterr().out
