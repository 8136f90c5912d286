"""`pmm fidelity`: fit on one recorded ground-truth seed, check on another, write the parameter
set; clear one-line errors. The live runs themselves are exercised by `bench/bench_fidelity.py
--quick`; here the recordings are built by hand and loaded with `--load` (seconds, no sockets)."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal

import pytest

from pmm_widgets import cli
from pmm_widgets.analytics.fidelity import Recording
from pmm_widgets.config import load_settings
from pmm_widgets.domain import BookView, Fill, FillType, Level, Market, Mode, PublicTrade, Quote, Side
from pmm_widgets.errors import ExitCode

D = Decimal


def _recording(shift: float) -> Recording:
    """Our bid of 15 behind 10 shares. A taker sells 18: the 10 ahead, 5 of ours, 3 at the next
    level; another sells 20: our last 10, then 10 at the next level. Both swept through our price,
    so without us they would have traded there: a queue model sees that on the public tape."""
    m = Market(condition_id="0xc0", question="Q?", yes_token_id="y0", no_token_id="n0", tick_size=D("0.01"),
               min_order_size=D(5))
    rec = Recording([m], seconds=60.0, speed=1.0, rtt_ms=[20.0, 24.0])

    def bk(bid: str, size: int, t: float) -> BookView:
        return BookView("y0", "0xc0", (Level(D(bid), D(size)),), (Level(D("0.48"), D(100)),), D("0.01"), D(5), ts=t,
                        venue_ts_ms=int(t * 1000))

    t = shift
    rec.events += [
        ("book", t, bk("0.45", 10, t)),
        ("place", t + 1, [("L1", Quote("0xc0", "y0", Side.BUY, D("0.45"), D(15)))]),
        ("poll", t + 2),
        ("trade", t + 3, PublicTrade("y0", "0xc0", D("0.45"), D(15), Side.SELL, t + 3, recv_ts=t + 3)),
        ("trade", t + 3, PublicTrade("y0", "0xc0", D("0.44"), D(3), Side.SELL, t + 3, recv_ts=t + 3)),
        ("book", t + 3, bk("0.45", 10, t + 3)),
        ("trade", t + 4, PublicTrade("y0", "0xc0", D("0.45"), D(10), Side.SELL, t + 4, recv_ts=t + 4)),
        ("trade", t + 4, PublicTrade("y0", "0xc0", D("0.44"), D(10), Side.SELL, t + 4, recv_ts=t + 4)),
        ("poll", t + 4.5),
        ("book", t + 40, bk("0.46", 10, t + 40)),
        ("poll", t + 41),
    ]
    for dt, size, kind in ((3.0, "5", FillType.PARTIAL), (4.0, "10", FillType.FILLED)):
        rec.live_fills.append((t + dt, Fill(f"t{dt}", "L1", "0xc0", "y0", Side.BUY, D("0.45"), D(size), kind,
                                            Mode.LIVE, t + dt)))
    return rec


def _save(tmp_path, seeds=(7, 8)):
    d = tmp_path / "recs"
    d.mkdir()
    for i, s in enumerate(seeds):
        with open(d / f"rec-seed{s}.pkl", "wb") as fh:
            pickle.dump(_recording(1000.0 * (i + 1)), fh)
    return d


def test_fit_writes_a_parameter_set_the_settings_accept(env, tmp_path, capsys):
    d = _save(tmp_path)
    out = tmp_path / "fit.env"
    code = cli.main(["fidelity", "--fit", "--load", str(d), "--seed", "7", "--check-seeds", "8", "--out", str(out),
                     "--json"])
    o, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    res = json.loads(o)
    assert res["fit_seed"] == 7 and set(res["checks"]) == {"8"} and res["file"] == str(out)
    best = res["ranked"][0]
    assert best["model"] == res["best"] and best["fills"] == best["live_fills"] == 2  # the queue models reproduce it
    assert res["checks"]["8"][0]["fills_ratio"] == 1.0  # and on the check seed
    assert {"fills", "median_market", "size", "markout", "pnl"} <= set(best["loss_parts"])
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert lines[0].startswith("PMM_PAPER_FILL_MODEL=") and lines == res["env"]
    # the file applies as environment, and the --set form names the same values
    for ln in lines:
        k, v = ln.split("=", 1)
        env.setenv(k, v)
    s = load_settings()
    assert s.paper_fill_model == res["best"].split("(")[0]
    assert res["set"][0] == f"paper_fill_model={s.paper_fill_model}"
    # the ground truth's measured round trips ride along, and paper draws its delays from them
    from pmm_widgets.execution.latency_model import SampledLatency, latency_from_settings

    lat = latency_from_settings(s)
    assert isinstance(lat, SampledLatency) and sorted(lat.samples_ms) == [20.0, 24.0]

    code = cli.main(["fidelity", "--fit", "--load", str(d), "--seed", "7", "--check-seeds", "8", "--out", str(out)])
    o, _ = capsys.readouterr()
    assert code == ExitCode.OK and f"wrote {out}" in o and "--set paper_fill_model=" in o


def test_without_fit_it_scores_the_configured_model(env, tmp_path, capsys):
    d = _save(tmp_path, seeds=(7,))
    env.setenv("PMM_PAPER_FILL_MODEL", "queue")
    code = cli.main(["fidelity", "--load", str(d), "--seed", "7", "--json"])
    o, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    r = json.loads(o)
    assert r["model"].startswith("queue") and r["seeds"]["7"]["fills_ratio"] == 1.0


@pytest.mark.parametrize("argv,needle", [
    (["--seed", "7", "--check-seeds", "7"], "never checked on the seed they were fitted on"),
    (["--seed", "7", "--check-seeds", "8,x"], "comma-separated integers"),
    (["--markets", "0"], "--markets must be > 0"),
    (["--speed", "-1"], "--speed must be > 0"),
    (["--load", "/nonexistent-fid"], "no recording /nonexistent-fid/rec-seed7.pkl"),
])
def test_bad_input_is_one_line(env, capsys, argv, needle):
    code = cli.main(["fidelity", "--fit", *argv])
    o, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == ExitCode.ERROR and len(lines) == 1 and needle in lines[0], err
    assert lines[0].startswith("pmm fidelity: ") and "Traceback" not in o + err
