"""The trading half of the sandbox: L1/L2 auth, orders, cancels, account data, heartbeats and
the user websocket channel, with the real CLOB's paths, payloads and error bodies.

Why it is built this way:
- It is what the live path is tested against with the official SDK (py-clob-client-v2) over real
  sockets, so every check is the real server's: the L1 ClobAuth signature, the L2 HMAC over
  `timestamp + METHOD + path + body` (the SDK's exact rule), the order's EIP-712 signature and
  the signer/owner binding to the API key, then the simulator's own rules (tick grid, min size,
  post-only crossing, closed market) with the real error strings (`SimReject`). So are the API-key
  answers: a create of an existing key (`Could not create api key`) and a derive of a key never
  created (`Could not derive api key!`) are the venue's HTTP 400s.
- Account orders rest in the simulator's books (true price-time priority) and are filled by the
  simulated flow: the fills here are the ground truth the paper fill models are measured against.
- Trades go MATCHED → MINED → CONFIRMED in simulated time (or RETRYING → FAILED when a test asks
  with `fail_next_trades`), each transition pushed on the user channel, as the real venue does.
- The order heartbeat (dead-man's switch) is armed per API key and enforced in wall time, since
  it protects against a client that stopped, whatever the simulation speed.
- Counters (`order_requests`, `requests`) let a dry-run test prove that nothing was sent.

`install(app, sim, sandbox)` is the extension hook the `Sandbox` calls by default; the venue
object is reachable as `trading_of(sandbox)` for tests and benches.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from ..domain import Side
from .auth_crypto import (
    EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V2,
    SandboxCreds,
    derive_creds,
    hmac_signature,
    order_id_and_signer,
    order_typed_data,
    recover_clob_auth,
)
from .clob_rest import PUSD_ADDRESS
from .simulator import AccountEvent, SimOrder, SimReject, SimTrade

if TYPE_CHECKING:
    from .server import Sandbox
    from .simulator import Simulator

INITIAL_CURSOR = "MA=="
END_CURSOR = "LTE="
MAX_BATCH_ORDERS = 15
MAX_BATCH_CANCELS = 3000
# accepted |POLY_TIMESTAMP - now| in seconds, L1 and L2 alike (`SandboxConfig.auth_skew_sec`, `--auth-skew-sec`
# overrides it). The venue's own tolerance is unconfirmed (polymarket-api.md §4 gives none for L1 and calls L2's
# UNCONFIRMED): 5 minutes refuses a stale or far-future signed request, never a client whose clock is right
AUTH_SKEW_SEC = 300.0
DERIVE_REFUSED = "Could not derive api key!"  # the venue's 400 text (py-clob-client-v2 #41, rs-clob-client-v2 #37)
# the venue's 400 text to a create for an (address, nonce) that already has a key (clob-client #202,
# py-clob-client-v2 #45); polymarket-api.md §4 says nothing of either 400
CREATE_REFUSED = "Could not create api key"
MAX_TS_DIGITS = 16  # a POLY_TIMESTAMP longer than this is no epoch second (and int() of a huge one is slow)
BACKGROUND_OWNER = "00000000-0000-4000-8000-000000000000"
BACKGROUND_ADDRESS = "0x000000000000000000000000000000000000bEEF"
FAKE_BALANCE = "1000000000000"  # 1,000,000 pUSD in 6-dp base units
ORDER_PATHS = frozenset({"/order", "/orders", "/cancel-all", "/cancel-market-orders"})
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_TRADE_NS = uuid.UUID("5f6c1f4e-3d0b-4b7e-9a54-2d8f1c0a7e11")

TRADING_KEY: web.AppKey[TradingVenue] = web.AppKey("pmm_trading", object)  # type: ignore[arg-type]


def install(app: web.Application, sim: Simulator, sandbox: Sandbox) -> TradingVenue:
    """Register the trading routes and the user channel on the CLOB app (Sandbox extension hook)."""
    venue = TradingVenue(sim, sandbox)
    venue.install(app)
    return venue


def trading_of(sandbox: Sandbox) -> TradingVenue:
    """The trading venue installed on a running sandbox."""
    return sandbox.app[TRADING_KEY]


def _err(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _dec(x: Decimal) -> str:
    return format(x.normalize(), "f") if x else "0"


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()


def _decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return 0
    try:
        v = int(base64.b64decode(cursor).decode())
    except ValueError:
        return None
    return None if v < 0 else v


def _query_date(request: web.Request) -> str | None:
    """The `date` query parameter when it is a real YYYY-MM-DD day."""
    d = request.query.get("date", "")
    try:
        time.strptime(d, "%Y-%m-%d")
    except ValueError:
        return None
    return d if len(d) == 10 else None


@dataclass
class _OrderMeta:
    api_key: str
    maker_address: str
    order_type: str
    expiration: str = "0"
    trade_ids: list[str] = field(default_factory=list)


@dataclass
class _TradeRec:
    """One account fill as the venue reports it; `payload` is the REST/WS body (status inside)."""

    trade_id: str
    owner: str
    sim: SimTrade
    payload: dict[str, Any]
    fail: bool
    history: list[str] = field(default_factory=list)


class _UserConn:
    __slots__ = ("ws", "transport", "api_key", "markets", "queue", "task", "closed")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None):
        self.ws = ws
        self.transport = transport
        self.api_key: str | None = None
        self.markets: set[str] | None = None  # None: every market
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def wants(self, api_key: str, market: str) -> bool:
        return not self.closed and self.api_key == api_key and (self.markets is None or market in self.markets)


class TradingVenue:
    """Authenticated CLOB routes over the simulator's account hooks."""

    def __init__(self, sim: Simulator, sandbox: Sandbox, chain_id: int = 137):
        self.sim = sim
        self.sandbox = sandbox
        self.chain_id = chain_id
        self.keys: dict[str, SandboxCreds] = {}
        # knobs
        self.page_limit = 100
        self.mined_after_sec = 2.0  # simulated seconds from MATCHED to MINED
        self.confirmed_after_sec = 5.0  # ... to CONFIRMED (or FAILED)
        self.fail_next_trades = 0  # the next N account trades end FAILED (after RETRYING)
        self.heartbeat_timeout_sec = 10.0
        cfg = getattr(sandbox, "cfg", None)  # the Sandbox's config (a test's stand-in may have none)
        self.auth_skew_sec = float(getattr(cfg, "auth_skew_sec", AUTH_SKEW_SEC))  # see AUTH_SKEW_SEC
        self.user_ws_enabled = True  # False: /ws/user answers 503 (an outage of the user channel)
        # counters
        self.order_requests = 0  # POST/DELETE on the order endpoints, authenticated or not
        self.requests: Counter[tuple[str, str]] = Counter()
        self.auth_failures = 0
        self.heartbeat_cancels = 0
        # state
        self._meta: dict[str, _OrderMeta] = {}
        self._trades: dict[str, _TradeRec] = {}
        self._trades_by_owner: dict[str, list[str]] = {}
        self._schedule: deque[tuple[float, str, str]] = deque()  # (sim ts, trade id, next status)
        self._positions: dict[tuple[str, str], Decimal] = {}
        self._hb: dict[str, tuple[str, float]] = {}  # api key -> (expected id, wall deadline)
        self._conns: set[_UserConn] = set()
        self._last_tick = time.monotonic()
        sim.add_account_listener(self._on_account)
        sandbox.add_tick_hook(self._tick)
        sandbox.ws_closers.append(self.drop_websockets)

    # ------------------------------------------------------------------ wiring
    def install(self, app: web.Application) -> None:
        app[TRADING_KEY] = self
        r = app.router
        r.add_post("/auth/api-key", self.create_api_key)
        r.add_get("/auth/derive-api-key", self.derive_api_key)
        r.add_get("/auth/api-keys", self.api_keys)
        r.add_post("/order", self.post_order)
        r.add_post("/orders", self.post_orders)
        r.add_delete("/order", self.cancel_order)
        r.add_delete("/orders", self.cancel_orders)
        r.add_delete("/cancel-all", self.cancel_all)
        r.add_delete("/cancel-market-orders", self.cancel_market_orders)
        r.add_get("/data/orders", self.open_orders)
        r.add_get("/data/order/{order_id}", self.get_order)
        r.add_get("/data/trades", self.trades)
        r.add_get("/balance-allowance", self.balance_allowance)
        r.add_get("/balance-allowance/update", self.balance_allowance)
        r.add_post("/v1/heartbeats", self.heartbeat_v1)
        r.add_post("/heartbeats", self.heartbeat_doc)
        r.add_get("/ws/user", self.user_ws)
        r.add_get("/order-scoring", self.order_scoring)
        r.add_post("/orders-scoring", self.orders_scoring)
        r.add_get("/rewards/user", self.rewards_user)
        r.add_get("/rebates/current", self.rebates_current)

    # ------------------------------------------------------------------ ground truth for tests
    def account_fills(self, api_key: str) -> list[dict[str, Any]]:
        """Every fill of an API key's orders: wire trade id, order id, token, side, price, size,
        current status and the status history."""
        out = []
        for tid in self._trades_by_owner.get(api_key, ()):
            rec = self._trades[tid]
            t = rec.sim
            out.append({"trade_id": tid, "order_id": t.order_id, "token_id": t.token_id, "market": t.condition_id,
                        "side": t.side.value, "price": t.price, "size": t.size, "ts": t.ts,
                        "status": rec.payload["status"], "history": list(rec.history)})
        return out

    def heartbeat_armed(self, api_key: str) -> bool:
        return api_key in self._hb

    # ------------------------------------------------------------------ auth
    def _count(self, request: web.Request) -> None:
        self.requests[(request.method, request.path)] += 1
        if request.method in ("POST", "DELETE") and request.path in ORDER_PATHS:
            self.order_requests += 1

    def _fresh(self, ts: str) -> bool:
        """`POLY_TIMESTAMP` is what the SDK sends (`str(int(seconds))`: epoch seconds in decimal
        digits) and within `auth_skew_sec` of the wall clock or of the venue's clock (`GET /time`,
        the simulated one), in the past or the future. A client signs with its own clock (the SDK's
        default) or with `/time` (`use_server_time=True`): on the venue both are one clock, here the
        simulation's speed and start set them apart, and either is what a correct client sends."""
        if not (ts.isascii() and ts.isdigit()) or len(ts) > MAX_TS_DIGITS:
            return False
        t = int(ts)
        return abs(t - time.time()) <= self.auth_skew_sec or abs(t - int(self.sim.now())) <= self.auth_skew_sec

    def _l1(self, request: web.Request) -> SandboxCreds | web.Response:
        """The key of (signer, nonce) when the L1 headers are the wallet's fresh ClobAuth signature."""
        h = request.headers
        try:
            address, sig, ts = h["POLY_ADDRESS"], h["POLY_SIGNATURE"], h["POLY_TIMESTAMP"]
            nonce = int(h.get("POLY_NONCE", "0"))
            if not self._fresh(ts):  # a stale or far-future signature is refused like a wrong one
                raise ValueError("stale timestamp")
            signer = recover_clob_auth(self.chain_id, address, ts, nonce, sig)
        except (KeyError, ValueError):
            self.auth_failures += 1
            return _err(401, "Invalid L1 Request headers")
        if signer.lower() != address.lower():
            self.auth_failures += 1
            return _err(401, "Invalid L1 Request headers")
        return derive_creds(signer, nonce)

    def _creds_for(self, api_key: str, address: str) -> SandboxCreds | None:
        c = self.keys.get(api_key)
        if c is None and address:
            try:
                d = derive_creds(address, 0)  # a key derived against an earlier sandbox process
            except ValueError:
                return None
            if d.api_key == api_key:
                self.keys[api_key] = c = d
        return c

    def _l2(self, request: web.Request, body: str) -> SandboxCreds | web.Response:
        h = request.headers
        try:
            address, key, passphrase = h["POLY_ADDRESS"], h["POLY_API_KEY"], h["POLY_PASSPHRASE"]
            ts, sig = h["POLY_TIMESTAMP"], h["POLY_SIGNATURE"]
        except KeyError:
            self.auth_failures += 1
            return _err(401, "Unauthorized/Invalid api key")
        c = self._creds_for(key, address)
        ok = (c is not None and c.address.lower() == address.lower() and c.passphrase == passphrase
              and self._fresh(ts))
        if ok and c is not None:
            try:
                ok = hmac_signature(c.secret, ts, request.method, request.path, body) == sig
            except ValueError:
                ok = False
        if not ok or c is None:
            self.auth_failures += 1
            return _err(401, "Unauthorized/Invalid api key")
        return c

    async def create_api_key(self, request: web.Request) -> web.Response:
        """A new key for (address, nonce); the venue's 400 when that key already exists (created in
        this process, or a nonce-0 key an earlier process gave out and used here at L2: `_creds_for`).
        A client then derives it (`Broker.derive_creds` derives first; the SDK's
        `create_or_derive_api_key` falls back to derive, after logging the 400 as an ERROR)."""
        self._count(request)
        c = self._l1(request)
        if isinstance(c, web.Response):
            return c
        if c.api_key in self.keys:
            return _err(400, CREATE_REFUSED)
        self.keys[c.api_key] = c
        return web.json_response({"apiKey": c.api_key, "secret": c.secret, "passphrase": c.passphrase})

    async def derive_api_key(self, request: web.Request) -> web.Response:
        """The key `POST /auth/api-key` created for (address, nonce); the venue's 400 when none was
        (a create of an existing key is the other 400, `create_api_key`). Deriving registers
        nothing: a key exists only once created (or, nonce 0, used at L2: `_creds_for`)."""
        self._count(request)
        c = self._l1(request)
        if isinstance(c, web.Response):
            return c
        if c.api_key not in self.keys:
            return _err(400, DERIVE_REFUSED)
        return web.json_response({"apiKey": c.api_key, "secret": c.secret, "passphrase": c.passphrase})

    async def api_keys(self, request: web.Request) -> web.Response:
        self._count(request)
        c = self._l2(request, "")
        if isinstance(c, web.Response):
            return c
        return web.json_response({"apiKeys": [k for k, v in self.keys.items() if v.address == c.address]})

    # ------------------------------------------------------------------ orders
    def _order_json(self, so: SimOrder) -> dict[str, Any]:
        meta = self._meta.get(so.order_id)
        m = self.sim.by_condition[so.condition_id]
        return {
            "id": so.order_id, "status": so.status, "owner": so.owner, "maker_address": meta.maker_address if meta else "",
            "market": so.condition_id, "asset_id": so.token_id, "side": so.side.value,
            "original_size": _dec(so.original_size), "size_matched": _dec(so.size_matched), "price": _dec(so.price),
            "outcome": "Yes" if so.token_id == m.yes_token_id else "No",
            "expiration": meta.expiration if meta else "0", "order_type": so.order_type,
            "associate_trades": list(meta.trade_ids) if meta else [], "created_at": int(so.created_ts),
        }

    def _verify_order(self, c: SandboxCreds, item: Any) -> tuple[str, dict[str, Any]] | str:
        """(order id, parsed fields) of a well-formed, correctly signed order, or the error text."""
        if not isinstance(item, dict) or not isinstance(item.get("order"), dict):
            return "Invalid order payload"
        o = item["order"]
        if item.get("owner") != c.api_key:
            return "the order owner has to be the owner of the API KEY"
        tok = self.sim.token(str(o.get("tokenId", "")))
        if tok is None:
            return "Invalid token id"
        m, _ = tok
        try:
            typed = order_typed_data(o, self.chain_id, m.neg_risk)
            oid, signer = order_id_and_signer(typed, str(o.get("signature", "")))
        except (KeyError, ValueError, TypeError):
            return "Invalid order payload"
        if str(o["signer"]).lower() != c.address.lower():
            return "the order signer address has to be the address of the API KEY"
        if signer is None or signer.lower() != str(o["signer"]).lower():
            return "invalid signature"
        try:
            maker_amt, taker_amt = Decimal(int(o["makerAmount"])), Decimal(int(o["takerAmount"]))
            if maker_amt <= 0 or taker_amt <= 0:
                raise InvalidOperation
            if o["side"] == "BUY":
                side, size, price = Side.BUY, taker_amt / 1_000_000, maker_amt / taker_amt
            elif o["side"] == "SELL":
                side, size, price = Side.SELL, maker_amt / 1_000_000, taker_amt / maker_amt
            else:
                return "Invalid order payload"
        except (InvalidOperation, ValueError, TypeError, ZeroDivisionError):
            return "Invalid order payload"
        return oid, {"token_id": str(o["tokenId"]), "side": side, "price": price.normalize(), "size": size.normalize(),
                     "maker": str(o["maker"]), "expiration": str(o.get("expiration", "0")),
                     "order_type": str(item.get("orderType", "GTC")).upper(), "post_only": bool(item.get("postOnly"))}

    def _place(self, c: SandboxCreds, oid: str, f: dict[str, Any]) -> dict[str, Any]:
        """Place one verified order; the order response (success or the error in errorMsg)."""
        base = {"orderID": oid, "makingAmount": "", "takingAmount": "", "tradeIDs": [], "transactionsHashes": []}
        if f["side"] is Side.SELL:
            held = self._positions.get((c.api_key, f["token_id"]), Decimal(0))
            reserved = sum((o.remaining for o in self.sim.open_orders(c.api_key)
                            if o.token_id == f["token_id"] and o.side is Side.SELL), Decimal(0))
            if held - reserved < f["size"]:
                return {**base, "success": False, "errorMsg": "not enough balance / allowance", "status": ""}
        if self.sim.get_order(oid) is not None:
            return {**base, "success": False, "errorMsg": f"order {oid} is invalid. Duplicated.", "status": ""}
        self._meta[oid] = _OrderMeta(c.api_key, f["maker"], f["order_type"], f["expiration"])
        try:
            so = self.sim.place_order(c.api_key, oid, f["token_id"], f["side"], f["price"], f["size"],
                                      f["post_only"], f["order_type"])
        except SimReject as exc:
            self._meta.pop(oid, None)
            return {**base, "success": False, "errorMsg": exc.message, "status": ""}
        meta = self._meta[oid]
        status = "live" if so.status == "LIVE" else "matched" if so.size_matched > 0 else "unmatched"
        return {**base, "success": True, "errorMsg": "", "status": status, "tradeIDs": list(meta.trade_ids)}

    async def _read_l2(self, request: web.Request) -> tuple[SandboxCreds, str] | web.Response:
        self._count(request)
        # bytes that are not UTF-8 stay as surrogates: no SDK signs such a body, and the HMAC of
        # one cannot be computed (ValueError in `_l2`), so it is the venue's 401, not a 500 here
        body = (await request.read()).decode("utf-8", errors="surrogateescape")
        c = self._l2(request, body)
        if isinstance(c, web.Response):
            return c
        return c, body

    async def _read_l2_json(self, request: web.Request, invalid: str, kind: type | None = None,
                            empty: Any = None) -> tuple[SandboxCreds, Any] | web.Response:
        """Authenticate, then parse the JSON body: (creds, payload), or a 400 with the venue's
        `invalid` text when it is not JSON or not a `kind`. An empty body reads as `empty` when
        one is given, else it is invalid."""
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, body = got
        try:
            payload = empty if (not body and empty is not None) else json.loads(body)
        except ValueError:
            return _err(400, invalid)
        if kind is not None and not isinstance(payload, kind):
            return _err(400, invalid)
        return c, payload

    async def post_order(self, request: web.Request) -> web.Response:
        got = await self._read_l2_json(request, "Invalid order payload")
        if isinstance(got, web.Response):
            return got
        c, item = got
        v = self._verify_order(c, item)  # on the loop, as for a batch (post_orders)
        if isinstance(v, str):
            return _err(400, v)
        res = self._place(c, *v)
        if not res["success"]:
            return _err(400, res["errorMsg"])
        return web.json_response(res)

    async def post_orders(self, request: web.Request) -> web.Response:
        got = await self._read_l2_json(request, "Invalid order payload", list)
        if isinstance(got, web.Response):
            return got
        c, items = got
        if len(items) > MAX_BATCH_ORDERS:
            return _err(400, f"Too many orders in payload: {len(items)}, max allowed: {MAX_BATCH_ORDERS}")
        # on the loop: ~80 µs an order (`order_struct_hash` + libsecp256k1 recovery), 1.2 ms for a
        # full batch, less than the hop to a worker thread costs on a busy host
        checked = [self._verify_order(c, it) for it in items]
        out = []
        for v in checked:
            if isinstance(v, str):
                out.append({"success": False, "errorMsg": v, "orderID": "", "status": "", "makingAmount": "",
                            "takingAmount": "", "tradeIDs": [], "transactionsHashes": []})
            else:
                out.append(self._place(c, *v))
        return web.json_response(out)

    def _cancel_ids(self, c: SandboxCreds, ids: list[str]) -> dict[str, Any]:
        canceled, not_canceled = [], {}
        for oid in ids:
            so = self.sim.get_order(oid)
            if so is None or so.owner != c.api_key:
                not_canceled[oid] = "order not found"
            elif self.sim.cancel_order(c.api_key, oid):
                canceled.append(oid)
            else:
                not_canceled[oid] = "order can't be canceled: already canceled or matched"
        return {"canceled": canceled, "not_canceled": not_canceled}

    async def cancel_order(self, request: web.Request) -> web.Response:
        got = await self._read_l2_json(request, "Invalid payload", dict)
        if isinstance(got, web.Response):
            return got
        c, p = got
        oid = p.get("orderID")
        if oid is None:
            return _err(400, "Invalid payload")
        return web.json_response(self._cancel_ids(c, [str(oid)]))

    async def cancel_orders(self, request: web.Request) -> web.Response:
        got = await self._read_l2_json(request, "Invalid payload", list)
        if isinstance(got, web.Response):
            return got
        c, ids = got
        if len(ids) > MAX_BATCH_CANCELS:
            return _err(400, f"Too many orders in payload: {len(ids)}, max allowed: {MAX_BATCH_CANCELS}")
        return web.json_response(self._cancel_ids(c, [str(i) for i in ids]))

    async def cancel_all(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        return web.json_response({"canceled": self.sim.cancel_all(c.api_key), "not_canceled": {}})

    async def cancel_market_orders(self, request: web.Request) -> web.Response:
        got = await self._read_l2_json(request, "Invalid payload", dict, empty={})
        if isinstance(got, web.Response):
            return got
        c, p = got
        ids = self.sim.cancel_market(c.api_key, condition_id=p.get("market") or None, token_id=p.get("asset_id") or None)
        return web.json_response({"canceled": ids, "not_canceled": {}})

    # ------------------------------------------------------------------ account data
    def _page(self, request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
        off = _decode_cursor(request.query.get("next_cursor"))
        if off is None:
            return _err(400, "invalid next_cursor")
        lim = self.page_limit
        chunk = rows[off:off + lim]
        nxt = END_CURSOR if off + lim >= len(rows) else _encode_cursor(off + lim)
        return web.json_response({"data": chunk, "next_cursor": nxt, "limit": lim, "count": len(chunk)})

    async def open_orders(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        q = request.query
        rows = [self._order_json(o) for o in sorted(self.sim.open_orders(c.api_key), key=lambda o: o.created_ts)
                if (not q.get("id") or o.order_id == q["id"]) and (not q.get("market") or o.condition_id == q["market"])
                and (not q.get("asset_id") or o.token_id == q["asset_id"])]
        return self._page(request, rows)

    async def get_order(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        so = self.sim.get_order(request.match_info["order_id"])
        if so is None or so.owner != c.api_key:
            return _err(404, "order not found")
        return web.json_response(self._order_json(so))

    async def trades(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        q = request.query
        try:
            after = float(q["after"]) if q.get("after") else None
            before = float(q["before"]) if q.get("before") else None
        except ValueError:
            return _err(400, "invalid after/before")
        rows = []
        for tid in self._trades_by_owner.get(c.api_key, ()):
            rec = self._trades[tid]
            t, p = rec.sim, rec.payload
            if q.get("id") and tid != q["id"]:
                continue
            if q.get("market") and t.condition_id != q["market"]:
                continue
            if q.get("asset_id") and q["asset_id"] not in (t.token_id, p["asset_id"]):
                continue
            if q.get("maker_address") and q["maker_address"].lower() not in (
                    p["maker_address"].lower(), *(mo["maker_address"].lower() for mo in p["maker_orders"])):
                continue
            if (after is not None and t.ts < after) or (before is not None and t.ts > before):
                continue
            rows.append(self._rest_trade(p))
        return self._page(request, rows)

    async def balance_allowance(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        if request.query.get("asset_type", "COLLATERAL").upper() == "CONDITIONAL":
            held = self._positions.get((c.api_key, request.query.get("token_id", "")), Decimal(0))
            bal = str(int(held * 1_000_000))
        else:
            bal = FAKE_BALANCE
        big = str(2**256 - 1)
        return web.json_response({"balance": bal, "allowances": {EXCHANGE_V2: big, NEG_RISK_EXCHANGE_V2: big}})

    # ------------------------------------------------------------------ heartbeats
    async def heartbeat_v1(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, body = got
        try:
            hb_id = str((json.loads(body) if body else {}).get("heartbeat_id") or "")
        except (ValueError, AttributeError):
            return _err(400, "Invalid payload")
        cur = self._hb.get(c.api_key)
        if cur is not None and hb_id != cur[0]:
            return web.json_response({"error_msg": "Invalid Heartbeat ID", "heartbeat_id": cur[0]}, status=400)
        nxt = str(uuid.uuid4())
        self._hb[c.api_key] = (nxt, time.monotonic() + self.heartbeat_timeout_sec)
        return web.json_response({"heartbeat_id": nxt})

    async def heartbeat_doc(self, request: web.Request) -> web.Response:
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        cur = self._hb.get(c.api_key)
        self._hb[c.api_key] = (cur[0] if cur else str(uuid.uuid4()), time.monotonic() + self.heartbeat_timeout_sec)
        return web.json_response({"status": "ok"})

    # ------------------------------------------------------------------ rewards
    async def order_scoring(self, request: web.Request) -> web.Response:
        """GET /order-scoring?order_id=: `{"scoring": bool}` for one of the caller's orders."""
        self._count(request)
        c = self._l2(request, "")
        if isinstance(c, web.Response):
            return c
        oid = request.query.get("order_id", "")
        so = self.sim.get_order(oid)
        ok = so is not None and so.owner == c.api_key and self.sim.econ.order_scoring(oid)
        return web.json_response({"scoring": bool(ok)})

    async def orders_scoring(self, request: web.Request) -> web.Response:
        """POST /orders-scoring, body a JSON array of order ids: `{"<id>": bool, ...}`."""
        got = await self._read_l2_json(request, "Invalid order payload", list)
        if isinstance(got, web.Response):
            return got
        c, ids = got
        out = {}
        for oid in ids:
            if isinstance(oid, str):
                so = self.sim.get_order(oid)
                out[oid] = bool(so is not None and so.owner == c.api_key and self.sim.econ.order_scoring(oid))
        return web.json_response(out)

    async def rewards_user(self, request: web.Request) -> web.Response:
        """GET /rewards/user?date=YYYY-MM-DD&signature_type=&next_cursor= (L2; the SDK's
        `get_earnings_for_user_for_day`): the caller's liquidity rewards per market for one day,
        as paid at the following 00:00 UTC (nothing before then; under $1 nothing), pages of 100."""
        got = await self._read_l2(request)
        if isinstance(got, web.Response):
            return got
        c, _ = got
        date = _query_date(request)
        if date is None:
            return _err(400, "invalid date: want YYYY-MM-DD")
        rows = [{"date": f"{date}T00:00:00Z", "condition_id": p.condition_id, "asset_address": PUSD_ADDRESS,
                 "maker_address": self._maker_of(c.api_key, c.address), "earnings": float(p.rewards), "asset_rate": 1}
                for p in self.sim.econ.paid_on({c.api_key}, date) if p.rewards > 0]
        return self._page(request, rows)

    async def rebates_current(self, request: web.Request) -> web.Response:
        """GET /rebates/current?date=YYYY-MM-DD&maker_address=0x… (no authentication): the maker
        rebates paid for one day per market, `rebated_fees_usdc` a decimal string."""
        self._count(request)
        date, maker = _query_date(request), request.query.get("maker_address", "").strip().lower()
        if date is None or not maker:
            return _err(400, "date (YYYY-MM-DD) and maker_address are required")
        owners = {m.api_key for m in self._meta.values() if m.maker_address.lower() == maker}
        owners |= {k for k, v in self.keys.items() if v.address.lower() == maker}
        return web.json_response([
            {"date": date, "condition_id": p.condition_id, "asset_address": PUSD_ADDRESS, "maker_address": maker,
             "rebated_fees_usdc": format(p.rebates, "f")}
            for p in self.sim.econ.paid_on(owners, date) if p.rebates > 0])

    def _maker_of(self, api_key: str, address: str) -> str:
        """The maker (funder) address the account's orders named; its signer when none yet."""
        for m in self._meta.values():
            if m.api_key == api_key and m.maker_address:
                return m.maker_address
        return address

    # ------------------------------------------------------------------ account events
    def _on_account(self, ev: AccountEvent) -> None:
        if ev[0] == "order":
            so, kind = ev[1], ev[2]
            self._push(so.owner, so.condition_id, self._order_event(so, kind))
        elif ev[0] == "trade":
            self._on_trade(ev[1])
        elif ev[0] == "resolved":
            self._on_resolved(ev[1])

    def _order_event(self, so: SimOrder, kind: str) -> dict[str, Any]:
        j = self._order_json(so)
        meta = self._meta.get(so.order_id)
        return {"event_type": "order", "type": kind, "id": so.order_id, "owner": so.owner, "order_owner": so.owner,
                "market": so.condition_id, "asset_id": so.token_id, "side": so.side.value, "price": j["price"],
                "original_size": j["original_size"], "size_matched": j["size_matched"], "outcome": j["outcome"],
                "order_type": so.order_type, "status": so.status,
                "associate_trades": list(meta.trade_ids) if meta and meta.trade_ids else None,
                "maker_address": j["maker_address"], "created_at": str(int(so.created_ts)),
                "expiration": j["expiration"], "timestamp": str(int(round(self.sim.now() * 1000)))}

    def _on_trade(self, t: SimTrade) -> None:
        tid = str(uuid.uuid5(_TRADE_NS, t.trade_id))
        m = self.sim.by_condition[t.condition_id]
        meta = self._meta.get(t.order_id)
        addr = meta.maker_address if meta else ""
        if meta is not None:
            meta.trade_ids.append(tid)

        def outcome(tok: str) -> str:
            return "Yes" if tok == m.yes_token_id else "No"

        taker_bps = str(m.fee_bps)  # the operator's fee at match: takers pay it
        maker_bps = "0" if m.fee.taker_only else taker_bps
        q = _dec(t.size)
        other_id = t.counterparty_order_id or "0x" + hashlib.sha256(f"bg:{t.trade_id}".encode()).hexdigest()
        other = self.sim.get_order(t.counterparty_order_id) if t.counterparty_order_id else None
        other_owner = other.owner if other is not None else BACKGROUND_OWNER
        other_meta = self._meta.get(other_id)
        other_addr = other_meta.maker_address if other_meta else BACKGROUND_ADDRESS
        if t.trader_side == "MAKER":
            # a background taker; shown on the complement token for every other trade (a mint/merge
            # match), as the real feed does: our fill is then at 1 - price on the other token
            complement = int(hashlib.sha256(tid.encode()).hexdigest(), 16) % 2 == 1
            tok = (m.no_token_id if t.token_id == m.yes_token_id else m.yes_token_id) if complement else t.token_id
            px = (1 - t.price) if complement else t.price
            side = t.taker_side.opposite if complement else t.taker_side
            top = {"taker_order_id": other_id, "asset_id": tok, "side": side.value, "price": _dec(px), "size": q,
                   "owner": other_owner, "trade_owner": other_owner, "maker_address": other_addr, "outcome": outcome(tok)}
            makers = [{"order_id": t.order_id, "owner": t.owner, "maker_address": addr, "matched_amount": q,
                       "price": _dec(t.price), "asset_id": t.token_id, "outcome": outcome(t.token_id),
                       "fee_rate_bps": maker_bps, "side": t.side.value}]
        else:
            top = {"taker_order_id": t.order_id, "asset_id": t.token_id, "side": t.side.value, "price": _dec(t.price),
                   "size": q, "owner": t.owner, "trade_owner": t.owner, "maker_address": addr,
                   "outcome": outcome(t.token_id)}
            makers = [{"order_id": other_id, "owner": other_owner, "maker_address": other_addr, "matched_amount": q,
                       "price": _dec(t.price), "asset_id": t.token_id, "outcome": outcome(t.token_id),
                       "fee_rate_bps": maker_bps, "side": t.side.opposite.value}]
        ts_s = str(int(t.ts))
        payload = {"event_type": "trade", "type": "TRADE", "id": tid, "market": t.condition_id, **top,
                   "status": "MATCHED", "trader_side": t.trader_side, "fee_rate_bps": taker_bps, "bucket_index": 0,
                   "transaction_hash": "", "matchtime": ts_s, "last_update": ts_s,
                   "timestamp": str(int(round(t.ts * 1000))), "maker_orders": makers}
        fail = self.fail_next_trades > 0
        if fail:
            self.fail_next_trades -= 1
        rec = _TradeRec(tid, t.owner, t, payload, fail, ["MATCHED"])
        self._trades[tid] = rec
        self._trades_by_owner.setdefault(t.owner, []).append(tid)
        self._move_position(t, +1)
        self._schedule.append((t.ts + self.mined_after_sec, tid, "RETRYING" if fail else "MINED"))
        self._push(t.owner, t.condition_id, dict(payload))

    def _on_resolved(self, m: Any) -> None:
        """Redeem every account's shares of a resolved market (winners at 1) and zero them."""
        self.sim.econ.settle(m, self._positions)
        for k in [k for k in self._positions if k[1] in (m.yes_token_id, m.no_token_id)]:
            del self._positions[k]

    def _move_position(self, t: SimTrade, sign: int) -> None:
        k = (t.owner, t.token_id)
        d = t.size if t.side is Side.BUY else -t.size
        self._positions[k] = self._positions.get(k, Decimal(0)) + sign * d

    def _advance_trades(self) -> None:
        now = self.sim.now()
        while self._schedule and self._schedule[0][0] <= now:
            due, tid, status = self._schedule.popleft()
            rec = self._trades[tid]
            p = rec.payload
            p["status"] = status
            p["last_update"] = str(int(now))
            p["timestamp"] = str(int(round(now * 1000)))
            if status in ("MINED", "CONFIRMED"):
                p["transaction_hash"] = "0x" + hashlib.sha256(tid.encode()).hexdigest()
            rec.history.append(status)
            if status == "FAILED":
                self._move_position(rec.sim, -1)
            nxt = {"MINED": "CONFIRMED", "RETRYING": "FAILED"}.get(status)
            if nxt is not None:
                self._schedule.append((due + self.confirmed_after_sec - self.mined_after_sec, tid, nxt))
            self._push(rec.owner, rec.sim.condition_id, dict(p))

    @staticmethod
    def _rest_trade(p: dict[str, Any]) -> dict[str, Any]:
        """REST /data/trades spells the match time `match_time` and has no event fields."""
        r = {k: v for k, v in p.items() if k not in ("event_type", "type", "matchtime", "timestamp")}
        r["match_time"] = p["matchtime"]
        return r

    def _tick(self) -> None:
        self._advance_trades()
        now = time.monotonic()
        for key, (_, deadline) in list(self._hb.items()):
            if now >= deadline:
                del self._hb[key]
                self.heartbeat_cancels += 1
                self.sim.cancel_all(key)
        dt, self._last_tick = now - self._last_tick, now
        for c in list(self._conns):
            if self.sandbox.faults.drop_now(dt):
                self._abort(c)

    # ------------------------------------------------------------------ user websocket
    def _push(self, api_key: str, market: str, event: dict[str, Any]) -> None:
        frame = None
        for c in self._conns:
            if c.wants(api_key, market):
                frame = frame or _dumps(event)
                c.queue.put_nowait(frame)

    async def user_ws(self, request: web.Request) -> web.StreamResponse:
        if not self.user_ws_enabled:
            return _err(503, "Service Unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        c = _UserConn(ws, request.transport)
        self._conns.add(c)
        c.task = asyncio.create_task(self._writer(c))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                        break
                    continue
                if msg.data.strip() == "PING":
                    c.queue.put_nowait("PONG")
                    continue
                if not await self._on_user_text(c, msg.data):
                    break
        finally:
            c.closed = True
            self._conns.discard(c)
            if c.task is not None:
                c.task.cancel()
        return ws

    async def _on_user_text(self, c: _UserConn, data: str) -> bool:
        """Apply a subscribe / operation frame; False closes the connection (bad auth)."""
        try:
            msg = json.loads(data)
        except ValueError:
            return True
        if not isinstance(msg, dict):
            return True
        markets = msg.get("markets")
        if "auth" in msg:
            a = msg.get("auth") or {}
            cr = self.keys.get(str(a.get("apiKey", "")))
            if cr is None or cr.secret != a.get("secret") or cr.passphrase != a.get("passphrase"):
                self.auth_failures += 1
                await c.ws.send_str(_dumps({"error": "Unauthorized/Invalid api key"}))
                await c.ws.close(code=1008, message=b"unauthorized")
                return False
            c.api_key = cr.api_key
            c.markets = set(map(str, markets)) if isinstance(markets, list) and markets else None
            return True
        op = msg.get("operation")
        if c.api_key is None or op not in ("subscribe", "unsubscribe") or not isinstance(markets, list):
            return True
        ids = set(map(str, markets))
        if op == "subscribe":
            if c.markets is not None:
                c.markets |= ids
        else:
            c.markets = (c.markets if c.markets is not None else set(self.sim.by_condition)) - ids
        return True

    async def _writer(self, c: _UserConn) -> None:
        try:
            while not c.closed:
                frame = await c.queue.get()
                lat = self.sandbox.faults.latency_ms / 1000.0
                if lat > 0:
                    await asyncio.sleep(lat)
                await c.ws.send_str(frame)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    def _abort(self, c: _UserConn) -> None:
        c.closed = True
        self._conns.discard(c)
        if c.transport is not None:
            c.transport.abort()

    async def drop_websockets(self) -> None:
        """Drop every user-channel connection now, as a network failure would."""
        for c in list(self._conns):
            self._abort(c)

    @property
    def user_connections(self) -> int:
        return len(self._conns)
