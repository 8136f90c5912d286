"""Deterministic replay of recordings through the engine's own code.

What runs is what trades: the recorded frames go through `MarketStream.handle_frame` (the same
parser, book updates, distrust and staleness rules), REST resyncs through
`MarketStream.apply_rest_raw`, books reach `PaperExchange.observe_books/observe_trade` through
`MarketData`'s listeners, and `QuoteCycle.run_once` (quoting, risk, planner, paper fills,
markouts, calibrator, PnL) runs at the recorded cycle times (or on a fixed grid) with the
simulated clock as `now`. Nothing sleeps; the only clock is the recording's.

Determinism: events are applied in the recorded loop order (`seq`), the paper exchange is seeded
and its ids derive from the run id, and the run id is a hash of the inputs (files, window,
markets, parameters, seed), so the same inputs give byte-identical `orders`/`trades` rows. A
re-run of the same replay replaces its earlier rows in the DB.

Rows go to the same tables as paper (`orders`, `trades`, `pnl`, `events`) with `mode = 'replay'`
and `run_id`; one `replay_runs` row holds the summary. A replay never writes
`market_calibration` (the live engine's state), `public_trades` or `book_snapshots`; to `markets`
it adds only the replayed markets the table does not know yet (`_record_markets`: the report's
questions), never a row over the engine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from pydantic import ValidationError

from ..analytics.markouts import HORIZONS, horizon_key
from ..config import PARAM_FIELDS, SEED_MAX, ConfigError, Params, Settings, format_validation_error
from ..domain import Market, Mode
from ..economics.tracker import VenueClock
from ..engine.cycle import QuoteCycle
from ..engine.restore import SessionRows, merge_rows, pair_market, parse_rows, resume, rows_from_json
from ..events import EventKind, Level
from ..execution.paper import PaperExchange, paper_exchange
from ..logsetup import SECRET_FIELDS
from ..store.recording import CHANNELS, TRADE_UPDATES, markets_from_json
from ..store.sink import Sink
from ..strategy.base import Strategy
from ..venue.market_data import MarketData
from ..venue.market_stream import MarketStream, _Conn
from ..venue.wire import MarketResolvedEvent, decode_books
from .recordings import (
    Gap,
    PackedPayloads,
    Problem,
    RecordingError,
    Window,
    iso,
    load_window,
    parse_time,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
REPLAY_MODE = "replay"
# what a recorded row that is JSON but not the record its kind writes raises as it is read (a
# damaged file, a writer of another version): the row is named and skipped (`Replayer._invalid`)
RECORD_ERRORS = (ValueError, KeyError, TypeError, AttributeError, ArithmeticError)
TAGGED = frozenset({"orders", "trades", "pnl", "events", "markouts", "reward_estimates", "settlements"})
NOT_WRITTEN = frozenset({"market_calibration", "public_trades", "book_snapshots", "markets"})
CH_MARKET, CH_REST, CH_UNIVERSE, CH_ENGINE = (CHANNELS.index(c) for c in ("market", "rest", "universe", "engine"))
UNDECODABLE_NAMED = 10  # recorded rows whose payload is no JSON: the first named in the problems, all counted


class _Live:
    """Stands for an open websocket in a replayed connection (`_Conn.ws is not None`)."""


_OPEN = _Live()


class SimClock:
    __slots__ = ("now",)

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ReplayStream(MarketStream):
    """The market stream without sockets: connections and subscriptions follow the recording.

    Recordings without connection events (imported archives) count every book as live."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracking = False
        self.ignored: set[str] = set()  # tokens of markets left out by `--markets`
        self._rconns: dict[int, _Conn] = {}

    def start(self) -> None:  # no resync task: REST snapshots come from the recording
        return None

    async def close(self) -> None:
        self._closed = True

    async def set_assets(self, assets: Iterable[str]) -> None:
        # tokens of markets left out by `--markets` are read like just-unsubscribed ones: no book,
        # not an error (`MarketStream._book`); `ignored` is updated before every call
        self._retired = (set(self._conn_of) - set(assets)) | self.ignored

    def is_live(self, token_id: str) -> bool:
        if not self.tracking:
            return True
        c = self._conn_of.get(token_id)  # `MarketStream.is_live`, inline
        return c is not None and c.ws is not None

    def live_conns(self) -> Mapping[str, _Conn] | None:
        return self._conn_of if self.tracking else None  # (`is_live`'s data, as `MarketStream.live_conns`)

    def request_resync(self, tokens: Iterable[str]) -> None:
        return None  # the recording holds the snapshots the live stream fetched

    def conn(self, n: int) -> _Conn:
        c = self._rconns.get(n)
        if c is None:
            c = self._rconns[n] = _Conn(n)
        return c

    def conn_event(self, kind: str, n: int, assets: list[str]) -> None:
        self.tracking = True
        c = self.conn(n)
        if kind == "sub":
            c.assets.update(assets)
            for a in assets:
                self._conn_of[a] = c
        elif kind == "unsub":
            c.assets.difference_update(assets)
            for a in assets:
                if self._conn_of.get(a) is c:
                    del self._conn_of[a]
        elif kind == "open":
            c.ws = _OPEN  # type: ignore[assignment]
            for a in assets:
                c.assets.add(a)
                self._conn_of[a] = c
        elif kind == "close":
            self.conn_closed(c)

    def new_process(self) -> None:
        """The next engine process's feed: a new stream (the venue's clock as it knows it, its
        venue minutes, its connections), as that process started with."""
        self._venue_max_ms = 0
        self._boundary_ms = 0
        self.forget_connections()

    def forget_connections(self) -> None:
        """After a gap the connection state is unknown: count every book as live again."""
        self.tracking = False
        self._rconns.clear()
        self._conn_of.clear()


