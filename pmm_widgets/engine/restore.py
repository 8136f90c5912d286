"""Continue the last engine's positions, PnL and fill counts from the DB (issue 11).

Why: a new engine owning the DB (a reloaded dashboard page taking over, a Voilà or `pmm run`
restart, Kill then Start) used to start its strategy state at zero: positions per token,
realized PnL and its parts, fills and fills/min. The DB has everything needed to rebuild them:

- `trades` of this mode, in the order they were recorded (by id, which is the order the quote
  cycle applied them), replayed through the same `MarketLedger.apply` the cycle uses, so
  positions, cash, the average entry and the realized PnL come out exactly as the cycle had them
  (prices and sizes are stored at 6 decimals, which every venue price and size fits);
- the spread part from each fill's recorded mid (`raw_json.book_mid`, the token's mid when the
  fill happened); fees and rebates from the `trades` fee/rebate columns;
- liquidity rewards summed from `reward_estimates` (stored at 6 decimals: the sum can differ
  from the old engine's running total by < 1e-6 per sample);
- resolved markets from `settlements` (the shares are redeemed, the market is never quoted again);
- the fills/min window from the fills of the last `window_sec`.

Trades whose venue status is FAILED are left out (the live exchange reverses them: their net is
nothing). Everything here is plain code over typed rows (`parse_rows`, `rebuild`); `install`
writes the result into a fresh `QuoteCycle` (and the paper exchange's positions, which gate
sells); the engine calls `read_rows` before its exchange starts and `resume` once its cycle exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..analytics.pnl import MarketLedger
from ..domain import ZERO, Fill, FillType, Market, Mode, Side
from ..economics.payouts import venue_date
from ..events import EventKind, Level
from ..ticks import to_decimal

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .cycle import QuoteCycle


@dataclass(frozen=True, slots=True)
class TradeRow:
    market: str
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    ts: float
    fee: Decimal = ZERO
    rebate: Decimal = ZERO
    mid: Decimal | None = None  # the token's mid at the fill (None: not recorded)


@dataclass(frozen=True, slots=True)
class SettlementRow:
    market: str
    winner_token: str
    payout: Decimal
    pnl: Decimal
    yes_shares: Decimal
    no_shares: Decimal


@dataclass(frozen=True, slots=True)
class SessionRows:
    trades: tuple[TradeRow, ...]
    tokens: Mapping[str, tuple[str, str]]  # condition id -> (yes token, no token)
    rewards: Mapping[str, Decimal]  # condition id -> estimated rewards, USD
    settlements: Mapping[str, SettlementRow]
    failed: int = 0  # FAILED trades left out
    rewards_by_day: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)  # (market, venue day) -> estimate
    paid: Mapping[tuple[str, str, str], Decimal] = field(default_factory=dict)  # (kind, market, day) -> venue paid
    paid_days: frozenset[tuple[str, str]] = frozenset()  # (kind, day) the venue's payouts were read for


@dataclass(slots=True)
class Restored:
    ledgers: dict[str, MarketLedger] = field(default_factory=dict)
    fill_ts: dict[str, list[float]] = field(default_factory=dict)  # market -> fill times in the window
    first_ts: float | None = None  # earliest fill of the window
    resolved: dict[str, SettlementRow] = field(default_factory=dict)
    fills: int = 0
    skipped: int = 0  # fills of a market whose token pair the DB does not know
    failed: int = 0
    rebates_by_day: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (market, fill's venue day)

    @property
    def empty(self) -> bool:
        return not self.ledgers

    def summary(self) -> str:
        realized = sum((lg.parts(None).realized for lg in self.ledgers.values()), ZERO)
        return (f"restored from the DB: {self.fills} fills over {len(self.ledgers)} markets, "
                f"realized PnL {realized:.4f}" + (f", {len(self.resolved)} resolved" if self.resolved else "")
                + (f", {self.skipped} fills of unknown markets skipped" if self.skipped else "")
                + (f", {self.failed} failed trades left out" if self.failed else ""))


def _dec(v: Any) -> Decimal:
    return ZERO if v in (None, "") else to_decimal(v)


def parse_rows(raw: Mapping[str, Sequence[Mapping[str, Any]]]) -> SessionRows:
    """`repo.load_session_rows`' dicts as typed rows."""
    trades: list[TradeRow] = []
    failed = 0
    for r in raw.get("trades", ()):
        if str(r.get("status") or "").upper() == "FAILED":
            failed += 1
            continue
        js = r.get("raw_json") or {}
        mid = js.get("book_mid") if isinstance(js, Mapping) else None
        trades.append(TradeRow(str(r.get("market") or ""), str(r["token_id"]), Side(str(r["side"]).upper()),
                               _dec(r["price"]), _dec(r["size"]), float(r["ts"]), _dec(r.get("fee")),
                               _dec(r.get("rebate")), None if mid in (None, "") else to_decimal(mid)))
    tokens = {str(r["condition_id"]): (str(r["yes_token_id"]), str(r["no_token_id"])) for r in raw.get("tokens", ())}
    rewards: dict[str, Decimal] = {}
    by_day: dict[tuple[str, str], Decimal] = {}
    for r in raw.get("rewards", ()):
        cid, usd = str(r["market"]), _dec(r.get("usd"))
        rewards[cid] = rewards.get(cid, ZERO) + usd
        if r.get("venue_date"):
            by_day[(cid, str(r["venue_date"]))] = usd
    paid: dict[tuple[str, str, str], Decimal] = {}
    days: set[tuple[str, str]] = set()
    for r in raw.get("payouts", ()):
        if r["market"] == "TOTAL":
            days.add((str(r["kind"]), str(r["date"])))
        else:
            paid[(str(r["kind"]), str(r["market"]), str(r["date"]))] = _dec(r.get("amount"))
    settlements = {str(r["market"]): SettlementRow(str(r["market"]), str(r.get("winner_token") or ""),
                                                   _dec(r.get("payout")), _dec(r.get("pnl")),
                                                   _dec(r.get("yes_shares")), _dec(r.get("no_shares")))
                   for r in raw.get("settlements", ())}
    return SessionRows(tuple(trades), tokens, rewards, settlements, failed, by_day, paid, frozenset(days))


