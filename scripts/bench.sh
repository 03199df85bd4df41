#!/usr/bin/env bash
# Benchmarks (loopback only); prints tables. `scripts/bench.sh --quick` for a short run;
# `--miss`: what one cache miss runs (files, calls between files, broker/ lines).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv
exec "$VENV/bin/python" -m bench "$@"
