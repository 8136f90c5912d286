"""The PMXT importer's pieces on their own (values, times, ticks, schemas, the checks before
anything is written) and small imports whose events and universe are read back from a stand-in
recorder: exactly what a replay would be given."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc_
import pyarrow.parquet as pq
import pytest

from pmm_widgets.research import pmxt
from pmm_widgets.research.pmxt import ImportReport, PmxtError, import_pmxt

T0_MS = 1_796_032_800_000  # 2026-11-30T10:00:00Z
MA, MB = "0x" + "a" * 64, "0x" + "b" * 64

# ------------------------------------------------------------------------- values


def test_numbers_prices_sizes_and_sides():
    assert pmxt._dec("  0.50 ", "c") == Decimal("0.50") and pmxt._dec(0.1, "c") == Decimal("0.1")
    assert pmxt._dec(3, "c") == 3 and pmxt._dec(Decimal("2.5"), "c") == Decimal("2.5")
    for bad in (None, True, "abc", "", float("nan"), "inf", Decimal("NaN")):
        with pytest.raises(pmxt._BadRow, match=r"^column c: .* is no number$"):
            pmxt._dec(bad, "c")
    assert pmxt._text(Decimal("0.4500")) == "0.45" and pmxt._text(Decimal("1E+2")) == "100"
    assert pmxt._price("0.4500", "p") == "0.45" and pmxt._price(Decimal("0.0001"), "p") == "0.0001"
    for bad, said in (("0", "price 0 outside"), ("1", "price 1 outside"), ("1.5", "price 1.5 outside"),
                      ("-0.1", "price -0.1 outside")):
        with pytest.raises(pmxt._BadRow, match=rf"^column p: {said} \(0, 1\)$"):
            pmxt._price(bad, "p")
    assert pmxt._opt_price(None, "b") == "" and pmxt._opt_price("", "b") == "" and pmxt._opt_price("0.5", "b") == "0.5"
    with pytest.raises(pmxt._BadRow):
        pmxt._opt_price("2", "b")
    assert pmxt._size("0", "s") == "0" and pmxt._size("10.50", "s") == "10.5"
    with pytest.raises(pmxt._BadRow, match=r"^column s: size -1 negative$"):
        pmxt._size("-1", "s")
    assert pmxt._size("0.1", "s", positive=True) == "0.1"
    with pytest.raises(pmxt._BadRow, match=r"^column s: size 0 not positive$"):
        pmxt._size("0", "s", positive=True)
    with pytest.raises(pmxt._BadRow, match=r"^column s: size -2 not positive$"):
        pmxt._size(-2, "s", positive=True)
    assert pmxt._side(" buy ", "x") == "BUY" and pmxt._side("Sell", "x") == "SELL"
    for bad in (None, "", "YES", "BUYS"):
        with pytest.raises(pmxt._BadRow, match=r"^column x: side .* is neither BUY nor SELL$"):
            pmxt._side(bad, "x")


def test_levels_and_json_lists():
    assert pmxt._levels([["0.40", "10"], ("0.5", 2)], "bids") == [{"price": "0.4", "size": "10"},
                                                                  {"price": "0.5", "size": "2"}]
    assert pmxt._levels((), "bids") == []
    for bad in ("[[0.4, 1]]", None, {"0.4": 1}):
        with pytest.raises(pmxt._BadRow, match=r"^column bids: depth .* is no list of \[price, size\] pairs$"):
            pmxt._levels(bad, "bids")
    for bad in ([["0.4"]], [["0.4", "1", "2"]], ["0.4"], [{"p": 1, "s": 2}]):
        with pytest.raises(pmxt._BadRow, match=r"^column bids: level .* is no \[price, size\] pair$"):
            pmxt._levels(bad, "bids")
    assert pmxt._json_list(None, "asks") == [] and pmxt._json_list("", "asks") == []
    assert pmxt._json_list('[["0.5", "1"]]', "asks") == [["0.5", "1"]]
    with pytest.raises(pmxt._BadRow, match=r"^column asks: list where JSON text was expected$"):
        pmxt._json_list([["0.5", "1"]], "asks")
    with pytest.raises(pmxt._BadRow, match=r"^column asks: not valid JSON$"):
        pmxt._json_list("[[", "asks")


def test_market_ids_and_times():
    assert pmxt._market_str(b"0xab") == "0xab" and pmxt._market_str(bytearray(b"0xcd")) == "0xcd"
    assert pmxt._market_str(12) == "12"
    for bad in (None, "", "  ", b" "):
        with pytest.raises(pmxt._BadRow, match="^column market: no market id$"):
            pmxt._market_str(bad)
    lo, hi = pmxt.TIME_RANGE_MS
    assert pmxt._time_ok(lo) and pmxt._time_ok(hi - 1) and pmxt._time_ok(float(T0_MS))
    assert not pmxt._time_ok(lo - 1) and not pmxt._time_ok(hi) and not pmxt._time_ok(math.nan)
    assert not pmxt._time_ok(math.inf)
    assert pmxt._time_ok(4_102_444_799_999.0) and not pmxt._time_ok(4_102_444_800_000.0)  # 2100-01-01 is past
    assert pmxt._time_ok(1_420_070_400_000.0) and not pmxt._time_ok(1_420_070_399_999.0)  # 2015-01-01 is in


def test_ms_reads_timestamps_and_epoch_numbers_of_any_unit():
    def ms(arr):
        return list(pmxt._ms(arr, "f.parquet", "ts"))

    s = T0_MS / 1000
    assert ms(pa.array([T0_MS, None], pa.timestamp("ms", tz="UTC")))[0] == T0_MS
    assert math.isnan(ms(pa.array([T0_MS, None], pa.timestamp("ms", tz="UTC")))[1])
    assert ms(pa.array([T0_MS * 1000 + 5], pa.timestamp("us"))) == [T0_MS + 0.005]
    assert ms(pa.array([T0_MS * 1_000_000], pa.timestamp("ns", tz="UTC"))) == [T0_MS]
    assert ms(pa.array([s, s + 0.5])) == [T0_MS, T0_MS + 500]  # seconds
    assert ms(pa.array([T0_MS, T0_MS + 1])) == [T0_MS, T0_MS + 1]  # milliseconds
    assert ms(pa.array([T0_MS * 1000, T0_MS * 1000 + 2000])) == [T0_MS, T0_MS + 2]  # microseconds
    assert ms(pa.chunked_array([pa.array([T0_MS * 1_000_000], pa.int64())])) == [T0_MS]  # nanoseconds
    assert ms(pa.array([Decimal(T0_MS)], pa.decimal128(18, 0))) == [T0_MS]
    # the scale is the median's: a few values of another size do not change it
    got = ms(pa.array([s, s + 1, s + 2, 5.0, -s], pa.float64()))
    assert got == [T0_MS, T0_MS + 1000, T0_MS + 2000, 5000.0, -T0_MS]
    assert all(math.isnan(x) for x in ms(pa.array([None, None], pa.null())))
    mixed = ms(pa.array([None, s, float("nan")], pa.float64()))
    assert math.isnan(mixed[0]) and mixed[1] == T0_MS and math.isnan(mixed[2])
    # the unit's bounds: 1e11 ms is 1973 (ms), 9.9e10 s
    assert ms(pa.array([9.9e10])) == [9.9e13] and ms(pa.array([1e11])) == [1e11]
    assert ms(pa.array([9.9e13])) == [9.9e13] and ms(pa.array([1e14])) == [1e11]
    assert ms(pa.array([9.9e16])) == [9.9e13] and ms(pa.array([1e17])) == [1e11]
    with pytest.raises(PmxtError, match=r"^f\.parquet: column ts holds string, not times"):
        pmxt._ms(pa.array(["2026-11-30"]), "f.parquet", "ts")


def test_ticks_of_the_prices_seen():
    assert pmxt._tick_of({}) == Decimal("0.01")
    assert pmxt._tick_of({1: 10, 2: 90}) == Decimal("0.01")
    assert pmxt._tick_of({2: 995, 3: 5}) == Decimal("0.01")  # 99.5 % on the 0.01 grid: stray finer ones
    assert pmxt._tick_of({2: 994, 3: 6}) == Decimal("0.001")
    assert pmxt._tick_of({2: 10, 4: 90}) == Decimal("0.0001")
    assert pmxt._tick_of({2: 10, 3: 989, 4: 1}) == Decimal("0.001")
    assert pmxt._tick_of({2: 1, 6: 99}) == Decimal("0.0001")  # never finer than the venue's finest
    assert pmxt._places(Decimal("0.01")) == 2 and pmxt._places(Decimal("0.0010")) == 3
    assert pmxt._places(Decimal("1")) == 0 and pmxt._places(Decimal("1E+1")) == 0
    assert pmxt._places(Decimal("Infinity")) == 0 and pmxt._places(Decimal("NaN")) == 0
    assert pmxt._tick_of({2: 994, 4: 6}) == Decimal("0.0001")  # none on 0.001: the 0.0001 grid


def test_detect_variant_needs_every_column_of_a_variant():
    def schema(cols):
        return pa.schema([(c, pa.string()) for c in cols])

    v1 = sorted(pmxt.V1_COLUMNS)
    v216 = sorted(pmxt.V2_COMMON | pmxt.V2_JSON_DEPTH)
    v218 = sorted(pmxt.V2_COMMON | pmxt.V2_LIST_DEPTH)
    assert pmxt.detect_variant(schema(v1)) == "v1"
    assert pmxt.detect_variant(schema(v216)) == "v2-16"
    assert pmxt.detect_variant(schema(v218)) == "v2-18"
    assert pmxt.detect_variant(schema([*v216, "x"])) == "v2-16"
    for cols in (v1[1:], sorted(pmxt.V2_COMMON), sorted(pmxt.V2_JSON_DEPTH | pmxt.V2_LIST_DEPTH),
                 sorted((pmxt.V2_COMMON - {"price"}) | pmxt.V2_JSON_DEPTH),
                 sorted((pmxt.V2_COMMON - {"side"}) | pmxt.V2_LIST_DEPTH)):
        with pytest.raises(PmxtError, match=r"^f\.parquet: unknown PMXT schema \(columns: "):
            pmxt.detect_variant(schema(cols), "f.parquet")


def test_a_fresh_report_and_skips_named_three_per_file():
    rep = ImportReport()
    assert dataclasses.asdict(rep) == {
        "files": [], "variants": {}, "rows": 0, "events": 0, "markets": 0, "skipped_markets": 0, "skipped_rows": 0,
        "unknown_events": 0, "problems": [], "named": {}, "duplicates": [], "unknown_markets": [], "bookless": [],
        "session": "", "first_ts": 0.0, "last_ts": 0.0}
    assert "named" not in repr(rep)
    for i in range(5):
        pmxt._skip(rep, "a", i, f"why {i}")
    pmxt._skip(rep, "b", 9, "other")
    assert rep.skipped_rows == 6 and rep.named == {"a": 3, "b": 1}
    assert rep.problems == ["a: row 0: why 0", "a: row 1: why 1", "a: row 2: why 2", "b: row 9: other"]


def test_event_prices():
    book = {"event_type": "book", "bids": [{"price": "0.4"}], "asks": [{"price": "0.6"}, {"price": "0.7"}]}
    assert list(pmxt._event_prices(book)) == ["0.4", "0.6", "0.7"]
    pc_ = {"event_type": "price_change", "price_changes": [{"price": "0.5", "best_bid": "", "best_ask": "0.55"}]}
    assert list(pmxt._event_prices(pc_)) == ["0.5", "0.55"]
    assert list(pmxt._event_prices({"event_type": "last_trade_price", "price": "0.3"})) == ["0.3"]
    assert list(pmxt._event_prices({"event_type": "tick_size_change"})) == []


def test_hours_between():
    h = T0_MS / 1000
    assert pmxt._hours_between(h + 10, h + 20) == ["2026-11-30T10"]
    assert pmxt._hours_between(h + 3599, h + 3600) == ["2026-11-30T10", "2026-11-30T11"]
    assert pmxt._hours_between(h, h + 7200) == ["2026-11-30T10", "2026-11-30T11", "2026-11-30T12"]
    assert pmxt._hours_between(h + 100, h + 3599.5) == ["2026-11-30T10"]


def _row(ts, market, n=0):
    return (float(ts), market, "t", None, {}, (f"file{n}", 0))


def test_held_twice_only_for_overlapping_times_of_one_market():
    assert pmxt._held_twice([]) is None
    one = [_row(T0_MS + k, MA, 0) for k in (5, 1, 9)] + [_row(T0_MS + k, MA, 1) for k in (10, 20)]
    assert pmxt._held_twice(one) is None  # file1 starts after file0's last
    assert pmxt._held_twice([*one, _row(T0_MS + 3, MB, 1), _row(T0_MS + 4, MB, 2)]) is None
    late = [*one, _row(T0_MS + 15, MA, 0)]  # file0 now reaches into file1's span
    why = pmxt._held_twice(late)
    assert why is not None and why.startswith(f"file0 and file1 both hold market {MA[:16]}... from ")
    assert "2026-11-30T10:00:00.010Z to 2026-11-30T10:00:00.015Z" in why and why.endswith("import one of them")
    early = [_row(T0_MS + 10, MA, 0), _row(T0_MS + 20, MA, 0), _row(T0_MS + 12, MA, 1), _row(T0_MS + 5, MA, 1)]
    why = pmxt._held_twice(early)  # file1's first row (5) is before file0's: the overlap 10 .. 12
    assert why is not None and why.startswith("file1 and file0 both hold")
    assert "10:00:00.010Z to 2026-11-30T10:00:00.012Z" in why
    inside = [_row(T0_MS, MA, 0), _row(T0_MS + 100, MA, 0), _row(T0_MS + 40, MA, 1), _row(T0_MS + 50, MA, 1)]
    assert "10:00:00.040Z to 2026-11-30T10:00:00.050Z" in (pmxt._held_twice(inside) or "")
    touching = [_row(T0_MS, MA, 0), _row(T0_MS + 10, MA, 0), _row(T0_MS + 10, MA, 1), _row(T0_MS + 20, MA, 1)]
    assert pmxt._held_twice(touching) is None  # one ends where the other starts: not twice


# ------------------------------------------------------------------------- files


def test_fingerprint_and_unique_files(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_bytes(b"x" * 100)
    b.write_bytes(b"x" * 100)
    c.write_bytes(b"x" * 101)
    assert pmxt._fingerprint(a) == pmxt._fingerprint(b) != pmxt._fingerprint(c)
    big = bytearray(b"y" * (3 << 20))
    (tmp_path / "big1").write_bytes(bytes(big))
    big[-5] = ord("z")  # the last MiB (the footer) differs
    (tmp_path / "big2").write_bytes(bytes(big))
    big[-5] = ord("y")
    big[(3 << 20) // 2] = ord("z")  # the middle: not read
    (tmp_path / "big3").write_bytes(bytes(big))
    f1, f2, f3 = (pmxt._fingerprint(tmp_path / n) for n in ("big1", "big2", "big3"))
    assert f1 != f2 and f1 == f3
    small = bytearray(b"y" * ((1 << 20) + 10))  # only just over a MiB: its tail is read from the MiB on
    (tmp_path / "s1").write_bytes(bytes(small))
    small[-1] = ord("z")
    (tmp_path / "s2").write_bytes(bytes(small))
    assert pmxt._fingerprint(tmp_path / "s1") != pmxt._fingerprint(tmp_path / "s2")
    (tmp_path / "big4").write_bytes(b"y" * (4 << 20))  # the same first and last MiB, not the same size
    head = bytearray(b"y" * (3 << 20))
    head[5] = ord("z")  # the first MiB differs
    (tmp_path / "big5").write_bytes(bytes(head))
    assert len({f1, pmxt._fingerprint(tmp_path / "big4"), pmxt._fingerprint(tmp_path / "big5")}) == 3
    rep = ImportReport()
    files, prints = pmxt._unique_files([a, str(b), c, a], rep)
    assert files == [a, c] and rep.duplicates == [str(b), str(a)] and len(prints) == 2
    with pytest.raises(PmxtError, match=r"/nope: no such file$"):
        pmxt._unique_files([tmp_path / "nope"], ImportReport())
    with pytest.raises(PmxtError, match=rf"^{tmp_path}: not a file$"):
        pmxt._unique_files([tmp_path], ImportReport())


# ------------------------------------------------------------------------- imports read back


class FakeRecorder:
    """What `import_pmxt` hands the recorder: the universe and each frame (ts, conn, event)."""

    made: list[FakeRecorder] = []
    errors = 0

    def __init__(self, root: Path, session: str) -> None:
        self.root, self.session = root, session
        self.universe_at: float | None = None
        self.markets: list[Any] = []
        self.frames: list[tuple[float, int, dict[str, Any]]] = []
        self.flushes = 0
        self.closed = False
        self.stats = type("S", (), {"errors": FakeRecorder.errors})()
        FakeRecorder.made.append(self)

    def universe(self, ts: float, markets: list[Any]) -> None:
        self.universe_at, self.markets = ts, list(markets)

    def frame(self, ts: float, conn: int, payload: str) -> None:
        assert not self.closed
        self.frames.append((ts, conn, json.loads(payload)))
        if self.stats.errors:  # a part written before the errors: the import removes it
            part = self.root / "2026-11-30T10" / f"market-{self.session}.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_text("")

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def rec(monkeypatch):
    FakeRecorder.made.clear()
    FakeRecorder.errors = 0
    monkeypatch.setattr(pmxt, "Recorder", FakeRecorder)
    return FakeRecorder


V2_DEFAULTS: dict[str, Any] = {"timestamp_received": None, "timestamp": None, "market": MA, "event_type": "book",
                               "asset_id": "1", "price": None, "size": None, "side": None, "best_bid": None,
                               "best_ask": None, "bids": None, "asks": None, "old_tick_size": None,
                               "new_tick_size": None}


def v2(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A v2-16 file of `rows` (each: the columns that differ from `V2_DEFAULTS`; `ms` the receive time)."""
    full = []
    for r in rows:
        d = {**V2_DEFAULTS, **{k: v for k, v in r.items() if k != "ms"}}
        d["timestamp_received"] = r.get("ms")
        full.append(d)
    cols = {k: [r[k] for r in full] for k in V2_DEFAULTS}
    types = {"timestamp_received": pa.timestamp("ms", tz="UTC"), "timestamp": pa.timestamp("ms", tz="UTC")}
    pq.write_table(pa.table({k: pa.array(v, types.get(k, pa.string())) for k, v in cols.items()}), path)
    return path


