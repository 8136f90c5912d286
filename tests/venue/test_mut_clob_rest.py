"""`venue.clob_rest.ClobPublic` against the sandbox's public CLOB REST: every call decodes what
the venue answers (compared with the raw body of the same route), `books`/`midpoints` split a
long token list into chunks of `chunk` and keep every token, and the client carries the shared
retry policy of `venue.http` (the market stream's book bootstrap relies on it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from pmm_widgets.sandbox.server import Sandbox
from pmm_widgets.venue.clob_rest import BOOKS_CHUNK, ClobPublic
from pmm_widgets.venue.http import JsonHttp

pytestmark = pytest.mark.integration


def _tokens(sb: Sandbox) -> list[str]:
    return [t for m in sb.sim.markets if m.has_book for t in (m.yes_token_id, m.no_token_id)]


async def test_each_public_call_decodes_the_venues_answer(sandbox: Sandbox) -> None:
    sandbox.paused = True  # books and the tape stand still between our call and the raw one
    for _ in range(600):  # some flow, so that one token has a last trade and others none
        if any(sandbox.sim.last_trade(t)[1] for t in _tokens(sandbox)):
            break
        sandbox.sim.step()
    traded = [t for t in _tokens(sandbox) if sandbox.sim.last_trade(t)[1]]
    never = [t for t in _tokens(sandbox) if not sandbox.sim.last_trade(t)[1]]
    assert traded and never
    toks = [traded[0], *never[:4]]
    rest = ClobPublic(sandbox.clob_url)
    try:
        async with httpx.AsyncClient(base_url=sandbox.clob_url) as raw:
            async def get(path: str, **params: str) -> Any:
                return (await raw.get(path, params=params)).json()

            assert await rest.book(toks[0]) == sandbox.sim.book_snapshot(toks[0])

            books = await rest.books(toks, chunk=2)  # 2 + 2 + 1: every chunk is asked and kept
            assert [b["asset_id"] for b in books] == toks
            assert books == [sandbox.sim.book_snapshot(t) for t in toks]
            assert rest.http.requests == 1 + 3

            mid = await rest.midpoint(toks[0])
            assert isinstance(mid, Decimal) and mid == Decimal((await get("/midpoint", token_id=toks[0]))["mid"])
            mids = await rest.midpoints(toks, chunk=2)
            assert mids == {t: Decimal((await get("/midpoint", token_id=t))["mid"]) for t in toks}
            assert all(isinstance(v, Decimal) for v in mids.values())

            m = next(x for x in sandbox.sim.markets if x.has_book)
            tick = await rest.tick_size(m.no_token_id)
            assert isinstance(tick, Decimal) and tick == m.tick_size

            for t in toks:
                body = await get("/last-trade-price", token_id=t)
                price, side = await rest.last_trade_price(t)
                assert side == body["side"]
                assert price == (None if body["price"] in (None, "") else Decimal(body["price"]))
            price, side = await rest.last_trade_price(traded[0])
            assert (str(price), side) == sandbox.sim.last_trade(traded[0]) and side in ("BUY", "SELL")
            assert (await rest.last_trade_price(never[0]))[1] == ""  # no taker side before a trade

            info = await rest.market(m.condition_id)
            assert info.condition_id == m.condition_id and not info.closed
            assert {t.token_id for t in info.tokens} == {m.yes_token_id, m.no_token_id}

            now = await rest.server_time()
            assert isinstance(now, int) and abs(now - int(await get("/time"))) <= 1
    finally:
        await rest.aclose()
    assert rest.http._client.is_closed


async def test_the_default_chunk_splits_a_long_list(sandbox: Sandbox) -> None:
    sandbox.paused = True
    toks = _tokens(sandbox)
    assert len(toks) > BOOKS_CHUNK  # 80 markets: more tokens than one POST carries
    rest = ClobPublic(sandbox.clob_url)
    try:
        books = await rest.books(toks)
        assert [b["asset_id"] for b in books] == toks
        assert rest.http.requests == -(-len(toks) // BOOKS_CHUNK)
        assert set(await rest.midpoints(toks)) == set(toks)
    finally:
        await rest.aclose()


def test_the_client_carries_the_shared_retry_policy() -> None:
    rest, shared = ClobPublic("http://127.0.0.1:9/"), JsonHttp("http://127.0.0.1:9/")
    assert (rest.http.retries, rest.http.timeout, rest.http.deadline, rest.http.retry_after_max) == (
        shared.retries, shared.timeout, shared.deadline, shared.retry_after_max)
    assert shared.retries > 0  # the book bootstrap retries a transient failure
    mine = JsonHttp("http://127.0.0.1:9")
    assert ClobPublic("http://x", http=mine).http is mine  # a given client is used as is
