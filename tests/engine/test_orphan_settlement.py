"""Shares outside the universe that no settlement redeemed: a market that resolved while no engine
ran (its shares restored from the DB; Gamma lists open markets only), or one whose resolution named
a winner we did not know. Before, only a market leaving the universe was asked whether it closed,
once; these two kept their shares, marked at their last mid, for good."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from engine_helpers import count, until
from owner_fakes import FakeCycle, FakeRest, Target, instant_waits, make_market, owner_session, with_runtime

from pmm_widgets.config import Params
from pmm_widgets.domain import Fill, FillType, Market, Mode, Side
from pmm_widgets.engine import Engine
from pmm_widgets.engine.cycle import QuoteCycle
from pmm_widgets.events import EventBus
from pmm_widgets.execution.paper import PaperExchange
from pmm_widgets.sandbox.server import Sandbox, SandboxConfig
from pmm_widgets.store.sink import MemorySink
from pmm_widgets.venue.endpoints import Endpoints


def _held(qc: QuoteCycle, m: Market, yes: str, no: str) -> None:
    lg = qc.pnl.ledger(m.condition_id)
    for tok, sz in ((m.yes_token_id, yes), (m.no_token_id, no)):
        if D(sz):
            lg.apply(Fill(f"f-{tok}", "c", m.condition_id, tok, Side.BUY, D("0.40"), D(sz), FillType.FILLED,
                          Mode.PAPER, 1000.0), m, D("0.42"))


async def test_a_market_closed_with_an_unknown_winner_is_settled_when_its_winner_is_known() -> None:
    params, sink = Params(), MemorySink()
    m = Market("0xu", "U?", "yu", "nu", D("0.01"), D(5))
    ex = PaperExchange(params, sink, seed=1)
    qc = QuoteCycle(params, sink, Mode.PAPER)
    ex.set_markets([m])
    qc._known[m.condition_id] = m
    _held(qc, m, "30", "0")
    cancels: list[str] = []
    real = ex.cancel_market

    async def counting(cid: str) -> int:
        cancels.append(cid)
        return await real(cid)

    ex.cancel_market = counting  # type: ignore[method-assign]
    assert not await qc.resolve_market(1001.0, m.condition_id, "bogus", ex, "market_resolved")
    assert qc.resolved == {m.condition_id: ""} and "settlements" not in sink.rows  # stopped, nothing paid
    assert not await qc.resolve_market(1002.0, m.condition_id, None, ex, "closed")  # still no winner: no second cancel
    assert cancels == [m.condition_id]
    assert await qc.resolve_market(1003.0, m.condition_id, m.yes_token_id, ex, "closed")  # the venue knows it now
    lg = qc.pnl.ledger(m.condition_id)
    assert qc.resolved == {m.condition_id: m.yes_token_id} and lg.yes == 0 and lg.settled
    st = sink.rows["settlements"]
    assert len(st) == 1 and st[0]["payout"] == 30 and st[0]["source"] == "closed"
    assert not await qc.resolve_market(1004.0, m.condition_id, m.no_token_id, ex, "closed")  # settled once
    assert len(sink.rows["settlements"]) == 1 and cancels == [m.condition_id] * 2


async def test_a_market_the_cycle_never_saw_is_settled_with_the_market_it_is_given() -> None:
    params, sink = Params(), MemorySink()
    m = Market("0xo", "", "yo", "no", D("0.01"), D(0))
    ex = PaperExchange(params, sink, seed=1)
    qc = QuoteCycle(params, sink, Mode.PAPER)
    _held(qc, m, "0", "12")  # restored shares: the ledger knows them, the cycle never saw the market
    assert qc.known_market(m.condition_id) is None
    assert not await qc.resolve_market(1001.0, m.condition_id, m.no_token_id, ex, "closed")  # unknown: refused
    other = Market("0xother", "", "yo", "no", D("0.01"), D(0))
    assert not await qc.resolve_market(1001.0, m.condition_id, m.no_token_id, ex, "closed", known=other)
    assert await qc.resolve_market(1002.0, m.condition_id, m.no_token_id, ex, "closed", known=m)
    assert qc.known_market(m.condition_id) is m
    st = sink.rows["settlements"][0]
    assert st["market"] == "0xo" and st["winning_outcome"] == "NO" and st["payout"] == 12


# ---------------------------------------------------------------- the owner asks (fakes)
async def test_only_markets_outside_the_universe_with_unsettled_shares_are_asked(fast_settings, db) -> None:
    ledgers = {"0xin": SimpleNamespace(yes=5, no=0), "0xflat": SimpleNamespace(yes=0, no=0),
               "0xdone": SimpleNamespace(yes=5, no=0), "0xclosed": SimpleNamespace(yes=0, no=2),
               "0xknown": SimpleNamespace(yes=1, no=0), "0xdb": SimpleNamespace(yes=3, no=0)}
    cycle = FakeCycle(ledgers, {"0xdone"})
    cycle.resolved["0xclosed"] = ""  # closed, its winner unknown: asked again
    cycle.known["0xknown"] = make_market("0xknown")
    rest = FakeRest(SimpleNamespace(closed=True, winners=["w"]))
    owner = owner_session(fast_settings, db, Target())
    exchange = with_runtime(owner, cycle, rest, tokens={"0xdb": ("0xdb-y", "0xdb-n"), "0xclosed": ("c-y", "c-n")})
    owner.markets = [make_market("0xin")]
    await owner._settle_orphans()
    assert rest.asked == ["0xclosed", "0xknown", "0xdb"]
    assert cycle.calls == [(c, "w", exchange, "closed") for c in ("0xclosed", "0xknown", "0xdb")]
    # the market handed over: the cycle's own, else one built from the DB's token pair
    assert cycle.known_passed.condition_id == "0xdb" and cycle.known_passed.token_ids == ("0xdb-y", "0xdb-n")


async def test_one_that_fails_is_said_and_the_others_are_still_asked(fast_settings, db) -> None:
    bus = EventBus()
    seen: list[tuple[str, str, str | None]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.message, ev.market)))
    cycle = FakeCycle({"0xa": SimpleNamespace(yes=1, no=0), "0xb": SimpleNamespace(yes=1, no=0)}, set())
    owner = owner_session(fast_settings, db, Target(), events=bus)
    with_runtime(owner, cycle, FakeRest(SimpleNamespace(closed=True, winners=["w"])),
                 tokens={"0xa": ("a-y", "a-n"), "0xb": ("b-y", "b-n")})
    owner.markets = []
    real = owner._settle_if_closed

    async def first_fails(m) -> None:
        if m.condition_id == "0xa":
            raise RuntimeError("boom")
        await real(m)

    owner._settle_if_closed = first_fails  # type: ignore[method-assign]
    await owner._settle_orphans()
    assert [c[0] for c in cycle.calls] == ["0xb"]
    assert ("WARNING", "could not settle 0xa outside the universe: RuntimeError: boom", "0xa") in seen
    assert ("INFO", "closed market settled from the venue: 0xb", "0xb") in seen
    owner._ctl.stop.set()  # a stop ends the round
    cycle.calls.clear()
    await owner._settle_orphans()
    assert cycle.calls == []


async def test_the_universe_loop_asks_first_and_a_failure_there_does_not_stop_the_refresh(fast_settings, db,
                                                                                          monkeypatch) -> None:
    instant_waits(monkeypatch)
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(lambda ev: seen.append((ev.level, ev.message)))
    owner = owner_session(fast_settings.model_copy(update={"universe_refresh_sec": 30.0}), db, Target(), events=bus)
    order: list[str] = []

    async def refresh() -> None:
        order.append("refresh")
        owner._ctl.stop.set()

    async def orphans() -> None:
        order.append("orphans")
        raise RuntimeError("no runtime")

    owner.refresh_universe = refresh  # type: ignore[method-assign]
    owner._settle_orphans = orphans  # type: ignore[method-assign]
    owner.universe_ts = 0.0  # due
    await asyncio.wait_for(owner._universe_loop(), 5)
    assert order == ["orphans", "refresh"]
    assert seen == [("WARNING", "markets outside the universe not checked: RuntimeError: no runtime")]


# ---------------------------------------------------------------- on the sandbox: resolved while no engine ran
@pytest.mark.integration
async def test_a_market_resolved_while_no_engine_ran_is_settled_at_the_next_start(fast_settings, db) -> None:
    async with Sandbox(SandboxConfig(markets=20, seed=7, speed=15.0)) as sb:
        eps = Endpoints(sb.gamma_url, sb.clob_url, sb.ws_url, sb)
        engine = Engine(fast_settings, endpoints=eps)
        engine.start()
        assert await engine.wait_role() == "owner"
        cyc = engine.runtime.cycle
        held = lambda: [cid for cid, lg in cyc.pnl.ledgers.items() if lg.yes or lg.no]
        assert await until(lambda: bool(held()), timeout=30), "paper fills built inventory"
        cid = held()[0]
        shares = (cyc.pnl.ledgers[cid].yes, cyc.pnl.ledgers[cid].no)
        await engine.stop()
        assert sb.sim.resolve_market(cid, winner_yes=True) is not None  # while no engine runs
        assert count(db, "SELECT COUNT(*) FROM settlements WHERE market = :m", m=cid) == 0

        engine = Engine(fast_settings, endpoints=eps)
        engine.start()
        try:
            assert await engine.wait_role() == "owner"
            cyc = engine.runtime.cycle
            assert cid not in [m.condition_id for m in engine.owner.markets]  # Gamma lists open markets only
            assert await until(lambda: bool(cyc.resolved.get(cid)), timeout=15)
            lg = cyc.pnl.ledgers[cid]
            assert lg.yes == lg.no == 0 and lg.settled
        finally:
            await engine.stop()
    yes_token = sb.sim.by_condition[cid].yes_token_id
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT winner_token, source, yes_shares, no_shares, payout FROM settlements "
                                    "WHERE market = :m"), {"m": cid}).all()
    assert len(rows) == 1
    winner, source, yes, no, payout = rows[0]
    assert (winner, source) == (yes_token, "closed")
    assert (D(str(yes)), D(str(no)), D(str(payout))) == (shares[0], shares[1], shares[0])  # YES won: 1 a share


@pytest.mark.parametrize("settles", [True, False])
async def test_a_settlement_from_the_venues_answer_is_recorded_for_the_replay(fast_settings, db, settles) -> None:
    """The venue's `/markets` answer is no market data: the engine records what it settled from it
    (an engine `settled` row, which `test_replay_offline` replays); nothing when nothing settled."""
    rows: list[tuple[float, str, object]] = []
    cycle = FakeCycle({"0xm": SimpleNamespace(yes=2, no=0)}, set(), settles=settles)
    owner = owner_session(fast_settings, db, Target())
    with_runtime(owner, cycle, FakeRest(SimpleNamespace(closed=True, winners=["0xm-n"])))
    recorder = SimpleNamespace(engine=lambda ts, kind, pay=None: rows.append((ts, kind, pay)))
    owner._store = SimpleNamespace(recorder=recorder)  # type: ignore[assignment]  # (`_recorder` reads it)
    await owner._settle_if_closed(make_market("0xm"))
    assert [(k, p) for _, k, p in rows] == ([("settled", {"market": "0xm", "winner": "0xm-n", "yes_token_id": "0xm-y",
                                                           "no_token_id": "0xm-n"})] if settles else [])
