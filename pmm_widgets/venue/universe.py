"""The trading universe: the top N tradable markets by Gamma's `liquidityNum`.

Why liquidity rank and a strict tradability filter: quoting needs a live order book that accepts
orders, both token ids and a known tick; anything else would only produce rejected orders. The
ranking is recomputed here (not trusted from the venue's sort) so that a page boundary or a
venue that ignores `order` cannot change who is in the universe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ..config import Settings
from ..domain import Market
from .endpoints import open_endpoints
from .gamma import GammaClient


def reward_density(m: Market) -> float:
    """`PMM_UNIVERSE_RANK=rewards`: expected reward per unit of capital at risk, estimated from
    Gamma alone: the daily pool over the competing depth (`liquidityNum`, plus $100 so an empty
    book does not divide by zero), a third of that when the price is outside [0.10, 0.90], where
    only two-sided quoting scores (and the inventory is most at risk). 0 without a program."""
    from ..economics.rewards import TWO_SIDED_HI, TWO_SIDED_LO, program_of

    prog, _ = program_of(m.terms)
    if not prog.active:
        return 0.0
    p = (m.best_bid + m.best_ask) / 2 if m.best_bid is not None and m.best_ask is not None else 0.5
    penalty = 1.0 if float(TWO_SIDED_LO) <= p <= float(TWO_SIDED_HI) else 1.0 / 3.0
    return float(prog.daily_rate) / (max(m.liquidity_num, 0.0) + 100.0) * penalty


def select_universe(markets: Sequence[Market], size: int, rank: str = "liquidity") -> list[Market]:
    """Tradable markets, one per condition id, ranked by liquidityNum descending (stable), top `size`;
    `rank="rewards"` ranks by `reward_density` instead (ties by liquidity)."""
    seen: set[str] = set()
    pool: list[Market] = []
    for m in markets:
        if m.tradable and m.condition_id not in seen:
            seen.add(m.condition_id)
            pool.append(m)
    pool.sort(key=lambda m: -m.liquidity_num)
    if rank == "rewards":
        pool.sort(key=lambda m: -reward_density(m))  # stable: liquidity breaks ties
    return pool[:size]


async def load_universe(gamma: GammaClient, size: int, rank: str = "liquidity") -> list[Market]:
    """Fetch from Gamma and rank: the universe as of now (rank = list position + 1). Ranking by
    rewards looks at a wider pool (the most liquid 4×size, at least 100, at most 500)."""
    n = size if rank == "liquidity" else min(max(4 * size, 100), 500)
    return select_universe(await gamma.fetch_markets(n), size, rank)


def diff_universe(old: Sequence[Market], new: Sequence[Market]) -> tuple[list[Market], list[Market]]:
    """(added, removed) by condition id; `added` in `new`'s order, `removed` in `old`'s."""
    old_ids = {m.condition_id for m in old}
    new_ids = {m.condition_id for m in new}
    return [m for m in new if m.condition_id not in old_ids], [m for m in old if m.condition_id not in new_ids]


async def refresh_universe(settings: Settings) -> list[Market]:
    """One refresh (`pmm universe refresh`): fetch, rank, store as a `markets` snapshot."""
    from ..store.migrate import upgrade
    from ..store.recorder import DbRecorder
    from ..store.writer import BatchWriter

    await asyncio.to_thread(upgrade, settings.db_url)
    async with open_endpoints(settings) as ep:
        gamma = GammaClient(ep.gamma_url, timeout=settings.http_timeout_sec, deadline=settings.http_deadline_sec,
                            retry_after_max=settings.retry_after_max_sec)
        try:
            markets = await load_universe(gamma, settings.universe_size, settings.universe_rank)
        finally:
            await gamma.aclose()
    writer = BatchWriter(settings.db_url, flush_sec=settings.writer_flush_sec)
    writer.start()
    try:
        DbRecorder(writer).markets(markets, time.time())
    finally:
        await asyncio.to_thread(writer.close)
    return markets


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _px(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def format_universe(markets: Sequence[Market], question_width: int = 48) -> str:
    """A plain-text table: rank, question, liquidity, best bid/ask, tick, min size, negRisk."""
    head = f"{'#':>3}  {'question':<{question_width}}  {'liquidity':>12}  {'bid':>6}  {'ask':>6}  {'tick':>6}  {'min':>5}  negRisk"
    lines = [head, "-" * len(head)]
    for rank, m in enumerate(markets, 1):
        lines.append(
            f"{rank:>3}  {_cut(m.question, question_width):<{question_width}}  {m.liquidity_num:>12,.0f}  "
            f"{_px(m.best_bid):>6}  {_px(m.best_ask):>6}  {format(m.tick_size, 'f'):>6}  "
            f"{format(m.min_order_size.normalize(), 'f'):>5}  {'yes' if m.neg_risk else 'no'}"
        )
    lines.append(f"{len(markets)} markets")
    return "\n".join(lines)
