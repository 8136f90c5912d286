"""Settings validation (one line per bad variable), env.example completeness, secret masking."""

from __future__ import annotations

import io
import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from pmm_widgets import logsetup
from pmm_widgets.config import PARAM_FIELDS, ConfigError, Params, Settings, Venue, load_settings
from pmm_widgets.errors import EXTRA_ENV

ROOT = Path(__file__).resolve().parents[2]
SECRET = "0xdeadbeefcafe1234567890abcdef1234567890abcdef1234567890abcdef1234"
API_SECRET = "c2VjcmV0LXZhbHVlLWZvci10ZXN0cw=="


pytestmark = pytest.mark.usefixtures("clean_env")  # (tests/conftest.py)


def test_defaults_are_the_documented_ones():
    s = load_settings()
    assert s.venue is Venue.POLYMARKET
    assert s.gamma_url == "https://gamma-api.polymarket.com"
    assert s.clob_url == "https://clob.polymarket.com"
    assert s.clob_ws_url == "wss://ws-subscriptions-clob.polymarket.com/ws"
    assert (s.db_url, s.universe_size, s.alpha, s.quote_refresh_sec, s.dashboard_refresh_sec) == (
        "sqlite:///pmm.db", 50, 1.5, 3.0, 1.0)
    assert s.private_key is None and not s.has_l2_creds


@pytest.mark.parametrize("var, value, accepted", [
    ("PMM_ALPHA", "-1", "greater than 0"),
    ("PMM_ALPHA", "abc", "valid number"),
    ("PMM_DB_URL", "nonsense", "SQLAlchemy URL"),
    ("PMM_VENUE", "moon", "polymarket"),
    ("PMM_UNIVERSE_SIZE", "0", "greater than or equal to 1"),
    ("PMM_QUOTE_REFRESH_SEC", "0", "greater than 0"),
    ("PMM_DASHBOARD_REFRESH_SEC", "-2", "greater than 0"),
    ("PMM_GAMMA_URL", "ftp://x", "http"),
    ("PMM_CLOB_URL", "clob", "http"),
    ("PMM_CLOB_WS_URL", "http://x", "ws://"),
    ("PMM_PAPER_FILL_INTENSITY", "-1", "greater than or equal to 0"),
    ("PMM_PAPER_SPREAD_K", "-1", "greater than or equal to 0"),
    ("PMM_PAPER_FULL_FILL_PROB", "2", "less than or equal to 1"),
    ("PMM_PAPER_PARTIAL_BETA_A", "0", "greater than 0"),
    ("PMM_PAPER_PARTIAL_BETA_B", "0", "greater than 0"),
    ("PMM_PAPER_PARTIAL_MAX_FRAC", "1.5", "less than or equal to 1"),
    ("PMM_MAX_DAILY_LOSS_USD", "-5", "greater than 0"),
    ("PMM_MAX_INVENTORY_SHARES", "0", "greater than 0"),
    ("PMM_SIGNATURE_TYPE", "9", "less than or equal to 3"),
    ("PMM_WRITER_FLUSH_SEC", "5", "less than or equal to 1"),
    ("PMM_LOG_LEVEL", "LOUD", "DEBUG"),
    ("PMM_RECORD_MAX_GB", "inf", "less than or equal to 1000000"),  # it passed, then crashed the engine
    ("PMM_RECORD_DIR", "", "empty: expected a directory"),  # it recorded into the current directory
    ("PMM_RECORD_MAX_GB", "-1", "greater than or equal to 0"),
    ("PMM_RECORD_MAX_GB", "abc", "valid number"),
    ("PMM_RECORD", "maybe", "'off' or 'on'"),
    ("PMM_RECORD_MIN_FREE_GB", "nan", "less than or equal to"),
    ("PMM_RECORD_ROTATE_SEC", "0.001", "at least 1 s"),  # it was taken: a part per ms, a core busy writing them
])
def test_bad_value_is_one_line_naming_the_variable(monkeypatch, var, value, accepted):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    msg = str(info.value)
    assert msg.startswith(var) and accepted in msg and "\n" not in msg


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("PMM_ALPHA=2.5\nPMM_UNIVERSE_SIZE=7\n")
    s = load_settings()
    assert (s.alpha, s.universe_size, s.params().alpha) == (2.5, 7, 2.5)


