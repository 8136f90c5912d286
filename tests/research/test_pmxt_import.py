"""PMXT archive import: small files the test writes in each known schema variant (v1 JSON blobs,
v2 with list depth columns, v2 with JSON depth) become recordings that replay identically."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pmm_widgets.cli import main
from pmm_widgets.config import load_settings
from pmm_widgets.research.pmxt import PmxtError, import_pmxt
from pmm_widgets.research.recordings import load_window
from pmm_widgets.research.replayer import Replayer

T0_MS = 1_796_032_800_000  # 2026-11-30T10:00:00Z
MARKETS = {"0x" + "a" * 64: ("1111", "2222"), "0x" + "b" * 64: ("3333", "4444")}
BIDS = [["0.4", "100"], ["0.45", "50"]]  # worst first, best last (as the archive writes them)
ASKS = [["0.6", "100"], ["0.55", "50"]]


def _events(seconds: int = 120, seed: int = 3) -> list[dict]:
    """Logical events: a book per token, then price changes at the touch, and a few trades."""
    rnd = random.Random(seed)
    out = []
    for m, toks in MARKETS.items():
        for k, tok in enumerate(toks):
            out.append({"kind": "book", "ms": T0_MS + k, "market": m, "token": tok, "outcome": "YES" if k == 0 else "NO"})
    for s in range(1, seconds):
        for m, toks in MARKETS.items():
            k = rnd.randrange(2)
            side = rnd.choice(["BUY", "SELL"])
            out.append({"kind": "price_change", "ms": T0_MS + s * 1000 + k, "market": m, "token": toks[k],
                        "outcome": "YES" if k == 0 else "NO", "side": side,
                        "price": "0.45" if side == "BUY" else "0.55", "size": str(rnd.randint(10, 90))})
            if s % 10 == 0:
                out.append({"kind": "trade", "ms": T0_MS + s * 1000 + 5, "market": m, "token": toks[0],
                            "outcome": "YES", "side": "BUY", "price": "0.55", "size": "5"})
    out.sort(key=lambda e: (e["market"], e["token"], e["ms"]))  # the archive's row order
    return out


def _ts(ms: list[int]) -> pa.Array:
    return pa.array(ms, pa.timestamp("ms", tz="UTC"))


def write_v1(path, events) -> None:
    rows = [e for e in events if e["kind"] != "trade"]  # v1 has no trade events
    data = []
    for e in rows:
        d = {"update_type": "book_snapshot" if e["kind"] == "book" else "price_change", "market_id": e["market"],
             "token_id": e["token"], "side": e["outcome"], "best_bid": "0.45", "best_ask": "0.55",
             "timestamp": e["ms"] / 1000.0}
        if e["kind"] == "book":
            d.update(bids=BIDS, asks=ASKS)
        else:
            d.update(change_price=e["price"], change_size=e["size"], change_side=e["side"])
        data.append(json.dumps(d))
    pq.write_table(pa.table({
        "timestamp_received": _ts([e["ms"] + 20 for e in rows]), "timestamp_created_at": _ts([e["ms"] for e in rows]),
        "market_id": [e["market"] for e in rows], "update_type": [json.loads(x)["update_type"] for x in data],
        "data": data}), path)


def _v2_common(events) -> dict:
    dec4, dec6 = pa.decimal128(9, 4), pa.decimal128(18, 6)
    kind = {"book": "book", "price_change": "price_change", "trade": "last_trade_price"}
    num = lambda e, k, t: None if e["kind"] == "book" else Decimal(e[k])  # noqa: E731
    return {
        "timestamp_received": _ts([e["ms"] + 20 for e in events]), "timestamp": _ts([e["ms"] for e in events]),
        "market": pa.array([e["market"].encode() for e in events], pa.binary(66)),
        "event_type": [kind[e["kind"]] for e in events], "asset_id": [e["token"] for e in events],
        "price": pa.array([num(e, "price", dec4) for e in events], dec4),
        "size": pa.array([num(e, "size", dec6) for e in events], dec6),
        "side": [None if e["kind"] == "book" else e["side"] for e in events],
        "best_bid": pa.array([Decimal("0.45") if e["kind"] == "price_change" else None for e in events], dec4),
        "best_ask": pa.array([Decimal("0.55") if e["kind"] == "price_change" else None for e in events], dec4),
        "fee_rate_bps": pa.array([None] * len(events), pa.uint16()),
        "transaction_hash": [None] * len(events),
        "old_tick_size": pa.array([None] * len(events), dec4), "new_tick_size": pa.array([None] * len(events), dec4),
    }


def write_v2_16(path, events) -> None:
    cols = _v2_common(events)
    cols["bids"] = [json.dumps(BIDS) if e["kind"] == "book" else None for e in events]
    cols["asks"] = [json.dumps(ASKS) if e["kind"] == "book" else None for e in events]
    pq.write_table(pa.table(cols), path)


def write_v2_18(path, events) -> None:
    cols = _v2_common(events)
    dec4, dec6 = pa.decimal128(9, 4), pa.decimal128(18, 6)
    lst = lambda lv, i, t: [Decimal(x[i]) for x in lv]  # noqa: E731
    book = [e["kind"] == "book" for e in events]
    cols["bid_prices"] = pa.array([lst(BIDS, 0, dec4) if b else None for b in book], pa.list_(dec4))
    cols["bid_sizes"] = pa.array([lst(BIDS, 1, dec6) if b else None for b in book], pa.list_(dec6))
    cols["ask_prices"] = pa.array([lst(ASKS, 0, dec4) if b else None for b in book], pa.list_(dec4))
    cols["ask_sizes"] = pa.array([lst(ASKS, 1, dec6) if b else None for b in book], pa.list_(dec6))
    pq.write_table(pa.table(cols), path)


@pytest.mark.parametrize("variant,writer", [("v1", write_v1), ("v2-18", write_v2_18), ("v2-16", write_v2_16)])
def test_each_variant_imports_and_replays(tmp_path, variant, writer):
    events = _events()
    f = tmp_path / "polymarket_orderbook_2026-11-30T10.parquet"
    writer(f, events)
    root = tmp_path / "rec"
    rep = import_pmxt([f], root, markets=None)
    assert rep.variants == {str(f): variant} and rep.markets == 2 and rep.skipped_rows == 0
    expected = len([e for e in events if variant != "v1" or e["kind"] != "trade"])
    assert rep.events == expected
    w = load_window(root, rep.first_ts, rep.last_ts + 1)
    assert not w.problems and not w.gaps
    frames = [json.loads(p) for p, c in zip(w.payload, w.channel) if c == 0]
    assert [f_["event_type"] for f_ in frames[:4]] == ["book"] * 4  # the books come first once re-sorted by time
    assert list(w.ts) == sorted(w.ts)  # re-sorted by receive time
    s = load_settings(record_dir=str(root), quote_refresh_sec=1.0, paper_fill_intensity=30)
    r = Replayer(s, rep.first_ts, rep.last_ts + 1)
    res = asyncio.run(r.run())
    assert res.summary["bad_messages"] == 0 and res.summary["markets"] == 2
    for yes, no in MARKETS.values():
        b = r.md.books[yes]
        assert b.synced and b.best_bid == Decimal("0.45") and b.best_ask == Decimal("0.55")
        assert r.md.books[no].synced
    assert res.summary["placed"] > 0 and res.summary["fills"] > 0
    universe = {m.condition_id: (m.yes_token_id, m.no_token_id) for m in r.markets}
    if variant == "v1":  # YES/NO labels order the tokens
        assert universe == MARKETS
    assert all(m.tick_size == Decimal("0.01") for m in r.markets)


def test_market_selection_and_unknown_schema(tmp_path, monkeypatch, capsys):
    f = tmp_path / "v2.parquet"
    write_v2_16(f, _events(30))
    rep = import_pmxt([f], tmp_path / "one", markets=1)
    assert rep.markets == 1
    bad = tmp_path / "other.parquet"
    pq.write_table(pa.table({"ts": [1], "what": ["x"]}), bad)
    with pytest.raises(PmxtError, match=r"other\.parquet: unknown PMXT schema"):
        import_pmxt([bad], tmp_path / "x")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    for sel in (None, 50):  # 50: the busiest markets are counted first, on the same guarded read
        with pytest.raises(PmxtError, match=r"junk\.parquet: not a readable Parquet file"):
            import_pmxt([junk], tmp_path / "x", markets=sel)
    monkeypatch.setenv("PMM_RECORD_DIR", str(tmp_path / "cli"))
    assert main(["recordings", "import-pmxt", str(f), "--markets", "all"]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and "[v2-16]" in out and "replay --from 2026-11-30T10:00:00" in out
    assert main(["recordings", "list"]) == 0
    assert "universe" in capsys.readouterr().out
    assert main(["recordings", "import-pmxt", str(bad)]) == 1
    capsys.readouterr()
    assert main(["recordings", "import-pmxt", str(junk)]) == 1  # the default --markets 50
    assert "junk.parquet: not a readable Parquet file" in capsys.readouterr().err


# ---------------------------------------------------------------- what a downloaded file can hold


def _v2_table(events) -> pa.Table:
    cols = _v2_common(events)
    cols["bids"] = [json.dumps(BIDS) if e["kind"] == "book" else None for e in events]
    cols["asks"] = [json.dumps(ASKS) if e["kind"] == "book" else None for e in events]
    return pa.table(cols)


def _with(t: pa.Table, column: str, values: list, type_=None) -> pa.Table:
    i = t.column_names.index(column)
    return t.set_column(i, column, pa.array(values, type_ if type_ is not None else t.schema.field(column).type))


def _frames(root) -> list[dict]:
    w = load_window(root, 0, 4_102_444_800)
    assert list(w.ts) == sorted(w.ts)
    return [json.loads(p) for p, c in zip(w.payload, w.channel) if c == 0]


def test_rows_it_cannot_convert_are_skipped_named_and_counted(tmp_path):
    events = _events(120)
    t = _v2_table(events)
    bad = {3: ("timestamp_received", None), 7: ("price", Decimal("1.5")), 9: ("size", Decimal("-2")),
           11: ("side", "LEFT"), 13: ("price", Decimal("0.4512"))}
    for row, (col, val) in bad.items():
        vals = t.column(col).to_pylist()
        vals[row] = val
        t = _with(t, col, vals)
    assert all(events[r]["kind"] == "price_change" for r in bad)
    f = tmp_path / "mixed.parquet"
    pq.write_table(t, f)
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    # four rows fail on their own values; one price of 4 places among ~100 of 2 does not make the
    # market's grid finer: its row is off the 0.01 grid
    assert rep.skipped_rows == 5 and rep.events == len(events) - 5, rep.problems
    assert len(rep.problems) == 3 and all(p.startswith(f"{f}: row ") for p in rep.problems)  # the first 3 named
    assert "row 3: column timestamp_received" in rep.problems[0] and "outside (0, 1)" in rep.problems[1]
    assert "size -2 negative" in rep.problems[2]
    frames = _frames(tmp_path / "rec")
    assert len(frames) == rep.events
    prices = {ch["price"] for fr in frames if fr["event_type"] == "price_change" for ch in fr["price_changes"]}
    assert prices == {"0.45", "0.55"}


def test_a_book_on_a_finer_grid_sets_the_tick(tmp_path):
    events = _events(20)
    t = _v2_table(events)
    fine = [["0.4", "100"], ["0.455", "50"]]
    t = _with(t, "bids", [json.dumps(fine) if e["kind"] == "book" else None for e in events])
    f = tmp_path / "fine.parquet"
    pq.write_table(t, f)
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    assert rep.skipped_rows == 0
    s = load_settings(record_dir=str(tmp_path / "rec"), quote_refresh_sec=1.0)
    r = Replayer(s, rep.first_ts, rep.last_ts + 1)
    res = asyncio.run(r.run())
    assert {m.tick_size for m in r.markets} == {Decimal("0.001")}
    assert res.summary["bad_messages"] == 0  # before: the 0.01 tick of the price changes refused every book


@pytest.mark.parametrize("unit,scale", [("us", 1000), ("ns", 1_000_000), ("s", 0.001)])
def test_epoch_numbers_in_any_unit_are_times(tmp_path, unit, scale):
    events = _events(10)
    t = _v2_table(events)
    num = [(e["ms"] + 20) * scale for e in events]
    t = _with(t, "timestamp_received", num, pa.float64() if unit == "s" else pa.int64())
    f = tmp_path / f"{unit}.parquet"
    pq.write_table(t, f)
    rep = import_pmxt([f], tmp_path / unit, markets=None)
    assert rep.skipped_rows == 0 and abs(rep.first_ts - (T0_MS + 20) / 1000) < 1e-3


def test_unreadable_values_fail_or_skip_with_the_file_named(tmp_path):
    events = _events(10)
    t = _v2_table(events)
    iso_ts = _with(t, "timestamp_received", [str(e["ms"]) + "Z" for e in events], pa.string())
    f = tmp_path / "iso.parquet"
    pq.write_table(iso_ts, f)
    with pytest.raises(PmxtError, match=r"iso\.parquet: column timestamp_received holds string, not times"):
        import_pmxt([f], tmp_path / "x", markets=None)
    listed = t.set_column(t.column_names.index("bids"), "bids",
                          pa.array([BIDS if e["kind"] == "book" else None for e in events], pa.list_(pa.list_(pa.string()))))
    g = tmp_path / "listed.parquet"
    pq.write_table(listed, g)
    rep = import_pmxt([g], tmp_path / "y", markets=None)
    assert rep.skipped_rows == 4 and "column bids: list where JSON text was expected" in rep.problems[0]
    assert rep.bookless == sorted(MARKETS)  # named: the replay cannot build these books
    v1 = tmp_path / "v1.parquet"
    write_v1(v1, events)
    t1 = pq.read_table(v1)
    data = t1.column("data").to_pylist()
    data[5], data[6] = "null", "[1, 2]"
    pq.write_table(_with(t1, "data", data), v1)
    rep = import_pmxt([v1], tmp_path / "z", markets=None)
    assert rep.skipped_rows == 2 and "row 5: column data: NoneType where a JSON object" in rep.problems[0]


def test_a_corrupt_page_is_one_line_naming_the_file(tmp_path):
    f = tmp_path / "big.parquet"
    pq.write_table(_v2_table(_events(120)), f, compression="snappy")
    raw = bytearray(f.read_bytes())
    mid = len(raw) // 3
    raw[mid:mid + 64] = b"\xff" * 64  # a page's bytes: the footer still reads
    f.write_bytes(bytes(raw))
    for sel in (None, 1):
        with pytest.raises(PmxtError, match=r"big\.parquet: cannot read its data, the file is corrupt"):
            import_pmxt([f], tmp_path / "x", markets=sel)
    assert not list((tmp_path / "x").glob("*/*.parquet"))


def test_the_busiest_market_with_two_tokens_is_chosen_and_none_is_an_error(tmp_path):
    events = _events(20)
    lone = [{**e, "market": "0x" + "c" * 64, "token": "9999", "ms": e["ms"] + 1} for e in events * 2]
    f = tmp_path / "lone.parquet"
    pq.write_table(_v2_table(lone + events), f)
    rep = import_pmxt([f], tmp_path / "rec", markets=1)
    assert rep.markets == 1 and rep.events > 0  # the one-token market (the busiest) is not ranked
    g = tmp_path / "only_lone.parquet"
    pq.write_table(_v2_table(lone), g)
    with pytest.raises(PmxtError, match="no market with two tokens"):
        import_pmxt([g], tmp_path / "x", markets=1)
    with pytest.raises(PmxtError, match="no market with two tokens"):
        import_pmxt([g], tmp_path / "x", markets=None)
    with pytest.raises(PmxtError, match="none of the selected markets is in the file"):
        import_pmxt([f], tmp_path / "x", markets=["0xdeadbeef"])
    rep = import_pmxt([f], tmp_path / "some", markets=["0xdeadbeef", next(iter(MARKETS))])
    assert rep.markets == 1 and rep.unknown_markets == ["0xdeadbeef"]


def test_the_same_data_is_never_imported_twice_nor_mixed_with_other_sessions(tmp_path, monkeypatch, capsys):
    from pmm_widgets.store.recording import Recorder

    events = _events(60)
    f = tmp_path / "polymarket_orderbook_2026-11-30T10.parquet"
    write_v2_16(f, events)
    copy = tmp_path / "renamed.parquet"
    copy.write_bytes(f.read_bytes())
    root = tmp_path / "rec"
    rep = import_pmxt([f, copy, f], root, markets=None)
    assert rep.events == len(events) and rep.duplicates == [str(copy), str(f)]
    again = import_pmxt([copy], root, markets=None)  # the same bytes: the same session, replaced
    assert again.session == rep.session and len(_frames(root)) == len(events)
    later = [{**e, "ms": e["ms"] + 30_000} for e in _events(60, seed=4)]  # overlaps the first import's minute
    g = tmp_path / "later.parquet"
    write_v2_16(g, later)
    with pytest.raises(PmxtError, match=r"overlaps recordings already there.*session " + rep.session):
        import_pmxt([g], root, markets=None)
    assert len(_frames(root)) == len(events)
    hour_on = tmp_path / "engine"  # the engine's own recording of the same minutes
    rec = Recorder(hour_on, session="engine01")
    rec.frame(T0_MS / 1000 + 5, 0, "[]")
    rec.close()
    with pytest.raises(PmxtError, match="session engine01"):
        import_pmxt([f], hour_on, markets=None)
    next_hour = [{**e, "ms": e["ms"] + 3_600_000} for e in events]  # no overlap: both kept
    h = tmp_path / "next.parquet"
    write_v2_16(h, next_hour)
    import_pmxt([h], root, markets=None)
    assert len(_frames(root)) == 2 * len(events)
    monkeypatch.setenv("PMM_RECORD_DIR", str(root))
    capsys.readouterr()
    assert main(["recordings", "import-pmxt", str(g), "--markets", "ALL"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "overlaps recordings already there" in err[0]


def test_the_same_hour_in_two_schema_variants_is_refused_not_doubled(tmp_path):
    """Two files of one import holding the same market over the same minutes (an archive hour
    downloaded in two schema variants: not byte-equal, so not a duplicate file) were imported
    together, every event twice. Refused, both files named, nothing written; the next hour's file
    beside one of them is imported."""
    events = _events(60)
    a, b = tmp_path / "hour-v2-16.parquet", tmp_path / "hour-v2-18.parquet"
    write_v2_16(a, events)
    write_v2_18(b, events)
    root = tmp_path / "rec"
    with pytest.raises(PmxtError, match=r"hour-v2-16.parquet and .*hour-v2-18.parquet both hold market .*"
                                        r"import one of them"):
        import_pmxt([a, b], root, markets=None)
    assert not list(root.rglob("*.parquet*"))
    nxt = tmp_path / "next-hour.parquet"
    write_v2_18(nxt, [{**e, "ms": e["ms"] + 3_600_000} for e in events])
    rep = import_pmxt([a, nxt], root, markets=None)
    assert rep.events == 2 * len(events) and len(_frames(root)) == 2 * len(events)


def test_a_target_it_cannot_write_fails_and_keeps_nothing(tmp_path, monkeypatch, capsys):
    f = tmp_path / "v2.parquet"
    write_v2_16(f, _events(20))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(PmxtError, match="a_file: cannot write recordings there"):
        import_pmxt([f], blocker, markets=None)
    root = tmp_path / "rec"
    root.mkdir()
    (root / "2026-11-30T10").write_text("")  # where the hour's directory must go
    monkeypatch.setenv("PMM_RECORD_DIR", str(root))
    assert main(["recordings", "import-pmxt", str(f), "--markets", "all"]) == 1
    assert "write error(s)" in capsys.readouterr().err
    assert not list(root.glob("*/*-pmxt*"))  # none of its files left behind
