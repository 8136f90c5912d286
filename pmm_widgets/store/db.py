"""Engine construction: one place that knows how each database should be connected to.

Why: SQLite is the default store and is shared by an engine process, dashboards and notebooks at
the same time. WAL lets readers run while the batched writer commits, `synchronous=NORMAL` keeps
commits cheap while a committed transaction still survives a process crash, and `busy_timeout`
makes a second writer wait instead of failing. Any other SQLAlchemy URL (PostgreSQL for several
engines sharing one database) is passed through with connection pre-ping.
"""

from __future__ import annotations

import decimal
import enum
import json
import os
import warnings
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SAWarning
from sqlalchemy.pool import StaticPool

from ..errors import PmmError

SQLITE_BUSY_TIMEOUT_MS = 10_000

# SQLite stores Numeric as REAL; SQLAlchemy converts back to Decimal at the column's scale (6
# places here, finer than any tick) and warns about it on every process. The schema accepts that.
warnings.filterwarnings("ignore", message=r".*does \*not\* support Decimal objects natively", category=SAWarning)


class StoreError(PmmError):
    """The database cannot be used (bad URL, missing driver, unreachable). `str()` is one line."""


def _json_default(value: Any) -> Any:
    """JSON for the values producers put in *_json columns: Decimal as a string keeps it exact."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def safe_url(db_url: str | URL) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def in_memory(db_url: str | URL) -> bool:
    """Whether the URL is an in-memory SQLite database (`sqlite://`, `sqlite:///:memory:`): each of
    its engines is a database of its own, gone with it. False for a URL that does not parse."""
    try:
        url = make_url(db_url)
    except (ArgumentError, ValueError):
        return False
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def check_shared_db(settings: Any) -> None:
    """ConfigError (one line) for an engine's in-memory SQLite database: each connection is a
    database of its own, and the engine's lease, its writer and every face that attaches need one
    they all share (`pmm run paper --db-url sqlite://` retried "cannot take the DB lease: no such
    table: engine_lease" for ever)."""
    if in_memory(settings.db_url):
        from ..config import ConfigError

        raise ConfigError(f"database {settings.db_url}: in memory, every connection a database of its own: the "
                          "engine's lease, its rows and the faces that attach need one they share: give a file, "
                          "e.g. sqlite:///pmm.db")


def make_engine(db_url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any) -> Engine:
    """Create an Engine for any SQLAlchemy URL; SQLite gets WAL, busy timeout and foreign keys.

    `sqlite://` (memory) uses a single shared connection (StaticPool) so every thread, the writer
    thread included, sees the same database. `busy_timeout_ms` is how long a SQLite writer waits
    for another process's write lock before failing. Connecting is lazy: use `check_connection` to fail
    early with a one-line message.
    """
    try:
        url = make_url(db_url)
    except ArgumentError:
        raise StoreError(f"not an SQLAlchemy database URL: {db_url!r}") from None
    opts: dict[str, Any] = {"json_serializer": json_dumps}
    if url.get_backend_name() == "sqlite":
        memory = in_memory(url)
        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        opts["connect_args"] = connect_args
        if memory:
            opts["poolclass"] = StaticPool
    else:
        opts["pool_pre_ping"] = True
    opts.update(kwargs)
    try:
        engine = create_engine(url, **opts)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise StoreError(f"no database driver for {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(in_memory(url), busy_timeout_ms))
    return engine


def _sqlite_pragmas(memory: bool, busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    return on_connect


def check_connection(engine: Engine) -> None:
    """Open and close one connection; raise StoreError with one line if the DB is unusable."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # driver errors differ per backend; all mean "cannot use this DB"
        raise StoreError(f"cannot connect to {safe_url(engine.url)}: {first_line(exc)}") from None


def first_line(exc: BaseException) -> str:
    """The first meaningful line of a (driver) error, without SQLAlchemy's background links."""
    orig = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def sqlite_file(db_url: str | URL) -> str | None:
    """The file path of an on-disk SQLite URL, else None (memory DBs, other backends)."""
    try:
        url = make_url(db_url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or in_memory(url):
        return None
    return str(url.database)


def file_identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of `path`, or None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class DbIdentity:
    """Is the file this process opened still the database's file?

    Why: SQLite keeps writing to an open file after it was deleted (or replaced by a new file at
    the same path, e.g. by a second engine creating a fresh DB): every commit "succeeds" into an
    inode nobody will ever read, and the lease row there proves nothing. The (device, inode) seen
    at open is compared with the path's now; a mismatch is sticky (the process must stop
    trading on it). Other backends have no file: `check()` is always None.
    """

    def __init__(self, db_url: str | URL) -> None:
        self.path = sqlite_file(db_url)
        self.opened = file_identity(self.path) if self.path is not None else None
        self.lost: str | None = None

    def check(self) -> str | None:
        """None while the file is the one opened; else one line saying what happened (sticky)."""
        if self.lost is not None or self.path is None:
            return self.lost
        now = file_identity(self.path)
        if self.opened is None:  # opened before the file existed: adopt the first one seen
            self.opened = now
            return None
        if now is None:
            self.lost = f"database file {self.path} was deleted while in use"
        elif now != self.opened:
            self.lost = f"database file {self.path} was replaced by another file while in use"
        return self.lost
