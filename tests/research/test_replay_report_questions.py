"""`pmm report --mode replay` shows the recorded questions: a replay adds the replayed
markets the DB's `markets` table lacks (a replay into a fresh DB left the column empty), and
never writes over a market the engine recorded there."""

from __future__ import annotations

import sqlalchemy as sa

from pmm_widgets.analytics.report import build_report
from pmm_widgets.cli import main
from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import replay
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
A, B = T0 + 60, T0 + 180  # the window replayed


def _settings(root, **kw):
    return load_settings(**{"record_dir": str(root), "quote_refresh_sec": 1.0, "paper_fill_intensity": 20, **kw})


def test_a_replay_into_a_fresh_db_reports_the_recorded_questions(tmp_path, monkeypatch, capsys):
    root = tmp_path / "rec"
    universe = synth_recording(root, T0, 240, markets=3, seed=11)
    questions = {m.condition_id: m.question for m in universe}
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    res = replay(_settings(root), A, B, db_url=url)
    db = sa.create_engine(url)
    try:
        df = build_report(db, "replay", res.run_id)
        rows = df[df["market"] != "TOTAL"]
        assert len(rows) == 3 and dict(zip(rows["market"], rows["question"])) == questions
        with db.connect() as c:
            n = c.execute(sa.text("SELECT COUNT(*) FROM markets")).scalar()
        assert n == 3
    finally:
        db.dispose()
    again = replay(_settings(root), A, B, db_url=url)  # a re-run adds no second row per market
    db = sa.create_engine(url)
    try:
        with db.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM markets")).scalar() == 3
    finally:
        db.dispose()
    monkeypatch.setenv("PMM_RECORD_DIR", str(root))
    assert main(["report", "--mode", "replay", "--run-id", again.run_id, "--db-url", url]) == 0
    out = capsys.readouterr().out
    assert all(q[:30] in out for q in questions.values()), out


def test_a_replay_never_overwrites_the_engines_markets_rows(tmp_path):
    """A market the DB knows (a paper session's universe snapshot) keeps its row: the replay
    writes only the markets the table lacks."""
    from pmm_widgets.store.migrate import upgrade
    from pmm_widgets.store.schema import markets

    root = tmp_path / "rec"
    universe = synth_recording(root, T0, 240, markets=3, seed=11)
    url = f"sqlite:///{tmp_path / 'paper.db'}"
    upgrade(url)
    known = universe[0]
    db = sa.create_engine(url)
    try:
        with db.begin() as c:
            c.execute(markets.insert().values(
                snapshot_ts=T0 - 60, rank=1, condition_id=known.condition_id, question="the engine's own question",
                yes_token_id=known.yes_token_id, no_token_id=known.no_token_id, raw_json={"from": "gamma"}))
        res = replay(_settings(root), A, B, db_url=url)
        with db.connect() as c:
            got = c.execute(sa.select(markets.c.condition_id, markets.c.question, markets.c.raw_json)).all()
        by = {}
        for cid, q, raw in got:
            by.setdefault(cid, []).append((q, raw))
        assert by[known.condition_id] == [("the engine's own question", {"from": "gamma"})]
        assert {cid: [q for q, _ in v] for cid, v in by.items() if cid != known.condition_id} == {
            m.condition_id: [m.question] for m in universe[1:]}
        df = build_report(db, "replay", res.run_id).set_index("market")
        assert df.loc[known.condition_id, "question"] == "the engine's own question"
    finally:
        db.dispose()
