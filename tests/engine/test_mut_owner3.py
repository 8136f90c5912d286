"""The owner session's remaining parts (mutation testing of engine/owner.py, part 3), on fakes:
the live wait after the venue's reward minute, the quote loop's steps and pacing (commands, store
check, circuit, kill, failures, the wake at the venue minute, the clock re-read after a sample,
the heap freeze), the recording rows, the background loops' failures, the full-collection pacer.
`test_mut_owner.py` and `test_mut_owner2.py` cover the rest (their fakes are reused here)."""
from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from engine_helpers import full_collections
from owner_fakes import (
    FakeCycle,
    FakeRest,
    Target,
    instant_waits,
    make_market,
    owner_session,
    record_waits,
    with_runtime,
)

from pmm_widgets.domain import Mode
from pmm_widgets.engine import owner as owner_module
from pmm_widgets.events import EventBus


class _Clock:
    """A venue clock `offset` seconds ahead of the local one; its next sample boundary `boundary` s away."""

    def __init__(self, offset: float = 1000.0, boundary: float = 3600.0) -> None:
        self.offset, self.boundary = offset, boundary

    def to_venue(self, t: float) -> float:
        return t + self.offset

    def next_boundary_wall(self, now: float, sample_sec: float) -> float:
        assert sample_sec == 60.0
        return now + self.boundary


class _Stream:
    """`venue_minute_pending` says yes `pending` times (True: always), recording what it was asked."""

    def __init__(self, pending: int | bool) -> None:
        self.pending = pending
        self.asked: list[tuple[int, int]] = []

    def venue_minute_pending(self, guard_ms: int, venue_ms: int) -> bool:
        self.asked.append((guard_ms, venue_ms))
        return self.pending is True or len(self.asked) <= self.pending


def _events(bus: EventBus) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.kind, ev.message)))
    return seen


# ---------------------------------------------------------------- live: no requote straddles the venue's sample
def _live(owner, stream: _Stream, *, sampling: bool = True, speed: float = 1.0, wall: float = 0.0,
          mode: Mode = Mode.LIVE) -> None:
    cycle = FakeCycle({}, set())
    cycle.econ = SimpleNamespace(clock=_Clock(), stream_sampling=sampling)
    with_runtime(owner, cycle, None, stream=stream)
    owner.mode, owner._venue_speed, owner._cycle_wall = mode, speed, wall


@pytest.mark.parametrize(("mode", "sampling"), [(Mode.PAPER, True), (Mode.DRY_RUN, True), (Mode.LIVE, False)])
async def test_only_a_live_engine_sampled_by_the_stream_waits_for_the_venue_minute(fast_settings, db, mode, sampling):
    owner = owner_session(fast_settings, db, Target())
    stream = _Stream(True)
    _live(owner, stream, sampling=sampling, mode=mode)
    await asyncio.wait_for(owner._after_venue_minute(), 1)
    assert stream.asked == []


@pytest.mark.parametrize(("speed", "wall", "guard_ms"), [
    (1.0, 0.0, 1000), (1.0, 2.0, 4000), (2.0, 0.5, 2000), (30.0, 0.0, 7500), (30.0, 0.2, 12000), (60.0, 0.2, 20000)])
async def test_the_guard_before_the_venue_minute_follows_the_speed_and_the_last_cycle(
        fast_settings, db, speed, wall, guard_ms):
    owner = owner_session(fast_settings, db, Target())
    stream = _Stream(0)
    _live(owner, stream, speed=speed, wall=wall)
    t0 = time.time()
    await asyncio.wait_for(owner._after_venue_minute(), 1)
    t1 = time.time()
    assert len(stream.asked) == 1 and stream.asked[0][0] == guard_ms
    assert int((t0 + 1000.0) * 1000) <= stream.asked[0][1] <= int((t1 + 1000.0) * 1000)  # the venue's time, in ms


