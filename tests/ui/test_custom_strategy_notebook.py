"""notebooks/custom_strategy.ipynb, executed by a real kernel (nbclient): a strategy defined in a
cell is handed to the running paper engine (embedded sandbox), which trades with it."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.notebook, pytest.mark.integration]

FAST = {"PMM_VENUE": "sandbox", "PMM_QUOTE_REFRESH_SEC": "0.2", "PMM_DASHBOARD_REFRESH_SEC": "0.2",
        "PMM_SANDBOX_SPEED": "15", "PMM_SANDBOX_MARKETS": "20", "PMM_UNIVERSE_SIZE": "5",
        "PMM_LEASE_TTL_SEC": "3", "PMM_WRITER_FLUSH_SEC": "0.2", "PMM_PAPER_FILL_INTENSITY": "120"}


def test_a_notebook_strategy_trades_on_the_running_paper_engine(monkeypatch, tmp_path):
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PMM_DB_URL", f"sqlite:///{tmp_path / 'nb.db'}")
    monkeypatch.setenv("CUSTOM_SECONDS", "25")
    nb = nbformat.read(ROOT / "notebooks" / "custom_strategy.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = "\n".join("".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
                    for c in nb.cells if c.cell_type == "code")
    assert "role: owner" in out and "strategies: ['spread']" in out
    assert "strategies: ['outside']" in out
    m = re.search(r"fills since the switch: (\d+), at prices the strategy asked for: (\d+)", out)
    assert m, out
    fills, ours = int(m.group(1)), int(m.group(2))
    assert fills >= 1 and ours == fills, out  # every fill since the switch is at a price it asked for
    assert "stopped; open orders: 0" in out
