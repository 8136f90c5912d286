"""The fast path's heartbeat refusals the sandbox does not produce (venue/broker.py `heartbeat`,
venue/order_entry.py): a real `OrderEntry` whose HTTP client answers as scripted, so each refusal
maps to the BrokerError the SDK path gives for it (tests/execution/test_mut_broker.py's heartbeat
tests) and the chain is kept or restarted the same way."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from eth_account import Account
from pydantic import SecretStr

from pmm_widgets.venue import broker as broker_module
from pmm_widgets.venue.broker import Broker, BrokerError, Creds

Answer = tuple[int, Any] | Exception


@pytest.fixture
async def make(monkeypatch) -> AsyncIterator[Callable[..., tuple[Broker, list[str]]]]:
    """make(*answers) -> (a fast broker with credentials, the heartbeat ids it sent): its order entry
    answers POST /v1/heartbeats with the answers in turn ((status, JSON) or an exception; the last repeats)."""
    monkeypatch.setattr(broker_module, "backoff_delay", lambda attempt, base, cap: 0.001)
    made: list[Broker] = []

    def build(*answers: Answer) -> tuple[Broker, list[str]]:
        sent: list[str] = []
        todo = list(answers)

        def handler(request: httpx.Request) -> httpx.Response:
            assert (request.method, request.url.path) == ("POST", "/v1/heartbeats")
            sent.append(json.loads(request.content)["heartbeat_id"])
            a = todo.pop(0) if len(todo) > 1 else todo[0]
            if isinstance(a, Exception):
                raise a
            status, body = a
            return httpx.Response(status, text=body) if isinstance(body, str) else httpx.Response(status, json=body)

        key = "0x" + Account.create().key.hex().removeprefix("0x")
        creds = Creds(SecretStr("key-1234-abcd"), SecretStr("c2VjcmV0LTU2NzgtZWZnaA=="), SecretStr("pass-9012-ijkl"))
        b = Broker("http://venue.test", 137, key, creds=creds, retries=3, deadline=5.0)
        assert b.fast and b.order_entry is not None
        b.order_entry._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        made.append(b)
        return b, sent

    yield build
    for b in made:
        await b.aclose()


async def test_fast_heartbeats_chain_and_re_chain_to_the_id_the_venue_expects(make):
    b, sent = make((200, {"heartbeat_id": "hb-1"}), (400, {"error_msg": "Invalid Heartbeat ID", "heartbeat_id": "hb-9"}),
                   (200, {"heartbeat_id": "hb-10"}))
    assert await b.heartbeat() == "hb-1"
    assert await b.heartbeat() == "hb-10"
    assert sent == ["", "hb-1", "hb-9"] and b.retried == 0 and b.failures == 0


@pytest.mark.parametrize(("status", "body", "message"), [
    (400, {"error_msg": "Invalid payload"}, "Invalid payload"),  # a 400 naming no id to resync to
    (401, {"error": "Unauthorized", "heartbeat_id": "hb-9"}, "Unauthorized"),  # an id on another refusal
    (400, "bad request", "bad request"),  # a text refusal
])
async def test_other_fast_heartbeat_refusals_fail_at_once_like_the_sdks(make, status, body, message):
    b, sent = make((status, body), (200, {"heartbeat_id": "hb-2"}))
    b._hb_id = "hb-1"
    with pytest.raises(BrokerError) as ei:
        await b.heartbeat()
    assert (ei.value.op, ei.value.status, ei.value.message, ei.value.transient) == ("heartbeat", status, message, False)
    assert sent == ["hb-1"] and b._hb_id == "hb-1" and b.failures == 1


async def test_a_lost_fast_heartbeat_answer_is_retried_with_the_same_id(make):
    b, sent = make(httpx.ConnectError("refused"), (503, {"error": "busy"}), (200, {"heartbeat_id": "hb-2"}))
    b._hb_id = "hb-1"
    assert await b.heartbeat() == "hb-2"
    assert sent == ["hb-1"] * 3 and b.retried == 2


@pytest.mark.parametrize("answer", [{"status": "ok"}, {"heartbeat_id": None}, "ok"])
async def test_a_fast_heartbeat_answer_without_an_id_starts_the_chain_again(make, answer):
    b, sent = make((200, answer), (200, {"heartbeat_id": "hb-1"}))
    b._hb_id = "hb-0"
    assert await b.heartbeat() == ""
    assert await b.heartbeat() == "hb-1"
    assert sent == ["hb-0", ""]
