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


def _one_recording(root, flip: bool) -> None:
    """A small recording; `flip`: one payload inside the window differs in one byte, not in length."""
    rec = Recorder(root, session="s1")
    for i in range(40):
        body = f'{{"event_type":"price_change","price":"0.4{i % 10}"}}'
        if flip and i == 25:
            body = body.replace("0.45", "0.46")
        rec.frame(T0 + i, 0, body)
    rec.close()


def test_payloads_of_equal_lengths_but_other_bytes_get_another_run_id(tmp_path, monkeypatch):
    """The run id hashed per file the rows used, their first/last ts and seq and the sum of their
    payloads' lengths: two recordings differing in a payload's bytes, not its length, got one run
    id (a re-run of one replaced the other's rows). The payloads' bytes are hashed now; the same
    recording read at once or lazily (a window too large to hold) still gets one id."""
    from pmm_widgets.config import Params
    from pmm_widgets.research import recordings
    from pmm_widgets.research.replayer import files_key, run_id_for

    _one_recording(tmp_path / "a", flip=False)
    _one_recording(tmp_path / "b", flip=True)
    wa, wb = load_window(tmp_path / "a", T0 + 10, T0 + 30), load_window(tmp_path / "b", T0 + 10, T0 + 30)
    (ua,), (ub,) = wa.sources, wb.sources
    assert (ua.rows, ua.first_ts, ua.last_ts, ua.first_seq, ua.last_seq, ua.payload_bytes) == (
        ub.rows, ub.first_ts, ub.last_ts, ub.first_seq, ub.last_seq, ub.payload_bytes)

    def rid(w):
        return run_id_for(w, ["m"], Params(), 1, "event")

    assert rid(wa) != rid(wb)
    outside = load_window(tmp_path / "b", T0 + 30, T0 + 39, warmup=False)  # (the flipped row outside the span)
    assert files_key(outside) == files_key(load_window(tmp_path / "a", T0 + 30, T0 + 39, warmup=False))
    monkeypatch.setattr(recordings, "EAGER_PAYLOAD_BYTES", 0)
    lazy = load_window(tmp_path / "a", T0 + 10, T0 + 30)
    assert isinstance(lazy.payload, recordings.LazyPayloads)
    assert rid(lazy) == rid(wa)
