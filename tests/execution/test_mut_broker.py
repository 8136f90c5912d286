"""The broker's venue calls other than the post (venue/broker.py): cancels (one, a batch, by
market, all; the SDK path and the fast order entry), open orders, trades, balances, scoring,
payouts, heartbeats, the error mapping and the retry loop, and the SDK plumbing. The SDK client
is a scripted stand-in (`FakeClient`, no socket); `test_venue_rules.py` and `test_venue_faults.py`
run the same calls over the sandbox end to end."""
from __future__ import annotations

import asyncio
import logging
import threading
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from py_clob_client_v2 import OpenOrderParams, OrderMarketCancelParams, OrderPayload, TradeParams
from py_clob_client_v2.clob_types import ApiCreds, AssetType, BalanceAllowanceParams, OrdersScoringParams
from py_clob_client_v2.exceptions import PolyApiException, PolyException
from pydantic import SecretStr

from pmm_widgets import logsetup
from pmm_widgets.domain import Quote, Side
from pmm_widgets.venue import broker as broker_module
from pmm_widgets.venue.broker import MAX_CANCEL_BATCH, Broker, BrokerError, CancelError, CancelResult, Creds
from pmm_widgets.venue.order_entry import EntryError

CREDS = ApiCreds("key-1234-abcd", "secret-5678-efgh", "pass-9012-ijkl")


def api_error(status: int | None, body: Any = None) -> PolyApiException:
    """The SDK's exception for an HTTP answer `status` with this JSON body (no status: a
    transport failure, the SDK's "Request exception!")."""
    if status is None:
        return PolyApiException(error_msg="Request exception!")
    return PolyApiException(httpx.Response(status, json=body if body is not None else {"error": "boom"}))


def scripted(answers: list[Any], *args: Any) -> Any:
    """A fake's next scripted answer (the last one repeats): raised when an exception, called
    with `args` when callable, else returned."""
    a = answers.pop(0) if len(answers) > 1 else answers[0]
    if isinstance(a, BaseException):
        raise a
    return a(*args) if callable(a) else a


class FakeClient:
    """The SDK client calls the broker makes, scripted: `answers[name]` are the answers of the
    calls of that name in turn (the last one repeats; an exception is raised, a callable is called
    with the arguments); `calls` keeps (name, args, worker thread name) in order."""

    METHODS = ("cancel_order", "cancel_orders", "cancel_all", "cancel_market_orders", "get_open_orders", "get_trades",
               "get_balance_allowance", "are_orders_scoring", "get_order", "post_heartbeat",
               "get_earnings_for_user_for_day", "derive_api_key", "create_api_key")

    def __init__(self, creds: ApiCreds | None = CREDS, signer: Any = None, funder: str | None = None) -> None:
        self.creds = creds
        self.signer = signer
        self.builder = SimpleNamespace(funder=funder)
        self.host = "http://venue.test"
        self.answers: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...], str]] = []

    def set_api_creds(self, creds: ApiCreds) -> None:
        self.creds = creds

    def __getattr__(self, name: str) -> Any:
        if name not in FakeClient.METHODS:
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            self.calls.append((name, args, threading.current_thread().name))
            return scripted(self.answers.get(name, [None]), *args)

        return call

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args, _ in self.calls if n == name]


@pytest.fixture
def fast_backoff(monkeypatch):
    """Each backoff is its window's upper bound, scaled down so the tests do not wait."""
    monkeypatch.setattr(broker_module, "backoff_delay", lambda attempt, base, cap: min(cap, base * 2 ** attempt))


@pytest.fixture
def make(fast_backoff):
    """make(client=None, **broker kwargs) -> (broker, fake SDK client); closed at teardown."""
    made: list[Broker] = []

    def build(client: FakeClient | None = None, **kw: Any) -> tuple[Broker, FakeClient]:
        opts: dict[str, Any] = dict(retries=3, backoff_base=0.001, backoff_cap=0.004, deadline=5.0)
        opts.update(kw)
        b = Broker("http://127.0.0.1:9/", 137, None, **opts)
        made.append(b)
        c = client or FakeClient()
        b._client = c  # type: ignore[assignment]
        return b, c

    yield build
    for b in made:
        b.close()


