"""The owner session beyond its stop paths (mutation testing of engine/owner.py, part 2).

`test_mut_owner.py` covers the stop paths. Here: the command table as the owner applies it
(every kind but kill: what is called, with whom as the author, and the result row each command
gets), the set-up, the universe handling and the state the owner publishes.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from engine_helpers import count, open_orders_in_db, until
from owner_fakes import FakeCycle, FakeRest, Target, instant_waits, make_market, owner_session, with_runtime
from pydantic import BaseModel, ValidationError

from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.engine import owner as owner_module
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.owner import OwnerSession
from pmm_widgets.engine.state import EngineState
from pmm_widgets.events import EventBus, EventKind
from pmm_widgets.store import schema


def _insert(db, kind: str, payload: Any, issuer: str = "face-1", sender: str = "") -> int:
    with db.begin() as conn:
        res = conn.execute(sa.insert(schema.commands).values(ts=time.time(), issuer=issuer, sender=sender, kind=kind,
                                                             payload_json=payload))
        return int(res.inserted_primary_key[0])


def _results(db) -> dict[int, str | None]:
    with db.connect() as conn:
        return {r.id: r.result for r in conn.execute(sa.select(schema.commands.c.id, schema.commands.c.result))}


class _Strict(BaseModel):
    x: int


def _validation_error() -> ValidationError:
    try:
        _Strict(x="not a number")  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


async def test_each_command_kind_calls_the_facade_once_with_its_author_and_closes_its_row(fast_settings, db):
    target = Target()
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda ev: seen.append((ev.kind, ev.message)))
    owner = owner_session(fast_settings, db, target, events=bus)
    ids = {
        "params": _insert(db, "set_params", {"alpha": 2.5, "beta": 1}, issuer="face-1"),
        "strategy": _insert(db, "set_strategy", {"market": "0xabc", "strategy": "spread", "params": {"alpha": 3}}),
        "default": _insert(db, "set_strategy", {"market": "0xdef", "strategy": None}),
        "pause": _insert(db, "pause", {}, issuer="face-2", sender="bob@host pid 1"),
        "resume": _insert(db, "resume", {}, issuer="face-3"),
        "anon": _insert(db, "set_params", {"alpha": 1}, issuer=""),
        "anon_pause": _insert(db, "pause", {}, issuer=""),
        "anon_resume": _insert(db, "resume", {}, issuer=""),
        "unknown": _insert(db, "launch_missiles", {}),
    }
    await owner._apply_commands()
    assert target.calls == [
        ("set_params", "face-1", {"alpha": 2.5, "beta": 1}),
        ("set_strategy", "0xabc", "spread", {"alpha": 3}),
        ("set_strategy", "0xdef", None, {}),
        ("pause", True, "pause", "face-2"),
        ("resume", "face-3"),
        ("set_params", "a command", {"alpha": 1}),
        ("pause", True, "pause", "a command"),
        ("resume", "a command"),
    ]
    res = _results(db)
    assert res[ids["params"]] == "ok: alpha=2.5, beta=1"
    assert res[ids["strategy"]] == "ok: 0xabc -> spread"
    assert res[ids["default"]] == "ok: 0xdef -> default"
    assert res[ids["pause"]] == "ok" and res[ids["resume"]] == "ok"
    assert res[ids["unknown"]] == "error: unknown command launch_missiles"
    assert all(v is not None for v in res.values())  # every row closed: none is applied twice
    assert ("command", "pause from bob@host pid 1: ok") in seen  # the event names who sent it
    assert ("command", "set_params from face-1: ok: alpha=2.5, beta=1") in seen
    assert sum(k == "command" for k, _ in seen) == len(ids)
    await owner._apply_commands()  # nothing pending any more: nothing is applied again
    assert len(target.calls) == 8 and not owner._ctl.stop.is_set()


async def test_a_rejected_or_failing_command_is_closed_with_why_and_the_next_one_still_applies(fast_settings, db):
    target = Target()
    owner = owner_session(fast_settings, db, target)
    target.raise_on["set_params"] = _validation_error()
    target.raise_on["set_strategy"] = ValueError("unknown strategy 'nope'")
    bad_params = _insert(db, "set_params", {"alpha": -1})
    bad_strategy = _insert(db, "set_strategy", {"market": "0xabc", "strategy": "nope"})
    no_market = _insert(db, "set_strategy", {"strategy": "spread"})
    after = _insert(db, "resume", {})
    await owner._apply_commands()
    res = _results(db)
    assert (res[bad_params] or "").startswith("rejected: ") and "x" in (res[bad_params] or "")
    assert res[bad_strategy] == "error: ValueError: unknown strategy 'nope'"
    assert (res[no_market] or "").startswith("error: KeyError")
    assert res[after] == "ok" and target.calls[-1] == ("resume", "face-1")


# ---------------------------------------------------------------- retention loop



@pytest.mark.parametrize("fails", [False, True])
async def test_the_prune_loop_prunes_every_prune_sec_and_a_failure_never_stops_it(fast_settings, db, monkeypatch, fails):
    from pmm_widgets.store import retention

    waits = instant_waits(monkeypatch)
    settings = fast_settings.model_copy(update={"prune_sec": 42.0, "retain_days": 3.5})
    bus = EventBus()
    seen: list[tuple[str, str, str]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.kind, ev.message)))
    owner = owner_session(settings, db, Target(), events=bus)
    calls: list[tuple[Any, float]] = []

    def fake_prune(engine, days, *, stop):
        calls.append((engine, days))
        assert stop() is False
        if len(calls) == 3:
            owner._ctl.stop.set()
        if fails:
            raise OSError("disk full")
        n = len(calls) - 1  # the first prune finds nothing to delete: no event for it
        return retention.PruneReport(0.0, {"events": 2 * n, "pnl": 0, "book_snapshots": min(n, 1)}, 1, 0.25)

    monkeypatch.setattr(retention, "prune", fake_prune)
    await asyncio.wait_for(owner._prune_loop(), 5)
    assert calls == [(db, 3.5)] * 3 and waits[:3] == [42.0] * 3
    if fails:
        assert [m for lv, k, m in seen] == ["prune failed: OSError: disk full"] * 3
        assert {(lv, k) for lv, k, _ in seen} == {("WARNING", "retention")}
    else:
        assert [m for _, _, m in seen] == [
            "retention: 3 rows older than 3.5 days pruned in 0.25s: events 2, book_snapshots 1",
            "retention: 5 rows older than 3.5 days pruned in 0.25s: events 4, book_snapshots 1"]
        assert {(lv, k) for lv, k, _ in seen} == {("INFO", "retention")}


async def test_retain_days_zero_never_prunes_and_a_stop_during_the_wait_ends_the_loop(fast_settings, db, monkeypatch):
    from pmm_widgets.store import retention

    waits = instant_waits(monkeypatch)
    owner = owner_session(fast_settings.model_copy(update={"retain_days": 0.0}), db, Target())
    monkeypatch.setattr(retention, "prune", lambda *a, **k: pytest.fail("pruned with PMM_RETAIN_DAYS=0"))
    task = asyncio.ensure_future(owner._prune_loop())
    while len(waits) < 5:
        await asyncio.sleep(0)
    assert not task.done()
    owner._ctl.stop.set()
    await asyncio.wait_for(task, 2)

    called: list[int] = []
    monkeypatch.setattr(retention, "prune", lambda *a, **k: called.append(1))
    stopped = owner_session(fast_settings, db, Target())

    async def stop_meanwhile(event: asyncio.Event, timeout: float) -> bool:
        stopped._ctl.stop.set()  # the stop comes during the wait: nothing is pruned
        return True

    monkeypatch.setattr(owner_module, "wait_set", stop_meanwhile)
    await asyncio.wait_for(stopped._prune_loop(), 2)
    assert called == []


# ---------------------------------------------------------------- the start-up universe
async def test_the_start_up_universe_is_retried_until_it_loads_and_the_status_clears(fast_settings, db, monkeypatch):
    waits = instant_waits(monkeypatch)
    settings = fast_settings.model_copy(update={"universe_size": 9, "universe_rank": "rewards"})
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.message)))
    calls: list[tuple[Any, ...]] = []
    errors_seen: list[str | None] = []
    universe = [SimpleNamespace(condition_id="0x1")]

    async def flaky(*args: Any) -> list[Any]:
        calls.append(args)
        errors_seen.append(owner._state().last_error)
        if len(calls) <= 2:
            raise ConnectionError(f"gamma 503 #{len(calls)}")
        return universe

    owner = owner_session(settings, db, Target(), events=bus, load_universe=flaky)
    assert await owner._first_universe("gamma") is universe  # type: ignore[arg-type]
    assert calls == [("gamma", 9, "rewards")] * 3
    assert len(waits) == 2 and all(1.0 <= w <= 15.0 for w in waits)  # a backoff of at least a second
    assert errors_seen[0] is None and (errors_seen[1] or "").startswith("universe load failed (ConnectionError: gamma 503 #1)")
    assert owner._state().last_error is None  # loaded: the status says so
    assert [lv for lv, _ in seen] == ["WARNING", "WARNING", "INFO"]
    assert seen[-1][1] == "universe loaded after 2 failed attempt(s)"


async def test_a_start_up_universe_that_loads_at_once_says_nothing(fast_settings, db, monkeypatch):
    instant_waits(monkeypatch)
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda ev: seen.append(ev.message))

    async def ok(*args: Any) -> list[Any]:
        return []

    owner = owner_session(fast_settings, db, Target(), events=bus, load_universe=ok)
    owner._publish(EngineState(last_error="from before"))
    assert await owner._first_universe("gamma") == []  # type: ignore[arg-type]
    assert seen == [] and owner._state().last_error == "from before"


@pytest.mark.parametrize("stop_before", [True, False])
async def test_a_stop_while_the_start_up_universe_fails_aborts_the_start(fast_settings, db, monkeypatch, stop_before):
    from pmm_widgets.engine.owner import StartAborted

    calls: list[int] = []
    owner: OwnerSession

    async def stop_in_wait(event: asyncio.Event, timeout: float) -> bool:
        owner._ctl.stop.set()
        return True

    monkeypatch.setattr(owner_module, "wait_set", stop_in_wait)

    async def down(*args: Any) -> list[Any]:
        calls.append(1)
        raise ConnectionError("gamma down")

    owner = owner_session(fast_settings, db, Target(), load_universe=down)
    gamma = SimpleNamespace(http=SimpleNamespace(base_url="http://gamma.test"))
    if stop_before:  # no attempt is made: the abort names the venue it never asked
        owner._ctl.stop.set()
    said = "Gamma at http://gamma.test had not answered yet" if stop_before else "gamma down"
    with pytest.raises(StartAborted, match=f"stopped before the universe could be loaded: {said}"):
        await asyncio.wait_for(owner._first_universe(gamma), 2)  # type: ignore[arg-type]
    assert calls == ([] if stop_before else [1])  # never retried once stopped


# ---------------------------------------------------------------- universe refresh (a running engine)
async def _quoting(settings) -> tuple[Engine, list[tuple[str, str, str | None]]]:
    engine = Engine(settings)
    seen: list[tuple[str, str, str | None]] = []
    engine.events.subscribe(lambda ev: seen.append((ev.kind, ev.message, ev.market)))
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: len({o.market for o in engine.runtime.exchange.open_orders()}) >= 2)
    return engine, seen


@pytest.mark.integration
async def test_a_market_leaving_the_universe_takes_its_quotes_and_only_its(fast_settings, db):
    engine, seen = await _quoting(fast_settings)
    owner, ex = engine.owner, engine.runtime.exchange
    try:
        quoted = {o.market for o in ex.open_orders()}
        gone = next(m for m in owner.markets if m.condition_id in quoted)
        kept = [m for m in owner.markets if m.condition_id != gone.condition_id]
        asked: list[tuple[Any, ...]] = []

        async def without_it(*args: Any) -> list[Any]:
            asked.append(args)
            return list(kept)

        owner.load_universe = without_it
        t0 = time.time()
        await owner.refresh_universe()
        assert asked == [(engine.runtime.gamma, fast_settings.universe_size)]  # rank "liquidity": the default call
        assert [o for o in ex.open_orders() if o.market == gone.condition_id] == []  # cancelled by the refresh
        assert {o.market for o in ex.open_orders()} & {m.condition_id for m in kept}  # the others still quoted
        assert owner.markets == kept and set(engine.runtime.md.markets) == {m.condition_id for m in kept}
        assert owner.universe_ts >= t0
        left = [(msg, mk) for k, msg, mk in seen if k == "universe" and msg.startswith("left the universe")]
        assert len(left) == 1 and left[0][1] == gone.condition_id and left[0][0].startswith(f"left the universe: {gone.question[:60]} (")
        assert int(left[0][0].rsplit("(", 1)[1].split()[0]) >= 1  # its orders, counted
        assert [m for k, m, _ in seen if k == "universe" and m.startswith("universe refreshed")] == ["universe refreshed: +0 -1"]
        snapshot = lambda: count(db, "SELECT COUNT(*) FROM markets WHERE snapshot_ts >= :t", t=t0)
        assert await until(lambda: snapshot() == len(kept), timeout=5)  # the new universe is recorded

        await owner.refresh_universe()  # the same members again: nothing to say, nothing recorded
        await asyncio.sleep(3 * fast_settings.writer_flush_sec)
        assert [m for k, m, _ in seen if k == "universe" and m.startswith("universe refreshed")] == ["universe refreshed: +0 -1"]
        assert snapshot() == len(kept)

        owner.load_universe = lambda *a: _with([*kept, gone])  # it comes back
        await owner.refresh_universe()
        assert [m for k, m, _ in seen if k == "universe" and m.startswith("universe refreshed")][-1] == "universe refreshed: +1 -0"
        assert gone.condition_id in engine.runtime.md.markets
    finally:
        await engine.stop()
    assert open_orders_in_db(db) == 0


@pytest.mark.integration
async def test_a_market_whose_cancel_fails_stays_managed_and_the_others_still_leave(fast_settings, db):
    """Two quoted markets leave the universe and the venue refuses the first one's cancel: that
    one stays in the universe (its orders still managed, its removal tried at the next refresh),
    the other leaves with its orders and is not quoted again, even though checking whether it
    closed fails too. Before, either failure aborted the refresh and a market already cancelled
    was quoted again at the next cycle."""
    engine, seen = await _quoting(fast_settings)
    owner, ex = engine.owner, engine.runtime.exchange
    try:
        quoted = {o.market for o in ex.open_orders()}
        stuck, gone = [m for m in owner.markets if m.condition_id in quoted][:2]
        kept = [m for m in owner.markets if m.condition_id not in (stuck.condition_id, gone.condition_id)]
        owner.load_universe = lambda *a: _with(list(kept))
        real_cancel = ex.cancel_market
        asked: list[str] = []

        async def refusing(cid: str) -> int:
            asked.append(cid)
            if cid == stuck.condition_id:
                raise ConnectionError("venue down")
            return await real_cancel(cid)

        ex.cancel_market = refusing  # type: ignore[method-assign]
        real_settle = owner._settle_if_closed

        async def settle_fails(m: Any) -> None:
            raise RuntimeError(f"settle {m.condition_id}")

        owner._settle_if_closed = settle_fails  # type: ignore[method-assign]
        lg = engine.runtime.cycle.pnl.ledger(gone.condition_id)
        if not (lg.yes or lg.no):  # only a market whose shares we hold is asked whether it closed
            lg.yes += 1
        warned: list[tuple[str, str | None]] = []
        engine.events.subscribe(lambda ev: warned.append((ev.message, ev.market)) if ev.level == "WARNING" else None)
        t0 = time.time()
        await owner.refresh_universe()  # no exception: the refresh itself went through
        assert asked == [stuck.condition_id, gone.condition_id]  # the failure did not stop the next cancel
        assert owner.markets == [*kept, stuck]
        assert set(engine.runtime.md.markets) == {m.condition_id for m in [*kept, stuck]}
        assert owner.universe_ts >= t0
        assert [mk for _, mk in warned] == [stuck.condition_id, gone.condition_id]
        assert warned[0][0].startswith("left the universe but its orders could not be cancelled") and "venue down" in warned[0][0]
        assert warned[1][0] == f"could not settle {gone.condition_id} outside the universe: RuntimeError: settle {gone.condition_id}"
        left = [mk for k, m, mk in seen if k == "universe" and m.startswith("left the universe:")]
        assert left == [gone.condition_id]
        assert [m for k, m, _ in seen if k == "universe" and m.startswith("universe refreshed")] == ["universe refreshed: +0 -1"]
        n = engine.state.tick
        assert await until(lambda: engine.state.tick >= n + 3)  # cycles ran since: the one that left stays unquoted
        assert [o for o in ex.open_orders() if o.market == gone.condition_id] == []
        assert [o for o in ex.open_orders() if o.market == stuck.condition_id]  # still managed, still quoted

        ex.cancel_market = real_cancel  # type: ignore[method-assign]
        owner._settle_if_closed = real_settle  # type: ignore[method-assign]
        await owner.refresh_universe()  # the venue is back: its removal goes through
        assert owner.markets == kept and stuck.condition_id not in engine.runtime.md.markets
        assert [o for o in ex.open_orders() if o.market == stuck.condition_id] == []
        left = [mk for k, m, mk in seen if k == "universe" and m.startswith("left the universe:")]
        assert left == [gone.condition_id, stuck.condition_id]
        assert [m for k, m, _ in seen if k == "universe" and m.startswith("universe refreshed")][-1] == "universe refreshed: +0 -1"
    finally:
        await engine.stop()
    assert open_orders_in_db(db) == 0


async def _with(markets: list[Any]) -> list[Any]:
    return markets


# ---------------------------------------------------------------- universe loop
async def test_the_universe_loop_refreshes_when_due_and_a_failure_waits_a_whole_period(fast_settings, db, monkeypatch):
    waits = instant_waits(monkeypatch)
    settings = fast_settings.model_copy(update={"universe_refresh_sec": 30.0})
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.message)))
    owner = owner_session(settings, db, Target(), events=bus)
    with_runtime(owner, FakeCycle({}, set()), None)  # (nothing outside the universe to settle first)
    refreshes: list[float] = []

    async def failing_refresh() -> None:
        refreshes.append(time.time())
        raise ConnectionError("gamma down")

    owner.refresh_universe = failing_refresh  # type: ignore[method-assign]
    owner.universe_ts = time.time() - 30.5  # due now
    task = asyncio.ensure_future(owner._universe_loop())
    while len(waits) < 20:
        await asyncio.sleep(0)
    owner._ctl.stop.set()
    await asyncio.wait_for(task, 2)
    assert len(refreshes) == 1  # the failure counts as a refresh: the next one is a period later
    assert seen == [("WARNING", "universe refresh failed: ConnectionError: gamma down")]
    assert owner.universe_ts >= refreshes[0]
    assert all(w == 1.0 for w in waits[:20])  # a wait is sliced in seconds (a stop ends it)


async def test_the_universe_loop_waits_what_is_left_of_the_period(fast_settings, db, monkeypatch):
    waits = instant_waits(monkeypatch)
    owner = owner_session(fast_settings.model_copy(update={"universe_refresh_sec": 30.0}), db, Target())
    with_runtime(owner, FakeCycle({}, set()), None)
    owner.refresh_universe = lambda: pytest.fail("refreshed before it was due")  # type: ignore[method-assign,assignment]
    owner.universe_ts = time.time() - 29.6  # due in 0.4 s
    task = asyncio.ensure_future(owner._universe_loop())
    while not waits:
        await asyncio.sleep(0)
    owner._ctl.stop.set()
    await asyncio.wait_for(task, 2)
    assert 0.3 < waits[0] < 0.41


# ---------------------------------------------------------------- the start of a run
@pytest.mark.integration
@pytest.mark.parametrize(("mode", "http_timeout", "warned"), [
    (Mode.LIVE, 10.0, True), (Mode.LIVE, 1.5, False), (Mode.PAPER, 10.0, False)])
async def test_the_start_warns_when_the_lease_leaves_less_for_a_cancel_than_one_http_call(
        fast_settings, db, mode, http_timeout, warned):
    """TTL 3 s: a halt's cancel has 1.5 s. A venue call may take PMM_HTTP_TIMEOUT_SEC: live and
    dry-run say so at the start; paper has no venue call to wait for."""
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
    from pmm_widgets.venue.endpoints import Endpoints

    settings = fast_settings.model_copy(update={"http_timeout_sec": http_timeout,
                                                "private_key": SecretStr(Account.create().key.hex())})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15)) as sb:
        engine = Engine(settings, mode, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        seen: list[tuple[str, str, str]] = []
        engine.events.subscribe(lambda ev: seen.append((ev.level, ev.kind, ev.message)))
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
        finally:
            await engine.stop()
    lease_warnings = [(lv, m) for lv, k, m in seen if k == "lease"]
    expected = [("WARNING", "PMM_LEASE_TTL_SEC=3 leaves 1.5s for a cancel when the DB stops answering, less than "
                 "PMM_HTTP_TIMEOUT_SEC=10: raise the TTL")]
    assert lease_warnings == (expected if warned else [])
    started = [m for _, k, m in seen if k == "engine_start"]
    assert started == [f"engine started: mode={mode.value} venue=sandbox markets={fast_settings.universe_size}"]


@pytest.mark.integration
async def test_each_run_publishes_a_fresh_owner_state_before_it_quotes(fast_settings, db):
    engine = Engine(fast_settings)
    engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.tick >= 3)
    first_start = engine.state.started_ts
    await engine.stop()
    assert not engine.state.running
    states: list[EngineState] = []
    engine.add_state_listener(states.append)
    t0 = time.time()
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        s = next(s for s in states if s.started_ts != first_start)  # the new run's first state
        assert s.running and s.tick == 0 and s.halted is None and s.handover_ts is None
        assert s.started_ts is not None and first_start is not None and t0 - 1 <= s.started_ts <= time.time()
        assert s.started_ts > first_start
        assert s.params == engine.state.params and s.paused is False
        assert await until(lambda: engine.state.tick >= 2)  # each cycle: one more
    finally:
        await engine.stop()


# ---------------------------------------------------------------- the set-up
@pytest.mark.integration
@pytest.mark.parametrize("venue", ["sandbox", "polymarket"])
async def test_the_set_up_anchors_the_venue_clock_at_the_venues_speed_and_dates_the_universe(fast_settings, db, venue):
    """The reward-sampling clock runs at the sandbox's speed on a sandbox, at 1 on the real venue
    (here the sandbox's endpoints under the polymarket name); the start-up universe is dated, so
    the universe loop's first refresh comes a whole PMM_UNIVERSE_REFRESH_SEC later."""
    from pmm_widgets.config import Venue
    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
    from pmm_widgets.venue.endpoints import Endpoints

    settings = fast_settings.model_copy(update={"venue": Venue(venue), "sandbox_speed": 15.0})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15)) as sb:
        engine = Engine(settings, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        t0 = time.time()
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
            owner = engine.owner
            speed = 15.0 if venue == "sandbox" else 1.0
            assert owner._venue_speed == speed
            clock = engine.runtime.cycle.econ.clock
            assert clock.speed == speed and clock.w0 >= t0  # anchored on the venue's /time at the set-up
            assert t0 <= owner.universe_ts <= time.time()
            assert len(owner.markets) == settings.universe_size
            snapshot = "SELECT COUNT(*) FROM markets WHERE snapshot_ts >= :t"  # the start-up universe, recorded
            assert await until(lambda: count(db, snapshot, t=t0) == settings.universe_size, timeout=5)
        finally:
            await engine.stop()


# ---------------------------------------------------------------- what the recording gets (a replay's input)
@pytest.mark.integration
async def test_the_recording_gets_the_universe_start_params_cancels_and_clock_a_replay_needs(
        fast_settings, db, tmp_path, monkeypatch):
    import json

    from pmm_widgets.store.recording import Recorder

    got: list[tuple[str, str, Any]] = []
    real_universe, real_engine, real_record = Recorder.universe, Recorder.engine, Recorder.record

    def universe(self, ts, markets):
        got.append(("universe", "universe", [m.condition_id for m in markets]))
        return real_universe(self, ts, markets)

    def engine_row(self, ts, kind, payload=None):
        got.append(("engine", kind, payload))
        return real_engine(self, ts, kind, payload)

    def record(self, channel, ts, kind, payload, conn=-1):
        if channel == "engine" and kind == "start":
            got.append(("engine", "start", json.loads(payload)))
        return real_record(self, channel, ts, kind, payload, conn)

    monkeypatch.setattr(Recorder, "universe", universe)
    monkeypatch.setattr(Recorder, "engine", engine_row)
    monkeypatch.setattr(Recorder, "record", record)
    settings = fast_settings.model_copy(update={"record": "on", "record_dir": str(tmp_path / "rec")})
    engine = Engine(settings)
    engine.set_strategy("0xa", "as", as_gamma=0.5)  # idle: names go in the start row, objects cannot
    engine.set_strategy("0xn", None, as_gamma=0.25)
    engine.set_strategy("0xo", _Quiet())
    alpha0 = engine.params.alpha
    engine.start()
    assert await engine.wait_role() == "owner"
    engine.params.alpha = alpha0 + 0.5  # a direct assignment before the first cycle: recorded by it
    try:
        assert await until(lambda: ("engine", "params", {"alpha": alpha0 + 0.5}) in got)
        assert await until(lambda: engine.state.tick >= 2)
        owner = engine.owner
        first = got[0]
        assert first == ("universe", "universe", [m.condition_id for m in owner.markets])  # before anything else
        start = next(p for c, k, p in got if k == "start")
        assert start["mode"] == "paper" and start["venue"] == "sandbox" and start["params"]["alpha"] == alpha0
        assert start["quote_refresh_sec"] == settings.quote_refresh_sec and start["restored"] is None
        assert "restored_rows" in start
        assert start["strategies"] == {"0xa": ["as", {"as_gamma": 0.5}], "0xn": [None, {"as_gamma": 0.25}]}
        clocks = [p for c, k, p in got if k == "venue_clock"]
        assert clocks and clocks[0]["speed"] == settings.sandbox_speed
        assert [k for c, k, p in got].index("start") < [k for c, k, p in got].index("cycle")

        n = len(got)
        engine.set_params(alpha=engine.params.alpha + 1.0)
        params = [p for c, k, p in got[n:] if k == "params"]
        assert params == [{"alpha": engine.params.alpha}]  # only what changed
        owner.record_params(time.time())
        assert [p for c, k, p in got[n:] if k == "params"] == params  # nothing changed since: no row

        await engine.pause()
        assert [p for c, k, p in got[n:] if k == "cancel_all"] == [{"reason": "pause"}]
        await engine.resume()

        kept = owner.markets[1:]
        owner.load_universe = lambda *a: _with(list(kept))
        await owner.refresh_universe()
        assert ("universe", "universe", [m.condition_id for m in kept]) in got[n:]

        assert {repr(p) for c, k, p in got if k == "cycle"} == {"None"}  # no hold so far
        await owner._halt(EventKind.DB, "a test's halt")  # (a writer halt is lifted by the next store check)
        assert await until(lambda: ("engine", "cycle", {"hold": "db: a test's halt"}) in got, timeout=5)
        owner._clear_halt(EventKind.DB, "test over")
    finally:
        await engine.stop()
    assert [k for c, k, p in got][-1] == "stop"


class _Quiet:
    """A user's strategy object that never quotes."""

    name = "quiet"

    def decide(self, ctx, state):
        from pmm_widgets.strategy.base import Decision
        return Decision([])


@pytest.mark.integration
async def test_a_default_strategy_object_given_before_the_start_is_the_runs_default(fast_settings, db):
    mine = _Quiet()
    engine = Engine(fast_settings)
    engine.set_strategy("*", mine)  # idle: kept for the run
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert engine.runtime.cycle.default_strategy is mine
    finally:
        await engine.stop()


@pytest.mark.integration
async def test_saved_overrides_are_applied_this_process_ones_win_and_an_unknown_name_is_only_a_warning(fast_settings, db):
    with db.begin() as conn:
        conn.execute(sa.insert(schema.market_overrides), [
            {"market": "0xsaved", "strategy": "as", "params_json": {"as_gamma": 0.5}, "updated_at": 1.0},
            {"market": "0xboth", "strategy": "as", "params_json": {}, "updated_at": 1.0},
            {"market": "0xold", "strategy": "no-longer-built", "params_json": {}, "updated_at": 1.0}])
    engine = Engine(fast_settings)
    engine.set_strategy("0xboth", "microprice", micro_levels=2)  # idle: this process's choice
    seen: list[tuple[str, str, str | None]] = []
    engine.events.subscribe(lambda ev: seen.append((ev.level, ev.message, ev.market)))
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        ov = engine.runtime.cycle.overrides
        assert ov["0xsaved"].name == "as" and ov["0xsaved"].params == {"as_gamma": 0.5}
        assert ov["0xboth"].name == "microprice" and ov["0xboth"].params == {"micro_levels": 2}
        assert "0xold" not in ov
        warned = [(lv, m, mk) for lv, m, mk in seen if "market override of" in m]
        assert len(warned) == 1 and warned[0][0] == "WARNING" and warned[0][2] == "0xold"
        assert warned[0][1].startswith("market override of 0xold ignored: ")
        assert engine.running and engine.state.last_error is None
    finally:
        await engine.stop()


@pytest.mark.integration
async def test_a_command_written_before_the_start_never_reaches_the_new_run(fast_settings, db):
    """A KILL (or pause) sent to an engine that was not running, a second before this one started,
    is closed at the start ("expired"), not applied to a fresh engine."""
    queue = CommandQueue(db, issuer="a face")
    kill, pause = queue.send("kill"), queue.send("pause")
    await asyncio.sleep(0.05)
    engine = Engine(fast_settings)
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.tick >= 3)
        assert engine.running and engine.state.kill is None and not engine.params.quoting_paused
        for cid in (kill, pause):
            res = queue.result(cid)
            assert res is not None and res[1] == "expired: no engine was running"
    finally:
        await engine.stop()