def book(ms, market=MA, token="1", bids=(("0.4", "10"),), asks=(("0.6", "10"),), **kw):
    return {"ms": ms, "market": market, "asset_id": token, "event_type": "book",
            "bids": json.dumps([list(x) for x in bids]), "asks": json.dumps([list(x) for x in asks]), **kw}


def change(ms, market=MA, token="1", price="0.45", size="5", side="BUY", **kw):
    return {"ms": ms, "market": market, "asset_id": token, "event_type": "price_change", "price": price,
            "size": size, "side": side, "best_bid": "0.45", "best_ask": "0.6", **kw}


def pair(ms, market=MA, tokens=("1", "2")):
    return [book(ms, market, tokens[0]), book(ms + 1, market, tokens[1])]


def test_an_import_hands_the_recorder_each_event_in_time_order(tmp_path, rec):
    rows = [change(T0_MS + 500, token="2", size="7", side="sell", timestamp=T0_MS + 480),
            *pair(T0_MS), change(T0_MS + 200),
            {"ms": T0_MS + 300, "event_type": "last_trade_price", "asset_id": "1", "price": "0.6", "size": "2",
             "side": "BUY"},
            {"ms": T0_MS + 400, "event_type": "mystery"}]
    f = v2(tmp_path / "f.parquet", rows)
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    (r,) = rec.made
    assert r.closed and r.root == tmp_path / "rec" and r.session == rep.session
    assert rep.session == "pmxt" + __import__("hashlib").sha256(pmxt._fingerprint(f).encode()).hexdigest()[:8]
    assert [(ts, c) for ts, c, _ in r.frames] == [(T0_MS / 1000, 0), ((T0_MS + 1) / 1000, 0), ((T0_MS + 200) / 1000, 0),
                                                  ((T0_MS + 300) / 1000, 0), ((T0_MS + 500) / 1000, 0)]
    evs = [e for _, _, e in r.frames]
    assert evs[0] == {"event_type": "book", "market": MA, "asset_id": "1", "timestamp": str(T0_MS), "hash": "",
                      "bids": [{"price": "0.4", "size": "10"}], "asks": [{"price": "0.6", "size": "10"}]}
    assert evs[3] == {"event_type": "last_trade_price", "market": MA, "asset_id": "1", "price": "0.6", "size": "2",
                      "side": "BUY", "timestamp": str(T0_MS + 300)}
    assert evs[4] == {"event_type": "price_change", "market": MA, "timestamp": str(T0_MS + 480), "price_changes": [{
        "asset_id": "2", "price": "0.45", "size": "7", "side": "SELL", "best_bid": "0.45", "best_ask": "0.6"}]}
    assert evs[2]["timestamp"] == str(T0_MS + 200)  # no venue time: the receive time
    assert rep.events == 5 and rep.rows == 6 and rep.markets == 1 and rep.unknown_events == 1
    assert rep.skipped_rows == 1 and rep.problems == [] and rep.bookless == [] and rep.skipped_markets == 0
    assert rep.first_ts == T0_MS / 1000 and rep.last_ts == (T0_MS + 500) / 1000 and r.universe_at == rep.first_ts
    assert rep.variants == {str(f): "v2-16"} and rep.files == [str(f)]
    (m,) = r.markets
    assert (m.condition_id, m.yes_token_id, m.no_token_id, m.tick_size, m.min_order_size, m.slug) == (
        MA, "1", "2", Decimal("0.01"), Decimal(5), MA)
    assert m.question == f"PMXT {MA[:12]}"


