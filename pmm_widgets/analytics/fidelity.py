"""Paper fidelity: replay what a live run saw and did through the paper exchange, compare, fit.

A `Recording` is the market data a live run's exchange observed (books, prints, with their local
arrival times), our orders and cancels (when we sent them), the polls, and the fills the venue
gave us (ground truth, stamped with when they reached us). `replay()` feeds the same sequence to
a fresh `PaperExchange` built with a given fill, latency and fee model: the same orders at the
same moments against the same market, so any difference in fills is the models' alone (open
loop: the strategy is not re-run; the live run's decisions are kept). `compare()` reports the
figures the fidelity bench prints; `fit()` picks the fill model's parameters that best match the
live fills on one recording, to be checked on others.

Why open loop: in a closed loop, the paper strategy's different fills change its inventory,
hence its quotes, hence the next fills; the comparison then mixes model error with path
divergence. Open loop isolates the model, and one live run can score any number of candidate
parameter sets in seconds.

Plain code over typed data: no sockets, no clock (times come from the recording).
"""

from __future__ import annotations

import asyncio
import math
import statistics
from bisect import bisect_left, bisect_right
from dataclasses import MISSING, dataclass, field, fields, replace
from decimal import Decimal
from typing import Any, Literal

from ..config import Params
from ..domain import ZERO, BookView, Fill, Level, Market, PublicTrade, Side
from ..execution.latency_model import ConstantLatency, LatencyModel, SampledLatency
from ..execution.paper import PaperExchange
from ..store.sink import NullSink

HORIZONS = (5.0, 30.0)
ONE = Decimal(1)


@dataclass
class Recording:
    """Everything one live run's exchange saw and did, in order. Event tuples:
    ("book", t, BookView[, our resting orders in that book: OwnOrders]) | ("trade", t, PublicTrade) | ("place", t, [(live client id, Quote)])
    | ("cancel", t, [live client id]) | ("poll", t)."""

    markets: list[Market]
    seconds: float  # wall seconds of the run
    speed: float  # simulated seconds per wall second (sandbox speed-up)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    live_fills: list[tuple[float, Fill]] = field(default_factory=list)  # (local arrival time, fill)
    rtt_ms: list[float] = field(default_factory=list)  # measured order round trips
    engine_totals: dict[str, float] = field(default_factory=dict)  # the engine's own fills / pnl at the end
    _sim_minutes: float | None = field(default=None, repr=False)
    stripped: dict[str, float] = field(default_factory=dict)  # what `without_own` took out, moved, re-timed
    rtt_source: Any = field(default=None, repr=False)  # the live exchange's RTT record while running
    # live client id → (placed, gone): venue times (s) of the user channel's PLACEMENT / CANCELLATION
    spans: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    actions_at_venue: bool = False  # place/cancel events re-timed to the venue's own times (`on_venue_clock`)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A recording pickled before a field existed gets that field's default."""
        for f in fields(self):
            if f.name not in state:
                if f.default is not MISSING:
                    state[f.name] = f.default
                elif f.default_factory is not MISSING:
                    state[f.name] = f.default_factory()
        self.__dict__.update(state)

    @property
    def sim_minutes(self) -> float:
        """Simulated (venue) minutes the run covered: the span of the books' venue timestamps
        (a sandbox that cannot keep up with its speed-up falls behind; this measures what it
        did), else wall seconds × speed."""
        cached: float | None = getattr(self, "_sim_minutes", None)  # (recordings pickled before the field)
        if cached is None:
            ts = [ev[2].venue_ts_ms for ev in self.events if ev[0] == "book" and ev[2].venue_ts_ms > 0]
            span = (max(ts) - min(ts)) / 60_000.0 if ts else 0.0
            cached = span if span > 0 else self.seconds * self.speed / 60.0
            self._sim_minutes = cached
        return cached


@dataclass(frozen=True)
class Candidate:
    """One parameter set to try: a fill model and its knobs (as `PMM_*` values)."""

    model: str
    knobs: tuple[tuple[str, Any], ...] = ()
    latency_ms: float | None = None  # None: the recording's measured round trips

    @property
    def label(self) -> str:
        k = ",".join(f"{n.removeprefix('paper_')}={v:g}" if isinstance(v, float) else f"{n.removeprefix('paper_')}={v}"
                     for n, v in self.knobs)
        return f"{self.model}({k})" if k else self.model

    def params(self) -> Params:
        return Params(**{"paper_fill_model": self.model, **dict(self.knobs)})

    def settings(self) -> list[tuple[str, str]]:
        """(setting name, value) pairs, as `--set name=value` and `PMM_NAME=value` take them."""
        out = [("paper_fill_model", self.model)] + [(n, str(v)) for n, v in self.knobs]
        if self.latency_ms is not None:
            out.append(("paper_latency_ms", f"{self.latency_ms:g}"))
        return out

    def env(self) -> str:
        return "\n".join(f"PMM_{n.upper()}={v}" for n, v in self.settings())

    def set_args(self) -> list[str]:
        return [f"{n}={v}" for n, v in self.settings()]