class FakeEntry:
    """The fast order entry's cancel, scripted like FakeClient (answers in turn, the last repeats)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers) or [{}]
        self.calls: list[list[str]] = []
        self.inflight = 0
        self.peak = 0

    async def cancel(self, ids: list[str]) -> Any:
        self.calls.append(list(ids))
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            await asyncio.sleep(0.001)
            return scripted(self.answers, ids)
        finally:
            self.inflight -= 1


def all_canceled(ids: list[str]) -> dict[str, Any]:
    return {"canceled": list(ids), "not_canceled": {}}


# ---------------------------------------------------------------------------------------- cancels
async def test_a_cancel_of_nothing_asks_the_venue_nothing(make):
    b, c = make()
    b._entry = FakeEntry()  # type: ignore[assignment]
    r = await b.cancel([])
    assert (r.canceled, r.not_canceled) == ([], {}) and c.calls == [] and b._entry.calls == []  # type: ignore[attr-defined]


async def test_one_id_is_one_delete_order_in_the_worker_thread(make):
    b, c = make()
    c.answers["cancel_order"] = [{"canceled": ["0xa"], "not_canceled": {}}]
    r = await b.cancel(("0xa",))
    assert (r.canceled, r.not_canceled) == (["0xa"], {})
    assert [(n, a) for n, a, _ in c.calls] == [("cancel_order", (OrderPayload(orderID="0xa"),))]
    assert c.calls[0][2].startswith("pmm-broker")  # the SDK is only ever called from the broker's thread


async def test_many_ids_go_in_delete_orders_batches_of_3000_and_the_answers_add_up(make):
    assert MAX_CANCEL_BATCH == 3000  # DELETE /orders' limit
    b, c = make()
    c.answers["cancel_orders"] = [lambda chunk: {"canceled": chunk[1:], "not_canceled": {chunk[0]: "order not found"}}]
    ids = [f"0x{i:05x}" for i in range(6001)]
    r = await b.cancel(ids)
    assert [len(a[0]) for a in c.named("cancel_orders")] == [3000, 3000, 1]
    assert [a[0] for a in c.named("cancel_orders")] == [ids[:3000], ids[3000:6000], ids[6000:]]
    assert r.not_canceled == {ids[0]: "order not found", ids[3000]: "order not found", ids[6000]: "order not found"}
    assert r.canceled == ids[1:3000] + ids[3001:6000]
    r2 = await b.cancel(ids[:2])
    assert c.named("cancel_orders")[-1] == (ids[:2],) and r2.canceled == [ids[1]]  # two ids: the batch call
    assert c.named("cancel_order") == []


async def test_sdk_cancels_retry_a_transient_failure_and_fail_at_once_on_a_refusal(make):
    b, c = make()
    c.answers["cancel_orders"] = [api_error(503), api_error(None), all_canceled]
    r = await b.cancel(["0xa", "0xb"])
    assert r.canceled == ["0xa", "0xb"] and len(c.named("cancel_orders")) == 3
    assert (b.retried, b.failures) == (2, 0)
    c.answers["cancel_order"] = [api_error(400, {"error": "bad order id"}), all_canceled]
    with pytest.raises(BrokerError) as ei:
        await b.cancel(["0xa"])
    assert (ei.value.op, ei.value.status, ei.value.message, ei.value.transient) == ("cancel", 400, "bad order id", False)
    assert len(c.named("cancel_order")) == 1 and (b.retried, b.failures) == (2, 1)


async def test_the_fast_path_cancels_through_the_order_entry_only_with_credentials(make):
    b, c = make()
    entry = FakeEntry(all_canceled)
    b._entry = entry  # type: ignore[assignment]
    r = await b.cancel(["0xa"])
    assert r.canceled == ["0xa"] and entry.calls == [["0xa"]] and c.calls == []
    c.creds = None  # no L2 credentials: the SDK path (which refuses for want of them)
    c.answers["cancel_order"] = [PolyException("API Credentials are needed to interact with this endpoint!")]
    with pytest.raises(BrokerError) as ei:
        await b.cancel(["0xa"])
    assert entry.calls == [["0xa"]] and len(c.named("cancel_order")) == 1
    assert (ei.value.status, ei.value.transient) == (None, False) and "Credentials" in ei.value.message


async def test_fast_cancels_go_in_batches_of_3000_all_in_flight_together(make):
    b, _ = make()
    entry = FakeEntry(lambda ids: {"canceled": ids[:-1], "not_canceled": {ids[-1]: "matched"}})
    b._entry = entry  # type: ignore[assignment]
    ids = [f"0x{i:05x}" for i in range(7000)]
    r = await b.cancel(ids)
    assert entry.calls == [ids[:3000], ids[3000:6000], ids[6000:]] and entry.peak == 3
    assert r.canceled == ids[:2999] + ids[3000:5999] + ids[6000:6999]
    assert r.not_canceled == {ids[2999]: "matched", ids[5999]: "matched", ids[6999]: "matched"}


async def test_a_failed_fast_batch_keeps_what_the_other_batches_cancelled(make):
    b, _ = make()

    def answer(ids: list[str]) -> Any:
        if ids[0] == "0x00bb8":  # the second batch (ids 3000..5999) is refused
            raise EntryError("cancel", "bad batch", 400)
        return {"canceled": ids[1:], "not_canceled": {ids[0]: "matched"}}

    b._entry = FakeEntry(answer)  # type: ignore[assignment]
    ids = [f"0x{i:05x}" for i in range(7000)]
    with pytest.raises(CancelError) as ei:
        await b.cancel(ids)
    assert ei.value.partial.canceled == ids[1:3000] + ids[6001:]
    assert ei.value.partial.not_canceled == {ids[0]: "matched", ids[6000]: "matched"}
    assert (ei.value.op, ei.value.status, ei.value.transient) == ("cancel", 400, False)
    assert "1 of 3 batches failed: bad batch" in str(ei.value) and isinstance(ei.value, BrokerError)
    b._entry = FakeEntry(EntryError("cancel", "bad batch", 400))  # type: ignore[assignment]
    with pytest.raises(BrokerError) as one:  # one batch: its own error, nothing partial to keep
        await b.cancel(ids[:5])
    assert type(one.value) is BrokerError and one.value.message == "bad batch"


async def test_a_failed_sdk_batch_keeps_what_the_other_batches_cancelled_and_the_rest_are_still_sent(make):
    b, c = make()

    def answer(chunk: list[str]) -> Any:
        if chunk[0] == "0x00000":
            raise api_error(400, {"error": "bad batch"})
        return all_canceled(chunk)

    c.answers["cancel_orders"] = [answer]
    ids = [f"0x{i:05x}" for i in range(6500)]
    with pytest.raises(CancelError) as ei:
        await b.cancel(ids)
    assert len(c.named("cancel_orders")) == 3  # the failed first batch did not stop the others
    assert ei.value.partial.canceled == ids[3000:] and ei.value.partial.not_canceled == {}
    assert ei.value.message == "1 of 3 batches failed: bad batch"


async def test_fast_cancels_retry_a_transient_failure_and_fail_at_once_on_a_refusal(make):
    b, _ = make()
    entry = FakeEntry(EntryError("cancel", "Service Unavailable", 503), EntryError("cancel", "ReadTimeout: "),
                      all_canceled)
    b._entry = entry  # type: ignore[assignment]
    assert (await b.cancel(["0xa"])).canceled == ["0xa"]
    assert len(entry.calls) == 3 and (b.retried, b.failures) == (2, 0)
    b._entry = entry = FakeEntry(EntryError("cancel", f"bad key {CREDS.api_secret}", 401), all_canceled)  # type: ignore[assignment]
    with pytest.raises(BrokerError) as ei:
        await b.cancel(["0xa"])
    assert (ei.value.op, ei.value.status, ei.value.transient) == ("cancel", 401, False)
    assert ei.value.message == "bad key ***" and len(entry.calls) == 1 and b.failures == 1
    b._entry = entry = FakeEntry(EntryError("cancel", "Too Many Requests", 429))  # type: ignore[assignment]
    with pytest.raises(BrokerError) as ei:
        await b.cancel(["0xa"])
    assert ei.value.transient and len(entry.calls) == 4  # 1 + 3 retries


@pytest.mark.parametrize(("answer", "canceled", "not_canceled"), [
    ("not json", [], {}),
    (None, [], {}),
    ([], [], {}),
    ({}, [], {}),
    ({"canceled": None, "not_canceled": None}, [], {}),
    ({"canceled": ["0xa", 7], "not_canceled": {"0xb": "order not found", 8: 9}}, ["0xa", "7"],
     {"0xb": "order not found", "8": "9"}),
    # another shape (a list for the object, text for the list): nothing known, never a crash
    ({"canceled": ["0xa"], "not_canceled": ["0xb"]}, ["0xa"], {}),
    ({"canceled": "0xab", "not_canceled": {"0xb": "gone"}}, [], {"0xb": "gone"}),
    ({"canceled": {"0xa": 1}, "not_canceled": "0xb"}, [], {}),
])
def test_a_cancel_answer_is_read_as_lists_of_strings(answer, canceled, not_canceled):
    r = Broker._cancel_result(answer)
    assert isinstance(r, CancelResult) and (r.canceled, r.not_canceled) == (canceled, not_canceled)


async def test_cancel_market_and_cancel_all_are_retried_sdk_calls(make):
    b, c = make()
    c.answers["cancel_market_orders"] = [api_error(502), {"canceled": ["0xa"], "not_canceled": {"0xb": "matched"}}]
    r = await b.cancel_market(market="0xm")
    assert (r.canceled, r.not_canceled) == (["0xa"], {"0xb": "matched"})
    assert c.named("cancel_market_orders") == [(OrderMarketCancelParams(market="0xm", asset_id=None),)] * 2
    await b.cancel_market(asset_id="123")
    assert c.named("cancel_market_orders")[-1] == (OrderMarketCancelParams(market=None, asset_id="123"),)
    c.answers["cancel_all"] = [api_error(None), {"canceled": ["0xc"], "not_canceled": {}}]
    r = await b.cancel_all()
    assert r.canceled == ["0xc"] and len(c.named("cancel_all")) == 2 and b.retried == 2
    assert {t for _, _, t in c.calls} == {t for _, _, t in c.calls if t.startswith("pmm-broker")}
    c.answers["cancel_all"] = [api_error(401, {"error": "Unauthorized/Invalid api key"})]
    with pytest.raises(BrokerError) as ei:
        await b.cancel_all()
    assert (ei.value.op, ei.value.status, ei.value.message) == ("cancel_all", 401, "Unauthorized/Invalid api key")
    c.answers["cancel_market_orders"] = [api_error(400, {"error": "invalid market"})]
    with pytest.raises(BrokerError) as ei:
        await b.cancel_market(market="0xm")
    assert (ei.value.op, ei.value.status) == ("cancel_market", 400)


# ---------------------------------------------------------------------------------------- reads
def order_row(vid: str, **kw: Any) -> dict[str, Any]:
    return {"id": vid, "status": "LIVE", "market": "0xm", "asset_id": "123", "side": "BUY", "original_size": "10",
            "size_matched": "0", "price": "0.4", **kw}


async def test_open_orders_are_read_with_their_filters_and_typed(make):
    b, c = make()
    c.answers["get_open_orders"] = [api_error(503), [order_row("0xa"), order_row("0xb", size_matched="4")]]
    got = await b.open_orders(market="0xm", asset_id="123")
    assert [(o.id, o.size_matched, o.original_size) for o in got] == [("0xa", "0", "10"), ("0xb", "4", "10")]
    assert c.named("get_open_orders") == [(OpenOrderParams(market="0xm", asset_id="123"),)] * 2  # retried once
    assert b.retried == 1
    await b.open_orders()
    assert c.named("get_open_orders")[-1] == (OpenOrderParams(),)


async def test_an_open_orders_read_without_retry_fails_at_the_first_transient_error(make):
    b, c = make()
    c.answers["get_open_orders"] = [api_error(503), []]
    with pytest.raises(BrokerError) as ei:
        await b.open_orders(retry=False)
    assert (ei.value.op, ei.value.status, ei.value.transient) == ("open_orders", 503, True)
    assert len(c.named("get_open_orders")) == 1 and (b.retried, b.failures) == (0, 1)


@pytest.mark.parametrize("answer", ["<html>oops</html>", {"data": []}, None])
async def test_a_read_that_is_not_a_list_is_an_error(make, answer):
    b, c = make()
    c.answers["get_open_orders"] = [answer]
    c.answers["get_trades"] = [answer]
    with pytest.raises(BrokerError) as ei:
        await b.open_orders()
    assert str(ei.value) == f"open_orders: the venue answered {type(answer).__name__}, not a list"
    with pytest.raises(BrokerError) as ei:
        await b.trades()
    assert ei.value.op == "trades" and ei.value.status is None and not ei.value.transient


async def test_trades_are_read_since_an_instant_and_typed(make, caplog):
    b, c = make()
    rows = [{"id": "t1", "market": "0xm", "asset_id": "123", "side": "BUY", "price": "0.5", "size": "3",
             "status": "CONFIRMED", "match_time": "1700000000"}, {"no_id": True}]
    c.answers["get_trades"] = [api_error(None), rows]
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.venue.broker"):
        got = await b.trades(after=1_699_999_000, market="0xm")
    assert [(t.id, t.size, t.price) for t in got] == [("t1", "3", "0.5")]
    assert c.named("get_trades") == [(TradeParams(after=1_699_999_000, market="0xm"),)] * 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["venue trades"]  # the bad row named, skipped
    await b.trades()
    assert c.named("get_trades")[-1] == (TradeParams(),)


async def test_at_most_five_undecodable_rows_are_logged(make, caplog):
    b, c = make()
    c.answers["get_trades"] = [[{"id": i} for i in range(8)]]  # ids must be strings
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.venue.broker"):
        assert await b.trades() == []
    assert len(caplog.records) == 5 and all(r.getMessage().startswith("venue trades: trades: ") for r in caplog.records)


async def test_a_token_balance_is_shares_in_six_decimal_base_units(make):
    b, c = make()
    c.answers["get_balance_allowance"] = [api_error(500), {"balance": "12345678", "allowances": {}}]
    assert await b.token_balance("123") == Decimal("12.345678")
    assert c.named("get_balance_allowance") == [
        (BalanceAllowanceParams(asset_type=AssetType.CONDITIONAL, token_id="123"),)] * 2
    c.answers["get_balance_allowance"] = [{"balance": 2_500_000}]
    assert await b.token_balance("123") == Decimal("2.5")
    c.answers["get_balance_allowance"] = [{"balance": "0"}]
    assert await b.token_balance("123") == 0


async def test_scoring_is_read_per_order_id(make):
    b, c = make()
    c.answers["are_orders_scoring"] = [{"0xa": True, "0xb": False}]
    assert await b.orders_scoring(("0xa", "0xb")) == {"0xa": True, "0xb": False}
    assert c.named("are_orders_scoring") == [(OrdersScoringParams(orderIds=["0xa", "0xb"]),)]
    c.answers["are_orders_scoring"] = [["0xa"]]
    assert await b.orders_scoring(["0xa"]) == {}
    c.answers["are_orders_scoring"] = [api_error(401)]
    with pytest.raises(BrokerError) as ei:
        await b.orders_scoring(["0xa"])
    assert (ei.value.op, ei.value.status) == ("orders_scoring", 401)


async def test_scoring_is_asked_once_and_only_a_json_boolean_is_an_answer(make, caplog):
    b, c = make()
    c.answers["are_orders_scoring"] = [api_error(503), {"0xa": "false", "0xb": None, "0xc": 1, "0xd": False, "0xe": True}]
    with pytest.raises(BrokerError) as ei:  # the cycle awaits it: no retry loop holding the quotes still
        await b.orders_scoring(["0xa"])
    assert ei.value.transient and len(c.named("are_orders_scoring")) == 1 and (b.retried, b.failures) == (0, 1)
    with caplog.at_level(logging.WARNING, "pmm_widgets.venue.broker"):
        assert await b.orders_scoring(["0xa", "0xb", "0xc", "0xd", "0xe"]) == {"0xd": False, "0xe": True}
    assert "3 value(s) not a boolean (first '0xa': 'false')" in caplog.text


async def test_rewards_paid_are_read_for_one_day_retried(make):
    b, c = make()
    c.answers["get_earnings_for_user_for_day"] = [api_error(503), [{"market": "0xm", "earnings": 1.5}]]
    assert await b.rewards_paid("2026-12-01") == [{"market": "0xm", "earnings": 1.5}]
    assert c.named("get_earnings_for_user_for_day") == [("2026-12-01",)] * 2


async def test_rebates_are_read_for_the_funder_else_the_signer(make, monkeypatch):
    from py_clob_client_v2.http_helpers import helpers

    seen: list[tuple[str, dict[str, Any]]] = []
    answers: list[Any] = [api_error(502), [{"market": "0xm"}], [{"market": "0xn"}]]

    def get(url: str, headers: Any = None, data: Any = None, params: Any = None) -> Any:
        seen.append((url, params))
        a = answers.pop(0)
        if isinstance(a, BaseException):
            raise a
        return a

    monkeypatch.setattr(helpers, "get", get)
    b, c = make(FakeClient(funder="0xfunder", signer=SimpleNamespace(address=lambda: "0xsigner")))
    assert await b.rebates_paid("2026-12-01") == [{"market": "0xm"}]
    assert seen == [("http://venue.test/rebates/current", {"date": "2026-12-01", "maker_address": "0xfunder"})] * 2
    c.builder.funder = None
    assert await b.rebates_paid("2026-12-02") == [{"market": "0xn"}]
    assert seen[-1] == ("http://venue.test/rebates/current", {"date": "2026-12-02", "maker_address": "0xsigner"})
    c.signer = None
    with pytest.raises(BrokerError) as ei:
        await b.rebates_paid("2026-12-03")
    assert str(ei.value) == "rebates_current: no maker address (no private key)" and len(seen) == 3


async def test_one_order_is_read_typed_and_a_bad_answer_is_an_error(make):
    b, c = make()
    c.answers["get_order"] = [api_error(503), order_row("0xa", size_matched="2")]
    o = await b.get_order("0xa")
    assert (o.id, o.size_matched) == ("0xa", "2") and c.named("get_order") == [("0xa",)] * 2
    c.answers["get_order"] = [{"status": "LIVE"}]  # no id
    with pytest.raises(BrokerError) as ei:
        await b.get_order("0xa")
    assert ei.value.op == "get_order" and ei.value.message.startswith("get_order: ") and not ei.value.transient
    c.answers["get_order"] = ["null"]
    with pytest.raises(BrokerError):
        await b.get_order("0xa")


# ---------------------------------------------------------------------------------------- heartbeats
async def test_heartbeats_chain_the_id_the_venue_returned(make):
    b, c = make()
    c.answers["post_heartbeat"] = [{"heartbeat_id": "hb-1"}, {"heartbeat_id": "hb-2"}]
    assert await b.heartbeat() == "hb-1"
    assert await b.heartbeat() == "hb-2"
    assert c.named("post_heartbeat") == [("",), ("hb-1",)] and b._hb_id == "hb-2"


async def test_an_invalid_heartbeat_id_resyncs_to_the_one_the_venue_expects(make):
    b, c = make()
    b._hb_id = "stale"
    c.answers["post_heartbeat"] = [api_error(400, {"error_msg": "Invalid Heartbeat ID", "heartbeat_id": "hb-9"}),
                                   {"heartbeat_id": "hb-10"}]
    assert await b.heartbeat() == "hb-10"
    assert c.named("post_heartbeat") == [("stale",), ("hb-9",)] and b.retried == 0


@pytest.mark.parametrize(("status", "body"), [
    (400, {"error_msg": "Invalid payload"}),  # a 400 naming no id to resync to
    (401, {"error": "Unauthorized", "heartbeat_id": "hb-9"}),  # an id on another refusal: not a resync
])
async def test_other_heartbeat_refusals_fail_at_once(make, status, body):
    b, c = make()
    b._hb_id = "hb-1"
    c.answers["post_heartbeat"] = [api_error(status, body), {"heartbeat_id": "hb-2"}]
    with pytest.raises(BrokerError) as ei:
        await b.heartbeat()
    assert (ei.value.op, ei.value.status) == ("heartbeat", status)
    assert c.named("post_heartbeat") == [("hb-1",)] and b._hb_id == "hb-1" and b.failures == 1


async def test_a_text_heartbeat_refusal_fails_and_a_lost_answer_is_retried_with_the_same_id(make):
    b, c = make()
    b._hb_id = "hb-1"
    c.answers["post_heartbeat"] = [PolyApiException(httpx.Response(400, text="bad request")), {"heartbeat_id": "x"}]
    with pytest.raises(BrokerError) as ei:
        await b.heartbeat()
    assert (ei.value.status, ei.value.message) == (400, "bad request")
    c.answers["post_heartbeat"] = [api_error(None), api_error(503), {"heartbeat_id": "hb-2"}]
    assert await b.heartbeat() == "hb-2"
    assert c.named("post_heartbeat")[1:] == [("hb-1",)] * 3 and b.retried == 2


async def test_a_heartbeats_retries_end_within_the_bound_it_is_given(make):
    b, c = make(backoff_base=0.02, backoff_cap=0.02, deadline=5.0, retries=50)
    c.answers["post_heartbeat"] = [api_error(503)]
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(BrokerError) as ei:
        await b.heartbeat(within=0.1)
    took = asyncio.get_running_loop().time() - t0
    assert ei.value.transient and took < 0.5 and 2 <= len(c.named("post_heartbeat")) <= 6
    c.answers["post_heartbeat"] = [api_error(503), api_error(503), {"heartbeat_id": "hb-3"}]
    assert await b.heartbeat() == "hb-3"  # no bound: the broker's own deadline and retries


@pytest.mark.parametrize("answer", [{"status": "ok"}, {"heartbeat_id": None}, "ok", None])
async def test_a_heartbeat_answer_without_an_id_starts_the_chain_again(make, answer):
    b, c = make()
    b._hb_id = "hb-1"
    c.answers["post_heartbeat"] = [answer]
    assert await b.heartbeat() == "" and b._hb_id == ""


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("exc", "status", "message", "transient"), [
    (api_error(400, {"error": "not enough balance", "error_msg": "x"}), 400, "not enough balance", False),
    (api_error(400, {"error_msg": "invalid tick", "errorMsg": "x"}), 400, "invalid tick", False),
    (api_error(409, {"errorMsg": "Duplicated"}), 409, "Duplicated", False),
    (api_error(422, {"other": 1}), 422, "{'other': 1}", False),
    (api_error(400, {"error": ""}), 400, "{'error': ''}", False),
    (PolyApiException(httpx.Response(502, text="Bad Gateway")), 502, "Bad Gateway", True),
    (api_error(429, {"error": "slow down"}), 429, "slow down", True),
    (api_error(None), None, "Request exception!", True),
    (PolyException("invalid tick size (0.01)"), None, "invalid tick size (0.01)", False),
    (httpx.ConnectError("refused"), None, "ConnectError: refused", True),
    (httpx.ReadTimeout("slow"), None, "ReadTimeout: slow", True),
    (TimeoutError("late"), None, "TimeoutError: late", True),
    (KeyError("next_cursor"), None, "KeyError: 'next_cursor'", False),
])
async def test_every_failure_becomes_a_broker_error_with_status_and_message(make, exc, status, message, transient):
    b, c = make()
    c.answers["cancel_all"] = [exc]
    with pytest.raises(BrokerError) as ei:
        await b.cancel_all()
    e = ei.value
    assert (e.op, e.status, e.message, e.transient) == ("cancel_all", status, message, transient)
    assert str(e) == "cancel_all: " + (f"HTTP {status}: " if status is not None else "") + message
    assert len(c.named("cancel_all")) == (4 if transient else 1)  # 1 + 3 retries of a transient failure


def test_a_broker_error_keeps_what_it_was_made_of():
    e = BrokerError("cancel", "gone", 404)
    assert (e.op, e.status, e.message, e.transient, str(e)) == ("cancel", 404, "gone", False, "cancel: HTTP 404: gone")
    assert str(BrokerError("sign", "bad key")) == "sign: bad key" and BrokerError("x", "y", transient=True).transient


async def test_errors_never_show_a_credential(make, monkeypatch):
    monkeypatch.setattr(logsetup, "_secrets", set())  # the broker scrubs its own secrets whatever the log registry holds
    b, c = make()
    b._pk = "0x" + "ab" * 32
    c.creds = ApiCreds("key-A", "sec", "pass-phrase")
    leak = f"key {b._pk} secret sec pass pass-phrase api key-A"
    c.answers["cancel_all"] = [api_error(400, {"error": leak})]
    with pytest.raises(BrokerError) as ei:
        await b.cancel_all()
    assert ei.value.message == "key *** secret sec pass *** api ***"  # 3 characters: too short to tell from text
    c.answers["cancel_all"] = [PolyException(leak), ValueError(leak)]
    for _ in range(2):
        with pytest.raises(BrokerError) as ei:
            await b.cancel_all()
        assert "pass-phrase" not in ei.value.message and b._pk not in ei.value.message and "key-A" not in str(ei.value)
    c.creds = None
    c.answers["cancel_all"] = [api_error(400, {"error": leak})]
    with pytest.raises(BrokerError) as ei:
        await b.cancel_all()
    assert ei.value.message == "key *** secret sec pass pass-phrase api key-A"  # no creds: only the key is known
    logsetup.register_secret("pass-phrase")
    with pytest.raises(BrokerError) as ei:
        await b.cancel_all()
    assert ei.value.message == "key *** secret sec pass *** api key-A"  # and what the log registry knows


async def test_a_four_character_secret_is_scrubbed(make, monkeypatch):
    monkeypatch.setattr(logsetup, "_secrets", set())
    b, c = make()
    c.creds = ApiCreds("kkkk", "ssss", "ppp")
    assert b._scrub("kkkk ssss ppp") == "*** *** ppp"


# ---------------------------------------------------------------------------------------- the retry loop
async def test_retries_are_counted_logged_and_bounded_by_the_deadline(make, caplog):
    b, c = make(retries=10, backoff_base=0.02, backoff_cap=1.0, deadline=0.1)  # waits 0.02, 0.04 (fit), 0.08 (not)
    c.answers["cancel_all"] = [api_error(503)]
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.broker"):
        with pytest.raises(BrokerError):
            await b.cancel_all()
    assert len(c.named("cancel_all")) == 3 and (b.retried, b.failures) == (2, 1)
    assert [r.getMessage() for r in caplog.records] == [
        "cancel_all: HTTP 503: boom; retry 1 in 0.02s", "cancel_all: HTTP 503: boom; retry 2 in 0.04s"]


async def test_a_broker_error_raised_in_the_worker_passes_through_unchanged(make):
    b, _ = make()
    err = BrokerError("sign", "tick size unknown", None, transient=True)

    def work() -> None:
        raise err

    with pytest.raises(BrokerError) as ei:
        await b._run("other", work)
    assert ei.value is err
    assert await b._run("x", lambda: threading.current_thread().name) != threading.current_thread().name


# ---------------------------------------------------------------------------------------- plumbing
KEY = "0x" + "4c" * 32


def test_a_broker_without_a_key_reads_only_and_has_the_documented_defaults():
    from py_clob_client_v2.http_helpers import helpers

    b = Broker("http://127.0.0.1:9//", 137, None)
    try:
        assert b.host == "http://127.0.0.1:9" and b._client.host == "http://127.0.0.1:9"
        assert (b.retries, b.backoff_base, b.backoff_cap, b.deadline) == (3, 0.2, 2.0, 30.0)
        assert (b.retried, b.failures, b.dedup_hits, b._hb_id) == (0, 0, 0, "")
        assert (b.chain_id, b.signature_type, b.creds, b._pk) == (137, 0, None, None)
        assert helpers._http_client.timeout == httpx.Timeout(10.0)  # the SDK's module-global client gets ours
        assert (b.address, b.funder, b.can_sign, b.has_creds, b.fast, b.order_entry) == (None, None, False, False,
                                                                                      False, None)
        assert b._entry_creds() is None
    finally:
        b.close()
    b2 = Broker("http://h", 80002, None, timeout=2.5)
    b2.close()
    assert helpers._http_client.timeout == httpx.Timeout(2.5) and b2.chain_id == 80002
    Broker("http://h", 137, None).close()  # back to the default for the other tests


async def test_a_broker_with_a_key_and_creds_signs_fast_and_registers_its_secrets(monkeypatch):
    from eth_account import Account

    monkeypatch.setattr(logsetup, "_secrets", set())
    creds = Creds(SecretStr("key-0000-1111"), SecretStr("c2VjcmV0LXNlY3JldA=="), SecretStr("pass-2222-3333"))
    b = Broker("http://127.0.0.1:9/", 137, SecretStr(KEY), creds)
    try:
        addr = Account.from_key(KEY).address
        assert (b.address, b.funder, b.can_sign, b.has_creds, b.fast) == (addr, addr, True, True, True)
        assert b.creds is creds and b._pk == KEY
        assert (b._client.creds.api_key, b._client.creds.api_secret, b._client.creds.api_passphrase) == (
            "key-0000-1111", "c2VjcmV0LXNlY3JldA==", "pass-2222-3333")
        assert b._entry_creds() == ("key-0000-1111", "c2VjcmV0LXNlY3JldA==", "pass-2222-3333")
        e = b.order_entry
        assert e is not None and e is b._entry and (e.host, e.address, e.max_inflight, e._timeout) == (
            "http://127.0.0.1:9", addr, 8, 10.0)
        assert e._creds() == b._entry_creds() and b._signer is not None and b._signer.address == addr
        assert logsetup.mask(f"{KEY} key-0000-1111 c2VjcmV0LXNlY3JldA== pass-2222-3333") == "*** *** *** ***"
    finally:
        await b.aclose()
    assert b._pool._shutdown  # type: ignore[attr-defined]


def test_the_order_path_options_reach_the_signer_and_the_entry(monkeypatch):
    from eth_account import Account

    funder = "0x" + "12" * 20
    b = Broker("http://h", 137, KEY, signature_type=2, funder=funder, max_inflight=3, timeout=4.0)
    try:
        assert b.signature_type == 2 and b._signer is not None and b._signer.signature_type == 2
        assert b._signer.funder == funder and b.funder == funder and b._client.builder.signature_type == 2
        assert b.address == Account.from_key(KEY).address and b.order_entry is not None
        assert (b.order_entry.max_inflight, b.order_entry._timeout) == (3, 4.0) and b.has_creds is False
    finally:
        b.close()
    slow = Broker("http://h", 137, KEY, fast=False)
    try:
        assert (slow.fast, slow.order_entry, slow._signer, slow.can_sign) == (False, None, None, True)
    finally:
        slow.close()
    Broker("http://h", 137, None).close()  # the SDK's default timeout back for the other tests


def test_a_key_the_project_signer_refuses_falls_back_to_the_sdk(monkeypatch, caplog):
    from pmm_widgets.venue.signer import SignerError

    def refuse(*a: Any, **kw: Any) -> Any:
        raise SignerError("unsupported signature type 7")

    monkeypatch.setattr(broker_module, "OrderSigner", refuse)
    with caplog.at_level(logging.WARNING, logger="pmm_widgets.venue.broker"):
        b = Broker("http://h", 137, KEY)
    b.close()
    assert (b.fast, b.order_entry, b._signer, b.can_sign) == (False, None, None, True)
    assert [r.getMessage() for r in caplog.records] == [
        "broker: project signer unavailable (unsupported signature type 7); signing through the SDK"]


async def test_derive_creds_needs_a_key_and_then_uses_and_hides_the_new_creds(make, monkeypatch):
    monkeypatch.setattr(logsetup, "_secrets", set())
    b, c = make()
    with pytest.raises(BrokerError) as ei:
        await b.derive_creds()
    assert str(ei.value) == "derive: a private key is needed to derive API credentials" and c.calls == []
    c.signer = SimpleNamespace(address=lambda: "0xsigner")
    c.creds = None
    c.answers["derive_api_key"] = [ApiCreds("new-key-1", "new-secret-2", "new-pass-3")]
    got = await b.derive_creds()
    assert b.creds is got and got.api_secret.get_secret_value() == "new-secret-2"
    assert c.creds == ApiCreds("new-key-1", "new-secret-2", "new-pass-3") and b.has_creds
    assert b._entry_creds() == ("new-key-1", "new-secret-2", "new-pass-3")
    assert logsetup.mask("new-key-1 new-secret-2 new-pass-3") == "*** *** ***"
    c.answers["derive_api_key"] = [api_error(401, {"error": "Invalid L1 Request headers"})]
    with pytest.raises(BrokerError) as ei:
        await b.derive_creds()
    assert (ei.value.op, ei.value.status) == ("derive", 401) and len(c.named("derive_api_key")) == 2
    assert c.named("create_api_key") == []  # an existing key is derived; a refused L1 is not sent again


async def test_aclose_closes_the_order_entry_then_the_worker(make):
    b, _ = make()
    order: list[str] = []

    class Entry:
        async def aclose(self) -> None:
            order.append("entry" if not b._pool._shutdown else "entry after the pool")  # type: ignore[attr-defined]

    b._entry = Entry()  # type: ignore[assignment]
    await b.aclose()
    assert order == ["entry"] and b._pool._shutdown  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------- posts: the fast path
def quotes(n: int, tick: str = "0.01", price: str = "0.40") -> list[tuple[Quote, Decimal, bool]]:
    return [(Quote("0xm", str(1000 + k), Side.BUY if k % 2 == 0 else Side.SELL, Decimal(price), Decimal(5)),
             Decimal(tick), k % 3 == 0) for k in range(n)]


class FakePostEntry:
    """The fast order entry's POST /orders, scripted: `answers` in turn (the last repeats; an
    exception is raised, a callable gets the bodies); each call's bodies and owner are kept."""

    def __init__(self, *answers: Any, before: Any = None) -> None:
        self.answers = list(answers) or [lambda bodies: [{"success": True, "orderID": f"0xv{b['salt']}",
                                                            "status": "live"} for b in bodies]]
        self.calls: list[tuple[list[dict[str, Any]], str]] = []
        self.before = before
        self.inflight = self.peak = 0
        self.cancelled = 0
        self.reads = 0  # GET /data/orders pages read (the venue holds none of these orders)

    async def open_orders_page(self, cursor: str, market: str | None = None, asset_id: str | None = None) -> Any:
        self.reads += 1
        return {"data": [], "next_cursor": "LTE="}

    async def post(self, bodies: list[dict[str, Any]], owner: str) -> Any:
        if self.before is not None:
            self.before()
        self.calls.append((list(bodies), owner))
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.inflight -= 1
        return scripted(self.answers, bodies)


