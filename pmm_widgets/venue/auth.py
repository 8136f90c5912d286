"""`pmm auth derive`: L1 → L2 credentials from PMM_PRIVATE_KEY against the configured CLOB.

Why it prints and never logs: the three values belong in `.env` and nowhere else. They are
shown only when asked (`--show-secrets`), once, on stdout; otherwise masked with the way to
reveal them. They are registered with the log masker the moment they exist, so no log line,
traceback or error message can carry them. The venue comes from `open_endpoints(settings)`,
so `--venue sandbox` derives against an embedded sandbox (its keys are deterministic per
wallet, like the real `derive-api-key`, so they stay valid for later sandbox runs).
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import TextIO

from ..config import Settings
from ..errors import ExitCode
from ..tasks import to_thread_undone_on_cancel
from .broker import Broker, BrokerError, Creds, call_options, creds_failure


def masked(value: str, keep: int = 0) -> str:
    """`abcd***` (first `keep` characters, for an identifier) or `***`."""
    return (value[:keep] + "***") if keep and len(value) > 2 * keep else "***"


def creds_lines(creds: Creds, show_secrets: bool) -> list[str]:
    key, sec, pas = (s.get_secret_value() for s in (creds.api_key, creds.api_secret, creds.api_passphrase))
    if show_secrets:
        return [f"PMM_API_KEY={key}", f"PMM_API_SECRET={sec}", f"PMM_API_PASSPHRASE={pas}"]
    return [f"PMM_API_KEY={masked(key, 4)}", f"PMM_API_SECRET={masked(sec)}", f"PMM_API_PASSPHRASE={masked(pas)}"]


async def derive(settings: Settings, clob_url: str) -> tuple[str, Creds]:
    """(wallet address, credentials) created or derived at `clob_url`."""
    # built in a worker thread, as `LiveExchange.start` builds its broker (the SDK's import and
    # client: ~0.4 s of CPU, off the loop the embedded sandbox answers on)
    broker = await to_thread_undone_on_cancel(functools.partial(
        Broker, clob_url, settings.chain_id, settings.private_key, signature_type=settings.signature_type,
        funder=settings.funder or None, **call_options(settings)), Broker.close)
    try:
        creds = await broker.derive_creds()
        return str(broker.address), creds
    finally:
        await asyncio.to_thread(broker.close)


async def _derive_main(settings: Settings, show_secrets: bool, out: TextIO) -> int:
    from .endpoints import open_endpoints

    async with open_endpoints(settings) as ep:
        try:
            address, creds = await derive(settings, ep.clob_url)
        except BrokerError as exc:
            print(f"auth derive failed at {ep.clob_url}: {creds_failure(exc)}", file=sys.stderr)
            return ExitCode.ERROR
        where = ep.clob_url + (" (embedded sandbox)" if ep.embedded else "")
    print(f"# L2 API credentials of wallet {address} at {where}", file=out)
    print(f"# signature type {settings.signature_type}, funder {settings.funder or address}", file=out)
    for line in creds_lines(creds, show_secrets):
        print(line, file=out)
    if show_secrets:
        print("# put these three lines in .env; they are not stored or logged anywhere else", file=out)
    else:
        print("# values masked: run `pmm auth derive --show-secrets` to print them for .env", file=out)
    out.flush()
    return ExitCode.OK


def derive_main(settings: Settings, show_secrets: bool, out: TextIO = sys.stdout) -> int:
    """Entry of `pmm auth derive [--show-secrets]`: 0 ok, 1 venue error, 2 no private key."""
    if not settings.has_private_key:
        print("pmm auth derive needs PMM_PRIVATE_KEY (wallet private key, hex) in the environment or .env",
              file=sys.stderr)
        return ExitCode.CONFIG
    return asyncio.run(_derive_main(settings, show_secrets, out))