FEED_MS = 1.0  # the sandbox's market feed runs over loopback in the same process


def latency_for(rec: Recording, cand: Candidate, seed: int = 0) -> LatencyModel:
    """The candidate's constant round trip, or the recording's measured ones; the feed delay
    is the loopback sandbox's (~1 ms), far below an order's round trip (signing included).
    When the recording's orders and cancels are already timed at the venue (`on_venue_clock`
    with the venue's own placement/removal times), they take no further entry/cancel delay."""
    if cand.latency_ms is not None:
        lat: LatencyModel = ConstantLatency(cand.latency_ms, feed_ms=FEED_MS if cand.latency_ms else 0.0)
    else:
        lat = SampledLatency(rec.rtt_ms, seed, feed_ms=FEED_MS) if rec.rtt_ms else ConstantLatency(0.0)
    return _AtVenue(lat) if getattr(rec, "actions_at_venue", False) else lat


class _AtVenue:
    """A latency model whose orders and cancels arrive at once (their events are timed at the
    venue already); fill notices and the feed keep the inner model's delays."""

    def __init__(self, inner: LatencyModel) -> None:
        self.inner = inner

    def entry(self) -> float:
        return 0.0

    def cancel(self) -> float:
        return 0.0

    def response(self) -> float:
        return max(self.inner.response(), self.inner.feed())

    def feed(self) -> float:
        return self.inner.feed()


def replay(rec: Recording, cand: Candidate, seed: int = 0, ids: dict[str, str] | None = None) -> list[tuple[float, Fill]]:
    """The paper fills the candidate gives for the recorded run, each with its local time
    (`ids`, when given, receives live client id → paper client id)."""
    return asyncio.run(_replay(rec, cand, seed, {} if ids is None else ids))


async def _replay(rec: Recording, cand: Candidate, seed: int, ids: dict[str, str]) -> list[tuple[float, Fill]]:
    t_now = [0.0]
    ex = PaperExchange(cand.params(), NullSink(), seed=seed, clock=lambda: t_now[0], latency=latency_for(rec, cand, seed),
                      infer_side=True)
    ex.set_markets(rec.markets)
    out: list[tuple[float, Fill]] = []
    seen = 0

    def stamp(t: float) -> None:
        nonlocal seen
        pend = ex._pending
        for f in pend[seen:]:
            out.append((float(f.raw.get("seen_ts", t)), f))
        seen = len(pend)

    for ev in rec.events:
        kind, t = ev[0], ev[1]
        t_now[0] = t
        if kind == "book":
            ex.observe_book(ev[2])
        elif kind == "trade":
            ex.observe_trade(ev[2])
        elif kind == "place":
            ex._last_now = t
            for live_id, q in ev[2]:
                if q.side is Side.SELL:  # the live run held these shares; paper must not refuse them
                    held = ex.positions.get(q.token_id, ZERO)
                    reserved = sum((o.remaining for o in ex.open_orders() if o.token_id == q.token_id
                                    and o.side is Side.SELL), ZERO)
                    if held - reserved < q.size:
                        ex.positions[q.token_id] = reserved + q.size
                [o] = await ex.place([q])
                if o.status.is_open:
                    ids[live_id] = o.client_id
        elif kind == "cancel":
            ex._last_now = t
            await ex.cancel([ids[i] for i in ev[2] if i in ids])
        elif kind == "poll":
            got = await ex.poll(t)  # everything since the last poll: the ones seen at events are stamped
            out.extend((float(f.raw.get("seen_ts", t)), f) for f in got[seen:])
            seen = 0
            continue
        stamp(t)
    return out


# -- comparison --------------------------------------------------------------------------------
class Mids:
    """Each token's mid over venue time (the books' own timestamps), from the recorded books.

    Why venue time: on a loaded host the market feed lags the user channel by seconds, so a
    live fill stamped at its (early) arrival would be marked against a stale book, and a paper
    fill (found when the lagging print arrives) against a fresher one. On the venue's clock both
    are marked against the same book history. `venue_time(t)` maps a local time to the venue
    time of the last book seen by then (for fills that only have a local stamp: intensity)."""

    def __init__(self, rec: Recording) -> None:
        series: dict[str, list[tuple[float, Decimal]]] = {}
        self._local: list[float] = []
        self._venue: list[float] = []
        for ev in rec.events:
            if ev[0] == "book":
                b: BookView = ev[2]
                v = b.venue_ts_ms / 1000.0 if b.venue_ts_ms else ev[1]
                if not self._local or (ev[1] >= self._local[-1] and v >= self._venue[-1]):
                    self._local.append(ev[1])
                    self._venue.append(v)
                m = b.mid
                if m is not None:
                    s = series.setdefault(b.token_id, [])
                    if not s or s[-1][0] <= v:
                        s.append((v, m))
        self._t = {k: [x[0] for x in v] for k, v in series.items()}
        self._m = {k: [x[1] for x in v] for k, v in series.items()}

    def at(self, token: str, t: float) -> Decimal | None:
        """The first mid at or after t (the last one if none)."""
        ts = self._t.get(token)
        if not ts:
            return None
        i = bisect_left(ts, t)
        return self._m[token][min(i, len(ts) - 1)]

    def venue_time(self, t_local: float) -> float:
        if not self._local:
            return t_local
        i = bisect_left(self._local, t_local + 1e-9) - 1
        return self._venue[max(i, 0)]

    def fill_time(self, t_local: float, f: Fill) -> float:
        """A fill's venue time: its own timestamp, except for time-driven paper fills (local)."""
        if f.raw.get("model") == "intensity" or f.raw.get("cause") == "latent":
            return self.venue_time(t_local)
        return f.ts

    def last(self, token: str) -> Decimal | None:
        v = self._m.get(token)
        return v[-1] if v else None


