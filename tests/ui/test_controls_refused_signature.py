"""The operator app's live Start when the venue refuses the wallet's signature (L1 HTTP 401), with a
real engine against a loopback sandbox that refuses every L1 signature: the page says the same one
line as `pmm run live` (the host, what to check), never "engine crashed" nor an exception's type
name: on its message line, in its log, and on its status line (tests/cli/test_cli_refused_signature.py
is the headless side).

BUG (fixed): the page said `the engine could not start or stopped: LiveError: cannot derive API
credentials: derive: HTTP 401: Invalid L1 Request headers`, its log `ERROR error: engine crashed:
LiveError: ...`, and its status line `error: LiveError: ...`: no host, nothing to check."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from ui_helpers import start_refused_in_one_line

from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.broker import CHECK_WALLET

pytestmark = pytest.mark.integration

KEY = "0x" + "4f" * 32


@pytest.fixture
async def refusing_sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(markets=4, seed=3, auth_skew_sec=-1.0)) as s:
        yield s


async def test_a_refused_signature_at_start_is_the_pages_one_line(settings, refusing_sb):
    sb = refusing_sb
    s = settings.model_copy(update=dict(gamma_url=sb.gamma_url, clob_url=sb.clob_url, clob_ws_url=sb.ws_url,
                                        private_key=SecretStr(KEY), universe_size=4, record="off"))
    line = (f"cannot derive API credentials at {sb.clob_url}: the venue refused the wallet's signature (derive: "
            f"HTTP 401: Invalid L1 Request headers); {CHECK_WALLET}")
    await start_refused_in_one_line(s, line, (KEY[2:],))
