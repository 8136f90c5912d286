"""The database schema: table and column names are a contract with notebooks and outside tools.

Timestamps are epoch seconds (float) so that pandas, SQLite and PostgreSQL agree without
timezone handling; prices and sizes are exact `Numeric`. Changes to this file need an Alembic
migration under `store/migrations/versions`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

PRICE = Numeric(18, 6)
SIZE = Numeric(24, 6)
MONEY = Numeric(24, 6)

markets = Table(
    "markets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("snapshot_ts", Float, nullable=False),
    Column("rank", Integer, nullable=False),
    Column("condition_id", String(80), nullable=False),
    Column("question", Text, nullable=False),
    Column("slug", Text),
    Column("yes_token_id", String(100), nullable=False),
    Column("no_token_id", String(100), nullable=False),
    Column("liquidity_num", Float),
    Column("volume_24h", Float),
    Column("tick_size", PRICE),
    Column("min_order_size", SIZE),
    Column("neg_risk", Boolean),
    Column("best_bid", Float),
    Column("best_ask", Float),
    Column("raw_json", JSON),
    Index("ix_markets_snapshot", "snapshot_ts", "rank"),
    Index("ix_markets_condition", "condition_id"),
)

book_snapshots = Table(
    "book_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(100), nullable=False),
    Column("market", String(80)),
    Column("ts", Float, nullable=False),
    Column("best_bid", PRICE),
    Column("best_ask", PRICE),
    Column("mid", PRICE),
    Column("spread", PRICE),
    Column("bid_depth", SIZE),  # size within depth_ticks of the best bid
    Column("ask_depth", SIZE),
    Column("depth_ticks", Integer),
    Column("bid_levels", Integer),
    Column("ask_levels", Integer),
    Column("stale", Boolean),
    Column("crossed", Boolean),
    Index("ix_book_snapshots_token_ts", "token_id", "ts"),
)

public_trades = Table(
    "public_trades",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_id", String(100), nullable=False),
    Column("market", String(80)),
    Column("ts", Float, nullable=False),
    Column("price", PRICE, nullable=False),
    Column("size", SIZE, nullable=False),
    Column("side", String(4)),
    Index("ix_public_trades_token_ts", "token_id", "ts"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False),
    Column("venue_order_id", String(100)),
    Column("mode", String(10), nullable=False),
    Column("market", String(80)),
    Column("token_id", String(100), nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", PRICE, nullable=False),
    Column("size", SIZE, nullable=False),
    Column("filled", SIZE),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    Column("owner", String(200)),  # lease owner id (host:pid:uuid) of the engine that placed it
    Column("run_id", String(40)),  # replays (mode 'replay'): the run that wrote the row
    UniqueConstraint("client_id", name="uq_orders_client_id"),
    Index("ix_orders_status", "status"),
    Index("ix_orders_venue", "venue_order_id"),
)

trades = Table(
    "trades",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trade_id", String(100), nullable=False),
    Column("order_id", String(64)),  # our client_id
    Column("venue_order_id", String(100)),
    Column("market", String(80)),
    Column("token_id", String(100), nullable=False),
    Column("side", String(4), nullable=False),
    Column("price", PRICE, nullable=False),
    Column("size", SIZE, nullable=False),
    Column("fill_type", String(8), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("status", String(24)),
    Column("ts", Float, nullable=False),
    Column("raw_json", JSON),  # the venue's (or the fill model's) payload and status history
    Column("fee", MONEY),  # pUSD the venue charged this fill (takers; 0 for our maker fills)
    Column("rebate", MONEY),  # maker rebate accrued by this fill (rebateRate × fee-equivalent)
    Column("liquidity", String(6)),  # MAKER or TAKER
    Column("run_id", String(40)),
    UniqueConstraint("trade_id", name="uq_trades_trade_id"),
    Index("ix_trades_market_ts", "market", "ts"),
    Index("ix_trades_run_id", "run_id"),
)

markouts = Table(  # one row per fill and horizon (0 s: the realized spread at the fill's own mid)
    "markouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trade_id", String(100), nullable=False),  # trades.trade_id
    Column("market", String(80)),
    Column("token_id", String(100)),
    Column("side", String(4)),
    Column("mode", String(10)),
    Column("horizon_sec", Float, nullable=False),
    Column("fill_ts", Float),
    Column("fill_price", PRICE),
    Column("size", SIZE),
    Column("mid", PRICE),  # the token's mid at fill_ts + horizon_sec
    Column("markout", Float),  # price units, signed for our side: + = the fill was worth it
    Column("markout_usd", Float),  # markout × size
    Column("ts", Float, nullable=False),  # when it was measured
    Column("run_id", String(40)),
    Index("ix_markouts_trade", "trade_id"),
    Index("ix_markouts_market_ts", "market", "ts"),
    Index("ix_markouts_run_id", "run_id"),
)

pnl = Table(
    "pnl",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("market", String(80), nullable=False),  # condition id, or 'TOTAL'
    Column("mode", String(10)),
    Column("realized", MONEY),
    Column("unrealized", MONEY),
    Column("total", MONEY),
    Column("spread_pnl", MONEY),
    Column("inventory_pnl", MONEY),
    Column("inventory_yes", SIZE),
    Column("inventory_no", SIZE),
    Column("inventory_usd", MONEY),
    Column("cash", MONEY),
    Column("fills", Integer),
    Column("volume", MONEY),
    Column("fees", MONEY),  # paid (a cost: total subtracts it)
    Column("rebates", MONEY),  # maker rebates accrued
    Column("rewards", MONEY),  # liquidity rewards: estimated (paid where the venue says)
    Column("settlement", MONEY),  # resolution payout minus the last mark of the shares redeemed
    Column("run_id", String(40)),
    Index("ix_pnl_market_ts", "market", "ts"),
)

reward_estimates = Table(
    "reward_estimates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("market", String(80), nullable=False),
    Column("mode", String(10)),
    Column("mid", PRICE),  # size-cutoff-adjusted YES mid
    Column("q_one", MONEY),
    Column("q_two", MONEY),
    Column("q_min", MONEY),
    Column("q_min_total", MONEY),  # every maker's Q_min (ours + the competition seen in the book)
    Column("share", Numeric(18, 12)),
    Column("usd", MONEY),  # this minute's estimated reward
    Column("usd_per_hour", MONEY),
    Column("daily_rate", MONEY),
    Column("orders", Integer),  # our resting orders in the market
    Column("scoring", Integer),  # of which we expect to score
    Column("venue_scoring", Integer),  # of which the venue says score (live /orders-scoring; NULL otherwise)
    Column("disagreements", Integer),  # orders where our view and the venue's differ
    Column("venue_date", String(10)),  # the venue's UTC day of the sample (YYYY-MM-DD; its payouts are per day)
    Column("run_id", String(40)),  # replays (mode 'replay'): the run that wrote the row
    Index("ix_reward_estimates_market_ts", "market", "ts"),
    Index("ix_reward_estimates_run_id", "run_id"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("market", String(80), nullable=False),
    Column("mode", String(10)),
    Column("winner_token", String(100)),
    Column("winning_outcome", String(8)),
    Column("yes_shares", SIZE),
    Column("no_shares", SIZE),
    Column("payout", MONEY),  # pUSD the redeemed shares paid
    Column("pnl", MONEY),  # payout minus the last mark of those shares
    Column("source", String(20)),  # market_resolved, closed, venue, end_date
    Column("run_id", String(40), nullable=False, server_default=""),  # a replay's run; '' for the engine's modes
    UniqueConstraint("market", "mode", "run_id", name="uq_settlements_market_mode_run"),
)

venue_payouts = Table(
    "venue_payouts",  # what the venue paid (live: GET /rewards/user, /rebates/current), per market and day
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),  # when the engine read it
    Column("mode", String(10)),
    Column("date", String(10), nullable=False),  # the venue's UTC day earned (paid at the next 00:00 UTC)
    Column("kind", String(10), nullable=False),  # rewards | rebates
    Column("market", String(80), nullable=False),  # condition id; "TOTAL": the day was read (sum, may be 0)
    Column("amount", MONEY),
    UniqueConstraint("market", "mode", "date", "kind", name="uq_venue_payouts_market_mode_date_kind"),
)

market_calibration = Table(
    "market_calibration",
    metadata,
    Column("market", String(80), primary_key=True),
    Column("state_json", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("level", String(8), nullable=False),  # INFO, WARNING, ERROR
    Column("kind", String(40), nullable=False),  # engine_start, risk_breach, kill, error, ...
    Column("market", String(80)),
    Column("message", Text),
    Column("data_json", JSON),
    Column("run_id", String(40)),
    Index("ix_events_ts", "ts"),
)

engine_lease = Table(
    "engine_lease",
    metadata,
    Column("name", String(200), primary_key=True),  # account + db scope
    Column("owner", String(200), nullable=False),  # host:pid:uuid
    Column("expires_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("state_json", JSON),  # the owner's observable state, for attached faces
)

commands = Table(
    "commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("issuer", String(200)),  # the sending engine's owner id
    Column("kind", String(40), nullable=False),  # set_params, pause, resume, kill
    Column("sender", String(200)),  # who wrote it: user@host pid N (face); DB write access is control access
    Column("payload_json", JSON),
    Column("applied_at", Float),
    Column("result", Text),
)

replay_runs = Table(  # one row per `pmm replay` (and per sweep point written to the DB)
    "replay_runs",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("mode", String(10), nullable=False),  # 'replay'
    Column("t0", Float, nullable=False),
    Column("t1", Float, nullable=False),
    Column("started_ts", Float, nullable=False),
    Column("finished_ts", Float),
    Column("status", String(16), nullable=False),  # running, done, interrupted, failed
    Column("markets", Integer),
    Column("seed", Integer),
    Column("params_json", JSON),
    Column("summary_json", JSON),
    Column("problems_json", JSON),
)

sweep_results = Table(  # one row per point of a `pmm sweep`
    "sweep_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sweep_id", String(40), nullable=False),
    Column("point", Integer, nullable=False),
    Column("run_id", String(40)),
    Column("created_ts", Float, nullable=False),
    Column("t0", Float, nullable=False),
    Column("t1", Float, nullable=False),
    Column("grid_json", JSON, nullable=False),  # this point's values of the swept parameters
    Column("fills", Integer),
    Column("fills_per_min", Float),
    Column("pnl_total", Float),
    Column("realized", Float),
    Column("unrealized", Float),
    Column("spread_pnl", Float),
    Column("inventory_pnl", Float),
    Column("markout_5s_usd", Float),
    Column("markout_30s_usd", Float),
    Column("markout_120s_usd", Float),
    Column("max_inventory_usd", Float),
    Column("reward_estimate", Float),
    Column("fees", Float),  # the PnL components beside spread and inventory (pnl_total is their sum)
    Column("rebates", Float),
    Column("rewards", Float),
    Column("settlement", Float),
    Column("summary_json", JSON),  # every figure of the run, including PnL components added later
    UniqueConstraint("sweep_id", "point", name="uq_sweep_results_point"),
    Index("ix_sweep_results_sweep", "sweep_id"),
)

market_overrides = Table(
    "market_overrides",
    metadata,
    Column("market", String(80), primary_key=True),  # condition id
    Column("strategy", String(40)),  # a built-in strategy name; NULL: the default (PMM_STRATEGY)
    Column("params_json", JSON),  # strategy-parameter overrides, validated by the Params rules
    Column("updated_at", Float, nullable=False),
)

param_changes = Table(
    "param_changes",  # every change of a live parameter: restored at the next start (dashboard)
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("changed_by", String(200)),  # owner id of the engine, or the issuer of a set_params command
    Column("name", String(80), nullable=False),
    Column("value_json", JSON),  # Decimal as a string, so exact values survive
    Index("ix_param_changes_name", "name", "id"),
)

CONTRACT_TABLES = ("markets", "book_snapshots", "orders", "trades", "pnl", "market_calibration", "events")
