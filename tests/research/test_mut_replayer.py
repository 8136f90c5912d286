"""What a mutation pass over the replayer's argument checks and bookkeeping (`research/replayer.py`:
parse_markets, selection, check_seed, check_markets, coverage_problems, grid_end, resume_index,
run_id_for / files_key / settings_key, ReplaySink, markout_summary) found untested. Windows here
are built in memory: no file, no replay."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pmm_widgets.config import SEED_MAX
from pmm_widgets.research.recordings import FileUse, RecordingError, Window, parse_time
from pmm_widgets.research.replayer import (
    CH_ENGINE,
    CH_MARKET,
    CH_REST,
    CH_UNIVERSE,
    NOT_WRITTEN,
    ReplaySink,
    _starts,
    check_markets,
    check_seed,
    coverage_problems,
    db_rows,
    engine_records,
    files_key,
    first_session,
    grid_end,
    market_span,
    markout_summary,
    parse_markets,
    recorded_start,
    resume_index,
    rows_from_records,
    run_id_for,
    selection,
    settings_key,
    split_overrides,
)

H0 = parse_time("2026-11-30T10:00:00Z")


def window(rows: list[tuple], t0: float = H0, t1: float = H0 + 600, **kw) -> Window:
    """A window of `rows` (ts, channel, kind, payload[, session])."""
    return Window(t0=t0, t1=t1, ts=np.array([r[0] for r in rows], np.float64),
                  channel=np.array([r[1] for r in rows], np.int8), kind=[r[2] for r in rows],
                  conn=np.zeros(len(rows), np.int32), payload=[r[3] for r in rows],
                  session=[r[4] if len(r) > 4 else "s1" for r in rows], **kw)


def test_markets_text_is_a_positive_count_or_a_list_of_ids():
    assert parse_markets(" 3 ") == 3 and parse_markets("+2") == 2 and parse_markets("1") == 1
    for bad in ("0", "-1", "-0", " , ", ""):
        with pytest.raises(ValueError, match="expected a positive count"):
            parse_markets(bad)
    assert parse_markets(" a, b,,c ") == ["a", "b", "c"]
    assert parse_markets("slug-1") == ["slug-1"] and parse_markets("X5") == ["X5"]


def test_the_python_apis_markets_are_read_as_the_clis():
    assert selection(None) is None and selection(5) == 5 and selection("4") == 4
    assert selection("will-it-rain") == ["will-it-rain"] and selection(("x", 7)) == ["x", "7"]
    for bad in (True, False, [], ()):
        with pytest.raises(ValueError, match="markets: "):
            selection(bad)


def test_a_seed_is_a_whole_number_from_0_to_seed_max():
    assert check_seed(None) is None and check_seed(0) == 0 and check_seed(SEED_MAX) == SEED_MAX
    for bad in (-1, SEED_MAX + 1, True, 1.0, "3"):
        with pytest.raises(ValueError, match="seed: "):
            check_seed(bad)


def universe(*slugs: str) -> str:
    return json.dumps([{"condition_id": f"0x{s}", "question": s, "yes_token_id": f"{s}-y", "no_token_id": f"{s}-n",
                        "tick_size": "0.01", "min_order_size": "5", "slug": s} for s in slugs])


def test_a_selection_is_checked_against_every_universe_recorded_for_the_window():
    w = window([(H0 + 1, CH_UNIVERSE, "markets", universe("b")), (H0 + 2, CH_UNIVERSE, "markets", "{not json"),
                (H0 + 3, CH_MARKET, "frame", universe("zz"))],
               preamble=[(H0 - 5, CH_UNIVERSE, "markets", universe("a")), (H0 - 4, CH_ENGINE, "start", universe("e"))])
    check_markets(w, ["a", "0xa", "b"])  # the preamble's universe and the window's
    check_markets(w, None)
    check_markets(w, 3)
    check_markets(w, 1)
    with pytest.raises(ValueError, match="markets: 0 "):
        check_markets(w, 0)
    with pytest.raises(RecordingError) as e:
        check_markets(w, ["zz", "e", "b"])  # a market frame's payload, an engine row's: no universe
    assert str(e.value).startswith("markets zz, e: not in the universe recorded for 2026-11-30T10:00:00.000Z .. "
                                   "2026-11-30T10:10:00.000Z (2 markets, e.g. a, b: condition ids or slugs)")
    with pytest.raises(RecordingError, match=r"markets m1, m2, m3, m4, m5 \.\.\.: not in"):
        check_markets(w, [f"m{i}" for i in range(1, 7)])
    with pytest.raises(RecordingError, match=r"markets m1, m2, m3, m4, m5: not in"):
        check_markets(w, [f"m{i}" for i in range(1, 6)])
    check_markets(window([(H0 + 1, CH_MARKET, "frame", "{}")]), ["anything"])  # no universe recorded: not checked


def test_the_market_span_is_that_of_the_market_frames_alone():
    w = window([(H0 + 1, CH_REST, "books", "[]"), (H0 + 2, CH_MARKET, "pong", None), (H0 + 3, CH_MARKET, "frame", "{}"),
                (H0 + 4, CH_MARKET, "frame", "{}"), (H0 + 5, CH_ENGINE, "frame", "{}"), (H0 + 6, CH_MARKET, "gap", None)])
    assert market_span(w) == (H0 + 3, H0 + 4)
    assert market_span(window([(H0 + 1, CH_REST, "books", "[]")])) is None


def test_coverage_problems_say_how_long_the_window_runs_without_market_data_beyond_stale_sec():
    w = window([(H0 + 90, CH_MARKET, "frame", "{}"), (H0 + 420, CH_MARKET, "frame", "{}")])
    assert coverage_problems(w, 60) == [
        "no market data before 2026-11-30T10:01:30.000Z (1.5 min after the window's start): cycles before it quoted "
        "nothing",
        "no market data after 2026-11-30T10:07:00.000Z (3.0 min before the window's end): cycles after it saw stale "
        "books and quoted nothing"]
    assert coverage_problems(w, 89) == coverage_problems(w, 60)
    assert coverage_problems(w, 90) == [coverage_problems(w, 60)[1]]  # 90 s exactly: not longer than stale_sec
    assert coverage_problems(w, 179) == [coverage_problems(w, 60)[1]]
    assert coverage_problems(w, 180) == []
    assert coverage_problems(window([(H0 + 1, CH_REST, "books", "[]")]), 60) == [
        "no market data recorded in 2026-11-30T10:00:00.000Z .. 2026-11-30T10:10:00.000Z: nothing was quoted"]


def test_grid_cycles_end_once_every_book_is_stale_and_every_markout_due():
    w = window([(H0 + 10, CH_MARKET, "frame", "{}"), (H0 + 20, CH_MARKET, "frame", "{}")], t1=H0 + 3600)
    assert grid_end(w, H0 + 3600, 30.0, 2.0) == H0 + 20 + 30 + 120 + 2
    assert grid_end(w, H0 + 100, 30.0, 2.0) == H0 + 100
    assert grid_end(window([(H0 + 1, CH_REST, "books", "[]")]), H0 + 3600, 30.0, 2.0) == H0 + 3600


def test_the_replay_resumes_from_the_last_rest_checkpoint_strictly_before_t0_that_has_local_times():
    ck = json.dumps([{"asset_id": "1", "local_ts": H0}])
    rows = [(H0 + 1, CH_REST, "checkpoint", ck), (H0 + 2, CH_REST, "books", "[]"), (H0 + 3, CH_REST, "checkpoint", ck),
            (H0 + 4, CH_ENGINE, "checkpoint", ck), (H0 + 5, CH_MARKET, "frame", "{}"), (H0 + 6, CH_REST, "checkpoint", ck)]
    w = window(rows)
    assert resume_index(w, H0 + 6) == 2  # the one at t0 is not before it; the engine's row is no checkpoint
    assert resume_index(w, H0 + 7) == 5
    assert resume_index(w, H0 + 1) == 0
    old = window([(H0 + 1, CH_REST, "checkpoint", ck), (H0 + 3, CH_REST, "checkpoint", "[]")])
    assert resume_index(old, H0 + 9) == 0  # the last one lacks local times: none is used
    assert resume_index(window([(H0 + 1, CH_REST, "checkpoint", None)]), H0 + 9) == 0
    later = window([(H0 + 1, CH_MARKET, "frame", "{}"), (H0 + 2, CH_REST, "checkpoint", ck), (H0 + 3, CH_REST, "books", "[]")])
    assert resume_index(later, H0 + 9) == 1  # the last checkpoint, not the last REST answer


def test_the_first_session_is_that_of_the_first_market_frame_or_rest_answer_at_or_after_t0():
    rows = [(H0 + 1, CH_MARKET, "frame", "{}", "old"), (H0 + 5, CH_ENGINE, "cycle", "{}", "eng"),
            (H0 + 5, CH_MARKET, "pong", None, "pong"), (H0 + 6, CH_REST, "books", "[]", "new"),
            (H0 + 7, CH_MARKET, "frame", "{}", "last")]
    w = window(rows)
    assert first_session(w, H0 + 1) == "old"
    assert first_session(w, H0 + 2) == "new"
    assert first_session(w, H0 + 7) == "last"
    assert first_session(w, H0 + 8) is None


def test_the_markout_summary_sums_and_averages_each_horizon_and_the_realized_spread():
    rows = [{"horizon_sec": 0, "markout_usd": 0.5}, {"horizon_sec": 0.0, "markout_usd": 0.25},
            {"horizon_sec": 30, "markout_usd": -1.0}, {"horizon_sec": 5, "markout_usd": 2.0},
            {"horizon_sec": 5.0, "markout_usd": None}, {"horizon_sec": "30", "markout_usd": 3.0}]
    s = markout_summary(rows)
    assert list(s) == ["markout_5s_usd", "markout_5s_mean_usd", "markout_30s_usd", "markout_30s_mean_usd",
                       "realized_spread_usd"]
    assert s == {"markout_5s_usd": 2.0, "markout_5s_mean_usd": 1.0, "markout_30s_usd": 2.0,
                 "markout_30s_mean_usd": 1.0, "realized_spread_usd": 0.75}
    assert markout_summary([]) == {"realized_spread_usd": None}
    assert markout_summary([{"horizon_sec": 5, "markout_usd": 1.0}])["realized_spread_usd"] is None


def use(file: str, **kw) -> FileUse:
    d = {"rows": 3, "first_ts": H0, "last_ts": H0 + 2, "first_seq": 1, "last_seq": 3, "payload_bytes": 30,
         "payload_digest": "d1"}
    d.update(kw)
    return FileUse(file, **d)


def test_the_files_key_names_each_file_by_hour_and_name_with_what_it_gave_and_hashes_the_preamble():
    base = window([], sources=[use("/a/2026-11-30T10/market-s1.parquet"), use("/a/2026-11-30T10/rest-s1.parquet")],
                  preamble=[(H0 - 5, CH_UNIVERSE, "markets", "[]")])
    key = files_key(base)
    assert key.startswith("2026-11-30T10/market-s1.parquet:3:1796032800.0:1796032802.0:1:3:30:d1;"
                          "2026-11-30T10/rest-s1.parquet:3:")
    assert "preamble:1:" in key
    moved = window([], sources=[use("/b/2026-11-30T10/market-s1.parquet"), use("/b/2026-11-30T10/rest-s1.parquet")],
                   preamble=[(H0 - 5, CH_UNIVERSE, "markets", "[]")])
    assert files_key(moved) == key  # another root: the same recording
    changed = [{"rows": 4}, {"first_ts": H0 + 0.5}, {"last_ts": H0 + 3}, {"first_seq": 2}, {"last_seq": 4},
               {"payload_bytes": 31}, {"payload_digest": "d2"}]
    keys = {key}
    for c in changed:
        keys.add(files_key(window([], sources=[use("/a/2026-11-30T10/market-s1.parquet", **c),
                                                use("/a/2026-11-30T10/rest-s1.parquet")],
                                  preamble=[(H0 - 5, CH_UNIVERSE, "markets", "[]")])))
    for pre in ([(H0 - 4, CH_UNIVERSE, "markets", "[]")], [(H0 - 5, CH_ENGINE, "markets", "[]")],
                [(H0 - 5, CH_UNIVERSE, "start", "[]")], [(H0 - 5, CH_UNIVERSE, "markets", "[1]")], [(H0 - 5, CH_UNIVERSE, "markets", "[]  ")],
                [(H0 - 5, CH_UNIVERSE, "markets", "[2]")],
                [(H0 - 5, CH_UNIVERSE, "markets", None)], [(H0 - 5, CH_UNIVERSE, "markets", "")], []):
        keys.add(files_key(window([], sources=base.sources, preamble=pre)))
    assert len(keys) == 1 + len(changed) + 9


def test_the_run_id_hashes_every_input_of_the_replay(monkeypatch):
    from pmm_widgets.config import load_settings

    s = load_settings()
    w = window([(H0 + 1, CH_MARKET, "frame", "{}")], sources=[use("/a/2026-11-30T10/market-s1.parquet")])
    p = s.params()
    rid = run_id_for(w, None, p, 1, "grid", settings=settings_key(s))
    assert rid.startswith("rp") and len(rid) == 14 and int(rid[2:], 16) >= 0
    assert rid == run_id_for(w, None, p, 1, "grid", files_key(w), settings_key(s), (w.t0, w.t1))
    q = s.params()
    q.update(alpha=p.alpha / 2)
    ids = {rid, run_id_for(w, 2, p, 1, "grid", settings=settings_key(s)),
           run_id_for(w, None, p, 2, "grid", settings=settings_key(s)),
           run_id_for(w, None, q, 1, "grid", settings=settings_key(s)),
           run_id_for(w, None, p, 1, "recorded", settings=settings_key(s)),
           run_id_for(w, None, p, 1, "grid", files="other", settings=settings_key(s)),
           run_id_for(w, None, p, 1, "grid", settings=settings_key(load_settings(stale_sec=31.0))),
           run_id_for(w, None, p, 1, "grid", settings=settings_key(s), span=(w.t0, w.t1 - 1))}
    assert len(ids) == 8
    assert settings_key(load_settings(db_url="sqlite:///elsewhere.db")) == settings_key(s)  # where rows go: no input


def test_the_latency_file_is_in_the_settings_key_by_its_contents(tmp_path):
    from pmm_widgets.config import load_settings

    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text('{"x": 1}')
    b.write_text('{"x": 1}')
    c.write_text('{"x": 2}')
    key = {f: json.loads(settings_key(load_settings(paper_latency_file=str(f))))["paper_latency_file"] for f in (a, b, c)}
    assert key[a] == key[b] != key[c] and len(key[a]) == 64
    gone = tmp_path / "gone.json"
    assert json.loads(settings_key(load_settings(paper_latency_file=str(gone))))["paper_latency_file"] == (
        f"unreadable:{gone}")
    assert json.loads(settings_key(load_settings()))["paper_latency_file"] == ""


class Inner:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def insert(self, table, row):
        self.calls.append(("insert", table, dict(row)))

    def upsert(self, table, row, key):
        self.calls.append(("upsert", table, dict(row), tuple(key)))

    def update(self, table, where, values):
        self.calls.append(("update", table, dict(where), dict(values)))


def test_the_replay_sink_tags_replay_rows_keeps_trades_and_drops_what_a_replay_never_writes():
    inner = Inner()
    s = ReplaySink(inner, "rp1")
    s.insert("trades", {"trade_id": "t1", "mode": "paper", "size": 1})
    s.insert("markouts", {"trade_id": "t1", "horizon_sec": 5})
    s.insert("reward_estimates", {"market": "m", "usd": 1})
    s.insert("events", {"kind": "x"})  # tagged, no mode column: none added
    s.insert("runs_meta", {"mode": "paper"})  # not a tagged table: as given
    for t in sorted(NOT_WRITTEN):
        s.insert(t, {"mode": "paper"})
        s.upsert(t, {"mode": "paper"}, ["id"])
        s.update(t, {"id": 1}, {"x": 1})
    assert inner.calls == [
        ("insert", "trades", {"trade_id": "t1", "mode": "replay", "size": 1, "run_id": "rp1"}),
        ("insert", "markouts", {"trade_id": "t1", "horizon_sec": 5, "run_id": "rp1"}),
        ("insert", "reward_estimates", {"market": "m", "usd": 1, "run_id": "rp1"}),
        ("insert", "events", {"kind": "x", "run_id": "rp1"}),
        ("insert", "runs_meta", {"mode": "paper"})]
    assert s.rows == 5 and list(s.trades) == ["t1"] and len(s.markouts) == 1 and len(s.rewards) == 1
    s.update("trades", {"trade_id": "t1"}, {"fee": 2})
    s.update("trades", {"trade_id": "t9"}, {"fee": 3})  # not one of the run's: forwarded only
    s.update("orders", {"trade_id": "t1"}, {"fee": 4})
    assert s.trades["t1"]["fee"] == 2 and inner.calls[-3:] == [
        ("update", "trades", {"trade_id": "t1"}, {"fee": 2}), ("update", "trades", {"trade_id": "t9"}, {"fee": 3}),
        ("update", "orders", {"trade_id": "t1"}, {"fee": 4})]
    s.upsert("orders", {"client_id": "c1", "mode": "paper", "status": "OPEN"}, ["client_id"])
    s.upsert("orders", {"client_id": "c1", "status": "FILLED"}, ["client_id"])
    s.upsert("settlements", {"market": 7, "usd": 1}, ["market"])
    assert s.orders == {"c1": {"client_id": "c1", "mode": "replay", "status": "FILLED", "run_id": "rp1"}}
    assert s.settlements == {"7": {"market": 7, "usd": 1, "run_id": "rp1"}} and s.rows == 8
    s.upsert("market_overrides", {"market": "m", "mode": "paper"}, ["market"])  # not a replay's table: as given
    assert inner.calls.pop() == ("upsert", "market_overrides", {"market": "m", "mode": "paper"}, ("market",))
    assert list(s.settlements) == ["7"] and list(s.orders) == ["c1"]
    assert inner.calls[-3:] == [
        ("upsert", "orders", {"client_id": "c1", "mode": "replay", "status": "OPEN", "run_id": "rp1"}, ("client_id",)),
        ("upsert", "orders", {"client_id": "c1", "status": "FILLED", "run_id": "rp1"}, ("client_id",)),
        ("upsert", "settlements", {"market": 7, "usd": 1, "run_id": "rp1"}, ("market",))]


def test_without_a_db_the_replay_sink_counts_rows_and_keeps_only_what_the_summary_and_restores_read():
    s = ReplaySink(None, "rp2")
    s.insert("pnl", {"mode": "paper", "x": 1})
    s.insert("events", {"kind": "x"})
    s.insert("book_snapshots", {"x": 1})  # never written: not counted
    s.insert("trades", {"trade_id": "t1", "mode": "paper"})
    assert s.rows == 3 and s.trades == {"t1": {"trade_id": "t1", "mode": "replay", "run_id": "rp2"}}
    s.update("trades", {"trade_id": "t1"}, {"fee": 1})
    assert s.trades["t1"]["fee"] == 1 and s.rows == 3
    s.upsert("orders", {"client_id": "c1", "mode": "paper", "status": "OPEN"}, ["client_id"])
    s.upsert("orders", {"client_id": "c1", "mode": "live", "status": "FILLED", "price": 1}, ["client_id"])
    assert s.orders["c1"]["mode"] == "replay"
    s.upsert("orders", {"client_id": "c1", "status": "CANCELLED"}, ["client_id"])
    assert s.orders == {"c1": {"client_id": "c1", "mode": "replay", "status": "CANCELLED", "price": 1, "run_id": "rp2"}}
    assert s.rows == 6
    s.upsert("orders", {"client_id": "c2", "status": "OPEN"}, ["client_id"])
    s.upsert("orders", {"client_id": "c2", "status": "FILLED"}, ["client_id"])  # no mode column: none added
    assert s.orders["c2"] == {"client_id": "c2", "status": "FILLED", "run_id": "rp2"} and s.rows == 8


def test_db_rows_sum_reward_estimates_per_market_and_venue_day_and_list_token_pairs():
    from decimal import Decimal

    from pmm_widgets.domain import Market

    rewards = [{"market": "m", "venue_date": "2026-11-30", "usd": "1.5"}, {"market": "m", "venue_date": "2026-11-30",
                                                                          "usd": 2},
               {"market": "m", "venue_date": None, "usd": None}, {"market": "n", "usd": "0.25"}]
    mk = Market("0xc", "Q?", "y1", "n1", Decimal("0.01"), Decimal("5"))
    got = db_rows([{"trade_id": "t1"}], rewards, [{"market": "m", "winner_token": "y1"}], [mk])
    assert got == {"trades": [{"trade_id": "t1"}],
                   "tokens": [{"condition_id": "0xc", "yes_token_id": "y1", "no_token_id": "n1"}],
                   "rewards": [{"market": "m", "venue_date": "2026-11-30", "usd": Decimal("3.5")},
                               {"market": "m", "venue_date": None, "usd": Decimal(0)},
                               {"market": "n", "venue_date": None, "usd": Decimal("0.25")}],
                   "settlements": [{"market": "m", "winner_token": "y1"}], "payouts": []}


def test_recorded_rows_before_t0_restore_the_last_settlement_per_market_and_ignore_other_tables():
    from pmm_widgets.engine.restore import parse_rows

    recs = [json.dumps({"reward_estimates": [{"market": "m", "venue_date": "2026-11-30", "usd": "1", "ts": H0 - 5},
                                             {"market": "m", "venue_date": "2026-11-30", "usd": "7", "ts": H0}],
                        "settlements": [{"market": "m", "winner_token": "a", "ts": H0 - 9}],
                        "orders": [{"trade_id": "t1", "market": "zz", "ts": H0 - 9}]}),
            None,
            json.dumps({"settlements": [{"market": "m", "winner_token": "b", "ts": H0 - 3}]})]
    want = parse_rows(db_rows([], [{"market": "m", "venue_date": "2026-11-30", "usd": "1"}],
                              [{"market": "m", "winner_token": "b"}]))
    assert rows_from_records(recs, H0) == want


def test_overrides_split_into_parameters_and_settings_by_their_names_secrets_and_unknown_names_refused():
    assert split_overrides({" ALPHA ": 1, "PMM_stale_sec": 5, "pmm_quote_refresh_sec": 2}) == (
        {"alpha": 1}, {"stale_sec": 5, "quote_refresh_sec": 2})
    with pytest.raises(ValueError, match="PMM_PRIVATE_KEY: secrets are read from the environment or .env only"):
        split_overrides({"PMM_PRIVATE_KEY": "0xabc"})
    with pytest.raises(ValueError, match="nope: not a parameter or setting"):
        split_overrides({"nope": 1})


def test_only_the_trade_updates_record_updates_a_recorded_fill():
    from pmm_widgets.research.replayer import TRADE_UPDATES

    fill = {"trade_id": "t1", "market": "m", "token_id": "y", "side": "BUY", "price": "0.4", "size": "10",
            "ts": H0 - 9, "fee": "0"}
    recs = [json.dumps({"trades": [fill]}),
            json.dumps({TRADE_UPDATES: [{"trade_id": "t1", "fee": "1"}], "orders": [{"trade_id": "t1", "fee": "9"}]})]
    got = rows_from_records(recs, H0)
    assert [str(t.fee) for t in got.trades] == ["1"]


def test_the_market_span_reaches_a_last_row_that_is_a_frame():
    w = window([(H0 + 1, CH_MARKET, "frame", "{}"), (H0 + 2, CH_MARKET, "frame", "{}")])
    assert market_span(w) == (H0 + 1, H0 + 2)
    w = window([(H0 + 1, CH_MARKET, "frame", "{}"), (H0 + 2, CH_MARKET, "frame", "{}"), (H0 + 3, CH_REST, "books", "")])
    assert market_span(w) == (H0 + 1, H0 + 2)


def test_the_engine_starts_a_replay_reads_are_the_preambles_and_the_windows_in_time_order():
    rows = [(H0 + 5, CH_ENGINE, "start", "w1", "s2"), (H0 + 6, CH_ENGINE, "cycle", "c", "s2"),
            (H0 + 7, CH_MARKET, "start", "m", "s2"), (H0 + 2, CH_ENGINE, "start", "w0", "s1")]
    w = window(rows, preamble=[(H0 - 9, CH_ENGINE, "start", "p1"), (H0 - 8, CH_UNIVERSE, "start", "u"),
                               (H0 - 7, CH_ENGINE, "params", "x"), (H0 - 20, CH_ENGINE, "start", "p0")])
    assert _starts(w, engine_records(w)) == [(H0 - 20, None, "p0"), (H0 - 9, None, "p1"), (H0 + 2, "s1", "w0"),
                                             (H0 + 5, "s2", "w1")]


def test_the_recorded_start_is_the_sessions_own_else_the_last_at_or_before_t0_else_the_first():
    starts = [(H0 - 9, None, '{"seed": 1}'), (H0 + 2, "s1", '{"seed": 2}'), (H0 + 5, "s2", '{"seed": 3}'),
              (H0 + 6, "s2", '{"seed": 4}')]
    assert recorded_start(starts, H0 + 6, "s2") == (H0 + 5, {"seed": 3})  # its session's first
    assert recorded_start(starts, H0 + 5) == (H0 + 5, {"seed": 3})  # at t0
    assert recorded_start(starts, H0 + 4, "s9") == (H0 + 2, {"seed": 2})
    assert recorded_start(starts, H0 - 10) == (H0 - 9, {"seed": 1})  # before them all: the first
    assert recorded_start([], H0) is None
    assert recorded_start([(H0, "s", None)], H0) == (H0, {})
    assert recorded_start([(H0, "s", "[1]")], H0) is None and recorded_start([(H0, "s", "{bad")], H0) is None


def test_the_summary_counts_what_the_replay_did(tmp_path):
    import asyncio
    from decimal import Decimal

    from recording_frames import book_frame

    from pmm_widgets.config import load_settings
    from pmm_widgets.domain import Market
    from pmm_widgets.research.recordings import iso
    from pmm_widgets.research.replayer import Replayer
    from pmm_widgets.store.recording import Recorder

    m = Market("0xc1", "Q?", "111", "222", Decimal("0.01"), Decimal("5"))
    rec = Recorder(tmp_path, session="g")
    rec.universe(H0, [m])
    for k in range(4):
        rec.frame(H0 + 1 + 10 * k, 0, book_frame("0xc1", "111", "0.40", "0.60", H0 + 1 + 10 * k))
        rec.frame(H0 + 1 + 10 * k, 0, book_frame("0xc1", "222", "0.40", "0.60", H0 + 1 + 10 * k))
    rec._seq += 3  # three rows lost
    rec.frame(H0 + 45, 0, book_frame("0xc1", "111", "0.40", "0.60", H0 + 45))
    rec.close()
    res = asyncio.run(Replayer(load_settings(record_dir=str(tmp_path)), H0, H0 + 60, cycles="grid").run())
    s = res.summary
    orders = res.orders
    assert res.cycles and s["cycles"] == len(res.cycles) and s["sim_seconds"] == res.cycles[-1] - res.cycles[0] > 0
    assert (s["from"], s["to"], s["status"], s["cycles_mode"]) == (iso(H0), iso(H0 + 60), "done", "grid")
    assert s["placed"] == sum(1 for o in orders if o["status"] != "REJECTED") > 0
    assert s["rejected"] == len(orders) - s["placed"] and s["fills"] == len(res.trades)
    assert s["fills_per_min"] == len(res.trades) / (s["sim_seconds"] / 60)
    assert (s["markets"], s["gaps"], s["problems"], s["pending_files"]) == (1, 1, len(res.problems), 0)
    assert s["recorded_until"] == iso(H0 + 45) and s["resumed_from"] is None and s["killed"] is False
    assert s["events"] > 0 and s["events_per_sec"] == s["events"] / s["wall_seconds"]
    assert s["sim_seconds_per_wall_second"] == s["sim_seconds"] / s["wall_seconds"]
    assert s["rows_read"] == 10 and s["frames"] == 9
    assert [o["created_ts"] for o in orders] == sorted(o["created_ts"] for o in orders)
