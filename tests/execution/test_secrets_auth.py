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


def test_masked_shows_an_identifiers_head_only_when_the_rest_stays_longer():
    from pmm_widgets.venue.auth import masked

    assert masked("abcdefghi", 4) == "abcd***"  # 9 > 2 * 4: a head of 4 leaves 5 hidden
    assert masked("abcdefgh", 4) == "***"  # 8: half of it would show
    assert masked("abcdef", 4) == "***" and masked("ab", 1) == "***"
    assert masked("abc", 1) == "a***" and masked("abcdefghi", 3) == "abc***"
    assert masked("a-long-secret-value") == masked("x") == "***"  # no head by default, whatever the length


def test_auth_derive_output_lines_closes_its_broker_and_fails_in_one_line(monkeypatch, capsys):
    from pmm_widgets.config import Settings
    from pmm_widgets.venue import broker as broker_module

    acct = Account.create()
    funder = Account.create().address
    s = Settings(_env_file=None, venue="sandbox", sandbox_markets=3, private_key="0x" + acct.key.hex().removeprefix("0x"),
                 signature_type=1, funder=funder)
    closed: list[int] = []
    real_close = broker_module.Broker.close
    monkeypatch.setattr(broker_module.Broker, "close", lambda self: (closed.append(1), real_close(self))[1])

    class Flushed(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            Flushed.flushes += 1
            super().flush()

    out = Flushed()
    assert derive_main(s, False, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(f"# L2 API credentials of wallet {acct.address} at http://127.0.0.1:")
    assert lines[0].endswith(" (embedded sandbox)")
    assert lines[1] == f"# signature type 1, funder {funder}"
    assert [ln.split("=")[0] for ln in lines[2:5]] == ["PMM_API_KEY", "PMM_API_SECRET", "PMM_API_PASSPHRASE"]
    assert lines[5:] == ["# values masked: run `pmm auth derive --show-secrets` to print them for .env"]
    assert closed == [1] and Flushed.flushes >= 1
    out = io.StringIO()
    assert derive_main(s, True, out) == 0
    assert out.getvalue().splitlines()[5:] == ["# put these three lines in .env; they are not stored or logged anywhere else"]
    assert closed == [1, 1]

    async def refused(self) -> None:
        raise broker_module.BrokerError("derive_api_key", "refused", status=401)

    monkeypatch.setattr(broker_module.Broker, "derive_creds", refused)
    out = io.StringIO()
    assert derive_main(s, True, out) == 1
    assert out.getvalue() == ""  # nothing on stdout: no half-written .env lines
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("auth derive failed at http://127.0.0.1:")
    assert err[0].endswith(": the venue refused the wallet's signature (derive_api_key: HTTP 401: refused); "
                           + broker_module.CHECK_WALLET)  # a 401: what to check
    assert closed == [1, 1, 1]  # closed on the failure too


async def test_auth_derive_against_a_venue_url_does_not_say_embedded(sb, wallet_key):
    settings = make_settings(sb, wallet_key)
    out = io.StringIO()
    assert await asyncio.to_thread(derive_main, settings, False, out) == 0
    first = out.getvalue().splitlines()[0]
    assert "embedded" not in first and first.endswith(f" at {settings.clob_url}")
    assert out.getvalue().splitlines()[1] == f"# signature type 0, funder {Account.from_key(wallet_key).address}"