class ReplaySink:
    """Tags replay rows (`mode='replay'`, `run_id`), drops what a replay must not write, and keeps
    the run's orders and trades in memory for the summary and for comparisons."""

    KEPT_INSERTS = frozenset({"trades", "markouts", "reward_estimates"})  # the inserted rows it keeps

    def __init__(self, inner: Sink | None, run_id: str) -> None:
        self.inner = inner
        self.run_id = run_id
        self.trades: dict[str, dict[str, Any]] = {}
        self.markouts: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.rewards: list[dict[str, Any]] = []  # `reward_estimates` rows (a later session restores from them)
        self.settlements: dict[str, dict[str, Any]] = {}  # market -> its `settlements` row
        self.rows = 0

    def _tag(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["run_id"] = self.run_id
        if "mode" in out:
            out["mode"] = REPLAY_MODE
        return out

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        if table in NOT_WRITTEN:
            return
        if self.inner is None and table not in self.KEPT_INSERTS:  # counted; its tagged copy would go nowhere
            self.rows += 1  # (`pnl` rows every `pnl_sec`, `events`: a bench's or a sweep's replay without a DB)
            return
        r = self._tag(table, row) if table in TAGGED else dict(row)
        if table == "trades":
            self.trades[r["trade_id"]] = r
        elif table == "markouts":
            self.markouts.append(r)
        elif table == "reward_estimates":
            self.rewards.append(r)
        self.rows += 1
        if self.inner is not None:
            self.inner.insert(table, r)

    def upsert(self, table: str, row: Mapping[str, Any], key: Sequence[str]) -> None:
        if table in NOT_WRITTEN:
            return
        if self.inner is None and table == "orders":  # an order's later rows: its kept row updated in place
            cur = self.orders.get(row["client_id"])
            if cur is not None:  # (what `cur.update(self._tag(...))` does, without the tagged copy)
                cur.update(row)
                cur["run_id"] = self.run_id
                if "mode" in row:
                    cur["mode"] = REPLAY_MODE
                self.rows += 1
                return
        r = self._tag(table, row) if table in TAGGED else dict(row)
        if table == "orders":
            cur = self.orders.get(r["client_id"])
            if cur is None:
                self.orders[r["client_id"]] = r
            else:
                cur.update(r)
        elif table == "settlements":
            self.settlements[str(r["market"])] = r
        self.rows += 1
        if self.inner is not None:
            self.inner.upsert(table, r, key)

    def update(self, table: str, where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        if table in NOT_WRITTEN:
            return
        if table == "trades" and "trade_id" in where and where["trade_id"] in self.trades:
            self.trades[where["trade_id"]].update(values)
        if self.inner is not None:
            self.inner.update(table, where, values)

    def session_rows(self, markets: Iterable[Market]) -> dict[str, list[dict[str, Any]]]:
        """What `repo.load_session_rows` would read back of this run: the rows a restarted engine
        continues from (`engine/restore.py`)."""
        return db_rows(self.trades.values(), self.rewards, self.settlements.values(), markets)


def db_rows(trades: Iterable[Mapping[str, Any]], rewards: Iterable[Mapping[str, Any]],
            settlements: Iterable[Mapping[str, Any]], markets: Iterable[Market] = ()) -> dict[str, list[dict[str, Any]]]:
    """What `repo.load_session_rows` would read back of a DB holding these rows: the fills in
    order, the reward estimates summed per market and venue day (its GROUP BY), the settlements,
    the token pairs of `markets` (and no venue payouts: a replay has none)."""
    by_day: dict[tuple[str, str], Decimal] = {}
    for r in rewards:
        k = (str(r["market"]), str(r.get("venue_date") or ""))
        by_day[k] = by_day.get(k, Decimal(0)) + Decimal(str(r.get("usd") or 0))
    return {"trades": [dict(t) for t in trades],
            "tokens": [{"condition_id": m.condition_id, "yes_token_id": m.yes_token_id,
                        "no_token_id": m.no_token_id} for m in markets],
            "rewards": [{"market": m, "venue_date": d or None, "usd": v} for (m, d), v in by_day.items()],
            "settlements": [dict(r) for r in settlements], "payouts": []}


def rows_from_records(payloads: Iterable[str | None], t0: float) -> SessionRows:
    """What a DB holding the recorded `rows` records (`store.recording.RestoreRowsTee`) would give a
    restart at t0: the fills, reward estimates and settlements of times before t0, each fill with
    the updates of its row recorded after it (its fee and rebate, a live trade's status)."""
    rows: dict[str, list[dict[str, Any]]] = {"trades": [], "reward_estimates": [], "settlements": []}
    updates: list[dict[str, Any]] = []  # a fill's fee, rebate, status: written after its row
    for pay in payloads:
        for table, recorded in json.loads(pay or "{}").items():
            if table in rows:
                rows[table].extend(r for r in recorded if float(r["ts"]) < t0)
            elif table == TRADE_UPDATES:
                updates.extend(recorded)
    by_id = {r["trade_id"]: r for r in rows["trades"] if r.get("trade_id") is not None}
    for u in updates:  # in the order written, as the DB applied them
        r = by_id.get(u.get("trade_id"))
        if r is not None:
            r.update((k, v) for k, v in u.items() if k != "trade_id")
    settlements = {str(r["market"]): r for r in rows["settlements"]}  # a market's last
    # (no token pairs: the replay's own rows, merged with these, add every market of its universes)
    return parse_rows(db_rows(rows["trades"], rows["reward_estimates"], settlements.values()))


@dataclass(repr=False)
class ReplayResult:
    """What `Replayer.run` returns. Its repr is short (the run, its status, how many rows): the
    dataclass's would spell out every order and trade row, and `asyncio.run` builds it, unasked,
    for the task that returned the result (Python 3.11's `signal.getsignal` turns the SIGINT
    handler, a partial naming that task, into a `signal.Handlers` member: the failed lookup's
    message is the handler's repr) twice per run: ≈ 98 M instructions at the end of the bench's
    2-minute replay (≈ 2.9 k per market event of it, under callgrind)."""

    run_id: str
    status: str  # done, interrupted
    summary: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[float] = field(default_factory=list)

    def __repr__(self) -> str:
        return (f"ReplayResult(run_id={self.run_id!r}, status={self.status!r}, {len(self.orders)} orders, "
                f"{len(self.trades)} trades, {len(self.cycles)} cycles, {len(self.problems)} problems)")


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def split_overrides(items: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parameter changes, settings changes) from NAME=VALUE pairs; unknown names and secrets raise."""
    params: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for k, v in items.items():
        name = k.strip().lower().removeprefix("pmm_")
        if name in SECRET_FIELDS:  # (as `--set`: a sweep's `params=` took a private key the grid refused)
            raise ValueError(f"{k}: secrets are read from the environment or .env only")
        if name in PARAM_FIELDS:
            params[name] = v
        elif name in Settings.model_fields:
            settings[name] = v
        else:
            raise ValueError(f"{k}: not a parameter or setting (see env.example and Params)")
    return params, settings


def parse_markets(text: str) -> int | list[str]:
    """`--markets`: a positive count (the top N of the recorded universe) or comma-separated
    condition ids / slugs. ValueError for 0, a negative count or nothing."""
    m = text.strip()
    if m.lstrip("+-").isdigit():
        if int(m) < 1:
            raise ValueError(f"--markets {m}: expected a positive count or comma-separated condition ids/slugs")
        return int(m)
    ids = [x.strip() for x in m.split(",") if x.strip()]
    if not ids:
        raise ValueError(f"--markets {m!r}: expected a positive count or comma-separated condition ids/slugs")
    return ids


def selection(markets: Any) -> int | list[str] | None:
    """The `markets=` of the Python API as the CLI reads it: a string is `--markets` text (a count
    or comma-separated ids / slugs: one slug is one market, not its letters); a count stays a
    count (a bool is none); an empty sequence is refused (it would replay nothing)."""
    if markets is None:
        return None
    if isinstance(markets, bool):
        raise ValueError(f"markets: {markets} (expected a positive count, or condition ids / slugs)")
    if isinstance(markets, str):
        return parse_markets(markets)
    if isinstance(markets, int):
        return markets
    ids = [str(m) for m in markets]
    if not ids:
        raise ValueError("markets: an empty selection (None: every recorded market)")
    return ids


def check_seed(seed: Any) -> int | None:
    """A paper exchange seed given to a replay or sweep: a whole number 0 .. `SEED_MAX`, else
    ValueError naming it (a negative one ended the replay in numpy's "expected non-negative
    integer"; one past 2**63 replayed and then every DB batch failed with an OverflowError)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed: {seed!r} (expected a whole number from 0 to 2**63-1)")
    return seed


def check_markets(window: Window, markets: int | Sequence[str] | None) -> None:
    """A selection that would replay nothing the user meant fails before the replay: a count below
    1 (ValueError), or ids / slugs that no universe recorded for the window names (RecordingError,
    naming them; a window without a recorded universe is not checked here)."""
    if markets is None:
        return
    if isinstance(markets, int):
        if markets < 1:
            raise ValueError(f"markets: {markets} (expected a positive count, or condition ids / slugs)")
        return
    known: dict[str, Market] = {}
    recorded = [pay for _, ch, _, pay in window.preamble if ch == CH_UNIVERSE]  # (the last one before the window)
    recorded += [window.payload[i] for i in np.nonzero(np.asarray(window.channel) == CH_UNIVERSE)[0].tolist()]
    for pay in recorded:
        try:
            got = markets_from_json(json.loads(pay or "[]"))
        except RECORD_ERRORS:  # a corrupt row: the replay names it (`Replayer._undecodable`)
            continue
        for m in got:
            known[m.condition_id] = known[m.slug] = m
    if not known:
        return
    missing = [x for x in markets if x not in known]
    if missing:
        names = sorted({m.slug or m.condition_id for m in known.values()})
        raise RecordingError(
            f"markets {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}: not in the universe recorded "
            f"for {iso(window.t0)} .. {iso(window.t1)} ({len(names)} markets, e.g. {', '.join(names[:3])}: "
            "condition ids or slugs)")


def market_span(window: Window) -> tuple[float, float] | None:
    """The times of the window's first and last market frame (None: it holds none)."""
    kind, ch, n = window.kind, window.channel, len(window)
    first = next((i for i in range(n) if ch[i] == CH_MARKET and kind[i] == "frame"), None)  # from both ends:
    last = next((i for i in range(n - 1, -1, -1) if ch[i] == CH_MARKET and kind[i] == "frame"), None)  # no full pass
    if first is None or last is None:
        return None
    return float(window.ts[first]), float(window.ts[last])


def engine_records(window: Window) -> list[int]:
    """The indexes of the window's engine-channel records (starts, cycles, rows, ...), in order."""
    return np.nonzero(np.asarray(window.channel) == CH_ENGINE)[0].tolist()


def _starts(window: Window, engine: list[int]) -> list[tuple[float, str | None, str | None]]:
    """(time, session, payload) of the engine `start` records a replay of `window` reads (its
    preamble's, whose session is not kept: None, and its own; `engine`: `engine_records(window)`)."""
    out: list[tuple[float, str | None, str | None]] = [
        (ts, None, pay) for ts, ch, kind, pay in window.preamble if ch == CH_ENGINE and kind == "start"]
    for i in engine:
        if window.kind[i] == "start":
            out.append((float(window.ts[i]), window.session[i], window.payload[i]))
    return sorted(out, key=lambda r: r[0])


ROWS_LAG_SEC = 30.0  # how long after a fill's time its `rows` record may come (the next cycle writes it)


def first_session(window: Window, t0: float) -> str | None:
    """The recording session (engine process) whose market data a replay from `t0` trades first:
    that of the first market frame or REST answer at or after `t0` (None: none in the window)."""
    chans = window.channel
    for i in range(int(np.searchsorted(window.ts, t0)), len(window)):
        ch = chans[i]
        if ch == CH_REST or (ch == CH_MARKET and window.kind[i] == "frame"):
            return window.session[i]
    return None


def recorded_start(starts: Sequence[tuple[float, str | None, str | None]], t0: float,
                   session: str | None = None) -> tuple[float, dict[str, Any]] | None:
    """Of a window's engine `start` records (`_starts`), the (time, record) a replay from `t0`
    trades under: that of `session` (`first_session`) when the window holds it, else the last at or
    before `t0`, else the first (a window opening before the session); None for a recording
    without one (imported archives, synthetic recordings)."""
    own = [r for r in starts if session is not None and r[1] == session]
    before = [r for r in starts if r[0] <= t0]
    pick = own[0] if own else before[-1] if before else (starts[0] if starts else None)
    if pick is None:
        return None
    try:
        d = json.loads(pick[2] or "{}")
    except ValueError:
        return None
    return (pick[0], d) if isinstance(d, dict) else None


def grid_end(window: Window, t1: float, stale_sec: float, step: float) -> float:
    """Where grid cycles stop: `t1`, or sooner when the market data ends long before it — once
    every book is stale (`stale_sec`) and every markout is due (the longest horizon), a cycle
    can change nothing; a window reaching days past the data would otherwise cycle for hours."""
    span = market_span(window)
    if span is None:
        return t1
    return min(t1, span[1] + stale_sec + max(HORIZONS) + step)


def coverage_problems(window: Window, stale_sec: float) -> list[str]:
    """What a window asks for beyond its recording's market data: the part before the first frame
    or after the last one, when longer than `stale_sec` (the cycles there see no book or a stale
    one and quote nothing, so fills per minute over the window understate the trading)."""
    t0, t1 = window.t0, window.t1
    span = market_span(window)
    if span is None:
        return [f"no market data recorded in {iso(t0)} .. {iso(t1)}: nothing was quoted"]
    out = []
    a, b = span
    if a - t0 > stale_sec:
        out.append(f"no market data before {iso(a)} ({(a - t0) / 60:.1f} min after the window's start): "
                   "cycles before it quoted nothing")
    if t1 - b > stale_sec:
        out.append(f"no market data after {iso(b)} ({(t1 - b) / 60:.1f} min before the window's end): "
                   "cycles after it saw stale books and quoted nothing")
    return out


def resume_index(window: Window, t0: float) -> int:
    """Where a replay of `window` may start instead of its first row: the last recorded
    checkpoint before `t0` (0 when there is none). Everything before it the replay still applies
    but the market frames and REST answers, whose books the checkpoint holds: an hour's warm-up
    becomes at most the engine's checkpoint interval (5 minutes). It lies strictly before t0 (a
    cycle at t0 runs before the rows stamped t0), and it carries each book's `local_ts` (written
    since 2026-12-02; without it a book's staleness would count from the checkpoint, not from its
    last update, and the replay could quote where the full warm-up would not: then none is used)."""
    kind, pays = window.kind, window.payload
    rest = np.nonzero((window.channel == CH_REST) & (window.ts < t0))[0].tolist()
    for i in reversed(rest):
        if kind[i] == "checkpoint":
            return i if '"local_ts"' in (pays[i] or "") else 0
    return 0


def files_key(window: Window) -> str:
    """The recorded data a replay of `window` uses, as its run id hashes it: per file that gave
    the window rows (warm-up included), its hour/name, the rows used, their first and last ts and
    seq, their payloads' total length and digest (`Window.sources`: the payloads' bytes; their
    lengths alone gave two recordings differing only in a payload's bytes one run id, and a re-run
    of one replaced the other's rows), and a digest of the preamble (the
    universe and engine state recorded before the window). Computed once per replay, not once per
    point. Why not the files' sizes (as before): a later session writing another part into the
    window's hour, or the hour's part growing past the window's end, changed an unchanged
    window's run id, and a re-run added a run instead of replacing its own; rows outside the
    window's span change nothing now, a row inside it (a payload of another length, a ts, a seq,
    a file gone or unreadable) changes the id."""
    parts = [f"{Path(u.file).parent.name}/{Path(u.file).name}:{u.rows}:{u.first_ts!r}:{u.last_ts!r}:"
             f"{u.first_seq}:{u.last_seq}:{u.payload_bytes}:{u.payload_digest};" for u in window.sources]
    pre = hashlib.sha256()
    for ts, ch, kind, pay in window.preamble:  # a few rows: hashed whole
        pre.update(f"{ts!r}:{ch}:{kind}:{-1 if pay is None else len(pay)}:".encode())
        pre.update((pay or "").encode())
    return "".join(parts) + f"preamble:{len(window.preamble)}:{pre.hexdigest()}"


# Settings a replay's rows cannot depend on: where things are written or read from, how the live
# engine reaches the venue, the UI, the recorder, secrets (never hashed), and the seed (hashed on
# its own). Every other setting is in the run id (a new setting is, until it is listed here):
# two replays that can differ never share an id, so one never replaces the other's rows.
NOT_IN_RUN_ID = frozenset({
    "venue", "gamma_url", "clob_url", "clob_ws_url", "db_url", "dashboard_refresh_sec", "writer_flush_sec",
    "writer_max_pending", "writer_max_lag_sec", "disconnect_cancel_sec", "deadman_sec", "lease_ttl_sec",
    "http_timeout_sec", "http_deadline_sec", "retry_after_max_sec", "venue_retries", "venue_backoff_sec",
    "venue_backoff_cap_sec", "sandbox_markets", "sandbox_seed", "sandbox_speed", "sandbox_resolve_every_sec",
    "sandbox_process", "private_key", "api_key", "api_secret", "api_passphrase", "funder", "signature_type",
    "chain_id", "adopt_unknown", "retain_days", "prune_sec", "max_inflight_requests", "cycle_yield_ms",
    "gc_freeze", "log_level", "record", "record_dir", "record_max_gb", "record_min_free_gb", "record_rotate_sec",
    "live_rtt_file",
})


def settings_key(settings: Settings) -> str:
    """The settings beyond the parameters that a replay's rows depend on, as its run id hashes
    them (the latency file by its contents, not its name)."""
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        if name in NOT_IN_RUN_ID or name in PARAM_FIELDS:
            continue
        out[name] = getattr(settings, name)
    path = out.get("paper_latency_file") or ""
    if path:
        try:
            out["paper_latency_file"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            out["paper_latency_file"] = f"unreadable:{path}"
    return json.dumps(out, sort_keys=True, default=str)


def run_id_for(window: Window, markets: Any, params: Params, seed: int, cycles: str, files: str | None = None,
               settings: str = "", span: tuple[float, float] | None = None) -> str:
    """`settings`: `settings_key` of the replay's settings; `span`: the replay's [t0, t1] (default
    the window's: a window read for a longer span serves several replays, each its own id)."""
    t0, t1 = span if span is not None else (window.t0, window.t1)
    h = hashlib.sha256()
    h.update((files_key(window) if files is None else files).encode())
    h.update(json.dumps([t0, t1, markets, params.model_dump(mode="json"), seed, cycles],
                        sort_keys=True, default=str).encode())
    h.update(settings.encode())
    return "rp" + h.hexdigest()[:12]


class ReplayPoint:
    """One parameter set of a replay: its own parameters, paper exchange, quote cycle and sink
    (what it decides, fills and writes, under its own run id). The books, the clock, the universe
    and the window belong to the `Replayer` that runs it, which may run several points in one pass
    over the events (`points=`): they see the same books, and nothing one point does reaches
    another, so each point's rows are those of a replay of it alone."""

    def __init__(self, rp: Replayer, overrides: Mapping[str, Any], sink: Sink | None,
                 strategy: Strategy | None) -> None:
        self.rp = rp
        self.overrides = dict(overrides)
        self.params = rp.settings.params()
        if self.overrides:
            p_over, s_over = split_overrides(self.overrides)  # ValueError naming an unknown name
            if s_over:
                raise ValueError(f"params: {', '.join(sorted(s_over))}: a setting, not a parameter (one replay has "
                                 "one set of settings: settings=load_settings(...), or sweep() over it)")
            try:
                self.params.update(**p_over)
            except ValidationError as exc:
                raise ConfigError(f"params {format_validation_error(exc)}") from None
            self.overrides = p_over
        sel = rp.markets_sel if not isinstance(rp.markets_sel, (list, tuple)) else sorted(rp.markets_sel)
        self.run_id = run_id_for(rp.window, sel, self.params, rp.seed, rp.cycles_mode, rp.files_key, rp.settings_key,
                                 (rp.t0, rp.t1))
        self.strategy = strategy  # a user's strategy object: every market's default in this replay
        if strategy is not None:  # its results differ: so does the run id (≤ 40 chars)
            self.run_id = f"{self.run_id}-{strategy.name}"[:40]
        self.sink = ReplaySink(sink, self.run_id)
        self.sessions = 0  # the recorded engine processes this point has traded through, minus one
        self.cancels_before = 0  # the orders the exchanges of the earlier processes cancelled
        self.exchange = self._new_exchange()
        self.restore_due = False  # a later engine process: it continues from this run's rows first
        self.cycle: QuoteCycle | None = None
        # markets the recorded engine settled from the venue's `/markets` answer (`settled` rows:
        # outside its universe), settled here before the next cycle: (time, market, winner, market)
        self.venue_settled: list[tuple[float, str, str, Market]] = []
        self.minute_hook: Callable[[int], None] | None = None  # the cycle's reward sampler (venue minutes)
        self.strategies: dict[str, tuple[str | None, dict[str, Any]]] = {}  # per-market overrides recorded
        self.problems: list[str] = [str(p) for p in rp.window.problems]
        self.cycle_times: list[float] = []
        self.max_inventory_usd = 0.0
        self.max_inventory_shares = 0.0
        self.killed = False

    def set_strategy(self, cid: str, name: str | None, params: dict[str, Any]) -> None:
        if self.cycle is None:
            self.strategies[cid] = (name, params)
            return
        try:
            self.cycle.set_strategy(cid, name, **params)
        except (ValueError, AttributeError) as exc:
            self.problems.append(f"recorded strategy of {cid} ({name}) not applied: {exc}")

    def _new_exchange(self) -> PaperExchange:
        """The paper exchange of one engine process, as `pmm run paper` builds it: seeded afresh
        (a restarted engine's random draws start over), order ids of its own."""
        rp = self.rp
        session = self.run_id if not self.sessions else f"{self.run_id}.{self.sessions}"
        return paper_exchange(rp.settings.model_copy(update={"sandbox_seed": rp.seed}), self.params, self.sink,
                              clock=rp.clock, session=session)

    def _make_cycle(self) -> QuoteCycle:
        rp = self.rp
        calibration = copy.deepcopy(rp.calibration)  # the recorded start state: each point's own copy
        cycle = self.cycle = QuoteCycle(self.params, self.sink, Mode.PAPER, calibration=calibration,
                                        pnl_sec=rp.settings.pnl_sec, incremental=rp.settings.cycle_incremental,
                                        exchange=self.exchange)
        cycle.default_strategy = self.strategy
        cycle.sample_on_venue_minutes(rp.stream, rp.md.view, self.exchange)  # as the engine does
        self.minute_hook, rp.stream.on_venue_minute = rp.stream.on_venue_minute, rp.on_venue_minute
        if rp.venue_clock is not None:
            cycle.econ.clock = rp.venue_clock
        for cid, (name, params) in self.strategies.items():
            self.set_strategy(cid, name, params)
        return cycle

    def new_process(self, reason: str) -> None:
        """The recorded engine's process ended and another started: this one's orders end with it,
        and the next trades with a new paper exchange and quote cycle that continue from this run's
        rows (positions, PnL, rewards, settlements), as a restarted engine continues from its DB."""
        if self.cycle is None and not self.restore_due:
            return  # nothing traded yet: the first process is still to come
        self.exchange.end_session(reason)
        old = self.exchange
        self.cancels_before += old.cancels
        self.sessions += 1
        self.exchange = self._new_exchange()
        self.exchange.set_markets(self.rp.markets)
        self.rp.md.replace_listener(old.observe_books, self.exchange.observe_books)
        self.rp.md.replace_listener(old.observe_trade, self.exchange.observe_trade)
        self.cycle = None
        self.restore_due = True

    async def _restore(self, now: float) -> None:
        """`restore.resume` into the new process's cycle and exchange, over the rows its DB would
        hold: those the window's first session continued from (`Replayer.base_rows`, when it did),
        then this run's own."""
        self.restore_due = False
        cycle = self._make_cycle()
        rows = parse_rows(self.sink.session_rows(self.rp.known_markets.values()))
        if self.rp.base_rows is not None:
            rows = merge_rows(self.rp.base_rows, rows)
        await resume(rows, cycle, self.exchange, Mode.PAPER, self.rp.markets, now,
                     lambda lvl, kind, msg: cycle.events.emit(lvl, kind, msg, ts=now))

    async def run_cycle(self, now: float, hold: str | None = None,
                        resolutions: Sequence[MarketResolvedEvent] = ()) -> None:
        """The engine's cycle at `now`: first the markets the venue resolved since the last one
        (`market_resolved` frames: cancel, redeem at 1 / 0, a `settlements` row), as the engine's
        `_apply_resolutions` does before each cycle, then the quote cycle."""
        rp = self.rp
        rp.clock.now = now
        if self.restore_due or (self.cycle is None and rp.base_rows is not None):
            await self._restore(now)  # a later process, or a first whose session continued from its DB
        if self.cycle is None:
            self._make_cycle()
        assert self.cycle is not None
        await self.settle(now, resolutions)
        rep = await self.cycle.run_once(now, rp.markets, rp.md.view, self.exchange, hold=hold)
        self.cycle_times.append(now)
        self.max_inventory_usd = max(self.max_inventory_usd, float(self.cycle.totals.pnl.inventory_usd))
        if self.exchange.positions:
            self.max_inventory_shares = max(self.max_inventory_shares, max_abs(self.exchange.positions.values()))
        if rep.kill_requested and not self.killed:
            self.killed = True
            self.cycle.events.emit(Level.ERROR, EventKind.RISK_KILL, "risk limits requested a kill (replay: quoting stops)",
                                   ts=now)
            await self.exchange.cancel_all()

    async def settle(self, now: float, resolutions: Sequence[MarketResolvedEvent]) -> None:
        """The markets resolved since the last cycle, settled (also for a point whose quoting a
        risk kill stopped: it still holds the shares): first those the recorded engine settled
        from the venue's answer (`venue_settled`, at their recorded times), then `market_resolved`."""
        if self.cycle is None:
            return
        done, self.venue_settled = self.venue_settled, []
        for ts, cid, winner, known in done:
            await self.cycle.resolve_market(ts, cid, winner, self.exchange, "closed", known=known)
        for ev in resolutions:  # (a market of the universe is known, as the engine's `_apply_resolutions` passes it)
            ours = next((m for m in self.rp.markets if m.condition_id == ev.market), None)
            await self.cycle.resolve_market(now, ev.market, ev.winning_asset_id or None, self.exchange,
                                            "market_resolved", known=ours)

    def result(self, status: str, wall: float, processed: int) -> ReplayResult:
        rp = self.rp
        end = self.cycle_times[-1] if self.cycle_times else rp.t0
        start = self.cycle_times[0] if self.cycle_times else rp.t0
        sim_sec = max(0.0, end - start)
        trades = sorted(self.sink.trades.values(), key=lambda r: (r["ts"], r["trade_id"]))
        orders = sorted(self.sink.orders.values(), key=lambda r: (r["created_ts"], r["client_id"]))
        events = rp.stream.stats.events
        s: dict[str, Any] = {
            "run_id": self.run_id, "status": status, "from": iso(rp.t0), "to": iso(rp.t1),
            "cycles_mode": rp.cycles_mode, "markets": len(rp.known_markets) or len(rp.markets),  # every one traded
            "cycles": len(self.cycle_times),
            "events": events, "frames": rp.frames, "rows_read": processed,
            "resumed_from": iso(float(rp.window.ts[rp.resume_at])) if rp.resume_at else None,
            "warmup_rows_skipped": rp.skipped,
            # the recorded session continued from its DB, and so did the replay (the PnL includes it)
            "restored": rp.restored,
            "sim_seconds": sim_sec, "wall_seconds": wall,
            "events_per_sec": events / wall if wall > 0 else 0.0,
            "sim_seconds_per_wall_second": sim_sec / wall if wall > 0 else 0.0,
            "placed": sum(1 for o in orders if o["status"] != "REJECTED"),
            "rejected": sum(1 for o in orders if o["status"] == "REJECTED"),
            "fills": len(trades), "fills_per_min": len(trades) / (sim_sec / 60.0) if sim_sec > 0 else 0.0,
            "volume": float(sum((Decimal(str(t["size"])) * Decimal(str(t["price"])) for t in trades), Decimal(0))),
            "max_inventory_usd": self.max_inventory_usd, "max_inventory_shares": self.max_inventory_shares,
            "bad_messages": rp.stream.stats.bad_messages, "killed": self.killed,
            "gaps": len(rp.window.gaps), "problems": len(self.problems),
            "pending_files": len(rp.window.pending),
            "recorded_until": iso(float(rp.window.ts[-1])) if len(rp.window) else None,
        }
        if self.cycle is not None:  # every PnL component the cycle reports (fees, rewards, ... when present)
            for k, v in self.cycle.snapshot().totals.summary().items():
                if k not in ("fills", "fills_per_min", "placed", "open_orders"):
                    s[k] = v
            # every recorded process's cancels, as `placed` counts every process's orders (the
            # cycle's totals are the last process's exchange's)
            s["cancels"] = self.cancels_before + self.exchange.cancels
        s.update(markout_summary(self.sink.markouts))
        s["reward_estimate"] = s.get("rewards")  # the economics' accrued liquidity-reward estimate, when present
        if isinstance(s.get("rewards"), float):  # (`rewards_per_hour` is the rate of the last minute sampled)
            s["rewards_per_hour_avg"] = s["rewards"] / (sim_sec / 3600.0) if sim_sec > 0 else 0.0
        return ReplayResult(self.run_id, status, s, list(self.problems), trades, orders, list(self.cycle_times))


def max_abs(values: Iterable[Decimal]) -> float:
    """`max(abs(float(v)) for v in values)` (non-empty, finite), with one float conversion instead of
    one per value (each through the Decimal's text, ~4 k instructions; every held token every cycle):
    `float` rounds correctly, so it is monotone and odd, and the float of the largest |v| is the
    largest of the floats."""
    return float(max(map(abs, values)))


_BLOCK = 4096  # events per block of `_py`


def _py(values: Any, dtype: type[np.generic], block: int = _BLOCK) -> Iterator[Any]:
    """`values` (a window's array) as Python numbers of `dtype`'s kind, in order: `float(a[i])` /
    `int(a[i])` of each, converted a block at a time (`tolist`: one C call per block instead of a
    numpy scalar boxed per element), so a long window never holds all of them as Python objects.
    (`chain` steps through each block's list in C: a generator resumed per element cost as much.)"""
    return chain.from_iterable(np.asarray(values[k:k + block], dtype=dtype).tolist()
                               for k in range(0, len(values), block))


class Replayer:
    """One replay of [t0, t1]: `run()` is a coroutine (the engine's cycle is async).

    `points`: several parameter sets (each a mapping of overrides on top of `params`) replayed in
    ONE pass over the window (`run_all()`, a result per point in their order): the frames are
    decoded and the books rebuilt once, then every point's paper exchange sees each book change
    and each point's cycle runs at each cycle time, one point after the other. The points share
    nothing they could change (each has its own parameters, exchange, cycle, sink and seeded
    random numbers; the books' views are immutable), so a point's rows are byte for byte those of
    a replay of that point alone (tests/research/test_replay_points.py): a sweep pays for the
    books once per pass instead of once per point. Settings are the pass's (one stream, one grid)."""

    def __init__(self, settings: Settings, t0: float | str, t1: float | str, *,
                 markets: int | Sequence[str] | None = None, params: Mapping[str, Any] | None = None,
                 seed: int | None = None, sink: Sink | None = None, record_dir: str | None = None,
                 cycles: str = "auto", follow_recorded_params: bool = True,
                 progress: bool = False, stop: Callable[[], bool] | None = None,
                 window: Window | None = None, strategy: Strategy | None = None,
                 points: Sequence[Mapping[str, Any]] | None = None, resume: bool = True) -> None:
        self.settings = settings
        self.t0, self.t1 = parse_time(t0), parse_time(t1)
        markets = selection(markets)
        seed = check_seed(seed)
        self.markets_sel = markets
        self.root = record_dir or settings.record_dir
        self.window = window if window is not None else load_window(self.root, self.t0, self.t1)
        if window is not None and (window.t0 > self.t0 or window.t1 < self.t1):
            raise ValueError(f"window: it holds {iso(window.t0)} .. {iso(window.t1)}, not all of this replay's "
                             f"{iso(self.t0)} .. {iso(self.t1)} (load_window(root, t0, t1) for it)")
        # the seed the recorded session's paper exchange drew with (the replaying shell's
        # PMM_SANDBOX_SEED used to win over it), unless one is given
        self.engine_idx = engine_records(self.window)  # read three times below: found once
        self.starts = _starts(self.window, self.engine_idx)  # the engine's `start` records (none: an import, a synthetic recording)
        self.session = first_session(self.window, self.t0)
        picked = recorded_start(self.starts, self.t0, self.session)
        self.started = picked[1] if picked else None
        self.started_at = picked[0] if picked else None
        # the window opens inside that session (its trading before t0 is not replayed)
        self.inside_session = picked is not None and picked[0] < self.t0 - 1.0
        # the rows that session continued from (its DB), and, for a window inside it, those it wrote
        # before t0: the replay continues from them (`restored`: what they are, for the summary)
        self.restored: str | None = None
        self.base_rows = self._base_rows()
        rec_seed = self.started.get("seed") if self.started and follow_recorded_params else None
        self.seed = int(seed) if seed is not None else (
            rec_seed if isinstance(rec_seed, int) and not isinstance(rec_seed, bool) else settings.sandbox_seed)
        check_markets(self.window, markets)
        has_cycles = any(self.window.kind[i] == "cycle" for i in self.engine_idx)
        if cycles not in ("auto", "recorded", "grid"):
            raise ValueError(f"cycles={cycles!r}: expected auto, recorded or grid")
        if cycles == "recorded" and not has_cycles:
            raise RecordingError("cycles=recorded: the window holds no recorded engine cycles")
        self.cycles_mode = "recorded" if (cycles == "recorded" or (cycles == "auto" and has_cycles)) else "grid"
        self.follow_recorded_params = follow_recorded_params
        self.progress = progress
        self.stop = stop or (lambda: False)
        if points is not None and not points:
            raise ValueError("points: at least one parameter set")
        if strategy is not None and points is not None and len(points) > 1:  # it keeps state per market
            raise ValueError("strategy: one strategy object cannot trade several points (give each its own replay)")
        self.clock = SimClock(self.window.ts[0] if len(self.window) else self.t0)
        self.md = MarketData(None, "ws://replay.invalid", ReplaySink(None, ""), stale_sec=settings.stale_sec,
                             clock=self.clock, stream_cls=ReplayStream)  # its sink: rows a replay never writes
        self.stream: ReplayStream = self.md.stream  # type: ignore[assignment]
        self.calibration: dict[str, dict[str, Any]] | None = None  # the recorded run's, at its start
        self.venue_clock: VenueClock | None = None  # the recorded run's reward-sampling clock
        self.files_key = files_key(self.window)  # (every point's run id hashes it)
        self.settings_key = settings_key(settings)  # (and it)
        # the warm-up starts at the last checkpoint before t0, when the window holds one
        self.resume_at = resume_index(self.window, self.t0) if resume else 0
        self.skipped = 0  # market frames and REST answers of the warm-up the checkpoint made unnecessary
        self.undecodable = 0  # recorded rows (other than frames) whose payload is no JSON: skipped
        # the stream checks timestamps against it from the first frame, as the engine's does
        self.stream.venue_clock = lambda now: (self.venue_clock or VenueClock()).to_venue(now)
        base = dict(params or {})
        self.points = [ReplayPoint(self, {**base, **pt}, sink, strategy) for pt in (points or [{}])]
        for msg in coverage_problems(self.window, settings.stale_sec) + self._start_problems():
            for p in self.points:
                p.problems.append(msg)
        for p in self.points:
            self.md.add_listener(on_books=p.exchange.observe_books, on_trade=p.exchange.observe_trade)
        self.markets: list[Market] = []
        self.known_markets: dict[str, Market] = {}  # every market of every universe seen (restores need their tokens)
        self.universe_seen = False
        self.events = 0
        self.frames = 0

    def _base_rows(self) -> SessionRows | None:
        first = self.started
        if not first or "restored_rows" not in first:  # an import, a synthetic or an older build's recording
            return None
        try:
            start = rows_from_json(first["restored_rows"]) if isinstance(first["restored_rows"], dict) else None
            before = self._rows_before_t0() if self.inside_session else None
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            log.warning("replay: the recorded session's rows are unreadable (%s: %s): it starts flat",
                        type(exc).__name__, exc)
            return None
        if before is None:
            self.restored = first.get("restored") if start is not None else None
            return start
        n = len(before.trades)
        self.restored = f"{n} fill(s) of the session before the window" + (
            f"; at its start, {first.get('restored')}" if start is not None and first.get("restored") else "")
        return before if start is None else merge_rows(start, before)

    def _rows_before_t0(self) -> SessionRows:
        """The rows the window's first session wrote for times before t0 (`rows` records: fills,
        reward estimates, settlements, each by its own time: a fill is written at the cycle after
        it, so a few seconds of records after t0 are read too), with the updates of those fills'
        rows written by then (fee and rebate at once, a live trade's FAILED status later)."""
        late = self.t0 + ROWS_LAG_SEC
        got: list[str | None] = [pay for ts, ch, kind, pay in self.window.preamble
                                 if ch == CH_ENGINE and kind == "rows" and self.started_at is not None
                                 and self.started_at <= ts < late]
        w = self.window
        for i in self.engine_idx:
            if w.kind[i] == "rows" and w.session[i] == self.session and float(w.ts[i]) < late:
                got.append(w.payload[i])
        return rows_from_records(got, self.t0)

    def _start_problems(self) -> list[str]:
        """Where the replay cannot start as the recorded engine did: inside a session (from its
        positions and PnL at t0 when the recording holds its rows, but not from its resting orders;
        from flat when it does not), or at a session that continued positions from its DB
        (`restored` in its start record) whose rows the recording lacks (an older build's: a newer
        one records them, `restored_rows`, and the replay continues from them)."""
        out = []
        first = self.started
        if self.inside_session:
            at = iso(self.started_at) if self.started_at is not None else "?"
            if self.base_rows is not None:
                out.append(f"the window starts inside the engine session started at {at}: it continues from that "
                           f"session's positions and PnL at {iso(self.t0)} ({self.restored}), but the orders resting "
                           "then are placed afresh at its first cycle (their queue places, and the fill calibration "
                           "since the session's start, are not the session's): the first fills may differ")
            else:
                out.append(f"the window starts inside the engine session started at {at}: it trades from "
                           f"flat (that session's positions, PnL and fills before {iso(self.t0)} are not replayed: "
                           "its recording, made by an older build, does not hold them; a window from the session's "
                           "start has them)")
        elif first and first.get("restored") and self.base_rows is None:
            out.append(f"the recorded session continued from its DB ({first['restored']}); the replay starts flat "
                       "(positions and PnL differ from that session's: its recording does not hold the rows)")
        return out

    # the first (in a one-point replay, the only) point's, for callers of one replay
    @property
    def run_id(self) -> str:
        return self.points[0].run_id

    @property
    def params(self) -> Params:
        return self.points[0].params

    @property
    def sink(self) -> ReplaySink:
        return self.points[0].sink

    @property
    def problems(self) -> list[str]:
        return self.points[0].problems

    @property
    def killed(self) -> bool:
        return all(p.killed for p in self.points)

    def on_venue_minute(self, boundary_ms: int) -> None:
        """The stream's venue-minute hook: every point's reward sampler, each failure on its own
        (as the stream does for its one hook)."""
        for p in self.points:
            if p.minute_hook is not None:
                try:
                    p.minute_hook(boundary_ms)
                except Exception:  # noqa: BLE001 - a sampler's failure never costs a frame
                    log.exception("venue minute hook failed")

    # ---------------------------------------------------------------- universe
    def _select(self, markets: list[Market]) -> list[Market]:
        sel = self.markets_sel
        if sel is None:
            chosen = markets
        elif isinstance(sel, int):
            chosen = markets[:sel]
        else:
            want = set(sel)
            chosen = [m for m in markets if m.condition_id in want or m.slug in want]
        keep = {t for m in chosen for t in m.token_ids}
        self.stream.ignored |= {t for m in markets for t in m.token_ids if t not in keep}
        self.stream.ignored -= keep
        return chosen

    async def _on_universe(self, payload: str, ts: float, session: str | None = None) -> None:
        """A recorded universe. One that is JSON but no list of markets (a damaged file, a writer of
        another version) is named (`_invalid`) and skipped: the universe stays as it
        was (it used to end the replay in its AttributeError / TypeError)."""
        try:
            recorded = markets_from_json(json.loads(payload))
        except json.JSONDecodeError:
            raise  # (the caller names the row: `_undecodable`)
        except RECORD_ERRORS as exc:
            self._invalid(ts, CH_UNIVERSE, "universe", session, exc)
            return
        fresh = self._select(recorded)
        for p in self.points:
            if self.universe_seen:
                gone = {m.condition_id for m in self.markets} - {m.condition_id for m in fresh}
                for cid in sorted(gone):  # a market leaving the universe takes its quotes with it
                    await p.exchange.cancel_market(cid)
            else:
                p.exchange.set_markets(fresh)
        self.universe_seen = True
        self.markets = fresh
        self.known_markets.update((m.condition_id, m) for m in fresh)
        await self.md.set_markets(fresh)

    # ---------------------------------------------------------------- cycles
    async def _cycle(self, now: float, hold: str | None = None, points: list[ReplayPoint] | None = None) -> None:
        """The cycle at `now` of `points` (default: every point not killed), in the points' order;
        each point settles the markets resolved since the last cycle first."""
        resolutions = self.md.pop_resolutions()
        for p in self.points:
            if (not p.killed) if points is None else (p in points):
                await p.run_cycle(now, hold, resolutions)
            elif resolutions:  # a point a risk kill stopped still holds its shares
                self.clock.now = now
                await p.settle(now, resolutions)

    def _gap(self, g: Gap) -> None:
        """Never apply a delta across a gap: every book waits for its next snapshot."""
        msg = str(g)
        for p in self.points:
            if not any(q.endswith(msg) for q in p.problems):  # (a dead writer's gap: the window named it, with its file)
                p.problems.append(msg)
        log.warning("replay: %s", msg)
        for b in self.md.books.values():
            b.synced = False
            b.needs_resync = True
        self.stream.forget_connections()

    def _checkpoint(self, payload: str, now: float, start: bool = False) -> None:
        """A recorded checkpoint (every synced book, as the engine held it): it syncs the books
        still waiting for a snapshot (after a gap); `start`: the one the replay starts from
        (`resume_index`), which every book of the window's markets is rebuilt from — at the local
        time of its last update (`local_ts`) when recorded, as if its earlier frames had been
        replayed — and the books it leaves out wait for their next snapshot, as in the engine."""
        touched: set[str] = set()
        snaps, errors = decode_books(payload)
        for p in self.points:
            p.problems.extend(f"checkpoint: {e}" for e in errors[:10])
        local: dict[str, float] = {}
        if start:
            got = json.loads(payload)
            for d in got if isinstance(got, list) else ():  # (one that is no list: `decode_books` said so)
                if isinstance(d, dict) and isinstance(d.get("local_ts"), (int, float)):
                    local[str(d.get("asset_id"))] = float(d["local_ts"])
        for snap in snaps:
            b = self.md.books.get(snap.asset_id)
            if b is not None and (start or not b.synced) and b.apply_snapshot(snap, ts=local.get(snap.asset_id, now)):
                touched.add(b.token_id)
        if touched and self.stream.on_books is not None:
            self.stream.on_books(touched)

    def _undecodable(self, ts: float, ch: int, kind: str, session: str | None, exc: ValueError) -> None:
        """A recorded row (other than a market frame: the stream counts those) whose payload is no
        JSON, a corrupt file's: skipped, the file and the row named in the problems (the first
        `UNDECODABLE_NAMED`; all counted). It used to end the replay in a JSONDecodeError."""
        self._name_row(ts, ch, kind, session, f"is no JSON ({str(exc)[:200]}): skipped")

    def _invalid(self, ts: float, ch: int, kind: str, session: str | None, exc: Exception,
                 then: str = "skipped") -> None:
        """A recorded row that is JSON but not the record its kind writes (a damaged file, a writer
        of another version): named and counted as an undecodable row is, with the exception's type
        and message on one line; `then` says what the replay did instead."""
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        self._name_row(ts, ch, kind, session, f"is no valid record ({detail[:200]}): {then}")

    def _name_row(self, ts: float, ch: int, kind: str, session: str | None, said: str) -> None:
        """`<its file>: the <kind> row at <time> <said>` among every point's problems and in the
        log, for the first `UNDECODABLE_NAMED` rows; all counted (`undecodable`)."""
        self.undecodable += 1
        if self.undecodable > UNDECODABLE_NAMED:
            return
        name = CHANNELS[ch]
        where = f"the {name} row recorded before the window"
        if session is not None:
            where = next((u.file for u in self.window.sources if u.first_ts <= ts <= u.last_ts and (
                Path(u.file).name == f"{name}-{session}.parquet" or Path(u.file).name.startswith(f"{name}-{session}-"))),
                f"{name} channel of session {session}")
        msg = f"{where}: the {kind} row at {iso(ts)} {said}"
        log.warning("replay: %s", msg)
        for p in self.points:
            p.problems.append(msg)

    # ---------------------------------------------------------------- main loop
    async def run(self) -> ReplayResult:
        """The replay of a one-point `Replayer` (several points: `run_all`)."""
        if len(self.points) != 1:
            raise ValueError(f"this replay has {len(self.points)} points: run_all() returns their results")
        return (await self.run_all())[0]

    def drop_window(self) -> None:
        """Let go of the window once the results are taken (a sweep's pass does): this replayer,
        its points and its stream's hooks refer to each other, so without this the window (up to
        1 GiB; its payload buffer is the next window's, `recordings._SpareBuffer`) lives until the
        collector's next full pass, not until its last user is done. Reading `window` fails after."""
        del self.window

    async def run_all(self) -> list[ReplayResult]:
        """One pass over the window for every point; a result per point, in their order."""
        w = self.window
        n = len(w)
        stream, clock = self.stream, self.clock
        handle = stream.handle_frame
        grid = self.cycles_mode == "grid"
        step = self.settings.quote_refresh_sec
        next_grid = self.t0
        last_grid = grid_end(w, self.t1, self.settings.stale_sec, step) if grid else self.t1
        if last_grid < self.t0:  # (it used to say "cycles stopped at" a time before the window's start)
            for p in self.points:
                p.problems.append(f"no cycles: the recorded market data ends before the window starts (books stale "
                                  f"from {iso(last_grid)}); nothing to trade in this window")
        elif last_grid < self.t1:
            for p in self.points:
                p.problems.append(f"cycles stopped at {iso(last_grid)}, {(self.t1 - last_grid) / 60:,.1f} min before the "
                                  "window's end: every book was stale and every markout due, nothing could change")
        status = "done"
        bar = None
        if self.progress:
            try:
                from tqdm import tqdm

                bar = tqdm(total=n, unit="ev", unit_scale=True, desc=f"replay {self.run_id}", file=sys.stderr,
                           disable=not sys.stderr.isatty())
            except ImportError:  # pragma: no cover - tqdm is a base dependency
                bar = None
        wall0 = time.perf_counter()
        kinds, pays = w.kind, w.payload
        frame_of = pays.raw if isinstance(pays, PackedPayloads) else pays.__getitem__  # (a frame's bytes, no str)
        sess, frame_session = w.session, None
        rconns = stream._rconns  # (`stream.conn`'s dict: cleared, never replaced)
        engine_sessions = bool(self.starts)  # the engine's own recordings (an import's sessions are no processes)
        gaps = w.gap_before
        resume = self.resume_at
        i = 0
        try:
            for ts, ch, kind, pay in w.preamble:  # the state recorded before the window's first row
                clock.now = ts
                try:
                    if ch == CH_UNIVERSE:
                        await self._on_universe(pay or "[]", ts)
                    elif ch == CH_ENGINE:
                        await self._engine_event(kind, pay, ts)
                except json.JSONDecodeError as exc:
                    self._undecodable(ts, ch, kind, None, exc)
            # each event's time, channel and connection as Python numbers, a block at a time (`_py`):
            # indexing the arrays made a numpy scalar per read (~0.4 µs an event), the values equal
            for i, ts, ch, cn in zip(range(n), _py(w.ts, np.float64), _py(w.channel, np.int64), _py(w.conn, np.int64)):
                if i < resume:  # the warm-up before the starting checkpoint: market data it supersedes
                    if (ch == CH_MARKET and kinds[i] == "frame") or ch == CH_REST:
                        if i in gaps:
                            self._gap(gaps[i])
                        self.skipped += 1
                        continue
                if i & 63 == 0:  # Ctrl-C (`stop`) is seen within 64 events, and before every grid cycle
                    if self.stop():
                        status = "interrupted"
                        break
                    if i & 1023 == 0:
                        if bar is not None and i:
                            bar.update(1024)
                        # the loop's other tasks run (a notebook kernel's engine and widgets), and a
                        # cancel (asyncio.run's Ctrl-C, a task.cancel()) lands here: see below
                        await asyncio.sleep(0)
                if i in gaps:  # before the grid cycles inside the gap: they must not see the old books
                    self._gap(gaps[i])
                if grid and ts >= next_grid and self.universe_seen and not self.killed:
                    live = [p for p in self.points if not p.killed]  # a kill ends a point's cycles after this catch-up
                    while next_grid <= ts and next_grid <= last_grid:
                        if self.stop():
                            status = "interrupted"
                            break
                        await self._cycle(next_grid, None, live)
                        next_grid += step
                    if status == "interrupted":
                        break
                clock.now = ts
                # the market data (a frame, or a REST answer, which may come first) of another engine process
                if engine_sessions and sess[i] != frame_session and (
                        ch == CH_REST or (ch == CH_MARKET and kinds[i] == "frame")):
                    if frame_session is not None:
                        self._new_process(ts)
                    frame_session = sess[i]
                try:
                    if ch == CH_MARKET:
                        kind = kinds[i]
                        if kind == "frame":
                            self.frames += 1
                            c = rconns.get(cn)  # (`stream.conn(cn)`, its lookup inline: per frame)
                            handle(frame_of(i) or "", c if c is not None else stream.conn(cn))
                        else:  # a connection's event: the asset ids it named
                            assets = json.loads(pays[i] or "[]")
                            if isinstance(assets, list) and all(isinstance(a, str) for a in assets):
                                stream.conn_event(kind, cn, assets)
                            else:
                                self._invalid(ts, ch, kind, sess[i], TypeError("not a list of asset ids"))
                    elif ch == CH_REST:
                        if kinds[i] == "checkpoint":
                            self._checkpoint(pays[i] or "[]", ts, start=i == resume and resume > 0)
                        else:
                            stream.apply_rest_raw(pays[i] or "[]", ts)
                    elif ch == CH_UNIVERSE:
                        await self._on_universe(pays[i] or "[]", ts, sess[i])
                    elif ch == CH_ENGINE:
                        await self._engine_event(kinds[i], pays[i], ts, sess[i])
                        if kinds[i] == "cycle" and not grid and self.t0 <= ts <= self.t1 and self.universe_seen:
                            await self._cycle(ts, self._hold_of(pays[i], ts, sess[i]))
                except json.JSONDecodeError as exc:
                    self._undecodable(ts, ch, str(kinds[i]), sess[i], exc)
            else:
                i = n
            while grid and status == "done" and next_grid <= last_grid and self.universe_seen and not self.killed:
                if self.stop():
                    status = "interrupted"
                    break
                await self._cycle(next_grid)
                next_grid += step
        except KeyboardInterrupt:
            status = "interrupted"
        except asyncio.CancelledError:
            # Ctrl-C under asyncio.run (it cancels the main task) or a cancel from the caller: stop
            # here as `stop` does, with the partial result (returned, the task's cancel withdrawn:
            # asyncio.run then returns it instead of raising, as the docs promise a replay does)
            status = "interrupted"
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            if bar is not None:
                bar.update(max(0, i - bar.n))
                bar.close()
        if self.undecodable > UNDECODABLE_NAMED:
            for p in self.points:
                p.problems.append(f"{self.undecodable:,} recorded rows in all were no JSON or no valid record and "
                                  f"skipped (the first {UNDECODABLE_NAMED} named above)")
        for p in self.points:
            await p.exchange.cancel_all()  # like the engine's shutdown: nothing stays open
        self._final_pnl(min(clock.now, self.t1))  # the `pnl` table ends where the summary does
        wall = time.perf_counter() - wall0
        return [p.result(status, wall, i) for p in self.points]

    async def _engine_event(self, kind: str, pay: str | None, ts: float, session: str | None = None) -> None:
        """A recorded engine event other than a cycle (`_apply_engine_event`). One whose payload is
        JSON but not the record its kind writes (a venue clock that is no finite number, a strategy
        without its market, parameters out of range: a writer of another version, a damaged file)
        is named like an undecodable row and skipped; it used to end the replay in its exception."""
        try:
            await self._apply_engine_event(kind, pay, ts)
        except json.JSONDecodeError:
            raise  # (the caller names the row: `_undecodable`)
        except RECORD_ERRORS as exc:
            self._invalid(ts, CH_ENGINE, kind, session, exc)

    async def _apply_engine_event(self, kind: str, pay: str | None, ts: float) -> None:
        """Parameter changes (each point keeps its own overrides), the recorded start state, the
        venue clock, a market's strategy, an all-orders cancel outside a cycle (a pause), the stop."""
        if kind == "params" and self.follow_recorded_params:
            recorded = json.loads(pay or "{}")
            for p in self.points:
                changes = {k: v for k, v in recorded.items() if k not in p.overrides}
                if changes:
                    p.params.update(**changes)
        elif kind == "start":
            start = json.loads(pay or "{}")
            if any(p.cycle is None for p in self.points):  # a start before the first cycle: its state is the one
                self.calibration = start.get("calibration") or None
            for p in self.points:
                if self.follow_recorded_params:  # the parameters the session started with (a session's
                    # own shell, not the replaying one's; an earlier session's changes do not leak in)
                    recorded = start.get("params") if isinstance(start.get("params"), dict) else {}
                    changes = {k: v for k, v in recorded.items() if k in PARAM_FIELDS and k not in p.overrides}
                    if changes:
                        p.params.update(**changes)
                if p.cycle is None:
                    for cid, (name, params) in (start.get("strategies") or {}).items():
                        p.set_strategy(cid, name, params or {})
        elif kind == "venue_clock":
            self.venue_clock = VenueClock.from_json(json.loads(pay or "{}"))
            for p in self.points:
                if p.cycle is not None:
                    p.cycle.econ.clock = self.venue_clock
        elif kind == "strategy":
            ev = json.loads(pay or "{}")
            for p in self.points:
                p.set_strategy(ev["market"], ev.get("strategy"), ev.get("params") or {})
        elif kind == "settled":  # the engine settled a market outside its universe from the venue's answer
            ev = json.loads(pay or "{}")
            cid, winner, yes, no = ev["market"], ev["winner"], ev["yes_token_id"], ev["no_token_id"]
            if not all(isinstance(x, str) and x for x in (cid, winner, yes, no)):
                raise TypeError("market, winner and token ids are no ids")
            known = self.known_markets.get(cid) or pair_market(cid, yes, no)
            for p in self.points:
                p.venue_settled.append((ts, cid, winner, known))
        elif kind == "cancel_all":  # the engine cancelled outside a cycle (a pause): at the same instant
            self.clock.now = ts
            for p in self.points:
                if p.cycle is not None:
                    await p.exchange.cancel_all()
        elif kind == "stop":  # the recorded session's end: its orders cancelled, its last `pnl` rows
            self._end_session(ts, "engine stopped")
            self._final_pnl(ts)

    def _hold_of(self, pay: str | None, ts: float, session: str | None) -> str | None:
        """A recorded cycle's hold (why it quoted nothing: a pause, a fault), None for none. A
        payload that is JSON but holds no such text is named and the cycle runs without a hold
        (it ran in the recorded engine); it used to end the replay in an AttributeError."""
        got = json.loads(pay) if pay else None
        if got is None:
            return None
        hold = got.get("hold") if isinstance(got, dict) else got
        if hold is None or isinstance(hold, str):
            return hold
        self._invalid(ts, CH_ENGINE, "cycle", session, TypeError("its hold is no text"), then="the cycle runs without a hold")
        return None

    def _end_session(self, ts: float, reason: str) -> None:
        """The recorded engine's process ended: every point's orders end with it (`end_session`)."""
        self.clock.now = ts
        for p in self.points:
            if p.cycle is not None:
                p.exchange.end_session(reason)

    def _new_process(self, ts: float) -> None:
        """The first market data of another engine process (a restart; after a kill -9, the only
        sign of it): the one before ended and its orders with it; the new one starts with empty
        books and its own feed (a new embedded sandbox's clock may start behind the old one's:
        its snapshots used to be refused as older, the books stale for the whole session), and
        every point continues in a new exchange and cycle from its own rows (`ReplayPoint.new_process`)."""
        self.clock.now = ts
        for p in self.points:
            p.new_process("engine restarted: paper orders die with their process")
        for b in self.md.books.values():
            b.synced = False
            b.needs_resync = False
            b.venue_ts_ms = 0
            b.hash = ""
        self.stream.new_process()

    def _final_pnl(self, ts: float) -> None:
        for p in self.points:
            if p.cycle is not None:
                p.cycle.final_pnl(ts)


def markout_summary(markouts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean markout (USD per fill and total) per horizon, and the total realized spread, from
    `markouts` rows (horizon 0: the realized spread). No rows (a run without fills): no markout
    keys, and the realized spread None (unknown, as the markouts are: not a spread of 0)."""
    sums: dict[float, list[float]] = {}
    rs: list[float] = []
    for m in markouts:
        usd = float(m.get("markout_usd") or 0.0)
        if float(m["horizon_sec"]) == 0:
            rs.append(usd)
        else:
            sums.setdefault(float(m["horizon_sec"]), []).append(usd)
    out: dict[str, Any] = {}
    for h, vals in sorted(sums.items()):  # by horizon: 5s, 30s, 120s
        k = horizon_key(h)
        out[f"markout_{k}_usd"] = sum(vals)
        out[f"markout_{k}_mean_usd"] = sum(vals) / len(vals)
    out["realized_spread_usd"] = sum(rs) if rs else None
    return out


# ------------------------------------------------------------------------------- DB plumbing
def _clear_run(db_url: str, run_id: str) -> None:
    """A re-run of the same replay (same id) replaces its earlier rows."""
    import sqlalchemy as sa

    from ..store.db import make_engine
    from ..store.schema import replay_runs

    eng = make_engine(db_url)
    try:
        with eng.begin() as c:
            for t in sorted(TAGGED):
                c.execute(sa.text(f"DELETE FROM {t} WHERE run_id = :r"), {"r": run_id})
            c.execute(replay_runs.delete().where(replay_runs.c.run_id == run_id))
    finally:
        eng.dispose()


def _record_markets(db_url: str, rec: Any, markets: Sequence[Market], ts: float) -> None:
    """The replayed markets the DB's `markets` table does not know (by condition id), written as
    one snapshot at `ts` (the replay's start; ranks in the recorded universe's order among them):
    `pmm report --mode replay` reads its `question` column there, and a replay into a fresh DB
    (`--db-url`) left it empty. A market the table knows is never written again (the engine's
    own rows, from Gamma, are at least as good as the recording's copy; a snapshot log has no
    row to overwrite). A failure only costs the report its questions: logged, never raised."""
    import sqlalchemy as sa

    from ..store.db import make_engine
    from ..store.schema import markets as mk

    if not markets:
        return
    try:
        eng = make_engine(db_url)
        try:
            with eng.connect() as c:
                known = set(c.execute(sa.select(mk.c.condition_id).distinct()
                                      .where(mk.c.condition_id.in_([m.condition_id for m in markets]))).scalars())
        finally:
            eng.dispose()
        rec.markets([m for m in markets if m.condition_id not in known], ts)
    except Exception:  # noqa: BLE001 - the run's rows matter more than its questions
        log.warning("replay: could not write the replayed markets' questions to `markets`", exc_info=True)


RUN_LEASE_TTL_SEC = 30.0


class RunLease:
    """A replay's claim on its run id in one DB (a row of `engine_lease` named `replay:<run id>`,
    the engine's own lease mechanism): a second replay of the same inputs into the same DB, while
    the first runs, is refused instead of both deleting and writing the same run's rows. A thread
    renews it (the replay keeps the event loop busy); a crashed replay's claim expires after
    `RUN_LEASE_TTL_SEC`."""

    def __init__(self, db_url: str, run_id: str) -> None:
        from ..engine.lease import Lease
        from ..store.db import make_engine

        self.db = make_engine(db_url)
        self.lease = Lease(self.db, RUN_LEASE_TTL_SEC, name=f"replay:{run_id}")
        self.run_id = run_id
        self._stop = threading.Event()
        self._lock = threading.Lock()  # an acquire still running on its thread when release comes (Ctrl-C)
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        with self._lock:
            if self._stop.is_set():  # released before it ran: nothing to claim
                return
            if not self.lease.try_acquire():
                row = self.lease.read()
                who = row.owner.rsplit(":", 1)[0] if row else "another process"
                raise RecordingError(f"replay {self.run_id} is being written into this DB by another replay "
                                     f"(host:pid {who}): the same inputs twice would mix their rows; wait for it to "
                                     "end, or write to another DB (--db-url)")
            self._thread = threading.Thread(target=self._renew, name=f"pmm-replay-lease-{self.run_id}", daemon=True)
            self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(RUN_LEASE_TTL_SEC / 3):
            try:
                self.lease.renew()
            except Exception:  # a DB hiccup: the next renewal tries again (the TTL leaves two more)
                log.warning("replay %s: could not renew its claim on the run id", self.run_id, exc_info=True)

    def release(self) -> None:
        """Give the claim up (if it was taken); always safe to call, once."""
        self._stop.set()
        with self._lock:
            if self._thread is not None:
                self._thread.join(timeout=10)
            try:
                if self.lease.held:
                    self.lease.release()
            finally:
                self.db.dispose()


async def _to_the_end(fn: Callable[[], None]) -> None:
    """`fn()` on a thread, off the event loop; a cancel of this await (a second Ctrl-C) waits for
    it to finish before it goes on: a replay's last rows, its status and its claim reach the DB."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if not done.done():
            done.set_result(None) if exc is None else done.set_exception(exc)

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the awaiting task, not lost on this thread
            loop.call_soon_threadsafe(settle, exc)
        else:
            loop.call_soon_threadsafe(settle, None)

    t = threading.Thread(target=run, name="pmm-replay-end", daemon=True)
    t.start()
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        t.join()
        raise
    t.join()


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))


def check_db_url(url: str) -> None:
    """A database a replay's or sweep's rows can go to: not an in-memory SQLite one, whose every
    connection (the schema's, the run's claim, the writer's) is a database of its own, gone when
    the command ends (`pmm replay --db-url sqlite://` ended in "no such table: engine_lease")."""
    from ..config import ConfigError
    from ..store.db import in_memory

    if in_memory(url):
        raise ConfigError(f"database {url}: in memory, the rows would be lost (each connection has a database of "
                          "its own, gone at the end): give a file, e.g. sqlite:///replays.db (the Python API: "
                          "write_db=False / write=False for no rows)")


async def replay_async(settings: Settings, t0: float | str, t1: float | str, *, db_url: str | None = None,
                       write_db: bool = True, **kw: Any) -> ReplayResult:
    """One replay; with `write_db` its rows go to `db_url` (default `settings.db_url`)."""
    if not write_db:
        return await Replayer(settings, t0, t1, **kw).run()
    from ..store.migrate import upgrade
    from ..store.recorder import DbRecorder
    from ..store.writer import BatchWriter

    url = db_url or settings.db_url
    check_db_url(url)
    probe = Replayer(settings, t0, t1, **kw)  # bad inputs fail before the DB is touched (no empty DB left)
    await asyncio.to_thread(upgrade, url)
    claim = RunLease(url, probe.run_id)
    res: ReplayResult | None = None
    try:
        await asyncio.to_thread(claim.acquire)
        await asyncio.to_thread(_clear_run, url, probe.run_id)
        writer = BatchWriter(url, flush_sec=settings.writer_flush_sec)
        writer.start()
        probe.sink.inner = writer
        rec = DbRecorder(writer)
        rec.replay_started(probe.run_id, REPLAY_MODE, probe.t0, probe.t1, time.time(), probe.seed,
                           _jsonable(probe.params.model_dump(mode="json")))
        status = "failed"
        try:
            res = await probe.run()
            status = res.status
            return res
        finally:
            summary = res.summary if res is not None else None
            rec.replay_finished(probe.run_id, time.time(), status, summary.get("markets") if summary else None,
                                _jsonable(summary), _jsonable(res.problems if res else probe.problems))
            seen = list(probe.known_markets.values())

            def end() -> None:  # (one thread: a second Ctrl-C cannot skip the writer's close)
                try:
                    _record_markets(url, rec, seen, probe.t0)
                finally:
                    writer.close()

            await _ended(end, res)
    finally:
        await _ended(claim.release, res)  # after the writer's last row


async def _ended(fn: Callable[[], None], res: ReplayResult | None) -> None:
    """`_to_the_end(fn)`, a replay's closing step; a cancel (Ctrl-C) that lands here once the
    replay has its result is withdrawn: the step still ran to its end, and the replay returns its
    result (its rows all written, its status the one it reached) instead of a KeyboardInterrupt.
    Before the result, the cancel goes on (the replay failed or was cancelled before it ended)."""
    try:
        await _to_the_end(fn)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if res is None or task is None:
            raise
        task.uncancel()


def replay(settings: Settings, t0: float | str, t1: float | str, **kw: Any) -> ReplayResult:
    """Synchronous `replay_async` (scripts, workers). Inside a running loop (a notebook cell) it
    runs on a helper thread with its own loop; there, `await replay_async(...)` is the better call."""
    return run_sync(lambda: replay_async(settings, t0, t1, **kw))


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code: `asyncio.run`, or on a helper thread with its
    own loop when this thread already runs one (a notebook cell, a Voilà kernel).

    Ctrl-C (a kernel interrupt) reaches only this thread; on the helper thread's path it cancels
    the coroutine's task there, as `asyncio.run`'s own Ctrl-C does, and waits for what the
    coroutine returns (a replay: its partial result, rows written). A second Ctrl-C stops the
    wait (the helper thread still finishes its cleanup)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}
    ready, finished = threading.Event(), threading.Event()

    async def main() -> T:
        box["task"], box["loop"] = asyncio.current_task(), asyncio.get_running_loop()
        ready.set()
        return await make()

    def target() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc
        finally:
            ready.set()
            finished.set()

    # waits on an Event, never `Thread.join`: a KeyboardInterrupt inside a join marks a running
    # thread as ended (CPython 3.11), and the next join would return at once
    threading.Thread(target=target, name="pmm-run-sync").start()
    interrupted = False
    try:
        while not finished.wait(0.2):  # back in Python often enough for a pending Ctrl-C
            pass
    except KeyboardInterrupt:
        interrupted = True
        ready.wait()
        loop, task = box.get("loop"), box.get("task")
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile: it is ending anyway
                loop.call_soon_threadsafe(task.cancel)
        while not finished.wait(0.2):  # a second Ctrl-C leaves from here
            pass
    err = box.get("error")
    if err is not None:
        if interrupted and isinstance(err, asyncio.CancelledError):
            raise KeyboardInterrupt from None  # cancelled before it could keep a partial result
        raise err
    return cast(T, box["result"])


def _markouts_line(s: Mapping[str, Any]) -> str:
    """The summary's markouts: means per fill, then sums (units said: the sweep's markout columns
    are sums in USD, the report's means per share in price units); a run without fills has none
    (its realized spread is None, not +0.0000)."""
    means = ", ".join(f"{k.removeprefix('markout_').removesuffix('_mean_usd')} {v:+.4f}"
                      for k, v in s.items() if k.endswith("_mean_usd") and v is not None)
    rs = s.get("realized_spread_usd")
    if rs is None and not means:
        return "  markouts: none (no fills)" if not s.get("fills") else "  markouts: none recorded"
    return ("  markouts, mean USD per fill: " + (means or "none")
            + " (sum over fills: realized spread " + (f"{rs:+.4f} USD" if rs is not None else "none")
            + "".join(f", {k.removeprefix('markout_').removesuffix('_usd')} {v:+.4f}" for k, v in s.items()
                      if k.startswith("markout_") and k.endswith("_usd") and not k.endswith("_mean_usd")
                      and v is not None)
            + ")")


def format_summary(res: ReplayResult) -> str:
    s = res.summary
    lines = [
        (f"replay {res.run_id} {s['status']}: {s['from']} .. {s['to']}, {s['markets']} markets, "
         f"{s['cycles']} cycles ({s['cycles_mode']})"),
        (f"  events {s['events']:,} in {s['wall_seconds']:.2f} s wall = {s['events_per_sec']:,.0f} events/s, "
         f"{s['sim_seconds_per_wall_second']:,.0f} sim-s per wall-s"),
        (f"  orders placed {s['placed']} (rejected {s['rejected']}), fills {s['fills']} "
         f"({s['fills_per_min']:.2f}/min), volume {s['volume']:.2f}"),
        (f"  pnl total {s.get('pnl_total', 0.0):+.4f} = realized {s.get('realized', 0.0):+.4f} "
         f"+ unrealized {s.get('unrealized', 0.0):+.4f} (spread {s.get('spread_pnl', 0.0):+.4f}, "
         f"inventory {s.get('inventory_pnl', 0.0):+.4f})"),
        _markouts_line(s) + f"; max inventory {s['max_inventory_usd']:.2f} USD",
    ]
    extra = [f"{k} {s[k]:+.4f}" for k in ("fees", "rebates", "rewards", "settlement") if isinstance(s.get(k), float)]
    if extra:
        lines.append("  economics " + ", ".join(extra))
    if s.get("resumed_from"):
        lines.append(f"  warm-up from the checkpoint of {s['resumed_from']} ({s['warmup_rows_skipped']:,} earlier rows of "
                     "market data not replayed: the checkpoint holds their books)")
    if s.get("restored"):
        lines.append(f"  continued, as the recorded session did, from the rows its DB held ({s['restored']}): "
                     "the PnL includes them")
    if s.get("pending_files"):
        lines.append(f"  {s['pending_files']} part file(s) still being written were not read: the recording "
                     f"is readable up to {s['recorded_until']} (within PMM_RECORD_ROTATE_SEC of now)")
    if s.get("bad_messages"):
        lines.append(f"  {s['bad_messages']:,} recorded message(s) the stream refused (malformed or off the market's "
                     "grid; the log names them): the books they named stay stale until their next snapshot")
    for p in res.problems:
        lines.append(f"  problem: {p}")
    return "\n".join(lines)


__all__ = [
    "Gap",
    "Problem",
    "ReplayResult",
    "ReplaySink",
    "Replayer",
    "check_markets",
    "format_summary",
    "parse_markets",
    "replay",
    "replay_async",
    "split_overrides",
]
