#!/usr/bin/env bash
# The main job on the embedded defaults: `freshtoken demo`, a naive pipeline next to freshtoken
# against the shipped Genesys-like test server. Extra arguments go to the demo.
# It installs only what the demo needs (the package and rich) into a virtual environment of its
# own (.venv-demo; FRESHTOKEN_VENV names another), not the development tools.
set -euo pipefail
cd "$(dirname "$0")/.."
FRESHTOKEN_VENV=${FRESHTOKEN_VENV:-.venv-demo}
source scripts/_setup.sh
setup_venv rich >&2
exec "$VENV/bin/freshtoken" demo "$@"
