# Shared by scripts/*.sh: a virtual environment with the package, and the tests' programs.
VENV=${FRESHTOKEN_VENV:-.venv}

pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "freshtoken needs Python 3.11 or newer; install it (apt-get install python3) and retry" >&2
  return 1
}

# setup_venv [EXTRAS]: EXTRAS is the package's extras (default dev: every tool the checks use;
# the demo asks for rich only). A venv set up with dev has every other extra already.
setup_venv() {
  local extras=${1:-dev}
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py=$(pick_python)
    "$py" -m venv "$VENV" || {
      echo "could not create a virtual environment: apt-get install python3-venv" >&2; return 1; }
  fi
  # Editable install: only a changed pyproject.toml needs pip again (the stamp is a copy of it).
  if cmp -s pyproject.toml "$VENV/.freshtoken-pyproject"; then
    return 0  # dev: everything
  fi
  local stamp="$VENV/.freshtoken-pyproject"
  [ "$extras" = dev ] || stamp="$stamp-$extras"
  if ! cmp -s pyproject.toml "$stamp"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
    cp pyproject.toml "$stamp"
  fi
}

# The real programs the tests run (tests/helpers.py INSTALL; libfaketime for clock steps): without one, its tests skip, and
# fail when $CI is set. As root on Debian the missing ones are installed here.
setup_test_tools() {
  local missing=() pair
  for pair in redis-server:redis-server redis-cli:redis-tools curl:curl node:nodejs npm:npm faketime:faketime; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]} (apt)"
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing ${missing[*]} and cannot install here: their tests will be skipped" \
      "(and fail when CI is set)" >&2
  fi
}
