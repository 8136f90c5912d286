"""The replay loop's per-event numbers and per-cycle maximum equal what they replace.

- `replayer._py`: each event's time, channel and connection read as `float(a[i])` / `int(a[i])`
  of the window's arrays (numpy scalars), in order, across block boundaries, for arrays and lists;
- `replayer.max_abs`: `max(abs(float(v)) for v in values)` of the paper exchange's positions
  (Decimals of any sign and spelling), with one float conversion.
"""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.research.replayer import _py, max_abs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), max_size=60), st.integers(1, 9),
       st.booleans())
def test_py_reads_the_window_arrays_as_indexing_did(times, block, as_list):
    ts = np.asarray(times, dtype=np.float64)
    ch = (np.arange(len(times)) % 4).astype(np.int8)
    conn = (np.arange(len(times)) * 7 - 3).astype(np.int32)
    src = (list(ts), list(ch), list(conn)) if as_list else (ts, ch, conn)
    got = list(zip(_py(src[0], np.float64, block), _py(src[1], np.int64, block), _py(src[2], np.int64, block)))
    want = [(float(ts[i]), ch[i], int(conn[i])) for i in range(len(times))]
    assert len(got) == len(want)
    for (t, c, n), (wt, wc, wn) in zip(got, want):
        assert type(t) is float and type(c) is int and type(n) is int
        assert (t, c, n) == (wt, wc, wn) and repr(t) == repr(wt)  # (the channel compared with the numpy scalar)


def test_py_of_an_empty_window():
    assert list(_py(np.asarray([], dtype=np.float64), np.float64)) == []


DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, min_value=-10**9, max_value=10**9, places=6)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(DECIMALS, st.sampled_from([D("-0"), D("0E-5"), D("1E+3"), D("-1000.000"),
                                                      D("0.1000000000000000055511151231257827")])),
                min_size=1, max_size=30))
def test_max_abs_equals_the_largest_float(values):
    got = max_abs(values)
    want = max(abs(float(v)) for v in values)
    assert got == want and repr(got) == repr(want)
