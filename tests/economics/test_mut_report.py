"""`pmm report` (analytics/report.py) pinned figure by figure over a small hand-written SQLite DB,
where mutation testing found it untested: the columns its module doc names (placed, fills,
partial/filled, volume, fills/min, the latest PnL row, markout means), the decomposition's signs
(total = spread + inventory + settlement − fees + rebates + rewards), the session span fills/min
divides by, the venue's paid amounts replacing the estimates of the days it paid, the scope (one
mode, one replay run: never another's rows in the totals), and what is printed."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert

from pmm_widgets.analytics import report
from pmm_widgets.analytics.report import build_report, economics, economics_json, report_main, session_minutes
from pmm_widgets.config import ConfigError
from pmm_widgets.store import schema

A, B, C = "0xaaaaaaaaaaaa", "0xbbbbbbbbbbbbb", "0xccc"  # A: the 14 characters printed whole; B: one more
DAY1 = 1_796_083_200.0  # 2026-12-01 00:00 UTC
DAY2 = DAY1 + 86_400


def _engine(tmp_path: Path, name: str = "r.db", tables: tuple[str, ...] | None = None) -> tuple[Engine, str]:
    url = f"sqlite:///{tmp_path / name}"
    eng = create_engine(url)
    if tables is None:
        schema.metadata.create_all(eng)
    else:
        schema.metadata.create_all(eng, tables=[schema.metadata.tables[t] for t in tables])
    return eng, url


def _order(n: int, market: str, created: float, updated: float, status: str = "LIVE", mode: str = "paper",
           run_id: str | None = None) -> dict[str, Any]:
    return {"client_id": f"c{n}", "mode": mode, "market": market, "token_id": f"{market}-y", "side": "BUY",
            "price": D("0.5"), "size": D(10), "status": status, "created_ts": created, "updated_ts": updated,
            "run_id": run_id}


def _trade(n: int, market: str, price: str, size: str, ts: float, fill_type: str = "FILLED", fee: str = "0",
           rebate: str = "0", mode: str = "paper", run_id: str | None = None, side: str = "BUY") -> dict[str, Any]:
    return {"trade_id": f"t{n}", "market": market, "token_id": f"{market}-y", "side": side, "price": D(price),
            "size": D(size), "fill_type": fill_type, "mode": mode, "ts": ts, "fee": D(fee), "rebate": D(rebate),
            "run_id": run_id}


def _pnl(market: str, ts: float, total: str, spread: str, inventory: str, mode: str = "paper",
         run_id: str | None = None, inv_yes: str = "0") -> dict[str, Any]:
    return {"market": market, "ts": ts, "mode": mode, "run_id": run_id, "total": D(total),
            "realized": D(spread), "unrealized": D(inventory), "spread_pnl": D(spread),
            "inventory_pnl": D(inventory), "inventory_yes": D(inv_yes), "inventory_no": D(0)}


def _markout(n: int, market: str, horizon: float, x: float | None, mode: str = "paper",
             run_id: str | None = None) -> dict[str, Any]:
    return {"trade_id": f"t{n}", "market": market, "mode": mode, "horizon_sec": horizon, "markout": x,
            "ts": 2000.0, "run_id": run_id}


def _fill(eng: Engine, **rows: list[dict[str, Any]]) -> None:
    with eng.begin() as conn:
        for name, rs in rows.items():
            if rs:
                conn.execute(insert(schema.metadata.tables[name]), rs)


def _paper_db(tmp_path: Path) -> tuple[Engine, str]:
    """Paper rows of markets A, B (traded) and C (quoted only), with a live session's and a
    replay's rows beside them that a paper report must leave out."""
    eng, url = _engine(tmp_path)
    _fill(
        eng,
        orders=[_order(1, A, 1000.0, 1030.0), _order(2, A, 1010.0, 1100.0, "FILLED"),
                _order(3, A, 900.0, 2000.0, "REJECTED"),  # neither placed nor part of the span
                _order(4, B, 1020.0, 1060.0, "CANCELED"), _order(5, C, 1030.0, 1035.0),
                _order(6, A, 5000.0, 6000.0, mode="live"), _order(7, A, 1000.0, 9000.0, mode="replay", run_id="rp1")],
        trades=[_trade(1, A, "0.40", "10", 1040.0, fee="0.01", rebate="0.002"),
                _trade(2, A, "0.45", "4", 1050.0, "PARTIAL", rebate="0.001", side="SELL"),
                _trade(3, B, "0.30", "5", 1060.0, fee="0.02"),
                _trade(4, A, "0.9", "100", 5500.0, fee="1", rebate="1", mode="live"),
                _trade(5, A, "0.9", "100", 1050.0, fee="1", rebate="1", mode="replay", run_id="rp1")],
        pnl=[_pnl(A, 1100.0, "1", "0.5", "0.5"), _pnl(A, 1240.0, "2.5", "2.0", "0.5", inv_yes="6"),
             _pnl(B, 1150.0, "-0.25", "-0.1", "-0.15"), _pnl("TOTAL", 1240.0, "2.25", "1.9", "0.35"),
             _pnl(A, 9000.0, "99", "99", "99", mode="live"), _pnl(A, 9500.0, "77", "77", "77", mode="replay", run_id="rp1"),
             _pnl(A, 9500.0, "55", "55", "55", mode="replay", run_id="rp2")],  # another run, the same times
        markouts=[_markout(1, A, 0.0, 0.01), _markout(2, A, 0.0, 0.03), _markout(1, A, 5.0, 0.02),
                  _markout(2, A, 5.0, -0.04), _markout(2, A, 5.0, None), _markout(1, A, 30.0, 0.05),
                  _markout(1, A, 60.0, 0.5),  # not a report horizon: left out
                  _markout(3, B, 5.0, 0.1), _markout(3, B, 120.0, -0.2),
                  _markout(4, A, 5.0, 9.0, mode="live"), _markout(5, A, 5.0, 7.0, mode="replay", run_id="rp1")],
        reward_estimates=[{"ts": 1.0, "market": A, "mode": "paper", "usd": D("0.1")},
                          {"ts": 2.0, "market": A, "mode": "paper", "usd": D("0.05")},
                          {"ts": 2.0, "market": A, "mode": "live", "usd": D("5")}],
        settlements=[{"ts": 3.0, "market": A, "mode": "paper", "pnl": D("0.7"), "run_id": ""},
                     {"ts": 3.0, "market": B, "mode": "paper", "pnl": D("-0.2"), "run_id": ""},
                     {"ts": 3.0, "market": A, "mode": "live", "pnl": D("5"), "run_id": ""}],
        markets=[{"snapshot_ts": 0.0, "rank": 0, "condition_id": A, "question": "Will A happen by the end of 2026", "yes_token_id": "ay",
                  "no_token_id": "an"},
                 {"snapshot_ts": 0.0, "rank": 1, "condition_id": B, "yes_token_id": "by", "no_token_id": "bn",
                  "question": "Will B happen by the end of 2026?"}],  # 33 characters: 32 printed
    )
    return eng, url


