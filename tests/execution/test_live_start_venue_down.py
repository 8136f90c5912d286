"""A live start whose first reconcile the venue does not answer (down after the retries: every
read a 503) is one line naming the host, an expected failure, not a crash: `pmm run live` printed
`engine crashed: LiveError: cannot reconcile with the venue at …`."""

from __future__ import annotations

import pytest
from eth_account import Account
from live_helpers import make_settings

from pmm_widgets.errors import ExpectedFailure, describe
from pmm_widgets.execution.live import LiveError, LiveExchange
from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.store.sink import MemorySink

pytestmark = pytest.mark.integration


async def test_a_venue_down_at_the_first_reconcile_is_one_line_naming_the_host(sb, wallet_key, closers):
    c = derive_creds(Account.from_key(wallet_key).address, 0)  # given: no derive (a GET) before the reconcile
    s = make_settings(sb, wallet_key, api_key=c.api_key, api_secret=c.secret, api_passphrase=c.passphrase,
                      venue_retries=0)
    ex = LiveExchange(s, MemorySink(), sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex)
    sb.faults.update(http_error_rate=1.0, http_error_status=503, http_error_methods="GET")
    try:
        with pytest.raises(LiveError) as info:
            await ex.start()
    finally:
        sb.faults.update(http_error_rate=0.0, http_error_methods="")
    exc = info.value
    assert isinstance(exc, ExpectedFailure)  # `pmm run` prints it as it is: no "engine crashed"
    line = describe(exc)
    assert line.startswith(f"cannot start live at {sb.clob_url}: the first reconcile failed (") and "503" in line
    assert "\n" not in line and c.secret not in line and c.passphrase not in line
