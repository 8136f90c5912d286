"""Suite-wide fixtures: only what several areas share."""

from __future__ import annotations

import os

import pytest

# `pmm run` records by default (PMM_RECORD unset); tests never write recordings unless they ask
os.environ.setdefault("PMM_RECORD", "off")
# a live engine writes its order round trips when it stops (PMM_LIVE_RTT_FILE); tests only when they ask
os.environ.setdefault("PMM_LIVE_RTT_FILE", "")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of a PostgreSQL database for tests (scripts/with_postgres.sh exports it)."""
    url = os.environ.get("PMM_TEST_PG_URL")
    if not url:
        pytest.skip("PMM_TEST_PG_URL is not set (run under scripts/with_postgres.sh or `make test`)")
    return url
