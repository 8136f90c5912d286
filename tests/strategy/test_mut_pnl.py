"""`analytics.pnl` against a naive exact model (mutation-testing round).

The model keeps the cash as the plain sum of the fills' signed cash flows, the shares per token,
and the YES-equivalent position with its average entry in exact fractions; the ledger must agree
with it at every mark: total, realized, unrealized, spread, inventory, settlement, fees, rebates,
rewards. Plus hand-computed cases: a YES buy and a NO sell are the same exposure, a fill across
zero realizes only the closed part and opens the rest at the fill's price, settlement redeems at
1 / 0, and `PnlBook`'s rows, totals and memo.
"""

from __future__ import annotations

from dataclasses import astuple
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import make_market

from pmm_widgets.analytics.pnl import MarketLedger, PnlBook, PnlParts, yes_equivalent
from pmm_widgets.domain import Fill, FillType, Market, Mode, Side

D = Decimal
F = Fraction
MK = make_market(0)


def fill(token: str, side: Side, price: str | Decimal, size: str | Decimal, tid: str = "t") -> Fill:
    return Fill(tid, "o", MK.condition_id, token, side, D(price), D(size), FillType.FILLED, Mode.PAPER, 0.0)


class Model:
    """The ledger done the naive way, in exact fractions."""

    def __init__(self) -> None:
        self.cash = self.yes = self.no = self.net = self.avg = self.closed = self.spread = F(0)
        self.fees = self.rebates = self.rewards = self.settlement = F(0)
        self.volume = F(0)
        self.fills = 0
        self.last_mid: F | None = None
        self.settled = False
        self.rounded = False  # settled while never marked: at the average entry, a Decimal division

    def apply(self, token: str, side: Side, px: F, sz: F, mid: F | None) -> None:
        self.fills += 1
        self.volume += px * sz
        flow = -px * sz if side is Side.BUY else px * sz  # cash paid out (buy) or received (sell)
        self.cash += flow
        if token == MK.yes_token_id:
            self.yes += sz if side is Side.BUY else -sz
            d, x = (sz if side is Side.BUY else -sz), px
        else:
            self.no += sz if side is Side.BUY else -sz
            d, x = (-sz if side is Side.BUY else sz), 1 - px
        ref = mid if mid is not None else (self.last_mid if self.last_mid is not None else x)
        self.spread += d * (ref - x)
        n = self.net
        if n == 0 or (n > 0) == (d > 0):  # opening / adding: the average entry moves
            self.avg = (n * self.avg + d * x) / (n + d)
            self.net = n + d
            return
        k = min(abs(d), abs(n))  # the closed part realizes against the average entry
        self.closed += k * (x - self.avg) * (1 if n > 0 else -1)
        self.net = n + d
        if self.net == 0:
            self.avg = F(0)
        elif (self.net > 0) != (n > 0):  # flipped: the rest is opened at the fill's price
            self.avg = x

    def mark(self, mid: F | None) -> F:
        if mid is not None and not self.settled:
            self.last_mid = mid
        if self.last_mid is not None:
            return self.last_mid
        return self.avg if self.net != 0 else F(1, 2)

    def settle(self, winner_yes: bool, mid: F | None) -> tuple[F, F]:
        self.rounded |= mid is None and self.last_mid is None and self.net != 0
        m = self.mark(mid)
        payout = self.yes if winner_yes else self.no
        pnl = payout - (self.yes * m + self.no * (1 - m))
        self.cash += payout
        self.settlement += pnl
        self.yes = self.no = self.net = self.avg = F(0)
        self.last_mid = F(1) if winner_yes else F(0)
        self.settled = True
        return payout, pnl


TOL = F(1, 10**18)  # the ledger's average entry is a Decimal division (28 digits)


