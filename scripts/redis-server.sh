#!/usr/bin/env bash
# Start a throwaway redis-server on 127.0.0.1 for the Redis quota backend's tests, installing it if missing.
#
#   eval "$(bash scripts/redis-server.sh)"      # exports METRICAOS_TEST_REDIS_URL for pytest
#
# Prints one line on stdout: `export METRICAOS_TEST_REDIS_URL=redis://127.0.0.1:PORT/0`; everything else goes
# to stderr. The server keeps no data on disk (no RDB, no AOF) and runs in the background until the machine
# or CI job ends (`redis-cli -p PORT shutdown nosave` stops it sooner). PORT: $METRICAOS_REDIS_PORT or 6390.
set -euo pipefail

port="${METRICAOS_REDIS_PORT:-6390}"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found: installing it with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update >&2
  $sudo apt-get install -y redis-server >&2
fi

if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  echo "a redis-server already answers on 127.0.0.1:$port; using it" >&2
else
  dir="$(mktemp -d "${TMPDIR:-/tmp}/metricaos-redis.XXXXXX")"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
    --daemonize yes --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >&2
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 || { echo "redis-server did not start; see $dir/redis.log" >&2; exit 1; }
  echo "redis-server started on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"), log $dir/redis.log)" >&2
fi

echo "export METRICAOS_TEST_REDIS_URL=redis://127.0.0.1:$port/0"
