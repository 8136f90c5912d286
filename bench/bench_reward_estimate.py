"""The engine's reward estimate against the sandbox's ground truth, end to end: the real Engine in
live mode (signed orders, user stream, market channel) on a sped-up loopback sandbox with its
trading half, PMM_REWARDS_MODE=fit, for N simulated minutes; per market: the engine's estimated
USD (sum of `reward_estimates.usd`) against what the sandbox accrued to our API key.

    python bench/bench_reward_estimate.py [--speed 20] [--minutes 30] [--seed 7 | --seeds 7,8] [--per-sample]

The engine samples at the venue's minutes as the market stream's timestamps show them (the
book as every event stamped before the minute left it, as the sandbox samples) and does not
requote across one;
`--per-sample` prints every (market, minute) where its estimate and the venue's differ.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account
from pydantic import SecretStr

from pmm_widgets.config import Settings
from pmm_widgets.domain import Mode
from pmm_widgets.engine import Engine
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.store.migrate import upgrade
from pmm_widgets.venue.endpoints import Endpoints


async def run(speed: float, minutes: float, seed: int, per_sample: bool = False) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/bench.db"
        upgrade(url)
        s = Settings(_env_file=None, db_url=url, venue="sandbox", sandbox_speed=speed, sandbox_markets=30,
                     sandbox_seed=seed, universe_size=8, universe_rank="rewards", rewards_mode="fit",
                     quote_refresh_sec=1.0, lease_ttl_sec=5, writer_flush_sec=0.2,
                     private_key=SecretStr(Account.create().key.hex()))
        async with Sandbox(SandboxConfig(markets=30, seed=seed, speed=speed)) as sb:
            eng = Engine(s, Mode.LIVE, endpoints=Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb))
            eng.start()
            await eng.wait_role()
            venue_rows: dict[tuple[str, int], dict] = {}
            engine_rows: dict[tuple[str, int], object] = {}
            engine_wall: dict[tuple[str, int], float] = {}
            if per_sample:
                ven = sb.sim.econ
                ven_sample = ven.sample
                key = eng.runtime.exchange.broker.creds.api_key.get_secret_value()

                def venue_sample() -> None:
                    ven_sample()
                    now = ven.sim.now()
                    ids: dict[str, set[str]] = {}
                    for oid, (mm, _, _, rest) in ven.sim._orders.items():
                        if rest.acct is not None and rest.acct.owner == key:
                            ids.setdefault(mm.condition_id, set()).add(oid)
                    for (o, cid), led in ven.ledgers.items():
                        if o == key and led.last.get("ts") == now:
                            venue_rows[(cid, int(now // 60))] = {**led.last, "ids": ids.get(cid, set()),
                                                                 "wall": time.time()}

                ven.sample = venue_sample  # type: ignore[method-assign]
                econ = eng.runtime.cycle.econ
                eng_sample = econ.sample

                def engine_sample(now, markets, views, orders, ours_in_book, venue_ts=None):  # type: ignore[no-untyped-def]
                    out = eng_sample(now, markets, views, orders, ours_in_book, venue_ts)
                    minute = int((venue_ts if venue_ts is not None else econ.clock.to_venue(now)) // 60)
                    for smp in out:
                        engine_rows[(smp.market, minute)] = smp
                        engine_wall[(smp.market, minute)] = time.time()
                    return out

                econ.sample = engine_sample  # type: ignore[method-assign]
            t0 = time.time()
            await asyncio.sleep(minutes * 60 / speed)
            key = eng.runtime.exchange.broker.creds.api_key.get_secret_value()
            est = dict(eng.runtime.cycle.econ.rewards)
            truth = {r["condition_id"]: r["rewards_accrued"] for r in sb.sim.econ.account(key)["markets"]}
            wall = time.time() - t0
            by_venue = dict(eng.runtime.exchange._by_venue)
            await eng.stop()
    print(f"speed {speed}x, {minutes} simulated minutes ({wall:.0f} s wall), seed {seed}")
    print("| market | sandbox $ | engine $ | error |")
    print("|---|---|---|---|")
    errs = []
    for cid in sorted(set(est) | set(truth)):
        t, e = truth.get(cid, Decimal(0)), est.get(cid, Decimal(0))
        err = abs(e - t) / t if t > 0 else None
        if err is not None and t > Decimal("0.001"):
            errs.append(float(err))
        print(f"| {cid[:10]}… | {t:.6f} | {e:.6f} | {'–' if err is None else f'{100 * err:.1f} %'} |")
    tot_t, tot_e = sum(truth.values(), Decimal(0)), sum(est.values(), Decimal(0))
    print(f"| total | {tot_t:.6f} | {tot_e:.6f} | {100 * abs(tot_e - tot_t) / tot_t if tot_t else 0:.1f} % |")
    if per_sample:
        print("per sample (venue minute; only those where engine and venue differ by > 2 % of the larger):")
        print("| market | minute | venue usd | engine usd | venue mid | engine mid | venue q_one/q_two | engine q_one/q_two "
              "| venue share | engine share |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for k in sorted(set(venue_rows) | set(engine_rows)):
            v, e = venue_rows.get(k), engine_rows.get(k)
            vu = Decimal(v["usd"]) if v else Decimal(0)
            eu = e.usd if e is not None else Decimal(0)  # type: ignore[attr-defined]
            if abs(vu - eu) <= Decimal("0.02") * max(vu, eu):
                continue
            print(f"| {k[0][:8]} | {k[1] % 1440} | {vu} | {eu} | {v['mid'] if v else '–'} | "
                  f"{e.mid if e is not None else '–'} | "  # type: ignore[attr-defined]
                  f"{v['q_one'][:7] + '/' + v['q_two'][:7] if v else '–'} | "
                  f"{str(e.ours.q_one)[:7] + '/' + str(e.ours.q_two)[:7] if e is not None else '–'} | "  # type: ignore[attr-defined]
                  f"{v['share'][:6] if v else '–'} | {str(e.share)[:6] if e is not None else '–'} |")  # type: ignore[attr-defined]
            if v and e is not None:
                missing = v["ids"] - set(e.ids)  # type: ignore[attr-defined]
                extra = set(e.ids) - v["ids"]  # type: ignore[attr-defined]
                for oid in sorted(missing | extra):
                    o = by_venue.get(oid)
                    print(f"|  | {'venue only' if oid in missing else 'engine only'} {oid[:10]} | engine: "
                          f"{'unknown' if o is None else o.status.value} created {o.created_ts - v['wall'] if o else 0:+.3f} s "
                          f"updated {o.updated_ts - v['wall'] if o else 0:+.3f} s; engine sampled "
                          f"{engine_wall[k] - v['wall']:+.3f} s after the venue |")
    if errs:
        errs.sort()
        print(f"per-market error: median {100 * errs[len(errs) // 2]:.1f} %, max {100 * errs[-1]:.1f} % "
              f"({len(errs)} markets earning > $0.001)")
    return errs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=float, default=20.0)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--seeds", type=str, default="", help="several seeds, e.g. 7,8 (instead of --seed)")
    ap.add_argument("--per-sample", action="store_true", help="print every minute where engine and venue differ")
    a = ap.parse_args()
    seeds = [int(x) for x in a.seeds.split(",") if x.strip()] or [a.seed]
    summary = []
    for seed in seeds:
        errs = asyncio.run(run(a.speed, a.minutes, seed, a.per_sample))
        summary.append((seed, sum(e <= 0.10 for e in errs), len(errs), max(errs, default=0.0)))
        print()
    for seed, ok, n, worst in summary:
        print(f"seed {seed}: {ok} of {n} markets within ±10 % (max error {100 * worst:.1f} %)")


if __name__ == "__main__":
    main()
