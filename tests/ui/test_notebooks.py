"""The notebooks, executed by a real kernel (nbclient) against the embedded sandbox."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.notebook, pytest.mark.integration]

FAST = {"PMM_VENUE": "sandbox", "PMM_QUOTE_REFRESH_SEC": "0.2", "PMM_DASHBOARD_REFRESH_SEC": "0.2",
        "PMM_SANDBOX_SPEED": "15", "PMM_SANDBOX_MARKETS": "20", "PMM_UNIVERSE_SIZE": "5",
        "PMM_LEASE_TTL_SEC": "3", "PMM_WRITER_FLUSH_SEC": "0.2", "PMM_PAPER_FILL_INTENSITY": "120",
        "PMM_PNL_SEC": "1"}


@pytest.fixture
def sandbox_env(monkeypatch, tmp_path):
    """The kernel inherits this process's environment."""
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PMM_DB_URL", f"sqlite:///{tmp_path / 'nb.db'}")
    monkeypatch.setenv("RESEARCH_SECONDS", "1.5")
    monkeypatch.setenv("PMM_RECORD", "on")  # the research notebook replays what its engine recorded
    monkeypatch.setenv("PMM_RECORD_DIR", str(tmp_path / "recordings"))
    monkeypatch.setenv("RESEARCH_JOBS", "1")


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_research_notebook_runs_against_a_short_sandbox_run(sandbox_env):
    nb = nbformat.read(ROOT / "notebooks" / "research.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    client.execute()
    outs = "\n".join(_text(c) for c in nb.cells if c.cell_type == "code")
    assert "role: owner" in outs
    assert "engine role: owner | running: False" in outs
    assert "paper mode:" in outs  # the record section reads this engine's mode only
    assert "reward samples per step:" in outs  # issue 13: reward share against α from reward_estimates
    mk_cell = next(c for c in nb.cells if "by_h = markouts" in c.source)  # issue 10: from the markouts table
    assert "horizon_sec" in "".join(o.get("data", {}).get("text/plain", "") for o in mk_cell.outputs)
    sweep_cell = next(c for c in nb.cells if "sweep = pd.DataFrame" in c.source)
    html = "".join(o.get("data", {}).get("text/plain", "") for o in sweep_cell.outputs)
    assert "alpha_engine" in html and "4.0" in html
    # the research-loop section: the replay of the run's window reproduces its fills; a 6-point sweep
    research = outs[outs.index("engine role: owner | running: False"):]
    assert "replay rp" in research, research
    assert "replay reproduces the paper fills: True" in research, research
    assert "sweep sw" in research, research


def test_control_app_cells_start_engine_and_kill_works(sandbox_env):
    nb = nbformat.read(ROOT / "apps" / "control.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "apps")}})
    checks = [
        # executing the notebook starts nothing (Voilà runs it for any GET); the first browser
        # heartbeat does (demo mode), simulated here by the Play widget ticking once
        "import asyncio\nawait asyncio.sleep(0.5)\nassert not engine.running and engine.role == 'idle'\n"
        "panel.heartbeat.value += 1\nfor _ in range(50):\n    if engine.task is not None: break\n"
        "    await asyncio.sleep(0.05)\n"
        "await engine.wait_role()\nfor _ in range(100):\n"
        "    if engine.state.tick >= 3: break\n    await asyncio.sleep(0.1)\n"
        "assert engine.role == 'owner' and engine.running and engine.task is not None and not engine.task.done()\n"
        "assert engine.settings.db_url.startswith('sqlite:////')\nprint('TICKS', engine.state.tick)",
        "panel.kill.click()\nfor _ in range(100):\n    if engine.state.kill is not None and not engine.running: break\n"
        "    await asyncio.sleep(0.1)\nk = engine.state.kill\nassert k is not None and k.ok, k\n"
        "assert 'KILLED' in panel.kill_result.value\nprint('KILLED', k.cancelled, k.venue_open_after)",
    ]
    with client.setup_kernel():
        for idx, cell in enumerate(nb.cells):
            client.execute_cell(cell, idx)
        for src in checks:
            cell = nbformat.v4.new_code_cell(src)
            nb.cells.append(cell)
            client.execute_cell(cell, len(nb.cells) - 1)
    assert "TICKS" in _text(nb.cells[-2])
    assert "KILLED" in _text(nb.cells[-1]) and " 0" in _text(nb.cells[-1])
