"""Liquidity-reward capture: PMM_REWARDS_MODE off vs fit, and α 1 / 1.5 / 3, on the same seed.

The engine's own QuoteCycle quotes a handful of the sandbox's reward markets through a small
in-process exchange that places its orders *in the simulator's books* as an account (what the
live path does over sockets, without the sockets), so the sandbox's ground truth scores them
per simulated minute against the background makers. Reported per configuration (median of
seeds): reward $/h (sandbox ground truth), the engine's estimate $/h and its error, spread PnL
(engine decomposition) and fills/min.

    python bench/bench_rewards.py [--minutes 30] [--seeds 3] [--markets 6]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pmm_widgets.config import Params
from pmm_widgets.domain import (
    BookView,
    Fill,
    FillType,
    Level,
    Market,
    Mode,
    Order,
    OrderStatus,
    PublicTrade,
    Quote,
)
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.exchange import CancelProgress
from pmm_widgets.sandbox.gamma import gamma_object
from pmm_widgets.sandbox.simulator import SimReject, Simulator
from pmm_widgets.store.sink import NullSink
from pmm_widgets.venue.gamma_terms import decode_terms

START = 1_780_000_020.0  # a UTC minute boundary
OWNER = "bench"


class SimExchange:
    """The Exchange protocol over the simulator's account hooks (LIVE semantics, in process)."""

    mode = Mode.LIVE

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._open: dict[str, Order] = {}
        self._seen = 0
        self._n = 0
        self.cancels = 0  # orders the simulator cancelled (`Exchange.cancels`)

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def set_markets(self, markets: Sequence[Market]) -> None: ...
    def observe_book(self, book: BookView) -> None: ...
    def observe_books(self, books: Sequence[BookView]) -> None: ...
    def observe_trade(self, trade: PublicTrade) -> None: ...

    async def place(self, quotes: Sequence[Quote]) -> list[Order]:
        out = []
        for q in quotes:
            self._n += 1
            cid = f"b{self._n}"
            o = Order(cid, q.market, q.token_id, q.side, q.price, q.size, Mode.LIVE, venue_order_id=cid,
                      created_ts=self.sim.now())
            try:
                self.sim.place_order(OWNER, cid, q.token_id, q.side, q.price, q.size, True)
                o.status = OrderStatus.LIVE
                self._open[cid] = o
            except SimReject as exc:
                o.status, o.reason = OrderStatus.REJECTED, str(exc)
            out.append(o)
        return out

    async def cancel(self, client_ids: Sequence[str]) -> list[str]:
        done = [c for c in client_ids if self.sim.cancel_order(OWNER, c)]
        for c in client_ids:
            self._open.pop(c, None)
        self.cancels += len(done)
        return done

    async def cancel_market(self, market: str) -> int:
        ids = [c for c, o in self._open.items() if o.market == market]
        return len(await self.cancel(ids))

    async def cancel_all(self) -> int:
        return len(await self.cancel(list(self._open)))

    async def count_venue_open_orders(self) -> int:
        return len(self.sim.open_orders(OWNER))

    async def cancel_settled(self, settle_sec: float, progress: CancelProgress | None = None) -> tuple[int, int]:
        n = await self.cancel_all()
        if progress is not None:
            progress.cancelled += n
        return n, 0

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    async def poll(self, now: float) -> list[Fill]:
        trades = self.sim.account_trades(OWNER)
        new, self._seen = trades[self._seen:], len(trades)
        out = []
        for t in new:
            o = self._open.get(t.order_id)
            if o is not None:
                o.filled += t.size
                if o.remaining <= 0:
                    self._open.pop(t.order_id, None)
            out.append(Fill(t.trade_id, t.order_id, t.condition_id, t.token_id, t.side, t.price, t.size,
                            FillType.PARTIAL, Mode.LIVE, t.ts, venue_order_id=t.order_id,
                            raw={"trader_side": t.trader_side}))
        return out


