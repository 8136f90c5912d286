"""`pmm` details the second mutation pass over pmm_widgets/cli.py found untested: what `pmm
fidelity` prints (its table, the fit's summary, the progress of a ground-truth run, the saved
recordings); the parser's commands, defaults, choices and usage errors."""

from __future__ import annotations

import json
import pickle

import pytest
from test_cli_fidelity import _save  # the hand-built ground-truth recordings

from pmm_widgets import cli
from pmm_widgets.errors import ExitCode


# ----------------------------------------------------------------------------- pmm fidelity
def _table(out: str) -> dict[int, list[str]]:
    """The rows of `pmm fidelity`'s comparison table, by seed (its header checked)."""
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["seed", "model"])
    assert lines[at].split() == ["seed", "model", "fills", "live", "ratio", "med.mkt", "mk5s", "live", "mk30s", "live",
                                 "pnl", "$", "live", "$"]
    rows: dict[int, list[str]] = {}
    for ln in lines[at + 1:]:
        if not ln.split() or not ln.split()[0].isdigit():
            break
        seed, *rest = ln.split()
        rows[int(seed)] = rest
    return rows


def _row(c: dict) -> list[str]:
    """A table row as it shows one comparison of the --json output (markouts in cents)."""
    return [c["model"], str(c["fills"]), str(c["live_fills"]), f"{c['fills_ratio']:.2f}", f"{c['median_market_err']:.0%}",
            *(f"{c[k] * 100:+.2f}c" for k in ("markout_5s", "live_markout_5s", "markout_30s", "live_markout_30s")),
            f"{c['pnl']:+.2f}", f"{c['live_pnl']:+.2f}"]


def test_the_scoring_table_shows_the_figures_of_the_json_output(env, tmp_path, capsys):
    """Without --fit: one table row per seed, the same figures `--json` gives (markouts in cents),
    and nothing written."""
    d = _save(tmp_path)
    env.setenv("PMM_PAPER_FILL_MODEL", "queue")
    argv = ["fidelity", "--load", str(d), "--seed", "7", "--check-seeds", "8"]
    assert cli.main([*argv, "--json"]) == ExitCode.OK
    res = json.loads(capsys.readouterr().out)
    assert cli.main(argv) == ExitCode.OK
    out = capsys.readouterr().out
    rows = _table(out)
    assert rows == {7: _row(res["seeds"]["7"]), 8: _row(res["seeds"]["8"])}
    assert rows[7][5] == "+2.00c"  # a markout the recording has: 2 cents a share
    assert "wrote" not in out and not (tmp_path / "fidelity-fit.env").exists()


def test_the_fit_prints_its_ranking_the_table_and_how_to_apply_the_set(env, tmp_path, capsys):
    d = _save(tmp_path)
    out_file = tmp_path / "fit.env"
    argv = ["fidelity", "--fit", "--load", str(d), "--seed", "7", "--check-seeds", "8", "--out", str(out_file)]
    assert cli.main([*argv, "--json"]) == ExitCode.OK
    res = json.loads(capsys.readouterr().out)
    assert cli.main(argv) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    top = res["ranked"][0]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in top["loss_parts"].items())
    assert lines[0] == (f"fit on seed 7: {len(res['ranked'])} candidates; best {res['best']} "
                        f"(loss {top['loss']:.3f}: {parts})")
    assert len(res["ranked"]) > 5
    shown = [ln.split() for ln in lines[1:6]]  # the five best, best first
    assert shown == [[c["model"], "loss", f"{c['loss']:.3f}", "fills", "ratio", f"{c['fills_ratio']:.2f}"]
                     for c in res["ranked"][:5]]
    # the fit seed's row is the best candidate there, the check seed's the same candidate on it
    assert _table("\n".join(lines)) == {7: _row(top), 8: _row(res["checks"]["8"][0])}
    assert out_file.read_text().startswith("# pmm fidelity --fit on sandbox seed 7")  # the fit seed
    assert lines[-1] == (f"wrote {out_file}: apply with `set -a; . {out_file}; set +a`, by appending it to .env, or as "
                         + " ".join(f"--set {s}" for s in res["set"]))