def rows_to_json(rows: SessionRows) -> dict[str, Any] | None:
    """The rows an engine restored from, for its recording's `start` record: a replay of that
    session continues from the same rows (`rows_from_json`). Exact (decimals as text), compact
    (fills as lists, only the token pairs of the markets they name); None when there is nothing."""
    if not (rows.trades or rows.rewards or rows.settlements or rows.paid or rows.paid_days or rows.failed):
        return None
    named = {t.market for t in rows.trades} | set(rows.rewards) | set(rows.settlements) | {m for _, m, _ in rows.paid}
    by_token = {tok: cid for cid, pair in rows.tokens.items() for tok in pair}
    named |= {by_token[t.token_id] for t in rows.trades if t.token_id in by_token}
    return {
        "trades": [[t.market, t.token_id, t.side.value, str(t.price), str(t.size), t.ts, str(t.fee), str(t.rebate),
                    None if t.mid is None else str(t.mid)] for t in rows.trades],
        "tokens": {cid: list(pair) for cid, pair in rows.tokens.items() if cid in named},
        "rewards": {cid: str(v) for cid, v in rows.rewards.items()},
        "rewards_by_day": [[cid, day, str(v)] for (cid, day), v in rows.rewards_by_day.items()],
        "settlements": [[s.market, s.winner_token, str(s.payout), str(s.pnl), str(s.yes_shares), str(s.no_shares)]
                        for s in rows.settlements.values()],
        "failed": rows.failed,
        "paid": [[k, cid, day, str(v)] for (k, cid, day), v in rows.paid.items()],
        "paid_days": sorted([k, day] for k, day in rows.paid_days),
    }


def rows_from_json(d: Mapping[str, Any]) -> SessionRows:
    """`rows_to_json`'s dict as the rows again (a `ValueError`/`KeyError`/`TypeError` for one it did not write)."""
    trades = tuple(TradeRow(str(m), str(tok), Side(str(side)), to_decimal(p), to_decimal(sz), float(ts),
                            to_decimal(fee), to_decimal(reb), None if mid is None else to_decimal(mid))
                   for m, tok, side, p, sz, ts, fee, reb, mid in d.get("trades") or ())
    settlements = {str(r[0]): SettlementRow(str(r[0]), str(r[1]), *(to_decimal(v) for v in r[2:6]))
                   for r in d.get("settlements") or ()}
    return SessionRows(
        trades, {str(cid): (str(p[0]), str(p[1])) for cid, p in (d.get("tokens") or {}).items()},
        {str(cid): to_decimal(v) for cid, v in (d.get("rewards") or {}).items()}, settlements, int(d.get("failed") or 0),
        {(str(cid), str(day)): to_decimal(v) for cid, day, v in d.get("rewards_by_day") or ()},
        {(str(k), str(cid), str(day)): to_decimal(v) for k, cid, day, v in d.get("paid") or ()},
        frozenset((str(k), str(day)) for k, day in d.get("paid_days") or ()))