@dataclass
class Stats:
    fills: int
    fills_per_min: float
    per_market: dict[str, int]
    size_q: tuple[float, float, float]  # p10 / p50 / p90 of fill sizes
    # horizon (venue s) → size-weighted mean markout of the fills whose token has a mid, price units (+ = good for us)
    markout: dict[float, float]
    pnl: float
    pnl_by_market: dict[str, float]
    markout_se: dict[float, float] = field(default_factory=dict)  # standard error of each mean markout
    size_mean: float = 0.0


def stats(rec: Recording, fills: list[tuple[float, Fill]], mids: Mids) -> Stats:
    by_m: dict[str, int] = {}
    cash: dict[str, Decimal] = {}
    pos: dict[str, Decimal] = {}
    tok_market: dict[str, str] = {}
    mk_num = {h: 0.0 for h in HORIZONS}
    mk_den = {h: 0.0 for h in HORIZONS}  # the size of the fills with a mid at that horizon
    mk_each: dict[float, list[tuple[float, float]]] = {h: [] for h in HORIZONS}  # (markout, weight) per fill
    sizes: list[float] = []
    for t, f in fills:
        if f.status == "FAILED":
            continue
        by_m[f.market] = by_m.get(f.market, 0) + 1
        sign = 1 if f.side is Side.BUY else -1
        cash[f.market] = cash.get(f.market, ZERO) - sign * f.price * f.size - f.fee
        pos[f.token_id] = pos.get(f.token_id, ZERO) + sign * f.size
        tok_market[f.token_id] = f.market
        sizes.append(float(f.size))
        tv = mids.fill_time(t, f)
        for h in HORIZONS:
            m = mids.at(f.token_id, tv + h)
            if m is not None:
                x = sign * float(m - f.price)
                mk_num[h] += x * float(f.size)
                mk_den[h] += float(f.size)
                mk_each[h].append((x, float(f.size)))
    pnl_m = {k: float(v) for k, v in cash.items()}
    for tok, q in pos.items():
        m = mids.last(tok)
        if m is not None:
            pnl_m[tok_market[tok]] = pnl_m.get(tok_market[tok], 0.0) + float(q * m)
    n = sum(by_m.values())
    sizes.sort()
    size_q = (_quantile(sizes, 0.1), _quantile(sizes, 0.5), _quantile(sizes, 0.9)) if sizes else (0.0, 0.0, 0.0)
    mean = {h: (mk_num[h] / mk_den[h] if mk_den[h] else 0.0) for h in HORIZONS}
    return Stats(n, n / rec.sim_minutes if rec.sim_minutes else 0.0, by_m, size_q, mean, sum(pnl_m.values()), pnl_m,
                 {h: _weighted_se(mk_each[h], mean[h]) for h in HORIZONS}, sum(sizes) / len(sizes) if sizes else 0.0)


def _weighted_se(xs: list[tuple[float, float]], mean: float) -> float:
    """Standard error of a weighted mean (weights = fill sizes; Kish's effective sample size)."""
    w = sum(wi for _, wi in xs)
    if len(xs) < 2 or w <= 0:
        return math.inf
    var = sum(wi * (x - mean) ** 2 for x, wi in xs) / w
    n_eff = w * w / sum(wi * wi for _, wi in xs)
    return math.sqrt(var / max(n_eff - 1.0, 1.0))


def _quantile(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p * len(xs)))]