def test_small_positive_run_sizes_are_accepted(env, tmp_path, capsys):
    """`> 0` means what it says: one market, half a simulated minute, half of real time."""
    d = _save(tmp_path, seeds=(7,))
    argv = ["fidelity", "--load", str(d), "--markets", "1", "--sim-minutes", "0.5", "--speed", "0.5", "--json"]
    assert cli.main(argv) == ExitCode.OK, capsys.readouterr().err
    assert set(json.loads(capsys.readouterr().out)["seeds"]) == {"7"}



@pytest.mark.parametrize("argv,code,said", [
    (["--seed", "-1"], ExitCode.CONFIG, "pmm fidelity: error: argument --seed: expected a whole number from 0 to "
                                        "2**63-1, got '-1'"),
    (["--seed", str(2**63)], ExitCode.CONFIG, f"argument --seed: expected a whole number from 0 to 2**63-1, got "
                                              f"'{2**63}'"),
    (["--check-seeds", "8,-2"], ExitCode.ERROR, "pmm fidelity: seeds are whole numbers from 0 to 2**63-1, not -2 "
                                                "(in '8,-2')\n"),
])
def test_a_seed_outside_the_sandbox_range_is_refused_in_one_line(env, tmp_path, capsys, argv, code, said):
    """A sandbox seed is 0 .. 2**63-1 (PMM_SANDBOX_SEED's range): --seed is a usage error as
    `pmm replay --seed` is, a check seed one line; neither gets to a run. Both ended in
    "pmm: ValidationError: 1 validation error for Settings" once the ground-truth run began."""
    assert cli.main(["fidelity", *argv, "--load", str(tmp_path)]) == code
    err = capsys.readouterr().err
    assert said in err and "ValidationError" not in err and "Traceback" not in err, err

@pytest.mark.integration
@pytest.mark.parametrize("as_json", [True, False])
def test_a_ground_truth_run_reports_its_progress_and_saves_what_load_reads(env, tmp_path, capsys, as_json):
    """One short LIVE run on the embedded sandbox (3 s at real time): its progress line goes to stderr with
    --json (stdout is the one JSON object) and to stdout as a `# ` comment without; --save DIR
    creates DIR (parents too, or uses it as it is) and keeps the recording, and --load DIR gives
    the same scores from it without a new run."""
    save = tmp_path / "a" / "b" if as_json else tmp_path  # a new nested directory / one that exists
    argv = ["fidelity", "--markets", "1", "--sim-minutes", "0.05", "--speed", "1"]
    code = cli.main([*argv, "--save", str(save), *(["--json"] if as_json else [])])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    with open(save / "rec-seed7.pkl", "rb") as fh:
        assert len(pickle.load(fh).markets) == 1
    progress = "live run seed 7: 1 markets, "
    if as_json:
        assert f"pmm fidelity: {progress}" in err and progress not in out
        first = json.loads(out)
    else:
        assert out.startswith(f"# {progress}") and progress not in err
        first = _table(out)
    assert cli.main(["fidelity", "--load", str(save), *(["--json"] if as_json else [])]) == ExitCode.OK
    again = capsys.readouterr().out
    assert (json.loads(again) if as_json else _table(again)) == first
    assert progress not in again


