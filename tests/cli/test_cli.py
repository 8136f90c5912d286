"""The `pmm` CLI: help everywhere, exit codes, one-line errors, db init, masking."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import inspect

from pmm_widgets import cli
from pmm_widgets.errors import ExitCode
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.schema import CONTRACT_TABLES

SECRET = "0x5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec1"


pytestmark = pytest.mark.usefixtures("clean_env")  # (tests/conftest.py)


def run_pmm(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pmm_widgets.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


HELP_PATHS = [[], ["db"], ["db", "init"], ["db", "status"], ["universe"], ["universe", "refresh"], ["run"],
              ["run", "paper"], ["run", "live"], ["sandbox"], ["report"], ["auth"], ["auth", "derive"], ["config"]]


@pytest.mark.parametrize("path", HELP_PATHS, ids=lambda p: " ".join(p) or "pmm")
def test_help_everywhere(path, capsys):
    assert cli.main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    # (the sandbox reads no database: it lists only the settings it uses, tests/cli/test_cli_sandbox_unused_flags.py)
    assert out.startswith("usage: pmm") and ("--db-url" in out) == (path != ["sandbox"]) and "--log-level" in out


def test_bad_alpha_exits_2_with_one_line_no_traceback():
    for args in ([], ["db", "init"]):
        proc = run_pmm(*args, env={"PMM_ALPHA": "-1"})
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and "PMM_ALPHA" in proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_db_url_and_bad_flag(capsys):
    os.environ["PMM_DB_URL"] = "nonsense"
    try:
        assert cli.main(["db", "init"]) == 2
    finally:
        del os.environ["PMM_DB_URL"]
    assert "PMM_DB_URL=nonsense" in capsys.readouterr().err
    assert cli.main(["--alpha", "-1", "db", "init"]) == 2
    assert capsys.readouterr().err.startswith("pmm: --alpha=-1")
    assert cli.main(["db", "init", "--set", "no_such=1"]) == 2
    assert cli.main(["db", "init", "--set", "private_key=abcd"]) == 2


def test_a_db_url_that_does_not_parse_is_refused_without_its_password(capsys, monkeypatch):
    """A URL whose port is no number ("...@host:notaport/db") failed in SQLAlchemy with a
    ValueError the validator let through, and the one-line error echoed the whole URL, password
    included; now it is the usual bad-URL line with the password hidden (flag, --set or env)."""
    url = "postgresql+psycopg://u:pw-hidden@127.0.0.1:notaport/db"
    for argv in (["db", "init", "--db-url", url], ["db", "init", "--set", f"db_url={url}"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "pw-hidden" not in err and "u:***@127.0.0.1:notaport/db: expected an SQLAlchemy URL" in err, err
        assert err.count("\n") == 1
    monkeypatch.setenv("PMM_DB_URL", "postgresql://u:pw/hid@den@host:x/db")  # unescaped / and @ in the password
    assert cli.main(["db", "init"]) == 2
    err = capsys.readouterr().err
    assert "pw" not in err and "den" not in err and err.startswith("pmm: PMM_DB_URL=postgresql://u:***@host:x/db"), err


def test_db_init_twice_creates_all_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for _ in range(2):
        proc = run_pmm("db", "init", env={"PMM_DB_URL": url})
        assert proc.returncode == 0, proc.stderr
        assert "database ready" in proc.stdout
    eng = make_engine(url)
    assert set(CONTRACT_TABLES) <= set(inspect(eng).get_table_names())
    eng.dispose()
    proc = run_pmm("db", "status", "--db-url", url)
    assert proc.returncode == 0 and "up to date" in proc.stdout


def test_db_init_postgres(pg_url, capsys):
    assert cli.main(["db", "init", "--db-url", pg_url]) == 0
    assert cli.main(["db", "init", "--db-url", pg_url]) == 0
    assert "database ready" in capsys.readouterr().out


def test_unreachable_db_is_one_line_exit_1(capsys):
    assert cli.main(["db", "init", "--db-url", "postgresql+psycopg://u:pw-hidden@127.0.0.1:1/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pmm: cannot connect") and err.count("\n") == 1 and "pw-hidden" not in err


def test_missing_capability_says_not_built(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pmm_widgets.analytics.report", None)
    assert cli.main(["report"]) == ExitCode.NOT_BUILT == 4
    assert capsys.readouterr().err.strip() == "pmm report: not built yet (pmm_widgets.analytics.report)"
    with pytest.raises(cli.NotBuilt):
        cli.entry("x", "pmm_widgets.store.sink", "no_such_function")


def test_readme_exit_code_table_matches_exit_code_enum():
    """README's exit-code table is the contract scripts rely on: it lists every `ExitCode`
    value, and no other."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text[text.index("Exit codes (`ExitCode`"):]
    table = table[:table.index("\n\n", table.index("| code |"))]
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.M)}
    assert sorted(rows) == sorted(int(c) for c in ExitCode), rows
    assert "lease" in rows[ExitCode.LEASE_HELD] and "not built" in rows[ExitCode.NOT_BUILT]
    assert "configuration" in rows[ExitCode.CONFIG] and "interrupted" in rows[ExitCode.INTERRUPTED]


