"""Public (unauthenticated) CLOB REST: books, midpoints, tick size, last trade, server time.

Why a thin typed wrapper: the book bootstrap / resync path of the market stream and a few
one-off checks need these calls with the shared retry policy of `venue.http`, and with the wire
quirks handled once (the tick size is a JSON number, `/time` is a bare integer, `side` of the last
trade is "" before any trade, a batch has a size cap).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from ..ticks import to_decimal
from .http import DEFAULT_DEADLINE_SEC, MAX_RETRY_AFTER_SEC, JsonHttp
from .wire import ClobMarket, convert

BOOKS_CHUNK = 100  # tokens per POST /books (the venue's batch cap is unconfirmed; stay well under)


def _chunks(items: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class ClobPublic:
    def __init__(self, base_url: str, timeout: float = 10.0, *, http: JsonHttp | None = None,
                 retries: int = 4, deadline: float = DEFAULT_DEADLINE_SEC,
                 retry_after_max: float = MAX_RETRY_AFTER_SEC) -> None:
        self.http = http or JsonHttp(base_url, timeout=timeout, retries=retries, deadline=deadline,
                                     retry_after_max=retry_after_max)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def book(self, token_id: str) -> dict[str, Any]:
        """The GET /book body (bids ascending, asks descending: best last)."""
        body: dict[str, Any] = await self.http.get("/book", {"token_id": token_id})
        return body

    async def market(self, condition_id: str) -> ClobMarket:
        """The CLOB market object (GET /markets/{condition_id}), decoded: `closed`, `tokens[].winner`.
        WireError (naming the field) when the answer does not have that shape."""
        return convert(await self.http.get(f"/markets/{condition_id}"), ClobMarket, "CLOB market")

    async def books(self, token_ids: Sequence[str], chunk: int = BOOKS_CHUNK) -> list[dict[str, Any]]:
        """Books of many tokens through POST /books in chunks; tokens without a book are absent."""
        out: list[dict[str, Any]] = []
        for part in _chunks(list(token_ids), chunk):
            body = await self.http.post("/books", [{"token_id": t} for t in part])
            if isinstance(body, list):
                out.extend(b for b in body if isinstance(b, dict))
        return out

    async def midpoint(self, token_id: str) -> Decimal | None:
        body = await self.http.get("/midpoint", {"token_id": token_id})
        mid = body.get("mid") if isinstance(body, dict) else None
        return None if mid in (None, "") else to_decimal(mid)

    async def midpoints(self, token_ids: Sequence[str], chunk: int = BOOKS_CHUNK) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for part in _chunks(list(token_ids), chunk):
            body = await self.http.post("/midpoints", [{"token_id": t} for t in part])
            if isinstance(body, dict):
                out.update({k: to_decimal(v) for k, v in body.items() if v not in (None, "")})
        return out

    async def tick_size(self, token_id: str) -> Decimal:
        body = await self.http.get("/tick-size", {"token_id": token_id})
        return to_decimal(body["minimum_tick_size"])

    async def last_trade_price(self, token_id: str) -> tuple[Decimal | None, str]:
        """(price, taker side). Before the first trade the side is "" and the venue still answers
        a price (the sandbox, as the reference's `/last-trade-price`: "0.5"); None only when the
        answer has no price."""
        body = await self.http.get("/last-trade-price", {"token_id": token_id})
        price = body.get("price") if isinstance(body, dict) else None
        side = str(body.get("side") or "") if isinstance(body, dict) else ""
        return (None if price in (None, "") else to_decimal(price)), side

    async def server_time(self) -> int:
        """Epoch seconds (the venue answers a bare integer)."""
        body = await self.http.get("/time")
        return int(body)