@pytest.mark.integration
async def test_persisted_parameters_are_restored_before_the_owner_state_shows(fast_settings, db):
    first = Engine(fast_settings, persist_params=True)
    first.start()
    assert await first.wait_role() == "owner"
    first.set_params(alpha=2.75, changed_by="a tester")
    assert await until(lambda: not first._sending)
    await first.stop()

    second = Engine(fast_settings, persist_params=True)
    assert second.params.alpha != 2.75
    owner_states: list[EngineState] = []
    second.add_state_listener(lambda s: owner_states.append(s) if s.role == "owner" else None)
    second.start()
    try:
        assert await second.wait_role() == "owner"
        assert second.params.alpha == 2.75
        assert owner_states and all(float(s.params["alpha"]) == 2.75 for s in owner_states)  # never the stale value
    finally:
        await second.stop()


# ---------------------------------------------------------------- one cycle, and the state it publishes
@pytest.mark.integration
async def test_each_cycle_publishes_the_books_feed_writer_and_parameters(fast_settings, db):
    engine = Engine(fast_settings)
    ticks: list[int] = []
    engine.add_state_listener(lambda s: ticks.append(s.tick) if s.role == "owner" else None)
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.tick >= 4 and engine.state.feed.connected)
        s = engine.state
        assert s.running and s.mode == "paper" and s.halted is None and s.venue_health == "" and s.recording == ""
        assert abs(s.ts - time.time()) < 2 and len(s.markets) == fast_settings.universe_size
        assert s.feed.lag_sec is not None and s.feed.lag_sec >= 0 and s.writer_lag_sec is not None
        assert s.writer.startswith("db lag")
        assert s.params["alpha"] == engine.params.alpha and s.paused is False
        seen = sorted(set(ticks))
        assert seen == list(range(seen[0], seen[-1] + 1))  # one more per cycle, none skipped
    finally:
        await engine.stop()


