"""QuoteCycle end to end with PaperExchange and MemorySink over synthetic books (no sockets)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import create_engine, insert
from strategy_helpers import WalkingBooks, make_market

from pmm_widgets.analytics.report import build_report, report_main
from pmm_widgets.config import Params
from pmm_widgets.domain import Mode, Side
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store import schema
from pmm_widgets.store.sink import MemorySink

D = Decimal


async def run(params: Params, cycles: int, markets: int = 6, sink: MemorySink | None = None, cal=None, t0: float = 1_000.0):
    sink = sink or MemorySink()
    ms = [make_market(i) for i in range(markets)]
    books = WalkingBooks(ms, seed=4)
    ex = PaperExchange(params, sink, seed=9)
    qc = QuoteCycle(params, sink, Mode.PAPER, cal, pnl_sec=10.0)
    reports = []
    for k in range(cycles):
        now = t0 + 3.0 * k
        books.step(now)
        reports.append(await qc.run_once(now, ms, books.view, ex))
    return sink, ms, books, ex, qc, reports


async def test_paper_run_records_fills_markouts_pnl_and_calibration(params):
    params.paper_fill_intensity = 6.0
    sink, ms, books, ex, qc, reports = await run(params, cycles=120)
    trades = sink.rows["trades"]
    orders = sink.rows["orders"]
    assert {t["token_id"][0] for t in trades} == {"y", "n"}  # both tokens fill
    assert {t["fill_type"] for t in trades} == {"PARTIAL", "FILLED"}
    assert not [o for o in orders if o["status"] == "REJECTED"]  # post-only, grid, size, balance all respected
    assert sum(r.fills for r in reports) == len(trades) == qc.snapshot().totals.fills
    assert sum(r.placed for r in reports) == len(orders) == qc.snapshot().totals.placed
    last_ts = 1_000.0 + 3.0 * 119
    horizons: dict[str, set[float]] = {}
    for mk in sink.rows["markouts"]:
        horizons.setdefault(mk["trade_id"], set()).add(mk["horizon_sec"])
    for t in trades:
        raw = t["raw_json"]
        assert raw["model"] == "intensity" and "realized_spread" not in raw and "markouts" not in raw
        assert 0.0 in horizons[t["trade_id"]]  # the realized spread
        if t["ts"] <= last_ts - 120:
            assert horizons[t["trade_id"]] == {0.0, 5.0, 30.0, 120.0}
    # inventory agrees with the exchange's share positions; SELLs never exceeded holdings
    for m in ms:
        st = qc.snapshot().markets[m.condition_id]
        assert st.inventory_yes == ex.positions.get(m.yes_token_id, D(0))
        assert st.inventory_no == ex.positions.get(m.no_token_id, D(0))
        assert st.inventory_yes >= 0 and st.inventory_no >= 0
        assert st.status == "quoting"
        if st.yes_bid is not None and st.yes_ask is not None:
            assert st.yes_bid < st.yes_ask and st.no_bid == 1 - st.yes_ask
    pnl = sink.rows["pnl"]
    assert {r["market"] for r in pnl} >= {"TOTAL"}
    assert len([r for r in pnl if r["market"] == "TOTAL"]) == 36  # every 10 s over 357 s
    tot = qc.snapshot().totals
    assert tot.pnl.total == tot.pnl.spread + tot.pnl.inventory == tot.pnl.realized + tot.pnl.unrealized
    cal = {r["market"]: r["state_json"] for r in sink.rows["market_calibration"]}
    assert set(cal) == {m.condition_id for m in ms}
    assert all(s["fills"] > 0 and s["markouts"]["count"] for s in cal.values())
    # a restart resumes the multipliers from the stored state
    again = QuoteCycle(params, MemorySink(), Mode.PAPER, cal)
    for m in ms:
        assert again.calibrator.mult(m.condition_id) == qc.calibrator.mult(m.condition_id)


async def test_stale_pause_and_universe_exit_pull_quotes(params):
    sink, ms, books, ex, qc, _ = await run(params, cycles=3)
    assert {o.market for o in ex.open_orders()} == {m.condition_id for m in ms}
    books.stale.add(ms[0].condition_id)
    books.step(2_000.0)
    await qc.run_once(2_000.0, ms, books.view, ex)
    assert qc.snapshot().markets[ms[0].condition_id].status == "stale"
    assert ms[0].condition_id not in {o.market for o in ex.open_orders()}
    await qc.run_once(2_003.0, ms[2:], books.view, ex)  # markets 0 and 1 left the universe
    assert {o.market for o in ex.open_orders()} == {m.condition_id for m in ms[2:]}
    params.quoting_paused = True
    rep = await qc.run_once(2_006.0, ms[2:], books.view, ex)
    assert ex.open_orders() == [] and rep.cancelled > 0
    assert {s.status for s in qc.snapshot().markets.values()} == {"paused"}


async def test_kill_requested_on_daily_loss(params):
    params.paper_fill_intensity = 30.0
    params.max_daily_loss_usd = D("0.5")
    sink, ms, books, ex, qc, reports = await run(params, cycles=20, markets=4)
    assert not any(r.kill_requested for r in reports)
    for m in ms:  # move every market 15 ticks against its position
        net = qc.inventory(m.condition_id).net
        books.bid_ticks[m.condition_id] += -15 if net > 0 else 15
    books.step(2_000.0)
    rep = await qc.run_once(2_000.0, ms, books.view, ex)
    assert rep.kill_requested and rep.placed == 0
    assert any("daily loss" in b for b in rep.breaches)
    assert any(e["kind"] == "risk_breach" and "daily loss" in e["message"] for e in sink.rows["events"])
    rep2 = await qc.run_once(2_003.0, ms, books.view, ex)  # stays killed: nothing new is placed
    assert rep2.kill_requested and rep2.placed == 0
    assert {s.status for s in qc.snapshot().markets.values()} == {"risk: killed"}


async def test_report_matches_the_recorded_rows(tmp_path, params, capsys):
    params.paper_fill_intensity = 6.0
    sink, ms, *_ = await run(params, cycles=60)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for name in ("orders", "trades", "pnl", "markouts"):
            conn.execute(insert(schema.metadata.tables[name]), sink.rows[name])
        conn.execute(insert(schema.markets), [
            {"snapshot_ts": 0.0, "rank": i, "condition_id": m.condition_id, "question": m.question,
             "yes_token_id": m.yes_token_id, "no_token_id": m.no_token_id} for i, m in enumerate(ms)])
    df = build_report(engine).set_index("market")
    trades, orders = sink.rows["trades"], sink.rows["orders"]
    assert df.loc["TOTAL", "fills"] == len(trades)
    assert df.loc["TOTAL", "placed"] == len(orders)
    for m in ms:
        mine = [t for t in trades if t["market"] == m.condition_id]
        assert df.loc[m.condition_id, "fills"] == len(mine)
        assert df.loc[m.condition_id, "question"] == m.question
        assert abs(df.loc[m.condition_id, "volume"] - sum(float(t["price"] * t["size"]) for t in mine)) < 1e-6
    last_total = [r for r in sink.rows["pnl"] if r["market"] == "TOTAL"][-1]
    assert abs(df.loc["TOTAL", "pnl_total"] - float(last_total["total"])) < 1e-5
    assert df.loc["TOTAL", "markout_fills"] > 0
    with engine.begin() as conn:  # a market only quoted, never traded: no `pnl` row; it made 0, not NaN
        conn.execute(insert(schema.orders), [{**orders[0], "client_id": "quoted-only", "market": "0xquotedonly"}])
    quoted = build_report(engine).set_index("market").loc["0xquotedonly"]
    assert quoted["placed"] == 1 and quoted["fills"] == 0
    assert quoted["pnl_total"] == 0.0 and quoted["inv_yes"] == 0.0 and quoted["pnl_spread"] == 0.0
    mk = sink.rows["markouts"]  # the report's means are the stored rows' means
    five = [r["markout"] for r in mk if r["horizon_sec"] == 5.0]
    rs = [r["markout"] for r in mk if r["horizon_sec"] == 0.0]
    assert df.loc["TOTAL", "markout_fills"] == len(five)
    assert abs(df.loc["TOTAL", "markout_5s"] - sum(five) / len(five)) < 1e-12
    assert abs(df.loc["TOTAL", "realized_spread"] - sum(rs) / len(rs)) < 1e-12
    engine.dispose()

    class S:
        db_url = url
    assert report_main(S()) == 0
    out = capsys.readouterr().out
    assert "TOTAL" in out and "placed" in out
    empty = tmp_path / "empty.db"
    S.db_url = f"sqlite:///{empty}"
    assert report_main(S()) == 0  # an empty DB is not an error (exit 0 with a one-line message)


async def test_report_leaves_replays_out_of_the_engines_sessions(tmp_path, params, capsys):
    """`pmm replay` writes to PMM_DB_URL by default: beside the paper run's rows, tagged
    mode='replay'. The report counted both (twice the orders and fills, a decomposition that
    did not add up); now it covers the engine's sessions unless asked for a replay run."""
    from pmm_widgets.analytics.report import economics
    from pmm_widgets.config import ConfigError

    params.paper_fill_intensity = 6.0
    sink, ms, *_ = await run(params, cycles=40)
    url = f"sqlite:///{tmp_path / 'mix.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)

    def as_replay(rows, run_id, k):
        out = [{**r, "mode": "replay", "run_id": run_id} for r in rows]
        for r in out:
            for key in ("client_id", "trade_id"):
                if key in r:
                    r[key] = f"{run_id}-{r[key]}"
        if k:  # the second run differs: it traded half the fills
            out = out[: len(out) // 2 or 1]
        return out

    with engine.begin() as conn:
        for name in ("orders", "trades", "pnl", "markouts"):
            conn.execute(insert(schema.metadata.tables[name]), sink.rows[name])
            for k, rid in enumerate(("rp-old", "rp-new")):
                conn.execute(insert(schema.metadata.tables[name]), as_replay(sink.rows[name], rid, k))
        conn.execute(insert(schema.replay_runs), [
            {"run_id": rid, "mode": "replay", "t0": 0.0, "t1": 60.0, "started_ts": 10.0 + k, "status": "done"}
            for k, rid in enumerate(("rp-old", "rp-new"))])
    fills = len(sink.rows["trades"])
    assert fills > 1
    assert build_report(engine).set_index("market").loc["TOTAL", "fills"] == fills
    assert economics(engine)["totals"]["fills"] == fills
    assert build_report(engine, "replay", "rp-old").set_index("market").loc["TOTAL", "fills"] == fills
    assert economics(engine, "replay", "rp-new")["totals"]["fills"] == fills // 2
    engine.dispose()

    class S:
        db_url = url
    assert report_main(S()) == 0
    out = capsys.readouterr().out
    assert out.startswith("report: the paper sessions (the newest mode in this DB); not included: "
                          "2 replay run(s) (--mode replay [--run-id ID])")
    assert f"{fills} fills (" in out
    assert report_main(S(), mode="replay") == 0  # the newest run
    out = capsys.readouterr().out
    assert out.startswith("report: replay run rp-new (") and f"{fills // 2} fills (" in out
    assert report_main(S(), run_id="rp-old") == 0
    assert capsys.readouterr().out.startswith("report: replay run rp-old (")
    with pytest.raises(ConfigError, match="--run-id nope: no such replay run in this DB"):
        report_main(S(), run_id="nope")
    with pytest.raises(ConfigError, match="--mode paper cannot go with it"):  # not silently the replay's report
        report_main(S(), mode="paper", run_id="rp-old")
    assert report_main(S(), mode="replay", run_id="rp-old") == 0
    assert capsys.readouterr().out.startswith("report: replay run rp-old (")
    # a live session after the paper one: the report is the live one, paper named, never added up
    engine = create_engine(url)
    live_orders = [{**o, "mode": "live", "client_id": f"live-{o['client_id']}", "created_ts": o["created_ts"] + 1e6}
                   for o in sink.rows["orders"][:3]]
    with engine.begin() as conn:
        conn.execute(insert(schema.orders), live_orders)
    assert build_report(engine, "paper").set_index("market").loc["TOTAL", "fills"] == fills
    engine.dispose()
    assert report_main(S()) == 0
    out = capsys.readouterr().out
    assert out.startswith("report: the live sessions (the newest mode in this DB); not included: "
                          "paper orders (--mode paper), 2 replay run(s)")
    assert "placed 3 orders" in out and "0 fills (" in out


def test_sell_side_appears_once_inventory_is_held():
    """Inventory flips the expression of a quote from a complement BUY to a SELL of the held token."""
    import asyncio

    p = Params(paper_fill_intensity=40.0, paper_full_fill_prob=1.0)
    sink, *_ = asyncio.run(run(p, cycles=40, markets=3))
    assert any(o["side"] == Side.SELL.value for o in sink.rows["orders"])
