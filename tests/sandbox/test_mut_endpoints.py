"""`venue.endpoints` beyond `test_sandbox_child.py`: the child is started as configured (seed,
speed, market resolutions, the simulated clock's start), a child that dies names its *last*
stderr line, and a child that never prints its URLs is a one-line error and is stopped even when
it ignores stdin EOF and SIGTERM (the escalation to SIGKILL)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest
from sandbox_helpers import gone

from pmm_widgets.config import Settings
from pmm_widgets.venue import endpoints as ep_mod
from pmm_widgets.venue.endpoints import (
    SANDBOX_PROCESS_MARKETS,
    SandboxStartError,
    open_endpoints,
    sandbox_child,
    sandbox_in_child,
)


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, venue="sandbox", **{"sandbox_markets": 6, "universe_size": 4,  # type: ignore[call-arg, arg-type]
                                                        "sandbox_process": "on", **kw})


def _fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for `sys.executable` (it ignores `-m pmm_widgets.sandbox ...`)."""
    exe = tmp_path / "fake-python"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    return str(exe)


def test_auto_counts_exactly_150_markets_as_a_child() -> None:
    assert SANDBOX_PROCESS_MARKETS == 150
    auto = {"sandbox_process": "auto"}
    assert sandbox_in_child(_settings(**auto, sandbox_markets=150))
    assert sandbox_in_child(_settings(**auto, universe_size=150, sandbox_markets=10))
    assert not sandbox_in_child(_settings(**auto, universe_size=149, sandbox_markets=149))


async def test_the_child_runs_with_the_configured_seed_speed_start_and_resolutions() -> None:
    start = 1_780_000_000.0
    s = _settings(sandbox_seed=11, sandbox_speed=50.0, sandbox_resolve_every_sec=2.0)
    async with sandbox_child(s, start_ts=start) as ep, httpx.AsyncClient(timeout=10) as c:
        st = (await c.get(ep.clob_url + "/_sandbox/state")).json()
        assert (st["seed"], st["speed"], len(st["markets"])) == (11, 50.0, 6)
        assert start <= st["now"] < start + 600  # the simulated clock starts where asked
        async with asyncio.timeout(5):  # a resolution every 2 simulated s, 25 per real second
            while not any(m["resolved"] for m in st["markets"]):
                await asyncio.sleep(0.05)
                st = (await c.get(ep.clob_url + "/_sandbox/state")).json()


async def test_a_child_that_dies_names_its_exit_code_and_last_stderr_line(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable",
                        _fake_python(tmp_path, "echo 'first: warming up' >&2\necho 'last: port in use' >&2\nexit 3\n"))
    with pytest.raises(SandboxStartError) as ei:
        async with sandbox_child(_settings()):
            pass
    assert str(ei.value) == "the sandbox process exited with code 3 before serving: last: port in use"
    monkeypatch.setattr(sys, "executable", _fake_python(tmp_path, "echo 'no module' >&2\nexit 1\n"))
    with pytest.raises(SandboxStartError, match=r"exited with code 1 before serving: no module$"):
        async with sandbox_child(_settings()):
            pass


async def test_a_child_that_prints_no_urls_in_time_is_an_error_and_is_killed(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pidfile = tmp_path / "pid"
    # deaf to stdin EOF and to SIGTERM: only SIGKILL ends it
    monkeypatch.setattr(sys, "executable", _fake_python(
        tmp_path, f"trap '' TERM\necho $$ > {pidfile}\nwhile :; do sleep 0.05; done\n"))
    monkeypatch.setattr(ep_mod, "START_TIMEOUT_SEC", 0.5)
    monkeypatch.setattr(ep_mod, "STOP_TIMEOUT_SEC", 0.2)
    t0 = time.monotonic()
    with pytest.raises(SandboxStartError) as ei:
        async with sandbox_child(_settings()):
            pass
    assert str(ei.value) == "the sandbox process printed no URLs within 0.5 s"
    pid = int(pidfile.read_text())
    assert gone(pid, 0.5), "the child outlived the failed start"
    assert time.monotonic() - t0 < 5


def _urls(tag: str) -> str:
    return (f"echo 'booting {tag}'\necho 'export PMM_GAMMA_URL=http://g.{tag}'\n"
            f"echo 'export PMM_CLOB_URL=http://c.{tag}'\necho 'export PMM_CLOB_WS_URL=ws://w.{tag}'\n")


async def test_a_child_that_serves_is_stopped_by_closing_its_stdin_first(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    how = tmp_path / "how"
    monkeypatch.setattr(sys, "executable", _fake_python(
        tmp_path, _urls("a") + f"trap 'echo term > {how}; exit 0' TERM\ncat > /dev/null\necho eof > {how}\n"))
    monkeypatch.setattr(ep_mod, "STOP_TIMEOUT_SEC", 2.0)
    async with sandbox_child(_settings()) as ep:
        assert (ep.gamma_url, ep.clob_url, ep.ws_url) == ("http://g.a", "http://c.a", "ws://w.a")
        assert ep.sandbox is None and ep.sandbox_pid is not None and ep.embedded
        pid = ep.sandbox_pid
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.5 and how.read_text() == "eof\n"  # it stopped itself: no signal
    assert gone(pid, 0.1)


async def test_a_child_deaf_to_stdin_eof_gets_sigterm_before_any_sigkill(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    how = tmp_path / "how"
    monkeypatch.setattr(sys, "executable", _fake_python(
        tmp_path, _urls("b") + f"trap 'echo term > {how}; exit 0' TERM\nwhile :; do sleep 0.05; done\n"))
    monkeypatch.setattr(ep_mod, "STOP_TIMEOUT_SEC", 0.3)
    async with sandbox_child(_settings()) as ep:
        pid = ep.sandbox_pid
        assert pid is not None
    assert how.read_text() == "term\n" and gone(pid, 0.1)


async def test_the_in_process_sandbox_is_configured_and_stopped_with_the_block() -> None:
    s = _settings(sandbox_process="off", sandbox_seed=11, sandbox_speed=3.0, sandbox_resolve_every_sec=5.0)
    async with open_endpoints(s) as ep:
        sb = ep.sandbox
        assert sb is not None and ep.sandbox_pid is None and ep.embedded
        assert (ep.gamma_url, ep.clob_url, ep.ws_url) == (sb.gamma_url, sb.clob_url, sb.ws_url)
        assert (sb.cfg.markets, sb.cfg.seed, sb.cfg.speed, sb.cfg.resolve_every) == (6, 11, 3.0, 5.0)
        async with httpx.AsyncClient(timeout=5) as c:
            assert (await c.get(ep.clob_url + "/time")).status_code == 200
            url = ep.clob_url
    async with httpx.AsyncClient(timeout=5) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(url + "/time")
    off = _settings(sandbox_process="off")
    async with open_endpoints(off) as ep:
        assert ep.sandbox is not None and ep.sandbox.cfg.resolve_every is None  # 0 s: no resolutions


async def test_the_real_venue_is_its_configured_urls_and_nothing_embedded() -> None:
    s = Settings(_env_file=None, venue="polymarket", gamma_url="https://gamma.example",  # type: ignore[call-arg, arg-type]
                 clob_url="https://clob.example", clob_ws_url="wss://ws.example/ws")
    async with open_endpoints(s) as ep:
        assert (ep.gamma_url, ep.clob_url, ep.ws_url, ep.sandbox, ep.sandbox_pid) == (
            "https://gamma.example", "https://clob.example", "wss://ws.example/ws", None, None)
        assert not ep.embedded
