"""`pmm` contract details the mutation pass found untested: which problem a start reports first,
the live guard, the argparse value types, the flag named in an error, the exit codes of `main`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets import cli
from pmm_widgets.config import SEED_MAX
from pmm_widgets.errors import ExitCode

KEY = "0x" + "11" * 32


@pytest.fixture
def env(env):  # conftest's, recording off
    env.setenv("PMM_RECORD", "off")
    return env


def _user_lines(err: str) -> list[str]:
    """stderr lines meant for the user (log records start with a timestamp)."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln[:4].isdigit() and "warning:" not in ln]


def test_a_refused_live_start_names_a_broken_database_before_the_confirmation(env, capsys):
    """`pmm run live` migrates the database before it asks for the typed confirmation: an operator
    is not asked to confirm real-money trading for a run whose database cannot even be opened."""
    env.setenv("PMM_PRIVATE_KEY", KEY)
    env.setenv("PMM_DB_URL", "sqlite:////proc/pmm-no-such-dir/x.db")
    code = cli.main(["run", "live", "--max-seconds", "3"])  # stdin is not a terminal here, no --yes
    err = capsys.readouterr().err
    assert code == ExitCode.ERROR, err
    lines = _user_lines(err)
    assert len(lines) == 1 and "/proc/pmm-no-such-dir" in lines[0] and "--yes" not in err, err


# ----------------------------------------------------------------------------- argparse value types
def _type_result(fn, text: str) -> int | None:
    """The value an argparse type gives, or None when it refuses the text (a usage error)."""
    import argparse

    try:
        return int(fn(text))
    except argparse.ArgumentTypeError as exc:
        assert repr(text) in str(exc)  # the message quotes what the user typed
        return None


@given(st.integers(min_value=-(2**64), max_value=2**64) | st.sampled_from([0, 1, 2, -1, SEED_MAX, SEED_MAX + 1]))
def test_the_integer_argument_types_take_exactly_their_ranges(n):
    text = str(n)
    assert _type_result(cli._positive_int, text) == (n if n >= 1 else None)
    assert _type_result(cli._seed, text) == (n if 0 <= n <= SEED_MAX else None)
    assert _type_result(cli._jobs, text) == (n if n != 0 else None)


@pytest.mark.parametrize("text", ["", "x", "1.5", "2e3", "one"])
def test_the_integer_argument_types_refuse_what_is_no_whole_number(text):
    assert _type_result(cli._positive_int, text) is None
    assert _type_result(cli._seed, text) is None
    assert _type_result(cli._jobs, text) is None


