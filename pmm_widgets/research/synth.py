"""Synthetic recordings from the sandbox's market simulator, written without sockets or sleeping.

Why: tests and benchmarks need hours of realistic market-channel traffic (the same wire events
the sandbox serves: `book`, `price_change`, `last_trade_price`) in the recording layout, in
seconds. The simulator is pure and seeded, so the same arguments give the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..domain import Market
from ..sandbox.simulator import Simulator
from ..store.recording import Recorder
from ..venue.gamma import parse_market


def synth_recording(root: str | Path, start_ts: float, seconds: float, *, markets: int = 4, seed: int = 7,
                    session: str = "synth", drain_every: int = 2_000) -> list[Market]:
    """Record `seconds` of `markets` simulated markets from `start_ts` under `root`; returns them."""
    sim = Simulator(markets=markets * 2 + 10, seed=seed, start_ts=start_ts)
    universe = [m for m in (parse_market(o) for o in sim.gamma_markets())
                if m.tradable and sim.book_event(m.yes_token_id) is not None][:markets]
    tokens = [t for m in universe for t in m.token_ids]
    sim.watched = set(tokens)
    rec = Recorder(root, session=session)
    t = sim.now()
    rec.universe(t, universe)
    rec.conn_event(t, "sub", 0, tokens)
    rec.conn_event(t, "open", 0, tokens)
    for tok in tokens:
        rec.frame(t, 0, json.dumps(sim.book_event(tok), separators=(",", ":")))
    end = start_ts + seconds
    n = 0
    while sim.now() < end:
        events = sim.step()
        parts = [json.dumps(ev.payload, separators=(",", ":")) for ev in events
                 if any(a in sim.watched for a in ev.assets)]
        if parts:
            rec.frame(sim.now(), 0, parts[0] if len(parts) == 1 else "[" + ",".join(parts) + "]")
        n += 1
        if n % drain_every == 0:
            rec.flush()
    rec.close()
    return universe
