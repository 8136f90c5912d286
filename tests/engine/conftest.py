from __future__ import annotations

import pytest
from engine_helpers import FAST_ENV

from pmm_widgets.config import Settings
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade


@pytest.fixture
def db_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    upgrade(url)
    return url


@pytest.fixture
def fast_settings(db_url):
    kw = {k.removeprefix("PMM_").lower(): v for k, v in FAST_ENV.items()}
    return Settings(_env_file=None, db_url=db_url, **kw)


@pytest.fixture
def db(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()

