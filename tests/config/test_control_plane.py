"""Control plane and config hardening (issue 17): bounded limits, command expiry by the owner's
clock, command attribution, and a malformed private key refused in one line (exit 2)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from pmm_widgets.config import Params, Settings, limit_bounds
from pmm_widgets.engine.commands import FUTURE_SKEW_SEC, Command, CommandQueue, default_sender


def test_every_max_limit_has_an_upper_bound_and_1e15_is_refused():
    bounds = limit_bounds()
    assert set(bounds) == {n for n in Params.model_fields if n.startswith("max_")}
    for name, (_lo, hi) in bounds.items():
        assert hi is not None, f"{name} has no upper bound"
        with pytest.raises(ValidationError):
            Params().update(**{name: 10**15})
        Params().update(**{name: hi})  # the bound itself is allowed


def test_env_example_documents_the_bounds():
    """Each `max_*` limit's upper bound as env.example states it (`PMM_MAX_X <= N`) is the rule's."""
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "env.example"), encoding="utf-8").read()
    assert "upper bound" in text and "PMM_WRITER_MAX_PENDING" in text and "PMM_WRITER_MAX_LAG_SEC" in text
    said = {m[1].lower(): int(m[2]) for m in re.finditer(r"PMM_(MAX_\w+) <= (\d+)", text)}
    assert said == {name: int(hi) for name, (_lo, hi) in limit_bounds().items()}


def test_command_verdict_by_the_owners_clock():
    q = CommandQueue(None, issuer="face", max_age_sec=60)  # type: ignore[arg-type]  # verdict needs no DB
    now = 1_000_000.0
    assert q.verdict(Command(1, now - 1, "f", "kill", {}), now) is None
    assert q.verdict(Command(2, now + FUTURE_SKEW_SEC - 0.1, "f", "kill", {}), now) is None
    assert q.verdict(Command(3, now + 3600, "f", "kill", {}), now).startswith("rejected")
    assert q.verdict(Command(4, now - 61, "f", "kill", {}), now).startswith("expired")


def test_sender_names_user_host_pid():
    s = default_sender("dashboard")
    assert "@" in s and f"pid {os.getpid()}" in s and s.endswith("(dashboard)")


@pytest.mark.parametrize("bad", ["abcd", "0x" + "zz" * 32, "0x" + "00" * 32, "f" * 64])
def test_malformed_private_key_is_one_line_without_the_key(bad):
    with pytest.raises(ValidationError) as ei:
        Settings(_env_file=None, private_key=bad)
    assert bad not in str(ei.value.errors()[0]["msg"])


def test_pmm_run_live_with_a_malformed_key_exits_2_with_one_line(tmp_path):
    bad = "0xnot-a-key-" + "9" * 20
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_PRIVATE_KEY": bad, "PMM_VENUE": "sandbox", "PMM_DB_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    proc = subprocess.run([sys.executable, "-m", "pmm_widgets.cli", "run", "live", "--yes"], capture_output=True,
                          text=True, env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "PMM_PRIVATE_KEY" in lines[0] and "Traceback" not in proc.stderr
    assert bad not in proc.stderr + proc.stdout
