"""Issue 20 and issue 23 item 1, performed for real: how the processes freshtoken starts get
their secrets. A watcher of the same user polls /proc/<pid>/{fd/*,environ,cmdline} of every
process under `serve` (the re-executed serve, the spender, a `command:` sink's program) and
under `exec`; hostile modules on PYTHONPATH and a PYTHONSTARTUP script wait for a process that
holds secrets to import them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from freshtoken.testing import AuthServer, Client
from tests._attack import hostile_environment, seeded
from tests.helpers import CANARY_SECRET, assert_no_leak, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc")

FRESHTOKEN = str(Path(sys.executable).parent / "freshtoken")  # the console script (no -I)
CANARY_STORE_KEY = "Q2FuYXJ5U3RvcmVLZXlDYW5hcnlTdG9yZUtleUNhbmE="
CANARY_GITHUB = "ghp_canary0github0token0a9c3"

# The watcher: every process under the given pids (by /proc/*/stat's parent pid), each fd
# opened again through /proc as an attacker would (a pipe's buffer is read, and taken), its
# environ and cmdline. The environ of a root before it re-executed without the secrets is the
# caller's own environment, not something freshtoken handed over (nor is a child's between
# fork and exec, which shows the same memory): not counted. Each round it names the pids it has
# looked at in the `looked` file; at the stop file it prints everything it read (once each) and
# its counts.
WATCHER = r"""
import json, os, sys, time
stop, looked, roots = sys.argv[1], sys.argv[2], {int(p) for p in sys.argv[3:]}
me = os.getpid()
read, names, reopened, refused, callers = {}, {}, 0, 0, set()
def keep(pid, where, data):
    if data:
        read.setdefault(data.decode(errors="replace"), f"{pid} {where}")
