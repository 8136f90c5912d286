"""One-line explanations of the failures a user can meet, for every face (CLI, dashboard).

Why one module: the CLI, the runner and the dashboard all end up showing the same failures (a
database that cannot be opened, a venue that cannot be reached, a misspelt setting) and must say
the same thing in one line: what failed (the SQLite file, the host), why, and what to do. The
traceback stays available at `--log-level DEBUG`.
"""

from __future__ import annotations

import difflib
import enum
import os
from collections.abc import Iterable, Mapping
from pathlib import Path


class PmmError(Exception):
    """Base of every exception pmm-widgets raises on purpose (config, store, venue, live, sandbox,
    research, CLI): `except PmmError` catches the project's own failures and nothing else. Classes
    that were a `ValueError`/`RuntimeError` stay one too (they derive from both)."""


class ExpectedFailure(PmmError):
    """A failure a user meets in normal operation and fixes (the venue refused the wallet's
    signature at a live start, ...), not a crash: its text is the whole one line every face shows
    (what failed, the host, what to check). `describe` gives it as it is; `pmm run` prints it
    without "engine crashed" (exit 1, a runtime failure), the engine's event and the app say it the same way."""


def crash_text(exc: BaseException) -> str:
    """What a run that ended with `exc` says (the state's `last_error`, a face's log): an expected
    failure's own one line (`ExpectedFailure`: no crash), else the exception's type and text."""
    return str(exc) if isinstance(exc, ExpectedFailure) else f"{type(exc).__name__}: {exc}"


def crash_event(exc: BaseException) -> str:
    """The engine's ERROR event for a run that ended with `exc`: an expected failure's own line,
    else `engine crashed: <type>: <text>`."""
    return crash_text(exc) if isinstance(exc, ExpectedFailure) else f"engine crashed: {crash_text(exc)}"


class ExitCode(enum.IntEnum):
    """Process exit codes of `pmm`, `python -m pmm_widgets.engine` and `python -m
    pmm_widgets.sandbox` (README's exit-code table lists the same, a test compares them)."""

    OK = 0  # also `pmm run` stopped by SIGTERM after its clean stop
    ERROR = 1  # runtime failure: database, venue, engine crash or safety halt
    CONFIG = 2  # bad configuration (one line naming the variable or flag); live not confirmed
    LEASE_HELD = 3  # `pmm run`: another engine holds this DB's lease; nothing was started
    NOT_BUILT = 4  # capability not built in this checkout
    INTERRUPTED = 130  # Ctrl-C / SIGINT (after the clean stop)


# PMM_* variables read outside `Settings` (documented in env.example as comments)
EXTRA_ENV = frozenset({"PMM_DEMO"})
# PMM_* variables of the project's own test and benchmark harness (scripts/with_postgres.sh exports
# PMM_TEST_PG_URL for the whole `make test`): no setting, but no typo either, so no warning
HARNESS_ENV = frozenset({"PMM_TEST_PG_URL", "PMM_BENCH_TREE", "PMM_BENCH_EAGER", "PMM_FAULT_SUITE_SEC"})


def known_env_names() -> set[str]:
    from .config import ENV_PREFIX, Settings

    return {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields} | set(EXTRA_ENV) | set(HARNESS_ENV)


def _env_file_names(path: str | os.PathLike[str] | None) -> list[str]:
    if path is None or not Path(path).is_file():
        return []
    names = []
    for line in Path(path).read_text(errors="replace").splitlines():
        key = line.strip().removeprefix("export ").split("=", 1)[0].strip()
        if key.upper().startswith("PMM_") and "=" in line:
            names.append(key)
    return names


def unknown_env_warnings(environ: Mapping[str, str] | None = None,
                         env_file: str | os.PathLike[str] | None = ".env") -> list[str]:
    """One line per `PMM_*` name (environment or .env) that is no setting, with the closest known name."""
    environ = os.environ if environ is None else environ
    known = known_env_names()
    seen: set[str] = set()
    out: list[str] = []
    names: Iterable[str] = [*(k for k in environ if k.upper().startswith("PMM_")), *_env_file_names(env_file)]
    for name in names:
        if name.upper() in known or name in seen:
            continue
        seen.add(name)
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else " (see env.example for every setting)"
        out.append(f"{name} is not a setting and is ignored{hint}")
    return out


def sqlite_reason(db_url: str) -> str | None:
    """Why a SQLite file URL cannot be opened for writing, naming the absolute path; None if it looks fine."""
    try:
        from sqlalchemy.engine import make_url

        url = make_url(db_url)
    except Exception:  # noqa: BLE001 - not a URL at all: the caller's message covers it
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = Path(url.database)
    rel = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
    path = path.absolute()
    parent = path.parent
    probe = parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not parent.exists():
        why = f"{probe} is not a directory" if probe.exists() and not probe.is_dir() else f"directory {parent} does not exist"
        return f"SQLite file {path}{rel}: {why}"
    if not parent.is_dir():
        return f"SQLite file {path}{rel}: {parent} is not a directory"
    if path.exists() and not path.is_file():
        return f"SQLite file {path}{rel}: not a regular file"
    if path.exists() and not os.access(path, os.W_OK):
        return f"SQLite file {path}{rel}: the file is read-only"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"SQLite file {path}{rel}: directory {parent} is not writable"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def describe(exc: BaseException, db_url: str | None = None) -> str:
    """One line for an exception a user may meet: DB (with the SQLite path and why), venue (with
    the host), or any other (type and first line)."""
    from .store.db import first_line, safe_url

    if isinstance(exc, ExpectedFailure):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    chain = _chain(exc)
    try:
        import sqlalchemy.exc as sa_exc

        db_error: type[BaseException] | tuple[type[BaseException], ...] = sa_exc.SQLAlchemyError
    except ImportError:  # pragma: no cover
        db_error = ()
    from .store.db import StoreError

    for e in chain:
        if isinstance(e, (StoreError, db_error)) or type(e).__module__.startswith("sqlite3"):
            reason = sqlite_reason(db_url) if db_url else None
            where = safe_url(db_url) if db_url else "the database"
            msg = str(e).splitlines()[0] if isinstance(e, StoreError) else f"database {where}: {first_line(e)}"
            return f"{msg}; {reason}" if reason and reason not in msg else msg
    for e in chain:
        if type(e).__name__ == "VenueHTTPError":  # its message names method, host and path
            return f"venue error: {e}"
        request = getattr(e, "_request", None)
        if request is not None and getattr(request, "url", None) is not None:
            return f"cannot reach {request.url.scheme}://{request.url.netloc.decode()}: {type(e).__name__}: {e}"
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
