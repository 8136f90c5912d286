"""The owner's set-up imports its heavy modules off the event loop (`runtime.warm_imports`).

Their first import ran on the loop: at every engine start a notebook's widgets (and an attached
face) froze 0.3-0.7 s (the embedded sandbox's signature checks, pandas through `store.repo`,
aiohttp: `bench/bench_start_stall.py`). Checked in a fresh process (this one has imported them
all): an audit hook notes every module first imported on the loop's thread after the start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "pyarrow", "aiohttp", "eth_account", "py_ecc", "pmm_widgets.sandbox", "pmm_widgets.store.repo",
         "pmm_widgets.execution.paper", "pmm_widgets.engine.cycle")

SCRIPT = r"""
import asyncio, json, sys, threading
from pmm_widgets.config import Settings
from pmm_widgets.engine import Engine

on_loop = []
watching = threading.Event()
main = threading.get_ident()

def hook(event, args):
    if event == "import" and watching.is_set() and threading.get_ident() == main:
        on_loop.append(args[0])

sys.addaudithook(hook)

async def run():
    e = Engine(Settings(_env_file=None, db_url=sys.argv[1], venue="sandbox", record="off", quote_refresh_sec=0.2,
                        sandbox_markets=10, universe_size=4))
    watching.set()
    e.start()
    await e.wait_role()
    for _ in range(200):
        if e.state.tick >= 1:
            break
        await asyncio.sleep(0.05)
    watching.clear()
    await e.stop()
    print(json.dumps({"tick": e.state.tick, "on_loop": on_loop}))

asyncio.run(run())
"""


@pytest.mark.integration
def test_the_set_up_imports_nothing_heavy_on_the_event_loop(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path / 'e.db'}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["tick"] >= 1
    heavy = sorted({m for m in got["on_loop"] if m.startswith(HEAVY)})
    assert heavy == [], heavy
