#!/usr/bin/env bash
# The main job on the embedded defaults: start the shipped test authorization server, get a
# token from it with `freshtoken token`, and call its protected API with that token.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv >&2
exec "$VENV/bin/python" -m freshtoken._demo "$@"
