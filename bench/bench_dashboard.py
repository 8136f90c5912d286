"""Kernel-side cost of the dashboard refresh: 50 markets, the universe table and 4 streamed charts.

What it measures: one `ControlPanel.refresh` (status, table, sliders, 4 chart streams) against
a synthetic 50-market `EngineState` whose values change every refresh, N refreshes (default
300 = five minutes at 1 Hz). It reports CPU ms and wall ms per refresh and the CPU % of one
core at 1 Hz (CPU seconds per refresh × 1 Hz), median of 3 runs, next to a baseline measured in
the same run: a refresh that only rebuilds the table.

Two places:
- in-process (default): ipywidgets on its dummy comm, so no message is serialised;
- `--kernel`: the same code inside a real ipykernel (jupyter_client), where every widget and
  Bokeh change is serialised and sent over ZMQ as in Voilà (no browser attached).

- `--browser SECONDS`: the Voilà app itself with headless chromium against the embedded sandbox
  (paper, 50 markets): JS heap start vs end after a forced GC, and the CPU of the kernel (engine
  and dashboard together) and of the voila server; then, as the baseline, `engine_only.ipynb`
  (the same engine in a Voilà kernel, no dashboard) for as long: the dashboard's share of the
  kernel is the difference. The engine headless (no kernel at all) is printed for reference.

    python bench/bench_dashboard.py [--refreshes 300] [--kernel] [--browser 60]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path


def synthetic_state(tick: int, n: int = 50, rng: random.Random | None = None):
    from pmm_widgets.engine.state import EngineState, FeedState, MarketRow, Totals

    rng = rng or random.Random(tick)
    rows = []
    for i in range(n):
        mid = 0.5 + 0.4 * math.sin(i + tick / 50.0)
        half = 0.01 + 0.005 * rng.random()
        rows.append(MarketRow(f"0x{i:064x}", i + 1, f"Will synthetic event number {i} resolve YES by the end of 2027?",
                              mid=round(mid, 3), spread=0.02, yes_bid=round(mid - half, 3), yes_ask=round(mid + half, 3),
                              no_bid=round(1 - mid - half, 3), no_ask=round(1 - mid + half, 3),
                              inv_yes=rng.randint(-50, 50), inv_no=rng.randint(-50, 50), pnl=rng.uniform(-5, 5),
                              fills=tick, fills_per_min=rng.uniform(0, 3), status="quoting"))
    return EngineState(role="owner", mode="paper", running=True, tick=tick, ts=time.time(), markets=rows,
                       totals=Totals(pnl=rng.uniform(-20, 20), fills=tick, fills_per_min=rng.uniform(0, 50),
                                     open_orders=200),
                       feed=FeedState(True, 0.05, 0, 0), writer_lag_sec=0.2, params={"alpha": 1.5})


def run_bench(refreshes: int) -> dict:
    from pmm_widgets.config import Settings
    from pmm_widgets.engine import Engine
    from pmm_widgets.ui.controls import ControlPanel, render_table

    settings = Settings(_env_file=None, db_url="sqlite://")
    states = [synthetic_state(t) for t in range(refreshes)]

    def one(kind: str) -> tuple[float, float]:
        panel = ControlPanel(Engine(settings))
        panel._streaming = True  # as after the browser's first heartbeat
        c0, w0 = time.process_time(), time.perf_counter()
        for k, s in enumerate(states):
            if kind == "full":
                panel.refresh(s, now=1e9 + k)
            else:
                panel.table.value = render_table(s.markets)
        c1, w1 = time.process_time(), time.perf_counter()
        return (c1 - c0) / refreshes * 1000, (w1 - w0) / refreshes * 1000

    out = {}
    for kind in ("table_only", "full"):
        runs = [one(kind) for _ in range(3)]
        cpu_ms = statistics.median(r[0] for r in runs)
        wall_ms = statistics.median(r[1] for r in runs)
        out[kind] = {"cpu_ms_per_refresh": round(cpu_ms, 3), "wall_ms_per_refresh": round(wall_ms, 3),
                     "cpu_pct_one_core_at_1hz": round(cpu_ms / 10.0, 3)}
    out["ratio_full_vs_table_only"] = round(out["full"]["cpu_ms_per_refresh"] / out["table_only"]["cpu_ms_per_refresh"], 2)
    out["refreshes"] = refreshes
    return out


def run_in_kernel(refreshes: int) -> dict:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import bench_dashboard as b; print('RESULT' + json.dumps(b.run_bench({refreshes})))")
        result: dict = {}
        kc.execute(code)
        while True:
            msg = kc.get_iopub_msg(timeout=600)
            c = msg["content"]
            if msg["msg_type"] == "stream" and "RESULT" in c.get("text", ""):
                result = json.loads(c["text"].split("RESULT", 1)[1])
            elif msg["msg_type"] == "error":
                raise RuntimeError("\n".join(c["traceback"]))
            elif msg["msg_type"] == "status" and c["execution_state"] == "idle" and result:
                return result
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_browser(seconds: float, notebook: str, markets: int, baseline: bool = False) -> dict:
    """Voilà + headless chromium against the embedded sandbox: JS heap at start and end (after a
    forced GC), and CPU of the kernel (engine + dashboard) and of the voila server over the run.
    `baseline`: the page is `engine_only.ipynb` (same engine in a Voilà kernel, no dashboard)."""
    import os
    import socket
    import subprocess
    import tempfile

    import psutil
    from playwright.sync_api import sync_playwright

    root = Path(__file__).resolve().parents[1]
    nb = Path(notebook).resolve()
    with socket.socket() as s_:
        s_.bind(("127.0.0.1", 0))
        port = s_.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="pmm-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_VENUE": "sandbox", "PMM_DB_URL": f"sqlite:///{tmp}/bench.db", "PMM_UNIVERSE_SIZE": str(markets),
                "PMM_SANDBOX_MARKETS": str(max(80, markets + 10)), "PMM_DASHBOARD_REFRESH_SEC": "1.0"})
    # launched from the repository root, so voila.json applies (as `voila apps/control.ipynb`)
    cwd = root if nb.is_relative_to(root) else nb.parent
    proc = subprocess.Popen([sys.executable, "-m", "voila", str(nb.relative_to(cwd)), "--no-browser", f"--port={port}"],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s_:
                if s_.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"http://127.0.0.1:{port}/", timeout=90_000)
            if baseline:
                page.wait_for_selector(".pmm-baseline", timeout=90_000)
                page.wait_for_timeout(5000)  # the engine's start-up (universe, books) is not measured
            else:
                page.wait_for_selector(".pmm-table tr[data-cid]", timeout=90_000)
                page.wait_for_selector(".pmm-plot canvas", timeout=30_000)
            cdp = page.context.new_cdp_session(page)
            cdp.send("HeapProfiler.enable")

            def heap_mb() -> float:
                cdp.send("HeapProfiler.collectGarbage")
                return cdp.send("Runtime.getHeapUsage")["usedSize"] / 2**20

            kernels = [c for c in psutil.Process(proc.pid).children(recursive=True) if "ipykernel" in " ".join(c.cmdline())]
            server = psutil.Process(proc.pid)
            procs = {"kernel": kernels[0], "voila_server": server}
            cpu0 = {k: sum(v.cpu_times()[:2]) for k, v in procs.items()}
            heap0, t0 = heap_mb(), time.time()
            ticks0 = None if baseline else int(page.inner_text(".pmm-tick"))
            page.wait_for_timeout(seconds * 1000)
            elapsed = time.time() - t0
            cpu1 = {k: sum(v.cpu_times()[:2]) for k, v in procs.items()}
            heap1 = heap_mb()
            ticks1 = None if baseline else int(page.inner_text(".pmm-tick"))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return {"seconds": round(elapsed, 1), "markets": markets, "engine_ticks": None if baseline else ticks1 - ticks0,
            "js_heap_mb_start": round(heap0, 1), "js_heap_mb_end": round(heap1, 1),
            **{f"cpu_pct_{k}": round((cpu1[k] - cpu0[k]) / elapsed * 100, 2) for k in procs}}


def run_headless(seconds: float, markets: int) -> dict:
    """The same engine without any face (`python -m pmm_widgets.engine --sandbox`): the part of
    the kernel's CPU in the browser run that is the engine's, not the dashboard's."""
    import os
    import subprocess
    import tempfile

    import psutil

    tmp = tempfile.mkdtemp(prefix="pmm-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update({"PMM_DB_URL": f"sqlite:///{tmp}/bench.db", "PMM_UNIVERSE_SIZE": str(markets),
                "PMM_SANDBOX_MARKETS": str(max(80, markets + 10))})
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.engine", "--sandbox"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while " tick 1 " not in (proc.stdout.readline() or " tick 1 "):
            pass
        ps = psutil.Process(proc.pid)
        c0, t0 = sum(ps.cpu_times()[:2]), time.time()
        time.sleep(seconds)
        c1, t1 = sum(ps.cpu_times()[:2]), time.time()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"seconds": round(t1 - t0, 1), "cpu_pct_engine": round((c1 - c0) / (t1 - t0) * 100, 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--refreshes", type=int, default=300)
    ap.add_argument("--kernel", action="store_true", help="also measure inside a real ipykernel")
    ap.add_argument("--browser", type=float, default=0.0, metavar="SECONDS",
                    help="also run the Voilà app in headless chromium for SECONDS (sandbox, paper)")
    ap.add_argument("--notebook", default=str(Path(__file__).resolve().parents[1] / "apps" / "control.ipynb"))
    ap.add_argument("--markets", type=int, default=50)
    args = ap.parse_args()
    res = {"in_process": run_bench(args.refreshes)}
    if args.kernel:
        res["in_kernel"] = run_in_kernel(args.refreshes)
    browser = run_browser(args.browser, args.notebook, args.markets) if args.browser else None
    base = run_browser(args.browser, str(Path(__file__).with_name("engine_only.ipynb")), args.markets,
                       baseline=True) if args.browser else None
    headless = run_headless(args.browser, args.markets) if args.browser else None
    for where, r in res.items():
        print(f"{where}: {r['refreshes']} refreshes, 50 markets, median of 3")
        for kind in ("table_only", "full"):
            k = r[kind]
            print(f"  {kind:10s} cpu {k['cpu_ms_per_refresh']:7.3f} ms/refresh  wall {k['wall_ms_per_refresh']:7.3f} ms"
                  f"  → {k['cpu_pct_one_core_at_1hz']:6.3f} % of one core at 1 Hz")
        print(f"  full / table-only CPU ratio: {r['ratio_full_vs_table_only']}")
    if browser:
        print(f"browser (voila + chromium, {browser['markets']} markets, {browser['seconds']} s, "
              f"{browser['engine_ticks']} engine ticks): JS heap {browser['js_heap_mb_start']} → "
              f"{browser['js_heap_mb_end']} MB; CPU of one core: kernel (engine + dashboard) "
              f"{browser['cpu_pct_kernel']} %, voila server {browser['cpu_pct_voila_server']} %")
    if base:
        print(f"baseline page (same engine in a Voilà kernel, no dashboard), {base['seconds']} s: kernel "
              f"{base['cpu_pct_kernel']} %, voila server {base['cpu_pct_voila_server']} % "
              f"→ the dashboard's share of the kernel = {browser['cpu_pct_kernel'] - base['cpu_pct_kernel']:.2f} % "
              f"of one core (goal < 5 %)")
    if headless:
        print(f"headless engine (python -m pmm_widgets.engine --sandbox), {headless['seconds']} s: "
              f"{headless['cpu_pct_engine']} % of one core (a kernel's own overhead is the rest of the baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
