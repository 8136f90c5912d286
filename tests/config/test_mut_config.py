"""`config` rules at their edges (mutation-testing round): the cross-field rules allow equality and
refuse one step past it, `field_bounds` reads both kinds of bound and an open side, the recording
settings, a private key at the ends of secp256k1's range and with or without its 0x, URLs without
their trailing slash, and the one-line messages (a URL's password hidden, a cross-field rule by its
own words, an override's closest name)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pmm_widgets.config import (
    _SECP256K1_N,
    ConfigError,
    Params,
    Settings,
    field_bounds,
    format_validation_error,
    load_settings,
)

pytestmark = pytest.mark.usefixtures("clean_env")  # (tests/conftest.py)


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("equal", "past", "said"), [
    # (calib_min_mult <= 1 <= calib_max_mult by their own bounds: that rule cannot fail alone)
    ({"calib_min_mult": 1.0, "calib_max_mult": 1.0}, {"calib_max_mult": 0.99}, "greater than or equal to 1"),
    ({"regime_wide_vol": 0.06}, {"regime_wide_vol": 0.07}, "wide <= reduce <= halt"),
    ({"regime_reduce_vol": 0.10}, {"regime_reduce_vol": 0.11}, "wide <= reduce <= halt"),
    ({"regime_wide_tt_per_min": 3.0}, {"regime_wide_tt_per_min": 3.5}, "regime_wide_tt_per_min=3.5 must be <="),
    ({"regime_halt_before_end_min": 60.0}, {"regime_halt_before_end_min": 61.0},
     "regime_halt_before_end_min=61.0 must be <="),
])
def test_each_cross_field_rule_allows_equality_and_refuses_one_step_past(equal, past, said):
    p = Params().update(**equal)
    assert all(getattr(p, k) == v for k, v in equal.items())
    with pytest.raises(ValidationError) as ei:
        Params().update(**past)
    assert said in format_validation_error(ei.value)


def test_a_regime_machine_cannot_wrap_itself_but_wraps_any_other():
    with pytest.raises(ValidationError, match="cannot wrap itself"):
        Params(regime_base="regime")
    assert Params(regime_base="as").regime_base == "as"


def test_update_applies_all_or_nothing_and_returns_the_same_object():
    p = Params()
    assert p.update(alpha=2.0, skew=1.0) is p and (p.alpha, p.skew) == (2.0, 1.0)
    with pytest.raises(ValidationError):
        p.update(alpha=3.0, calib_min_mult=1.0, calib_max_mult=1.0, skew=-1)
    assert (p.alpha, p.skew, p.calib_min_mult) == (2.0, 1.0, 0.5)


def test_field_bounds_reads_gt_ge_lt_le_and_an_open_side():
    assert field_bounds("alpha") == (0, 20)  # gt / le
    assert field_bounds("requote_ticks") == (0, 100)  # ge / le
    assert field_bounds("price_band") == (0, 1)  # gt / lt
    assert field_bounds("calib_max_mult") == (1, 100)  # ge 1: not the zero of another rule
    assert field_bounds("strategy") == (None, None)  # no numeric rule
    for name in ("alpha", "price_band", "max_open_orders"):  # the bounds are the rules: one past each is refused
        lo, hi = field_bounds(name)
        with pytest.raises(ValidationError):
            Params().update(**{name: lo})
        with pytest.raises(ValidationError):
            Params().update(**{name: hi * 2})


def test_recording_settings_record_rotation_and_directory():
    assert settings(record="  ").record is None and settings(record=" ON ").record == "on"
    assert settings(record=None).record is None
    with pytest.raises(ValidationError):
        settings(record="maybe")
    for ok in (0.0, 1.0, 1.5, 3600.0):
        assert settings(record_rotate_sec=ok).record_rotate_sec == ok
    for bad in (0.5, 0.999):
        with pytest.raises(ValidationError, match="below 1 s"):
            settings(record_rotate_sec=bad)
    assert settings(record_dir="/data/rec").record_dir == "/data/rec"
    with pytest.raises(ValidationError, match="expected a directory"):
        settings(record_dir="   ")


def test_a_private_key_with_or_without_0x_in_range_and_out_of_it():
    one = "00" * 31 + "01"
    assert settings(private_key=one).private_key.get_secret_value() == one  # type: ignore[union-attr]
    assert settings(private_key="0X" + one).private_key.get_secret_value() == "0X" + one  # type: ignore[union-attr]
    top = f"{_SECP256K1_N - 1:064x}"
    assert settings(private_key=top).has_private_key
    for bad in (f"{_SECP256K1_N:064x}", "00" * 32):
        with pytest.raises(ValidationError, match="out of range"):
            settings(private_key=bad)
    with pytest.raises(ValidationError, match="64 hex digits"):
        settings(private_key="X" + one[1:])  # a letter that is no hex digit
    assert settings(private_key="  ").private_key is None and not settings(private_key="").has_private_key
    assert not settings().has_private_key


def test_urls_lose_their_trailing_slash_and_only_it():
    s = settings(gamma_url="http://h:1/", clob_url="https://cX/", clob_ws_url="ws://wX/ws/")
    assert (s.gamma_url, s.clob_url, s.clob_ws_url) == ("http://h:1", "https://cX", "ws://wX/ws")


def test_one_line_messages_hide_a_db_urls_password_and_name_the_env_variable():
    with pytest.raises(ValidationError) as ei:
        settings(db_url="postgresql://me:hunter2@db:notaport/x")
    line = format_validation_error(ei.value, env=True)
    assert "hunter2" not in line and line.startswith("PMM_DB_URL=postgresql://me:***@db") and "SQLAlchemy URL" in line
    assert format_validation_error(ei.value).startswith("db_url=")  # a parameter's own name off the env
    with pytest.raises(ValidationError) as ei:
        settings(gamma_url="ftp://me:hunter2@gamma")  # any URL's password, not only the DB's
    line = format_validation_error(ei.value, env=True)
    assert "hunter2" not in line and line.startswith("PMM_GAMMA_URL=ftp://me:***@gamma: expected an http")
    with pytest.raises(ValidationError) as ei:
        settings(alpha=-1)
    assert format_validation_error(ei.value, env=True).startswith("PMM_ALPHA=-1: ")
    with pytest.raises(ValidationError) as ei:
        Params(calib_min_mult=0.9, calib_max_mult=1.0).update(calib_max_mult=1.0, calib_min_mult=1.0)
        Params(regime_wide_tt_per_min=5.0)
    assert format_validation_error(ei.value) == (
        "regime_wide_tt_per_min=5.0 must be <= regime_reduce_tt_per_min=3.0")  # the rule's words, no prefix
    with pytest.raises(ValidationError) as ei:
        settings(gamma_url={"a": 1})
    assert format_validation_error(ei.value, env=True).startswith("PMM_GAMMA_URL: ")  # no dict echoed


def test_an_override_that_is_no_setting_names_the_closest_or_the_example_file():
    with pytest.raises(ConfigError, match=r"alhpa: not a setting or parameter \(did you mean alpha\?\)"):
        load_settings(alhpa=2)
    with pytest.raises(ConfigError, match=r"zzzz: not a setting or parameter \(see env.example"):
        load_settings(zzzz=2)
    assert load_settings(_env_file=None).alpha == 1.5  # a private pydantic argument is no setting
    with pytest.raises(ConfigError, match="^PMM_ALPHA=0: "):
        load_settings(_env_file=None, alpha=0)
