"""Paper-vs-sandbox fidelity: how far each paper fill model is from live trading on the sandbox.

The same strategy (default Params), the same sandbox seed and universe run three times through
the real engine: paper with the `intensity` fill model, paper with the `queue` model, and live
on the sandbox (official SDK, real sockets, a throwaway wallet), where our orders rest in the
simulated books with price-time priority and are filled by the simulated flow: ground truth.
Each run gets a fresh embedded sandbox (same seed) and a fresh SQLite DB.

Printed per mode: fills, fills/min, PnL (the engine's totals at the end) and, for the paper
models, the error against live: fills/min error in % and PnL difference in $. With --runs N each
figure is the median over N repetitions (seeds seed, seed+1, ...).

Run at --speed 1 (the default) for a fair comparison: the intensity model is calibrated in wall
time, while the sandbox's flow runs `speed` times faster than the wall clock.

Usage: python bench/bench_fidelity.py [--seconds 40] [--runs 1] [--markets 8] [--seed 7] [--speed 1]
(about 3 x (seconds + 5) s per run)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from eth_account import Account

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.core import Engine

MODES = (("paper-intensity", Mode.PAPER, "intensity"), ("paper-queue", Mode.PAPER, "queue"),
         ("live-sandbox", Mode.LIVE, "intensity"))


async def run_once(mode: Mode, fill_model: str, seconds: float, markets: int, seed: int, speed: float,
                   key: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, venue="sandbox", db_url=f"sqlite:///{Path(tmp) / 'fid.db'}",
                            sandbox_seed=seed, sandbox_speed=speed, sandbox_markets=max(40, 3 * markets),
                            universe_size=markets, quote_refresh_sec=1.0, paper_fill_model=fill_model,
                            private_key=key if mode is Mode.LIVE else None)
        engine = Engine(settings, mode)
        t0 = time.monotonic()
        await engine.run(max_seconds=seconds)
        wall = time.monotonic() - t0
        tot = engine.state.totals
        return {"fills": tot.fills, "fills_per_min": tot.fills / (seconds / 60.0), "pnl": tot.pnl, "wall": wall}


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in MODES}
    for r in range(args.runs):
        for name, mode, model in MODES:
            res = await run_once(mode, model, args.seconds, args.markets, args.seed + r, args.speed, key)
            results[name].append(res)
            print(f"run {r + 1} {name:<16} fills {res['fills']:>4} fills/min {res['fills_per_min']:7.2f} "
                  f"pnl {res['pnl']:+8.2f}  ({res['wall']:.0f}s)", flush=True)
    med = {name: {k: statistics.median(x[k] for x in rs) for k in ("fills", "fills_per_min", "pnl")}
           for name, rs in results.items()}
    live = med["live-sandbox"]
    print(f"\nmedian over {args.runs} run(s); {args.markets} markets, {args.seconds:.0f}s each, speed {args.speed:g}x")
    print(f"{'mode':<16} {'fills':>6} {'fills/min':>10} {'pnl $':>9} {'fills/min err':>14} {'pnl diff $':>11}")
    for name in results:
        m = med[name]
        if name == "live-sandbox":
            err, diff = "(truth)", ""
        else:
            err = f"{100 * (m['fills_per_min'] - live['fills_per_min']) / live['fills_per_min']:+.0f}%" \
                if live["fills_per_min"] else "n/a"
            diff = f"{m['pnl'] - live['pnl']:+.2f}"
        print(f"{name:<16} {m['fills']:>6.0f} {m['fills_per_min']:>10.2f} {m['pnl']:>+9.2f} {err:>14} {diff:>11}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--markets", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed", type=float, default=1.0)
    asyncio.run(main(ap.parse_args()))
