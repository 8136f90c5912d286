"""`DbRecorder`: the typed writer every producer uses; the one place that maps domain objects to
the schema's tables and columns.

Why: the exchanges, the quote cycle, risk, the calibrator, the economics tracker, the market-data
feed and the engine produce rows. Before, each built its own row dict with table names as
strings; now each calls a method taking the domain object (`order(o)`, `fill(f)`, `event(e)`,
`pnl(rows)`, `book_snapshot(...)`), and this class alone knows the table and column names (a
contract with notebooks and tools: `store/schema.py`). Underneath is any `Sink`: the batched
`store.writer.BatchWriter` in the engine (producers never wait for I/O), a `MemorySink` in unit
tests, the replayer's run-tagging sink in replays.

Not to be confused with `store.recording.Recorder` (Parquet recordings of the wire for replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..events import Event, EventBus
from .sink import Sink

if TYPE_CHECKING:
    from ..domain import Fill, Market, Order


# The columns of each table a restarted engine continues from (`engine/restore.parse_rows` reads
# them): `repo.load_session_rows` reads them from the DB; `store.recording.RestoreRowsTee` records them
# as the engine writes them (with each row's time, and a fill's `trade_id` for its later updates).
SESSION_COLUMNS: dict[str, tuple[str, ...]] = {
    "trades": ("market", "token_id", "side", "price", "size", "ts", "status", "fee", "rebate", "raw_json"),
    "reward_estimates": ("market", "venue_date", "usd"),
    "settlements": ("market", "winner_token", "payout", "pnl", "yes_shares", "no_shares"),
}


@dataclass(frozen=True, slots=True)
class MarkoutRow:
    """One `markouts` row: a fill's markout at one horizon (0 s: the realized spread, at the
    mid of the fill's own time)."""

    trade_id: str
    market: str
    token_id: str
    side: str
    mode: str
    horizon_sec: float
    fill_ts: float
    fill_price: Decimal
    size: Decimal
    mid: Decimal  # the token's mid at fill time + horizon
    markout: float  # price units: sign × (mid − fill price), sign +1 for a BUY
    markout_usd: float  # × size
    ts: float  # when it was measured