@pytest.mark.integration
async def test_a_cycle_that_works_again_clears_the_cycle_failed_status(fast_settings, db):
    settings = fast_settings.model_copy(update={"circuit_errors": 50})
    engine = Engine(settings)
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.tick >= 2)
        cycle = engine.runtime.cycle
        real = cycle.run_once

        async def fails_once(*a, **k):
            cycle.run_once = real  # type: ignore[method-assign]
            raise ValueError("one bad cycle")

        cycle.run_once = fails_once  # type: ignore[method-assign]
        assert await until(lambda: (engine.state.last_error or "").startswith("cycle failed: ValueError: one bad cycle"))
        assert await until(lambda: engine.state.last_error is None, timeout=5)
        engine.owner._publish(replace(engine.state, last_error="something else"))  # not a cycle's: kept
        await asyncio.sleep(3 * settings.quote_refresh_sec)
        assert engine.state.last_error == "something else"
    finally:
        await engine.stop()


@pytest.mark.integration
async def test_venue_calls_failing_during_a_cycle_fail_it_and_the_venue_health_says_all(fast_settings, db):
    """Live: a cycle during which venue calls failed for good is a failed cycle (the circuit's
    input); the status phrase has the user stream, the heartbeat, a safety valve and the circuit."""
    from eth_account import Account
    from pydantic import SecretStr

    from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
    from pmm_widgets.venue.endpoints import Endpoints

    settings = fast_settings.model_copy(update={"private_key": SecretStr(Account.create().key.hex()),
                                                "circuit_errors": 2, "circuit_probe_sec": 60.0})
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15)) as sb:
        engine = Engine(settings, Mode.LIVE, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
        seen: list[str] = []
        engine.events.subscribe(lambda ev: seen.append(ev.message))
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
            assert await until(lambda: "user stream up" in engine.state.venue_health)
            assert "HALTED" not in engine.state.venue_health and "CIRCUIT" not in engine.state.venue_health
            ex = engine.runtime.exchange
            real_health = ex.health
            ex.health = lambda: replace(real_health(), halted="a test's valve")  # type: ignore[method-assign]
            failures = iter(range(5, 10**6))  # (5 failed before: only those of the cycle count)
            ex.venue_failures = lambda: next(failures)  # type: ignore[method-assign]  # one more each look
            assert await until(lambda: "CIRCUIT OPEN" in engine.state.venue_health,
                               timeout=10)
            failed = [m for m in seen if m.startswith("quote cycle failed: ")]
            assert failed and set(failed) == {"quote cycle failed: 1 venue call(s) failed after retries"}
            health = engine.state.venue_health
            assert health.startswith("user stream up, heartbeat ") and ", HALTED: a test's valve, CIRCUIT OPEN" in health
        finally:
            await engine.stop()


# ---------------------------------------------------------------- settling what left the universe (a fake runtime)
@pytest.mark.parametrize(("case", "asks"), [
    ("no ledger", False), ("flat", False), ("yes only", True), ("no only", True), ("already resolved", False)])
async def test_a_market_that_left_is_checked_only_when_we_hold_its_shares(fast_settings, db, case, asks):
    ledgers = {"no ledger": {}, "flat": {"0xm": SimpleNamespace(yes=0, no=0)},
               "yes only": {"0xm": SimpleNamespace(yes=5, no=0)}, "no only": {"0xm": SimpleNamespace(yes=0, no=3)},
               "already resolved": {"0xm": SimpleNamespace(yes=5, no=5)}}[case]
    cycle = FakeCycle(ledgers, {"0xm"} if case == "already resolved" else set())
    rest = FakeRest(SimpleNamespace(closed=False, winners=[]))
    owner = owner_session(fast_settings, db, Target())
    with_runtime(owner, cycle, rest)
    await owner._settle_if_closed(make_market("0xm"))
    assert rest.asked == (["0xm"] if asks else []) and cycle.calls == []


@pytest.mark.parametrize(("closed", "winners", "settles", "settled"), [
    (False, ["tok-y"], True, False), (True, [], True, False), (True, ["tok-y", "tok-n"], True, False),
    (True, ["tok-n"], True, True), (True, ["tok-n"], False, False)])
async def test_a_closed_market_is_settled_only_with_one_winner(fast_settings, db, closed, winners, settles, settled):
    bus = EventBus()
    seen: list[tuple[str, str, str | None]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.message, ev.market)))
    cycle = FakeCycle({"0xm": SimpleNamespace(yes=2, no=0)}, set(), settles=settles)
    owner = owner_session(fast_settings, db, Target(), events=bus)
    exchange = with_runtime(owner, cycle, FakeRest(SimpleNamespace(closed=closed, winners=winners)))
    await owner._settle_if_closed(make_market("0xm"))
    asked = closed and len(winners) == 1
    assert cycle.calls == ([("0xm", "tok-n", exchange, "closed")] if asked else [])
    assert seen == ([("INFO", "closed market settled from the venue: 0xm", "0xm")] if settled else [])


