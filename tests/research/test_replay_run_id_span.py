"""A replay's run id depends on the recorded data it uses (`replayer.files_key`), not on what
was recorded after its window: a later session's part in the same hour, or rows appended after
the window's end, used to change it (the files' sizes were hashed), and a re-run of an unchanged
window added a run instead of replacing its own."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.research.replayer import replay
from pmm_widgets.research.synth import synth_recording
from pmm_widgets.store.recording import Recorder

T0 = parse_time("2026-11-30T10:00:00Z")
A, B = T0 + 60, T0 + 180  # the window replayed; the recording runs to T0 + 360


def _settings(root, **kw):
    return load_settings(**{"record_dir": str(root), "quote_refresh_sec": 1.0, "paper_fill_intensity": 20, **kw})


def _runs(url: str) -> dict[str, int]:
    """run id -> its trades, for every replay run in the DB."""
    db = sa.create_engine(url)
    try:
        with db.connect() as c:
            runs = list(c.execute(sa.text("SELECT run_id FROM replay_runs")).scalars())
            fills = dict(c.execute(sa.text("SELECT run_id, COUNT(*) FROM trades GROUP BY run_id")).all())
    finally:
        db.dispose()
    return {r: fills.get(r, 0) for r in runs}


def _rewrite(path, change) -> None:
    """Rewrite a recording file with `change(rows) -> rows` applied (its schema and metadata kept)."""
    t = pq.read_table(path)
    rows = change(t.to_pylist())
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), path)


def test_the_run_id_ignores_what_was_recorded_after_the_window(tmp_path):
    root = tmp_path / "rec"
    synth_recording(root, T0, 360, markets=3, seed=11)
    hour = root / "2026-11-30T10"
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    s = _settings(root)
    first = replay(s, A, B, db_url=url)
    assert first.summary["fills"] > 0

    # a later `pmm run paper` session writes its own files into the same hour, after the window
    later = Recorder(root, session="later")
    later.universe(T0 + 1800, [])
    for k in range(20):
        later.frame(T0 + 1800 + k, 0, '{"event_type":"pong"}')
    later.close()
    assert (hour / "market-later.parquet").exists() and (hour / "universe-later.parquet").exists()
    w = load_window(root, A, B)
    theirs = {str(hour / "market-later.parquet"), str(hour / "universe-later.parquet")}
    assert theirs <= set(w.files) and not theirs & {u.file for u in w.sources}  # read; none of their rows used
    again = replay(s, A, B, db_url=url)
    assert again.run_id == first.run_id
    assert _runs(url) == {first.run_id: first.summary["fills"]}  # replaced, not added

    # the session's own file grows past the window's end (rows after t1 appended)
    market = hour / "market-synth.parquet"
    top = max(max(pq.read_table(f, columns=["seq"]).column("seq").to_pylist()) for f in hour.glob("*-synth.parquet"))

    def append(rows):
        last = rows[-1]
        return rows + [{**last, "seq": top + 1 + k, "ts": last["ts"] + 1 + k} for k in range(50)]

    _rewrite(market, append)
    grown = replay(s, A, B, db_url=url)
    assert grown.run_id == first.run_id and grown.trades == first.trades
    assert _runs(url) == {first.run_id: first.summary["fills"]}

    # a row inside the window changed: another input, another run id (both runs kept)
    def touch(rows):
        i = next(i for i, r in enumerate(rows) if A < r["ts"] < B and r["kind"] == "frame")
        rows[i] = {**rows[i], "payload": rows[i]["payload"] + " "}  # (still the same JSON)
        return rows

    _rewrite(market, touch)
    changed = replay(s, A, B, db_url=url)
    assert changed.run_id != first.run_id
    assert set(_runs(url)) == {first.run_id, changed.run_id}
