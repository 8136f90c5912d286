"""Sandbox market-websocket throughput and CPU cost for 160 tokens.

Runs the sandbox as a subprocess (`python -m pmm_widgets.sandbox`, 80 markets = 160 tokens),
subscribes every token with a real `websockets` client, lets it run at a high speed factor for a
fixed time and reports, as the median of several runs:
- sustained market-channel events/s and frames/s received by the client,
- the sandbox process's CPU seconds per wall second (from /proc, so the client is not counted),
- the ratio of events/s to the requirement baseline: the engine needs 1 update/s per token,
  i.e. 160 msg/s; the sandbox must drive at least 10x that. A speed-1x run in the same
  invocation shows the real-time feed rate the engine gets in the demo.

Usage: python bench/bench_sandbox.py [--speed 10] [--runs 3] [--seconds 5]   (< 60 s total)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import httpx
import websockets

TOKENS = 160
BASELINE_MSG_PER_SEC = TOKENS * 1.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def one_run(speed: float, seconds: float, seed: int) -> dict[str, float]:
    p = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "80", "--seed", str(seed),
                          "--speed", str(speed)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        urls = dict(line.strip().removeprefix("export ").split("=", 1) for line in (p.stdout.readline() for _ in range(3)))
        async with httpx.AsyncClient() as c:
            markets = (await c.get(urls["PMM_GAMMA_URL"] + "/markets", params={"limit": 500, "closed": "false"})).json()
            closed = (await c.get(urls["PMM_GAMMA_URL"] + "/markets", params={"limit": 500, "closed": "true"})).json()
        tokens = [t for m in markets + closed for t in json.loads(m["clobTokenIds"])]
        assert len(tokens) == TOKENS, len(tokens)
        async with websockets.connect(urls["PMM_CLOB_WS_URL"] + "/market", max_size=None) as ws:
            await ws.send(json.dumps({"assets_ids": tokens, "type": "market", "custom_feature_enabled": True}))
            await ws.recv()  # snapshots
            warm_end = time.monotonic() + 1.0
            while time.monotonic() < warm_end:
                await ws.recv()
            events = frames = 0
            cpu0, t0 = _cpu_seconds(p.pid), time.monotonic()
            end = t0 + seconds
            while (left := end - time.monotonic()) > 0:
                try:
                    frame = await asyncio.wait_for(ws.recv(), left)
                except TimeoutError:
                    break
                data = json.loads(frame)
                events += len(data) if isinstance(data, list) else 1
                frames += 1
            wall = time.monotonic() - t0
            cpu = _cpu_seconds(p.pid) - cpu0
        return {"events_per_sec": events / wall, "frames_per_sec": frames / wall, "cpu_per_wall_sec": cpu / wall}
    finally:
        p.terminate()
        p.wait(timeout=10)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    results = []
    for i in range(a.runs):
        r = await one_run(a.speed, a.seconds, seed=7 + i)
        results.append(r)
        print(f"run {i + 1}: {r['events_per_sec']:8.0f} events/s  {r['frames_per_sec']:6.1f} frames/s  "
              f"sandbox CPU {r['cpu_per_wall_sec']:.3f} s/s")
    rt = await one_run(1.0, 3.0, seed=7)
    print(f"real time (speed 1x, 3 s): {rt['events_per_sec']:.0f} events/s  "
          f"sandbox CPU {rt['cpu_per_wall_sec']:.3f} s/s")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"\n160 tokens, speed {a.speed}x, {a.runs} runs of {a.seconds:.0f} s (median):")
    print(f"  events/s            {med['events_per_sec']:.0f}")
    print(f"  frames/s            {med['frames_per_sec']:.1f}")
    print(f"  sandbox CPU         {med['cpu_per_wall_sec']:.3f} s per wall s")
    print(f"  baseline            {BASELINE_MSG_PER_SEC:.0f} msg/s (1 update/s per token); "
          f"speed-1x feed gives {rt['events_per_sec'] / BASELINE_MSG_PER_SEC:.1f}x that")
    print(f"  ratio to baseline   {med['events_per_sec'] / BASELINE_MSG_PER_SEC:.1f}x (goal >= 10x)")
    print(f"  events per CPU s    {med['events_per_sec'] / max(med['cpu_per_wall_sec'], 1e-9):.0f}")


if __name__ == "__main__":
    asyncio.run(main())