@pytest.fixture
def signing(fast_backoff):
    """signing(entry) -> (broker, fake SDK client): a fast broker (project signer) whose order
    entry is `entry` (its open orders too); the rest of the SDK is the FakeClient."""
    made: list[Broker] = []

    def build(entry: Any, **kw: Any) -> tuple[Broker, FakeClient]:
        opts: dict[str, Any] = dict(retries=3, backoff_base=0.001, backoff_cap=0.004, deadline=5.0)
        opts.update(kw)
        b = Broker("http://127.0.0.1:9/", 137, KEY, **opts)
        made.append(b)
        c = FakeClient(signer=SimpleNamespace(address=lambda: b._signer.address if b._signer else None))
        b._client = c  # type: ignore[assignment]
        b._entry = entry
        return b, c

    yield build
    for b in made:
        b.close()


def expected_id(b: Broker, body: dict[str, Any], neg: bool) -> str:
    """The order hash of a POST body, recomputed from its fields by the project signer."""
    from pmm_widgets.venue.signer import OrderSigner

    s = OrderSigner(KEY, b.chain_id, int(body["signatureType"]), body["maker"])
    side = Side.BUY if body["side"] == "BUY" else Side.SELL
    return s.sign_amounts(body["tokenId"], side, int(body["makerAmount"]), int(body["takerAmount"]), neg,
                          salt=int(body["salt"]), timestamp_ms=int(body["timestamp"])).order_id


