"""`Broker.derive_creds`'s answers to each venue answer, with the scripted SDK client of
test_mut_broker.py (no socket): derive first, create only after the derive's HTTP 400, derive once
more when the create is refused with a 400 (another client created the key meanwhile), and every
other failure a one-line BrokerError of the call that failed. The same step over the loopback
sandbox: test_broker_api_key_start.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from py_clob_client_v2.clob_types import ApiCreds
from test_mut_broker import api_error, fast_backoff, make  # noqa: F401 - fixtures

from pmm_widgets.venue.broker import BrokerError, refused_derive_filter

KEY = ApiCreds("key-aaaa-1111", "secret-bbbb-2222", "pass-cccc-3333")
NO_KEY = api_error(400, {"error": "Could not derive api key!"})
EXISTS = api_error(400, {"error": "Could not create api key"})
SIGNER = type("S", (), {"address": staticmethod(lambda: "0xsigner")})()

CASES: dict[str, tuple[list[Any], list[Any], str | None, list[str]]] = {
    # name: (derive answers, create answers, the error (None: KEY is used), the calls in order)
    "existing key": ([KEY], [], None, ["derive"]),
    "no key yet": ([NO_KEY], [KEY], None, ["derive", "create"]),
    "created meanwhile": ([NO_KEY, KEY], [EXISTS], None, ["derive", "create", "derive"]),
    "L1 refused": ([api_error(401, {"error": "Invalid L1 Request headers"})], [], "derive: HTTP 401: Invalid L1 Request headers",
                   ["derive"]),
    "derive 503": ([api_error(503, {"error": "Service Unavailable"})], [], "derive: HTTP 503: Service Unavailable",
                   ["derive"]),
    "derive timeout": ([api_error(None)], [], "derive: Request exception!", ["derive"]),
    "create 500": ([NO_KEY], [api_error(500, {"error": "Internal Server Error"})],
                   "create: HTTP 500: Internal Server Error", ["derive", "create"]),
    "create timeout": ([NO_KEY], [api_error(None)], "create: Request exception!", ["derive", "create"]),
    "create bad answer": ([NO_KEY], [KeyError("apiKey")], "create: KeyError: 'apiKey'", ["derive", "create"]),
    "empty key": ([ApiCreds("", "s", "p")], [], "derive: the venue answered an empty API key", ["derive"]),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_venue_answer(make, caplog, case):  # noqa: F811 - the fixture
    caplog.set_level(logging.DEBUG)
    derive, create, error, calls = CASES[case]
    b, c = make(retries=0)  # one attempt's answers (the retries of transient ones: test_broker_creds_retry.py)
    c.signer, c.creds = SIGNER, None
    c.answers["derive_api_key"] = list(derive)
    c.answers["create_api_key"] = list(create) or [AssertionError("no create expected")]
    if error is None:
        got = await b.derive_creds()
        assert got.api_key.get_secret_value() == KEY.api_key and c.creds == KEY and b.has_creds
    else:
        with pytest.raises(BrokerError) as ei:
            await b.derive_creds()
        assert str(ei.value) == error and "\n" not in str(ei.value)
        transient = "503" in error or "500" in error or "Request exception" in error
        assert ei.value.transient is transient and not b.has_creds
    assert [n.removesuffix("_api_key") for n, _, _ in c.calls] == calls
    said = [r.getMessage() for r in caplog.records if "creating one" in r.getMessage()]
    assert said == (["broker: no API key of 0xsigner at http://127.0.0.1:9 yet (derive: HTTP 400: Could not derive "
                     "api key!): creating one"] if "create" in calls else [])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_filter_drops_exactly_the_refused_derive_and_only_while_expected() -> None:
    f = refused_derive_filter()

    def rec(status: int, url: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("py_clob_client_v2.http_helpers.helpers", level, __file__, 1,
                                 "[py_clob_client_v2] request error status=%s url=%s body=%s",
                                 (status, url, '{"error": "x"}'), None)

    refused = rec(400, "https://clob.polymarket.com/auth/derive-api-key")
    assert f.filter(refused)  # not expected here: kept
    with f.expecting():  # the step's every ERROR line is its caller's one line: said at DEBUG
        for said in (refused, rec(401, "https://clob.polymarket.com/auth/derive-api-key"),
                     rec(400, "https://clob.polymarket.com/auth/api-key"),
                     rec(500, "https://clob.polymarket.com/auth/derive-api-key")):
            assert not f.filter(said)
        assert f.filter(rec(400, "https://clob.polymarket.com/auth/derive-api-key", logging.WARNING))
    assert f.filter(refused)
    assert f is refused_derive_filter()  # installed once
    assert logging.getLogger("py_clob_client_v2.http_helpers.helpers").filters.count(f) == 1
