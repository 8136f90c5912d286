"""Access control of the Voilà server: loopback Host only, a token, XSRF on.

Why an identity provider: `voila apps/control.ipynb` is a standalone Voilà app (no Jupyter server
extensions), but its `identity_provider_class` is configurable from `voila.json`, and every
Jupyter handler (the page, the kernels API, the kernel websocket, the unload beacon) asks it for
the user in `prepare()`, before any kernel starts. So one small class closes three holes:

- **DNS rebinding** (issue 17, C2): Voilà forces `allow_remote_access=True`, so the Host header
  was never checked and a page on `rebind.evil.example` resolving to 127.0.0.1 could drive the
  dashboard. `voila.json` turns the jupyter_server check back on (`tornado_settings.
  allow_remote_access=false`, which Voilà applies after its own settings); this class checks
  again (a command-line `--Voila.tornado_settings=…` replaces that dict) and answers 403.
- **Token**: inherited from jupyter_server's `PasswordIdentityProvider`; `voila.json` sets
  `auto_token`, Voilà prints `http://127.0.0.1:8866/?token=…` at start (`make demo` says so).
- **XSRF**: jupyter_server checks `_xsrf` on every non-GET request once `disable_check_xsrf` is
  off, but Voilà streams its page and never sets the `_xsrf` cookie, so its `beforeunload`
  shutdown beacon (which posts the cookie's value) was refused (voila#1458) and the project had
  switched XSRF off. Reading `handler.xsrf_token` here, in `prepare()` of every plain GET, sets
  the cookie before the first byte is flushed; the beacon then passes the check.
"""

from __future__ import annotations

import inspect
import ipaddress
import re
from collections.abc import Awaitable
from typing import Any

from jupyter_server.auth.identity import PasswordIdentityProvider
from tornado import web
from tornado.websocket import WebSocketHandler

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback_host(host_header: str) -> bool:
    """True when a Host header names this machine's loopback: 127.0.0.0/8, ::1 or localhost."""
    m = re.match(r"^(\[[^\]]*\]|[^:]*)(:\d+)?$", host_header.strip())
    if m is None:
        return False
    host = m.group(1).strip("[]").lower().rstrip(".")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoopbackIdentityProvider(PasswordIdentityProvider):
    """Token auth (inherited) + loopback Host + the `_xsrf` cookie on page loads."""

    def get_user(self, handler: web.RequestHandler) -> Any:
        host = handler.request.host or ""
        if not is_loopback_host(host):
            self.log.warning("pmm: refused request with non-loopback Host %r for %s", host, handler.request.path)
            raise web.HTTPError(403, "this dashboard only answers on 127.0.0.1 / localhost")
        user = super().get_user(handler)
        if inspect.isawaitable(user):
            return self._with_xsrf_cookie_async(handler, user)
        self._set_xsrf_cookie(handler, user)
        return user

    async def _with_xsrf_cookie_async(self, handler: web.RequestHandler, pending: Awaitable[Any]) -> Any:
        user = await pending
        self._set_xsrf_cookie(handler, user)
        return user

    @staticmethod
    def _set_xsrf_cookie(handler: web.RequestHandler, user: Any) -> None:
        if user is None or handler.request.method not in ("GET", "HEAD") or isinstance(handler, WebSocketHandler):
            return
        handler._current_user = user  # what prepare() sets next; tornado's xsrf_token reads it
        _ = handler.xsrf_token  # sets the _xsrf cookie the unload beacon sends back
