"""`freshtoken serve` and `freshtoken exec`: the local endpoint, the proxy, and children in
several languages. Real subprocesses, real HTTP, loopback only."""

from __future__ import annotations

import base64
import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis as redis_client

from freshtoken import RefreshPolicy
from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft
from tests._redis import RedisProcess
from tests.helpers import CANARY_SECRET, Serve, assert_no_leak, require, wait_until

FT = [sys.executable, "-m", "freshtoken"]


@pytest.fixture
def canary_server() -> Iterator[AuthServer]:
    with AuthServer(clients=[Client("demo-client", CANARY_SECRET)], ttl=60) as server:
        yield server


def _env(tmp: Path, server: AuthServer, **extra: str) -> dict[str, str]:
    return cli_env(
        tmp,
        FRESHTOKEN_TOKEN_URL=server.token_url,
        FRESHTOKEN_CLIENT_ID="demo-client",
        FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
        FRESHTOKEN_PROXY_UPSTREAM=server.url,
        **extra,
    )


def test_serve_needs_the_key_and_keeps_files_private(
    tmp_path: Path, canary_server: AuthServer
) -> None:
    canary_server.configure(fail_first=1)  # a retry: -vv has something to say
    serve = Serve(["--proxy"], _env(tmp_path, canary_server), tmp_path, "-vv")
    try:
        url = serve.ready["url"]
        assert serve.ready["pid"] == serve.proc.pid
        assert stat.S_IMODE(Path(serve.ready["key_file"]).stat().st_mode) == 0o600
        assert httpx.get(url + "/token").status_code == 401
        assert httpx.get(url + "/token", headers={"X-Freshtoken-Key": "guess"}).status_code == 401
        assert httpx.get(serve.ready["proxy_url"] + "/api/echo").status_code == 401
        got = httpx.get(url + "/token?min_ttl=30", headers=serve.headers()).json()
        assert got["token_type"] == "Bearer" and 30 <= got["expires_in"] <= 60
        bearer = httpx.get(url + "/healthz", headers={"Authorization": f"Bearer {serve.key}"})
        assert bearer.json() == {"status": "ok"}
        metrics = httpx.get(url + "/metrics", headers=serve.headers()).text
        assert "freshtoken_unauthorized_requests_total 3" in metrics
        assert "freshtoken_mints_total 1" in metrics
        cmdline = Path(f"/proc/{serve.proc.pid}/cmdline").read_bytes()
        assert CANARY_SECRET.encode() not in cmdline and serve.key.encode() not in cmdline
    finally:
        output = serve.stop()
    assert "retrying in" in output, output  # the output checked was really captured
    for secret in (CANARY_SECRET, serve.key, got["access_token"]):
        assert secret not in output
    assert not Path(serve.ready["key_file"]).exists()


def test_serve_on_a_unix_socket(tmp_path: Path, canary_server: AuthServer) -> None:
    path = tmp_path / "ft.sock"
    serve = Serve(["--socket", str(path)], _env(tmp_path, canary_server), tmp_path)
    try:
        assert serve.ready["url"] == f"unix:{path}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport) as client:
            refused = client.get("http://local/token")
            # Closed after a refusal, and said so: a keep-alive client that sent its next
            # request on that connection got a ReadError on a loaded machine.
            assert (refused.status_code, refused.headers["connection"]) == (401, "close")
            assert client.get("http://local/token", headers=serve.headers()).status_code == 200
        env = {
            **_env(tmp_path, canary_server),
            "FRESHTOKEN_URL": serve.ready["url"],
            "FRESHTOKEN_KEY": serve.key,
        }
        out = ft(["token", "--format", "header"], env, tmp_path)
        assert out.returncode == 0 and out.stdout.startswith("Authorization: Bearer at_")
    finally:
        serve.stop()


