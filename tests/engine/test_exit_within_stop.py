"""`pmm run` ends within its stop's budget when the DB does not answer.

The stop's last steps (the lease's last renewal and release, a kill command's result) run in
worker threads that a cancel cannot stop; the stop's deadline cuts them and says so, and the
writer's rows are in the spill file. But they ran in the event loop's executor, whose threads
`asyncio.run` and then the interpreter join at exit: a thread blocked on a locked SQLite file
held the process until SQLite's busy timeout (10 s) ran out: `pmm run paper` stopped by SIGTERM
with another process holding the DB's write lock exited 17.4 s after the signal, its stop having
ended after 7 s (measured: `pmm run paper` on the sandbox, SIGTERM with the DB locked). Those threads are daemon
threads now (`tasks.in_daemon_thread`): the process ends with its stop.

Here the stop's budget is shortened (1 s) in the child so the test is quick; the DB's lock is
held for the whole of it."""

from __future__ import annotations

import glob
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from engine_helpers import subprocess_env

pytestmark = pytest.mark.integration

CHILD = ("import sys\n"
         "import pmm_widgets.engine.runtime as rt\n"
         "rt.STOP_VERIFY_SEC, rt.AFTER_VERIFY_SEC = 0.5, 0.5\n"  # the stop's budget: 1 s
         "from pmm_widgets.config import load_settings\n"
         "from pmm_widgets.domain import Mode\n"
         "from pmm_widgets.engine.runner import as_process_entry, run_main\n"
         "as_process_entry()\n"
         "sys.exit(run_main(load_settings(), Mode.PAPER))\n")


def test_pmm_run_exits_within_its_stops_budget_when_the_db_does_not_answer(tmp_path, db_url):
    env = subprocess_env(db_url)
    env.update(PMM_RECORD="off", PMM_LEASE_TTL_SEC="16")
    proc = subprocess.Popen([sys.executable, "-c", CHILD], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    path = db_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        seen = []
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if " tick 3 " in line:
                break
        assert any(" tick 3 " in ln for ln in seen), "".join(seen)[-2000:]
        lock.execute("BEGIN EXCLUSIVE")  # the DB answers no writer from here to the process's end
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        lock.close()
    assert proc.returncode == 0, out[-2000:]
    assert "the lease's release not finished within the stop's" in out, out[-2000:]  # (the stop says it)
    # the stop's grace for a cycle under way (a paper cycle: none), its 1 s, and the interpreter's
    # own exit; it was 10 s more (the busy timeout of the threads it left)
    assert took < 4.0, (took, out[-1500:])
    assert glob.glob(f"{path}.unwritten-*.jsonl")  # the rows the DB did not take are kept
