"""Replay over recordings made without sockets (the sandbox simulator's wire events): the same
engine code trades them, deterministically; gaps reset books; Ctrl-C keeps partial results;
`pmm replay --json` writes tagged rows to the DB."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa
from recording_frames import book_frame, change_frame

from pmm_widgets.cli import main
from pmm_widgets.config import load_settings
from pmm_widgets.domain import Market
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import Replayer, replay
from pmm_widgets.research.synth import synth_recording
from pmm_widgets.store.recording import Recorder

T0 = parse_time("2026-11-30T10:00:00Z")
MINUTES = 6
C1 = Market("0xc1", "Q?", "111", "222", Decimal("0.01"), Decimal("5"))  # the one market of the hand-written recordings


def _book(tok: str, ts: float, bid: str = "0.40", ask: str = "0.60") -> str:
    """A book frame of one of C1's tokens."""
    return book_frame("0xc1", tok, bid, ask, ts)


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    synth_recording(root, T0, MINUTES * 60, markets=4, seed=11)
    return root


def _settings(rec_dir, **kw):
    return load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20, **kw)


def _run(rec_dir, **kw) -> object:
    s = _settings(rec_dir)
    return asyncio.run(Replayer(s, T0, T0 + MINUTES * 60, **kw).run())


def test_replay_trades_the_recording_and_is_deterministic(rec_dir):
    a = _run(rec_dir)
    b = _run(rec_dir)
    s = a.summary
    assert s["cycles_mode"] == "grid" and s["markets"] == 4 and s["cycles"] >= MINUTES * 60 - 2
    assert s["placed"] > 20 and s["fills"] > 5 and s["events"] > 1000
    assert {t["mode"] for t in a.trades} == {"replay"} and {t["run_id"] for t in a.trades} == {a.run_id}
    assert a.run_id == b.run_id
    assert a.trades == b.trades and a.orders == b.orders  # byte-identical rows, ids included
    assert json.dumps(a.trades, default=str) == json.dumps(b.trades, default=str)
    c = _run(rec_dir, seed=99)
    assert c.run_id != a.run_id and c.trades != a.trades  # the seed is an input, not decoration
    d = _run(rec_dir, params={"alpha": 3.0})
    assert d.run_id != a.run_id and d.summary["fills"] != s["fills"]


def test_settings_that_change_a_replay_change_its_run_id(rec_dir, tmp_path, monkeypatch, capsys):
    """Settings beyond the parameters (the quote loop's period, the paper latency) are inputs too:
    two replays that differ there used to share a run id, the second deleting the first's rows."""
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    monkeypatch.setenv("PMM_PAPER_FILL_INTENSITY", "20")
    window = ["--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:00Z", "--db-url", url, "--json"]
    ids = {}
    for name, extra in (("base", []), ("refresh", ["--quote-refresh-sec", "1"]),
                        ("latency", ["--set", "paper_latency_ms=2000"]),
                        ("elsewhere", ["--set", "record_max_gb=5"])):  # where files go: not an input
        assert main(["replay", *window, *extra]) == 0
        ids[name] = json.loads(capsys.readouterr().out)["summary"]
    assert len({ids[k]["run_id"] for k in ("base", "refresh", "latency")}) == 3
    assert ids["elsewhere"]["run_id"] == ids["base"]["run_id"]
    db = sa.create_engine(url)
    with db.connect() as c:
        kept = dict(c.execute(sa.text("SELECT run_id, COUNT(*) FROM trades GROUP BY run_id")).all())
    assert kept == {ids[k]["run_id"]: ids[k]["fills"] for k in ("base", "refresh", "latency") if ids[k]["fills"]}


def test_markets_selection_and_fill_model(rec_dir):
    full = _run(rec_dir)
    two = _run(rec_dir, markets=2)
    assert two.summary["markets"] == 2
    markets = {o["market"] for o in two.orders}
    assert len(markets) == 2 and markets < {o["market"] for o in full.orders}
    q = _run(rec_dir, params={"paper_fill_model": "queue"})
    assert q.summary["fills"] != full.summary["fills"] or q.trades != full.trades
    assert all(t["raw_json"]["model"] == "queue" for t in q.trades)


