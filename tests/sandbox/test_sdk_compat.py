"""The real SDK (py-clob-client-v2, public L0 calls) parses every sandbox answer it reads."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from py_clob_client_v2 import BookParams, ClobClient
from py_clob_client_v2.clob_types import OrderBookSummary, OrderSummary
from py_clob_client_v2.exceptions import PolyApiException
from py_clob_client_v2.utilities import generate_orderbook_summary_hash
from sandbox_helpers import book_tokens

from pmm_widgets.sandbox.server import Sandbox

pytestmark = pytest.mark.integration


def _sdk_session(clob_url: str, tok: str, cid: str, unknown: str) -> dict:
    c = ClobClient(clob_url, chain_id=137)
    book = c.get_order_book(tok)
    summary = OrderBookSummary(**{**book, "bids": [OrderSummary(**x) for x in book["bids"]],
                                  "asks": [OrderSummary(**x) for x in book["asks"]]})
    out = {
        "book": book,
        "book_hash": generate_orderbook_summary_hash(summary),
        "books": c.get_order_books([BookParams(token_id=tok)]),
        "mid": c.get_midpoint(tok),
        "mids": c.get_midpoints([BookParams(token_id=tok)]),
        "price": c.get_price(tok, "BUY"),
        "spread": c.get_spread(tok),
        "tick": c.get_tick_size(tok),
        "neg_risk": c.get_neg_risk(tok),
        "last": c.get_last_trade_price(tok),
        "time": c.get_server_time(),
        "ok": c.get_ok(),
        "version": c.get_version(),
        "fee": c.get_fee_rate_bps(tok),
        "info": c.get_clob_market_info(cid),
    }
    try:
        c.get_order_book(unknown)
    except PolyApiException as exc:
        out["error"] = exc
    return out


async def test_sdk_reads_the_sandbox(sandbox: Sandbox) -> None:
    sandbox.paused = True  # the SDK's hash check needs the book to stand still
    tok = book_tokens(sandbox)[1]
    m = sandbox.sim.by_token[tok][0]
    r = await asyncio.to_thread(_sdk_session, sandbox.clob_url, tok, m.condition_id, "9" * 77)
    book = r["book"]
    assert book["asset_id"] == tok and book["hash"] == r["book_hash"]  # the SDK's own hash rule agrees
    assert len(r["books"]) == 1
    assert Decimal(r["mid"]["mid"]) == sandbox.sim.mid(tok)
    assert Decimal(r["price"]["price"]) == sandbox.sim.best(tok)[0]
    assert Decimal(r["tick"]) == sandbox.sim.tick_size(tok)
    assert r["neg_risk"] is m.neg_risk
    assert r["version"] == 2 and r["fee"] == 0
    assert isinstance(r["time"], int)
    assert r["info"]
    assert r["error"].status_code == 404
