#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine, then runs every check and test.
# Extra arguments go to pytest (e.g. scripts/test.sh -k broker).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv
setup_test_tools
echo "== ruff"; "$VENV/bin/ruff" check src tests bench scripts
"$VENV/bin/ruff" format --check src tests bench scripts
# Tests run on Linux; Windows and macOS are type-checked (each with its own cache). The three
# runs go side by side (one process each); each one's output is shown when it is done.
mypy_out=$(mktemp -d); trap 'rm -rf "$mypy_out"' EXIT
run_mypy() {  # NAME ARGS...: mypy ARGS in the background, its output in $mypy_out/NAME
  local name=$1; shift
  "$VENV/bin/mypy" "$@" >"$mypy_out/$name" 2>&1 &
  echo $! >"$mypy_out/$name.pid"
}
run_mypy all
for platform in win32 darwin; do
  run_mypy "$platform" --platform "$platform" --cache-dir ".mypy_cache/$platform" src
done
mypy_failed=0
for name in all win32 darwin; do
  [ "$name" = all ] && echo "== mypy --strict" || echo "== mypy --strict --platform $name src"
  wait "$(cat "$mypy_out/$name.pid")" || mypy_failed=1
  cat "$mypy_out/$name"
done
[ "$mypy_failed" = 0 ]
# Every test: -m "" lifts the default deselection of the slow tier (pyproject.toml's addopts).
echo "== pytest"; "$VENV/bin/pytest" -q -m "" "$@"