def test_a_selection_that_names_no_recorded_market_fails_before_the_replay(rec_dir, tmp_path, monkeypatch, capsys):
    """`--markets` 0, a negative count, or an id / slug no recorded universe has used to replay
    zero markets and report success (or drop a typo'd id silently): now one line naming it."""
    from pmm_widgets.research.recordings import RecordingError

    full = _run(rec_dir, markets=1)
    m = full.orders[0]["market"]
    by_id = _run(rec_dir, markets=[m])
    assert by_id.summary["markets"] == 1 and {o["market"] for o in by_id.orders} == {m}
    with pytest.raises(RecordingError, match=r"markets nosuch: not in the universe recorded .*4 markets"):
        _run(rec_dir, markets=[m, "nosuch"])
    with pytest.raises(ValueError, match="positive count"):
        _run(rec_dir, markets=0)
    url = f"sqlite:///{tmp_path / 'sel.db'}"
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    base = ["replay", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--db-url", url]
    for bad in ("0", "-2", " , "):
        assert main([*base, "--markets", bad]) == 2
        assert "positive count or comma-separated" in capsys.readouterr().err
    assert main([*base, "--markets", f"{m},typo-slug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pmm replay: markets typo-slug: not in the universe recorded") and err.count("\n") == 1
    # a bad time is a bad flag: exit 2, one line naming it (it used to exit 1 without the flag's name)
    for times, said in ((["--from", "notatime", "--to", "2026-11-30T10:01:00Z"], "--from: bad time 'notatime'"),
                        (["--from", "2026-11-30T10:00:00Z", "--to", "10h"], "--to: bad time '10h'"),
                        (["--from", "2026-11-30T10:01:00Z", "--to", "2026-11-30T10:00:00Z"],
                         "--to (2026-11-30T10:00:00.000Z) must be after --from")):
        assert main(["replay", *times, "--db-url", url]) == 2, times
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err


def test_a_window_beyond_the_recording_says_where_its_market_data_ends(rec_dir):
    """Minutes asked for past the recording's end (or before its start) are replayed as cycles on
    stale or absent books: fills per minute over the window understate the trading, so the result
    names the part without market data; a window inside the recording has no such problem."""
    s = _settings(rec_dir)
    end = T0 + MINUTES * 60
    past = asyncio.run(Replayer(s, end - 60, end + 180, markets=1).run())
    (msg,) = [p for p in past.problems if "no market data" in p]
    assert msg.startswith("no market data after 2026-11-30T10:06:00.000Z (3.0 min before the window's end)")
    assert past.summary["problems"] == len(past.problems) >= 1
    early = asyncio.run(Replayer(s, T0 - 120, T0 + 60, markets=1).run())
    assert [p for p in early.problems if "no market data" in p] == [
        "no market data before 2026-11-30T10:00:00.000Z (2.0 min after the window's start): cycles before it "
        "quoted nothing"]
    inside = asyncio.run(Replayer(s, T0 + 60, end - 60, markets=1).run())
    assert not [p for p in inside.problems if "no market data" in p]
    # a window days past the data: the grid's cycles stop once nothing can change (they used to
    # run to its end: a week's window over minutes of data cycled for hours)
    week = asyncio.run(Replayer(s, end - 60, end + 7 * 86400, markets=1).run())
    stop_at = end + s.stale_sec + 120 + s.quote_refresh_sec
    assert week.cycles[-1] <= stop_at and week.summary["cycles"] <= (stop_at - end + 60) / s.quote_refresh_sec + 1
    assert any(p.startswith("cycles stopped at 2026-11-30T10:08:3") for p in week.problems), week.problems
    fills = lambda r: [(t["token_id"], t["side"], t["price"], t["size"], t["ts"]) for t in r.trades]  # noqa: E731
    assert fills(week) == fills(past) and fills(past)  # near the data, the same trading (other window: other ids)
    after = asyncio.run(Replayer(s, end + 600, end + 1200, markets=1).run())  # wholly after the data (same hour)
    assert after.summary["cycles"] == 0 and not [p for p in after.problems if p.startswith("cycles stopped")]
    assert any(p.startswith("no cycles: the recorded market data ends before the window starts") for p in after.problems)


def test_stop_keeps_partial_results(rec_dir, tmp_path):
    asked = {"n": 0}

    def never() -> bool:
        asked["n"] += 1
        return False

    full = _run(rec_dir, stop=never)  # how often a whole replay asks whether to stop (deterministic)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > asked["n"] // 2  # half-way through (mid-recording, whatever the flow drew)

    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = replay(_settings(rec_dir), T0, T0 + MINUTES * 60, stop=stop, db_url=url)
    assert res.status == "interrupted" and 0 < res.summary["cycles"] < full.summary["cycles"]
    db = sa.create_engine(url)
    with db.connect() as c:
        run = c.execute(sa.text("SELECT status, summary_json FROM replay_runs")).mappings().one()
        n_orders = c.execute(sa.text("SELECT COUNT(*) FROM orders WHERE run_id = :r"), {"r": res.run_id}).scalar()
        open_left = c.execute(sa.text("SELECT COUNT(*) FROM orders WHERE status IN ('LIVE','PARTIAL')")).scalar()
    assert run["status"] == "interrupted" and n_orders == len(res.orders) > 0 and open_left == 0


def test_gap_resets_books_and_no_delta_crosses_it(tmp_path):
    """A hole in the sequence: the price change after it is not applied to the old book; the book
    waits (unsynced: not quoted) until the next snapshot."""
    rec = Recorder(tmp_path, session="g")

    def change(tok: str, price: str, side: str, ts: float) -> str:
        return change_frame("0xc1", tok, price, side, ts)

    rec.universe(T0, [C1])
    rec.frame(T0 + 1, 0, _book("111", T0 + 1))
    rec.frame(T0 + 1, 0, _book("222", T0 + 1))
    rec._seq += 7  # seven rows lost (a truncated file would do the same)
    rec.frame(T0 + 20, 0, change("111", "0.45", "BUY", T0 + 20))
    rec.engine(T0 + 21, "cycle")
    rec.frame(T0 + 30, 0, _book("111", T0 + 30, "0.30", "0.70"))
    rec.frame(T0 + 40, 0, _book("222", T0 + 40, "0.30", "0.70"))
    rec.close()
    s = load_settings(record_dir=str(tmp_path))
    r = Replayer(s, T0, T0 + 60, cycles="grid")
    res = asyncio.run(r.run())
    assert any("gap in session g: 7 rows missing" in p for p in res.problems)
    yes = r.md.books["111"]
    assert yes.synced and yes.best_bid == Decimal("0.30")  # rebuilt from the snapshot after the gap
    assert 45 not in yes.bids  # the 0.45 delta never landed (levels are keyed by tick)
    # nothing is quoted until both books have a snapshot again; then quoting resumes
    assert not [o for o in res.orders if T0 + 20 <= o["created_ts"] < T0 + 40]
    assert [o for o in res.orders if o["created_ts"] >= T0 + 40]


def test_a_recorded_row_that_is_no_json_is_a_problem_naming_its_file(tmp_path):
    """A corrupt payload in a readable file (a connection event, a universe, an engine event) used
    to end the whole replay in "JSONDecodeError: Expecting value"; now the row is skipped, named with
    its file and time, and the rest of the window replays."""
    rec = Recorder(tmp_path, session="j")

    rec.universe(T0, [C1])
    rec.record("market", T0, "sub", "{not json")
    rec.frame(T0 + 1, 0, _book("111", T0 + 1))
    rec.frame(T0 + 1, 0, _book("222", T0 + 1))
    rec.record("engine", T0 + 2, "params", "[truncated")
    rec.record("universe", T0 + 30, "universe", '[{"condition_id": ')
    rec.frame(T0 + 40, 0, _book("111", T0 + 40))
    rec.close()
    res = asyncio.run(Replayer(load_settings(record_dir=str(tmp_path)), T0, T0 + 60, cycles="grid").run())
    bad = [p for p in res.problems if "is no JSON" in p]
    assert len(bad) == 3, res.problems
    assert bad[0].startswith(f"{tmp_path / '2026-11-30T10' / 'market-j.parquet'}: the sub row at 2026-11-30T10:00:00.000Z")
    assert bad[1].startswith(f"{tmp_path / '2026-11-30T10' / 'engine-j.parquet'}: the params row at 2026-11-30T10:00:02")
    assert bad[2].startswith(f"{tmp_path / '2026-11-30T10' / 'universe-j.parquet'}: the universe row at")
    assert res.status == "done" and res.summary["markets"] == 1 and res.orders  # the rest replayed and quoted


def test_an_engine_row_that_is_json_but_no_valid_record_is_a_problem_and_the_replay_goes_on(tmp_path):
    """JSON of the wrong shape for its kind (a damaged file, a writer of another version): a venue
    clock that is no finite number, a strategy event without its market, parameters out of range,
    a start that is a list, a universe that is no list of markets, a connection's event that
    names no list of asset ids. Each used to end the replay in its ValueError / KeyError /
    AttributeError; now each is named with its file and skipped, and the window replays."""
    rec = Recorder(tmp_path, session="k")

    rec.universe(T0, [C1])
    rec.record("market", T0, "sub", "5")
    rec.record("market", T0, "open", json.dumps([["111"]]))
    rec.frame(T0 + 1, 0, _book("111", T0 + 1))
    rec.frame(T0 + 1, 0, _book("222", T0 + 1))
    rec.record("engine", T0 + 2, "venue_clock", json.dumps({"w0": "nan", "v0": 0, "speed": 1}))
    rec.record("engine", T0 + 3, "strategy", json.dumps({"strategy": "seed"}))
    rec.record("engine", T0 + 4, "params", json.dumps({"alpha": -5}))
    rec.record("engine", T0 + 5, "start", "[1, 2]")
    rec.record("universe", T0 + 6, "universe", json.dumps({"not": "a list"}))
    rec.record("universe", T0 + 7, "universe", json.dumps([{"condition_id": "0xc2", "yes_token_id": "3", "no_token_id": "4",
                                                                  "tick_size": "x", "min_order_size": "5"}]))
    rec.frame(T0 + 40, 0, _book("111", T0 + 40))
    rec.close()
    res = asyncio.run(Replayer(load_settings(record_dir=str(tmp_path)), T0, T0 + 60, cycles="grid").run())
    bad = [p for p in res.problems if "is no valid record" in p]
    engine_file = tmp_path / "2026-11-30T10" / "engine-k.parquet"
    universe_file = tmp_path / "2026-11-30T10" / "universe-k.parquet"
    market_file = tmp_path / "2026-11-30T10" / "market-k.parquet"
    assert [p.split(" row at ")[0] for p in bad[:2]] == [f"{market_file}: the sub", f"{market_file}: the open"]
    assert all("(TypeError: not a list of asset ids)" in p for p in bad[:2])
    bad = bad[2:]
    assert [p.split(" row at ")[0] for p in bad] == [
        *(f"{engine_file}: the {k}" for k in ("venue_clock", "strategy", "params", "start")),
        f"{universe_file}: the universe", f"{universe_file}: the universe"], res.problems
    assert "(ValueError: venue_clock: field 'w0' is not a finite number: 'nan')" in bad[0]
    assert "(KeyError: 'market')" in bad[1] and "(ValidationError: 1 validation error for Params alpha " in bad[2]
    assert "(ValueError: a universe is a list of markets, not dict)" in bad[4]
    assert "(ValueError: market 0 (0xc2): tick_size is no number: 'x')" in bad[5]
    assert all("\n" not in p for p in bad)
    # the universe stays the one recorded before: 0xc1 quoted on
    assert res.status == "done" and res.summary["markets"] == 1 and {o["market"] for o in res.orders} == {"0xc1"}


def test_a_market_the_engine_settled_from_the_venues_answer_is_settled_in_the_replay_too(tmp_path):
    """The engine settles shares outside its universe from `GET /markets/{cid}` (a market that
    resolved while no engine ran): that answer is no market data, so the engine records it (an
    engine `settled` row) and the replay settles the same shares at the same time."""
    from pmm_widgets.domain import Side
    from pmm_widgets.engine.restore import SessionRows, TradeRow, rows_to_json

    held = SessionRows((TradeRow("0xold", "333", Side.BUY, Decimal("0.40"), Decimal("10"), T0 - 100),),
                       {"0xold": ("333", "444")}, {}, {})
    rec = Recorder(tmp_path, session="s")
    rec.universe(T0, [C1])
    rec.engine(T0, "start", {"mode": "paper", "restored_rows": rows_to_json(held)})
    rec.frame(T0 + 1, 0, _book("111", T0 + 1))
    rec.frame(T0 + 1, 0, _book("222", T0 + 1))
    rec.engine(T0 + 5, "settled", {"market": "0xold", "winner": "333", "yes_token_id": "333", "no_token_id": "444"})
    rec.frame(T0 + 40, 0, _book("111", T0 + 40))
    rec.close()
    r = Replayer(load_settings(record_dir=str(tmp_path)), T0, T0 + 60, cycles="grid")
    res = asyncio.run(r.run())
    assert res.status == "done", res.problems
    st = r.points[0].sink.settlements["0xold"]
    assert (st["winner_token"], st["source"], st["ts"]) == ("333", "closed", T0 + 5)
    assert (st["yes_shares"], st["payout"], st["pnl"]) == (10, 10, Decimal("6.00"))  # marked at its entry 0.40
    lg = r.points[0].cycle.pnl.ledgers["0xold"]
    assert lg.yes == 0 and lg.settled


def test_cli_replay_json_writes_tagged_rows(rec_dir, tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    monkeypatch.setenv("PMM_PAPER_FILL_INTENSITY", "20")
    code = main(["replay", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:55Z", "--markets", "3",
                 "--set", "calib_max_mult=2", "--set", "quote_refresh_sec=1", "--db-url", url, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, out
    s = out["summary"]
    assert s["markets"] == 3 and s["fills"] > 0
    db = sa.create_engine(url)
    with db.connect() as c:
        modes = c.execute(sa.text("SELECT DISTINCT mode, run_id FROM trades")).all()
        pnl = c.execute(sa.text("SELECT COUNT(*) FROM pnl WHERE mode = 'replay' AND run_id = :r"),
                        {"r": s["run_id"]}).scalar()
        params = c.execute(sa.text("SELECT params_json FROM replay_runs")).scalar()
    assert modes == [("replay", s["run_id"])] and pnl > 0
    # the `pnl` table ends where the summary does (its 10-s grid's last rows, here at 10:02:50,
    # used to miss the window's last seconds: `pmm report` on a replay's DB disagreed with the summary)
    with db.connect() as c:
        last = c.execute(sa.text("SELECT ts, total, fills FROM pnl WHERE market = 'TOTAL' ORDER BY ts DESC LIMIT 1")).one()
    assert last.ts >= parse_time(s["to"]) - 1.0 and last.fills == s["fills"]
    assert last.total == pytest.approx(s["pnl_total"], abs=1e-9)
    assert main(["report", "--db-url", url, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert float(rep["totals"]["total"]) == pytest.approx(s["pnl_total"], abs=1e-9)
    assert json.loads(params)["calib_max_mult"] == 2.0 if isinstance(params, str) else params["calib_max_mult"] == 2.0
    # the same replay again replaces its rows (same inputs, same run id)
    assert main(["replay", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:02:55Z", "--markets", "3",
                 "--set", "calib_max_mult=2", "--set", "quote_refresh_sec=1", "--db-url", url, "--json"]) == 0
    capsys.readouterr()
    with db.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar() == s["fills"]
    assert main(["replay", "--from", "2026-11-30T12:00:00Z", "--to", "2026-11-30T13:00:00Z", "--db-url", url]) == 1
    assert "no readable recordings" in capsys.readouterr().err
    assert main(["replay", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:03:00Z", "--set", "alpha=-1",
                 "--db-url", url]) == 2


def test_the_same_replay_into_the_same_db_while_one_runs_is_refused(rec_dir, tmp_path, monkeypatch, capsys):
    """Two replays of the same inputs (one run id) into one DB at once used to both delete the run's
    rows and write them: duplicated `pnl` and `markouts` rows, both exiting 0. The run id is now
    claimed for the replay's duration (a lease row that a crashed replay's lapses); the second is
    refused, in one line, and the first run's rows stay whole."""
    from pmm_widgets.research.replayer import RunLease

    url = f"sqlite:///{tmp_path / 'two.db'}"
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    args = ["replay", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:30Z", "--db-url", url, "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)["summary"]
    db = sa.create_engine(url)
    count = "SELECT COUNT(*) FROM pnl WHERE run_id = :r"
    with db.connect() as c:
        rows = c.execute(sa.text(count), {"r": first["run_id"]}).scalar()
    other = RunLease(url, first["run_id"])  # what the other replay, still running, holds
    other.acquire()
    try:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert f"replay {first['run_id']} is being written into this DB by another replay" in err
        assert err.count("\n") == 1, err
        with db.connect() as c:
            assert c.execute(sa.text(count), {"r": first["run_id"]}).scalar() == rows  # not deleted
    finally:
        other.release()
    assert main(args) == 0  # once it ended: the same replay again replaces its rows
    assert json.loads(capsys.readouterr().out)["summary"]["run_id"] == first["run_id"]
    with db.connect() as c:
        assert c.execute(sa.text(count), {"r": first["run_id"]}).scalar() == rows
        assert c.execute(sa.text("SELECT COUNT(*) FROM engine_lease")).scalar() == 0  # released


def test_replay_trades_a_users_strategy_object(rec_dir):
    """The notebook's kind of strategy, handed to replay: every market quotes with it."""
    from pmm_widgets.strategy.base import Decision

    class Joiner:
        name = "joiner"

        def __init__(self) -> None:
            self.asked: set[tuple[str, str, Decimal]] = set()

        def decide(self, ctx, state):
            quotes = ctx.quotes(ctx.best_bid, ctx.best_ask)
            self.asked.update((q.token_id, q.side.value, q.price) for q in quotes)
            return Decision(quotes)

    mine = Joiner()
    res = _run(rec_dir, strategy=mine)
    base = _run(rec_dir)
    assert res.run_id == f"{base.run_id}-joiner" and res.summary["fills"] > base.summary["fills"]
    assert res.orders and all((o["token_id"], o["side"], Decimal(str(o["price"]))) in mine.asked for o in res.orders)


def test_ctrl_c_stops_pmm_replay_cleanly_with_partial_results(rec_dir, tmp_path):
    """SIGINT to `pmm replay`: exit 130, the run is marked interrupted, its rows so far are kept,
    nothing is left open."""
    import os
    import signal
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'int.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_RECORD_DIR": str(rec_dir), "PMM_DB_URL": url, "PMM_PAPER_FILL_INTENSITY": "20",
                "PMM_WRITER_FLUSH_SEC": "0.2"})
    # a 20 ms cycle grid makes this replay take many seconds: time to interrupt it (at 50 ms, the faster
    # replay sometimes reached its closing steps first under load: the Ctrl-C then kept its finished result)
    p = subprocess.Popen([sys.executable, "-m", "pmm_widgets.cli", "replay", "--from", "2026-11-30T10:00:00Z",
                          "--to", "2026-11-30T10:06:00Z", "--cycles", "grid", "--set", "quote_refresh_sec=0.02",
                          "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = sa.create_engine(url)
    deadline = time.monotonic() + 120
    started = False
    while time.monotonic() < deadline and p.poll() is None and not started:
        time.sleep(0.3)
        try:
            with db.connect() as c:
                started = c.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar() > 0
        except sa.exc.OperationalError:
            pass  # tables not created yet
    assert started and p.poll() is None, "the replay finished before it could be interrupted"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out[-1500:], err[-2000:])
    summary = json.loads(out)["summary"]
    assert summary["status"] == "interrupted" and summary["cycles"] > 0
    with db.connect() as c:
        status = c.execute(sa.text("SELECT status FROM replay_runs")).scalar()
        n = c.execute(sa.text("SELECT COUNT(*) FROM orders WHERE mode = 'replay'")).scalar()
        still_open = c.execute(sa.text("SELECT COUNT(*) FROM orders WHERE status IN ('LIVE', 'PARTIAL')")).scalar()
    assert status == "interrupted" and n > 0 and still_open == 0


def test_the_summary_lists_markouts_by_horizon(rec_dir):
    """The summary's markouts read 5s, 30s, 120s (sorted as text they read 120s, 30s, 5s)."""
    from pmm_widgets.research.replayer import format_summary, markout_summary

    rows = [{"horizon_sec": h, "markout_usd": 0.01} for h in (120.0, 5.0, 30.0, 0.0)]
    assert [k for k in markout_summary(rows) if k.endswith("_mean_usd")] == [
        "markout_5s_mean_usd", "markout_30s_mean_usd", "markout_120s_mean_usd"]
    res = _run(rec_dir)
    line = next(ln for ln in format_summary(res).splitlines() if ln.startswith("  markouts"))
    assert line.index(" 5s ") < line.index(" 30s ") < line.index(" 120s "), line
    # the units said (the sweep's columns are sums, the report's means per share): one number, one unit
    s = res.summary
    assert line.startswith(f"  markouts, mean USD per fill: 5s {s['markout_5s_mean_usd']:+.4f}"), line
    assert f"(sum over fills: realized spread {s['realized_spread_usd']:+.4f} USD, 5s {s['markout_5s_usd']:+.4f}" in line


def test_a_cancelled_replay_keeps_its_partial_result_and_rows(rec_dir, tmp_path):
    """Ctrl-C under `asyncio.run` (what a script's `replay()` gets) cancels the replay's task: the
    cancel used to land at the writer's close, after the whole replay, losing the result and the
    queued rows and leaving the run `running`. Now the replay yields every 1,024 events (a
    notebook's engine runs meanwhile), stops there as on `stop`, and returns its partial result,
    its rows and its status written."""
    from pmm_widgets.research.replayer import replay_async

    url = f"sqlite:///{tmp_path / 'cancel.db'}"
    s = _settings(rec_dir)
    full = _run(rec_dir)
    calls = []

    async def main():
        task = asyncio.current_task()

        def stop() -> bool:  # checked every 64 events: the 40th check cancels this task, as Ctrl-C does
            calls.append(1)
            if len(calls) == 40:
                task.cancel()
            return False

        return await replay_async(s, T0, T0 + MINUTES * 60, db_url=url, stop=stop)

    res = asyncio.run(main())
    assert res.status == "interrupted" and 0 < res.summary["fills"] < full.summary["fills"]
    assert res.summary["events"] < full.summary["events"]
    db = sa.create_engine(url)
    with db.connect() as c:
        assert c.execute(sa.text("SELECT status FROM replay_runs")).scalar() == "interrupted"
        assert c.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar() == len(res.trades)
        assert c.execute(sa.text("SELECT COUNT(*) FROM engine_lease")).scalar() == 0


def test_a_sync_replay_inside_a_running_loop_stops_on_ctrl_c_with_its_partial_result(rec_dir, tmp_path):
    """`replay()` called from a notebook cell (a loop already runs on this thread) runs on a helper
    thread, which Ctrl-C never reaches: the kernel's interrupt used to leave the replay running to
    its end. Now the interrupt cancels the replay's task on its thread, and the call returns the
    partial result with its rows, as `replay()` under `asyncio.run` does."""
    import _thread
    import signal
    import time

    from pmm_widgets.research.replayer import replay

    url = f"sqlite:///{tmp_path / 'nb.db'}"
    full = _run(rec_dir)
    calls = []

    def stop() -> bool:  # on the replay's thread, every 64 events: the 40th check is the user's Ctrl-C
        calls.append(1)
        if len(calls) == 40:
            _thread.interrupt_main()  # KeyboardInterrupt in the main thread, which waits in replay()
        elif len(calls) > 40:  # (the rest of the replay slowed: a replay that ended before the main
            time.sleep(0.02)  # thread's cancel reached its loop was cancelled in its clean-up instead)
        return False

    async def cell():  # a cell's code: synchronous, inside the kernel's running loop
        # ipykernel runs a cell with Python's own SIGINT handler (KeyboardInterrupt), not asyncio.run's
        old = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return replay(_settings(rec_dir), T0, T0 + MINUTES * 60, db_url=url, stop=stop)
        finally:
            signal.signal(signal.SIGINT, old)

    res = asyncio.run(cell())
    assert res.status == "interrupted" and 0 < res.summary["events"] < full.summary["events"]
    db = sa.create_engine(url)
    with db.connect() as c:
        assert c.execute(sa.text("SELECT status FROM replay_runs")).scalar() == "interrupted"
        assert c.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar() == len(res.trades)
        assert c.execute(sa.text("SELECT COUNT(*) FROM engine_lease")).scalar() == 0


def test_a_ctrl_c_after_the_replay_ended_returns_its_result(rec_dir, tmp_path, monkeypatch):
    """A Ctrl-C that lands in the replay's closing steps (the writer's close, the claim's
    release), after its last event: the cancel used to escape from there, a KeyboardInterrupt
    instead of the finished replay's result (its rows written all the same). Now the closing steps
    run to their end and the result is returned, its status the one the replay reached."""
    import time

    from pmm_widgets.research import replayer

    url = f"sqlite:///{tmp_path / 'late.db'}"
    record = replayer._record_markets
    cancelled = []

    async def main():
        task, loop = asyncio.current_task(), asyncio.get_running_loop()

        def late(*a, **k):  # on the closing step's thread: the user's Ctrl-C arrives now
            loop.call_soon_threadsafe(task.cancel)
            time.sleep(0.1)  # (the cancel reaches the awaiting task while this step runs)
            cancelled.append(task.cancelling())
            return record(*a, **k)

        monkeypatch.setattr(replayer, "_record_markets", late)
        return await replayer.replay_async(_settings(rec_dir), T0, T0 + MINUTES * 60, db_url=url)

    res = asyncio.run(main())
    full = _run(rec_dir)
    assert cancelled == [1]  # the cancel was pending while the replay closed
    assert res.status == "done" and res.summary["fills"] == full.summary["fills"] > 0
    db = sa.create_engine(url)
    with db.connect() as c:
        assert c.execute(sa.text("SELECT status FROM replay_runs")).scalar() == "done"
        assert c.execute(sa.text("SELECT COUNT(*) FROM trades")).scalar() == len(res.trades)
        assert c.execute(sa.text("SELECT COUNT(*) FROM engine_lease")).scalar() == 0


def test_the_python_api_reads_its_inputs_as_the_cli_does(rec_dir):
    """A window read for another span, a slug as `markets`, a setting passed as a parameter, a
    misspelt parameter: clear errors (or the CLI's reading), not wrong results."""
    from pmm_widgets.research.recordings import load_window

    s = _settings(rec_dir)
    w = load_window(rec_dir, "2026-11-30T10:00:00Z", "2026-11-30T10:03:00Z")  # ISO text, as everywhere
    with pytest.raises(ValueError, match="window: it holds 2026-11-30T10:00:00.000Z .. 2026-11-30T10:03:00.000Z"):
        Replayer(s, T0 + 240, T0 + 300, window=w)
    wide = load_window(rec_dir, T0, T0 + 180)
    ids = {Replayer(s, T0 + a, T0 + b, window=wide).run_id for a, b in ((0, 60), (60, 120), (0, 180))}
    assert len(ids) == 3  # each replay's own span, not the window's (it used to be one id for all three)
    assert Replayer(s, T0, T0 + 180).run_id == Replayer(s, T0, T0 + 180, window=wide).run_id
    assert _run(rec_dir, markets="2").summary["markets"] == 2  # a count, as --markets 2
    for bad, said in (([], "markets: an empty selection"), (True, "markets: True"),
                      ("a-slug-nobody-recorded", "markets a-slug-nobody-recorded: not in the universe")):
        with pytest.raises(ValueError, match=said):
            Replayer(s, T0, T0 + 60, markets=bad)
    with pytest.raises(ValueError, match="params: quote_refresh_sec: a setting, not a parameter"):
        Replayer(s, T0, T0 + 60, params={"quote_refresh_sec": 5})
    with pytest.raises(ValueError, match="alhpa: not a parameter or setting"):
        Replayer(s, T0, T0 + 60, params={"alhpa": 2})
    from pmm_widgets.config import ConfigError

    with pytest.raises(ConfigError, match="params alpha=-1: Input should be greater than 0"):
        Replayer(s, T0, T0 + 60, params={"alpha": -1})


def test_a_seed_numpy_or_the_db_cannot_take_is_a_bad_input(rec_dir, tmp_path, monkeypatch, capsys):
    """`--seed -1` (or PMM_SANDBOX_SEED=-1, a grid of it) ended the replay in "pmm: ValueError:
    expected non-negative integer" (exit 1, nothing named); a seed past 2**63 replayed and then
    every DB batch failed with an OverflowError. Now each is refused before anything runs, named."""
    from pmm_widgets.config import ConfigError
    from pmm_widgets.research.sweeps import sweep

    url = f"sqlite:///{tmp_path / 'seed.db'}"
    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    for cmd in ("replay", "sweep"):
        for bad in ("-1", str(2**63), "x"):
            argv = [cmd, "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--db-url", url, "--seed", bad]
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"argument --seed: expected a whole number from 0 to 2**63-1, got '{bad}'" in err
    with pytest.raises(ValueError, match=r"seed: -1 \(expected a whole number from 0 to 2\*\*63-1\)"):
        replay(_settings(rec_dir), T0, T0 + 60, seed=-1, write_db=False)
    with pytest.raises(ValueError, match="seed: 9223372036854775808"):
        sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=_settings(rec_dir), seed=2**63, db_url=url)
    with pytest.raises(ConfigError, match="PMM_SANDBOX_SEED=-1: Input should be greater than or equal to 0"):
        _settings(rec_dir, sandbox_seed=-1)
    assert main(["sweep", "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--db-url", url,
                 "--grid", "sandbox_seed=-1,2"]) == 2
    assert "pmm: grid sandbox_seed=-1: Input should be greater than or equal to 0" in capsys.readouterr().err


def test_an_in_memory_database_is_refused_before_the_replay(rec_dir, monkeypatch, capsys):
    """`--db-url sqlite://` ended in "pmm: database sqlite://: no such table: engine_lease" (each
    connection an empty database of its own): now one line saying why and what to give, exit 2."""
    from pmm_widgets.config import ConfigError
    from pmm_widgets.research.sweeps import sweep

    monkeypatch.setenv("PMM_RECORD_DIR", str(rec_dir))
    for url in ("sqlite://", "sqlite:///:memory:"):
        for cmd in (["replay"], ["sweep", "--grid", "alpha=1,2"]):
            assert main([*cmd, "--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:01:00Z", "--db-url", url]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"pmm: database {url}: in memory, the rows would be lost") and err.count("\n") == 1
    with pytest.raises(ConfigError, match="in memory"):
        replay(_settings(rec_dir), T0, T0 + 60, db_url="sqlite://")
    with pytest.raises(ConfigError, match="in memory"):
        sweep(T0, T0 + 60, {"alpha": [1, 2]}, settings=_settings(rec_dir), db_url="sqlite://")
    assert replay(_settings(rec_dir), T0, T0 + 60, db_url="sqlite://", write_db=False).status == "done"


def test_a_results_repr_is_short_whatever_it_holds() -> None:
    """`asyncio.run` builds the repr of the task that returned a replay's result (twice, at the end
    of every run: Python 3.11's SIGINT handling): it names the run and counts the rows, it does not
    spell them out."""
    from pmm_widgets.research.replayer import ReplayResult

    row = {"trade_id": "t" * 40, "price": Decimal("0.5"), "raw_json": {"x": "y" * 200}}
    r = ReplayResult("run-1", "done", {"events": 1}, trades=[row] * 5000, orders=[row] * 7000, cycles=[1.0] * 300)
    assert repr(r) == "ReplayResult(run_id='run-1', status='done', 7000 orders, 5000 trades, 300 cycles, 0 problems)"