def test_the_paper_report_counts_each_markets_own_rows(tmp_path: Path) -> None:
    eng, _ = _paper_db(tmp_path)
    df = build_report(eng, "paper").set_index("market")
    assert list(df.index) == [A, B, C, "TOTAL"]
    assert df.loc[A, "question"] == "Will A happen by the end of 2026" and df.loc[C, "question"] == "" and df.loc["TOTAL", "question"] == ""
    assert [int(df.loc[m, "placed"]) for m in (A, B, C, "TOTAL")] == [2, 1, 1, 4]
    assert [int(df.loc[m, "fills"]) for m in (A, B, C, "TOTAL")] == [2, 1, 0, 3]
    assert [int(df.loc[m, "partial"]) for m in (A, B, C, "TOTAL")] == [1, 0, 0, 1]
    assert [int(df.loc[m, "filled"]) for m in (A, B, C, "TOTAL")] == [1, 1, 0, 2]
    assert df.loc[A, "volume"] == pytest.approx(5.8, abs=1e-12)
    assert df.loc[B, "volume"] == pytest.approx(1.5, abs=1e-12)
    assert df.loc["TOTAL", "volume"] == pytest.approx(7.3, abs=1e-12)
    # the span: the first order placed (1000; the rejected one at 900 does not count) to the last
    # pnl row (1240): 4 minutes
    assert [df.loc[m, "fills_per_min"] for m in (A, B, C, "TOTAL")] == [0.5, 0.25, 0.0, 0.75]
    # each market's latest pnl row of the paper session (the live row at 9000 is not it)
    assert df.loc[A, "pnl_total"] == 2.5 and df.loc[A, "pnl_spread"] == 2.0 and df.loc[A, "pnl_inventory"] == 0.5
    assert df.loc[A, "pnl_realized"] == 2.0 and df.loc[A, "pnl_unrealized"] == 0.5 and df.loc[A, "inv_yes"] == 6.0
    assert df.loc[B, "pnl_total"] == -0.25 and df.loc["TOTAL", "pnl_total"] == 2.25
    # C was only quoted: once the engine wrote pnl rows, it made and holds nothing
    assert df.loc[C, "pnl_total"] == 0.0 and df.loc[C, "inv_no"] == 0.0
    # markouts: the means of the stored rows of each horizon (NaN markouts and other horizons out)
    assert df.loc[A, "realized_spread"] == pytest.approx(0.02, abs=1e-15)
    assert df.loc[A, "markout_5s"] == pytest.approx(-0.01, abs=1e-15)
    assert df.loc[A, "markout_30s"] == pytest.approx(0.05, abs=1e-15)
    assert df.loc[B, "markout_120s"] == pytest.approx(-0.2, abs=1e-15)
    assert df.loc["TOTAL", "markout_5s"] == pytest.approx(0.08 / 3, abs=1e-15)
    assert df.loc["TOTAL", "realized_spread"] == pytest.approx(0.02, abs=1e-15)
    assert [int(df.loc[m, "markout_fills"]) for m in (A, B, C, "TOTAL")] == [2, 1, 0, 3]
    assert df[["markout_120s"]].loc[[A, C]].isna().all().all() and df.loc[B, ["realized_spread"]].isna().all()


