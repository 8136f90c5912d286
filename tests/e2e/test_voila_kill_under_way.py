"""The kill banner of a real page while a live KILL is under way (Voilà, chromium, a sandbox process
whose cancels answer slowly: `latency_ms` on DELETE), read in the browser every 100 ms.

BUG (fixed): the engine publishes the kill as under way before its cancel (so the kill is on record);
the banner showed that as a result, `KILL under way: cancelling every order at 10:31:02; engine NOT
stopped; open orders now -1`, until the final result came. It now says the kill is under way, then
the result in its usual format (`KILLED: … engine stopped; open orders now 0`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from voila_helpers import BROWSER_ARGS, CHROMIUM, ROOT, clean_env, start_voila, stop_voila, wait

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]

CANCEL_LATENCY_MS = 2500  # within the stop's verify budget (runtime.STOP_VERIFY_SEC, 6 s)


def _sandbox_get(clob: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(clob + path, method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def test_a_live_kill_in_a_page_says_under_way_then_its_result(tmp_path):
    from eth_account import Account
    from playwright.sync_api import sync_playwright

    sb_log = open(tmp_path / "sandbox.log", "w")
    sb = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "8", "--speed", "5", "--seed", "3"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=sb_log, text=True)
    proc = log = None
    try:
        assert sb.stdout is not None
        urls = dict(sb.stdout.readline().strip().removeprefix("export ").split("=", 1) for _ in range(3))
        env = clean_env(**urls)
        env.update({"PMM_VENUE": "polymarket", "PMM_DB_URL": f"sqlite:///{tmp_path / 'app.db'}",
                    "PMM_QUOTE_REFRESH_SEC": "0.5", "PMM_DASHBOARD_REFRESH_SEC": "0.5", "PMM_UNIVERSE_SIZE": "3",
                    "PMM_PRIVATE_KEY": "0x" + Account.create().key.hex().removeprefix("0x")})
        proc, port, token, log = start_voila(env, tmp_path / "voila.log")
        clob = urls["PMM_CLOB_URL"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/?token={token}", timeout=90_000)
                page.wait_for_selector(".pmm-status", timeout=90_000)
                page.click(".pmm-mode button:has-text('live')")
                page.fill(".pmm-live-text input", "live")
                page.wait_for_selector(".pmm-live-confirm:not([disabled])", timeout=10_000)
                page.click(".pmm-live-confirm")
                page.wait_for_timeout(500)
                page.click(".pmm-start")
                assert wait(lambda: "OWNER" in page.inner_text(".pmm-role"), 60), page.inner_text(".pmm-status")
                assert wait(lambda: _sandbox_get(clob, "/_sandbox/state")["open_account_orders"] > 0, 60)
                _sandbox_get(clob, "/_sandbox/faults", {"latency_ms": CANCEL_LATENCY_MS, "latency_methods": "DELETE"})
                page.click(".pmm-kill")
                seen: list[str] = []
                end = time.time() + 30
                while time.time() < end:
                    text = page.inner_text(".pmm-kill-result")
                    if not seen or seen[-1] != text:
                        seen.append(text)
                    if "KILLED" in text:
                        break
                    page.wait_for_timeout(100)
                assert "KILLED" in seen[-1], seen
                assert any("KILL under way: cancelling every order…" in t for t in seen), seen
                assert not [t for t in seen[:-1] if "NOT stopped" in t or "-1" in t], seen
                assert "engine stopped;" in seen[-1] and page.inner_text(".pmm-kill-open") == "0", seen
                assert _sandbox_get(clob, "/_sandbox/state")["open_account_orders"] == 0
            finally:
                browser.close()
    finally:
        if proc is not None and log is not None:
            stop_voila(proc, log)
        sb.terminate()
        sb.wait(timeout=10)
        sb_log.close()