def test_markets_without_two_tokens_or_a_book_and_the_ranking(tmp_path, rec):
    lone = "0x" + "c" * 64
    rows = [*pair(T0_MS), change(T0_MS + 10), change(T0_MS + 11),
            *[change(T0_MS + 20 + k, market=lone, token="9") for k in range(5)],
            change(T0_MS + 40, market=MB, token="3"), change(T0_MS + 41, market=MB, token="4")]
    f = v2(tmp_path / "f.parquet", rows)
    rep = import_pmxt([f], tmp_path / "all", markets=None)
    assert rep.markets == 2 and rep.skipped_markets == 1 and rep.bookless == [MB]
    assert {m.condition_id for m in rec.made[-1].markets} == {MA, MB}
    assert pmxt.top_markets([f], 1) == [MA] and pmxt.top_markets([f], 5) == [MA, MB]
    assert pmxt.market_tokens([f]) == {MA: (4, {"1", "2"}), lone: (5, {"9"}), MB: (2, {"3", "4"})}
    rep = import_pmxt([f], tmp_path / "one", markets=1)
    assert rep.markets == 1 and {e["market"] for _, _, e in rec.made[-1].frames} == {MA}
    rep = import_pmxt([f], tmp_path / "sel", markets=[MB, "0xnone1", "0xnone2"])
    assert rep.unknown_markets == ["0xnone1", "0xnone2"] and rep.markets == 1
    with pytest.raises(PmxtError, match=r"none of the selected markets is in the file\(s\) \(0xn1, 0xn2\)$"):
        import_pmxt([f], tmp_path / "x", markets=["0xn1", "0xn2"])
    with pytest.raises(PmxtError, match=r"none of the selected markets is in the file\(s\) \(0xn1, 0xn2, 0xn3 \.\.\.\)$"):
        import_pmxt([f], tmp_path / "x", markets=["0xn1", "0xn2", "0xn3", "0xn4"])
    with pytest.raises(PmxtError, match=r"no market with two tokens \(YES and NO\) among the 1 selected$"):
        import_pmxt([f], tmp_path / "x", markets=[lone])


