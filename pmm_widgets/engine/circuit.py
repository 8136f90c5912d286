"""Circuit breaker over quote cycles (issue 17, M1): pure decisions, no IO.

Why: one transient venue error must cost one cycle (an `events` row and a status), never the
engine; but when errors persist, resting quotes priced on a venue we cannot reach are a risk.
After `threshold` failing cycles in a row the circuit *opens*: the engine pauses quoting and
cancels everything. While open it probes the venue every `probe_sec` (cancel-all and an
open-orders check); the first probe that succeeds *closes* the circuit and quoting resumes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Circuit:
    threshold: int = 3
    probe_sec: float = 5.0
    failures: int = 0  # failing cycles in a row
    open_since: float | None = None
    next_probe: float = 0.0
    last_error: str = ""
    opened: int = 0  # times it opened since start
    probes_failed: int = 0  # failed probes in the current open period

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    def record(self, now: float, error: str | None) -> bool:
        """Outcome of one quote cycle (None: it went through). True when this failure opens the circuit."""
        if error is None:
            self.failures = 0
            return False
        self.failures += 1
        self.last_error = error
        if self.is_open or self.failures < self.threshold:
            return False
        self.open_since, self.next_probe, self.probes_failed = now, now + self.probe_sec, 0
        self.opened += 1
        return True

    def probe_due(self, now: float) -> bool:
        return self.is_open and now >= self.next_probe

    def probe_result(self, now: float, error: str | None) -> bool:
        """Outcome of one probe. True when it closes the circuit."""
        if error is not None:
            self.last_error = error
            self.probes_failed += 1
            self.next_probe = now + self.probe_sec
            return False
        self.open_since, self.failures, self.probes_failed = None, 0, 0
        return True

    def describe(self, now: float) -> str:
        """One phrase for the status line ("" while closed)."""
        if self.open_since is None:
            return ""
        return (f"CIRCUIT OPEN {now - self.open_since:.0f}s: quoting paused, orders cancelled "
                f"({self.last_error[:80]})")
