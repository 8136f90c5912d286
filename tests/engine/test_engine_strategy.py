"""Per-market strategy selection on a running paper engine (embedded sandbox): from the owner, a
user's own strategy object, from an attached face through `commands`, persisted in
`market_overrides` and restored at the next start."""

from __future__ import annotations

import pytest
from engine_helpers import count, until
from pydantic import ValidationError

from pmm_widgets.engine import Engine
from pmm_widgets.store.repo import load_overrides
from pmm_widgets.strategy.base import Decision

pytestmark = pytest.mark.integration


class Joiner:
    """A user strategy: join the effective touch on both sides (one tick inside if room)."""

    name = "joiner"

    def __init__(self) -> None:
        self.calls = 0

    def decide(self, ctx, state):
        self.calls += 1
        inside = ctx.ask_ticks - ctx.bid_ticks > 2
        bid = (ctx.bid_ticks + inside) * ctx.tf
        ask = (ctx.ask_ticks - inside) * ctx.tf
        return Decision(ctx.quotes(bid, ask))


def row(engine: Engine, cid: str):
    return next(m for m in engine.state.markets if m.condition_id == cid)


async def test_set_strategy_on_a_running_engine_owner_face_and_restart(fast_settings, db):
    owner = Engine(fast_settings)
    owner.start()
    assert await owner.wait_role() == "owner"
    assert await until(lambda: owner.state.tick >= 2 and owner.state.markets)
    cids = [m.condition_id for m in owner.state.markets]
    assert {m.strategy for m in owner.state.markets} == {"spread"}

    with pytest.raises(ValidationError):
        owner.set_strategy(cids[0], "as", as_gamma=-1.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        owner.set_strategy(cids[0], "nope")
    owner.set_strategy(cids[0], "as", as_gamma=0.5)
    mine = Joiner()
    owner.set_strategy(cids[1], mine)
    assert await until(lambda: row(owner, cids[0]).strategy == "as" and row(owner, cids[1]).strategy == "joiner")
    assert await until(lambda: mine.calls > 3)
    assert await until(lambda: count(db, "SELECT COUNT(*) FROM market_overrides") == 1)  # the object is not persisted
    assert count(db, "SELECT COUNT(*) FROM events WHERE kind = 'strategy' AND market = :m", m=cids[0]) >= 1

    face = Engine(fast_settings)
    face.start()
    assert await face.wait_role() == "attached"
    with pytest.raises(ValueError, match="attached"):
        face.set_strategy(cids[2], Joiner())
    face.set_strategy(cids[2], "microprice", micro_levels=2)
    assert await until(lambda: row(owner, cids[2]).strategy == "microprice", timeout=10)
    assert owner.runtime.cycle._market_params(cids[2]).micro_levels == 2
    assert await until(lambda: row(face, cids[2]).strategy == "microprice", timeout=10)  # mirrored back
    await face.stop()
    await owner.stop()

    saved = load_overrides(db)
    assert saved == {cids[0]: ("as", {"as_gamma": 0.5}), cids[2]: ("microprice", {"micro_levels": 2})}

    again = Engine(fast_settings)
    again.start()
    assert await again.wait_role() == "owner"
    assert await until(lambda: again.state.tick >= 2 and again.state.markets)
    assert row(again, cids[0]).strategy == "as" and row(again, cids[2]).strategy == "microprice"
    assert row(again, cids[1]).strategy == "spread"
    assert again.runtime.cycle._market_params(cids[0]).as_gamma == 0.5
    again.set_strategy(cids[0], None)  # back to the default, row kept with NULL strategy
    assert await until(lambda: row(again, cids[0]).strategy == "spread")
    await again.stop()
    assert load_overrides(db)[cids[0]] == (None, {})
