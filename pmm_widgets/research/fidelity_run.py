"""Paper fidelity against the sandbox's own matching: the ground-truth runs and the fit (IO edge).

`pmm fidelity` and `bench/bench_fidelity.py` both come here. Per seed, the real engine trades
LIVE on a fresh embedded sandbox in its own process (official order path, real sockets, a
throwaway wallet, never `PMM_PRIVATE_KEY`): our orders rest in the simulated books with
price-time priority and are filled by the simulated flow. That run's exchange records what it
saw and did (`Recording`: books with our own resting orders noted, prints, our orders and
cancels, polls, the venue's fills, order round trips). The pure part
(`pmm_widgets.analytics.fidelity`) then replays it through paper exchanges, compares and fits.

`run_paper` is the closed loop: the same engine and seed trading PAPER on the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analytics.fidelity import (
    Candidate,
    ClockMode,
    Comparison,
    Mids,
    OwnOrders,
    PrintMode,
    Recording,
    compare,
    fit,
    replay,
    stats,
    without_own,
)
from ..book import BookNote, as_view
from ..config import SEED_MAX, Settings
from ..domain import BookView, Fill, Mode, OrderStatus, PublicTrade, Quote
from ..errors import PmmError
from ..execution.latency_model import write_samples
from ..venue.endpoints import Endpoints, sandbox_child

if TYPE_CHECKING:
    from ..execution.live import LiveExchange

ONE = Decimal(1)
BASELINE = Candidate("intensity", (), latency_ms=0.0)  # the seed's model: default knobs, no latency
EXTRA_MARKETS = 12  # the sandbox lists more markets than the engine trades (the universe picks the top N)


class FidelityError(PmmError):
    """A fidelity run could not be done (the sandbox did not start, a bad seed list, ...)."""


def recording_exchange(rec: Recording, on_venue_span: Callable[[float], None] | None = None) -> type[LiveExchange]:
    """A LiveExchange that writes everything it sees and does into `rec` (and tells
    `on_venue_span` how much venue time its books have covered so far)."""
    from ..execution.live import LiveExchange

    vspan: list[float] = [math.inf, -math.inf]

    class RecordingLiveExchange(LiveExchange):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            rec.rtt_source = self.order_rtt_ms  # the exchange's own round-trip record

        def _own_in(self, book: BookView) -> OwnOrders:
            """Our open orders as they sit in this token's book: the sandbox keeps one book per
            market, so an order on the complement token rests here mirrored (BUY NO at q is a
            YES ask at 1 − q)."""
            out: list[Any] = []
            for o in self._open.values():
                if o.market != book.market or o.remaining <= 0:
                    continue
                if o.token_id == book.token_id:
                    out.append((o.side, o.price, o.remaining))
                else:
                    out.append((o.side.opposite, ONE - o.price, o.remaining))
            return tuple(out)

        def observe_book(self, book: BookView | BookNote) -> None:
            book = as_view(book)  # every book is recorded: its view is built
            rec.events.append(("book", book.ts or time.time(), book, self._own_in(book)))
            if book.venue_ts_ms:
                v = book.venue_ts_ms / 1000.0
                vspan[0] = min(vspan[0], v)
                vspan[1] = max(vspan[1], v)
                if on_venue_span is not None:
                    on_venue_span(vspan[1] - vspan[0])
            super().observe_book(book)

        def _on_order_event(self, ev: Any) -> None:
            super()._on_order_event(ev)
            o = self._order_for(ev.id)
            sp = self._spans.get(o.client_id) if o is not None else None
            if o is not None and sp is not None:  # kept here: the exchange evicts old ones
                rec.spans[o.client_id] = (sp.placed, sp.gone)

        def observe_trade(self, trade: PublicTrade) -> None:
            rec.events.append(("trade", trade.recv_ts or time.time(), trade))
            super().observe_trade(trade)

        _inside = False  # inside requote(): its fallback calls cancel/place, recorded once by requote

        def _record_places(self, i: int, t0: float, quotes: Sequence[Quote], orders: Sequence[Any]) -> None:
            sent = [(o.client_id, q) for o, q in zip(orders, quotes, strict=False) if o.status is not OrderStatus.REJECTED]
            rec.events[i] = ("place", t0, sent)

        async def place(self, quotes: Sequence[Quote]) -> list[Any]:
            if self._inside:
                return await super().place(quotes)
            t0 = time.time()
            i = len(rec.events)
            rec.events.append(("place", t0, []))
            orders = await super().place(quotes)
            self._record_places(i, t0, quotes, orders)
            return orders

        async def cancel(self, client_ids: Sequence[str]) -> list[str]:
            if not self._inside:
                rec.events.append(("cancel", time.time(), list(client_ids)))
            return await super().cancel(client_ids)

        async def requote(self, cancel_ids: Sequence[str], quotes: Sequence[Quote]) -> tuple[list[str], list[Any]]:
            """Cancels and places leave together: the paper replay cancels first, then places."""
            t0 = time.time()
            if cancel_ids:
                rec.events.append(("cancel", t0, list(cancel_ids)))
            i = len(rec.events)
            rec.events.append(("place", t0, []))
            self._inside = True
            try:
                done, orders = await super().requote(cancel_ids, quotes)
            finally:
                self._inside = False
            self._record_places(i, t0, quotes, orders)
            return done, orders

        async def poll(self, now: float) -> list[Fill]:
            fills = await super().poll(now)
            rec.events.append(("poll", now))
            return fills

        def _close_order(self, o: Any, status: OrderStatus, reason: str = "") -> None:
            """Orders the venue closed on its own (heartbeat expiry, a lost stream's cancel-all)
            are cancels the paper replay must see too; repeats of our own cancels are harmless."""
            if status is OrderStatus.CANCELED and o.client_id in self._open:
                rec.events.append(("cancel", time.time(), [o.client_id]))
            super()._close_order(o, status, reason)

        def _new_fill(self, key: str, o: Any, f: Any, ev: Any, *a: Any, **kw: Any) -> None:
            n = len(self._pending)
            super()._new_fill(key, o, f, ev, *a, **kw)
            t = time.time()
            ms = _event_ms(ev)
            # the match's venue time to the ms (the fill's `ts` is the event's whole-second
            # `match_time`; a paper fill carries its print's ms: markouts must start from the same)
            rec.live_fills.extend((t, replace(x, ts=ms / 1000.0) if ms and math.floor(ms / 1000.0) == math.floor(x.ts)
                                   else x) for x in self._pending[n:])

    return RecordingLiveExchange


def _event_ms(ev: Any) -> float | None:
    """A trade event's venue time in ms (its `timestamp`), when it has one."""
    v = getattr(ev, "timestamp", None)
    try:
        return float(v) if v not in (None, "") and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


START_LIMIT_SEC = 60.0  # wall seconds a live run's engine may take to start (set-up, first universe)
CATCH_UP_SEC = 30.0  # wall seconds a sped-up sandbox takes to reach the wall clock (see `sandbox_process`)


@contextlib.asynccontextmanager
async def sandbox_process(settings: Settings) -> AsyncIterator[Endpoints]:
    """The sandbox venue in its own process (`venue.endpoints.sandbox_child`): on a shared,
    loaded machine the simulator then no longer starves the engine's event loop (or the reverse).

    A sped-up sandbox starts its clock in the past, so that it reaches the wall clock only
    `CATCH_UP_SEC` after the start: by then the engine's market stream has accepted its first
    frames and follows the venue's clock as it runs ahead (a first frame already seconds in our
    future would be clamped as suspect, and with it every later one)."""
    start = time.time() - CATCH_UP_SEC * max(settings.sandbox_speed - 1.0, 0.0)
    async with sandbox_child(settings, start_ts=start) as endpoints:
        yield endpoints


def _settings(base: Settings | None, seed: int, markets: int, speed: float, tmp: str, **over: Any) -> Settings:
    """The run's settings: the user's (strategy parameters kept) on a throwaway DB and sandbox."""
    fields: dict[str, Any] = {"venue": "sandbox", "db_url": f"sqlite:///{Path(tmp) / 'fid.db'}", "sandbox_seed": seed,
                              "sandbox_speed": speed, "sandbox_markets": markets + EXTRA_MARKETS,
                              "sandbox_resolve_every_sec": 0.0, "universe_size": markets, "quote_refresh_sec": 1.0,
                              "record": "off", "live_rtt_file": "", **over}
    # built anew (validated: a private key becomes a SecretStr), the user's strategy parameters kept
    return Settings(_env_file=None, **{**(base.model_dump() if base is not None else {}), **fields})  # type: ignore[call-arg]


async def _start_within_limit(engine: Any) -> tuple[asyncio.Task[None], bool]:
    """`engine.start()`, then wait until it has started (its DB, its markets: `wait_role`), at most
    `START_LIMIT_SEC`: (the run's task, whether it started in time and runs). A run's time counts
    from then: the set-up takes seconds on a loaded host, and counted against the run, which then
    recorded less than asked (or nothing)."""
    run = engine.start()
    asked = time.monotonic()
    with contextlib.suppress(Exception):  # a start that failed: said by the engine, no markets
        await engine.wait_role(timeout=START_LIMIT_SEC)
    return run, not run.done() and time.monotonic() - asked < START_LIMIT_SEC  # (else the wait ran out)


async def run_live(seed: int, markets: int, seconds: float, speed: float, key: str,
                   base: Settings | None = None) -> Recording:
    """One ground-truth run: the engine LIVE on a fresh sandbox for `seconds` of wall time (the
    venue time `seconds` × `speed`), counted from the engine's start (`START_LIMIT_SEC` for that)."""
    import pmm_widgets.execution.live as live_mod
    from pmm_widgets.engine.core import Engine, EngineStateError

    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(base, seed, markets, speed, tmp, private_key=key)
        async with sandbox_process(settings) as endpoints:
            engine = Engine(settings, Mode.LIVE, endpoints=endpoints)
            rec = Recording([], seconds, speed)
            orig = live_mod.LiveExchange
            reached = asyncio.Event()
            want = seconds * speed

            def covered(span: float) -> None:
                if span >= want:
                    reached.set()

            live_mod.LiveExchange = recording_exchange(rec, covered)  # type: ignore[misc]  # (a class swapped in for the run)
            try:
                run, started = await _start_within_limit(engine)
                t0 = time.monotonic()
                if started:
                    # until the venue's clock has covered the simulated time asked for (a loaded host's
                    # sandbox runs slower than its speed-up), at most 1.5x the wall time it should take
                    waiter = asyncio.create_task(reached.wait())
                    await asyncio.wait({run, waiter}, timeout=seconds * 1.5, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                rec.seconds = time.monotonic() - t0 if started else 0.0  # the time it traded
                await engine.stop()
            finally:
                live_mod.LiveExchange = orig  # type: ignore[misc]
            rec.rtt_ms = list(rec.rtt_source or ())  # None: the run ended before the engine built its exchange
            rec.rtt_source = None
            try:  # (an engine that did not start in time has nothing to score, whatever it had loaded)
                rec.markets = list(engine.owner.markets) if started else []
            except EngineStateError:  # the run ended before the engine had taken its database
                rec.markets = []
            tot = engine.state.totals
            rec.engine_totals = {"fills": float(tot.fills), "pnl": float(tot.pnl)}
            return rec


async def run_paper(seed: int, markets: int, seconds: float, speed: float, cand: Candidate, latency_ms: float,
                    base: Settings | None = None) -> dict[str, float]:
    """Closed loop: the same engine and seed trading PAPER with the candidate's models."""
    from pmm_widgets.engine.core import Engine

    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(base, seed, markets, speed, tmp, paper_fill_model=cand.model, paper_latency_file="",
                             paper_latency_ms=cand.latency_ms if cand.latency_ms is not None else latency_ms,
                             **dict(cand.knobs))
        async with sandbox_process(settings) as endpoints:
            engine = Engine(settings, Mode.PAPER, endpoints=endpoints)
            run, _ = await _start_within_limit(engine)  # `seconds` counted from its start, as the live run's
            if not run.done():
                await asyncio.wait({run}, timeout=seconds)
            await engine.stop()
            if not run.cancelled() and run.exception() is not None:  # a crash, as `engine.run` raised it
                raise run.exception()  # type: ignore[misc]
        tot = engine.state.totals
        return {"fills": float(tot.fills), "pnl": float(tot.pnl)}


def throwaway_key() -> str:
    from eth_account import Account

    key: bytes = Account.create().key
    return "0x" + key.hex().removeprefix("0x")


def median_rtt(rec: Recording) -> float:
    return statistics.median(rec.rtt_ms) if rec.rtt_ms else 0.0


@dataclass
class FitResult:
    """A fit on one seed and its check on others."""

    fit_seed: int
    best: Candidate
    ranked: list[Comparison]  # every candidate on the fit seed, best first
    checks: dict[int, list[Comparison]] = field(default_factory=dict)  # seed → [best, seed default]
    rtt_ms: list[float] = field(default_factory=list)  # the fit seed's measured order round trips

    def as_json(self) -> dict[str, Any]:
        return {"fit_seed": self.fit_seed, "best": self.best.label, "ranked": [comparison_json(c) for c in self.ranked],
                "checks": {str(s): [comparison_json(c) for c in cs] for s, cs in self.checks.items()},
                "rtt_ms_median": statistics.median(self.rtt_ms) if self.rtt_ms else None}


def comparison_json(c: Comparison) -> dict[str, Any]:
    """One model against live, as plain JSON numbers (None for an infinite or undefined one)."""
    p, lv = c.paper, c.live
    return {"model": c.label, "loss": round(c.loss, 4), "loss_parts": {k: round(v, 4) for k, v in c.parts.items()},
            "fills": p.fills, "live_fills": lv.fills, "fills_ratio": _num(c.fills_ratio),
            "fills_per_min": round(p.fills_per_min, 3), "live_fills_per_min": round(lv.fills_per_min, 3),
            "median_market_err": _num(c.median_market_err), "size_p10_50_90": list(p.size_q),
            "live_size_p10_50_90": list(lv.size_q),
            "markout_5s": p.markout[5.0], "markout_30s": p.markout[30.0],
            "live_markout_5s": lv.markout[5.0], "live_markout_30s": lv.markout[30.0],
            "live_markout_se_5s": _num(lv.markout_se.get(5.0, math.inf)),
            "live_markout_se_30s": _num(lv.markout_se.get(30.0, math.inf)),
            "pnl": round(p.pnl, 4), "live_pnl": round(lv.pnl, 4), "pnl_diff": round(c.pnl_diff, 4),
            "live_pnl_se": round(c.pnl_se, 4), "within_spec": c.within_spec()}


def _num(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def fit_and_check(recs: dict[int, Recording], fit_seed: int, candidates: list[Candidate] | None = None,
                  prints: PrintMode = "level", clock: ClockMode = "venue") -> FitResult:
    """Fit on `fit_seed` only; report the best and the seed's default on every other seed (each
    recording seen as a paper engine would have seen that market: `without_own`)."""
    view = {s: without_own(r, prints, clock) for s, r in recs.items()}
    ranked = fit(view[fit_seed], candidates)
    best = ranked[0].candidate
    if best is None:
        raise FidelityError("the fit scored no candidate")
    res = FitResult(fit_seed, best, ranked, rtt_ms=list(recs[fit_seed].rtt_ms))
    for seed, rec in view.items():
        if seed == fit_seed:
            continue
        mids = Mids(rec)
        live = stats(rec, rec.live_fills, mids)
        res.checks[seed] = [compare(c.label, stats(rec, replay(rec, c), mids), live) for c in (best, BASELINE)]
    return res


def write_param_set(path: Path, best: Candidate, fit_seed: int, rtt_ms: Sequence[float]) -> list[tuple[str, str]]:
    """Write the fitted parameter set as a `.env` fragment (`PMM_*=value` lines: source it, append
    it to `.env`, or pass each as `--set name=value`); returns its (setting, value) pairs. The
    ground truth's measured order round trips go beside it (`<stem>-rtt.txt`) and the set points
    `PMM_PAPER_LATENCY_FILE` at them: paper then waits as long as that venue answered."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = best.settings()
    head = f"# pmm fidelity --fit on sandbox seed {fit_seed}"
    if rtt_ms and best.latency_ms is None:
        rtt_path = write_samples(path.with_name(path.stem + "-rtt.txt"), rtt_ms,
                                 note=f"order round trips (ms) of the ground-truth run, sandbox seed {fit_seed}")
        pairs.append(("paper_latency_file", str(rtt_path.resolve())))
        head += f"; order round trips median {statistics.median(rtt_ms):.0f} ms ({len(rtt_ms)} samples)"
    path.write_text(head + "\n" + "".join(f"PMM_{n.upper()}={v}\n" for n, v in pairs))
    return pairs


def run_seeds(seeds: Sequence[int], markets: int, sim_minutes: float, speed: float, base: Settings | None = None,
              progress: Any = None) -> dict[int, Recording]:
    """One ground-truth live run per seed (wall time = sim_minutes × 60 / speed each)."""
    if markets < 1 or sim_minutes <= 0 or speed <= 0:
        raise FidelityError(f"markets ({markets}), sim minutes ({sim_minutes:g}) and speed ({speed:g}) must be > 0")
    key = throwaway_key()
    seconds = sim_minutes * 60.0 / speed
    out: dict[int, Recording] = {}
    for seed in seeds:
        t0 = time.monotonic()
        rec = asyncio.run(run_live(seed, markets, seconds, speed, key, base))
        if not rec.markets:  # the engine did not start (its run's time counts from its start): nothing to score
            raise FidelityError(f"live run seed {seed}: the engine had no market yet when the run ended: it did not "
                                f"start within {START_LIMIT_SEC:g} s (the engine's log lines above say what it did)")
        out[seed] = rec
        if progress is not None:
            progress(f"live run seed {seed}: {len(rec.markets)} markets, {rec.sim_minutes:.1f} simulated min, "
                     f"{len(rec.events)} events, {len(rec.live_fills)} live fills, median RTT {median_rtt(rec):.0f} ms "
                     f"({time.monotonic() - t0:.0f} s wall)")
    return out


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FidelityError(f"seeds must be comma-separated integers, not {text!r}") from None
    if not seeds:
        raise FidelityError("no seed given")
    bad = [s for s in seeds if not 0 <= s <= SEED_MAX]  # a sandbox seed's range (PMM_SANDBOX_SEED's)
    if bad:
        raise FidelityError(f"seeds are whole numbers from 0 to 2**63-1, not {bad[0]} (in {text!r})")
    if len(set(seeds)) != len(seeds):
        raise FidelityError(f"a seed appears twice in {text!r}")
    return seeds