def check(lg: MarketLedger, md: Model, p: PnlParts, m: F) -> None:
    assert (F(lg.cash), F(lg.yes), F(lg.no), F(lg.net)) == (md.cash, md.yes, md.no, md.net)
    assert (lg.fills, F(lg.volume), lg.settled) == (md.fills, md.volume, md.settled)
    assert abs(F(lg.avg) - md.avg) < TOL
    assert abs(F(lg.realized_closed) - md.closed) < TOL * 100
    trading = md.cash + md.yes * m + md.no * (1 - m)
    total = trading - md.fees + md.rebates + md.rewards
    # exact (cents at a cent mark) unless never marked: then the mark is the average entry, a Decimal division
    tol = F(0) if (md.last_mid is not None or md.net == 0) and not md.rounded else TOL * 100
    assert abs(F(p.total) - total) <= tol  # cash + positions at the mark, economics on top
    assert abs(F(p.unrealized) - md.net * (m - md.avg)) < TOL * 100
    assert p.realized == p.total - p.unrealized
    assert F(p.spread) == md.spread
    assert abs(F(p.inventory) - (trading - md.spread - md.settlement)) <= tol
    assert abs(F(p.settlement) - md.settlement) <= tol
    assert (F(p.fees), F(p.rebates), F(p.rewards)) == (md.fees, md.rebates, md.rewards)
    usd = md.net * m if md.net >= 0 else -md.net * (1 - m)
    assert abs(F(p.inventory_usd) - usd) < TOL * 100
    assert abs(F(p.total) - F(p.spread + p.inventory + p.settlement - p.fees + p.rebates + p.rewards)) <= tol
    if not md.settled:  # realized: the closed trades (a pair closes against its other leg) and the economics
        assert abs(F(p.realized) - (md.closed - md.fees + md.rebates + md.rewards)) < TOL * 100


cents = st.integers(1, 99).map(lambda c: F(c, 100))
maybe_mid = st.one_of(st.none(), cents)
ops = st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(["y0", "n0"]), st.sampled_from([Side.BUY, Side.SELL]), cents,
              st.one_of(st.integers(1, 40).map(F), st.integers(1, 400).map(lambda c: F(c, 100))), maybe_mid),
    st.tuples(st.just("parts"), maybe_mid),
    st.tuples(st.just("econ"), st.sampled_from(["fees", "rebates", "rewards"]), st.integers(0, 300)),
    st.tuples(st.just("settle"), st.booleans(), maybe_mid),
)


def dd(f: F) -> Decimal:
    return D(f.numerator) / D(f.denominator)  # (cents: exact)


def dec(f: F | None) -> Decimal | None:
    return None if f is None else dd(f)


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, min_size=1, max_size=25), maybe_mid)
def test_ledger_equals_the_naive_exact_model_at_every_mark(seq, last):
    lg, md = MarketLedger(), Model()
    for op in seq:
        if op[0] == "fill":
            _, tok, side, px, sz, mid = op
            lg.apply(fill(tok, side, dd(px), dd(sz)), MK, dec(mid))
            md.apply(tok, side, px, sz, mid)
        elif op[0] == "parts":
            p = lg.parts(dec(op[1]))
            check(lg, md, p, md.mark(op[1]))
        elif op[0] == "econ":
            amount = D(op[2]) / 100
            setattr(lg, op[1], getattr(lg, op[1]) + amount)
            setattr(md, op[1], getattr(md, op[1]) + F(op[2], 100))
        elif not md.settled:
            payout, pnl = lg.settle(op[1], dec(op[2]))
            want_payout, want_pnl = md.settle(op[1], op[2])
            assert F(payout) == want_payout
            assert abs(F(pnl) - want_pnl) <= (TOL * 100 if md.rounded else 0)
            assert (lg.yes, lg.no, lg.net, lg.avg) == (0, 0, 0, 0)
    p = lg.parts(dec(last))
    check(lg, md, p, md.mark(last))
    assert lg.last_mid == dec(md.last_mid)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), cents, st.integers(1, 40), maybe_mid),
                min_size=1, max_size=12), cents)
def test_a_yes_buy_and_a_no_sell_at_one_minus_the_price_are_the_same_exposure(trades, mark):
    """Each YES trade at p on one ledger, the opposite NO trade at 1 − p on the other: same net,
    entry, spread and every part at any mark (only the tokens held differ)."""
    a, b = MarketLedger(), MarketLedger()
    other = {Side.BUY: Side.SELL, Side.SELL: Side.BUY}
    for side, px, sz, mid in trades:
        a.apply(fill("y0", side, dd(px), D(sz)), MK, dec(mid))
        b.apply(fill("n0", other[side], dd(1 - px), D(sz)), MK, dec(mid))
        assert yes_equivalent(fill("y0", side, dd(px), D(sz)), MK) == \
            yes_equivalent(fill("n0", other[side], dd(1 - px), D(sz)), MK)
    assert (a.net, a.avg, a.spread, a.realized_closed) == (b.net, b.avg, b.spread, b.realized_closed)
    assert a.yes == -b.no and a.no == b.yes == 0
    assert astuple(a.parts(dec(mark))) == astuple(b.parts(dec(mark)))