def test_v1_yes_no_labels_order_the_tokens_and_bad_rows_are_named(tmp_path, rec):
    def d(tok, side, kind="price_change", **kw):
        base = {"token_id": tok, "side": side, "best_bid": "0.45", "best_ask": "0.55"}
        if kind == "book_snapshot":
            base.update(bids=[["0.4", "1"]], asks=[["0.6", "1"]])
        else:
            base.update(change_price="0.5", change_size="3", change_side="buy")
        return kind, json.dumps({**base, **kw})

    rows = [(T0_MS + 1, *d("y", "YES", "book_snapshot")), (T0_MS, *d("n", "NO", "book_snapshot")),
            (T0_MS + 5, *d("n", "NO", timestamp=(T0_MS + 3) / 1000)), (T0_MS + 6, "other", "{}"),
            (T0_MS + 7, *d("y", "YES", timestamp=5)), (T0_MS + 8, "price_change", "{bad"),
            (T0_MS + 9, *d("y", "YES", change_size="-1")), (T0_MS + 10, *d("y", "YES", timestamp=""))]
    def v1(name, rows):
        f = tmp_path / name
        pq.write_table(pa.table({"timestamp_received": pa.array([r[0] for r in rows], pa.timestamp("ms", tz="UTC")),
                                 "market_id": [MA] * len(rows), "update_type": [r[1] for r in rows],
                                 "data": pa.array([r[2] for r in rows], pa.string())}), f)
        return f

    f = v1("v1.parquet", rows)
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    (m,) = rec.made[-1].markets
    assert (m.yes_token_id, m.no_token_id) == ("y", "n") and rep.variants[str(f)] == "v1"
    evs = [e for _, _, e in rec.made[-1].frames]
    assert [e["event_type"] for e in evs] == ["book", "book", "price_change", "price_change"]
    assert evs[1] == {"event_type": "book", "market": MA, "asset_id": "y", "timestamp": str(T0_MS + 1), "hash": "",
                      "bids": [{"price": "0.4", "size": "1"}], "asks": [{"price": "0.6", "size": "1"}]}
    assert evs[2]["timestamp"] == str(T0_MS + 3) and evs[3]["timestamp"] == str(T0_MS + 10)
    assert evs[2]["price_changes"] == [{"asset_id": "n", "price": "0.5", "size": "3", "side": "BUY",
                                        "best_bid": "0.45", "best_ask": "0.55"}]
    assert rep.unknown_events == 1 and rep.skipped_rows == 4
    assert rep.problems == [f"{f}: row 4: column data.timestamp: 5 is no time between 2015 and 2100",
                            f"{f}: row 5: column data: not valid JSON",
                            f"{f}: row 6: column data.change_size: size -1 negative"]
    assert pmxt.market_tokens([f]) == {MA: (len(rows), {"y", "n"})}
    raw = tmp_path / "v1raw.parquet"  # JSON as bytes: no token is read out of it, nor any row
    t1 = pq.read_table(f)
    pq.write_table(t1.set_column(3, "data", pc_.cast(t1.column("data"), pa.binary())), raw)
    assert pmxt.market_tokens([raw]) == {MA: (len(rows), set())}
    with pytest.raises(PmxtError, match="no market with two tokens"):
        import_pmxt([raw], tmp_path / "raw", markets=1)
    assert import_pmxt([f], tmp_path / "top", markets=1).events == 4  # the busiest market: by its market_id
    assert import_pmxt([f], tmp_path / "sel", markets=[MA]).events == 4
    g = v1("v1b.parquet", [*rows[:2], (None, *d("y", "YES")), (T0_MS + 11, "price_change", None),
                           (T0_MS + 12, *d("y", "YES", timestamp="abc"))])
    rep = import_pmxt([g], tmp_path / "rec2", markets=None)
    assert rep.events == 2 and rep.problems[1:] == [
        f"{g}: row 3: column data: NoneType where a JSON object was expected",
        f"{g}: row 4: ValueError: could not convert string to float: 'abc'"]
    # the time as a number, not numpy's repr of it ("np.float64(nan) ms is no time" before)
    assert rep.problems[0] == f"{g}: row 2: column timestamp_received: nan ms is no time between 2015 and 2100"


