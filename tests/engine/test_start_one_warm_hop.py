"""An engine's start warms up off the event loop in one worker-thread hop: the owner's set-up
imports its heavy modules (`runtime.warm_imports`) and builds the venue clients' TLS contexts
(`venue.tls`) in the same thread, where it used to hop twice (`warm_imports`, then `tls.warm`
in `build_runtime`): each hop waits for a free worker of the loop's pool and a GIL hand-over."""

from __future__ import annotations

import asyncio

import pytest

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine, runtime
from pmm_widgets.venue import tls


def test_warm_imports_builds_the_tls_contexts(monkeypatch):
    monkeypatch.setattr(tls, "_contexts", {})  # a fresh process: nothing built yet
    runtime.warm_imports(Settings(_env_file=None), Mode.PAPER)
    assert set(tls._contexts) == {False, True}
    assert tls.client_context() is tls._contexts[False]  # the ones every client then shares


def test_a_context_that_fails_to_build_in_warm_imports_is_left_to_tls_warm(monkeypatch):
    """Nothing raised from the warm-up (its imports' errors are reported where the set-up makes
    them): `tls.warm()` builds, and says, what it could not."""
    monkeypatch.setattr(tls, "_contexts", {})
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise OSError("no CA bundle")

    monkeypatch.setattr(tls, "build_all", broken)
    runtime.warm_imports(Settings(_env_file=None), Mode.PAPER)
    assert calls == [1] and tls._contexts == {}
    with pytest.raises(OSError, match="no CA bundle"):
        asyncio.run(tls.warm())


@pytest.mark.integration
async def test_the_start_warms_up_in_one_thread_hop(tmp_path, monkeypatch):
    """A paper engine on the embedded sandbox, from `start()` to its role: the worker-thread hops
    of its warm-up are one (`warm_imports`), and the TLS contexts are built by then."""
    monkeypatch.setattr(tls, "_contexts", {})
    hops: list[str] = []
    real = asyncio.to_thread

    async def spy(func, /, *a, **kw):
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *a, **kw)

    monkeypatch.setattr(asyncio, "to_thread", spy)
    e = Engine(Settings(_env_file=None, db_url=f"sqlite:///{tmp_path / 'e.db'}", venue="sandbox", record="off",
                        sandbox_markets=6, universe_size=2, quote_refresh_sec=0.2))
    e.start()
    try:
        assert await e.wait_role(timeout=60) == "owner"
    finally:
        await e.stop()
    warm = [h for h in hops if h in ("warm_imports", "build_all", "_build_all")]
    assert warm == ["warm_imports"], hops
    assert set(tls._contexts) == {False, True}
