"""The broker's retry policy for order posts (venue/broker.py), call by call: which failures are
retried and how often, when a re-post is skipped because the venue already holds the order,
what a "Duplicated" answer means on a first post and on a re-post, and what a post that never got
a definite answer comes back as. The post itself is the broker's own seam (`_post_idempotent`
takes it as an argument); `test_venue_faults.py` and `test_requote.py` run the same paths over
the sandbox end to end."""
from __future__ import annotations

import logging
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from pmm_widgets.domain import Quote, Side
from pmm_widgets.venue import broker as broker_module
from pmm_widgets.venue.broker import TRANSIENT_STATUSES, Broker, BrokerError, is_transient


@pytest.fixture
def broker(monkeypatch):
    """A broker with no venue behind it (nothing here reaches the network); each backoff is its
    window's upper bound, scaled down so the tests do not wait."""
    monkeypatch.setattr(broker_module, "backoff_delay", lambda attempt, base, cap: min(cap, base * 2 ** attempt))
    b = Broker("http://127.0.0.1:9/", 137, None, retries=3, backoff_base=0.001, backoff_cap=0.004, deadline=5.0)
    yield b
    b.close()


def _orders(n: int) -> dict[int, tuple[Quote, Any, str]]:
    return {k: (Quote("0xm", f"tok{k}", Side.BUY, Decimal("0.4"), Decimal(5)), object(), f"0xhash{k}") for k in range(n)}