@pytest.mark.parametrize("argv,said", [
    (["sweep", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z", "--per-pass", "0"],
     "argument --per-pass: expected a whole number of at least 1, got '0'"),
    (["sweep", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z", "--jobs", "0"],
     "argument --jobs: expected a number of processes (1, 2, ...) or -1 for one per core, got '0'"),
    (["replay", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T01:00:00Z", "--seed", "-1"],
     "argument --seed: expected a whole number from 0 to 2**63-1, got '-1'"),
])
def test_a_bad_count_is_a_usage_error_naming_the_flag(env, capsys, argv, said):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


# ----------------------------------------------------------------------------- lazy entry points
def test_a_module_that_fails_to_import_for_its_own_reason_raises_that_error(tmp_path, monkeypatch):
    """Only a missing module is NotBuilt or MissingPackage: any other import failure of a command's
    module (a broken install, a circular import) reaches `main` as itself (exit 1, one line)."""
    (tmp_path / "pmm_mut_broken_mod.py").write_text("raise ImportError('cannot import name x from y')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="cannot import name x from y") as info:
        cli.entry("x", "pmm_mut_broken_mod", "f")
    assert not isinstance(info.value, (cli.NotBuilt, cli.MissingPackage))


# ----------------------------------------------------------------------------- sandbox flags
def _pmm(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    return subprocess.run([sys.executable, "-m", "pmm_widgets.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("argv,said", [
    (["--markets", "0"], "pmm: --markets=0: "),
    (["--speed", "0"], "pmm: --speed=0.0: "),
    (["--seed", "-3"], "pmm: --seed=-3: "),
    (["--resolve-every", "-1"], "pmm: --resolve-every=-1.0: "),
])
def test_a_bad_sandbox_flag_is_refused_naming_the_flag(env, argv, said):
    """The sandbox's own flags go through the settings' validation: a bad value is one line naming
    the flag the user typed, exit 2, and no venue starts (a subprocess: a flag that was ignored
    would start the venue and serve until the timeout)."""
    proc = _pmm("sandbox", *argv)
    assert proc.returncode == ExitCode.CONFIG, proc
    assert proc.stderr.startswith(said) and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stdout == ""


# ----------------------------------------------------------------------------- --set
@pytest.mark.parametrize("name", ["private_key", "PMM_PRIVATE_KEY", "api_key", "api_secret", " Api_Passphrase "])
def test_a_secret_given_with_set_is_refused_even_when_valid(env, capsys, name):
    """A secret on the command line lands in the shell history and the process list: `--set` refuses
    every secret field, whatever its spelling, also a value that would be a valid key."""
    code = cli.main(["config", "--set", f"{name}={KEY}"])
    out, err = capsys.readouterr()
    assert code == ExitCode.CONFIG and out == ""
    assert err == f"pmm: --set {name}: secrets are read from the environment or .env only\n"


@pytest.mark.parametrize("item,name", [("no_such=1", "no_such"), ("alpha", "alpha"), ("PMM_ALPHA", "PMM_ALPHA"),
                                       ("=3", ""), ("universe size=3", "universe size")])
def test_set_takes_only_name_equals_value_with_a_known_name(env, capsys, item, name):
    code = cli.main(["config", "--set", item])
    out, err = capsys.readouterr()
    assert code == ExitCode.CONFIG and out == ""
    assert err == f"pmm: --set {name}: expected NAME=VALUE with NAME a setting from env.example\n"


def test_set_names_a_setting_in_any_case_with_or_without_its_prefix(env, capsys):
    for item in ("alpha=2.5", "ALPHA=2.5", "PMM_ALPHA=2.5", "pmm_alpha=2.5", " Alpha =2.5"):
        assert cli.main(["config", "--set", item]) == ExitCode.OK
        assert "PMM_ALPHA=2.5\n" in capsys.readouterr().out


def test_an_error_names_the_flag_only_for_the_value_the_flag_gave(env, capsys):
    """`--alpha=-1: ...` for a bad flag value, `PMM_UNIVERSE_SIZE=abc: ...` for a bad environment
    value even when other settings came from flags."""
    env.setenv("PMM_UNIVERSE_SIZE", "abc")
    assert cli.main(["--alpha", "2", "--set", "quote_refresh_sec=3", "config"]) == ExitCode.CONFIG
    assert capsys.readouterr().err.startswith("pmm: PMM_UNIVERSE_SIZE=abc: ")
    env.delenv("PMM_UNIVERSE_SIZE")
    assert cli.main(["--alpha", "2", "--set", "universe_size=abc", "config"]) == ExitCode.CONFIG
    assert capsys.readouterr().err.startswith("pmm: --set universe_size=abc: ")


# ----------------------------------------------------------------------------- the process entry
@pytest.mark.parametrize("argv,code", [(["config"], ExitCode.OK), (["--alpha", "-1", "config"], ExitCode.CONFIG)])
def test_the_pmm_script_keeps_its_code_when_a_ctrl_c_lands_at_interpreter_teardown(tmp_path, argv, code):
    """`pmm` (the console script's entry) holds the exit code it decided: a Ctrl-C that lands while
    the interpreter finalizes (sent here from a destructor at module teardown, deterministically)
    does not turn `pmm config`'s 0 into a death by SIGINT."""
    script = tmp_path / "late.py"
    script.write_text(
        "import os, signal, sys, time\n"
        "class Late:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(0.05)\n"
        "late = Late()\n"
        f"sys.argv = ['pmm', *{argv!r}]\n"
        "from pmm_widgets.console import main\n"
        "main()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr


def test_a_missing_third_party_package_is_one_line_exit_1(env, monkeypatch, capsys):
    """A command whose module needs a package that is not installed: exit 1 and one line naming the
    package and the fix (not 4 "not built", not a traceback)."""
    monkeypatch.delitem(sys.modules, "pmm_widgets.analytics.report", raising=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails as if it were not installed
    assert cli.main(["report"]) == ExitCode.ERROR
    assert capsys.readouterr().err == ("pmm: pmm report: missing Python package 'pandas' "
                                       "(reinstall: pip install -e .)\n")


@pytest.mark.parametrize("unbuffered", [True, False])
def test_a_reader_that_leaves_early_is_no_error(tmp_path, unbuffered):
    """`pmm config | head -1`: the pipe's reader is gone before pmm writes: exit 0 and nothing on
    stderr, neither a BrokenPipeError traceback nor, when Python flushes the rest of a full
    buffer at exit, a second complaint (a long --set value makes the output exceed the buffer)."""
    read, write = os.pipe()
    os.close(read)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    long_dir = str(tmp_path / "/".join(["d" * 200] * 60))  # config prints it: > 8 KB of output
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"  # the first write itself fails
    try:
        proc = subprocess.run([sys.executable, "-m", "pmm_widgets.cli", "config", "--set", f"record_dir={long_dir}"],
                              stdout=write, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (ExitCode.OK, "")


# ----------------------------------------------------------------------------- main's one-line errors
UNREACHABLE = {"PMM_GAMMA_URL": "http://127.0.0.1:9", "PMM_CLOB_URL": "http://127.0.0.1:9",
               "PMM_CLOB_WS_URL": "ws://127.0.0.1:9/ws", "PMM_HTTP_TIMEOUT_SEC": "1"}
HINT = " (--log-level DEBUG shows the traceback)"


def test_a_venue_error_points_at_debug_and_debug_shows_its_traceback(env, capsys):
    env.setenv("PMM_PRIVATE_KEY", KEY)
    for k, v in UNREACHABLE.items():
        env.setenv(k, v)
    assert cli.main(["universe", "refresh"]) == ExitCode.ERROR
    err = capsys.readouterr().err
    lines = _user_lines(err)
    assert len(lines) == 1 and "127.0.0.1:9" in lines[0] and lines[0].endswith(HINT), err
    assert "Traceback" not in err
    assert cli.main(["universe", "refresh", "--log-level", "DEBUG"]) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and HINT not in err, err


def test_a_database_error_is_its_own_line_without_the_traceback_hint(env, capsys):
    """A StoreError already says what to do about the database: no pointer to a traceback."""
    env.setenv("PMM_DB_URL", "sqlite:////proc/pmm-no-such-dir/x.db")
    assert cli.main(["db", "init"]) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert err.startswith("pmm: ") and err.count("\n") == 1 and "/proc/pmm-no-such-dir" in err, err
    assert HINT not in err and "Traceback" not in err


# ----------------------------------------------------------------------------- db status figures
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


@given(st.integers(min_value=0, max_value=2**50))
def test_human_bytes_picks_the_largest_unit_below_the_size(n):
    value, unit = cli.human_bytes(n).split()
    size = _UNITS[unit]
    if unit == "B":
        assert value == str(n)
    else:
        assert value == f"{n / size:.1f}"
    assert n < 1024 * size or unit == "GB"  # not a smaller unit than it needs
    assert n >= size or unit == "B"  # not a larger unit than the size


def test_human_bytes_at_the_unit_boundaries():
    assert [cli.human_bytes(n) for n in (0, 1023, 1024, 1024**2 - 1, 1024**2, 1024**3, 5 * 1024**4)] == [
        "0 B", "1023 B", "1.0 KB", "1024.0 KB", "1.0 MB", "1.0 GB", "5120.0 GB"]


def test_retention_note_says_what_is_kept():
    from pmm_widgets.store.retention import RETAINED_TABLES

    assert cli.retention_note(0) == "PMM_RETAIN_DAYS=0, everything kept"
    assert cli.retention_note(0.5) == f"{', '.join(RETAINED_TABLES)} keep 0.5 days; trades and orders forever"
    assert cli.retention_note(7.0) == f"{', '.join(RETAINED_TABLES)} keep 7 days; trades and orders forever"


def test_db_prune_with_retention_off_touches_no_database(env, capsys, tmp_path):
    """`--days 0` (or PMM_RETAIN_DAYS=0): nothing to prune, said in one line, exit 0, even where
    no database exists (none is created)."""
    env.setenv("PMM_DB_URL", f"sqlite:///{tmp_path / 'none.db'}")
    for argv in (["db", "prune", "--days", "0"], ["db", "prune", "--set", "retain_days=0"]):
        assert cli.main(argv) == ExitCode.OK, argv
        assert capsys.readouterr().out == "nothing to prune: retention is off (PMM_RETAIN_DAYS=0 or --days 0)\n"
    assert not (tmp_path / "none.db").exists()