@dataclass
class Comparison:
    label: str
    paper: Stats
    live: Stats
    fills_ratio: float  # paper / live, total
    median_market_err: float  # median over markets with live fills of |paper/live − 1|
    pnl_diff: float
    pnl_se: float  # standard error of live's total PnL (per-market spread × √N)
    markout_err: dict[float, float]  # relative error of the mean markout per horizon
    loss: float
    size_err: float = 0.0  # |ln(paper / live)| of the mean fill size
    markout_diff: dict[float, float] = field(default_factory=dict)  # paper − live mean markout, price units
    parts: dict[str, float] = field(default_factory=dict)  # the loss, term by term
    candidate: Candidate | None = None  # what was scored (set by `fit`)

    def within_spec(self) -> dict[str, bool]:
        """The issue's targets, each both ways where it allows two: relative (±20 %) and within
        one standard error of live's figure (for values near zero)."""
        out = {"fills_total": abs(self.fills_ratio - 1) <= 0.10, "fills_median_market": self.median_market_err <= 0.25,
               "pnl_20pct": abs(self.pnl_diff) <= 0.2 * abs(self.live.pnl), "pnl_1se": abs(self.pnl_diff) <= self.pnl_se}
        out["pnl"] = out["pnl_20pct"] or out["pnl_1se"]
        for h, e in self.markout_err.items():
            out[f"markout_{h:g}s_20pct"] = abs(e) <= 0.20
            out[f"markout_{h:g}s_1se"] = abs(self.markout_diff.get(h, math.inf)) <= self.live.markout_se.get(h, 0.0)
            out[f"markout_{h:g}s"] = out[f"markout_{h:g}s_20pct"] or out[f"markout_{h:g}s_1se"]
        return out


# Weights of the fitter's loss. Fills first (the headline target), then the median
# market, fill sizes, markouts and PnL. Markouts and PnL are scored in units of the larger of
# 20 % of live's value and live's standard error, so a noisy near-zero live figure is not
# chased, while a model whose fills are adversely selected differently from live's loses.
LOSS_WEIGHTS = {"fills": 1.0, "median_market": 0.5, "size": 0.5, "markout": 0.25, "pnl": 0.25}


def _tol_units(diff: float, live: float, se: float) -> float:
    tol = max(0.2 * abs(live), se if math.isfinite(se) else 0.0)
    if tol <= 0:
        return 0.0 if diff == 0 else 10.0
    return min(abs(diff) / tol, 10.0)


def compare(label: str, paper: Stats, live: Stats) -> Comparison:
    ratio = paper.fills / live.fills if live.fills else math.inf
    errs = [abs(paper.per_market.get(m, 0) / n - 1) for m, n in live.per_market.items() if n > 0]
    med = statistics.median(errs) if errs else math.inf
    markets = set(live.pnl_by_market) | set(paper.pnl_by_market)
    lp = [live.pnl_by_market.get(m, 0.0) for m in markets]
    se = statistics.pstdev(lp) * math.sqrt(len(lp)) if len(lp) > 1 else abs(live.pnl)
    mk_diff = {h: paper.markout[h] - live.markout[h] for h in HORIZONS}
    mk_err = {h: (mk_diff[h] / abs(live.markout[h]) if live.markout[h] else math.inf) for h in HORIZONS}
    size_err = (abs(math.log(paper.size_mean / live.size_mean)) if paper.size_mean > 0 and live.size_mean > 0
                else (0.0 if paper.size_mean == live.size_mean else 10.0))
    parts = {
        "fills": abs(math.log(ratio)) if 0 < ratio < math.inf else 10.0,
        "median_market": min(med, 10.0),
        "size": min(size_err, 10.0),
        "markout": sum(_tol_units(mk_diff[h], live.markout[h], live.markout_se.get(h, math.inf)) for h in HORIZONS)
        / len(HORIZONS),
        "pnl": _tol_units(paper.pnl - live.pnl, live.pnl, se),
    }
    loss = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
    return Comparison(label, paper, live, ratio, med, paper.pnl - live.pnl, se, mk_err, loss, size_err, mk_diff, parts)


def default_grid() -> list[Candidate]:
    """The candidates the fitter tries first: the queue model, prob_queue's functions, and an
    intensity grid. `fit` then tries the latent flow on the best queue-family candidate."""
    out = [Candidate("queue")]
    out += [Candidate("prob_queue", (("paper_queue_func", "power"), ("paper_queue_power", n))) for n in (1.0, 2.0, 3.0)]
    out.append(Candidate("prob_queue", (("paper_queue_func", "log"),)))
    out += [Candidate("intensity", (("paper_fill_intensity", i), ("paper_spread_k", k)))
            for i in (0.5, 2.0, 8.0) for k in (30.0, 100.0, 300.0)]
    return out


LATENT_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)  # PMM_PAPER_LATENT_INTENSITY values tried in `fit`'s second stage


def with_latent(c: Candidate, rate: float) -> Candidate:
    return Candidate(c.model, (*[k for k in c.knobs if k[0] != "paper_latent_intensity"],
                               ("paper_latent_intensity", rate)), c.latency_ms)


