"""The per-minute reward estimate is not biased by rounding: each minute used to be rounded down to
6 dp before it was summed (the ledgers, the tracker) and stored, ≈ 0.7 % low on small shares (QA:
0.002277 stored against 0.0022936). The accrual keeps its precision; the `reward_estimates.usd`
rows (6 dp) carry their rounding remainder to the market's next row, so they (and the ledger,
which adds the rows' amounts) sum to the exact estimate within one pUSD unit."""

from __future__ import annotations

from decimal import Decimal as D

from sqlalchemy import create_engine, func, insert, select

from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Market, Mode
from pmm_widgets.economics.rewards import USD_QUANTUM, RewardProgram, UsdCarry, minute_reward
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store import schema
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.gamma_terms import decode_terms


def test_minute_reward_keeps_its_precision() -> None:
    prog = RewardProgram(D(5), D(3), D(7))  # 7/1440 a minute: no finite decimal
    sh = D(1) / D(7)
    assert minute_reward(prog, sh) == (D(7) / 1440 * sh).quantize(D("1e-12"), rounding="ROUND_DOWN")
    assert minute_reward(prog, sh) > (D(7) / 1440 * sh).quantize(USD_QUANTUM, rounding="ROUND_DOWN")
    total = sum((minute_reward(prog, sh) for _ in range(1440)), D(0))
    assert D(1) - D("1e-8") < total <= D(1)  # a day at 1/7 of a $7 pool: $1, not $0.999360


def test_usd_carry_rounds_without_bias() -> None:
    carry = UsdCarry()
    amounts = [D(k) / D(3_000_007) for k in range(1, 400)]  # all below a few pUSD units, no finite decimal
    exact = D(0)
    stored = D(0)
    for a in amounts:
        q = carry.round("m", a)
        assert q == q.quantize(USD_QUANTUM) and q >= 0
        exact += a
        stored += q
        assert D(0) <= exact - stored < USD_QUANTUM  # at every row: never above, never a unit short
    assert carry.round("other", D("0.0000004")) == 0 and carry.round("other", D("0.0000007")) == D("0.000001")


async def test_stored_reward_rows_sum_to_the_exact_estimate(tmp_path) -> None:
    params = Params()
    sink = MemorySink()
    m = Market("0xw", "W?", "yw", "nw", D("0.01"), D(5), terms=decode_terms({
        "rewardsMinSize": 5, "rewardsMaxSpread": 3, "clobRewards": [{"rewardsDailyRate": 7}]}))
    t = m.tick_size
    y = BookView(m.yes_token_id, m.condition_id, (Level(D("0.40"), D(1000)), Level(D("0.39"), D(777))),
                 (Level(D("0.44"), D(1000)), Level(D("0.45"), D(555))), t)
    n = BookView(m.no_token_id, m.condition_id, (Level(D("0.56"), D(1000)), Level(D("0.55"), D(555))),
                 (Level(D("0.60"), D(1000)), Level(D("0.61"), D(777))), t)
    books = {y.token_id: y, n.token_id: n}
    ex = PaperExchange(params, sink, seed=1)
    qc = QuoteCycle(params, sink, Mode.PAPER)
    for k in range(95):  # 20-s cycles: a reward sample every third, 32 of them
        await qc.run_once(1_000_000.0 + 20.0 * k, [m], books.get, ex)
    rows = sink.rows["reward_estimates"]
    assert len(rows) >= 30 and len([r for r in rows if r["share"] > 0]) >= 15  # once the quotes are in the band
    per_min = D(7) / 1440
    exact = sum((per_min * r["share"] for r in rows), D(0))  # the estimate, unrounded
    stored = sum((r["usd"] for r in rows), D(0))
    assert all(r["usd"] == r["usd"].quantize(USD_QUANTUM) for r in rows)  # what the Numeric(24, 6) column holds
    assert D(0) <= exact - stored < USD_QUANTUM  # rounded down per row, ~20 scoring rows lost ~10 units
    assert qc.pnl.ledger(m.condition_id).rewards == stored  # the PnL is what the rows say (report, restart)
    assert abs(qc.econ.rewards[m.condition_id] - exact) < D("1e-9")  # the tracker's accrual: unrounded
    # through the database: the column keeps the 6-dp rows exactly
    eng = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    schema.metadata.create_all(eng)
    with eng.begin() as c:
        for r in rows:
            c.execute(insert(schema.reward_estimates).values(ts=r["ts"], market=r["market"], mode=r["mode"],
                                                             usd=r["usd"], share=r["share"]))
        db_sum = c.execute(select(func.sum(schema.reward_estimates.c.usd))).scalar()
        db_rows = [v for (v,) in c.execute(select(schema.reward_estimates.c.usd))]
    assert sum((D(str(v)) for v in db_rows), D(0)) == stored
    assert abs(D(str(db_sum)) - exact) < USD_QUANTUM
