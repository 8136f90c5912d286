"""Paper-vs-sandbox fidelity: how far each paper fill model is from live trading on the sandbox,
and a fitter that picks the models' parameters from one seed and checks them on others.

Per seed, the real engine trades LIVE on a fresh embedded sandbox (official SDK, real sockets, a
throwaway wallet): our orders rest in the simulated books with price-time priority and are
filled by the simulated flow, which is the ground truth (`pmm_widgets.research.fidelity_run`;
`pmm fidelity` is the same as a command). The run records what its exchange saw and did (books
with our own resting orders noted, prints, our orders and cancels, polls, the venue's fills, the
exchange's measured order round trips). Each paper model then replays that recording open loop:
the same orders at the same moments, with the measured round trips as its latency model, against
the market as a paper engine would have seen it (`analytics.fidelity.without_own`: our orders
out of the books; our part of each print kept as far as the level without us could have absorbed
it (the taker trades on with the queue behind us), the rest moved to the taker's next print
through our price when it swept on, else dropped: `--prints`; market events re-timed to the
venue's clock, i.e. a fresh feed, as the loaded live run's feed lagged by seconds: `--clock`).

The fitter (`analytics.fidelity.fit`) scores each candidate by a loss over fills (|ln ratio|),
the median market's error, mean fill size, markouts at 5 s and 30 s and PnL (the last two in units
of the larger of 20 % of live's value and live's standard error), first on a grid (queue;
prob_queue power n ∈ {1, 2, 3} and log; intensity over PMM_PAPER_FILL_INTENSITY ×
PMM_PAPER_SPREAD_K), then the latent flow (PMM_PAPER_LATENT_INTENSITY) on the best queue-family
candidate. Only the first seed is fitted on; the best of each family and the seed's intensity
model with default knobs and no latency are reported on every seed (the first in sample, the
others the check). The best set goes to `<--dir>/fidelity-fit.env` with the measured round trips
beside it (`fidelity-fit-rtt.txt`, via PMM_PAPER_LATENCY_FILE).

Reported per model: fills per simulated minute, paper/live fill ratio, the median market's
|paper/live − 1|, fill sizes p10/p50/p90, size-weighted mean markouts at 5 s and 30 s (on the
venue's clock, i.e. simulated seconds; price units), PnL (cash + positions at the last mid, fees included) and its difference to live,
with live's standard error (per-market spread × √N).

Time: at --speed S the market runs S times faster than the wall clock while the engine's timers
(quote refresh, markout horizons) stay in wall time; fills/min are per simulated minute. The
queue models are driven by market events, so their fitted parameters do not depend on S; the
intensity model and the latent flow count wall time, so their fitted rates hold for that speed only
(divide by S for a venue at speed 1).

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
import logging
import pickle
import time
from pathlib import Path

from pmm_widgets.analytics.fidelity import (
    HORIZONS,
    LOSS_WEIGHTS,
    Candidate,
    Comparison,
    Mids,
    compare,
    hidden_fill_share,
    replay,
    stats,
    without_own,
)
from pmm_widgets.research.fidelity_run import (
    BASELINE,
    fit_and_check,
    median_rtt,
    parse_seeds,
    run_paper,
    run_seeds,
    write_param_set,
)

ART = Path("artifacts/fidelity")  # --dir


def fmt_row(c: Comparison, live: bool = False) -> str:
    s = c.live if live else c.paper
    q = "/".join(f"{x:g}" for x in s.size_q)
    mk = " ".join(f"{s.markout[h] * 100:+6.2f}c" for h in HORIZONS)
    label = "live-sandbox (truth)" if live else c.label
    if live:
        se = "/".join(f"{s.markout_se.get(h, 0) * 100:.2f}" for h in HORIZONS)
        tail = f"{'':>6} {'':>7} {s.pnl:+8.2f} {'':>8} pnl ±{c.pnl_se:.2f}, markouts ±{se}c"
        return f"{label:<60} {s.fills:>5} {s.fills_per_min:>7.2f} {q:>14} {mk} {tail}"
    spec = c.within_spec()
    ok = "".join("✓" if spec[k] else "✗" for k in SPEC_KEYS)
    return (f"{label:<60} {s.fills:>5} {s.fills_per_min:>7.2f} {q:>14} {mk} {c.fills_ratio:>6.2f} "
            f"{c.median_market_err * 100:>6.0f}% {s.pnl:+8.2f} {c.pnl_diff:+8.2f} {ok}")


def fmt_readings(c: Comparison) -> str:
    """Both readings the issue allows, per horizon and for PnL: the relative error (±20 %) and the
    distance in live's standard errors (±1 SE, for values near zero)."""
    spec = c.within_spec()
    out = []
    for h in HORIZONS:
        d, se, lv = c.markout_diff[h], c.live.markout_se.get(h, float("inf")), c.live.markout[h]
        rel = f"{d / abs(lv) * 100:+.0f}%" if lv else "n/a"
        out.append(f"mk{h:g}s {c.paper.markout[h] * 100:+.2f}c vs {lv * 100:+.2f}c±{se * 100:.2f}: {rel} "
                   f"{'✓' if spec[f'markout_{h:g}s_20pct'] else '✗'}, {abs(d) / se if se else 0:.1f} SE "
                   f"{'✓' if spec[f'markout_{h:g}s_1se'] else '✗'}")
    rel = f"{c.pnl_diff / abs(c.live.pnl) * 100:+.0f}%" if c.live.pnl else "n/a"
    out.append(f"pnl {c.paper.pnl:+.2f} vs {c.live.pnl:+.2f}±{c.pnl_se:.2f}: {rel} {'✓' if spec['pnl_20pct'] else '✗'}, "
               f"{abs(c.pnl_diff) / c.pnl_se if c.pnl_se else 0:.1f} SE {'✓' if spec['pnl_1se'] else '✗'}")
    return " | ".join(out)


