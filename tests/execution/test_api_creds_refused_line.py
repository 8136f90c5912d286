"""`api_creds_refused`: what a live start says when the venue refuses its L2 API credentials (the CLI
and app sides: tests/cli/test_cli_refused_api_creds.py, tests/ui/test_controls_refused_api_creds.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.venue.broker import CHECK_API_CREDS, L2_REFUSED, BrokerError, api_creds_refused

HOST = "https://clob.polymarket.com"
WALLET = "0xd31b822B233346334737c953FdE6f92d745c5B8D"


@given(status=st.one_of(st.none(), st.integers(100, 599)), given_creds=st.booleans())
def test_only_a_refusal_is_said_so_and_it_names_the_host(status, given_creds):
    exc = BrokerError("open_orders", "Unauthorized/Invalid api key", status)
    line = api_creds_refused(exc, HOST, WALLET, given_creds)
    if status not in L2_REFUSED:
        assert line is None  # a 5xx, a transport failure, a geo-block's 403: not the credentials' fault
        return
    assert status == 401 and line is not None and line.startswith(f"cannot start live at {HOST}: the venue refused the API credentials")
    assert f"({exc})" in line and WALLET in line and "\n" not in line
    if given_creds:  # the operator's PMM_API_*: check them or let the start derive them
        assert line.endswith(CHECK_API_CREDS.format(wallet=WALLET)) and "unset all three" in line
    else:  # derived just now: unsetting PMM_API_* changes nothing
        assert "just derived" in line and "unset" not in line