async def test_the_wait_for_the_venue_minute_ends_once_sampled_at_its_limit_or_at_a_stop(fast_settings, db):
    owner = owner_session(fast_settings, db, Target())
    stream = _Stream(3)
    _live(owner, stream)
    t0 = time.monotonic()
    await asyncio.wait_for(owner._after_venue_minute(), 2)
    assert len(stream.asked) == 4 and time.monotonic() - t0 < 0.5  # sampled: goes on at once

    stream = _Stream(True)  # never sampled: at most the guard in wall time (15000 ms at 60x: 0.25 s) + 0.5 s
    _live(owner, stream, speed=60.0)
    t0 = time.monotonic()
    await asyncio.wait_for(owner._after_venue_minute(), 3)
    assert 0.7 <= time.monotonic() - t0 < 1.4 and 5 < len(stream.asked) < 400  # polled every 5 ms, not spun

    stream = _Stream(True)
    _live(owner, stream)
    owner._ctl.stop.set()
    t0 = time.monotonic()
    await asyncio.wait_for(owner._after_venue_minute(), 2)
    assert time.monotonic() - t0 < 0.2 and len(stream.asked) <= 1


async def test_the_first_cycle_waits_for_books_without_blocking_the_loop_that_brings_them(fast_settings, db):
    owner = owner_session(fast_settings, db, Target())
    owner.markets = [make_market("0xa")]
    books: dict[str, Any] = {}
    with_runtime(owner, FakeCycle({}, set()), None, books=books, is_stale=lambda b: False)
    asyncio.get_running_loop().call_later(0.05, books.update, {"0xa-y": "A", "0xa-n": "A"})
    t0 = time.monotonic()
    await owner._first_books(2.0)
    assert time.monotonic() - t0 < 1.0 and len(books) == 2

    looks: list[int] = []  # a book never fresh: looked at every 20 ms until the limit, not spun on
    with_runtime(owner, FakeCycle({}, set()), None, books=books, is_stale=lambda b: looks.append(1) or True)
    await owner._first_books(0.2)
    assert 5 <= len(looks) <= 15


# ---------------------------------------------------------------- the quote loop on fakes
class _Loop:
    """Drives `_quote_loop` with every step replaced: `log` is what ran, in order; `plan` maps a
    cycle number (from 1) to what that cycle does: "kill", "raise", "stop", "sample", "slow"."""

    def __init__(self, owner, *, plan: dict[int, str] | None = None, boundary: float = 3600.0,
                 stop_after: int = 3, open_at: int | None = None, stop_in: tuple[str, int] | None = None) -> None:
        self.owner, self.plan, self.stop_after, self.open_at, self.stop_in = owner, plan or {}, stop_after, open_at, stop_in
        self.log: list[str] = []
        self.first: list[float] = []
        self.failed: list[str] = []
        self.n = self.rounds = 0
        cycle = FakeCycle({}, set())
        cycle.econ = SimpleNamespace(clock=_Clock(boundary=boundary), sample_sec=60.0, sample_count=0)
        self.econ = cycle.econ
        with_runtime(owner, cycle, None)
        for name in ("_first_books", "_apply_commands", "_check_store", "_circuit_probe", "_after_venue_minute",
                     "_one_cycle", "_cycle_failed", "_sync_venue_clock"):
            setattr(owner, name, getattr(self, name))
        owner._publish_cycle = lambda: self.log.append("publish")

    async def _first_books(self, limit: float) -> None:
        self.first.append(limit)

    def _step(self, name: str) -> None:
        self.log.append(name)
        if self.stop_in == (name, self.rounds):
            self.owner._ctl.stop.set()

    async def _apply_commands(self) -> None:
        self.rounds += 1
        if self.rounds == self.open_at:
            self.owner._circuit = SimpleNamespace(is_open=True)
        self._step("commands")

    async def _check_store(self) -> None:
        self._step("store")

    async def _circuit_probe(self) -> None:
        self._step("probe")
        if self.rounds >= self.stop_after:
            self.owner._ctl.stop.set()

    async def _after_venue_minute(self) -> None:
        self._step("after")

    async def _one_cycle(self) -> Any:
        self.n += 1
        self.log.append(f"cycle{self.n}")
        what = self.plan.get(self.n)
        if self.n >= self.stop_after or what == "stop":
            self.owner._ctl.stop.set()
        if what == "raise":
            raise ValueError("boom")
        if what == "sample":
            self.econ.sample_count += 1
        if what == "hang":
            await asyncio.sleep(30)
        if what == "slow":
            await asyncio.sleep(0.06)
        if what == "drop-cancel":  # a library that swallows the cancel it got
            me = asyncio.current_task()
            assert me is not None
            me.cancel()
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass
        return SimpleNamespace(kill_requested=what == "kill")

    async def _cycle_failed(self, msg: str) -> None:
        self.failed.append(msg)

    async def _sync_venue_clock(self) -> None:
        self.log.append("sync")


