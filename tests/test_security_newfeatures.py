"""Attacks on login, refresh-token sinks and the spender, performed for real: a hostile
repository's modules and `freshtoken.toml`, a forged login redirect, a GitHub API that
redirects, and what the processes freshtoken starts show in /proc."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from freshtoken import AuthorizationCode, Secret, Settings
from freshtoken._errors import SinkError
from freshtoken._http import Timeouts
from freshtoken._log import redact, remember_secret
from freshtoken.oauth._loopback import LoopbackRedirect
from freshtoken.sinks import SinkOptions, open_sink
from freshtoken.testing import AuthServer, Client
from tests._attack import Listener, as_nobody, http_answer, seeded
from tests._fleet import worker_env
from tests.helpers import CANARY_SECRET, assert_no_leak, make_client

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")
#: The console script, not `python -m freshtoken`: the latter puts the working directory on
#: sys.path by the user's own choice.
FRESHTOKEN = str(Path(sys.executable).parent / "freshtoken")
GITHUB_CANARY = "ghp_canary0github0token0d41f"

# A command sink's program that records what it and its parent (the spender) show in /proc.
RECORDER = """\
import os, sys
token = sys.stdin.read()
seen = []
for pid in ("self", str(os.getppid())):
    for what in ("cmdline", "environ"):
        try:
            seen.append(open(f"/proc/{pid}/{what}", "rb").read().decode(errors="replace"))
        except OSError as exc:
            seen.append(f"unreadable {exc}")
