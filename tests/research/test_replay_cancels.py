"""A replay's summary `cancels` is what its paper exchange cancelled: every order whose row ends
CANCELED by a cancel, the resolutions' and the end of the window's cancel-all included (they were
in no count: the summary said 6 to 7 fewer than the rows, of ~450, on a 6-minute window)."""

from __future__ import annotations

import asyncio

import pytest

from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
SECONDS = 180


@pytest.mark.parametrize("latency_ms", [0.0, 150.0])
def test_the_summary_cancels_are_the_orders_its_cancels_ended(tmp_path, latency_ms):
    synth_recording(tmp_path, T0, SECONDS, markets=4, seed=11, resolve=((90.0, 0, True),))
    s = load_settings(record_dir=str(tmp_path), quote_refresh_sec=1.0, paper_fill_intensity=20,
                      paper_latency_ms=latency_ms)
    r = Replayer(s, T0, T0 + SECONDS)
    res = asyncio.run(r.run())
    assert res.status == "done", res.problems
    ended = [o for o in res.orders if o["status"] == "CANCELED" and o["reason"] == "cancelled"]
    assert r.points[0].cycle.resolved  # the resolution cancelled the market's orders (none open after it)
    assert not [o for o in res.orders if o["status"] in ("LIVE", "PARTIAL")]  # the window's end cancelled the rest
    assert res.summary["cancels"] == len(ended) > 0, (res.summary["cancels"], len(ended))