def merge_rows(base: SessionRows, more: SessionRows) -> SessionRows:
    """`base` (the rows a session restored from) followed by `more` (what was traded since), as one
    DB holding both would read them back: fills in that order, reward estimates summed per market
    and venue day, the later settlement of a market, what the venue paid from both."""
    rewards = dict(base.rewards)
    for cid, v in more.rewards.items():
        rewards[cid] = rewards.get(cid, ZERO) + v
    by_day = dict(base.rewards_by_day)
    for k, v in more.rewards_by_day.items():
        by_day[k] = by_day.get(k, ZERO) + v
    return SessionRows(base.trades + more.trades, {**base.tokens, **more.tokens}, rewards,
                       {**base.settlements, **more.settlements}, base.failed + more.failed, by_day,
                       {**base.paid, **more.paid}, base.paid_days | more.paid_days)


def pair_market(cid: str, yes: str, no: str) -> Market:
    """A market known only by its token pair (the DB's `markets` rows; fills outlive the universe)."""
    return Market(cid, "", yes, no, Decimal("0.01"), ZERO)


def rebuild(rows: SessionRows, now: float, window_sec: float, markets: Sequence[Market] = ()) -> Restored:
    """Replay the fills into fresh ledgers (the cycle's own accounting), then rewards and
    settlements. `markets` (the current universe) adds token pairs the DB has not stored yet."""
    pairs: dict[str, Market] = {cid: pair_market(cid, y, n) for cid, (y, n) in rows.tokens.items()}
    for cur in markets:
        pairs[cur.condition_id] = cur
    by_token = {tok: pm for pm in pairs.values() for tok in pm.token_ids}
    out = Restored(failed=rows.failed)
    cutoff = now - window_sec
    for t in rows.trades:
        m = pairs.get(t.market) or by_token.get(t.token_id)
        if m is None or t.token_id not in m.token_ids:
            out.skipped += 1
            continue
        lg = out.ledgers.get(m.condition_id)
        if lg is None:
            lg = out.ledgers[m.condition_id] = MarketLedger()
        ymid = None if t.mid is None else (t.mid if t.token_id == m.yes_token_id else 1 - t.mid)
        fill = Fill("", "", m.condition_id, t.token_id, t.side, t.price, t.size, FillType.FILLED, Mode.PAPER, t.ts)
        lg.apply(fill, m, ymid)
        lg.fees += t.fee
        day = venue_date(t.ts)
        if t.rebate:
            k = (m.condition_id, day)
            out.rebates_by_day[k] = out.rebates_by_day.get(k, ZERO) + t.rebate
        if ("rebates", day) not in rows.paid_days:  # else what the venue paid (below)
            lg.rebates += t.rebate
        out.fills += 1
        if t.ts > cutoff:
            out.fill_ts.setdefault(m.condition_id, []).append(t.ts)
            out.first_ts = t.ts if out.first_ts is None else min(out.first_ts, t.ts)
    paid_rewards = {cid: ZERO for cid in rows.rewards}
    for (cid, day), usd in rows.rewards_by_day.items():  # the days the venue paid: its amounts instead
        if ("rewards", day) in rows.paid_days:
            paid_rewards[cid] = paid_rewards.get(cid, ZERO) - usd
    for (kind, cid, day), amt in rows.paid.items():
        if (kind, day) in rows.paid_days and kind == "rewards":
            paid_rewards[cid] = paid_rewards.get(cid, ZERO) + amt
    for cid, d in paid_rewards.items():
        usd = rows.rewards.get(cid, ZERO) + d
        if usd:
            lg = out.ledgers.get(cid)
            if lg is None:
                lg = out.ledgers[cid] = MarketLedger()
            lg.rewards += usd
    for (kind, cid, day), amt in rows.paid.items():
        if (kind, day) in rows.paid_days and kind == "rebates":
            lg = out.ledgers.get(cid)
            if lg is None:
                lg = out.ledgers[cid] = MarketLedger()
            lg.rebates += amt
    for cid, s in rows.settlements.items():
        out.resolved[cid] = s  # never quoted again, whether or not this session holds anything there
        lg = out.ledgers.get(cid)
        sm = pairs.get(cid)
        if lg is None or sm is None:  # nothing to redeem (a ledger without its token pair holds rewards, no shares)
            continue
        winner_yes = s.winner_token == sm.yes_token_id
        lg.cash += lg.yes if winner_yes else lg.no  # redeemed: the winner pays 1, the loser 0
        lg.settlement = s.pnl
        lg.yes = lg.no = lg.net = lg.avg = ZERO
        lg.last_mid = Decimal(1) if winner_yes else ZERO
        lg.settled = True
    return out


