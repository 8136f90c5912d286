"""`pmm auth derive`, and secrets never reaching logs, exceptions, DB rows or CLI output."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import pytest
from eth_account import Account
from live_helpers import active_markets, make_settings, touch_bids, wait_for

from pmm_widgets.execution.live import LiveError, LiveExchange
from pmm_widgets.sandbox.auth_crypto import derive_creds
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.auth import derive_main

pytestmark = pytest.mark.integration


def secret_values(key: str, c) -> list[str]:
    return [key, key.removeprefix("0x"), c.secret, c.passphrase]


async def test_auth_derive_prints_masked_unless_asked(sb, wallet_key):
    settings = make_settings(sb, wallet_key)
    address = Account.from_key(wallet_key).address
    c = derive_creds(address, 0)
    out = io.StringIO()
    assert await asyncio.to_thread(derive_main, settings, False, out) == 0
    text = out.getvalue()
    assert address in text and "--show-secrets" in text
    assert f"PMM_API_KEY={c.api_key[:4]}***" in text and "PMM_API_SECRET=***" in text
    for s in secret_values(wallet_key, c) + [c.api_key]:
        assert s not in text
    out = io.StringIO()
    assert await asyncio.to_thread(derive_main, settings, True, out) == 0
    lines = out.getvalue().splitlines()
    assert f"PMM_API_KEY={c.api_key}" in lines and f"PMM_API_SECRET={c.secret}" in lines
    assert f"PMM_API_PASSPHRASE={c.passphrase}" in lines
    assert wallet_key.removeprefix("0x") not in out.getvalue()


def test_auth_derive_embedded_sandbox_is_deterministic_and_needs_a_key(capsys):
    from pmm_widgets.config import Settings

    key = "0x" + Account.create().key.hex().removeprefix("0x")
    s = Settings(_env_file=None, venue="sandbox", sandbox_markets=3, private_key=key)
    outs = []
    for _ in range(2):
        buf = io.StringIO()
        assert derive_main(s, True, buf) == 0
        outs.append([ln for ln in buf.getvalue().splitlines() if ln.startswith("PMM_")])
    assert outs[0] == outs[1] and len(outs[0]) == 3
    assert derive_main(Settings(_env_file=None, venue="sandbox"), False) == 2
    assert "PMM_PRIVATE_KEY" in capsys.readouterr().err


async def test_secrets_never_in_logs_exceptions_or_rows(sb, venue, wallet_key, caplog, closers):
    caplog.set_level(logging.DEBUG)
    c = derive_creds(Account.from_key(wallet_key).address, 0)
    sink = MemorySink()
    ex = LiveExchange(make_settings(sb, wallet_key), sink, sb.clob_url, sb.ws_url, heartbeat_sec=0.2)
    closers.append(ex)
    await ex.start()
    markets = active_markets(sb, 4)
    ex.set_markets(markets)
    await ex.place(touch_bids(sb, markets))
    await wait_for(lambda: len(venue.account_fills(c.api_key)) >= 1, 15)
    await asyncio.sleep(0.3)
    await ex.poll(time.time())
    await sb.drop_websockets()  # reconnect: re-sends the auth frame, reconciles
    await wait_for(lambda: ex.reconciles >= 2, 5)
    await ex.cancel_all()
    await ex.close()
    errors = []
    # wrong L2 credentials: start refuses with the venue's message, not the values
    bad = make_settings(sb, wallet_key, api_key=c.api_key, api_secret="c2VjcmV0LXRoYXQtaXMtd3Jvbmc=",
                        api_passphrase=c.passphrase)
    ex2 = LiveExchange(bad, sink, sb.clob_url, sb.ws_url, heartbeat_sec=0)
    closers.append(ex2)
    with pytest.raises(LiveError) as ei:
        await ex2.start()
    errors.append(f"{ei.value!s} {ei.value!r}")
    assert "401" in errors[-1]
    # no private key: a clear refusal
    ex3 = LiveExchange(make_settings(sb, None), sink, sb.clob_url, sb.ws_url)
    with pytest.raises(LiveError) as ei:
        await ex3.start()
    errors.append(str(ei.value))
    assert "PMM_PRIVATE_KEY" in errors[-1]
    rows = json.dumps(sink.rows, default=str) + json.dumps(sink.updates, default=str)
    assert "trades" in sink.rows and "orders" in sink.rows
    blob = caplog.text + " ".join(errors) + rows + repr(ex.broker.creds) + repr(bad)
    for s in secret_values(wallet_key, c) + [c.api_key]:
        assert s not in blob
