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
status=0
"$VENV/bin/freshtoken" demo "$@" || status=$?
# Where freshtoken now is (not on PATH), and the next command to try: README "Try it locally".
bin=$(cd "$VENV/bin" && pwd)
cat >&2 << EOF

freshtoken is installed in $bin (not on your PATH: run it as $bin/freshtoken).
Next, a first token from the shipped Genesys stand-in (README.md, "Try it locally"):
  $bin/freshtoken testserver --genesys --port 8400 &
  FRESHTOKEN_PROVIDER=genesys FRESHTOKEN_TOKEN_URL=http://127.0.0.1:8400/oauth/token \\
    FRESHTOKEN_API_URL=http://127.0.0.1:8400 FRESHTOKEN_CLIENT_ID=demo-client \\
    FRESHTOKEN_CLIENT_SECRET=demo-secret $bin/freshtoken token --format json
EOF
exit "$status"