def _loop_settings(fast_settings, **kw: Any) -> Any:
    return fast_settings.model_copy(update={"quote_refresh_sec": 0.05, "gc_freeze": False, **kw})


async def test_each_round_applies_commands_checks_the_store_waits_for_the_minute_quotes_and_publishes(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner)
    await asyncio.wait_for(owner._quote_loop(), 5)
    one = ["commands", "store", "after"]
    assert fake.log == one + ["cycle1", "publish"] + one + ["cycle2", "publish"] + one + ["cycle3", "publish"]
    assert fake.first == [0.05] and fake.failed == [] and not owner._ctl.kill_requested


@pytest.mark.parametrize(("where", "log"), [
    ("commands", ["commands"]), ("store", ["commands", "store"]), ("after", ["commands", "store", "after", "cycle2", "publish"])])
async def test_a_stop_seen_between_the_steps_ends_the_round_there(fast_settings, db, where, log):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner, stop_in=(where, 2), stop_after=9)
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert fake.log == ["commands", "store", "after", "cycle1", "publish"] + log


async def test_an_open_circuit_probes_instead_of_quoting(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner, open_at=2, stop_after=3)
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert fake.log == ["commands", "store", "after", "cycle1", "publish",
                        "commands", "store", "probe", "publish", "commands", "store", "probe", "publish"]


async def test_each_quote_loop_starts_on_a_closed_circuit_with_the_settings_thresholds(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings, circuit_errors=7, circuit_probe_sec=11.0), db, Target())
    fake = _Loop(owner, stop_after=1)
    owner._circuit = SimpleNamespace(is_open=True)  # a circuit left open (a run before): not this run's
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert fake.log == ["commands", "store", "after", "cycle1", "publish"]
    assert (owner._circuit.threshold, owner._circuit.probe_sec, owner._circuit.failures) == (7, 11.0, 0)


async def test_a_kill_from_the_risk_limits_stops_the_loop_at_once_as_a_kill(fast_settings, db):
    bus = EventBus()
    seen = _events(bus)
    owner = owner_session(_loop_settings(fast_settings), db, Target(), events=bus)
    fake = _Loop(owner, plan={2: "kill"}, stop_after=9)
    await asyncio.wait_for(owner._quote_loop(), 5)  # no refresh waited after the kill
    assert fake.log[-3:] == ["after", "cycle2", "publish"] and fake.log.count("publish") == 2 and fake.n == 2
    assert owner._ctl.kill_requested and owner._ctl.stop.is_set()
    assert seen == [("ERROR", "risk_kill", "risk limits requested a kill")]


async def test_a_kill_does_not_wait_a_refresh(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings, quote_refresh_sec=2.0), db, Target())
    fake = _Loop(owner, plan={1: "kill"}, stop_after=9)
    t0 = time.monotonic()
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert time.monotonic() - t0 < 1.0 and fake.n == 1 and owner._ctl.kill_requested


async def test_a_failing_cycle_is_reported_and_the_next_round_runs(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner, plan={1: "raise"})
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert fake.failed == ["ValueError: boom"] and fake.n == 3
    assert fake.log[:9] == ["commands", "store", "after", "cycle1", "commands", "store", "after", "cycle2", "publish"]


@pytest.mark.parametrize(("boundary", "lo", "hi"), [(3600.0, 0.13, 0.2), (0.05, 0.065, 0.0701), (-1.0, 0.0, 0.0)])
async def test_the_loop_waits_what_is_left_of_the_refresh_or_until_just_after_the_venue_minute(
        fast_settings, db, monkeypatch, boundary, lo, hi):
    waits = record_waits(monkeypatch)
    owner = owner_session(_loop_settings(fast_settings, quote_refresh_sec=0.2), db, Target())
    fake = _Loop(owner, boundary=boundary, stop_after=9, plan={1: "slow", 2: "stop"})
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert fake.n == 2 and len(waits) == 2
    first = waits[0]
    if boundary > 1:
        assert 0.2 - 0.06 - 0.03 < first <= 0.2 - 0.06  # the refresh less the slow cycle's time
    else:
        assert lo <= first <= hi


