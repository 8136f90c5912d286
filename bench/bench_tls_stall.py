"""The longest event-loop stall across the first use of the venue's clients (venue/tls.py).

A probe task sleeps 1 ms in a loop on the event loop and records the longest gap between two of
its turns while, one after the other: a `JsonHttp` is constructed and sends its first GET (the
Gamma / CLOB REST clients of `build_runtime`), an `OrderEntry` sends its first request (POST
/orders of one signed order: the first quote of a live engine), a market websocket connects to a
wss:// URL (the sandbox's plain port: the TLS handshake fails; what is measured is the connect
attempt, paid again at every reconnect), and, for reference, nothing at all (idle). Each run is a
fresh process (the contexts and imports are once per process); when `pmm_widgets.venue.tls`
exists the run first warms it off the loop, as `build_runtime` does. The venue is a sandbox child
process (plain http / ws on loopback).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_tls_stall.py --runs 7

Run it with PYTHONPATH at an older checkout of the package for the "before" figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

WINDOWS = ("idle", "JsonHttp first GET", "OrderEntry first POST", "wss connect attempt")


async def stall_ms(op: Callable[[], Awaitable[Any]]) -> float:
    """The longest gap (ms) between two turns of a 1 ms sleeper while `op` runs."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.02)
    gaps.clear()
    try:
        await op()
        await asyncio.sleep(0.005)
    finally:
        done.set()
        await task
    return max(gaps) * 1e3


async def worker(gamma_url: str, clob_url: str, ws_url: str) -> dict[str, float]:
    from eth_account import Account

    from pmm_widgets.domain import Side
    from pmm_widgets.sandbox.auth_crypto import derive_creds
    from pmm_widgets.venue.clob_rest import ClobPublic
    from pmm_widgets.venue.gamma import GammaClient
    from pmm_widgets.venue.http import JsonHttp
    from pmm_widgets.venue.market_stream import MarketStream
    from pmm_widgets.venue.order_entry import OrderEntry
    from pmm_widgets.venue.signer import OrderSigner

    try:
        from pmm_widgets.venue import tls
    except ImportError:
        pass
    else:
        await tls.warm()

    key = "0x" + Account.create().key.hex().removeprefix("0x")
    signer = OrderSigner(key, 137)
    c = derive_creds(signer.address, 0)
    creds = (c.api_key, c.secret, c.passphrase)
    out: dict[str, float] = {"idle": await stall_ms(lambda: asyncio.sleep(0.05))}
    http: JsonHttp | None = None

    async def first_get() -> None:
        nonlocal http
        http = JsonHttp(gamma_url)
        await http.get("/markets", {"limit": 1})

    out["JsonHttp first GET"] = await stall_ms(first_get)
    assert http is not None
    await http.aclose()
    gamma = GammaClient(gamma_url)
    m = (await gamma.fetch_markets(1))[0]
    await gamma.aclose()
    body = signer.sign(m.yes_token_id, Side.BUY, m.tick_size, max(m.min_order_size, Decimal(5)), m.tick_size,
                       m.neg_risk).body
    entry = OrderEntry(clob_url, signer.address, lambda: creds)
    try:
        answers: list[Any] = []

        async def first_post() -> None:
            answers.extend(await entry.post([body], creds[0]))

        out["OrderEntry first POST"] = await stall_ms(first_post)
        assert answers and answers[0].get("success") is True, answers
    finally:
        await entry.aclose()
    rest = ClobPublic(clob_url)
    stream = MarketStream("wss" + ws_url.removeprefix("ws"), rest, {})  # its connections: <url>/market

    async def wss_attempt() -> None:
        await stream.set_assets([m.yes_token_id])
        await asyncio.sleep(0.3)  # a connect attempt or two fail (TLS against a plain port), backing off

    try:
        out["wss connect attempt"] = await stall_ms(wss_attempt)
    finally:
        await stream.close()
        await rest.aclose()
    return out


def sandbox() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "8", "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    while len(urls) < 3:
        line = proc.stdout.readline().decode()
        if not line:
            raise SystemExit("the sandbox did not start")
        if line.startswith("export PMM_"):
            k, v = line.removeprefix("export ").strip().split("=", 1)
            urls[k] = v
    return proc, urls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--worker", nargs=3, metavar=("GAMMA", "CLOB", "WS"))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(asyncio.run(worker(*a.worker))))
        return
    proc, urls = sandbox()
    try:
        runs = []
        for _ in range(a.runs):
            out = subprocess.run([sys.executable, __file__, "--worker", urls["PMM_GAMMA_URL"], urls["PMM_CLOB_URL"],
                                  urls["PMM_CLOB_WS_URL"]], capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    print(f"longest event-loop stall (ms), {a.runs} runs, each a fresh process:")
    for w in WINDOWS:
        xs = [r[w] for r in runs]
        print(f"  {w:24s} median {statistics.median(xs):6.1f}   min {min(xs):6.1f}   max {max(xs):6.1f}")


if __name__ == "__main__":
    main()
