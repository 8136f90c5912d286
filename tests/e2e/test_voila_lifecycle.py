"""The operator app's lifecycle and access rules, in Voilà with a real browser (issues 11 and 17).

One Voilà server, one external sandbox venue (a separate process, so "open orders at the venue"
is measured outside the page kernels), one wallet trading live on it. In order, because each
step builds on the previous one's engine:

1. access: a forged Host is refused (403) before any kernel starts; no token, no page; the
   unload beacon needs the `_xsrf` cookie's value (XSRF on).
2. `curl` ×5: five kernels, no engine, no lease; the culler ends them.
3. live on the sandbox from the page (typed confirmation), α changed, then the owning tab
   reloads: within 5 s the old kernel's orders are gone from the venue; the reloaded page
   offers the live hand-over and owns nothing until the confirmation is typed again; then one
   owner (the new page), α kept, fills continue, `orders` agrees with the venue.
4. KILL in tab A, Start in tab B: A shows ATTACHED within a refresh or two, KILLED banner gone.
5. Voilà gets SIGTERM: zero open orders at the venue within 2 s, the lease released.
A second, short Voilà run with `PMM_ALPHA=abc` shows the one-line error on the page.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from voila_helpers import (
    ARTIFACTS,
    BROWSER_ARGS,
    CHROMIUM,
    ROOT,
    clean_env,
    start_voila,
    stop_voila,
    wait,
)

CULL_SEC = 5

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]


_wait = wait
_start_voila, _stop = start_voila, stop_voila


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from eth_account import Account

    tmp = tmp_path_factory.mktemp("lifecycle")
    sb_log = open(tmp / "sandbox.log", "w")
    sb = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", "16", "--speed", "5", "--seed", "3"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=sb_log, text=True)
    urls = {}
    for _ in range(3):
        line = sb.stdout.readline().strip()
        k, v = line.removeprefix("export ").split("=", 1)
        urls[k] = v
    db_url = f"sqlite:///{tmp / 'app.db'}"
    env = clean_env(**urls)
    env.update({"PMM_VENUE": "polymarket", "PMM_DB_URL": db_url, "PMM_QUOTE_REFRESH_SEC": "0.5",
                "PMM_DASHBOARD_REFRESH_SEC": "1.0", "PMM_UNIVERSE_SIZE": "4", "PMM_LEASE_TTL_SEC": "5",
                "PMM_PRIVATE_KEY": "0x" + Account.create().key.hex().removeprefix("0x"),
                "PMM_DISCONNECT_CANCEL_SEC": "10"})
    proc, port, token, log = _start_voila(env, tmp / "voila.log", [
        f"--MappingKernelManager.cull_idle_timeout={CULL_SEC}", "--MappingKernelManager.cull_interval=1"])
    db = sa.create_engine(db_url)
    yield {"port": port, "token": token, "proc": proc, "db": db, "log": tmp / "voila.log", "clob": urls["PMM_CLOB_URL"],
           "env": env, "tmp": tmp}
    _stop(proc, log)
    sb.terminate()
    sb.wait(timeout=10)
    sb_log.close()
    db.dispose()


def _venue_open(st) -> int:
    with urllib.request.urlopen(st["clob"] + "/_sandbox/state", timeout=5) as r:
        return int(json.load(r)["open_account_orders"])


def _q(db, sql: str):
    try:
        with db.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    except sa.exc.OperationalError:  # the DB (or table) is not there yet
        return None


def _log(st) -> str:
    return Path(st["log"]).read_text()


def _get(url: str, host: str | None = None, method: str = "GET", data: bytes | None = None, cookie: str = ""):
    req = urllib.request.Request(url, method=method, data=data)
    if host:
        req.add_header("Host", host)
    if cookie:
        req.add_header("Cookie", cookie)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read().decode(errors="replace"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), e.headers


def _ws_status(port: int, token: str, host: str) -> int:
    """HTTP status of a kernel-websocket handshake sent with a forged Host and matching Origin."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def go() -> int:
        # the URL names the forged host (so it is the Host header); the TCP connection goes to 127.0.0.1
        url = f"ws://{host}/api/kernels/00000000-0000-0000-0000-000000000000/channels?token={token}"
        try:
            async with connect(url, host="127.0.0.1", port=port, origin=f"http://{host}", open_timeout=20):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    return asyncio.run(go())


