"""Logging set-up with secret masking.

Why a filter on the handlers: `SecretStr` keeps secrets out of reprs, but a secret can still reach
a log line another way (an f-string over `get_secret_value()`, an SDK error echoing a header, a
traceback showing a local). Every record that reaches a handler installed here is rewritten so
any registered secret value reads `***`, in the message, its arguments and the formatted
traceback. Credentials derived at run time (L2 API keys) are added with `register_secret`.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pmm_widgets.config import Settings

MASK = "***"
MIN_SECRET_LEN = 4  # shorter values would mask ordinary text; real keys are far longer
SECRET_FIELDS = ("private_key", "api_key", "api_secret", "api_passphrase")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_secrets: set[str] = set()
_HEX = frozenset("0123456789abcdefABCDEF")
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask this value in every log line from now on (with and without a 0x prefix). A hex
    value (a private key) is masked in lower and upper case too: `.env` may spell it one way
    and a library print it the other (eth-account's `key.hex()` is lower case)."""
    if not value or len(value) < MIN_SECRET_LEN:
        return
    bare = value[2:] if value.lower().startswith("0x") else value
    forms = {value}
    if len(bare) >= MIN_SECRET_LEN:
        forms.add(bare)
        if all(c in _HEX for c in bare):
            forms.update((bare.lower(), bare.upper()))
    with _lock:
        _secrets.update(forms)


def register_settings_secrets(settings: Settings) -> None:
    """Register every SecretStr field of Settings."""
    for name in SECRET_FIELDS:
        secret = getattr(settings, name, None)
        if secret is not None:
            register_secret(secret.get_secret_value())


def mask(text: str) -> str:
    """`text` with every registered secret replaced by `***` (longest first, so overlaps mask fully)."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for s in secrets:
        if s in text:
            text = text.replace(s, MASK)
    return text


class SecretMaskFilter(logging.Filter):
    """Rewrites a record in place so no registered secret survives formatting."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        super().__init__()
        for value in extra:
            register_secret(value)

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format: keep the raw pieces, masked
            message = f"{record.msg} {record.args}"
        record.msg = mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def setup_logging(settings: Settings | None = None, level: str | None = None,
                  stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger once: one stderr handler with the masking filter.

    Called by the CLI and the engine runner; notebooks may call it too. Re-calling replaces the
    handler it installed before (so tests and notebooks can re-run it) and leaves others alone.
    """
    if settings is not None:
        register_settings_secrets(settings)
    lvl = (level or (settings.log_level if settings is not None else "INFO")).upper()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_pmm_handler", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SecretMaskFilter())
    handler._pmm_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(lvl)
    # Alembic and SQLAlchemy are chatty at INFO; their warnings still show.
    for noisy in ("alembic", "sqlalchemy.engine", "httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(lvl)))
    return handler
