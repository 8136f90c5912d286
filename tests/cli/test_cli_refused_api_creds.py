"""A live start whose L2 API credentials the venue refuses (HTTP 401 at the reconcile, the first call
that uses them: a PMM_API_KEY of another wallet, a wrong PMM_API_SECRET or PMM_API_PASSPHRASE), as an
operator runs it: `pmm run live --yes` in its own process against an in-process loopback sandbox,
which checks L2 headers as the venue does.

BUG (fixed): it printed `engine crashed: LiveError: cannot reconcile with the venue: open_orders: HTTP
401: Unauthorized/Invalid api key`: no host, nothing to check, and a wrong setting is no crash. Now
it is one line naming the host and what to check (the three settings, or unset them to derive),
exit 1 (README: a runtime failure at the venue, naming the host), no secret in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cli_sandbox import pmm_on
from eth_account import Account

from pmm_widgets.errors import ExitCode
from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.sandbox.trading import trading_of
from pmm_widgets.venue.broker import CHECK_API_CREDS

pytestmark = pytest.mark.integration

KEY = "0x" + "4f" * 32
WALLET = Account.from_key(KEY).address
REAL = derive_creds(WALLET, 0)  # the sandbox's (and so the venue's) credentials of this wallet
OTHER = derive_creds(Account.from_key("0x" + "5e" * 32).address, 0)  # another wallet's, all three


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as s:
        yield s


async def pmm(sb: Sandbox, tmp_path, creds: dict[str, str], *argv: str) -> tuple[int, str, str]:
    return await pmm_on(sb, tmp_path, KEY, *argv, env_extra=creds)


def refused_line(sb: Sandbox) -> str:
    return (f"cannot start live at {sb.clob_url}: the venue refused the API credentials (open_orders: HTTP 401: "
            f"Unauthorized/Invalid api key); {CHECK_API_CREDS.format(wallet=WALLET)}")


CASES = {
    "another wallet's key": {"PMM_API_KEY": OTHER.api_key, "PMM_API_SECRET": OTHER.secret,
                             "PMM_API_PASSPHRASE": OTHER.passphrase},
    "a wrong secret": {"PMM_API_KEY": REAL.api_key, "PMM_API_SECRET": OTHER.secret,
                       "PMM_API_PASSPHRASE": REAL.passphrase},
    "a wrong passphrase": {"PMM_API_KEY": REAL.api_key, "PMM_API_SECRET": REAL.secret,
                           "PMM_API_PASSPHRASE": OTHER.passphrase},
}


@pytest.mark.parametrize("case", list(CASES))
async def test_run_live_with_refused_api_creds_is_one_line_naming_the_host_exit_1(sb, tmp_path, case):
    creds = CASES[case]
    code, out, err = await pmm(sb, tmp_path, creds, "run", "live", "--yes", "--max-seconds", "30")
    assert code == ExitCode.ERROR, err
    assert err.splitlines() == [refused_line(sb)], err
    assert "PMM_API_KEY" in err and "unset all three to derive" in err  # what to check
    assert "crashed" not in out + err and "LiveError" not in out + err and "Traceback" not in err
    assert f"ERROR error: {refused_line(sb)}" in out.splitlines(), out  # the engine's event: the same line
    for secret in (KEY, KEY[2:], *creds.values(), REAL.secret, REAL.passphrase):
        assert secret not in out + err
    assert trading_of(sb).auth_failures >= 1  # the venue did refuse them (not another failure)


async def test_the_right_api_creds_start(sb, tmp_path):
    """The same start with this wallet's own three: it trades (no refusal), and stops at its limit."""
    creds = {"PMM_API_KEY": REAL.api_key, "PMM_API_SECRET": REAL.secret, "PMM_API_PASSPHRASE": REAL.passphrase}
    code, out, err = await pmm(sb, tmp_path, creds, "run", "live", "--yes", "--max-seconds", "2")
    assert code == ExitCode.OK, err
    assert "refused" not in out + err and trading_of(sb).auth_failures == 0
