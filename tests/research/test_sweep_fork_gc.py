"""A forked sweep's workers inherit this process's objects frozen (`gc.freeze`): their
collections never walk, and so never copy, the pages of the window and the modules they
inherited. The sweep's process gets its collector back as it was: unfrozen after the forks,
and left alone when something in it (a live engine) froze objects before."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r'''
import gc, json
from pmm_widgets.research import sweeps as sw

def run_pass(sd, a, b, items, fixed, sel, seed, key, report, stop):
    # (`gc.get_objects()` lists the objects of the generations a collection walks: not the frozen)
    return [{"point": items[0][0], "worker_frozen": gc.get_freeze_count(),
             "inherited": not any(o is keep for o in gc.get_objects())}]

sw.run_pass = run_pass
keep = [object() for _ in range(100)]  # this process's objects, inherited by the workers

def sweep_once():
    got = []
    sw._forked_rows({}, 1.0, 2.0, [[(k, {})] for k in range(2)], {}, None, None, 2, None, None, sw._Stop(), got)
    return got

out = {"before": gc.get_freeze_count()}
got = sweep_once()
out["workers"] = sorted(r["worker_frozen"] for r in got)
out["inherited_unwalked"] = [r["inherited"] for r in got]
out["after"] = gc.get_freeze_count()
gc.freeze()  # an engine in this process froze its objects: the sweep leaves them frozen
got = sweep_once()
out["engine_frozen_kept"] = gc.get_freeze_count() > 1000 and not any(o is keep for o in gc.get_objects())
out["second_workers"] = sorted(r["worker_frozen"] for r in got)
print("RESULT " + json.dumps(out))
'''


def test_forked_workers_inherit_frozen_objects_and_the_parent_gets_its_collector_back():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert out["before"] == 0 and out["after"] == 0
    # in each worker, the inherited objects are in the permanent generation: no collection walks them
    assert len(out["workers"]) == 2 and min(out["workers"]) > 1000
    assert out["inherited_unwalked"] == [True, True]
    assert out["engine_frozen_kept"]
