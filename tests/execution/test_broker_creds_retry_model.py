"""`Broker.derive_creds`'s retries against a model, over any script of venue answers (hypothesis),
with the scripted SDK client of test_mut_broker.py (no socket): the calls it makes, in order, and
its outcome are the model's. The invariants it pins: a create is only ever sent right after a
derive answered "no key" (HTTP 400), every attempt starts with a derive, a refused signature (401)
or any other definitive answer ends the step at once, and a transient one (429, 5xx, transport, an
answer cut short) starts a new attempt while PMM_VENUE_RETRIES allows. The same over the sandbox:
test_broker_creds_retry.py."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from py_clob_client_v2.clob_types import ApiCreds
from test_mut_broker import FakeClient, api_error

from pmm_widgets.venue.broker import Broker, BrokerError

KEY = ApiCreds("key-aaaa-1111", "secret-bbbb-2222", "pass-cccc-3333")
SIGNER = type("S", (), {"address": staticmethod(lambda: "0xsigner")})()
# an answer: (name, what the SDK call does, transient)
ANSWERS: dict[str, tuple[Any, bool]] = {
    "key": (KEY, False),
    "400": (api_error(400, {"error": "Could not derive api key!"}), False),  # no key yet / exists (create)
    "401": (api_error(401, {"error": "Invalid L1 Request headers"}), False),
    "429": (api_error(429, {"error": "Too Many Requests"}), True),
    "503": (api_error(503, {"error": "Service Unavailable"}), True),
    "timeout": (api_error(None), True),
    "cut": (TypeError("string indices must be integers, not 'str'"), True),  # a body cut short
}
answer = st.sampled_from(sorted(ANSWERS))


def model(derive: list[str], create: list[str], retries: int) -> tuple[list[str], str]:
    """The calls (`derive`/`create`) and the outcome (`key`, or the last answer's name)."""
    calls: list[str] = []
    n = {"derive": 0, "create": 0}

    def call(name: str, script: list[str]) -> str:
        calls.append(name)
        a = script[min(n[name], len(script) - 1)]  # the last one repeats
        n[name] += 1
        return a

    attempt = 0
    while True:
        attempt += 1
        got = call("derive", derive)
        if got == "400":
            got = call("create", create)
            if got == "400":  # created by another client since: derive once more
                got = call("derive", derive)
        if got == "key":
            return calls, "key"
        if not ANSWERS[got][1] or attempt > retries:
            return calls, got


async def run(derive: list[str], create: list[str], retries: int) -> tuple[list[str], str, Broker]:
    b = Broker("http://127.0.0.1:9/", 137, None, retries=retries, backoff_base=0.0005, backoff_cap=0.001,
               deadline=30.0)
    c = FakeClient(creds=None, signer=SIGNER)
    b._client = c  # type: ignore[assignment]
    c.answers["derive_api_key"] = [ANSWERS[a][0] for a in derive]
    c.answers["create_api_key"] = [ANSWERS[a][0] for a in create]
    try:
        try:
            await b.derive_creds()
            outcome = "key"
        except BrokerError as exc:
            outcome = "cut" if "could not be read" in exc.message else "timeout" if exc.status is None else str(exc.status)
            assert exc.transient is ANSWERS[outcome][1]
    finally:
        await b.aclose()
    return [n.removesuffix("_api_key") for n, _, _ in c.calls], outcome, b


@hsettings(max_examples=60, deadline=None)
@given(st.lists(answer, min_size=1, max_size=8), st.lists(answer, min_size=1, max_size=4), st.integers(0, 3))
def test_the_step_does_what_the_model_does(derive: list[str], create: list[str], retries: int) -> None:
    calls, outcome, b = asyncio.run(run(derive, create, retries))
    want_calls, want = model(derive, create, retries)
    assert (calls, outcome) == (want_calls, want)
    assert b.has_creds is (outcome == "key")
    # a create only right after a derive answered 400, never twice in a row, never first
    for i, name in enumerate(calls):
        if name == "create":
            assert i > 0 and calls[i - 1] == "derive"
    attempts = 1 + b.retried
    assert attempts <= 1 + retries and calls.count("derive") >= attempts
