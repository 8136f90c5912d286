"""The `pmm` console script's entry point. It imports nothing at module level and holds Ctrl-C
while the CLI's modules load (≈ 0.3–1 s): an interrupt there used to end in a traceback from
whatever import it hit (a `KeyboardInterrupt`, or a Rust extension's `PanicException` when it hit
that extension's own imports). Now it exits 130 in silence once the imports are done, as Ctrl-C
does later. (The first ≈ 50 ms, while Python itself starts, are Python's.)"""

from __future__ import annotations

import signal
import sys

INTERRUPTED = 130  # errors.ExitCode.INTERRUPTED, not imported: this module imports nothing of ours first


def main() -> None:
    hit: list[int] = []
    prev = signal.signal(signal.SIGINT, lambda *_: hit.append(1))
    try:
        from pmm_widgets.cli import console_main
        from pmm_widgets.engine import runner  # noqa: F401 - loaded here, under the same hold
    finally:
        signal.signal(signal.SIGINT, prev)
    if hit:  # nothing has started yet: nothing to stop
        sys.exit(INTERRUPTED)
    console_main()


if __name__ == "__main__":
    main()
