from __future__ import annotations

import pytest

from pmm_widgets.config import Settings
from pmm_widgets.store.migrate import upgrade


@pytest.fixture
def db_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    upgrade(url)
    return url


@pytest.fixture
def settings(db_url):
    return Settings(_env_file=None, db_url=db_url, dashboard_refresh_sec=0.05, quote_refresh_sec=0.2,
                    lease_ttl_sec=3, deadman_sec=1.0)
