"""The strategy against the sandbox's market simulator (its books, its public tape, its adverse
flow), recorded through the real BatchWriter into SQLite, then reported and restarted.

Pure in-process: the simulator is driven step by step, no sockets; simulated minutes take
about a second.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from pmm_widgets.analytics.report import build_report, report_main
from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Market, Mode, PublicTrade, Side
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.sandbox.simulator import Simulator
from pmm_widgets.store import schema
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.repo import load_calibration
from pmm_widgets.store.writer import BatchWriter

D = Decimal
T0 = 1_000_000.0


def markets_of(sim: Simulator) -> list[Market]:
    return [Market(m.condition_id, m.question, m.yes_token_id, m.no_token_id, m.tick_size, m.min_order_size,
                   closed=m.closed, accepting_orders=m.accepting_orders) for m in sim.markets]


def view_of(sim: Simulator, token: str, ts: float) -> BookView | None:
    snap = sim.book_snapshot(token)
    if snap is None:
        return None
    lv = lambda xs: tuple(Level(D(x["price"]), D(x["size"])) for x in reversed(xs))  # noqa: E731 (wire is best-last)
    return BookView(token, snap["market"], lv(snap["bids"]), lv(snap["asks"]), D(snap["tick_size"]),
                    D(snap["min_order_size"]), ts=ts)


async def trade(sim: Simulator, params: Params, sink, minutes: float, cal=None, seed: int = 1):
    ms = markets_of(sim)
    ex = PaperExchange(params, sink, seed=seed)
    qc = QuoteCycle(params, sink, Mode.PAPER, cal)
    t = sim.now()
    seen = t
    for _ in range(int(minutes * 20)):
        t += 3.0
        sim.run_until(t)
        for p in sim.public_trades(since=seen):
            ex.observe_trade(PublicTrade(p["asset_id"], p["market"], D(p["price"]), D(p["size"]),
                                         Side(p["side"]), int(p["timestamp"]) / 1000))
        seen = t
        await qc.run_once(t, ms, lambda tok: view_of(sim, tok, t), ex)  # noqa: B023 -- awaited here
    return ms, ex, qc


async def test_paper_on_the_sandbox_simulator_records_and_restarts(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'pmm.db'}"
    upgrade(url)
    writer = BatchWriter(url, flush_sec=0.2).start()
    sim = Simulator(markets=12, seed=7, start_ts=T0)
    params = Params(paper_fill_intensity=4.0)
    ms, ex, qc = await trade(sim, params, writer, minutes=5)
    qc.calibrator.persist(sim.now())  # what the engine's shutdown does (engine/core.py)
    writer.close()

    states = qc.snapshot().markets
    closed = [m for m in ms if not m.tradable]
    assert closed and all(states[m.condition_id].status == "closed" for m in closed)
    assert all(o.market not in {m.condition_id for m in closed} for o in ex.open_orders())

    engine = make_engine(url)
    with engine.connect() as conn:
        trades = conn.execute(select(schema.trades)).mappings().all()
        orders = conn.execute(select(schema.orders)).mappings().all()
    yes_tokens = {m.yes_token_id for m in ms}
    assert {t["fill_type"] for t in trades} == {"PARTIAL", "FILLED"}
    assert {t["token_id"] in yes_tokens for t in trades} == {True, False}  # fills on both tokens
    assert all(t["mode"] == "paper" and t["status"] == "MATCHED" for t in trades)
    assert not [o for o in orders if o["status"] == "REJECTED"]
    with engine.connect() as conn:
        horizons = conn.execute(select(schema.markouts.c.trade_id, schema.markouts.c.horizon_sec)).all()
    by_trade: dict[str, set[float]] = {}
    for tid, h in horizons:
        by_trade.setdefault(tid, set()).add(h)
    old = [t for t in trades if t["ts"] <= sim.now() - 125]
    assert old and all({5.0, 30.0, 120.0} <= by_trade.get(t["trade_id"], set()) for t in old)
    assert all("markouts" not in (t["raw_json"] or {}) for t in trades)  # raw_json: the fill model's payload
    assert qc.snapshot().totals.fills == len(trades)

    df = build_report(engine).set_index("market")
    assert df.loc["TOTAL", "fills"] == len(trades) and df.loc["TOTAL", "placed"] == len(orders)
    cal = load_calibration(engine)  # what the engine reads at start-up
    engine.dispose()

    class S:
        db_url = url
    assert report_main(S()) == 0
    assert "TOTAL" in capsys.readouterr().out

    # restart: the calibration stored in the DB is where the next run starts
    assert cal
    again = QuoteCycle(params, writer, Mode.PAPER, cal)
    for cid in cal:
        assert again.calibrator.mult(cid) == qc.calibrator.mult(cid)
        assert again.calibrator.state(cid).fills == qc.calibrator.state(cid).fills


async def test_queue_model_fills_from_the_sandbox_tape():
    from pmm_widgets.store.sink import MemorySink

    sink = MemorySink()
    sim = Simulator(markets=12, seed=11, start_ts=T0)
    params = Params(paper_fill_model="queue", alpha=0.5, calib_min_mult=0.5)
    ms, ex, qc = await trade(sim, params, sink, minutes=5)
    trades = sink.rows.get("trades", [])
    assert trades, "the public tape of 5 simulated minutes reaches some of our queues"
    assert {t["raw_json"]["model"] for t in trades} == {"queue"}
    placed = {o["client_id"]: o for o in sink.rows["orders"]}
    assert all(t["price"] == placed[t["order_id"]]["price"] for t in trades)  # maker fills at our limit