class DbRecorder:
    """Typed rows over a `Sink`. `owner`: the lease owner id stamped on every `orders` row (the
    table itself then shows which engine placed what)."""

    __slots__ = ("sink", "owner")

    def __init__(self, sink: Sink, owner: str | None = None) -> None:
        self.sink = sink
        self.owner = owner

    def with_owner(self, owner: str) -> DbRecorder:
        return DbRecorder(self.sink, owner)

    # -- events -------------------------------------------------------------------------------
    def event(self, e: Event) -> None:
        """One `events` row per event; `data_json` carries the event's data when it has any."""
        self.sink.insert("events", {"ts": e.ts, "level": e.level.value, "kind": e.kind.value, "market": e.market,
                                    "message": e.message, "data_json": dict(e.data) if e.data else None})

    # -- orders and fills ---------------------------------------------------------------------
    def order(self, o: Order, reason_max: int | None = None) -> None:
        """Insert or update the order's row (by `client_id`). The enums' values read as `_value_`
        (what `.value`, an enum property called in Python, returns: a row per order placed, cancelled
        or filled, three reads each, inside the quote cycle)."""
        row: dict[str, Any] = {
            "client_id": o.client_id, "venue_order_id": o.venue_order_id, "mode": o.mode._value_,
            "market": o.market, "token_id": o.token_id, "side": o.side._value_, "price": o.price,
            "size": o.size, "filled": o.filled, "status": o.status._value_,
            "reason": o.reason if reason_max is None else o.reason[:reason_max],
            "created_ts": o.created_ts, "updated_ts": o.updated_ts,
        }
        if self.owner is not None:
            row["owner"] = self.owner
        self.sink.upsert("orders", row, key=["client_id"])

    def close_stale_orders(self, mode: str, statuses: Iterable[str], reason: str, ts: float) -> None:
        """Mark the `mode` orders still open in the DB (an engine that died) as CANCELED."""
        for status in statuses:
            self.sink.update("orders", {"mode": mode, "status": status},
                             {"status": "CANCELED", "reason": reason, "updated_ts": ts})

    def fill(self, f: Fill, *, status: str | None = None, upsert: bool = False) -> None:
        """The fill's `trades` row (`raw_json`: the venue's or the fill model's payload)."""
        row = {
            "trade_id": f.trade_id, "order_id": f.order_client_id, "venue_order_id": f.venue_order_id,
            "market": f.market, "token_id": f.token_id, "side": f.side.value, "price": f.price,
            "size": f.size, "fill_type": f.fill_type.value, "mode": f.mode.value,
            "status": status if status is not None else f.status, "ts": f.ts, "raw_json": dict(f.raw),
        }
        if upsert:
            self.sink.upsert("trades", row, key=["trade_id"])
        else:
            self.sink.insert("trades", row)

    def trade_status(self, trade_id: str, status: str, raw: Mapping[str, Any] | None = None) -> None:
        """A trade's status moved on (MATCHED → MINED → CONFIRMED / FAILED); `raw` its payload."""
        values: dict[str, Any] = {"status": status}
        if raw is not None:
            values["raw_json"] = dict(raw)
        self.sink.update("trades", {"trade_id": trade_id}, values)

    def fill_economics(self, trade_id: str, fee: Decimal, rebate: Decimal, liquidity: str) -> None:
        self.sink.update("trades", {"trade_id": trade_id}, {"fee": fee, "rebate": rebate, "liquidity": liquidity})

    def markout(self, m: MarkoutRow) -> None:
        self.sink.insert("markouts", {
            "trade_id": m.trade_id, "market": m.market, "token_id": m.token_id, "side": m.side, "mode": m.mode,
            "horizon_sec": m.horizon_sec, "fill_ts": m.fill_ts, "fill_price": m.fill_price, "size": m.size,
            "mid": m.mid, "markout": m.markout, "markout_usd": m.markout_usd, "ts": m.ts})

    # -- PnL, economics, calibration ----------------------------------------------------------
    def pnl(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """`pnl` rows as `analytics.pnl.PnlBook.rows` builds them (one per market, then TOTAL)."""
        for row in rows:
            self.sink.insert("pnl", row)

    def reward_estimate(self, row: Mapping[str, Any]) -> None:
        self.sink.insert("reward_estimates", row)

    def settlement(self, ts: float, market: Market, mode: str, winner_token: str, yes: Decimal, no: Decimal,
                   payout: Decimal, pnl: Decimal, source: str) -> None:
        """The market's cumulative `settlements` row (one per market and mode, and replay run)."""
        self.sink.upsert("settlements", {
            "ts": ts, "market": market.condition_id, "mode": mode, "winner_token": winner_token,
            "winning_outcome": "YES" if winner_token == market.yes_token_id else "NO", "yes_shares": yes,
            "no_shares": no, "payout": payout, "pnl": pnl, "source": source, "run_id": ""},
            key=("market", "mode", "run_id"))  # a replay's sink sets its run id

    def venue_payout(self, ts: float, mode: str, date: str, kind: str, market: str, amount: Decimal) -> None:
        """What the venue paid one market (or, market "TOTAL", the whole day) for one day."""
        self.sink.upsert("venue_payouts", {"ts": ts, "mode": mode, "date": date, "kind": kind, "market": market,
                                           "amount": amount}, key=("market", "mode", "date", "kind"))

    def calibration(self, market: str, state: Mapping[str, Any], ts: float) -> None:
        self.sink.upsert("market_calibration", {"market": market, "state_json": dict(state), "updated_at": ts},
                         key=["market"])

    # -- markets and market data --------------------------------------------------------------
    def markets(self, markets: Iterable[Market], snapshot_ts: float) -> None:
        """One `markets` snapshot (rank 1..N in the given order)."""
        for rank, m in enumerate(markets, 1):
            self.sink.insert("markets", {
                "snapshot_ts": snapshot_ts, "rank": rank, "condition_id": m.condition_id, "question": m.question,
                "slug": m.slug, "yes_token_id": m.yes_token_id, "no_token_id": m.no_token_id,
                "liquidity_num": m.liquidity_num, "volume_24h": m.volume_24h, "tick_size": m.tick_size,
                "min_order_size": m.min_order_size, "neg_risk": m.neg_risk, "best_bid": m.best_bid,
                "best_ask": m.best_ask, "raw_json": dict(m.raw) or None})

    def market_override(self, market: str, strategy: str | None, params: Mapping[str, Any] | None,
                        ts: float) -> None:
        self.sink.upsert("market_overrides", {"market": market, "strategy": strategy,
                                              "params_json": dict(params) if params else None,
                                              "updated_at": ts}, key=["market"])

    def public_trade(self, token_id: str, market: str | None, ts: float, price: Decimal, size: Decimal,
                     side: str) -> None:
        self.sink.insert("public_trades", {"token_id": token_id, "market": market, "ts": ts, "price": price,
                                           "size": size, "side": side})

    def book_snapshot(self, token_id: str, market: str | None, ts: float, *, best_bid: Decimal | None,
                      best_ask: Decimal | None, mid: Decimal | None, bid_depth: Decimal, ask_depth: Decimal,
                      depth_ticks: int, bid_levels: int, ask_levels: int, stale: bool, crossed: bool) -> None:
        self.sink.insert("book_snapshots", {
            "token_id": token_id, "market": market, "ts": ts, "best_bid": best_bid, "best_ask": best_ask,
            "mid": mid, "spread": None if best_bid is None or best_ask is None else best_ask - best_bid,
            "bid_depth": bid_depth, "ask_depth": ask_depth, "depth_ticks": depth_ticks,
            "bid_levels": bid_levels, "ask_levels": ask_levels, "stale": stale, "crossed": crossed})

    # -- replays ------------------------------------------------------------------------------
    def replay_started(self, run_id: str, mode: str, t0: float, t1: float, ts: float, seed: int | None,
                       params: Any) -> None:
        self.sink.insert("replay_runs", {
            "run_id": run_id, "mode": mode, "t0": t0, "t1": t1, "started_ts": ts, "status": "running",
            "markets": None, "seed": seed, "params_json": params, "summary_json": None, "problems_json": None})

    def replay_finished(self, run_id: str, ts: float, status: str, markets: Any, summary: Any, problems: Any) -> None:
        self.sink.update("replay_runs", {"run_id": run_id}, {
            "finished_ts": ts, "status": status, "markets": markets, "summary_json": summary,
            "problems_json": problems})


def as_recorder(out: Sink | DbRecorder) -> DbRecorder:
    """A producer's constructor takes a recorder, or a bare sink (unit tests, tools) it wraps."""
    return out if isinstance(out, DbRecorder) else DbRecorder(out)


def persisting_bus(rec: DbRecorder) -> EventBus:
    """An event bus whose events are persisted through `rec`: for a component built without an
    engine (the engine injects its own bus, persisted by its one subscriber)."""
    bus = EventBus()
    bus.subscribe(rec.event)
    return bus
