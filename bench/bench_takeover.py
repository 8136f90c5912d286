"""Take-over speed (issue 11): how long a new engine on a DB an engine just handed over needs
to own, set up and quote, and which part of its own set-up takes the time.

What a reloaded dashboard page does once its kernel runs: `Engine.start()` on the DB the old
page's engine released (`stop(handover=True)`), against the same venue. Here: an external
sandbox process (16 markets, speed 1 = real time; the browser tests run it at 5: `--speed`), `PMM_VENUE=polymarket` pointed at
it, 4 markets, quote refresh 3 s (the default; `--refresh`), SQLite in a temp dir. Each run: engine A starts, quotes,
trades a little and stops with hand-over; engine B starts on the same DB and is timed from
`start()` to owning (lease), set up (`engine_start`) and quoting (first open order). The set-up
phases are timed by wrapping the engine's own steps (no change to the engine).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_takeover.py --runs 5 [--latency-ms 100]

Every run is made twice, interleaved: "baseline" is the take-over as it was before the speed work
(set-up steps one after the other, the first cycle not waiting for the books), "current" as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PHASES: list[tuple[str, str, str]] = [  # (label, module path, attribute "Class.method" or function)
    ("db open + migrate", "pmm_widgets.engine.core", "Engine._open_db"),
    ("lease", "pmm_widgets.engine.core", "Engine._try_acquire"),
    ("params restore", "pmm_widgets.engine.core", "Engine._restore_params"),
    ("writer start (thread)", "pmm_widgets.store.writer", "BatchWriter.start"),
    ("universe", "pmm_widgets.engine.owner", "OwnerSession._first_universe"),
    ("universe recorded", "pmm_widgets.engine.owner", "OwnerSession._record_universe"),
    ("market data start", "pmm_widgets.venue.market_data", "MarketData.start"),
    ("market data subscribe", "pmm_widgets.venue.market_data", "MarketData.set_markets"),
    ("db read for restore", "pmm_widgets.engine.restore", "read_rows"),
    ("exchange start (live: creds, reconcile, user stream)", "pmm_widgets.execution.live", "LiveExchange.start"),
    ("live exchange built (signer)", "pmm_widgets.execution.live", "LiveExchange.__init__"),
    ("calibration read", "pmm_widgets.store.repo", "load_calibration"),
    ("overrides read", "pmm_widgets.store.repo", "load_overrides"),
    ("restore", "pmm_widgets.engine.restore", "resume"),
    ("venue clock", "pmm_widgets.engine.owner", "OwnerSession._sync_venue_clock"),
    ("set-up total", "pmm_widgets.engine.owner", "OwnerSession._setup"),
]


def _wrap(rec: dict[str, list[tuple[float, float]]], label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        def timed_sync(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                rec.setdefault(label, []).append((t0, time.perf_counter()))
        return timed_sync

    @functools.wraps(fn)
    async def timed(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await fn(*a, **k)
        finally:
            rec.setdefault(label, []).append((t0, time.perf_counter()))
    return timed


def instrument(rec: dict[str, list[tuple[float, float]]]) -> None:
    import importlib

    for label, mod, attr in PHASES:
        m = importlib.import_module(mod)
        owner: Any = m
        name = attr
        if "." in attr:
            cls, name = attr.split(".")
            owner = getattr(m, cls)
        setattr(owner, name, _wrap(rec, label, getattr(owner, name)))


def baseline_switch() -> Callable[[bool], None]:
    """Switch between the take-over as it is and as it was before the issue-11 speed work (the
    set-up's venue side and market side one after the other, no wait for the first books), so
    both run interleaved in one process, on the same sandbox and machine load."""
    from pmm_widgets.engine import runtime
    from pmm_widgets.engine.owner import OwnerSession

    current = (runtime.together, OwnerSession._first_books)

    async def one_by_one(*aws: Any) -> list[Any]:
        return [await a for a in aws]

    async def no_wait(self: Any, limit: float) -> None:
        return None

    def use(baseline: bool) -> None:
        runtime.together, OwnerSession._first_books = (one_by_one, no_wait) if baseline else current  # type: ignore[assignment]

    return use


def start_sandbox(speed: float = 1.0) -> tuple[subprocess.Popen, dict[str, str]]:
    sb = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "16", "--speed", f"{speed:g}", "--seed", "3"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    urls: dict[str, str] = {}
    assert sb.stdout is not None
    for _ in range(3):
        k, v = sb.stdout.readline().strip().removeprefix("export ").split("=", 1)
        urls[k] = v
    return sb, urls


async def until(pred: Callable[[], bool], timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return pred()


async def one_run(settings: Any, mode: Any, rec: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    from pmm_widgets.engine import Engine

    a = Engine(settings, mode)
    a.start()
    assert await a.wait_role(60) == "owner"
    assert await until(lambda: a.state.totals.open_orders > 0, 60), "engine A never quoted"
    await asyncio.sleep(2.0)  # some fills for the restore to replay
    await a.stop(handover=True)
    handed = await Engine(settings, mode).handover_pending()
    assert handed is mode, handed

    rec.clear()
    b = Engine(settings, mode)
    seen: dict[str, float] = {}
    b.events.subscribe(lambda ev: seen.setdefault(ev.kind, time.perf_counter()))
    t0 = time.perf_counter()
    b.start()
    assert await until(lambda: b.role == "owner", 60)
    owned = time.perf_counter() - t0

    def books_ready() -> bool:
        try:
            md = b.runtime.md
        except RuntimeError:  # set-up not done yet
            return False
        return bool(b.owner.markets) and all(
            md.view(t) is not None for m in b.owner.markets for t in m.token_ids)

    assert await until(books_ready, 60)
    books = time.perf_counter() - t0
    assert await until(lambda: b.state.totals.open_orders > 0, 60), "engine B never quoted"
    quoting = time.perf_counter() - t0
    out = {"owns the lease": owned, "engine_start (set up)": seen.get("engine_start", t0) - t0,
           "every book of the universe synced": books, "quoting (first open order)": quoting}
    for label, spans in rec.items():
        out[label] = sum(e - s for s, e in spans if s >= t0)
    await b.stop()
    return out


async def main_async(args: argparse.Namespace) -> None:
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.config import Settings
    from pmm_widgets.domain import Mode

    rec: dict[str, list[tuple[float, float]]] = {}
    instrument(rec)
    use_baseline = baseline_switch()
    sb, urls = start_sandbox(args.speed)
    if args.latency_ms:  # every HTTP answer and websocket frame of the venue, like a remote venue's round trip
        import json
        import urllib.request

        req = urllib.request.Request(urls["PMM_CLOB_URL"] + "/_sandbox/faults", method="POST",
                                     data=json.dumps({"latency_ms": args.latency_ms}).encode())
        await asyncio.to_thread(lambda: urllib.request.urlopen(req, timeout=10).read())
    print(f"sandbox speed {args.speed:g}, latency {args.latency_ms:g} ms, PMM_QUOTE_REFRESH_SEC={args.refresh:g}, "
          f"{args.runs} runs per variant, baseline and current interleaved")
    try:
        for mode_name in args.mode:
            mode = Mode(mode_name)
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
            for i in range(args.runs):
                for variant in ("baseline", "current"):
                    use_baseline(variant == "baseline")
                    with tempfile.TemporaryDirectory() as tmp:
                        settings = Settings(_env_file=None, venue="polymarket", db_url=f"sqlite:///{tmp}/bench.db",
                                            gamma_url=urls["PMM_GAMMA_URL"], clob_url=urls["PMM_CLOB_URL"],
                                            clob_ws_url=urls["PMM_CLOB_WS_URL"], universe_size=4,
                                            quote_refresh_sec=args.refresh, lease_ttl_sec=5,
                                            private_key=SecretStr(Account.create().key.hex()), disconnect_cancel_sec=10)
                        runs[variant].append(await one_run(settings, mode, rec))
                    if args.verbose:
                        print(f"{mode_name} {variant} run {i + 1}: " + ", ".join(
                            f"{k} {v:.3f}s" for k, v in runs[variant][-1].items()), flush=True)
            print(f"\n{mode_name}: median of {args.runs} runs (seconds)      baseline    current   ratio")
            for key in runs["current"][0]:
                b = statistics.median([r.get(key, 0.0) for r in runs["baseline"]])
                c = statistics.median([r.get(key, 0.0) for r in runs["current"]])
                ratio = f"{b / c:6.2f}x" if c > 0.0005 and b > 0.0005 else "     -"
                print(f"  {key:<55} {b:8.3f} {c:10.3f}  {ratio}")
            print(flush=True)
    finally:
        sb.terminate()
        sb.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mode", action="append", choices=["paper", "live"])
    ap.add_argument("--speed", type=float, default=1.0, help="sandbox speed (1: the venue's own clock)")
    ap.add_argument("--latency-ms", type=float, default=0.0,
                    help="sandbox fault knob: added to every HTTP answer and websocket frame")
    ap.add_argument("--verbose", action="store_true", help="print every run")
    ap.add_argument("--refresh", type=float, default=3.0, help="PMM_QUOTE_REFRESH_SEC (default: the default, 3)")
    args = ap.parse_args()
    args.mode = args.mode or ["paper", "live"]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
