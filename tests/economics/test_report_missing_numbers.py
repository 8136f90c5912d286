"""`pmm report`: a missing number looks the same in every column. A column with no value at all
(no 30 s or 120 s markout yet, no realized spread, no `pnl` row) was an object column of None
and printed `None` beside the other columns' `NaN`; the summary line said `PnL nan`. Now every
missing figure is NaN (a float column), printed `NaN`; `--json` (the PnL decomposition) has no
missing number and stays strict JSON (no NaN token)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from test_mut_report import _S, _engine, _fill, _markout, _order, _pnl, _trade

from pmm_widgets.analytics.report import build_report, report_main

A, B = "0xaaaa", "0xbbbb"
NUMBERS = ["pnl_total", "pnl_realized", "pnl_unrealized", "pnl_spread", "pnl_inventory", "inv_yes", "inv_no",
           "markout_5s", "markout_30s", "markout_120s", "realized_spread"]


def _cells(head: list[str], line: str) -> dict[str, str]:
    """A printed row by column (TOTAL's question is blank)."""
    cells = line.split()
    if cells[0] == "TOTAL":
        cells.insert(1, "")
    return dict(zip(head, cells, strict=True))


def _db(tmp_path: Path, name: str, horizons: tuple[float, ...], with_pnl: bool) -> str:
    eng, url = _engine(tmp_path, name)
    _fill(eng, orders=[_order(1, A, 1000.0, 1030.0), _order(2, B, 1010.0, 1100.0)],
          trades=[_trade(1, A, "0.40", "10", 1040.0), _trade(2, B, "0.60", "5", 1050.0)],
          pnl=[_pnl(A, 1100.0, "1", "0.5", "0.5"), _pnl(B, 1100.0, "-1", "-0.5", "-0.5"),
               _pnl("TOTAL", 1100.0, "0", "0", "0")] if with_pnl else [],
          markouts=[_markout(1, A, h, 0.01 * (i + 1)) for i, h in enumerate(horizons)],
          markets=[{"snapshot_ts": 0.0, "rank": r, "condition_id": c, "question": f"Q{c[-1]}", "yes_token_id": f"{c}y",
                    "no_token_id": f"{c}n"} for r, c in enumerate((A, B))])
    eng.dispose()
    return url


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(horizons=st.lists(st.sampled_from([0.0, 5.0, 30.0, 120.0]), unique=True, max_size=3), with_pnl=st.booleans())
def test_a_missing_number_is_nan_in_every_column(tmp_path_factory: pytest.TempPathFactory, horizons: list[float],
                                                 with_pnl: bool) -> None:
    """Markouts at some horizons only (on market A only), pnl rows or none: every number column
    is float, and what is not known is NaN in the frame and `NaN` in the printed table."""
    tmp = tmp_path_factory.mktemp("rep")
    eng = create_engine(_db(tmp, "r.db", tuple(horizons), with_pnl))
    try:
        df = build_report(eng, "paper").set_index("market")
    finally:
        eng.dispose()
    for col in NUMBERS:
        assert df[col].dtype == float, (col, df[col].dtype)
    key = {0.0: "realized_spread", 5.0: "markout_5s", 30.0: "markout_30s", 120.0: "markout_120s"}
    for h, col in key.items():
        assert (not math.isnan(df.loc[A, col])) == (h in horizons) and math.isnan(df.loc[B, col])
    assert df[["pnl_total", "inv_yes"]].isna().all().all() != with_pnl


def test_the_printed_table_and_summary_say_nan_for_every_missing_number(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    url = _db(tmp_path, "r.db", (5.0,), with_pnl=True)  # no 30 s, 120 s markout, no realized spread at all
    assert report_main(_S(url), mode="paper") == 0
    out = capsys.readouterr().out
    assert "None" not in out
    lines = out.splitlines()
    head = lines[1].split()
    rows = {ln.split()[0]: _cells(head, ln) for ln in lines[2:5]}
    assert set(rows) == {A, B, "TOTAL"}
    for r in rows.values():
        assert r["markout_30s"] == r["markout_120s"] == r["realized_spread"] == "NaN", r
    assert rows[A]["markout_5s"] == "0.0100" and rows[B]["markout_5s"] == "NaN"

    url = _db(tmp_path, "nopnl.db", (), with_pnl=False)  # no pnl row: the PnL is unknown, said alike
    assert report_main(_S(url), mode="paper") == 0
    out = capsys.readouterr().out
    assert "None" not in out and " nan" not in out
    lines = out.splitlines()
    head = lines[1].split()
    total = _cells(head, lines[4])
    assert total["market"] == "TOTAL" and total["pnl_total"] == total["inv_yes"] == total["markout_5s"] == "NaN"
    assert next(ln for ln in lines if ln.startswith("placed ")).endswith("; PnL NaN")


def test_the_json_report_has_no_missing_number_and_is_strict_json(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    url = _db(tmp_path, "nopnl.db", (), with_pnl=False)

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} in --json output")

    assert report_main(_S(url), as_json=True, mode="paper") == 0
    doc = json.loads(capsys.readouterr().out, parse_constant=no_constants)
    assert doc["totals"]["fills"] == 2 and doc["totals"]["total"] == 0.0
