"""Gamma API stand-in: market objects with the real field names and JSON types, and the
`/markets`, `/markets/keyset`, `/markets/{id}` routes with their upstream quirks.

Why the quirks are reproduced on purpose: clients must survive the real service, so the legacy
list answers with its deprecation headers and refuses deep offsets with the real 422 body, the
list-valued fields are JSON *strings*, `liquidity` is text while `liquidityNum` is a number, and
the legacy endpoint can be switched off (410) as upstream has announced.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .faults import Faults
    from .simulator import SimMarket, Simulator

LEGACY_MAX_OFFSET = 2000
DEFAULT_LIMIT = 20
LEGACY_MAX_LIMIT = 500
KEYSET_MAX_LIMIT = 1000
SORTABLE = ("liquidityNum", "volumeNum", "volume24hr", "liquidity", "volume", "id", "endDate", "startDate")
PUSD_ADDRESS = "0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB"
FEE_TYPES = {300: "sports_fees", 400: "politics_fees", 500: "economics_fees", 700: "crypto_fees_v2"}
DEPRECATION_HEADERS = {
    "deprecation": "true",
    "sunset": "Fri, 01 May 2026 00:00:00 GMT",
    "warning": '299 - "use /markets/keyset"',
}


def gamma_object(sim: Simulator, m: SimMarket) -> dict[str, Any]:
    """One Gamma market object, built from the simulator's current state."""
    bb, ba = (m.best_bid_mil, m.best_ask_mil) if m.has_book else (None, None)
    mid = (bb + ba) / 2000 if bb is not None and ba is not None else round(m.fair, 4)
    yes_p = round(mid, 4)
    volume = m.volume_base + m.volume_traded
    obj: dict[str, Any] = {
        "id": m.gamma_id,
        "question": m.question,
        "conditionId": m.condition_id,
        "slug": m.slug,
        "description": f'Simulated market. Resolves to "Yes" if the question comes true by {m.end_date[:10]}, '
                       'otherwise "No".',
        "endDate": m.end_date,
        "endDateIso": m.end_date[:10],
        "startDate": m.created_at,
        "createdAt": m.created_at,
        "updatedAt": m.created_at,
        "liquidity": repr(m.liquidity_num),
        "volume": repr(volume),
        "outcomes": json.dumps(["Yes", "No"]),
        "outcomePrices": json.dumps(["1", "0"] if m.winner_yes else ["0", "1"]) if m.resolved
        else json.dumps([_fmt(yes_p), _fmt(round(1 - yes_p, 4))]),
        "active": True,
        "closed": m.closed,
        "archived": False,
        "restricted": True,
        "acceptingOrders": m.accepting_orders,
        "orderPriceMinTickSize": float(m.tick_size),
        "orderMinSize": int(m.min_order_size),
        "volumeNum": volume,
        "liquidityNum": m.liquidity_num,
        "liquidityClob": m.liquidity_num,
        "volumeClob": volume,
        "volume24hr": round(sim.volume_24h(m), 6),
        "clobTokenIds": json.dumps([m.yes_token_id, m.no_token_id]),
        "negRisk": m.neg_risk,
        "version": "v1",
        "makerBaseFee": 1000,
        "takerBaseFee": 1000,
        "feesEnabled": m.fees_enabled,
        "rewardsMinSize": float(m.program.min_size) if m.program.active else 0,
        "rewardsMaxSpread": float(m.program.max_spread_c) if m.program.active else 0,
        "clobRewards": [{"id": str(int(m.gamma_id) * 3 + 1), "conditionId": m.condition_id,
                         "assetAddress": PUSD_ADDRESS, "rewardsAmount": 0,
                         "rewardsDailyRate": float(m.program.daily_rate), "startDate": m.created_at[:10],
                         "endDate": "2500-12-31"}] if m.program.active else [],
        "umaResolutionStatuses": json.dumps(["proposed", "resolved"]) if m.resolved else "[]",
        "competitive": 0.9,
    }
    if m.fees_enabled:
        obj["feeType"] = FEE_TYPES.get(m.fee_bps, "other_fees")
        obj["feeSchedule"] = m.fee.as_json()
    if m.resolved:
        obj["umaResolutionStatus"] = "resolved"
    if m.event_id is not None:
        obj["negRiskMarketID"] = "0x" + format(int(m.event_id), "064x")
        obj["events"] = [{"id": m.event_id, "slug": f"event-{m.event_id}", "title": f"Event {m.event_id}",
                          "negRisk": True}]
    if m.has_enable_order_book:
        obj["enableOrderBook"] = True
    if bb is not None:
        obj["bestBid"] = bb / 1000
    if ba is not None:
        obj["bestAsk"] = ba / 1000
    if bb is not None and ba is not None:
        obj["spread"] = round((ba - bb) / 1000, 3)
    if m.last_trade_mil is not None:
        obj["lastTradePrice"] = m.last_trade_mil / 1000
    return obj


def _fmt(p: float) -> str:
    return format(p, ".4f").rstrip("0").rstrip(".") or "0"


