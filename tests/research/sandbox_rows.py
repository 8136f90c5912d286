"""Helpers of the tests that record real `pmm run paper` sessions on the sandbox and compare the
paper rows with a replay's: the environment, the CLI, and the comparable form of orders and fills."""

from __future__ import annotations

import os
import sys
from decimal import Decimal

import sqlalchemy as sa


def sandbox_env(tmp_path, db: str, **extra: str) -> dict[str, str]:
    """A `pmm` environment on the embedded sandbox (fast, 20 markets), its DB `db` and recordings under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_VENUE": "sandbox", "PMM_DB_URL": f"sqlite:///{tmp_path / db}", "PMM_SANDBOX_SPEED": "20",
                "PMM_SANDBOX_MARKETS": "20", "PMM_UNIVERSE_SIZE": "6", "PMM_QUOTE_REFRESH_SEC": "0.5",
                "PMM_WRITER_FLUSH_SEC": "0.2", "PMM_PAPER_FILL_INTENSITY": "20",
                "PMM_RECORD_DIR": str(tmp_path / "rec"), **extra})
    return env


def pmm_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pmm_widgets.cli", *args]


def rows(url: str, sql: str) -> list[dict]:
    eng = sa.create_engine(url)
    with eng.connect() as c:
        out = [dict(r) for r in c.execute(sa.text(sql)).mappings()]
    eng.dispose()
    return out


def dec(v) -> Decimal:
    return Decimal(str(v)).normalize()


def placed(o: dict) -> tuple:
    """An order as placed: token, side, price, size."""
    return (o["token_id"], o["side"], dec(o["price"]), dec(o["size"]))
