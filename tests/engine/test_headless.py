"""The engine's import purity and the headless runner, in subprocesses."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from engine_helpers import count, open_orders_in_db, subprocess_env

FACES = ("ipywidgets", "bokeh", "IPython", "ipykernel")


def test_engine_imports_no_face_modules():
    code = ("import sys, pmm_widgets.engine, pmm_widgets.engine.runner, pmm_widgets.engine.__main__; "
            f"print([m for m in {FACES!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.integration
def test_headless_run_keeps_face_modules_out(db_url):
    code = ("import sys\n"
            "from pmm_widgets.config import load_settings\n"
            "from pmm_widgets.domain import Mode\n"
            "from pmm_widgets.engine.runner import run_main\n"
            "rc = run_main(load_settings(), Mode.PAPER, max_seconds=6.0)\n"  # set-up included
            f"print('FACES', [m for m in {FACES!r} if m in sys.modules])\n"
            "sys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=90,
                         env=subprocess_env(db_url))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FACES []" in out.stdout
    assert " tick " in out.stdout  # one status line per cycle


def _read_until(proc: subprocess.Popen, marker: str, timeout: float = 60) -> list[str]:
    """The process's stdout lines up to the first holding `marker` (or its end, or `timeout`)."""
    lines: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            break
    return lines


@pytest.mark.integration
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_headless_runner_signal_stops_clean_with_documented_code(db_url, db, sig, code):
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.engine", "--sandbox"], env=subprocess_env(db_url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _read_until(proc, " tick 5 ")
        assert any(" tick 5 " in ln for ln in lines), "".join(lines) + proc.stderr.read() if proc.poll() is not None else "".join(lines)
        assert count(db, "SELECT COUNT(*) FROM engine_lease") == 1
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-2000:]  # README: SIGTERM 0, Ctrl-C 130, both after the clean stop
    assert open_orders_in_db(db) == 0
    assert count(db, "SELECT COUNT(*) FROM orders") > 0
    assert count(db, "SELECT COUNT(*) FROM engine_lease") == 0


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_start_that_waits_for_an_unreachable_venue_at_once(db_url, sig, code):
    """The start-up retries a venue it cannot reach (nothing is quoted meanwhile); a signal ends
    that wait at once with the documented code and one line naming the host, not after the runner's
    two-minute wait for the engine's role (which is what it did)."""
    env = subprocess_env(db_url)
    env.update(PMM_GAMMA_URL="http://127.0.0.1:9", PMM_CLOB_URL="http://127.0.0.1:9",
               PMM_CLOB_WS_URL="ws://127.0.0.1:9/ws", PMM_HTTP_TIMEOUT_SEC="1", PMM_VENUE="polymarket")
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.engine"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = _read_until(proc, "universe load failed")
        assert any("universe load failed" in ln for ln in lines), "".join(lines)
        t = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-2000:]
    assert took < 20, took  # the universe's retry wait ends with the stop (HTTP timeouts 1 s)
    said = [ln for ln in err.splitlines() if ln.startswith("stopped before the engine started:")]
    assert len(said) == 1 and "127.0.0.1:9" in said[0], err[-2000:]
    assert "engine crashed" not in out + err and "Traceback" not in err


def test_live_without_credentials_refused(db_url):
    env = subprocess_env(db_url)
    out = subprocess.run([sys.executable, "-m", "pmm_widgets.engine", "--mode", "live", "--yes"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "credentials" in out.stderr


def test_config_error_is_one_line_exit_2(db_url):
    env = subprocess_env(db_url)
    env["PMM_ALPHA"] = "-1"
    out = subprocess.run([sys.executable, "-m", "pmm_widgets.engine"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "PMM_ALPHA" in out.stderr