async def test_fast_posts_go_in_batches_of_15_each_as_soon_as_it_is_signed(signing):
    assert broker_module.MAX_POST_BATCH == 15  # POST /orders' limit
    signed: list[int] = []
    seen_at_post: list[int] = []
    entry = FakePostEntry(before=lambda: seen_at_post.append(len(signed)))
    b, c = signing(entry)
    real = b._sign_chunk
    b._sign_chunk = lambda chunk: (signed.append(len(chunk)), real(chunk))[1]  # type: ignore[method-assign]
    items = quotes(31)
    t0 = asyncio.get_running_loop().time()
    out = await b.post_orders(items)
    assert asyncio.get_running_loop().time() - t0 < 0.9  # no stall between batches
    assert signed == [15, 15, 1] and [len(bodies) for bodies, _ in entry.calls] == [15, 15, 1]
    assert seen_at_post == [1, 2, 3]  # batch k is on the wire before batch k + 1 is signed
    assert entry.peak == 3 and all(owner == CREDS.api_key for _, owner in entry.calls)
    bodies = [body for bs, _ in entry.calls for body in bs]
    assert [body["tokenId"] for body in bodies] == [q.token_id for q, _, _ in items]
    assert [(r.quote, r.ok, r.order_id, r.status) for r in out] == [
        (q, True, f"0xv{body['salt']}", "live") for (q, _, _), body in zip(items, bodies)]


