#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on loopback, exported as PMM_TEST_PG_URL.
#
#   scripts/with_postgres.sh python -m pytest -q
#
# initdb into a temp dir, start on a free 127.0.0.1 port (no unix socket outside the temp dir),
# run the command, stop the server and remove the dir. As root the server runs as the `postgres`
# user (PostgreSQL refuses to run as root). If PMM_TEST_PG_URL is already set it is used as is.
# Only when no PostgreSQL binaries exist at all is the command run without a server (the
# PostgreSQL store tests then skip, saying why).
set -euo pipefail

if [[ -n "${PMM_TEST_PG_URL:-}" ]]; then
    exec "$@"
fi

find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$d/initdb" && -x "$d/pg_ctl" ]] && { echo "$d"; return 0; }
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

if ! BINDIR="$(find_bindir)"; then
    echo "with_postgres: no PostgreSQL binaries (initdb, pg_ctl) found; install Debian's 'postgresql'" \
         "package. PostgreSQL store tests will be SKIPPED." >&2
    exec "$@"
fi

TMP="$(mktemp -d -t pmm-pg.XXXXXX)"
DATA="$TMP/data"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
PGUSER_NAME="pmm"

# Run a PostgreSQL binary as a non-root user when we are root.
if [[ "$(id -u)" == "0" ]]; then
    RUNAS="postgres"
    if ! id "$RUNAS" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$RUNAS"
    fi
    chown "$RUNAS" "$TMP"
    as_pg() {
        if command -v runuser >/dev/null 2>&1; then
            runuser -u "$RUNAS" -- "$@"
        else
            su -s /bin/sh "$RUNAS" -c "$(printf '%q ' "$@")"
        fi
    }
else
    as_pg() { "$@"; }
fi

cleanup() {
    as_pg "$BINDIR/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

as_pg "$BINDIR/initdb" -D "$DATA" -U "$PGUSER_NAME" -A trust -E UTF8 --no-sync >"$TMP/initdb.log" 2>&1 || {
    echo "with_postgres: initdb failed:" >&2; cat "$TMP/initdb.log" >&2; exit 1; }
as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$TMP/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $TMP -c fsync=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { echo "with_postgres: server did not start:" >&2; cat "$TMP/server.log" >&2; exit 1; }
as_pg "$BINDIR/createdb" -h 127.0.0.1 -p "$PORT" -U "$PGUSER_NAME" pmm_test

export PMM_TEST_PG_URL="postgresql+psycopg://$PGUSER_NAME@127.0.0.1:$PORT/pmm_test"
echo "with_postgres: $("$BINDIR/postgres" --version) on 127.0.0.1:$PORT (PMM_TEST_PG_URL set)" >&2

set +e
"$@"
rc=$?
set -e
exit "$rc"
