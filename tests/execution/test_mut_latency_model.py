"""The paper exchange's latency models, pinned where a mutation pass found them unchecked:
delays are never negative and are half a round trip, the same seed gives the same draws, the
bounds of what is accepted (0 ms is a valid latency, a negative or non-finite one is not), the
feed delay, the samples file (comments, CSV, line numbers in errors) and what is written back."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.execution.latency_model import (
    DEFAULT_LATENCY_MS,
    ZERO_LATENCY,
    ConstantLatency,
    LatencyModel,
    SampledLatency,
    latency_from_settings,
    save_round_trips,
    write_samples,
)

samples = st.lists(st.floats(0.0, 60_000.0, allow_nan=False), min_size=1, max_size=30)
calls = st.lists(st.sampled_from(["entry", "cancel", "response", "feed"]), max_size=40)


def draws(model: LatencyModel, names: list[str]) -> list[float]:
    return [getattr(model, n)() for n in names]


# ---------------------------------------------------------------- ConstantLatency
@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 60_000.0), st.one_of(st.none(), st.floats(0.0, 60_000.0)), calls)
def test_constant_latency_is_half_the_round_trip_each_way_and_never_negative(rtt, feed, names):
    lat = ConstantLatency(rtt, feed_ms=feed)
    assert lat.entry() == lat.cancel() == lat.response() == rtt / 2000.0 >= 0
    assert lat.feed() == (rtt / 2000.0 if feed is None else feed / 1000.0) >= 0
    assert all(x >= 0 for x in draws(lat, names))
    assert lat.rtt_ms == rtt and repr(lat) == f"ConstantLatency({rtt:g} ms)"


def test_constant_latency_defaults_and_zero():
    assert DEFAULT_LATENCY_MS == 150.0
    lat = ConstantLatency()
    assert (lat.entry(), lat.cancel(), lat.response(), lat.feed()) == (0.075,) * 4
    assert repr(lat) == "ConstantLatency(150 ms)"
    assert (ZERO_LATENCY.entry(), ZERO_LATENCY.cancel(), ZERO_LATENCY.response(), ZERO_LATENCY.feed()) == (0.0,) * 4
    assert ConstantLatency(0.0, feed_ms=0.0).feed() == 0.0  # an instant feed is valid
    assert ConstantLatency(100.0, feed_ms=0.5).feed() == 0.0005  # so is a sub-millisecond one
    assert ConstantLatency(0.5).entry() == 0.00025


@pytest.mark.parametrize(("rtt", "feed"), [(-1.0, None), (math.nan, None), (-1e-9, None), (10.0, -1.0),
                                           (10.0, math.nan), (10.0, -1e-9)])
def test_constant_latency_rejects_negative_or_nan(rtt, feed):
    with pytest.raises(ValueError, match="latency must be >= 0 ms"):
        ConstantLatency(rtt, feed_ms=feed)


# ---------------------------------------------------------------- SampledLatency
@settings(max_examples=100, deadline=None)
@given(samples, st.integers(0, 2**32), calls)
def test_sampled_delays_are_half_a_measured_round_trip_and_replay_by_seed(ms, seed, names):
    a, b = SampledLatency(ms, seed=seed), SampledLatency(ms, seed=seed)
    got = draws(a, names)
    assert got == draws(b, names)  # the same seed and the same calls: the same delays
    halves = {x / 2000.0 for x in ms}
    for name, x in zip(names, got):
        assert x >= 0
        if name == "feed":
            assert x == statistics.median(ms) / 2000.0  # constant: the feed never reorders events
        else:
            assert x in halves


def test_every_draw_kind_comes_from_the_one_seeded_generator():
    ms = [float(x) for x in range(1, 101)]
    per_kind = {}
    for kind in ("entry", "cancel", "response"):
        lat = SampledLatency(ms, seed=3)
        per_kind[kind] = [getattr(lat, kind)() for _ in range(20)]
    assert per_kind["entry"] == per_kind["cancel"] == per_kind["response"]  # one stream, whichever delay
    assert len(set(per_kind["entry"])) > 5  # drawn, not one value


def test_the_default_seed_is_zero_over_many_draws():
    ms = [float(x) for x in range(1, 1001)]
    a, b, c = SampledLatency(ms), SampledLatency(ms, seed=0), SampledLatency(ms, seed=1)
    da, db, dc = draws(a, ["entry"] * 10), draws(b, ["entry"] * 10), draws(c, ["entry"] * 10)
    assert da == db and da != dc


def test_sampled_bounds_and_feed():
    assert SampledLatency([0.0]).entry() == 0.0  # a zero round trip is a valid sample
    assert SampledLatency([0.5]).cancel() == 0.00025
    assert SampledLatency([10.0, 20.0, 90.0]).feed() == 0.01  # half the median
    assert SampledLatency([10.0], feed_ms=4.0).feed() == 0.004
    assert SampledLatency([10.0], feed_ms=0.0).feed() == 0.0
    with pytest.raises(ValueError, match="no latency samples"):
        SampledLatency([])
    for bad in ([-1.0], [10.0, -1e-9], [math.nan], [10.0, math.inf], [-math.inf]):
        with pytest.raises(ValueError, match="finite and >= 0 ms"):
            SampledLatency(bad)


# ---------------------------------------------------------------- the samples file
def test_from_file_reads_comments_blank_lines_and_csv(tmp_path):
    p = tmp_path / "rtt.txt"
    p.write_text("# header\n\n100\n  250.5  # trailing # comment\n1700000000.25,120\n#\n")
    lat = SampledLatency.from_file(p)
    assert list(lat.samples_ms) == [100.0, 250.5, 120.0]
    assert draws(lat, ["entry"] * 5) == draws(SampledLatency([100.0, 250.5, 120.0], seed=0), ["entry"] * 5)
    lat7 = SampledLatency.from_file(p, seed=7)
    assert draws(lat7, ["entry"] * 5) == draws(SampledLatency([100.0, 250.5, 120.0], seed=7), ["entry"] * 5)


def test_from_file_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("# c\n100\nfast\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: not a latency in ms: 'fast'"):
        SampledLatency.from_file(p)
    p.write_text("oops\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: not a latency in ms: 'oops'"):
        SampledLatency.from_file(p)
    with pytest.raises(ValueError, match="cannot read latency samples"):
        SampledLatency.from_file(tmp_path / "missing.txt")


@settings(max_examples=50, deadline=None)
@given(samples)
def test_written_samples_read_back_to_the_millisecond(tmp_path_factory, ms):
    p = write_samples(tmp_path_factory.mktemp("w") / "a" / "b" / "rtt.txt", ms)  # missing parents are made
    assert list(SampledLatency.from_file(p).samples_ms) == [float(f"{x:.3f}") for x in ms]


def test_write_samples_header_only_with_a_note(tmp_path):
    p = write_samples(tmp_path / "x" / "y" / "plain.txt", [1.0, 2.5])
    assert p.read_text() == "1.000\n2.500\n"
    p = write_samples(tmp_path / "x" / "y" / "noted.txt", [1.0], note="from a test")
    assert p.read_text() == "# from a test\n1.000\n"


def test_save_round_trips_header_with_and_without_a_note(tmp_path):
    class Live:
        order_rtt_ms = [12.5, 30.0, 18.0, 40.0]

    path, n, med = save_round_trips(Live(), tmp_path / "deep" / "rtt.txt")
    assert (n, med) == (4, 24.0)
    assert path.read_text().splitlines()[0] == "# order round trips (ms) of a live run, 4 samples, median 24.0 ms"
    path, _, _ = save_round_trips(Live(), tmp_path / "noted.txt", note="venue sandbox")
    assert path.read_text().splitlines()[0] == \
        "# order round trips (ms) of a live run, 4 samples, median 24.0 ms; venue sandbox"


def test_save_round_trips_writes_nothing_without_samples_or_path(tmp_path):
    class Paper:  # no order_rtt_ms
        pass

    class Idle:
        order_rtt_ms: list[float] = []

    class Live:
        order_rtt_ms = [5.0]

    assert save_round_trips(Paper(), tmp_path / "a.txt") is None
    assert save_round_trips(Idle(), tmp_path / "b.txt") is None
    assert save_round_trips(Live(), "") is None
    assert list(tmp_path.iterdir()) == []
    assert save_round_trips(Live(), tmp_path / "c.txt") == (tmp_path / "c.txt", 1, 5.0)


def test_latency_from_settings_file_or_constant(tmp_path):
    from types import SimpleNamespace

    from pmm_widgets.config import ConfigError
    from pmm_widgets.errors import PmmError

    lat = latency_from_settings(SimpleNamespace(paper_latency_file="", paper_latency_ms=80.0, sandbox_seed=5))
    assert isinstance(lat, ConstantLatency) and lat.entry() == 0.04
    assert latency_from_settings(SimpleNamespace(paper_latency_ms=10.0)).entry() == 0.005  # no file setting
    p = write_samples(tmp_path / "rtt.txt", [float(x) for x in range(1, 200)])
    lat = latency_from_settings(SimpleNamespace(paper_latency_file=str(p), paper_latency_ms=80.0, sandbox_seed=5))
    assert isinstance(lat, SampledLatency)
    assert draws(lat, ["entry"] * 8) == draws(SampledLatency(range(1, 200), seed=5), ["entry"] * 8)  # the seed
    for path, why in ((tmp_path / "missing.txt", "cannot read latency samples"),
                      (write_samples(tmp_path / "empty.txt", [], note="nothing"), "no latency samples")):
        with pytest.raises(ConfigError, match=f"^PMM_PAPER_LATENCY_FILE={path}: .*{why}") as err:
            latency_from_settings(SimpleNamespace(paper_latency_file=str(path), paper_latency_ms=1.0, sandbox_seed=0))
        assert isinstance(err.value, PmmError)