async def test_a_fast_dry_run_signs_and_posts_nothing(signing):
    entry = FakePostEntry()
    b, c = signing(entry)
    c.creds = None  # a dry run needs no API credentials
    items = quotes(16)
    out = await b.post_orders(items, dry_run=True)
    assert entry.calls == [] and len(out) == 16
    for (q, _, neg), r in zip(items, out):
        assert (r.quote, r.ok, r.status, r.error, r.uncertain) == (q, True, "signed", "", False)
        assert r.payload["tokenId"] == q.token_id and r.order_id == expected_id(b, r.payload, neg)
    with pytest.raises(BrokerError) as ei:
        await b.post_orders(items[:1])
    assert str(ei.value) == "post_orders: API credentials are needed to post orders" and entry.calls == []


async def test_an_order_that_cannot_be_signed_fails_alone(signing):
    entry = FakePostEntry()
    b, _ = signing(entry)
    items = quotes(3)
    items[1] = (items[1][0], Decimal("0.3"), False)  # no such tick size
    out = await b.post_orders(items)
    assert [len(bodies) for bodies, _ in entry.calls] == [2]
    assert [body["tokenId"] for body in entry.calls[0][0]] == [items[0][0].token_id, items[2][0].token_id]
    assert (out[1].quote, out[1].ok, out[1].order_id, out[1].error) == (items[1][0], False, None,
                                                                       "SignerError: unsupported tick size 0.3")
    assert out[0].ok and out[2].ok and out[0].order_id != out[2].order_id
    bad = [(q, Decimal("0.3"), n) for q, _, n in quotes(2)]
    out = await b.post_orders(bad)
    assert len(entry.calls) == 1 and [r.error for r in out] == ["SignerError: unsupported tick size 0.3"] * 2  # nothing to post


