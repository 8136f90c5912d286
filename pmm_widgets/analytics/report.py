"""`pmm report`: what a run did, per market and in total, read back from the database.

Why from the DB and not from a live engine: the report must agree with what was recorded (and
work after the process is gone, or for a run on another machine). Columns:

- placed: orders we placed (quote changes; a kept quote is not re-counted), from `orders`;
- fills / partial / filled / volume: from `trades` (placed is not fills);
- fills_per_min: fills over the span of the recorded session (first order to last record);
- PnL parts: the latest `pnl` row of each market (and the 'TOTAL' row);
- markouts: means of the per-fill markouts and realized spread, from `markouts` (`store.repo.markouts_frame`).

The PnL decomposition (`economics`, also `pmm report --json`): spread and inventory from each
market's latest `pnl` row; fees and rebates summed over `trades`; rewards over
`reward_estimates.usd`; settlement over `settlements.pnl`; total = spread + inventory +
settlement − fees + rebates + rewards. The totals are the sums of the per-market rows.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Engine, Table, func, inspect, or_, select

from ..economics.payouts import venue_date
from ..errors import ExitCode
from ..store import repo, schema
from .markouts import HORIZONS, horizon_key

PNL_COLS = {  # pnl column → report column
    "total": "pnl_total", "realized": "pnl_realized", "unrealized": "pnl_unrealized",
    "spread_pnl": "pnl_spread", "inventory_pnl": "pnl_inventory", "inventory_yes": "inv_yes", "inventory_no": "inv_no",
}


REPLAY = "replay"


def _scope(t: Table, mode: str | None, run_id: str | None = None) -> list[ColumnElement[bool]]:
    """The rows a report covers: one mode (and, for replays, one run), or by default the engine's
    own sessions: every mode but 'replay' (a `pmm replay` into the operator's DB wrote its rows
    beside the paper run's, and the report counted both: twice the orders and fills)."""
    out = [t.c.mode == mode] if mode is not None else [or_(t.c.mode.is_(None), t.c.mode != REPLAY)]
    if run_id is not None and "run_id" in t.c:
        out.append(t.c.run_id == run_id)
    return out


def _markouts(engine: Engine, mode: str | None, run_id: str | None = None) -> list[tuple[str, float, float]]:
    """(market, horizon_sec, markout in price units) of every stored markout (none before 0007)."""
    if "markouts" not in inspect(engine).get_table_names():
        return []
    df = repo.markouts_frame(engine, where=_scope(schema.markouts, mode, run_id))
    df = df[df["markout"].notna()]
    return list(zip(df["market"], df["horizon_sec"].astype(float), df["markout"].astype(float), strict=True))


def build_report(engine: Engine, mode: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    """One row per market seen in orders or trades, plus a 'TOTAL' row; `mode` (and `run_id`)
    choose the rows (`_scope`; default: the engine's sessions, no replay)."""
    o, t, p, mk = schema.orders, schema.trades, schema.pnl, schema.markets
    with engine.connect() as conn:
        oq = select(o.c.market, func.count().label("placed")).where(o.c.status != "REJECTED").group_by(o.c.market)
        tq = select(t.c.market, t.c.side, t.c.price, t.c.size, t.c.fill_type, t.c.ts)
        oq = oq.where(*_scope(o, mode, run_id))
        tq = tq.where(*_scope(t, mode, run_id))
        orders = conn.execute(oq).all()
        trades = conn.execute(tq).all()
        latest = select(p.c.market, func.max(p.c.ts).label("ts")).group_by(p.c.market)
        latest = latest.where(*_scope(p, mode, run_id))
        latest_sq = latest.subquery()
        pq = select(p).join(latest_sq, (p.c.market == latest_sq.c.market) & (p.c.ts == latest_sq.c.ts))
        pq = pq.where(*_scope(p, mode, run_id))
        pnl_rows = {r.market: r for r in conn.execute(pq).all()}
        questions = {r.condition_id: r.question for r in conn.execute(select(mk.c.condition_id, mk.c.question)).all()}
        minutes = session_minutes(conn, mode, run_id)

    stats: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    for mkt, placed in orders:
        stats[mkt]["placed"] = placed
    mo_keys = [horizon_key(h) for h in HORIZONS]
    for r in trades:
        s = stats[r.market]
        s["fills"] += 1
        s["partial" if r.fill_type == "PARTIAL" else "filled"] += 1
        s["volume"] += float(r.price) * float(r.size)
    for mkt, horizon, px in _markouts(engine, mode, run_id):
        s = stats[mkt]
        if horizon == 0:
            s["rs_n"] += 1
            s["rs_sum"] += px
        elif horizon_key(horizon) in mo_keys:
            k = horizon_key(horizon)
            s[f"{k}_n"] += 1
            s[f"{k}_sum"] += px

    def row(name: str, s: dict[str, Any], pr: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "market": name,
            "question": questions.get(name, ""),
            "placed": int(s.get("placed", 0)),
            "fills": int(s.get("fills", 0)),
            "partial": int(s.get("partial", 0)),
            "filled": int(s.get("filled", 0)),
            "fills_per_min": (s.get("fills", 0) / minutes) if minutes else 0.0,
            "volume": s.get("volume", 0.0),
        }
        # the engine writes `pnl` rows for the markets it traded: once it wrote any, a market it
        # only quoted made and held nothing (0, not unknown)
        never_traded = pr is None and bool(pnl_rows) and not s.get("fills")
        for col, name in PNL_COLS.items():
            v = getattr(pr, col, None) if pr is not None else None
            out[name] = float(v) if v is not None else (0.0 if never_traded else None)
        for k in mo_keys:
            n = s.get(f"{k}_n", 0)
            out[f"markout_{k}"] = s[f"{k}_sum"] / n if n else None
        out["realized_spread"] = s["rs_sum"] / s["rs_n"] if s.get("rs_n") else None
        out["markout_fills"] = int(s.get(f"{mo_keys[0]}_n", 0))
        return out

    rows = [row(m, s, pnl_rows.get(m)) for m, s in sorted(stats.items(), key=lambda kv: str(kv[0]))]
    total: dict[str, Any] = defaultdict(float)
    for s in stats.values():
        for k, v in s.items():
            total[k] += v
    rows.append(row("TOTAL", total, pnl_rows.get("TOTAL")))
    df = pd.DataFrame(rows)
    # a missing figure is NaN in every column: a column with no value at all (no 120 s markout
    # yet, no pnl row) was an object column of None, printed `None` beside the others' `NaN`
    unknown = [*PNL_COLS.values(), *(f"markout_{k}" for k in mo_keys), "realized_spread"]
    df[unknown] = df[unknown].astype(float)
    return df


def session_minutes(conn: Any, mode: str | None, run_id: str | None) -> float | None:
    """The span fills per minute are over, in both of the report's tables (they used to differ):
    from the first order placed (or fill) to the last record (an order's update, a fill, a `pnl`
    row) of the rows in scope; None when there is no such span. A replay run's is the span its
    own summary divides by (its cycles'), so the report and the replay say the same fills/min."""
    if mode == REPLAY and run_id is not None:
        rr = schema.replay_runs
        summary = conn.execute(select(rr.c.summary_json).where(rr.c.run_id == run_id)).scalar()
        if isinstance(summary, str):  # (a dialect handing JSON back as text)
            summary = json.loads(summary)
        sim = summary.get("sim_seconds") if isinstance(summary, dict) else None
        if isinstance(sim, (int, float)) and sim > 0:
            return float(sim) / 60.0
    o, t, p = schema.orders, schema.trades, schema.pnl
    spans = [conn.execute(select(func.min(o.c.created_ts), func.max(o.c.updated_ts))
                          .where(o.c.status != "REJECTED", *_scope(o, mode, run_id))).one(),
             conn.execute(select(func.min(t.c.ts), func.max(t.c.ts)).where(*_scope(t, mode, run_id))).one(),
             (None, conn.execute(select(func.max(p.c.ts)).where(*_scope(p, mode, run_id))).scalar())]
    starts = [a for a, _ in spans if a is not None]
    ends = [b for _, b in spans if b is not None]
    if not starts or not ends or max(ends) <= min(starts):
        return None
    return float(max(ends) - min(starts)) / 60.0


ECON_KEYS = ("spread", "inventory", "fees", "rebates", "rewards", "settlement", "total")


def _d(v: Any) -> Decimal:
    return Decimal(str(v)) if v is not None else Decimal(0)


def economics(engine: Engine, mode: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """`{"markets": [...], "totals": {fills, fills_per_min, spread, inventory, fees, rebates,
    rewards, settlement, total}}` from the database (Decimal money; see the module doc)."""
    t, p, r, st = schema.trades, schema.pnl, schema.reward_estimates, schema.settlements
    names = set(inspect(engine).get_table_names())
    acc: dict[str, dict[str, Any]] = defaultdict(lambda: {"fills": 0, "spread": Decimal(0), "inventory": Decimal(0),
                                                          "fees": Decimal(0), "rebates": Decimal(0),
                                                          "rewards": Decimal(0), "settlement": Decimal(0)})
    with engine.connect() as conn:
        minutes = session_minutes(conn, mode, run_id)
        tq = select(t.c.market, t.c.ts, t.c.fee, t.c.rebate)
        tq = tq.where(*_scope(t, mode, run_id))
        for row in conn.execute(tq):
            a = acc[row.market]
            a["fills"] += 1
            a["fees"] += _d(row.fee)
            a["rebates"] += _d(row.rebate)
        latest = select(p.c.market, func.max(p.c.ts).label("ts")).where(p.c.market != "TOTAL").group_by(p.c.market)
        latest = latest.where(*_scope(p, mode, run_id))
        lsq = latest.subquery()
        pq = select(p.c.market, p.c.ts, p.c.spread_pnl, p.c.inventory_pnl).join(
            lsq, (p.c.market == lsq.c.market) & (p.c.ts == lsq.c.ts))
        pq = pq.where(*_scope(p, mode, run_id))
        for row in conn.execute(pq):
            a = acc[row.market]
            a["spread"], a["inventory"] = _d(row.spread_pnl), _d(row.inventory_pnl)
        if "reward_estimates" in names:
            rq = select(r.c.market, func.sum(r.c.usd)).group_by(r.c.market)
            rq = rq.where(*_scope(r, mode, run_id))
            for mkt, usd in conn.execute(rq):
                acc[mkt]["rewards"] = _d(usd)
        if "venue_payouts" in names:
            _paid_where_known(conn, acc, mode, run_id)
        if "settlements" in names:
            sq = select(st.c.market, func.sum(st.c.pnl)).group_by(st.c.market)
            sq = sq.where(*_scope(st, mode, run_id))
            for mkt, v in conn.execute(sq):
                acc[mkt]["settlement"] = _d(v)
    markets = []
    totals: dict[str, Any] = {"fills": 0, **{k: Decimal(0) for k in ECON_KEYS}}
    for mkt in sorted(acc, key=str):
        a = acc[mkt]
        a["total"] = a["spread"] + a["inventory"] + a["settlement"] - a["fees"] + a["rebates"] + a["rewards"]
        markets.append({"market": mkt, "fills": a["fills"], "fills_per_min": a["fills"] / minutes if minutes else 0.0,
                        **{k: a[k] for k in ECON_KEYS}})
        totals["fills"] += a["fills"]
        for k in ECON_KEYS:
            totals[k] += a[k]
    totals["fills_per_min"] = totals["fills"] / minutes if minutes else 0.0
    return {"markets": markets, "totals": totals}


def _paid_where_known(conn: Any, acc: dict[str, dict[str, Any]], mode: str | None, run_id: str | None = None) -> None:
    """Rewards and rebates paid where the venue said (live `venue_payouts`): for each venue day
    the engine read back (its "TOTAL" row), that day's estimates (`reward_estimates` by
    `venue_date`) and accruals (`trades.rebate` by the fill's venue day) give way to the amounts
    paid; days not read (or not paid yet) keep the estimate."""
    vp, r, t = schema.venue_payouts, schema.reward_estimates, schema.trades
    q = select(vp.c.kind, vp.c.market, vp.c.date, vp.c.amount)
    q = q.where(*_scope(vp, mode, run_id))
    rows = conn.execute(q).all()
    known = {(row.kind, row.date) for row in rows if row.market == "TOTAL"}
    if not known:
        return
    for row in rows:
        if row.market != "TOTAL" and (row.kind, row.date) in known and row.kind in ("rewards", "rebates"):
            acc[row.market][row.kind] += _d(row.amount)
    rq = select(r.c.market, r.c.venue_date, func.sum(r.c.usd)).group_by(r.c.market, r.c.venue_date)
    rq = rq.where(*_scope(r, mode, run_id))
    for mkt, day, usd in conn.execute(rq):
        if ("rewards", day) in known:
            acc[mkt]["rewards"] -= _d(usd)
    tq = select(t.c.market, t.c.ts, t.c.rebate)
    tq = tq.where(*_scope(t, mode, run_id))
    for row in conn.execute(tq):
        if ("rebates", venue_date(row.ts)) in known:
            acc[row.market]["rebates"] -= _d(row.rebate)


def economics_json(doc: dict[str, Any]) -> str:
    """The decomposition as JSON: money as numbers (6 dp)."""

    def conv(x: Any) -> Any:
        if isinstance(x, Decimal):
            return float(x.quantize(Decimal("0.000001")))
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, list):
            return [conv(v) for v in x]
        return x

    return json.dumps(conv(doc))


def _replay_runs(engine: Engine) -> list[Any]:
    """The DB's replay runs (`replay_runs`), newest first; none before the table existed."""
    if "replay_runs" not in inspect(engine).get_table_names():
        return []
    rr = schema.replay_runs
    with engine.connect() as conn:
        return list(conn.execute(select(rr.c.run_id, rr.c.t0, rr.c.t1, rr.c.status, rr.c.started_ts)
                                 .order_by(rr.c.started_ts.desc(), rr.c.run_id)).all())


def _choose_scope(engine: Engine, mode: str | None, run_id: str | None) -> tuple[str | None, str | None, str]:
    """(mode, run_id, what the report covers, as one line). Default: the engine's own sessions of
    the mode it traded last (paper, dry_run or live are never added up; the others are named); a
    DB holding only replays (`pmm replay --db-url`): its newest run; `--mode replay` without
    `--run-id`: the newest run too (runs of different parameters must not add up)."""
    from ..research.recordings import iso

    runs = _replay_runs(engine)
    if mode is None and run_id is None:
        o = schema.orders
        with engine.connect() as conn:  # the engine's modes in this DB, the newest activity first
            modes = [m for m, _ in conn.execute(
                select(o.c.mode, func.max(o.c.created_ts).label("last")).where(*_scope(o, None))
                .group_by(o.c.mode).order_by(func.max(o.c.created_ts).desc())).all() if m is not None]
        if not modes and not runs:
            return None, None, "report: the engine's sessions"
        if modes:  # one mode at a time: paper fills must not add up with live ones
            left = [f"{m} orders (--mode {m})" for m in modes[1:]]
            if runs:
                left.append(f"{len(runs)} replay run(s) (--mode replay [--run-id ID])")
            more = f"; not included: {', '.join(left)}" if left else ""
            return modes[0], None, f"report: the {modes[0]} sessions (the newest mode in this DB){more}"
        mode = REPLAY
    if run_id is not None:
        if mode not in (None, REPLAY):  # a replay run is no paper, dry_run or live session
            from ..config import ConfigError

            raise ConfigError(f"--run-id names a replay run: --mode {mode} cannot go with it (--mode replay, or leave it out)")
        mode = REPLAY
        known = [r for r in runs if r.run_id == run_id]
        if not known:
            from ..config import ConfigError

            ids = ", ".join(r.run_id for r in runs[:5]) or "none"
            sw, in_sweep = schema.sweep_results, None
            if "sweep_results" in set(inspect(engine).get_table_names()):
                with engine.connect() as conn:
                    in_sweep = conn.execute(select(sw.c.sweep_id).where(sw.c.run_id == run_id).limit(1)).scalar()
            hint = (f"; it is a point of sweep {in_sweep}, whose rows a sweep does not write: `pmm replay` "
                    "with that point's --set values writes them") if in_sweep else ""
            raise ConfigError(f"--run-id {run_id}: no such replay run in this DB (newest: {ids}){hint}")
        r = known[0]
    elif mode == REPLAY:
        if not runs:
            return mode, None, "report: replays (none in this DB)"
        r = runs[0]
        run_id = r.run_id
    else:
        return mode, None, f"report: {mode} sessions"
    others = f"; {len(runs) - 1} other replay run(s): --run-id" if len(runs) > 1 else ""
    return mode, run_id, f"report: replay run {run_id} ({iso(r.t0)} .. {iso(r.t1)}, {r.status}){others}"


def report_main(settings: Any, as_json: bool = False, mode: str | None = None, run_id: str | None = None) -> int:
    """Print the report for `settings.db_url` (or, `as_json`, the PnL decomposition as one JSON
    object); 0 also when there is nothing to report (it says so). `mode`/`run_id`: `_choose_scope`."""
    from ..store.db import make_engine

    engine = make_engine(settings.db_url)
    try:
        names = set(inspect(engine).get_table_names())
        if not {"orders", "trades", "pnl"} <= names:
            print("no trading tables in this database yet: run `pmm run paper` first")
            return ExitCode.OK
        mode, run_id, covers = _choose_scope(engine, mode, run_id)
        if as_json:
            print(economics_json(economics(engine, mode, run_id)))  # the documented shape; the scope on stderr
            print(covers, file=sys.stderr)
            return ExitCode.OK
        df = build_report(engine, mode, run_id)
        econ = economics(engine, mode, run_id)
    finally:
        engine.dispose()
    print(covers)
    if len(df) <= 1 and df.iloc[0]["placed"] == 0 and df.iloc[0]["fills"] == 0:
        first = {REPLAY: "pmm replay", "live": "pmm run live", "dry_run": "pmm run live --dry-run"}.get(
            mode or "", "pmm run paper")
        print(f"no orders or fills recorded yet: run `{first}` first")
        return ExitCode.OK
    show = df.copy()
    show["market"] = show["market"].map(lambda s: s if len(s) <= 14 else s[:12] + "..")
    show["question"] = show["question"].map(lambda s: s if len(s) <= 32 else s[:30] + "..")
    with pd.option_context("display.max_rows", 500, "display.width", 250, "display.max_columns", 50,
                           "display.float_format", lambda x: f"{x:.4f}"):
        print(show.to_string(index=False))
    tot = df.iloc[-1]
    print(f"\nplaced {tot['placed']} orders (quote changes); {tot['fills']} fills "
          f"({tot['partial']} partial, {tot['filled']} filled), {tot['fills_per_min']:.2f} fills/min; "
          f"volume {tot['volume']:.2f} USD; PnL {'NaN' if pd.isna(tot['pnl_total']) else format(tot['pnl_total'], '.4f')}")
    if econ["markets"]:
        ec = pd.DataFrame([{**r, "market": r["market"] if len(r["market"]) <= 14 else r["market"][:12] + ".."}
                           for r in econ["markets"]] + [{"market": "TOTAL", **econ["totals"]}])
        for k in ECON_KEYS:
            ec[k] = ec[k].map(float)
        print("\nPnL decomposition (total = spread + inventory + settlement - fees + rebates + rewards; "
              "rebates and rewards paid where the venue said, estimated elsewhere):")
        with pd.option_context("display.max_rows", 500, "display.width", 250, "display.float_format",
                               lambda x: f"{x:.4f}"):
            print(ec[["market", "fills", "fills_per_min", *ECON_KEYS]].to_string(index=False))
    return ExitCode.OK