def tree():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    parents[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    under, grew = set(roots), True
    while grew:
        new = {p for p, pp in parents.items() if pp in under and p not in under and p != me}
        under |= new
        grew = bool(new)
    return under
deadline = time.monotonic() + 120
while not os.path.exists(stop) and time.monotonic() < deadline:
    done = []
    for pid in sorted(tree(), key=lambda p: p not in roots):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            if cmdline:  # a process that ended shows none
                names[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")[:160]
            keep(pid, "cmdline", cmdline)
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
            if pid in roots and b"FRESHTOKEN_SECRETS_FD=" not in environ:
                callers.add(environ)  # the caller's own (and its children's until they exec)
            elif environ not in callers:
                keep(pid, "environ", environ)
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            path = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(path)
                if target.startswith("anon_inode:"):
                    continue
                handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            except OSError:
                refused += target.startswith("socket:")
                continue
            reopened += 1
            try:
                keep(pid, f"fd {fd} {target}", os.read(handle, 1 << 20))
            except OSError:
                pass
            finally:
                os.close(handle)
        done.append(str(pid))
    with open(looked + ".new", "w") as f:
        f.write(" ".join(done))
    os.replace(looked + ".new", looked)
    time.sleep(0.002)
print(json.dumps({"read": read, "names": names, "reopened": reopened, "refused": refused}))
"""


def _env(tmp: Path, server: AuthServer, sink: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
    return {
        **base,
        "XDG_CACHE_HOME": str(tmp / "cache"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "FRESHTOKEN_TOKEN_URL": server.token_url,
        "FRESHTOKEN_CLIENT_ID": "demo-client",
        "FRESHTOKEN_CLIENT_SECRET": CANARY_SECRET,
        "FRESHTOKEN_GRANT": "refresh_token",
        "FRESHTOKEN_STORE": f"sqlite://{tmp}/store/t.db",
        "FRESHTOKEN_STORE_KEY": CANARY_STORE_KEY,
        "FRESHTOKEN_GITHUB_TOKEN": CANARY_GITHUB,
        "FRESHTOKEN_REFRESH_TOKEN_SINK": sink,
        "FRESHTOKEN_RETRY_BUDGET": "20",
    }


def _complete(started: subprocess.Popen[bytes], command: str, out: Path, err: Path) -> None:
    """Let the started command finish; `serve`: once ready, one token asked, then SIGTERM."""
    if command == "serve":
        wait_until(lambda: out.read_text().endswith("\n"), timeout=30)
        ready = json.loads(out.read_text())
        key = Path(ready["key_file"]).read_text()
        answer = httpx.get(ready["url"] + "/token", headers={"X-Freshtoken-Key": key}, timeout=60)
        assert answer.status_code == 200, answer.text
        started.terminate()
    assert started.wait(60) in (0, -15), err.read_text()


# The sink's program: a Python reader of its standard input (as `vault kv put ... -` reads it),
# which waits (with a deadline) until the watcher has looked at it, then stores the token.
SINK = """\
import os, sys, time
end = time.monotonic() + 20
while time.monotonic() < end:
    try:
        if str(os.getpid()) in open(sys.argv[2]).read().split():
            break
    except OSError:
        pass
    time.sleep(0.005)
open(sys.argv[1], "w").write(sys.stdin.read())
"""


class Watcher:
    """The watcher above, run as the same user (root here: a socket still cannot be reopened
    through /proc, and what environ and cmdline hold is read)."""

    def __init__(self, place: Path, *roots: int) -> None:
        self.stop, self.looked = place / "stop", place / "looked"
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", WATCHER, str(self.stop), str(self.looked)]
            + [str(r) for r in roots],
            stdout=subprocess.PIPE,
            text=True,
        )

    def report(self) -> dict[str, Any]:
        self.stop.touch()
        out, _ = self.proc.communicate(timeout=30)
        report: dict[str, Any] = json.loads(out)
        return report


def assert_nothing_found(report: dict[str, Any], *secrets: str) -> None:
    found = [
        (where, i)
        for text, where in report["read"].items()
        for i, s in enumerate(secrets)
        if s and s in text
    ]
    assert not found, f"the watcher read secrets (by index) at {found}; it saw {report['names']}"


# exec's command: asks the endpoint for a token (the refresh behind it goes through the spender).
FETCH = """\
import os, urllib.request
ask = urllib.request.Request(os.environ["FRESHTOKEN_URL"] + "/token",
                             headers={"X-Freshtoken-Key": os.environ["FRESHTOKEN_KEY"]})
urllib.request.urlopen(ask, timeout=60).read()
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "exec", "token"])
def test_no_process_freshtoken_starts_shows_a_secret_to_the_users_other_processes(
    tmp_path: Path, command: str
) -> None:
    """`serve` or `exec` (by the console script, without -I: they re-execute isolated), or
    `token`, refresh through the spender, whose rotated refresh token goes to a `command:`
    sink; meanwhile a process of the same user opens every fd, environ and cmdline under the
    command. It finds none of the secrets."""
    sink, stored = tmp_path / "sink.py", tmp_path / "stored"
    sink.write_text(SINK)
    out, err = tmp_path / "out", tmp_path / "err"
    argv = {
        "serve": [FRESHTOKEN, "serve"],
        "exec": [FRESHTOKEN, "exec", "--", sys.executable, "-c", FETCH],
        "token": [FRESHTOKEN, "token"],
    }[command]
    with AuthServer(latency=0.5, clients=[Client("demo-client", CANARY_SECRET)]) as server:
        env = _env(tmp_path, server, f"command:{sys.executable} {sink} {stored} {tmp_path}/looked")
        seed = seeded(server, env, CANARY_SECRET)
        with out.open("w") as o, err.open("w") as e:
            started = subprocess.Popen(argv, env=env, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        watcher = Watcher(tmp_path, started.pid)
        failed: AssertionError | None = None
        try:
            _complete(started, command, out, err)
        except AssertionError as exc:  # what the watcher read tells why first
            failed = exc
        finally:
            started.kill()
            started.wait(10)
            report = watcher.report()
        rotated = stored.read_text().strip() if stored.exists() else ""
    assert_nothing_found(report, CANARY_SECRET, CANARY_STORE_KEY, CANARY_GITHUB, seed, rotated)
    assert failed is None, failed
    assert rotated and rotated != seed  # the sink got the rotated token, on its socket
    names = " | ".join(report["names"].values())
    # It looked at every process: the command (isolated where it holds secrets for long), the
    # spender, the sink's program.
    if command != "token":
        assert f"-I -m freshtoken {command}" in names, names
    assert "freshtoken.broker._spender" in names and str(sink) in names, names
    assert report["refused"] > 0  # sockets: not to be reopened
    printed = err.read_text() + ("" if command == "token" else out.read_text())  # token: the token
    assert_no_leak("its output", printed, CANARY_STORE_KEY, seed)


@pytest.mark.parametrize("command", ["serve", "exec"])
def test_no_module_of_the_job_runs_where_the_secrets_are(tmp_path: Path, command: str) -> None:
    """Issue 23: a workflow's `PYTHONPATH: src` (a pull request's click.py and json.py there)
    and a PYTHONSTARTUP script: `serve`/`exec` by the console script (not isolated), the
    spender behind them and a `command:` sink in Python import none of it."""
    hostile, log = hostile_environment(tmp_path, CANARY_SECRET)
    sink, stored = tmp_path / "sink.py", tmp_path / "stored"
    sink.write_text("import json, sys\nopen(sys.argv[1], 'w').write(sys.stdin.read())\n")
    out, err = tmp_path / "out", tmp_path / "err"
    argv = {  # exec's command (the job's own, not isolated by freshtoken) runs with -I here
        "serve": [FRESHTOKEN, "serve"],
        "exec": [FRESHTOKEN, "exec", "--", sys.executable, "-I", "-c", FETCH],
    }[command]
    with AuthServer(clients=[Client("demo-client", CANARY_SECRET)]) as server:
        env = _env(tmp_path, server, f"command:{sys.executable} {sink} {stored}")
        seeded(server, env, CANARY_SECRET)
        env.update(hostile)
        with out.open("w") as o, err.open("w") as e:
            started = subprocess.Popen(argv, env=env, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        try:
            _complete(started, command, out, err)
        finally:
            started.kill()
            started.wait(10)
    ran = log.read_text() if log.exists() else ""
    assert ran == "", f"the job's modules ran in: {ran}"
    assert stored.read_text().strip()  # the spender refreshed, the sink stored the token


@pytest.mark.parametrize("command", [["token"], ["doctor"], ["-v", "token", "--format", "json"]])
def test_short_commands_run_isolated_when_the_environment_could_bring_code_in(
    tmp_path: Path, command: list[str]
) -> None:
    """Issue 23 item 1, beyond serve and exec: a workflow's `PYTHONPATH: src` (a pull
    request's click.py and json.py there) and a PYTHONSTARTUP script; `token` and `doctor` by
    the console script run again isolated before reading a setting, and import none of it."""
    hostile, log = hostile_environment(tmp_path, CANARY_SECRET)
    with AuthServer(clients=[Client("demo-client", CANARY_SECRET)]) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHTOKEN_")}
        env |= {
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": "demo-client",
            "FRESHTOKEN_CLIENT_SECRET": CANARY_SECRET,
            **hostile,
        }
        out = subprocess.run(
            [FRESHTOKEN, *command], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert server.stats()["tokens_minted"] == 1
    ran = log.read_text() if log.exists() else ""
    assert ran == "", f"the job's modules ran in: {ran}"
    printed = out.stderr + ("" if "token" in command else out.stdout)  # token: the token
    assert_no_leak("its output", printed, CANARY_SECRET)