def test_every_parameter_is_a_setting_with_one_definition():
    """`Settings` inherits the live parameters from `ParamFields`: same type, default, bounds and
    description (no hand copy that could drift), and every parameter says what it does."""
    for name, pf in Params.model_fields.items():
        sf = Settings.model_fields.get(name)
        assert sf is not None, f"{name}: not settable as PMM_{name.upper()}"
        assert (sf.annotation, sf.default, sf.metadata, sf.description) == \
            (pf.annotation, pf.default, pf.metadata, pf.description), name
        assert pf.description, f"{name} has no description"
    assert load_settings().params() == Params()  # the settings' defaults are the parameters' defaults


@pytest.mark.parametrize("name, value, expected", [
    ("calib_min_mult", "0.25", 0.25),
    ("calib_max_mult", "2", 2.0),
    ("anomaly_jump", "0.2", Decimal("0.2")),
    ("anomaly_window_sec", "5", 5.0),
    ("anomaly_cooldown_sec", "0", 0.0),
    ("quoting_paused", "true", True),
])
def test_formerly_unsettable_parameters_come_from_env_dotenv_and_set(monkeypatch, tmp_path, name, value, expected):
    from pmm_widgets import cli

    monkeypatch.setenv(f"PMM_{name.upper()}", value)
    assert getattr(load_settings().params(), name) == expected
    monkeypatch.delenv(f"PMM_{name.upper()}")
    (tmp_path / ".env").write_text(f"PMM_{name.upper()}={value}\n")
    assert getattr(load_settings().params(), name) == expected
    (tmp_path / ".env").unlink()
    args = cli.build_parser().parse_args(["config", "--set", f"{name}={value}"])
    assert getattr(cli.settings_from_args(args).params(), name) == expected


def test_notebook_overrides_reach_every_parameter_and_unknown_names_are_refused():
    s = load_settings(calib_max_mult=2, anomaly_cooldown_sec=5, alpha="2.5")
    assert (s.params().calib_max_mult, s.params().anomaly_cooldown_sec, s.params().alpha) == (2.0, 5.0, 2.5)
    with pytest.raises(ConfigError, match=r"^alhpa: not a setting or parameter \(did you mean alpha\?\)$"):
        load_settings(alhpa=2)


def test_parameter_rules_apply_to_env_values(monkeypatch):
    monkeypatch.setenv("PMM_ANOMALY_JUMP", "1.5")
    with pytest.raises(ConfigError, match=r"^PMM_ANOMALY_JUMP=1.5: Input should be less than 1$"):
        load_settings()
    monkeypatch.delenv("PMM_ANOMALY_JUMP")
    monkeypatch.setenv("PMM_REGIME_WIDE_VOL", "0.5")  # a rule across fields (Params' model validator)
    with pytest.raises(ConfigError, match="wide <= reduce <= halt"):
        load_settings()
    monkeypatch.setenv("PMM_STRATEGY", "nope")
    with pytest.raises(ConfigError, match="^PMM_STRATEGY=nope: expected one of spread"):
        load_settings()


def test_param_fields_are_the_params_fields():
    assert PARAM_FIELDS == tuple(Params.model_fields) and set(PARAM_FIELDS) < set(Settings.model_fields)


def test_params_validate_on_assignment_like_env():
    p = load_settings().params()
    with pytest.raises(ValidationError):
        p.alpha = -1
    assert p.alpha == 1.5
    with pytest.raises(ValidationError):
        p.update(alpha=2.0, paper_full_fill_prob=3)
    assert p.alpha == 1.5  # all or nothing
    p.update(alpha=2.0)
    assert p.alpha == 2.0 and isinstance(p, Params)


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / "env.example").read_text().splitlines():
        m = re.match(r"^(PMM_[A-Z0-9_]+)=(.*)$", line)
        if m:
            pairs[m.group(1)] = m.group(2)
    return pairs


def test_env_example_lists_every_setting_with_its_default():
    """Every `Settings` field and every `Params` field is a line of env.example, and env.example
    names no variable that is neither (a renamed or removed setting must leave it too)."""
    listed = env_example()
    fields = {f"PMM_{name.upper()}": f for name, f in Settings.model_fields.items()}
    params = {f"PMM_{name.upper()}" for name in Params.model_fields}
    missing = sorted((set(fields) | params) - set(listed))
    unknown = sorted(set(listed) - set(fields) - params)
    assert not missing, f"not in env.example: {missing}"
    assert not unknown, f"env.example names unknown variables: {unknown}"
    documented_extra = (ROOT / "env.example").read_text()
    assert all(f"# {name}=" in documented_extra for name in EXTRA_ENV)  # read outside Settings: a comment line
    for var, field in fields.items():
        default = field.default
        default = getattr(default, "value", default)
        expected = "" if default is None else str(default)
        assert listed[var] == expected, var
    for secret in ("PMM_PRIVATE_KEY", "PMM_API_KEY", "PMM_API_SECRET", "PMM_API_PASSPHRASE"):
        assert listed[secret] == ""