def fit(rec: Recording, candidates: list[Candidate] | None = None, seed: int = 0) -> list[Comparison]:
    """Every candidate scored on one recording, best (lowest loss) first; each result carries
    its `candidate`. Without a candidate list: `default_grid()`, then the latent flow
    (`LATENT_GRID`) on the best queue-family candidate (coordinate search: two small grids
    instead of their product)."""
    mids = Mids(rec)
    live = stats(rec, rec.live_fills, mids)

    def score(c: Candidate) -> Comparison:
        r = compare(c.label, stats(rec, replay(rec, c, seed), mids), live)
        r.candidate = c
        return r

    out = [score(c) for c in (candidates or default_grid())]
    if candidates is None:
        out.sort(key=lambda c: c.loss)
        base = next((c.candidate for c in out if c.candidate is not None and c.candidate.model != "intensity"), None)
        if base is not None:
            out += [score(with_latent(base, r)) for r in LATENT_GRID]
    out.sort(key=lambda c: c.loss)
    return out


# -- what a paper engine would have seen ---------------------------------------------------------
OwnOrders = tuple[tuple[Side, Decimal, Decimal], ...]  # (side, price, remaining) in one token's terms


def strip_book(book: BookView, own: OwnOrders) -> BookView:
    """The book without our own resting orders (levels reduced by our size, emptied ones gone)."""
    if not own:
        return book
    mine: dict[tuple[Side, Decimal], Decimal] = {}
    for side, price, size in own:
        mine[(side, price)] = mine.get((side, price), ZERO) + size

    def levels(side: Side, lv: tuple[Level, ...]) -> tuple[Level, ...]:
        out = []
        for x in lv:
            left = x.size - mine.get((side, x.price), ZERO)
            if left > 0:
                out.append(x if left == x.size else Level(x.price, left))
        return tuple(out)

    return replace(book, bids=levels(Side.BUY, book.bids), asks=levels(Side.SELL, book.asks))


PrintMode = Literal["raw", "drop", "continue", "level"]
ClockMode = Literal["venue", "arrival"]


def without_own(rec: Recording, prints: PrintMode = "level", clock: ClockMode = "venue") -> Recording:
    """The recording as a paper engine trading the same market would have seen it, on a feed
    as fresh as the venue's clock (`clock="venue"`, see `on_venue_clock`; "arrival": as received).

    Books: our resting orders taken out of every book (the recorder notes them per book event).
    On the venue our orders sit in the public book; a paper engine's book never holds them, and
    a queue model that counted our own size as "behind us" would misjudge every cancel.

    Prints: on the venue every fill of ours is part of a public print (one taker against one
    price level); a paper engine's tape never holds them, and replaying them would hand the
    paper model the very prints our orders caused (circular). `prints` says what takes their place:
    - "level" (default): without us, the taker would have gone on trading at our price against
      the orders behind us: the print keeps as much of our part as the level without us held
      before it (a print of P at a level of L shares, ours R of them, becomes min(P, L − R)). Only
      what the level could not have absorbed is taken out, and moved to that taker's nearest
      print through our price in the same second if it swept on (else it is gone: the taker's
      limit was our price). Why: most takers that stopped at our order stopped because their
      size ran out, and without us the same size trades with the queue behind us — on the public
      tape a paper engine sees;
    - "continue": our whole part is taken out; if that taker also printed through our price in
      the same second, our part is added to its nearest print through our price; otherwise it is
      gone (the counterfactual of the second pass, which ignored the queue behind us: a lower bound);
    - "drop": our part taken out, nothing added (a pessimistic bound);
    - "raw": the tape as recorded (the optimistic, circular replay).
    Fills are matched to prints by (market, venue second, YES price): the user channel stamps a
    match in whole seconds (`match_time`), the market channel in ms. What was kept, moved and
    lost is in the result's `stripped` (`hidden_share`: the share of our fill volume that no
    print of the counterfactual tape stands for)."""
    groups = _prints_by_second(rec)
    ours = _our_fills(rec)
    live_fills, restamped = _live_fills_to_ms(rec, groups)
    vc = RecordedVenueClock(replace(rec, live_fills=live_fills)) if clock == "venue" else None
    own_of = own_on_venue_clock(replace(rec, live_fills=live_fills), vc) if vc else None
    room = _level_room(rec, ours, groups, own_of) if prints == "level" else {}
    delta: dict[int, Decimal] = {}  # event index → size change
    matched = moved = unmatched = 0
    total = lost = kept = ZERO
    if prints != "raw":
        for (cid, sec, yes_px, yes_bid), size in ours.items():
            group = groups.get((cid, sec), [])
            at = [i for i, px in group if px == yes_px]
            left = size
            out_of_tape = ZERO  # our part taken off the prints at our price
            for i in at:
                take = min(left, rec.events[i][2].size + delta.get(i, ZERO))
                if take > 0:
                    # the level without us could have filled all of the print but `over` shares
                    over = max(ZERO, rec.events[i][2].size - room[i]) if i in room else take
                    remove = min(take, over)
                    delta[i] = delta.get(i, ZERO) - remove
                    out_of_tape += remove
                    left -= take
            if left > 0:
                unmatched += 1
            if at:
                matched += 1
            total += size
            kept += size - left - out_of_tape
            through = [(px, i) for i, px in group if (px < yes_px if yes_bid else px > yes_px)]
            if prints in ("continue", "level") and through and out_of_tape > 0:
                _, j = max(through) if yes_bid else min(through)  # the nearest print through our price
                delta[j] = delta.get(j, ZERO) + out_of_tape
                moved += 1
            else:
                lost += out_of_tape
    events: list[tuple[Any, ...]] = []
    stripped_books = 0
    for i, ev in enumerate(rec.events):
        own = (own_of.get(i, ()) if own_of is not None else (ev[3] if len(ev) > 3 else ())) if ev[0] == "book" else ()
        if ev[0] == "book" and (own or len(ev) > 3):
            events.append(("book", ev[1], strip_book(ev[2], own)))
            stripped_books += 1 if own else 0
        elif i in delta:
            size = ev[2].size + delta[i]
            if size > 0:
                events.append(("trade", ev[1], replace(ev[2], size=size)))
        else:
            events.append(ev)
    out = replace(rec, events=events, live_fills=live_fills)
    out.stripped = {"books": stripped_books, "fills_matched": matched, "fills_moved_through": moved,
                    "fills_unmatched": unmatched} if prints != "raw" else {"books": stripped_books}
    if vc:
        out = on_venue_clock(out, clock=vc)
    if prints == "level":
        out.stripped["volume_kept_at_level"] = round(float(kept / total), 3) if total else 0.0
    if prints != "raw":
        out.stripped["hidden_share"] = round(float(lost / total), 3) if total else 0.0
    if restamped:
        out.stripped["fills_restamped_ms"] = restamped
    return out


