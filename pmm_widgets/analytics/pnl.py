"""Inventory, cash and PnL per market, split into spread capture and inventory PnL.

Accounting is done in YES-equivalent terms, because a YES and a NO share together are worth
exactly 1: buying NO at q is selling YES at 1 − q plus buying a riskless pair. Every fill is
mapped to a YES-equivalent trade (d shares at price x: BUY YES → (+s, p); SELL YES → (−s, p);
BUY NO → (−s, 1 − q); SELL NO → (+s, 1 − q)), and the net position `n = yes − no` carries an
average entry price. So:

- total PnL = cash + yes × m + no × (1 − m), m the YES mid (the mark; NO is marked at 1 − m);
- unrealized = n × (m − average entry); realized = total − unrealized (closing trades against
  the average entry; a completed pair realizes its locked-in edge, since it contributes no n);
- spread PnL = Σ d × (mid at fill − x): the edge captured against mid at each fill;
- inventory PnL = trading PnL − spread PnL − settlement: what holding the position made or lost;
- venue economics (issue 13): fees paid (a cost), maker rebates accrued, liquidity rewards
  (estimated), and settlement: when a market resolves the shares are redeemed at 1 (winner) or 0,
  and the difference against their last mid mark is the settlement PnL. So
  total = spread + inventory + settlement − fees + rebates + rewards.

Money is Decimal throughout (cash, prices, sizes, PnL); only display converts to float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from operator import is_
from typing import Any

from ..domain import ZERO, Fill, Market, Side, slot_init


@slot_init
@dataclass(frozen=True, slots=True)
class PnlParts:
    total: Decimal
    realized: Decimal
    unrealized: Decimal
    spread: Decimal
    inventory: Decimal
    inventory_usd: Decimal
    fees: Decimal = ZERO
    rebates: Decimal = ZERO
    rewards: Decimal = ZERO
    settlement: Decimal = ZERO


def yes_equivalent(fill: Fill, market: Market) -> tuple[Decimal, Decimal]:
    """(signed YES-equivalent shares, YES-equivalent price) of a fill."""
    signed = fill.size if fill.side is Side.BUY else -fill.size
    if fill.token_id == market.yes_token_id:
        return signed, fill.price
    return -signed, 1 - fill.price


@dataclass(slots=True)
class MarketLedger:
    yes: Decimal = ZERO
    no: Decimal = ZERO
    cash: Decimal = ZERO
    net: Decimal = ZERO
    avg: Decimal = ZERO  # average YES-equivalent entry price of `net`
    realized_closed: Decimal = ZERO  # realized on the YES-equivalent position
    spread: Decimal = ZERO
    fills: int = 0
    volume: Decimal = ZERO  # notional traded, USD
    last_mid: Decimal | None = None
    fees: Decimal = ZERO
    rebates: Decimal = ZERO
    rewards: Decimal = ZERO
    settlement: Decimal = ZERO
    settled: bool = False

    def settle(self, winner_yes: bool, yes_mid: Decimal | None = None) -> tuple[Decimal, Decimal]:
        """Redeem the shares at resolution: the winner pays 1, the loser 0. Returns (payout,
        settlement PnL against the last mark, `yes_mid` when given); the ledger is flat afterwards."""
        if yes_mid is not None and not self.settled:
            self.last_mid = yes_mid
        m = self.last_mid if self.last_mid is not None else (self.avg if self.net != 0 else Decimal("0.5"))
        payout = self.yes if winner_yes else self.no
        pnl = payout - (self.yes * m + self.no * (1 - m))
        self.cash += payout
        self.settlement += pnl
        self.yes = self.no = self.net = self.avg = ZERO
        self.last_mid = Decimal(1) if winner_yes else ZERO
        self.settled = True
        return payout, pnl

    def apply(self, fill: Fill, market: Market, yes_mid: Decimal | None) -> None:
        signed = fill.size if fill.side is Side.BUY else -fill.size
        if fill.token_id == market.yes_token_id:
            self.yes += signed
        else:
            self.no += signed
        self.cash -= signed * fill.price
        self.fills += 1
        self.volume += fill.notional
        d, x = yes_equivalent(fill, market)
        mark = yes_mid if yes_mid is not None else self.last_mid
        self.spread += d * ((mark if mark is not None else x) - x)
        n = self.net
        if n == 0 or (n > 0) == (d > 0):
            self.avg = (n * self.avg + d * x) / (n + d)
            self.net = n + d
            return
        closed = min(abs(d), abs(n))
        self.realized_closed += closed * (x - self.avg) * (1 if n > 0 else -1)
        self.net = n + d
        if self.net == 0:
            self.avg = ZERO
        elif (self.net > 0) != (n > 0):
            self.avg = x

    def parts(self, yes_mid: Decimal | None) -> PnlParts:
        if yes_mid is not None and not self.settled:
            self.last_mid = yes_mid
        m = self.last_mid
        if m is None:  # never marked: value held shares at entry, i.e. no unrealized PnL
            m = self.avg if self.net != 0 else Decimal("0.5")
        trading = self.cash + self.yes * m + self.no * (1 - m)
        unrealized = self.net * (m - self.avg)
        inv_usd = self.net * m if self.net >= 0 else -self.net * (1 - m)
        total = trading - self.fees + self.rebates + self.rewards
        return PnlParts(total, total - unrealized, unrealized, self.spread, trading - self.spread - self.settlement,
                        inv_usd, self.fees, self.rebates, self.rewards, self.settlement)


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """Element by element the very same objects (`PnlBook.parts`' memo key; `is_` pairwise in C)."""
    return all(map(is_, a, b))


class PnlBook:
    """Ledgers of every market traded this session, plus totals and `pnl` table rows."""

    def __init__(self) -> None:
        self.ledgers: dict[str, MarketLedger] = {}
        self._memo: dict[str, tuple[MarketLedger, tuple[object, ...], PnlParts]] = {}  # `parts`' last answers

    def ledger(self, market: str) -> MarketLedger:
        lg = self.ledgers.get(market)
        if lg is None:
            lg = self.ledgers[market] = MarketLedger()
        return lg

    def apply(self, fill: Fill, market: Market, yes_mid: Decimal | None) -> None:
        self.ledger(market.condition_id).apply(fill, market, yes_mid)

    def parts(self, mids: dict[str, Decimal | None]) -> dict[str, PnlParts]:
        """Every ledger's parts at these mids (marks each ledger, as `MarketLedger.parts` does).

        Memoized per market: a ledger whose every input of `MarketLedger.parts` is the very object
        it was last time (Decimals are immutable; `is`, never `==`, which would call 0.5 and 0.50
        the same and hand back parts of another exponent), at the very same mid, gets the parts of
        last time and the same mark. About half of the cycle's markets, every cycle: no fill, no
        reward, the touch where it was."""
        out: dict[str, PnlParts] = {}
        memo = self._memo
        for cid, lg in self.ledgers.items():
            m = mids.get(cid)
            marks = m is not None and not lg.settled
            # the mark `MarketLedger.parts` values at (it sets `last_mid` to a new mid first), and the rest it reads
            key = (m if marks else lg.last_mid, lg.cash, lg.yes, lg.no, lg.net, lg.avg, lg.spread, lg.fees, lg.rebates,
                   lg.rewards, lg.settlement)
            hit = memo.get(cid)
            if hit is not None and hit[0] is lg and _same(hit[1], key):
                if marks:
                    lg.last_mid = m  # what `MarketLedger.parts` does first
                out[cid] = hit[2]
                continue
            pp = out[cid] = lg.parts(m)
            memo[cid] = (lg, key, pp)
        return out

    def totals(self, mids: dict[str, Decimal | None], parts: dict[str, PnlParts] | None = None) -> PnlParts:
        """The sum of every ledger's parts at `mids`; `parts`: `self.parts(mids)` when the caller
        has them (the cycle computes them once per cycle: no ledger changes between its risk
        inputs and its publish)."""
        t = r = u = sp = inv = usd = fe = rb = rw = st = ZERO  # each summed in the parts' order, as before
        for p in (self.parts(mids) if parts is None else parts).values():
            t += p.total
            r += p.realized
            u += p.unrealized
            sp += p.spread
            inv += p.inventory
            usd += p.inventory_usd
            fe += p.fees
            rb += p.rebates
            rw += p.rewards
            st += p.settlement
        return PnlParts(t, r, u, sp, inv, usd, fe, rb, rw, st)

    def rows(self, ts: float, mode: str, mids: dict[str, Decimal | None],
             parts: dict[str, PnlParts] | None = None) -> list[dict[str, Any]]:
        """`pnl` rows: one per market traded, then one 'TOTAL' (`parts` as for `totals`)."""
        if parts is None:
            parts = self.parts(mids)
        out: list[dict[str, Any]] = []
        # the TOTAL row's sums, each in the ledgers' order (locals: the per-key dict updates cost more)
        re = un = to = sp = ip = iy = ino = iu = ca = vo = fe = rb = rw = se = ZERO
        fills = 0
        for cid, lg in self.ledgers.items():
            p = parts[cid]
            out.append({"ts": ts, "market": cid, "mode": mode, "realized": p.realized, "unrealized": p.unrealized,
                        "total": p.total, "spread_pnl": p.spread, "inventory_pnl": p.inventory, "inventory_yes": lg.yes,
                        "inventory_no": lg.no, "inventory_usd": p.inventory_usd, "cash": lg.cash, "fills": lg.fills,
                        "volume": lg.volume, "fees": p.fees, "rebates": p.rebates, "rewards": p.rewards,
                        "settlement": p.settlement})
            re += p.realized
            un += p.unrealized
            to += p.total
            sp += p.spread
            ip += p.inventory
            iy += lg.yes
            ino += lg.no
            iu += p.inventory_usd
            ca += lg.cash
            fills += lg.fills
            vo += lg.volume
            fe += p.fees
            rb += p.rebates
            rw += p.rewards
            se += p.settlement
        out.append({"ts": ts, "market": "TOTAL", "mode": mode, "realized": re, "unrealized": un, "total": to,
                    "spread_pnl": sp, "inventory_pnl": ip, "inventory_yes": iy, "inventory_no": ino, "inventory_usd": iu,
                    "cash": ca, "fills": fills, "volume": vo, "fees": fe, "rebates": rb, "rewards": rw, "settlement": se})
        return out