def positions(restored: Restored, markets: Mapping[str, tuple[str, str]]) -> dict[str, Decimal]:
    """Token id -> shares held, for the markets whose token pair is known."""
    out: dict[str, Decimal] = {}
    for cid, lg in restored.ledgers.items():
        pair = markets.get(cid)
        if pair is None:
            continue
        if lg.yes:
            out[pair[0]] = lg.yes
        if lg.no:
            out[pair[1]] = lg.no
    return out


def install(restored: Restored, cycle: QuoteCycle, exchange: Any, now: float,
            pairs: Mapping[str, tuple[str, str]]) -> None:
    """Write a rebuilt state into a fresh cycle (before its first `run_once`)."""
    cycle.pnl.ledgers.update(restored.ledgers)
    econ = cycle.econ
    for cid, lg in restored.ledgers.items():
        econ.fees[cid], econ.rebates[cid], econ.rewards[cid] = lg.fees, lg.rebates, lg.rewards
    for cid, s in restored.resolved.items():
        cycle._resolved[cid] = s.winner_token
        econ.settled[cid] = s.winner_token
        econ._settlement_sums[cid] = (s.yes_shares, s.no_shares, s.payout, s.pnl, "restored")
    if restored.first_ts is not None:
        start = max(now - cycle.calibrator.window_sec, restored.first_ts - 1e-6)
        for cid, ts in restored.fill_ts.items():
            st = cycle.calibrator.state(cid)
            st.fill_ts = list(ts)
        for st in cycle.calibrator.states.values():
            st.started_at = start
    held = getattr(exchange, "positions", None)
    if isinstance(held, dict):  # paper: a sell needs the shares
        held.update(positions(restored, pairs))


async def read_rows(db: sa.Engine, mode: Mode) -> SessionRows:
    """The DB read (worker thread). Call it before the exchange starts: the live exchange's own
    start-up reconcile records the fills it backfills and hands them to the cycle's first poll,
    so reading after it would count them twice."""
    from ..store.repo import load_session_rows

    return parse_rows(await asyncio.to_thread(load_session_rows, db, mode.value))


async def resume(rows: SessionRows, cycle: QuoteCycle, exchange: Any, mode: Mode, markets: Sequence[Market],
                 now: float, emit: Callable[[Level, EventKind, str], object]) -> Restored:
    """The engine's start-up hook: rebuild, install into the fresh cycle, say what was restored;
    live also compares the restored positions with the venue's (`venue_positions`)."""
    restored = rebuild(rows, now, cycle.calibrator.window_sec, markets)
    pairs = {**rows.tokens, **{m.condition_id: (m.yes_token_id, m.no_token_id) for m in markets}}
    install(restored, cycle, exchange, now, pairs)
    econ = cycle.econ  # what the venue paid replaces the estimates of those days; read once per day
    econ.rewards_by_day.update(rows.rewards_by_day)
    econ.rebates_by_day.update(restored.rebates_by_day)
    econ.payouts.done |= {day for kind, day in rows.paid_days if kind == "rewards"}
    if restored.empty:
        return restored
    emit(Level.INFO, EventKind.RESTORE, restored.summary())
    ask = getattr(exchange, "venue_positions", None)
    if mode is Mode.LIVE and callable(ask):
        ours = positions(restored, pairs)
        tokens = sorted({t for cid in restored.ledgers if cid in pairs and cid not in restored.resolved
                         for t in pairs[cid]})
        try:
            venue = await ask(tokens)
        except Exception as exc:  # noqa: BLE001 - a check: say it could not be made, keep going
            emit(Level.WARNING, EventKind.RESTORE, f"restored positions not checked against the venue: {type(exc).__name__}: {exc}")
        else:
            diff = position_mismatches(ours, venue)
            if diff:
                emit(Level.WARNING, EventKind.RESTORE, "restored positions disagree with the venue (the DB misses fills, or "
                     "another client trades this wallet): " + "; ".join(diff))
    return restored


def position_mismatches(ours: Mapping[str, Decimal], venue: Mapping[str, Decimal]) -> list[str]:
    """`token: DB x, venue y` for every token where the two disagree (tokens the venue did not
    answer for are not compared)."""
    return [f"{t[:12]}…: DB {ours.get(t, ZERO)}, venue {venue[t]}" for t in sorted(venue)
            if venue[t] != ours.get(t, ZERO)]
