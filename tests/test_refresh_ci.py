"""Refresh tokens across pipeline runs, as a workflow uses them: every run a real `freshtoken`
process with a fresh store (thrown away afterwards), seeded from the secret as the workflow
reads it, writing each rotated refresh token back; runs killed mid-refresh; keep-alive."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from freshtoken import AuthorizationCode, FreshtokenError
from freshtoken.testing import GITHUB_TEST_TOKEN, AuthServer, GitHubSecrets
from tests._cli import cli_env, ft
from tests.helpers import assert_no_leak, live_processes, make_client, wait_until

SECRET = "github-secret://acme/pipeline/FT_REFRESH"


@pytest.fixture
def github() -> Iterator[GitHubSecrets]:
    with GitHubSecrets() as stand_in:
        yield stand_in


def login(server: AuthServer) -> str:
    token = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
    assert token.refresh_token
    return token.refresh_token


def run_env(tmp: Path, server: AuthServer, name: str, **extra: str) -> dict[str, str]:
    """A runner's environment: a store of its own, refresh tokens only."""
    home = tmp / name
    home.mkdir(mode=0o700)
    defaults = {"FRESHTOKEN_GRANT": "refresh_token", "FRESHTOKEN_STORE": f"sqlite:///{home}/t.db"}
    return cli_env(home, server, **{**defaults, **extra})


def github_run(tmp: Path, server: AuthServer, github: GitHubSecrets, name: str) -> dict[str, str]:
    """A run seeded from the secret as `${{ secrets.FT_REFRESH }}` gives it."""
    seed = github.value(SECRET)
    assert seed
    return run_env(
        tmp,
        server,
        name,
        FRESHTOKEN_REFRESH_TOKEN=seed,
        FRESHTOKEN_REFRESH_TOKEN_SINK=SECRET,
        FRESHTOKEN_GITHUB_TOKEN=GITHUB_TEST_TOKEN,
        GITHUB_API_URL=github.url,
    )