def test_1_forged_host_no_token_and_xsrf_are_refused_before_any_kernel(stack):
    base = f"http://127.0.0.1:{stack['port']}"
    tok = stack["token"]
    status, _, _ = _get(f"{base}/?token={tok}", host=f"rebind.evil.example:{stack['port']}")
    assert status == 403
    status, _, _ = _get(f"{base}/api/kernels?token={tok}", host=f"rebind.evil.example:{stack['port']}", method="POST",
                        data=b"{}")
    assert status == 403
    status, _, _ = _get(f"{base}/")  # no token: the login page, not the app
    assert status in (302, 403)
    # the kernel websocket too: refused for the forged Host, while the same handshake with the real
    # Host gets past the host check (404: no such kernel), so the refusal is the Host's doing
    assert _ws_status(stack["port"], tok, f"rebind.evil.example:{stack['port']}") == 403
    assert _ws_status(stack["port"], tok, f"127.0.0.1:{stack['port']}") == 404
    assert "Kernel started" not in _log(stack)
    # XSRF is on: the unload beacon's POST without the _xsrf value is refused, even with the login cookie
    status, _, headers = _get(f"{base}/api/kernels/00000000-0000-0000-0000-000000000000?token={tok}")
    cookie = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie") or [])
    assert "_xsrf=" in cookie
    status, body, _ = _get(f"{base}/voila/api/shutdown/00000000-0000-0000-0000-000000000000", method="POST",
                           data=b"", cookie=cookie)
    assert status == 403 and "_xsrf" in body
    assert "Kernel started" not in _log(stack)


def test_2_curl_five_times_starts_no_engine_and_kernels_are_culled(stack):
    base = f"http://127.0.0.1:{stack['port']}/?token={stack['token']}"
    for _ in range(5):
        status, body, _ = _get(base)
        assert status == 200 and "pmm" in body
    assert _log(stack).count("Kernel started") == 5
    time.sleep(3)
    assert not _q(stack["db"], "SELECT COUNT(*) FROM engine_lease")  # None (no DB) or 0: no lease taken
    assert _venue_open(stack) == 0
    assert _wait(lambda: _log(stack).count("Kernel shutdown") >= 5, 30, 0.5), _log(stack)[-2000:]
    assert "Culling" in _log(stack)
    assert not _q(stack["db"], "SELECT COUNT(*) FROM engine_lease")


def _open(browser, st):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(f"http://127.0.0.1:{st['port']}/?token={st['token']}", timeout=90_000)
    page.wait_for_selector(".pmm-status", timeout=90_000)
    return page


def _go_live_and_start(page):
    page.click(".pmm-mode button:has-text('live')")
    page.wait_for_selector(".pmm-live-text input", timeout=10_000)
    page.fill(".pmm-live-text input", "live")
    page.wait_for_selector(".pmm-live-confirm:not([disabled])", timeout=10_000)
    page.click(".pmm-live-confirm")
    page.wait_for_timeout(500)
    page.click(".pmm-start")


