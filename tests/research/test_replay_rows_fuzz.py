"""Issue 15: corrupt recordings never crash a replay. Every recorded row kind (connection events,
REST answers and checkpoints, universes, the engine's events and cycles) carries JSON of any shape
here (hypothesis): the replay ends `done` with a universe. (What a row it could not use becomes,
a problem naming its file or a bad message the stream counts, is checked case by case in
`test_replay_offline.py` and `test_mut_replayer2.py`.)"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_frames import book_frame

from pmm_widgets.config import PARAM_FIELDS, load_settings
from pmm_widgets.domain import Market
from pmm_widgets.research.recordings import parse_time
from pmm_widgets.research.replayer import Replayer
from pmm_widgets.store.recording import Recorder

T0 = parse_time("2026-11-30T10:00:00Z")
M = Market("0xc1", "Q?", "111", "222", Decimal("0.01"), Decimal("5"))

# JSON values of any shape, with the keys the real records use, so that some come close
_KEYS = st.sampled_from(["hold", "market", "strategy", "params", "w0", "v0", "speed", "asset_id", "bids", "asks",
                         "condition_id", "yes_token_id", "tick_size", "alpha", "local_ts", "price", "size", "x"])
_LEAF = st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True) | st.text(max_size=8)
JSON = st.recursive(_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_KEYS, kids, max_size=4),
                    max_leaves=12)
_NUM = st.integers(-2, 10**6) | st.floats(allow_nan=True) | st.text(max_size=6) | st.none()
_LEVELS = st.lists(st.fixed_dictionaries({"price": _NUM, "size": _NUM}), max_size=3)
_BOOKS = st.lists(st.fixed_dictionaries({"asset_id": st.sampled_from(["111", "222", "9"]) | _LEAF, "bids": _LEVELS,
                                         "asks": _LEVELS, "local_ts": _NUM, "timestamp": _NUM}), max_size=3)
# close to each kind's real record, with any value in its fields
NEAR = {
    "books": _BOOKS, "checkpoint": _BOOKS,
    "universe": st.lists(st.fixed_dictionaries({"condition_id": _LEAF, "yes_token_id": _LEAF, "no_token_id": _LEAF,
                                                "question": _LEAF, "tick_size": _NUM, "min_order_size": _NUM}),
                         max_size=2),
    "params": st.dictionaries(st.sampled_from(sorted(PARAM_FIELDS)), JSON, max_size=3),
    "start": st.fixed_dictionaries({"params": st.dictionaries(st.sampled_from(sorted(PARAM_FIELDS)), JSON, max_size=2),
                                    "strategies": st.dictionaries(st.sampled_from(["0xc1", "0xzz"]), JSON, max_size=2),
                                    "calibration": JSON}),
    "venue_clock": st.fixed_dictionaries({"w0": _NUM, "v0": _NUM, "speed": _NUM}),
    "strategy": st.fixed_dictionaries({"market": st.sampled_from(["0xc1", "0xzz"]) | _LEAF,
                                       "strategy": st.sampled_from(["seed", "nope"]) | _LEAF, "params": JSON}),
    "cycle": st.fixed_dictionaries({"hold": _LEAF}),
    "settled": st.fixed_dictionaries({"market": st.sampled_from(["0xc1", "0xzz"]) | _LEAF,
                                      "winner": st.sampled_from(["111", "222", "9"]) | _LEAF,
                                      "yes_token_id": st.sampled_from(["111", "9"]) | _LEAF,
                                      "no_token_id": st.sampled_from(["222", "8"]) | _LEAF}),
}
ROWS = [("market", "sub"), ("market", "unsub"), ("market", "open"), ("market", "close"), ("rest", "books"),
        ("rest", "checkpoint"), ("universe", "universe"), ("engine", "params"), ("engine", "start"),
        ("engine", "venue_clock"), ("engine", "strategy"), ("engine", "cycle"), ("engine", "settled"), ("engine", "cancel_all")]


def _book(tok: str, ts: float) -> str:
    return book_frame("0xc1", tok, "0.40", "0.60", ts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(payloads=st.tuples(*(NEAR.get(kind, JSON) | JSON for _, kind in ROWS)), frame=JSON)
def test_rows_of_any_shape_never_end_a_replay(tmp_path_factory, payloads, frame) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    rec = Recorder(root, session="f")
    rec.universe(T0, [M])
    rec.frame(T0 + 1, 0, _book("111", T0 + 1))
    rec.frame(T0 + 1, 0, _book("222", T0 + 1))
    for k, ((channel, kind), pay) in enumerate(zip(ROWS, payloads, strict=True)):
        rec.record(channel, T0 + 2 + k, kind, json.dumps(pay), conn=0 if channel == "market" else -1)
    rec.frame(T0 + 20, 0, json.dumps(frame))
    rec.frame(T0 + 21, 0, _book("111", T0 + 21))
    rec.frame(T0 + 21, 0, _book("222", T0 + 21))
    rec.close()
    r = Replayer(load_settings(record_dir=str(root)), T0, T0 + 45, cycles="grid")
    res = asyncio.run(r.run())
    assert res.status == "done", res.problems
    assert res.summary["markets"] >= 1
