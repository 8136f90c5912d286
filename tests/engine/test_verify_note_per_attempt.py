"""`cancel_and_verify`'s note names what the attempt it reports met, never an earlier one's.

An attempt whose cancel came back with posts still unanswered ("2 orders posted and not answered
after 4 s") and a venue count that still saw one, then a second attempt that the stop's deadline
or an error cut: the result said the cut, then "; 2 orders posted and not answered after 4 s",
the first attempt's posts, as if the last attempt had met them (the KILL's message and the stop's
event carry that note to the operator). The last attempt's own words stand alone.

A real paper exchange holds the orders; the venue's answers are scripted around its own
`cancel_settled` and count, as in `test_mut_runtime`."""

from __future__ import annotations

import asyncio
from typing import Any

from engine_helpers import paper_with_bids
from hypothesis import given, settings
from hypothesis import strategies as st

from pmm_widgets.engine.runtime import cancel_and_verify
from pmm_widgets.execution.exchange import CancelProgress
from pmm_widgets.execution.paper import PaperExchange


class _Attempts:
    """Each `cancel_settled` call's script: ("posts", k) the exchange's own cancel, then k posts
    still unanswered; ("hang", None) no answer (the deadline cuts it); an exception, raised."""

    def __init__(self, ex: PaperExchange, script: list[tuple[str, Any]], counts: list[int]) -> None:
        self.ex, self.script, self.counts = ex, list(script), list(counts)
        self.real = ex.cancel_settled
        ex.cancel_settled = self.cancel_settled  # type: ignore[method-assign]
        ex.count_venue_open_orders = self.count  # type: ignore[method-assign]

    async def cancel_settled(self, settle_sec: float, progress: CancelProgress | None = None) -> tuple[int, int]:
        what, arg = self.script.pop(0)
        if what == "hang":
            await asyncio.Event().wait()
        if what == "raise":
            raise arg
        got, _ = await self.real(settle_sec, progress)
        return got, int(arg)

    async def count(self) -> int:
        return self.counts.pop(0)


def test_a_cut_attempt_does_not_carry_the_earlier_attempts_unanswered_posts():
    venue = _Attempts(paper_with_bids(2), [("posts", 2), ("hang", None)], counts=[1])
    cancelled, open_after, err = asyncio.run(cancel_and_verify(venue.ex, pause=0.01, deadline_sec=0.3))
    assert (cancelled, open_after) == (2, -1)
    assert err == "the venue's cancel-all not answered within the stop's 0.3 s deadline", err


def test_a_failed_attempt_does_not_carry_the_earlier_attempts_unanswered_posts():
    venue = _Attempts(paper_with_bids(2), [("posts", 2), ("raise", ConnectionError("503")),
                                            ("raise", ConnectionError("503"))], counts=[1])
    assert asyncio.run(cancel_and_verify(venue.ex, pause=0.0)) == (2, -1, "ConnectionError: 503")


def test_the_last_attempts_own_unanswered_posts_are_said():
    venue = _Attempts(paper_with_bids(2), [("posts", 0), ("posts", 3)], counts=[1, 0])
    cancelled, open_after, err = asyncio.run(cancel_and_verify(venue.ex, pause=0.0, attempts=2, settle_sec=4.0))
    assert (cancelled, open_after) == (2, -1)
    assert err == "3 orders posted and not answered after 4 s: they may still come to rest", err


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=3), st.booleans())
def test_the_note_counts_only_the_last_attempts_posts(unanswered: list[int], last_fails: bool):
    """Whatever the earlier attempts met: the posts the result names are the last attempt's."""
    script: list[tuple[str, Any]] = [("posts", k) for k in unanswered]
    if last_fails:
        script.append(("raise", ConnectionError("503")))
    attempts = len(script)
    venue = _Attempts(paper_with_bids(1), script, counts=[1] * attempts)
    _, open_after, err = asyncio.run(cancel_and_verify(venue.ex, attempts=attempts, pause=0.0))
    last = 0 if last_fails else unanswered[-1]
    said = f"{last} orders posted and not answered" if last else "orders posted and not answered"
    if last:
        assert err is not None and said in err and open_after == -1, err
    else:
        assert err is None or said not in err, err