open(sys.argv[1], "w").write("\\n".join(seen))
open(sys.argv[1] + ".token", "w").write(token)
"""


def test_the_spender_runs_no_module_of_the_working_directory(tmp_path: Path) -> None:
    """`python -m` puts the working directory first on sys.path: a repository's `json.py`
    would run in the spender and read the settings, secrets included, from its stdin."""
    repo = tmp_path / "repo"
    repo.mkdir()
    loot = tmp_path / "loot"
    (repo / "json.py").write_text(
        f"import sys\nopen({str(loot)!r}, 'wb').write(sys.stdin.buffer.read())\n"
        "raise SystemExit(0)\n"
    )
    with AuthServer(ttl=2) as server:
        env = worker_env(
            server,
            tmp_path / "t.db",
            FRESHTOKEN_GRANT="refresh_token",
            FRESHTOKEN_CLIENT_SECRET="demo-secret",
            XDG_CACHE_HOME=str(tmp_path / "cache"),
            XDG_CONFIG_HOME=str(tmp_path / "config"),
        )
        env.pop("PYTHONPATH", None)
        seeded(server, env)
        out = subprocess.run(
            [FRESHTOKEN, "token"], env=env, cwd=repo, capture_output=True, text=True, timeout=60
        )
    assert out.returncode == 0, out.stderr
    assert not loot.exists(), "the repository's json.py ran in the spender"
    assert "ended before presenting" not in out.stderr  # the spender itself presented it


def test_the_spender_and_a_command_sink_show_no_secret_in_proc(tmp_path: Path) -> None:
    """The spender (the sink program's parent) and the program: no client secret, GitHub
    token or refresh token in their argv or environment; the sink URL's `;` is an argument,
    not a shell's command separator."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    seen, pwned = tmp_path / "seen", tmp_path / "pwned"
    with AuthServer(ttl=2, clients=[Client("demo-client", CANARY_SECRET)]) as server:
        env = worker_env(
            server,
            tmp_path / "t.db",
            FRESHTOKEN_GRANT="refresh_token",
            FRESHTOKEN_CLIENT_SECRET=CANARY_SECRET,
            FRESHTOKEN_GITHUB_TOKEN=GITHUB_CANARY,
            FRESHTOKEN_REFRESH_TOKEN_SINK=f"command:{sys.executable} {script} {seen} ; "
            f"touch {pwned}",
            XDG_CACHE_HOME=str(tmp_path / "cache"),
            XDG_CONFIG_HOME=str(tmp_path / "config"),
        )
        seed = seeded(server, env, CANARY_SECRET)
        out = subprocess.run(
            [FRESHTOKEN, "token"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
    assert out.returncode == 0, out.stderr
    rotated = (tmp_path / "seen.token").read_text().strip()
    assert rotated and rotated != seed
    assert not pwned.exists()
    proc = seen.read_text()
    assert "freshtoken.broker._spender" in proc  # the parent read is the spender
    assert_no_leak(
        "/proc of the spender and the sink", proc, CANARY_SECRET, GITHUB_CANARY, seed, rotated
    )
    assert_no_leak("freshtoken's stderr", out.stderr, seed, rotated, GITHUB_CANARY)


def test_a_repository_file_cannot_choose_the_login_redirect(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "freshtoken.toml").write_text(
        '[default]\nredirect_port = 8765\nauthorization_url = "http://127.0.0.1:9/authorize"\n'
        'device_authorization_url = "http://127.0.0.1:9/device"\nscope = "from-the-repo"\n'
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path)}
    settings = Settings.load(environ=env, cwd=repo)
    assert settings.scope == ("from-the-repo",)  # the file was read
    assert settings.redirect_port is None
    assert settings.authorization_url is None and settings.device_authorization_url is None
    trusted = Settings.load(environ={**env, "FRESHTOKEN_CONFIG": str(repo / "freshtoken.toml")})
    assert trusted.redirect_port == 8765  # a file named by the environment may


def test_the_login_listener_takes_only_its_own_redirect_then_closes() -> None:
    with LoopbackRedirect("the-state") as listener:
        host, port = listener.redirect_uri.removeprefix("http://").split("/")[0].split(":")
        assert host == "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        with httpx.Client() as http:
            forged = http.get(f"{base}/callback?code=forged-code&state=guess")
            other = http.get(f"{base}/elsewhere?code=forged-code&state=the-state")
            assert (forged.status_code, other.status_code) == (400, 404)
            assert "forged-code" not in forged.text
            ok = http.get(f"{base}/callback?code=the-code&state=the-state")
            assert ok.status_code == 200
        assert listener.wait(5) == "the-code"
        assert listener.ignored == 1
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", int(port)), timeout=2):
        pass


FORGER = """\
import sys, urllib.error, urllib.request
for n in range(int(sys.argv[2])):
    try:  # a code whose three forms (plain, form- and URL-encoded) differ: 3 entries each
        urllib.request.urlopen(f"{sys.argv[1]}/callback?code=forged+code%2F{n}&state=guess")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400, exc.code
"""


def test_forged_redirects_never_push_secrets_out_of_the_redaction_list() -> None:
    """Another local user sends the login listener thousands of redirects with a wrong state:
    their codes are noise, not secrets, so a secret remembered before stays redacted."""
    remember_secret(CANARY_SECRET)
    with LoopbackRedirect("the-state") as listener:
        base = listener.redirect_uri.removesuffix("/callback")
        forged = as_nobody([sys.executable, "-c", FORGER, base, "1400"])
        assert forged.returncode == 0, forged.stderr
        assert listener.ignored == 1400
        with httpx.Client() as http:
            ok = http.get(f"{base}/callback?code=the-real-code&state=the-state")
        assert ok.status_code == 200 and listener.wait(5) == "the-real-code"
    assert redact(f"said {CANARY_SECRET}") == "said ***"
    assert redact("said the-real-code") == "said ***"


def test_the_github_sink_follows_no_redirect_with_its_token() -> None:
    """An API base that answers 307 elsewhere (a stale Enterprise host, a hostile proxy in
    front of it) never gets the GitHub token sent on to the new place."""
    with Listener() as elsewhere:
        moved = http_answer(307, b"{}", f"Location: {elsewhere.url}/repos/a/b/actions/secrets")
        with Listener(moved) as api:
            options = SinkOptions(
                github_token=Secret(GITHUB_CANARY),
                github_api_url=api.url,
                timeouts=Timeouts(1.0, 1.0),
            )
            sink = open_sink("github-secret://a/b/FT_REFRESH", options)
            with pytest.raises(SinkError) as caught:
                sink.prepare(_soon())
            assert api.connections >= 1
        assert elsewhere.connections == 0, elsewhere.reached()
    assert_no_leak("the sink's error", str(caught.value), GITHUB_CANARY)


def _soon() -> float:
    return time.monotonic() + 5.0


SPY = """
import json, os, subprocess, sys, time, urllib.request
step = subprocess.Popen([sys.executable, "-m", "freshtoken", "token"], executable="/proc/self/exe",
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
end = time.monotonic() + 30
spender = None
while spender is None and time.monotonic() < end:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:  # the step's own spender (its child), not another test's
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parent = int(f.read().rsplit(b")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if parent == step.pid and b"freshtoken.broker._spender" in f.read():
                        spender = entry
            except OSError:
                pass
    time.sleep(0.01)
# Once its refresh is at the server, the spender holds the secrets it read from its stdin.
while time.monotonic() < end:
    with urllib.request.urlopen(os.environ["SPY_STATS"]) as answer:
        if json.load(answer)["inflight_ages"]:
            break
    time.sleep(0.01)
said = []
for what in ("environ", "mem"):
    try:
        with open(f"/proc/{spender}/{what}", "rb") as f:
            f.read(1)
        said.append("read")
    except PermissionError:
        said.append("denied")
    except OSError as exc:
        said.append(type(exc).__name__)
step.wait()
print(spender is not None, *said, step.returncode)
"""


@pytest.mark.slow
def test_the_spender_is_closed_to_other_processes_of_its_user() -> None:
    """The spender holds the client secret and the refresh token while it refreshes: a
    program of the same user (a build step) must not read its memory or environment."""
    from tests._attack import as_nobody, open_place, require_other_user

    require_other_user()
    # This environment's interpreter (as tests/test_security_process.py runs it; started again
    # through /proc/self/exe, as the spender is): the spender runs isolated (-I), where a
    # PYTHONPATH could not bring freshtoken to it.
    # The server holds the refresh 3 s: the spy must still find the spender alive after it
    # saw the request arrive (with 1 s, a loaded machine's spy found it gone).
    with AuthServer(latency=1.0) as server, open_place() as place:
        place.chmod(0o777)
        seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert seed.refresh_token
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(place),
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            "FRESHTOKEN_GRANT": "refresh_token",
            "FRESHTOKEN_REFRESH_TOKEN": seed.refresh_token,
            "FRESHTOKEN_STORE": f"sqlite://{place}/store/t.db",
            "SPY_STATS": server.url + "/_stats",
        }
        run = as_nobody([sys.executable, "-c", SPY], env=env, cwd=place)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "denied", "denied", "0"], (run.stdout, run.stderr)
