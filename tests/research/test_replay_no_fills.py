"""A replay without fills has no realized spread (None, as its markouts: it said +0.0000), in
its summary, its printed summary, its `--json` output and a sweep's rows."""

from __future__ import annotations

import json

import pytest

from pmm_widgets.cli import main
from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import format_summary, markout_summary, replay
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
A, B = T0 + 60, T0 + 180  # the window replayed


def _settings(root, **kw):
    return load_settings(**{"record_dir": str(root), "quote_refresh_sec": 1.0, "paper_fill_intensity": 20, **kw})


def test_a_run_without_fills_has_no_realized_spread(tmp_path, monkeypatch, capsys):
    assert markout_summary([]) == {"realized_spread_usd": None}
    root = tmp_path / "rec"
    synth_recording(root, T0, 240, markets=2, seed=11)
    res = replay(_settings(root, paper_fill_intensity=0), A, B, write_db=False)
    s = res.summary
    assert s["fills"] == 0 and s["placed"] > 0
    assert s["realized_spread_usd"] is None and not any(k.startswith("markout_") for k in s)
    text = format_summary(res)
    assert "markouts: none (no fills)" in text and "+0.0000 USD" not in text, text
    # the JSON output (and the DB's summary) say null
    monkeypatch.setenv("PMM_RECORD_DIR", str(root))
    monkeypatch.setenv("PMM_PAPER_FILL_INTENSITY", "0")
    url = f"sqlite:///{tmp_path / 'nofills.db'}"
    assert main(["replay", "--from", "2026-11-30T10:01:00Z", "--to", "2026-11-30T10:03:00Z", "--db-url", url,
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["fills"] == 0 and doc["summary"]["realized_spread_usd"] is None
    assert main(["replay", "--from", "2026-11-30T10:01:00Z", "--to", "2026-11-30T10:03:00Z", "--db-url", url]) == 0
    assert "markouts: none (no fills)" in capsys.readouterr().out


@pytest.mark.parametrize("fills", [True, False])
def test_a_sweep_row_carries_the_realized_spread_or_none(tmp_path, fills):
    """The sweep's rows take the summary as it is: None where there were no fills."""
    from pmm_widgets.research.points import run_pass

    root = tmp_path / "rec"
    synth_recording(root, T0, 240, markets=2, seed=11)
    sd = _settings(root, paper_fill_intensity=20 if fills else 0).model_dump()
    rows = run_pass(sd, A, B, [(0, {"alpha": 1.0})], {}, None, None)
    rs = rows[0]["realized_spread_usd"]
    assert (rs is not None) == fills and (rows[0]["fills"] > 0) == fills