async def test_a_venue_that_cannot_say_whether_it_closed_keeps_the_inventory_and_says_so(fast_settings, db):
    bus = EventBus()
    seen: list[tuple[str, str, str | None]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.message, ev.market)))
    cycle = FakeCycle({"0xm": SimpleNamespace(yes=2, no=0)}, set())
    owner = owner_session(fast_settings, db, Target(), events=bus)
    with_runtime(owner, cycle, FakeRest(exc=TimeoutError("no answer")))
    await owner._settle_if_closed(make_market("0xm"))
    assert cycle.calls == []
    assert seen == [("WARNING", "could not check whether 0xm closed: TimeoutError: no answer", "0xm")]
    with_runtime(owner, cycle, None)  # no CLOB REST client at all: the same warning, no crash
    await owner._settle_if_closed(make_market("0xm"))
    assert seen[-1][1] == "could not check whether 0xm closed: RuntimeError: market data has no CLOB REST client (no clob_url)"


async def test_the_venue_clock_keeps_its_anchor_when_time_fails_and_follows_the_venue_otherwise(fast_settings, db):
    cycle = FakeCycle({}, set())
    owner = owner_session(fast_settings, db, Target())
    with_runtime(owner, cycle, FakeRest(server_time=OSError("down")))
    await owner._sync_venue_clock()
    assert cycle.econ.clock is None  # kept
    owner._venue_speed = 4.0
    with_runtime(owner, cycle, FakeRest(server_time=1000))
    t0 = time.time()
    await owner._sync_venue_clock()
    clock = cycle.econ.clock
    assert clock.v0 == 1000.5 and clock.speed == 4.0 and t0 <= clock.w0 <= time.time()


