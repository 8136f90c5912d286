"""The operator app's live Start when the venue refuses the L2 API credentials (HTTP 401 at the
reconcile: PMM_API_KEY/SECRET/PASSPHRASE of another wallet), with a real engine against a loopback
sandbox: the page says the same one line as `pmm run live` (tests/cli/test_cli_refused_api_creds.py),
never "engine crashed" nor an exception's type name, on its message line, its log and its status.

BUG (fixed): the page said `the engine could not start or stopped: LiveError: cannot reconcile with the
venue: open_orders: HTTP 401: Unauthorized/Invalid api key`: no host, nothing to check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from pydantic import SecretStr
from ui_helpers import start_refused_in_one_line

from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.broker import CHECK_API_CREDS

pytestmark = pytest.mark.integration

KEY = "0x" + "4f" * 32
OTHER = derive_creds(Account.from_key("0x" + "5e" * 32).address, 0)  # another wallet's credentials


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as s:
        yield s


async def test_refused_api_creds_at_start_are_the_pages_one_line(settings, sb):
    s = settings.model_copy(update=dict(
        gamma_url=sb.gamma_url, clob_url=sb.clob_url, clob_ws_url=sb.ws_url, private_key=SecretStr(KEY),
        api_key=SecretStr(OTHER.api_key), api_secret=SecretStr(OTHER.secret),
        api_passphrase=SecretStr(OTHER.passphrase), universe_size=4, record="off"))
    line = (f"cannot start live at {sb.clob_url}: the venue refused the API credentials (open_orders: HTTP 401: "
            f"Unauthorized/Invalid api key); {CHECK_API_CREDS.format(wallet=Account.from_key(KEY).address)}")
    await start_refused_in_one_line(s, line, (KEY[2:], OTHER.secret, OTHER.passphrase))
