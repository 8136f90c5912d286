"""A live start whose wallet signature the venue refuses (L1 HTTP 401: a wrong PMM_PRIVATE_KEY /
PMM_FUNDER pairing, a wrong PMM_SIGNATURE_TYPE, a skewed clock), as an operator runs it: `pmm run
live --yes` and `pmm auth derive` in their own process, against an in-process loopback sandbox that
refuses every L1 signature.

BUG (fixed): `pmm run live` printed two lines on stderr for it, the SDK's own ERROR record
(`ERROR py_clob_client_v2.http_helpers.helpers: ... status=401 url=...`) and `engine crashed:
LiveError: cannot derive API credentials: derive: HTTP 401: Invalid L1 Request headers`, though
README promises one line for an expected failure, and a refused signature is no crash. Now it is one
line naming the venue's host and what to check, exit 1 (README: a runtime failure at the venue,
naming the host); the SDK's line is said at `--log-level DEBUG` only. No secret in any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cli_sandbox import pmm_on

from pmm_widgets.errors import ExitCode
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.broker import CHECK_WALLET

pytestmark = pytest.mark.integration

KEY = "0x" + "4f" * 32  # a valid secp256k1 key: the venue refuses its signature, not its form


@pytest.fixture
async def refusing_sb() -> AsyncIterator[Sandbox]:
    """A venue that refuses every L1 signature (window < 0: every timestamp is stale)."""
    async with Sandbox(SandboxConfig(markets=4, seed=3, auth_skew_sec=-1.0)) as s:
        yield s


async def pmm(sb: Sandbox, tmp_path, *argv: str) -> tuple[int, str, str]:
    return await pmm_on(sb, tmp_path, KEY, *argv)


def refused(sb: Sandbox) -> str:
    return f"the venue refused the wallet's signature (derive: HTTP 401: Invalid L1 Request headers); {CHECK_WALLET}"


def refused_line(sb: Sandbox) -> str:
    return f"cannot derive API credentials at {sb.clob_url}: {refused(sb)}"


def no_secret(text: str) -> None:
    assert KEY not in text and KEY[2:] not in text and KEY[2:].upper() not in text


async def test_run_live_with_a_refused_signature_is_one_line_naming_the_host_exit_1(refusing_sb, tmp_path):
    code, out, err = await pmm(refusing_sb, tmp_path, "run", "live", "--yes", "--max-seconds", "30")
    assert code == ExitCode.ERROR, err
    assert err.splitlines() == [refused_line(refusing_sb)], err
    assert "PMM_PRIVATE_KEY" in err and "PMM_FUNDER" in err  # what to check
    assert "crashed" not in out + err and "Traceback" not in err and "ERROR" not in err
    # the engine's event (stdout) is the same line, not a crash
    assert f"ERROR error: {refused_line(refusing_sb)}" in out.splitlines(), out
    no_secret(out + err)


async def test_the_sdks_line_for_it_is_shown_at_debug(refusing_sb, tmp_path):
    code, out, err = await pmm(refusing_sb, tmp_path, "--log-level", "DEBUG", "run", "live", "--yes",
                               "--max-seconds", "30")
    assert code == ExitCode.ERROR
    assert err.splitlines()[-1] == refused_line(refusing_sb)
    sdk = [ln for ln in err.splitlines() if "status=401" in ln and "/auth/derive-api-key" in ln]
    assert len(sdk) == 1 and " DEBUG " in sdk[0], err[-3000:]
    assert not [ln for ln in err.splitlines() if " ERROR " in ln], err[-3000:]
    no_secret(out + err)


async def test_auth_derive_with_a_refused_signature_is_the_same_one_line(refusing_sb, tmp_path):
    code, out, err = await pmm(refusing_sb, tmp_path, "auth", "derive", "--show-secrets")
    assert code == ExitCode.ERROR and out == ""
    assert err.splitlines() == [f"auth derive failed at {refusing_sb.clob_url}: {refused(refusing_sb)}"], err
    no_secret(out + err)