def test_yes_equivalent_of_each_side_and_token():
    assert yes_equivalent(fill("y0", Side.BUY, "0.40", "3"), MK) == (D(3), D("0.40"))
    assert yes_equivalent(fill("y0", Side.SELL, "0.40", "3"), MK) == (D(-3), D("0.40"))
    assert yes_equivalent(fill("n0", Side.BUY, "0.45", "3"), MK) == (D(-3), D("0.55"))
    assert yes_equivalent(fill("n0", Side.SELL, "0.45", "3"), MK) == (D(3), D("0.55"))


def test_a_fill_across_zero_realizes_the_closed_part_and_opens_the_rest_at_its_price():
    lg = MarketLedger()
    lg.apply(fill("y0", Side.BUY, "0.40", "10"), MK, D("0.40"))
    lg.apply(fill("y0", Side.SELL, "0.50", "15"), MK, D("0.50"))  # closes 10 (+0.10 each), opens 5 short at 0.50
    assert (lg.net, lg.avg, lg.realized_closed) == (D(-5), D("0.50"), D("1.00"))
    p = lg.parts(D("0.60"))
    assert p.unrealized == D("-0.50") and p.realized == D("1.00") and p.total == D("0.50")
    assert lg.cash == D("3.50") and lg.yes == D(-5)
    # and back through zero from short to long with NO: buying NO closes... no: buying NO adds to the short
    lg.apply(fill("n0", Side.BUY, "0.30", "5"), MK, D("0.60"))  # YES-equivalent: sell 5 at 0.70, short 10 @ 0.60
    assert (lg.net, lg.avg, lg.realized_closed) == (D(-10), D("0.60"), D("1.00"))
    lg.apply(fill("n0", Side.SELL, "0.45", "12"), MK, None)  # buy 12 YES-eq at 0.55: closes 10 (+0.05), long 2 @ 0.55
    assert (lg.net, lg.avg, lg.realized_closed) == (D(2), D("0.55"), D("1.50"))
    lg.apply(fill("y0", Side.SELL, "0.70", "2"), MK, None)  # flat: the average entry is reset
    assert (lg.net, lg.avg, lg.realized_closed) == (0, 0, D("1.80"))


def test_a_short_closed_partly_keeps_its_entry_and_realizes_with_the_short_sign():
    lg = MarketLedger()
    lg.apply(fill("y0", Side.SELL, "0.60", "10"), MK, None)
    lg.apply(fill("y0", Side.BUY, "0.50", "4"), MK, None)  # short gains 0.10 on each of 4
    assert (lg.net, lg.avg, lg.realized_closed) == (D(-6), D("0.60"), D("0.40"))
    lg.apply(fill("y0", Side.SELL, "0.70", "6"), MK, None)  # adds: average of 6 @ 0.60 and 6 @ 0.70
    assert (lg.net, lg.avg) == (D(-12), D("0.65"))


def test_the_spread_marks_at_the_fills_mid_then_the_last_mark_then_the_price():
    lg = MarketLedger()
    lg.apply(fill("y0", Side.BUY, "0.40", "10"), MK, None)  # never marked: no edge counted
    assert lg.spread == 0
    lg.parts(D("0.45"))
    lg.apply(fill("y0", Side.BUY, "0.40", "10"), MK, None)  # the last mark: 10 × 0.05
    assert lg.spread == D("0.50")
    lg.apply(fill("n0", Side.BUY, "0.50", "10"), MK, D("0.52"))  # YES-eq sell 10 at 0.50 vs mid 0.52: −0.20
    assert lg.spread == D("0.30")
    assert lg.fills == 3 and lg.volume == D("13.00")


