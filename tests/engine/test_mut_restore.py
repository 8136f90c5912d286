"""`engine/restore.py` piece by piece, without an engine or a DB (what a mutation pass found
pinned only by the slow end-to-end restart test, or not at all): the rows read from the DB, the
rows recorded for a replay, the rebuild's rewards / rebates / settlements, the positions, the
install into a fresh cycle, and the start-up hook's messages and venue check."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from pmm_widgets.analytics.pnl import MarketLedger
from pmm_widgets.config import Params
from pmm_widgets.domain import Fill, FillType, Market, Mode, Side
from pmm_widgets.engine import restore
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.engine.restore import Restored, SessionRows, SettlementRow, TradeRow
from pmm_widgets.events import EventKind, Level
from pmm_widgets.store.sink import MemorySink

DAY1 = 1_796_083_200.0  # 2026-12-01 00:00 UTC
PAIRS = {"c0": ("y0", "n0"), "c1": ("y1", "n1")}


def _trade(market: str, token: str, side: str, price: str, size: str, ts: float, **kw: Any) -> dict[str, Any]:
    return {"market": market, "token_id": token, "side": side, "price": price, "size": size, "ts": ts,
            "status": kw.pop("status", "MATCHED"), "fee": kw.pop("fee", None), "rebate": kw.pop("rebate", None),
            "raw_json": kw.pop("raw_json", {}), **kw}


def _tokens(pairs: dict[str, tuple[str, str]] = PAIRS) -> list[dict[str, str]]:
    return [{"condition_id": c, "yes_token_id": y, "no_token_id": n} for c, (y, n) in pairs.items()]


def _settled(market: str, winner: str | None, **kw: Any) -> dict[str, Any]:
    return {"market": market, "winner_token": winner, "payout": kw.get("payout", "0"), "pnl": kw.get("pnl", "0"),
            "yes_shares": kw.get("yes", "0"), "no_shares": kw.get("no", "0")}


# ---------------------------------------------------------------------------------- summary
def test_the_summary_says_each_count_only_when_there_is_one():
    empty = Restored()
    assert empty.empty and empty.summary() == "restored from the DB: 0 fills over 0 markets, realized PnL 0.0000"
    m = Market("c0", "q", "y0", "n0", D("0.01"), D(5))
    lg = MarketLedger()
    lg.apply(Fill("1", "o", "c0", "y0", Side.BUY, D("0.40"), D(10), FillType.FILLED, Mode.PAPER, 1.0), m, None)
    lg.apply(Fill("2", "o", "c0", "y0", Side.SELL, D("0.50"), D(10), FillType.FILLED, Mode.PAPER, 2.0), m, None)
    s = SettlementRow("c9", "y9", D(0), D(0), D(0), D(0))
    full = Restored(ledgers={"c0": lg}, fills=2, skipped=3, failed=1, resolved={"c9": s})
    assert not full.empty
    assert full.summary() == ("restored from the DB: 2 fills over 1 markets, realized PnL 1.0000, 1 resolved, "
                              "3 fills of unknown markets skipped, 1 failed trades left out")
    assert Restored(ledgers={"c0": MarketLedger()}, fills=0).summary().endswith("realized PnL 0.0000")


# ---------------------------------------------------------------------------------- parse_rows
def test_rows_read_with_missing_and_odd_fields():
    rows = restore.parse_rows({
        "trades": [_trade("c0", "y0", "buy", "0.4", "10", 1.0, raw_json={"book_mid": "0.41"}),
                   _trade(None, "y0", "SELL", "0.5", "1", 2.0, raw_json="not an object"),  # type: ignore[arg-type]
                   _trade("c0", "n0", "BUY", "0.3", "2", 3.0, raw_json={"book_mid": ""}, status=None),
                   _trade("c0", "n0", "BUY", "0.3", "2", 4.0, raw_json=None, status="failed")],
        "tokens": _tokens(),
        "settlements": [_settled("c0", None, payout="1.5", pnl="0.25", yes="1.5", no="2"), _settled("c1", "y1")],
    })
    assert [(t.market, t.side, t.mid) for t in rows.trades] == [("c0", Side.BUY, D("0.41")), ("", Side.SELL, None),
                                                               ("c0", Side.BUY, None)]
    assert rows.failed == 1  # status compared case-blind
    assert rows.settlements == {"c0": SettlementRow("c0", "", D("1.5"), D("0.25"), D("1.5"), D(2)),
                                "c1": SettlementRow("c1", "y1", D(0), D(0), D(0), D(0))}
    assert rows.tokens == PAIRS


# ---------------------------------------------------------------------------------- rows for a replay
def test_recorded_rows_name_the_pairs_their_fills_and_amounts_need_and_nothing_else():
    rows = SessionRows((TradeRow("", "y1", Side.BUY, D("0.5"), D(1), 1.0),), {**PAIRS, "c2": ("y2", "n2")},
                       {}, {})
    d = restore.rows_to_json(rows)
    assert d is not None and d["tokens"] == {"c1": ["y1", "n1"]}  # a fill without its market: by its token
    for only in (SessionRows((), PAIRS, {"c0": D("0.1")}, {}), SessionRows((), PAIRS, {}, {}, failed=2),
                 SessionRows((), PAIRS, {}, {"c1": SettlementRow("c1", "y1", D(0), D(0), D(0), D(0))}),
                 SessionRows((), PAIRS, {}, {}, paid={("rewards", "c0", "2026-12-01"): D(1)}),
                 SessionRows((), PAIRS, {}, {}, paid_days=frozenset({("rewards", "2026-12-01")}))):
        got = restore.rows_to_json(only)
        assert got is not None and restore.rows_from_json(got).failed == only.failed
    named = restore.rows_to_json(SessionRows((), PAIRS, {"c0": D("0.1")}, {},
                                             paid={("rebates", "c1", "2026-12-01"): D(1)}))
    assert named is not None and named["tokens"] == {"c0": ["y0", "n0"], "c1": ["y1", "n1"]}
    assert restore.rows_from_json({}).failed == 0 and restore.rows_from_json({}) == SessionRows((), {}, {}, {})


# ---------------------------------------------------------------------------------- rebuild
def test_the_universe_adds_pairs_and_a_fill_without_its_market_is_found_by_its_token():
    rows = SessionRows((TradeRow("", "y0", Side.BUY, D("0.4"), D(10), 1.0),
                        TradeRow("c5", "y5", Side.BUY, D("0.4"), D(2), 2.0)), PAIRS, {}, {})
    got = restore.rebuild(rows, 10.0, 300.0, [Market("c5", "q", "y5", "n5", D("0.01"), D(5))])
    assert (got.fills, got.skipped) == (2, 0) and got.ledgers["c0"].yes == 10 and got.ledgers["c5"].yes == 2
    assert restore.rebuild(rows, 10.0, 300.0).skipped == 1  # without the universe: c5 is unknown


def test_rewards_and_rebates_alone_open_a_ledger_and_nothing_opens_one_for_nothing():
    day = "2026-12-01"
    rows = SessionRows((TradeRow("c0", "y0", Side.BUY, D("0.4"), D(10), DAY1 + 5),), PAIRS,
                       {"c1": D("0.30"), "c2": D("0.5")}, {},
                       rewards_by_day={("c1", day): D("0.30"), ("c2", day): D("0.5")},
                       paid={("rewards", "c1", day): D("0.30"), ("rewards", "c2", day): D(0),
                             ("rebates", "c3", day): D("0.07")},
                       paid_days=frozenset({("rewards", day), ("rebates", day)}))
    got = restore.rebuild(rows, DAY1 + 10, 300.0)
    assert set(got.ledgers) == {"c0", "c1", "c3"}  # c2: its estimate replaced by a payment of 0
    assert got.ledgers["c1"].rewards == D("0.30") and got.ledgers["c3"].rebates == D("0.07")
    assert got.rebates_by_day == {}  # a fill without a rebate accrues nothing


def test_a_settlement_redeems_the_winner_and_a_market_without_fills_is_still_resolved():
    """BUG (fixed): a market resolved while this account held nothing there (its orders were
    cancelled, no fill) has a `settlements` row but no ledger; the rebuild skipped it, so after a
    restart it was not among the resolved markets and the cycle could quote it again."""
    rows = SessionRows((TradeRow("c0", "y0", Side.BUY, D("0.4"), D(10), 1.0),
                        TradeRow("c0", "n0", Side.BUY, D("0.5"), D(4), 2.0)), PAIRS, {},
                       {"c0": SettlementRow("c0", "y0", D(10), D("5.5"), D(10), D(4)),
                        "c1": SettlementRow("c1", "n1", D(0), D(0), D(0), D(0)),
                        "c7": SettlementRow("c7", "y7", D(0), D(0), D(0), D(0))})
    got = restore.rebuild(rows, 10.0, 300.0)
    lg = got.ledgers["c0"]
    assert lg.cash == D("-6.0") + 10 and lg.last_mid == 1 and lg.settlement == D("5.5") and lg.settled
    assert (lg.yes, lg.no, lg.net, lg.avg) == (0, 0, 0, 0)
    assert set(got.resolved) == {"c0", "c1", "c7"} and set(got.ledgers) == {"c0"}
    no_won = restore.rebuild(SessionRows(rows.trades, PAIRS, {}, {"c0": SettlementRow("c0", "n0", D(4), D(0), D(10),
                                                                                       D(4))}), 10.0, 300.0)
    assert no_won.ledgers["c0"].cash == D("-6.0") + 4 and no_won.ledgers["c0"].last_mid == 0


def test_positions_name_only_the_tokens_held_of_known_pairs():
    rows = SessionRows((TradeRow("c0", "n0", Side.BUY, D("0.5"), D(4), 1.0),
                        TradeRow("c1", "y1", Side.BUY, D("0.5"), D(3), 2.0),
                        TradeRow("c1", "y1", Side.SELL, D("0.5"), D(3), 3.0)), PAIRS, {}, {})
    got = restore.rebuild(rows, 10.0, 300.0)
    assert restore.positions(got, PAIRS) == {"n0": D(4)}
    assert restore.positions(got, {"c1": PAIRS["c1"]}) == {}


# ---------------------------------------------------------------------------------- install / resume
class PaperLike:
    def __init__(self) -> None:
        self.positions: dict[str, D] = {"other": D(1)}


def _state() -> tuple[SessionRows, Restored]:
    rows = SessionRows((TradeRow("c0", "y0", Side.BUY, D("0.4"), D(10), 900.0, D("0.01"), D("0.002")),
                        TradeRow("c1", "n1", Side.BUY, D("0.5"), D(4), 990.0)), PAIRS, {"c0": D("0.25")},
                       {"c1": SettlementRow("c1", "y1", D(0), D("-2"), D(0), D(4))})
    return rows, restore.rebuild(rows, 1000.0, 300.0)


def test_install_writes_ledgers_economics_resolutions_the_fill_window_and_paper_positions():
    rows, got = _state()
    qc = QuoteCycle(Params(), MemorySink(), Mode.PAPER)
    qc.calibrator.state("c9")  # a market the cycle knew already: its window starts with the restored one
    ex = PaperLike()
    restore.install(got, qc, ex, 1000.0, PAIRS)
    assert qc.pnl.ledgers["c0"] is got.ledgers["c0"]
    assert (qc.econ.fees["c0"], qc.econ.rebates["c0"], qc.econ.rewards["c0"]) == (D("0.01"), D("0.002"), D("0.25"))
    assert qc._resolved == {"c1": "y1"} and qc.econ.settled == {"c1": "y1"}
    assert qc.econ._settlement_sums["c1"] == (D(0), D(4), D(0), D("-2"), "restored")
    window = qc.calibrator.window_sec
    start = max(1000.0 - window, 900.0 - 1e-6)
    assert {c: st.started_at for c, st in qc.calibrator.states.items()} == {"c0": start, "c1": start, "c9": start}
    assert qc.calibrator.state("c0").fill_ts == [900.0] and qc.calibrator.state("c1").fill_ts == [990.0]
    assert ex.positions == {"other": D(1), "y0": D(10)}  # c1 was redeemed: nothing held there
    restore.install(restore.rebuild(SessionRows((), PAIRS, {}, {}), 1000.0, 300.0), QuoteCycle(Params(), MemorySink(),
                    Mode.LIVE), object(), 1000.0, PAIRS)  # no positions dict, no fills: nothing to write


def test_install_starts_the_window_just_before_the_first_fill_when_that_is_later():
    rows = SessionRows((TradeRow("c0", "y0", Side.BUY, D("0.4"), D(10), 999.0),), PAIRS, {}, {})
    qc = QuoteCycle(Params(), MemorySink(), Mode.PAPER)
    restore.install(restore.rebuild(rows, 1000.0, 300.0), qc, None, 1000.0, PAIRS)
    assert qc.calibrator.state("c0").started_at == pytest.approx(999.0 - 1e-6, abs=1e-9)
    assert qc.calibrator.state("c0").started_at < 999.0


class LiveLike:
    def __init__(self, answer: dict[str, D] | Exception) -> None:
        self.answer, self.asked = answer, []

    async def venue_positions(self, tokens: list[str]) -> dict[str, D]:
        self.asked.append(tokens)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def _resume(rows: SessionRows, mode: Mode, ex: Any) -> tuple[Restored, QuoteCycle, list[tuple[Level, EventKind, str]]]:
    said: list[tuple[Level, EventKind, str]] = []
    qc = QuoteCycle(Params(), MemorySink(), mode)
    got = await restore.resume(rows, qc, ex, mode, [Market("c2", "q", "y2", "n2", D("0.01"), D(5))], 1000.0,
                               lambda lv, kind, msg: said.append((lv, kind, msg)))
    return got, qc, said


async def test_resume_says_what_it_restored_and_live_checks_the_unresolved_positions_with_the_venue():
    rows, _ = _state()
    rows = SessionRows(rows.trades + (TradeRow("c2", "y2", Side.BUY, D("0.3"), D(1), 995.0),), PAIRS, rows.rewards,
                       rows.settlements, rewards_by_day={("c0", "2026-12-01"): D("0.25")},
                       paid_days=frozenset({("rewards", "2026-12-02"), ("rebates", "2026-12-03")}))
    ex = LiveLike({"y0": D(10), "n0": D(0), "y2": D(3)})
    got, qc, said = await _resume(rows, Mode.LIVE, ex)
    assert ex.asked == [["n0", "n2", "y0", "y2"]]  # sorted; c1 resolved: not asked; c2's pair from the universe
    assert said == [(Level.INFO, EventKind.RESTORE, got.summary()),
                    (Level.WARNING, EventKind.RESTORE, "restored positions disagree with the venue (the DB misses "
                                                       "fills, or another client trades this wallet): y2…: DB 1, venue 3")]
    assert qc.econ.rewards_by_day == {("c0", "2026-12-01"): D("0.25")}
    assert qc.econ.rebates_by_day == got.rebates_by_day == {("c0", "1970-01-01"): D("0.002")}
    assert qc.econ.payouts.done == {"2026-12-02"}  # only the days whose rewards were read
    assert qc.pnl.ledgers["c2"].yes == 1

    ex.answer = {"y0": D(10), "y2": D(1)}
    _, _, said = await _resume(rows, Mode.LIVE, ex)
    assert [lv for lv, _, _ in said] == [Level.INFO]  # agreeing: nothing more said
    failing = LiveLike(RuntimeError("venue down"))
    _, _, said = await _resume(rows, Mode.LIVE, failing)
    assert said[1] == (Level.WARNING, EventKind.RESTORE,
                       "restored positions not checked against the venue: RuntimeError: venue down")
    paper = LiveLike({})
    _, _, said = await _resume(rows, Mode.PAPER, paper)
    assert paper.asked == [] and len(said) == 1


async def test_resume_of_nothing_installs_and_says_nothing():
    rows = SessionRows((), PAIRS, {}, {"c1": SettlementRow("c1", "y1", D(0), D(0), D(0), D(0))},
                       paid_days=frozenset({("rewards", "2026-12-02")}))
    ex = LiveLike({})
    got, qc, said = await _resume(rows, Mode.LIVE, ex)
    assert got.empty and said == [] and ex.asked == []
    assert qc._resolved == {"c1": "y1"} and qc.econ.payouts.done == {"2026-12-02"}