def test_env_example_loads_as_is(tmp_path):
    (tmp_path / ".env").write_text((ROOT / "env.example").read_text())
    assert load_settings().db_url == "sqlite:///pmm.db"


def with_secrets(monkeypatch) -> Settings:
    monkeypatch.setenv("PMM_PRIVATE_KEY", SECRET)
    monkeypatch.setenv("PMM_API_KEY", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("PMM_API_SECRET", API_SECRET)
    monkeypatch.setenv("PMM_API_PASSPHRASE", "passphrase-value-xyz")
    return load_settings()


def test_secrets_never_in_repr_str_dump_or_errors(monkeypatch):
    s = with_secrets(monkeypatch)
    assert s.private_key.get_secret_value() == SECRET and s.has_l2_creds
    texts = [repr(s), str(s), s.model_dump_json(), str(s.model_dump()), repr(s.private_key)]
    monkeypatch.setenv("PMM_ALPHA", "-1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    texts.append(str(info.value))
    for text in texts:
        for secret in (SECRET, SECRET[2:], API_SECRET, "passphrase-value-xyz"):
            assert secret not in text


def test_log_lines_mask_registered_secrets(monkeypatch):
    s = with_secrets(monkeypatch)
    out = io.StringIO()
    handler = logsetup.setup_logging(s, level="INFO", stream=out)
    try:
        log = logging.getLogger("pmm_widgets.test")
        log.info("key is %s", SECRET)
        log.warning(f"secret inline {API_SECRET} and bare {SECRET[2:]}")
        try:
            raise RuntimeError(f"sdk said passphrase-value-xyz in {SECRET}")
        except RuntimeError:
            log.exception("call failed")
        logsetup.register_secret("derived-at-runtime-key")
        log.error("derived %s", "derived-at-runtime-key")
    finally:
        logging.getLogger().removeHandler(handler)
    text = out.getvalue()
    for secret in (SECRET, SECRET[2:], API_SECRET, "passphrase-value-xyz", "derived-at-runtime-key"):
        assert secret not in text
    assert text.count("***") >= 6 and "RuntimeError" in text and "call failed" in text


def test_mask_ignores_tiny_values():
    logsetup.register_secret("ab")
    assert logsetup.mask("abc") == "abc"


def test_every_pmm_variable_the_repository_reads_is_a_known_name():
    """`pmm` warns about `PMM_*` names it does not know (typos); the names the project's own code,
    benchmarks, scripts and test harness read must not trigger it (scripts/with_postgres.sh exports
    PMM_TEST_PG_URL for the whole `make test`: every command then printed a stray warning line)."""
    from pmm_widgets.errors import known_env_names, unknown_env_warnings

    name = re.compile(r"PMM_[A-Z0-9_]*[A-Z0-9]\b")
    read = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](PMM_[A-Z0-9_]+)["']""")
    found: dict[str, str] = {}
    for top in ("pmm_widgets", "bench", "scripts", ".ci", "apps", "Makefile"):
        for path in [ROOT / top] if (ROOT / top).is_file() else sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in ("", ".py", ".sh", ".ipynb", ".toml", ".md"):
                for n in name.findall(path.read_text(errors="replace")):
                    found.setdefault(n, str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for n in read.findall(path.read_text()):
            found.setdefault(n, str(path.relative_to(ROOT)))
    assert found, "the scan found no PMM_ name at all"
    placeholders = {"PMM_NAME"}  # "PMM_NAME=value" in docstrings
    unknown = {n: where for n, where in found.items() if n not in known_env_names() | placeholders}
    assert not unknown, f"read but not known (add to Settings, EXTRA_ENV or HARNESS_ENV): {unknown}"
    assert unknown_env_warnings({"PMM_TEST_PG_URL": "postgresql://x"}, env_file=None) == []
    assert unknown_env_warnings({"PMM_ALHPA": "3"}, env_file=None) == [
        "PMM_ALHPA is not a setting and is ignored (did you mean PMM_ALPHA?)"]
