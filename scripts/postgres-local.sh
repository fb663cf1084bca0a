#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on 127.0.0.1 for the integration suites, installing Debian's
# `postgresql` package if no server binaries are found. Prints the admin connection URL on stdout.
#   scripts/postgres-local.sh start <dir> [port]   -> postgres://postgres@127.0.0.1:<port>/postgres
#   scripts/postgres-local.sh stop <dir>
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data directory}
port=${3:-54329}

find_bin() {
  local name=$1
  for d in /usr/lib/postgresql/*/bin /usr/local/bin /usr/bin; do
    [ -x "$d/$name" ] && { echo "$d/$name"; return 0; }
  done
  return 1
}

if ! find_bin initdb >/dev/null; then
  echo "postgres-local: installing postgresql from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql postgresql-client >&2
fi
INITDB=$(find_bin initdb); PG_CTL=$(find_bin pg_ctl)

# Postgres refuses to run as root: run it as the unprivileged `postgres` user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown -R postgres "$dir" 2>/dev/null || true
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_pg "$INITDB" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >&2
    fi
    as_pg "$PG_CTL" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >&2
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    [ -f "$dir/postmaster.pid" ] && as_pg "$PG_CTL" -D "$dir" -m fast -w stop >&2 || true
    ;;
  *) echo "usage: $0 start|stop <dir> [port]" >&2; exit 2 ;;
esac