@pytest.mark.integration
def test_a_ground_truth_run_too_short_for_the_engine_to_start_is_one_line(env, tmp_path, capsys, monkeypatch):
    """A run whose engine has not started when its start's limit is up (`START_LIMIT_SEC`, 30 ms
    here; a loaded host's start takes seconds) has nothing to score: one line saying so, exit 1,
    nothing saved. It ended in "pmm: TypeError: 'NoneType' object is not iterable" (no exchange
    built yet) or "EngineStateError: this engine has not owned the DB" (no database taken yet).
    (The run's own time counts from the engine's start now: a 30 ms run starts and is scored.)"""
    from pmm_widgets.research import fidelity_run

    monkeypatch.setattr(fidelity_run, "START_LIMIT_SEC", 0.03)
    save = tmp_path / "recs"
    code = cli.main(["fidelity", "--markets", "1", "--sim-minutes", "0.0005", "--speed", "1", "--save", str(save)])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln[:4].isdigit()]  # (not the log records)
    assert code == ExitCode.ERROR and len(lines) == 1, err
    assert lines[0].startswith("pmm fidelity: live run seed 7: the engine had no market yet when the run ended: ")
    assert lines[0].endswith("it did not start within 0.03 s (the engine's log lines above say what it did)")
    assert "Traceback" not in out + err and not save.exists()


# ----------------------------------------------------------------------------- the parser
FROM_TO = ["--from", "2026-12-01T10:00:00Z", "--to", "2026-12-01T11:00:00Z"]
RESEARCH = {"t_from": FROM_TO[1], "t_to": FROM_TO[3], "markets": None, "fill_model": None, "seed": None, "json": False}
COMMANDS = [  # argv, the command's function, every option with the value it has when not given
    ([], "cmd_overview", {}),
    (["db", "init"], "cmd_db_init", {}),
    (["db", "status"], "cmd_db_status", {}),
    (["db", "prune"], "cmd_db_prune", {"days": None}),
    (["universe", "refresh"], "cmd_universe_refresh", {}),
    (["run", "paper"], "cmd_run", {"run_mode": "paper", "dry_run": False, "max_seconds": None}),
    (["run", "live"], "cmd_run", {"run_mode": "live", "dry_run": False, "yes": False, "max_seconds": None}),
    (["sandbox"], "cmd_sandbox", {"markets": None, "seed": None, "speed": None, "resolve_every": None,
                                  "host": "127.0.0.1", "gamma_port": None, "clob_port": None}),
    (["replay", *FROM_TO], "cmd_replay", {**RESEARCH, "cycles": "auto"}),
    (["sweep", *FROM_TO], "cmd_sweep", {**RESEARCH, "grid": None, "jobs": -1, "ray": None, "out": None,
                                         "per_pass": None}),
    (["recordings", "list"], "cmd_recordings_list", {}),
    (["recordings", "import-pmxt", "a.parquet", "b.parquet"], "cmd_import_pmxt",
     {"files": ["a.parquet", "b.parquet"], "markets": "50"}),
    (["fidelity"], "cmd_fidelity", {"fit": False, "seed": 7, "check_seeds": "", "markets": 8, "sim_minutes": 6.0,
                                    "speed": 10.0, "out": "fidelity-fit.env", "save": None, "load": None,
                                    "json": False}),
    (["report"], "cmd_report", {"json": False, "mode": None, "run_id": None}),
    (["auth", "derive"], "cmd_auth_derive", {"show_secrets": False}),
    (["config"], "cmd_config", {}),
]


@pytest.mark.parametrize("argv,func,defaults", COMMANDS, ids=[" ".join(c[0][:2]) or "pmm" for c in COMMANDS])
def test_each_command_reaches_its_function_with_the_documented_defaults(argv, func, defaults):
    """The defaults the help text promises (`pmm fidelity`: seed 7, 8 markets, 6 simulated minutes
    at 10x, ...; `pmm sweep`: one worker per core) are what the command gets, and no global
    setting is set that the user did not give (the environment's value stays in force)."""
    ns = vars(cli.build_parser().parse_args(argv))
    assert ns.pop("func") is getattr(cli, func)
    ns.pop("_parser", None)
    assert ns == defaults


