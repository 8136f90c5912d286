"""Live quote cycle on the sandbox with an injected round trip: pipelined requote vs the serial SDK path.

The sandbox runs in its own process (`python -m pmm_widgets.sandbox`) with its `latency_ms`
fault knob set (default 30 ms added to every HTTP answer and websocket frame: the round trip
of a real venue). The real engine (`Engine`, mode LIVE, a throwaway wallet, a temporary
SQLite DB) quotes `--markets` markets for `--seconds`, twice in the same run:
- `pipelined`: `PMM_FAST_ORDERS=true` (the default): orders signed by the project's signer in
  a signing thread, the batch cancel and the POST /orders batches of one cycle in flight together;
- `serial` (baseline, the code before issue 12): `PMM_FAST_ORDERS=false`: SDK signing and SDK
  calls in one worker thread, cancels awaited, then the batches of 15 posted one after another.
Each cycle's wall time (`QuoteCycle.run_once`) and its requote time (`CycleReport.requote_sec`,
cancels + places, cycles that had any) are recorded; printed: p50/p99 of both, and the mean
orders per requote. The action budget is raised (`PMM_MAX_ACTIONS_PER_MIN`) so that no requote
is truncated by the risk manager. With --runs N the figures are medians over N runs.

Goal (issue 12): requote p50 <= 2 round trips + 20 ms = 80 ms at 30 ms, vs >= 360 ms serial.
On a shared, loaded host one "round trip" is more than the injected 30 ms: a separate process
times GET /time on the same sandbox during each run (`idle GET`), and the last line also gives the
goal at that measured round trip. Where the time of a requote goes is printed per run: to the
first request (preparing, signing the first batch), on the wire (first request out -> last answer
in), after the last answer; with each request's round trip (`OrderEntry.rtts`) and how late the
engine's event loop wakes a 5 ms sleep.

Usage: python bench/bench_live_cycle.py [--markets 50] [--seconds 30] [--latency-ms 30] [--runs 1]
(about 2 x (seconds + 10) s per run)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

from eth_account import Account

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine.core import Engine
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.live import LiveExchange
from pmm_widgets.venue.broker import Broker
from pmm_widgets.venue.endpoints import Endpoints, sandbox_child
from pmm_widgets.venue.order_entry import OrderEntry, Rtt


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class ChildSandbox:
    """The sandbox child process's URLs (`venue.endpoints.sandbox_child`, the engine's own
    launcher) and its fault knobs."""

    def __init__(self, ep: Endpoints) -> None:
        self.ep = ep

    def endpoints(self) -> Endpoints:
        return Endpoints(self.ep.gamma_url, self.ep.clob_url, self.ep.ws_url)

    def faults(self, **knobs: object) -> None:
        req = urllib.request.Request(self.ep.clob_url + "/_sandbox/faults", data=json.dumps(knobs).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=5).read()


@contextlib.asynccontextmanager
async def sandbox_process(markets: int, seed: int, speed: float) -> AsyncIterator[ChildSandbox]:
    """`python -m pmm_widgets.sandbox` in a child process for the block: the engine's launcher
    (`sandbox_child`: URLs read from its stdout, stopped on every exit path, gone with us)."""
    settings = Settings(_env_file=None, venue="sandbox", sandbox_markets=markets, sandbox_seed=seed,
                        sandbox_speed=speed)
    async with sandbox_child(settings) as ep:
        yield ChildSandbox(ep)


PROBE = """
import http.client, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1]); end = time.monotonic() + float(sys.argv[2]); xs = []
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
while time.monotonic() < end:
    t = time.perf_counter(); c.request("GET", "/time"); c.getresponse().read(); xs.append(time.perf_counter() - t)
    time.sleep(0.1)