def test_the_live_and_replay_reports_never_mix_in_the_paper_rows(tmp_path: Path) -> None:
    eng, _ = _paper_db(tmp_path)
    live = build_report(eng, "live").set_index("market")
    assert list(live.index) == [A, "TOTAL"]
    assert int(live.loc[A, "placed"]) == 1 and int(live.loc[A, "fills"]) == 1
    assert live.loc[A, "pnl_total"] == 99.0 and live.loc[A, "markout_5s"] == 9.0
    assert live.loc[A, "fills_per_min"] == pytest.approx(1 / ((9000.0 - 5000.0) / 60.0))
    rp = build_report(eng, "replay", "rp1").set_index("market")
    assert int(rp.loc["TOTAL", "fills"]) == 1 and rp.loc[A, "pnl_total"] == 77.0 and rp.loc[A, "markout_5s"] == 7.0
    assert build_report(eng, "replay", "rp2").set_index("market").loc["TOTAL", "fills"] == 0
    # the default: the engine's sessions (paper and live here), never the replay's
    dflt = build_report(eng).set_index("market")
    assert int(dflt.loc["TOTAL", "fills"]) == 4 and int(dflt.loc["TOTAL", "placed"]) == 5
    assert dflt.loc[A, "pnl_total"] == 99.0  # the newest row of the market in scope


def test_without_pnl_rows_the_pnl_is_unknown_and_old_dbs_have_no_markouts(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path, tables=("orders", "trades", "pnl", "markets"))  # a DB from before markouts
    _fill(eng, orders=[_order(1, A, 1000.0, 1060.0)], trades=[_trade(1, A, "0.5", "2", 1030.0)])
    df = build_report(eng, "paper").set_index("market")
    assert int(df.loc["TOTAL", "fills"]) == 1 and df.loc["TOTAL", "fills_per_min"] == 1.0
    assert df[["pnl_total", "pnl_spread", "inv_yes", "markout_5s", "realized_spread"]].isna().all().all()
    assert int(df.loc["TOTAL", "markout_fills"]) == 0


