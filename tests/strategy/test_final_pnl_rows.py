"""`final_pnl` writes the session's last `pnl` rows only when the last grid rows are not already
them: a replay whose grid ends on its window's end (`cycles grid`) wrote every final row twice,
identical (QuoteCycle._publish at t1, then final_pnl(t1)). The engine's stop, later than its last
cycle, still writes its rows; so does a stop at the same time whose figures changed since."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from strategy_helpers import WalkingBooks, make_market

from pmm_widgets.config import Params, load_settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.store.sink import MemorySink

T0 = parse_time("2026-11-30T10:00:00Z")


async def _run(until: float):
    params = Params(paper_fill_intensity=6.0)
    sink = MemorySink()
    ms = [make_market(i) for i in range(3)]
    books = WalkingBooks(ms, seed=4)
    ex = PaperExchange(params, sink, seed=9)
    qc = QuoteCycle(params, sink, Mode.PAPER, pnl_sec=10.0)
    now = 1000.0
    while now <= until:
        books.step(now)
        await qc.run_once(now, ms, books.view, ex)
        now += 5.0
    return sink, qc, ex, ms


def _dups(rows) -> dict[tuple[float, str], int]:
    return {k: n for k, n in Counter((r["ts"], r["market"]) for r in rows).items() if n > 1}


async def test_final_rows_on_the_grid_are_written_once():
    sink, qc, _, _ = await _run(1300.0)  # the last cycle, 1300, is on the 10-s grid: it wrote rows
    assert sink.rows["trades"]
    n = len(sink.rows["pnl"])
    last = [r for r in sink.rows["pnl"] if r["ts"] == 1300.0]
    assert last
    qc.final_pnl(1300.0)
    assert len(sink.rows["pnl"]) == n and not _dups(sink.rows["pnl"])
    assert qc.totals.pnl.total == next(r["total"] for r in last if r["market"] == "TOTAL")


async def test_a_stop_after_the_last_cycle_still_writes_its_rows_once():
    sink, qc, ex, ms = await _run(1305.0)  # 1305: off the grid, its fills are in no row yet
    n = len(sink.rows["pnl"])
    qc.final_pnl(1305.0)
    end = sink.rows["pnl"][n:]
    assert {r["ts"] for r in end} == {1305.0} and end[-1]["market"] == "TOTAL"
    qc.final_pnl(1310.0)  # no cycle since: nothing more (the replay's recorded stop, then its window end)
    assert len(sink.rows["pnl"]) == n + len(end) and not _dups(sink.rows["pnl"])


async def test_figures_that_changed_after_the_grid_rows_are_written():
    sink, qc, ex, ms = await _run(1300.0)
    n = len(sink.rows["pnl"])
    held = next(m for m in ms if qc.inventory(m.condition_id).yes or qc.inventory(m.condition_id).no)
    assert await qc.resolve_market(1300.0, held.condition_id, held.yes_token_id, ex, "market_resolved")
    qc.final_pnl(1300.0)  # same time, other figures: the settlement is in the last rows
    end = sink.rows["pnl"][n:]
    assert end and end[-1]["market"] == "TOTAL" and end[-1]["total"] == qc.totals.pnl.total
    assert next(r for r in end if r["market"] == held.condition_id)["settlement"] != 0


@pytest.fixture(scope="module")
def rec_dir(synth_rec):
    return synth_rec


def test_a_grid_replay_writes_no_pnl_row_twice(rec_dir):
    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20)
    sink = MemorySink()
    res = asyncio.run(Replayer(s, T0, T0 + 180, cycles="grid", sink=sink).run())
    assert res.summary["cycles_mode"] == "grid" and res.trades
    rows = sink.rows["pnl"]
    assert max(r["ts"] for r in rows) == T0 + 180  # the window's end: the grid's last rows are the final ones
    assert not _dups(rows)
