"""`pmm replay` in a host process (a notebook, a test): the Ctrl-C handler it installs for its run
is taken down when the run ends, so a later Ctrl-C interrupts as before."""

from __future__ import annotations

import signal

import pytest

from pmm_widgets.cli import main
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    synth_recording(root, T0, 120, markets=2, seed=3)
    return root


@pytest.mark.parametrize("window,code", [(("2026-11-30T10:00:00Z", "2026-11-30T10:00:30Z"), 0),
                                         (("2026-12-30T10:00:00Z", "2026-12-30T10:00:30Z"), 1)])
def test_replay_puts_the_ctrl_c_handler_back(rec_dir, tmp_path, monkeypatch, capsys, window, code):
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    before = signal.getsignal(signal.SIGINT)
    assert main(["replay", "--from", window[0], "--to", window[1], "--set", "quote_refresh_sec=1",
                 "--db-url", f"sqlite:///{tmp_path / 'r.db'}", "--json"]) == code, capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before
