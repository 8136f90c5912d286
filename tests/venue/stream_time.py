"""The market stream's `time` replaced by a clock the test moves (the `test_mut_stream_conn*`
files): `monotonic` always; `perf_counter` too when given a start, else the real one."""

from __future__ import annotations

import time

import pytest

from pmm_widgets.venue import market_stream as ms


class FakeTime:
    def __init__(self, perf: float | None = None) -> None:
        self.perf = perf
        self.mono = 1000.0
        self.time = time.time

    def perf_counter(self) -> float:
        return time.perf_counter() if self.perf is None else self.perf

    def monotonic(self) -> float:
        return self.mono


def fake_stream_time(monkeypatch: pytest.MonkeyPatch, perf: float | None = None) -> FakeTime:
    f = FakeTime(perf)
    monkeypatch.setattr(ms, "time", f)
    return f