def views(sim: Simulator, m: Market) -> dict[str, BookView]:
    out = {}
    for tok in m.token_ids:
        s = sim.book_snapshot(tok)
        if s is None:
            continue
        lv = lambda xs: tuple(Level(Decimal(x["price"]), Decimal(x["size"])) for x in reversed(xs))
        out[tok] = BookView(tok, m.condition_id, lv(s["bids"]), lv(s["asks"]), Decimal(s["tick_size"]),
                            Decimal(s["min_order_size"]), ts=sim.now())
    return out


async def run(seed: int, minutes: int, n_markets: int, alpha: float, mode: str) -> dict[str, float]:
    sim = Simulator(markets=40, seed=seed, start_ts=START)
    cands = [m for m in sim.markets if m.has_book and m.program.active and m.best_bid_mil and m.best_ask_mil
             and 150 < m.best_bid_mil < 850]
    chosen = sorted(cands, key=lambda m: -m.program.daily_rate)[:n_markets]
    markets = [Market(m.condition_id, m.question, m.yes_token_id, m.no_token_id, m.tick_size, m.min_order_size,
                      neg_risk=m.neg_risk, terms=decode_terms(gamma_object(sim, m))) for m in chosen]
    params = Params(alpha=alpha, rewards_mode=mode, quote_size=Decimal(10))
    ex = SimExchange(sim)
    qc = QuoteCycle(params, NullSink(), Mode.LIVE)
    t = START
    cur: dict[str, BookView] = {}
    for _ in range(int(minutes * 60 / 3)):  # a 3 s quote cycle
        t += 3.0
        sim.run_until(t)
        cur = {}
        for m in markets:
            cur.update(views(sim, m))
        await qc.run_once(t, markets, cur.get, ex)
    truth = sim.econ.account(OWNER)["totals"]
    hours = minutes / 60
    tot = qc.pnl.totals(qc._mids)
    est = sum(qc.econ.rewards.values(), Decimal(0))
    fills = sum(lg.fills for lg in qc.pnl.ledgers.values())
    pool = sum((m.program.daily_rate for m in chosen), Decimal(0)) * Decimal(sim.econ.minutes_sampled) / 1440
    return {"reward_h": float(truth["rewards_accrued"]) / hours, "estimate_h": float(est) / hours,
            "share": float(truth["rewards_accrued"] / pool) if pool else 0.0,
            "spread": float(tot.spread), "fills_min": fills / minutes}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--markets", type=int, default=6)
    a = ap.parse_args()
    configs = [("off", 1.5), ("fit", 1.5), ("off", 1.0), ("fit", 1.0), ("off", 3.0), ("fit", 3.0)]
    seeds = list(range(1, a.seeds + 1))
    print(f"{a.minutes} simulated minutes, {a.markets} reward markets, seeds {seeds}; per seed, then the median")
    print("| mode | α | seed | reward $/h (sandbox) | share of the pool | estimate $/h (engine) | estimate error "
          "| spread PnL | fills/min |")
    print("|---|---|---|---|---|---|---|---|---|")
    off: dict[tuple[float, int | str], dict[str, float]] = {}
    for mode, alpha in configs:
        t0 = time.perf_counter()
        rs = {s: asyncio.run(run(s, a.minutes, a.markets, alpha, mode)) for s in seeds}
        med = {k: statistics.median(r[k] for r in rs.values()) for k in rs[seeds[0]]}
        for key, r in [*rs.items(), ("median", med)]:
            err = abs(r["estimate_h"] - r["reward_h"]) / r["reward_h"] if r["reward_h"] > 0 else None
            if mode == "off":
                off[(alpha, key)] = r
                vs = "baseline"
            else:
                o = off.get((alpha, key), {}).get("share", 0.0)
                vs = f"{r['share'] / o:.1f}x off" if o else ("> off (0)" if r["share"] > 0 else "= off (0)")
            print(f"| {mode} | {alpha} | {key} | {r['reward_h']:.4f} | {100 * r['share']:.2f} % ({vs}) | "
                  f"{r['estimate_h']:.4f} | {'–' if err is None else f'{100 * err:.1f} %'} | {r['spread']:.4f} | "
                  f"{r['fills_min']:.2f} |")
        print(f"<!-- {mode} α {alpha}: {time.perf_counter() - t0:.0f} s wall for {len(seeds)} seeds -->")


if __name__ == "__main__":
    main()
