"""What `sweep()` writes (mutation-testing round over `results` and `_store`): the default Parquet
place is made with its folders, a nested `--out` too, the rows carry no index column, the sweep id
has its documented form, `fills` is an integer in `sweep_results`, and nothing is written without
`write` or without a row (a sweep interrupted before any point ended)."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sweep_helpers import T0, recording
from sweep_helpers import settings as _settings

from pmm_widgets.research import sweeps as sw
from pmm_widgets.research.sweeps import sweep

GRID1 = {"alpha": [1, 3]}


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    return recording(tmp_path_factory, "sweeprec3")


def test_the_default_place_its_folders_the_rows_and_the_stored_fills(rec_dir, tmp_path):
    s = _settings(rec_dir, tmp_path)
    default_dir = rec_dir.parent / "sweeps"
    assert not default_dir.exists()
    df = sweep(T0, T0 + 60, GRID1, settings=s, n_jobs=1)
    out = df.attrs["parquet"]
    assert out == str(default_dir / f"{df.attrs['sweep_id']}.parquet")
    assert re.fullmatch(r"sw\d{8}T\d{6}[0-9a-f]{6}", df.attrs["sweep_id"]), df.attrs["sweep_id"]
    assert "index" not in df.columns and list(df.index) == [0, 1] and df["point"].tolist() == [0, 1]
    names = pq.read_schema(out).names
    assert "__index_level_0__" not in names and "index" not in names and names.count("sweep_id") == 1
    eng = sa.create_engine(s.db_url)
    try:
        with eng.connect() as c:
            fills = c.execute(sa.text("SELECT fills, typeof(fills) FROM sweep_results ORDER BY point")).all()
    finally:
        eng.dispose()
    assert [(f, t) for f, t in fills] == [(int(n), "integer") for n in df["fills"]]


def test_a_nested_out_is_made_and_write_false_writes_nothing(rec_dir, tmp_path):
    s = _settings(rec_dir, tmp_path)
    nested = tmp_path / "a" / "b" / "o.parquet"
    df = sweep(T0, T0 + 60, {"alpha": [2]}, settings=s, n_jobs=1, parquet=nested)
    assert nested.exists() and df.attrs["parquet"] == str(nested)
    other = tmp_path / "c" / "o.parquet"
    s2 = _settings(rec_dir, tmp_path / "none")
    (tmp_path / "none").mkdir()
    df = sweep(T0, T0 + 60, {"alpha": [2]}, settings=s2, n_jobs=1, parquet=other, write=False)
    assert len(df) == 1 and "parquet" not in df.attrs
    assert not other.parent.exists() and not (tmp_path / "none" / "s.db").exists()


def test_a_sweep_stopped_before_any_row_writes_nothing_and_returns_an_empty_frame(rec_dir, tmp_path, monkeypatch):
    def stopped_at_once(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sw, "_joblib_rows", stopped_at_once)
    s = _settings(rec_dir, tmp_path)
    out = tmp_path / "o.parquet"
    df = sweep(T0, T0 + 60, GRID1, settings=s, n_jobs=1, parquet=out)
    assert df.attrs["status"] == "interrupted" and df.attrs["total"] == 2
    assert len(df) == 0 and list(df.columns) == ["point"]
    assert "parquet" not in df.attrs and not out.exists()
