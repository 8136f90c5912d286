"""`pmm sandbox` and the settings it does not read: its help listed every command's common
settings (`--db-url`, `--venue`, `--alpha`, `--universe-size`, `--quote-refresh-sec`) and
`pmm sandbox --alpha 2` served the venue as if the flag had not been given. Now its help shows
what it uses, and an unused setting (flag before or after the command, or `--set NAME=...`) is
one line naming it, exit 2, and no venue starts. Every other command keeps all its settings.

(The venue's serve loop is replaced by a recorder here: the flags are what is tested, and a
venue that started would otherwise serve until killed.)"""

from __future__ import annotations

import pytest

from pmm_widgets import cli
from pmm_widgets.errors import ExitCode

UNUSED = [("--db-url", "sqlite:///other.db"), ("--venue", "polymarket"), ("--alpha", "2"), ("--universe-size", "5"),
          ("--quote-refresh-sec", "1")]
ALL_FLAGS = ("--db-url URL", "--venue VENUE", "--alpha ALPHA", "--universe-size SIZE", "--quote-refresh-sec SEC",
             "--log-level LEVEL", "--set NAME=VALUE")


@pytest.fixture
def served(env, monkeypatch):
    """The SandboxConfig each `pmm sandbox` would have served (nothing listens)."""
    from pmm_widgets.sandbox import server

    got: list = []
    monkeypatch.setattr(server, "serve_main", lambda cfg: got.append(cfg) or 0)
    return got


def test_the_sandbox_help_lists_only_what_it_uses(capsys):
    assert cli.main(["sandbox", "--help"]) == 0
    text = capsys.readouterr().out
    for flag, _ in UNUSED:
        assert flag not in text, flag
    for flag in ("--markets", "--seed", "--speed", "--resolve-every", "--host", "--gamma-port", "--clob-port",
                 "--log-level LEVEL", "--set NAME=VALUE"):
        assert flag in text, flag
    assert "universe_size" not in text and "sandbox_markets" in " ".join(text.split())  # --set's own examples


@pytest.mark.parametrize("where", ["after", "before"])
@pytest.mark.parametrize("flag,value", UNUSED)
def test_an_unused_setting_is_one_line_exit_2_and_no_venue(served, capsys, flag, value, where):
    argv = ["sandbox", flag, value] if where == "after" else [flag, value, "sandbox"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == ExitCode.CONFIG and served == [] and out == ""
    assert err.count("\n") == 1 and err.startswith(f"pmm: {flag}: not used by `pmm sandbox`, "), err
    assert "--markets" in err  # what it does take


@pytest.mark.parametrize("item,said", [("alpha=2", "pmm: --set alpha: not used by `pmm sandbox`"),
                                       ("PMM_UNIVERSE_SIZE=3", "pmm: --set PMM_UNIVERSE_SIZE: not used by `pmm sandbox`"),
                                       ("no_such=1", "pmm: --set no_such: expected NAME=VALUE with NAME a setting"),
                                       ("api_key=abc", "pmm: --set api_key: secrets are read from the environment")])
def test_set_of_a_setting_the_sandbox_does_not_read_is_refused(served, capsys, item, said):
    assert cli.main(["sandbox", "--set", item]) == ExitCode.CONFIG
    err = capsys.readouterr().err
    assert err.startswith(said) and err.count("\n") == 1 and served == [], err


def test_what_the_sandbox_uses_still_reaches_it(served, capsys):
    argv = ["--log-level", "WARNING", "sandbox", "--markets", "3", "--seed", "5", "--set", "sandbox_speed=2",
            "--set", "PMM_SANDBOX_RESOLVE_EVERY_SEC=30", "--log-level", "ERROR"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    (cfg,) = served
    assert (cfg.markets, cfg.seed, cfg.speed, cfg.resolve_every) == (3, 5, 2.0, 30.0)


@pytest.mark.parametrize("path", [[], ["db", "init"], ["db", "status"], ["db", "prune"], ["universe", "refresh"],
                                  ["run", "paper"], ["run", "live"], ["replay"], ["sweep"], ["recordings", "list"],
                                  ["recordings", "import-pmxt"], ["fidelity"], ["report"], ["auth", "derive"],
                                  ["config"]], ids=lambda p: " ".join(p) or "pmm")
def test_every_other_command_keeps_all_its_settings(capsys, path):
    assert cli.main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ALL_FLAGS), text
    needs = {"replay": ["--from", "2026-12-01T10:00:00Z", "--to", "2026-12-01T11:00:00Z"],
             "sweep": ["--from", "2026-12-01T10:00:00Z", "--to", "2026-12-01T11:00:00Z"],
             "import-pmxt": ["a.parquet"]}.get(path[-1] if path else "", [])
    ns = vars(cli.build_parser().parse_args([*path, *needs, "--alpha", "2", "--db-url", "sqlite://"]))
    assert ns["alpha"] == "2" and ns["db_url"] == "sqlite://"
