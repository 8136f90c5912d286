"""The process's TLS client contexts: built once, off the event loop, shared by every client.

Why: `httpx.AsyncClient(...)` builds a fresh `ssl.SSLContext` from certifi's bundle each time it
is constructed (20-50 ms of CPU that holds its thread, even for a plain-http URL), and websockets
builds `ssl.create_default_context()` at every wss:// connect. On the event loop, which the quote
cycle, the market feed and the user stream share, that is a stall of all of them: the order
entry's client was opened at the first order, mid-trading; every reconnect of a wss stream paid it
again. Here each context is built once per process, in a worker thread: the owner's set-up builds
them with its other first imports (`engine.runtime.warm_imports`, one thread hop), and `warm()` at
the start of the engine's venue side (`engine.runtime.build_runtime`) is then a no-op (it builds
them for a caller that skipped that); a client made before any warm-up builds it on its own
thread, once, and every later client reuses it.

Why one shared context is safe: an `ssl.SSLContext` is configuration (trust store, protocol and
verification settings) that any number of connections, on any threads, wrap their sockets with;
CPython's ssl module and OpenSSL's SSL_CTX support that as long as nobody reconfigures the
context meanwhile. httpcore does write to it: before every TLS connect it sets the ALPN offer
on the context it was given (`["http/1.1", "h2"]` for an HTTP/2 client, `["http/1.1"]`
otherwise). Hence one context per offer, each built with that offer already set: httpcore's write
rewrites the same value, and an HTTP/1.1 client never offers h2 because an HTTP/2 client on
another thread connected just before (nor a wss connect, which needs HTTP/1.1 for its upgrade and
uses the HTTP/1.1 context).

The trust store is what httpx uses by default (`httpx.create_ssl_context()`: certifi's bundle, or
SSL_CERT_FILE / SSL_CERT_DIR when set, read when the context is built). wss connects use it too
(websockets' own default was the system store): the REST and websocket hosts are verified alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ssl
import threading

import httpx

H1 = ("http/1.1",)  # httpcore's ALPN offer of an HTTP/1.1-only client (and a websocket's need)
H2 = ("http/1.1", "h2")  # ... of an HTTP/2 client

_lock = threading.Lock()
_contexts: dict[bool, ssl.SSLContext] = {}


def client_context(http2: bool = False) -> ssl.SSLContext:
    """The process's TLS context for clients offering HTTP/2 (`http2`) or HTTP/1.1 only: pass it
    as httpx's `verify=`. Built at the first call (thread-safe, once); `warm()` makes that first
    call off the event loop."""
    ctx = _contexts.get(http2)
    if ctx is None:
        with _lock:
            ctx = _contexts.get(http2)
            if ctx is None:
                ctx = httpx.create_ssl_context()
                ctx.set_alpn_protocols(list(H2 if http2 else H1))
                _contexts[http2] = ctx
    return ctx


def ws_context(url: str) -> ssl.SSLContext | None:
    """The `ssl=` of a websocket connect to `url`: the HTTP/1.1 context for wss://, None for ws://
    (no TLS; websockets' default)."""
    return client_context(http2=False) if url.startswith("wss://") else None


def build_all() -> None:
    """Build both contexts (and do httpx's first-use imports) in the calling thread: blocking, call
    it off the event loop (the owner's set-up does, with its other imports: `runtime.warm_imports`)."""
    import httpcore  # noqa: F401  (httpx imports it at the first client: ~20 ms, here instead)

    with contextlib.suppress(ImportError):  # ... and anyio's asyncio backend at the first request
        importlib.import_module("anyio._backends._asyncio")
    for http2 in (False, True):
        client_context(http2)


async def warm() -> None:
    """Build both contexts in a worker thread, once (and import what httpx imports at its first
    client and first request, ~20 ms each): every client made after it costs the event loop well
    under a millisecond. Cheap when already done."""
    if len(_contexts) < 2:
        await asyncio.to_thread(build_all)
