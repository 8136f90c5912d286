"""The recorder under faults the earlier rounds did not cover: the wall clock stepping back (NTP,
a VM resumed), a writer thread that falls behind (a burst, a stalled disk), and a write that
fails half-way through a part (a disk full for a moment)."""

from __future__ import annotations

import subprocess
import sys
import threading

from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.store.recording import OPEN_SUFFIX, Recorder, hour_key

H0 = parse_time("2026-11-30T10:00:00Z")


def test_a_part_closes_when_its_interval_ends_even_after_the_clock_stepped_back(tmp_path):
    """The part open when the wall clock stepped back stayed open (unreadable, and lost to a
    kill -9) until the clock caught up again: an hour back kept one part open for an hour. A
    part now closes whenever the rotation interval differs from the one it was opened in."""
    slot = {"now": 100}
    rec = Recorder(tmp_path, session="c1", rotate_sec=60)
    rec._rotation_slot = lambda: slot["now"]  # type: ignore[method-assign]
    rec.frame(H0, 0, "a")
    rec.flush()  # part 0 opened in interval 100
    slot["now"] = 40  # the clock steps back an hour
    rec.frame(H0 + 1, 0, "b")
    rec.flush()
    slot["now"] = 41  # one interval later
    rec.frame(H0 + 2, 0, "c")
    rec.flush()
    hour = tmp_path / hour_key(H0)
    assert not (hour / f"market-c1-0000.parquet{OPEN_SUFFIX}").exists(), sorted(f.name for f in hour.iterdir())
    w = load_window(tmp_path, H0, H0 + 3600)
    assert len(w) >= 2 and not w.problems and not w.gaps  # what came before this interval is readable
    rec.close()
    w = load_window(tmp_path, H0, H0 + 3600)
    assert w.payload[:] == ["a", "b", "c"] and not w.gaps