def test_tick_size_changes_set_the_grid(tmp_path, rec):
    fine = [*pair(T0_MS), change(T0_MS + 10, price="0.455"),
            {"ms": T0_MS + 5, "event_type": "tick_size_change", "old_tick_size": "0.01", "new_tick_size": "0.001"},
            {"ms": T0_MS + 6, "event_type": "tick_size_change", "old_tick_size": "0.01", "new_tick_size": "0.05"},
            {"ms": T0_MS + 7, "event_type": "tick_size_change", "old_tick_size": None, "new_tick_size": "0.01"}]
    f = v2(tmp_path / "t.parquet", fine)
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    (m,) = rec.made[-1].markets
    assert m.tick_size == Decimal("0.01")  # the tick before the change: the one the books start on
    evs = [e for _, _, e in rec.made[-1].frames]
    assert {"event_type": "tick_size_change", "market": MA, "asset_id": "1", "old_tick_size": "0.01",
            "new_tick_size": "0.001", "timestamp": str(T0_MS + 5)} in evs
    assert any(e["event_type"] == "price_change" and e["price_changes"][0]["price"] == "0.455" for e in evs)
    assert rep.skipped_rows == 2 and rep.problems == [
        f"{f}: row 4: column old_tick_size/new_tick_size: '0.01' -> '0.05': not a venue tick size",
        f"{f}: row 5: column old_tick_size: None is no number"]
    off = v2(tmp_path / "o.parquet", [*pair(T0_MS), change(T0_MS + 10, price="0.455"),
                                      *[change(T0_MS + 20 + k) for k in range(300)]])
    rep = import_pmxt([off], tmp_path / "rec2", markets=None)
    assert rep.skipped_rows == 1 and rep.problems == [f"{off}: row 2: price 0.455 off the market's grid (tick 0.01)"]
    assert rec.made[-1].markets[0].tick_size == Decimal("0.01") and rep.events == 302


