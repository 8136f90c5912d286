"""Public CLOB REST over real HTTP: every route, its exact shape, and the error bodies."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest
from sandbox_helpers import book_tokens

from pmm_widgets.sandbox.server import Sandbox

pytestmark = pytest.mark.integration

UNKNOWN = "1" * 77


@pytest.fixture
async def clob(sandbox: Sandbox):
    async with httpx.AsyncClient(base_url=sandbox.clob_url) as c:
        yield c


def _closed_token(sb: Sandbox) -> str:
    return next(m.yes_token_id for m in sb.sim.markets if m.closed)


async def test_book_shape_and_order(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    sandbox.paused = True
    tok = book_tokens(sandbox)[0]
    r = await clob.get("/book", params={"token_id": tok})
    assert r.status_code == 200
    b = r.json()
    assert list(b) == ["market", "asset_id", "timestamp", "hash", "bids", "asks", "min_order_size",
                       "tick_size", "neg_risk", "last_trade_price"]
    assert b["asset_id"] == tok and b["market"].startswith("0x")
    assert isinstance(b["timestamp"], str) and len(b["timestamp"]) == 13
    assert len(b["hash"]) == 40 and int(b["hash"], 16) >= 0
    bids = [Decimal(x["price"]) for x in b["bids"]]
    asks = [Decimal(x["price"]) for x in b["asks"]]
    assert bids == sorted(bids) and asks == sorted(asks, reverse=True)  # best last
    assert all(isinstance(x["size"], str) for x in b["bids"] + b["asks"])
    assert isinstance(b["neg_risk"], bool) and isinstance(b["tick_size"], str)
    assert b == sandbox.sim.book_snapshot(tok)  # the ground truth is exactly what is served


@pytest.mark.parametrize("path", ["/book", "/midpoint", "/spread", "/tick-size", "/neg-risk", "/last-trade-price"])
async def test_token_errors(sandbox: Sandbox, clob: httpx.AsyncClient, path: str) -> None:
    bad = await clob.get(path, params={"token_id": "not-a-token"})
    missing = await clob.get(path)
    unknown = await clob.get(path, params={"token_id": UNKNOWN})
    closed = await clob.get(path, params={"token_id": _closed_token(sandbox)})
    assert bad.status_code == 400 and bad.json() == {"error": "Invalid token id"}
    assert missing.status_code == 400 and missing.json() == {"error": "Invalid token id"}
    for r in (unknown, closed):
        assert r.status_code == 404
        assert r.json() == {"error": "No orderbook exists for the requested token id"}


async def test_books_batch(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    toks = book_tokens(sandbox)[:4]
    r = await clob.post("/books", json=[{"token_id": t} for t in toks])
    assert r.status_code == 200 and [b["asset_id"] for b in r.json()] == toks
    bad = await clob.post("/books", content=b"{nope")
    big = await clob.post("/books", json=[{"token_id": toks[0]}] * 501)
    assert bad.status_code == 400 and "error" in bad.json()
    assert big.status_code == 400 and big.json() == {"error": "Payload exceeds the limit"}


async def test_prices_mid_spread(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    sandbox.paused = True
    tok = book_tokens(sandbox)[0]
    bid = (await clob.get("/price", params={"token_id": tok, "side": "BUY"})).json()
    ask = (await clob.get("/price", params={"token_id": tok, "side": "SELL"})).json()
    mid = (await clob.get("/midpoint", params={"token_id": tok})).json()
    spread = (await clob.get("/spread", params={"token_id": tok})).json()
    b, a = Decimal(bid["price"]), Decimal(ask["price"])
    assert b < a
    assert Decimal(mid["mid"]) == (a + b) / 2
    assert Decimal(spread["spread"]) == a - b
    assert (await clob.get("/price", params={"token_id": tok, "side": "UP"})).status_code == 400
    toks = book_tokens(sandbox)[:3]
    mids = (await clob.post("/midpoints", json=[{"token_id": t} for t in toks])).json()
    assert set(mids) == set(toks) and all(isinstance(v, str) for v in mids.values())
    prices = (await clob.post("/prices", json=[{"token_id": t, "side": s} for t in toks for s in ("BUY", "SELL")])).json()
    assert set(prices) == set(toks) and all(set(v) == {"BUY", "SELL"} for v in prices.values())
    spreads = (await clob.post("/spreads", json=[{"token_id": t} for t in toks])).json()
    assert set(spreads) == set(toks)


async def test_tick_size_neg_risk_fee_rate(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    m = next(x for x in sandbox.sim.markets if x.has_book)
    ts = (await clob.get("/tick-size", params={"token_id": m.no_token_id})).json()
    nr = (await clob.get("/neg-risk", params={"token_id": m.yes_token_id})).json()
    fee = (await clob.get("/fee-rate", params={"token_id": m.yes_token_id})).json()
    assert ts == {"minimum_tick_size": float(m.tick_size)} and isinstance(ts["minimum_tick_size"], float)
    assert nr == {"neg_risk": m.neg_risk}
    assert fee == {"base_fee": 0}


async def test_last_trade_price(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    sandbox.paused = True  # the tape must not move between the calls and the ground truth
    toks = book_tokens(sandbox)
    body = (await clob.get("/last-trade-price", params={"token_id": toks[0]})).json()
    assert set(body) == {"price", "side"} and body["side"] in ("", "BUY", "SELL")
    many = (await clob.post("/last-trades-prices", json=[{"token_id": t} for t in toks])).json()
    traded = [t for t in toks if sandbox.sim.last_trade(t)[1]]
    assert {x["token_id"] for x in many} == set(traded)  # never-traded tokens are omitted
    assert all(x["side"] in ("BUY", "SELL") for x in many)
    never = next((t for t in toks if not sandbox.sim.last_trade(t)[1]), None)
    if never is not None:
        assert (await clob.get("/last-trade-price", params={"token_id": never})).json() == {"price": "0.5", "side": ""}


async def test_prices_history(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    tok = book_tokens(sandbox)[0]
    h = (await clob.get("/prices-history", params={"market": tok, "interval": "max"})).json()
    assert set(h) == {"history"} and h["history"]
    pt = h["history"][0]
    assert isinstance(pt["t"], int) and isinstance(pt["p"], float)
    rng = (await clob.get("/prices-history", params={"market": tok, "startTs": 0, "endTs": 1, "fidelity": 5})).json()
    assert rng == {"history": []}
    bad = await clob.get("/prices-history", params={"market": tok, "interval": "2y"})
    assert bad.status_code == 400 and "error" in bad.json()
    assert (await clob.get("/prices-history")).status_code == 400


async def test_time_ok_version(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    t = (await clob.get("/time")).json()
    assert isinstance(t, int) and abs(t - sandbox.sim.now()) < 5
    assert (await clob.get("/ok")).status_code == 200
    assert (await clob.get("/version")).json() == {"version": 2}


async def test_clob_market_objects(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    m = next(x for x in sandbox.sim.markets if x.has_book)
    r = (await clob.get(f"/markets/{m.condition_id}")).json()
    assert r["condition_id"] == m.condition_id
    assert [t["token_id"] for t in r["tokens"]] == [m.yes_token_id, m.no_token_id]
    assert r["minimum_tick_size"] == float(m.tick_size) and r["minimum_order_size"] == int(m.min_order_size)
    compact = (await clob.get(f"/clob-markets/{m.condition_id}")).json()
    assert compact["t"][0] == {"t": m.yes_token_id, "o": "Yes"} and compact["nr"] == m.neg_risk
    by_tok = (await clob.get(f"/markets-by-token/{m.no_token_id}")).json()
    assert by_tok["condition_id"] == m.condition_id
    assert (await clob.get("/markets/0xdead")).status_code == 404


async def test_admin_ground_truth(sandbox: Sandbox, clob: httpx.AsyncClient) -> None:
    tok = book_tokens(sandbox)[0]
    st = (await clob.get("/_sandbox/state")).json()
    assert len(st["markets"]) == len(sandbox.sim.markets) and "faults" in st
    b = (await clob.get("/_sandbox/book", params={"token_id": tok})).json()
    assert 0 < b["fair"] < 1 and b["asset_id"] == tok
    assert (await clob.get("/_sandbox/book", params={"token_id": UNKNOWN})).status_code == 404
    t0 = time.time()
    while not sandbox.sim.public_trades() and time.time() - t0 < 10:
        await clob.get("/ok")
    trades = (await clob.get("/_sandbox/trades", params={"since": 0})).json()
    assert trades and trades[0]["event_type"] == "last_trade_price"
