"""What the venue paid: liquidity rewards (`GET /rewards/user`) and maker rebates
(`GET /rebates/current`) per market for one day, read back in live mode.

- `GET /rewards/user?date=YYYY-MM-DD` (L2; py-clob-client-v2 `get_earnings_for_user_for_day`,
  which follows the cursor pages) → rows `{date, condition_id, asset_address, maker_address,
  earnings: number, asset_rate}`.
- `GET /rebates/current?date=YYYY-MM-DD&maker_address=0x…` (no authentication; in Polymarket's API
  reference, not in py-clob-client-v2 1.2.1) → a list of `{date, condition_id, asset_address,
  maker_address, rebated_fees_usdc: "decimal string"}`.
- Both are paid at 00:00 UTC for the day before (polymarket-api.md §7). A row that cannot be
  read (no condition id, an amount that is not a finite number ≥ 0) is a problem string and pays
  nothing; several rows of one market add up.
- The venue's day is the venue's clock (`VenueClock`): a sandbox `speed` times faster has its own
  midnights, which the engine follows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)
DAY_SEC = 86400
SETTLE_SEC = 120.0  # venue seconds after 00:00 UTC before a day's payouts are asked for


def venue_date(venue_ts: float) -> str:
    """The UTC day (YYYY-MM-DD) of a venue timestamp (epoch seconds)."""
    return time.strftime("%Y-%m-%d", time.gmtime(venue_ts))


def parse_paid(rows: Any, amount_key: str) -> tuple[dict[str, Decimal], list[str]]:
    """`({condition_id: amount}, problems)` from the rows of one day's answer."""
    problems: list[str] = []
    out: dict[str, Decimal] = {}
    if not isinstance(rows, list):
        return out, [f"payouts: answer is {type(rows).__name__}, not a list"]
    for r in rows:
        if not isinstance(r, Mapping):
            problems.append("payouts: a row is not an object")
            continue
        cid = r.get("condition_id")
        raw = r.get(amount_key)
        if not isinstance(cid, str) or not cid:
            problems.append("payouts: a row without condition_id")
            continue
        try:
            if isinstance(raw, bool) or raw is None:
                raise InvalidOperation
            amt = Decimal(repr(raw)) if isinstance(raw, float) else Decimal(str(raw).strip())
        except (InvalidOperation, ValueError):
            problems.append(f"payouts: {amount_key} of {cid[:20]} unreadable: {str(raw)[:20]!r}")
            continue
        if not amt.is_finite() or amt < 0:
            problems.append(f"payouts: {amount_key} of {cid[:20]} is {amt}: ignored")
            continue
        out[cid] = out.get(cid, ZERO) + amt
    return out, problems


class PayoutSchedule:
    """Which venue day to ask for next: the day before the venue's "now" once its payouts are
    `SETTLE_SEC` old; after a failure again `retry_sec` venue seconds later."""

    def __init__(self, retry_sec: float = 300.0) -> None:
        self.retry_sec = retry_sec
        self.done: set[str] = set()
        self._next_try = 0.0

    def due(self, venue_now: float) -> str | None:
        if venue_now < self._next_try:
            return None
        day = venue_date(venue_now - DAY_SEC - SETTLE_SEC)
        return None if day in self.done else day

    def answered(self, day: str) -> None:
        self.done.add(day)

    def failed(self, venue_now: float) -> None:
        self._next_try = venue_now + self.retry_sec
