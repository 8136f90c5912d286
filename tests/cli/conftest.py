"""The CLI tests' environment: no PMM_* variable of the caller's, no .env of the repository (the
working directory is the test's own), an SQLite file of its own; the root logger's handlers the
CLI installed are taken down after."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture
def env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith("PMM_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    monkeypatch.setenv("PMM_DB_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    yield monkeypatch
    logging.getLogger().handlers.clear()
