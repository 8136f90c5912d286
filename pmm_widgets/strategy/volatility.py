"""Per-token volatility of the mid: an EWMA of squared mid changes per second.

Why per second: the quote loop samples mids at irregular intervals (a refresh can be late, a
token can be missing for a cycle). For a random-walk mid, `dm**2 / dt` is an unbiased estimate
of the variance rate whatever `dt` is, so each observation is weighted by the time it covers:
`w = 1 - 2**(-dt / half_life)`. The half-life is read on every update, so changing
`params.vol_halflife_sec` takes effect at once. `sigma(token, horizon)` converts the rate to the
expected move over a holding horizon, the adverse move a half-spread must cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _TokenVol:
    last_mid: float
    last_ts: float
    var_rate: float = 0.0  # price**2 per second
    samples: int = 0


class VolEstimator:
    def __init__(self) -> None:
        self._tokens: dict[str, _TokenVol] = {}

    def update(self, token_id: str, mid: float, ts: float, half_life_sec: float) -> None:
        st = self._tokens.get(token_id)
        if st is None:
            self._tokens[token_id] = _TokenVol(mid, ts)
            return
        dt = ts - st.last_ts
        if dt <= 0:
            return
        w = 1.0 - 2.0 ** (-dt / half_life_sec)
        dm = mid - st.last_mid
        st.var_rate = (1.0 - w) * st.var_rate + w * (dm * dm / dt)
        st.last_mid, st.last_ts = mid, ts
        st.samples += 1

    def sigma(self, token_id: str, horizon_sec: float) -> float:
        """Standard deviation of the mid move over `horizon_sec` (0 before two observations)."""
        st = self._tokens.get(token_id)
        if st is None:
            return 0.0
        return math.sqrt(st.var_rate * horizon_sec)