async def test_the_cycle_wall_time_is_the_last_cycles(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    _Loop(owner, plan={1: "fast", 2: "slow"}, stop_after=2)
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert 0.06 <= owner._cycle_wall < 0.06 + 0.04
    _Loop(owner, stop_after=1)
    owner._ctl.stop.clear()
    await asyncio.wait_for(owner._quote_loop(), 5)
    assert owner._cycle_wall < 0.03


async def test_the_venue_clock_is_read_again_after_each_sample_only(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner, plan={2: "sample", 3: "sample"}, stop_after=4)
    await asyncio.wait_for(owner._quote_loop(), 5)
    cycles_then_sync = [x for x in fake.log if x.startswith("cycle") or x == "sync"]
    assert cycles_then_sync == ["cycle1", "cycle2", "sync", "cycle3", "sync", "cycle4"]
    assert owner._clock_synced_at == 2


async def test_a_cancel_a_step_swallowed_still_ends_the_loop(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner, plan={2: "drop-cancel"}, stop_after=9)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(owner._quote_loop(), 5)
    assert fake.n == 2  # ended at the top of the next round


async def test_a_cancel_during_a_cycle_ends_the_loop_never_a_failed_cycle(fast_settings, db):
    owner = owner_session(_loop_settings(fast_settings), db, Target())
    fake = _Loop(owner, plan={2: "hang"}, stop_after=9)
    task = asyncio.create_task(owner._quote_loop())
    for _ in range(200):
        if fake.n == 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task} and task.cancelled() and fake.n == 2 and fake.failed == []


class _Pacer:
    made: list[_Pacer] = []

    def __init__(self) -> None:
        self.calls: list[str] = []
        _Pacer.made.append(self)

    def start(self) -> None:
        self.calls.append("start")

    def between_cycles(self) -> None:
        self.calls.append("between")

    def stop(self) -> None:
        self.calls.append("stop")


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_heap_is_frozen_before_the_first_cycle_and_after_the_refreeze_cycle(fast_settings, db, monkeypatch, freeze):
    _Pacer.made = []
    frozen: list[int] = []
    monkeypatch.setattr(owner_module, "FullCollections", _Pacer)
    owner = owner_session(_loop_settings(fast_settings, gc_freeze=freeze), db, Target())
    fake = _Loop(owner, plan={2: "raise"}, stop_after=owner_module.GC_REFREEZE_CYCLE + 3)
    monkeypatch.setattr(owner_module, "freeze_heap", lambda: frozen.append(fake.n) or 1)
    await asyncio.wait_for(owner._quote_loop(), 10)
    if not freeze:
        assert _Pacer.made == [] and frozen == []
        return
    # cycle 2 failed: the refreeze comes after the GC_REFREEZE_CYCLE-th cycle that ran
    assert frozen == [0, owner_module.GC_REFREEZE_CYCLE + 1]
    (pacer,) = _Pacer.made
    assert pacer.calls == ["start"] + ["between"] * fake.n + ["stop"]


async def test_the_pacer_is_stopped_when_the_loop_ends_by_a_cancel(fast_settings, db, monkeypatch):
    _Pacer.made = []
    monkeypatch.setattr(owner_module, "FullCollections", _Pacer)
    monkeypatch.setattr(owner_module, "freeze_heap", lambda: 1)
    owner = owner_session(_loop_settings(fast_settings, gc_freeze=True, quote_refresh_sec=30.0), db, Target())
    _Loop(owner, stop_after=9)
    task = asyncio.create_task(owner._quote_loop())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _Pacer.made[0].calls[-1] == "stop"


# ---------------------------------------------------------------- the recording's rows
class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[float, str, Any]] = []

    def engine(self, ts: float, kind: str, payload: Any = None) -> None:
        self.rows.append((ts, kind, payload))


def _with_store(owner) -> tuple[_Recorder, list[tuple[list[str], float]]]:
    rec = _Recorder()
    markets: list[tuple[list[str], float]] = []
    owner._store = SimpleNamespace(recorder=rec, writer=None, db=SimpleNamespace(
        markets=lambda ms, ts: markets.append(([m.condition_id for m in ms], ts))))
    return rec, markets


