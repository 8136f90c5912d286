"""The operator app and the notebooks share the root's DB and recordings, and the app records.

Seen: a notebook's kernel runs in its own folder (apps/, notebooks/), so a relative
PMM_RECORD_DIR was that folder's: `pmm run paper` from the root recorded into ./data/recordings,
and the research notebook listed "no recordings under ./data/recordings" (notebooks/data/...).
And the operator app, the main way to paper-trade, recorded nothing unless PMM_RECORD=on: a
dashboard session could not be replayed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pmm_widgets.ui.dashboard import FatalPanel, app_settings, launch, project_root

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_notebooks(monkeypatch, tmp_path):
    """A kernel's working directory (the notebook's folder), PMM_* from this test only."""
    for k in [k for k in os.environ if k.startswith("PMM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("PMM_DB_URL", f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.chdir(ROOT / "notebooks")
    return monkeypatch


def test_relative_paths_are_the_roots(in_notebooks) -> None:
    assert project_root() == ROOT
    s = app_settings()
    assert s.record_dir == str(ROOT / "data" / "recordings")  # the default ./data/recordings, of the root
    assert s.live_rtt_file == str(ROOT / "data" / "live-order-rtt-ms-{venue}.txt")
    assert s.paper_latency_file == ""  # unset stays unset
    in_notebooks.setenv("PMM_RECORD_DIR", "/srv/rec")
    in_notebooks.setenv("PMM_PAPER_LATENCY_FILE", "rtt.txt")
    s = app_settings()
    assert s.record_dir == "/srv/rec" and s.paper_latency_file == str(ROOT / "rtt.txt")


def test_the_app_records_unless_told_not_to(in_notebooks, tmp_path) -> None:
    in_notebooks.setenv("PMM_VENUE", "sandbox")
    in_notebooks.setenv("PMM_RECORD_DIR", str(tmp_path / "rec"))
    panel = launch()
    assert not isinstance(panel, FatalPanel) and panel.engine.settings.record == "on"
    in_notebooks.setenv("PMM_RECORD", "off")
    panel = launch()
    assert not isinstance(panel, FatalPanel) and panel.engine.settings.record == "off"


def test_an_unwritable_recording_directory_asked_for_is_one_line_on_the_page(in_notebooks, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    in_notebooks.setenv("PMM_VENUE", "sandbox")
    in_notebooks.setenv("PMM_RECORD_DIR", str(blocker / "rec"))
    in_notebooks.setenv("PMM_RECORD", "on")
    panel = launch()
    assert isinstance(panel, FatalPanel)
    assert panel.message.startswith(f"PMM_RECORD_DIR={blocker / 'rec'}: cannot record there")
    assert "PMM_RECORD=off" in panel.message


def test_the_default_recording_never_keeps_the_page_from_opening(in_notebooks, tmp_path) -> None:
    """Recording is the app's default, not the operator's ask: a directory it cannot write must not
    keep the page (and its KILL for an engine already running) from opening; it says so in red."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    in_notebooks.setenv("PMM_VENUE", "sandbox")
    in_notebooks.setenv("PMM_RECORD_DIR", str(blocker / "rec"))
    panel = launch()
    assert not isinstance(panel, FatalPanel) and panel.engine.settings.record == "off"
    assert "cannot record there" in panel.message.value and "runs without recording" in panel.message.value
