#!/usr/bin/env bash
# The main job on the embedded defaults: `freshtoken demo`, a naive pipeline next to freshtoken
# against the shipped Genesys-like test server. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv >&2
exec "$VENV/bin/freshtoken" demo "$@"
