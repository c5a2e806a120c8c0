#!/usr/bin/env bash
# Install everything the tests need (Python packages, Debian's chromium and docker-compose)
# and run the whole suite against real Spark, a real gateway and a real browser.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test . scripts/setup-venv.sh
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