def _venue_ts(ev: tuple[Any, ...]) -> float | None:
    if ev[0] == "book":
        return ev[2].venue_ts_ms / 1000.0 if ev[2].venue_ts_ms else None
    if ev[0] == "trade":
        return float(ev[2].ts) if ev[2].ts else None
    return None


class RecordedVenueClock:
    """When the venue's clock read what, in the live run's local time, from the freshest evidence:
    every event (market data and the user channel's fills) with a venue time v_i ≥ v arrived at
    t_i, and the venue's clock runs at most `speed` venue seconds per wall second, so it read v
    no later than t_i − (v_i − v) / speed; `local(v)` is the smallest such bound, `venue(t)` its
    inverse."""

    def __init__(self, rec: Recording) -> None:
        self.speed = float(rec.speed) if rec.speed > 0 else 1.0
        pts: list[tuple[float, float]] = [(v, float(ev[1])) for ev in rec.events if (v := _venue_ts(ev)) is not None]
        pts += [(float(f.ts), float(t)) for t, f in rec.live_fills]
        pts.sort()
        self.vs: list[float] = [v for v, _ in pts]
        bound: list[float] = [t - v / self.speed for v, t in pts]
        for i in range(len(bound) - 2, -1, -1):  # suffix minimum
            bound[i] = min(bound[i], bound[i + 1])
        self._bound = bound
        self._lv = [b + v / self.speed for b, v in zip(bound, self.vs, strict=True)]  # non-decreasing

    def __bool__(self) -> bool:
        return bool(self.vs)

    def local(self, v: float) -> float:
        j = min(bisect_left(self.vs, v), len(self.vs) - 1)
        return self._bound[j] + v / self.speed

    def venue(self, t: float) -> float:
        k = bisect_right(self._lv, t) - 1
        if k < 0:
            return self.vs[0] - (self._lv[0] - t) * self.speed
        est = self.vs[k] + (t - self._lv[k]) * self.speed
        return min(est, self.vs[k + 1]) if k + 1 < len(self.vs) else est


