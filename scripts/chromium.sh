#!/usr/bin/env bash
# Make sure Debian's chromium is installed, for the dashboard's browser tests (Playwright drives it; no
# `playwright install` download is needed or wanted), installing it with apt-get if missing.
#
#   eval "$(bash scripts/chromium.sh)"      # exports METRICAOS_TEST_CHROMIUM for pytest
#
# Prints one line on stdout: `export METRICAOS_TEST_CHROMIUM=/usr/bin/chromium`; everything else goes to stderr.
# $METRICAOS_TEST_CHROMIUM, when set, names the binary to use instead.
set -euo pipefail

browser="${METRICAOS_TEST_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$browser" ]; then
  if [ "$browser" != "/usr/bin/chromium" ]; then
    echo "METRICAOS_TEST_CHROMIUM=$browser is not an executable file" >&2
    exit 1
  fi
  echo "chromium not found: installing it with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update >&2
  $sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core >&2
fi

"$browser" --version >&2 || { echo "$browser does not run; see the message above" >&2; exit 1; }
echo "export METRICAOS_TEST_CHROMIUM=$browser"