def test_never_marked_values_the_position_at_entry_and_a_flat_one_at_one_half():
    lg = MarketLedger()
    p = lg.parts(None)
    assert astuple(p) == (0,) * 10 and lg.last_mid is None
    lg.apply(fill("n0", Side.BUY, "0.30", "10"), MK, None)  # short 10 YES-eq at 0.70
    p = lg.parts(None)
    assert (p.total, p.unrealized, p.inventory_usd) == (0, 0, D("3.00"))
    lg.apply(fill("y0", Side.BUY, "0.60", "10"), MK, None)  # 10 pairs at 0.90: flat, 0.10 each locked in
    p = lg.parts(None)
    assert (lg.net, p.total, p.realized, p.unrealized) == (0, D("1.00"), D("1.00"), 0)


def test_settlement_redeems_at_one_or_zero_and_freezes_the_mark():
    lg = MarketLedger()
    lg.apply(fill("y0", Side.BUY, "0.40", "10"), MK, D("0.40"))
    lg.apply(fill("n0", Side.BUY, "0.50", "4"), MK, D("0.40"))
    lg.parts(D("0.45"))
    payout, pnl = lg.settle(True)  # YES wins: 10 × 1; marked at 0.45: 10 × 0.45 + 4 × 0.55 = 6.70
    assert (payout, pnl) == (D(10), D("3.30"))
    assert (lg.cash, lg.yes, lg.no, lg.net, lg.avg, lg.last_mid, lg.settled) == (D("4.00"), 0, 0, 0, 0, 1, True)
    p = lg.parts(D("0.10"))  # a settled market is not marked again
    assert lg.last_mid == 1 and p.total == D("4.00") and p.settlement == D("3.30")
    assert p.inventory == p.total - p.spread - p.settlement
    again = lg.settle(False, D("0.20"))  # nothing left to redeem; the mark stays
    assert again == (0, 0) and lg.last_mid == 0 and lg.settlement == D("3.30")

    no_wins = MarketLedger()
    no_wins.apply(fill("n0", Side.BUY, "0.30", "10"), MK, None)
    assert no_wins.settle(False, D("0.65")) == (D(10), D("10") - D("3.50"))
    assert no_wins.last_mid == 0

    unmarked = MarketLedger()
    unmarked.apply(fill("y0", Side.BUY, "0.40", "10"), MK, None)
    assert unmarked.settle(False) == (0, D("-4.00"))  # valued at its entry until then
    flat = MarketLedger()
    assert flat.settle(True) == (0, 0) and flat.last_mid == 1
    one = MarketLedger()
    one.apply(fill("y0", Side.BUY, "0.40", "1"), MK, None)  # one share never marked: at its entry, not at ½
    assert one.parts(None).total == 0
    assert one.settle(True) == (1, D("0.60"))


def two_markets() -> tuple[PnlBook, Market, Market]:
    a, b = make_market(0), make_market(1)
    book = PnlBook()
    book.apply(Fill("t1", "o", a.condition_id, "y0", Side.BUY, D("0.40"), D(10), FillType.FILLED, Mode.PAPER, 0.0),
               a, D("0.42"))
    book.apply(Fill("t2", "o", b.condition_id, "n1", Side.BUY, D("0.30"), D(7), FillType.FILLED, Mode.PAPER, 0.0),
               b, D("0.65"))
    book.apply(Fill("t3", "o", b.condition_id, "y1", Side.SELL, D("0.68"), D(3), FillType.FILLED, Mode.PAPER, 0.0),
               b, D("0.65"))
    lb = book.ledger(b.condition_id)
    lb.fees, lb.rebates, lb.rewards = D("0.03"), D("0.01"), D("0.20")
    book.ledger(a.condition_id).rewards = D("0.05")
    return book, a, b