def test_the_documented_defaults_are_in_the_help(capsys):
    for argv, said in [(["fidelity"], ["(the fit seed; default 7)", "(default 8)", "(default 6)", "(default 10)",
                                       "default fidelity-fit.env"]),
                       (["sweep"], ["(default -1: one per core"]), (["recordings", "import-pmxt"], ["(default 50)"])]:
        assert cli.main([*argv, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
        assert all(s in text for s in said), (argv, text)


@pytest.mark.parametrize("argv", [["db"], ["universe"], ["run"], ["recordings"], ["auth"]])
def test_a_group_without_its_command_prints_its_help_and_exits_2(env, capsys, argv):
    assert cli.main(argv) == ExitCode.CONFIG
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pmm {argv[0]} ") and "commands:" in out


@pytest.mark.parametrize("argv,said", [
    (["replay", "--to", "2026-12-01T11:00:00Z"], "the following arguments are required: --from"),
    (["sweep", "--from", "2026-12-01T10:00:00Z"], "the following arguments are required: --to"),
    (["replay", *FROM_TO, "--cycles", "every"], "argument --cycles: invalid choice: 'every'"),
    (["report", "--mode", "sim"], "argument --mode: invalid choice: 'sim'"),
    (["sandbox", "--markets", "many"], "argument --markets: invalid int value: 'many'"),
    (["fidelity", "--seed", "x"], "argument --seed: expected a whole number from 0 to 2**63-1, got 'x'"),
    (["db", "prune", "--days", "a week"], "argument --days: invalid float value: 'a week'"),
    (["recordings", "import-pmxt"], "the following arguments are required: FILE"),
])
def test_a_missing_or_malformed_argument_is_a_usage_error(env, capsys, argv, said):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and said in err and "Traceback" not in err, err


def test_global_settings_are_taken_before_or_after_the_command(env, capsys):
    """`pmm --alpha 2 config` and `pmm config --alpha 2` alike; given twice, the later one wins
    (a subcommand's default does not undo the earlier value); --set repeats."""
    for argv, alpha in [(["--alpha", "2", "config"], "2.0"), (["config", "--alpha", "2"], "2.0"),
                        (["--alpha", "2", "config", "--alpha", "3"], "3.0"),
                        (["--alpha", "2", "db", "init"], None)]:
        assert cli.main(argv) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        if alpha is not None:
            assert f"PMM_ALPHA={alpha}\n" in out
    assert cli.main(["config", "--set", "alpha=2.5", "--set", "universe_size=7"]) == 0
    out = capsys.readouterr().out
    assert "PMM_ALPHA=2.5\n" in out and "PMM_UNIVERSE_SIZE=7\n" in out


def test_the_settings_flags_are_listed_with_their_metavars(capsys):
    assert cli.main(["config", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--db-url URL", "--venue VENUE", "--alpha ALPHA", "--universe-size SIZE", "--quote-refresh-sec SEC",
                 "--log-level LEVEL", "--set NAME=VALUE"):
        assert flag in text, flag


def test_version(capsys):
    from pmm_widgets import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"pmm-widgets {__version__}\n"


# ----------------------------------------------------------------------------- pmm recordings list
def test_recordings_list_shows_each_file_its_state_and_the_total(env, tmp_path, capsys):
    from pmm_widgets.research.recordings import list_recordings, parse_time
    from pmm_widgets.research.synth import synth_recording

    root = tmp_path / "rec"
    root.mkdir()
    env.setenv("PMM_RECORD_DIR", str(root))
    assert cli.main(["recordings", "list"]) == ExitCode.OK
    assert capsys.readouterr().out == f"no recordings under {root}\n"

    synth_recording(root, parse_time("2026-11-30T10:00:00Z"), 120, markets=2, seed=3)
    (root / "2026-11-30T10" / "market-junk.parquet").write_bytes(b"PAR1 not really")  # unreadable: no row count
    assert cli.main(["recordings", "list"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    files = list_recordings(root)
    assert len(files) == 3 and len(lines) == 4
    shown = {ln.split()[-1]: ln.split() for ln in lines[:-1]}  # by file name
    for r in files:
        hour, channel, session, n, _, mb, unit, *state = shown.pop(r["file"].rsplit("/", 1)[-1])[:-1]
        assert (hour, channel, session) == (r["hour"], r["channel"], r["session"])
        assert (n, mb, unit) == (f"{r['rows'] or 0:,}", f"{r['bytes'] / 1e6:.2f}", "MB")
        assert " ".join(state) == ("ok" if r["ok"] else f"PROBLEM: {r['problem']}")
    assert not shown and [r["ok"] for r in files].count(False) == 1  # the junk file, 0 rows
    assert lines[-1] == f"3 files, {sum(r['bytes'] for r in files) / 1e6:.1f} MB under {root}"


# ----------------------------------------------------------------------------- pmm db status / prune
def test_db_status_shows_the_revision_every_table_and_the_sizes(env, capsys):
    from pmm_widgets.config import load_settings
    from pmm_widgets.store.db import make_engine, safe_url
    from pmm_widgets.store.migrate import head_revision
    from pmm_widgets.store.retention import database_bytes, free_bytes, table_sizes
    from pmm_widgets.store.schema import metadata

    env.setenv("PMM_RETAIN_DAYS", "3")
    assert cli.main(["db", "init"]) == ExitCode.OK
    capsys.readouterr()
    assert cli.main(["db", "status"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    url = load_settings().db_url
    head = head_revision()
    assert lines[0] == f"{safe_url(url)}: revision {head} (head {head}, up to date)"
    assert lines[1].split()[:3] == ["table", "rows", "size"] and lines[1].endswith(f"(retention: {cli.retention_note(3)})")
    eng = make_engine(url)
    try:
        sizes, free, total = table_sizes(eng), free_bytes(eng), database_bytes(eng)
    finally:
        eng.dispose()
    names = list(metadata.tables)
    assert [ln.split() for ln in lines[2:2 + len(names)]] == [
        [n, "0", *(["?"] if sizes.get(n) is None else cli.human_bytes(sizes[n]).split())] for n in names]
    rest = lines[2 + len(names):]
    assert free is not None and total is not None  # SQLite tells both
    assert rest == [f"  {'(free pages)':<20} {'':>10} {cli.human_bytes(free):>10}   (freed by retention, reused first)",
                    f"  {'database':<20} {'':>10} {cli.human_bytes(total):>10}"]


def test_db_prune_says_how_the_database_size_changed(env, capsys):
    from pmm_widgets.config import load_settings
    from pmm_widgets.store.db import make_engine
    from pmm_widgets.store.retention import database_bytes

    assert cli.main(["db", "init"]) == ExitCode.OK
    capsys.readouterr()
    eng = make_engine(load_settings().db_url)
    try:
        before = database_bytes(eng)
    finally:
        eng.dispose()
    assert before is not None
    assert cli.main(["db", "prune", "--days", "2"]) == ExitCode.OK
    first, size = capsys.readouterr().out.splitlines()
    assert " pruned 0 rows older than 2 days (" in first and first.endswith("; trades and orders kept")
    assert size == (f"database size {cli.human_bytes(before)} -> {cli.human_bytes(before)} "
                    "(SQLite reuses freed pages; VACUUM shrinks the file)")


@pytest.mark.parametrize("argv", [["db", "status"], ["db", "prune", "--days", "1"]])
def test_a_database_that_cannot_be_reached_is_one_line_naming_it(env, capsys, argv):
    code = cli.main([*argv, "--db-url", "postgresql+psycopg://u:pw-hidden@127.0.0.1:1/x"])
    out, err = capsys.readouterr()
    assert code == ExitCode.ERROR and out == ""
    assert err.startswith("pmm: cannot connect to postgresql+psycopg://u:***@127.0.0.1:1/x: ") and err.count("\n") == 1


# ----------------------------------------------------------------------------- pmm config
@pytest.mark.parametrize("venue", ["polymarket", "sandbox"])
def test_config_prints_every_setting_once_with_its_effective_value(env, capsys, venue):
    """Every setting and live parameter, in env.example's order, as `PMM_NAME=value` (an enum by its
    value, an unset one empty, a secret masked); on the sandbox venue the three venue URLs say
    that the embedded sandbox picks them at start (http for the REST ones, ws for the websocket)."""
    from pmm_widgets.config import PARAM_FIELDS, SETTING_FIELDS, load_settings

    env.setenv("PMM_VENUE", venue)
    env.setenv("PMM_PRIVATE_KEY", "0x" + "11" * 32)
    assert cli.main(["config"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    s = load_settings()
    names = (*SETTING_FIELDS, *PARAM_FIELDS)
    assert [ln.split("=", 1)[0] for ln in lines] == [f"PMM_{n.upper()}" for n in names]
    shown = dict(ln.split("=", 1) for ln in lines)
    urls = {"gamma_url": "http", "clob_url": "http", "clob_ws_url": "ws"}
    for n in names:
        value = getattr(s, n)
        if venue == "sandbox" and n in urls:
            expected = (f"{urls[n]}://127.0.0.1:<free port>  (embedded sandbox, chosen at start; "
                        "PMM_VENUE=sandbox)")
        else:
            expected = "" if value is None else str(getattr(value, "value", value))
        assert shown[f"PMM_{n.upper()}"] == expected, n
    assert shown["PMM_VENUE"] == venue and shown["PMM_PRIVATE_KEY"] == "**********"
    assert any(getattr(s, n) is None for n in names)  # (an unset one is among them)


# ----------------------------------------------------------------------------- pmm universe refresh
@pytest.mark.integration
def test_universe_refresh_on_a_new_database_stores_and_prints_the_markets(env, capsys):
    """On the embedded sandbox: the schema is created (no `pmm db init` before), the top markets
    are stored as a `markets` snapshot and printed as a table closed by their count."""
    import sqlalchemy as sa

    from pmm_widgets.config import load_settings
    from pmm_widgets.store.db import make_engine

    env.setenv("PMM_VENUE", "sandbox")
    env.setenv("PMM_UNIVERSE_SIZE", "3")
    assert cli.main(["universe", "refresh"]) == ExitCode.OK, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "3 markets" and [ln.split()[0] for ln in lines[-4:-1]] == ["1", "2", "3"], lines
    eng = make_engine(load_settings().db_url)
    try:
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(DISTINCT condition_id) FROM markets")).scalar() == 3
    finally:
        eng.dispose()


# ----------------------------------------------------------------------------- pmm sandbox
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_the_sandbox_serves_on_the_ports_and_with_the_markets_and_resolutions_asked_for():
    """--gamma-port/--clob-port are the ports served; --markets 3 --resolve-every 1 at --speed 20:
    the three markets are resolved (closed) within seconds, and no other market is listed."""
    import json as _json
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    gamma, clob = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.cli", "sandbox", "--markets", "3", "--resolve-every",
                             "1", "--speed", "20", "--gamma-port", str(gamma), "--clob-port", str(clob)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines == [f"export PMM_GAMMA_URL=http://127.0.0.1:{gamma}", f"export PMM_CLOB_URL=http://127.0.0.1:{clob}",
                         f"export PMM_CLOB_WS_URL=ws://127.0.0.1:{clob}/ws"], lines
        deadline = time.monotonic() + 20
        while True:  # one simulated second between resolutions: 50 ms of wall time each at 20x
            with urllib.request.urlopen(f"http://127.0.0.1:{gamma}/markets?limit=100&closed=true", timeout=10) as r:
                closed = len(_json.loads(r.read()))
            if closed == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert closed == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{gamma}/markets?limit=100", timeout=10) as r:
            assert _json.loads(r.read()) == []  # (no market left open, none added)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err
