"""Latency models of the paper exchange: how long our messages take to and from the venue.

Four one-way delays, in seconds, as hftbacktest splits them:

- `entry`: a new order travels to the venue; it cannot fill before it is there;
- `cancel`: a cancel travels to the venue; the order can still fill until it arrives (a cancel
  that arrives after the fill does not undo it: the fill is reported, late);
- `response`: a fill notice travels back to us (the user channel);
- `feed`: market data travels to us. The paper exchange only sees market data when it arrives,
  so an event that arrived at t happened at the venue at t − feed.

`ConstantLatency(rtt_ms)` splits one measured round-trip time in half each way, so an order
placed at t can meet events arriving from t + rtt on, and a fill is seen when the print that
caused it is seen. `SampledLatency` draws each delay from measured round trips (for example the
request times the live exchange records) with its own seeded generator, so the same seed and the
same calls give the same delays. Both are plain code: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

DEFAULT_LATENCY_MS = 150.0


@runtime_checkable
class LatencyModel(Protocol):
    def entry(self) -> float: ...

    def cancel(self) -> float: ...

    def response(self) -> float: ...

    def feed(self) -> float: ...


class ConstantLatency:
    """The same delays every time: `rtt_ms` / 2 each way (0 gives an instant venue); the feed
    delay is `feed_ms` when given (market data often travels faster than an order's round trip,
    which includes signing and the venue's processing), else the same half round trip."""

    def __init__(self, rtt_ms: float = DEFAULT_LATENCY_MS, feed_ms: float | None = None) -> None:
        if not rtt_ms >= 0 or (feed_ms is not None and not feed_ms >= 0):
            raise ValueError(f"latency must be >= 0 ms, not {rtt_ms} / feed {feed_ms}")
        self.rtt_ms = rtt_ms
        self._one_way = rtt_ms / 2000.0
        self._feed = self._one_way if feed_ms is None else feed_ms / 1000.0

    def entry(self) -> float:
        return self._one_way

    def cancel(self) -> float:
        return self._one_way

    def response(self) -> float:
        return self._one_way

    def feed(self) -> float:
        return self._feed

    def __repr__(self) -> str:
        return f"ConstantLatency({self.rtt_ms:g} ms)"


class SampledLatency:
    """Each delay is half of a round trip drawn from measured samples (ms), seeded."""

    def __init__(self, samples_ms: Iterable[float], seed: int = 0, feed_ms: float | None = None) -> None:
        s = np.asarray([float(x) for x in samples_ms], dtype=float)
        if s.size == 0:
            raise ValueError("no latency samples")
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError("latency samples must be finite and >= 0 ms")
        self.samples_ms = s
        self.rng = np.random.default_rng(seed)
        self._feed = float(np.median(s)) / 2000.0 if feed_ms is None else feed_ms / 1000.0

    def _draw(self) -> float:
        return float(self.samples_ms[self.rng.integers(self.samples_ms.size)]) / 2000.0

    def entry(self) -> float:
        return self._draw()

    def cancel(self) -> float:
        return self._draw()

    def response(self) -> float:
        return self._draw()

    def feed(self) -> float:
        # constant (half the median round trip unless given): a drawn feed delay would reorder
        # market events, which the feed never does
        return self._feed

    @classmethod
    def from_file(cls, path: str | Path, seed: int = 0) -> SampledLatency:
        """Round trips in ms, one per line (blank lines and `#` comments skipped)."""
        vals: list[float] = []
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read latency samples ({exc.strerror or exc})") from None
        for ln, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                vals.append(float(line.split(",")[-1]))
            except ValueError:
                raise ValueError(f"{path}:{ln}: not a latency in ms: {line!r}") from None
        return cls(vals, seed)


ZERO_LATENCY = ConstantLatency(0.0)


def write_samples(path: str | Path, samples_ms: Iterable[float], note: str = "") -> Path:
    """Round trips in ms, one a line, as `SampledLatency.from_file` and `PMM_PAPER_LATENCY_FILE` read them."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    head = f"# {note}\n" if note else ""
    p.write_text(head + "".join(f"{x:.3f}\n" for x in samples_ms))
    return p


def save_round_trips(exchange: object, path: str | Path, note: str = "") -> tuple[Path, int, float] | None:
    """Write an exchange's measured order round trips (`LiveExchange.order_rtt_ms`) to `path` in
    the form `PMM_PAPER_LATENCY_FILE` reads; returns (path, samples, median ms), or None when
    there is nothing to write (no path, a paper exchange, no order placed). Blocking file IO:
    the engine calls it in a thread when it stops (`PMM_LIVE_RTT_FILE`)."""
    samples = list(getattr(exchange, "order_rtt_ms", None) or ())
    if not path or not samples:
        return None
    med = float(np.median(samples))
    head = f"order round trips (ms) of a live run, {len(samples)} samples, median {med:.1f} ms"
    return write_samples(path, samples, note=f"{head}; {note}" if note else head), len(samples), med


def latency_from_settings(settings: Any) -> LatencyModel:
    """`PMM_PAPER_LATENCY_FILE` (measured round trips, seeded by `PMM_SANDBOX_SEED`) when set, else
    the constant `PMM_PAPER_LATENCY_MS`. A missing or malformed file is a one-line ConfigError."""
    path = getattr(settings, "paper_latency_file", "")
    if not path:
        return ConstantLatency(settings.paper_latency_ms)
    from ..config import ConfigError

    try:
        return SampledLatency.from_file(path, seed=settings.sandbox_seed)
    except ValueError as exc:
        raise ConfigError(f"PMM_PAPER_LATENCY_FILE={path}: {exc}") from None
