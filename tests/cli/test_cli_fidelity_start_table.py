"""`pmm fidelity`: a ground-truth run's time counts from the engine's start, and the comparison
table's model column is as wide as its labels.

- The run's limit (1.5x the wall time asked for) used to start when the engine was asked to
  start: a loaded host's set-up (seconds) counted against it, and the run recorded less venue
  time than asked, or nothing at all. Here the engine's set-up is made 2 s slower (as a loaded
  host's) for a run of 1 s: it must still record its second of venue time.
- The model column was 52 characters whatever the labels: a longer label (the settings' model
  with its knobs) pushed the rest of its row out from under the header."""

from __future__ import annotations

import asyncio

import pytest
from test_cli_fidelity import _save  # the hand-built ground-truth recordings

from pmm_widgets import cli
from pmm_widgets.engine import owner as owner_mod
from pmm_widgets.errors import ExitCode
from pmm_widgets.research import fidelity_run as fr

SLOW_SETUP_SEC = 2.0


@pytest.mark.integration
def test_the_run_time_counts_from_the_engines_start(env, monkeypatch):
    real = owner_mod.OwnerSession._setup

    async def slow_setup(self):  # a loaded host: the set-up takes longer than the whole run's limit
        await asyncio.sleep(SLOW_SETUP_SEC)
        await real(self)

    monkeypatch.setattr(owner_mod.OwnerSession, "_setup", slow_setup)
    seconds = 1.0
    rec = asyncio.run(fr.run_live(7, 1, seconds, 1.0, fr.throwaway_key()))
    assert len(rec.markets) == 1  # it started, and traded (was: the time was up before it had its markets)
    books = [ev for ev in rec.events if ev[0] == "book"]
    assert books and rec.sim_minutes * 60 >= 0.9 * seconds, rec.sim_minutes * 60  # the venue time asked for
    # (an engine that does not start within its start's own limit: test_mut_cli2.py, one line, exit 1)
    assert 0 < rec.seconds <= seconds * 1.5 + 0.3 < SLOW_SETUP_SEC  # the time it traded, its set-up not included


def _columns_line_up(head: str, row: str) -> None:
    """Every figure of `row` ends where its header ends, whatever the label's length (the
    headers `pnl $` and `live $` are two words each)."""
    h = [at + len(w) for at, w in _words(head)[2:]]
    r = [at + len(w) for at, w in _words(row)[2:]]
    assert r == [h[k] for k in (0, 1, 2, 3, 4, 5, 6, 7, 9, 11)], (head, row)


def _words(line: str) -> list[tuple[int, str]]:
    out, i = [], 0
    for w in line.split():
        i = line.index(w, i)
        out.append((i, w))
        i += len(w)
    return out


@pytest.mark.parametrize("knobs", [{}, {"PMM_PAPER_QUEUE_POWER": "1.2345678", "PMM_PAPER_FILL_INTENSITY": "0.123456789",
                                        "PMM_PAPER_SPREAD_K": "123.456789"}])
def test_the_model_column_fits_every_label(env, tmp_path, capsys, knobs):
    d = _save(tmp_path)
    env.setenv("PMM_PAPER_FILL_MODEL", "queue")
    for k, v in knobs.items():
        env.setenv(k, v)
    assert cli.main(["fidelity", "--load", str(d), "--seed", "7", "--check-seeds", "8"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    head = next(ln for ln in lines if ln.split()[:2] == ["seed", "model"])
    rows = [ln for ln in lines if ln.split() and ln.split()[0] in ("7", "8")]
    label = rows[0].split()[1]
    assert len(rows) == 2 and label.startswith("queue(" if knobs else "queue") and len(label) > (52 if knobs else 0)
    for row in rows:
        _columns_line_up(head, row)
    # the model column is as wide as its longest label (and its header) needs, no wider
    assert head.index("fills") - head.index("model") == max(len(label), len("model")) + 2


def test_the_fits_ranking_lines_up_its_losses(env, tmp_path, capsys):
    d = _save(tmp_path)
    argv = ["fidelity", "--fit", "--load", str(d), "--seed", "7", "--check-seeds", "8", "--out", str(tmp_path / "f.env")]
    assert cli.main(argv) == ExitCode.OK
    ranked = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  ") and " loss " in ln]
    assert len(ranked) == 5 and len({ln.index(" loss ") for ln in ranked}) == 1
    assert min(ln.index(" loss ") for ln in ranked) == 2 + max(len(ln.split()[0]) for ln in ranked)
