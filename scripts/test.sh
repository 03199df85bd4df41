#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine, then runs every check and test.
# Extra arguments go to pytest (e.g. scripts/test.sh -k broker).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_setup.sh
setup_venv
setup_test_tools
echo "== ruff"; "$VENV/bin/ruff" check src tests bench
"$VENV/bin/ruff" format --check src tests bench
echo "== mypy --strict"; "$VENV/bin/mypy"
# Tests run on Linux; Windows and macOS are type-checked (each with its own cache).
for platform in win32 darwin; do
  echo "== mypy --strict --platform $platform src"
  "$VENV/bin/mypy" --platform "$platform" --cache-dir ".mypy_cache/$platform" src
done
# Every test: -m "" lifts the default deselection of the slow tier (pyproject.toml's addopts).
echo "== pytest"; "$VENV/bin/pytest" -q -m "" "$@"
