"""`pmm`: the command-line face.

Why thin: every command only builds validated `Settings` (env/.env + flags, through the same
pydantic rules as everywhere else) and calls one entry function of the module that owns the
capability, imported lazily so `pmm --help` and `pmm db init` stay fast and work even while other
parts are being built. Errors a user can fix are one line on stderr with a distinct exit code
(`errors.ExitCode`): 0 ok, 1 database/venue/runtime failure, 2 bad configuration, 3 another engine
holds the DB lease (`pmm run`), 4 capability not built, 130 interrupted (Ctrl-C / SIGINT). No
traceback for any of them; `--log-level DEBUG` prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pmm_widgets import __version__
from pmm_widgets.config import SEED_MAX, ConfigError, Settings, load_settings
from pmm_widgets.errors import ExitCode, PmmError
from pmm_widgets.logsetup import SECRET_FIELDS, mask, register_settings_secrets, setup_logging

log = logging.getLogger("pmm_widgets.cli")

_db_url_in_use: str | None = None  # for error messages (which SQLite file, and why)

# Global flags -> Settings fields. Values stay strings so pydantic validates them (one-line errors).
GLOBAL_FLAGS: dict[str, tuple[str, str]] = {
    "db_url": ("--db-url", "database URL (PMM_DB_URL), e.g. sqlite:///pmm.db or postgresql+psycopg://..."),
    "venue": ("--venue", "polymarket (real hosts) or sandbox (embedded simulated venue) (PMM_VENUE)"),
    "alpha": ("--alpha", "half-spread multiplier (PMM_ALPHA)"),
    "universe_size": ("--universe-size", "markets to trade, top N by liquidity (PMM_UNIVERSE_SIZE)"),
    "quote_refresh_sec": ("--quote-refresh-sec", "seconds between quote cycles (PMM_QUOTE_REFRESH_SEC)"),
    "log_level": ("--log-level", "DEBUG, INFO, WARNING or ERROR (PMM_LOG_LEVEL)"),
}


class NotBuilt(PmmError):
    def __init__(self, cmd: str, module: str) -> None:
        super().__init__(f"pmm {cmd}: not built yet ({module})")


class MissingPackage(PmmError):
    pass


def entry(cmd: str, module: str, name: str) -> Callable[..., Any]:
    """Import `module.name` lazily; a part of pmm_widgets that does not exist yet is NotBuilt."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or ""
        if missing.startswith("pmm_widgets"):  # that module (or one it needs) is not written yet
            raise NotBuilt(cmd, missing) from None
        if isinstance(exc, ModuleNotFoundError):
            raise MissingPackage(f"pmm {cmd}: missing Python package {missing!r} (reinstall: pip install -e .)") from None
        raise
    fn: object = getattr(mod, name, None)
    if not callable(fn):
        raise NotBuilt(cmd, f"{module}.{name}")
    return fn


# ----------------------------------------------------------------------------- settings
def settings_from_args(args: argparse.Namespace) -> Settings:
    """Env/.env overridden by global flags and `--set NAME=VALUE`, with one validation path."""
    overrides: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for field, (flag, _) in GLOBAL_FLAGS.items():
        value = getattr(args, field, None)
        if value is not None:
            overrides[field] = value
            origin[field] = flag
    for item in getattr(args, "set", None) or []:
        name, sep, value = item.partition("=")
        field = name.strip().lower().removeprefix("pmm_")
        if not sep or field not in Settings.model_fields:
            raise ConfigError(f"--set {name}: expected NAME=VALUE with NAME a setting from env.example")
        if field in SECRET_FIELDS:
            raise ConfigError(f"--set {name}: secrets are read from the environment or .env only")
        overrides[field] = value
        origin[field] = f"--set {name.strip()}"
    for field, (flag, value) in getattr(args, "_extra_overrides", {}).items():  # a command's own flags
        overrides[field] = value
        origin[field] = flag
    from pmm_widgets.errors import unknown_env_warnings

    for warning in unknown_env_warnings():
        print(f"pmm: warning: {warning}", file=sys.stderr)
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        raise ConfigError(_name_flag(str(exc), origin)) from None
    global _db_url_in_use
    _db_url_in_use = settings.db_url
    register_settings_secrets(settings)
    setup_logging(settings)
    return settings


def _name_flag(message: str, origin: dict[str, str]) -> str:
    """Say `--alpha=-1: ...` instead of `PMM_ALPHA=-1: ...` when the value came from a flag."""
    for field, flag in origin.items():
        env = f"PMM_{field.upper()}"
        if message.startswith(env + "=") or message.startswith(env + ":"):
            return flag + message[len(env):]
    return message


# ----------------------------------------------------------------------------- commands
def cmd_overview(args: argparse.Namespace) -> int:
    settings_from_args(args)  # a bad PMM_* value is reported even by a bare `pmm`
    args._parser.print_help()
    return ExitCode.OK