def on_venue_clock(rec: Recording, feed_s: float = FEED_MS / 1000.0, clock: RecordedVenueClock | None = None) -> Recording:
    """Market events re-timed to when they happened rather than when the live run's engine got
    them: each at the local time the venue's clock read its timestamp (plus a loopback feed
    delay). Our orders and cancels: at the local time the venue's clock read their PLACEMENT /
    CANCELLATION (`Recording.spans`; the replay then adds no entry/cancel delay), else left at
    the local times they were sent.

    Why: on a loaded host the engine's market feed fell behind (measured on the 50-market runs:
    prints of our own fills arrived 1.2–9 s after the user channel's notice of the same match at
    the 90th percentile, up to 30 s; at 10x that is minutes of venue time). Replayed by arrival,
    the paper order meets prints that happened at the venue before it was placed and misses
    those that happened while it rested: fills at the wrong moments, hence wrong markouts. A
    real paper engine reads a fresh feed (milliseconds). When the venue read v is estimated from
    the freshest evidence: every event (market data and the user channel's fills) with a venue
    time v_i ≥ v arrived at t_i, and the venue's clock runs at most `speed` venue seconds per
    wall second, so it read v no later than t_i − (v_i − v) / speed; the smallest such bound
    is taken (events are never moved later than they arrived). `stripped["feed_lag_p90_s"]`
    and `["feed_lag_max_s"]` report how much was taken off."""
    vc = clock if clock is not None else RecordedVenueClock(rec)
    if not vc:
        return rec
    spans = getattr(rec, "spans", None) or {}
    timed: list[tuple[float, int, tuple[Any, ...]]] = []
    lags: list[float] = []
    for idx, ev in enumerate(rec.events):
        if spans and ev[0] in ("place", "cancel"):
            # each order at the local time the venue's clock read its PLACEMENT / CANCELLATION
            for item in ev[2]:
                lid = item[0] if ev[0] == "place" else item
                v_at = spans.get(lid, (None, None))[0 if ev[0] == "place" else 1]
                t = vc.local(v_at) if v_at is not None else ev[1] + _half_rtt(rec)
                timed.append((t, idx, (ev[0], t, [item])))
            continue
        v = _venue_ts(ev)
        if v is None:
            timed.append((ev[1], idx, ev))
            continue
        t = min(ev[1], vc.local(v) + feed_s)
        lags.append(ev[1] - t)
        # the paper exchange reads a book's `ts` and a print's `recv_ts` as their arrival times
        obj = replace(ev[2], ts=t) if ev[0] == "book" else replace(ev[2], recv_ts=t)
        timed.append((t, idx, (ev[0], t, obj, *ev[3:])))
    timed.sort(key=lambda x: (x[0], x[1]))
    out = replace(rec, events=[x[2] for x in timed], actions_at_venue=bool(spans))
    lags.sort()
    out.stripped = {**rec.stripped, "feed_lag_p90_s": round(lags[int(0.9 * (len(lags) - 1))], 3) if lags else 0.0,
                    "feed_lag_max_s": round(lags[-1], 3) if lags else 0.0}
    return out


def _half_rtt(rec: Recording) -> float:
    return statistics.median(rec.rtt_ms) / 2000.0 if rec.rtt_ms else 0.0


@dataclass
class _VenueOrder:
    token_id: str
    side: Side
    price: Decimal
    size: Decimal
    start: float  # venue time it rests from
    end: float = math.inf  # venue time the cancel landed
    fills: list[tuple[float, Decimal]] = field(default_factory=list)  # (venue time, size)

    def remaining(self, v: float) -> Decimal:
        return self.size - sum((s for t, s in self.fills if t <= v), ZERO)


def own_on_venue_clock(rec: Recording, vc: RecordedVenueClock) -> dict[int, OwnOrders]:
    """Our orders resting in each recorded book, by the venue's clock: an order rests from the
    venue's PLACEMENT until its CANCELLATION (`Recording.spans`, the user channel's timestamps;
    for recordings without them: sent + half the median round trip, for both), less what had
    filled by then. Why: the recorder notes the orders open when a book
    *arrived*; with a lagging feed a book seconds old was stripped of the orders open seconds
    later (and kept the ones cancelled meanwhile), which looked like cancels and joins in
    the public queue."""
    half = _half_rtt(rec)
    spans = getattr(rec, "spans", None) or {}
    by_id: dict[str, _VenueOrder] = {}
    by_market: dict[str, list[_VenueOrder]] = {}
    for ev in rec.events:
        if ev[0] == "place":
            for lid, q in ev[2]:
                placed, gone = spans.get(lid, (None, None))
                o = _VenueOrder(q.token_id, q.side, q.price, q.size,
                                placed if placed is not None else vc.venue(ev[1] + half),
                                gone if gone is not None else math.inf)
                by_id[lid] = o
                by_market.setdefault(q.market, []).append(o)
        elif ev[0] == "cancel":
            for lid in ev[2]:
                c = by_id.get(lid)
                if c is not None and c.end == math.inf and spans.get(lid, (None, None))[1] is None:
                    c.end = max(c.start, vc.venue(ev[1] + half))
    for _, f in rec.live_fills:
        h = by_id.get(f.order_client_id)
        if h is not None and f.status != "FAILED":
            h.fills.append((f.ts, f.size))
    books: dict[str, list[tuple[float, int]]] = {}
    for i, ev in enumerate(rec.events):
        if ev[0] == "book" and (v := _venue_ts(ev)) is not None and ev[2].market in by_market:
            books.setdefault(ev[2].market, []).append((v, i))
    out: dict[int, OwnOrders] = {}
    for market, bs in books.items():
        orders = sorted(by_market[market], key=lambda o: o.start)
        bs.sort()
        k = 0
        active: list[_VenueOrder] = []
        for v, i in bs:
            while k < len(orders) and orders[k].start <= v:
                active.append(orders[k])
                k += 1
            active = [o for o in active if o.end > v]
            book: BookView = rec.events[i][2]
            own: list[tuple[Side, Decimal, Decimal]] = []
            for o in active:
                rem = o.remaining(v)
                if rem > 0:
                    own.append((o.side, o.price, rem) if o.token_id == book.token_id
                               else (o.side.opposite, ONE - o.price, rem))
            if own:
                out[i] = tuple(own)
    return out


