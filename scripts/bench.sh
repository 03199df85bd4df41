#!/usr/bin/env bash
# Benchmarks (loopback only); prints tables. `scripts/bench.sh --quick` for a short run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv
exec "$VENV/bin/python" -m bench "$@"