def cmd_db_init(args: argparse.Namespace) -> int:
    from pmm_widgets.store.db import safe_url
    from pmm_widgets.store.migrate import current_revision, upgrade
    from pmm_widgets.store.schema import CONTRACT_TABLES

    settings = settings_from_args(args)
    upgrade(settings.db_url)
    print(f"database ready: {safe_url(settings.db_url)} at revision {current_revision(settings.db_url)} "
          f"(tables: {', '.join(CONTRACT_TABLES)}, ...)")
    return ExitCode.OK


def cmd_db_status(args: argparse.Namespace) -> int:
    from pmm_widgets.store import repo
    from pmm_widgets.store.db import check_connection, make_engine, safe_url
    from pmm_widgets.store.migrate import current_revision, head_revision
    from pmm_widgets.store.retention import database_bytes, free_bytes, table_sizes
    from pmm_widgets.store.schema import metadata

    settings = settings_from_args(args)
    _existing_db(settings, "db status")
    engine = make_engine(settings.db_url)
    try:
        check_connection(engine)
        current, head = current_revision(settings.db_url), head_revision()
        note = "up to date" if current == head else "run `pmm db init` to upgrade"
        print(f"{safe_url(settings.db_url)}: revision {current} (head {head}, {note})")
        counts = repo.table_counts(engine)
        sizes = table_sizes(engine)
        total = database_bytes(engine)
        free = free_bytes(engine)
        print(f"  {'table':<20} {'rows':>10} {'size':>10}   (retention: {retention_note(settings.retain_days)})")
        for name in metadata.tables:
            size = sizes.get(name)
            shown = "?" if size is None else human_bytes(size)
            print(f"  {name:<20} {counts.get(name, 'missing')!s:>10} {shown:>10}")
        if free is not None:
            print(f"  {'(free pages)':<20} {'':>10} {human_bytes(free):>10}   (freed by retention, reused first)")
        if total is not None:
            print(f"  {'database':<20} {'':>10} {human_bytes(total):>10}")
    finally:
        engine.dispose()
    return ExitCode.OK


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def retention_note(days: float) -> str:
    from pmm_widgets.store.retention import RETAINED_TABLES

    if days <= 0:
        return "PMM_RETAIN_DAYS=0, everything kept"
    return f"{', '.join(RETAINED_TABLES)} keep {days:g} days; trades and orders forever"


def cmd_db_prune(args: argparse.Namespace) -> int:
    from pmm_widgets.store.db import check_connection, make_engine, safe_url
    from pmm_widgets.store.retention import database_bytes, prune

    if args.days is not None:  # validated as PMM_RETAIN_DAYS is (a one-line error naming --days)
        args._extra_overrides = {"retain_days": ("--days", args.days)}
    settings = settings_from_args(args)
    days = settings.retain_days
    if days <= 0:
        print("nothing to prune: retention is off (PMM_RETAIN_DAYS=0 or --days 0)")
        return ExitCode.OK
    _existing_db(settings, "db prune")
    engine = make_engine(settings.db_url)
    try:
        check_connection(engine)
        before = database_bytes(engine)
        rep = prune(engine, days)
        after = database_bytes(engine)
    finally:
        engine.dispose()
    parts = ", ".join(f"{k} {v}" for k, v in rep.deleted.items())
    print(f"{safe_url(settings.db_url)}: pruned {rep.total} rows older than {days:g} days ({parts}) in "
          f"{rep.batches} batches, {rep.seconds:.1f}s; trades and orders kept")
    if before is not None and after is not None:
        print(f"database size {human_bytes(before)} -> {human_bytes(after)} (SQLite reuses freed pages; "
              f"VACUUM shrinks the file)")
    return ExitCode.OK


def cmd_config(args: argparse.Namespace) -> int:
    from pmm_widgets.config import PARAM_FIELDS, SETTING_FIELDS, Venue

    settings = settings_from_args(args)
    sandbox = settings.venue is Venue.SANDBOX
    for name in (*SETTING_FIELDS, *PARAM_FIELDS):  # env.example's order
        value = getattr(settings, name)
        shown = getattr(value, "value", value)
        if sandbox and name in ("gamma_url", "clob_url", "clob_ws_url"):  # not the real hosts: the embedded venue
            scheme = "ws" if name == "clob_ws_url" else "http"
            shown = f"{scheme}://127.0.0.1:<free port>  (embedded sandbox, chosen at start; PMM_VENUE=sandbox)"
        print(f"PMM_{name.upper()}={'' if shown is None else shown}")
    return ExitCode.OK


def _existing_db(settings: Settings, cmd: str) -> None:
    """ConfigError (exit 2, one line naming the file) when the command `cmd`, which reads the
    database and has nothing to do in a new one, is pointed at an SQLite file that does not exist:
    connecting created it, an empty database left behind (a typo in --db-url, a wrong directory)
    and a report of nothing. Other backends and in-memory SQLite: nothing to check here."""
    import os

    from pmm_widgets.store.db import safe_url, sqlite_file

    path = sqlite_file(settings.db_url)
    if path is None or os.path.exists(path):
        return
    raise ConfigError(f"no database at {os.path.abspath(path)} (database URL {safe_url(settings.db_url)}): "
                      f"`pmm {cmd}` reads one and creates none; `pmm db init` creates it")


