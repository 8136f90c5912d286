"""Suite-wide fixtures: only what several areas share."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# `pmm run` records by default (PMM_RECORD unset); tests never write recordings unless they ask
os.environ.setdefault("PMM_RECORD", "off")
# a live engine writes its order round trips when it stops (PMM_LIVE_RTT_FILE); tests only when they ask
os.environ.setdefault("PMM_LIVE_RTT_FILE", "")

# hypothesis checks what the code does, not how fast: its 200 ms per-example deadline failed a
# 0.5 ms example that a loaded host (or a collection of the test process's heap) held 0.4 s.
# Speed goals are benchmarks (bench/), never timed tests.
settings.register_profile("pmm", deadline=None)
settings.load_profile("pmm")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of a PostgreSQL database for tests (scripts/with_postgres.sh exports it)."""
    url = os.environ.get("PMM_TEST_PG_URL")
    if not url:
        pytest.skip("PMM_TEST_PG_URL is not set (run under scripts/with_postgres.sh or `make test`)")
    return url


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> None:
    """No PMM_* from the outer environment and no .env from the repo (the test runs in tmp_path):
    settings read as a fresh machine reads them."""
    for name in list(os.environ):
        if name.startswith("PMM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
