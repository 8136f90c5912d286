"""The log masker in detail (pmm_widgets/logsetup.py): which forms of a secret are masked, every
part of a record it rewrites, and the handler `setup_logging` installs (one, replaceable).

Each test starts from an empty registry (the module's set is process-wide)."""
from __future__ import annotations

import io
import logging
import sys

import pytest

from pmm_widgets import logsetup
from pmm_widgets.config import Settings

KEY = "0x" + "ab12cd34" * 8  # a private key's shape: 0x + 64 hex


@pytest.fixture(autouse=True)
def empty_registry(monkeypatch):
    monkeypatch.setattr(logsetup, "_secrets", set())


@pytest.fixture
def root_restored():
    """setup_logging changes the root logger: give back its handlers, level and noisy levels."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {n: logging.getLogger(n).level for n in ("alembic", "sqlalchemy.engine", "httpx", "httpcore", "websockets")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lv in noisy.items():
        logging.getLogger(n).setLevel(lv)


def test_a_private_key_is_masked_with_or_without_0x_in_either_case():
    logsetup.register_secret(KEY)
    for form in (KEY, KEY[2:], KEY[2:].upper()):
        assert logsetup.mask(f"key={form}!") == "key=***!", form
    for form in (KEY.upper(), "0x" + KEY[2:].upper()):  # the hex is gone; the prefix alone says nothing
        assert logsetup.mask(form) == form[:2] + "***"
    mixed = KEY[2:34] + KEY[34:].upper()
    assert logsetup.mask(mixed) == mixed  # upper and lower case only: a mixed spelling is not a form we produce


def test_a_non_hex_secret_is_masked_as_written_only():
    logsetup.register_secret("Zm9vYmFyYmF6cXV4LXNlY3JldA==")  # an L2 API secret: base64, case matters
    assert logsetup.mask("s=Zm9vYmFyYmF6cXV4LXNlY3JldA==") == "s=***"
    assert logsetup.mask("ZM9VYMFYYMF6CXV4LXNLY3JLDA==") == "ZM9VYMFYYMF6CXV4LXNLY3JLDA=="
    assert logsetup._secrets == {"Zm9vYmFyYmF6cXV4LXNlY3JldA=="}
    logsetup.register_secret("deadXbeef")  # hex letters and one that is not: not a hex value
    assert "deadxbeef" not in logsetup._secrets and "DEADXBEEF" not in logsetup._secrets
    logsetup.register_secret("0xZ-token-value")  # a 0x prefix on a non-hex value: the bare part masked too
    assert logsetup.mask("Z-token-value") == "***"


def test_too_short_values_are_never_registered_and_the_bound_is_four():
    assert logsetup.MIN_SECRET_LEN == 4
    for tiny in (None, "", "a", "abc", "0x"):
        logsetup.register_secret(tiny)
    assert logsetup._secrets == set()
    logsetup.register_secret("abcd")  # exactly four: masked
    assert logsetup.mask("xabcdx") == "x***x"
    logsetup.register_secret("0xabc")  # its bare part is three: only the whole value
    assert "abc" not in logsetup._secrets and logsetup.mask("0xabc abc") == "*** abc"
    logsetup.register_secret("0x1234")  # bare part exactly four: registered too
    assert logsetup.mask("1234") == "***"


def test_overlapping_secrets_mask_whole_longest_first():
    logsetup.register_secret("secret-value")
    logsetup.register_secret("my-secret-value-2")
    assert logsetup.mask("a my-secret-value-2 b secret-value") == "a *** b ***"


def test_settings_secrets_are_all_registered():
    s = Settings(_env_file=None, private_key=KEY, api_key="11111111-2222-3333-4444-555555555555",
                 api_secret="c2VjcmV0LXNlY3JldC1zZWNyZXQ=", api_passphrase="pass-phrase-value")
    logsetup.register_settings_secrets(s)
    text = f"{KEY} 11111111-2222-3333-4444-555555555555 c2VjcmV0LXNlY3JldC1zZWNyZXQ= pass-phrase-value"
    assert logsetup.mask(text) == "*** *** *** ***"
    assert logsetup.SECRET_FIELDS == ("private_key", "api_key", "api_secret", "api_passphrase")


def _record(msg: str, *args: object, exc: bool = False, stack: str | None = None) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"the SDK echoed {KEY}")
        except RuntimeError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("pmm_widgets.t", logging.ERROR, __file__, 1, msg, args, exc_info)
    rec.stack_info = stack
    return rec


def test_the_filter_rewrites_message_arguments_traceback_and_stack():
    f = logsetup.SecretMaskFilter(extra=["extra-secret-1"])
    logsetup.register_secret(KEY)
    rec = _record("key %s and %s", KEY, "extra-secret-1", exc=True, stack=f"Stack: local={KEY}")
    assert f.filter(rec) is True  # masked, never dropped
    assert (rec.msg, rec.args) == ("key *** and ***", None)
    assert rec.exc_text is not None and KEY not in rec.exc_text and "RuntimeError: the SDK echoed ***" in rec.exc_text
    assert rec.stack_info == "Stack: local=***"
    out = logging.Formatter().format(rec)
    assert KEY not in out and "extra-secret-1" not in out


def test_a_traceback_already_formatted_is_masked_too():
    logsetup.register_secret(KEY)
    rec = _record("failed")
    rec.exc_text = f"Traceback ... ValueError: {KEY}"
    assert logsetup.SecretMaskFilter().filter(rec)
    assert rec.exc_text == "Traceback ... ValueError: ***"


def test_a_broken_format_keeps_its_pieces_masked():
    logsetup.register_secret(KEY)
    rec = _record("two %s %s", KEY)  # one argument short
    assert logsetup.SecretMaskFilter().filter(rec)
    assert rec.msg == "two %s %s ('***',)" and rec.args is None


def test_without_secrets_the_record_is_left_as_it_is():
    rec = _record("plain %s", "arg")
    assert logsetup.SecretMaskFilter().filter(rec)
    assert (rec.msg, rec.args) == ("plain %s", ("arg",))


def test_setup_logging_installs_one_masking_handler_and_replaces_only_its_own(root_restored):
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    first = io.StringIO()
    h1 = logsetup.setup_logging(Settings(_env_file=None, private_key=KEY, log_level="WARNING"), stream=first)
    assert root.level == logging.WARNING and h1 in root.handlers
    second = io.StringIO()
    h2 = logsetup.setup_logging(level="debug", stream=second)  # no settings: the secrets stay registered
    assert h1 not in root.handlers and h2 in root.handlers and other in root.handlers
    assert root.level == logging.DEBUG
    assert logging.getLogger("sqlalchemy.engine").level == logging.WARNING  # chatty libraries stay at WARNING
    logging.getLogger("pmm_widgets.t").info("signing with %s", KEY[2:].upper())
    line = second.getvalue()
    assert first.getvalue() == ""
    assert line.endswith("INFO    pmm_widgets.t: signing with ***\n")  # the format: time, level, name, message
    assert line[:4].isdigit()
    root.removeHandler(other)


def test_setup_logging_takes_the_level_from_settings_then_info(root_restored):
    logsetup.setup_logging(Settings(_env_file=None, log_level="ERROR"), stream=io.StringIO())
    assert logging.getLogger().level == logging.ERROR
    assert logging.getLogger("httpx").level == logging.ERROR  # never below WARNING, and the level when higher
    logsetup.setup_logging(stream=io.StringIO())
    assert logging.getLogger().level == logging.INFO