def _ensure_schema(settings: Settings) -> None:
    from pmm_widgets.store.migrate import upgrade

    upgrade(settings.db_url)


def cmd_universe_refresh(args: argparse.Namespace) -> int:
    refresh = entry("universe refresh", "pmm_widgets.venue.universe", "refresh_universe")
    fmt = entry("universe refresh", "pmm_widgets.venue.universe", "format_universe")
    settings = settings_from_args(args)
    _ensure_schema(settings)
    markets = asyncio.run(refresh(settings))
    print(fmt(markets))
    return ExitCode.OK


def cmd_run(args: argparse.Namespace) -> int:
    from pmm_widgets.domain import Mode

    if args.run_mode == "paper":
        mode, label = Mode.PAPER, "run paper"
    else:
        mode = Mode.DRY_RUN if args.dry_run else Mode.LIVE
        label = "run live"
    run_main = entry(label, "pmm_widgets.engine.runner", "run_main")
    settings = settings_from_args(args)
    _ensure_schema(settings)  # (`run_main` turns recording on unless PMM_RECORD=off)
    return int(run_main(settings, mode, yes=getattr(args, "yes", False), max_seconds=args.max_seconds))


def cmd_sandbox(args: argparse.Namespace) -> int:
    _refuse_unused(args, "sandbox", SANDBOX_SETTINGS, "which serves the simulated venue only (its settings: --markets, "
                   "--seed, --speed, --resolve-every, --log-level)")
    serve_main = entry("sandbox", "pmm_widgets.sandbox.server", "serve_main")
    config_cls = entry("sandbox", "pmm_widgets.sandbox.server", "SandboxConfig")
    flags = {  # setting -> (the flag, as the user typed it in an error, and its value)
        "sandbox_markets": ("--markets", args.markets),
        "sandbox_seed": ("--seed", args.seed),
        "sandbox_speed": ("--speed", args.speed),
        "sandbox_resolve_every_sec": ("--resolve-every", args.resolve_every),
    }
    args._extra_overrides = {k: fv for k, fv in flags.items() if fv[1] is not None}
    settings = settings_from_args(args)
    cfg_args: dict[str, Any] = {
        "markets": settings.sandbox_markets,
        "seed": settings.sandbox_seed,
        "speed": settings.sandbox_speed,
        "resolve_every": settings.sandbox_resolve_every_sec or None,
        "host": args.host,
    }
    if args.gamma_port is not None:
        cfg_args["gamma_port"] = args.gamma_port
    if args.clob_port is not None:
        cfg_args["clob_port"] = args.clob_port
    return int(serve_main(config_cls(**cfg_args)))


def cmd_report(args: argparse.Namespace) -> int:
    report_main = entry("report", "pmm_widgets.analytics.report", "report_main")
    settings = settings_from_args(args)
    _existing_db(settings, "report")
    return int(report_main(settings, as_json=getattr(args, "json", False),
                           mode=getattr(args, "mode", None), run_id=getattr(args, "run_id", None)))


def cmd_auth_derive(args: argparse.Namespace) -> int:
    derive_main = entry("auth derive", "pmm_widgets.venue.auth", "derive_main")
    return int(derive_main(settings_from_args(args), show_secrets=args.show_secrets))


def _research_args(args: argparse.Namespace) -> tuple[Settings, dict[str, str], Any]:
    """Settings plus the `--set` items that are live parameters (pinned for the whole replay: a
    recorded parameter change does not override them), and the `--markets` selection (a count or
    comma-separated condition ids / slugs)."""
    from pydantic import ValidationError

    from pmm_widgets.config import PARAM_FIELDS, format_validation_error

    params: dict[str, str] = {}
    rest: list[str] = []
    for item in getattr(args, "set", None) or []:
        name, sep, value = item.partition("=")
        field = name.strip().lower().removeprefix("pmm_")
        if sep and field in PARAM_FIELDS:
            params[field] = value
        else:
            rest.append(item)
    args.set = rest
    settings = settings_from_args(args)
    try:
        settings.params().update(**params)
    except ValidationError as exc:
        raise ConfigError("--set " + format_validation_error(exc)) from None
    if getattr(args, "fill_model", None):  # its own flag named in its error (it read `--set paper_fill_model=…`)
        params["paper_fill_model"] = args.fill_model
        try:
            settings.params().update(paper_fill_model=args.fill_model)
        except ValidationError as exc:
            msg = format_validation_error(exc).removeprefix("paper_fill_model=")
            raise ConfigError(f"--fill-model {msg}") from None
    sel: Any = None
    if getattr(args, "markets", None) is not None:
        from pmm_widgets.research.replayer import parse_markets

        try:
            sel = parse_markets(str(args.markets))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from pmm_widgets.research.recordings import RecordingError, iso, parse_time

    times = {}
    for flag, attr in (("--from", "t_from"), ("--to", "t_to")):  # a bad flag: exit 2, named (not 1)
        try:
            times[flag] = parse_time(getattr(args, attr))
        except RecordingError as exc:
            raise ConfigError(f"{flag}: {exc}") from None
    if times["--to"] <= times["--from"]:
        raise ConfigError(f"--to ({iso(times['--to'])}) must be after --from ({iso(times['--from'])})")
    return settings, params, sel


