"""Public CLOB REST routes of the sandbox (no auth), with the real shapes and error bodies.

Why separate from the server wiring: these handlers only read the simulator, so they stay small
and testable, and the trading half adds its authenticated routes to the same app without
touching them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .simulator import Simulator

NO_BOOK = "No orderbook exists for the requested token id"
BATCH_LIMIT = 500
INTERVAL_SEC = {"1m": 60, "1h": 3600, "6h": 6 * 3600, "1d": 86400, "1w": 7 * 86400, "max": None}


PUSD_ADDRESS = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _dec(x: Decimal) -> str:
    s = format(x.normalize(), "f")
    return s


class ClobPublicRoutes:
    def __init__(self, sim: Simulator):
        self.sim = sim

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/book", self.book)
        r.add_post("/books", self.books)
        r.add_get("/midpoint", self.midpoint)
        r.add_post("/midpoints", self.midpoints)
        r.add_get("/price", self.price)
        r.add_post("/prices", self.prices)
        r.add_get("/spread", self.spread)
        r.add_post("/spreads", self.spreads)
        r.add_get("/tick-size", self.tick_size)
        r.add_get("/neg-risk", self.neg_risk)
        r.add_get("/fee-rate", self.fee_rate)
        r.add_get("/last-trade-price", self.last_trade_price)
        r.add_post("/last-trades-prices", self.last_trades_prices)
        r.add_get("/prices-history", self.prices_history)
        r.add_get("/time", self.server_time)
        r.add_get("/ok", self.ok)
        r.add_get("/", self.ok)
        r.add_get("/version", self.version)
        r.add_get("/markets/{condition_id}", self.market)
        r.add_get("/clob-markets/{condition_id}", self.clob_market)
        r.add_get("/markets-by-token/{token_id}", self.market_by_token)

    # ------------------------------------------------------------------ helpers
    def _lookup(self, token_id: str | None) -> web.Response | str:
        """The token id if it has a live book, else the real error response."""
        if not token_id or not token_id.isdigit():
            return error(400, "Invalid token id")
        t = self.sim.token(token_id)
        if t is None or not t[0].has_book:
            return error(404, NO_BOOK)
        return token_id

    async def _batch(self, request: web.Request) -> list[dict[str, Any]] | web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return error(400, "Invalid payload")
        if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
            return error(400, "Invalid payload")
        if len(body) > BATCH_LIMIT:
            return error(400, "Payload exceeds the limit")
        return body

    def _mid(self, tok: str) -> str | None:
        mid = self.sim.mid(tok)
        return None if mid is None else _dec(mid)

    def _price(self, tok: str, side: str) -> str | None:
        bb, ba = self.sim.best(tok)
        p = bb if side == "BUY" else ba
        return None if p is None else _dec(p)

    def _spread(self, tok: str) -> str | None:
        bb, ba = self.sim.best(tok)
        return None if bb is None or ba is None else _dec(ba - bb)

    # ------------------------------------------------------------------ single-token GETs
    async def book(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        return web.json_response(self.sim.book_snapshot(tok))

    async def midpoint(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        mid = self._mid(tok)
        return error(404, NO_BOOK) if mid is None else web.json_response({"mid": mid})

    async def price(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        side = (request.query.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            return error(400, "Invalid side")
        p = self._price(tok, side)
        return error(404, NO_BOOK) if p is None else web.json_response({"price": p})

    async def spread(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        s = self._spread(tok)
        return error(404, NO_BOOK) if s is None else web.json_response({"spread": s})

    async def tick_size(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        return web.json_response({"minimum_tick_size": float(self.sim.tick_size(tok))})

    async def neg_risk(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        t = self.sim.token(tok)
        if t is None:
            return error(404, NO_BOOK)
        return web.json_response({"neg_risk": t[0].neg_risk})

    async def fee_rate(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        return web.json_response({"base_fee": 0})

    async def last_trade_price(self, request: web.Request) -> web.Response:
        tok = self._lookup(request.query.get("token_id"))
        if isinstance(tok, web.Response):
            return tok
        price, side = self.sim.last_trade(tok)
        # the real server's placeholder for a token that never traded: price "0.5", side ""
        return web.json_response({"price": price or "0.5", "side": side})

    async def prices_history(self, request: web.Request) -> web.Response:
        q = request.query
        tok = q.get("market")
        if not tok or not tok.isdigit():
            return error(400, "Invalid market")
        t = self.sim.token(tok)
        if t is None or t[0].closed:  # closed markets return no history upstream
            return web.json_response({"history": []})
        now = self.sim.now()
        try:
            start = float(q["startTs"]) if "startTs" in q else None
            end = float(q["endTs"]) if "endTs" in q else None
            fidelity = int(q.get("fidelity", 1))
        except ValueError:
            return error(400, "Invalid filters")
        interval = q.get("interval")
        if interval is not None:
            if interval not in INTERVAL_SEC:
                return error(400, f"Invalid interval: {interval}")
            span = INTERVAL_SEC[interval]
            start, end = (None if span is None else now - span), None
        pts = self.sim.price_history(tok, start, end)
        if fidelity > 1:
            step, kept, last = fidelity * 60, [], None
            for p in pts:
                if last is None or p["t"] - last >= step:
                    kept.append(p)
                    last = p["t"]
            pts = kept
        return web.json_response({"history": pts})

    # ------------------------------------------------------------------ batches
    async def books(self, request: web.Request) -> web.Response:
        body = await self._batch(request)
        if isinstance(body, web.Response):
            return body
        out = []
        for item in body:
            tok = str(item.get("token_id", ""))
            if not tok.isdigit():
                return error(400, "Invalid token id")
            snap = self.sim.book_snapshot(tok)
            if snap is not None:
                out.append(snap)
        return web.json_response(out)

    async def midpoints(self, request: web.Request) -> web.Response:
        body = await self._batch(request)
        if isinstance(body, web.Response):
            return body
        out: dict[str, Any] = {}
        for item in body:
            tok = str(item.get("token_id", ""))
            if self.sim.book_snapshot(tok) is not None and (mid := self._mid(tok)) is not None:
                out[tok] = mid
        return web.json_response(out)

    async def prices(self, request: web.Request) -> web.Response:
        body = await self._batch(request)
        if isinstance(body, web.Response):
            return body
        out: dict[str, dict[str, str]] = {}
        for item in body:
            tok, side = str(item.get("token_id", "")), str(item.get("side", "")).upper()
            if side not in ("BUY", "SELL"):
                return error(400, "Invalid side")
            t = self.sim.token(tok)
            if t is not None and t[0].has_book and (p := self._price(tok, side)) is not None:
                out.setdefault(tok, {})[side] = p
        return web.json_response(out)

    async def spreads(self, request: web.Request) -> web.Response:
        body = await self._batch(request)
        if isinstance(body, web.Response):
            return body
        out: dict[str, str] = {}
        for item in body:
            tok = str(item.get("token_id", ""))
            t = self.sim.token(tok)
            if t is not None and t[0].has_book and (s := self._spread(tok)) is not None:
                out[tok] = s
        return web.json_response(out)

    async def last_trades_prices(self, request: web.Request) -> web.Response:
        body = await self._batch(request)
        if isinstance(body, web.Response):
            return body
        out = []
        for item in body:
            tok = str(item.get("token_id", ""))
            t = self.sim.token(tok)
            if t is not None and t[0].has_book:
                price, side = self.sim.last_trade(tok)
                if side:  # never-traded tokens are left out of the batch answer
                    out.append({"price": price, "side": side, "token_id": tok})
        return web.json_response(out)

    # ------------------------------------------------------------------ misc
    async def server_time(self, request: web.Request) -> web.Response:
        return web.json_response(int(self.sim.now()))

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response("OK")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": 2})

    async def market(self, request: web.Request) -> web.Response:
        m = self.sim.by_condition.get(request.match_info["condition_id"])
        if m is None:
            return error(404, "market not found")
        mid = self.sim.mid(m.yes_token_id) if m.has_book else None
        yes_p = float(mid) if mid is not None else round(m.fair, 4)
        if m.resolved:
            yes_p = 1.0 if m.winner_yes else 0.0
        return web.json_response({
            "enable_order_book": m.has_enable_order_book,
            "active": True,
            "closed": m.closed,
            "archived": False,
            "accepting_orders": m.accepting_orders,
            "minimum_order_size": int(m.min_order_size),
            "minimum_tick_size": float(m.tick_size),
            "condition_id": m.condition_id,
            "question_id": "0x" + m.condition_id[2:][::-1],
            "question": m.question,
            "description": "",
            "market_slug": m.slug,
            "end_date_iso": m.end_date,
            "neg_risk": m.neg_risk,
            "neg_risk_market_id": "" if m.event_id is None else "0x" + format(int(m.event_id), "064x"),
            "neg_risk_request_id": "",
            "maker_base_fee": 1000,
            "taker_base_fee": 1000,
            "rewards": {"rates": [{"asset_address": PUSD_ADDRESS, "rewards_daily_rate": float(m.program.daily_rate)}]
                        if m.program.active else None,
                        "min_size": float(m.program.min_size) if m.program.active else 0,
                        "max_spread": float(m.program.max_spread_c) if m.program.active else 0},
            "is_50_50_outcome": False,
            "tokens": [
                {"token_id": m.yes_token_id, "outcome": "Yes", "price": yes_p, "winner": m.winner_yes is True},
                {"token_id": m.no_token_id, "outcome": "No", "price": round(1 - yes_p, 4),
                 "winner": m.winner_yes is False},
            ],
        })

    async def clob_market(self, request: web.Request) -> web.Response:
        m = self.sim.by_condition.get(request.match_info["condition_id"])
        if m is None:
            return error(404, "market not found")
        body = {
            "c": m.condition_id,
            "t": [{"t": m.yes_token_id, "o": "Yes"}, {"t": m.no_token_id, "o": "No"}],
            "mts": float(m.tick_size), "mos": int(m.min_order_size), "nr": m.neg_risk,
            "mbf": 1000, "tbf": 1000,
        }
        if m.fees_enabled:
            body["fd"] = m.fee.as_fd()
        return web.json_response(body)

    async def market_by_token(self, request: web.Request) -> web.Response:
        t = self.sim.token(request.match_info["token_id"])
        if t is None:
            return error(404, "market not found")
        m, _ = t
        return web.json_response({"condition_id": m.condition_id, "primary_token_id": m.yes_token_id,
                                  "secondary_token_id": m.no_token_id})