def test_a_trade_of_no_size_is_skipped(tmp_path, rec):
    trade = {"event_type": "last_trade_price", "asset_id": "1", "price": "0.6", "side": "SELL"}
    f = v2(tmp_path / "f.parquet", [*pair(T0_MS), {**trade, "ms": T0_MS + 5, "size": "0"},
                                    {**trade, "ms": T0_MS + 6, "size": "1"}])
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    assert rep.events == 3 and rep.problems == [f"{f}: row 2: column size: size 0 not positive"]


def test_what_an_import_refuses(tmp_path, rec, caplog):
    f = v2(tmp_path / "f.parquet", [*pair(T0_MS), change(T0_MS + 10)])
    with pytest.raises(PmxtError, match="no rows for the selected markets$"):
        import_pmxt([v2(tmp_path / "e.parquet", [])], tmp_path / "x", markets=None)
    unknown = v2(tmp_path / "u.parquet", [{"ms": T0_MS, "event_type": "mystery"}] * 2)
    with pytest.raises(PmxtError, match=r"u\.parquet: no event this importer knows \(2 rows of unknown event types\)$"):
        import_pmxt([unknown], tmp_path / "x", markets=None)
    bad = v2(tmp_path / "b.parquet", [change(T0_MS, price="2"), {"ms": T0_MS, "event_type": "mystery"}])
    with pytest.raises(PmxtError, match=r"no row could be converted \(2 skipped; first: .*b\.parquet: row 0: column "
                                        r"price: price 2 outside \(0, 1\)\)$"):
        import_pmxt([bad], tmp_path / "x", markets=None)
    assert rec.made == []
    FakeRecorder.errors = 2
    with pytest.raises(PmxtError, match=r"rec: 2 write error\(s\)"):
        import_pmxt([f], tmp_path / "rec", markets=None)
    assert rec.made[-1].frames and not list((tmp_path / "rec").rglob("*.parquet"))  # none of its files kept
    FakeRecorder.errors = 0
    earlier = tmp_path / "rec" / "2026-11-30T11" / "market-mine.parquet"  # an earlier import of this session
    earlier.parent.mkdir(parents=True)
    earlier.write_text("")
    with caplog.at_level("INFO", logger=pmxt.log.name):
        rep = import_pmxt([f], tmp_path / "rec", markets=None, session="mine")
    assert rep.session == "mine" and rec.made[-1].session == "mine" and not earlier.exists()  # replaced
    assert caplog.messages == [f"pmxt import: 3 events of 1 markets from {f}"]


def test_an_import_replaces_its_own_session_and_only_its_own(tmp_path):
    root = tmp_path / "rec"
    hour = root / "2026-11-30T10"
    hour.mkdir(parents=True)
    mine = [hour / "market-pmxtabc.parquet", hour / "market-pmxtabc-2.parquet", hour / "universe-pmxtabc.parquet.open"]
    other = [hour / "market-pmxtabcd.parquet", hour / "market-other.parquet", hour / "market-pmxtabc-x.parquet"]
    for p in mine + other:
        p.write_text("")
    pmxt._remove_session(root, "pmxtabc")
    assert [p.exists() for p in mine] == [False] * 3 and [p.exists() for p in other] == [True] * 3


def test_a_big_import_is_flushed_every_200000_events(tmp_path, rec, monkeypatch):
    f = v2(tmp_path / "f.parquet", [*pair(T0_MS), change(T0_MS + 10)])
    import_pmxt([f], tmp_path / "rec", markets=None)
    assert rec.made[-1].flushes == 0 and len(rec.made[-1].frames) == 3