async def test_the_recording_gets_cancels_changed_params_the_universe_and_the_venue_clock(fast_settings, db):
    owner = owner_session(fast_settings, db, Target())
    owner.record_cancel_all(1.0, "nothing recorded")  # no store: nothing, no failure
    owner.record_params(1.0)
    owner._record_universe([make_market("0xa")])
    owner._params.alpha += 1.0  # changed with no recording: seen as recorded
    owner.record_params(1.5)
    rec, markets = _with_store(owner)
    owner.record_cancel_all(2.0, "pause")
    owner.record_params(3.0)  # nothing changed since it last looked
    alpha = owner._params.alpha + 0.5
    owner._params.alpha = alpha
    owner.record_params(4.0)
    owner.record_params(5.0)
    t0 = time.time()
    owner._record_universe([make_market("0xa"), make_market("0xb")])
    owner._venue_speed = 2.0
    with_runtime(owner, FakeCycle({}, set()), FakeRest(server_time=77))
    await owner._sync_venue_clock()
    assert rec.rows[:2] == [(2.0, "cancel_all", {"reason": "pause"}), (4.0, "params", {"alpha": alpha})]
    ((ts, kind, payload),) = rec.rows[2:]
    assert kind == "venue_clock" and payload == owner.runtime.cycle.econ.clock.to_json() and ts == owner.runtime.cycle.econ.clock.w0
    assert payload["v0"] == 77.5 and payload["speed"] == 2.0
    assert len(markets) == 1 and markets[0][0] == ["0xa", "0xb"] and t0 <= markets[0][1] <= time.time()


# ---------------------------------------------------------------- a background loop's failure
async def test_a_failing_background_loop_stops_the_run_and_says_which(fast_settings, db):
    bus = EventBus()
    seen = _events(bus)
    owner = owner_session(fast_settings, db, Target(), events=bus)

    async def fails() -> None:
        raise OSError("gone")

    await owner._owned(fails, "pmm-x")
    msg = "background task pmm-x failed: OSError: gone"
    assert owner._ctl.stop.is_set() and owner._state().last_error == msg
    assert seen == [("ERROR", "error", f"{msg}: stopping (orders are cancelled first)")]

    owner._ctl.stop.clear()

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await owner._owned(cancelled, "pmm-y")
    assert not owner._ctl.stop.is_set() and len(seen) == 1

    async def ends() -> None:
        return None

    await owner._owned(ends, "pmm-z")
    assert not owner._ctl.stop.is_set() and len(seen) == 1


# ---------------------------------------------------------------- the full-collection pacer
def test_a_host_that_disabled_collection_keeps_it_disabled_and_gets_no_full_collection():
    before = gc.get_threshold()
    gc.set_threshold(0, before[1], before[2])
    try:
        pacer = owner_module.FullCollections()
        pacer.start()
        assert gc.get_threshold() == (0, before[1], before[2]) and pacer.saved is None
        with full_collections() as full:
            pacer.last -= 2 * owner_module.GC_FULL_SEC
            pacer.between_cycles()
            assert full == []
        pacer.stop()
        assert gc.get_threshold() == (0, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_the_pacer_saves_the_thresholds_and_its_full_collections_restart_the_period():
    before = gc.get_threshold()
    pacer = owner_module.FullCollections()
    t0 = time.monotonic()
    pacer.start()
    try:
        assert pacer.saved == before and t0 <= pacer.last <= time.monotonic()
        pacer.last = time.monotonic() - owner_module.GC_FULL_SEC - 1
        t1 = time.monotonic()
        pacer.between_cycles()
        assert pacer.last >= t1  # the period starts again from that collection
        last = pacer.last
        pacer.between_cycles()
        assert pacer.last == last
    finally:
        pacer.stop()
    assert gc.get_threshold() == before and pacer.saved is None
    pacer.stop()  # a second stop changes nothing
    assert gc.get_threshold() == before


async def test_a_venue_time_that_fails_is_only_a_debug_line(fast_settings, db, caplog):
    owner = owner_session(fast_settings, db, Target())
    cycle = FakeCycle({}, set())
    with_runtime(owner, cycle, FakeRest(server_time=OSError("down")))
    with caplog.at_level("DEBUG", logger=owner_module.__name__):
        await owner._sync_venue_clock()
    assert cycle.econ.clock is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == owner_module.__name__] == [
        ("DEBUG", "venue /time failed: down")]


def test_freeze_heap_returns_how_many_objects_it_froze():
    try:
        n = owner_module.freeze_heap()
        assert n == gc.get_freeze_count() and n > 100
    finally:
        gc.unfreeze()