async def test_a_refused_or_lost_fast_post_comes_back_per_order(signing, caplog):
    entry = FakePostEntry(EntryError("post", f"invalid api key {CREDS.api_secret}", 401))
    b, c = signing(entry)
    items = quotes(2)
    out = await b.post_orders(items)
    assert [(r.ok, r.uncertain, r.order_id, r.error) for r in out] == [(False, False, None, "invalid api key ***")] * 2
    assert len(entry.calls) == 1 and b.failures == 1
    b._entry = entry = FakePostEntry(EntryError("post", "ReadTimeout: "))
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.broker"):
        out = await b.post_orders(items)
    assert caplog.records[0].getMessage() == (
        "post_orders: ReadTimeout: ; checking the venue for 2 order(s), retry 1 in 0.00s")
    assert len(entry.calls) == 4 and entry.reads == 3  # each re-post after a look at the venue
    assert c.named("get_open_orders") == []  # (read through the order entry, not the SDK thread)
    for r, body, (_, _, neg) in zip(out, entry.calls[0][0], items):
        assert (r.ok, r.uncertain, r.error) == (False, True, "ReadTimeout: ")
        assert r.order_id == expected_id(b, body, neg)  # tracked under its hash
    assert [bodies for bodies, _ in entry.calls[1:]] == [entry.calls[0][0]] * 3  # the same signed orders


async def test_a_failure_while_signing_cancels_the_batches_already_in_flight(signing):
    entry = FakePostEntry()
    b, _ = signing(entry)
    real = b._sign_chunk
    n = [0]

    def sign(chunk: Any) -> Any:
        n[0] += 1
        if n[0] == 2:
            raise RuntimeError("signer broke")
        return real(chunk)

    b._sign_chunk = sign  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="signer broke"):
        await b.post_orders(quotes(20))
    await asyncio.sleep(0.02)
    assert len(entry.calls) == 1 and entry.cancelled == 1


