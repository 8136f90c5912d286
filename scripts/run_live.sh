#!/usr/bin/env bash
# Trade live (real money) unattended: the schema is made current, the universe refreshed, and a
# dry run of DRY_RUN_SECONDS (default 60; 0 skips it) must exit cleanly before the live run
# starts with --yes. Extra arguments go to `pmm run live`. Needs PMM_PRIVATE_KEY (see env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
PMM="${PMM:-.venv/bin/pmm}"
DRY_RUN_SECONDS="${DRY_RUN_SECONDS:-60}"
"$PMM" db init
if [[ "${PMM_VENUE:-polymarket}" != "sandbox" ]]; then
    "$PMM" universe refresh
fi
if [[ "$DRY_RUN_SECONDS" != "0" ]]; then
    "$PMM" run live --dry-run --max-seconds "$DRY_RUN_SECONDS"
fi
exec "$PMM" run live --yes "$@"