def test_keyboard_interrupt_is_quiet_130(monkeypatch, capsys):
    def boom(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_report", boom)
    assert cli.main(["report"]) == ExitCode.INTERRUPTED == 130
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_secrets_never_in_cli_output_or_crash_log(monkeypatch):
    env = {"PMM_PRIVATE_KEY": SECRET, "PMM_API_SECRET": "api-secret-value-123"}
    proc = run_pmm("config", env=env)
    assert proc.returncode == 0 and "PMM_ALPHA=1.5" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr and "api-secret-value-123" not in proc.stdout
    assert "PMM_PRIVATE_KEY=**********" in proc.stdout
    # An unexpected exception whose text carries a secret is logged with the secret masked.
    code = (
        "import sys; from pmm_widgets import cli\n"
        "def boom(args):\n"
        "    s = cli.settings_from_args(args)\n"
        "    raise RuntimeError('sdk echoed ' + s.private_key.get_secret_value())\n"
        "cli.cmd_report = boom\n"
        "sys.exit(cli.main(['report']))\n"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")} | env
    crash = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60)
    assert crash.returncode == 1
    assert "RuntimeError: sdk echoed ***" in crash.stderr
    assert SECRET not in crash.stderr and SECRET[2:] not in crash.stderr


def test_console_script_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "pmm")
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("pmm-widgets")


def test_ctrl_c_while_pmm_loads_its_modules_exits_130_without_a_traceback(tmp_path):
    """Ctrl-C in the ≈ 0.3–1 s the CLI's imports take used to print a traceback (a
    KeyboardInterrupt, or pydantic-core's PanicException when it hit that import). The console
    entry holds the interrupt until the imports are done, then exits 130 like a later Ctrl-C."""
    import signal
    import time

    from pmm_widgets import console

    assert console.INTERRUPTED == ExitCode.INTERRUPTED
    exe = os.path.join(os.path.dirname(sys.executable), "pmm")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")} | {
        "PMM_DB_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    codes = []
    for delay in (0.1, 0.2, 0.3, 0.45):  # after Python's own start (its first ≈ 50 ms are Python's)
        proc = subprocess.Popen([exe, "config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and "Error" not in err, (delay, err)
        codes.append(proc.returncode)
    assert set(codes) <= {0, ExitCode.INTERRUPTED} and ExitCode.INTERRUPTED in codes, codes


def test_a_signal_during_interpreter_finalization_keeps_the_decided_exit_code(tmp_path):
    """Once a process has decided its code (`hold_exit_code`), a Ctrl-C that lands while the
    interpreter finalizes (it puts SIG_DFL back for Python-handled signals) used to change it: on an
    idle machine `pmm config` ends in ≈ 0.5 s and a Ctrl-C then exited -2 or 130 instead of 0.
    Here the signal is sent from a destructor run at module teardown, deterministically. And an
    atexit callback the run registered that hangs is still stopped by a signal, with that code."""
    import time

    script = tmp_path / "late.py"
    script.write_text(
        "import atexit, os, signal, sys, time\n"
        "from pmm_widgets.engine.runner import as_process_entry, hold_exit_code\n"
        "as_process_entry()\n"
        "class Late:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(0.05)\n"
        "late = Late()\n"
        "if sys.argv[2] == 'hang':\n"
        "    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(60)))\n"
        "hold_exit_code(int(sys.argv[1]))\n"
        "sys.exit(int(sys.argv[1]))\n")
    for code, how in ((0, "late"), (3, "late"), (0, "hang")):
        t = time.monotonic()
        proc = subprocess.run([sys.executable, str(script), str(code), how], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == code, (code, how, proc.returncode, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert time.monotonic() - t < 30, how  # (the hung callback was stopped, not waited for)


@pytest.mark.integration
def test_sandbox_command_prints_urls_and_stops_on_ctrl_c():
    import signal

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.cli", "sandbox", "--markets", "3", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    if proc.returncode == 3:
        pytest.skip(err.strip())
    assert [ln.split("=")[0] for ln in lines] == [
        "export PMM_GAMMA_URL", "export PMM_CLOB_URL", "export PMM_CLOB_WS_URL"]
    assert all("127.0.0.1" in ln for ln in lines)
    assert proc.returncode == 0 and "Traceback" not in err


def test_missing_third_party_package_is_not_called_unbuilt():
    with pytest.raises(cli.MissingPackage, match="missing Python package 'no_such_pkg_xyz'"):
        cli.entry("x", "no_such_pkg_xyz", "f")
