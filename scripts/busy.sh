#!/usr/bin/env bash
# Runs a command while the CPU is busy, to check that a test does not depend on how fast the
# machine is: BUSY_LOOPS (default: one per core) `yes > /dev/null` loops run for as long as
# the command does, and are stopped (by their pids) when it ends. The command's exit status
# is kept.
#   scripts/busy.sh .venv/bin/pytest -q tests/test_spender.py::test_refresh_chain_survives_callers_killed_with_their_process_group
set -euo pipefail
loops=${BUSY_LOOPS:-$(nproc)}
pids=()
stop() { ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq "$loops"); do
  yes >/dev/null &
  pids+=("$!")
done
echo "busy.sh: $loops busy loop(s) running" >&2
"$@"
