#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 for the PostgreSQL destination's tests, installing it if missing.
#
#   eval "$(bash scripts/postgres-server.sh)"   # exports METRICAOS_TEST_POSTGRES_URL for pytest
#
# Prints one line on stdout: `export METRICAOS_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/metricaos_test`;
# everything else goes to stderr. The cluster lives in a temporary directory, trusts every connection from
# 127.0.0.1 (no password), runs without fsync (its data is disposable) and keeps running in the background
# until the machine or CI job ends (`pg_ctl -D DIR/data stop` stops it sooner). A server already answering on
# the port is reused (the database is created in it if missing), so running this twice is harmless.
#
#   METRICAOS_POSTGRES_PORT     the port (default 5439, away from a system cluster's 5432)
#   METRICAOS_POSTGRES_DIR      where the cluster goes (default: a new directory under $TMPDIR)
#   METRICAOS_POSTGRES_INSTALL  0: never apt-get install (fail instead); the default installs when missing
#
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user (Debian's
# package creates it; `metricaos-pg` is created when there is none), started through runuser.
set -euo pipefail

port="${METRICAOS_POSTGRES_PORT:-5439}"
database="metricaos_test"
superuser="postgres"
url="postgresql://$superuser@127.0.0.1:$port/$database"

bindir() {  # Debian keeps the server binaries off PATH, in /usr/lib/postgresql/VERSION/bin
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; fi
}

bin="$(bindir)"
if [ -z "$bin" ]; then
  if [ "${METRICAOS_POSTGRES_INSTALL:-1}" = "0" ]; then
    echo "PostgreSQL is not installed (and METRICAOS_POSTGRES_INSTALL=0)" >&2
    exit 1
  fi
  echo "PostgreSQL not found: installing it with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update >&2
  $sudo apt-get install -y --no-install-recommends postgresql >&2
  bin="$(bindir)"
  [ -n "$bin" ] || { echo "apt-get installed postgresql but no initdb was found" >&2; exit 1; }
fi

answers() { "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1 >/dev/null 2>&1; }
psql_() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$superuser" "$@"; }

if answers; then
  echo "a PostgreSQL server already answers on 127.0.0.1:$port; using it" >&2
else
  if [ "$(id -u)" -eq 0 ]; then
    owner="postgres"
    if ! id -u "$owner" >/dev/null 2>&1; then
      owner="metricaos-pg"
      id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner" >&2
    fi
    as_owner() { runuser -u "$owner" -- "$@"; }
  else
    owner="$(id -un)"
    as_owner() { "$@"; }
  fi
  dir="${METRICAOS_POSTGRES_DIR:-}"
  if [ -z "$dir" ]; then dir="$(mktemp -d "${TMPDIR:-/tmp}/metricaos-postgres.XXXXXX")"; else mkdir -p "$dir"; fi
  dir="$(cd "$dir" && pwd)"
  cd /  # the owner may not be allowed into the caller's directory
  chmod 755 "$dir"  # mktemp's 700 would keep the owner out of its own cluster's parent
  [ "$(id -u)" -ne 0 ] || chown "$owner" "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U "$superuser" --auth=trust --encoding=UTF8 --locale=C.UTF-8 --no-sync >&2 \
    || as_owner "$bin/initdb" -D "$dir/data" -U "$superuser" --auth=trust --encoding=UTF8 --locale=C --no-sync >&2
  # The server's output goes to its log file, not to this script's stdout (which the caller reads to its end).
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2 </dev/null || { echo "PostgreSQL did not start; see $dir/postgres.log:" >&2; tail -n 20 "$dir/postgres.log" >&2 || true; exit 1; }
  for _ in $(seq 1 100); do answers && break; sleep 0.1; done
  answers || { echo "PostgreSQL does not answer on 127.0.0.1:$port; see $dir/postgres.log" >&2; exit 1; }
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') started on 127.0.0.1:$port" \
       "(data $dir/data, log $dir/postgres.log, owner $owner)" >&2
fi

if [ "$(psql_ -d postgres -tA -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != "1" ]; then
  psql_ -d postgres -c "CREATE DATABASE $database" >&2 || psql_ -d "$database" -c "SELECT 1" >/dev/null  # lost a race: fine
fi
psql_ -d "$database" -c "SELECT 1" >/dev/null || { echo "cannot connect to $url" >&2; exit 1; }

echo "export METRICAOS_TEST_POSTGRES_URL=$url"