def _bool_param(v: str | None) -> bool | None:
    if v is None:
        return None
    return v.strip().lower() in ("true", "1", "yes")


def _error(status: int, message: str, typ: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if typ:
        body = {"type": typ, "error": message}
    return web.json_response(body, status=status)


class GammaRoutes:
    """Handlers of the Gamma app over a simulator and the fault knobs."""

    def __init__(self, sim: Simulator, faults: Faults):
        self.sim = sim
        self.faults = faults

    def install(self, app: web.Application) -> None:
        app.router.add_get("/markets", self.legacy_list)
        app.router.add_get("/markets/keyset", self.keyset_list)
        app.router.add_get("/markets/slug/{slug}", self.by_slug)
        app.router.add_get("/markets/{id}", self.by_id)

    def _select(self, q: Any) -> list[dict[str, Any]] | web.Response:
        """Filter and sort by the query (shared by both list endpoints)."""
        objs = self.sim.gamma_markets()
        closed = _bool_param(q.get("closed"))
        if closed is None:
            closed = False  # upstream: no `closed` filter means closed=false
        objs = [o for o in objs if o["closed"] == closed]
        active = _bool_param(q.get("active"))
        if active is not None:
            objs = [o for o in objs if o["active"] == active]
        ids = q.getall("id", [])
        if ids:
            objs = [o for o in objs if o["id"] in ids]
        cids = q.getall("condition_ids", [])
        if cids:
            objs = [o for o in objs if o["conditionId"] in cids]
        for name, key in (("liquidity_num_min", "liquidityNum"), ("volume_num_min", "volumeNum")):
            if q.get(name) is not None:
                objs = [o for o in objs if o[key] >= float(q[name])]
        for name, key in (("liquidity_num_max", "liquidityNum"), ("volume_num_max", "volumeNum")):
            if q.get(name) is not None:
                objs = [o for o in objs if o[key] <= float(q[name])]
        order = q.get("order")
        if order:
            keys = [k.strip() for k in order.split(",") if k.strip()]
            bad = [k for k in keys if k not in SORTABLE]
            if bad:
                return _error(422, f"invalid order field: {bad[0]}", "validation error")
            asc = _bool_param(q.get("ascending"))
            rev = not asc if asc is not None else True
            for k in reversed(keys):  # stable multi-key sort: last key first

                def by(o: dict[str, Any], k: str = k) -> tuple[bool, Any]:
                    v = o.get(k)
                    return (v is None, v if v is not None else 0)

                objs.sort(key=by, reverse=rev)
        else:
            objs.sort(key=lambda o: int(o["id"]))
        return objs

    def _limit(self, q: Any, cap: int) -> int | web.Response:
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return _error(422, "limit must be an integer", "validation error")
        if limit < 0:
            return _error(422, "limit must be non-negative", "validation error")
        return min(limit, cap)

    async def legacy_list(self, request: web.Request) -> web.Response:
        if not self.faults.legacy_markets_enabled:
            return web.json_response({"error": "this endpoint has been removed, use /markets/keyset"}, status=410)
        q = request.query
        try:
            offset = int(q.get("offset", 0))
        except ValueError:
            return _error(422, "offset must be an integer", "validation error")
        if offset >= LEGACY_MAX_OFFSET:
            return web.json_response(
                {"type": "validation error", "error": "offset too large, use /markets/keyset for deeper pagination"},
                status=422, headers=DEPRECATION_HEADERS)
        limit = self._limit(q, LEGACY_MAX_LIMIT)
        if isinstance(limit, web.Response):
            return limit
        objs = self._select(q)
        if isinstance(objs, web.Response):
            return objs
        return web.json_response(objs[offset:offset + limit], headers=DEPRECATION_HEADERS)

    async def keyset_list(self, request: web.Request) -> web.Response:
        q = request.query
        if "offset" in q:
            return _error(422, "offset is not supported, use after_cursor", "validation error")
        limit = self._limit(q, KEYSET_MAX_LIMIT)
        if isinstance(limit, web.Response):
            return limit
        start = 0
        cursor = q.get("after_cursor")
        if cursor:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())["o"])
            except (ValueError, KeyError, TypeError):
                return _error(422, "invalid after_cursor", "validation error")
        objs = self._select(q)
        if isinstance(objs, web.Response):
            return objs
        page = objs[start:start + limit]
        body: dict[str, Any] = {"markets": page}
        if start + limit < len(objs) and limit > 0:
            body["next_cursor"] = base64.urlsafe_b64encode(json.dumps({"o": start + limit}).encode()).decode()
        return web.json_response(body)

    async def by_id(self, request: web.Request) -> web.Response:
        m = self.sim.by_gamma_id.get(request.match_info["id"])
        if m is None:
            return web.json_response({"type": "not found error", "error": "market not found"}, status=404)
        return web.json_response(gamma_object(self.sim, m))

    async def by_slug(self, request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        for m in self.sim.markets:
            if m.slug == slug:
                return web.json_response(gamma_object(self.sim, m))
        return web.json_response({"type": "not found error", "error": "market not found"}, status=404)
