"""What an attached face sends (engine/attached.py `AttachedSession.send`, `RemoteParams`).

`send` puts a command row in the owner's queue: at once when no loop runs (a notebook cell
before start), in a worker thread when one does (widget callbacks), and says so on the face's
event stream; a send the DB refuses is an ERROR event there, never silence.

`RemoteParams` is `engine.params` while attached: it reads the values the owner published, and
an assignment is validated locally against those values (a bad value raises in the caller, and
nothing is sent) before it goes to the owner as one `set_params` command."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pmm_widgets.config import Params, Settings
from pmm_widgets.engine.attached import AttachedSession, RemoteParams
from pmm_widgets.engine.commands import CommandQueue
from pmm_widgets.engine.lease import Lease
from pmm_widgets.engine.state import EngineState, params_to_json
from pmm_widgets.events import EventKind, Level

FACE = "host:2:face"
OWNER = "host:1:owner"


class _Face:
    def __init__(self, db_url: str, db: Any) -> None:
        settings = Settings(_env_file=None, db_url=db_url)
        self.events: list[tuple[Level, EventKind, str]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.states = [EngineState()]
        self.session = AttachedSession(
            settings, Lease(db, settings.lease_ttl_sec, owner=FACE), CommandQueue(db, FACE), FACE,
            publish=self.states.append, state=lambda: self.states[-1],
            emit=lambda lvl, kind, msg: self.events.append((lvl, kind, msg)), tasks=self.tasks)


@pytest.fixture
def face(db_url, db) -> _Face:
    return _Face(db_url, db)


def _pending(db: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(c.kind, c.payload) for c in CommandQueue(db, OWNER).pending()]


def test_without_a_loop_the_command_is_in_the_queue_when_send_returns(face, db):
    face.session.send("set_params", {"alpha": 2.5})
    face.session.send("pause", {})
    assert _pending(db) == [("set_params", {"alpha": 2.5}), ("pause", {})]
    assert [e[:2] for e in face.events] == [(Level.INFO, EventKind.COMMAND)] * 2
    # the message names what was sent; an empty payload is not shown as "{}"
    assert face.events[0][2] == "sent set_params {'alpha': 2.5} to the owner"
    assert face.events[1][2] == "sent pause to the owner"


async def test_in_a_loop_the_send_runs_in_a_held_task_and_lands(face, db):
    face.session.send("resume", {})
    assert len(face.tasks) == 1  # held until it lands (a widget callback cannot await it)
    await asyncio.gather(*face.tasks)
    assert _pending(db) == [("resume", {})]
    assert [e[:2] for e in face.events] == [(Level.INFO, EventKind.COMMAND)]
    assert face.events[0][2] == "sent resume to the owner"


async def test_a_send_the_queue_refuses_is_an_error_event_not_silence(face, db):
    face.session.send("launch_missiles", {})  # not a command kind: the queue raises in the worker
    await asyncio.gather(*face.tasks, return_exceptions=True)
    await asyncio.sleep(0)  # the task's done callback
    assert _pending(db) == []
    assert face.events[-1][:2] == (Level.ERROR, EventKind.COMMAND)
    assert face.events[-1][2].startswith("could not send launch_missiles: ")


# ---------------------------------------------------------------- RemoteParams

class _Owner:
    """The owner's published values and the commands the face sent it."""

    def __init__(self, params: Params | None = None) -> None:
        self.published: dict[str, Any] = params_to_json(params or Params())
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def remote(self) -> RemoteParams:
        return RemoteParams(lambda: self.published, lambda kind, payload: self.sent.append((kind, payload)))


@given(alpha=st.floats(min_value=0.01, max_value=20), size=st.decimals(min_value=1, max_value=1000, places=2),
       ticks=st.integers(min_value=0, max_value=100))
def test_reads_are_the_owners_published_values(alpha, size, ticks):
    owner = _Owner(Params(alpha=alpha, quote_size=size, requote_ticks=ticks))
    rp = owner.remote()
    assert (rp.alpha, rp.quote_size, rp.requote_ticks) == (alpha, size, ticks)
    assert rp.model_dump() == Params(alpha=alpha, quote_size=size, requote_ticks=ticks).model_dump()
    assert owner.sent == []  # reading sends nothing


def test_before_the_owner_published_anything_reads_are_the_defaults():
    for nothing in ({}, None):
        rp = RemoteParams(lambda nothing=nothing: nothing, lambda kind, payload: None)
        assert rp.model_dump() == Params().model_dump()


def test_an_assignment_and_an_update_are_each_one_set_params_command():
    owner = _Owner()
    rp = owner.remote()
    rp.alpha = 3.0
    assert rp.update(skew=1.25, quote_size=Decimal("7.5")) is rp
    rp.update(requote_ticks=2).update(micro_levels=4)  # chained
    assert owner.sent == [("set_params", {"alpha": 3.0}),
                          ("set_params", {"skew": 1.25, "quote_size": "7.5"}),  # Decimal exact, as text
                          ("set_params", {"requote_ticks": 2}),
                          ("set_params", {"micro_levels": 4})]
    assert rp.alpha == 1.5  # the owner has not applied it: the face shows the owner's value


def test_a_bad_value_raises_in_the_caller_and_nothing_is_sent():
    owner = _Owner(Params(regime_wide_vol=0.03))
    rp = owner.remote()
    with pytest.raises(ValidationError):
        rp.alpha = -1
    with pytest.raises(ValidationError):
        rp.update(skew=0.2, alpha=0)  # all or nothing
    with pytest.raises(ValidationError):  # fine alone, not with the owner's regime_wide_vol
        rp.regime_reduce_vol = 0.02
    assert owner.sent == []
