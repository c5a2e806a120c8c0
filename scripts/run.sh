#!/usr/bin/env bash
# Install the gateway into .venv (first time only) and start it on an embedded local Spark.
# Extra arguments go to `spark-gateway serve` (e.g. --port 9000, --remote sc://host:15002).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-venv.sh
command -v java >/dev/null || { echo "Java 17 is needed for the embedded Spark: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
exec .venv/bin/spark-gateway serve --sample-data "$@"
