"""Gamma over real HTTP: shapes, JSON types, filters, ordering, the legacy quirks and keyset paging."""

from __future__ import annotations

import json

import httpx
import pytest

from pmm_widgets.sandbox.server import Sandbox

pytestmark = pytest.mark.integration


async def test_legacy_list_shape_types_and_headers(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        r = await c.get("/markets", params={"limit": 50})
    assert r.status_code == 200
    assert r.headers["deprecation"] == "true"
    assert r.headers["sunset"] == "Fri, 01 May 2026 00:00:00 GMT"
    assert r.headers["warning"] == '299 - "use /markets/keyset"'
    body = r.json()
    assert isinstance(body, list) and body
    for o in body:
        assert isinstance(o["id"], str) and o["id"].isdigit()
        assert isinstance(o["clobTokenIds"], str) and len(json.loads(o["clobTokenIds"])) == 2
        assert json.loads(o["outcomes"]) == ["Yes", "No"]
        prices = json.loads(o["outcomePrices"])
        assert all(isinstance(p, str) and 0 <= float(p) <= 1 for p in prices)
        assert isinstance(o["liquidity"], str) and float(o["liquidity"]) == pytest.approx(o["liquidityNum"])
        assert isinstance(o["volume"], str)
        for k in ("liquidityNum", "volumeNum", "volume24hr", "orderPriceMinTickSize", "orderMinSize"):
            assert isinstance(o[k], (int, float)) and not isinstance(o[k], bool)
        for k in ("negRisk", "acceptingOrders", "active", "closed"):
            assert isinstance(o[k], bool)
        assert o["orderPriceMinTickSize"] in (0.01, 0.001)
        assert o["conditionId"].startswith("0x") and o["version"] == "v1"
        assert o["closed"] is False  # no `closed` filter means closed=false
        if o["acceptingOrders"]:
            assert isinstance(o["bestBid"], float) and isinstance(o["bestAsk"], float)
    assert any("enableOrderBook" not in o for o in body)  # a couple of markets leave the field out
    assert any(o["acceptingOrders"] is False for o in body)


async def test_closed_and_active_filters(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        closed = (await c.get("/markets", params={"closed": "true", "limit": 100})).json()
        open_ = (await c.get("/markets", params={"closed": "false", "active": "true", "limit": 100})).json()
        inactive = (await c.get("/markets", params={"active": "false", "limit": 100})).json()
    assert closed and all(o["closed"] for o in closed)
    assert len(closed) + len(open_) == len(sandbox.sim.markets)
    assert inactive == []


@pytest.mark.parametrize("key", ["liquidityNum", "volumeNum", "volume24hr"])
async def test_ordering(sandbox: Sandbox, key: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        desc = (await c.get("/markets", params={"order": key, "ascending": "false", "limit": 100})).json()
        asc = (await c.get("/markets", params={"order": key, "ascending": "true", "limit": 100})).json()
    assert [o[key] for o in desc] == sorted((o[key] for o in desc), reverse=True)
    assert [o[key] for o in asc] == sorted(o[key] for o in asc)


async def test_order_accepts_a_comma_list_and_limit_offset(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        full = (await c.get("/markets", params={"order": "liquidityNum,volumeNum", "ascending": "false", "limit": 100})).json()
        page = (await c.get("/markets", params={"order": "liquidityNum,volumeNum", "ascending": "false", "limit": 5, "offset": 5})).json()
    assert [o["id"] for o in page] == [o["id"] for o in full[5:10]]


async def test_deep_offset_is_422(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        r = await c.get("/markets", params={"offset": 2000, "limit": 10})
    assert r.status_code == 422
    assert r.json() == {"type": "validation error", "error": "offset too large, use /markets/keyset for deeper pagination"}


async def test_legacy_switch_off_gives_410(sandbox: Sandbox) -> None:
    sandbox.faults.legacy_markets_enabled = False
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        r = await c.get("/markets")
        k = await c.get("/markets/keyset")
    assert r.status_code == 410 and "error" in r.json()
    assert k.status_code == 200


async def test_keyset_paging_covers_every_market_once(sandbox: Sandbox) -> None:
    seen: list[str] = []
    pages = 0
    params = {"limit": 3, "order": "liquidityNum", "ascending": "false", "closed": "false"}
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        cursor = None
        while True:
            q = dict(params, **({"after_cursor": cursor} if cursor else {}))
            body = (await c.get("/markets/keyset", params=q)).json()
            assert set(body) <= {"markets", "next_cursor"}
            seen += [o["id"] for o in body["markets"]]
            pages += 1
            cursor = body.get("next_cursor")
            if not cursor:
                break
        # `cursor` (wrong name) is ignored: page 1 again
        first = (await c.get("/markets/keyset", params=dict(params, cursor="whatever"))).json()
    expected = [m.gamma_id for m in sandbox.sim.markets if not m.closed]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 3)
    assert [o["id"] for o in first["markets"]] == seen[:3]
    liq = [sandbox.sim.by_gamma_id[i].liquidity_num for i in seen]
    assert liq == sorted(liq, reverse=True)


async def test_keyset_rejects_offset_and_bad_cursor(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        r = await c.get("/markets/keyset", params={"offset": 10})
        b = await c.get("/markets/keyset", params={"after_cursor": "!!!"})
    assert r.status_code == 422 and "error" in r.json()
    assert b.status_code == 422


async def test_single_market_and_404(sandbox: Sandbox) -> None:
    m = sandbox.sim.markets[0]
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        r = await c.get(f"/markets/{m.gamma_id}")
        s = await c.get(f"/markets/slug/{m.slug}")
        missing = await c.get("/markets/1")
    assert r.status_code == 200 and r.json()["conditionId"] == m.condition_id
    assert s.json()["id"] == m.gamma_id
    assert missing.status_code == 404 and "error" in missing.json()
    assert json.loads(r.json()["clobTokenIds"]) == [m.yes_token_id, m.no_token_id]


async def test_gamma_markets_ground_truth_matches_http(sandbox: Sandbox) -> None:
    truth = {o["id"]: o for o in sandbox.sim.gamma_markets()}
    assert len(truth) == len(sandbox.sim.markets)
    async with httpx.AsyncClient(base_url=sandbox.gamma_url) as c:
        body = (await c.get("/markets", params={"limit": 100})).json()
    for o in body:
        assert o["clobTokenIds"] == truth[o["id"]]["clobTokenIds"]
        assert o["liquidityNum"] == truth[o["id"]]["liquidityNum"]
