#!/usr/bin/env bash
# The action's first step: freshtoken in a virtual environment of its own under $RUNNER_TEMP,
# created once per job and reused by later uses of the action; the runner's Python is only used
# to create it (nothing is installed into it). Its bin directory goes on $GITHUB_PATH so that
# later steps can run `freshtoken token`, `status` and `doctor`.
#
# FRESHTOKEN_ACTION_VERSION: "" installs the action's own code (the tag the workflow names,
# e.g. v1.2.3); a version such as 1.2.3 installs that release from PyPI instead.
set -euo pipefail
: "${GITHUB_PATH:?run inside GitHub Actions (GITHUB_PATH is not set)}"
: "${GITHUB_ACTION_PATH:?run inside GitHub Actions (GITHUB_ACTION_PATH is not set)}"
version="${FRESHTOKEN_ACTION_VERSION:-}"
if [ -n "$version" ]; then
  case "$version" in
    *[!0-9A-Za-z.+-]*) echo "version: not a version number: $version" >&2; exit 2 ;;
  esac
  what="freshtoken==${version#v}"
  tag="${version#v}"
else
  what="$GITHUB_ACTION_PATH"
  tag="action-$(cd "$GITHUB_ACTION_PATH" && { git rev-parse --short HEAD 2> /dev/null || echo local; })"
fi
venv="${RUNNER_TEMP:-/tmp}/freshtoken-venv-$tag"
if [ ! -x "$venv/bin/freshtoken" ]; then
  python3 -I -m venv "$venv"
  "$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check "$what"
fi
echo "$venv/bin" >> "$GITHUB_PATH"
echo "freshtoken $("$venv/bin/python" -I -c 'import importlib.metadata as m; print(m.version("freshtoken"))') in $venv"
