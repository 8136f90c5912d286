"""Every shipped strategy on the same data: the sandbox simulator, same seed, same markets.

Each strategy trades paper (the engine's `QuoteCycle`, `PaperExchange` with the default
intensity fill model) against the sandbox's market simulator driven in simulated time (no
sockets, no sleeping): the simulator's books and public tape, one quote cycle every 3 simulated
seconds, `--minutes` simulated minutes over the `--markets` tradable markets of the universe
(Gamma objects from the sandbox, so reward programs and end dates are the venue's). The seed's
`spread` strategy is the baseline, measured in the same run.

Printed per strategy (median over `--runs` seeds seed, seed+1, ...):
- fills/min (all markets together) and the ratio to the baseline;
- PnL components at the end (USD): spread capture, inventory (mark to mid), total;
- markouts: mean 5 s and 30 s markout per fill in ticks (positive: the fill was worth more later);
- max inventory: the largest |net YES-equivalent position| of any market at any cycle (shares);
- reward $/h: an estimate of liquidity rewards for our resting orders, scored once a simulated
  minute with the venue's formula (`economics.rewards`) against the simulator's book as the
  competition (our paper orders are not in that book, so the share is ours / (ours + book)).

Usage: python bench/bench_strategies.py [--minutes 20] [--markets 12] [--runs 3] [--seed 7]
       [--strategies spread,as,microprice,regime,rewards] [--set NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from decimal import Decimal

from pmm_widgets.config import Params
from pmm_widgets.domain import Mode, PublicTrade, Side
from pmm_widgets.economics.rewards import (
    adjusted_mid,
    book_orders,
    minute_reward,
    program_of,
    score_orders,
    share,
    to_yes_terms,
)
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.sandbox.gamma import gamma_object
from pmm_widgets.sandbox.simulator import Simulator
from pmm_widgets.store.sink import NullSink
from pmm_widgets.venue.gamma import parse_market

D = Decimal
T0 = 1_800_000_000.0
STEP = 3.0


def reward_minute(sim: Simulator, markets, ex: PaperExchange, t: float) -> Decimal:
    """USD of one per-minute reward sample for our resting orders, all markets."""
    total = D(0)
    by_market: dict[str, list] = {}
    for o in ex.open_orders():
        by_market.setdefault(o.market, []).append(o)
    for m in markets:
        prog, _ = program_of(m.terms)
        if not prog.active or m.condition_id not in by_market:
            continue
        yv = sim.book_view(m.yes_token_id, t)
        if yv is None or yv.mid is None:
            continue
        ours = [to_yes_terms(o.token_id == m.yes_token_id, o.side, o.price, o.remaining)
                for o in by_market[m.condition_id]]
        bids = [(lv.price, lv.size) for lv in yv.bids]
        asks = [(lv.price, lv.size) for lv in yv.asks]
        mid = adjusted_mid(bids, asks, prog.min_size) or yv.mid
        q_ours = score_orders(ours, mid, prog).q_min
        q_book = score_orders(book_orders(bids, asks), mid, prog).q_min
        total += minute_reward(prog, share(q_ours, q_ours + q_book))
    return total


async def run_one(strategy: str, minutes: float, n_markets: int, seed: int, overrides: dict[str, str]) -> dict[str, float]:
    sim = Simulator(markets=max(40, 3 * n_markets), seed=seed, start_ts=T0)
    universe = [parse_market(gamma_object(sim, m)) for m in sim.markets]
    markets = [m for m in universe if m.tradable][:n_markets]
    params = Params(strategy=strategy, **overrides)
    clock = [T0]
    ex = PaperExchange(params, NullSink(), seed=seed, clock=lambda: clock[0])
    qc = QuoteCycle(params, NullSink(), Mode.PAPER)
    t, seen, max_inv, reward = sim.now(), sim.now(), D(0), D(0)
    t_start = t
    next_reward = t + 60.0
    wall = time.perf_counter()
    for _ in range(int(minutes * 60 / STEP)):
        t += STEP
        clock[0] = t
        sim.run_until(t)
        for p in sim.public_trades(since=seen):
            ex.observe_trade(PublicTrade(p["asset_id"], p["market"], D(p["price"]), D(p["size"]),
                                         Side(p["side"]), int(p["timestamp"]) / 1000))
        seen = t
        await qc.run_once(t, markets, lambda tok, ts=t: sim.book_view(tok, ts), ex)
        for st in qc.snapshot().markets.values():
            max_inv = max(max_inv, abs(st.inventory_yes - st.inventory_no))
        if t >= next_reward:
            reward += reward_minute(sim, markets, ex, t)
            next_reward += 60.0
    wall = time.perf_counter() - wall
    tot = qc.snapshot().totals
    mk5 = mk30 = n5 = n30 = 0.0
    ticks = {m.condition_id: float(m.tick_size) for m in markets}
    for cid, cs in qc.calibrator.states.items():
        tk = ticks.get(cid, 0.01)
        mk5 += cs.markouts.total.get("5s", 0.0) / tk
        n5 += cs.markouts.count.get("5s", 0)
        mk30 += cs.markouts.total.get("30s", 0.0) / tk
        n30 += cs.markouts.count.get("30s", 0)
    sim_min = (t - t_start) / 60.0
    return {"fills": tot.fills, "fills_per_min": tot.fills / sim_min, "spread": float(tot.pnl.spread),
            "inventory": float(tot.pnl.inventory), "total": float(tot.pnl.total),
            "mk5": mk5 / n5 if n5 else float("nan"), "mk30": mk30 / n30 if n30 else float("nan"),
            "max_inv": float(max_inv), "reward_h": float(reward) / sim_min * 60.0, "wall": wall}


async def main(args: argparse.Namespace) -> None:
    names = args.strategies.split(",")
    if "spread" not in names:
        names.insert(0, "spread")
    overrides = dict(kv.split("=", 1) for kv in args.set)
    res: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for r in range(args.runs):
        for n in names:
            x = await run_one(n, args.minutes, args.markets, args.seed + r, overrides)
            res[n].append(x)
            print(f"run {r + 1} {n:<11} fills {x['fills']:>5.0f} pnl {x['total']:+8.2f} ({x['wall']:.0f}s)", flush=True)
    keys = ("fills_per_min", "spread", "inventory", "total", "mk5", "mk30", "max_inv", "reward_h")
    med = {n: {k: statistics.median(v[k] for v in rs) for k in keys} for n, rs in res.items()}
    base = med["spread"]
    print(f"\nmedian over {args.runs} run(s) (seeds {args.seed}..{args.seed + args.runs - 1}); {args.markets} markets, "
          f"{args.minutes:g} simulated min each; baseline: spread")
    print("| strategy | fills/min | x spread | spread $ | inventory $ | total $ | markout 5s (ticks) | "
          "markout 30s (ticks) | max inventory | reward $/h |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in names:
        m = med[n]
        ratio = m["fills_per_min"] / base["fills_per_min"] if base["fills_per_min"] else float("nan")
        print(f"| {n} | {m['fills_per_min']:.2f} | {ratio:.2f} | {m['spread']:+.2f} | {m['inventory']:+.2f} | "
              f"{m['total']:+.2f} | {m['mk5']:+.2f} | {m['mk30']:+.2f} | {m['max_inv']:.0f} | {m['reward_h']:.3f} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--markets", type=int, default=12)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--strategies", default="spread,as,microprice,regime,rewards")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    asyncio.run(main(ap.parse_args()))