def test_market_columns_of_other_types_are_filtered(tmp_path, rec):
    t = pa.table({"timestamp_received": pa.array([T0_MS, T0_MS + 1, T0_MS + 2], pa.timestamp("ms", tz="UTC")),
                  "market": pa.array([7, 7, 8], pa.int64()), "event_type": ["book", "book", "book"],
                  "asset_id": ["1", "2", "3"], "price": [None] * 3, "size": [None] * 3, "side": [None] * 3,
                  "best_bid": [None] * 3, "best_ask": [None] * 3,
                  "bids": ['[["0.4","1"]]'] * 3, "asks": ['[["0.6","1"]]'] * 3})
    f = tmp_path / "int.parquet"
    pq.write_table(t, f)
    rep = import_pmxt([f], tmp_path / "rec", markets=["7"])
    assert rep.markets == 1 and [e["asset_id"] for _, _, e in rec.made[-1].frames] == ["1", "2"]
    assert pa.types.is_string(pmxt._market_col(pq.read_table(f), "v2-16").type)
    b = t.set_column(1, "market", pa.array([b"7", b"7", b"8"], pa.large_binary()))
    pq.write_table(b, f)
    assert pa.types.is_binary(pmxt._market_col(pq.read_table(f), "v2-16").type)
    rep = import_pmxt([f], tmp_path / "rec2", markets=["7"])
    assert rep.markets == 1 and [e["market"] for _, _, e in rec.made[-1].frames] == ["7", "7"]
    undecodable = t.set_column(1, "market", pa.array([b"7", b"7", b"\xff"], pa.binary()))
    pq.write_table(undecodable, f)
    assert pmxt.market_tokens([f]) == {"7": (2, {"1", "2"})}  # an id that is no text: no market
    s = t.set_column(1, "market", pa.array(["7", "7", "8"], pa.large_string()))
    assert pa.types.is_large_string(pmxt._market_col(s, "v2-16").type)
    assert np.array_equal(pmxt._market_col(s, "v2-16").to_pylist(), ["7", "7", "8"])


def test_overlapping_sessions_in_the_hours_of_an_import(tmp_path, monkeypatch):
    """`_overlapping` over a stand-in listing: each other session's span in the import's hours
    (its files merged), one being written (no span yet), and the ones that do not meet it left out."""
    from pmm_widgets.research import recordings

    s0 = T0_MS / 1000  # 10:00:00

    def ts_file(name, values):
        f = tmp_path / name
        pq.write_table(pa.table({"ts": pa.array(values, pa.float64())}), f)
        return str(f)

    h = "2026-11-30T10"
    listing = [
        {"hour": h, "session": "me", "open": False, "file": ts_file("me", [s0 + 1])},
        {"hour": "2026-11-30T09", "session": "x", "open": False, "file": ts_file("x", [s0 + 1])},
        {"hour": h, "session": "a", "open": False, "file": ts_file("a1", [s0 + 20, s0 + 10])},
        {"hour": h, "session": "a", "open": False, "file": ts_file("a2", [s0 + 8, s0 + 5])},
        {"hour": h, "session": "b", "open": False, "file": ts_file("b", [])},
        {"hour": h, "session": "c", "open": False, "file": str(tmp_path / "gone")},
        {"hour": h, "session": "d", "open": False, "file": ts_file("d", [s0 + 40, s0 + 50])},
        {"hour": h, "session": "e", "open": False, "file": ts_file("e1", [s0 + 60, s0 + 70])},
        {"hour": h, "session": "e", "open": False, "file": ts_file("e2", [s0 + 80, s0 + 65])},
    ]
    monkeypatch.setattr(recordings, "list_recordings", lambda root: listing)
    root = tmp_path / "rec"
    a_said = f"{root / h}: session a (2026-11-30T10:00:05.000Z to 2026-11-30T10:00:20.000Z)"
    assert pmxt._overlapping(root, "me", s0 + 20, s0 + 30) == [a_said]  # a's last row at the import's first
    assert pmxt._overlapping(root, "me", s0, s0 + 5) == [a_said]  # a's first row at the import's last
    assert pmxt._overlapping(root, "me", s0 + 21, s0 + 39) == []  # between a and d: neither
    assert pmxt._overlapping(root, "me", s0 + 51, s0 + 59) == []
    assert pmxt._overlapping(root, "me", s0 + 30, s0 + 45) == [
        f"{root / h}: session d (2026-11-30T10:00:40.000Z to 2026-11-30T10:00:50.000Z)"]
    assert pmxt._overlapping(root, "me", s0 + 79, s0 + 90) == [
        f"{root / h}: session e (2026-11-30T10:01:00.000Z to 2026-11-30T10:01:20.000Z)"]
    listing.append({"hour": h, "session": "eng", "open": True, "file": ts_file("eng", [s0 + 1])})
    assert pmxt._overlapping(root, "me", s0 + 21, s0 + 39) == [f"{root / h}: session eng (being written now)"]
    assert pmxt._overlapping(root, "me", s0 - 7200, s0 - 3600) == []  # not its hours


def test_held_twice_reads_each_file_span_whatever_the_row_order():
    mid = [_row(T0_MS, MA, 0), _row(T0_MS + 100, MA, 0), _row(T0_MS + 50, MA, 0)]
    assert pmxt._held_twice([*mid, _row(T0_MS + 20, MA, 1), _row(T0_MS + 30, MA, 1)]) is not None
    assert pmxt._held_twice([*mid, _row(T0_MS + 60, MA, 1), _row(T0_MS + 70, MA, 1)]) is not None
    assert pmxt._held_twice([*mid, _row(T0_MS + 101, MA, 1)]) is None


