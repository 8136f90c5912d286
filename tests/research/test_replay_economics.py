"""A replay pays and charges as the engine does: markets the venue resolves inside the window
are settled (a replay ignored `market_resolved`: no payout, the shares marked at their last mid),
and its reward estimates and settlements are its own rows (`run_id`, mode 'replay'): they were
written as paper rows, counted in the paper report and again at every re-run."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from pmm_widgets.analytics.report import economics
from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import replay
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
SECONDS = 1200
RESOLVE = [(540.0, 0, True), (780.0, 1, False)]  # market 0 resolves YES at +9 min, market 1 NO at +13 min


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    root = tmp_path_factory.mktemp("recres")
    universe = synth_recording(root, T0, SECONDS, markets=4, seed=7, resolve=RESOLVE)
    return root, universe


def _settings(root, **kw):
    return load_settings(record_dir=str(root), **kw)


def test_markets_resolved_in_the_window_are_settled_and_never_quoted_again(rec, tmp_path):
    root, universe = rec
    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = replay(_settings(root), T0, T0 + SECONDS, db_url=url)
    s = res.summary
    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT market, mode, run_id, winning_outcome, yes_shares, no_shares, payout, pnl "
                                 "FROM settlements ORDER BY ts")).all()
        res_ts = {r.market: r.ts for r in c.execute(sa.text("SELECT market, ts FROM settlements"))}
    assert [(r.market, r.mode, r.run_id, r.winning_outcome) for r in rows] == [
        (universe[0].condition_id, "replay", res.run_id, "YES"), (universe[1].condition_id, "replay", res.run_id, "NO")]
    for r in rows:  # the shares of the loser pay 0, the winner's 1 each
        won = Decimal(str(r.yes_shares if r.winning_outcome == "YES" else r.no_shares))
        assert Decimal(str(r.payout)) == won
    total = sum(Decimal(str(r.pnl)) for r in rows)
    assert total != 0 and abs(Decimal(str(s["settlement"])) - total) < Decimal("0.000001")
    econ = economics(eng, "replay", res.run_id)["totals"]  # `pmm report --mode replay` says the same
    assert abs(econ["settlement"] - total) < Decimal("0.000001")
    assert abs(float(econ["total"]) - s["pnl_total"]) < 1e-6
    for m in universe[:2]:  # no order placed in a market after the cycle that settled it
        late = [o for o in res.orders if o["market"] == m.condition_id and o["created_ts"] > res_ts[m.condition_id]]
        assert not late
        assert not [o for o in res.orders if o["market"] == m.condition_id and o["status"] in ("LIVE", "PARTIAL")]
    again = replay(_settings(root), T0, T0 + SECONDS, db_url=url)  # a re-run replaces its rows
    assert again.summary["settlement"] == s["settlement"]
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM settlements")).scalar() == 2


def test_a_replays_reward_estimates_are_its_own_rows(rec, tmp_path):
    root, _ = rec
    url = f"sqlite:///{tmp_path / 'rw.db'}"
    kw = {"db_url": url, "params": {"strategy": "rewards"}}
    res = replay(_settings(root), T0, T0 + 600, **kw)
    assert res.summary["rewards"] > 0
    assert res.summary["rewards_per_hour_avg"] == res.summary["rewards"] / (res.summary["sim_seconds"] / 3600)
    eng = sa.create_engine(url)
    q = "SELECT mode, run_id, COUNT(*) AS n, SUM(usd) AS usd FROM reward_estimates GROUP BY mode, run_id"
    with eng.connect() as c:
        first = [tuple(r) for r in c.execute(sa.text(q))]
    assert [(m, r) for m, r, _, _ in first] == [("replay", res.run_id)]
    assert abs(first[0][3] - res.summary["rewards"]) < 1e-6
    assert economics(eng, "paper")["totals"]["rewards"] == 0  # nothing reaches the paper report
    assert abs(float(economics(eng, "replay", res.run_id)["totals"]["rewards"]) - res.summary["rewards"]) < 1e-6
    replay(_settings(root), T0, T0 + 600, **kw)  # the same run again: its rows replaced, not added
    with eng.connect() as c:
        assert [tuple(r) for r in c.execute(sa.text(q))] == first


def test_spread_pnl_equals_the_realized_spread_when_a_book_side_is_empty(tmp_path):
    """A fill while a book had an empty side (no mid) was marked by the PnL at the market's last
    YES mid and by the markouts at the token's own last mid: the same quantity read 9.65885 and
    9.89135 on this recording. Both now take the market's last mark."""
    root = tmp_path / "rec4"
    synth_recording(root, T0, SECONDS, markets=4, seed=7, checkpoint_sec=300)
    res = replay(_settings(root), T0, T0 + SECONDS, write_db=False, params={"alpha": 1.0})
    s = res.summary
    assert s["fills"] > 20 and abs(s["spread_pnl"] - s["realized_spread_usd"]) < 1e-9, (s["spread_pnl"],
                                                                                      s["realized_spread_usd"])
