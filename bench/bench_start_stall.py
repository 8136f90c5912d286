"""The longest event-loop stall of an engine's start (`Engine.start` to its second quote cycle).

A page's engine runs in the notebook kernel's event loop: whatever its start runs on the loop
freezes the page's widgets (and an attached face) meanwhile. A probe task sleeps 1 ms in a loop
and records the longest gap between two of its turns while a paper engine starts on the embedded
sandbox (50 markets, the demo's setting) and runs two cycles. Each run is a fresh process (the
first imports are what is measured); `--base DIR` runs the same in a process whose package comes
from DIR (e.g. `git archive <commit> pmm_widgets | tar -x -C DIR`), alternating, for the "before".

    .venv/bin/python bench/bench_start_stall.py --runs 7 [--base /tmp/start-base]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[2])  # bench/: the 1 ms sleeper of bench_tls_stall
from bench_tls_stall import stall_ms
from pmm_widgets.config import Settings
from pmm_widgets.engine import Engine

async def run():
    # (built first, as a notebook cell builds it before the page's loop runs it)
    e = Engine(Settings(_env_file=None, db_url=sys.argv[1], venue="sandbox", record="off"))
    t0 = time.perf_counter()

    async def start():
        e.start()
        await e.wait_role()
        while e.state.tick < 2:
            await asyncio.sleep(0.05)

    gap = await stall_ms(start)
    took = time.perf_counter() - t0
    await e.stop()
    print(json.dumps({"max_gap_ms": gap, "to_tick2_s": took}))

asyncio.run(run())
"""


def one(tree: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        out = subprocess.run([sys.executable, "-c", CHILD, f"sqlite:///{d}/s.db", str(ROOT / "bench")], env=env, cwd=d,
                             capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--base", type=Path, default=None, help="a tree with the package before the change")
    a = ap.parse_args()
    sides = {"this tree": ROOT} | ({"base": a.base} if a.base else {})
    got: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    for _ in range(a.runs):
        for k, tree in sides.items():  # alternating: the host's load falls on both alike
            got[k].append(one(tree))
    for k, rows in got.items():
        gaps = [r["max_gap_ms"] for r in rows]
        print(f"{k}: longest loop stall median {statistics.median(gaps):.0f} ms (min {min(gaps):.0f}, "
              f"max {max(gaps):.0f}), start to the second cycle median "
              f"{statistics.median(r['to_tick2_s'] for r in rows):.2f} s, {len(rows)} runs")
    if a.base:
        ratio = statistics.median(r["max_gap_ms"] for r in got["base"]) / statistics.median(
            r["max_gap_ms"] for r in got["this tree"])
        print(f"base / this tree, longest stall: {ratio:.1f}x")


if __name__ == "__main__":
    main()
