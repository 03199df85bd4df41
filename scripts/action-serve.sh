#!/usr/bin/env bash
# The action's step: start `freshtoken serve` for the rest of the job, mask its key, and export
# where it is through $GITHUB_ENV and $GITHUB_OUTPUT. The secret comes by environment only.
#
# The workspace is the repository's content, not configuration: the step runs in a private
# directory, reads no freshtoken.toml (FRESHTOKEN_CONFIG names an empty file of its own, so
# neither the workspace's nor the user's is read) and runs Python isolated (-I), so that no
# module in the working directory is imported while the secret is in the environment.
set -euo pipefail
: "${GITHUB_ENV:?run inside GitHub Actions (GITHUB_ENV is not set)}"
: "${GITHUB_OUTPUT:?run inside GitHub Actions (GITHUB_OUTPUT is not set)}"
umask 077
dir=$(mktemp -d "${RUNNER_TEMP:-/tmp}/freshtoken.XXXXXX")
cd "$dir"
: > "$dir/config.toml"
export FRESHTOKEN_CONFIG="$dir/config.toml"
unset FRESHTOKEN_PROFILE
# Empty inputs arrive as empty variables: drop them so that they do not count as set.
for name in $(compgen -e | grep '^FRESHTOKEN_'); do
  [ -n "${!name}" ] || unset "$name"
done
case "${FRESHTOKEN_ACTION_LOG_LEVEL:-info}" in
  quiet) args=(-q) ;;
  info) args=() ;;
  debug) args=(-vv) ;;
  *) echo "log-level must be quiet, info or debug" >&2; exit 2 ;;
esac
if [ -n "${FRESHTOKEN_MIN_TTL:-}" ] && ! [[ "$FRESHTOKEN_MIN_TTL" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "margin must be a number of seconds (e.g. 300), not '$FRESHTOKEN_MIN_TTL'" >&2
  exit 2
fi
args+=(serve --key-file "$dir/key")
# The proxy only where its upstream is known: an explicit URL, an API URL or a region.
case "${FRESHTOKEN_ACTION_PROXY:-}" in
  "" | off) ;;
  auto) [ -z "${FRESHTOKEN_REGION:-}${FRESHTOKEN_API_URL:-}${FRESHTOKEN_PROXY_UPSTREAM:-}" ] || args+=(--proxy) ;;
  *) args+=(--proxy "$FRESHTOKEN_ACTION_PROXY") ;;
esac
# Later steps get a configuration without secrets (FRESHTOKEN_CONFIG): `freshtoken token` asks
# this serve (FRESHTOKEN_URL/KEY), `status` reads the same store.
python3 -I - "$dir/later.toml" << 'PY'
import json, os, sys
keys = ("region", "token_url", "issuer", "api_url", "provider", "client_id", "store", "min_ttl")
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write("[default]\n")
    for key in keys:
        if value := os.environ.get("FRESHTOKEN_" + key.upper()):
            if key == "min_ttl":
                out.write(f"{key} = {float(value)!r}\n")  # a number in TOML
            elif key != "store" or not ("@" in value or "?" in value):  # a password in
                # the userinfo or the query (?password=, which redis-py honours) stays out
                out.write(f"{key} = {json.dumps(value)}\n")
PY
# The virtual environment's interpreter, isolated (-I), rather than the console script (whose
# interpreter line has no -I): a PYTHONPATH into the checkout (`env: PYTHONPATH: src`), a
# PYTHONSTARTUP or a sitecustomize there cannot run code in the process that holds the secret.
venv_python="$(dirname "$(command -v freshtoken)")/python"
nohup "$venv_python" -I -m freshtoken "${args[@]}" > "$dir/ready" 2> "$dir/serve.log" < /dev/null &
pid=$!
for _ in $(seq 300); do
  [ -s "$dir/ready" ] && break
  if ! kill -0 "$pid" 2> /dev/null; then
    cat "$dir/serve.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$dir/ready" ] || { echo "freshtoken serve did not start in 30 s" >&2; exit 1; }
field() { python3 -I -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$dir/ready" "$1"; }
url=$(field url)
proxy_url=$(field proxy_url)
key=$(cat "$dir/key")
echo "::add-mask::$key"
# A first token now, from serve itself (client credentials and the like; a refresh token is
# spent only when a step asks): a refused client (a wrong secret, region or key: exit 3) fails
# this step with the server's answer and the hint, instead of every later step; a server that
# does not answer only warns, and serve keeps trying.
case "${FRESHTOKEN_GRANT:-client_credentials}" in
  refresh_token | authorization_code) ;;
  *)
    if ! python3 -I - "$url" "$dir/key" << 'PY'; then kill "$pid" 2> /dev/null; exit 3; fi
import json, sys, urllib.error, urllib.request
asked = urllib.request.Request(
    sys.argv[1] + "/token", headers={"X-Freshtoken-Key": open(sys.argv[2]).read().strip()}
)
try:
    urllib.request.urlopen(asked, timeout=120).read()
except urllib.error.HTTPError as exc:
    said = json.loads(exc.read() or b"{}")
    # One line each: nothing a server said may start a workflow command of its own.
    one = lambda key: " ".join(str(said.get(key) or "").split())  # noqa: E731
    text = f"freshtoken: {one('error_description')} (error={one('error')})"
    text += f"\nhint: {one('hint')}" if said.get("hint") else ""
    if exc.code == 502:  # the server refused this client: it will not change by itself
        print("::error::" + text, file=sys.stderr)
        sys.exit(3)
    print(f"::warning::{text.splitlines()[0]} (serve keeps trying)", file=sys.stderr)
PY
    ;;
esac
{
  echo "FRESHTOKEN_URL=$url"
  echo "FRESHTOKEN_KEY=$key"
  [ -z "$proxy_url" ] || echo "FRESHTOKEN_PROXY_URL=$proxy_url"
  echo "FRESHTOKEN_SERVE_PID=$pid"
  echo "FRESHTOKEN_CONFIG=$dir/later.toml"
} >> "$GITHUB_ENV"
{
  echo "url=$url"
  echo "proxy-url=$proxy_url"
} >> "$GITHUB_OUTPUT"
echo "freshtoken serves tokens at $url${proxy_url:+ and proxies at $proxy_url}"
