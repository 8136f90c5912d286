"""Property: batching ops into executemany groups keeps every op once and per-table order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pmm_widgets.store.writer import _group, _Op

ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["insert", "upsert", "update"]),
        st.sampled_from(["orders", "events", "trades"]),
        st.sampled_from([("a",), ("a", "b"), ("b",)]),  # column shape
    ),
    max_size=60,
)


def make_ops(spec) -> list[_Op]:
    ops = []
    for i, (kind, table, cols) in enumerate(spec):
        row = {c: i for c in cols}
        key = ("k",) if kind != "insert" else ()
        ops.append(_Op(kind, table, row, key, {"k": i} if kind == "update" else None, ts=float(i)))
    return ops


@given(ops_strategy)
def test_groups_keep_each_op_once_and_per_table_order(spec):
    ops = make_ops(spec)
    groups = _group(ops)
    flat = [op for g in groups for op in g]
    assert sorted(id(o) for o in flat) == sorted(id(o) for o in ops)
    for table in {o.table for o in ops}:
        assert [o.ts for o in flat if o.table == table] == [o.ts for o in ops if o.table == table]
    for g in groups:  # one kind and table per group; upsert/update groups share one shape
        assert len({(o.kind, o.table) for o in g}) == 1
        if g[0].kind != "insert":
            assert len({tuple(sorted(o.row)) for o in g}) == 1


def test_inserts_of_one_table_batch_together_across_other_tables():
    ops = make_ops([("insert", "events", ("a",)), ("insert", "trades", ("a",)), ("insert", "events", ("b",))])
    assert [len(g) for g in _group(ops)] == [2, 1]