def _level_room(rec: Recording, ours: dict[tuple[str, int, Decimal, bool], Decimal],
                groups: dict[tuple[str, int], list[tuple[int, Decimal]]],
                own_of: dict[int, OwnOrders] | None = None) -> dict[int, Decimal]:
    """For each print at the price of one of our fills: the size the level held without our
    orders just before it (the last book of that market, either token, mirrored to YES terms)."""
    want: dict[int, tuple[Decimal, bool]] = {}
    for (cid, sec, yes_px, yes_bid) in ours:
        for i, px in groups.get((cid, sec), []):
            if px == yes_px:
                want[i] = (yes_px, yes_bid)
    if not want:
        return {}
    by_token = {t: m for m in rec.markets for t in m.token_ids}
    last: dict[str, int] = {}  # market → the index of its last book event
    out: dict[int, Decimal] = {}
    for i, ev in enumerate(rec.events):
        if ev[0] == "book":
            last[ev[2].market] = i
        elif i in want:
            m = by_token.get(ev[2].token_id)
            j = last.get(m.condition_id) if m is not None else None
            if m is None or j is None:
                continue
            yes_px, yes_bid = want[i]
            b = rec.events[j]
            book: BookView = b[2]
            own: OwnOrders = own_of.get(j, ()) if own_of is not None else (b[3] if len(b) > 3 else ())
            if book.token_id == m.yes_token_id:
                side, px = (Side.BUY if yes_bid else Side.SELL), yes_px
            else:  # the NO book: a YES bid at p is a NO ask at 1 − p
                side, px = (Side.SELL if yes_bid else Side.BUY), ONE - yes_px
            mine = sum((sz for sd, p, sz in own if sd is side and p == px), ZERO)
            out[i] = max(ZERO, book.size_at(side, px) - mine)
    return out


def _live_fills_to_ms(rec: Recording, groups: dict[tuple[str, int], list[tuple[int, Decimal]]]
                      ) -> tuple[list[tuple[float, Fill]], int]:
    """Live fills stamped in whole venue seconds (the user channel's `match_time`; recordings made
    before the recorder kept the event's ms) get the ms of their print: the first public print at
    their YES price in that second. Why: a paper fill carries its print's ms, and a markout
    measured from the start of the second instead of the match ran 0.5 s short on average."""
    by_token = {t: m for m in rec.markets for t in m.token_ids}
    out: list[tuple[float, Fill]] = []
    n = 0
    for t, f in rec.live_fills:
        m = by_token.get(f.token_id)
        if m is not None and f.ts == math.floor(f.ts):
            yes_px = _yes_price(m, f.token_id, f.price)
            at = [rec.events[i][2].ts for i, px in groups.get((m.condition_id, int(f.ts)), []) if px == yes_px]
            if at:
                f = replace(f, ts=min(at))
                n += 1
        out.append((t, f))
    return out, n


def _yes_price(m: Market, token: str, price: Decimal) -> Decimal:
    return price if token == m.yes_token_id else ONE - price


def _prints_by_second(rec: Recording) -> dict[tuple[str, int], list[tuple[int, Decimal]]]:
    """(market, venue second) → [(event index, YES price)] of the public prints."""
    by_token = {t: m for m in rec.markets for t in m.token_ids}
    out: dict[tuple[str, int], list[tuple[int, Decimal]]] = {}
    for i, ev in enumerate(rec.events):
        if ev[0] == "trade":
            tr: PublicTrade = ev[2]
            m = by_token.get(tr.token_id)
            if m is not None:
                out.setdefault((m.condition_id, math.floor(tr.ts)), []).append((i, _yes_price(m, tr.token_id, tr.price)))
    return out


def _our_fills(rec: Recording) -> dict[tuple[str, int, Decimal, bool], Decimal]:
    """(market, venue second, YES price, our order is a YES bid) → our filled size."""
    by_token = {t: m for m in rec.markets for t in m.token_ids}
    out: dict[tuple[str, int, Decimal, bool], Decimal] = {}
    for _, f in rec.live_fills:
        m = by_token.get(f.token_id)
        if m is None or f.status == "FAILED":
            continue
        yes_bid = (f.side is Side.BUY) == (f.token_id == m.yes_token_id)  # bought YES or sold NO
        k = (m.condition_id, math.floor(f.ts), _yes_price(m, f.token_id, f.price), yes_bid)
        out[k] = out.get(k, ZERO) + f.size
    return out


def hidden_fill_share(rec: Recording) -> float:
    """The share of live fill volume whose taker printed nothing strictly through our price in
    the same venue second: flow that may have traded only because our order was there, which no
    model of the public tape can see (paper's blind spot: the closed loop meets it, an open-loop
    replay of the raw tape does not)."""
    groups = _prints_by_second(rec)
    hidden = total = ZERO
    for (cid, sec, yes_px, yes_bid), size in _our_fills(rec).items():
        total += size
        if not any((px < yes_px) if yes_bid else (px > yes_px) for _, px in groups.get((cid, sec), [])):
            hidden += size
    return float(hidden / total) if total else 0.0