# ---------------------------------------------------------------------------------------- posts: the SDK path
class SdkVenue:
    """The SDK client's HTTP seam (`_get`, `_post`) for the SDK order path: GET /tick-size,
    /version and /clob-markets/ and POST /orders answered here (no socket), each request kept."""

    def __init__(self, client: Any, tick: str = "0.01") -> None:
        self.tick = tick
        self.gets: list[str] = []
        self.posts: list[list[dict[str, Any]]] = []
        self.tick_answers: list[Any] = []
        self.down: set[str] = set()  # tokens whose GET /tick-size never gets an answer
        self.post_answers: list[Any] = [lambda payload: [
            {"success": True, "orderID": f"0xv{p['order']['salt']}", "status": "live"} for p in payload]]
        client._get = self.get
        client._post = self.post

    def get(self, endpoint: str, headers: Any = None, params: Any = None) -> Any:
        path = endpoint.split("127.0.0.1:9", 1)[1]
        self.gets.append(path)
        if path == "/tick-size":
            if (params or {}).get("token_id") in self.down:
                raise api_error(None)
            a = self.tick_answers.pop(0) if self.tick_answers else None
            if isinstance(a, BaseException):
                raise a
            return {"minimum_tick_size": self.tick}
        if path == "/version":
            return {"version": 2}
        if path.startswith("/clob-markets/"):
            return {"t": [{"t": str(1000 + k)} for k in range(40)], "mts": self.tick, "nr": False}
        raise AssertionError(f"unexpected GET {path}")

    def post(self, endpoint: str, headers: Any = None, data: Any = None, params: Any = None) -> Any:
        import json

        assert endpoint.endswith("/orders"), endpoint
        payload = json.loads(data)
        self.posts.append(payload)
        return scripted(self.post_answers, payload)


@pytest.fixture
def sdk(fast_backoff):
    """sdk(**broker kwargs) -> (broker, SdkVenue): a broker that signs through the SDK (fast off)."""
    made: list[Broker] = []

    def build(with_creds: bool = True, **kw: Any) -> tuple[Broker, SdkVenue]:
        opts: dict[str, Any] = dict(retries=3, backoff_base=0.001, backoff_cap=0.004, deadline=5.0, fast=False)
        opts.update(kw)
        creds = Creds(SecretStr(CREDS.api_key), SecretStr("c2VjcmV0LXNlY3JldA=="), SecretStr(CREDS.api_passphrase))
        b = Broker("http://127.0.0.1:9/", 137, KEY, creds if with_creds else None, **opts)
        made.append(b)
        return b, SdkVenue(b._client)

    yield build
    for b in made:
        b.close()


async def test_sdk_posts_are_post_only_gtc_batches_of_15_answered_in_order(sdk):
    b, v = sdk()
    assert not b.fast
    items = quotes(16)
    out = await b.post_orders(items)
    assert [len(p) for p in v.posts] == [15, 1]
    sent = [p for batch in v.posts for p in batch]
    assert all((p["orderType"], p["postOnly"], p["deferExec"], p["owner"]) == ("GTC", True, False, CREDS.api_key)
               for p in sent)
    assert [p["order"]["tokenId"] for p in sent] == [q.token_id for q, _, _ in items]
    assert [(r.quote, r.ok, r.order_id, r.status) for r in out] == [
        (q, True, f"0xv{p['order']['salt']}", "live") for (q, _, _), p in zip(items, sent)]


async def test_sdk_order_ids_are_the_order_hashes_the_venue_will_answer_with(sdk, caplog):
    b, v = sdk()
    items = quotes(4)
    v.post_answers = [api_error(None), api_error(400, {"error": "not enough balance"})]
    b.open_orders = lambda **kw: asyncio.sleep(0, [])  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.broker"):
        out = await b.post_orders(items)
    assert [r.getMessage() for r in caplog.records] == [
        "post_orders: Request exception!; checking the venue for 4 order(s), retry 1 in 0.00s"]
    assert len(v.posts) == 2 and v.posts[0] == v.posts[1]  # re-posted as signed, after a look at the venue
    assert [(r.ok, r.uncertain, r.order_id, r.error) for r in out] == [(False, False, None, "not enough balance")] * 4
    dry = await b.post_orders(items, dry_run=True)
    assert len(v.posts) == 2
    for (q, _, neg), r in zip(items, dry):
        assert (r.ok, r.status, r.quote) == (True, "signed", q)
        assert set(r.payload) >= {"salt", "maker", "signer", "tokenId", "signature"} and "owner" not in r.payload
        assert r.order_id == expected_id(b, r.payload, neg)
    assert {neg for _, _, neg in items} == {True, False}


async def test_an_sdk_dry_run_needs_a_key_but_no_credentials(sdk):
    b, v = sdk(with_creds=False)
    out = await b.post_orders(quotes(1), dry_run=True)
    assert out[0].ok and out[0].status == "signed" and v.posts == []
    with pytest.raises(BrokerError) as ei:
        await b.post_orders(quotes(1))
    assert str(ei.value) == "post_orders: API credentials are needed to post orders"
    b._client.signer = None
    with pytest.raises(BrokerError) as ei:
        await b.post_orders(quotes(1), dry_run=True)
    assert str(ei.value) == "post_orders: a private key is needed to sign orders"


async def test_a_finer_tick_refreshes_the_sdk_cache_once_and_other_refusals_fail_the_order(sdk):
    b, v = sdk()
    await b.post_orders(quotes(1))  # the SDK caches 0.01 for this token
    v.tick = "0.001"  # tick_size_change: the market's grid is finer now
    out = await b.post_orders(quotes(1, tick="0.001", price="0.403"))
    assert out[0].ok and "/clob-markets/0xm" in v.gets and len(v.posts) == 2
    assert v.posts[1][0]["order"]["makerAmount"] == "2015000"  # 5 x 0.403
    n_gets = len(v.gets)
    out = await b.post_orders(quotes(1, tick="0.001", price="1.5"))  # refused by the SDK: no refresh, no post
    assert (out[0].ok, out[0].order_id) == (False, None) and out[0].error.startswith("invalid price (1.5)")
    assert len(v.gets) == n_gets and len(v.posts) == 2


async def test_an_sdk_signing_that_could_not_read_the_tick_is_signed_again(sdk):
    b, v = sdk()
    v.tick_answers = [api_error(None)]  # the SDK's GET /tick-size failed for want of an answer
    out = await b.post_orders(quotes(2))
    assert v.gets.count("/tick-size") == 3 and b.retried == 1  # the first token twice, then the second
    assert [r.ok for r in out] == [True, True] and [len(p) for p in v.posts] == [2]


async def test_an_sdk_answer_that_is_not_a_list_leaves_every_order_uncertain(sdk):
    b, v = sdk()
    v.post_answers = [{"error": "cut"}]
    out = await b.post_orders(quotes(2))
    assert [(r.ok, r.uncertain) for r in out] == [(False, True)] * 2 and all(r.order_id for r in out)


# ---------------------------------------------------------------------------------------- more plumbing
async def test_sdk_calls_run_one_at_a_time_in_the_order_they_were_made(make):
    b, _ = make()
    log: list[tuple[str, str]] = []

    def call(name: str, wait: float) -> str:
        log.append(("start", name))
        threading.Event().wait(wait)
        log.append(("end", name))
        return threading.current_thread().name

    names = await asyncio.gather(b._run("a", lambda: call("a", 0.05)), b._run("b", lambda: call("b", 0.0)))
    assert log == [("start", "a"), ("end", "a"), ("start", "b"), ("end", "b")] and names[0] == names[1]


async def test_close_lets_the_calls_already_made_finish(make):
    b, _ = make()
    done: list[str] = []

    def call(name: str) -> None:
        threading.Event().wait(0.05)
        done.append(name)

    tasks = [asyncio.ensure_future(b._run(n, lambda n=n: call(n))) for n in ("first", "queued")]
    await asyncio.sleep(0.01)  # both handed to the worker
    await asyncio.to_thread(b.close)
    assert done == ["first", "queued"]
    await asyncio.gather(*tasks)


async def test_aclose_without_an_order_entry_closes_the_worker(make):
    b, _ = make()
    assert b.order_entry is None
    await b.aclose()
    assert b._pool._shutdown  # type: ignore[attr-defined]


