#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Optuna studies shared by several workers).
#
#   bash scripts/postgres.sh        start it (installing Debian's `postgresql` if missing) and print
#                                   its SQLAlchemy URL: the only line written to stdout
#   bash scripts/postgres.sh stop   stop it
#
# The cluster lives in /tmp/honing-postgres-$HONING_PG_PORT (port 54329 by default): trust
# authentication, listening on 127.0.0.1 only, its unix socket and log inside the data directory,
# durability off (fsync etc.) since the data is disposable. Idempotent, and quick when already running.
# As root the server runs as the `postgres` system user (PostgreSQL refuses to run as root); otherwise
# as the calling user. With no way to install PostgreSQL (neither root nor sudo) it warns and prints
# nothing, so the PostgreSQL tests skip.
set -euo pipefail

PORT="${HONING_PG_PORT:-54329}"
DATA="/tmp/honing-postgres-$PORT"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
DB=honing_test
URL="postgresql+psycopg2://postgres@127.0.0.1:$PORT/$DB"

# The newest installed server, e.g. /usr/lib/postgresql/15/bin.
find_bin() {
  local ctl
  ctl="$(printf '%s\n' /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)"
  [[ -x "$ctl" ]] || return 1
  dirname "$ctl"
}

# Connect through the socket in the data directory: it can only be our own server.
is_ready() {
  [[ -S "$DATA/.s.PGSQL.$PORT" ]] && "$BIN/pg_isready" -q -h "$DATA" -p "$PORT" -d postgres -U postgres
}
sql() { "$BIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$DATA" -p "$PORT" -U postgres -d postgres -c "$1"; }
has_db() { [[ "$(sql "SELECT 1 FROM pg_database WHERE datname = '$DB'")" == 1 ]]; }

# Run a server program as the cluster's owner. fd 9 (the lock below) is closed for it: the server
# must not inherit and hold it.
if [[ "$(id -u)" == 0 ]]; then
  OWNER=postgres
  as_owner() { runuser -u postgres -- env LC_ALL=C "$@" 9<&-; }
else
  OWNER="$(id -un)"
  as_owner() { env LC_ALL=C "$@" 9<&-; }
fi
running() { [[ -f "$DATA/postmaster.pid" ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

# Made by this script (initdb finished, our settings appended) for the installed major version?
usable_datadir() {
  [[ "$(cat "$DATA/PG_VERSION" 2>/dev/null)" == "$(basename "$(dirname "$BIN")")" ]] \
    && grep -qs '^# honing test cluster' "$DATA/postgresql.conf"
}

install_postgres() {
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
      sudo=(sudo)
    else
      echo "postgres.sh: PostgreSQL is missing and installing it needs root or sudo; its tests will skip"
      exit 0
    fi
  fi
  echo "postgres.sh: installing PostgreSQL from Debian (apt-get install postgresql)"
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive
                 apt-get install -y -q --no-install-recommends postgresql)
  if ! "${install[@]}"; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${install[@]}"
  fi
}

create_cluster() {
  echo "postgres.sh: creating a PostgreSQL $(basename "$(dirname "$BIN")") cluster in $DATA"
  mkdir -m 700 "$DATA"
  chown "$OWNER": "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --no-locale -E UTF8 --no-sync >/dev/null
  cat > "$DATA/pg_hba.conf" <<'EOF'
# honing test cluster: trust, from this machine only
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
  cat >> "$DATA/postgresql.conf" <<EOF

# honing test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATA'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

start() {
  BIN="$(find_bin || true)"
  if [[ -n "$BIN" ]] && is_ready && has_db; then  # the usual case: nothing to do
    return
  fi
  if [[ -z "$BIN" ]]; then
    install_postgres
    BIN="$(find_bin)" || { echo "postgres.sh: installed, yet no /usr/lib/postgresql/*/bin/pg_ctl"; exit 1; }
  fi

  # Serialised, as two `make test` may start at once. The lock is on this script's own file: a lock
  # file in /tmp could belong to another user.
  exec 9<"$SELF"
  flock 9
  if ! is_ready; then
    if [[ -d "$DATA" && "$(stat -c %U "$DATA")" != "$OWNER" ]]; then
      echo "postgres.sh: $DATA belongs to $(stat -c %U "$DATA"), not $OWNER; pick another HONING_PG_PORT"
      exit 1
    fi
    # A data directory from an interrupted initdb or another PostgreSQL version is thrown away.
    if [[ -d "$DATA" ]] && ! usable_datadir; then
      if running; then
        echo "postgres.sh: a server runs in $DATA, a cluster not made by this script for $BIN; stop it"
        exit 1
      fi
      echo "postgres.sh: removing unusable data directory $DATA"
      rm -rf "$DATA"
    fi
    [[ -d "$DATA" ]] || create_cluster
    if running; then  # still starting up: wait for it
      for _ in $(seq 120); do is_ready && break; sleep 0.5; done
      is_ready || { echo "postgres.sh: the server in $DATA runs but accepts no connections"; exit 1; }
    elif ! as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >/dev/null; then
      echo "postgres.sh: the server did not start; the end of $DATA/server.log:"
      tail -n 20 "$DATA/server.log" || true
      exit 1
    fi
  fi
  has_db || sql "CREATE DATABASE $DB"
  exec 9<&-
}

stop() {
  BIN="$(find_bin || true)"
  if [[ -n "$BIN" ]] && running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop
  else
    echo "postgres.sh: no server running in $DATA"
  fi
}

[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "postgres.sh: HONING_PG_PORT must be a number, not '$PORT'" >&2; exit 2; }
cd /  # the server's user may not be able to read the caller's directory
# Everything but the URL goes to stderr, children included: callers capture stdout with $(...), which
# would wait for ever on a server holding that stdout open.
case "${1:-start}" in
  start) start >&2; echo "$URL" ;;
  stop) stop >&2 ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