print(" ".join(f"{x:.6f}" for x in xs))
"""


def probe_rtts(clob_url: str, seconds: float) -> subprocess.Popen:
    """A separate process timing GET /time on the same sandbox every 100 ms for `seconds`: the
    round trip the host gives an idle client right now (injected latency + the sandbox's and the
    scheduler's delays), measured in the same run as the engine's requotes."""
    return subprocess.Popen([sys.executable, "-c", PROBE, clob_url, str(seconds)], stdout=subprocess.PIPE, text=True)


async def loop_lag(out: list[float], step: float = 0.005) -> None:
    """How late the engine's event loop wakes a 5 ms sleep (the delay any answer waits for)."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(step)
        out.append(max(0.0, loop.time() - t - step))


def phases(tls: list[dict]) -> dict[str, float]:
    """Medians (ms) over requotes: to_first_send (start -> the first request leaves: preparing and
    signing the first batch, thread hops), signing (sum of signing-thread work), wire (first request
    sent -> last answer in: the round trips, overlapping), after (last answer -> requote done:
    recording the orders, a follow-up cancel if any)."""
    if not tls:
        return {}
    first = [min(r[0] for r in t["req"]) - t["t0"] for t in tls]
    wire = [max(r[1] for r in t["req"]) - min(r[0] for r in t["req"]) for t in tls]
    after = [t["t1"] - max(r[1] for r in t["req"]) for t in tls]
    signing = [sum(b - a for a, b in t["sign"]) for t in tls]
    return {f"ph_{k}": statistics.median(v) * 1e3 for k, v in
            (("to_first_send", first), ("signing", signing), ("wire", wire), ("after", after))}


async def run_mode(fast: bool, args: argparse.Namespace, key: str, sb: ChildSandbox) -> dict[str, float]:
    cycles: list[float] = []
    requotes: list[tuple[float, int]] = []
    orig = QuoteCycle.run_once

    async def timed(self: QuoteCycle, *a, **kw):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        rep = await orig(self, *a, **kw)
        cycles.append(time.perf_counter() - t0)
        if rep.requote_sec > 0:
            requotes.append((rep.requote_sec, rep.placed + rep.cancelled + rep.rejected))
        return rep

    lags: list[float] = []
    entries: list[OrderEntry] = []
    orig_init = OrderEntry.__init__

    def init(self: OrderEntry, *a, **kw):  # type: ignore[no-untyped-def]
        orig_init(self, *a, **kw)
        entries.append(self)

    # the requote's timeline (perf_counter): start, each signing chunk (start, end), each request
    # (semaphore acquired, answer in), end; `phases` below turns it into where the time went
    timelines: list[dict[str, list[tuple[float, float]] | float]] = []
    cur: dict[str, list[tuple[float, float]] | float] = {}
    orig_rq, orig_sign, orig_req = LiveExchange.requote, Broker._sign_chunk, OrderEntry._request

    async def rq(self: LiveExchange, *a, **kw):  # type: ignore[no-untyped-def]
        nonlocal cur
        cur = {"t0": time.perf_counter(), "sign": [], "req": []}
        try:
            return await orig_rq(self, *a, **kw)
        finally:
            cur["t1"] = time.perf_counter()
            if cur["req"]:
                timelines.append(cur)
            cur = {}

    def sign(self: Broker, chunk):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = orig_sign(self, chunk)
        if "sign" in cur:
            cur["sign"].append((t, time.perf_counter()))  # type: ignore[union-attr]
        return out

    async def req(self: OrderEntry, *a, **kw):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        box = cur
        try:
            return await orig_req(self, *a, **kw)
        finally:
            if "req" in box:
                box["req"].append((t, time.perf_counter()))  # type: ignore[union-attr]

    QuoteCycle.run_once = timed  # type: ignore[method-assign]
    OrderEntry.__init__ = init  # type: ignore[method-assign]
    LiveExchange.requote, Broker._sign_chunk, OrderEntry._request = rq, sign, req  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(_env_file=None, venue="polymarket", db_url=f"sqlite:///{Path(tmp) / 'live.db'}",
                                universe_size=args.markets, quote_refresh_sec=args.refresh, private_key=key,
                                fast_orders=fast, max_actions_per_min=6_000, max_open_orders=400,
                                disconnect_cancel_sec=30.0)
            engine = Engine(settings, Mode.LIVE, endpoints=sb.endpoints())
            lag_task = asyncio.ensure_future(loop_lag(lags))
            probe = probe_rtts(sb.ep.clob_url, args.seconds)
            try:
                await engine.run(max_seconds=args.seconds)
            finally:
                lag_task.cancel()
                out, _ = await asyncio.to_thread(probe.communicate)
            idle = [float(x) for x in out.split()]
    finally:
        QuoteCycle.run_once = orig  # type: ignore[method-assign]
        OrderEntry.__init__ = orig_init  # type: ignore[method-assign]
        LiveExchange.requote, Broker._sign_chunk, OrderEntry._request = orig_rq, orig_sign, orig_req  # type: ignore[method-assign]
    ph = phases(timelines[1:] or timelines)
    rtts: list[Rtt] = [r for e in entries for r in e.rtts]
    post = [r.rtt for r in rtts if r.kind == "post"]
    cancel = [r.rtt for r in rtts if r.kind == "cancel"]
    steady = cycles[1:] or cycles  # the first cycle places the whole book at once
    rq = [r for r, _ in requotes[1:]] or [r for r, _ in requotes]
    return {"cycle_p50": pct(steady, 0.5) * 1e3, "cycle_p99": pct(steady, 0.99) * 1e3,
            "requote_p50": pct(rq, 0.5) * 1e3, "requote_p99": pct(rq, 0.99) * 1e3,
            "first_ms": (cycles[0] * 1e3) if cycles else float("nan"),
            "orders_per_requote": statistics.mean(n for _, n in requotes) if requotes else 0.0,
            "cycles": len(cycles), "requotes": len(requotes),
            # every request's round trip as OrderEntry recorded it (the pipelined path only: the
            # serial baseline goes through the SDK, which records nothing)
            "post_rtt_p50": pct(post, 0.5) * 1e3, "post_rtt_p99": pct(post, 0.99) * 1e3,
            "cancel_rtt_p50": pct(cancel, 0.5) * 1e3, "cancel_rtt_p99": pct(cancel, 0.99) * 1e3,
            "requests_per_requote": (len(post) + len(cancel)) / len(requotes) if requotes else 0.0,
            "idle_rtt_p50": pct(idle, 0.5) * 1e3, "idle_rtt_p90": pct(idle, 0.9) * 1e3,
            "loop_lag_p50": pct(lags, 0.5) * 1e3, "loop_lag_p99": pct(lags, 0.99) * 1e3, **ph}


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    results: dict[str, list[dict[str, float]]] = {"pipelined": [], "serial": []}
    async with sandbox_process(max(120, 3 * args.markets), args.seed, args.speed) as sb:
        sb.faults(latency_ms=args.latency_ms)
        for r in range(args.runs):
            for name, fast in (("pipelined", True), ("serial", False)):
                key = "0x" + Account.create().key.hex().removeprefix("0x")
                res = await run_mode(fast, args, key, sb)
                results[name].append(res)
                print(f"run {r + 1} {name:<9}: idle client's GET /time p50 {res['idle_rtt_p50']:.1f} ms p90 "
                      f"{res['idle_rtt_p90']:.1f} ms (load average {os.getloadavg()[0]:.1f})", flush=True)
                print(f"run {r + 1} {name:<9}: cycle p50 {res['cycle_p50']:.1f} ms p99 {res['cycle_p99']:.1f} ms | "
                      f"requote p50 {res['requote_p50']:.1f} ms p99 {res['requote_p99']:.1f} ms | first cycle "
                      f"{res['first_ms']:.0f} ms | {res['orders_per_requote']:.1f} orders/requote, "
                      f"{res['requotes']:.0f} requotes in {res['cycles']:.0f} cycles", flush=True)
                if fast:
                    print(f"      request round trips: POST /orders p50 {res['post_rtt_p50']:.1f} ms p99 "
                          f"{res['post_rtt_p99']:.1f} ms | DELETE /orders p50 {res['cancel_rtt_p50']:.1f} ms p99 "
                          f"{res['cancel_rtt_p99']:.1f} ms | {res['requests_per_requote']:.1f} requests/requote",
                          flush=True)
                    if "ph_wire" in res:
                        print(f"      requote phases (median): to first send {res['ph_to_first_send']:.1f} ms "
                              f"(signing {res['ph_signing']:.1f} ms) | on the wire {res['ph_wire']:.1f} ms | "
                              f"after the last answer {res['ph_after']:.1f} ms | engine loop lag p50 "
                              f"{res['loop_lag_p50']:.1f} ms p99 {res['loop_lag_p99']:.1f} ms", flush=True)
    med = {n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in results.items()}
    p, s = med["pipelined"], med["serial"]
    print(f"\nmedian of {args.runs} run(s): {args.markets} markets, {args.latency_ms:g} ms injected round trip, "
          f"refresh {args.refresh:g}s, {args.seconds:g}s per mode")
    for n in ("pipelined", "serial"):
        m = med[n]
        print(f"{n:<9} cycle p50 {m['cycle_p50']:7.1f} ms  p99 {m['cycle_p99']:7.1f} ms   requote p50 "
              f"{m['requote_p50']:7.1f} ms  p99 {m['requote_p99']:7.1f} ms   first cycle {m['first_ms']:6.0f} ms   "
              f"idle GET p50 {m['idle_rtt_p50']:5.1f} ms")
    print(f"live_cycle: requote_p50 pipelined={p['requote_p50']:.1f}ms serial={s['requote_p50']:.1f}ms "
          f"ratio={s['requote_p50'] / p['requote_p50']:.1f} cycle_p50 pipelined={p['cycle_p50']:.1f}ms "
          f"serial={s['cycle_p50']:.1f}ms idle_rtt_p50={p['idle_rtt_p50']:.1f}ms "
          f"goal_at_measured_rtt={2 * p['idle_rtt_p50'] + 20:.1f}ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--latency-ms", type=float, default=30.0)
    ap.add_argument("--refresh", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed", type=float, default=1.0)
    asyncio.run(main(ap.parse_args()))
