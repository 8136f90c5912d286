"""`python -m pmm_widgets.engine [--mode paper|dry-run|live] [--sandbox] [--yes] [--max-seconds N]`."""

from __future__ import annotations

import argparse
import os
import sys

from ..config import ConfigError, load_settings
from ..domain import Mode
from ..errors import ExitCode
from .runner import as_process_entry, hold_exit_code, run_main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pmm_widgets.engine", description="Run the quoting engine headless.")
    ap.add_argument("--mode", choices=["paper", "dry-run", "live"], default="paper")
    ap.add_argument("--sandbox", action="store_true", help="trade the embedded loopback sandbox (PMM_VENUE=sandbox)")
    ap.add_argument("--yes", action="store_true", help="skip the live confirmation prompt")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop cleanly after N seconds (counted from the start, set-up included)")
    args = ap.parse_args(argv)
    if args.sandbox:
        os.environ["PMM_VENUE"] = "sandbox"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return ExitCode.CONFIG
    return run_main(settings, Mode(args.mode.replace("-", "_")), yes=args.yes, max_seconds=args.max_seconds)


if __name__ == "__main__":
    as_process_entry()
    code = main()
    hold_exit_code(code)
    sys.exit(code)