def test_results_and_creds_are_plain_records():
    import dataclasses

    c = Creds(SecretStr("k"), SecretStr("s"), SecretStr("p"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.api_key = SecretStr("other")  # type: ignore[misc]
    assert "'k'" not in repr(c) and "'s'" not in repr(c) and "**********" in repr(c)
    q = Quote("0xm", "1", Side.BUY, Decimal("0.4"), Decimal(5))
    r = broker_module.PlaceResult(q, True, "0xa", "live", payload={"salt": 123456789})
    assert "123456789" not in repr(r) and r.payload == {"salt": 123456789} and not r.uncertain
    assert broker_module.PlaceResult(q, False).payload == {} and broker_module.PlaceResult(q, False).payload is not \
        broker_module.PlaceResult(q, False).payload
    assert broker_module.tick_str(Decimal("0.010")) == "0.01" and broker_module.tick_str(Decimal("1E-3")) == "0.001"


def test_only_slashes_are_cut_from_the_host():
    b = Broker("http://venueX//", 137, None)
    b.close()
    assert b.host == "http://venueX"


async def test_each_call_names_itself_in_its_errors(make, monkeypatch, caplog):
    from py_clob_client_v2.http_helpers import helpers

    b, c = make(FakeClient(funder="0xf"))
    for name in FakeClient.METHODS:
        c.answers[name] = [api_error(400, {"error": "no"})]
    monkeypatch.setattr(helpers, "get", lambda *a, **kw: (_ for _ in ()).throw(api_error(400, {"error": "no"})))
    calls = {"cancel": lambda: b.cancel(["0xa", "0xb"]), "trades": b.trades,
             "balance_allowance": lambda: b.token_balance("1"), "rewards_user": lambda: b.rewards_paid("2026-12-01"),
             "rebates_current": lambda: b.rebates_paid("2026-12-01"), "get_order": lambda: b.get_order("0xa"),
             "heartbeat": b.heartbeat, "open_orders": b.open_orders}
    for op, call in calls.items():
        with pytest.raises(BrokerError) as ei:
            await call()
        assert str(ei.value) == f"{op}: HTTP 400: no"
    b._entry = FakeEntry(EntryError("cancel", "down", 503), all_canceled)  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.broker"):
        await b.cancel(["0xa"])
    assert [r.getMessage() for r in caplog.records] == ["cancel: HTTP 503: down; retry 1 in 0.00s"]



# ---------------------------------------------------------------------------------------- bugs found by this pass
async def test_an_open_orders_row_that_cannot_be_read_fails_the_read_instead_of_vanishing(make, caplog):
    """An open order left out of the list is taken for one the venue no longer holds: reconcile
    closes it while it rests, the circuit breaker's probe counts the venue clean. Before the fix
    the row was logged and skipped."""
    b, c = make()
    c.answers["get_open_orders"] = [[order_row("0xa"), order_row("0xb", price=0.4), order_row("0xc", size_matched=2)]]
    with pytest.raises(BrokerError) as ei:
        await b.open_orders()
    e = ei.value
    assert (e.op, e.status, e.transient) == ("open_orders", None, False)
    assert e.message == "2 of 3 rows unreadable (Expected `str`, got `float` - at `$.price`): the open orders are unknown"
    c.answers["get_open_orders"] = [[order_row("0xa")]]
    assert [o.id for o in await b.open_orders()] == ["0xa"]  # a clean read is unchanged


def live_over(b: Broker) -> Any:
    """A started live exchange over this broker (no stream, no DB) with one order of ours open."""
    from live_fakes import ADDR, Clock, add_open, market
    from live_fakes import KEY as API_KEY

    from pmm_widgets.config import Settings
    from pmm_widgets.events import EventBus
    from pmm_widgets.execution.live import LiveExchange
    from pmm_widgets.store.sink import MemorySink

    s = Settings(_env_file=None, db_url="sqlite:////nonexistent/pmm-mut-broker.db")
    ex = LiveExchange(s, MemorySink(), "http://clob", "ws://ws", broker=b, heartbeat_sec=0, clock=Clock(),
                      events=EventBus())
    ex._started, ex._api_key, ex._addresses = True, API_KEY, {ADDR}
    ex.set_markets([market()])
    add_open(ex, "0xa")
    return ex


async def test_reconcile_never_drops_an_order_of_ours_whose_row_cannot_be_read(make):
    from pmm_widgets.domain import OrderStatus

    b, c = make()
    ex = live_over(b)
    c.answers["get_open_orders"] = [[order_row("0xa", original_size=10)]]  # still resting; one field a number
    c.answers["get_trades"] = [[]]
    with pytest.raises(BrokerError):
        await ex.reconcile()
    [o] = ex.open_orders()
    assert (o.venue_order_id, o.status) == ("0xa", OrderStatus.LIVE)  # still tracked, so still cancelled later


async def test_the_probe_never_calls_the_venue_clean_while_an_open_order_cannot_be_read(make):
    b, c = make()
    ex = live_over(b)
    c.answers["cancel_all"] = [{"canceled": [], "not_canceled": {}}]  # the cancel-all missed one (it raced a post)
    c.answers["get_open_orders"] = [[order_row("0xz", original_size=10)]]
    c.answers["get_trades"] = [[]]
    with pytest.raises(BrokerError) as ei:
        await ex.probe()  # the circuit breaker stays open: quoting does not resume
    assert ei.value.op == "open_orders"


async def test_an_sdk_batch_that_cannot_be_signed_never_loses_the_batches_already_posted(sdk, caplog):
    """SDK path, 16 quotes: batch 1 (15) posted and resting, batch 2's tick size unreadable
    through every retry. post_orders raised, so the caller marked all 16 refused and the 15
    resting orders went untracked (never cancelled, quoted over again). Now batch 2 fails alone."""
    b, v = sdk()
    items = quotes(16)
    v.down = {items[15][0].token_id}
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.broker"):
        out = await b.post_orders(items)
    assert [len(p) for p in v.posts] == [15]
    assert [(r.quote, r.ok, r.status) for r in out[:15]] == [(q, True, "live") for q, _, _ in items[:15]]
    assert (out[15].quote, out[15].ok, out[15].uncertain, out[15].order_id) == (items[15][0], False, False, None)
    assert out[15].error == "Request exception!" and b.retried == 3 and b.failures == 1
    assert caplog.records[0].getMessage() == "sign: Request exception!; retry 1 in 0.00s"


async def test_a_balance_the_venue_did_not_give_is_an_error_not_zero(make):
    """A cut or empty balance answer read as 0 shares made the restore check report the wallet
    empty ("restored positions disagree with the venue ... venue 0")."""
    b, c = make()
    for answer in ("<html>", {"allowances": {}}, {"balance": None}, None):
        c.answers["get_balance_allowance"] = [answer]
        with pytest.raises(BrokerError) as ei:
            await b.token_balance("123")
        assert ei.value.op == "balance_allowance" and ei.value.message.startswith("no balance in the venue's answer")
    for bad in ("12a", "", "NaN", "Infinity", True):
        c.answers["get_balance_allowance"] = [{"balance": bad}]
        with pytest.raises(BrokerError) as ei:
            await b.token_balance("123")
        assert str(ei.value) == f"balance_allowance: the venue's balance {bad!r} is not a number"
    c.answers["get_balance_allowance"] = [{"balance": "0"}]
    assert await b.token_balance("123") == 0


async def test_an_order_the_sdk_refuses_to_sign_fails_alone_in_its_batch(sdk):
    b, v = sdk()
    items = quotes(3)
    items[1] = (Quote("0xm", "1001", Side.BUY, Decimal("1.5"), Decimal(5)), Decimal("0.01"), False)
    out = await b.post_orders(items)
    assert [len(p) for p in v.posts] == [2] and b.retried == 0  # a refusal is not retried
    assert [p["order"]["tokenId"] for p in v.posts[0]] == ["1000", "1002"]
    assert [r.ok for r in out] == [True, False, True] and out[1].error.startswith("invalid price (1.5)")
