"""Wire decoding at the edge (issue 10): msgspec typed structs (`venue.wire`) vs today's json+dict
path, on a realistic market-channel frame mix.

Input: the sandbox simulator's market-channel events for `--markets` markets over `--minutes`
simulated minutes (book, price_change, last_trade_price, tick_size_change, best_bid_ask,
market_resolved), framed two ways: one JSON array per clock step (what the sandbox sends a
connection subscribed to every token) and one event per frame (the real venue often sends single
events). Measured per run, CPU time of this process (`time.process_time`, robust to the shared
machine's load), median of `--runs`:

1. decode only: `safejson.loads` (stdlib json to dicts: the parse step of the old path, the
   baseline) vs `venue.wire.decode_market_frame` (typed structs, same frames, same run);
2. end to end: `MarketStream.handle_frame` over the same frames into 2 x markets books (the
   live/replay path; run this part alone against another checkout to compare code versions:
   `python bench/bench_wire_decode.py --e2e-only --tree /path/to/other/checkout`).

Usage: python bench/bench_wire_decode.py [--markets 50] [--minutes 10] [--runs 5] [--e2e-only]
Figures go to bench/README.md by hand (date, command, median of runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(ROOT)
sys.path.insert(0, _TREE)

from pmm_widgets import safejson
from pmm_widgets.book import OrderBook
from pmm_widgets.sandbox.simulator import Simulator
from pmm_widgets.venue.market_stream import MarketStream

T0 = 1_796_032_800.0


def frames(markets: int, minutes: float, seed: int) -> tuple[list[str], list[str], list[str], Simulator]:
    """(array frames, single-event frames, every token, the simulator) for the mix."""
    sim = Simulator(markets=markets, seed=seed, start_ts=T0)
    sim.resolve_every = 300.0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    arrays: list[str] = []
    singles: list[str] = []
    tokens = list(sim.by_token)
    boot = [sim.book_event(t) for t in tokens]
    arrays.append(dumps([b for b in boot if b is not None]))
    singles.extend(dumps(b) for b in boot if b is not None)
    end = sim.now() + minutes * 60
    while sim.now() < end:
        evs = sim.step()
        if evs:
            arrays.append(dumps([e.payload for e in evs]))
            singles.extend(dumps(e.payload) for e in evs)
    return arrays, singles, tokens, sim


def cpu(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def e2e(fs: Sequence[str], tokens: Sequence[str]) -> float:
    books = {t: OrderBook(t, "", Decimal("0.01")) for t in tokens}
    clock = [T0]
    s = MarketStream("ws://127.0.0.1:9", None, books, clock=lambda: clock[0])  # type: ignore[arg-type]
    s._venue_max_ms = 10**14  # the simulator's clock: never clamp its timestamps as "future"

    def run() -> None:
        h = s.handle_frame
        for f in fs:
            h(f)

    took = cpu(run)
    assert s.stats.bad_messages == 0, s.stats
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end stream part (any code version)")
    ap.add_argument("--tree", default=str(ROOT), help="the checkout whose pmm_widgets is measured (default: this one)")
    a = ap.parse_args()
    import pmm_widgets

    print(f"code: {Path(pmm_widgets.__file__).parent}")
    t = time.perf_counter()
    arrays, singles, tokens, _ = frames(a.markets, a.minutes, a.seed)
    n_events = len(singles)
    kinds: dict[str, int] = {}
    for f in singles:
        k = json.loads(f)["event_type"]
        kinds[k] = kinds.get(k, 0) + 1
    mb = sum(map(len, arrays)) / 1e6
    print(f"mix: {a.markets} markets, {a.minutes:g} sim-min: {n_events:,} events, {len(arrays):,} array frames "
          f"({mb:.1f} MB), kinds {dict(sorted(kinds.items()))}; generated in {time.perf_counter() - t:.1f} s")
    rows: dict[str, list[float]] = {}
    for _ in range(a.runs):
        if not a.e2e_only:
            from pmm_widgets.venue.wire import Refused, decode_market_frame

            for name, fs in (("arrays", arrays), ("singles", singles)):
                rows.setdefault(f"json {name}", []).append(cpu(lambda fs=fs: [safejson.loads(f) for f in fs]))
                rows.setdefault(f"msgspec {name}", []).append(cpu(lambda fs=fs: [decode_market_frame(f) for f in fs]))
            bad = sum(isinstance(e, Refused) for f in arrays for e in decode_market_frame(f).events)
            assert bad == 0, f"{bad} events refused"
        rows.setdefault("e2e arrays", []).append(e2e(arrays, tokens))
        rows.setdefault("e2e singles", []).append(e2e(singles, tokens))
    med = {k: statistics.median(v) for k, v in rows.items()}
    for k, v in med.items():
        print(f"{k:16s} median {v * 1000:8.1f} ms CPU  = {n_events / v:>12,.0f} events per CPU-s   "
              f"(runs {', '.join(f'{x * 1000:.0f}' for x in rows[k])} ms)")
    if not a.e2e_only:
        for name in ("arrays", "singles"):
            print(f"decode speed-up ({name}): msgspec typed vs json dicts = {med[f'json {name}'] / med[f'msgspec {name}']:.2f}x")


if __name__ == "__main__":
    main()