class Script:
    """The post seam: each call answers the next item (a list of per-order answers, or an error)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[int] = []
        self.posted: list[list[Any]] = []

    async def __call__(self, orders: list[Any]) -> list[dict[str, Any]]:
        self.calls.append(len(orders))
        self.posted.append(list(orders))
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, Exception):
            raise a
        return a


def _ok(oid: str) -> dict[str, Any]:
    return {"success": True, "orderID": oid, "status": "live", "errorMsg": ""}


def test_transient_statuses_are_no_answer_429_and_5xx():
    assert TRANSIENT_STATUSES == {429, 500, 502, 503, 504}
    assert all(is_transient(s) for s in (None, 429, 500, 502, 503, 504))
    assert not any(is_transient(s) for s in (200, 400, 401, 404, 409, 425, 501, 505))


def test_retry_delays_grow_stop_after_the_retries_and_never_for_a_refusal(broker):
    err = BrokerError("post_orders", "down", 503, transient=True)
    assert [broker._retry_delay(err, a) for a in (1, 2, 3, 4)] == [0.001, 0.002, 0.004, None]  # retries=3
    assert broker._retry_delay(BrokerError("post_orders", "bad", 400), 1) is None
    assert broker._retry_delay(BrokerError("post_orders", "?", None, transient=False), 1) is None


def test_a_429_waits_at_least_one_step(broker, monkeypatch):
    monkeypatch.setattr(broker_module, "backoff_delay", lambda attempt, base, cap: 0.0)
    assert broker._retry_delay(BrokerError("post_orders", "slow down", 429, transient=True), 1) == 0.001
    assert broker._retry_delay(BrokerError("post_orders", "down", 503, transient=True), 1) == 0.0


async def test_answers_are_read_per_order(broker):
    post = Script([_ok("0xhash0"), {"success": False, "errorMsg": "not enough balance", "orderID": ""}])
    out = await broker._post_idempotent(_orders(2), post)
    assert (out[0].ok, out[0].order_id, out[0].status, out[0].uncertain) == (True, "0xhash0", "live", False)
    assert (out[1].ok, out[1].order_id, out[1].error, out[1].uncertain) == (False, None, "not enough balance", False)
    assert post.calls == [2] and (broker.retried, broker.failures, broker.dedup_hits) == (0, 0, 0)
    orders = _orders(2)
    post = Script([_ok("0xhash0"), _ok("0xhash1")])
    await broker._post_idempotent(orders, post)
    assert post.posted == [[orders[0][1], orders[1][1]]]  # the signed orders themselves, in order
    assert out[0].error == ""
    refused = await broker._post_idempotent(_orders(1), Script([{"success": False, "orderID": "0xhash0", "errorMsg": "crosses"}]))
    assert (refused[0].ok, refused[0].error) == (False, "crosses")  # a refusal naming an id is still a refusal


@pytest.mark.parametrize("answer", [
    [_ok("0xhash0")],  # one answer for two orders
    [_ok("0xhash0"), "garbage"],  # an answer that is not an object
    [_ok("0xhash0"), {"success": True, "orderID": ""}],  # a success without its id
])
async def test_an_order_the_answer_says_nothing_definite_of_is_uncertain_under_its_hash(broker, answer):
    out = await broker._post_idempotent(_orders(2), Script(answer))
    assert (out[0].ok, out[0].order_id) == (True, "0xhash0")
    assert (out[1].ok, out[1].uncertain, out[1].order_id) == (False, True, "0xhash1")
    assert out[1].error == "the venue's answer says nothing definite of this order"


async def test_a_duplicated_answer_to_a_first_post_is_a_refusal_and_to_a_re_post_a_landing(broker, monkeypatch):
    async def none_open(retry: bool = True) -> list[Any]:
        return []

    monkeypatch.setattr(broker, "open_orders", none_open)
    first = await broker._post_idempotent(_orders(1), Script([{"success": False, "errorMsg": "Duplicated order"}]))
    assert first[0].ok is False and first[0].error == "Duplicated order" and broker.dedup_hits == 0
    again = Script(BrokerError("post_orders", "timeout", None, transient=True),
                   [{"success": False, "errorMsg": "order Duplicated"}])
    out = await broker._post_idempotent(_orders(1), again)
    assert (out[0].ok, out[0].order_id, out[0].status) == (True, "0xhash0", "live")  # an earlier attempt landed
    assert again.calls == [1, 1] and broker.dedup_hits == 1 and broker.retried == 1


async def test_a_re_post_skips_what_the_venue_already_holds(broker, monkeypatch, caplog):
    reads: list[bool] = []

    async def holds_one(retry: bool = True) -> list[Any]:
        reads.append(retry)
        return [SimpleNamespace(id="0xhash1"), SimpleNamespace(id="0xsomeone-else")]

    monkeypatch.setattr(broker, "open_orders", holds_one)
    post = Script(BrokerError("post_orders", "HTTP 502", 502, transient=True), [_ok("0xhash0"), _ok("0xhash2")])
    with caplog.at_level(logging.INFO, logger="pmm_widgets.venue.broker"):
        out = await broker._post_idempotent(_orders(3), post)
    assert [r.getMessage() for r in caplog.records] == [
        "post_orders: HTTP 502: HTTP 502; checking the venue for 3 order(s), retry 1 in 0.00s"]
    assert post.calls == [3, 2]  # the order the venue holds is not posted again
    assert reads == [False]  # one read, not retried itself
    assert [(out[k].ok, out[k].order_id) for k in range(3)] == [(True, "0xhash0"), (True, "0xhash1"), (True, "0xhash2")]
    assert out[1].status == "live" and broker.dedup_hits == 1


async def test_a_failing_read_of_the_venue_still_re_posts(broker, monkeypatch):
    async def fails(retry: bool = True) -> list[Any]:
        raise BrokerError("open_orders", "down", 503, transient=True)

    monkeypatch.setattr(broker, "open_orders", fails)
    post = Script(BrokerError("post_orders", "down", 503, transient=True), [_ok("0xhash0")])
    out = await broker._post_idempotent(_orders(1), post)
    assert post.calls == [1, 1] and out[0].ok


@pytest.mark.parametrize(("status", "transient", "uncertain", "calls"), [
    (503, True, True, 4),  # no definite answer after 1 + 3 retries: it may rest, tracked by its hash
    (None, True, True, 4),  # no answer at all: the same
    (429, True, False, 4),  # refused for the rate: it did not rest
    (400, False, False, 1),  # refused: never retried
])
async def test_what_a_post_that_never_got_through_comes_back_as(broker, monkeypatch, status, transient, uncertain, calls):
    async def none_open(retry: bool = True) -> list[Any]:
        return []

    monkeypatch.setattr(broker, "open_orders", none_open)
    post = Script(BrokerError("post_orders", "it failed", status, transient=transient))
    out = await broker._post_idempotent(_orders(2), post)
    assert post.calls == [2] * calls and broker.failures == 1 and broker.retried == calls - 1
    for k in (0, 1):
        assert (out[k].ok, out[k].uncertain, out[k].error) == (False, uncertain, "it failed")
        assert out[k].order_id == (f"0xhash{k}" if uncertain else None)


async def test_no_retry_that_would_end_past_the_deadline(broker, monkeypatch):
    async def none_open(retry: bool = True) -> list[Any]:
        return []

    monkeypatch.setattr(broker, "open_orders", none_open)
    broker.backoff_base, broker.backoff_cap, broker.deadline = 0.02, 1.0, 0.05  # waits 0.02 (fits), 0.04 (would not)
    post = Script(BrokerError("post_orders", "down", 503, transient=True))
    out = await broker._post_idempotent(_orders(1), post)
    assert post.calls == [1, 1] and out[0].uncertain and broker.retried == 1


async def test_stop_posting_ends_the_posts_under_way_and_not_the_later_ones(broker, monkeypatch):
    """The circuit's probe stops the retries of the posts in flight (as a stop does); it ended
    every retry of the session: a post after the circuit closed gave up at its first 503."""
    import asyncio

    async def none_open(retry: bool = True) -> list[Any]:
        return []

    monkeypatch.setattr(broker, "open_orders", none_open)
    down = BrokerError("post_orders", "down", 503, transient=True)
    broker.retries, broker.deadline = 10_000, 60.0  # the first post retries until it is stopped
    held = Script(down)
    under_way = asyncio.ensure_future(broker._post_idempotent(_orders(1), held))
    while len(held.calls) < 2:
        await asyncio.sleep(0.001)
    broker.stop_posting()
    out = await asyncio.wait_for(under_way, 2.0)
    assert (out[0].ok, out[0].uncertain, out[0].order_id) == (False, True, "0xhash0")  # given up with what it had
    later = Script(down, [_ok("0xhash0")])
    out = await broker._post_idempotent(_orders(1), later)
    assert out[0].ok and later.calls == [1, 1]  # retried after its 503, as before the probe
