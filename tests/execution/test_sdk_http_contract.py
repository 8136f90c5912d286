"""The private piece of py-clob-client-v2 that venue/broker.py `SdkHttp` relies on is still there and
still the only way the SDK sends: the module-global `http_helpers.helpers._http_client`, looked up
at call time by `helpers.request` and used only through its `.request(...)` method.

Why a guard and not a public API: SDK 1.2.1 has none for this. `ClobClient(...)` takes no HTTP
client or transport; `helpers.request/get/post/delete` take no client; client.py imports
`get/post/delete` by name (so patching `helpers.get` would not reach it) and `_get_timestamp` calls
`get` directly; the RFQ client imports them too. Overriding `ClobClient._get/_post/_delete` would
be just as private and would miss those. So `SdkHttp` replaces `_http_client` (per-thread routing: a
broker's own client, closed by its close, with the configured timeout), and this test fails with a
message saying what changed when an SDK upgrade (pinned `>=1.2.1,<1.3`) moves it. If it fails: read
the SDK's http_helpers/helpers.py and adapt `SdkHttp`/`sdk_http` (venue/broker.py) before trading."""

from __future__ import annotations

import re
import threading
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.venue.broker import SdkHttp, sdk_http

WHY = ("venue/broker.py SdkHttp replaces py_clob_client_v2.http_helpers.helpers._http_client and relies on the "
       "SDK sending every request through its .request(...) method; ")


def sdk_sources() -> dict[str, str]:
    import py_clob_client_v2

    root = Path(py_clob_client_v2.__file__).parent
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}


def contract_problems(sources: dict[str, str]) -> list[str]:
    """What breaks SdkHttp's assumptions in these SDK sources (relative path -> text); [] when none."""
    problems = []
    helpers = sources.get("http_helpers/helpers.py")
    if helpers is None:
        return ["http_helpers/helpers.py is gone"]
    if not re.search(r"^_http_client\s*=\s*httpx\.Client\(", helpers, re.M):
        problems.append("helpers.py no longer defines the module-global `_http_client = httpx.Client(...)`")
    if "_http_client.request(" not in helpers:
        problems.append("helpers.py no longer sends through `_http_client.request(...)`")
    if len(re.findall(r"httpx\.(?:Async)?Client\(", helpers)) != 1:
        problems.append("helpers.py opens another httpx client besides `_http_client`, which SdkHttp does not route")
    for path, text in sources.items():
        for lineno, line in enumerate(text.splitlines(), 1):
            if path == "http_helpers/helpers.py" and re.match(r"_http_client\s*=", line):
                continue  # its definition
            for m in re.finditer(r"\b_http_client\b(?:\s*\.\s*(\w+))?", line):
                if m.group(1) != "request":
                    problems.append(f"{path}:{lineno} uses `{line.strip()}` (SdkHttp only has .request and .timeout)")
        if path != "http_helpers/helpers.py":
            for m in re.finditer(r"httpx\.(Async)?Client\(|\brequests\.(get|post|delete|put|request|Session)\b|"
                                 r"\baiohttp\.ClientSession\(", text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{path}:{line} opens its own HTTP client (`{m.group(0)}`), which SdkHttp does not route")
    return problems


def test_the_installed_sdk_keeps_the_shape_sdkhttp_relies_on() -> None:
    version = metadata.version("py_clob_client_v2")
    problems = contract_problems(sdk_sources())
    assert not problems, WHY + f"py-clob-client-v2 {version} changed it:\n  " + "\n  ".join(problems)
    from py_clob_client_v2.http_helpers import helpers

    assert hasattr(helpers, "_http_client"), WHY + f"py-clob-client-v2 {version} has no helpers._http_client"
    # looked up at call time (a global of `request`), so replacing the module attribute reroutes it
    assert "_http_client" in helpers.request.__code__.co_names, WHY + "helpers.request no longer reads it as a global"
    current = sdk_http()
    assert isinstance(helpers._http_client, SdkHttp) and helpers._http_client is current
    assert isinstance(current.default, httpx.Client), WHY + f"the SDK's own client is a {type(current.default)}"


@pytest.mark.parametrize("change,expected", [
    (lambda s: s.replace("_http_client.request(", "_http_client.stream("), "_http_client.stream("),
    (lambda s: s.replace("_http_client", "_client"), "no longer defines the module-global"),
    (lambda s: s.replace("_http_client = httpx.Client(http2=True)", "_http_client = None"),
     "no longer defines the module-global"),
    (lambda s: s.replace("resp = _http_client.request(", "resp = _pool.request(") + "\n_pool = httpx.Client()\n",
     "opens another httpx client"),
], ids=["another method", "renamed", "no client", "a second client"])
def test_the_guard_names_what_changed(change, expected) -> None:
    """The guard is not vacuous: an SDK whose helpers.py changed in these ways is reported."""
    sources = sdk_sources()
    sources["http_helpers/helpers.py"] = change(sources["http_helpers/helpers.py"])
    problems = contract_problems(sources)
    assert any(expected in p for p in problems), problems


def test_the_guard_sees_a_client_opened_elsewhere_in_the_sdk() -> None:
    sources = sdk_sources()
    sources["client.py"] += "\n_own = httpx.Client(http2=True)\n"
    assert any(p.startswith("client.py:") and "opens its own HTTP client" in p for p in contract_problems(sources))


async def test_an_sdk_call_on_a_bound_thread_goes_through_the_bound_client() -> None:
    """Behaviour, over loopback: a ClobClient call made on a thread bound with `SdkHttp.bind` is sent
    by that thread's client (what gives each broker its own connections and their close)."""
    import asyncio

    from py_clob_client_v2 import ClobClient

    seen: list[str] = []
    async with Sandbox(SandboxConfig(markets=4, seed=3)) as sb:
        mine = httpx.Client(event_hooks={"request": [lambda r: seen.append(f"{r.method} {r.url.path}")]})

        def work() -> object:
            sdk_http().bind(lambda: mine)
            try:
                return ClobClient(sb.clob_url, 137).get_ok()
            finally:
                mine.close()

        out: list[object] = []
        t = threading.Thread(target=lambda: out.append(work()))  # its own thread: the binding dies with it
        t.start()
        await asyncio.to_thread(t.join)
    assert out == ["OK"] and seen == ["GET /ok"], WHY + "a bound thread's SDK request did not go through its client"