# ---------------------------------------------------------------- resolutions seen on the market stream
async def test_resolved_markets_are_settled_and_dropped_from_the_universe(fast_settings, db):
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(lambda ev: seen.append(ev.message))
    cycle = FakeCycle({}, set())
    owner = owner_session(fast_settings, db, Target(), events=bus)
    followed: list[list[str]] = []

    async def set_markets(ms):
        followed.append([m.condition_id for m in ms])

    events = [SimpleNamespace(market="0xb", winning_asset_id="tok-b"), SimpleNamespace(market="0xgone", winning_asset_id="")]
    exchange = with_runtime(owner, cycle, None, pop_resolutions=lambda: list(events), set_markets=set_markets)
    owner.markets = [make_market("0xa"), make_market("0xb"), make_market("0xc")]
    await owner._apply_resolutions()
    assert cycle.calls == [("0xb", "tok-b", exchange, "market_resolved"), ("0xgone", None, exchange, "market_resolved")]
    assert [m.condition_id for m in owner.markets] == ["0xa", "0xc"]
    assert followed == [["0xa", "0xc"]]  # followed again once; the unknown market changes nothing
    assert seen == []  # the cycle's RESOLUTION event says what was settled (no second line)
    assert cycle.known_passed is None  # 0xgone: no market of the universe
    cycle.settles = False
    events[:] = [SimpleNamespace(market="0xa", winning_asset_id="tok-a")]
    await owner._apply_resolutions()
    assert [m.condition_id for m in owner.markets] == ["0xc"]  # dropped
    # a market of the universe goes to the cycle with its terms: one that resolved before the first
    # cycle saw it was "a market we do not know" (a false WARNING) and was never marked resolved
    assert cycle.known_passed is not None and cycle.known_passed.condition_id == "0xa"


