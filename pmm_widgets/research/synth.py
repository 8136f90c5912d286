"""Synthetic recordings from the sandbox's market simulator, written without sockets or sleeping.

Why: tests and benchmarks need hours of realistic market-channel traffic (the same wire events
the sandbox serves: `book`, `price_change`, `last_trade_price`) in the recording layout, in
seconds. The simulator is pure and seeded, so the same arguments give the same files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..domain import Market
from ..sandbox.simulator import Simulator
from ..store.recording import Recorder, dumps
from ..venue.gamma import parse_market
from ..venue.market_data import checkpoint_books, new_book


def synth_recording(root: str | Path, start_ts: float, seconds: float, *, markets: int = 4, seed: int = 7,
                    session: str = "synth", drain_every: int = 2_000,
                    checkpoint_sec: float | None = None,
                    resolve: Sequence[tuple[float, int, bool]] = ()) -> list[Market]:
    """Record `seconds` of `markets` simulated markets from `start_ts` under `root`; returns them.

    `checkpoint_sec`: also write the books every so many seconds as the engine does (`rest`
    channel, kind `checkpoint`, from books the frames built through the market stream, exactly as
    a replay builds them), so that a replay can start from one (default: none).
    `resolve`: (seconds after `start_ts`, index of the market, whether YES wins): the venue
    resolves that market then (the sandbox's `market_resolved` frame)."""
    from .replayer import ReplayStream  # (the replayer imports this package's neighbours, not this module)

    sim = Simulator(markets=markets * 2 + 10, seed=seed, start_ts=start_ts)
    universe = [m for m in (parse_market(o) for o in sim.gamma_markets())
                if m.tradable and sim.book_event(m.yes_token_id) is not None][:markets]
    tokens = [t for m in universe for t in m.token_ids]
    sim.watched = set(tokens)
    rec = Recorder(root, session=session)
    t = sim.now()
    clock = [t]
    books = {tok: new_book(tok, m) for m in universe for tok in m.token_ids} if checkpoint_sec else {}
    stream = ReplayStream("ws://synth.invalid", None, books, clock=lambda: clock[0]) if checkpoint_sec else None

    def frame(now: float, text: str) -> None:
        rec.frame(now, 0, text)
        if stream is not None:
            clock[0] = now
            stream.handle_frame(text, stream.conn(0))

    rec.universe(t, universe)
    rec.conn_event(t, "sub", 0, tokens)
    rec.conn_event(t, "open", 0, tokens)
    for tok in tokens:
        frame(t, json.dumps(sim.book_event(tok), separators=(",", ":")))
    end = start_ts + seconds
    next_checkpoint = start_ts + checkpoint_sec if checkpoint_sec else float("inf")
    n = 0
    pending = sorted(resolve)
    while sim.now() < end:
        while pending and sim.now() >= start_ts + pending[0][0]:
            _, k, yes = pending.pop(0)
            sim.resolve_market(universe[k].condition_id, winner_yes=yes)
        events = sim.step()
        parts = [json.dumps(ev.payload, separators=(",", ":")) for ev in events
                 if any(a in sim.watched for a in ev.assets)]
        if parts:
            frame(sim.now(), parts[0] if len(parts) == 1 else "[" + ",".join(parts) + "]")
        if sim.now() >= next_checkpoint:
            snaps = checkpoint_books(books.values())
            if snaps:
                rec.record("rest", sim.now(), "checkpoint", dumps(snaps))
            next_checkpoint += checkpoint_sec or 0.0
        n += 1
        if n % drain_every == 0:
            rec.flush()
    rec.close()
    return universe
