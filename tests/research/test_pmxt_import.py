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
