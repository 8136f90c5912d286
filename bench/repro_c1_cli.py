"""Issue 17 C1, the exact repro with default settings and real processes (~50 s, manual).

`pmm run paper` A on the sandbox (default lease TTL 15 s, SQLite busy_timeout 10 s); another
connection holds `BEGIN EXCLUSIVE` on the DB for 30 s; `pmm run paper` B starts 1 s into the
lock; both get SIGTERM 12 s after the release. Prints, from `orders.owner`, each owner's orders,
how many pairs of orders of different owners rested at the same time (must be 0) and how many
rested at lock + TTL (must be 0); A's and B's output go to a.out / b.out in --dir.
Run: `python bench/repro_c1_cli.py --dir /tmp/c1`.
"""
import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time

import sqlalchemy as sa

ap = argparse.ArgumentParser()
ap.add_argument("--dir", default="/tmp/pmm-c1-repro")
ap.add_argument("--lock-sec", type=float, default=30.0)
opts = ap.parse_args()
os.makedirs(opts.dir, exist_ok=True)
os.chdir(opts.dir)
db = os.path.join(opts.dir, "r.db")
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(db + suffix):
        os.unlink(db + suffix)
url = f"sqlite:///{db}"
env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
env.update({"PMM_VENUE": "sandbox", "PMM_DB_URL": url, "PMM_SANDBOX_SPEED": "1", "PMM_UNIVERSE_SIZE": "6",
            "PMM_SANDBOX_MARKETS": "20", "PMM_PAPER_FILL_INTENSITY": "60", "PMM_QUOTE_REFRESH_SEC": "1"})
cmd = [sys.executable, "-m", "pmm_widgets.cli", "run", "paper"]
a = subprocess.Popen(cmd, env=env, stdout=open("a.out", "w"), stderr=subprocess.STDOUT)
eng = None
for _ in range(600):  # wait until A quotes
    time.sleep(0.1)
    try:
        eng = eng or sa.create_engine(url)
        with eng.connect() as c:
            if c.execute(sa.text("SELECT COUNT(*) FROM orders WHERE status='LIVE'")).scalar():
                break
    except sa.exc.SQLAlchemyError:  # the DB is still being created
        pass
assert eng is not None
time.sleep(2)
lk = sqlite3.connect(db, isolation_level=None, timeout=10)
lk.execute("BEGIN EXCLUSIVE")
t0 = time.time()
time.sleep(1)
b = subprocess.Popen(cmd, env=env, stdout=open("b.out", "w"), stderr=subprocess.STDOUT)
time.sleep(opts.lock_sec - 1)
lk.execute("ROLLBACK")
lk.close()
t1 = time.time()
time.sleep(12)
for p in (a, b):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
for p in (a, b):
    p.wait(60)
with eng.connect() as c:
    rows = c.execute(sa.text(
        "SELECT owner, created_ts, CASE WHEN status IN ('CANCELED','FILLED') THEN updated_ts ELSE 1e18 END "
        "FROM orders WHERE status != 'REJECTED'")).all()
owners: dict[str, list[tuple[float, float]]] = {}
for o, start, end in rows:
    owners.setdefault(o, []).append((start, end))
print("lock", t0, "release", t1, "rc A", a.returncode, "rc B", b.returncode)
for o, iv in owners.items():
    print(o, len(iv), "first", min(s for s, e in iv) - t0, "last end", max(e for s, e in iv) - t0)
ids = list(owners)
bad = sum(1 for i in range(len(ids)) for j in range(i + 1, len(ids))
          for s1, e1 in owners[ids[i]] for s2, e2 in owners[ids[j]] if s1 < e2 and s2 < e1)
at_expiry = sum(1 for iv in owners.values() for s, e in iv if s <= t0 + 15 < e)
print("overlapping pairs", bad, "resting at lock+TTL (15 s):", at_expiry)
