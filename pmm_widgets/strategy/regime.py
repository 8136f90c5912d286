"""`RegimeAware` (`PMM_STRATEGY=regime`): a regime machine wrapped around another strategy.

Regimes, in order of caution: `normal` (the wrapped strategy as is) → `wide` (its spread
multiplied by `regime_wide_mult`, through the calibration multiplier every built-in strategy
scales by) → `reduce-only` (only its quotes that move the net YES-equivalent position toward
zero) → `halted` (no quotes).

Signals, each pushing toward a regime (the most cautious wins):
- volatility: `ctx.sigma`, the expected YES mid move over the vol horizon, against
  `regime_wide_vol` / `regime_reduce_vol` / `regime_halt_vol`;
- trade-through rate: how often the effective touch moved through one of our resting quotes
  since the previous cycle (the market went through our price: we were, or would have been,
  run over), as an exponentially weighted count over the last minute, against
  `regime_wide_tt_per_min` / `regime_reduce_tt_per_min`;
- time to the market's end date: reduce-only within `regime_reduce_before_end_min`, halted
  within `regime_halt_before_end_min` (resolution risk cannot be hedged by spread).

Escalation is immediate; stepping down goes one regime at a time and only after the signals
have stayed below the current regime for `regime_cooldown_sec` (no flapping). Every transition
is returned in `Decision.events` with its reason; the cycle writes it as an `events` row (kind
`strategy_regime`). The wrapped strategy is `regime_base` (spread, as or microprice) unless an
object is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..domain import Quote
from .base import Decision, MarketContext, Regime, Strategy
from .guard import reduces
from .inventory import net_delta
from .quoting import yes_space_price

if TYPE_CHECKING:
    from .registry import Builtins

TT_WINDOW_SEC = 60.0
_BY_LEVEL = sorted(Regime, key=lambda r: r.level)


@dataclass(frozen=True, slots=True)
class RegimeState:
    regime: Regime = Regime.NORMAL
    calm_since: float | None = None  # when the signals first fell below the current regime
    last_ts: float | None = None
    our_bid: float | None = None  # YES-space prices of our resting quotes at the last decision
    our_ask: float | None = None
    tt_rate: float = 0.0  # trade-throughs, exponentially weighted over TT_WINDOW_SEC
    base_name: str = ""
    base_state: object = None


def target_regime(ctx: MarketContext, tt_rate: float) -> tuple[Regime, str]:
    """The regime the signals ask for now, and why."""
    p = ctx.params
    found: list[tuple[Regime, str]] = [(Regime.NORMAL, "calm")]
    if ctx.time_to_end_sec is not None:
        mins = ctx.time_to_end_sec / 60.0
        if mins <= p.regime_halt_before_end_min:
            found.append((Regime.HALTED, f"{mins:.0f} min to end <= {p.regime_halt_before_end_min:g}"))
        elif mins <= p.regime_reduce_before_end_min:
            found.append((Regime.REDUCE_ONLY, f"{mins:.0f} min to end <= {p.regime_reduce_before_end_min:g}"))
    v = ctx.sigma
    for lim, reg in ((p.regime_halt_vol, Regime.HALTED), (p.regime_reduce_vol, Regime.REDUCE_ONLY),
                     (p.regime_wide_vol, Regime.WIDE)):
        if v >= lim:
            found.append((reg, f"vol {v:.4f} >= {lim:g}"))
            break
    for lim, reg in ((p.regime_reduce_tt_per_min, Regime.REDUCE_ONLY), (p.regime_wide_tt_per_min, Regime.WIDE)):
        if tt_rate >= lim:
            found.append((reg, f"trade-through {tt_rate:.1f}/min >= {lim:g}"))
            break
    top = max(r.level for r, _ in found)
    return _BY_LEVEL[top], "; ".join(why for r, why in found if r.level == top)


class RegimeAware:
    name = "regime"

    def __init__(self, base: Strategy | None = None) -> None:
        self.base = base
        self._built: Builtins | None = None

    def _base(self, ctx: MarketContext) -> Strategy:
        if self.base is not None:
            return self.base
        if self._built is None:
            from .registry import Builtins  # registry imports this module

            self._built = Builtins()
        return self._built.get(ctx.params.regime_base)

    def decide(self, ctx: MarketContext, state: object | None) -> Decision:
        st = state if isinstance(state, RegimeState) else RegimeState()
        # trade-throughs since the last decision: the touch went through a quote we had resting.
        # The touch is converted from its exact price (ticks x tick), as our prices were: the float
        # product of ticks and tick size can land an ulp off (57 x 0.01 > 0.57)
        tt = st.tt_rate
        if st.last_ts is not None:
            tt *= math.exp(-max(0.0, ctx.now - st.last_ts) / TT_WINDOW_SEC)
            if st.our_bid is not None and float(ctx.ask_ticks * ctx.tick) <= st.our_bid:
                tt += 1.0
            if st.our_ask is not None and float(ctx.bid_ticks * ctx.tick) >= st.our_ask:
                tt += 1.0
        want, why = target_regime(ctx, tt)
        cur, calm = st.regime, st.calm_since
        events: tuple[str, ...] = ()
        new = cur
        if want.level > cur.level:
            new, calm = want, None
        elif want.level < cur.level:
            calm = ctx.now if calm is None else calm
            if ctx.now - calm >= ctx.params.regime_cooldown_sec:
                new = _BY_LEVEL[cur.level - 1]
                calm = ctx.now if want.level < new.level else None  # the next step waits a full cooldown
                why = f"calm for {ctx.params.regime_cooldown_sec:g}s ({why})"
        else:
            calm = None

        base = self._base(ctx)
        base_state = st.base_state if st.base_name == base.name else None
        quotes: tuple[Quote, ...] = ()
        if new is not Regime.HALTED:
            bctx = replace(ctx, calib_mult=ctx.calib_mult * ctx.params.regime_wide_mult) if new is Regime.WIDE else ctx
            d = base.decide(bctx, base_state)
            base_state = d.state
            quotes = d.quotes
            if d.regime.level > new.level:  # the wrapped strategy may be more cautious itself
                new, why = d.regime, d.reason
            if new is Regime.HALTED:
                quotes = ()
            elif new is Regime.REDUCE_ONLY:
                m, net = ctx.market, ctx.inventory.net
                quotes = tuple(q for q in quotes if reduces(net, net + net_delta(m, q.token_id, q.side, q.size)))
        if new is not cur:  # after the wrapped strategy's say: its escalation is a transition too
            events = (f"regime {cur.value} -> {new.value}: {why}",)
        our_bid, our_ask = resting_touch(ctx)
        nxt = RegimeState(new, calm, ctx.now, our_bid, our_ask, tt, base.name, base_state)
        return Decision(quotes, new, why if new is not Regime.NORMAL else "", nxt, events)


def resting_touch(ctx: MarketContext) -> tuple[float | None, float | None]:
    """Our best resting YES-space bid and ask in this market (None for a side with no order)."""
    bid: float | None = None
    ask: float | None = None
    for o in ctx.open_orders:
        kind, yp = yes_space_price(ctx.market, Quote(o.market, o.token_id, o.side, o.price, o.remaining))
        if kind == "bid":
            bid = float(yp) if bid is None else max(bid, float(yp))
        else:
            ask = float(yp) if ask is None else min(ask, float(yp))
    return bid, ask