@pytest.mark.slow
def test_proxy_retries_once_after_a_401_and_passes_429(tmp_path: Path) -> None:
    with AuthServer(ttl=60) as server:
        serve = Serve(["--proxy", server.url], cli_env(tmp_path, server), tmp_path)
        try:
            proxy = serve.ready["proxy_url"]
            headers = {**serve.headers(), "Authorization": "Bearer client-own-token"}
            first = httpx.post(proxy + "/api/echo", headers=headers, content=b"x" * 1000)
            assert first.status_code == 200 and first.json()["id"] == "demo-client"
            server.revoke_all()  # the proxy's cached token is refused now
            again = httpx.post(proxy + "/api/echo", headers=serve.headers(), content=b"y" * 10)
            assert again.status_code == 200
            stats = server.stats()
            assert (stats["api_401"], stats["tokens_minted"]) == (1, 2)
            metrics = httpx.get(serve.ready["url"] + "/metrics", headers=serve.headers()).text
            assert "freshtoken_proxy_retries_total 1" in metrics
            server.configure(api_rate_limit=1)
            httpx.get(proxy + "/api/v2/tokens/me", headers=serve.headers())
            limited = httpx.get(proxy + "/api/v2/tokens/me", headers=serve.headers())
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) > 0
            assert limited.json()["code"] == "too.many.requests.retry.after"
        finally:
            serve.stop()


# Each child calls for at least SECONDS and at least ROUNDS rounds of two calls (a slow
# machine takes longer, never fewer calls), then writes its whole environment to DUMP. It asks
# for a token with 1 s left (the refresh window of the test's 2-s tokens): a token handed out
# with 0.3 s left died before a loaded machine had started the shell's curl.
CHILD_PY = """
import json, os, sys, time, urllib.request
base, key, proxy = os.environ["FRESHTOKEN_URL"], os.environ["FRESHTOKEN_KEY"], \\
    os.environ["FRESHTOKEN_PROXY_URL"]
api, seconds, rounds, dump = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
end = time.time() + seconds
codes = []
while time.time() < end or len(codes) < 2 * rounds:
    req = urllib.request.Request(base + "/token?min_ttl=1", headers={"X-Freshtoken-Key": key})
    token = json.load(urllib.request.urlopen(req))["access_token"]
    for url, headers in ((api, {"Authorization": "Bearer " + token}),
                         (proxy + "/api/v2/tokens/me", {"X-Freshtoken-Key": key})):
        try:
            request = urllib.request.Request(url, headers=headers)
            codes.append(urllib.request.urlopen(request).status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    time.sleep(0.1)
with open(dump, "w") as f:
    json.dump(dict(os.environ), f)
print(json.dumps({"calls": len(codes), "bad": [c for c in codes if c != 200],
                  "secret_seen": any("SECRET" in k for k in os.environ)}))
"""

CHILD_SH = """
end=$(( $(date +%s) + $2 )); calls=0; bad=0
while [ "$(date +%s)" -lt "$end" ] || [ "$calls" -lt $(( 2 * $3 )) ]; do
  h=$(freshtoken token --min-ttl 1 --format header)
  for code in $(curl -s -o /dev/null -w "%{http_code}" -H "$h" "$1") \\
      $(curl -s -o /dev/null -w "%{http_code}" -H "X-Freshtoken-Key: $FRESHTOKEN_KEY" \\
        "$FRESHTOKEN_PROXY_URL/api/v2/tokens/me"); do
    calls=$((calls+1)); [ "$code" = 200 ] || bad=$((bad+1))
  done
  sleep 0.1
done
env > "$4"
echo "{\\"calls\\": $calls, \\"bad\\": $bad}"
"""

CHILD_JS = """
const [api, seconds, rounds, dump] = process.argv.slice(1);  // node -e has no script path
const {FRESHTOKEN_URL: base, FRESHTOKEN_KEY: key, FRESHTOKEN_PROXY_URL: proxy} = process.env;
const http = require("http");
const get = (url, headers) => new Promise((ok, no) => http.get(url, {headers}, res => {
  let body = ""; res.on("data", d => body += d); res.on("end", () => ok([res.statusCode, body]));
}).on("error", no));
(async () => {
  const end = Date.now() + seconds * 1000; let calls = 0, bad = 0;
  while (Date.now() < end || calls < 2 * rounds) {
    const [, body] = await get(base + "/token?min_ttl=1", {"X-Freshtoken-Key": key});
    const token = JSON.parse(body).access_token;
    for (const [url, h] of [[api, {Authorization: "Bearer " + token}],
                            [proxy + "/api/v2/tokens/me", {"X-Freshtoken-Key": key}]]) {
      const [code] = await get(url, h); calls++; if (code !== 200) bad++;
    }
    await new Promise(r => setTimeout(r, 100));
  }
  require("fs").writeFileSync(dump, JSON.stringify(process.env));
  console.log(JSON.stringify({calls, bad}));
})();
"""