# ---------------------------------------------------------------- the first cycle waits for the books
async def test_the_first_cycle_waits_for_every_book_synced_and_fresh_at_most_its_limit(fast_settings, db):
    owner = owner_session(fast_settings, db, Target())
    owner.markets = [make_market("0xa"), make_market("0xb")]
    books: dict[str, Any] = {"0xa-y": "A", "0xa-n": "A"}  # 0xb's books not there yet
    stale = {"A": False, "B": True}
    looks: list[int] = []

    def is_stale(b):
        looks.append(1)
        if len(looks) == 6:  # its book arrives, stale first, then fresh
            books.update({"0xb-y": "B", "0xb-n": "B"})
        if len(looks) == 12:
            stale["B"] = False
        return stale[b]

    with_runtime(owner, FakeCycle({}, set()), None, books=books, is_stale=is_stale)
    t0 = time.monotonic()
    await owner._first_books(5.0)
    assert time.monotonic() - t0 < 2.0 and not any(stale.values())  # returned once all were fresh, not at the limit

    stale["B"] = True  # one never gets fresh: the wait ends at the limit
    t0 = time.monotonic()
    await owner._first_books(0.3)
    assert 0.3 <= time.monotonic() - t0 < 1.5
    owner._ctl.stop.set()  # a stop ends it at once
    t0 = time.monotonic()
    await owner._first_books(5.0)
    assert time.monotonic() - t0 < 0.2


