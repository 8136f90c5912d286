"""The sandbox's order handling, called directly (no sockets): signed-order parsing into price and
size, the refusals with the venue's texts (polymarket-api.md §5), the SELL inventory check, order
responses, cancels, trade reports for taker and maker fills (§3 user channel), the trade status
lifecycle with position reversal on FAILED, redemption at resolution (§8), balances, cursor
pages, batch caps and the heartbeat switch."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from decimal import Decimal as D
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from eth_account import Account
from eth_account.messages import encode_typed_data
from sandbox_helpers import blank_book

from pmm_widgets.domain import Side
from pmm_widgets.economics.fees import FeeSchedule
from pmm_widgets.sandbox.auth_crypto import (
    EXCHANGE_V2,
    NEG_RISK_EXCHANGE_V2,
    SandboxCreds,
    derive_creds,
    hmac_signature,
    order_hash,
    order_typed_data,
)
from pmm_widgets.sandbox.clob_rest import PUSD_ADDRESS
from pmm_widgets.sandbox.economics import Payout
from pmm_widgets.sandbox.faults import Faults
from pmm_widgets.sandbox.simulator import SimMarket, SimTrade, Simulator, _Rest
from pmm_widgets.sandbox.trading import (
    BACKGROUND_ADDRESS,
    BACKGROUND_OWNER,
    FAKE_BALANCE,
    TradingVenue,
    _UserConn,
)

START = 1_780_000_000.0
KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
ADDR = Account.from_key(KEY).address
OTHER_ADDR = Account.from_key(OTHER_KEY).address


class _Box:
    """The slice of `Sandbox` a `TradingVenue` uses."""

    def __init__(self) -> None:
        self.ws_closers: list[Any] = []
        self.faults = Faults()
        self.hooks: list[Any] = []

    def add_tick_hook(self, fn: Any) -> None:
        self.hooks.append(fn)


def _venue() -> tuple[Simulator, TradingVenue, SandboxCreds, SimMarket]:
    sim = Simulator(markets=10, seed=4, start_ts=START)
    v = TradingVenue(sim, _Box())  # type: ignore[arg-type]
    c = derive_creds(ADDR, 0)
    v.keys[c.api_key] = c
    m = [m for m in sim.markets if m.has_book and m.tick_mil == 10 and m.event_id is None][0]
    blank_book(sim, m, {480: 5000}, {520: 5000})  # background: 50 @ 0.48 / 50 @ 0.52
    m.fee, m.fee_bps, m.fees_enabled = FeeSchedule(D("0.04"), 1, True, D("0.25")), 400, True
    return sim, v, c, m


def _signed(c: SandboxCreds, token: str, side: Any, price: str, size: str, *, salt: int = 1,
            key: str = KEY, signer: str | None = None, amounts: tuple[int, int] | None = None,
            order_type: str = "GTC", post_only: bool = False, owner: str | None = None,
            expiration: str = "0", drop: str = "") -> dict[str, Any]:
    units = int(D(size) * 1_000_000)
    notional = int(D(size) * D(price) * 1_000_000)
    maker_amt, taker_amt = amounts or ((notional, units) if side == "BUY" else (units, notional))
    o: dict[str, Any] = {
        "salt": salt, "maker": ADDR, "signer": signer or ADDR, "tokenId": token, "makerAmount": str(maker_amt),
        "takerAmount": str(taker_amt), "side": side, "expiration": expiration, "signatureType": 0,
        "timestamp": "1780000000000", "metadata": "0x" + "00" * 32, "builder": "0x" + "00" * 32}
    typed = order_typed_data(o, 137, False)
    sig = Account.from_key(key).sign_message(encode_typed_data(full_message=typed)).signature.hex()
    o["signature"] = "0x" + sig.removeprefix("0x")
    if drop:
        del o[drop]
    return {"order": o, "owner": owner or c.api_key, "orderType": order_type, "postOnly": post_only,
            "deferExec": False}


def _place(v: TradingVenue, c: SandboxCreds, item: dict[str, Any]) -> dict[str, Any]:
    got = v._verify_order(c, item)
    assert not isinstance(got, str), got
    return v._place(c, *got)


def _req(c: SandboxCreds, method: str, path: str, body: str = "", query: str = "") -> web.Request:
    ts = str(int(time.time()))
    headers = {"POLY_ADDRESS": c.address, "POLY_API_KEY": c.api_key, "POLY_PASSPHRASE": c.passphrase,
               "POLY_TIMESTAMP": ts, "POLY_SIGNATURE": hmac_signature(c.secret, ts, method, path, body)}
    payload = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    if body:
        payload.feed_data(body.encode())
    payload.feed_eof()
    return make_mocked_request(method, path + (f"?{query}" if query else ""), headers=headers, payload=payload)


def _json(resp: web.StreamResponse) -> Any:
    assert isinstance(resp, web.Response) and resp.body is not None
    return json.loads(resp.body)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- parsing and refusals


def test_signed_amounts_become_price_and_size() -> None:
    _, v, c, m = _venue()
    item = _signed(c, m.yes_token_id, "BUY", "0.48", "10", expiration="1780000100", order_type="fok",
                   post_only=True)
    oid, f = v._verify_order(c, item)  # type: ignore[misc]
    assert oid == order_hash(order_typed_data(item["order"], 137, False))
    assert f == {"token_id": m.yes_token_id, "side": Side.BUY, "price": D("0.48"), "size": D(10), "maker": ADDR,
                 "expiration": "1780000100", "order_type": "FOK", "post_only": True}
    _, f = v._verify_order(c, _signed(c, m.no_token_id, "SELL", "0.52", "12.5"))  # type: ignore[misc]
    assert (f["side"], f["price"], f["size"], f["token_id"]) == (Side.SELL, D("0.52"), D("12.5"), m.no_token_id)
    assert (f["order_type"], f["post_only"], f["expiration"]) == ("GTC", False, "0")
    # the smallest amounts still parse (the simulator refuses the size later)
    _, f = v._verify_order(c, _signed(c, m.yes_token_id, "BUY", "1", "1", amounts=(1, 1)))  # type: ignore[misc]
    assert (f["price"], f["size"]) == (D(1), D("0.000001"))


def test_refusals_carry_the_venue_texts() -> None:
    _, v, c, m = _venue()
    yes = m.yes_token_id
    bad = "Invalid order payload"
    cases: list[tuple[Any, str]] = [
        ("not an order", bad),
        ({"order": "x", "owner": c.api_key}, bad),
        ({"owner": c.api_key}, bad),
        (_signed(c, yes, "BUY", "0.48", "10", owner="someone-else"),
         "the order owner has to be the owner of the API KEY"),
        (_signed(c, "123", "BUY", "0.48", "10"), "Invalid token id"),
        (_signed(c, yes, "BUY", "0.48", "10", key=OTHER_KEY, signer=OTHER_ADDR),
         "the order signer address has to be the address of the API KEY"),
        (_signed(c, yes, "BUY", "0.48", "10", key=OTHER_KEY), "invalid signature"),
        (_signed(c, yes, "BUY", "0.48", "10", drop="salt"), bad),
        (_signed(c, yes, "BUY", "0.48", "10", amounts=(0, 10_000_000)), bad),
        (_signed(c, yes, "SELL", "0.48", "10", amounts=(10_000_000, 0)), bad),
        (_signed(c, yes, 0, "0.48", "10", amounts=(4_800_000, 10_000_000)), bad),  # side not a word
    ]
    malformed = _signed(c, yes, "BUY", "0.48", "10")
    malformed["order"]["signature"] = "0x1234"
    cases.append((malformed, "invalid signature"))
    assert [v._verify_order(c, item) for item, _ in cases] == [want for _, want in cases]


# ---------------------------------------------------------------------- placing


def test_sell_needs_inventory_net_of_resting_sells() -> None:
    _, v, c, m = _venue()
    yes, no = m.yes_token_id, m.no_token_id
    nope = "not enough balance / allowance"
    assert _place(v, c, _signed(c, yes, "BUY", "0.45", "20", salt=1))["success"]  # BUYs need no shares
    assert _place(v, c, _signed(c, yes, "SELL", "0.55", "0.5", salt=2))["errorMsg"] == nope  # nothing held
    v._positions[(c.api_key, yes)] = D(15)
    v._positions[(c.api_key, no)] = D(5)
    first = _place(v, c, _signed(c, yes, "SELL", "0.55", "6", salt=3))
    assert first["success"] and first["status"] == "live" and first["errorMsg"] == ""
    refused = _place(v, c, _signed(c, yes, "SELL", "0.56", "10", salt=4))  # 15 − 6 < 10
    assert (refused["success"], refused["errorMsg"], refused["status"]) == (False, nope, "")
    assert _place(v, c, _signed(c, yes, "SELL", "0.56", "9", salt=5))["success"]  # exactly what is left
    assert _place(v, c, _signed(c, no, "SELL", "0.55", "5", salt=6))["success"]  # YES sells do not reserve NO


def test_order_responses_duplicates_and_simulator_refusals() -> None:
    sim, v, c, m = _venue()
    item = _signed(c, m.yes_token_id, "BUY", "0.47", "10")
    oid = v._verify_order(c, item)[0]
    res = _place(v, c, item)
    assert res == {"orderID": oid, "makingAmount": "", "takingAmount": "", "tradeIDs": [], "transactionsHashes": [],
                   "success": True, "errorMsg": "", "status": "live"}
    dup = _place(v, c, item)
    assert (dup["success"], dup["errorMsg"]) == (False, f"order {oid} is invalid. Duplicated.")
    so = sim.get_order(oid)
    assert so is not None and v._order_json(so)["maker_address"] == ADDR  # the first order's record is kept
    off = _signed(c, m.yes_token_id, "BUY", "0.475", "10", salt=9)
    off_id = v._verify_order(c, off)[0]
    res = _place(v, c, off)
    assert res["errorMsg"] == f"order {off_id} is invalid. Price (0.475) breaks minimum tick size rule: 0.01"
    assert not res["success"] and off_id not in v._meta


def test_a_fill_under_one_share_is_matched() -> None:
    sim, v, c, m = _venue()
    sim._rest(m, False, 510, _Rest(50))  # half a share at 0.51
    item = _signed(c, m.yes_token_id, "BUY", "0.51", "5", order_type="FAK")
    res = _place(v, c, item)
    assert res["success"] and res["status"] == "matched" and len(res["tradeIDs"]) == 1
    full = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.52", "5", salt=2))
    assert full["status"] == "matched" and len(full["tradeIDs"]) == 1


# ---------------------------------------------------------------------- trade reports


def test_taker_fill_report_and_position() -> None:
    sim, v, c, m = _venue()
    res = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.52", "5"))
    [tid] = res["tradeIDs"]
    rec = v._trades[tid]
    p = rec.payload
    assert p["status"] == "MATCHED" and rec.history == ["MATCHED"]
    assert (p["trader_side"], p["taker_order_id"], p["asset_id"], p["side"], p["price"], p["size"]) == (
        "TAKER", res["orderID"], m.yes_token_id, "BUY", "0.52", "5")
    assert (p["owner"], p["maker_address"], p["outcome"], p["fee_rate_bps"]) == (c.api_key, ADDR, "Yes", "400")
    assert p["matchtime"] == str(int(sim.now())) and p["timestamp"] == str(int(round(sim.now() * 1000)))
    [mo] = p["maker_orders"]
    assert (mo["owner"], mo["maker_address"], mo["matched_amount"], mo["price"], mo["side"], mo["fee_rate_bps"]) == (
        BACKGROUND_OWNER, BACKGROUND_ADDRESS, "5", "0.52", "SELL", "0")  # taker-only: makers pay 0
    assert mo["order_id"].startswith("0x") and len(mo["order_id"]) == 66 and mo["order_id"] != res["orderID"]
    assert v._positions[(c.api_key, m.yes_token_id)] == D(5)
    [fill] = v.account_fills(c.api_key)
    assert (fill["trade_id"], fill["order_id"], fill["side"], fill["price"], fill["size"]) == (
        tid, res["orderID"], "BUY", D("0.52"), D(5))
    assert v._order_json(sim.get_order(res["orderID"]))["associate_trades"] == [tid]  # type: ignore[arg-type]
    # a NO sell against it: the position goes down, the outcome is "No"
    v._positions[(c.api_key, m.no_token_id)] = D(5)
    m.fee = FeeSchedule(D("0.04"), 1, False, D("0.25"))  # not taker-only: makers pay the rate too
    res = _place(v, c, _signed(c, m.no_token_id, "SELL", "0.48", "5", salt=2))  # buys YES at 0.52
    p = v._trades[res["tradeIDs"][0]].payload
    assert (p["side"], p["outcome"], p["maker_orders"][0]["fee_rate_bps"]) == ("SELL", "No", "400")
    assert v._positions[(c.api_key, m.no_token_id)] == 0


def test_account_against_account_names_both_orders() -> None:
    sim, v, c, m = _venue()
    c2 = derive_creds(OTHER_ADDR, 0)
    v.keys[c2.api_key] = c2
    maker = _signed(c2, m.yes_token_id, "BUY", "0.49", "10", key=OTHER_KEY, signer=OTHER_ADDR)
    mres = _place(v, c2, maker)
    v._positions[(c.api_key, m.yes_token_id)] = D(10)
    tres = _place(v, c, _signed(c, m.yes_token_id, "SELL", "0.49", "10", salt=7))
    t = v._trades[tres["tradeIDs"][0]].payload
    assert t["trader_side"] == "TAKER" and t["maker_orders"][0]["order_id"] == mres["orderID"]
    assert t["maker_orders"][0]["owner"] == c2.api_key and t["maker_orders"][0]["side"] == "BUY"
    assert t["maker_orders"][0]["maker_address"] == ADDR  # the funder the maker order named
    [mk] = [v._trades[i] for i in v._trades_by_owner[c2.api_key]]
    assert mk.payload["trader_side"] == "MAKER" and mk.payload["taker_order_id"] == tres["orderID"]
    assert mk.payload["owner"] == c.api_key and mk.payload["maker_orders"][0]["order_id"] == mres["orderID"]
    assert v._positions[(c2.api_key, m.yes_token_id)] == D(10) and v._positions[(c.api_key, m.yes_token_id)] == 0


def _maker_trade(sim: Simulator, m: SimMarket, n: int, side: Side = Side.BUY, price: str = "0.40",
                 token: str | None = None) -> SimTrade:
    return SimTrade(f"t-{n}", "0xmine", "acct", token or m.yes_token_id, m.condition_id, side, D(price), D(5),
                    sim.now(), side.opposite, "MAKER", None)


def test_background_taker_is_shown_on_either_token() -> None:
    sim, v, _, m = _venue()
    forms = set()
    for n in range(16):
        t = _maker_trade(sim, m, n)
        v._on_trade(t)
        p = v._trades[v._trades_by_owner["acct"][-1]].payload
        top = (p["asset_id"], p["price"], p["side"], p["outcome"])
        assert top in {(m.yes_token_id, "0.4", "SELL", "Yes"), (m.no_token_id, "0.6", "BUY", "No")}
        forms.add(top[0])
        assert (p["trader_side"], p["owner"], p["maker_address"]) == ("MAKER", BACKGROUND_OWNER, BACKGROUND_ADDRESS)
        [mo] = p["maker_orders"]
        assert (mo["order_id"], mo["owner"], mo["asset_id"], mo["price"], mo["side"], mo["outcome"]) == (
            "0xmine", "acct", m.yes_token_id, "0.4", "BUY", "Yes")
        assert (mo["matched_amount"], mo["fee_rate_bps"], p["fee_rate_bps"]) == ("5", "0", "400")
        again = dict(v._trades[v._trades_by_owner["acct"][-1]].payload)
        v._trades_by_owner["acct"].pop()
        v._on_trade(t)  # the same trade is reported the same way
        assert v._trades[v._trades_by_owner["acct"][-1]].payload == again
    assert forms == {m.yes_token_id, m.no_token_id}  # a mint/merge match now and then
    no_forms = set()
    for n in range(16, 32):  # a NO maker: the taker shows on NO, or on YES at 1 − price
        v._on_trade(_maker_trade(sim, m, n, token=m.no_token_id))
        p = v._trades[v._trades_by_owner["acct"][-1]].payload
        top = (p["asset_id"], p["price"], p["side"], p["outcome"])
        assert top in {(m.no_token_id, "0.4", "SELL", "No"), (m.yes_token_id, "0.6", "BUY", "Yes")}
        assert p["maker_orders"][0]["outcome"] == "No"
        no_forms.add(top[0])
    assert no_forms == {m.yes_token_id, m.no_token_id}
    assert v._positions[("acct", m.yes_token_id)] == 32 * D(5)


def test_trade_status_lifecycle_and_failed_reversal() -> None:
    sim, v, _, m = _venue()
    t0 = sim.now()
    v.fail_next_trades = 1
    v._on_trade(_maker_trade(sim, m, 1))  # fails
    v._on_trade(_maker_trade(sim, m, 2, Side.SELL, "0.60"))  # settles
    bad, good = (v._trades[i] for i in v._trades_by_owner["acct"])
    assert v.fail_next_trades == 0 and bad.fail and not good.fail
    assert v._positions[("acct", m.yes_token_id)] == 0  # +5 −5
    steps = ((1.9, "MATCHED", "MATCHED"), (2.0, "RETRYING", "MINED"), (4.9, "RETRYING", "MINED"),
             (5.0, "FAILED", "CONFIRMED"), (9.0, "FAILED", "CONFIRMED"))
    for dt, want_bad, want_good in steps:
        sim._t = t0 + dt
        v._tick()
        assert (bad.payload["status"], good.payload["status"]) == (want_bad, want_good), dt
    assert bad.history == ["MATCHED", "RETRYING", "FAILED"]
    assert good.history == ["MATCHED", "MINED", "CONFIRMED"]
    assert good.payload["transaction_hash"].startswith("0x") and len(good.payload["transaction_hash"]) == 66
    assert bad.payload["transaction_hash"] == ""
    assert good.payload["last_update"] == str(int(t0 + 5))
    assert good.payload["timestamp"] == str(int(round((t0 + 5) * 1000)))
    assert v._positions[("acct", m.yes_token_id)] == D(-5)  # the failed BUY is undone, the SELL stands
    assert not v._schedule


def test_resolution_redeems_and_clears_only_that_market() -> None:
    sim, v, _, m = _venue()
    other = [x for x in sim.markets if x.has_book and x is not m][0]
    v._positions[("acct", m.yes_token_id)] = D(30)
    v._positions[("acct", m.no_token_id)] = D(12)
    v._positions[("acct", other.yes_token_id)] = D(7)
    sim.resolve_market(m.condition_id, winner_yes=True)
    [s] = sim.econ.settlements
    assert (s.owner, s.payout, s.yes_shares, s.no_shares) == ("acct", D(30), D(30), D(12))
    assert v._positions == {("acct", other.yes_token_id): D(7)}


# ---------------------------------------------------------------------- cancels


def test_cancel_ids_answers_per_id() -> None:
    sim, v, c, m = _venue()
    c2 = derive_creds(OTHER_ADDR, 0)
    mine = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.45", "10"))["orderID"]
    gone = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.44", "10", salt=2))["orderID"]
    assert sim.cancel_order(c.api_key, gone)
    theirs = _place(v, c2, _signed(c2, m.yes_token_id, "BUY", "0.45", "10", key=OTHER_KEY,
                                   signer=OTHER_ADDR))["orderID"]
    out = v._cancel_ids(c, [mine, "0xnope", theirs, gone])
    assert out == {"canceled": [mine], "not_canceled": {
        "0xnope": "order not found", theirs: "order not found",
        gone: "order can't be canceled: already canceled or matched"}}
    assert sim.get_order(theirs).status == "LIVE"  # type: ignore[union-attr]


# ---------------------------------------------------------------------- HTTP handlers, called directly


async def test_batch_caps() -> None:
    _, v, c, _ = _venue()
    resp = await v.post_orders(_req(c, "POST", "/orders", json.dumps(["x"] * 16)))
    assert resp.status == 400 and _json(resp) == {"error": "Too many orders in payload: 16, max allowed: 15"}
    resp = await v.post_orders(_req(c, "POST", "/orders", json.dumps(["x"] * 15)))
    out = _json(resp)
    assert resp.status == 200 and len(out) == 15
    assert out[0] == {"success": False, "errorMsg": "Invalid order payload", "orderID": "", "status": "",
                      "makingAmount": "", "takingAmount": "", "tradeIDs": [], "transactionsHashes": []}
    resp = await v.cancel_orders(_req(c, "DELETE", "/orders", json.dumps(["0x1"] * 3001)))
    assert resp.status == 400 and _json(resp) == {"error": "Too many orders in payload: 3001, max allowed: 3000"}
    resp = await v.cancel_orders(_req(c, "DELETE", "/orders", json.dumps(["0x1"] * 3000)))
    assert resp.status == 200 and _json(resp)["not_canceled"] == {"0x1": "order not found"}


async def test_balances_are_base_units() -> None:
    _, v, c, m = _venue()
    v._positions[(c.api_key, m.yes_token_id)] = D("12.345678")
    q = f"asset_type=conditional&token_id={m.yes_token_id}"
    got = _json(await v.balance_allowance(_req(c, "GET", "/balance-allowance", query=q)))
    big = str(2**256 - 1)
    assert got == {"balance": "12345678", "allowances": {EXCHANGE_V2: big, NEG_RISK_EXCHANGE_V2: big}}
    q = f"asset_type=CONDITIONAL&token_id={m.no_token_id}"
    got = _json(await v.balance_allowance(_req(c, "GET", "/balance-allowance", query=q)))
    assert got["balance"] == "0"
    got = _json(await v.balance_allowance(_req(c, "GET", "/balance-allowance", query="asset_type=COLLATERAL")))
    assert got["balance"] == FAKE_BALANCE


async def test_cursor_pages() -> None:
    _, v, c, _ = _venue()
    rows = [{"n": i} for i in range(250)]
    seen, cursor, pages = [], "MA==", 0
    while cursor != "LTE=":
        page = _json(v._page(_req(c, "GET", "/data/trades", query=f"next_cursor={cursor}"), rows))
        assert page["limit"] == 100 and page["count"] == len(page["data"])
        seen += page["data"]
        cursor = page["next_cursor"]
        pages += 1
    assert seen == rows and pages == 3
    assert _json(v._page(_req(c, "GET", "/data/trades", query="next_cursor=MTAw"), rows))["data"][0] == {"n": 100}
    assert _json(v._page(_req(c, "GET", "/data/trades"), rows[:100]))["next_cursor"] == "LTE="
    nxt = _json(v._page(_req(c, "GET", "/data/trades"), rows[:101]))["next_cursor"]
    assert nxt == base64.b64encode(b"100").decode()
    for bad in ("LTE=", "%21%21", "eA=="):
        assert v._page(_req(c, "GET", "/data/trades", query=f"next_cursor={bad}"), rows).status == 400


async def test_heartbeat_arms_checks_ids_and_cancels_on_silence() -> None:
    sim, v, c, m = _venue()
    oid = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.45", "10"))["orderID"]
    first = _json(await v.heartbeat_v1(_req(c, "POST", "/v1/heartbeats", json.dumps({"heartbeat_id": ""}))))
    assert v.heartbeat_armed(c.api_key)
    wrong = await v.heartbeat_v1(_req(c, "POST", "/v1/heartbeats", json.dumps({"heartbeat_id": "nope"})))
    assert wrong.status == 400 and _json(wrong) == {"error_msg": "Invalid Heartbeat ID",
                                                    "heartbeat_id": first["heartbeat_id"]}
    nxt = _json(await v.heartbeat_v1(_req(c, "POST", "/v1/heartbeats",
                                          json.dumps({"heartbeat_id": first["heartbeat_id"]}))))
    assert nxt["heartbeat_id"] != first["heartbeat_id"]
    v._tick()
    assert sim.get_order(oid).status == "LIVE" and v.heartbeat_cancels == 0  # type: ignore[union-attr]
    v._hb[c.api_key] = (nxt["heartbeat_id"], time.monotonic() - 0.001)  # the deadline passed
    v._tick()
    assert sim.get_order(oid).status == "CANCELED" and v.heartbeat_cancels == 1  # type: ignore[union-attr]
    assert not v.heartbeat_armed(c.api_key)


@pytest.mark.parametrize("query", ["", "date=2026-5-28", "date=nope", "date=2026-13-01"])
async def test_rewards_need_a_real_day(query: str) -> None:
    _, v, c, _ = _venue()
    resp = await v.rewards_user(_req(c, "GET", "/rewards/user", query=query))
    assert resp.status == 400


# ---------------------------------------------------------------------- order records, rewards and rebates days


def test_order_records_with_and_without_the_venue_record() -> None:
    sim, v, c, m = _venue()
    res = _place(v, c, _signed(c, m.no_token_id, "BUY", "0.45", "10", expiration="1780000100", order_type="GTD"))
    j = v._order_json(sim.get_order(res["orderID"]))  # type: ignore[arg-type]
    assert (j["outcome"], j["maker_address"], j["expiration"], j["order_type"], j["associate_trades"]) == (
        "No", ADDR, "1780000100", "GTD", [])
    assert (j["side"], j["price"], j["original_size"], j["size_matched"], j["status"]) == (
        "BUY", "0.45", "10", "0", "LIVE")
    bare = sim.place_order("raw", "0xraw", m.yes_token_id, Side.BUY, D("0.46"), D(10), True)  # no venue record
    j = v._order_json(bare)
    assert (j["outcome"], j["maker_address"], j["expiration"], j["associate_trades"]) == ("Yes", "", "0", [])


async def test_rewards_and_rebates_are_reported_for_the_day_paid() -> None:
    sim, v, c, m = _venue()
    _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.45", "10"))  # names the maker (funder) address
    day = "2026-05-28"
    sim.econ.paid += [Payout(c.api_key, m.condition_id, day, D(1), D(0)),
                      Payout(c.api_key, "0xrebates-only", day, D(0), D("2.25")),
                      Payout(c.api_key, m.condition_id, "2026-05-27", D(9), D(9)),
                      Payout("someone", m.condition_id, day, D(4), D(4))]
    got = _json(await v.rewards_user(_req(c, "GET", "/rewards/user", query=f"date={day}")))
    assert got["data"] == [{"date": f"{day}T00:00:00Z", "condition_id": m.condition_id,
                            "asset_address": PUSD_ADDRESS, "maker_address": ADDR, "earnings": 1.0, "asset_rate": 1}]
    reb = _json(await v.rebates_current(_req(c, "GET", "/rebates/current",
                                             query=f"date={day}&maker_address={ADDR.lower()}")))
    assert reb == [{"date": day, "condition_id": "0xrebates-only", "asset_address": PUSD_ADDRESS,
                    "maker_address": ADDR.lower(), "rebated_fees_usdc": "2.25"}]
    bad = await v.rebates_current(_req(c, "GET", "/rebates/current", query=f"date={day}"))
    assert bad.status == 400


async def test_cancel_and_batch_handlers() -> None:
    sim, v, c, m = _venue()
    other = [x for x in sim.markets if x.has_book and x is not m and not x.neg_risk][0]
    other.min_order_size = D(5)
    px = str(other.bid_px[0] / 1000) if other.bid_px else "0.02"
    batch = [_signed(c, m.yes_token_id, "BUY", "0.45", "10", salt=s) for s in (1, 2)] + ["x"]
    batch.append(_signed(c, m.no_token_id, "BUY", "0.45", "10", salt=3))
    batch.append(_signed(c, other.yes_token_id, "BUY", px, "10", salt=4))
    out = _json(await v.post_orders(_req(c, "POST", "/orders", json.dumps(batch))))
    assert [r["success"] for r in out] == [True, True, False, True, True]
    a, b, _, n, o = (r["orderID"] for r in out)
    assert all(sim.get_order(i).status == "LIVE" for i in (a, b, n, o))  # type: ignore[union-attr]
    resp = await v.cancel_order(_req(c, "DELETE", "/order", json.dumps({"orderID": a})))
    assert _json(resp) == {"canceled": [a], "not_canceled": {}}
    for body in ("{}", "[]", "nope"):
        resp = await v.cancel_order(_req(c, "DELETE", "/order", body))
        assert resp.status == 400 and _json(resp) == {"error": "Invalid payload"}
    resp = await v.cancel_orders(_req(c, "DELETE", "/orders", json.dumps([b, a])))
    assert _json(resp) == {"canceled": [b],
                           "not_canceled": {a: "order can't be canceled: already canceled or matched"}}
    resp = await v.cancel_market_orders(_req(c, "DELETE", "/cancel-market-orders",
                                             json.dumps({"market": m.condition_id, "asset_id": m.yes_token_id})))
    assert _json(resp) == {"canceled": [], "not_canceled": {}}  # the NO order is not on that asset
    resp = await v.cancel_market_orders(_req(c, "DELETE", "/cancel-market-orders",
                                             json.dumps({"market": m.condition_id})))
    assert _json(resp) == {"canceled": [n], "not_canceled": {}}
    resp = await v.cancel_market_orders(_req(c, "DELETE", "/cancel-market-orders"))  # no body: every market
    assert _json(resp) == {"canceled": [o], "not_canceled": {}}
    bad = dataclasses.replace(c, secret=base64.urlsafe_b64encode(b"x" * 32).decode())
    calls: list[tuple[Any, str, str, str]] = [
        (v.post_orders, "POST", "/orders", "[]"), (v.cancel_order, "DELETE", "/order", "{}"),
        (v.cancel_orders, "DELETE", "/orders", "[]"), (v.cancel_market_orders, "DELETE", "/cancel-market-orders", "{}"),
        (v.balance_allowance, "GET", "/balance-allowance", ""), (v.heartbeat_v1, "POST", "/v1/heartbeats", ""),
        (v.rewards_user, "GET", "/rewards/user", "")]
    for handler, method, path, body in calls:
        resp = await handler(_req(bad, method, path, body))
        assert resp.status == 401 and _json(resp) == {"error": "Unauthorized/Invalid api key"}, path


def test_user_channel_gets_the_account_events() -> None:
    sim, v, c, m = _venue()
    conns = {}
    for name, key, markets in (("mine", c.api_key, None), ("other", "someone", None),
                               ("elsewhere", c.api_key, {"0xother"}), ("this", c.api_key, {m.condition_id})):
        conn = _UserConn(mock.Mock(), None)
        conn.api_key, conn.markets = key, markets
        v._conns.add(conn)
        conns[name] = conn
    oid = _place(v, c, _signed(c, m.yes_token_id, "BUY", "0.49", "10"))["orderID"]
    c2 = derive_creds(OTHER_ADDR, 0)
    v._positions[(c2.api_key, m.yes_token_id)] = D(10)
    _place(v, c2, _signed(c2, m.yes_token_id, "SELL", "0.49", "6", key=OTHER_KEY, signer=OTHER_ADDR))
    assert v._cancel_ids(c, [oid])["canceled"] == [oid]

    def frames(name: str) -> list[dict[str, Any]]:
        q = conns[name].queue
        return [json.loads(q.get_nowait()) for _ in range(q.qsize())]

    got = frames("mine")
    assert [(f["event_type"], f["type"]) for f in got] == [
        ("order", "PLACEMENT"), ("trade", "TRADE"), ("order", "UPDATE"), ("order", "CANCELLATION")]
    place, trade, update, cancel = got
    now_ms = str(int(round(sim.now() * 1000)))
    assert place == {"event_type": "order", "type": "PLACEMENT", "id": oid, "owner": c.api_key,
                     "order_owner": c.api_key, "market": m.condition_id, "asset_id": m.yes_token_id, "side": "BUY",
                     "price": "0.49", "original_size": "10", "size_matched": "0", "outcome": "Yes",
                     "order_type": "GTC", "status": "LIVE", "associate_trades": None, "maker_address": ADDR,
                     "created_at": str(int(START)), "expiration": "0", "timestamp": now_ms}
    assert trade["trader_side"] == "MAKER" and trade["status"] == "MATCHED"
    assert (update["size_matched"], update["status"], update["associate_trades"]) == ("6", "LIVE", [trade["id"]])
    assert (cancel["status"], cancel["size_matched"]) == ("CANCELED", "6")
    assert frames("this") == got
    assert frames("other") == [] and frames("elsewhere") == []
    sim._t += 2
    v._tick()
    assert [(f["event_type"], f["status"]) for f in frames("mine")] == [("trade", "MINED")]


async def test_heartbeat_bodies() -> None:
    _, v, c, _ = _venue()
    ok = await v.heartbeat_v1(_req(c, "POST", "/v1/heartbeats"))  # no body: a first beat
    assert ok.status == 200 and _json(ok)["heartbeat_id"]
    bad = await v.heartbeat_v1(_req(c, "POST", "/v1/heartbeats", "nope"))
    assert bad.status == 400 and _json(bad) == {"error": "Invalid payload"}


def test_tick_drops_user_connections_at_the_fault_rate() -> None:
    _, v, c, _ = _venue()
    conn = _UserConn(mock.Mock(), mock.Mock())
    conn.api_key = c.api_key
    v._conns.add(conn)
    v._tick()  # no fault configured: kept
    assert v.user_connections == 1 and not conn.closed
    v.sandbox.faults.ws_drop_rate = 1e12  # certain within any step
    v._tick()
    assert v.user_connections == 0 and conn.closed and conn.transport.abort.called  # type: ignore[union-attr]