def test_a_traded_market_without_its_pnl_row_is_unknown_not_zero(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    _fill(eng, trades=[_trade(1, A, "0.5", "2", 1000.0), _trade(2, B, "0.5", "2", 1000.0)],
          pnl=[_pnl(A, 1000.0, "1", "1", "0")])
    df = build_report(eng, "paper").set_index("market")
    assert df.loc[A, "pnl_total"] == 1.0 and df[["pnl_total", "inv_yes"]].loc[[B, "TOTAL"]].isna().all().all()
    # every row at one instant: no span, no rate (not a division by zero, not 1 a minute)
    assert list(df["fills_per_min"]) == [0.0, 0.0, 0.0]


def test_the_session_span(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    with eng.connect() as conn:
        assert session_minutes(conn, "paper", None) is None  # nothing recorded
    _fill(eng, trades=[_trade(1, A, "0.5", "1", 1000.0)])
    with eng.connect() as conn:
        assert session_minutes(conn, "paper", None) is None  # one instant is no span
    _fill(eng, orders=[_order(1, A, 1030.0, 1090.0), _order(2, A, 10.0, 5000.0, "REJECTED")],
          pnl=[_pnl(A, 1060.0, "0", "0", "0")])
    with eng.connect() as conn:  # the fill at 1000 to the order's last update at 1090
        assert session_minutes(conn, "paper", None) == 1.5
        assert session_minutes(conn, "live", None) is None
    _fill(eng, pnl=[_pnl(A, 1180.0, "0", "0", "0")])
    with eng.connect() as conn:  # the last pnl row ends it
        assert session_minutes(conn, "paper", None) == 3.0


def test_a_replay_runs_span_is_its_own_summarys(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    run = {"mode": "replay", "t0": 0.0, "t1": 1.0, "started_ts": 1.0, "status": "done"}
    _fill(eng, replay_runs=[{**run, "run_id": "r-sim", "summary_json": {"sim_seconds": 90}},
                            {**run, "run_id": "r-text", "summary_json": json.dumps({"sim_seconds": 30.0})},
                            {**run, "run_id": "r-zero", "summary_json": {"sim_seconds": 0}},
                            {**run, "run_id": "r-none", "summary_json": None},
                            {**run, "run_id": "r-one", "summary_json": {"sim_seconds": 1}}],
          trades=[_trade(1, A, "0.5", "1", 1000.0, mode="replay", run_id="r-zero"),
                  _trade(2, A, "0.5", "1", 1120.0, mode="replay", run_id="r-zero"),
                  _trade(3, A, "0.5", "1", 1000.0, mode="replay", run_id="r-none"),
                  _trade(4, A, "0.5", "1", 1060.0, mode="replay", run_id="r-none")])
    with eng.connect() as conn:
        assert session_minutes(conn, "replay", "r-sim") == 1.5
        assert session_minutes(conn, "replay", "r-text") == 0.5
        assert session_minutes(conn, "replay", "r-zero") == 2.0  # no sim seconds: the rows' span
        assert session_minutes(conn, "replay", "r-none") == 1.0
        assert session_minutes(conn, "replay", "r-one") == 1 / 60  # one simulated second
        assert session_minutes(conn, "replay", None) == 2.0  # every replay row
        assert session_minutes(conn, "paper", "r-sim") is None  # only a replay run has a summary


def test_the_decomposition_adds_up_with_its_signs(tmp_path: Path) -> None:
    eng, _ = _paper_db(tmp_path)
    doc = economics(eng, "paper")
    a, b = doc["markets"]
    assert a == {"market": A, "fills": 2, "fills_per_min": 0.5, "spread": D("2.0"), "inventory": D("0.5"),
                 "fees": D("0.01"), "rebates": D("0.003"), "rewards": D("0.15"), "settlement": D("0.7"),
                 "total": D("3.343")}
    assert b == {"market": B, "fills": 1, "fills_per_min": 0.25, "spread": D("-0.1"), "inventory": D("-0.15"),
                 "fees": D("0.02"), "rebates": D(0), "rewards": D(0), "settlement": D("-0.2"), "total": D("-0.47")}
    assert doc["totals"] == {"fills": 3, "fills_per_min": 0.75, "spread": D("1.9"), "inventory": D("0.35"),
                             "fees": D("0.03"), "rebates": D("0.003"), "rewards": D("0.15"), "settlement": D("0.5"),
                             "total": D("2.873")}
    live = economics(eng, "live")
    assert live["totals"]["fills"] == 1 and live["totals"]["total"] == D(99 + 99 + 5 - 1 + 1 + 5)
    assert live["totals"]["fills_per_min"] == pytest.approx(1 / ((9000.0 - 5000.0) / 60.0))
    rp = economics(eng, "replay", "rp1")
    assert [m["market"] for m in rp["markets"]] == [A] and rp["totals"]["total"] == D(77 + 77 - 1 + 1)


def test_a_db_without_the_optional_tables_still_decomposes(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path, tables=("orders", "trades", "pnl"))
    _fill(eng, trades=[_trade(1, A, "0.5", "2", 1000.0, fee="0.25")], pnl=[_pnl(A, 1000.0, "1", "1", "0")])
    doc = economics(eng, "paper")
    assert doc["totals"]["total"] == D("0.75") and doc["totals"]["fills_per_min"] == 0.0  # one instant: no span
    assert doc["markets"][0]["fills_per_min"] == 0.0
    assert report._replay_runs(eng) == []  # a DB of before `pmm replay`'s table
    assert report._choose_scope(eng, None, None) == (None, None, "report: the engine's sessions")
    with pytest.raises(ConfigError, match=r"^--run-id x: no such replay run in this DB \(newest: none\)$"):
        report._choose_scope(eng, None, "x")


def test_rows_without_amounts_count_zero(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)  # (rows of before the fee columns, a pnl row without its parts)
    _fill(eng, trades=[{**_trade(1, A, "0.5", "2", 1000.0), "fee": None, "rebate": None}],
          pnl=[{**_pnl(A, 1000.0, "1", "1", "0.5"), "spread_pnl": None}])
    (a,) = economics(eng, "paper")["markets"]
    assert (a["fees"], a["rebates"], a["spread"], a["inventory"]) == (D(0), D(0), D(0), D("0.5"))
    assert a["total"] == D("0.5")


def test_the_venue_paid_amounts_replace_the_estimates_of_the_days_it_paid(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)

    def est(market: str, day: str, usd: str, mode: str = "live") -> dict[str, Any]:
        return {"ts": 1.0, "market": market, "mode": mode, "usd": D(usd), "venue_date": day}

    def paid(kind: str, market: str, day: str, amount: str, mode: str = "live") -> dict[str, Any]:
        return {"ts": 1.0, "mode": mode, "kind": kind, "market": market, "date": day, "amount": D(amount)}

    _fill(eng,
          trades=[_trade(1, A, "0.5", "1", DAY1 + 10, rebate="0.9", mode="live"),
                  _trade(2, A, "0.5", "1", DAY2 + 10, rebate="0.25", mode="live"),
                  _trade(3, B, "0.5", "1", DAY1 + 20, rebate="0.1", mode="live")],
          reward_estimates=[est(A, "2026-12-01", "0.5"), est(A, "2026-12-01", "0.3"), est(A, "2026-12-02", "0.2"),
                            est(B, "2026-12-01", "0.4"), est(A, "2026-12-01", "0.7", mode="paper")])
    _fill(eng, trades=[_trade(9, A, "0.5", "1", DAY1 + 30, rebate="0.3", mode="paper")])  # another session's
    before = economics(eng, "live")["markets"]
    assert [(m["rewards"], m["rebates"]) for m in before] == [(D("1.0"), D("1.15")), (D("0.4"), D("0.1"))]
    # per-market amounts without the day's TOTAL row: the day was not read, the estimates stay
    _fill(eng, venue_payouts=[paid("rewards", A, "2026-12-02", "7"), paid("rebates", A, "2026-12-02", "7"),
                              paid("rewards", "TOTAL", "2026-12-02", "7", mode="paper")])
    assert economics(eng, "live")["markets"] == before
    _fill(eng, venue_payouts=[paid("rewards", A, "2026-12-01", "1.25"), paid("rewards", "TOTAL", "2026-12-01", "1.25"),
                              paid("rebates", A, "2026-12-01", "1.5"), paid("rebates", "TOTAL", "2026-12-01", "1.5")])
    a, b = economics(eng, "live")["markets"]
    # A: day 1 paid (1.25 reward, 1.5 rebate); day 2 not read (the 0.2 estimate, the 0.25 accrual)
    assert (a["rewards"], a["rebates"]) == (D("1.45"), D("1.75"))
    # B: the venue read day 1 and paid B nothing
    assert (b["rewards"], b["rebates"]) == (D(0), D(0))
    assert a["total"] == D("1.45") + D("1.75") and b["total"] == D(0)


def test_a_day_read_for_one_kind_keeps_the_other_kinds_estimate(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    _fill(eng, trades=[_trade(1, A, "0.5", "1", DAY1 + 10, rebate="0.9", mode="live")],
          reward_estimates=[{"ts": 1.0, "market": A, "mode": "live", "usd": D("0.5"), "venue_date": "2026-12-01"}],
          venue_payouts=[{"ts": 1.0, "mode": "live", "kind": "rewards", "market": "TOTAL", "date": "2026-12-01",
                          "amount": D("0")}])
    (a,) = economics(eng, "live")["markets"]
    assert (a["rewards"], a["rebates"]) == (D(0), D("0.9"))


def test_the_json_rounds_money_to_six_places() -> None:
    doc = {"markets": [{"market": A, "fills": 2, "fills_per_min": 0.5, "total": D("1.2345675")}],
           "totals": {"fills": 2, "total": D("-0.0000004"), "fees": D("3")}}
    assert json.loads(economics_json(doc)) == {
        "markets": [{"market": A, "fills": 2, "fills_per_min": 0.5, "total": 1.234568}],
        "totals": {"fills": 2, "total": -0.0, "fees": 3.0}}


def test_the_scope_chosen_by_default(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    assert report._choose_scope(eng, None, None) == (None, None, "report: the engine's sessions")
    _fill(eng, orders=[_order(1, A, 1000.0, 1000.0)])
    assert report._choose_scope(eng, None, None) == ("paper", None, "report: the paper sessions (the newest mode in this DB)")
    _fill(eng, orders=[_order(2, A, 3000.0, 3000.0, mode="live"), _order(3, A, 2000.0, 9000.0, mode="dry_run"),
                       _order(4, A, 9000.0, 9000.0, mode="replay", run_id="x")])
    run = {"mode": "replay", "t0": 0.0, "t1": 60.0, "status": "done"}
    _fill(eng, replay_runs=[{**run, "run_id": "rp-b", "started_ts": 5.0}, {**run, "run_id": "rp-a", "started_ts": 5.0},
                            {**run, "run_id": "rp-0", "started_ts": 1.0}])
    assert report._choose_scope(eng, None, None) == (
        "live", None, "report: the live sessions (the newest mode in this DB); not included: dry_run orders "
        "(--mode dry_run), paper orders (--mode paper), 3 replay run(s) (--mode replay [--run-id ID])")
    assert report._choose_scope(eng, "paper", None) == ("paper", None, "report: paper sessions")
    # the newest replay run (ties: by run id)
    assert report._choose_scope(eng, "replay", None) == (
        "replay", "rp-a", "report: replay run rp-a (1970-01-01T00:00:00.000Z .. 1970-01-01T00:01:00.000Z, done); "
        "2 other replay run(s): --run-id")
    assert report._choose_scope(eng, None, "rp-0")[:2] == ("replay", "rp-0")
    with pytest.raises(ConfigError, match=r"^--run-id nope: no such replay run in this DB \(newest: rp-a, rp-b, rp-0\)$"):
        report._choose_scope(eng, "replay", "nope")
    with pytest.raises(ConfigError, match="--mode live cannot go with it"):
        report._choose_scope(eng, "live", "rp-a")


def test_a_db_of_replays_reports_its_newest_run(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    assert report._choose_scope(eng, "replay", None) == ("replay", None, "report: replays (none in this DB)")
    with pytest.raises(ConfigError, match=r"\(newest: none\)$"):
        report._choose_scope(eng, None, "gone")
    _fill(eng, sweep_results=[{"sweep_id": "sw-1", "point": 0, "run_id": "pt-0", "created_ts": 1.0, "t0": 0.0,
                               "t1": 1.0, "grid_json": {}}],
          replay_runs=[{"run_id": "only", "mode": "replay", "t0": 0.0, "t1": 60.0, "started_ts": 1.0, "status": "done"}])
    assert report._choose_scope(eng, None, None) == (
        "replay", "only", "report: replay run only (1970-01-01T00:00:00.000Z .. 1970-01-01T00:01:00.000Z, done)")
    with pytest.raises(ConfigError, match=r"\(newest: only\); it is a point of sweep sw-1, whose rows"):
        report._choose_scope(eng, None, "pt-0")
    with pytest.raises(ConfigError, match=r"\(newest: only\)$"):
        report._choose_scope(eng, None, "pt-1")
    _fill(eng, replay_runs=[{"run_id": "next", "mode": "replay", "t0": 0.0, "t1": 60.0, "started_ts": 2.0,
                             "status": "running"}])
    assert report._choose_scope(eng, None, None)[1:] == (
        "next", "report: replay run next (1970-01-01T00:00:00.000Z .. 1970-01-01T00:01:00.000Z, running); "
        "1 other replay run(s): --run-id")


def test_an_unknown_run_is_answered_with_the_five_newest(tmp_path: Path) -> None:
    eng, _ = _engine(tmp_path)
    _fill(eng, replay_runs=[{"run_id": f"rp-{k}", "mode": "replay", "t0": 0.0, "t1": 1.0, "started_ts": float(k),
                             "status": "done"} for k in range(1, 7)])
    with pytest.raises(ConfigError, match=r"\(newest: rp-6, rp-5, rp-4, rp-3, rp-2\)$"):
        report._choose_scope(eng, "replay", "rp-0")


class _S:
    def __init__(self, url: str) -> None:
        self.db_url = url


def test_what_the_report_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eng, url = _paper_db(tmp_path)
    eng.dispose()
    assert report_main(_S(url), mode="paper") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "report: paper sessions"
    table = "\n".join(out[1:6])
    assert "0xbbbbbbbbbb.." in table and B not in table
    assert out[2].startswith(f"{A} Will A happen by the end of 2026 ") and out[4].split()[0] == C
    assert out[3].startswith("0xbbbbbbbbbb.. Will B happen by the end of 20.. ")
    assert out[6] == "" and out[7] == ("placed 4 orders (quote changes); 3 fills (1 partial, 2 filled), 0.75 fills/min; "
                      "volume 7.30 USD; PnL 2.2500")
    assert out[9].startswith("PnL decomposition (total = spread + inventory + settlement - fees + rebates")
    head, ra, rb, rt = (line.split() for line in out[10:14])
    assert head == ["market", "fills", "fills_per_min", "spread", "inventory", "fees", "rebates", "rewards",
                    "settlement", "total"]
    assert ra == [A, "2", "0.5000", "2.0000", "0.5000", "0.0100", "0.0030", "0.1500", "0.7000", "3.3430"]
    assert rb[0] == "0xbbbbbbbbbb.." and rb[-1] == "-0.4700"
    assert rt == ["TOTAL", "3", "0.7500", "1.9000", "0.3500", "0.0300", "0.0030", "0.1500", "0.5000", "2.8730"]
    assert len(out) == 14


def test_the_json_report_is_the_decomposition_and_the_scope_goes_to_stderr(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    eng, url = _paper_db(tmp_path)
    eng.dispose()
    assert report_main(_S(url), as_json=True, mode="paper") == 0
    got = capsys.readouterr()
    assert got.err == "report: paper sessions\n"
    doc = json.loads(got.out)
    assert doc["totals"] == {"fills": 3, "fills_per_min": 0.75, "spread": 1.9, "inventory": 0.35, "fees": 0.03,
                             "rebates": 0.003, "rewards": 0.15, "settlement": 0.5, "total": 2.873}
    assert [m["market"] for m in doc["markets"]] == [A, B]


def test_what_an_empty_report_says(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, url = _engine(tmp_path, "none.db", tables=("orders",))
    assert report_main(_S(url)) == 0
    assert capsys.readouterr().out == "no trading tables in this database yet: run `pmm run paper` first\n"
    _, url = _engine(tmp_path, "empty.db")
    for mode, cmd in [(None, "pmm run paper"), ("paper", "pmm run paper"), ("live", "pmm run live"),
                      ("dry_run", "pmm run live --dry-run"), ("replay", "pmm replay")]:
        assert report_main(_S(url), mode=mode) == 0
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 2 and out[1] == f"no orders or fills recorded yet: run `{cmd}` first"


def test_a_report_without_pnl_rows_prints_no_pnl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eng, url = _engine(tmp_path)
    _fill(eng, orders=[_order(1, A, 1000.0, 1060.0)])
    eng.dispose()
    assert report_main(_S(url)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "report: the paper sessions (the newest mode in this DB)"
    assert out[-1] == "placed 1 orders (quote changes); 0 fills (0 partial, 0 filled), 0.00 fills/min; volume 0.00 USD; PnL NaN"  # (NaN as in the table)