# ---------------------------------------------------------------- bug: a strategy chosen while idle was never kept
@pytest.mark.integration
async def test_a_strategy_chosen_while_idle_is_kept_for_the_next_start(fast_settings, db):
    """`set_strategy` on an idle engine applies to its next run, and names are "kept in
    `market_overrides` (restored at start-up)": they were not (nothing was open to write them
    to), so the following start quoted the market with the default again."""
    from pmm_widgets.store.repo import load_overrides

    first = Engine(fast_settings)
    first.set_strategy("0xidle", "as", as_gamma=0.5)
    first.set_strategy("0xnone", None, as_gamma=0.25)  # the default strategy with its own parameters
    first.set_strategy("0xobj", _Quiet())  # an object lives only in this process
    first._strategy_overrides["0xbad"] = ("no-such-strategy", {})  # refused at the set-up: not kept either
    first.start()
    assert await first.wait_role() == "owner"
    assert first.runtime.cycle.overrides["0xidle"].name == "as" and "0xbad" not in first.runtime.cycle.overrides
    await first.stop()
    assert load_overrides(db) == {"0xidle": ("as", {"as_gamma": 0.5}), "0xnone": (None, {"as_gamma": 0.25})}

    second = Engine(fast_settings)  # a new process: only the DB remembers
    second.start()
    try:
        assert await second.wait_role() == "owner"
        ov = second.runtime.cycle.overrides
        assert ov["0xidle"].name == "as" and ov["0xidle"].params == {"as_gamma": 0.5} and "0xobj" not in ov
    finally:
        await second.stop()


@pytest.mark.integration
async def test_a_cancelled_run_cancels_its_orders_and_stays_cancelled(fast_settings, db):
    """The run's task cancelled (a notebook's interrupt, the loop closing): the shutdown cancels
    every order, and the task ends cancelled (never as a normal return that would hide it)."""
    engine = Engine(fast_settings)
    task = engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: len(engine.runtime.exchange.open_orders()) > 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert open_orders_in_db(db) == 0 and not engine.state.running


@pytest.mark.integration
async def test_a_crash_is_on_every_face_while_the_shutdown_cancels(fast_settings, db):
    """The crash is published before the shutdown starts (its cancels can take seconds, and the
    lease renewals carry that state to attached faces), not only once the task has ended."""
    engine = Engine(fast_settings)
    during: list[str | None] = []
    engine.events.subscribe(lambda ev: during.append(engine.state.last_error) if ev.kind == "engine_stop" else None)
    task = engine.start()
    assert await engine.wait_role() == "owner"
    assert await until(lambda: engine.state.totals.open_orders > 0)

    async def boom(*a, **k):
        raise ValueError("boom")

    engine.owner._cycle_failed = boom  # type: ignore[method-assign]  # the per-cycle guard fails too: a crash
    engine.runtime.cycle.run_once = boom  # type: ignore[method-assign]
    assert await until(task.done)
    assert during == ["ValueError: boom"]