def start_run(
    env: dict[str, str], cwd: Path, *, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """`freshtoken token` as a workflow step runs it, in the background (to be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "freshtoken", "token"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=new_session,
    )


def works(server: AuthServer, access_token: str) -> bool:
    return (
        httpx.get(
            server.url + "/api/echo", headers={"Authorization": f"Bearer {access_token}"}
        ).status_code
        == 200
    )


CHILD = (
    "import os, subprocess, sys\n"
    "hidden = ('FRESHTOKEN_GITHUB_TOKEN', 'FRESHTOKEN_REFRESH_TOKEN')\n"
    "assert not any(name in os.environ for name in hidden)\n"
    "sys.exit(subprocess.call([sys.executable, '-m', 'freshtoken', 'token']))\n"
)


@pytest.mark.slow
def test_consecutive_runs_keep_the_chain_alive(
    server: AuthServer, github: GitHubSecrets, tmp_path: Path
) -> None:
    github.set_value(SECRET, login(server))
    seen = []
    for n in range(4):
        seed = github.value(SECRET)
        assert seed
        env = github_run(tmp_path, server, github, f"run{n}")
        if n % 2:  # `exec`: the command gets neither the GitHub token nor the refresh token
            out = ft(["exec", "--", sys.executable, "-c", CHILD], env, tmp_path)
        else:  # -vv: every request logged, the GitHub token and refresh tokens in none
            out = ft(["-vv", "token"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert works(server, out.stdout.strip())
        written = github.value(SECRET)
        assert written and written != seed  # rotated and written back
        seen += [seed, written]
        assert_no_leak(
            f"run {n}",
            out.stdout.replace(out.stdout.strip(), "") + out.stderr,
            GITHUB_TEST_TOKEN,
            *seen,
        )
    stats = server.stats()
    assert stats["refreshes"] == 4 and stats["reuse_detections"] == 0
    assert server.active_refresh_tokens("demo-client") == 1  # the one in the secret


@pytest.mark.slow
def test_later_steps_of_a_job_ignore_the_jobs_first_secret_value(
    server: AuthServer, github: GitHubSecrets, tmp_path: Path
) -> None:
    github.set_value(SECRET, login(server))
    env = github_run(tmp_path, server, github, "job")  # every step sees the job's first value
    for _ in range(3):
        out = ft(["keepalive", "--max-idle", "0"], env, tmp_path)  # a refresh per step
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("refreshed")
    assert server.stats()["refreshes"] == 3 and server.stats()["reuse_detections"] == 0
    assert server.active_refresh_tokens("demo-client") == 1


@pytest.mark.slow
def test_a_run_killed_while_github_stores_the_secret_leaves_a_good_one(
    server: AuthServer, github: GitHubSecrets, tmp_path: Path
) -> None:
    github.set_value(SECRET, login(server))
    github.configure(put_latency=1.0)
    env = github_run(tmp_path, server, github, "killed")
    process = start_run(env, tmp_path)
    try:
        wait_until(lambda: github.counts["puts_started"] == 1, timeout=30)
    finally:
        process.kill()  # after the server answered, during the write-back
        process.wait()
    wait_until(lambda: github.counts["puts"] == 1)  # GitHub finishes what it was sent
    github.configure(put_latency=0.0)
    out = ft(["token"], github_run(tmp_path, server, github, "next"), tmp_path)
    assert out.returncode == 0, out.stderr
    assert server.stats()["reuse_detections"] == 0
    assert server.active_refresh_tokens("demo-client") == 1


BLOCKING = """
import os, sys, time
open(sys.argv[2] + ".pid", "w").write(str(os.getpid()))
while not os.path.exists(sys.argv[2] + ".go"):
    time.sleep(0.01)
token = sys.stdin.read().strip()
open(sys.argv[1] + ".tmp", "w").write(token)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.parametrize("sink_dies_too", [False, True])
def test_a_run_killed_before_the_write_back_finished(
    server: AuthServer, tmp_path: Path, sink_dies_too: bool
) -> None:
    """The program of a command sink outlives a killed run and finishes the write; if it is
    killed too, the sink keeps the spent token, and the next run fails as documented (exit 3,
    invalid_grant, log in again) and works again after a new login."""
    script, stored, flag = tmp_path / "sink.py", tmp_path / "stored", tmp_path / "flag"
    script.write_text(BLOCKING)
    stored.write_text(login(server))
    sink = f"command:{sys.executable} {script} {stored} {flag}"

    def env(name: str) -> dict[str, str]:
        return run_env(
            tmp_path,
            server,
            name,
            FRESHTOKEN_REFRESH_TOKEN=stored.read_text(),
            FRESHTOKEN_REFRESH_TOKEN_SINK=sink,
        )

    process = start_run(env("killed"), tmp_path)
    pid_file = Path(f"{flag}.pid")
    try:
        wait_until(pid_file.exists, timeout=30)  # the server has answered: the sink runs
    finally:
        process.kill()
        process.wait()
    wait_until(lambda: bool(pid_file.read_text()))
    sink_pid = int(pid_file.read_text())
    if sink_dies_too:
        os.kill(sink_pid, signal.SIGKILL)
    Path(f"{flag}.go").touch()
    wait_until(
        lambda: (
            not Path(f"/proc/{sink_pid}").exists()
            or "zombie" in Path(f"/proc/{sink_pid}/status").read_text().lower()
        )
    )
    pid_file.unlink()
    Path(f"{flag}.go").touch()  # later writes go through at once
    out = ft(["token"], env("next"), tmp_path)
    if not sink_dies_too:
        assert out.returncode == 0, out.stderr
        assert server.stats()["reuse_detections"] == 0
        assert server.active_refresh_tokens("demo-client") == 1
        return
    assert out.returncode == 3, out.stderr
    assert "invalid_grant" in out.stderr and "fresh login" in out.stderr
    stored.write_text(login(server))  # the documented recovery: log in again, seed the sink
    out = ft(["token"], env("recovered"), tmp_path)
    assert out.returncode == 0, out.stderr
    assert server.active_refresh_tokens("demo-client") == 1


@pytest.mark.slow
def test_keepalive_refreshes_only_when_idle_past_the_limit(
    server: AuthServer, tmp_path: Path
) -> None:
    sink = tmp_path / "sink" / "refresh_token"
    sink.parent.mkdir(mode=0o700)
    fd = os.open(sink, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, login(server).encode())
    os.close(fd)
    env = run_env(tmp_path, server, "scheduled", FRESHTOKEN_REFRESH_TOKEN_SINK=sink.as_uri())
    out = ft(["keepalive", "--max-idle", "1h"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("not needed") and server.stats()["refreshes"] == 0
    before = sink.read_text()
    two_hours_ago = time.time() - 7200
    os.utime(sink, (two_hours_ago, two_hours_ago))
    out = ft(["keepalive", "--max-idle", "1h"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refreshed: idle 2h") and server.stats()["refreshes"] == 1
    assert (
        sink.read_text().strip() != before.strip() and sink.stat().st_mtime > two_hours_ago + 3600
    )
    out = ft(["keepalive", "--max-idle", "1h"], env, tmp_path)
    assert out.stdout.startswith("not needed") and server.stats()["refreshes"] == 1
    assert_no_leak("keepalive", out.stdout + out.stderr, before.strip(), sink.read_text().strip())


@pytest.mark.slow
def test_keepalive_reads_when_the_github_secret_was_last_written(
    server: AuthServer, github: GitHubSecrets, tmp_path: Path
) -> None:
    github.set_value(SECRET, login(server))
    out = ft(
        ["keepalive", "--max-idle", "20d"], github_run(tmp_path, server, github, "a"), tmp_path
    )
    assert out.stdout.startswith("not needed"), out.stderr
    github.set_updated_at(SECRET, time.time() - 21 * 86400)
    out = ft(
        ["keepalive", "--max-idle", "20d"], github_run(tmp_path, server, github, "b"), tmp_path
    )
    assert out.stdout.startswith("refreshed: idle 21d"), out.stderr
    assert server.stats()["refreshes"] == 1 and server.active_refresh_tokens("demo-client") == 1


def test_the_test_server_expires_idle_refresh_tokens(server: AuthServer) -> None:
    refresh = login(server)
    server.configure(refresh_token_idle=0.2)
    wait_until(lambda: server.active_refresh_tokens("demo-client") == 0)
    answer = httpx.post(
        server.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=("demo-client", "demo-secret"),
    )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"


# The action's inputs and the settings they become (its serve step's env: in action.yml).
ACTION_INPUTS = {
    name: var
    for var, name in re.findall(
        r"(FRESHTOKEN_[A-Z_]+): \$\{\{ inputs\.([a-z-]+) \}\}",
        (EXAMPLES.parent.parent / "action.yml").read_text(),
    )
}
VENV_FRESHTOKEN = '"$RUNNER_TEMP/ft/bin/freshtoken"'


def workflow(name: str) -> tuple[dict[str, str], list[str]]:
    """The settings the job's steps get (the job's `env:`, or the action's `with:` inputs as
    the action passes them on) and its `run:` commands, from the YAML subset the examples use."""
    env: dict[str, str] = {}
    runs: list[str] = []
    block = ""
    for line in (EXAMPLES / name).read_text().splitlines():
        text = line.split(" #", 1)[0].rstrip()
        if not text.strip():
            continue  # a comment line
        if text.strip() in ("env:", "with:"):
            block = text.strip()
            continue
        if block == "env:" and (found := re.fullmatch(r"\s{6}([A-Z_]+): (.+)", text)):
            env[found.group(1)] = found.group(2)
            continue
        if block == "with:" and (found := re.fullmatch(r"\s{10}([a-z-]+): (.+)", text)):
            env[ACTION_INPUTS[found.group(1)]] = found.group(2)
            continue
        block = ""
        if found := re.fullmatch(r"\s*(?:- )?run: (.+)", text):
            command = found.group(1)
            if command.startswith("'"):
                command = command[1:-1]
            runs.append(command.replace(VENV_FRESHTOKEN, "freshtoken"))
    return env, runs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["refresh-token.yml", "keepalive.yml"])
def test_the_workflow_examples_run(
    name: str, server: AuthServer, github: GitHubSecrets, tmp_path: Path
) -> None:
    """Each example's environment, its `${{ ... }}` bound to the stand-ins, runs its freshtoken
    steps (`exec` replaced by `token`: no npm project here) and keeps the chain alive."""
    env, runs = workflow(name)
    steps = [r for r in runs if r.startswith("freshtoken ")]
    others = [r for r in runs if not r.startswith("freshtoken ")]
    assert steps and all(r.startswith(("python3 -m venv", "npm ")) for r in others), others
    assert "python3 -m pip" not in "".join(runs)  # never into the runner's Python (PEP 668)
    github.set_value(SECRET, login(server))
    bound = {
        "${{ vars.OAUTH_CLIENT_ID }}": "demo-client",
        "${{ secrets.OAUTH_CLIENT_SECRET }}": "demo-secret",
        "${{ secrets.FT_REFRESH }}": github.value(SECRET) or "",
        "${{ github.repository }}": "acme/pipeline",
        "${{ secrets.FT_SECRETS_WRITER }}": GITHUB_TEST_TOKEN,
    }
    for key, raw in env.items():
        value = raw
        for placeholder, real in bound.items():
            value = value.replace(placeholder, real)
        assert "${{" not in value, (key, value)
        env[key] = value
    env["FRESHTOKEN_TOKEN_URL"] = server.token_url
    base = run_env(tmp_path, server, "runner", GITHUB_API_URL=github.url, **env)
    for step in steps:
        args = step.split(">", 1)[0].split()[1:]
        if args[0] == "exec":
            args = ["token"]
        out = ft(args, base, tmp_path)
        assert out.returncode == 0, (step, out.stderr)
    assert server.stats()["reuse_detections"] == 0
    assert server.active_refresh_tokens("demo-client") == 1


def test_cli_testserver_runs_the_github_stand_in_too() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "freshtoken", "testserver", "--github"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        key_url = ready["github_api_url"] + "/repos/acme/pipeline/actions/secrets/public-key"
        good = httpx.get(key_url, headers={"Authorization": f"Bearer {ready['github_token']}"})
        assert good.status_code == 200 and len(base64.b64decode(good.json()["key"])) == 32
        assert httpx.get(key_url, headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.mark.slow
def test_runs_killed_at_random_mid_refresh_keep_the_chain_alive(
    server: AuthServer, github: GitHubSecrets, tmp_path: Path
) -> None:
    """As a workflow is cancelled: each run with a fresh store, seeded from the secret; every
    other run's step killed with its process group while its refresh is at the server, or at
    a random instant. The refresh's own process finishes and writes the secret back, so the
    chain survives and no refresh token is ever presented twice."""
    import random

    rng = random.Random(1729)
    killed = outlived = 0
    github.set_value(SECRET, login(server))
    server.configure(latency=0.3)  # long enough for kills to land while the server works
    for n in range(8):
        env = github_run(tmp_path, server, github, f"run{n}")
        if n % 2 == 0:
            out = ft(["token"], env, tmp_path)
            assert out.returncode == 0, out.stderr
            assert works(server, out.stdout.strip())
            continue
        step = start_run(env, tmp_path, new_session=True)  # killed as a runner kills a step
        before = github.value(SECRET)
        if n % 4 == 1:  # while the server works on its refresh
            wait_until(lambda: bool(server.stats()["inflight_ages"]), timeout=30)
        try:
            step.wait(timeout=0 if n % 4 == 1 else rng.uniform(0.2, 1.5))
        except subprocess.TimeoutExpired:
            os.killpg(step.pid, signal.SIGKILL)
            killed += 1
        step.wait()
        # The next run starts once the cancelled one's refresh has ended (a new workflow run
        # starts seconds later, a refresh ends within its deadline).
        wait_until(lambda: not live_processes("freshtoken.broker._spender"), timeout=30)
        if step.returncode == -signal.SIGKILL and github.value(SECRET) != before:
            outlived += 1  # its refresh finished and wrote the secret after it died
    final = ft(["token"], github_run(tmp_path, server, github, "last"), tmp_path)
    assert final.returncode == 0, final.stderr
    assert killed >= 2 and outlived >= 2  # the case this test is about happened
    stats = server.stats()
    assert stats["reuse_detections"] == 0 and stats["family_revocations"] == 0
    assert server.active_refresh_tokens("demo-client") == 1  # the one in the secret


@pytest.mark.slow
def test_status_shows_a_write_back_left_pending(server: AuthServer, tmp_path: Path) -> None:
    """A sink that fails after the server rotated: the call fails (exit 5), and `status`
    says the stored refresh token is still to be written."""
    env = run_env(
        tmp_path,
        server,
        "pending",
        FRESHTOKEN_REFRESH_TOKEN=login(server),
        FRESHTOKEN_REFRESH_TOKEN_SINK="command:false",
    )
    failed = ft(["token"], env, tmp_path)
    assert failed.returncode == 5, failed.stderr
    assert server.stats()["refreshes"] == 1  # rotated: the new token waits in the store
    status = json.loads(ft(["status", "--format", "json"], env, tmp_path).stdout)
    [entry] = status["entries"]
    assert entry["sink_pending"] and entry["refresh_token"] and entry["expires_in"] is None
    table = ft(["status"], env, tmp_path).stdout
    assert "pending" in table.splitlines()[-1], table


def test_building_a_broker_reads_and_writes_nothing_until_it_is_used(
    tmp_path: Path, server: AuthServer, github: GitHubSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constructors do no I/O: the sink is read and the store seeded before the first mint."""
    from freshtoken import Settings, TokenBroker

    monkeypatch.setenv("GITHUB_API_URL", github.url)
    github.set_value(SECRET, login(server))
    env = github_run(tmp_path, server, github, "pure")
    settings = Settings.load(environ=env, use_file=False)
    before = dict(github.counts)
    broker = TokenBroker.from_settings(settings)
    try:
        assert github.counts == before  # the sink was not asked
        assert broker.store.load(broker.key) is None  # nothing seeded yet
        assert server.stats()["refreshes"] == 0
        token = broker.token()
        assert token.access_token
        assert github.counts["requests"] > before["requests"]  # read, then written back
        assert server.stats()["refreshes"] == 1
    finally:
        broker.close()


@pytest.mark.slow
def test_threads_first_calls_all_wait_for_the_configured_refresh_token(
    tmp_path: Path, server: AuthServer
) -> None:
    """The configured refresh token is seeded before any thread's first mint: none of them
    finds the store empty (refresh tokens only), whichever comes first."""
    from freshtoken import Settings, TokenBroker

    for trial in range(3):
        env = run_env(tmp_path, server, f"threads-{trial}", FRESHTOKEN_REFRESH_TOKEN=login(server))
        broker = TokenBroker.from_settings(Settings.load(environ=env, use_file=False))
        start = threading.Barrier(4)

        def first_call(broker: TokenBroker = broker, start: threading.Barrier = start) -> str:
            start.wait(timeout=30)
            return broker.token().access_token

        try:
            with ThreadPoolExecutor(4) as pool:
                tokens = [f.result(timeout=60) for f in [pool.submit(first_call) for _ in range(4)]]
        finally:
            broker.close()
        assert len(set(tokens)) == 1  # one refresh, shared
    assert server.stats()["reuse_detections"] == 0


def test_a_configured_refresh_token_that_could_not_be_offered_is_offered_again(
    tmp_path: Path, server: AuthServer
) -> None:
    """A sink that cannot be read yet (another user could read it) fails the call; once it is
    fixed, the next call of the same broker offers its refresh token (it is not lost)."""
    from freshtoken import Settings, TokenBroker

    sink = tmp_path / "sink" / "refresh-token"
    sink.parent.mkdir(mode=0o700)
    sink.write_text(login(server))
    sink.chmod(0o644)
    env = run_env(tmp_path, server, "retry", FRESHTOKEN_REFRESH_TOKEN_SINK=f"file://{sink}")
    broker = TokenBroker.from_settings(Settings.load(environ=env, use_file=False))
    try:
        with pytest.raises(FreshtokenError, match="other users"):
            broker.token()
        sink.chmod(0o600)
        assert broker.token().access_token
    finally:
        broker.close()
    assert server.stats()["refreshes"] == 1
