"""Fault knobs of the sandbox venue, for reliability tests of the clients.

Why a separate object with its own random generator: faults are decided per request / frame by
the server, never by the simulator, so turning a knob cannot change the simulated market (the
event stream of a seed stays the same); and tests flip knobs at run time (in-process or through
`POST /_sandbox/faults`) without restarting anything.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ALLOWED_ERROR_STATUSES = (429, 500, 502, 503)
_ERROR_TEXT = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Faults:
    """Mutable knobs; every field can be set directly or through `update(**fields)`."""

    latency_ms: float = 0.0  # added to every HTTP answer and to every websocket frame
    # e.g. "POST": only these methods' HTTP requests wait `latency_ms` ("" = all; frames always do):
    # a POST that lands after the DELETE sent just behind it (two servers of one venue)
    latency_methods: str = ""
    http_error_rate: float = 0.0  # fraction of HTTP requests answered with `http_error_status`
    http_error_status: int = 503  # 429 (with Retry-After), 500, 502 or 503
    http_error_methods: str = ""  # e.g. "DELETE" or "POST,DELETE": only these methods fail ("" = all)
    http_error_count: int = -1  # only the next N requests picked to fail do fail (-1: no limit)
    ws_drop_rate: float = 0.0  # probability per second that each websocket is dropped
    malformed_rate: float = 0.0  # fraction of websocket frames replaced by a malformed / out-of-range one
    # fraction of successful HTTP answers cut in half (not JSON) *after* the request was applied: a
    # proxy that drops the connection mid-body; the venue acted, the client cannot read what it did
    garbled_answer_rate: float = 0.0
    garbled_answer_methods: str = ""  # e.g. "POST": only these methods' answers are cut ("" = all)
    legacy_markets_enabled: bool = True  # False: Gamma GET /markets answers 410 (switched off upstream)
    rnd: random.Random = field(default_factory=lambda: random.Random(0x5EED), repr=False, compare=False)

    def update(self, **changes: Any) -> Faults:
        """Validate all changes first, then apply them (all or nothing)."""
        names = {f.name for f in fields(self) if f.name != "rnd"}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        new = {**self.as_dict(), **changes}
        for k in ("latency_ms", "ws_drop_rate"):
            if float(new[k]) < 0:
                raise ValueError(f"{k} must be >= 0")
        for k in ("http_error_rate", "malformed_rate", "garbled_answer_rate"):
            if not 0.0 <= float(new[k]) <= 1.0:
                raise ValueError(f"{k} must be within [0, 1]")
        if int(new["http_error_status"]) not in ALLOWED_ERROR_STATUSES:
            raise ValueError(f"http_error_status must be one of {ALLOWED_ERROR_STATUSES}")
        for k, v in changes.items():
            cur = getattr(self, k)
            setattr(self, k, type(cur)(v) if not isinstance(cur, bool) else bool(v))
        return self

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("rnd")
        return d

    # ------------------------------------------------------------------ decisions
    def http_delay(self, method: str) -> float:
        """Seconds this HTTP request waits before the venue acts on it."""
        if self.latency_ms <= 0 or not _method_in(self.latency_methods, method):
            return 0.0
        return self.latency_ms / 1000.0

    def http_error(self, method: str = "") -> tuple[int, dict[str, str], dict[str, str]] | None:
        """(status, body, headers) when this request must fail, else None."""
        if self.http_error_rate <= 0:
            return None
        if not _method_in(self.http_error_methods, method):
            return None
        if self.http_error_count == 0 or self.rnd.random() >= self.http_error_rate:
            return None
        if self.http_error_count > 0:
            self.http_error_count -= 1
        st = self.http_error_status
        headers = {"Retry-After": "1"} if st == 429 else {}
        return st, {"error": _ERROR_TEXT.get(st, "error")}, headers

    def garble(self, method: str, status: int) -> bool:
        """Whether this successful answer is cut (its request was applied all the same)."""
        if self.garbled_answer_rate <= 0 or not 200 <= status < 300:
            return False
        if not _method_in(self.garbled_answer_methods, method):
            return False
        return self.rnd.random() < self.garbled_answer_rate

    def drop_now(self, dt_sec: float) -> bool:
        """Whether one websocket is dropped during the last `dt_sec` seconds."""
        if self.ws_drop_rate <= 0:
            return False
        return self.rnd.random() < 1.0 - math.exp(-self.ws_drop_rate * dt_sec)

    def maybe_malform(self, frame: str) -> str:
        if self.malformed_rate <= 0 or self.rnd.random() >= self.malformed_rate:
            return frame
        return malformed_frame(self.rnd)


def malformed_frame(rnd: random.Random) -> str:
    """One of the broken messages a client must survive: truncated JSON, a price outside (0, 1),
    a negative size, an unknown event type, or a non-JSON text."""
    kind = rnd.randrange(5)
    if kind == 0:
        return '{"event_type": "price_change", "market": "0x'  # truncated
    if kind == 1:
        return json.dumps({"event_type": "price_change", "market": "0xdead", "timestamp": "0",
                           "price_changes": [{"asset_id": "1", "price": "1.5", "size": "10", "side": "BUY",
                                              "hash": "0" * 40, "best_bid": "1.5", "best_ask": "0.2"}]})
    if kind == 2:
        return json.dumps([{"event_type": "book", "market": "0xdead", "asset_id": "1", "timestamp": "0",
                            "hash": "0" * 40, "bids": [{"price": "-0.2", "size": "-5"}], "asks": []}])
    if kind == 3:
        return json.dumps({"event_type": "no_such_event", "payload": [1, 2, 3]})
    return "INVALID MESSAGE"


def _method_in(methods: str, method: str) -> bool:
    """Whether a knob's method list ("POST,DELETE", any case; "" = every method) covers `method`."""
    only = {m.strip().upper() for m in methods.split(",") if m.strip()}
    return not only or method.upper() in only
