"""Benchmark of the batched writer: throughput and the event-loop stalls it causes.

For each of --runs runs (median reported), on a fresh database:
  * batched: asyncio producers submit --rows `book_snapshots` rows (100 per loop turn) to a
    started BatchWriter; throughput = rows / (first submit -> last row committed). A monitor task
    sleeping 1 ms measures the loop's lag all along: the longest stall and the 99th percentile.
  * idle-sink reference: the same producers and monitor with a NullSink, so the stall the writer
    adds is visible apart from the producers' own cost.
  * steady: --steady-rate rows/s (a busy engine) for --steady-sec, submitted every 10 ms; the
    lateness of each tick is the stall, again with the NullSink as reference.
  * naive baseline: one transaction per row (what an unbatched recorder would do), --naive-rows
    rows, in the same run and on the same kind of database.

    python bench/bench_writer.py                      # SQLite file in a temp dir
    python bench/bench_writer.py --db-url postgresql+psycopg://user@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from pmm_widgets.store import schema
from pmm_widgets.store.db import make_engine
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.store.sink import NullSink
from pmm_widgets.store.writer import BatchWriter

CHUNK = 100  # rows submitted per event-loop turn


def make_row(i: int) -> dict:
    return {
        "token_id": f"tok{i % 200}", "market": f"0xmarket{i % 100}", "ts": 1.7e9 + i * 0.01,
        "best_bid": Decimal("0.48"), "best_ask": Decimal("0.52"), "mid": Decimal("0.50"),
        "spread": Decimal("0.04"), "bid_depth": Decimal("1234.5"), "ask_depth": Decimal("987.25"),
        "depth_ticks": 3, "bid_levels": 12, "ask_levels": 14, "stale": False, "crossed": False,
    }


async def produce_and_watch(sink, n_rows: int, done) -> tuple[float, float, float, float]:
    """Returns (seconds until `done()`, max loop stall s, p99 loop stall s, µs per submit call)."""
    rows = [make_row(i) for i in range(n_rows)]  # built before the monitor starts
    gc.collect()
    gc.freeze()  # the benchmark's own input rows are not the writer's garbage-collection cost
    lags: list[float] = []
    running = True

    async def monitor() -> None:
        while running:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(max(0.0, time.perf_counter() - t - 0.001))

    mon = asyncio.get_running_loop().create_task(monitor())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    submit = 0.0
    for start in range(0, n_rows, CHUNK):
        ts = time.perf_counter()
        for row in rows[start:start + CHUNK]:
            sink.insert("book_snapshots", row)
        submit += time.perf_counter() - ts
        await asyncio.sleep(0)
    while not done():
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - t0
    running = False
    await mon
    gc.unfreeze()
    lags.sort()
    return elapsed, lags[-1], lags[int(len(lags) * 0.99) - 1] if lags else 0.0, submit / n_rows * 1e6


async def steady_and_watch(sink, rate: int, seconds: float) -> tuple[float, float]:
    """Submit `rate` rows/s in 10 ms ticks for `seconds`; returns (max, p99) loop stall in s."""
    per_tick = max(1, rate // 100)
    rows = [make_row(i) for i in range(int(rate * seconds) + per_tick)]
    lags: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    tick = 0
    while loop.time() - start < seconds:
        for row in rows[i:i + per_tick]:
            sink.insert("book_snapshots", row)
        i += per_tick
        tick += 1
        due = start + tick * 0.01
        await asyncio.sleep(max(0.0, due - loop.time()))
        lags.append(max(0.0, loop.time() - due))
    lags.sort()
    return lags[-1], lags[int(len(lags) * 0.99) - 1]


def fresh_url(base: str | None, tmp: Path) -> tuple[str, Callable[[], None]]:
    if base is None:
        path = tmp / f"bench-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: None
    from sqlalchemy.engine import make_url

    name = f"pmm_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(base).set(database=name).render_as_string(hide_password=False), drop


def run_once(base: str | None, tmp: Path, n_rows: int, naive_rows: int, flush_sec: float,
             steady_rate: int, steady_sec: float) -> dict:
    url, drop = fresh_url(base, tmp)
    try:
        upgrade(url)
        writer = BatchWriter(url, flush_sec=flush_sec).start()
        target = n_rows

        def committed() -> bool:
            st = writer.stats()
            return st.rows_written >= target and st.pending == 0

        elapsed, stall, p99, per_call = asyncio.run(produce_and_watch(writer, n_rows, committed))
        st = writer.stats()
        writer.close()

        _, ref_stall, ref_p99, _ = asyncio.run(produce_and_watch(NullSink(), n_rows, lambda: True))

        writer = BatchWriter(url, flush_sec=flush_sec).start()
        steady_stall, steady_p99 = asyncio.run(steady_and_watch(writer, steady_rate, steady_sec))
        writer.close()
        steady_ref, steady_ref_p99 = asyncio.run(steady_and_watch(NullSink(), steady_rate, steady_sec))

        engine = make_engine(url)
        table = schema.book_snapshots
        rows = [make_row(i) for i in range(naive_rows)]
        t0 = time.perf_counter()
        for r in rows:
            with engine.begin() as conn:
                conn.execute(table.insert(), r)
        naive = naive_rows / (time.perf_counter() - t0)
        engine.dispose()
        return {"batched": n_rows / elapsed, "per_call_us": per_call, "naive": naive, "stall": stall, "p99": p99,
                "ref_stall": ref_stall, "ref_p99": ref_p99, "steady_stall": steady_stall,
                "steady_p99": steady_p99, "steady_ref": steady_ref, "steady_ref_p99": steady_ref_p99, "errors": st.errors, "flushes": st.flushes}
    finally:
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-url", default=None, help="PostgreSQL server URL (default: a temp SQLite file)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--naive-rows", type=int, default=3_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flush-sec", type=float, default=0.5)
    ap.add_argument("--steady-rate", type=int, default=2_000, help="rows/s of the steady scenario")
    ap.add_argument("--steady-sec", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_once(args.db_url, Path(tmp), args.rows, args.naive_rows, args.flush_sec,
                            args.steady_rate, args.steady_sec) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    kind = "postgresql" if args.db_url else "sqlite (WAL, synchronous=NORMAL)"
    print(f"bench_writer: {kind}, {args.rows} book_snapshots rows, flush_sec={args.flush_sec}, "
          f"median of {args.runs} runs")
    print(f"  batched writer      : {med['batched']:>10,.0f} rows/s  (submit -> committed; "
          f"{med['flushes']:.0f} flushes, {med['errors']:.0f} errors)")
    print(f"  producer cost       : {med['per_call_us']:>10.2f} us per insert() call on the loop")
    print(f"  naive 1 row/txn     : {med['naive']:>10,.0f} rows/s  ({args.naive_rows} rows)")
    print(f"  speed-up            : {med['batched'] / med['naive']:>10.1f} x")
    print(f"  loop stall, writer  : max {med['stall'] * 1000:.1f} ms, p99 {med['p99'] * 1000:.2f} ms")
    print(f"  loop stall, NullSink: max {med['ref_stall'] * 1000:.1f} ms, p99 {med['ref_p99'] * 1000:.2f} ms "
          f"(producers alone, same pattern)")
    print(f"  steady {args.steady_rate} rows/s for {args.steady_sec:g} s (10 ms ticks): loop lateness with writer "
          f"max {med['steady_stall'] * 1000:.1f} ms p99 {med['steady_p99'] * 1000:.2f} ms; "
          f"NullSink max {med['steady_ref'] * 1000:.1f} ms p99 {med['steady_ref_p99'] * 1000:.2f} ms")
    for i, r in enumerate(results, 1):
        print(f"  run {i}: batched {r['batched']:,.0f} rows/s, naive {r['naive']:,.0f} rows/s, "
              f"max stall {r['stall'] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