def test_3_reload_of_the_owning_live_tab_hands_over_cleanly(stack):
    from playwright.sync_api import sync_playwright

    db = stack["db"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = _open(browser, stack)
            assert page.title() == "pmm-widgets · operator dashboard"
            _go_live_and_start(page)
            assert _wait(lambda: "OWNER" in page.inner_text(".pmm-role"), 60), page.inner_text(".pmm-status")
            assert _wait(lambda: _venue_open(stack) > 0, 60)
            old_owner = _q(db, "SELECT owner FROM engine_lease")
            readout = page.locator(".pmm-alpha .widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("3")
            page.keyboard.press("Enter")
            assert _wait(lambda: page.inner_text(".pmm-alpha-value") == "3", 15), page.inner_text(".pmm-status")
            page.wait_for_selector(".pmm-plot canvas", timeout=30_000)
            page.wait_for_timeout(1500)
            shot = ARTIFACTS / "dashboard_1440x900.png"
            page.screenshot(path=str(shot))
            if os.environ.get("UPDATE_SCREENSHOT") == "1":  # regenerate the README's docs/dashboard.png
                from PIL import Image

                Image.open(shot).convert("RGB").quantize(colors=64).save(ROOT / "docs" / "dashboard.png", optimize=True)
            for sel in (".pmm-status", ".pmm-totals", ".pmm-kill", ".pmm-start", ".pmm-plot"):
                box = page.locator(sel).first.bounding_box()
                assert box is not None and box["y"] + box["height"] <= 900, (sel, box)

            handed: list[float] = []

            def watch() -> None:  # from the reload on: old orders gone, or the new page owns the lease
                while time.time() - t0 < 5.0 and not handed:
                    owner_now = _q(db, "SELECT owner FROM engine_lease WHERE expires_at > strftime('%s','now')")
                    if _venue_open(stack) == 0 or (owner_now and owner_now != old_owner):
                        handed.append(time.time() - t0)
                    time.sleep(0.05)

            t0 = time.time()
            watcher = threading.Thread(target=watch)
            watcher.start()
            page.reload()
            loaded = time.time() - t0
            watcher.join()
            assert handed, "the old kernel's orders outlived the reload by 5 s"
            print(f"old kernel's orders gone {handed[0]:.2f}s after the reload")
            page.wait_for_selector(".pmm-status", timeout=60_000)
            # a live hand-over waits for the typed confirmation (issue 11): nothing owns meanwhile
            page.wait_for_selector(".pmm-live-confirm:has-text('Take over LIVE')", state="visible", timeout=30_000)
            offered = time.time() - t0
            fills_before = _q(db, "SELECT COUNT(*) FROM trades WHERE mode = 'live' AND status != 'FAILED'")
            page.wait_for_timeout(1500)
            assert "OWNER" not in page.inner_text(".pmm-role")
            assert not _q(db, "SELECT owner FROM engine_lease WHERE expires_at > strftime('%s','now')")
            page.fill(".pmm-live-text input", "live")
            page.wait_for_selector(".pmm-live-confirm:not([disabled])", timeout=10_000)
            t_confirm = time.time()
            page.click(".pmm-live-confirm")
            assert _wait(lambda: "OWNER" in page.inner_text(".pmm-role"), 30), page.inner_text(".pmm-status")
            owned = time.time() - t0
            owned_after_confirm = time.time() - t_confirm
            new_owner = _q(db, "SELECT owner FROM engine_lease")
            assert new_owner and new_owner != old_owner
            assert _q(db, "SELECT COUNT(*) FROM engine_lease") == 1
            assert page.inner_text(".pmm-alpha-value") == "3"  # parameters kept (param_changes)
            assert "live" in page.inner_text(".pmm-status")
            assert _q(db, f"SELECT COUNT(*) FROM events WHERE kind = 'engine_stop' AND ts >= {t0}") >= 1
            assert _wait(lambda: _q(db, f"SELECT COUNT(*) FROM events WHERE kind = 'engine_start' AND ts >= {t0}"), 30)

            def fills_shown() -> int:
                m = re.search(r"fills\s+(\d+)", page.inner_text(".pmm-totals"))
                return int(m.group(1)) if m else -1

            # the new engine's totals continue from the DB (restored at its start), not from zero
            assert _wait(lambda: fills_shown() >= fills_before, 10), (page.inner_text(".pmm-totals"), fills_before)
            shown = fills_shown()
            print(f"reloaded page loaded {loaded:.1f}s, hand-over offered {offered:.1f}s, owns the lease "
                  f"{owned:.1f}s after the reload ({owned_after_confirm:.1f}s after the typed confirmation), "
                  f"quoting {time.time() - t0:.1f}s after the reload ({fills_before} fills before, "
                  f"page shows {shown})")
            assert _wait(lambda: _venue_open(stack) > 0, 30)
            # `orders` agrees with the venue (the writer flushes within a second or two)
            assert _wait(lambda: _q(db, "SELECT COUNT(*) FROM orders WHERE status IN ('LIVE','PARTIAL','PENDING')")
                         == _venue_open(stack), 15)
        finally:
            browser.close()  # abrupt: the culler/dead-man cover it; test 4 opens fresh tabs


def test_4_kill_in_a_then_start_in_b_shows_a_attached(stack):
    from playwright.sync_api import sync_playwright

    db = stack["db"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            a = _open(browser, stack)
            assert _wait(lambda: "ATTACHED" in a.inner_text(".pmm-role") or "OWNER" in a.inner_text(".pmm-role"), 40), \
                a.inner_text(".pmm-status")
            b = _open(browser, stack)
            assert _wait(lambda: "ATTACHED" in b.inner_text(".pmm-role"), 40), b.inner_text(".pmm-status")
            a.click(".pmm-kill")
            assert _wait(lambda: "KILLED" in a.inner_text(".pmm-kill-result"), 40), a.inner_text(".pmm-kill-result")
            assert _wait(lambda: _venue_open(stack) == 0, 10)
            assert _wait(lambda: "idle" in b.inner_text(".pmm-role"), 15), b.inner_text(".pmm-status")
            _go_live_and_start(b)
            assert _wait(lambda: "OWNER" in b.inner_text(".pmm-role"), 60), b.inner_text(".pmm-status")
            t0 = time.time()
            assert _wait(lambda: "ATTACHED" in a.inner_text(".pmm-role"), 5), a.inner_text(".pmm-status")
            print(f"A attached {time.time() - t0:.1f}s after B owned")
            assert "OWNER" not in a.inner_text(".pmm-role")
            assert _wait(lambda: a.inner_text(".pmm-kill-result").strip() == "", 5)  # the old KILLED banner is gone
            assert _wait(lambda: _venue_open(stack) > 0, 30)
            owner = _q(db, "SELECT owner FROM engine_lease")

            # 5: Voilà gets SIGTERM with live orders resting: all cancelled within 2 s, lease released
            t0 = time.time()
            stack["proc"].send_signal(signal.SIGTERM)
            assert _wait(lambda: _venue_open(stack) == 0, 2.0), f"open at the venue after {time.time() - t0:.1f}s"
            print(f"venue open orders 0 after {time.time() - t0:.2f}s")
            assert _wait(lambda: not _q(db, f"SELECT COUNT(*) FROM engine_lease WHERE owner = '{owner}' AND expires_at > "
                                            "strftime('%s','now')"), 5)
            stack["proc"].wait(timeout=30)
            assert _q(db, "SELECT COUNT(*) FROM orders WHERE status IN ('LIVE','PARTIAL','PENDING')") == 0
        finally:
            browser.close()


def test_5_bad_setting_shows_one_line_on_the_page(stack, tmp_path):
    from playwright.sync_api import sync_playwright

    env = dict(stack["env"], PMM_ALPHA="abc")
    proc, port, token, log = _start_voila(env, tmp_path / "bad.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/?token={token}", timeout=90_000)
                page.wait_for_selector(".pmm-fatal", timeout=60_000)
                text = page.inner_text(".pmm-fatal")
                assert "PMM_ALPHA" in text and "abc" in text and len(text.strip().splitlines()) == 1
                assert "Traceback" not in page.content() and not re.search(r"error when executing", page.content())
            finally:
                browser.close()
    finally:
        _stop(proc, log)
