"""Venue economics as pure functions: taker fees, maker rebates, liquidity-reward scoring,
settlement. The sandbox (ground truth) and the engine (paper, dry-run, live) call the same
functions, so their figures can only differ through their inputs, never through arithmetic.
Nothing here does I/O; money is Decimal."""
