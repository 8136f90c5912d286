"""Several parameter sets in one replay pass (`Replayer(points=...)`): the books are rebuilt once
and every point trades them with its own exchange, cycle and sink. Each point's rows must be
byte for byte those of a replay of that point alone, whatever the other points do (one of them
is killed by its loss limit here); sweeps group points into such passes (`passes_of`)."""

from __future__ import annotations

import asyncio

import pytest

from pmm_widgets.config import load_settings
from pmm_widgets.research.recordings import load_window, parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.research.sweeps import TIMING_COLUMNS, passes_of, sweep
from pmm_widgets.research.synth import synth_recording

T0 = parse_time("2026-11-30T10:00:00Z")
MINUTES = 5
POINTS = [{}, {"alpha": 3.0}, {"paper_spread_k": 50.0, "max_daily_loss_usd": "0.01"}, {"alpha": 1.0}]


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("points")
    synth_recording(root, T0, MINUTES * 60, markets=4, seed=13)
    return root


def _settings(rec_dir):
    return load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20,
                         db_url="sqlite:///:memory:")


def _same(a, b) -> bool:
    sa = {k: v for k, v in a.summary.items() if k not in TIMING_COLUMNS}
    sb = {k: v for k, v in b.summary.items() if k not in TIMING_COLUMNS}
    return (a.run_id, a.orders, a.trades, a.cycles, a.problems, sa) == (b.run_id, b.orders, b.trades, b.cycles,
                                                                        b.problems, sb)


def test_a_pass_of_points_gives_each_point_its_own_replay(rec_dir, monkeypatch):
    from decimal import Decimal

    from pmm_widgets.strategy.risk import RiskManager

    real = RiskManager.check_losses

    def check_losses(self, now, market_pnl, total_pnl):  # the synthetic flow never loses: a kill on cue
        if self.params.max_daily_loss_usd == Decimal("0.01") and now >= T0 + 120:
            return True
        return real(self, now, market_pnl, total_pnl)

    monkeypatch.setattr(RiskManager, "check_losses", check_losses)
    s = _settings(rec_dir)
    w = load_window(rec_dir, T0, T0 + MINUTES * 60)
    alone = [asyncio.run(Replayer(s, T0, T0 + MINUTES * 60, window=w, params=p).run()) for p in POINTS]
    together = asyncio.run(Replayer(s, T0, T0 + MINUTES * 60, window=w, points=POINTS).run_all())
    assert len(together) == len(POINTS)
    for p, a, t in zip(POINTS, alone, together):
        assert _same(a, t), p
    fills = [r.summary["fills"] for r in alone]
    assert len(set(fills[:3])) == 3 and min(fills) > 5  # the points trade differently, and trade
    killed = [r.summary["killed"] for r in alone]
    assert killed == [False, False, True, False]  # one point stops (its loss limit) while the others go on
    assert together[2].summary["cycles"] < together[0].summary["cycles"]
    # the order of the points does not matter either
    rev = asyncio.run(Replayer(s, T0, T0 + MINUTES * 60, window=w, points=POINTS[::-1]).run_all())
    for a, t in zip(alone, rev[::-1]):
        assert _same(a, t)


def test_points_argument_checks(rec_dir):
    s = _settings(rec_dir)
    r = Replayer(s, T0, T0 + 60, points=[{}, {"alpha": 2.0}])
    with pytest.raises(ValueError, match="run_all"):
        asyncio.run(r.run())
    with pytest.raises(ValueError, match="points"):
        Replayer(s, T0, T0 + 60, points=[])
    from pmm_widgets.strategy.spread import SpreadStrategy

    with pytest.raises(ValueError, match="strategy object"):
        Replayer(s, T0, T0 + 60, points=[{}, {"alpha": 2.0}], strategy=SpreadStrategy())


def test_passes_of_groups_points_by_the_settings_they_change():
    pts = [{"alpha": a, "quote_refresh_sec": q} for q in (1, 2) for a in (1, 2, 3)]
    passes = passes_of(pts, {}, workers=2, per_pass=None)
    assert [[i for i, _ in p] for p in passes] == [[0, 1, 2], [3, 4, 5]]  # one pass per settings group
    one = passes_of([{"alpha": a} for a in range(5)], {}, workers=2, per_pass=None)
    assert [[i for i, _ in p] for p in one] == [[0, 1], [2, 3, 4]]  # one pass per worker
    assert [len(p) for p in passes_of([{"alpha": a} for a in range(5)], {}, workers=1, per_pass=2)] == [1, 2, 2]
    assert [len(p) for p in passes_of([{"alpha": a} for a in range(3)], {}, workers=8, per_pass=None)] == [1, 1, 1]
    big = passes_of([{"alpha": a} for a in range(20)], {}, workers=1, per_pass=None)  # memory: at most 8 per pass
    assert [len(p) for p in big] == [6, 7, 7] and sorted(i for p in big for i, _ in p) == list(range(20))


def test_sweep_rows_do_not_depend_on_how_points_share_passes(rec_dir, tmp_path):
    s = load_settings(record_dir=str(rec_dir), quote_refresh_sec=1.0, paper_fill_intensity=20,
                      db_url=f"sqlite:///{tmp_path / 's.db'}")
    grid = {"alpha": [1, 2], "quote_refresh_sec": [1, 2]}
    shared = sweep(T0, T0 + 120, grid, settings=s, n_jobs=1, write=False)
    apart = sweep(T0, T0 + 120, grid, settings=s, n_jobs=1, write=False, per_pass=1)
    assert shared.attrs["passes"] == [[0, 2], [1, 3]] and apart.attrs["passes"] == [[0], [2], [1], [3]]
    drop = [c for c in TIMING_COLUMNS if c in shared.columns]
    assert shared.drop(columns=drop).to_dict(orient="records") == apart.drop(columns=drop).to_dict(orient="records")
    assert shared["fills"].nunique() > 1
    with pytest.raises(ValueError, match="per_pass"):
        sweep(T0, T0 + 120, grid, settings=s, n_jobs=1, write=False, per_pass=0)
