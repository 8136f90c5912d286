"""`--set` given before the command and after it: both are applied, in the order given (argparse
replaced the top-level list with the command's: `pmm --set alpha=2 config --set universe_size=7`
printed PMM_ALPHA=1.5, the first `--set` dropped without a word)."""

from __future__ import annotations

import pytest

from pmm_widgets import cli


def _config(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    assert cli.main([*argv]) == 0
    out = capsys.readouterr().out
    return dict(line.split("=", 1) for line in out.splitlines() if line.startswith("PMM_") and "=" in line)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)  # (no .env of the repository)
    for name in ("PMM_ALPHA", "PMM_UNIVERSE_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_a_set_before_the_command_survives_one_after_it(capsys: pytest.CaptureFixture[str]) -> None:
    got = _config(capsys, "--set", "alpha=2", "config", "--set", "universe_size=7")
    assert got["PMM_ALPHA"] == "2.0" and got["PMM_UNIVERSE_SIZE"] == "7"


def test_the_later_set_of_one_name_wins(capsys: pytest.CaptureFixture[str]) -> None:
    assert _config(capsys, "--set", "alpha=2", "config", "--set", "alpha=3")["PMM_ALPHA"] == "3.0"
    assert _config(capsys, "--set", "alpha=2", "--set", "alpha=2.5", "config")["PMM_ALPHA"] == "2.5"


def test_a_set_on_one_side_alone_still_applies(capsys: pytest.CaptureFixture[str]) -> None:
    assert _config(capsys, "--set", "alpha=2", "config")["PMM_ALPHA"] == "2.0"
    assert _config(capsys, "config", "--set", "alpha=3")["PMM_ALPHA"] == "3.0"


def test_a_set_before_the_sandbox_is_refused_like_one_after_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--set", "alpha=2", "sandbox", "--markets", "2"]) == 2
    assert "--set alpha: not used by `pmm sandbox`" in capsys.readouterr().err