def test_the_default_selection_is_the_50_busiest_markets(tmp_path, rec):
    ids = [f"0x{k:064x}" for k in range(51)]
    rows = [r for k, m in enumerate(ids) for r in pair(T0_MS + 10 * k, m, (f"{k}a", f"{k}b"))]
    rows += [change(T0_MS + 1000, market=ids[7], token="7a")]  # the busiest: surely in
    f = v2(tmp_path / "many.parquet", rows)
    rep = import_pmxt([f], tmp_path / "rec")
    assert rep.markets == 50 and ids[7] in {m.condition_id for m in rec.made[-1].markets}


def test_list_depth_of_unequal_lengths_is_skipped_not_cut(tmp_path, rec):
    """v2-18 depth comes as two lists per side (prices, sizes). One shorter than the other was cut
    to the shorter by `zip`, the book imported without the levels past it (a book the venue never
    sent, replayed as the venue's); such a row is now skipped and named like any depth that is no
    list of pairs."""
    dec = pa.decimal128(9, 4)
    d = [Decimal(x) for x in ("0.4", "0.45", "0.6", "0.55", "10", "5", "3")]
    n = 4
    t = pa.table({
        "timestamp_received": pa.array([T0_MS + k for k in range(n)], pa.timestamp("ms", tz="UTC")),
        "market": [MA] * n, "event_type": ["book"] * n, "asset_id": ["1", "2", "1", "2"],
        "price": pa.array([None] * n, dec), "size": pa.array([None] * n, dec), "side": [None] * n,
        "best_bid": pa.array([None] * n, dec), "best_ask": pa.array([None] * n, dec),
        "bid_prices": pa.array([[d[0], d[1]], [d[0]], None, [d[0]]], pa.list_(dec)),
        "bid_sizes": pa.array([[d[4], d[5]], [d[4]], [d[6]], [d[4]]], pa.list_(dec)),
        "ask_prices": pa.array([[d[2]], [d[2], d[3]], [d[2]], [d[2]]], pa.list_(dec)),
        "ask_sizes": pa.array([[d[4]], [d[4]], [d[4]], [d[4]]], pa.list_(dec))})
    f = tmp_path / "v218.parquet"
    pq.write_table(t, f)
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    assert rep.variants[str(f)] == "v2-18" and rep.events == 2 and rep.skipped_rows == 2
    assert rep.problems == [f"{f}: row 1: column ask_prices/ask_sizes: 2 prices but 1 sizes",
                            f"{f}: row 2: column bid_prices/bid_sizes: 0 prices but 1 sizes"]
    first, second = (ev for _, _, ev in rec.made[-1].frames)
    assert first["bids"] == [{"price": "0.4", "size": "10"}, {"price": "0.45", "size": "5"}]
    assert first["asks"] == [{"price": "0.6", "size": "10"}] and second["asset_id"] == "2"
    assert pmxt._list_pairs(None, None, "x") == [] and pmxt._list_pairs((1,), [2], "x") == [(1, 2)]


def test_a_token_without_a_label_is_the_other_one_of_the_labelled(tmp_path, rec):
    """v1's YES/NO labels order a market's tokens. A token whose rows carry no label beside one
    labelled NO was put first (the YES token): the NO token became YES, every price of the market
    read the wrong way round. And a token's first row without a label hid the label of its later
    rows. The unlabelled token is now the other one of a labelled pair, and a later label counts."""
    def row(ms, tok, side, kind="book_snapshot"):
        d = {"token_id": tok, "bids": [["0.4", "1"]], "asks": [["0.6", "1"]]}
        if side is not None:
            d["side"] = side
        return ms, kind, json.dumps(d)

    def v1(name, rows):
        f = tmp_path / name
        pq.write_table(pa.table({"timestamp_received": pa.array([r[0] for r in rows], pa.timestamp("ms", tz="UTC")),
                                 "market_id": [MA] * len(rows), "update_type": [r[1] for r in rows],
                                 "data": [r[2] for r in rows]}), f)
        return f

    cases = {"no_after": ([row(T0_MS, "u", None), row(T0_MS + 1, "n", "NO")], ("u", "n")),
             "yes_after": ([row(T0_MS, "u", None), row(T0_MS + 1, "y", "YES")], ("y", "u")),
             "late_label": ([row(T0_MS, "n", None), row(T0_MS + 1, "y", None), row(T0_MS + 2, "n", "NO")], ("y", "n")),
             "none": ([row(T0_MS, "b", None), row(T0_MS + 1, "a", None)], ("b", "a")),
             "late_unlabelled": ([row(T0_MS, "n", "NO"), row(T0_MS + 1, "y", "YES"), row(T0_MS + 2, "n", None),
                                  row(T0_MS + 3, "y", None)], ("y", "n")),
             "both": ([row(T0_MS, "n", "NO"), row(T0_MS + 1, "y", "YES")], ("y", "n"))}
    for name, (rows, want) in cases.items():
        import_pmxt([v1(f"{name}.parquet", rows)], tmp_path / name, markets=None)
        (m,) = rec.made[-1].markets
        assert (m.yes_token_id, m.no_token_id) == want, name


def test_a_row_with_no_token_id_adds_no_token(tmp_path, rec):
    f = v2(tmp_path / "f.parquet", [*pair(T0_MS), change(T0_MS + 5, token=None)])
    rep = import_pmxt([f], tmp_path / "rec", markets=None)
    assert rep.markets == 1 and rep.skipped_markets == 0
    (m,) = rec.made[-1].markets
    assert (m.yes_token_id, m.no_token_id) == ("1", "2")