#: language -> (the program it needs besides Python and sh, argv)
CHILDREN = {
    "python": (None, [sys.executable, "-c", CHILD_PY]),
    "shell": ("curl", ["sh", "-c", CHILD_SH, "child"]),
    "node": ("node", ["node", "-e", CHILD_JS, "--"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("language", list(CHILDREN))
def test_exec_children_never_see_a_401(tmp_path: Path, language: str) -> None:
    needs, argv = CHILDREN[language]
    if needs:
        require(needs)
    lifetime, seconds, rounds = 2.0, 6, 15  # three lifetimes, at least 30 calls
    window = RefreshPolicy().window(lifetime)
    assert window == 1.0, "the children ask for min_ttl=1, this window"
    dump = tmp_path / "child-environment"
    with AuthServer(ttl=lifetime, clients=[Client("demo-client", CANARY_SECRET)]) as server:
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
            FRESHTOKEN_PROXY_UPSTREAM=server.url,
        )
        started = time.monotonic()
        out = ft(
            [
                *("exec", "--proxy", "--", *argv),
                *(server.url + "/api/v2/tokens/me", str(seconds), str(rounds), str(dump)),
            ],
            env,
            tmp_path,
            timeout=60,
        )
        elapsed = time.monotonic() - started
        minted = server.stats()["tokens_minted"]
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["calls"] >= 2 * rounds, result
    assert result["bad"] in (0, []), result
    assert result.get("secret_seen") in (None, False)
    assert_no_leak("the child's environment", dump.read_text())
    assert minted <= elapsed / (lifetime - window) + 1, (minted, elapsed)


@pytest.mark.slow
def test_exec_returns_the_exit_code_passes_signals_and_leaves_nothing(
    tmp_path: Path, server: AuthServer
) -> None:
    env = cli_env(tmp_path, server)
    assert ft(["exec", "--", "sh", "-c", "exit 7"], env, tmp_path).returncode == 7
    marker = tmp_path / "got-term"
    script = (
        f"trap 'echo term > {marker}; exit 3' TERM; echo $$ > {tmp_path / 'pid'}; "
        "while true; do sleep 0.05; done"
    )
    proc = subprocess.Popen([*FT, "exec", "--", "sh", "-c", script], env=env, cwd=tmp_path)
    wait_until(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip() != "")
    child = int((tmp_path / "pid").read_text())
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    assert b"demo-secret" not in cmdline
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 3
    assert marker.read_text().strip() == "term"
    assert not Path(f"/proc/{child}").exists()
    env_out = ft(
        ["exec", "--env", "API_TOKEN", "--", sys.executable, "-c", CHILD_ENV], env, tmp_path
    )
    assert env_out.returncode == 0, env_out.stderr
    child = json.loads(env_out.stdout)
    token, url, key = child["API_TOKEN"], child["FRESHTOKEN_URL"], child["FRESHTOKEN_KEY"]
    assert token.startswith("at_") and url.startswith("http://127.0.0.1:")
    assert "FRESHTOKEN_CLIENT_SECRET" not in child and "demo-secret" not in child.values()
    # The child's key opens the endpoint it was given, for the token it was given.
    assert key and "FRESHTOKEN_KEY" not in env
    assert child["with_key"] == [200, token] and child["without_key"] == 401


# Prints its environment, and what $FRESHTOKEN_URL/token answers with and without the key.
CHILD_ENV = """
import json, os, urllib.error, urllib.request
def get(headers):
    request = urllib.request.Request(os.environ["FRESHTOKEN_URL"] + "/token", headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:
            return [answer.status, json.load(answer)["access_token"]]
    except urllib.error.HTTPError as e:
        return e.code
print(json.dumps({**os.environ, "with_key": get({"X-Freshtoken-Key": os.environ["FRESHTOKEN_KEY"]}),
                  "without_key": get({})}))
"""

STORE_KEY_CANARY = base64.b64encode(b"canary-store-key-0123456789abcde").decode()
REDIS_CANARY = "canary-redis-password-3c9e1a"


@pytest.mark.slow
@pytest.mark.parametrize(
    "form",
    [
        "variables",
        "password-in-url",  # FRESHTOKEN_STORE is kept from children (issue 11)
        "genesys-variables",
    ],
)
def test_exec_children_get_no_secret_setting_by_value(tmp_path: Path, form: str) -> None:
    """Every secret setting `exec` was given (client secret, Redis password, store key) is
    absent from its child's whole environment, whatever variable carried it."""
    redis = RedisProcess(tmp_path, ("requirepass", REDIS_CANARY)).start()
    try:
        with AuthServer(clients=[Client("demo-client", CANARY_SECRET)]) as server:
            env = cli_env(
                tmp_path,
                server,
                FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
                FRESHTOKEN_STORE_KEY=STORE_KEY_CANARY,
            )
            if form == "password-in-url":
                env["FRESHTOKEN_STORE"] = redis.url.replace("redis://", f"redis://:{REDIS_CANARY}@")
            else:
                env["FRESHTOKEN_STORE"] = redis.url
                env["FRESHTOKEN_REDIS_PASSWORD"] = REDIS_CANARY
            if form == "genesys-variables":
                del env["FRESHTOKEN_CLIENT_ID"], env["FRESHTOKEN_CLIENT_SECRET"]
                env["GENESYSCLOUD_OAUTHCLIENT_ID"] = "demo-client"
                env["GENESYSCLOUD_OAUTHCLIENT_SECRET"] = CANARY_SECRET
            code = "import json, os; print(json.dumps(dict(os.environ)))"
            out = ft(
                ["exec", "--env", "API_TOKEN", "--", sys.executable, "-c", code], env, tmp_path
            )
            minted = server.stats()["tokens_minted"]
            stored = len(redis_client.Redis(port=redis.port, password=REDIS_CANARY).keys("*"))
    finally:
        redis.stop()
    assert out.returncode == 0, out.stderr
    assert minted == 1 and stored == 1  # the settings were used: the token went to Redis
    child = json.loads(out.stdout)
    assert child["FRESHTOKEN_URL"] and child["API_TOKEN"].startswith("at_")
    dump = "\n".join(f"{k}={v}" for k, v in child.items() if k != "API_TOKEN")
    assert_no_leak("the child's environment", dump, REDIS_CANARY, STORE_KEY_CANARY)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_serve_ends_at_once_on_a_signal_with_a_refresh_in_flight(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Runners and containers kill about 10 s after SIGTERM: serve ends within 2 s, its key
    file removed, and leaves the refresh to its own process, which stores the new token."""
    from tests._cli import refresh_token_env
    from tests.helpers import live_processes

    with AuthServer(ttl=600) as server:
        env = refresh_token_env(server, tmp_path)
        server.configure(latency=4.0)
        serve = Serve([], env, tmp_path)
        wait_until(lambda: bool(server.stats()["inflight_ages"]))  # its first refresh
        spenders = [
            p for p, parent in live_processes("_spender").items() if parent == serve.proc.pid
        ]
        sent = time.monotonic()
        serve.proc.send_signal(sig)
        _, err = serve.proc.communicate(timeout=30)
        took = time.monotonic() - sent
        assert not Path(serve.ready["key_file"]).exists()
        wait_until(lambda: not set(spenders) & set(live_processes("_spender")), timeout=30)
        server.configure(latency=0.0)
        after = ft(["token"], env, tmp_path)
        stats = server.stats()
    assert serve.proc.returncode == 0, err
    assert took < 2.0, took  # before: 11.5 s, as long as the refresh took (SIGHUP: killed)
    assert spenders  # the refresh was in its own process, which outlived serve
    assert after.returncode == 0, after.stderr  # the token that process stored
    assert stats["refreshes"] == 1 and stats["reuse_detections"] == 0, stats
