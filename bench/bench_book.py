"""Order-book apply speed: `price_change` messages per second on one core, apply latency, memory.

What is timed:
- book: `OrderBook.apply_changes([entry])`, one decoded `price_change` entry per message for one
  token (what the stream calls per token per message), over a pre-generated realistic sequence:
  ~30 levels a side around a wandering mid, sizes resized, levels added and removed, prices in
  the venue's decimal text. Reported as messages/s (a tight loop) and p50/p99 latency per apply
  (each call timed with perf_counter_ns, timer overhead included).
- stream: `MarketStream.handle_frame` on the JSON text of the same messages (json.loads,
  dispatch, validation, apply, best-level check): the end-to-end cost per frame.
- memory per book: tracemalloc over 200 books built from 30+30-level snapshots.

Baseline, measured in the same run on the same messages: a naive book (dict of Decimal price ->
Decimal size per side, both sides re-sorted after every update to find the best levels).
Goals: >= 50,000 messages/s and p99 < 50 µs. Figures are the median over --runs runs.

Usage: python bench/bench_book.py [--runs 5] [--messages 100000]   (a few seconds)
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
from decimal import Decimal

from pmm_widgets.book import OrderBook
from pmm_widgets.venue.clob_rest import ClobPublic
from pmm_widgets.venue.market_stream import MarketStream
from pmm_widgets.venue.wire import BookSnapshot, PriceChange, convert

TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
TICK = Decimal("0.01")


def make_messages(n: int, seed: int = 1) -> tuple[dict, list[dict]]:
    """A starting snapshot and n single-entry price changes that keep the book realistic."""
    rnd = random.Random(seed)
    bids = {t: rnd.randint(1, 5000) for t in range(20, 50)}
    asks = {t: rnd.randint(1, 5000) for t in range(51, 81)}
    snap = {"market": "0xm", "asset_id": TOKEN, "timestamp": "1", "hash": "0" * 40, "tick_size": "0.01",
            "bids": [{"price": str(TICK * t), "size": str(s)} for t, s in sorted(bids.items())],
            "asks": [{"price": str(TICK * t), "size": str(s)} for t, s in sorted(asks.items(), reverse=True)]}
    msgs = []
    for i in range(n):
        is_bid = rnd.random() < 0.5
        side = bids if is_bid else asks
        best = max(bids) if is_bid else min(asks)
        r = rnd.random()
        if r < 0.6 and side:  # resize an existing level, mostly near the touch
            t = best - rnd.randint(0, 4) if is_bid else best + rnd.randint(0, 4)
            if t not in side:
                t = rnd.choice(list(side))
            size = rnd.randint(1, 5000) + rnd.choice((0, 0.5, 0.25))
        elif r < 0.8 and len(side) > 5:  # remove a level
            t = rnd.choice(list(side))
            size = 0
        else:  # add a level behind the touch
            t = best - rnd.randint(1, 30) if is_bid else best + rnd.randint(1, 30)
            t = min(max(t, 1), 99)
            if (is_bid and asks and t >= min(asks)) or (not is_bid and bids and t <= max(bids)):
                t = best
            size = rnd.randint(1, 5000)
        if size:
            side[t] = size
        else:
            side.pop(t, None)
        bb, ba = (max(bids) if bids else 0), (min(asks) if asks else 100)
        msgs.append({"asset_id": TOKEN, "price": str(TICK * t), "size": str(size), "side": "BUY" if is_bid else "SELL",
                     "hash": f"{i:040x}", "best_bid": str(TICK * bb), "best_ask": str(TICK * ba),
                     "_ts": i + 2})
    return snap, msgs


class NaiveBook:
    """The baseline: Decimal-keyed dicts, both sides re-sorted after every update."""

    def __init__(self, snap: dict) -> None:
        self.bids = {Decimal(x["price"]): Decimal(x["size"]) for x in snap["bids"]}
        self.asks = {Decimal(x["price"]): Decimal(x["size"]) for x in snap["asks"]}
        self.sorted_bids: list = []
        self.sorted_asks: list = []

    def apply(self, price: str, size: str, side: str) -> None:
        p, s = Decimal(price), Decimal(size)
        levels = self.bids if side == "BUY" else self.asks
        if s:
            levels[p] = s
        else:
            levels.pop(p, None)
        self.sorted_bids = sorted(self.bids.items(), reverse=True)
        self.sorted_asks = sorted(self.asks.items())


def rate(fn, items) -> float:
    gc.disable()
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    dt = time.perf_counter() - t0
    gc.enable()
    return len(items) / dt


def latencies(fn, items) -> tuple[float, float]:
    pc = time.perf_counter_ns
    out = []
    gc.disable()
    for x in items:
        t0 = pc()
        fn(x)
        out.append(pc() - t0)
    gc.enable()
    out.sort()
    return out[len(out) // 2] / 1000, out[int(len(out) * 0.99)] / 1000


def one_run(snap: dict, msgs: list[dict], frames: list[str]) -> dict[str, float]:
    entries = [[convert({k: v for k, v in m.items() if k != "_ts"}, PriceChange)] for m in msgs]  # decoded, as in venue/
    book_snap = convert(snap, BookSnapshot)
    b = OrderBook(TOKEN, "0xm", TICK)
    b.apply_snapshot(book_snap)
    book_rate = rate(b.apply_changes, entries)
    b = OrderBook(TOKEN, "0xm", TICK)
    b.apply_snapshot(book_snap)
    p50, p99 = latencies(b.apply_changes, entries)
    assert b.rejected == 0

    nb = NaiveBook(snap)
    naive = [(m["price"], m["size"], m["side"]) for m in msgs]
    naive_rate = rate(lambda x: nb.apply(*x), naive)
    nb = NaiveBook(snap)
    n50, n99 = latencies(lambda x: nb.apply(*x), naive)

    books = {TOKEN: OrderBook(TOKEN, "0xm", TICK)}
    s = MarketStream("ws://127.0.0.1:9/ws", ClobPublic("http://127.0.0.1:9"), books)
    books[TOKEN].apply_snapshot(book_snap)
    stream_rate = rate(s.handle_frame, frames)
    assert s.stats.bad_messages == 0 and not s._pending, "bench stream diverged"
    return {"book_rate": book_rate, "p50": p50, "p99": p99, "naive_rate": naive_rate, "n50": n50, "n99": n99,
            "stream_rate": stream_rate}


def memory_per_book(snap: dict, n: int = 200) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    books = []
    book_snap = convert(snap, BookSnapshot)
    for i in range(n):
        b = OrderBook(f"{TOKEN}{i}", "0xm", TICK)
        b.apply_snapshot(book_snap)
        books.append(b)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=100_000)
    a = ap.parse_args()
    snap, msgs = make_messages(a.messages)
    frames = [json.dumps({"event_type": "price_change", "market": "0xm", "timestamp": str(m["_ts"]),
                          "price_changes": [{k: v for k, v in m.items() if k != "_ts"}]}) for m in msgs]
    runs = [one_run(snap, msgs, frames) for _ in range(a.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    mem = memory_per_book(snap)
    print(f"messages: {a.messages} single-entry price_change per run, ~30 levels a side; median of {a.runs} runs")
    print(f"OrderBook.apply_changes     : {med['book_rate']:>10,.0f} msg/s   p50 {med['p50']:.2f} µs   p99 {med['p99']:.2f} µs"
          f"   (goal >= 50,000 msg/s, p99 < 50 µs)")
    print(f"naive Decimal dict + re-sort: {med['naive_rate']:>10,.0f} msg/s   p50 {med['n50']:.2f} µs   p99 {med['n99']:.2f} µs")
    print(f"speed-up vs naive           : {med['book_rate'] / med['naive_rate']:.1f}x   (p99 {med['n99'] / med['p99']:.1f}x)")
    print(f"MarketStream.handle_frame   : {med['stream_rate']:>10,.0f} frames/s (JSON text -> validated, applied, checked)")
    print(f"memory per book (30+30 lv)  : {mem / 1024:.1f} KiB (tracemalloc, {200} books)")


if __name__ == "__main__":
    main()
