"""The incremental quote cycle decides exactly what the full cycle decides.

Two `QuoteCycle`s (one `incremental=False`: every market re-decided every cycle; one incremental:
only markets whose decision inputs changed) each drive their own paper exchange (same seed, same
clock, same session id) through the same random sequence of events: book moves (touch, top
sizes, deep levels only, stale, crossed), time steps from 0.5 s to several minutes (volatility
decay, calibration updates, an end date passing, anomaly cool-downs), parameter changes (α, skew,
band, pause, a total-inventory limit that binds across markets, requote threshold), per-market
strategies and overrides (spread, as, microprice, regime, rewards), safety holds and fills. After
every cycle the two must agree on the report, the decisions (every market's wanted quotes after
risk), the resting orders, the snapshot and every row written (orders, trades, events, pnl,
markouts, calibration).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmm_widgets.config import Params
from pmm_widgets.domain import BookView, Level, Market, Mode
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.store.sink import MemorySink

D = Decimal
T0 = 1_700_000_000.0
N_MARKETS = 5
TOPS = [(100, 107), (6, 900), (900, 6), (300, 40), (40, 300), (100, 300), (300, 100), (50, 950)]  # (YES best bid size, best ask size)


def markets() -> list[Market]:
    end = datetime.fromtimestamp(T0 + 400, tz=UTC).isoformat()  # market 0 ends during the run
    out = []
    for i in range(N_MARKETS):
        out.append(Market(condition_id=f"0xc{i}", question=f"Q{i}?", yes_token_id=f"y{i}", no_token_id=f"n{i}",
                          tick_size=D("0.001") if i == 3 else D("0.01"), min_order_size=D(5),
                          end_date=end if i in (0, 2) else None))
    return out


class Books:
    """Mirrored YES/NO books per market, changed only by the events of the sequence."""

    def __init__(self, ms: list[Market]) -> None:
        self.ms = ms
        self.decided = self.reused = 0
        self.state = {m.condition_id: {"bid": 40 if m.tick_size == D("0.01") else 400, "spread": 2, "top": 0,
                                       "deep": 300, "stale": False, "crossed": False, "ts": T0} for m in ms}
        self.views: dict[str, BookView] = {}
        for m in ms:
            self._build(m)

    def _build(self, m: Market) -> None:
        s = self.state[m.condition_id]
        t = m.tick_size
        b, a = s["bid"], s["bid"] + s["spread"]
        if s["crossed"]:
            a = b
        tb, ta = TOPS[s["top"]]
        yb = (Level(t * b, D(tb)), Level(t * (b - 1), D(s["deep"])), Level(t * (b - 2), D(150)))
        ya = (Level(t * a, D(ta)), Level(t * (a + 1), D(s["deep"])), Level(t * (a + 2), D(150)))
        kw = {"tick_size": t, "ts": s["ts"], "stale": s["stale"]}
        self.views[m.yes_token_id] = BookView(m.yes_token_id, m.condition_id, yb, ya, crossed=s["crossed"], **kw)
        self.views[m.no_token_id] = BookView(m.no_token_id, m.condition_id,
                                             tuple(Level(1 - x.price, x.size) for x in ya),
                                             tuple(Level(1 - x.price, x.size) for x in yb), crossed=False, **kw)

    def apply(self, i: int, op: str, now: float) -> None:
        m = self.ms[i]
        s = self.state[m.condition_id]
        n = int(1 / m.tick_size)
        if op == "up":
            s["bid"] = min(s["bid"] + 1, n - 10)
        elif op == "down":
            s["bid"] = max(s["bid"] - 1, 10)
        elif op == "jump":
            s["bid"] = min(s["bid"] + n // 10, n - 10) if s["bid"] < n // 2 else max(s["bid"] - n // 10, 10)
        elif op == "widen":
            s["spread"] = 1 + s["spread"] % 7
        elif op == "top":  # lopsided tops move the microprice inside the touch
            s["top"] = (s["top"] + 1) % len(TOPS)
        elif op == "deep":
            s["deep"] = 50 + (s["deep"] * 3) % 900
        elif op == "stale":
            s["stale"] = not s["stale"]
        elif op == "crossed":
            s["crossed"] = not s["crossed"]
        s["ts"] = now
        self._build(m)

    def view(self, token: str) -> BookView | None:
        return self.views.get(token)


BOOK_OPS = st.sampled_from(["up", "down", "jump", "widen", "top", "deep", "deep", "stale", "crossed"])
PARAM_CHANGES = st.sampled_from([
    ("alpha", 1.0), ("alpha", 1.5), ("alpha", 2.7), ("skew", 0.0), ("skew", 0.8),
    ("price_band", D("0.05")), ("price_band", D("0.2")), ("quoting_paused", True), ("quoting_paused", False),
    ("max_total_inventory_usd", D("8")), ("max_total_inventory_usd", D("5000")),
    ("max_inventory_shares", D("30")), ("max_inventory_shares", D("500")), ("requote_ticks", 0),
    ("requote_ticks", 2), ("vol_halflife_sec", 5.0), ("strategy", "as"), ("strategy", "spread"),
    ("stop_before_end_min", 3.0), ("quote_size", D("10")), ("quote_size", D("25")),
])
STRATS = st.sampled_from([None, "spread", "as", "microprice", "regime", "rewards", "alpha2"])
STEP = st.fixed_dictionaries({
    "dt": st.sampled_from([0.5, 1.0, 1.0, 3.0, 3.0, 31.0, 95.0]),
    "books": st.lists(st.tuples(st.integers(0, N_MARKETS - 1), BOOK_OPS), max_size=4),
    "param": st.none() | PARAM_CHANGES,
    "strategy": st.none() | st.tuples(st.integers(0, N_MARKETS - 1), STRATS),
    "hold": st.sampled_from([None, None, None, None, None, None, "lease unproven"]),
})
ID = re.compile(r"pp-[0-9a-z]+-")


class Side:
    def __init__(self, incremental: bool, ms: list[Market]) -> None:
        self.now = T0
        self.params = Params(paper_fill_intensity=4.0, calib_min_mult=0.5, alpha=1.3)
        self.sink = MemorySink()
        self.ex = PaperExchange(self.params, self.sink, seed=11, clock=lambda: self.now, session="s")
        self.qc = QuoteCycle(self.params, self.sink, Mode.PAPER, incremental=incremental,
                             calib_update_sec=30.0, markout_horizons=(1.0, 5.0, 30.0))
        self.ms = ms
        self.decided = self.reused = 0

    def change(self, step: dict) -> None:
        if step["param"] is not None:
            name, value = step["param"]
            setattr(self.params, name, value)
        if step["strategy"] is not None:
            i, name = step["strategy"]
            cid = self.ms[i].condition_id
            if name == "alpha2":
                self.qc.set_strategy(cid, None, alpha=2.0)
            else:
                self.qc.set_strategy(cid, name)

    async def cycle(self, now: float, books: Books, hold: str | None) -> str:
        self.now = now
        rep = await self.qc.run_once(now, self.ms, books.view, self.ex, hold=hold)
        self.decided, self.reused = rep.decided, rep.reused
        rep.decided = rep.reused = 0  # the only fields allowed to differ (and wall time)
        rep.requote_sec = 0.0
        orders = sorted((o.client_id, o.token_id, o.side.value, str(o.price), str(o.size), str(o.remaining),
                         o.status.value) for o in self.ex.open_orders())
        snap = self.qc.snapshot()
        return ID.sub("pp-", repr((rep, self.qc.wanted, orders, snap.markets, snap.totals, self.sink.rows)))


async def drive(steps: list[dict], left: Side, right: Side, books: list[Books],
                after: Callable[[], None] | None = None) -> None:
    """The same events into both sides (each on its own books); after every cycle both must agree."""
    now = T0
    for k, step in enumerate(steps):
        now += step["dt"]
        for i, op in step["books"]:
            for b in books:
                b.apply(i, op, now)
        left.change(step)
        right.change(step)
        a = await left.cycle(now, books[0], step["hold"])
        b = await right.cycle(now, books[1], step["hold"])
        assert a == b, f"cycle {k} differs after {step}"
        if after is not None:
            after()


def run_pair(steps: list[dict]) -> tuple[int, int]:
    ms = markets()
    full, inc = Side(False, ms), Side(True, ms)
    decided = reused = 0

    def count() -> None:
        nonlocal decided, reused
        decided += inc.decided
        reused += inc.reused

    asyncio.run(drive(steps, full, inc, [Books(ms), Books(ms)], count))
    return decided, reused


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=5, max_size=30))
def test_incremental_cycle_equals_full_cycle(steps):
    run_pair(steps)


def test_incremental_cycle_reuses_unchanged_markets_and_still_equals_full():
    """A quiet stretch (no book change, small time steps, default strategy) must actually be
    reused, and stay equal to the full cycle; a book move re-decides its market."""
    steps = [{"dt": 1.0, "books": [], "param": None, "strategy": None, "hold": None} for _ in range(12)]
    steps[6] = {**steps[6], "books": [(1, "up")]}
    decided, reused = run_pair(steps)
    assert reused > decided, (decided, reused)


def run_fast_against_general(steps: list[dict]) -> int:
    """Two incremental cycles, one with `_decide_spread` (the seed's strategy decided without its
    context), one without (every strategy through `_decide`: `decision_key`, `decide`, the guard
    of the context); returns how many decisions the fast path answered."""
    ms = markets()
    fast, general = Side(True, ms), Side(True, ms)
    general.qc._decide_spread = lambda *a: None  # type: ignore[method-assign]
    answered = 0
    real = fast.qc._decide_spread

    def counted(*a: object) -> object:
        nonlocal answered
        got = real(*a)  # type: ignore[arg-type]
        answered += got is not None
        return got

    fast.qc._decide_spread = counted  # type: ignore[method-assign]
    asyncio.run(drive(steps, fast, general, [Books(ms), Books(ms)]))
    return answered


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=5, max_size=30))
def test_the_seed_strategys_fast_decision_equals_the_general_one(steps):
    run_fast_against_general(steps)


def test_the_fast_decision_answers_and_reuses_in_a_quiet_stretch():
    steps = [{"dt": 1.0, "books": [(i % N_MARKETS, "top")] if i % 3 == 0 else [], "param": None, "strategy": None,
              "hold": None} for i in range(12)]
    steps[5] = {**steps[5], "param": ("max_inventory_shares", D("30"))}
    assert run_fast_against_general(steps) >= 12 * 3  # markets 0 and 2 end within the stop-before-end time
