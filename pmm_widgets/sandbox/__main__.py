"""`python -m pmm_widgets.sandbox [--markets N] [--seed S] [--speed X] [--host H] [--gamma-port P] [--clob-port P]
[--resolve-every SEC] [--start-ts EPOCH] [--auth-skew-sec SEC] [--exit-on-stdin-eof]`."""

import sys

from .server import parse_cli, serve_main

sys.exit(serve_main(*parse_cli()))
