"""Issue 17 soak: `pmm run live --yes` against the sandbox for --minutes (default 30) with every fault
knob cycling, and --kills (default 3) SIGKILL + restart of the engine process spread over the run.

Fault cycle (repeated until the time is up; `clear` phases in between are the baseline):
  clear · 30 % HTTP 503 · clear · 30 % HTTP 429 (Retry-After) · 6 s latency on every answer and
  frame · websocket drops (0.2/s per socket) · 5 % malformed frames · stale feed (market paused) ·
  every DELETE answered 500 (cancels fail until retried)
At the end: faults cleared, a clean SIGTERM stop, then the ground-truth audit of
`pmm_widgets.sandbox.drill.audit`: no duplicate order (every venue order is one DB row), 0 orphans
at the venue, no DB order left open, DB trades == venue fills (0 lost, 0 extra, 0 mismatched).
Figures: the audit, crashes (the process exiting by itself), restarts, events per kind
(cycle_error, circuit_open, ...), and fills/min in fault phases vs clear phases of the same run.

Run: `python bench/bench_soak_faults.py --minutes 30` (a smoke: `--minutes 3 --kills 1`).
Loopback only. Prints one JSON line at the end; exit status 1 when the audit fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from eth_account import Account

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.drill import (
    Phase,
    apply_phase,
    audit,
    event_counts,
    live_env,
    spawn_live,
)
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import trading_of
from pmm_widgets.store.migrate import upgrade

CYCLE = [
    Phase("clear", 20),
    Phase("http503", 25, {"http_error_rate": 0.3, "http_error_status": 503}),
    Phase("clear", 15),
    Phase("http429", 25, {"http_error_rate": 0.3, "http_error_status": 429}),
    Phase("latency6s", 20, {"latency_ms": 6000}),
    Phase("clear", 15),
    Phase("ws_drops", 25, {"ws_drop_rate": 0.2}),
    Phase("malformed", 20, {"malformed_rate": 0.05}),
    Phase("stale_feed", 15, paused=True),
    Phase("clear", 15),
    Phase("cancel500", 15, {"http_error_rate": 1.0, "http_error_status": 500, "http_error_methods": "DELETE"}),
]


async def soak(minutes: float, kills: int, seed: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pmm-soak-"))
    db_url = f"sqlite:///{tmp / 'soak.db'}"
    upgrade(db_url)
    key = "0x" + Account.create().key.hex().removeprefix("0x")
    api_key = derive_creds(Account.from_key(key).address, 0).api_key
    log = tmp / "run.log"
    total = minutes * 60.0
    kill_at = [total * (i + 1) / (kills + 1) for i in range(kills)]
    crashes, restarts = 0, 0
    intervals: list[tuple[str, float, int]] = []  # phase, seconds, fills during it
    async with Sandbox(SandboxConfig(markets=12, seed=seed, speed=10.0)) as sb:
        venue = trading_of(sb)
        env = live_env(sb, key, db_url, PMM_VENUE_BACKOFF_SEC="0.1", PMM_CIRCUIT_PROBE_SEC="2")
        proc = await spawn_live(env, log)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < total:
            ph = CYCLE[i % len(CYCLE)]
            i += 1
            apply_phase(sb, ph)
            start, n0 = time.monotonic(), len(venue.account_fills(api_key))
            end = time.monotonic() + min(ph.seconds, total - (time.monotonic() - t0))
            while time.monotonic() < end:
                await asyncio.sleep(0.2)
                if proc.returncode is not None:  # it exited by itself: a crash; restart it
                    crashes += 1
                    print(f"[soak] engine exited by itself (rc {proc.returncode}) in phase {ph.name}", flush=True)
                    await asyncio.sleep(3.5)
                    proc = await spawn_live(env, log)
                if kill_at and time.monotonic() - t0 >= kill_at[0]:
                    kill_at.pop(0)
                    proc.send_signal(signal.SIGKILL)
                    await proc.wait()
                    await asyncio.sleep(3.5)  # the dead run's lease (TTL 3 s) expires
                    restarts += 1
                    print(f"[soak] SIGKILL + restart {restarts} at {time.monotonic() - t0:.0f}s ({ph.name})",
                          flush=True)
                    proc = await spawn_live(env, log)
            intervals.append((ph.name, time.monotonic() - start, len(venue.account_fills(api_key)) - n0))
        apply_phase(sb, Phase("clear", 0))
        await asyncio.sleep(8)  # the engine comes back to normal quoting
        proc.send_signal(signal.SIGTERM)
        try:
            rc = await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            rc = await proc.wait()
        await asyncio.sleep(1.0)
        res = audit(sb, api_key, db_url)
    kinds = event_counts(db_url)
    secs = {"clear": 0.0, "fault": 0.0}
    nfill = {"clear": 0, "fault": 0}
    for name, sec, n in intervals:
        k = "clear" if name == "clear" else "fault"
        secs[k] += sec
        nfill[k] += n

    def per_min(k: str) -> float:
        return nfill[k] / (secs[k] / 60.0) if secs[k] else 0.0

    text = log.read_text(errors="replace")
    res.update({
        "minutes": minutes, "sigkill_restarts": restarts, "crashes": crashes, "final_exit": rc,
        "engine_crashed_lines": text.count("engine crashed"),
        "events": {k: v for k, v in kinds.items() if k in ("cycle_error", "circuit_open", "circuit_closed",
                                                            "disconnect_cancel", "reconcile", "error")},
        "fills_per_min_clear": round(per_min("clear"), 2),
        "fills_per_min_fault": round(per_min("fault"), 2),
        "log": str(log),
    })
    res["fault_vs_clear_fill_ratio"] = round(res["fills_per_min_fault"] / res["fills_per_min_clear"], 2) \
        if res["fills_per_min_clear"] else None
    res["ok"] = bool(res["ok"] and crashes == 0 and rc == 0)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=17)
    a = ap.parse_args()
    res = asyncio.run(soak(a.minutes, a.kills, a.seed))
    print(json.dumps(res, default=str), flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