def _stop_flag() -> tuple[Callable[[], bool], Callable[[], None]]:
    """Ctrl-C sets a flag the replay checks between events: it stops cleanly, results kept."""
    import signal

    flag = {"stop": False}

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        flag["stop"] = True
        print("\npmm: stopping after the current event (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    old = signal.signal(signal.SIGINT, handler)

    def restore() -> None:
        signal.signal(signal.SIGINT, old)

    return (lambda: flag["stop"]), restore


def cmd_replay(args: argparse.Namespace) -> int:
    import json

    replay_fn = entry("replay", "pmm_widgets.research.replayer", "replay")
    fmt = entry("replay", "pmm_widgets.research.replayer", "format_summary")
    from pmm_widgets.research.recordings import RecordingError

    settings, params, sel = _research_args(args)
    stop, restore = _stop_flag()
    try:
        res = replay_fn(settings, args.t_from, args.t_to, markets=sel, params=params, seed=args.seed,
                        cycles=args.cycles, progress=not args.json, stop=stop, db_url=settings.db_url)
    except RecordingError as exc:
        print(f"pmm replay: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    finally:
        restore()
    if args.json:
        print(json.dumps({"summary": res.summary, "problems": res.problems}, default=str))
    else:
        print(fmt(res))
    return ExitCode.INTERRUPTED if res.status == "interrupted" else ExitCode.OK


def cmd_sweep(args: argparse.Namespace) -> int:
    import json

    sweep_fn = entry("sweep", "pmm_widgets.research.sweeps", "sweep")
    parse_grid = entry("sweep", "pmm_widgets.research.sweeps", "parse_grid")
    from pmm_widgets.research.points import figure_column
    from pmm_widgets.research.recordings import RecordingError
    from pmm_widgets.research.sweeps import SweepError

    settings, params, sel = _research_args(args)
    check_fixed = entry("sweep", "pmm_widgets.research.sweeps", "check_fixed")
    try:
        grid = parse_grid(args.grid or [])
        check_fixed(grid, params)
    except ValueError as exc:
        raise ConfigError(f"--grid {exc}") from None
    try:
        df = sweep_fn(args.t_from, args.t_to, grid, settings=settings, markets=sel, params=params, seed=args.seed,
                      n_jobs=args.jobs, ray_address=args.ray, parquet=args.out, db_url=settings.db_url,
                      progress=not args.json, per_pass=args.per_pass)
    except (RecordingError, SweepError) as exc:
        print(f"pmm sweep: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    stopped = df.attrs.get("status") == "interrupted"  # Ctrl-C: the points replayed so far, some part-way
    if args.json:
        print(json.dumps({"sweep_id": df.attrs.get("sweep_id"), "status": df.attrs.get("status"),
                          "parquet": df.attrs.get("parquet"), "backend": df.attrs.get("backend"),
                          "workers": df.attrs.get("workers"), "passes": df.attrs.get("passes"),
                          "rows": df.to_dict(orient="records")}, default=str))
    elif len(df):
        figures = ["fills", "fills_per_min", "pnl_total", "spread_pnl", "inventory_pnl", "fees", "rebates", "rewards",
                   "markout_5s_usd", "max_inventory_usd"]  # a figure named as a swept value: `<name>_seen`
        cols = [c for c in ["point", *grid, *(["status"] if stopped else []),
                            *(figure_column(f, grid) for f in figures)] if c in df.columns]
        # every point and every column, one line a point however wide (`to_string` neither wraps
        # nor elides rows or columns; pandas' display.* width/column limits do not apply to it)
        print(df[cols].to_string(index=False))
    if stopped:
        kept = (f"their rows -> sweep_results (sweep_id {df.attrs.get('sweep_id')}), {df.attrs.get('parquet')}"
                if len(df) and df.attrs.get("parquet") else "nothing written")
        cut = int((df["status"] == "interrupted").sum()) if "status" in df.columns else 0
        print(f"pmm sweep: interrupted: {len(df) - cut} of {df.attrs.get('total')} points done, {cut} stopped "
              f"part-way (status interrupted); {kept}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    if not args.json:
        print(f"sweep {df.attrs.get('sweep_id')}: {len(df)} point{'' if len(df) == 1 else 's'} -> sweep_results, "
              f"{df.attrs.get('parquet')}")
    return ExitCode.OK


def cmd_recordings_list(args: argparse.Namespace) -> int:
    from pmm_widgets.research.recordings import RecordingError, list_recordings

    settings = settings_from_args(args)
    try:
        rows = list_recordings(settings.record_dir)
    except RecordingError as exc:
        print(f"pmm recordings list: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    if not rows:
        print(f"no recordings under {settings.record_dir}")
        return ExitCode.OK
    for r in rows:
        state = f"OPEN: {r['problem']}" if r.get("open") else "ok" if r["ok"] else f"PROBLEM: {r['problem']}"
        print(f"{r['hour']}  {r['channel']:<8} {r['session']:<14} {r['rows'] or 0:>10,} rows "
              f"{r['bytes'] / 1e6:>9.2f} MB  {state}  {r['file'].rsplit('/', 1)[-1]}")
    print(f"{len(rows)} files, {sum(r['bytes'] for r in rows) / 1e6:.1f} MB under {settings.record_dir}")
    return ExitCode.OK


def cmd_import_pmxt(args: argparse.Namespace) -> int:
    import_fn = entry("recordings import-pmxt", "pmm_widgets.research.pmxt", "import_pmxt")
    from pmm_widgets.research.pmxt import PmxtError
    from pmm_widgets.research.recordings import iso
    from pmm_widgets.research.replayer import parse_markets

    settings = settings_from_args(args)
    m = str(args.markets).strip()
    try:
        sel: Any = None if m.lower() == "all" else parse_markets(m)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        rep = import_fn(args.files, settings.record_dir, markets=sel)
    except PmxtError as exc:
        print(f"pmm recordings import-pmxt: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    for note in ([f"skipped row: {p}" for p in rep.problems]
                 + [f"{f}: the same file again, read once" for f in rep.duplicates]
                 + [f"market {x} is in none of the files" for x in rep.unknown_markets]
                 + [f"market {x} has no book snapshot in the files: a replay cannot build its books"
                    for x in rep.bookless]):
        print(f"pmm recordings import-pmxt: warning: {note}", file=sys.stderr)
    print(f"imported {rep.events:,} events of {rep.markets} markets ({rep.rows:,} rows read, "
          f"{rep.skipped_rows} skipped, {rep.skipped_markets} markets without two tokens) from "
          f"{', '.join(f'{f} [{v}]' for f, v in rep.variants.items())} into {settings.record_dir} "
          f"(session {rep.session}): replay --from {iso(rep.first_ts)} --to {iso(rep.last_ts)}")
    return ExitCode.OK


def cmd_fidelity(args: argparse.Namespace) -> int:
    """Ground truth (the engine LIVE on the sandbox's matching) vs paper; with --fit, fit the fill
    model on one seed, check it on others, write the parameter set."""
    import json
    import pickle
    from pathlib import Path

    from pmm_widgets.analytics.fidelity import Candidate, Mids, compare, replay, stats, without_own
    from pmm_widgets.research import fidelity_run as fr

    settings = settings_from_args(args)
    try:
        seeds = fr.parse_seeds(str(args.seed)) + (fr.parse_seeds(args.check_seeds) if args.check_seeds else [])
        if len(set(seeds)) != len(seeds):
            raise fr.FidelityError("a check seed is the fit seed: parameters are never checked on the seed they were fitted on")
        for name in ("markets", "sim_minutes", "speed"):
            if not getattr(args, name) > 0:
                raise fr.FidelityError(f"--{name.replace('_', '-')} must be > 0, not {getattr(args, name):g}")
        say = (lambda m: print(f"pmm fidelity: {m}", file=sys.stderr)) if args.json else (lambda m: print(f"# {m}"))
        if args.load:
            recs = {}
            for seed in seeds:
                f = Path(args.load) / f"rec-seed{seed}.pkl"
                if not f.is_file():
                    raise fr.FidelityError(f"no recording {f} (save one with --save DIR)")
                with open(f, "rb") as fh:
                    recs[seed] = pickle.load(fh)
        else:
            recs = fr.run_seeds(seeds, args.markets, args.sim_minutes, args.speed, base=settings, progress=say)
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                for seed, rec in recs.items():
                    with open(Path(args.save) / f"rec-seed{seed}.pkl", "wb") as fh:
                        pickle.dump(rec, fh)
    except fr.FidelityError as exc:
        print(f"pmm fidelity: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    if args.fit:
        res = fr.fit_and_check(recs, seeds[0])
        path = Path(args.out)
        pairs = fr.write_param_set(path, res.best, seeds[0], res.rtt_ms)
        if args.json:
            print(json.dumps({**res.as_json(), "file": str(path), "env": [f"PMM_{n.upper()}={v}" for n, v in pairs],
                              "set": [f"{n}={v}" for n, v in pairs]}, default=str))
            return ExitCode.OK
        top = res.ranked[0]
        print(f"fit on seed {seeds[0]}: {len(res.ranked)} candidates; best {res.best.label} (loss {top.loss:.3f}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in top.parts.items()) + ")")
        width = max(len(c.label) for c in res.ranked[:5])  # (a label longer than a fixed width shifted its row)
        for c in res.ranked[:5]:
            print(f"  {c.label:<{width}} loss {c.loss:.3f}  fills ratio {c.fills_ratio:.2f}")
        rows = [(seeds[0], top)] + [(s, cs[0]) for s, cs in res.checks.items()]
    else:  # score the paper model the settings choose
        cand = Candidate(settings.paper_fill_model, tuple((k, getattr(settings, k)) for k in (
            "paper_fill_intensity", "paper_spread_k", "paper_queue_func", "paper_queue_power")),
            latency_ms=settings.paper_latency_ms)
        rows = []
        for seed, rec in recs.items():
            view = without_own(rec)
            mids = Mids(view)
            rows.append((seed, compare(cand.label, stats(view, replay(view, cand), mids),
                                       stats(view, view.live_fills, mids))))
        if args.json:
            print(json.dumps({"model": cand.label, "seeds": {str(s): fr.comparison_json(c) for s, c in rows}},
                             default=str))
            return ExitCode.OK
    width = max(len("model"), *(len(c.label) for _, c in rows))  # the model column fits every label
    print(f"{'seed':>5} {'model':<{width}} {'fills':>6} {'live':>6} {'ratio':>6} {'med.mkt':>8} {'mk5s':>8} {'live':>8} "
          f"{'mk30s':>8} {'live':>8} {'pnl $':>8} {'live $':>8}")
    for seed, c in rows:
        p, lv = c.paper, c.live
        print(f"{seed:>5} {c.label:<{width}} {p.fills:>6} {lv.fills:>6} {c.fills_ratio:>6.2f} {c.median_market_err:>8.0%} "
              f"{p.markout[5.0] * 100:>+7.2f}c {lv.markout[5.0] * 100:>+7.2f}c {p.markout[30.0] * 100:>+7.2f}c "
              f"{lv.markout[30.0] * 100:>+7.2f}c {p.pnl:>+8.2f} {lv.pnl:>+8.2f}")
    if args.fit:
        print(f"wrote {path}: apply with `set -a; . {path}; set +a`, by appending it to .env, or as "
              + " ".join(f"--set {n}={v}" for n, v in pairs))
    return ExitCode.OK


# ----------------------------------------------------------------------------- parser
def _global_options(uses: Collection[str] | None = None, set_help: str | None = None,
                    set_dest: str = "set") -> argparse.ArgumentParser:
    """Options accepted before or after any subcommand (SUPPRESS keeps a later default from
    overwriting an earlier value). `uses`: the settings a command reads (None: all); the global
    flags of the others are still parsed (the command refuses them in one line, `_refuse_unused`)
    but left out of its help. `set_dest`: where `--set` collects (the top-level parser's go to
    `set_before`, joined ahead of the command's by `_join_sets`: argparse replaces the top-level
    list with the command's, and `pmm --set alpha=2 config --set universe_size=7` lost alpha)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = p.add_argument_group("settings (override PMM_* environment variables, same validation)")
    for field, (flag, help_) in GLOBAL_FLAGS.items():
        g.add_argument(flag, dest=field, metavar=field.split("_")[-1].upper(),
                       help=help_ if uses is None or field in uses else argparse.SUPPRESS)
    g.add_argument("--set", action="append", metavar="NAME=VALUE", dest=set_dest,
                   help=set_help or "any other setting or live parameter from env.example, e.g. --set universe_size=20 "
                                    "or --set calib_max_mult=2 (repeatable)")
    return p


# what `pmm sandbox` reads of the settings (its own flags set the first four); no other is used
SANDBOX_SETTINGS = ("sandbox_markets", "sandbox_seed", "sandbox_speed", "sandbox_resolve_every_sec", "log_level")


def _refuse_unused(args: argparse.Namespace, cmd: str, uses: Collection[str], said: str) -> None:
    """ConfigError (exit 2, one line) for a global flag or a `--set` of a setting the command
    `cmd` does not read: it would be ignored without a word (`pmm sandbox --alpha 2` served the
    venue as if it had not been given). `said`: what the command is and takes, for the message."""
    given = [flag for field, (flag, _) in GLOBAL_FLAGS.items()
             if field not in uses and getattr(args, field, None) is not None]
    for item in getattr(args, "set", None) or []:
        name = item.partition("=")[0].strip()
        field = name.lower().removeprefix("pmm_")
        # (a name that is no setting, or a secret, gets --set's own message from the settings)
        if field in Settings.model_fields and field not in uses and field not in SECRET_FIELDS:
            given.append(f"--set {name}")
    if given:
        raise ConfigError(f"{given[0]}: not used by `pmm {cmd}`, {said}")


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (else a one-line usage error)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return n


def _seed(text: str) -> int:
    """An argparse type: a replay's paper exchange seed, 0 .. 2**63-1 (else a one-line usage error)."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 2**63-1, got {text!r}")
    return n


def _jobs(text: str) -> int:
    """An argparse type: joblib's n_jobs (1, 2, ... processes; -1 one per core, -2 all but one), not 0."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n == 0:
        raise argparse.ArgumentTypeError(f"expected a number of processes (1, 2, ...) or -1 for one per core, got {text!r}")
    return n


def _join_sets(args: argparse.Namespace) -> argparse.Namespace:
    """`--set`s given before the command, then those after it (a later one for the same name wins)."""
    before = getattr(args, "set_before", None) or []
    if before:
        args.set = [*before, *(getattr(args, "set", None) or [])]
    with contextlib.suppress(AttributeError):
        del args.set_before
    return args


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(
        prog="pmm",
        description="Polymarket CLOB market-making workbench. Settings come from PMM_* variables "
        "(see env.example) or .env, overridden by the flags below.",
        parents=[_global_options(set_dest="set_before")],
    )
    parser.add_argument("--version", action="version", version=f"pmm-widgets {__version__}")
    parser.set_defaults(func=cmd_overview, _parser=parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str,
             func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=func)
        return p

    def group(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=lambda a, p=p: (p.print_help(), ExitCode.CONFIG)[1])
        return p.add_subparsers(title="commands", metavar="COMMAND")

    db = group("db", "database: create or upgrade the schema, show its state")
    leaf(db, "init", "create or upgrade every table (idempotent; SQLite in WAL mode, any SQLAlchemy URL)", cmd_db_init)
    leaf(db, "status", "schema revision, row counts and sizes per table", cmd_db_status)
    pr = leaf(db, "prune", "delete book_snapshots, public_trades, events, pnl, markouts and markets rows older "
              "than PMM_RETAIN_DAYS and sum old reward_estimates into one row per market (small batches; trades "
              "and orders are kept, so are the newest pnl row and the newest markets row of each market)",
              cmd_db_prune)
    pr.add_argument("--days", type=float, default=None, help="keep this many days instead of PMM_RETAIN_DAYS")

    uni = group("universe", "the set of markets traded")
    leaf(uni, "refresh", "fetch the top markets by liquidity and store them as a `markets` snapshot",
         cmd_universe_refresh)

    run = group("run", "run the engine headless until Ctrl-C / SIGTERM (cancels all orders on exit)")
    paper = leaf(run, "paper", "paper-trade: simulated fills against real (or sandbox) books", cmd_run)
    paper.set_defaults(run_mode="paper", dry_run=False)
    live = leaf(run, "live", "trade real money on Polymarket (asks for confirmation)", cmd_run)
    live.set_defaults(run_mode="live")
    live.add_argument("--dry-run", action="store_true",
                      help="build and sign orders but never send them (mode dry_run)")
    live.add_argument("--yes", action="store_true", help="skip the typed confirmation (for unattended starts)")
    for p in (paper, live):
        p.add_argument("--max-seconds", type=float, default=None, help="stop cleanly after this many seconds (counted from the start, set-up included)")

    sandbox_common = _global_options(SANDBOX_SETTINGS, set_help="a sandbox setting from env.example: "
                                     + ", ".join(SANDBOX_SETTINGS) + " (repeatable)")
    sb_help = "serve the simulated venue (Gamma, CLOB REST, websockets) on loopback"
    sb = sub.add_parser("sandbox", help=sb_help, description=sb_help, parents=[sandbox_common])
    sb.set_defaults(func=cmd_sandbox)
    sb.add_argument("--markets", type=int, default=None, help="number of simulated markets (default 80)")
    sb.add_argument("--seed", type=int, default=None, help="random seed (default 7)")
    sb.add_argument("--speed", type=float, default=None, help="simulated time speed-up (default 1)")
    sb.add_argument("--resolve-every", type=float, default=None, metavar="SEC",
                    help="resolve one market every SEC simulated seconds (default 0: off)")
    sb.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sb.add_argument("--gamma-port", type=int, default=None, help="Gamma API port (default: free port)")
    sb.add_argument("--clob-port", type=int, default=None, help="CLOB REST + websocket port (default: free port)")

    def research_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--from", dest="t_from", required=True, metavar="T0",
                       help="start, ISO 8601 UTC, e.g. 2026-12-01T10:00:00Z")
        p.add_argument("--to", dest="t_to", required=True, metavar="T1", help="end, ISO 8601 UTC")
        p.add_argument("--markets", default=None, metavar="N|IDS",
                       help="the top N markets of the recorded universe, or comma-separated condition ids/slugs")
        p.add_argument("--fill-model", default=None, help="paper fill model (PMM_PAPER_FILL_MODEL), e.g. intensity, queue")
        p.add_argument("--seed", type=_seed, default=None, help="paper exchange seed (default PMM_SANDBOX_SEED, as paper)")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the summary")

    rp = leaf(sub, "replay", "replay recordings (PMM_RECORD_DIR) through the engine on a simulated clock", cmd_replay)
    research_opts(rp)
    rp.add_argument("--cycles", choices=("auto", "recorded", "grid"), default="auto",
                    help="quote cycles at the recorded times (auto, when recorded) or every PMM_QUOTE_REFRESH_SEC")
    sw = leaf(sub, "sweep", "replay one window for every point of a parameter grid, in parallel", cmd_sweep)
    research_opts(sw)
    sw.add_argument("--grid", action="append", metavar="NAME=V1,V2,...",
                    help="a parameter and its values (repeatable: the grid is the product)")
    sw.add_argument("--jobs", type=_jobs, default=-1,
                    help="joblib worker processes (default -1: one per core; -2: all but one)")
    sw.add_argument("--ray", default=None, metavar="ADDRESS",
                    help="run each point as a Ray task on this cluster (needs the [ray] extra)")
    sw.add_argument("--out", default=None, metavar="PATH", help="Parquet file of the results (default under PMM_RECORD_DIR/../sweeps)")
    sw.add_argument("--per-pass", type=_positive_int, default=None, metavar="N",
                    help="at most N points per replay pass (the books rebuilt once per pass; default: one pass per "
                         "worker; 1: one replay per point)")

    recs = group("recordings", "full-fidelity recordings (PMM_RECORD_DIR): list, import public history")
    leaf(recs, "list", "every recording file: hour, channel, session, rows, size, problems", cmd_recordings_list)
    imp = leaf(recs, "import-pmxt", "convert PMXT hourly Polymarket L2 archive files (archive.pmxt.dev) into recordings",
               cmd_import_pmxt)
    imp.add_argument("files", nargs="+", metavar="FILE", help="polymarket_orderbook_YYYY-MM-DDTHH.parquet files")
    imp.add_argument("--markets", default="50", metavar="N|IDS|all",
                     help="the N busiest markets with two tokens (default 50), comma-separated condition ids, or all")

    fd = leaf(sub, "fidelity", "paper vs the sandbox's own matching: run the engine LIVE on an embedded sandbox "
              "(throwaway wallet), replay paper on the same market; --fit picks the fill model's parameters", cmd_fidelity)
    fd.add_argument("--fit", action="store_true",
                    help="fit the paper fill model on --seed, check it on --check-seeds, write the parameter set to --out")
    fd.add_argument("--seed", type=_seed, default=7, help="sandbox seed of the ground-truth run (the fit seed; default 7)")
    fd.add_argument("--check-seeds", default="", metavar="S1,S2",
                    help="further seeds to check the fitted parameters on (never fitted on)")
    fd.add_argument("--markets", type=int, default=8, help="markets traded (default 8)")
    fd.add_argument("--sim-minutes", type=float, default=6.0, help="simulated minutes per run (default 6)")
    fd.add_argument("--speed", type=float, default=10.0, help="sandbox speed-up (default 10)")
    fd.add_argument("--out", default="fidelity-fit.env", metavar="PATH",
                    help="where --fit writes the parameter set (PMM_* lines; default fidelity-fit.env)")
    fd.add_argument("--save", default=None, metavar="DIR", help="keep the ground-truth recordings in DIR")
    fd.add_argument("--load", default=None, metavar="DIR", help="use recordings saved by --save instead of new runs")
    fd.add_argument("--json", action="store_true", help="one JSON object on stdout")

    rp = leaf(sub, "report", "summary of fills, PnL, markouts and fill rates from the database", cmd_report)
    rp.add_argument("--json", action="store_true",
                    help='print the PnL decomposition as one JSON object {"markets": [...], "totals": {...}}')
    rp.add_argument("--mode", choices=("paper", "dry_run", "live", "replay"),
                    help="only this mode's rows (default: the mode the engine traded last in this DB; other "
                         "modes and replays written to the same DB are named, not added)")
    rp.add_argument("--run-id", metavar="ID", help="one replay run (pmm replay prints its id; default with "
                                                   "--mode replay: the newest)")

    auth = group("auth", "credentials")
    d = leaf(auth, "derive", "derive L2 API credentials from PMM_PRIVATE_KEY", cmd_auth_derive)
    d.add_argument("--show-secrets", action="store_true",
                   help="print the derived secret values (otherwise only the API key id is shown masked)")

    leaf(sub, "config", "print the effective settings (secrets masked)", cmd_config)
    return parser


def console_main() -> None:
    """The `pmm` command: `main`, then exit with its code (kept against a late signal)."""
    from pmm_widgets.engine.runner import as_process_entry, hold_exit_code  # loaded by `pmm_widgets.console`

    as_process_entry()
    code = main()
    hold_exit_code(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = _join_sets(parser.parse_args(argv))
        code = args.func(args)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except ConfigError as exc:
        print(f"pmm: {mask(str(exc))}", file=sys.stderr)
        return ExitCode.CONFIG
    except NotBuilt as exc:
        print(str(exc), file=sys.stderr)
        return ExitCode.NOT_BUILT
    except MissingPackage as exc:
        print(f"pmm: {mask(str(exc))}", file=sys.stderr)
        return ExitCode.ERROR
    except SystemExit as exc:  # argparse usage errors and --help
        return exc.code if isinstance(exc.code, int) else ExitCode.ERROR
    except BrokenPipeError:  # `pmm recordings list | head`: the reader left; not an error of ours
        import os

        with contextlib.suppress(OSError):  # no second complaint when Python flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:  # StoreError, venue errors, anything else: one line, traceback at DEBUG
        from pmm_widgets.errors import describe
        from pmm_widgets.store.db import StoreError

        if not logging.getLogger().handlers:
            setup_logging()
        log.debug("pmm: traceback of the error below", exc_info=True)  # --log-level DEBUG shows it
        hint = "" if isinstance(exc, StoreError) or log.isEnabledFor(logging.DEBUG) else \
            " (--log-level DEBUG shows the traceback)"
        print(f"pmm: {mask(describe(exc, _db_url_in_use))}{hint}", file=sys.stderr)
        return ExitCode.ERROR
    return int(code or ExitCode.OK)


if __name__ == "__main__":
    console_main()
