"""Paper-vs-sandbox fidelity: how far each paper fill model is from live trading on the sandbox,
and a fitter that picks the models' parameters from one seed and checks them on others.

Per seed, the real engine trades LIVE on a fresh embedded sandbox (official SDK, real sockets, a
throwaway wallet): our orders rest in the simulated books with price-time priority and are
filled by the simulated flow, which is the ground truth. The run records what its exchange saw and did
(books, prints, our orders and cancels, polls, the venue's fills, order round-trip times; see
`pmm_widgets.analytics.fidelity`). Each paper model then replays that recording: the same
orders at the same moments against the same market (open loop), with the sandbox's measured
round trips as its latency model. Any difference in fills is the model's alone.

The fitter scores every candidate (queue; prob_queue with power n ∈ {0.5, 1, 2, 3, 5} and log;
intensity over a grid of PMM_PAPER_FILL_INTENSITY × PMM_PAPER_SPREAD_K) on the first seed and keeps the
best of each family; those, and the seed's intensity model with default knobs and no latency,
are then reported on every seed (the first is in-sample; the others are the check). The best
fitted parameter set is written as a `.env` fragment (`<--dir>/fidelity-fit.env`, default artifacts/fidelity).

Reported per model: fills per simulated minute, paper/live fill ratio, the median market's
|paper/live − 1|, fill sizes p10/p50/p90, size-weighted mean markouts at 5 s and 30 s (on the
venue's clock, i.e. simulated seconds; price units), PnL (cash + positions at the last mid, fees included) and its difference to live,
with live's standard error (per-market spread × √N).

Time: at --speed S the market runs S times faster than the wall clock while the engine's timers
(quote refresh, markout horizons) stay in wall time; fills/min are per simulated minute. The
queue models are driven by market events, so their fitted parameters do not depend on S; the
intensity model counts wall time, so its fitted knobs hold for that speed only.

Usage:
  python bench/bench_fidelity.py --quick                 # 8 markets, 1 seed, 6 simulated min (< 3 min)
  python bench/bench_fidelity.py --markets 50 --sim-minutes 60 --seeds 7,8,9 --speed 10
  python bench/bench_fidelity.py --load artifacts/fidelity  # re-fit saved recordings, no new runs
The last line is `fidelity: model=<best> fills_ratio=<paper/live> pnl_diff_usd=<paper−live>`
over the check seeds (the fit seed when there is only one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from eth_account import Account

from pmm_widgets.analytics.fidelity import (
    HORIZONS,
    Candidate,
    Comparison,
    Mids,
    Recording,
    compare,
    default_grid,
    fit,
    replay,
    stats,
)
from pmm_widgets.config import Settings
from pmm_widgets.domain import BookView, Fill, Mode, OrderStatus, PublicTrade, Quote
from pmm_widgets.engine.core import Engine
from pmm_widgets.venue.endpoints import Endpoints

ART = Path("artifacts/fidelity")  # --dir
BASELINE = Candidate("intensity", (), latency_ms=0.0)  # the seed's model: default knobs, no latency


def recording_exchange(rec: Recording) -> type:
    """A LiveExchange that writes everything it sees and does into `rec`."""
    from pmm_widgets.execution.live import LiveExchange

    class RecordingLiveExchange(LiveExchange):
        def observe_book(self, book: BookView) -> None:
            rec.events.append(("book", book.ts or time.time(), book))
            super().observe_book(book)

        def observe_trade(self, trade: PublicTrade) -> None:
            rec.events.append(("trade", trade.recv_ts or time.time(), trade))
            super().observe_trade(trade)

        _inside = False  # inside requote(): its fallback calls cancel/place, recorded once by requote

        def _record_places(self, i: int, t0: float, quotes: Sequence[Quote], orders: Sequence[Any]) -> None:
            dt_ms = (time.time() - t0) * 1000.0
            sent = [(o.client_id, q) for o, q in zip(orders, quotes) if o.status is not OrderStatus.REJECTED]
            rec.events[i] = ("place", t0, sent)
            if sent:
                rec.rtt_ms.append(dt_ms / math.ceil(len(sent) / 15))  # one HTTP call per batch of 15

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

        def _new_fill(self, *a: Any, **kw: Any) -> None:
            n = len(self._pending)
            super()._new_fill(*a, **kw)
            t = time.time()
            rec.live_fills.extend((t, f) for f in self._pending[n:])

    return RecordingLiveExchange


@contextlib.contextmanager
def sandbox_process(markets: int, seed: int, speed: float) -> Iterator[Endpoints]:
    """The sandbox venue in its own process (`python -m pmm_widgets.sandbox`): on a shared,
    loaded machine the simulator then no longer starves the engine's event loop (or the reverse)."""
    proc = subprocess.Popen([sys.executable, "-m", "pmm_widgets.sandbox", "--markets", str(markets), "--seed", str(seed),
                             "--speed", str(speed)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        urls: dict[str, str] = {}
        assert proc.stdout is not None
        while len(urls) < 3:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox process exited before printing its URLs")
            if line.startswith("export PMM_"):
                k, v = line.removeprefix("export ").strip().split("=", 1)
                urls[k] = v
        yield Endpoints(urls["PMM_GAMMA_URL"], urls["PMM_CLOB_URL"], urls["PMM_CLOB_WS_URL"], None)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def run_live(seed: int, markets: int, seconds: float, speed: float, key: str) -> Recording:
    import pmm_widgets.execution.live as live_mod

    with tempfile.TemporaryDirectory() as tmp, sandbox_process(markets + 12, seed, speed) as endpoints:
        settings = Settings(_env_file=None, venue="sandbox", db_url=f"sqlite:///{Path(tmp) / 'fid.db'}",
                            sandbox_seed=seed, sandbox_speed=speed, sandbox_markets=markets + 12,
                            universe_size=markets, quote_refresh_sec=1.0, private_key=key)
        engine = Engine(settings, Mode.LIVE, endpoints=endpoints)
        rec = Recording([], seconds, speed)
        orig = live_mod.LiveExchange
        live_mod.LiveExchange = recording_exchange(rec)  # type: ignore[misc]
        try:
            t0 = time.monotonic()
            await engine.run(max_seconds=seconds)
            rec.seconds = time.monotonic() - t0 if rec.seconds <= 0 else rec.seconds
        finally:
            live_mod.LiveExchange = orig  # type: ignore[misc]
        rec.markets = list(engine.owner.markets)
        tot = engine.state.totals
        rec.engine_totals = {"fills": float(tot.fills), "pnl": float(tot.pnl)}
        return rec


async def run_paper(seed: int, markets: int, seconds: float, speed: float, cand: Candidate,
                    latency_ms: float) -> dict[str, float]:
    """Closed loop: the same engine and seed trading PAPER with the candidate's models."""
    with tempfile.TemporaryDirectory() as tmp, sandbox_process(markets + 12, seed, speed) as endpoints:
        knobs = dict(cand.knobs)
        settings = Settings(_env_file=None, venue="sandbox", db_url=f"sqlite:///{Path(tmp) / 'fid.db'}",
                            sandbox_seed=seed, sandbox_speed=speed, sandbox_markets=markets + 12,
                            universe_size=markets, quote_refresh_sec=1.0, paper_fill_model=cand.model,
                            paper_latency_ms=cand.latency_ms if cand.latency_ms is not None else latency_ms,
                            **knobs)
        engine = Engine(settings, Mode.PAPER, endpoints=endpoints)
        await engine.run(max_seconds=seconds)
        tot = engine.state.totals
        return {"fills": float(tot.fills), "pnl": float(tot.pnl)}


def fmt_row(c: Comparison, live: bool = False) -> str:
    s = c.live if live else c.paper
    q = "/".join(f"{x:g}" for x in s.size_q)
    mk = " ".join(f"{s.markout[h] * 100:+6.2f}c" for h in HORIZONS)
    label = "live-sandbox (truth)" if live else c.label
    if live:
        tail = f"{'':>6} {'':>7} {s.pnl:+8.2f} {'':>8} ±{c.pnl_se:.2f}"
        return f"{label:<44} {s.fills:>5} {s.fills_per_min:>7.2f} {q:>14} {mk} {tail}"
    spec = c.within_spec()
    ok = "".join("✓" if spec[k] else "✗" for k in ("fills_total", "fills_median_market", "pnl", "markout_5s", "markout_30s"))
    return (f"{label:<44} {s.fills:>5} {s.fills_per_min:>7.2f} {q:>14} {mk} {c.fills_ratio:>6.2f} "
            f"{c.median_market_err * 100:>6.0f}% {s.pnl:+8.2f} {c.pnl_diff:+8.2f} {ok}")


HEADER = (f"{'model':<44} {'fills':>5} {'f/min':>7} {'size p10/50/90':>14} {'mk5s':>7} {'mk30s':>7} "
          f"{'ratio':>6} {'medmkt':>7} {'pnl $':>8} {'diff $':>8} spec(fills,mkt,pnl,mk5,mk30)")


def main(args: argparse.Namespace) -> None:
    global ART
    logging.basicConfig(level=logging.WARNING)
    ART = Path(args.dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    recs: dict[int, Recording] = {}
    if args.load:
        for seed in seeds:
            with open(Path(args.load) / f"rec-seed{seed}.pkl", "rb") as fh:
                recs[seed] = pickle.load(fh)
    else:
        key = "0x" + Account.create().key.hex().removeprefix("0x")
        seconds = args.sim_minutes * 60.0 / args.speed
        for seed in seeds:
            t0 = time.monotonic()
            rec = asyncio.run(run_live(seed, args.markets, seconds, args.speed, key))
            recs[seed] = rec
            print(f"# live run seed {seed}: {len(rec.markets)} markets, {rec.sim_minutes:.0f} simulated min, "
                  f"{len(rec.events)} events, {len(rec.live_fills)} live fills, median RTT "
                  f"{sorted(rec.rtt_ms)[len(rec.rtt_ms) // 2] if rec.rtt_ms else 0:.0f} ms "
                  f"({time.monotonic() - t0:.0f} s wall)", flush=True)
            if args.save:
                ART.mkdir(parents=True, exist_ok=True)
                with open(ART / f"rec-seed{seed}.pkl", "wb") as fh:
                    pickle.dump(rec, fh)

    fit_seed = seeds[0]
    t0 = time.monotonic()
    ranked = fit(recs[fit_seed], default_grid())
    print(f"\n# fit on seed {fit_seed}: {len(ranked)} candidates in {time.monotonic() - t0:.0f} s; best 5 by loss "
          f"(|ln fills ratio| + 0.5 × median market error):")
    for c in ranked[:5]:
        print(f"#   {c.label:<44} loss {c.loss:.3f}  ratio {c.fills_ratio:.2f}  median market {c.median_market_err:.0%}")
    by_label = {c.label: c for c in default_grid()}
    chosen: list[Candidate] = []
    for family in ("prob_queue", "queue", "intensity"):
        best = next(c for c in ranked if by_label[c.label].model == family)
        chosen.append(by_label[best.label])
    best_cand = by_label[ranked[0].label]
    chosen.append(BASELINE)

    check = seeds[1:] or seeds
    totals: dict[str, list[float]] = {c.label: [0, 0, 0.0] for c in chosen}
    for seed in seeds:
        rec = recs[seed]
        mids = Mids(rec)
        live = stats(rec, rec.live_fills, mids)
        tag = "fit, in-sample" if seed == fit_seed else "check"
        print(f"\n## seed {seed} ({tag}): {len(rec.markets)} markets, {rec.sim_minutes:.1f} simulated min in "
              f"{rec.seconds:.0f} s (speed {rec.speed:g}x asked, {rec.sim_minutes * 60 / rec.seconds:.1f}x reached)")
        print(HEADER)
        rows = []
        for cand in chosen:
            label = cand.label + (" [seed default]" if cand is BASELINE else "")
            rows.append(compare(label, stats(rec, replay(rec, cand), mids), live))
            if seed in check:
                tot = totals[cand.label]
                tot[0] += rows[-1].paper.fills
                tot[1] += live.fills
                tot[2] += rows[-1].pnl_diff
        print(fmt_row(rows[0], live=True))
        for r in rows:
            print(fmt_row(r))

    if args.closed_loop:
        print(f"\n## closed loop (the engine trading PAPER on the same seed; engine totals; fills/min per wall-time "
              f"simulated minute as asked, {args.speed:g}x)")
        print(f"{'seed':>4} {'model':<44} {'fills':>6} {'ratio':>6} {'pnl $':>8} {'diff $':>8}")
        for seed in check:
            rec = recs[seed]
            lt = rec.engine_totals
            print(f"{seed:>4} {'live-sandbox (truth)':<44} {lt.get('fills', 0):>6.0f} {'':>6} {lt.get('pnl', 0):+8.2f}")
            rtt = sorted(rec.rtt_ms)[len(rec.rtt_ms) // 2] if rec.rtt_ms else 0.0
            for cand in (best_cand, BASELINE):
                pt = asyncio.run(run_paper(seed, len(rec.markets), rec.seconds, rec.speed, cand, rtt))
                ratio = pt["fills"] / lt["fills"] if lt.get("fills") else float("nan")
                print(f"{seed:>4} {cand.label:<44} {pt['fills']:>6.0f} {ratio:>6.2f} {pt['pnl']:+8.2f} "
                      f"{pt['pnl'] - lt.get('pnl', 0):+8.2f}", flush=True)

    env = best_cand.env()
    ART.mkdir(parents=True, exist_ok=True)
    (ART / "fidelity-fit.env").write_text(f"# fitted by bench/bench_fidelity.py on seed {fit_seed}\n{env}\n")
    print(f"\n# fitted parameter set ({ART / 'fidelity-fit.env'}):\n{env}")
    t = totals[best_cand.label]
    ratio = t[0] / t[1] if t[1] else float("nan")
    print(f"fidelity: model={best_cand.label} fills_ratio={ratio:.3f} pnl_diff_usd={t[2]:+.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 markets, one seed, 6 simulated minutes at 10x")
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--sim-minutes", type=float, default=60.0)
    ap.add_argument("--seeds", default="7,8,9", help="comma-separated; the first is the fit seed")
    ap.add_argument("--speed", type=float, default=10.0)
    ap.add_argument("--save", action="store_true", help="keep the recordings (pickles) in --dir")
    ap.add_argument("--dir", default=str(ART), help="where recordings and the fitted .env go")
    ap.add_argument("--load", default="", help="re-fit recordings saved by --save from this folder")
    ap.add_argument("--closed-loop", action="store_true",
                    help="also run the engine in PAPER with the best fitted model and the seed default on the check seeds")
    a = ap.parse_args()
    if a.quick:
        a.markets, a.sim_minutes, a.seeds, a.speed = 8, 6.0, a.seeds.split(",")[0], 10.0
    main(a)