@pytest.mark.integration
async def test_a_stop_before_the_universe_loads_is_a_stop_not_a_crash(fast_settings, db):
    engine = Engine(fast_settings)

    async def down(*a, **k):
        raise ConnectionError("gamma 503")

    engine._load_universe = down
    seen: list[tuple[str, str, str]] = []
    engine.events.subscribe(lambda ev: seen.append((ev.level, ev.kind, ev.message)))
    task = engine.start()
    assert await until(lambda: any("universe load failed" in m for _, _, m in seen), timeout=10)
    await engine.stop()
    assert task.done()
    assert not [m for lv, k, m in seen if k == "error" or "crashed" in m]
    stops = [(lv, m) for lv, k, m in seen if k == "engine_stop"]
    assert ("WARNING", "stopped before the universe could be loaded: gamma 503") in stops


@contextlib.asynccontextmanager
async def _owner_past_two_cycles(settings: Any, **kw: Any) -> AsyncIterator[tuple[Engine, list[str]]]:
    """An owner engine past its first two cycles, and the kinds of the events it emits; stopped after."""
    engine = Engine(settings, **kw)
    seen: list[str] = []
    engine.events.subscribe(lambda ev: seen.append(ev.kind))
    engine.start()
    try:
        assert await engine.wait_role() == "owner"
        assert await until(lambda: engine.state.tick >= 2)
        yield engine, seen
    finally:
        await engine.stop()


@pytest.mark.integration
async def test_the_probe_that_closes_the_circuit_clears_only_a_cycle_failed_status(fast_settings, db):
    settings = fast_settings.model_copy(update={"circuit_errors": 2, "circuit_probe_sec": 0.5})
    async with _owner_past_two_cycles(settings) as (engine, seen):
        cycle = engine.runtime.cycle
        real = cycle.run_once

        async def boom(*a, **k):
            raise ValueError("boom")

        cycle.run_once = boom  # type: ignore[method-assign]
        assert await until(lambda: "circuit_open" in seen)
        engine.owner._publish(replace(engine.state, last_error="an operator's note"))  # not a cycle's
        cycle.run_once = real  # type: ignore[method-assign]
        assert await until(lambda: "circuit_closed" in seen, timeout=10)
        await asyncio.sleep(0)
        assert engine.state.last_error == "an operator's note"


@pytest.mark.integration
async def test_an_engine_on_its_own_sink_publishes_without_a_writer(fast_settings, db):
    """A sink handed in (no DB writer of its own): the cycles publish with no writer fields."""
    from pmm_widgets.store.sink import MemorySink

    async with _owner_past_two_cycles(fast_settings, sink=MemorySink()) as (engine, _):
        assert engine.state.writer_lag_sec is None and engine.state.writer == "" and engine.state.running


@pytest.mark.integration
async def test_failures_between_working_cycles_never_add_up_to_open_the_circuit(fast_settings, db):
    """The circuit opens on failing cycles *in a row*: each working cycle starts the count again."""
    settings = fast_settings.model_copy(update={"circuit_errors": 2})
    async with _owner_past_two_cycles(settings) as (engine, seen):
        cycle = engine.runtime.cycle
        real = cycle.run_once

        async def fails_once(*a, **k):
            cycle.run_once = real  # type: ignore[method-assign]
            raise ValueError("one bad cycle")

        for _ in range(3):
            tick = engine.state.tick
            cycle.run_once = fails_once  # type: ignore[method-assign]
            assert await until(lambda t=tick: engine.state.tick >= t + 2)  # failed, then worked
        assert seen.count("cycle_error") == 3 and "circuit_open" not in seen


@pytest.mark.integration
async def test_a_reset_to_the_default_while_idle_overrides_the_saved_strategy(fast_settings, db):
    """`set_strategy(market, None)` on an idle engine dropped the market from the in-process
    overrides, so the next start applied the saved `market_overrides` row again: the reset was
    ignored. It is now applied at the start and written (a NULL strategy row)."""
    from pmm_widgets.store.repo import load_overrides

    first = Engine(fast_settings)
    first.set_strategy("0xreset", "as", as_gamma=0.5)
    first.start()
    assert await first.wait_role() == "owner"
    await first.stop()
    assert load_overrides(db)["0xreset"] == ("as", {"as_gamma": 0.5})

    second = Engine(fast_settings)  # a new process, idle: back to the default for that market
    second.set_strategy("0xreset", None)
    second.start()
    try:
        assert await second.wait_role() == "owner"
        assert "0xreset" not in second.runtime.cycle.overrides
    finally:
        await second.stop()
    assert load_overrides(db)["0xreset"] == (None, {})


# ---------------------------------------------------------------- the cycle on held books (a fake runtime)
class _HoldStream:
    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    async def hold(self, now: float) -> None:
        self.log.append(("hold", now))

    def release(self) -> None:
        self.log.append(("release",))


class _HoldCycle:
    def __init__(self, yield_sec: float, log: list[tuple[Any, ...]], fail: bool = False) -> None:
        self.yield_sec, self.log, self.fail = yield_sec, log, fail

    async def run_once(self, now, markets, view, exchange, hold=None, decided=None) -> str:
        self.log.append(("cycle", now, hold, decided))
        if self.fail:
            raise ConnectionError("venue down")
        return "report"


@pytest.mark.parametrize(("mode", "yield_sec", "expect"), [
    (Mode.PAPER, 0.0, "unheld"), (Mode.PAPER, 0.005, "held to the end"), (Mode.LIVE, 0.005, "released once decided")])
async def test_a_cycle_that_yields_runs_on_books_held_still_at_its_time(fast_settings, db, mode, yield_sec, expect):
    """`PMM_CYCLE_YIELD_MS` > 0: the stream applies what it has up to `now`, then holds the books
    until the cycle ends (paper: what a replay reproduces) or, live, until every market is decided;
    released even when the cycle fails. 0: the cycle runs on the books as they move, no hold."""
    log: list[tuple[Any, ...]] = []
    owner = owner_session(fast_settings, db, Target())
    owner.mode = mode
    stream = _HoldStream(log)
    owner._rt = SimpleNamespace(cycle=_HoldCycle(yield_sec, log), md=SimpleNamespace(stream=stream, view="view"),  # type: ignore[assignment]
                                exchange="x")
    assert await owner._held_cycle(12.5, "h") == "report"
    early = stream.release if mode is not Mode.PAPER else None
    assert log == {"unheld": [("cycle", 12.5, "h", None)],
                   "held to the end": [("hold", 12.5), ("cycle", 12.5, "h", None), ("release",)],
                   "released once decided": [("hold", 12.5), ("cycle", 12.5, "h", early), ("release",)]}[expect]
    log.clear()
    owner._rt.cycle.fail = True
    with pytest.raises(ConnectionError):
        await owner._held_cycle(13.0, None)
    assert log[-1] == (("release",) if yield_sec > 0 else ("cycle", 13.0, None, None))