SPEC_KEYS = ("fills_total", "fills_median_market", "pnl_20pct", "pnl_1se", "markout_5s_20pct", "markout_5s_1se",
             "markout_30s_20pct", "markout_30s_1se")
HEADER = (f"{'model':<60} {'fills':>5} {'f/min':>7} {'size p10/50/90':>14} {'mk5s':>7} {'mk30s':>7} "
          f"{'ratio':>6} {'medmkt':>7} {'pnl $':>8} {'diff $':>8} spec: fills, med.market, pnl ±20%, pnl ±1se, mk5 ±20%, ±1se, mk30 ±20%, ±1se")


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    art = Path(args.dir)
    seeds = parse_seeds(args.seeds)
    if args.load:
        recs = {}
        for seed in seeds:
            with open(Path(args.load) / f"rec-seed{seed}.pkl", "rb") as fh:
                recs[seed] = pickle.load(fh)
    else:
        recs = run_seeds(seeds, args.markets, args.sim_minutes, args.speed, progress=lambda m: print("# " + m, flush=True))
        if args.save:
            art.mkdir(parents=True, exist_ok=True)
            for seed, rec in recs.items():
                with open(art / f"rec-seed{seed}.pkl", "wb") as fh:
                    pickle.dump(rec, fh)

    fit_seed = seeds[0]
    t0 = time.monotonic()
    res = fit_and_check(recs, fit_seed, prints=args.prints, clock=args.clock)
    print(f"\n# fit on seed {fit_seed}: {len(res.ranked)} candidates in {time.monotonic() - t0:.0f} s "
          f"(books without our orders; our prints: {args.prints}); "
          f"best 5 by loss ({' + '.join(f'{w:g}×{k}' for k, w in LOSS_WEIGHTS.items())}):")
    for c in res.ranked[:5]:
        parts = " ".join(f"{k}={v:.2f}" for k, v in c.parts.items())
        print(f"#   {c.label:<52} loss {c.loss:.3f}  ({parts})")
    families: dict[str, Candidate] = {}  # the best of each model family, in loss order
    for c in res.ranked:
        if c.candidate is not None:
            fam = c.candidate.model + ("+latent" if dict(c.candidate.knobs).get("paper_latent_intensity") else "")
            families.setdefault(fam, c.candidate)
    chosen = [*families.values(), BASELINE]
    best_cand = res.best

    check = seeds[1:] or seeds
    readings: dict[str, list[tuple[int, Comparison]]] = {}
    totals: dict[str, list[float]] = {c.label: [0, 0, 0.0] for c in chosen}
    for seed in seeds:
        rec = without_own(recs[seed], args.prints, args.clock)
        mids = Mids(rec)
        live = stats(rec, rec.live_fills, mids)
        tag = "fit, in-sample" if seed == fit_seed else "check"
        print(f"\n## seed {seed} ({tag}): {len(rec.markets)} markets, {rec.sim_minutes:.1f} simulated min in "
              f"{rec.seconds:.0f} s (speed {rec.speed:g}x asked, {rec.sim_minutes * 60 / rec.seconds:.1f}x reached), "
              f"median order RTT {median_rtt(rec):.0f} ms; {rec.stripped}; taker printed nothing through our price: "
              f"{hidden_fill_share(recs[seed]):.0%} of live fill volume")
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
        print("# both readings (±20 %, and in live's standard errors):")
        for r in rows:
            print(f"#   {r.label:<58} {fmt_readings(r)}")
            if seed in check:
                readings.setdefault(r.label, []).append((seed, r))

    if args.closed_loop:
        print(f"\n## closed loop (the engine trading PAPER on the same seed; engine totals; {args.speed:g}x)")
        print(f"{'seed':>4} {'model':<52} {'fills':>6} {'ratio':>6} {'pnl $':>8} {'diff $':>8}")
        for seed in check:
            rec = recs[seed]
            lt = rec.engine_totals
            print(f"{seed:>4} {'live-sandbox (truth)':<52} {lt.get('fills', 0):>6.0f} {'':>6} {lt.get('pnl', 0):+8.2f}")
            for cand in (best_cand, BASELINE):
                pt = asyncio.run(run_paper(seed, len(rec.markets), rec.seconds, rec.speed, cand, median_rtt(rec)))
                ratio = pt["fills"] / lt["fills"] if lt.get("fills") else float("nan")
                print(f"{seed:>4} {cand.label:<52} {pt['fills']:>6.0f} {ratio:>6.2f} {pt['pnl']:+8.2f} "
                      f"{pt['pnl'] - lt.get('pnl', 0):+8.2f}", flush=True)

    path = art / "fidelity-fit.env"
    pairs = write_param_set(path, best_cand, fit_seed, res.rtt_ms)
    print(f"\n# fitted parameter set ({path}):\n" + "\n".join(f"PMM_{n.upper()}={v}" for n, v in pairs))
    print(f"\n# check seed{'s' if len(check) > 1 else ''} {','.join(map(str, check))}, fitted {best_cand.label}:")
    for seed, r in readings.get(best_cand.label, []):
        print(f"#   seed {seed}: fills {r.fills_ratio:.2f}, median market {r.median_market_err * 100:.0f}% | {fmt_readings(r)}")
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
    ap.add_argument("--prints", choices=("level", "continue", "drop", "raw"), default="level",
                    help="what replaces our own fills on the tape (see analytics.fidelity.without_own)")
    ap.add_argument("--clock", choices=("venue", "arrival"), default="venue",
                    help="market events at the venue's time (a fresh feed) or as the live run received them "
                         "(see analytics.fidelity.on_venue_clock)")
    ap.add_argument("--closed-loop", action="store_true",
                    help="also run the engine in PAPER with the best fitted model and the seed default on the check seeds")
    a = ap.parse_args()
    if a.quick:
        a.markets, a.sim_minutes, a.seeds, a.speed = 8, 6.0, a.seeds.split(",")[0], 10.0
    main(a)
