"""Helpers of the browser tests (imported by module name, like the other areas' helpers):
start and stop a Voilà server on the operator app with a token, Playwright's chromium flags."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def clean_env(**pmm: str) -> dict[str, str]:
    """This process's environment without any PMM_* variable, plus `pmm`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env["PMM_RECORD"] = "off"  # (the app records by default, into the checkout's data/: a test says where)
    env.update(pmm)
    return env


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_voila(env: dict[str, str], log_path: Path,
                extra: list[str] | None = None) -> tuple[subprocess.Popen, int, str, IO[str]]:
    """`voila apps/control.ipynb` with `voila.json` on a free port and a token of the test's own:
    (process, port, token, log file). Raises with the log when it does not come up in 60 s."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "voila", "apps/control.ipynb", "--no-browser", f"--port={port}", f"--token={token}",
         *(extra or [])], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not wait(lambda: proc.poll() is not None or _port_open(port), 60, 0.2) or proc.poll() is not None:
        log.close()
        raise RuntimeError(log_path.read_text())
    return proc, port, token, log


def stop_voila(proc: subprocess.Popen, log: IO[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    log.close()
