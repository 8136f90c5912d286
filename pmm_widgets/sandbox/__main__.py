"""`python -m pmm_widgets.sandbox [--markets N] [--seed S] [--speed X] [--host H] [--gamma-port P] [--clob-port P]`."""

import sys

from .server import parse_args, serve_main

sys.exit(serve_main(parse_args()))
