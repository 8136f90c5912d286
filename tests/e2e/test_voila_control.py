"""The operator app in a real browser: Voilà + Playwright + Debian chromium, embedded sandbox.

One scenario, in order, because each step needs the previous one's engine: page loads and
quotes; values tick about once a second; the α slider widens our quotes; a second tab attaches
(the lease owner does not change); KILL in the attached tab reaches the owner through the
commands table and leaves zero open orders, and nothing restarts. Screenshots go to artifacts/.
"""

from __future__ import annotations

import os
import statistics

import pytest
import sqlalchemy as sa
from voila_helpers import (
    ARTIFACTS,
    BROWSER_ARGS,
    CHROMIUM,
    clean_env,
    start_voila,
    stop_voila,
    wait,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def voila_app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("voila")
    db_url = f"sqlite:///{tmp / 'e2e.db'}"
    env = clean_env(PMM_VENUE="sandbox", PMM_DB_URL=db_url, PMM_QUOTE_REFRESH_SEC="0.5",
                    PMM_DASHBOARD_REFRESH_SEC="1.0", PMM_SANDBOX_SPEED="5", PMM_UNIVERSE_SIZE="8",
                    PMM_SANDBOX_MARKETS="20", PMM_LEASE_TTL_SEC="5")
    proc, port, token, log = start_voila(env, tmp / "voila.log")
    db = sa.create_engine(db_url)
    yield f"http://127.0.0.1:{port}/?token={token}", db
    stop_voila(proc, log)
    db.dispose()


def _scalar(db, sql: str):
    with db.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


def _quote_widths(page) -> list[float]:
    """ask − bid of our YES quotes, from the universe table."""
    widths = []
    for row in page.query_selector_all(".pmm-table tr[data-cid]"):
        cells = [c.inner_text() for c in row.query_selector_all("td")]
        try:
            widths.append(float(cells[5]) - float(cells[4]))
        except ValueError:
            pass
    return widths


def _median_width(page) -> float | None:
    """Median of our positive YES quote widths, None while fewer than 3 rows show quotes (the
    table re-renders every refresh, so a read can fall between two renders)."""
    ws = [w for w in _quote_widths(page) if w > 0]
    return statistics.median(ws) if len(ws) >= 3 else None


_wait = wait


def test_operator_app_end_to_end(voila_app):
    from playwright.sync_api import sync_playwright

    url, db = voila_app
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(url, timeout=90_000)
            page.wait_for_selector(".pmm-table tr[data-cid]", timeout=90_000)
            page.wait_for_selector(".pmm-plot canvas", timeout=30_000)
            assert "OWNER" in page.inner_text(".pmm-role")
            owner = _scalar(db, "SELECT owner FROM engine_lease")
            assert owner

            # values change about once a second
            t0 = int(page.inner_text(".pmm-tick"))
            page.wait_for_timeout(3000)
            assert int(page.inner_text(".pmm-tick")) > t0
            seen: list[float] = []
            assert _wait(lambda: (m := _median_width(page)) is not None and not seen.append(m), 30)
            before = seen[-1]
            page.screenshot(path=str(ARTIFACTS / "e2e_control_1_quoting.png"), full_page=True)

            # α slider (typed into its readout) → params → wider quotes
            readout = page.locator(".pmm-alpha .widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("5")
            page.keyboard.press("Enter")
            assert _wait(lambda: page.inner_text(".pmm-alpha-value").startswith("5"), 15)
            assert _wait(lambda: (_median_width(page) or 0.0) > before * 1.5, 30), \
                (before, _quote_widths(page))

            # a second tab attaches: same lease owner, no second engine
            tab2 = browser.new_page(viewport={"width": 1400, "height": 1600})
            tab2.goto(url, timeout=90_000)
            tab2.wait_for_selector(".pmm-table tr[data-cid]", timeout=90_000)
            assert _wait(lambda: "ATTACHED" in tab2.inner_text(".pmm-role"), 20)
            assert _scalar(db, "SELECT owner FROM engine_lease") == owner
            assert tab2.inner_text(".pmm-alpha-value").startswith("5")  # the owner's params, mirrored

            # KILL from the attached tab: the owner applies it, cancels all, verifies, stops
            tab2.click(".pmm-kill button, button.pmm-kill")
            assert _wait(lambda: "KILLED" in tab2.inner_text(".pmm-kill-result"), 30), tab2.inner_text(".pmm-kill-result")
            assert tab2.inner_text(".pmm-kill-open") == "0"
            assert _wait(lambda: _scalar(db, "SELECT COUNT(*) FROM orders WHERE status IN "
                                             "('PENDING','LIVE','PARTIAL')") == 0, 15)
            assert _scalar(db, "SELECT COUNT(*) FROM orders") > 0
            assert _wait(lambda: "stopped" in page.inner_text(".pmm-status"), 15)
            # the attached tab shows the end too: no engine, no quotes left in the table
            assert _wait(lambda: "stopped" in tab2.inner_text(".pmm-status"), 15), tab2.inner_text(".pmm-status")
            assert _wait(lambda: "killed" in tab2.inner_text(".pmm-table"), 20), tab2.inner_text(".pmm-table")[:500]
            assert _quote_widths(tab2) == []
            page.screenshot(path=str(ARTIFACTS / "e2e_control_2_killed.png"), full_page=True)
            tab2.screenshot(path=str(ARTIFACTS / "e2e_control_3_attached_tab.png"), full_page=True)
            # nothing takes over after a kill
            n_orders = _scalar(db, "SELECT COUNT(*) FROM orders")
            page.wait_for_timeout(3000)
            assert _scalar(db, "SELECT COUNT(*) FROM orders") == n_orders
            assert _scalar(db, "SELECT COUNT(*) FROM orders WHERE status IN ('PENDING','LIVE','PARTIAL')") == 0
        finally:
            browser.close()
