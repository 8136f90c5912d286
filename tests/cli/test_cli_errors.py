"""Every CLI command under the three failures a user meets first (issue 11): an unreachable venue,
a database path that cannot be written, a bad setting. Each gives one error line, the exit code
the README documents, and never a traceback (that is what `--log-level DEBUG` is for)."""

from __future__ import annotations

import pytest

from pmm_widgets import cli
from pmm_widgets.errors import ExitCode

UNREACHABLE = {"PMM_GAMMA_URL": "http://127.0.0.1:9", "PMM_CLOB_URL": "http://127.0.0.1:9",
               "PMM_CLOB_WS_URL": "ws://127.0.0.1:9/ws", "PMM_HTTP_TIMEOUT_SEC": "1"}
KEY = "0x" + "11" * 32

# (argv, exit code with an unreachable venue, with an unwritable DB (a read-only command: no file there, exit 2))
COMMANDS = [
    (["db", "init"], 0, 1),
    (["db", "status"], 0, 2),
    (["db", "prune", "--days", "1"], 0, 2),
    (["universe", "refresh"], 1, 1),
    (["run", "paper", "--max-seconds", "3"], 1, 1),
    (["run", "live", "--dry-run", "--max-seconds", "3"], 1, 1),
    (["report"], 0, 2),
    (["auth", "derive"], 1, None),  # uses no database
    (["config"], 0, 0),
]
READ_ONLY = [["db", "status"], ["db", "prune", "--days", "1"], ["report"], ["report", "--json"]]


@pytest.fixture
def env(env):  # conftest's, with a wallet key (live commands need one)
    env.setenv("PMM_PRIVATE_KEY", KEY)
    return env


def _run(argv, capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _check(argv, capsys, expected: int) -> str:
    """Run; the documented code, no traceback; on failure exactly one line for the user: that line."""
    code, out, err = _run(argv, capsys)
    assert code == expected, (code, out, err)
    assert "Traceback" not in out + err
    if not code:
        return ""
    lines = _error_lines(err)
    assert len(lines) == 1, err
    return lines[0]


def _error_lines(err: str) -> list[str]:
    """The lines meant for the user (log records have a timestamp and a level first)."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln[:4].isdigit() and "warning:" not in ln]


@pytest.mark.parametrize("argv,venue_code,_db", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_unreachable_venue(env, capsys, argv, venue_code, _db):
    assert cli.main(["db", "init"]) == 0  # (the commands that only read it need one)
    capsys.readouterr()
    for k, v in UNREACHABLE.items():
        env.setenv(k, v)
    line = _check(argv, capsys, venue_code)
    assert not venue_code or "127.0.0.1:9" in line, line  # names the host that failed


@pytest.mark.parametrize("argv,_venue,db_code", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_unwritable_db_path(env, capsys, argv, _venue, db_code):
    if db_code is None:
        pytest.skip("this command uses no database")
    for k, v in UNREACHABLE.items():
        env.setenv(k, v)
    env.setenv("PMM_DB_URL", "sqlite:////proc/pmm-no-such-dir/x.db")  # not writable, even for root
    line = _check(argv, capsys, db_code)
    said = "no database at" if db_code == ExitCode.CONFIG else "does not exist"
    assert not db_code or ("/proc/pmm-no-such-dir" in line and said in line), line


@pytest.mark.parametrize("argv", READ_ONLY, ids=" ".join)
def test_a_read_only_command_on_a_missing_sqlite_file_creates_none(env, capsys, tmp_path, argv):
    """`pmm report` (and `db status`, `db prune`) pointed at an SQLite file that is not there (a typo,
    a wrong directory) created an empty database there and reported nothing (exit 0): now one line
    naming the file's absolute path, exit 2, and no file."""
    env.setenv("PMM_DB_URL", "sqlite:///typo/pmm.db")  # relative: under the test's directory (`env`)
    (tmp_path / "typo").mkdir()
    cmd = " ".join(argv[:2]) if argv[0] == "db" else "report"
    line = _check(argv, capsys, ExitCode.CONFIG)
    assert line == (f"pmm: no database at {tmp_path / 'typo' / 'pmm.db'} (database URL sqlite:///typo/pmm.db): "
                    f"`pmm {cmd}` reads one and creates none; `pmm db init` creates it"), line
    assert list((tmp_path / "typo").iterdir()) == []


@pytest.mark.parametrize("argv", [c[0] for c in COMMANDS], ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_bad_setting(env, capsys, argv):
    env.setenv("PMM_ALPHA", "abc")
    assert ExitCode.CONFIG == 2
    assert _check(argv, capsys, ExitCode.CONFIG).startswith("pmm: PMM_ALPHA=abc")


def test_misspelt_setting_is_warned_with_the_closest_name(env, capsys):
    env.setenv("PMM_ALHPA", "3")
    code, _, err = _run(["config"], capsys)
    assert code == 0
    assert "pmm: warning: PMM_ALHPA is not a setting and is ignored (did you mean PMM_ALPHA?)" in err


def test_sandbox_config_prints_sandbox_urls(env, capsys):
    env.setenv("PMM_VENUE", "sandbox")
    code, out, _ = _run(["config"], capsys)
    urls = [ln for ln in out.splitlines() if ln.startswith(("PMM_GAMMA_URL", "PMM_CLOB_URL", "PMM_CLOB_WS_URL"))]
    assert code == 0 and len(urls) == 3
    assert all("127.0.0.1" in u and "sandbox" in u and "polymarket.com" not in u for u in urls), urls


def test_debug_log_level_shows_the_traceback(env, capsys):
    env.setenv("PMM_DB_URL", "sqlite:////proc/pmm-no-such-dir/x.db")
    code, _, err = _run(["db", "init", "--log-level", "DEBUG"], capsys)
    assert code == 1 and "Traceback" in err


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_engine_on_an_in_memory_database_is_refused(env, capsys, url):
    """`pmm run paper --db-url sqlite://` retried "cannot take the DB lease (no such table:
    engine_lease)" for ever: each connection of an in-memory SQLite database is a database of its
    own. The run, the headless engine and the operator app refuse it in one line, before anything starts."""
    from pmm_widgets.engine.__main__ import main as headless
    from pmm_widgets.ui.dashboard import FatalPanel, launch

    env.setenv("PMM_VENUE", "sandbox")
    env.setenv("PMM_DB_URL", url)
    for argv in (["run", "paper", "--max-seconds", "3"], ["run", "live", "--dry-run", "--max-seconds", "3"]):
        assert _check(argv, capsys, ExitCode.CONFIG).startswith(f"database {url}: in memory")
    assert headless(["--max-seconds", "3"]) == ExitCode.CONFIG
    assert capsys.readouterr().err.startswith(f"database {url}: in memory")
    panel = launch()
    assert isinstance(panel, FatalPanel) and panel.message.startswith(f"database {url}: in memory")
