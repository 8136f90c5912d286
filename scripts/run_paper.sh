#!/usr/bin/env bash
# Paper-trade unattended: make sure the schema is current, refresh the universe, then run the
# engine with simulated fills until Ctrl-C / SIGTERM. Extra arguments go to `pmm run paper`
# (e.g. --max-seconds 600). Settings come from the environment / .env (see env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
PMM="${PMM:-.venv/bin/pmm}"
"$PMM" db init
if [[ "${PMM_VENUE:-polymarket}" != "sandbox" ]]; then
    "$PMM" universe refresh
fi
exec "$PMM" run paper "$@"
