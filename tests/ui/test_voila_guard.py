"""The Voilà identity provider on its own (ui/voila_guard.py), without a server.

The end-to-end test (tests/e2e/test_voila_lifecycle.py) runs with `voila.json`, which also turns
jupyter_server's own Host check on, so a forged Host is refused there even if this class let it
through. The class is the second check that still holds when a command line replaces
`tornado_settings`; these tests pin it alone: the Host refused before the token is even asked
for, and the `_xsrf` cookie set on plain page loads only.
"""
from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from jupyter_server.auth.identity import PasswordIdentityProvider
from tornado import web
from tornado.websocket import WebSocketHandler

from pmm_widgets.ui.voila_guard import LoopbackIdentityProvider, is_loopback_host


class _Page:
    """What get_user reads of a tornado handler: its request, and the xsrf_token property."""

    def __init__(self, host: str, method: str = "GET") -> None:
        self.request = SimpleNamespace(host=host, path="/voila/render", method=method)
        self.xsrf_reads: list[Any] = []

    @property
    def xsrf_token(self) -> bytes:
        self.xsrf_reads.append(getattr(self, "_current_user", None))
        return b"token"


class _Socket(WebSocketHandler):
    """A kernel websocket: never given the cookie (it is not a page load)."""

    def __init__(self, host: str) -> None:  # no tornado set-up: only what get_user reads
        self.request = SimpleNamespace(host=host, path="/api/kernels/k/channels", method="GET")
        self.xsrf_reads: list[Any] = []

    @property
    def xsrf_token(self) -> bytes:
        self.xsrf_reads.append(True)
        return b"token"


@pytest.fixture
def token_user(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The inherited token check, scripted: it answers a user and records each handler it saw."""
    asked: list[Any] = []

    def get_user(self: Any, handler: Any) -> Any:
        asked.append(handler)
        return "user-1"

    monkeypatch.setattr(PasswordIdentityProvider, "get_user", get_user)
    return asked


@pytest.mark.parametrize("host", ["rebind.evil.example:8866", "", "10.0.0.1:8866", "localhost.evil.example"])
def test_a_forged_host_is_refused_with_403_before_the_token_is_asked_for(token_user, host, caplog):
    page = _Page(host)
    with caplog.at_level(logging.WARNING), pytest.raises(web.HTTPError) as err:
        LoopbackIdentityProvider().get_user(page)  # type: ignore[arg-type]
    assert err.value.status_code == 403
    assert token_user == [] and page.xsrf_reads == []
    # the operator's log says who was refused and for what
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"pmm: refused request with non-loopback Host {host!r} for /voila/render"]


def test_a_request_without_a_host_is_refused(token_user):
    page = _Page("")
    page.request.host = None
    with pytest.raises(web.HTTPError) as err:
        LoopbackIdentityProvider().get_user(page)  # type: ignore[arg-type]
    assert err.value.status_code == 403 and token_user == []


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_page_load_on_loopback_gets_the_user_and_the_xsrf_cookie(token_user, method):
    page = _Page("127.0.0.1:8866", method)
    assert LoopbackIdentityProvider().get_user(page) == "user-1"  # type: ignore[arg-type]
    assert token_user == [page]
    assert page.xsrf_reads == ["user-1"]  # read once, with the user already set (tornado signs it per user)


@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_a_request_that_changes_something_is_not_handed_the_cookie(token_user, method):
    page = _Page("localhost:8866", method)
    assert LoopbackIdentityProvider().get_user(page) == "user-1"  # type: ignore[arg-type]
    assert page.xsrf_reads == []  # the XSRF check of that request must compare with the page's cookie


def test_the_kernel_websocket_is_not_handed_the_cookie(token_user):
    sock = _Socket("[::1]:8866")
    assert LoopbackIdentityProvider().get_user(sock) == "user-1"  # type: ignore[arg-type]
    assert token_user == [sock] and sock.xsrf_reads == []


def test_no_token_no_cookie(monkeypatch):
    monkeypatch.setattr(PasswordIdentityProvider, "get_user", lambda self, handler: None)
    page = _Page("127.0.0.1:8866")
    assert LoopbackIdentityProvider().get_user(page) is None  # type: ignore[arg-type]
    assert page.xsrf_reads == [] and not hasattr(page, "_current_user")


def test_an_identity_answered_later_is_awaited_and_then_gets_the_cookie(monkeypatch):
    async def later(self: Any, handler: Any) -> str:
        await asyncio.sleep(0)
        return "user-2"

    monkeypatch.setattr(PasswordIdentityProvider, "get_user", later)
    page = _Page("localhost", "GET")
    pending = LoopbackIdentityProvider().get_user(page)  # type: ignore[arg-type]
    assert page.xsrf_reads == []  # nothing before the user is known
    assert asyncio.run(pending) == "user-2"
    assert page.xsrf_reads == ["user-2"]
    post = _Page("localhost", "POST")
    assert asyncio.run(LoopbackIdentityProvider().get_user(post)) == "user-2"  # type: ignore[arg-type]
    assert post.xsrf_reads == []


def test_loopback_host_forms():
    for ok in ("127.0.0.1", "127.0.0.1:8866", "127.255.255.254:1", "[::1]", "[::1]:8866", "localhost",
               "LocalHost:80", "localhost.", "localhost.localdomain", "ip6-localhost:8866", "ip6-loopback", " 127.0.0.1 "):
        assert is_loopback_host(ok), ok
    # a bare IPv6 literal is not a valid Host (RFC 3986 brackets it): refused, the safe way
    for bad in ("::1", "128.0.0.1", "0.0.0.0", "[::]:8866", "::2", "localhost:8866:80", "localhost:port", "127.0.0.1, evil.example",
                "evil.example:127", "[127.0.0.1]x", "[::ffff:10.0.0.1]", "LOCALHOSTX", "[localhost]x"):
        assert is_loopback_host(bad) is False, bad
