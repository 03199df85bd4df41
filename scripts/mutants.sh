#!/usr/bin/env bash
# Breaks each promise on purpose in a scratch copy and runs the tests that guard it; reports
# which were caught and by which test (scripts/mutants.py has the table; docs/mutants.md).
# Not part of CI. Arguments choose mutants by name: scripts/mutants.sh sealing lock
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
exec "$VENV/bin/python" scripts/mutants.py "$@"