def test_rows_and_totals_are_the_per_market_parts_and_their_sums():
    book, a, b = two_markets()
    mids = {a.condition_id: D("0.45"), b.condition_id: D("0.66")}
    parts = book.parts(mids)
    fresh = {cid: MarketLedger(**{f: getattr(lg, f) for f in lg.__slots__}).parts(mids[cid])
             for cid, lg in book.ledgers.items()}
    assert parts == fresh
    rows = book.rows(7.0, "paper", mids)
    assert [r["market"] for r in rows] == [a.condition_id, b.condition_id, "TOTAL"]
    names = {"realized": "realized", "unrealized": "unrealized", "total": "total", "spread_pnl": "spread",
             "inventory_pnl": "inventory", "inventory_usd": "inventory_usd", "fees": "fees", "rebates": "rebates",
             "rewards": "rewards", "settlement": "settlement"}
    for r, (cid, lg) in zip(rows, book.ledgers.items(), strict=False):
        assert (r["ts"], r["mode"]) == (7.0, "paper")
        assert {k: r[k] for k in names} == {k: getattr(parts[cid], v) for k, v in names.items()}
        assert (r["inventory_yes"], r["inventory_no"], r["cash"], r["fills"], r["volume"]) == \
            (lg.yes, lg.no, lg.cash, lg.fills, lg.volume)
    tot = rows[-1]
    assert (tot["ts"], tot["mode"]) == (7.0, "paper")
    for k in [*names, "inventory_yes", "inventory_no", "cash", "fills", "volume"]:
        assert tot[k] == rows[0][k] + rows[1][k], k
    assert (tot["fills"], tot["inventory_yes"], tot["inventory_no"]) == (3, D(7), D(7))
    t = book.totals(mids)
    assert {k: getattr(t, v) for k, v in names.items()} == {k: tot[k] for k in names}
    assert astuple(book.totals(mids, parts)) == astuple(t)
    # distinct values per part, so a swapped sum shows
    assert len({t.total, t.realized, t.unrealized, t.spread, t.inventory, t.inventory_usd, t.fees, t.rebates,
                t.rewards}) == 9


def test_the_memo_answers_only_for_the_very_same_ledger_and_inputs_and_still_marks():
    book, a, b = two_markets()
    m1 = D("0.45")
    first = book.parts({a.condition_id: m1})
    assert book.ledger(a.condition_id).last_mid is m1 and book.ledger(b.condition_id).last_mid is None
    again = book.parts({a.condition_id: m1})
    assert again[a.condition_id] is first[a.condition_id]  # a hit: the same parts object
    lg = book.ledger(a.condition_id)
    lg.last_mid = D("0.9")  # the mark moved elsewhere: a hit must still mark at the mid given
    hit = book.parts({a.condition_id: m1})
    assert hit[a.condition_id] is first[a.condition_id] and lg.last_mid is m1
    m2 = D("0.450")  # equal, another object and exponent: computed afresh
    other = book.parts({a.condition_id: m2})
    assert other[a.condition_id] is not first[a.condition_id] and lg.last_mid is m2
    assert str(other[a.condition_id].unrealized) == str(lg.parts(m2).unrealized)
    lg.rewards += D("0.01")  # any input changed: afresh
    assert book.parts({a.condition_id: m2})[a.condition_id].rewards == D("0.06")
    book.ledgers[a.condition_id] = MarketLedger()  # another ledger under the same market: afresh
    assert book.parts({a.condition_id: m2})[a.condition_id].total == 0
    # settled: the given mid is not the mark; the memo keys on the frozen mark
    lb = book.ledger(b.condition_id)
    lb.settle(True, D("0.66"))
    s1 = book.parts({b.condition_id: D("0.10")})[b.condition_id]
    assert lb.last_mid == 1 and s1 is book.parts({b.condition_id: D("0.20")})[b.condition_id]
    assert lb.last_mid == 1


def test_totals_and_rows_sum_the_parts_they_are_given():
    """The cycle hands its parts over (computed once per cycle): they are summed as given, the
    book's ledgers are not marked again."""
    book, a, b = two_markets()
    then = {a.condition_id: D("0.30"), b.condition_id: D("0.80")}
    given_parts = book.parts(then)
    now = {a.condition_id: D("0.45"), b.condition_id: D("0.66")}
    t = book.totals(now, given_parts)
    assert t.total == sum(p.total for p in given_parts.values()) != book.totals(now).total
    rows = book.rows(1.0, "paper", now, given_parts)
    assert [r["total"] for r in rows[:2]] == [p.total for p in given_parts.values()]
    assert rows[2]["unrealized"] == sum(p.unrealized for p in given_parts.values())