# ---------------------------------------------------------------- bug: a resolution whose cancel failed was lost
async def test_a_resolution_that_could_not_be_settled_is_kept_for_the_next_cycle_and_settled_once(fast_settings, db):
    """The venue's `market_resolved` events are popped from the stream before they are settled: a
    cancel that failed (the venue down for a moment) used to lose that one and every one after it
    (the market quoted on, its shares never settled from the event)."""
    from pmm_widgets.venue.market_data import MarketData

    class _Flaky(FakeCycle):
        async def resolve_market(self, ts, cid, winner, exchange, source, *, known=None) -> bool:
            self.calls.append((cid, winner, exchange, source))
            if cid == "0xb" and sum(c[0] == "0xb" for c in self.calls) == 1:
                raise OSError("cancel failed")
            done = cid not in self.resolved
            self.resolved[cid] = winner
            return done

    cycle = _Flaky({}, set())
    followed: list[list[str]] = []

    async def set_markets(ms):
        followed.append([m.condition_id for m in ms])

    md = SimpleNamespace(stream=SimpleNamespace(resolutions=deque()), set_markets=set_markets)
    md.pop_resolutions = lambda: MarketData.pop_resolutions(md)  # type: ignore[arg-type]
    md.unpop_resolutions = lambda evs: MarketData.unpop_resolutions(md, evs)  # type: ignore[arg-type]
    owner = owner_session(fast_settings, db, Target())
    owner._rt = SimpleNamespace(cycle=cycle, md=md, exchange="ex")  # type: ignore[assignment]
    owner.markets = [make_market("0xa"), make_market("0xb"), make_market("0xc")]
    ev = {c: SimpleNamespace(market=c, winning_asset_id=f"{c}-y") for c in ("0xa", "0xb", "0xc", "0xd")}
    md.stream.resolutions.extend([ev["0xa"], ev["0xb"], ev["0xc"]])
    with pytest.raises(OSError):
        await owner._apply_resolutions()  # the cycle fails (an event, a status), its resolutions are kept
    assert [m.condition_id for m in owner.markets] == ["0xb", "0xc"] and followed == [["0xb", "0xc"]]
    md.stream.resolutions.append(ev["0xd"])  # one more arrives meanwhile: after them
    assert list(md.stream.resolutions) == [ev["0xb"], ev["0xc"], ev["0xd"]]
    await owner._apply_resolutions()  # the next cycle settles them
    assert [c[0] for c in cycle.calls] == ["0xa", "0xb", "0xb", "0xc", "0xd"]
    assert set(cycle.resolved) == {"0xa", "0xb", "0xc", "0xd"} and owner.markets == [] and not md.stream.resolutions
    assert followed == [["0xb", "0xc"], ["0xc"], []]


# ---------------------------------------------------------------- the retention loop
def _fast_prune_settings(fast_settings, days: float) -> Any:
    return fast_settings.model_copy(update={"retain_days": days})


async def test_a_retention_of_part_of_a_day_still_prunes(fast_settings, db, monkeypatch):
    from pmm_widgets.store import retention

    instant_waits(monkeypatch)
    owner = owner_session(_fast_prune_settings(fast_settings, 0.5), db, Target())
    calls: list[float] = []

    def fake_prune(engine, days, *, stop):
        calls.append(days)
        owner._ctl.stop.set()
        return retention.PruneReport(0.0, {}, 0, 0.0)

    monkeypatch.setattr(retention, "prune", fake_prune)
    await asyncio.wait_for(owner._prune_loop(), 5)
    assert calls == [0.5]


async def test_a_cancel_during_a_prune_ends_the_retention_loop(fast_settings, db, monkeypatch):
    import threading

    from pmm_widgets.store import retention

    instant_waits(monkeypatch)
    owner = owner_session(_fast_prune_settings(fast_settings, 3.0), db, Target())
    entered, release = threading.Event(), threading.Event()
    calls: list[float] = []

    def fake_prune(engine, days, *, stop):
        calls.append(days)
        entered.set()
        release.wait(2)
        return retention.PruneReport(0.0, {}, 0, 0.0)

    monkeypatch.setattr(retention, "prune", fake_prune)
    task = asyncio.create_task(owner._prune_loop())
    assert await asyncio.to_thread(entered.wait, 2)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.5)
    owner._ctl.stop.set()  # (a loop that went on ends here)
    release.set()
    await asyncio.wait([task], timeout=2)
    assert done == {task} and task.cancelled() and calls == [3.0]
